"""Cost of localizing against the bare forward pass of the same model on the same images.

Each measurement runs in its own subprocess (so peak memory is its own), in one invocation, and the
script prints ratios: time(localize) / time(bare forward incl. image loading), and peak RSS of both.
Bare forward and localize alternate ``--repeats`` times and the fastest of each counts, which damps the
noise of a shared machine.
A second localize run on twice as many images shows that memory does not grow with the image count.

    python benchmarks/bench_localize.py [--stimuli DIR] [--model SPEC] [--layers stages] [--per-category N]

Default stimuli: the fLoc images in ../shared/stimuli/floc (six categories like the study's, before
scrambling); without them the script exits with a message.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FLOC = REPO.parent / "shared" / "stimuli" / "floc"
CATEGORIES = ("adult", "body", "house", "word", "corridor", "limb")


def link_subset(source: Path, dest: Path, per_category: int) -> Path:
    """A stimulus folder of symlinks to the first ``per_category`` images of each category."""
    for category in CATEGORIES:
        (dest / category).mkdir(parents=True)
        for path in sorted((source / category).iterdir())[:per_category]:
            (dest / category / path.name).symlink_to(path)
    return dest


def bare_forward(spec: str, stimuli: str, batch_size: int) -> dict:
    import torch
    from torch.utils.data import DataLoader

    from netfloc.models import load_model
    from netfloc.recording.loader import ImageDataset
    from netfloc.stimuli import load_stimulus_set

    model = load_model(spec)
    loader = DataLoader(ImageDataset(load_stimulus_set(stimuli).items(), model), batch_size=batch_size)
    tic = time.perf_counter()
    with torch.inference_mode():
        for images, _, _ in loader:
            model.module(images)
    return {"seconds": time.perf_counter() - tic}


def localize_run(spec: str, stimuli: str, batch_size: int, layers: str) -> dict:
    from netfloc import localize
    from netfloc.stimuli import load_stimulus_set

    stimulus_set = load_stimulus_set(stimuli)
    tic = time.perf_counter()
    result = localize(spec, stimulus_set, layers=layers.split(","), batch_size=batch_size, progress=False)
    seconds = time.perf_counter() - tic
    timings = result.run_info["models"][0]["timings_s"]
    return {"seconds": seconds, **{f"{key}_s": value for key, value in timings.items()}}


def child(kind: str, *args: str) -> dict:
    """Run one measurement in a fresh interpreter; return its timings and peak RSS in MiB."""
    code = (
        "import json, resource, sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "import bench_localize as bench\n"
        f"result = bench.{kind}(*{list(args)!r})\n"
        "result['peak_rss_mib'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        "print(json.dumps(result))\n"
    )
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if process.returncode:
        sys.exit(f"{kind} failed:\n{process.stderr}")
    return json.loads(process.stdout.strip().splitlines()[-1])


def fastest(best: dict | None, new: dict) -> dict:
    """The faster of two measurements (peak memory: the larger)."""
    if best is None:
        return new
    peak = max(best["peak_rss_mib"], new["peak_rss_mib"])
    return {**min(best, new, key=lambda run: run["seconds"]), "peak_rss_mib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stimuli", type=Path, default=FLOC)
    parser.add_argument("--model", default="torchvision:resnet50:random")
    parser.add_argument("--layers", default="stages")
    parser.add_argument("--per-category", type=int, default=144)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if not args.stimuli.is_dir():
        sys.exit(f"no stimuli at {args.stimuli}; pass --stimuli DIR")
    with tempfile.TemporaryDirectory() as tmp:
        full = link_subset(args.stimuli, Path(tmp) / "full", args.per_category)
        half = link_subset(args.stimuli, Path(tmp) / "half", args.per_category // 2)
        batch = str(args.batch_size)
        bare, local = None, None
        for _ in range(args.repeats):
            bare = fastest(bare, child("bare_forward", args.model, str(full), args.batch_size))
            local = fastest(local, child("localize_run", args.model, str(full), args.batch_size, args.layers))
        local_half = child("localize_run", args.model, str(half), args.batch_size, args.layers)
    n = args.per_category * len(CATEGORIES)
    print(f"model {args.model}, layers {args.layers}, {n} images, batch {batch}, fastest of {args.repeats}")
    print(f"bare forward:        {bare['seconds']:8.1f} s   peak RSS {bare['peak_rss_mib']:8.0f} MiB")
    print(
        f"localize:            {local['seconds']:8.1f} s   peak RSS {local['peak_rss_mib']:8.0f} MiB   "
        f"(record {local['record_s']:.1f} s, statistics {local['statistics_s']:.1f} s)"
    )
    print(f"localize, {n // 2} images: {local_half['seconds']:6.1f} s   peak RSS {local_half['peak_rss_mib']:8.0f} MiB")
    print(f"time ratio localize / bare forward: {local['seconds'] / bare['seconds']:.2f}")
    print(f"memory ratio localize / bare forward: {local['peak_rss_mib'] / bare['peak_rss_mib']:.2f}")
    print(f"memory ratio {n} / {n // 2} images: {local['peak_rss_mib'] / local_half['peak_rss_mib']:.2f}")


if __name__ == "__main__":
    main()
