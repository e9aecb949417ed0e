"""Measured responses (fMRI voxels, ECoG electrodes): another source of units, read from one ``.npz`` file.

A responses file holds

- ``responses``: images × units, or repeats × images × units (real numbers, all finite);
- ``images``: the stimulus of each image row as ``category/filename`` (the image's path relative to a stimulus
  folder with one sub-folder per category; each image once);
- ``roi`` (one text label per unit, ``""`` for none): needed by ``netfloc brain``, optional for ``netfloc run
  --responses``.

:func:`load_subject` reads a subject for the brain comparison; :func:`load_measured_responses` reads a file as a
localizer source (one image per row: repeats are averaged) whose categories are the images' folders.
:func:`save_subject` writes the format (the ``netfloc brain import`` converters use it). Files are read with
``allow_pickle=False`` and every array's shape and dtype is checked; bad input is a one-line error naming the
file.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from netfloc.errors import NetflocError, first_line
from netfloc.stimuli.folder import MIN_IMAGES_PER_CATEGORY, StimulusSet

#: A region of interest needs this many voxels: fewer give no pattern to correlate.
MIN_ROI_VOXELS = 3


@dataclass(frozen=True)
class SubjectData:
    """One subject's responses: ``responses`` is R × N × V (R = 1 without repeats), ``roi`` (V,) and ``images``
    (N,) are text; ``name`` is the file's stem."""

    name: str
    path: Path
    responses: np.ndarray
    roi: np.ndarray
    images: np.ndarray

    @property
    def n_repeats(self) -> int:
        return int(self.responses.shape[0])

    def roi_sizes(self) -> dict[str, int]:
        """Voxels per labelled ROI, in first-seen order."""
        labels, counts = np.unique(self.roi[self.roi != ""], return_counts=True)
        order = np.argsort([np.flatnonzero(self.roi == label)[0] for label in labels])
        return {str(labels[i]): int(counts[i]) for i in order}


@dataclass(frozen=True)
class MeasuredResponses:
    """A responses file as a localizer source: ``values`` (N × U, float64, one row per image in ``stimuli.items()``
    order, repeats averaged), ``label`` (the file's stem) and the file's SHA-256."""

    stimuli: StimulusSet
    values: np.ndarray
    label: str
    sha256: str


def _read_npz(path: Path, keys: Sequence[str], optional: Sequence[str] = ()) -> dict[str, np.ndarray]:
    """The arrays ``keys`` (required) and ``optional`` (when present) of an ``.npz`` file, read without pickle."""
    if not path.is_file():
        raise NetflocError(f"responses file {path} does not exist; write it with `netfloc brain import` or numpy")
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [key for key in keys if key not in data.files]
            if missing:
                raise NetflocError(
                    f"{path} lacks the array {missing[0]!r}; a responses file holds responses, images and roi "
                    "(see the README's brain section)"
                )
            return {key: data[key] for key in (*keys, *optional) if key in data.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise NetflocError(f"{path} is not a readable .npz responses file ({first_line(error)})") from None


def _checked_responses(path: Path, arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(responses as R × N × V float64, images, roi or None) after checking shapes, dtypes, names and values."""
    responses, images = arrays["responses"], arrays["images"]
    if responses.dtype.kind not in "fiu" or responses.ndim not in (2, 3) or 0 in responses.shape:
        raise NetflocError(
            f"{path}: responses must be a non-empty images × voxels or repeats × images × voxels array of numbers, "
            f"not {responses.dtype} of shape {responses.shape}"
        )
    responses = responses.astype(np.float64)
    if responses.ndim == 2:
        responses = responses[None]
    n_images, n_units = responses.shape[1:]
    if images.dtype.kind != "U" or images.shape != (n_images,):
        raise NetflocError(f"{path}: images must be {n_images} text paths (one per image row), not {images.shape}")
    for image in images:
        parts = str(image).split("/")
        if len(parts) != 2 or "" in parts or ".." in parts or "\\" in image:
            raise NetflocError(
                f"{path}: image {str(image)!r} is not of the form category/filename (relative to the stimulus folder)"
            )
    names, counts = np.unique(images, return_counts=True)
    if (counts > 1).any():
        raise NetflocError(f"{path}: image {names[counts > 1][0]} is listed twice; average its repeats into one row")
    bad = ~np.isfinite(responses)
    if bad.any():
        _, image, unit = np.argwhere(bad)[0]
        raise NetflocError(
            f"{path}: {int(bad.sum())} NaN or infinite response(s) (first: image {images[image]}, voxel {unit}); "
            "drop those voxels or impute them before running netfloc"
        )
    roi = arrays.get("roi")
    if roi is not None and (roi.dtype.kind != "U" or roi.shape != (n_units,)):
        raise NetflocError(f"{path}: roi must hold {n_units} text labels (one per voxel, '' for none), not {roi.shape}")
    return responses, images, roi


def load_subject(path: str | Path, rois: Sequence[str] | None = None) -> SubjectData:
    """Read and check a subject file; ``rois`` keeps only these labels (the others become ``""``).

    Errors: a subject without any labelled ROI, or with a ROI of fewer than :data:`MIN_ROI_VOXELS` voxels."""
    path = Path(path).expanduser()
    responses, images, roi = _checked_responses(path, _read_npz(path, ("responses", "roi", "images")))
    if rois is not None:
        roi = np.where(np.isin(roi, list(rois)), roi, "")
    subject = SubjectData(path.stem, path, responses, roi, images)
    sizes = subject.roi_sizes()
    if not sizes:
        chosen = f" among --rois {', '.join(rois)}" if rois is not None else ""
        raise NetflocError(f"{path}: no voxel has a ROI label{chosen}; label voxels in roi ('' means none)")
    small = {label: n for label, n in sizes.items() if n < MIN_ROI_VOXELS}
    if small:
        label, n = next(iter(small.items()))
        raise NetflocError(
            f"{path}: ROI {label!r} has {n} voxel(s); a ROI needs at least {MIN_ROI_VOXELS} to have a response "
            f"pattern (merge it with another label or set its voxels to '')"
        )
    return subject


def save_subject(path: Path, responses: np.ndarray, roi: np.ndarray, images: Sequence[str]) -> Path:
    """Write a subject file (float32 responses, text roi and images) once it reads back as a valid subject (an
    invalid one is a one-line error and leaves ``path`` as it was)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial.npz")
    np.savez(partial, responses=responses.astype(np.float32), roi=np.asarray(roi, dtype=str), images=np.array(images))
    try:
        load_subject(partial)
    except NetflocError as error:
        partial.unlink()
        raise NetflocError(str(error).replace(str(partial), str(path))) from None
    partial.replace(path)
    return path


def load_measured_responses(path: str | Path, categories: Sequence[str] | None = None) -> MeasuredResponses:
    """A responses file as a localizer source: categories from the images' folders (sorted, or ``categories`` in
    that order, other images left out), images sorted by name within a category, repeats averaged."""
    path = Path(path).expanduser()
    responses, images, _ = _checked_responses(path, _read_npz(path, ("responses", "images"), ("roi",)))
    folders = np.array([str(image).split("/")[0] for image in images])
    available = sorted(set(folders))
    chosen = [c.strip() for c in categories if c.strip()] if categories else available
    missing = [category for category in chosen if category not in available]
    if missing:
        raise NetflocError(
            f"category {missing[0]!r} is not among the images of {path}; available: {', '.join(available)}"
        )
    if len(chosen) < 2:
        raise NetflocError(f"{path}: images of {len(chosen)} category ({', '.join(chosen)}); need two or more")
    values = responses.mean(axis=0)
    rows, files, hashes = [], [], {}
    for category in chosen:
        members = sorted(np.flatnonzero(folders == category), key=lambda i: str(images[i]))
        if len(members) < MIN_IMAGES_PER_CATEGORY:
            raise NetflocError(
                f"{path}: category {category!r} has {len(members)} image; at least {MIN_IMAGES_PER_CATEGORY} are "
                "needed to estimate a variance"
            )
        group = tuple(Path(str(images[i])) for i in members)
        hashes |= {
            image: hashlib.sha256(values[i].tobytes()).hexdigest() for image, i in zip(group, members, strict=True)
        }
        rows += members
        files.append(group)
    stimuli = StimulusSet(root=path, categories=tuple(chosen), files=tuple(files), hashes=hashes)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return MeasuredResponses(stimuli, values[rows], path.stem, digest)
