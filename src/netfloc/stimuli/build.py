"""Build the study's six-category stimulus set from the fLoc images.

Categories (fLoc sources): faces (adult + child), bodies (body + limb), scenes (house + corridor), words
(word), and two scrambled controls made from exactly the scene and word images that were sampled:
scrambled-scenes and scrambled-words (Fourier phase scrambling by default, see
:mod:`netfloc.stimuli.scramble`).
fLoc: Stigliani, Weiner & Grill-Spector 2015, J Neurosci 35(36):12412-12424.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from netfloc.errors import NetflocError
from netfloc.files import atomic_directory, marker_owner, sha256_file
from netfloc.progress import track
from netfloc.stimuli._common import list_images, read_pixels, save_png
from netfloc.stimuli.imagestats import equalize_luminance_contrast
from netfloc.stimuli.scramble import SCRAMBLE_METHODS, ScrambleMethod, image_rng, scramble_image

MANIFEST_FILE = "manifest.csv"

#: Intact categories and the fLoc categories pooled into each.
PAPER_SOURCES: dict[str, tuple[str, ...]] = {
    "faces": ("adult", "child"),
    "bodies": ("body", "limb"),
    "scenes": ("house", "corridor"),
    "words": ("word",),
}
#: Scrambled categories and the intact category whose sampled images they scramble.
PAPER_SCRAMBLED: dict[str, str] = {"scrambled-scenes": "scenes", "scrambled-words": "words"}
PAPER_CATEGORIES: tuple[str, ...] = (*PAPER_SOURCES, *PAPER_SCRAMBLED)
MANIFEST_COLUMNS: tuple[str, ...] = (
    "category",
    "output_file",
    "source_file",
    "source_category",
    "transform",
    "scramble_method",
    "seed",
    "sha256",
)


def _sample_sources(floc_dir: Path, category: str, n: int, seed: int) -> list[Path]:
    """``n`` files drawn without replacement from the pooled fLoc categories, in natural order."""
    pool: list[Path] = []
    for source in PAPER_SOURCES[category]:
        folder = floc_dir / source
        if not folder.is_dir():
            raise NetflocError(
                f"fLoc folder {floc_dir} has no '{source}' sub-folder (needed for {category}); "
                "fetch it with `netfloc stimuli fetch floc` and pass its folder with --floc"
            )
        pool.extend(path for path in list_images(folder) if path.parent == folder)
    if len(pool) < n:
        raise NetflocError(
            f"{category} ({' + '.join(PAPER_SOURCES[category])} in {floc_dir}) has {len(pool)} images, fewer "
            f"than the {n} requested; lower --per-category to at most {len(pool)}"
        )
    chosen = image_rng(seed, f"sample/{category}").choice(len(pool), size=n, replace=False)
    return [pool[k] for k in sorted(chosen)]


def _fit(path: Path, size: int) -> np.ndarray:
    """Centre-crop to a square and resize to ``size``×``size``, Lanczos filter (Pillow ``ImageOps.fit``)."""
    return np.asarray(ImageOps.fit(Image.fromarray(read_pixels(path)), (size, size), Image.Resampling.LANCZOS))


def build_paper_set(
    floc_dir: str | Path,
    out_dir: str | Path,
    per_category: int = 144,
    size: int = 256,
    seed: int = 0,
    equalize: bool = False,
    *,
    scramble_method: ScrambleMethod = "phase",
    tile: int = 16,
    force: bool = False,
    progress: bool = False,
) -> pd.DataFrame:
    """Write the six paper categories to ``out_dir`` and return the manifest (also ``out_dir/manifest.csv``).

    For each intact category, ``per_category`` images are sampled without replacement from the pooled fLoc
    folders with a generator derived from ``seed`` and the category name; each is centre-cropped to a square
    and resized to ``size``×``size`` (Lanczos). With ``equalize``, the intact images' luminance mean and std
    are matched to the set's averages (SHINE; Willenbockel et al. 2010). The scrambled categories scramble
    exactly the sampled (and, if asked, equalised) scene and word images, one per source image, each with
    :func:`~netfloc.stimuli.scramble.image_rng` ``(seed, output path)``. Images are saved as PNG (lossless;
    greyscale sources stay single-channel, readers convert to RGB) at ``<category>/<source stem>.png``. The
    folder is written atomically; an existing non-empty ``out_dir`` is refused unless ``force``.
    """
    floc_dir, out_dir = Path(floc_dir), Path(out_dir)
    if not floc_dir.is_dir():
        raise NetflocError(f"fLoc folder {floc_dir} does not exist; run `netfloc stimuli fetch floc` or fix --floc")
    if per_category < 2:
        raise NetflocError(f"per_category must be at least 2 (a category needs variance), got {per_category}")
    if size < 8:
        raise NetflocError(f"size must be at least 8 pixels, got {size}; pass e.g. --size 256")
    if scramble_method not in SCRAMBLE_METHODS:
        raise NetflocError(f"unknown scramble method {scramble_method!r}; use one of {', '.join(SCRAMBLE_METHODS)}")
    if scramble_method == "grid" and not 1 <= tile <= size // 2:
        raise NetflocError(f"tile {tile} does not fit {size}-pixel images twice; use a tile from 1 to {size // 2}")
    sources = {category: _sample_sources(floc_dir, category, per_category, seed) for category in PAPER_SOURCES}
    items = [(category, path) for category, paths in sources.items() for path in paths]
    pixels = [_fit(path, size) for _, path in track(items, "resizing fLoc images", enabled=progress)]
    transform = f"centre-crop + resize {size}x{size} lanczos"
    if equalize:
        pixels = equalize_luminance_contrast(pixels)
        transform += " + luminance/contrast equalised"
    scramble_name = "phase scramble" if scramble_method == "phase" else f"grid scramble tile={tile}"
    jobs = [(category, path, image, transform, "") for (category, path), image in zip(items, pixels, strict=True)]
    jobs += [
        (scrambled, path, image, f"{transform} + {scramble_name}", scramble_method)
        for scrambled, intact in PAPER_SCRAMBLED.items()
        for (category, path), image in zip(items, pixels, strict=True)
        if category == intact
    ]
    rows = []
    with atomic_directory(out_dir, force, marker_owner(MANIFEST_FILE)) as tmp:
        for category, path, image, how, method in track(jobs, "writing paper set", enabled=progress):
            output = f"{category}/{path.stem}.png"
            if (tmp / output).exists():
                raise NetflocError(f"two sources named {path.stem} in {floc_dir}; rename one so outputs stay unique")
            if method:
                image = scramble_image(image, method, image_rng(seed, output), tile)
            save_png(image, tmp / output)
            rows.append(
                {
                    "category": category,
                    "output_file": output,
                    "source_file": path.relative_to(floc_dir).as_posix(),
                    "source_category": path.parent.name,
                    "transform": how,
                    "scramble_method": method,
                    "seed": seed,
                    "sha256": sha256_file(tmp / output),
                }
            )
        manifest = pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
        manifest.to_csv(tmp / MANIFEST_FILE, index=False)
    return manifest
