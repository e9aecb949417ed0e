"""Peak memory of whole ``netfloc run`` processes against a plain PyTorch loop over the same images, and where it goes.

    python benchmarks/bench_memory.py [--model torchvision:resnet50:random] [--layers stages] [--repeats 3]
        [--per-category 144] [--timeline]

Arms, alternated ``--repeats`` times, each a separate process whose resident memory is sampled from
``/proc/PID/status`` every 5 ms (and whose peak ``/usr/bin/time`` reports, the number that counts):

- ``plain``: ``benchmarks/bare_forward.py`` with PyTorch's, Python's and glibc's defaults — the loop a user writes;
- ``run``: ``netfloc run --no-report`` with the same model, layers, images and batch size;
- ``run 4x``: the same at 4× the images per category (the fLoc set's 144 per category is the ceiling, so the small
  set has ``per-category / 4``): memory must not grow with the number of images.

Printed: each run's peak (GiB), the peak of ``run`` over ``plain`` per round and their median, the spread of
``run``'s peaks over the repeats ((max − min) / median), and the ratio of the 4×-image run's peak to the small one.
With ``--timeline``, a run's resident memory is also printed against its phases (import, model, probe,
record, statistics, tables, write), marked by a wrapper that times netfloc's own functions from inside the process
(:data:`PHASES`), so that the peak can be assigned to a phase.

Stimuli: the study's six categories built from ``../shared/stimuli/floc``; without them the script exits with a
message.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FLOC = REPO.parent / "shared" / "stimuli" / "floc"
NETFLOC = [sys.executable, "-c", "from netfloc.cli import main; main()"]
#: Functions whose start marks a phase of ``netfloc run`` in the timeline: (module, function, phase).
PHASES = (
    ("netfloc.pipeline.model_run", "load_model", "model"),
    ("netfloc.pipeline.model_run", "probe_in_memory_format", "probe"),
    ("netfloc.pipeline.model_run", "record_pass", "record"),
    ("netfloc.pipeline.model_run", "pass_statistics", "statistics"),
    ("netfloc.pipeline.model_run", "finish_model", "tables"),
    ("netfloc.pipeline.runner", "save_run", "write"),
)
TRACED = """
import sys, time, importlib
marks = open(sys.argv.pop(1), "w", buffering=1)
marks.write(f"import {time.monotonic()}\\n")
from netfloc.cli import main
def wrap(module, name, phase):
    module = importlib.import_module(module)
    original = getattr(module, name)
    def marked(*args, **kwargs):
        marks.write(f"{phase} {time.monotonic()}\\n")
        return original(*args, **kwargs)
    setattr(module, name, marked)
for entry in PHASES:
    wrap(*entry)
main()
"""


def resident_gib(pid: int) -> float | None:
    """VmRSS of a process in GiB, or None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 2**20
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def measured(command: list[str]) -> dict:
    """Peak RSS (GiB, /usr/bin/time), wall seconds and the sampled (monotonic time, RSS) timeline of one process."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        started = time.monotonic()
        process = subprocess.Popen(
            ["/usr/bin/time", "-f", "%e %M", "-o", report.name, *command],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        samples: list[tuple[float, float]] = []

        def sample() -> None:
            child = None
            while process.poll() is None:
                if child is None:
                    found = Path(f"/proc/{process.pid}/task/{process.pid}/children")
                    text = found.read_text().split() if found.exists() else []
                    child = int(text[0]) if text else None
                value = resident_gib(child) if child else None
                if value is not None:
                    samples.append((time.monotonic(), value))
                time.sleep(0.005)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, errors = process.communicate()
        sampler.join()
        if process.returncode != 0:
            raise SystemExit(f"failed: {' '.join(command)}\n{errors[-2000:]}")
        seconds, kilobytes = report.read().split()[-2:]
    return {"seconds": float(seconds), "peak_gib": int(kilobytes) / 2**20, "started": started, "samples": samples}


def build_stimuli(root: Path, per_category: int) -> Path:
    """The study's six categories from fLoc, ``per_category`` images each (built once, then reused)."""
    out = root / f"paper-{per_category}"
    if not (out / "manifest.csv").is_file():
        command = [*NETFLOC, "stimuli", "build", "paper", "--floc", str(FLOC), "--out", str(out)]
        subprocess.run([*command, "--per-category", str(per_category), "--force"], check=True, capture_output=True)
    return out


def timeline(run: dict, marks_file: Path) -> list[str]:
    """Per phase: its start (s after launch) and the largest resident memory sampled during it."""
    marks = [line.split() for line in marks_file.read_text().splitlines()]
    starts = [(phase, float(when)) for phase, when in marks]
    ends = [when for _, when in starts[1:]] + [float("inf")]
    lines = []
    for (phase, start), end in zip(starts, ends, strict=True):
        inside = [rss for when, rss in run["samples"] if start <= when < end]
        peak = f"{max(inside):.3f}" if inside else "-"
        lines.append(f"  {phase:10s} from {start - run['started']:6.2f} s   peak sampled {peak} GiB")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description="Peak memory of netfloc run against a plain PyTorch loop.")
    parser.add_argument("--model", default="torchvision:resnet50:random")
    parser.add_argument("--layers", default="stages")
    parser.add_argument("--per-category", type=int, default=144)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeline", action="store_true")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "netfloc-bench")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not FLOC.is_dir():
        raise SystemExit(f"fLoc stimuli not found at {FLOC}; nothing to benchmark")
    large = build_stimuli(args.cache, args.per_category)
    small = build_stimuli(args.cache, args.per_category // 4)
    work = Path(tempfile.mkdtemp(prefix="netfloc-memory-"))
    marks = work / "marks.txt"

    def run(stimuli: Path) -> list[str]:
        model = ["--model", args.model, "--stimuli", str(stimuli), "--layers", args.layers]
        trace = ["-c", TRACED.replace("PHASES", repr(PHASES)), str(marks)] if args.timeline else None
        launcher = [sys.executable, *trace] if trace else NETFLOC
        return [*launcher, "run", *model, "--out", str(work / "out"), "--force", "--no-report"]

    plain = [sys.executable, str(REPO / "benchmarks" / "bare_forward.py"), "--model", args.model]
    arms = {"plain": [*plain, "--stimuli", str(large)], "run": run(large), "run_small": run(small)}
    rounds: dict[str, list[dict]] = {name: [] for name in arms}
    for _ in range(args.repeats):
        for name, command in arms.items():
            rounds[name].append(measured(command))
            if args.timeline and name != "plain":
                print(f"{name} ({rounds[name][-1]['peak_gib']:.3f} GiB peak):")
                print("\n".join(timeline(rounds[name][-1], marks)))
    peaks = {name: [run["peak_gib"] for run in runs] for name, runs in rounds.items()}
    per_round = [r / p for r, p in zip(peaks["run"], peaks["plain"], strict=True)]
    spread = (max(peaks["run"]) - min(peaks["run"])) / statistics.median(peaks["run"])
    growth = [big / few for big, few in zip(peaks["run"], peaks["run_small"], strict=True)]
    n = 6 * args.per_category
    print(f"{args.model}, layers {args.layers}, {n} and {n // 4} fLoc images, {args.repeats} alternated rounds")
    for name, values in peaks.items():
        print(f"  peak RSS {name:10s} " + "  ".join(f"{value:.3f}" for value in values) + " GiB")
    print(f"peak run / plain loop, by round   {'  '.join(f'{r:.3f}' for r in per_round)}")
    print(f"peak run / plain loop, median     {statistics.median(per_round):.3f}")
    print(f"spread of run peaks (max-min)/med {spread:.3f}")
    print(f"peak {n} / {n // 4} images, by round  {'  '.join(f'{g:.3f}' for g in growth)}")
    if args.json:
        summary = {"peaks_gib": peaks, "ratio_by_round": per_round, "spread": spread, "growth_by_round": growth}
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
