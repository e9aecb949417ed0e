"""``netfloc brain import``: subject files (:mod:`netfloc.stimuli.responses`) from local copies of public datasets.

netfloc never downloads brain data (NSD, THINGS-fMRI and Algonauts may not be redistributed): each converter reads
the dataset's own layout from a folder the user has.

- ``algonauts2023`` (Gifford et al. 2023): ``DIR/<subject>/training_split/training_fmri/{lh,rh}_training_fmri.npy``
  (images × vertices, already averaged over repeats), the image names from ``training_split/training_images/``
  (sorted, one per row) and the labels of ``roi_masks/{lh,rh}.floc-{faces,bodies,places,words}_challenge_space.npy``
  (integer per vertex). The ``mapping_*.npy`` files are pickles and are never read: the labels are NSD's fLoc
  tables (:data:`FLOC_LABELS`).
- ``nsd`` (Allen et al. 2022): single-trial betas ``DIR/nsddata_betas/ppdata/subjNN/<space>/betas_fithrf_GLMsingle/
  betas_sessionSS.nii.gz`` (X × Y × Z × 750 trials, int16, percent signal change × 300: divided by 300 here), the
  ROIs ``DIR/nsddata/ppdata/subjNN/<space>/roi/floc-*.nii.gz`` and the trial order of
  ``DIR/nsddata/experiments/nsd/nsd_expdesign.mat`` (``masterordering``: trial -> 1-based index into the subject's
  10,000 images, ``subjectim``: -> 1-based NSD id); images are named ``nsdNNNNN.png`` by NSD id.
- ``things-fmri`` (Hebart et al. 2023): :mod:`netfloc.stimuli.things_fmri`.

Common rules. ROI labels lose their hemisphere (both hemispheres of FFA-1 are one ROI); a voxel labelled by two
ROIs is left out; only labelled voxels are kept (``rois`` keeps only these labels). Trials of one image are its
repeats: with ``repeats`` R (default: the largest number of trials of any image) the images with at least R trials
are kept, with their first R trials (R ≥ 2: repeats × images × voxels) or the mean of all their trials (R = 1).
Image paths are ``<category>/<file>``: by default ``nsd/<file>`` (NSD, Algonauts) or ``<concept>/<file>``
(THINGS); an ``image_map`` CSV with columns ``image,path`` maps the dataset's image names to paths of the user's
stimulus folder (images it does not list are left out).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from netfloc.errors import NetflocError, first_line
from netfloc.stimuli.responses import save_subject

#: NSD's fLoc ROI label tables (``nsddata/freesurfer/subjNN/label/floc-*.mgz.ctab``), shared by Algonauts 2023.
FLOC_LABELS: dict[str, dict[int, str]] = {
    "floc-faces": {1: "OFA", 2: "FFA-1", 3: "FFA-2", 4: "mTL-faces", 5: "aTL-faces"},
    "floc-bodies": {1: "EBA", 2: "FBA-1", 3: "FBA-2", 4: "mTL-bodies"},
    "floc-places": {1: "OPA", 2: "PPA", 3: "RSC"},
    "floc-words": {1: "OWFA", 2: "VWFA-1", 3: "VWFA-2", 4: "mfs-words", 5: "mTL-words"},
}
NSD_TRIALS_PER_SESSION = 750
NSD_SCALE = 300.0


@dataclass(frozen=True)
class Converted:
    """What a converter wrote: the file, its shape, its ROIs (voxels each) and what was left out."""

    path: Path
    repeats: int
    n_images: int
    rois: dict[str, int]
    overlapping: int
    unmapped: int

    def summary(self) -> str:
        rois = ", ".join(f"{label} ({n})" for label, n in self.rois.items())
        return (
            f"wrote {self.path}: {self.n_images} images × {sum(self.rois.values())} voxels, {self.repeats} repeat(s); "
            f"ROIs {rois}; {self.overlapping} voxel(s) in two ROIs and {self.unmapped} unmapped image(s) left out"
        )


def load_array(path: Path) -> np.ndarray:
    """A ``.npy`` file read without pickle, or a one-line error naming it."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise NetflocError(f"cannot read {path} ({first_line(error)}); is DIR the dataset's folder?") from None


def integer_labels(values: np.ndarray, table: dict[int, str]) -> np.ndarray:
    """Names of integer ROI codes (codes not in ``table``, such as 0 and −1, become ``""``)."""
    codes = np.rint(np.asarray(values, dtype=np.float64)).astype(np.int64).ravel()
    names = np.full(codes.shape, "", dtype=object)
    for code, name in table.items():
        names[codes == code] = name
    return names.astype(str)


def combine_labels(label_sets: Sequence[np.ndarray]) -> tuple[np.ndarray, int]:
    """One label per voxel from several label arrays (``""`` for none); a voxel labelled twice gets ``""``.
    Returns the labels and the number of such voxels."""
    roi = np.full(len(label_sets[0]), "", dtype=object)
    for labels in label_sets:
        roi = np.where(labels != "", labels, roi)
    labelled = sum((labels != "").astype(int) for labels in label_sets)
    return np.where(labelled == 1, roi, "").astype(str), int((labelled > 1).sum())


def restrict(roi: np.ndarray, rois: Sequence[str] | None, source: Path) -> np.ndarray:
    """``roi`` with only the labels in ``rois`` kept; a one-line error for a label the data does not have."""
    if rois is None:
        return roi
    found = sorted(set(roi) - {""})
    absent = [label for label in rois if label not in found]
    if absent:
        raise NetflocError(f"--rois {absent[0]} is not a ROI of {source}; its ROIs: {', '.join(found)}")
    return np.where(np.isin(roi, list(rois)), roi, "")


def by_image(trial_images: Sequence[str], trials: np.ndarray, repeats: int | None) -> tuple[np.ndarray, list[str]]:
    """Trials (T × V) grouped by image into R × N × V responses and the N image names (module docstring)."""
    names = np.asarray(trial_images, dtype=str)
    images, counts = np.unique(names, return_counts=True)
    wanted = int(counts.max()) if repeats is None else repeats
    if wanted < 1:
        raise NetflocError(f"--repeats must be at least 1, not {wanted}")
    kept = [image for image, count in zip(images, counts, strict=True) if count >= wanted]
    if not kept:
        raise NetflocError(f"no image was shown {wanted} times (at most {counts.max()}); lower --repeats")
    rows = [np.flatnonzero(names == image) for image in kept]
    if wanted == 1:
        return np.stack([trials[row].mean(axis=0) for row in rows])[None], [str(image) for image in kept]
    return np.stack([trials[row[:wanted]] for row in rows], axis=1), [str(image) for image in kept]


def read_image_map(path: Path) -> dict[str, str]:
    """``image -> path`` from a CSV with columns ``image`` and ``path``."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise NetflocError(f"cannot read --image-map {path} ({first_line(error)})") from None
    if not rows or not {"image", "path"} <= set(rows[0]):
        raise NetflocError(f"--image-map {path} needs the columns image and path (category/filename)")
    return {row["image"]: row["path"] for row in rows}


def finish(
    out: Path,
    responses: np.ndarray,
    roi: np.ndarray,
    overlapping: int,
    images: Sequence[str],
    default_path: Callable[[str], str],
    image_map: Path | None,
) -> Converted:
    """Keep the labelled voxels and the mapped images, write the subject file, and say what was written."""
    keep = roi != ""
    if not keep.any():
        raise NetflocError(f"no voxel is labelled by the chosen ROIs; nothing to write to {out}")
    mapping = read_image_map(image_map) if image_map else None
    paths = [mapping.get(image) if mapping is not None else default_path(image) for image in images]
    rows = [i for i, path in enumerate(paths) if path]
    if not rows:
        raise NetflocError(f"--image-map {image_map} names none of the dataset's {len(images)} images")
    save_subject(out, responses[:, rows][:, :, keep], roi[keep], [paths[i] for i in rows])
    labels, counts = np.unique(roi[keep], return_counts=True)
    return Converted(
        out,
        responses.shape[0],
        len(rows),
        dict(zip(labels.tolist(), counts.tolist(), strict=True)),
        overlapping,
        len(images) - len(rows),
    )


def import_algonauts(
    root: Path, subject: str, out: Path, rois: Sequence[str] | None = None, image_map: Path | None = None
) -> Converted:
    """Algonauts 2023 training data of ``subject`` (e.g. ``subj01``) -> subject file ``out`` (module docstring)."""
    base = root / subject
    fmri = base / "training_split" / "training_fmri"
    folder = base / "training_split" / "training_images"
    if not folder.is_dir():
        raise NetflocError(f"{folder} does not exist; pass the Algonauts 2023 folder that holds {subject}/")
    images = sorted(path.name for path in folder.iterdir() if path.suffix.lower() == ".png")
    hemispheres = [load_array(fmri / f"{side}_training_fmri.npy") for side in ("lh", "rh")]
    if any(values.ndim != 2 or values.shape[0] != len(images) for values in hemispheres):
        raise NetflocError(f"{fmri}: the fMRI arrays must have one row per image of {folder} ({len(images)})")
    labels = []
    for name, table in FLOC_LABELS.items():
        per_side = [
            integer_labels(load_array(base / "roi_masks" / f"{side}.{name}_challenge_space.npy"), table)
            for side in ("lh", "rh")
        ]
        if any(len(side) != values.shape[1] for side, values in zip(per_side, hemispheres, strict=True)):
            raise NetflocError(f"{base / 'roi_masks'}: the {name} masks do not match the fMRI arrays' vertices")
        labels.append(np.concatenate(per_side))
    roi, overlapping = combine_labels(labels)
    responses = np.concatenate(hemispheres, axis=1)[None].astype(np.float64)
    return finish(out, responses, restrict(roi, rois, base), overlapping, images, lambda name: f"nsd/{name}", image_map)


def import_nsd(
    root: Path,
    subject: int,
    out: Path,
    *,
    sessions: Sequence[int] | None = None,
    repeats: int | None = None,
    rois: Sequence[str] | None = None,
    image_map: Path | None = None,
    space: str = "func1pt8mm",
) -> Converted:
    """NSD single-trial betas of ``subject`` (1–8) -> subject file ``out`` (module docstring)."""
    from scipy.io import loadmat

    name = f"subj{subject:02d}"
    try:
        design = loadmat(root / "nsddata" / "experiments" / "nsd" / "nsd_expdesign.mat")
        order, images = design["masterordering"].ravel().astype(np.int64), design["subjectim"].astype(np.int64)
    except (OSError, ValueError, KeyError) as error:
        raise NetflocError(f"cannot read NSD's nsd_expdesign.mat under {root} ({first_line(error)})") from None
    if not 1 <= subject <= images.shape[0]:
        raise NetflocError(f"--subject must be between 1 and {images.shape[0]}, not {subject}")
    roi_dir = root / "nsddata" / "ppdata" / name / space / "roi"
    volumes = [_nifti(roi_dir / f"{key}.nii.gz") for key in FLOC_LABELS]
    roi, overlapping = combine_labels(
        [integer_labels(volume, table) for volume, table in zip(volumes, FLOC_LABELS.values(), strict=True)]
    )
    roi = restrict(roi, rois, roi_dir)
    voxels = np.flatnonzero(roi != "")
    betas = root / "nsddata_betas" / "ppdata" / name / space / "betas_fithrf_GLMsingle"
    files = sorted(betas.glob("betas_session*.nii.gz"))
    numbers = [int(path.name.removeprefix("betas_session").removesuffix(".nii.gz")) for path in files]
    chosen = [(n, path) for n, path in zip(numbers, files, strict=True) if sessions is None or n in sessions]
    if not chosen:
        raise NetflocError(f"no betas_session*.nii.gz of the chosen sessions in {betas}")
    trials, names = [], []
    for session, path in chosen:
        data = _nifti(path)
        if data.shape[:3] != volumes[0].shape or data.shape[3:] != (NSD_TRIALS_PER_SESSION,):
            raise NetflocError(
                f"{path} is not X × Y × Z × {NSD_TRIALS_PER_SESSION} in the ROIs' space {volumes[0].shape}"
            )
        trials.append(data.reshape(-1, NSD_TRIALS_PER_SESSION)[voxels].T / NSD_SCALE)
        first = (session - 1) * NSD_TRIALS_PER_SESSION
        if first + NSD_TRIALS_PER_SESSION > len(order):
            raise NetflocError(f"{path}: session {session} is beyond the {len(order)} trials of nsd_expdesign.mat")
        ids = images[subject - 1, order[first : first + NSD_TRIALS_PER_SESSION] - 1]
        names += [f"nsd{image:05d}.png" for image in ids]
    responses, kept = by_image(names, np.concatenate(trials), repeats)
    return finish(out, responses, roi[voxels], overlapping, kept, lambda image: f"nsd/{image}", image_map)


def _nifti(path: Path) -> np.ndarray:
    """The data of a NIfTI file (as stored), or a one-line error naming it."""
    import nibabel as nib

    try:
        return np.asanyarray(nib.load(path).dataobj)
    except (OSError, ValueError, EOFError) as error:
        raise NetflocError(f"cannot read {path} ({first_line(error)}); is DIR NSD's root folder?") from None
