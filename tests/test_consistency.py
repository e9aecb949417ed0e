"""The second pass for representational consistency against RDMs from full activations."""

from __future__ import annotations

import numpy as np
import torch
from scipy import stats

from netfloc import localize
from netfloc.analysis.consistency import pearson_rdm
from netfloc.api import _ImageDataset
from netfloc.models import load_model
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
    dataset = _ImageDataset(stimuli.items(), model)
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
            row = pairs[(pairs.category == category) & (pairs.layer_a == layer_a) & (pairs.layer_b == layer_b)]
            expected = stats.spearmanr(rdms[layer_a], rdms[layer_b]).statistic
            np.testing.assert_allclose(row.spearman.item(), expected, atol=1e-6)
    summary = result.tables["consistency_summary"]
    assert set(summary.columns) == {"model", "category", "n_layers", "mean_off_diagonal"}
    assert (summary.n_layers == 3).all()
