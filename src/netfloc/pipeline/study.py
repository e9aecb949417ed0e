"""The whole study end to end: fLoc -> the six categories -> resnet50 vs clip-rn50 -> analyses -> report.

``OUT/stimuli`` holds the built stimulus set (with its ``manifest.csv``), ``OUT/results`` the run with every
table, figure and ``report.html``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from netfloc.errors import NetflocError
from netfloc.files import check_destination, marker_owner
from netfloc.models.torchvision_zoo import OFFLINE_ENV
from netfloc.pipeline.runner import localize
from netfloc.results.run import results_folder_problem
from netfloc.stimuli.build import MANIFEST_FILE, build_paper_set
from netfloc.stimuli.floc import default_floc_dir, fetch_floc

STUDY_MODELS = ("resnet50", "clip-rn50")


def run_study(
    out: str | Path,
    *,
    models: Sequence[str] = STUDY_MODELS,
    stimuli: str | Path | None = None,
    floc: str | Path | None = None,
    offline: bool = False,
    layers: Sequence[str] | None = None,
    per_category: int = 144,
    size: int = 256,
    consistency: bool = True,
    cross_validate: int = 5,
    null: int = 5,
    baseline: str | None = "random",
    batch_size: int = 32,
    device: str = "auto",
    seed: int = 0,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Run the study; returns the results folder ``OUT/results``.

    Stimuli come from ``stimuli`` (a ready category folder), else are built from the fLoc images in
    ``floc``, else from fLoc fetched into the cache (not with ``offline``, which also keeps model loading
    from the network: pretrained weights must then be cached or given as checkpoint paths).
    """
    out = Path(out)
    results = out / "results"
    check_destination(results, force, results_folder_problem)
    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ[OFFLINE_ENV] = "1"
    if stimuli is None:
        built = out / "stimuli"
        check_destination(built, force, marker_owner(MANIFEST_FILE))
        build_paper_set(_floc_folder(floc, offline), built, per_category, size, seed, force=force, progress=progress)
        stimuli = built
    localize(
        list(models),
        stimuli,
        layers=layers,
        consistency=consistency,
        cross_validate=cross_validate,
        null=null,
        baseline=baseline,
        batch_size=batch_size,
        device=device,
        seed=seed,
        out=results,
        force=force,
        report=True,
        progress=progress,
    )
    return results


def _floc_folder(floc: str | Path | None, offline: bool) -> Path:
    if floc is not None:
        return Path(floc)
    cached = default_floc_dir()
    if offline:
        if not cached.is_dir():
            raise NetflocError(
                f"--offline needs the fLoc images: pass --floc DIR or --stimuli DIR, or fetch them first into {cached}"
            )
        return cached
    return fetch_floc()
