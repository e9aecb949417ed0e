"""Image statistics per category (mean and spread of :mod:`netfloc.stimuli.measures` across a category's
images) and SHINE-style luminance and contrast equalisation (Willenbockel et al. 2010, Behav Res Methods 42:671).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from netfloc.errors import NetflocError
from netfloc.parallel import parallel_map
from netfloc.stimuli._common import read_pixels, to_dtype
from netfloc.stimuli.measures import MEASURES, image_stats, luminance

if TYPE_CHECKING:
    import pandas as pd


def category_image_stats(
    files_by_category: Mapping[str, Sequence[Path]], measured: Mapping[Path, dict[str, float]] | None = None
) -> pd.DataFrame:
    """One row per category × measure (:data:`~netfloc.stimuli.measures.MEASURES`) with ``n``, ``mean`` and
    ``std`` across images. Images in ``measured`` (e.g. :attr:`StimulusSet.measures
    <netfloc.stimuli.folder.StimulusSet>`, taken by the stimulus check) are not decoded again.

    ``std`` is the sample standard deviation (ddof = 1), NaN for a category with one image.
    """
    import pandas as pd  # here, not at import: a run's recordings go without pandas (netfloc.pipeline.runner)

    measured = measured or {}

    def measures(path: Path) -> dict[str, float]:
        return measured[path] if path in measured else image_stats(read_pixels(Path(path)))

    rows = []
    for category, files in files_by_category.items():
        if not files:
            raise NetflocError(f"category {category!r} has no images; add images or drop the category")
        table = pd.DataFrame(parallel_map(measures, files), columns=list(MEASURES))  # decoding, FFTs release the GIL
        for measure in MEASURES:
            values = table[measure].to_numpy()
            rows.append(
                {
                    "category": category,
                    "measure": measure,
                    "n": len(values),
                    "mean": float(values.mean()),
                    "std": float(values.std(ddof=1)) if len(values) > 1 else float("nan"),
                }
            )
    return pd.DataFrame(rows, columns=["category", "measure", "n", "mean", "std"])


def equalize_luminance_contrast(images: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Match every image's mean and std of luminance to the set's averages (SHINE ``lumMatch``).

    With ``m_i``, ``s_i`` the mean and std of image i's luminance and ``M``, ``S`` their averages over the
    set, each pixel value ``x`` (every channel) becomes ``(x − m_i)·S/s_i + M`` on the [0, 1] scale; since the
    BT.601 weights sum to 1, luminance is transformed the same way and colour images keep their hue.
    Integer images are rounded and clipped back to their dtype (which may move the statistics slightly, as in
    SHINE); float images are returned unclipped (Willenbockel et al. 2010, Behav Res Methods 42:671).
    """
    if not images:
        raise NetflocError("no images to equalise; pass at least one image")
    lums = [luminance(image) for image in images]
    means = np.array([lum.mean() for lum in lums])
    stds = np.array([lum.std() for lum in lums])
    if np.any(stds == 0):
        raise NetflocError(
            f"image {int(np.argmax(stds == 0))} has constant luminance, so its contrast cannot be scaled; "
            "remove blank images before equalising"
        )
    target_mean, target_std = means.mean(), stds.mean()
    result = []
    for image, mean, std in zip(images, means, stds, strict=True):
        image = np.asarray(image)
        top = np.iinfo(image.dtype).max if np.issubdtype(image.dtype, np.integer) else 1.0
        scaled = (image.astype(np.float64) / top - mean) * (target_std / std) + target_mean
        result.append(to_dtype(scaled * top, image.dtype))
    return result
