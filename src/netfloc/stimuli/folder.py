"""Stimulus folders: one sub-folder per category, checked before any model runs.

A stimulus folder looks like ``ROOT/<category>/<image>``. Every image is decoded and converted once up front
(on every core), so bad input is rejected before anything is computed or written: unreadable, corrupt or
unconvertible files, non-image files, empty categories, categories with fewer than two images (no variance),
and images whose content appears in more than one category. By default each problem is a one-line
:class:`~netfloc.errors.NetflocError` listing the offending files; ``skip_bad=True`` drops the bad files
instead and records them.

Images of any mode are converted to 8-bit RGB: grey and palette images are expanded, 16-bit and 32-bit
integer images are rescaled from their full range, and transparent pixels are composited onto mid-grey
(128), the background of the usual localizer sets.

The check can also measure each image it decodes (luminance, RMS contrast, spectral energy:
:mod:`netfloc.stimuli.measures`), so that the image statistics of a run cost no second decoding.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image, UnidentifiedImageError

from netfloc.errors import NetflocError, first_line
from netfloc.parallel import parallel_map

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".webp"})
MIN_IMAGES_PER_CATEGORY = 2
BACKGROUND_GREY = (128, 128, 128)
_MAX_LISTED = 3
_Decoded = TypeVar("_Decoded")
#: What Pillow raises for a file it cannot open, decode or convert.
_DECODE_ERRORS = (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError)


@dataclass(frozen=True)
class StimulusSet:
    """Checked image files, grouped by category in the order the categories were chosen.

    Attributes:
        root: the stimulus folder.
        categories: category names, in analysis order.
        files: for each category, its image files (sorted by name).
        hashes: SHA-256 of each file's bytes, keyed by path.
        skipped: files left out with ``skip_bad`` and why.
        measures: each image's statistics (:func:`netfloc.stimuli.measures.image_stats` of its
            :func:`stimulus_pixels`), taken by the check; empty when it was not asked to measure.
    """

    root: Path
    categories: tuple[str, ...]
    files: tuple[tuple[Path, ...], ...]
    hashes: dict[Path, str] = field(repr=False)
    skipped: tuple[tuple[Path, str], ...] = ()
    measures: dict[Path, dict[str, float]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def counts(self) -> list[int]:
        """Number of images per category."""
        return [len(group) for group in self.files]

    @property
    def n_images(self) -> int:
        return sum(self.counts)

    def items(self) -> list[tuple[Path, int]]:
        """Every image with its category index, category by category."""
        return [(path, k) for k, group in enumerate(self.files) for path in group]

    def digest(self) -> str:
        """SHA-256 over the sorted lines ``category/file-name<TAB>sha256 of the file``."""
        lines = sorted(
            f"{category}/{path.name}\t{self.hashes[path]}\n"
            for category, group in zip(self.categories, self.files, strict=True)
            for path in group
        )
        return hashlib.sha256("".join(lines).encode()).hexdigest()


def read_image(path: Path) -> Image.Image:
    """Decode ``path`` as an 8-bit RGB image (see module docstring for the conversions)."""
    return decode_image(path, to_rgb)


def decode_image(path: Path, convert: Callable[[Image.Image], _Decoded]) -> _Decoded:
    """``convert`` of the decoded image at ``path``; a file that cannot be read or converted is a one-line error
    naming it."""
    try:
        with Image.open(path) as image:
            image.load()
            return convert(image)
    except _DECODE_ERRORS as error:
        raise NetflocError(f"cannot read image {path}: {first_line(error)}; fix or remove the file") from None


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow image mode to 8-bit RGB."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        image = _rescale_to_8bit(image)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND_GREY, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def stimulus_pixels(image: Image.Image) -> np.ndarray:
    """uint8 pixels of a decoded image as the stimulus loader sees them (:func:`to_rgb`), H×W when the three
    channels are equal (greyscale source) and H×W×3 otherwise; an 8-bit greyscale image is taken as decoded (its
    RGB conversion would repeat it in all three channels)."""
    if image.mode == "L":
        return np.array(image)
    rgb = np.asarray(to_rgb(image))
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]):
        return rgb[..., 0].copy()
    return rgb


def _rescale_to_8bit(image: Image.Image) -> Image.Image:
    """Map a high-bit-depth single-channel image to 8 bits: 16-bit images by /257 (65535 -> 255);
    32-bit integer images by their type's range when values exceed 255; float images in [0, 1] by 255."""
    values = np.asarray(image, dtype=np.float64)
    if image.mode.startswith("I;16"):
        values = values / 257.0
    elif image.mode == "I" and values.max(initial=0) > 255:
        values = values / 257.0 if values.max() <= 65535 else values / (2**32 / 256)
    elif image.mode == "F" and values.max(initial=0) <= 1.0:
        values = values * 255.0
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), mode="L")


def list_categories(root: Path) -> list[str]:
    """Sub-folder names of ``root`` (hidden ones excluded), sorted."""
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def load_stimulus_set(
    root: str | Path, categories: Sequence[str] | None = None, *, skip_bad: bool = False, measure: bool = True
) -> StimulusSet:
    """Check and index the stimulus folder ``root`` (files decoded, converted and hashed on every core).

    Args:
        root: folder with one sub-folder per category.
        categories: which categories to use, in this order; default all sub-folders, sorted by name.
        skip_bad: drop unreadable or unconvertible, non-image and cross-category duplicate files instead of
            failing.
        measure: also take each image's statistics (:attr:`StimulusSet.measures`; a run's ``image_stats``).
            Which files are bad does not depend on it.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise NetflocError(
            f"stimuli folder {root} does not exist; point --stimuli at a folder with one sub-folder per category"
        )
    chosen = _choose_categories(root, categories)
    folders = [sorted(p for p in (root / category).iterdir() if not p.name.startswith(".")) for category in chosen]
    paths = [path for group in folders for path in group]
    # decoding, hashing and FFTs release the GIL
    inspected = dict(zip(paths, parallel_map(partial(_inspect, measure=measure), paths), strict=True))
    bad = [(path, problem) for path, (problem, _, _) in inspected.items() if problem]
    hashes = {path: digest for path, (problem, digest, _) in inspected.items() if not problem}
    files = [[path for path in group if path in hashes] for group in folders]
    bad.extend(_cross_category_duplicates(chosen, files, hashes))
    if bad and not skip_bad:
        shown = "; ".join(f"{path} ({why})" for path, why in bad[:_MAX_LISTED])
        more = f"; and {len(bad) - _MAX_LISTED} more" if len(bad) > _MAX_LISTED else ""
        raise NetflocError(f"{len(bad)} bad stimulus file(s): {shown}{more}; fix or remove them, or pass --skip-bad")
    dropped = {path for path, _ in bad}
    files = [[path for path in group if path not in dropped] for group in files]
    _check_counts(root, chosen, files)
    return StimulusSet(
        root=root,
        categories=tuple(chosen),
        files=tuple(tuple(group) for group in files),
        hashes={path: digest for path, digest in hashes.items() if path not in dropped},
        skipped=tuple(bad),
        measures={path: found for path, (problem, _, found) in inspected.items() if found and path not in dropped},
    )


def _choose_categories(root: Path, categories: Sequence[str] | None) -> list[str]:
    available = list_categories(root)
    if not available:
        raise NetflocError(
            f"stimuli folder {root} has no category sub-folders; put each category's images "
            "in a sub-folder named after the category"
        )
    if not categories:
        return available
    chosen = [c.strip() for c in categories if c.strip()]
    missing = [c for c in chosen if c not in available]
    if missing:
        raise NetflocError(
            f"categor{'y' if len(missing) == 1 else 'ies'} {', '.join(missing)} not found in {root}; "
            f"available: {', '.join(available)}"
        )
    duplicated = sorted({c for c in chosen if chosen.count(c) > 1})
    if duplicated:
        raise NetflocError(f"--categories names {', '.join(duplicated)} more than once")
    return chosen


def _inspect(path: Path, measure: bool) -> tuple[str | None, str | None, dict[str, float] | None]:
    """(why ``path`` is not a usable image or None, the SHA-256 of its bytes, its image statistics if
    ``measure``). The image is converted as the loader will convert it, measured or not."""
    if path.is_dir():
        return "a folder inside a category folder", None, None
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return f"not an image file (suffix {path.suffix or 'none'!r})", None, None
    try:
        with Image.open(path) as image:
            image.load()
            pixels = stimulus_pixels(image)
    except _DECODE_ERRORS as error:
        return f"unreadable: {first_line(error)}", None, None
    if not measure:
        return None, _sha256(path), None
    from netfloc.stimuli.measures import image_stats  # scipy.fft, imported only where images are measured

    return None, _sha256(path), image_stats(pixels)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cross_category_duplicates(
    categories: list[str], files: list[list[Path]], hashes: dict[Path, str]
) -> Iterator[tuple[Path, str]]:
    """Files whose content also appears in another category (every copy is reported)."""
    owners: dict[str, set[int]] = {}
    for k, group in enumerate(files):
        for path in group:
            owners.setdefault(hashes[path], set()).add(k)
    for k, group in enumerate(files):
        for path in group:
            others = sorted(owners[hashes[path]] - {k})
            if others:
                names = ", ".join(categories[j] for j in others)
                yield path, f"same content as an image in category {names}"


def _check_counts(root: Path, categories: list[str], files: list[list[Path]]) -> None:
    for category, group in zip(categories, files, strict=True):
        if not group:
            raise NetflocError(
                f"category {category!r} ({root / category}) holds no usable images; "
                "add images or leave it out with --categories"
            )
        if len(group) < MIN_IMAGES_PER_CATEGORY:
            raise NetflocError(
                f"category {category!r} ({root / category}) has only {len(group)} image; "
                f"at least {MIN_IMAGES_PER_CATEGORY} per category are needed to estimate a variance"
            )
