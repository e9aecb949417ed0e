"""Shared fixtures: small stimulus folders written on the fly, and the fLoc folder when present; a check that a
report page closes every element it opens."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
FLOC = REPO.parent / "shared" / "stimuli" / "floc"


def assert_tags_balanced(document: str) -> None:
    """Every element of an HTML page but ``<meta>`` and ``<img>`` is closed as often as it is opened (user text is
    escaped, so each ``<`` left in the page is the template's markup)."""
    found = re.findall(r"<(/?)([a-z][a-z0-9]*)\b", document)
    opened = Counter(tag for close, tag in found if not close and tag not in ("meta", "img"))
    assert opened == Counter(tag for close, tag in found if close)


def write_noise_images(root: Path, counts: dict[str, int], size: int = 32, seed: int = 0) -> Path:
    """``root/<category>/<i>.png`` with uniform noise, ``counts[category]`` images each."""
    rng = np.random.default_rng(seed)
    for category, n in counts.items():
        folder = root / category
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"img{i:03d}.png")
    return root


@pytest.fixture
def noise_stimuli(tmp_path: Path) -> Path:
    return write_noise_images(tmp_path / "stimuli", {"faces": 6, "bodies": 5, "scenes": 7})


@pytest.fixture
def floc_dir() -> Path:
    if not FLOC.is_dir():
        pytest.skip(f"fLoc stimuli not present at {FLOC}")
    return FLOC
