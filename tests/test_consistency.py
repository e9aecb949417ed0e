"""The second pass for representational consistency against RDMs from full activations."""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats

from netfloc import localize
from netfloc.analysis.consistency import pearson_rdm
from netfloc.models import load_model
from netfloc.recording.loader import ImageDataset
from netfloc.stimuli import load_stimulus_set


def test_pearson_rdm_in_chunks_matches_numpy():
    rng = np.random.default_rng(0)
    responses = rng.normal(size=(9, 50)).astype(np.float32) + 5
    responses[3] = 2.0  # a constant pattern: r = 0 with everything
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = 1 - np.corrcoef(responses.astype(np.float64))
    expected[3, :] = expected[:, 3] = 1.0
    np.testing.assert_allclose(pearson_rdm(responses, chunk=7), expected[np.triu_indices(9, 1)], atol=1e-12)


def full_activations(spec: str, layer: str, stimuli) -> np.ndarray:
    model = load_model(spec)
    kept = []
    module = dict(model.module.named_modules())[model.catalog[layer]]
    handle = module.register_forward_hook(lambda _m, _i, out: kept.append(out.detach().flatten(1).clone()))
    dataset = ImageDataset(stimuli.items(), model)
    with torch.no_grad():
        model.module(torch.stack([dataset[i][0] for i in range(len(dataset))]))
    handle.remove()
    return kept[0].double().numpy()


def test_second_pass_matches_rdms_from_full_activations(noise_stimuli):
    spec = "torchvision:resnet18:random"
    stimuli = load_stimulus_set(noise_stimuli)
    result = localize(
        spec,
        stimuli,
        layers=["layer3", "layer4", "embedding"],
        rule="top",
        top_percent=5,
        consistency=True,
        batch_size=4,
        progress=False,
    )
    pairs = result.tables["consistency"]
    rdms = {}
    for layer in ("layer3", "layer4", "embedding"):
        activations = full_activations(spec, layer, stimuli)
        selected = result.layer("torchvision-resnet18-random", layer).selective[0]
        rdms[layer] = 1 - np.corrcoef(activations[:, selected])[np.triu_indices(stimuli.n_images, 1)]
    category = stimuli.categories[0]
    for layer_a in rdms:
        for layer_b in rdms:
            row = pairs[
                (pairs.selection == "in-sample")
                & (pairs.category == category)
                & (pairs.layer_a == layer_a)
                & (pairs.layer_b == layer_b)
            ]
            expected = stats.spearmanr(rdms[layer_a], rdms[layer_b]).statistic
            np.testing.assert_allclose(row.spearman.item(), expected, atol=1e-6)
    summary = result.tables["consistency_summary"]
    assert set(summary.columns) == {"model", "selection", "category", "n_layers", "mean_off_diagonal"}
    assert (summary.n_layers == 3).all()


def test_held_out_consistency_selects_on_other_folds_and_measures_on_the_held_out_one(tmp_path):
    from netfloc.moments.groupings import stratified_folds

    from .conftest import write_noise_images

    spec, layers, folds = "torchvision:resnet18:random", ["layer3", "layer4", "embedding"], 3
    stimuli = load_stimulus_set(write_noise_images(tmp_path / "s", {"faces": 6, "bodies": 6, "scenes": 6}))
    result = localize(
        spec, stimuli, layers=layers, rule="top", top_percent=5, consistency=True, cross_validate=folds, progress=False
    )
    labels = np.array([k for _, k in stimuli.items()])
    fold_of = stratified_folds(labels, folds, seed=0)
    activations = {layer: full_activations(spec, layer, stimuli) for layer in layers}
    pairs = result.tables["consistency"]
    held_out = pairs[(pairs.selection == "held-out") & (pairs.category == stimuli.categories[0])]
    expected = {}
    for fold in range(folds):
        train, test = fold_of != fold, fold_of == fold
        rdms = {}
        for layer, values in activations.items():
            t = stats.ttest_ind(values[train & (labels == 0)], values[train & (labels != 0)], equal_var=False).statistic
            chosen = np.argsort(-t, kind="stable")[: int(np.ceil(0.05 * values.shape[1]))]
            chosen = chosen[t[chosen] > 0]
            rdms[layer] = 1 - np.corrcoef(values[test][:, chosen])[np.triu_indices(test.sum(), 1)]
        for a in layers:
            for b in layers:
                expected.setdefault((a, b), []).append(stats.spearmanr(rdms[a], rdms[b]).statistic)
    assert len(held_out) == len(layers) ** 2
    for row in held_out.itertuples():
        np.testing.assert_allclose(row.spearman, np.mean(expected[row.layer_a, row.layer_b]), atol=1e-6)
    summary = result.tables["consistency_summary"]
    assert set(summary.selection) == {"in-sample", "held-out"}
