"""More model sources: ``timm:NAME[:pretrained|random|/path]`` and ``open_clip:ARCH[:TAG|random|/path]``.

timm (Wightman, pytorch-image-models) is optional (``pip install netfloc[timm]``); its default layers come
from ``model.feature_info`` (the top-level stages timm itself exposes for feature extraction). open_clip
``RN*`` encoders get the matched ResNet catalog of :mod:`netfloc.models.resnet_clip`; other open_clip encoders
(ViTs) default to their transformer blocks. Pretrained weights download once into the Hugging Face cache.
"""

from __future__ import annotations

import logging
import urllib.error
from pathlib import Path
from typing import Any

from torch import nn

from netfloc.errors import NetflocError, first_line
from netfloc.files import sha256_file
from netfloc.models.base import LoadedModel, module_catalog, state_dict_sha256, top_level_preset
from netfloc.models.checkpoints import load_into, load_state_dict_file
from netfloc.models.resnet_clip import download_clip_weights, load_clip_resnet, visual_state_dict
from netfloc.models.torchvision_zoo import build_seeded, is_checkpoint_path


def _checkpoint_identity(path: Path) -> dict[str, Any]:
    return {"source": "checkpoint", "path": str(path.resolve()), "file_sha256": sha256_file(path)}


def load_timm(argument: str, seed: int, label: str, spec: str) -> LoadedModel:
    """``timm:NAME[:pretrained|random|/path/checkpoint.pth]`` (pretrained by default)."""
    try:
        import timm
        import timm.data
    except ImportError:
        raise NetflocError(
            f"model spec {spec!r} needs the timm package: pip install timm (or pip install 'netfloc[timm]')"
        ) from None
    name, _, weights = argument.partition(":")
    weights = weights or "pretrained"
    if not name or not timm.is_model(name):
        close = timm.list_models(f"*{name}*")[:5] if name else []
        hint = f" (similar: {', '.join(close)})" if close else ""
        raise NetflocError(f"timm has no model {name!r} (model spec {spec!r}){hint}; see timm.list_models()")
    if weights == "random" or is_checkpoint_path(weights):
        module = build_seeded(lambda: timm.create_model(name, pretrained=False), seed)
        if weights == "random":
            identity: dict[str, Any] = {"source": "random", "seed": seed}
        else:
            path = Path(weights).expanduser()
            load_into(module, load_state_dict_file(path), str(path))
            identity = _checkpoint_identity(path)
    elif weights == "pretrained":
        module, identity = _timm_pretrained(timm, name, spec)
    else:
        raise NetflocError(
            f"timm weights {weights!r} are not understood (model spec {spec!r}); use pretrained, random or a "
            "checkpoint path (pick a pretrained tag in the name, e.g. timm:resnet50.a1_in1k)"
        )
    module.eval()
    identity["state_sha256"] = state_dict_sha256(module)
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=module), is_training=False)
    catalog, presets = timm_catalog(module)
    return LoadedModel(label, spec, module, transform, catalog, presets, next(iter(presets)), identity)


def _timm_pretrained(timm: Any, name: str, spec: str) -> tuple[nn.Module, dict[str, Any]]:
    config = timm.models.get_pretrained_cfg(name)
    if config is None or not (config.hf_hub_id or config.url or config.file):
        raise NetflocError(
            f"timm model {name!r} has no pretrained weights (model spec {spec!r}); use timm:{name}:random or "
            "a name with a pretrained tag from timm.list_pretrained()"
        )
    try:
        module = timm.create_model(name, pretrained=True)
    except (OSError, RuntimeError, ValueError, urllib.error.URLError) as error:
        reason = first_line(error)
        source = f"https://huggingface.co/{config.hf_hub_id}" if config.hf_hub_id else config.url
        raise NetflocError(
            f"pretrained weights of timm {name} are not cached and could not be downloaded ({reason}); "
            f"with a connection they download once into the Hugging Face cache, otherwise download them from "
            f"{source} and pass the file as timm:{name}:/path/to/file"
        ) from None
    identity: dict[str, Any] = {"source": "timm", "name": name, "tag": config.tag}
    identity.update({key: value for key in ("hf_hub_id", "url") if (value := getattr(config, key))})
    cached = _hf_cached_file(config.hf_hub_id, ("model.safetensors", "pytorch_model.bin"))
    if cached is not None:
        identity.update(path=str(cached), file_sha256=sha256_file(cached))
    return module, identity


def _hf_cached_file(repo: str | None, filenames: tuple[str, ...]) -> Path | None:
    """The first of ``filenames`` that the Hugging Face cache holds for ``repo`` (no network access)."""
    if not repo:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for filename in filenames:
        found = try_to_load_from_cache(repo, filename)
        if isinstance(found, str):
            return Path(found)
    return None


def timm_catalog(module: nn.Module) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Every module path; preset ``stages`` from ``feature_info`` (plus ``global_pool`` when present),
    else ``top`` (the direct children)."""
    catalog = module_catalog(module)
    info = getattr(module, "feature_info", None)
    stages = [entry["module"] for entry in info or [] if isinstance(entry, dict) and entry.get("module") in catalog]
    if stages:
        if "global_pool" in catalog and not isinstance(module.get_submodule("global_pool"), nn.Identity):
            stages.append("global_pool")
        return catalog, {"stages": stages}
    return catalog, {"top": top_level_preset(module)}


def load_open_clip(argument: str, seed: int, label: str, spec: str) -> LoadedModel:
    """``open_clip:ARCH[:TAG|random|/path]``: the image encoder (``model.visual``) of an open_clip model."""
    import open_clip

    arch, _, weights = argument.partition(":")
    config = open_clip.get_model_config(arch) if arch else None
    if config is None:
        raise NetflocError(
            f"open_clip has no architecture {arch!r} (model spec {spec!r}); see open_clip.list_models(), "
            "e.g. open_clip:RN50:openai or open_clip:ViT-B-32:openai"
        )
    tags = open_clip.list_pretrained_tags_by_model(arch)
    weights = weights or ("openai" if "openai" in tags else (tags[0] if tags else "random"))
    if isinstance(config["vision_cfg"].get("layers"), list | tuple):
        return load_clip_resnet(arch, weights, seed, label, spec)
    pretrained = (
        {} if weights == "random" or is_checkpoint_path(weights) else open_clip.get_pretrained_cfg(arch, weights)
    )
    quick_gelu = pretrained.get("quick_gelu", False)
    logging.disable(logging.WARNING)  # open_clip warns "initialized randomly"; weights are loaded below
    try:
        model = build_seeded(lambda: open_clip.create_model(arch, force_quick_gelu=quick_gelu), seed)
    finally:
        logging.disable(logging.NOTSET)
    module = model.visual
    if weights == "random":
        identity: dict[str, Any] = {"source": "random", "seed": seed}
    elif is_checkpoint_path(weights):
        path = Path(weights).expanduser()
        load_into(module, visual_state_dict(load_state_dict_file(path)), str(path))
        identity = _checkpoint_identity(path)
    else:
        path = download_clip_weights(arch, weights)
        load_into(module, visual_state_dict(load_state_dict_file(path)), f"open_clip {arch} {weights} ({path})")
        identity = {"source": "open_clip", "arch": arch, "tag": weights, "path": str(path)}
        identity["file_sha256"] = sha256_file(path)
    module.eval()
    identity["state_sha256"] = state_dict_sha256(module)
    transform = _open_clip_transform(module, pretrained)
    catalog = module_catalog(module)
    blocks = [path for path in catalog if path.startswith("transformer.resblocks.") and path.count(".") == 2]
    presets = {"blocks": blocks} if blocks else {"top": top_level_preset(module)}
    return LoadedModel(label, spec, module, transform, catalog, presets, next(iter(presets)), identity)


def _open_clip_transform(module: nn.Module, pretrained: dict[str, Any]):
    from open_clip.transform import PreprocessCfg, image_transform_v2, merge_preprocess_dict

    base = getattr(module, "preprocess_cfg", None) or {"size": getattr(module, "image_size", 224)}
    return image_transform_v2(PreprocessCfg(**merge_preprocess_dict(base, pretrained)), is_train=False)
