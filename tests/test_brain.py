"""netfloc brain: a synthetic ground truth, golden values against direct rsatoolbox and himalaya calls, the command's
folder and report section, and one-line errors for bad subjects.

Ground truth: the localizer runs on :mod:`tests.brain_model` (a planted population of ``GROUP`` units per category);
each subject's ROI for category k (FFA for faces, …) has ``VOXELS`` voxels, each a random mixture of the
z-scored responses of population k (scaled to unit variance over the images) plus independent Gaussian noise of SD
``NOISE`` in each of ``REPEATS`` repeats. The encoding ceiling is then known: √(1 / (1 + NOISE² / REPEATS)).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from himalaya.ridge import RidgeCV
from rsatoolbox.data import Dataset
from rsatoolbox.inference import boot_noise_ceiling
from rsatoolbox.rdm import calc_rdm, compare, concat
from sklearn.model_selection import KFold
from typer.testing import CliRunner

from netfloc import localize
from netfloc.analysis import brain_stats as bs
from netfloc.analysis.brain import BRAIN_COLUMNS, BrainSettings, brain_comparison
from netfloc.cli import app
from netfloc.errors import NetflocError
from netfloc.models import load_model
from netfloc.recording.loader import ImageDataset
from netfloc.report.brain import brain_section
from netfloc.results.run import results_folder_problem
from netfloc.stimuli import load_stimulus_set

from .conftest import assert_tags_balanced
from .planted_model import CATEGORIES, write_planted_stimuli

SPEC = f"{Path(__file__).with_name('brain_model.py')}:build"
LABEL = "brain_model-build"
ROIS = {"faces": "FFA", "bodies": "EBA", "scenes": "PPA", "words": "VWFA"}
GROUP, VOXELS, REPEATS, NOISE = 6, 12, 4, 1.5
runner = CliRunner()


def simulate(activations: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(repeats × images × voxels responses, roi labels) of one simulated subject (module docstring)."""
    rng = np.random.default_rng(seed)
    blocks, roi = [], []
    for k, category in enumerate(CATEGORIES):
        units = activations[:, k * GROUP : (k + 1) * GROUP]
        signal = ((units - units.mean(0)) / units.std(0)) @ rng.normal(size=(GROUP, VOXELS))
        signal = (signal - signal.mean(0)) / signal.std(0)
        blocks.append(signal + NOISE * rng.normal(size=(REPEATS, *signal.shape)))
        roi += [ROIS[category]] * VOXELS
    return np.concatenate(blocks, axis=2), np.array(roi)


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("brain")
    stimuli_dir = write_planted_stimuli(root / "stimuli", per_category=16)
    localize(SPEC, stimuli_dir, layers=["units"], categories=CATEGORIES, out=root / "run", progress=False)
    stimuli = load_stimulus_set(stimuli_dir, CATEGORIES)
    model = load_model(SPEC)
    dataset = ImageDataset(stimuli.items(), model)
    kept = []
    handle = model.module.units.register_forward_hook(lambda _m, _i, out: kept.append(out.double().clone()))
    with torch.no_grad():
        model.module(torch.stack([dataset[i][0] for i in range(len(dataset))]))
    handle.remove()
    activations = kept[0].numpy()
    images = np.array([f"{stimuli.categories[k]}/{path.name}" for path, k in stimuli.items()])
    subjects = []
    for seed in range(3):
        responses, roi = simulate(activations, seed)
        subjects.append(root / f"sub-{seed + 1:02d}.npz")
        np.savez(subjects[-1], responses=responses, roi=roi, images=images)
    return SimpleNamespace(root=root, run=root / "run", activations=activations, subjects=subjects, images=images)


def invoke(*args: object):
    return runner.invoke(app, [str(arg) for arg in args])


def test_matching_population_wins_beats_random_sets_and_the_ceiling_matches_the_noise(world):
    settings = BrainSettings(random_sets=19, bootstrap=100, folds=3, max_units=64)
    table = brain_comparison(world.run, world.subjects, settings, models=[SPEC], progress=False).table
    assert list(table.columns) == BRAIN_COLUMNS
    assert set(table.population) == {*CATEGORIES, "all"} and set(table.method) == {"rsa", "encoding"}
    assert len(table) == 2 * 5 * len(ROIS) * len(world.subjects)
    means = table.groupby(["method", "roi", "population"]).score.mean()
    for method in ("rsa", "encoding"):
        for category, roi in ROIS.items():
            assert means[method][roi].idxmax() == category, (method, roi, means[method][roi])
    matched = table[table.population.map(ROIS) == table.roi]
    assert (matched.p_random == 1 / 20).all(), "every matching population beats all 19 random sets"
    assert (matched.ci_low < matched.score).all() and (matched.score < matched.ci_high).all()
    assert table[table.population == "all"].p_random.isna().all()
    encoding = table[table.method == "encoding"]
    assert (encoding.ceiling_low == encoding.ceiling_high).all()
    ceilings = encoding.groupby(["subject", "roi"]).ceiling_high.first()
    expected = np.sqrt(1 / (1 + NOISE**2 / REPEATS))
    assert abs(ceilings.mean() - expected) < 0.02 and (abs(ceilings - expected) < 0.06).all(), ceilings
    np.testing.assert_allclose(encoding.normalized, encoding.score / encoding.ceiling_high)
    assert (encoding[encoding.population.map(ROIS) == encoding.roi].normalized > 0.85).all()
    rsa = table[table.method == "rsa"]
    assert (rsa.ceiling_low < rsa.ceiling_high).all() and (rsa.score < rsa.ceiling_high).all()


def test_rdms_comparisons_and_ceilings_equal_rsatoolbox():
    rng = np.random.default_rng(1)
    patterns = [rng.normal(size=(15, width)) + 3 for width in (4, 9, 9)]
    ours = bs.rdms_of(patterns)
    direct = [calc_rdm(Dataset(p - p.mean(0)), method="correlation") for p in patterns]
    np.testing.assert_allclose(ours.dissimilarities, concat(direct).dissimilarities, atol=1e-12)
    a, b = ours.subset("index", [0]), ours.subset("index", [1, 2])
    for method, values in bs.compare_all(a, b).items():
        expected = [compare(direct[0], direct[j], method=method)[0, 0] for j in (1, 2)]
        np.testing.assert_allclose(values[0], expected, atol=1e-12)
    assert bs.rsa_ceiling(b, "rho-a") == pytest.approx(boot_noise_ceiling(b, method="rho-a"))
    assert np.isnan(bs.rsa_ceiling(a, "rho-a")).all()
    samples = bs.bootstrap_samples(15, 3, seed=0)
    draws = bs.bootstrap_compare(a, b, samples)
    for index, sample in enumerate(samples):
        expected = compare(direct[0].subsample_pattern("index", sample), b.subsample_pattern("index", sample), "corr")
        np.testing.assert_allclose(draws["corr"][index], expected, atol=1e-12)


def test_brain_csv_equals_direct_rsatoolbox_and_himalaya_calls(world):
    settings = BrainSettings(bootstrap=10, folds=3, max_units=32, seed=4)
    result = brain_comparison(world.run, world.subjects, settings, models=[SPEC], rois=["FFA", "PPA"], progress=False)
    faces = world.activations[:, :GROUP]
    population = calc_rdm(Dataset(faces - faces.mean(0)), method="correlation")
    ffa = []
    for path in world.subjects:
        with np.load(path) as data:
            voxels = data["responses"].mean(axis=0)[:, data["roi"] == "FFA"]
        ffa.append(calc_rdm(Dataset(voxels - voxels.mean(0)), method="correlation"))
    for table, method in ((result.table, "rho-a"), (result.rsa_corr, "corr")):
        row = table[(table.method == "rsa") & (table.population == "faces") & (table.roi == "FFA")].iloc[0]
        assert row.subject == "sub-01"
        assert row.score == pytest.approx(compare(population, ffa[0], method=method)[0, 0], abs=1e-9)
        assert (row.ceiling_low, row.ceiling_high) == pytest.approx(boot_noise_ceiling(concat(ffa), method=method))
    assert set(result.table.roi) == {"FFA", "PPA"} and set(result.rsa_corr.method) == {"rsa"}
    with np.load(world.subjects[0]) as data:
        targets = np.concatenate([data["responses"].mean(0)[:, data["roi"] == roi] for roi in ("FFA", "PPA")], 1)
    predictions = np.zeros_like(targets)
    for train, test in KFold(3, shuffle=True, random_state=4).split(faces):
        mean, sd = faces[train].mean(0), faces[train].std(0)
        ridge = RidgeCV(alphas=bs.ALPHAS, fit_intercept=True, cv=5, solver_params={"warn": False})
        ridge.fit((faces[train] - mean) / sd, targets[train])
        predictions[test] = ridge.predict((faces[test] - mean) / sd)
    r = [np.corrcoef(predictions[:, v], targets[:, v])[0, 1] for v in range(VOXELS)]
    encoding = result.table[(result.table.method == "encoding") & (result.table.population == "faces")]
    assert encoding.iloc[0].score == pytest.approx(np.mean(r), abs=1e-9)


def test_brain_command_writes_its_folder_and_the_report_includes_it(world, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(world.run, run)
    args = ["brain", run, "--subject", world.subjects[0], "--subject", world.subjects[1], "--model", SPEC]
    result = invoke(*args, "--bootstrap", 10, "--folds", 3, "--max-units", 40, "--method", "rsa,encoding")
    assert result.exit_code == 0, result.output
    assert "FFA" in result.output and "netfloc report" in result.output
    folder = run / "brain"
    table = pd.read_csv(folder / "brain.csv")
    assert list(table.columns) == BRAIN_COLUMNS
    assert set(table[table.population == "all"].n_units) == {40}
    assert list(pd.read_csv(folder / "brain_rsa_corr.csv").columns) == BRAIN_COLUMNS
    notes = (folder / "brain.json").read_text()
    assert "random subsample of 40 of its 536 units" in notes
    figures = sorted(path.name for path in (folder / "figures").iterdir())
    assert figures == [
        f"brain_{m}_{kind}.{ext}"
        for m in ("encoding", "rsa")
        for kind in ("layers", "matrix")
        for ext in ("png", "svg")
    ]
    assert results_folder_problem(run) is None, "the run stays a folder netfloc wrote"
    assert invoke(*args).exit_code == 2, "an existing brain folder needs --force"
    report = invoke("report", run)
    assert report.exit_code == 0, report.output
    document = (run / "report.html").read_text()
    assert 'id="brain"' in document and "Brain comparison" in document and "brain_rsa_matrix" in document
    assert (run / "figures" / "brain_encoding_layers.png").is_file()
    assert_tags_balanced(document)
    table.astype({"score": object}).replace({"score": {table.score.iloc[0]: "abc"}}).to_csv(folder / "brain.csv")
    with pytest.raises(NetflocError, match="is not a netfloc brain table"):
        brain_section(run, tmp_path / "figures")


def test_one_subject_without_repeats_on_part_of_the_images_has_no_ceilings(world, tmp_path):
    with np.load(world.subjects[0]) as data:
        np.savez(
            tmp_path / "single.npz", responses=data["responses"][0, 4:], roi=data["roi"], images=data["images"][4:]
        )
    settings = BrainSettings(bootstrap=5, folds=3, max_units=16)
    table = brain_comparison(world.run, [tmp_path / "single.npz"], settings, models=[SPEC], progress=False).table
    assert len(table) == 2 * 5 * len(ROIS) and set(table.subject) == {"single"}
    assert table[["ceiling_low", "ceiling_high", "normalized", "p_random"]].isna().all().all()
    assert table[["score", "ci_low", "ci_high"]].notna().all().all()


def bad_subject(world, path: Path, problem: str) -> Path:
    with np.load(world.subjects[0]) as data:
        arrays = dict(data)
    if problem == "mismatched":
        arrays["images"] = arrays["images"].astype("U64")
        arrays["images"][3] = "faces/not-in-the-run.png"
    elif problem == "unlabelled":
        arrays["roi"] = np.full_like(arrays["roi"], "")
    elif problem == "nan":
        arrays["responses"][1, 2, 3] = np.nan
    elif problem == "one_voxel":
        arrays["roi"] = arrays["roi"].copy()
        arrays["roi"][0] = "tiny"
    elif problem == "strict":
        arrays = {"responses": arrays["responses"][:, 1:], "roi": arrays["roi"], "images": arrays["images"][1:]}
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    "problem, flags, message",
    [
        ("mismatched", [], "image faces/not-in-the-run.png is not among the run's stimuli"),
        ("unlabelled", [], "no voxel has a ROI label"),
        ("nan", [], "1 NaN or infinite response(s) (first: image"),
        ("one_voxel", [], "ROI 'tiny' has 1 voxel(s); a ROI needs at least 3"),
        ("strict", ["--strict"], "has no response (1 missing in all)"),
        (None, ["--method", "rsa,decoding"], "--method takes rsa, encoding or both"),
        (None, ["--layers", "nope"], "layer 'nope' was not recorded"),
        (None, ["--rois", "FFA,STS"], "--rois STS is not a ROI of any subject"),
        (None, [], "never runs code named by a results folder"),
    ],
)
def test_bad_input_is_a_one_line_error(world, tmp_path, problem, flags, message):
    subject = bad_subject(world, tmp_path / "sub-bad.npz", problem) if problem else world.subjects[0]
    model = [] if message.startswith("never") else ["--model", SPEC]
    result = invoke("brain", world.run, "--subject", subject, *model, "--out", tmp_path / "out", *flags)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
