"""What ``run.json`` records of a run: versions, models, stimuli, settings, device, timings."""

from __future__ import annotations

import platform
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import scipy
import torch
import torchvision

from netfloc.pipeline.options import RunOptions
from netfloc.recording.loader import device_info
from netfloc.results.run import SCHEMA_VERSION
from netfloc.statistics import SelectivitySettings
from netfloc.stimuli import StimulusSet
from netfloc.stimuli.imagestats import category_image_stats
from netfloc.version import __version__


def run_info(
    models: list[dict[str, Any]],
    stimuli: StimulusSet,
    settings: SelectivitySettings,
    options: RunOptions,
    baseline: str | None,
    started: float,
) -> dict[str, Any]:
    """The ``run.json`` payload (validated against ``netfloc/data/run.schema.json`` when read back)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "netfloc_version": __version__,
        "versions": {
            "netfloc": __version__,
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "python": platform.python_version(),
        },
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "models": models,
        "categories": [
            {"name": name, "n_images": count} for name, count in zip(stimuli.categories, stimuli.counts, strict=True)
        ],
        "stimuli": {
            "root": str(stimuli.root.resolve()),
            "digest_sha256": stimuli.digest(),
            "n_images": stimuli.n_images,
            "skipped": [{"file": str(path), "reason": why} for path, why in stimuli.skipped],
        },
        "image_stats": category_image_stats(
            dict(zip(stimuli.categories, stimuli.files, strict=True)), stimuli.measures
        ).to_dict("records"),
        "settings": {
            "units": options.units,
            "tokens": options.tokens,
            "test": settings.test,
            "fdr": settings.fdr,
            "alpha": settings.alpha,
            "rule": settings.rule,
            "top_percent": settings.top_percent,
            "batch_size": options.batch_size,
            "consistency": options.consistency,
            "cross_validate": options.cross_validate,
            "null": options.null,
            "baseline": baseline,
            "allow_tf32": options.allow_tf32,
            "memory_format": options.memory_format,
            "memory_budget_bytes": options.memory_budget,
        },
        "seed": options.seed,
        "device": device_info(torch.device(options.device), options.allow_tf32),
        "timings_s": {"total": round(time.perf_counter() - started, 3)},
    }
