"""What netfloc's own work cannot go below on this machine, measured on a finished run's layers.

Two costs of ``netfloc run`` scale with the units and cannot overlap the forward pass on a CPU whose cores the
forward pass already fills:

- **Exact tails.** ``q_max`` and ``anova_p`` are stored for every unit, exact to scipy's arithmetic. A unit's q
  can only be below 1 if its p is exact (its rank among the others needs it), so every unit pair whose q can be
  below 1 gets one ``scipy.special.stdtr`` call, and every unit one ``fdtrc`` (the ANOVA). This script finds
  those pairs as netfloc does (the q-values of :func:`netfloc.statistics.inference.fdr_q`), times the two
  special functions on them alone, and divides by the cores: the statistics phase cannot be shorter.
- **Accumulation.** Every batch of every layer is read and added, in float64, to per-category sums. The script
  times netfloc's update (:class:`netfloc.moments.accumulator.MomentAccumulator`, a float64 upcast and two
  matrix products per chunk of units, all torch operations) against one float32 column sum of the same batch
  — a single read of the activations, what a hand-fused kernel that adds them in float64 could approach — on
  random batches of each layer's width, and scales both to the run's number of batches.

The layers come from a run folder (``netfloc run … --out RUN``); the moments are rebuilt from its layer files
(mean, and std rounded to float32), which changes which pairs are candidates by a handful at most.

    python benchmarks/bench_floor.py RUN [--repeats 3]

Printed: per layer, the unit pairs that get an exact tail, the CPU seconds of ``stdtr`` and ``fdtrc``, and
the accumulation's seconds per pass against the one-read floor; then the totals against the run's own
statistics and recording times (run.json).
"""

from __future__ import annotations

import argparse
import os
import time
from itertools import combinations
from pathlib import Path

import numpy as np
import torch
from scipy import special

from netfloc.moments.accumulator import MomentAccumulator
from netfloc.results import LocalizerResult
from netfloc.statistics.inference import GroupTerms, anova_oneway, fdr_q


def cpu_seconds(function, *arguments) -> float:
    """CPU seconds of the calling thread for one call (the special functions run on one core here)."""
    start = time.thread_time()
    function(*arguments)
    return time.thread_time() - start


def exact_tails(count: np.ndarray, mean: np.ndarray, m2: np.ndarray, test: str, fdr: str) -> dict[str, float]:
    """Unit pairs whose q is below 1, and the CPU seconds of their ``stdtr`` and of every unit's ``fdtrc``."""
    terms = GroupTerms(count, mean, m2, test)
    pairs, stdtr_seconds = 0, 0.0
    for a, b in combinations(range(len(count)), 2):
        t = terms.t(a, b)
        below = np.flatnonzero(fdr_q(t, lambda units, a=a, b=b: terms.df(a, b, units), fdr) < 1.0)
        negative, nu = -np.abs(t[below]), terms.df(a, b, below)
        pairs += below.size
        stdtr_seconds += cpu_seconds(special.stdtr, nu, negative)
    f = anova_oneway(count, mean, m2)[0]
    fdtrc_seconds = cpu_seconds(special.fdtrc, len(count) - 1, count.sum() - len(count), f)
    return {"pairs": pairs, "stdtr_s": stdtr_seconds, "fdtrc_s": fdtrc_seconds}


def accumulation(units: int, categories: int, batch_size: int, repeats: int) -> dict[str, float]:
    """Seconds per batch of netfloc's update (a batch of one category, as stimuli in category order give) and of
    one float32 column sum of the same batch; the fastest of ``repeats``."""
    values = torch.randn(batch_size, units).relu_()
    members = np.zeros((batch_size, categories))
    members[:, 0] = 1.0
    accumulator = MomentAccumulator(categories, units)
    accumulator.update_members(values, members)  # the reference and the buffer
    timings = {"update_s": [], "read_s": []}
    for _ in range(repeats):
        start = time.perf_counter()
        accumulator.update_members(values, members)
        timings["update_s"].append(time.perf_counter() - start)
        start = time.perf_counter()
        values.sum(dim=0)
        timings["read_s"].append(time.perf_counter() - start)
    return {key: min(found) for key, found in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description="Lower bounds of netfloc's own work, on a finished run's layers.")
    parser.add_argument("run", type=Path, help="A netfloc run folder (netfloc run … --out RUN).")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    result = LocalizerResult.load(args.run)
    info = result.run_info  # run.json, read and checked with the layers
    settings, cores = info["settings"], os.cpu_count() or 1
    batches = -(-int(result.layers[0].count.sum()) // settings["batch_size"])
    totals = dict.fromkeys(("pairs", "stdtr_s", "fdtrc_s", "update_s", "read_s"), 0.0)
    print(f"{args.run}: {len(result.layers)} layers, {batches} batches of {settings['batch_size']}, {cores} cores")
    print(
        f"{'layer':12s} {'units':>9s} {'pairs q<1':>10s} {'stdtr CPU-s':>12s} {'fdtrc CPU-s':>12s} "
        f"{'update s/pass':>14s} {'one read s/pass':>16s}"
    )
    for layer in result.layers:
        count = layer.count.astype(np.float64)
        mean = layer.mean.astype(np.float64)
        m2 = layer.std.astype(np.float64) ** 2 * (count[:, None] - 1)
        found = exact_tails(count, mean, m2, settings["test"], settings["fdr"])
        per_batch = accumulation(mean.shape[1], len(count), settings["batch_size"], args.repeats)
        found |= {key: seconds * batches for key, seconds in per_batch.items()}
        for key in totals:
            totals[key] += found[key]
        print(
            f"{layer.layer:12s} {mean.shape[1]:9d} {found['pairs']:10d} {found['stdtr_s']:12.3f} "
            f"{found['fdtrc_s']:12.3f} {found['update_s']:14.3f} {found['read_s']:16.3f}"
        )
    timings = info["models"][0]["timings_s"]
    tails = (totals["stdtr_s"] + totals["fdtrc_s"]) / cores
    print(
        f"exact tails: {int(totals['pairs']):,} stdtr + fdtrc for every unit = "
        f"{totals['stdtr_s'] + totals['fdtrc_s']:.2f} CPU-s, ≥ {tails:.2f} s on {cores} cores"
    )
    print(
        f"statistics (run.json) {timings['statistics']:.2f} s; floor / recording {tails / timings['record']:.3f}, "
        f"run's statistics / recording {timings['statistics'] / timings['record']:.3f}"
    )
    print(
        f"accumulation per pass: netfloc's update {totals['update_s']:.2f} s, one read of the activations "
        f"{totals['read_s']:.2f} s (recording {timings['record']:.2f} s)"
    )


if __name__ == "__main__":
    main()
