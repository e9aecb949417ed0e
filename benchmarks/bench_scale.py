"""Scale-out costs, measured as whole processes: the Ray executor against the local one on the same workload,
the start and stop of a local Ray instance, and what ``--resume`` saves after a SIGKILL at about 60%.

    python benchmarks/bench_scale.py [--model torchvision:resnet18:random] [--per-category 144] [--shards 9]

Stimuli: the study's six categories from ../shared/stimuli/floc (built once, as in bench_process.py).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_process import FLOC, NETFLOC, build_stimuli, timed


def ray_start_stop() -> dict[str, float]:
    """Seconds to start and to stop a local Ray instance (measured in a fresh process)."""
    code = (
        "import time, ray; t = time.perf_counter(); ray.init(num_cpus=2, include_dashboard=False); "
        "s = time.perf_counter(); ray.shutdown(); e = time.perf_counter(); print(s - t, e - s)"
    )
    start, stop = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    return {"start_s": float(start), "stop_s": float(stop)}


def main() -> None:
    parser = argparse.ArgumentParser(description="Ray overhead, Ray start/stop and resume saving.")
    parser.add_argument("--model", default="torchvision:resnet18:random")
    parser.add_argument("--per-category", type=int, default=144)
    parser.add_argument("--shards", type=int, default=9)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "netfloc-bench")
    args = parser.parse_args()
    if not FLOC.is_dir():
        raise SystemExit(f"fLoc stimuli not found at {FLOC}; nothing to benchmark")
    stimuli = build_stimuli(args.cache, args.per_category)
    n_images = 6 * args.per_category
    shard_size = -(-n_images // args.shards)
    work = Path(tempfile.mkdtemp(prefix="netfloc-scale-"))

    def run(name: str, *extra: str) -> list[str]:
        common = ["--model", args.model, "--stimuli", str(stimuli), "--layers", "stages", "--no-report", "--force"]
        return [*NETFLOC, "run", *common, "--out", str(work / name), "--shard-size", str(shard_size), *extra]

    local = [timed(run("local")) for _ in range(2)]
    distributed = [timed(run("ray", "--executor", "ray")) for _ in range(2)]
    startstop = ray_start_stop()
    full = min(run_["seconds"] for run_ in local)
    shards = work / ".killed.partial" / "shards"
    process = subprocess.Popen(run("killed"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = round(0.6 * args.shards)
    while len(list(shards.rglob("*.json"))) < target and process.poll() is None:
        time.sleep(0.1)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done = len(list(shards.rglob("*.json")))
    resumed = timed([part for part in run("killed", "--resume") if part != "--force"])
    ledger = json.loads((work / "killed" / "run.json").read_text())["models"][0]["shards"]
    print(f"{args.model}, stages, {n_images} images in {args.shards} shards of {shard_size}, {os.cpu_count()} cores")
    print(f"local executor: {[r['seconds'] for r in local]} s; ray executor: {[r['seconds'] for r in distributed]} s")
    print(f"ray / local: {min(r['seconds'] for r in distributed) / full:.2f}")
    print(f"local Ray instance: start {startstop['start_s']:.1f} s, stop {startstop['stop_s']:.1f} s")
    print(f"killed after {done}/{args.shards} shards; resume {resumed['seconds']:.1f} s vs full {full:.1f} s ")
    print(f"(ledger {ledger}): saving {1 - resumed['seconds'] / full:.0%}")


if __name__ == "__main__":
    main()
