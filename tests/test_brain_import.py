"""``netfloc brain import`` on small files written here in the public datasets' layouts (Algonauts 2023, THINGS-fMRI,
NSD), and ``netfloc run --responses``: the localizer's statistics on measured responses."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from scipy.io import savemat
from typer.testing import CliRunner

from netfloc.cli import app
from netfloc.results import LayerResult
from netfloc.stimuli.responses import load_subject

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(arg) for arg in args])


def test_algonauts2023_layout(tmp_path):
    base = tmp_path / "algonauts" / "subj01"
    (base / "training_split" / "training_fmri").mkdir(parents=True)
    (base / "training_split" / "training_images").mkdir()
    (base / "roi_masks").mkdir()
    rng = np.random.default_rng(0)
    names = [f"train-{i + 1:04d}_nsd-{i * 7:05d}.png" for i in range(6)]
    for name in names:
        (base / "training_split" / "training_images" / name).touch()
    fmri = {"lh": rng.normal(size=(6, 8)).astype(np.float32), "rh": rng.normal(size=(6, 5)).astype(np.float32)}
    for side, values in fmri.items():
        np.save(base / "training_split" / "training_fmri" / f"{side}_training_fmri.npy", values)
    masks = {
        "floc-faces": {"lh": [2, 2, 2, 1, 0, 0, 0, 0], "rh": [2, 2, 3, 0, 0]},
        "floc-places": {"lh": [0, 0, 0, 0, 2, 2, 2, 2], "rh": [0, 0, 0, 2, 2]},
        "floc-bodies": {"lh": [0, 0, 0, 0, 0, 0, 0, 1], "rh": [0, 0, 0, 0, 0]},
        "floc-words": {"lh": [0] * 8, "rh": [0] * 5},
    }
    for name, sides in masks.items():
        for side, codes in sides.items():
            np.save(base / "roi_masks" / f"{side}.{name}_challenge_space.npy", np.array(codes, dtype=np.int32))
    out = tmp_path / "subj01.npz"
    result = invoke("brain", "import", "algonauts2023", tmp_path / "algonauts", "--subject", "subj01", "--out", out)
    assert result.exit_code == 2 and "ROI 'OFA' has 1 voxel(s)" in result.output, result.output
    args = ["brain", "import", "algonauts2023", tmp_path / "algonauts", "--subject", "subj01", "--out", out]
    result = invoke(*args, "--rois", "FFA-1,PPA", "--force")
    assert result.exit_code == 0, result.output
    assert "1 voxel(s) in two ROIs" in result.output
    subject = load_subject(out)
    both = np.concatenate([fmri["lh"], fmri["rh"]], axis=1)
    assert subject.roi_sizes() == {"FFA-1": 5, "PPA": 5}
    np.testing.assert_allclose(subject.responses[0], both[:, [0, 1, 2, 4, 5, 6, 8, 9, 11, 12]], rtol=1e-6)
    assert list(subject.images) == [f"nsd/{name}" for name in names]
    assert invoke(*args).exit_code == 2, "an existing file needs --force"


def pandas_fixed_h5(path: Path, frame: pd.DataFrame) -> None:
    """The layout ``DataFrame.to_hdf(path, key="ResponseData")`` writes (format fixed), written with h5py."""
    with h5py.File(path, "w") as handle:
        group = handle.create_group("ResponseData")
        group["axis0"] = np.array([str(c).encode() for c in frame.columns])
        group["axis1"] = np.arange(len(frame))
        blocks = [[c for c in frame.columns if frame[c].dtype.kind == kind] for kind in ("f", "i")]
        for i, columns in enumerate(blocks):
            group[f"block{i}_items"] = np.array([str(c).encode() for c in columns])
            group[f"block{i}_values"] = frame[columns].to_numpy()


@pytest.mark.parametrize("writer", ["h5py", "pandas"])
def test_things_fmri_layout(tmp_path, writer):
    rng = np.random.default_rng(1)
    trials = ["cat_01b.jpg", "dog_12s.jpg", "cat_01b.jpg", "mango_03n.jpg", "dog_12s.jpg", "cat_01b.jpg", "dog_12s.jpg"]
    voxels = pd.DataFrame(
        {
            "voxel_id": [10, 11, 12, 13, 14, 15, 16, 17],
            "subject_id": 1,
            "nc_testset": rng.random(8),
            "V1": [1, 1, 1, 1, 0, 0, 0, 0],
            "lFFA": [0, 0, 0, 0, 1, 1, 0, 0],
            "rFFA": [0, 0, 0, 0, 0, 0, 1, 0],
            "lPPA": [0, 0, 0, 1, 0, 0, 0, 1],
        }
    )
    voxels.to_csv(tmp_path / "sub-01_VoxelMetadata.csv", index=False)
    stimuli = pd.DataFrame({"trial_type": "test", "session": 1, "trial_id": range(7), "stimulus": trials})
    stimuli.to_csv(tmp_path / "sub-01_StimulusMetadata.csv", index=False)
    values = rng.normal(size=(8, 7))
    frame = pd.DataFrame(values, columns=[str(t) for t in range(7)])
    frame.insert(0, "voxel_id", voxels["voxel_id"].to_numpy()[::-1].copy())
    frame = frame.iloc[::-1].reset_index(drop=True)  # rows in another order than the metadata: matched by voxel_id
    if writer == "pandas":
        pytest.importorskip("tables")
        frame.to_hdf(tmp_path / "sub-01_ResponseData.h5", key="ResponseData")
    else:
        pandas_fixed_h5(tmp_path / "sub-01_ResponseData.h5", frame)
    out = tmp_path / "sub-01.npz"
    result = invoke("brain", "import", "things-fmri", tmp_path, "--subject", "01", "--out", out, "--rois", "V1,FFA")
    assert result.exit_code == 0, result.output
    subject = load_subject(out)
    assert subject.roi_sizes() == {"V1": 3, "FFA": 3}, "voxel 13 is in V1 and lPPA: left out"
    assert list(subject.images) == ["cat/cat_01b.jpg", "dog/dog_12s.jpg"], "images shown 3 times"
    by_voxel = frame.set_index("voxel_id")
    expected = by_voxel.loc[[10, 11, 12, 14, 15, 16], ["0", "2", "5"]].to_numpy().T
    np.testing.assert_allclose(subject.responses[:, 0, :], expected, rtol=1e-6)
    result = invoke(
        "brain", "import", "things-fmri", tmp_path, "--subject", "01", "--out", out, "--repeats", "1", "--force"
    )
    assert result.exit_code == 2 and "ROI 'PPA' has 1 voxel(s)" in result.output, "PPA keeps one voxel"
    assert load_subject(out).responses.shape == (3, 2, 6), "the file is left as it was"
    result = invoke(
        "brain",
        "import",
        "things-fmri",
        tmp_path,
        "--subject",
        "01",
        "--out",
        out,
        "--repeats",
        1,
        "--force",
        "--rois",
        "V1,FFA",
    )
    assert result.exit_code == 0, result.output
    assert load_subject(out).responses.shape == (1, 3, 6), "every image, its trials averaged"


def test_nsd_layout(tmp_path):
    nib = pytest.importorskip("nibabel")
    rng = np.random.default_rng(2)
    design = tmp_path / "nsddata" / "experiments" / "nsd"
    design.mkdir(parents=True)
    order = np.tile(np.arange(1, 6), 300)  # 1500 trials over two sessions: five images, 300 times each
    subjectim = np.arange(1, 80001).reshape(8, 10000)
    savemat(design / "nsd_expdesign.mat", {"masterordering": order[None], "subjectim": subjectim})
    rois = tmp_path / "nsddata" / "ppdata" / "subj02" / "func1pt8mm" / "roi"
    rois.mkdir(parents=True)
    shape = (3, 2, 2)
    codes = {"floc-faces": [2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0, -1], "floc-places": [0, 0, 0, 2, 2, 2, 0, 0, 0, 0, 0, -1]}
    for name in ("floc-faces", "floc-bodies", "floc-places", "floc-words"):
        volume = np.array(codes.get(name, [0] * 12), dtype=np.int16).reshape(shape)
        nib.save(nib.Nifti1Image(volume, np.eye(4)), rois / f"{name}.nii.gz")
    betas = tmp_path / "nsddata_betas" / "ppdata" / "subj02" / "func1pt8mm" / "betas_fithrf_GLMsingle"
    betas.mkdir(parents=True)
    data = {}
    for session in (1, 2):
        data[session] = rng.integers(-900, 900, size=(*shape, 750)).astype(np.int16)
        nib.save(nib.Nifti1Image(data[session], np.eye(4)), betas / f"betas_session{session:02d}.nii.gz")
    out = tmp_path / "subj02.npz"
    result = invoke("brain", "import", "nsd", tmp_path, "--subject", 2, "--out", out, "--repeats", 3)
    assert result.exit_code == 0, result.output
    subject = load_subject(out)
    assert subject.roi_sizes() == {"FFA-1": 3, "PPA": 3} and subject.responses.shape == (3, 5, 6)
    assert list(subject.images) == [f"nsd/nsd{10001 + i:05d}.png" for i in range(5)], "subject 2's NSD ids"
    voxel = np.ravel_multi_index(np.unravel_index(3, shape), shape)  # the first PPA voxel
    first_trials = data[1].reshape(12, 750)[voxel, [0, 5, 10]] / 300
    np.testing.assert_allclose(subject.responses[:, 0, 3], first_trials, rtol=1e-6)
    result = invoke("brain", "import", "nsd", tmp_path, "--subject", 9, "--out", tmp_path / "x.npz")
    assert result.exit_code == 2 and "--subject must be between 1 and 8" in result.output


def measured_responses(path: Path, seed: int = 0) -> Path:
    """4 categories × 8 images, 20 voxels of which 0–3 prefer faces and 4–5 scenes, 2 repeats."""
    rng = np.random.default_rng(seed)
    categories = ("bodies", "faces", "scenes", "words")
    images = np.array([f"{category}/{category}-{i}.png" for category in categories for i in range(8)])
    responses = rng.normal(size=(2, len(images), 20))
    responses[:, 8:16, :4] += 3.0
    responses[:, 16:24, 4:6] += 3.0
    np.savez(path, responses=responses, images=images)
    return path


def test_run_responses_localizes_voxels_like_units(tmp_path):
    source = measured_responses(tmp_path / "sub-07.npz")
    out = tmp_path / "run"
    result = invoke("run", "--responses", source, "--out", out, "--cross-validate", 2, "--null", 2, "--no-report")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out / "selectivity.csv")
    assert set(table.model) == {"sub-07"} and set(table.layer) == {"responses"}
    layer = LayerResult.load(out / "units" / "sub-07" / "responses.npz")
    assert layer.categories == ["bodies", "faces", "scenes", "words"] and layer.n_units == 20
    assert np.flatnonzero(layer.selective[1]).tolist() == [0, 1, 2, 3]
    assert np.flatnonzero(layer.selective[2]).tolist() == [4, 5]
    assert {"crossval.csv", "null.csv", "null_summary.csv"} <= {path.name for path in out.iterdir()}
    report = invoke("report", out)
    assert report.exit_code == 0 and (out / "report.html").is_file(), report.output
    for flags, message in (
        (["--model", "resnet50"], "--model does not apply to --responses"),
        (["--categories", "faces,cars"], "category 'cars' is not among the images"),
        (["--cross-validate", 5], "needs at least 10 (two per fold)"),
    ):
        result = invoke("run", "--responses", source, "--out", tmp_path / "other", *flags)
        assert result.exit_code == 2 and message in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
