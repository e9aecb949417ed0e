"""Safe loading of weight files: nothing in a checkpoint is ever executed.

Pickled checkpoints are read with ``torch.load(..., weights_only=True)``, which unpickles tensors and
plain containers only; a file that needs anything else is refused with a one-line error.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn

from netfloc.errors import NetflocError, first_line
from netfloc.models.torchscript_archive import is_torchscript_archive, read_torchscript_state_dict

_NESTED_KEYS = ("state_dict", "model", "model_state_dict", "module")


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """Read a state_dict from ``path`` without executing anything stored in it.

    Accepts a bare state_dict or a dict that nests one under ``state_dict``/``model``/``module``, and
    strips a ``module.`` prefix left by DataParallel. TorchScript archives (e.g. OpenAI's CLIP ``RN50.pt``)
    are read by :mod:`netfloc.models.torchscript_archive`, ``.safetensors`` files by ``safetensors``.
    """
    if not path.is_file():
        raise NetflocError(f"checkpoint {path} does not exist; give the path of a .pth/.pt weights file")
    if is_torchscript_archive(path):
        return read_torchscript_state_dict(path)
    if path.suffix == ".safetensors":
        return _unwrap_state_dict(_load_safetensors(path), path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reason = _unpickler_reason(str(error))
        if "invalid load key" in str(error) or reason.startswith("Unsupported operand"):
            raise NetflocError(f"{path} is not a PyTorch checkpoint (not a pickle or zip archive)") from None
        raise NetflocError(
            f"refusing to load checkpoint {path}: it holds objects other than tensors, which could run code "
            f"when unpickled ({reason}); re-save it as a plain state_dict with torch.save(model.state_dict())"
        ) from None
    except (RuntimeError, OSError, EOFError) as error:
        raise NetflocError(f"cannot read checkpoint {path}: {first_line(error)}") from None
    return _unwrap_state_dict(loaded, path)


def _unpickler_reason(message: str) -> str:
    """What torch's weights-only unpickler objected to, without torch's advice to disable it."""
    _, _, after = message.partition("WeightsUnpickler error:")
    details = [line.strip() for line in after.splitlines() if line.strip()]
    return details[0] if details else (message.strip().splitlines() or ["unreadable pickle"])[0]


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        from safetensors import SafetensorError
        from safetensors.torch import load_file
    except ImportError:
        raise NetflocError(f"reading {path} needs the safetensors package: pip install safetensors") from None
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as error:
        reason = first_line(error)
        raise NetflocError(f"cannot read safetensors checkpoint {path}: {reason}") from None


def _unwrap_state_dict(loaded: object, path: Path) -> dict[str, torch.Tensor]:
    for key in _NESTED_KEYS:
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
            break
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise NetflocError(f"checkpoint {path} is not a state_dict (a dict of parameter name -> tensor)")
    if loaded and all(key.startswith("module.") for key in loaded):
        loaded = {key.removeprefix("module."): value for key, value in loaded.items()}
    return loaded


def load_into(module: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state_dict`` into ``module`` strictly; mismatches become a one-line error naming ``source``."""
    try:
        result = module.load_state_dict(state_dict, strict=False)
    except RuntimeError as error:  # shape mismatches raise even with strict=False
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        detail = next((line for line in lines if line.startswith("size mismatch")), lines[-1] if lines else "")
        detail = detail.rstrip(".")
        raise NetflocError(
            f"weights in {source} do not fit the architecture: {detail}; "
            "check that the checkpoint belongs to this model"
        ) from None
    problems = []
    if result.missing_keys:
        problems.append(f"missing {len(result.missing_keys)} keys (e.g. {_first(result.missing_keys)})")
    if result.unexpected_keys:
        problems.append(f"{len(result.unexpected_keys)} unexpected keys (e.g. {_first(result.unexpected_keys)})")
    if problems:
        raise NetflocError(
            f"weights in {source} do not fit the architecture: {'; '.join(problems)}; "
            "check that the checkpoint belongs to this model"
        )


def _first(keys: list[str], count: int = 3) -> str:
    """The first ``count`` keys, comma-separated, with "…" when there are more."""
    return ", ".join(keys[:count]) + (", …" if len(keys) > count else "")
