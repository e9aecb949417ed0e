"""Lesions: silence a layer's k-selective units and measure category decoding from the final embedding.

The causal test the study lacks. For a saved run, the units of layer L that were k-selective are silenced
during the forward pass — each replaced by its mean response over all stimuli (default; from the run's
per-category means, Σ_k n_k·m_k / N) or by zero — and the model's embedding is read out by a linear
classifier: shrinkage LDA (scikit-learn ``LinearDiscriminantAnalysis`` with Ledoit–Wolf shrinkage on
standardised features), the usual choice in neural decoding when features outnumber images. The classifier is trained on
intact embeddings and tested on held-out images (stratified K-fold, seeded) intact and lesioned, so the
per-category accuracy drop measures what the silenced units carried. Control: lesions of the same number of
units of layer L drawn at random (several seeds). A drop for category k well beyond the random lesions is
causal evidence that the k-selective units matter for k.

Limitation: the lesioned units are those the run selected on all its images, the decoder's held-out images
included (the decoder is cross-validated, the selection is not). Only the final embeddings are kept:
(2 + random lesions) × N × D values, never the layer activations.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from netfloc.errors import NetflocError
from netfloc.models import LoadedModel, load_model
from netfloc.models.base import slugify
from netfloc.models.registry import imports_code, labelled
from netfloc.recording.loader import resolve_device, stream_layers
from netfloc.results import LayerResult
from netfloc.results.run import LESION_DIR, RUN_FILE, layer_file, read_run_info
from netfloc.stimuli import StimulusSet, load_stimulus_set

LesionMode = Literal["mean", "zero"]


@dataclass(frozen=True)
class LesionTarget:
    """Which units of which module to silence, and the values they are replaced with."""

    module_path: str
    units: str
    indices: np.ndarray
    values: np.ndarray
    layout: str = "NCHW"


@contextmanager
def lesioned(module: nn.Module, target: LesionTarget) -> Iterator[None]:
    """Within the context, ``target.module_path`` outputs ``target.values`` at ``target.indices``.

    Element units index the channel-major flattened output (C×H×W; an ``NHWC`` output is silenced through its
    channel-major view); channel units replace whole feature maps or a token dimension."""
    layer = dict(module.named_modules())[target.module_path]
    indices = torch.as_tensor(target.indices, dtype=torch.long)
    values = torch.as_tensor(target.values, dtype=torch.float32)

    def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        silenced = output.clone(memory_format=torch.contiguous_format)  # .view below needs C×H×W memory
        index, value = indices.to(output.device), values.to(output.device, output.dtype)
        view = silenced.permute(0, 3, 1, 2) if target.layout == "NHWC" else silenced
        if target.units == "element" and target.layout == "NHWC":
            _, h, w = view.shape[1:]
            view[:, index // (h * w), (index // w) % h, index % w] = value
        elif target.units == "channel" and silenced.ndim == 3:  # B×T×D tokens: channels are the last axis
            silenced[..., index] = value
        elif target.units == "channel" and silenced.ndim > 3:
            view[:, index] = value.view(1, -1, *([1] * (silenced.ndim - 2)))
        else:
            silenced.view(silenced.shape[0], -1)[:, index] = value
        return silenced

    handle = layer.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def embeddings(
    model: LoadedModel, embedding_path: str, stimuli: StimulusSet, *, batch_size: int, device: torch.device | str
) -> np.ndarray:
    """N × D float64 embedding of every stimulus (the module ``embedding_path``'s output, flattened)."""
    rows = np.zeros((stimuli.n_images, 0))
    for outputs, indices, _ in stream_layers(
        model, {"embedding": embedding_path}, stimuli, batch_size=batch_size, device=device, progress=False
    ):
        values = outputs["embedding"].double().cpu().numpy()
        if rows.shape[1] == 0:
            rows = np.zeros((stimuli.n_images, values.shape[1]))
        rows[indices.numpy()] = values
    return rows


def decoding_accuracy(
    intact: np.ndarray, conditions: dict[str, np.ndarray], labels: np.ndarray, n_folds: int, seed: int
) -> dict[str, np.ndarray]:
    """Per-category held-out accuracy (recall) of a linear classifier trained on intact embeddings,
    tested on each condition's embeddings of the held-out images (stratified K-fold)."""
    n_categories = int(labels.max()) + 1
    correct = {name: np.zeros(n_categories) for name in ("intact", *conditions)}
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for train, test in folds.split(intact, labels):
        classifier = make_pipeline(StandardScaler(), LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto"))
        classifier.fit(intact[train], labels[train])
        for name, features in (("intact", intact), *conditions.items()):
            hits = classifier.predict(features[test]) == labels[test]
            correct[name] += np.bincount(labels[test], weights=hits, minlength=n_categories)
    totals = np.bincount(labels, minlength=n_categories)
    return {name: hits / totals for name, hits in correct.items()}


def lesion_experiment(
    run_dir: str | Path,
    layer: str,
    category: str,
    *,
    model: str | None = None,
    mode: LesionMode = "mean",
    n_random: int = 5,
    n_folds: int = 5,
    embedding: str | None = None,
    stimuli: str | Path | None = None,
    batch_size: int = 32,
    device: str = "auto",
    seed: int = 0,
) -> pd.DataFrame:
    """Silence the ``category``-selective units of ``layer`` in a saved run and measure decoding drops.

    Returns a tidy table: model, layer, lesioned_category, condition (``intact``, ``selective`` or
    ``random``), seed (random lesions; −1 otherwise), n_lesioned, category, accuracy, drop (intact − accuracy).
    """
    run_dir = Path(run_dir)
    info = read_run_info(run_dir)
    entry, given_spec = model_entry(info, model, run_dir)
    result = _layer_result(run_dir, entry, layer)
    if category not in result.categories:
        raise NetflocError(f"category {category!r} is not in run {run_dir}; categories: {', '.join(result.categories)}")
    if info.get("settings", {}).get("tokens", "all") != "all":
        raise NetflocError(
            f"run {run_dir} recorded only some tokens (--tokens {info['settings']['tokens']}); lesions need a run "
            "made with --tokens all"
        )
    k = result.categories.index(category)
    selected = np.flatnonzero(result.selective[k])
    if not len(selected):
        raise NetflocError(f"no {category}-selective units in layer {layer} of {entry['name']}; nothing to lesion")
    if mode not in ("mean", "zero"):
        raise NetflocError(f"--mode must be mean or zero, not {mode!r}")
    if n_random < 2:
        raise NetflocError(f"--random-lesions must be at least 2 (their spread is the yardstick), not {n_random}")
    stimulus_set = stimuli_of_run(info, stimuli, result.categories)
    smallest = min(stimulus_set.counts)
    if not 2 <= n_folds <= smallest:
        raise NetflocError(
            f"--folds must lie between 2 and the smallest category's image count ({smallest}), not {n_folds}"
        )
    loaded = load_run_model(entry, given_spec, info.get("seed", 0))
    embedding_path = _embedding_path(loaded, embedding)
    torch_device = resolve_device(device)
    grand_mean = (result.count[:, None] * result.mean.astype(np.float64)).sum(axis=0) / result.count.sum()

    layout = entry["layers"][layer].get("layout", "NCHW")

    def target(indices: np.ndarray) -> LesionTarget:
        values = grand_mean[indices] if mode == "mean" else np.zeros(len(indices))
        return LesionTarget(result.module_path, result.units, indices, values, layout)

    def embed() -> np.ndarray:
        return embeddings(loaded, embedding_path, stimulus_set, batch_size=batch_size, device=torch_device)

    intact = embed()
    conditions = {}
    with lesioned(loaded.module, target(selected)):
        conditions["selective"] = embed()
    rng = np.random.default_rng([seed, 3])
    for index in range(n_random):
        chosen = np.sort(rng.choice(result.n_units, size=len(selected), replace=False))
        with lesioned(loaded.module, target(chosen)):
            conditions[f"random{index}"] = embed()
    labels = np.array([label for _, label in stimulus_set.items()])
    accuracy = decoding_accuracy(intact, conditions, labels, n_folds, seed)
    return _lesion_table(entry["name"], layer, category, len(selected), result.categories, accuracy)


def _lesion_table(model, layer, category, n_lesioned, categories, accuracy) -> pd.DataFrame:
    rows = []
    for name, values in accuracy.items():
        condition = "random" if name.startswith("random") else name
        seed = int(name.removeprefix("random")) if condition == "random" else -1
        for index, target in enumerate(categories):
            rows.append(
                {
                    "model": model,
                    "layer": layer,
                    "lesioned_category": category,
                    "condition": condition,
                    "seed": seed,
                    "n_lesioned": n_lesioned if condition != "intact" else 0,
                    "category": target,
                    "accuracy": values[index],
                    "drop": accuracy["intact"][index] - values[index],
                }
            )
    return pd.DataFrame(rows)


def lesion_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per category: drop after the selective lesion, mean and SD of the random-lesion drops, and
    z = (drop_selective − mean_random) / SD_random (NaN when the random drops do not vary)."""
    keys = ["model", "layer", "lesioned_category", "category"]
    selective = table[table.condition == "selective"].set_index(keys)["drop"].rename("drop_selective")
    random = table[table.condition == "random"].groupby(keys)["drop"]
    summary = pd.concat(
        [selective, random.mean().rename("drop_random_mean"), random.std().rename("drop_random_sd")], axis=1
    )
    spread = summary["drop_random_sd"].where(summary["drop_random_sd"] > 0)
    summary["z"] = (summary["drop_selective"] - summary["drop_random_mean"]) / spread
    return summary.reset_index()


def model_entry(info: dict, model: str | None, run_dir: Path) -> tuple[dict, str | None]:
    """The run.json entry of the chosen model and the spec the user gave for it (None: a label or nothing).

    ``model`` is a label of the run, or a model spec whose label (``LABEL=`` or the default label) names one."""
    names = [entry["name"] for entry in info["models"]]
    if model is None:
        if len(names) > 1:
            raise NetflocError(f"run {run_dir} holds several models ({', '.join(names)}); choose one with --model")
        return info["models"][0], None
    label, spec = (model, None) if model in names else (labelled(model)[0], model)
    for entry in info["models"]:
        if entry["name"] == label:
            return entry, spec
    raise NetflocError(f"run {run_dir} has no model {label!r}; models: {', '.join(names)}")


def _layer_result(run_dir: Path, entry: dict, layer: str) -> LayerResult:
    if layer not in entry["layers"]:
        raise NetflocError(
            f"layer {layer!r} was not recorded for {entry['name']} in {run_dir}; recorded: {', '.join(entry['layers'])}"
        )
    return LayerResult.load(layer_file(run_dir, entry["name"], layer, run_dir / RUN_FILE))


def stimuli_of_run(info: dict, override: str | Path | None, categories: list[str]) -> StimulusSet:
    """The run's stimuli (or those at ``override``), checked against the digest run.json records."""
    recorded = info.get("stimuli") or {}
    if not isinstance(recorded.get("digest_sha256"), str) or not (override or isinstance(recorded.get("root"), str)):
        raise NetflocError(
            "run.json records no single stimulus folder (a merge of runs on different stimuli?); run the analysis on "
            "one of the source runs"
        )
    root = Path(override) if override else Path(recorded["root"])
    stimuli = load_stimulus_set(root, categories, skip_bad=True, measure=False)
    if stimuli.digest() != recorded["digest_sha256"]:
        raise NetflocError(
            f"the images in {root} differ from those of the run (stimulus digest mismatch); pass --stimuli with the "
            "run's images"
        )
    return stimuli


def load_run_model(entry: dict, given: str | None, seed: int) -> LoadedModel:
    """The run's model, from the spec the user gave or the one run.json records — never a Python file named by
    run.json, since a results folder is untrusted — with its state-dict SHA-256 checked against the run's
    before any layer is touched."""
    spec = given or entry["spec"]
    if given is None and imports_code(spec):
        raise NetflocError(
            f"model {entry['name']} of this run was built by Python code ({spec}); netfloc never runs code named "
            f"by a results folder: pass it yourself with --model {entry['name']}=path/to/file.py:function"
        )
    expected = entry.get("weights", {}).get("state_sha256")
    if not expected:
        raise NetflocError(
            f"run.json records no weights hash for {entry['name']}, so the lesioned model cannot be checked against "
            "the run's; rerun `netfloc run`"
        )
    model = load_model(spec, seed=seed)
    if model.weights.get("state_sha256") != expected:
        raise NetflocError(
            f"the weights of {entry['name']} ({spec}) differ from those of the run (state SHA-256 mismatch); "
            "restore the run's model file or checkpoint"
        )
    return model


def _embedding_path(model: LoadedModel, embedding: str | None) -> str:
    if embedding is None:
        embedding = "embedding" if "embedding" in model.catalog else model.presets[model.default_preset][-1]
    if embedding not in model.catalog:
        raise NetflocError(f"model {model.name} has no layer {embedding!r} to decode from; see `netfloc layers`")
    return model.catalog[embedding]


def save_lesion(run_dir: str | Path, table: pd.DataFrame) -> Path:
    """Write ``RUN_DIR/lesions/<model>__<layer>__<category>.csv`` and ``..._summary.csv`` (each written
    to a temporary name, then renamed); returns the summary's path."""
    first = table.iloc[0]
    stem = slugify(f"{first.model}__{first.layer}__{first.lesioned_category}")
    folder = Path(run_dir) / LESION_DIR
    folder.mkdir(exist_ok=True)
    summary_path = folder / f"{stem}_summary.csv"
    for path, frame in ((folder / f"{stem}.csv", table), (summary_path, lesion_summary(table))):
        partial = path.with_suffix(".csv.partial")
        frame.to_csv(partial, index=False)
        partial.replace(path)
    return summary_path
