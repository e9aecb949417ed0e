"""The study's two models, with matched layer catalogs: ``resnet50`` and ``clip-rn50``.

- ``resnet50[:IMAGENET1K_V1|IMAGENET1K_V2|random|/path/w.pth]``: torchvision ResNet-50 (He et al. 2016),
  ImageNet-supervised, ``IMAGENET1K_V1`` by default; preprocessing from the weights' own transforms.
- ``clip-rn50[:openai|yfcc15m|cc12m|random|/path/RN50.pt]``: the image encoder of CLIP RN50 (Radford et al.
  2021), open_clip's ``ModifiedResNet`` (``model.visual``), OpenAI weights by default; CLIP preprocessing.

Both catalogs use the same names for corresponding points of the two networks, so selectivity can be
compared layer by layer:

========== ================================ ================================ ===========================
name       ResNet-50 module (output)        CLIP RN50 module (output)        note
========== ================================ ================================ ===========================
stem       ``maxpool`` 64×56×56             ``avgpool`` 64×56×56             CLIP: 3-conv stem, avg-pool
layerS.B   bottleneck block B of stage S    same (anti-aliased stride)       16 blocks: 3, 4, 6, 3
layerS     stage S: 256×56², 512×28²,       same shapes                      last block of the stage
           1024×14², 2048×7²
embedding  ``avgpool`` 2048×1×1             ``attnpool`` 1024                CLIP: attention pooling
========== ================================ ================================ ===========================

Presets: ``stages`` (default: stem, layer1–4, embedding) and ``blocks`` (stem, the 16 blocks, embedding).
Every module path is also in both catalogs.
"""

from __future__ import annotations

import os
import urllib.error
from pathlib import Path
from typing import Any

import torch
from torch import nn

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
from netfloc.models.torchvision_zoo import RESNET_STAGES, build_seeded, is_checkpoint_path, load_torchvision

RESNET50_DEFAULT_WEIGHTS = "IMAGENET1K_V1"
CLIP_ARCH = "RN50"
CLIP_DEFAULT_TAG = "openai"


def load_resnet50(weights: str | None, seed: int, label: str, spec: str) -> LoadedModel:
    """torchvision ResNet-50: ``IMAGENET1K_V1`` (default), ``IMAGENET1K_V2``, ``random`` or a checkpoint."""
    return load_torchvision("resnet50", weights or RESNET50_DEFAULT_WEIGHTS, seed, label, spec)


def clip_resnet_catalog(module: nn.Module) -> tuple[dict[str, str], dict[str, list[str]]]:
    """The ResNet-50 catalog names for open_clip's ``ModifiedResNet``: ``stem`` = ``avgpool`` (end of
    the 3-conv stem), ``layerS.B``, ``layerS``, ``embedding`` = ``attnpool``; presets stages, blocks."""
    catalog = module_catalog(module)
    catalog.update({"stem": "avgpool", "embedding": "attnpool"})
    blocks = [f"{stage}.{name}" for stage in RESNET_STAGES for name, _ in getattr(module, stage).named_children()]
    presets = {"stages": ["stem", *RESNET_STAGES, "embedding"], "blocks": ["stem", *blocks, "embedding"]}
    return catalog_with_presets(catalog, presets)


def build_clip_visual(arch: str = CLIP_ARCH) -> nn.Module:
    """A randomly initialised open_clip ``ModifiedResNet`` image encoder for a ``RN*`` architecture.

    Mirrors ``open_clip.model._build_vision_tower`` (heads = width·32 / 64), without the text tower.
    """
    import open_clip
    from open_clip.modified_resnet import ModifiedResNet

    config = open_clip.get_model_config(arch)
    vision = config["vision_cfg"]
    heads = vision["width"] * 32 // vision.get("head_width", 64)
    return ModifiedResNet(
        layers=vision["layers"],
        output_dim=config["embed_dim"],
        heads=heads,
        image_size=vision["image_size"],
        width=vision["width"],
    )


def clip_transform(arch: str = CLIP_ARCH, tag: str = CLIP_DEFAULT_TAG) -> Transform:
    """CLIP's evaluation preprocessing from open_clip: bicubic resize of the short side to 224, centre crop
    224, CLIP mean/std (Radford et al. 2021; ``open_clip.transform.image_transform``)."""
    import open_clip
    from open_clip.transform import image_transform

    pretrained = open_clip.get_pretrained_cfg(arch, tag)
    return image_transform(
        open_clip.get_model_config(arch)["vision_cfg"]["image_size"],
        is_train=False,
        mean=pretrained.get("mean"),
        std=pretrained.get("std"),
        resize_mode=pretrained.get("resize_mode"),
        interpolation=pretrained.get("interpolation"),
    )


def visual_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The image-encoder part of a CLIP state_dict: ``visual.*`` keys without the prefix (OpenAI and
    open_clip full-model checkpoints); a visual-only state_dict is returned unchanged."""
    if any(key.startswith("visual.") for key in state):
        return {key.removeprefix("visual."): value for key, value in state.items() if key.startswith("visual.")}
    return state


def load_clip_rn50(weights: str | None, seed: int, label: str, spec: str) -> LoadedModel:
    """CLIP RN50 image encoder: pretrained (``openai``, ``yfcc15m``, ``cc12m``), random or file weights."""
    return load_clip_resnet(CLIP_ARCH, weights or CLIP_DEFAULT_TAG, seed, label, spec)


def load_clip_resnet(arch: str, weights: str, seed: int, label: str, spec: str) -> LoadedModel:
    """An open_clip ``RN*`` image encoder; ``weights`` is a pretrained tag, ``random`` or a file path."""
    module = build_seeded(lambda: build_clip_visual(arch), seed)
    tag = CLIP_DEFAULT_TAG
    identity: dict[str, Any]
    if weights == "random":
        identity = {"source": "random", "seed": seed}
    elif is_checkpoint_path(weights):
        path = Path(weights).expanduser()
        load_into(module, visual_state_dict(load_state_dict_file(path)), str(path))
        identity = {"source": "checkpoint", "path": str(path.resolve()), "file_sha256": sha256_file(path)}
    else:
        tag = weights
        path = download_clip_weights(arch, tag)
        load_into(module, visual_state_dict(load_state_dict_file(path)), f"open_clip {arch} {tag} ({path})")
        identity = {"source": "open_clip", "arch": arch, "tag": tag, "path": str(path)}
        identity["file_sha256"] = sha256_file(path)
    # fp16 checkpoints (OpenAI's archive) are copied into float32 parameters by load_state_dict.
    module.float().eval()
    identity["state_sha256"] = state_dict_sha256(module)
    catalog, presets = clip_resnet_catalog(module)
    return LoadedModel(label, spec, module, clip_transform(arch, tag), catalog, presets, "stages", identity)


def download_clip_weights(arch: str, tag: str) -> Path:
    """Path of the pretrained open_clip checkpoint ``arch``/``tag``, downloaded once (with a progress bar)
    into the Hugging Face cache by open_clip's own code; a one-line error when offline and not cached."""
    import open_clip
    from open_clip.pretrained import download_pretrained

    config = open_clip.get_pretrained_cfg(arch, tag)
    if not config:
        known = ", ".join(open_clip.list_pretrained_tags_by_model(arch)) or "none"
        raise NetflocError(
            f"open_clip {arch} has no pretrained weights {tag!r}; choose one of {known}, 'random' or a file path"
        )
    try:
        target = download_pretrained(config)
    except (OSError, RuntimeError, ValueError, urllib.error.URLError) as error:
        raise NetflocError(_missing_weights_message(arch, tag, config, error)) from None
    if not target or not Path(target).is_file():
        raise NetflocError(_missing_weights_message(arch, tag, config, None))
    return Path(target)


def _missing_weights_message(arch: str, tag: str, config: dict[str, Any], error: BaseException | None) -> str:
    detail = str(error).splitlines()[0].split(". Last error:")[0] if error is not None and str(error) else ""
    reason = f" ({detail})" if detail else ""
    repo, filename = os.path.split(config.get("hf_hub", ""))  # open_clip's convention: "org/model/[file]"
    hub = bool(repo)
    filename = filename or "open_clip_pytorch_model.bin"
    cache = _hf_cache_dir()
    sources = [f"https://huggingface.co/{repo}/resolve/main/{filename}"] if hub else []
    if config.get("url"):
        sources.append(config["url"])
    spec_name = "clip-rn50" if arch == CLIP_ARCH else f"open_clip:{arch}"
    return (
        f"weights {tag!r} of CLIP {arch} are not in the Hugging Face cache ({cache}) and could not be "
        f"downloaded{reason}; with a connection they download once, otherwise download "
        f"{' or '.join(sources)} and pass it as {spec_name}:/path/to/file"
    )


def _hf_cache_dir() -> str:
    try:
        from huggingface_hub import constants
    except ImportError:
        return "~/.cache/huggingface/hub"
    return str(constants.HF_HUB_CACHE)
