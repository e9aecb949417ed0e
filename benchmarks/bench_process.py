"""netfloc as users meet it: whole processes timed from outside against the bare forward pass.

Every measurement is a separate process run under ``/usr/bin/time`` (wall time and peak RSS, imports and
stimulus checks included): ``netfloc run … --no-report`` against ``benchmarks/bare_forward.py`` (the same model,
preprocessing and data loading, no hooks). The arms alternate ``--repeats`` times and the fastest of each
counts, which damps the noise of a shared machine; the ratios of the runs of one round (neighbours in time)
are printed too, with their medians (time and peak RSS), since a shared machine's speed drifts by ±10% over
minutes and the bare forward's peak by ±5%. The bare forward runs twice per round: with the process settings
of the ``netfloc`` script (no garbage collection during the imports and at exit, ``--pause-gc``; the memory
format netfloc chooses, ``--memory-format auto``: channels-last for a CNN on the CPU; glibc keeping freed blocks
for the next batch, ``--reuse-freed-memory``; the ratio to it is netfloc's overhead), and with PyTorch's,
Python's and glibc's defaults (what a hand-written loop gets: contiguous tensors, fresh pages every batch).
Printed ratios (the table of issue 10):

- run / bare forward (time) and peak RSS / the bare forward's, against both bare forwards
- peak RSS with 32 vs 128 images per category (192 vs 768 images): memory must not grow with images
- ``--layers <first layer>`` / full bare forward: the forward pass stops after the deepest requested layer
- ``--null 20 --cross-validate 5`` / plain run
- statistics phase / recording phase (from the fastest run's run.json timings)
- run / bare forward in CPU seconds (user + system, median of the rounds): the work netfloc adds to the cores,
  which on a CPU that the forward pass fills is time (``benchmarks/bench_floor.py`` measures what that work
  cannot go below)

    python benchmarks/bench_process.py [--model torchvision:resnet50:random] [--layers stages] [--repeats 2]

Stimuli: the study's six categories built from the fLoc images in ../shared/stimuli/floc (144 per category,
864 images); without them the script exits with a message. Results go to stdout and ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FLOC = REPO.parent / "shared" / "stimuli" / "floc"
NETFLOC = [sys.executable, "-c", "from netfloc.cli import main; main()"]
#: torch's huge-page allocations (off by default): every arm runs without them, whatever our environment holds.
HUGE_PAGES = "THP_MEM_ALLOC_ENABLE"


def timed(command: list[str]) -> dict[str, float]:
    """Wall seconds, peak RSS (GB) and user and system CPU seconds of one process, measured by /usr/bin/time
    (our environment, without :data:`HUGE_PAGES`)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        done = subprocess.run(
            ["/usr/bin/time", "-f", "%e %M %U %S", "-o", report.name, *command],
            capture_output=True,
            text=True,
            env={name: value for name, value in os.environ.items() if name != HUGE_PAGES},
        )
        if done.returncode != 0:
            raise SystemExit(f"failed: {' '.join(command)}\n{done.stderr[-2000:]}")
        seconds, kilobytes, user, system = report.read().split()[-4:]
    return {"seconds": float(seconds), "peak_gb": int(kilobytes) / 2**20, "cpu_s": float(user) + float(system)}


def fastest(runs: list[dict[str, float]]) -> dict[str, float]:
    return min(runs, key=lambda run: run["seconds"])


def alternate(arms: list[tuple], repeats: int) -> list[list[dict]]:
    """The (command[, read]) arms run in turn, ``repeats`` rounds; every run of each arm, in round order
    (``read()``, called after each run of its arm, adds what that run wrote: its run.json timings)."""
    runs: list[list[dict]] = [[] for _ in arms]
    for _ in range(repeats):
        for measured, (command, *read) in zip(runs, arms, strict=True):
            measured.append(timed(command) | (read[0]() if read else {}))
    return runs


def run_timings(out: Path) -> dict[str, dict[str, float]]:
    """The phase timings a run wrote to ``out/run.json``."""
    return {"timings_s": json.loads((out / "run.json").read_text())["models"][0]["timings_s"]}


def round_ratios(numerator: list[dict], denominator: list[dict], key: str = "seconds") -> list[float]:
    """Per round, ``key`` of one arm over the other's (runs of one round are neighbours in time)."""
    return [a[key] / b[key] for a, b in zip(numerator, denominator, strict=True)]


def build_stimuli(root: Path, per_category: int) -> Path:
    """The study's six categories from fLoc, ``per_category`` images each (built once, then reused)."""
    out = root / f"paper-{per_category}"
    if not (out / "manifest.csv").is_file():
        command = [*NETFLOC, "stimuli", "build", "paper", "--floc", str(FLOC), "--out", str(out)]
        subprocess.run([*command, "--per-category", str(per_category), "--force"], check=True, capture_output=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="Whole-process benchmark of netfloc run against the bare forward.")
    parser.add_argument("--model", default="torchvision:resnet50:random")
    parser.add_argument("--layers", default="stages")
    parser.add_argument("--first-layer", default="stem", help="The shallowest layer, for the truncation ratio.")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "netfloc-bench")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not FLOC.is_dir():
        raise SystemExit(f"fLoc stimuli not found at {FLOC}; nothing to benchmark")
    full, small, large = (build_stimuli(args.cache, n) for n in (144, 32, 128))
    work = Path(tempfile.mkdtemp(prefix="netfloc-bench-"))

    def run(stimuli: Path, name: str, layers: str, *extra: str) -> list[str]:
        out = ["--out", str(work / name), "--force", "--no-report"]
        return [*NETFLOC, "run", "--model", args.model, "--stimuli", str(stimuli), "--layers", layers, *out, *extra]

    bare = [sys.executable, str(REPO / "benchmarks" / "bare_forward.py"), "--model", args.model, "--stimuli", str(full)]
    same_settings = [*bare, "--pause-gc", "--memory-format", "auto", "--reuse-freed-memory"]
    plain_run = (run(full, "plain", args.layers), lambda: run_timings(work / "plain"))
    arms = [(same_settings,), (bare,), plain_run]
    rounds = alternate(arms, args.repeats)
    bare_run, default_bare, plain = (fastest(runs) for runs in rounds)
    paired = round_ratios(rounds[2], rounds[0])
    paired_memory = round_ratios(rounds[2], rounds[0], "peak_gb")
    paired_cpu = round_ratios(rounds[2], rounds[0], "cpu_s")  # user + system: what netfloc adds to the cores' work
    timings = plain["timings_s"]  # of the fastest run
    shallow = fastest([timed(run(full, "first", args.first_layer)) for _ in range(args.repeats)])
    controls = timed(run(full, "controls", args.layers, "--null", "20", "--cross-validate", "5"))
    few, many = timed(run(small, "few", args.layers)), timed(run(large, "many", args.layers))
    ratios = {
        "run / bare forward (time)": plain["seconds"] / bare_run["seconds"],
        "run / bare forward (time), median of rounds": statistics.median(paired),
        "peak RSS run / bare forward": plain["peak_gb"] / bare_run["peak_gb"],
        "peak RSS run / bare forward, median of rounds": statistics.median(paired_memory),
        "run / bare forward, PyTorch defaults (time)": plain["seconds"] / default_bare["seconds"],
        "peak RSS run / bare forward, PyTorch defaults": plain["peak_gb"] / default_bare["peak_gb"],
        "peak RSS 768 / 192 images": many["peak_gb"] / few["peak_gb"],
        f"--layers {args.first_layer} / full bare forward": shallow["seconds"] / bare_run["seconds"],
        "--null 20 --cross-validate 5 / plain run": controls["seconds"] / plain["seconds"],
        "statistics / recording (run.json)": timings["statistics"] / timings["record"],
        "run / bare forward (CPU seconds), median of rounds": statistics.median(paired_cpu),
    }
    measured = {
        "bare_forward": bare_run,
        "bare_forward_pytorch_defaults": default_bare,
        "run": plain,
        "first_layer": shallow,
        "null20_cv5": controls,
        "192_images": few,
        "768_images": many,
        "run_timings_s": timings,
        "rounds": {"bare_forward": rounds[0], "bare_forward_pytorch_defaults": rounds[1], "run": rounds[2]},
        "round_ratios_run_over_bare": paired,
        "round_peak_ratios_run_over_bare": paired_memory,
        "round_cpu_ratios_run_over_bare": paired_cpu,
    }
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"{args.model}, layers {args.layers}, 864 fLoc images, {machine}")
    for name, value in measured.items():
        print(f"  {name}: {value}")
    for name, ratio in ratios.items():
        print(f"{name:45s} {ratio:6.2f}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "measured": measured, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
