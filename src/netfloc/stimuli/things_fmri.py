"""``netfloc brain import things-fmri``: THINGS-fMRI single-trial responses in table format (Hebart et al. 2023).

The folder (``betas_csv`` of THINGS-data) holds, per subject ``sub-XX``:

- ``sub-XX_ResponseData.h5``: a pandas DataFrame saved with ``to_hdf`` (fixed format): one row per voxel, a
  ``voxel_id`` column and one column per trial named by its ``trial_id``. It is read with h5py from pandas' layout
  (``axis0`` column names; ``block<i>_items`` and ``block<i>_values``, rows × columns), never with PyTables'
  pickled attributes, and only the rows of labelled voxels are read.
- ``sub-XX_VoxelMetadata.csv``: ``voxel_id`` and one 0/1 column per ROI (``V1`` … ``lFFA``, ``rFFA``, ``lPPA``, …;
  columns ``nc_*``, ``splithalf_*``, ``prf-*`` and the voxel coordinates are not ROIs). ``lX``/``rX`` become ``X``.
- ``sub-XX_StimulusMetadata.csv``: per trial its ``trial_id`` and ``stimulus`` (an image file name such as
  ``dog_12s.jpg``); the image's default path is ``<concept>/<file>`` (``dog/dog_12s.jpg``), the layout of THINGS'
  ``object_images``.

The 100 test images were shown in every session (12 repeats), the others once: by default (``repeats`` = the
largest count) the file holds the test images with their 12 repeats; ``repeats=1`` keeps every image, averaged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from netfloc.errors import NetflocError, first_line
from netfloc.stimuli.brain_import import Converted, by_image, combine_labels, finish, restrict

NOT_ROIS = ("voxel_id", "subject_id", "voxel_x", "voxel_y", "voxel_z")
NOT_ROI_PREFIXES = ("nc_", "splithalf_", "prf-")
#: Rows of the response table read at once.
CHUNK = 1024


def _csv(path: Path, columns: Sequence[str]) -> pd.DataFrame:
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as error:
        raise NetflocError(f"cannot read {path} ({first_line(error)}); pass the THINGS-fMRI betas_csv folder") from None
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise NetflocError(f"{path} lacks the column {missing[0]!r}; is it THINGS-fMRI's table?")
    return table


def voxel_labels(voxels: pd.DataFrame) -> tuple[np.ndarray, int]:
    """One ROI label per voxel from the 0/1 ROI columns (hemisphere prefix dropped), and the number of voxels in two
    ROIs (left unlabelled)."""
    columns = [c for c in voxels.columns if c not in NOT_ROIS and not str(c).startswith(NOT_ROI_PREFIXES)]
    labels = [
        np.where(voxels[column].to_numpy() == 1, re.sub(r"^[lr](?=[A-Z])", "", str(column)), "") for column in columns
    ]
    if not labels:
        raise NetflocError("the voxel metadata has no ROI column (0/1 per voxel, such as lFFA)")
    return combine_labels(labels)


def read_response_rows(path: Path, voxel_ids: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The responses of the voxels ``voxel_ids`` (their rows, in that order) × trials, and the trial column names,
    from a pandas fixed-format HDF5 table (module docstring)."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            groups = [key for key in handle if isinstance(handle[key], h5py.Group)]
            if len(groups) != 1 or "table" in handle[groups[0]]:
                raise NetflocError(
                    f"{path} is not a pandas fixed-format table with one key; rewrite it with "
                    "pandas.read_hdf(path).to_hdf(new_path, key='ResponseData')"
                )
            group = handle[groups[0]]
            blocks = [
                ([_name(item) for item in group[f"block{i}_items"][()]], group[f"block{i}_values"])
                for i in range(sum(key.endswith("_values") for key in group))
            ]
            ids = next((values[:, items.index("voxel_id")] for items, values in blocks if "voxel_id" in items), None)
            if ids is None:
                raise NetflocError(f"{path} has no voxel_id column")
            row_of = {int(voxel): row for row, voxel in enumerate(ids)}
            missing = [int(voxel) for voxel in voxel_ids if int(voxel) not in row_of]
            if missing:
                raise NetflocError(f"{path} has no row for voxel_id {missing[0]} of the voxel metadata")
            rows = np.array([row_of[int(voxel)] for voxel in voxel_ids])
            order = np.argsort(rows)
            parts, names = [], []
            for items, values in blocks:
                trials = [i for i, item in enumerate(items) if item.isdigit()]
                if values.dtype.kind == "f" and trials:
                    chunks = [values[np.sort(rows)[start : start + CHUNK]] for start in range(0, len(rows), CHUNK)]
                    read = np.concatenate(chunks)[:, trials]
                    parts.append(read[np.argsort(order)])
                    names += [items[i] for i in trials]
    except (OSError, KeyError, ValueError) as error:
        raise NetflocError(f"cannot read {path} ({first_line(error)}); is it THINGS-fMRI's ResponseData.h5?") from None
    if not parts:
        raise NetflocError(f"{path} has no trial columns (columns named by trial_id)")
    return np.concatenate(parts, axis=1), names


def _name(item: bytes | int) -> str:
    return item.decode() if isinstance(item, bytes) else str(item)


def import_things(
    root: Path,
    subject: str,
    out: Path,
    *,
    repeats: int | None = None,
    rois: Sequence[str] | None = None,
    image_map: Path | None = None,
) -> Converted:
    """THINGS-fMRI table-format responses of ``subject`` (``01`` or ``sub-01``) -> subject file ``out``."""
    prefix = f"sub-{subject.removeprefix('sub-')}"
    voxels = _csv(root / f"{prefix}_VoxelMetadata.csv", ["voxel_id"])
    stimuli = _csv(root / f"{prefix}_StimulusMetadata.csv", ["trial_id", "stimulus"])
    roi, overlapping = voxel_labels(voxels)
    roi = restrict(roi, rois, root / f"{prefix}_VoxelMetadata.csv")
    kept = np.flatnonzero(roi != "")
    values, trial_names = read_response_rows(root / f"{prefix}_ResponseData.h5", voxels["voxel_id"].to_numpy()[kept])
    stimulus_of = dict(zip(stimuli["trial_id"].astype(str), stimuli["stimulus"].astype(str), strict=True))
    absent = [name for name in trial_names if name not in stimulus_of]
    if absent:
        raise NetflocError(f"trial {absent[0]} of the responses is not in {prefix}_StimulusMetadata.csv")
    responses, images = by_image([stimulus_of[name] for name in trial_names], values.T.astype(np.float64), repeats)
    return finish(out, responses, roi[kept], overlapping, images, concept_path, image_map)


def concept_path(image: str) -> str:
    """``dog_12s.jpg`` -> ``dog/dog_12s.jpg`` (THINGS' ``object_images/<concept>/<file>``)."""
    return f"{image.rsplit('_', 1)[0]}/{image}"
