"""A checkpoint series made offline: a small CNN trained on generated shapes, a checkpoint per step, then
``netfloc run --series`` over the checkpoints.

    python examples/training_series.py --out series-example/ [--docs docs/]

1. Stimuli: four categories of 32×32 grey images generated here — ``discs``, ``rings``, ``crosses`` and
   ``stripes`` (a grating inside a disc), brighter than a random background, near the centre at random size,
   orientation and contrast, with pixel noise. ``OUT/stimuli`` gets ``--per-category`` localizer images of each
   (seed 1).
2. Training: :func:`build`'s CNN (conv1–conv3, global pool, fc) learns to tell the four shapes apart from
   freshly generated images (seed 2, never the localizer's), Adam, batches of 32. The weights are saved at steps
   0 (the initialisation), 1, 2, 4, …, ``--steps`` as ``OUT/checkpoints/step_<step>.pt``, with the accuracy on
   512 held-out images in ``OUT/checkpoints/accuracy.csv``.
3. The localizer over the series (the command is printed and run)::

       netfloc run --series toy=examples/training_series.py:build@OUT/checkpoints/step_*.pt \\
                   --stimuli OUT/stimuli --out OUT/results --layers conv1,conv2,conv3,pool \\
                   --cross-validate 3 --null 5

   (the logits, ``fc``, are left out: four units, so their proportions move in steps of 25%).

4. With ``--docs DIR``, the figure of selective units over steps is written to ``DIR/series-toy.png``.

The same file is the model of the series (``examples/training_series.py:build``): netfloc imports it and calls
:func:`build`, which only builds the network (the checkpoint's weights are loaded into it); :func:`main` runs only
when the file is run as a script.
"""

from __future__ import annotations

import argparse
import csv
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision import transforms

CATEGORIES = ("discs", "rings", "crosses", "stripes")
SIZE = 32
MEAN, STD = 0.5, 0.25


def build() -> tuple[nn.Module, transforms.Compose]:
    """The CNN and its preprocessing (grey image as 3 channels, (pixel − 0.5) / 0.25)."""
    network = nn.Sequential(
        OrderedDict(
            conv1=nn.Sequential(nn.Conv2d(3, 16, 5, stride=2, padding=2), nn.ReLU()),
            conv2=nn.Sequential(nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU()),
            conv3=nn.Sequential(nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU()),
            pool=nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()),
            fc=nn.Linear(64, len(CATEGORIES)),
        )
    )
    return network, transforms.Compose([transforms.ToTensor(), transforms.Normalize((MEAN,) * 3, (STD,) * 3)])


def draw(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One SIZE×SIZE uint8 image per label (an index into :data:`CATEGORIES`), B×SIZE×SIZE."""
    n = len(labels)
    y, x = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    cx, cy = rng.uniform(SIZE / 2 - 3, SIZE / 2 + 3, (2, n, 1, 1))
    radius, angle = rng.uniform(6, 9, (n, 1, 1)), rng.uniform(0, np.pi, (n, 1, 1))
    u = (x - cx) * np.cos(angle) + (y - cy) * np.sin(angle)
    v = (y - cy) * np.cos(angle) - (x - cx) * np.sin(angle)
    disc = u**2 + v**2 < radius**2
    arm = 0.3 * radius
    shapes = {
        "discs": disc,
        "rings": disc & (u**2 + v**2 > (0.6 * radius) ** 2),
        "crosses": ((np.abs(u) < radius) & (np.abs(v) < arm)) | ((np.abs(v) < radius) & (np.abs(u) < arm)),
        "stripes": disc & (np.sin(2 * np.pi * rng.uniform(0.16, 0.26, (n, 1, 1)) * u) > 0),
    }
    mask = np.stack([shapes[category] for category in CATEGORIES])[labels, np.arange(n)]
    contrast = rng.uniform(0.15, 0.35, (n, 1, 1))
    image = rng.uniform(0.3, 0.5, (n, 1, 1)) + contrast * mask + rng.normal(0.0, 0.05, mask.shape)
    return np.clip(np.rint(255 * image), 0, 255).astype(np.uint8)


def write_stimuli(folder: Path, per_category: int, seed: int = 1) -> Path:
    """``folder/<category>/<i>.png``, ``per_category`` images each."""
    rng = np.random.default_rng(seed)
    for label, category in enumerate(CATEGORIES):
        (folder / category).mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(draw(np.full(per_category, label), rng)):
            Image.fromarray(image).save(folder / category / f"{category}-{i:03d}.png")
    return folder


def batch(rng: np.random.Generator, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``size`` generated images (preprocessed like :func:`build`'s transform) and their labels."""
    labels = rng.integers(0, len(CATEGORIES), size)
    images = draw(labels, rng).astype(np.float32) / 255
    pixels = torch.from_numpy((images - MEAN) / STD)[:, None].expand(-1, 3, -1, -1)
    return pixels.contiguous(), torch.from_numpy(labels)


def train(folder: Path, steps: int, seed: int = 2) -> list[dict[str, float]]:
    """Train :func:`build`'s network for ``steps`` SGD steps, saving ``step_<s>.pt`` at s = 0, 1, 2, 4, …, steps;
    returns the held-out accuracy at each saved step."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    network, _ = build()
    optimizer = torch.optim.Adam(network.parameters(), lr=5e-3)
    test_images, test_labels = batch(np.random.default_rng(seed + 100), 512)
    saved_at = {0, steps} | {2**k for k in range(steps.bit_length()) if 2**k <= steps}
    folder.mkdir(parents=True, exist_ok=True)
    accuracy = []
    for step in range(steps + 1):
        if step in saved_at:
            torch.save(network.state_dict(), folder / f"step_{step}.pt")
            with torch.no_grad():
                correct = (network(test_images).argmax(1) == test_labels).float().mean().item()
            accuracy.append({"step": step, "accuracy": round(correct, 4)})
        if step == steps:
            break
        images, labels = batch(rng, 32)
        loss = nn.functional.cross_entropy(network(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with (folder / "accuracy.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["step", "accuracy"])
        writer.writeheader()
        writer.writerows(accuracy)
    return accuracy


def write_docs_figure(results: Path, path: Path) -> None:
    """The report's line figure of the series at a smaller size, for the README."""
    import matplotlib as mpl
    import pandas as pd

    from netfloc.report.series import plot_series_lines
    from netfloc.report.style import STYLE

    series, emergence = (pd.read_csv(results / f"{name}.csv") for name in ("series", "series_emergence"))
    with mpl.rc_context(STYLE):
        figure = plot_series_lines(series, emergence, ["toy"], list(dict.fromkeys(series["category"])))
        figure.savefig(path, dpi=110, metadata={"Software": None})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("series-example"))
    parser.add_argument("--steps", type=int, default=512, help="SGD steps (checkpoints at 0, 1, 2, 4, …)")
    parser.add_argument("--per-category", type=int, default=48, help="localizer images per category")
    parser.add_argument("--docs", type=Path, help="write the README figure into this folder")
    args = parser.parse_args()
    from netfloc.cli import app

    stimuli, checkpoints, results = args.out / "stimuli", args.out / "checkpoints", args.out / "results"
    write_stimuli(stimuli, args.per_category)
    for row in train(checkpoints, args.steps):
        print(f"step {row['step']:>4}: held-out accuracy {row['accuracy']:.3f}")
    command = [
        "run",
        "--series",
        f"toy={Path(__file__).resolve()}:build@{checkpoints}/step_*.pt",
        "--stimuli",
        str(stimuli),
        "--out",
        str(results),
        "--layers",
        "conv1,conv2,conv3,pool",
        "--cross-validate",
        "3",
        "--null",
        "5",
        "--force",
    ]
    print("netfloc " + " ".join(command))
    code = app(command, standalone_mode=False)
    if code:
        raise SystemExit(code)
    if args.docs:
        args.docs.mkdir(parents=True, exist_ok=True)
        write_docs_figure(results, args.docs / "series-toy.png")


if __name__ == "__main__":
    main()
