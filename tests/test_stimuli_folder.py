"""Stimulus folders: image modes, and every kind of bad input as a one-line error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from netfloc.errors import NetflocError
from netfloc.stimuli import load_stimulus_set, read_image

from .conftest import write_noise_images


def one_line_error(function, *args, match: str, **kwargs) -> str:
    with pytest.raises(NetflocError, match=match) as error:
        function(*args, **kwargs)
    message = str(error.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("mode", "suffix", "pixels", "expected_grey"),
    [
        ("L", ".png", np.full((8, 8), 200, np.uint8), 200),
        ("L", ".bmp", np.full((8, 8), 10, np.uint8), 10),
        ("RGB", ".jpg", np.full((8, 8, 3), 128, np.uint8), 128),
        ("RGB", ".tiff", np.full((8, 8, 3), 77, np.uint8), 77),
        ("I;16", ".png", np.full((8, 8), 65535, np.uint16), 255),
        ("I;16", ".tif", np.full((8, 8), 257 * 100, np.uint16), 100),
    ],
)
def test_image_modes_become_8bit_rgb(tmp_path, mode, suffix, pixels, expected_grey):
    path = tmp_path / f"image{suffix}"
    Image.fromarray(pixels).save(path)
    image = read_image(path)
    assert image.mode == "RGB" and image.size == (8, 8)
    assert abs(int(np.asarray(image)[4, 4, 0]) - expected_grey) <= 1


def test_palette_and_transparent_images(tmp_path):
    palette = Image.fromarray(np.full((4, 4, 3), (255, 0, 0), np.uint8)).convert("P")
    palette.save(tmp_path / "p.png")
    assert tuple(np.asarray(read_image(tmp_path / "p.png"))[0, 0]) == (255, 0, 0)
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[:2] = (0, 0, 255, 255)  # opaque blue top half, transparent bottom half
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    pixels = np.asarray(read_image(tmp_path / "a.png"))
    assert tuple(pixels[0, 0]) == (0, 0, 255) and tuple(pixels[3, 3]) == (128, 128, 128)


def test_categories_are_sorted_by_default_and_selectable(noise_stimuli):
    stimuli = load_stimulus_set(noise_stimuli)
    assert stimuli.categories == ("bodies", "faces", "scenes") and stimuli.counts == [5, 6, 7]
    chosen = load_stimulus_set(noise_stimuli, ["scenes", "faces"])
    assert chosen.categories == ("scenes", "faces") and chosen.n_images == 13
    assert chosen.digest() != stimuli.digest()


def test_missing_stimuli_folder(tmp_path):
    one_line_error(load_stimulus_set, tmp_path / "nope", match="does not exist")


def test_empty_category(noise_stimuli):
    (noise_stimuli / "words").mkdir()
    message = one_line_error(load_stimulus_set, noise_stimuli, match="holds no usable images")
    assert "'words'" in message


def test_category_with_one_image(tmp_path):
    root = write_noise_images(tmp_path / "s", {"faces": 3, "words": 1})
    message = one_line_error(load_stimulus_set, root, match="only 1 image")
    assert "'words'" in message


def test_corrupt_image_named_and_skippable(noise_stimuli):
    bad = noise_stimuli / "faces" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    message = one_line_error(load_stimulus_set, noise_stimuli, match="bad stimulus file")
    assert str(bad) in message and "--skip-bad" in message
    stimuli = load_stimulus_set(noise_stimuli, skip_bad=True)
    assert stimuli.counts == [5, 6, 7] and stimuli.skipped[0][0] == bad
    assert set(stimuli.measures) == set(stimuli.hashes) == set(stimuli.files[0] + stimuli.files[1] + stimuli.files[2])


def test_non_image_file_and_cross_category_duplicate(noise_stimuli):
    (noise_stimuli / "faces" / "notes.txt").write_text("hello")
    one_line_error(load_stimulus_set, noise_stimuli, match="not an image file")
    (noise_stimuli / "faces" / "notes.txt").unlink()
    copy = noise_stimuli / "scenes" / "copy.png"
    copy.write_bytes((noise_stimuli / "faces" / "img000.png").read_bytes())
    one_line_error(load_stimulus_set, noise_stimuli, match="same content as an image in category")
    kept = load_stimulus_set(noise_stimuli, skip_bad=True)
    assert copy not in kept.measures and (noise_stimuli / "faces" / "img000.png") not in kept.measures
    assert set(kept.measures) == set(kept.hashes)


def test_unknown_category(noise_stimuli: Path):
    message = one_line_error(load_stimulus_set, noise_stimuli, ["faces", "cars"], match="cars not found")
    assert "available: bodies, faces, scenes" in message
