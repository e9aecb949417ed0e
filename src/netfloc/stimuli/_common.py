"""Helpers shared by the stimulus tools: image listing and I/O, hashing, safe paths, atomic folders."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from netfloc.errors import NetflocError
from netfloc.stimuli.folder import IMAGE_SUFFIXES, decode_image, stimulus_pixels


def natural_key(text: str) -> tuple:
    """Sort key that orders embedded numbers numerically (``adult-2`` before ``adult-10``)."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text))


def list_images(root: Path) -> list[Path]:
    """Image files (by suffix) under ``root``, recursively, skipping hidden entries, in natural order."""
    found = [
        path
        for path in root.rglob("*")
        if path.is_file()
        and path.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
    ]
    return sorted(found, key=lambda p: natural_key(p.relative_to(root).as_posix()))


def read_pixels(path: Path) -> np.ndarray:
    """uint8 pixels of the image file ``path`` as the stimulus loader sees them
    (:func:`netfloc.stimuli.folder.stimulus_pixels`); an unreadable file is a one-line error naming it."""
    return decode_image(path, stimulus_pixels)


def to_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round and clip float values to an integer dtype's range; float dtypes are cast without clipping."""
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return np.clip(np.rint(values), info.min, info.max).astype(dtype)
    return values.astype(dtype)


def save_png(pixels: np.ndarray, path: Path) -> None:
    """Write a uint8 H×W or H×W×3 array as a PNG (lossless), creating parent folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="PNG")


def safe_join(root: Path, relative: str, where: str) -> Path:
    """``root / relative`` for a POSIX relative path that stays inside ``root``; else NetflocError.

    Refuses absolute paths, backslashes, empty, ``.`` and ``..`` components (zip-slip / path traversal).
    """
    parts = PurePosixPath(relative).parts
    if (
        not relative
        or "\\" in relative
        or relative.startswith("/")
        or any(part in ("", ".", "..") for part in parts)
        or ":" in parts[0]
    ):
        raise NetflocError(
            f"refusing path {relative!r} in {where}: it would escape the destination folder; "
            "use plain relative paths like 'category/file.jpg'"
        )
    target = root.joinpath(*parts)
    if not target.resolve().is_relative_to(root.resolve()):
        raise NetflocError(f"refusing path {relative!r} in {where}: it resolves outside {root} (symbolic link?)")
    return target
