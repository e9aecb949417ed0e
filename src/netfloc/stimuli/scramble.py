"""Scrambled control images: Fourier phase scrambling and grid (tile) scrambling, per image and per folder.

Phase scrambling keeps each image's amplitude spectrum and mean luminance and randomises its phase, the
standard control for low-level image statistics (e.g. Dakin et al. 2002, Vision Res 42:1661; the SHINE
toolbox, Willenbockel et al. 2010, Behav Res Methods 42:671). Grid scrambling permutes square tiles and so
keeps the pixel histogram exactly while destroying the global configuration.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import numpy as np

from netfloc.errors import NetflocError
from netfloc.files import atomic_directory, marker_owner
from netfloc.progress import track
from netfloc.stimuli._common import list_images, read_pixels, save_png, to_dtype

ScrambleMethod = Literal["phase", "grid"]
SCRAMBLE_METHODS: tuple[str, ...] = ("phase", "grid")
RECORD_FILE = ".netfloc-scramble.json"


def image_rng(seed: int, key: str) -> np.random.Generator:
    """Generator for one image: ``SeedSequence([seed, int(sha256(key)[:16 bytes])])``.

    The key (e.g. a relative path) is hashed with SHA-256, not Python's salted ``hash``, so the stream is the
    same in every process and platform; different seeds or keys give independent streams.
    """
    if seed < 0:
        raise NetflocError(f"seed must be a non-negative integer, got {seed}; pass e.g. --seed 0")
    digest = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:16], "little")
    return np.random.default_rng(np.random.SeedSequence([seed, digest]))


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim not in (2, 3) or min(image.shape[:2]) < 2:
        raise NetflocError(f"expected an H×W or H×W×C image of at least 2×2 pixels, got shape {image.shape}")
    if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise NetflocError(f"expected integer or float pixels, got dtype {image.dtype}")
    return image


def phase_scramble(image: np.ndarray, rng: np.random.Generator | int) -> np.ndarray:
    """Fourier phase scrambling: ``ifft2(|F| · exp(i(∠F + ∠fft2(w))))`` with ``w`` real white noise.

    The random phase is the phase of the FFT of a real Gaussian white-noise image, so it is Hermitian
    antisymmetric and the result is real (Dakin et al. 2002; SHINE). Its DC phase is set to 0, so the mean
    luminance is kept; the amplitude spectrum is kept exactly. Colour images (H×W×C) get ONE phase field for
    all channels, which keeps the phase relations between channels. Integer inputs are rounded and clipped to
    their dtype's range (e.g. 0–255 for uint8): for high-contrast images the clipping changes the mean and
    spectrum slightly. Float inputs come back in the same dtype, unclipped.
    """
    image = _check_image(image)
    rng = np.random.default_rng(rng)
    pixels = image.astype(np.float64)
    height, width = pixels.shape[:2]
    noise_phase = np.angle(np.fft.fft2(rng.standard_normal((height, width))))
    noise_phase[0, 0] = 0.0
    if pixels.ndim == 3:
        noise_phase = noise_phase[:, :, np.newaxis]
    spectrum = np.fft.fft2(pixels, axes=(0, 1))
    scrambled = np.fft.ifft2(np.abs(spectrum) * np.exp(1j * (np.angle(spectrum) + noise_phase)), axes=(0, 1))
    return to_dtype(scrambled.real, image.dtype)


def grid_scramble(image: np.ndarray, tile: int, rng: np.random.Generator | int) -> np.ndarray:
    """Cut the image into ``tile``×``tile`` squares and permute them at random.

    Only whole tiles are permuted: when the height or width is not a multiple of ``tile``, the remainder strip
    at the bottom and right stays in place, unpermuted. The pixel histogram is kept exactly.
    """
    image = _check_image(image)
    rng = np.random.default_rng(rng)
    height, width = image.shape[:2]
    if tile < 1 or (height // tile) * (width // tile) < 2:
        raise NetflocError(
            f"tile size {tile} gives fewer than 2 tiles for a {height}×{width} image; "
            f"use a tile between 1 and {max(height, width) // 2}"
        )
    rows, cols = height // tile, width // tile
    trailing = image.shape[2:]
    tiles = (
        image[: rows * tile, : cols * tile]
        .reshape(rows, tile, cols, tile, *trailing)
        .swapaxes(1, 2)
        .reshape(rows * cols, tile, tile, *trailing)
    )
    shuffled = tiles[rng.permutation(rows * cols)]
    result = image.copy()
    result[: rows * tile, : cols * tile] = (
        shuffled.reshape(rows, cols, tile, tile, *trailing).swapaxes(1, 2).reshape(rows * tile, cols * tile, *trailing)
    )
    return result


def scramble_image(
    image: np.ndarray, method: ScrambleMethod, rng: np.random.Generator | int, tile: int = 16
) -> np.ndarray:
    """Dispatch to :func:`phase_scramble` or :func:`grid_scramble` (``tile`` is used by ``grid`` only)."""
    if method == "phase":
        return phase_scramble(image, rng)
    if method == "grid":
        return grid_scramble(image, tile, rng)
    raise NetflocError(f"unknown scramble method {method!r}; use one of {', '.join(SCRAMBLE_METHODS)}")


def scramble_folder(
    src: Path,
    dest: Path,
    method: ScrambleMethod = "phase",
    tile: int = 16,
    seed: int = 0,
    *,
    force: bool = False,
    progress: bool = False,
) -> list[Path]:
    """Scramble every image under ``src`` into ``dest`` with the same relative paths, written as PNG.

    Each image gets its own generator :func:`image_rng` ``(seed, relative path)``, so the output is
    deterministic for a seed, independent of processing order, and differs across seeds. Output files keep
    the relative path with the suffix replaced by ``.png`` (lossless, so scrambling is not blurred by JPEG
    artefacts). ``dest`` is written atomically (temporary folder, then rename) and an existing non-empty
    ``dest`` is refused unless ``force`` (which only replaces a folder this function wrote: it leaves a hidden
    record ``.netfloc-scramble.json`` of source, method, tile and seed). Returns the written paths.
    """
    src, dest = Path(src), Path(dest)
    if method not in SCRAMBLE_METHODS:
        raise NetflocError(f"unknown scramble method {method!r}; use one of {', '.join(SCRAMBLE_METHODS)}")
    if not src.is_dir():
        raise NetflocError(f"source folder {src} does not exist; pass a folder of images")
    src_abs, dest_abs = src.resolve(), dest.resolve()
    if dest_abs.is_relative_to(src_abs) or src_abs.is_relative_to(dest_abs):
        raise NetflocError(f"destination {dest} overlaps source {src}; choose a destination outside the source")
    files = list_images(src)
    if not files:
        raise NetflocError(f"no image files found under {src}; expected .jpg/.png/... files")
    outputs: dict[str, Path] = {}
    for path in files:
        out_rel = path.relative_to(src).with_suffix(".png").as_posix()
        if out_rel in outputs:
            raise NetflocError(f"{path} and {outputs[out_rel]} would both be written as {out_rel}; rename one of them")
        outputs[out_rel] = path
    with atomic_directory(dest, force, marker_owner(RECORD_FILE)) as tmp:
        for out_rel, path in track(outputs.items(), f"{method}-scrambling", enabled=progress):
            rng = image_rng(seed, path.relative_to(src).as_posix())
            save_png(scramble_image(read_pixels(path), method, rng, tile), tmp / out_rel)
        record = {"source": str(src_abs), "method": method, "tile": tile, "seed": seed, "files": len(outputs)}
        (tmp / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return [dest / out_rel for out_rel in outputs]
