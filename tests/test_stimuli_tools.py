"""Scrambling, image statistics, equalisation, the paper set builder and the `netfloc stimuli` CLI."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter
from typer.testing import CliRunner

from netfloc.cli.stimuli import app
from netfloc.errors import NetflocError
from netfloc.stimuli.build import MANIFEST_COLUMNS, PAPER_CATEGORIES, build_paper_set
from netfloc.stimuli.imagestats import category_image_stats, equalize_luminance_contrast
from netfloc.stimuli.measures import FREQUENCY_BANDS, MEASURES, band_energy, image_stats, luminance
from netfloc.stimuli.scramble import grid_scramble, phase_scramble, scramble_folder

SHARED_FLOC = Path(__file__).resolve().parents[2] / "shared" / "stimuli" / "floc"


def smooth_image(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """A natural-looking uint8 image (blurred noise, mean ~128, std ~30, little clipping)."""
    noise = np.random.default_rng(seed).standard_normal(shape)
    blurred = gaussian_filter(noise, sigma=(2, 2, 0)[: len(shape)])
    return np.clip(128 + 30 * blurred / blurred.std(), 0, 255).astype(np.uint8)


def amplitude(image: np.ndarray) -> np.ndarray:
    return np.abs(np.fft.fft2(image.astype(np.float64), axes=(0, 1)))


@pytest.mark.parametrize("shape", [(64, 48), (40, 64, 3)], ids=["grey", "colour"])
def test_phase_scramble_keeps_amplitude_spectrum_and_mean(shape):
    image = smooth_image(shape)
    out = phase_scramble(image, np.random.default_rng(1))
    assert out.shape == image.shape and out.dtype == np.uint8
    assert not np.array_equal(out, image)
    r = np.corrcoef(amplitude(image).ravel(), amplitude(out).ravel())[0, 1]
    assert r > 0.999
    assert np.allclose(out.mean(axis=(0, 1)), image.mean(axis=(0, 1)), atol=0.5)


def test_phase_scramble_float_is_exact_and_shares_one_phase_field_across_channels():
    image = smooth_image((32, 32, 3)).astype(np.float64)
    out = phase_scramble(image, 3)
    assert out.dtype == np.float64
    assert np.allclose(amplitude(out), amplitude(image))
    assert np.allclose(out.mean(axis=(0, 1)), image.mean(axis=(0, 1)))
    f_in, f_out = np.fft.fft2(image, axes=(0, 1)), np.fft.fft2(out, axes=(0, 1))
    # the same random phase is added to every channel, so phase differences between channels are kept
    delta_in = np.angle(f_in[..., 1] * np.conj(f_in[..., 0]))
    delta_out = np.angle(f_out[..., 1] * np.conj(f_out[..., 0]))
    assert np.allclose(np.exp(1j * delta_in), np.exp(1j * delta_out), atol=1e-6)


@pytest.mark.parametrize("scramble", [lambda im, s: phase_scramble(im, s), lambda im, s: grid_scramble(im, 8, s)])
def test_scrambling_is_deterministic_per_seed_and_differs_across_seeds(scramble):
    image = smooth_image((48, 48))
    assert np.array_equal(scramble(image, np.random.default_rng(5)), scramble(image, np.random.default_rng(5)))
    assert not np.array_equal(scramble(image, 5), scramble(image, 6))


@pytest.mark.parametrize("shape", [(64, 64), (50, 37, 3)], ids=["divisible", "remainder-colour"])
def test_grid_scramble_keeps_histogram_and_permutes_whole_tiles(shape):
    image = smooth_image(shape)
    out = grid_scramble(image, 8, 0)
    assert np.array_equal(np.sort(out, axis=None), np.sort(image, axis=None))
    rows, cols = shape[0] // 8 * 8, shape[1] // 8 * 8
    assert np.array_equal(out[rows:], image[rows:]) and np.array_equal(out[:, cols:], image[:, cols:])
    tiles = {image[r : r + 8, c : c + 8].tobytes() for r in range(0, rows, 8) for c in range(0, cols, 8)}
    assert all(out[r : r + 8, c : c + 8].tobytes() in tiles for r in range(0, rows, 8) for c in range(0, cols, 8))
    assert not np.array_equal(out, image)


def test_scramble_rejects_bad_input():
    with pytest.raises(NetflocError, match="tile"):
        grid_scramble(smooth_image((16, 16)), 16, 0)
    with pytest.raises(NetflocError, match="tile"):
        grid_scramble(smooth_image((16, 16)), 0, 0)
    with pytest.raises(NetflocError, match="shape"):
        phase_scramble(np.zeros(10), 0)


def write_tree(root: Path) -> Path:
    for k, rel in enumerate(["a/one.jpg", "a/two.png", "b/deep/three.png"]):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(smooth_image((32, 32, 3) if k else (32, 32), seed=k)).save(root / rel)
    return root


def digests(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("method", ["phase", "grid"])
def test_scramble_folder_is_deterministic_keeps_paths_and_depends_on_seed(tmp_path, method):
    src = write_tree(tmp_path / "src")
    first = scramble_folder(src, tmp_path / "s1", method, tile=8, seed=1)
    scramble_folder(src, tmp_path / "s1again", method, tile=8, seed=1)
    scramble_folder(src, tmp_path / "s2", method, tile=8, seed=2)
    assert sorted(p.relative_to(tmp_path / "s1").as_posix() for p in first) == [
        "a/one.png",
        "a/two.png",
        "b/deep/three.png",
    ]
    assert digests(tmp_path / "s1") == digests(tmp_path / "s1again")
    assert all(
        a != b for a, b in zip(digests(tmp_path / "s1").values(), digests(tmp_path / "s2").values(), strict=True)
    )
    with Image.open(tmp_path / "s1" / "a/one.png") as grey, Image.open(tmp_path / "s1" / "a/two.png") as rgb:
        assert (grey.mode, rgb.mode) == ("L", "RGB")


def test_scramble_folder_rejects_bad_destinations(tmp_path):
    src = write_tree(tmp_path / "src")
    with pytest.raises(NetflocError, match="overlaps"):
        scramble_folder(src, src / "out")
    scramble_folder(src, tmp_path / "out")
    with pytest.raises(NetflocError, match="already exists"):
        scramble_folder(src, tmp_path / "out")
    scramble_folder(src, tmp_path / "out", seed=3, force=True)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(NetflocError, match="only replaces folders netfloc wrote"):
        scramble_folder(src, tmp_path / "mine", force=True)
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "precious"
    (tmp_path / "empty").mkdir()
    with pytest.raises(NetflocError, match="no image files"):
        scramble_folder(tmp_path / "empty", tmp_path / "out2")
    with pytest.raises(NetflocError, match="method"):
        scramble_folder(src, tmp_path / "out3", "pixel")
    assert not (tmp_path / "out3").exists()
    (src / "a" / "broken.png").write_bytes(b"not an image")
    with pytest.raises(NetflocError, match=r"cannot read image .*broken\.png"):
        scramble_folder(src, tmp_path / "out4")
    assert not (tmp_path / "out4").exists() and not list(tmp_path.glob(".out4*"))


def test_image_stats_formulas():
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 255
    assert np.allclose(luminance(rgb), 0.299)
    x = np.arange(64)
    grating = np.tile(0.5 + 0.25 * np.sin(2 * np.pi * 8 * x / 64), (64, 1))
    stats = image_stats(grating)
    assert stats["mean_luminance"] == pytest.approx(0.5)
    assert stats["rms_contrast"] == pytest.approx(0.25 / np.sqrt(2))
    assert stats["energy_4-16cpi"] == pytest.approx(1.0)
    energies = band_energy(luminance(smooth_image((64, 64))))
    assert sum(energies.values()) == pytest.approx(1.0)
    assert set(stats) == set(MEASURES)


@pytest.mark.parametrize("shape", [(64, 64), (33, 50), (40, 31)])
def test_band_energy_equals_the_full_spectrum(shape):
    """The half spectrum (rfft2, mirrored columns counted twice) gives the band fractions of the full 2-D FFT,
    with bands assigned here from the radius directly, for even and odd widths."""
    lum = np.random.default_rng(4).random(shape)
    power = np.abs(np.fft.fft2(lum - lum.mean())) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(shape[0]) * shape[0], np.fft.fftfreq(shape[1]) * shape[1], indexing="ij")
    radius = np.sqrt(fx**2 + fy**2)
    expected = [power[(radius >= low) & (radius < high)].sum() / power.sum() for low, high in FREQUENCY_BANDS]
    np.testing.assert_allclose(list(band_energy(lum).values()), expected, rtol=1e-12)


def test_read_pixels_decodes_like_the_stimulus_loader(tmp_path):
    """Greyscale (8 and 16 bit), grey-in-RGB and colour files: read_pixels equals the loader's RGB decoding,
    one channel when all three are equal."""
    from netfloc.stimuli._common import read_pixels
    from netfloc.stimuli.folder import read_image

    rng = np.random.default_rng(6)
    grey = rng.integers(0, 256, (9, 7), dtype=np.uint8)
    files = {
        "grey.png": Image.fromarray(grey),
        "grey16.png": Image.fromarray(grey.astype(np.uint16) * 257),
        "grey_rgb.png": Image.fromarray(np.stack([grey] * 3, axis=-1)),
        "colour.png": Image.fromarray(rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)),
    }
    for name, image in files.items():
        image.save(tmp_path / name)
        rgb = np.asarray(read_image(tmp_path / name))
        expected = rgb[..., 0] if name != "colour.png" else rgb
        np.testing.assert_array_equal(read_pixels(tmp_path / name), expected, err_msg=name)


def test_an_image_that_cannot_be_converted_is_a_one_line_error(tmp_path, monkeypatch):
    """A conversion Pillow refuses (ValueError) names the file, from the loader and from read_pixels."""
    import netfloc.stimuli._common as common
    import netfloc.stimuli.folder as folder

    def refuse(image):
        raise ValueError(f"conversion from {image.mode} to RGB not supported")

    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "odd.png")
    monkeypatch.setattr(folder, "to_rgb", refuse)
    for read in (folder.read_image, common.read_pixels):
        with pytest.raises(NetflocError, match=r"cannot read image .*odd\.png: conversion from RGB"):
            read(tmp_path / "odd.png")


def test_category_image_stats_table(tmp_path):
    files = {}
    for category, level in [("dark", 60), ("light", 190)]:
        files[category] = []
        for k in range(3):
            path = tmp_path / f"{category}{k}.png"
            Image.fromarray(
                np.clip(smooth_image((32, 32), seed=k).astype(int) - 128 + level, 0, 255).astype(np.uint8)
            ).save(path)
            files[category].append(path)
    table = category_image_stats(files)
    assert list(table.columns) == ["category", "measure", "n", "mean", "std"]
    assert len(table) == 2 * len(MEASURES) and set(table.n) == {3}
    lum = table[table.measure == "mean_luminance"].set_index("category")["mean"]
    assert lum["dark"] < 0.3 < 0.7 < lum["light"]
    with pytest.raises(NetflocError, match="no images"):
        category_image_stats({"empty": []})


def test_the_stimulus_check_measures_what_category_image_stats_would(tmp_path, monkeypatch):
    """The measures the check takes while decoding give the same table, bit for bit, as decoding the files
    again; with them, no file is decoded again; ``measure=False`` takes none."""
    import netfloc.stimuli.imagestats as imagestats
    from netfloc.stimuli import load_stimulus_set

    rng = np.random.default_rng(8)
    for category, level in [("dark", 60), ("light", 190)]:
        (tmp_path / category).mkdir()
        for k in range(4):
            pixels = np.clip(smooth_image((24, 20), seed=k).astype(int) - 128 + level, 0, 255).astype(np.uint8)
            colour = np.stack([pixels, pixels, rng.integers(0, 256, pixels.shape, dtype=np.uint8)], axis=-1)
            Image.fromarray(colour if k == 3 else pixels).save(tmp_path / category / f"{k}.png")
    stimuli = load_stimulus_set(tmp_path)
    files = dict(zip(stimuli.categories, stimuli.files, strict=True))
    assert set(stimuli.measures) == {path for group in stimuli.files for path in group}
    decoded = category_image_stats(files)

    def refuse(path):
        raise AssertionError(f"{path} decoded again")

    monkeypatch.setattr(imagestats, "read_pixels", refuse)
    pd.testing.assert_frame_equal(category_image_stats(files, stimuli.measures), decoded, check_exact=True)
    assert load_stimulus_set(tmp_path, measure=False).measures == {}


def test_an_image_that_cannot_be_converted_is_a_bad_file_of_the_check(tmp_path, monkeypatch):
    """The check converts every image as the loader will, measured or not, so it already reports one that cannot
    be (and measuring does not change which files are bad)."""
    import netfloc.stimuli.folder as folder

    def refuse(image):
        raise ValueError(f"conversion from {image.mode} to RGB not supported")

    for category in ("a", "b"):
        (tmp_path / category).mkdir()
        for k in range(2):
            Image.fromarray(np.full((4, 4, 3), 40 * k + (category == "b"), np.uint8)).save(
                tmp_path / category / f"{k}.png"
            )
    monkeypatch.setattr(folder, "to_rgb", refuse)
    for measure in (True, False):
        with pytest.raises(NetflocError, match=r"4 bad stimulus file\(s\): .*0\.png \(unreadable: conversion from"):
            folder.load_stimulus_set(tmp_path, measure=measure)


def test_equalize_luminance_contrast_matches_set_average():
    images = [
        smooth_image((32, 32), seed=k).astype(np.float64) / 255 * s + o
        for k, s, o in [(0, 0.5, 0.1), (1, 1.0, 0.0), (2, 0.8, 0.2)]
    ]
    out = equalize_luminance_contrast(images)
    means, stds = [im.mean() for im in images], [im.std() for im in images]
    assert np.allclose([im.mean() for im in out], np.mean(means))
    assert np.allclose([im.std() for im in out], np.mean(stds))
    colour = [smooth_image((16, 16, 3), seed=k) for k in range(3)]
    out8 = equalize_luminance_contrast(colour)
    assert all(im.dtype == np.uint8 for im in out8)
    lum = [luminance(im) for im in out8]
    assert np.ptp([x.mean() for x in lum]) < 0.01 and np.ptp([x.std() for x in lum]) < 0.01
    with pytest.raises(NetflocError, match="constant"):
        equalize_luminance_contrast([np.full((8, 8), 100, np.uint8), smooth_image((8, 8))])


def fake_floc(root: Path, n: int = 4) -> Path:
    """fLoc-like tree with the six source categories the paper set needs, ``n`` tiny JPEGs each."""
    for k, category in enumerate(["adult", "child", "body", "limb", "house", "corridor", "word"]):
        (root / category).mkdir(parents=True)
        for i in range(1, n + 1):
            Image.fromarray(smooth_image((40, 30), seed=10 * k + i)).save(root / category / f"{category}-{i}.jpg")
    return root


def check_paper_set(out: Path, manifest: pd.DataFrame, n: int, size: int) -> None:
    assert sorted(p.name for p in out.iterdir()) == sorted([*PAPER_CATEGORIES, "manifest.csv"])
    on_disk = pd.read_csv(out / "manifest.csv", keep_default_na=False)
    assert list(on_disk.columns) == list(MANIFEST_COLUMNS) and len(on_disk) == 6 * n
    pd.testing.assert_frame_equal(on_disk, manifest, check_dtype=False)
    assert (manifest.groupby("category").size() == n).all()
    for row in manifest.itertuples():
        path = out / row.output_file
        assert hashlib.sha256(path.read_bytes()).hexdigest() == row.sha256
        with Image.open(path) as image:
            assert image.size == (size, size) and image.format == "PNG"
    for scrambled, intact in [("scrambled-scenes", "scenes"), ("scrambled-words", "words")]:
        used = set(manifest.loc[manifest.category == intact, "source_file"])
        made = manifest[manifest.category == scrambled]
        assert set(made.source_file) == used and (made.scramble_method == "phase").all()
    assert set(manifest.loc[manifest.category == "faces", "source_category"]) <= {"adult", "child"}
    assert set(manifest.loc[manifest.category == "scenes", "source_category"]) <= {"house", "corridor"}
    assert (manifest.loc[manifest.category.isin(["faces", "bodies", "scenes", "words"]), "scramble_method"] == "").all()


def test_build_paper_set_on_fake_floc(tmp_path):
    floc = fake_floc(tmp_path / "floc")
    manifest = build_paper_set(floc, tmp_path / "out", per_category=3, size=32, seed=4, equalize=True)
    check_paper_set(tmp_path / "out", manifest, 3, 32)
    again = build_paper_set(floc, tmp_path / "again", per_category=3, size=32, seed=4, equalize=True)
    pd.testing.assert_frame_equal(manifest, again)
    other = build_paper_set(floc, tmp_path / "other", per_category=3, size=32, seed=5, equalize=True)
    assert not manifest.sha256.equals(other.sha256)


def test_build_paper_set_rejects_bad_input(tmp_path):
    floc = fake_floc(tmp_path / "floc")
    with pytest.raises(NetflocError, match="fewer than the 5 requested"):
        build_paper_set(floc, tmp_path / "out", per_category=5, size=32)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))
    with pytest.raises(NetflocError, match="does not exist"):
        build_paper_set(tmp_path / "nowhere", tmp_path / "out", per_category=2, size=32)
    with pytest.raises(NetflocError, match="at least 2"):
        build_paper_set(floc, tmp_path / "out", per_category=1, size=32)
    build_paper_set(floc, tmp_path / "out", per_category=2, size=32)
    with pytest.raises(NetflocError, match="already exists"):
        build_paper_set(floc, tmp_path / "out", per_category=2, size=32)
    build_paper_set(floc, tmp_path / "out", per_category=3, size=32, force=True)
    assert len(pd.read_csv(tmp_path / "out" / "manifest.csv")) == 18
    for sub in (floc / "word").iterdir():
        sub.unlink()
    (floc / "word").rmdir()
    with pytest.raises(NetflocError, match="no 'word' sub-folder"):
        build_paper_set(floc, tmp_path / "out2", per_category=2, size=32)


@pytest.mark.skipif(not SHARED_FLOC.is_dir(), reason=f"fLoc images not found at {SHARED_FLOC}")
def test_build_paper_set_on_shared_floc(tmp_path):
    manifest = build_paper_set(SHARED_FLOC, tmp_path / "paper", per_category=6, size=64, seed=0)
    check_paper_set(tmp_path / "paper", manifest, 6, 64)
    assert (SHARED_FLOC / manifest.source_file).map(Path.is_file).all()
    with pytest.raises(NetflocError, match="lower --per-category to at most 144"):
        build_paper_set(SHARED_FLOC, tmp_path / "big", per_category=145, size=64)


def test_cli_scramble_build_stats_and_errors(tmp_path):
    runner = CliRunner()
    src = write_tree(tmp_path / "src")
    result = runner.invoke(app, ["scramble", str(src), str(tmp_path / "grid"), "--method", "grid", "--tile", "8"])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "grid").rglob("*.png"))) == 3
    floc = fake_floc(tmp_path / "floc")
    out = tmp_path / "paper"
    args = ["build", "paper", "--floc", str(floc), "--out", str(out), "--per-category", "2", "--size", "16"]
    assert runner.invoke(app, args).exit_code == 0
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and again.stderr.strip().startswith("error: ") and "--force" in again.stderr
    result = runner.invoke(app, ["stats", str(out), "--csv", str(tmp_path / "stats.csv")])
    assert result.exit_code == 0, result.output
    assert "mean_luminance" in result.output
    assert len(pd.read_csv(tmp_path / "stats.csv")) == 6 * len(MEASURES)
    bad = runner.invoke(app, ["scramble", str(tmp_path / "missing"), str(tmp_path / "x")])
    assert bad.exit_code == 2 and "error: source folder" in bad.stderr
