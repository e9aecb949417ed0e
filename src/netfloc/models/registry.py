"""Turn a model spec string into a :class:`~netfloc.models.base.LoadedModel`.

Spec forms (an optional ``LABEL=`` prefix names the model in outputs):

- ``torchvision:NAME[:WEIGHTS|random|/path/checkpoint.pth]``
- ``path/to/file.py:function[@path/to/checkpoint.pt]`` (the function builds the module, the checkpoint's
  state_dict is loaded into it)
- a built-in name from :data:`BUILTINS` (``netfloc models`` lists them), ``NAME[:WEIGHTS]``.

Labels may hold ``@`` (the checkpoints of a series are ``LABEL@STEP``, :mod:`netfloc.models.series`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from netfloc.errors import NetflocError
from netfloc.models.base import LoadedModel, slugify
from netfloc.models.torchvision_zoo import load_torchvision
from netfloc.models.user import load_user_model

_LABEL = re.compile(r"^([A-Za-z0-9._@-]+)=(.+)$")
#: Spec prefixes whose weights come after a second colon (``PREFIX:NAME:WEIGHTS``).
NAMED_PREFIXES = ("torchvision", "timm", "open_clip")


@dataclass(frozen=True)
class Builtin:
    """A named model: what it is, where its weights come from, and how to load it."""

    description: str
    weights_source: str
    load: Callable[[str | None, int, str, str], LoadedModel]


BUILTINS: dict[str, Builtin] = {}


def register_builtin(name: str, builtin: Builtin) -> None:
    """Add a built-in model name (used by the model-zoo modules)."""
    BUILTINS[name] = builtin


def split_label(spec: str) -> tuple[str | None, str]:
    """``"r50=torchvision:resnet50"`` -> ``("r50", "torchvision:resnet50")``."""
    match = _LABEL.match(spec)
    if match and not match.group(1).endswith(".py"):
        return match.group(1), match.group(2)
    return None, spec


def labelled(spec: str) -> tuple[str, str]:
    """(output label, spec without ``LABEL=``) of a model spec."""
    label, body = split_label(spec.strip())
    return label or default_label(body), body


def imports_code(spec: str) -> bool:
    """Whether loading ``spec`` imports a Python file (``path/to/file.py:function``)."""
    return ".py:" in labelled(spec)[1]


def default_label(spec: str) -> str:
    """The output label of a spec without ``LABEL=``: ``torchvision:resnet50:random`` ->
    ``torchvision-resnet50-random``; checkpoint paths contribute their file stem."""
    parts = []
    for part in spec.replace("@", ":").split(":"):
        parts.append(part.rsplit("/", 1)[-1].removesuffix(".py").removesuffix(".pth").removesuffix(".pt"))
    return slugify("-".join(part for part in parts if part))


def load_model(spec: str, seed: int = 0) -> LoadedModel:
    """Load the model named by ``spec`` (see module docstring), in eval mode, on the CPU."""
    label, body = labelled(spec)
    if body.startswith("torchvision:"):
        _, name, *rest = body.split(":", 2)
        return load_torchvision(name, rest[0] if rest else None, seed, label, spec)
    if ".py:" in body:
        path, function, checkpoint = split_file_spec(body)
        return load_user_model(path, function, seed, label, spec, checkpoint)
    prefix, _, argument = body.partition(":")
    if prefix in _PREFIX_LOADERS:
        return _PREFIX_LOADERS[prefix](argument, seed, label, spec)
    if prefix in BUILTINS:
        return BUILTINS[prefix].load(argument or None, seed, label, spec)
    known = ", ".join(sorted(BUILTINS)) or "none registered"
    prefixes = "".join(f"{prefix}:..., " for prefix in sorted(_PREFIX_LOADERS))
    raise NetflocError(
        f"unknown model spec {spec!r}: use torchvision:NAME[:WEIGHTS|random], {prefixes}"
        f"path/to/file.py:function[@checkpoint], or a built-in name ({known})"
    )


def split_file_spec(body: str) -> tuple[str, str, str | None]:
    """``"m.py:build@ckpt/s_3.pt"`` -> ``("m.py", "build", "ckpt/s_3.pt")``; the checkpoint is None without ``@``."""
    end = body.index(".py:") + len(".py")
    function, at, checkpoint = body[end + 1 :].partition("@")
    if at and not checkpoint:
        raise NetflocError(f"model spec {body!r} ends with '@': give the checkpoint file after it, or drop the '@'")
    return body[:end], function, checkpoint if at else None


def split_weights(body: str) -> tuple[str, str] | None:
    """``(head, weights)`` of a spec without ``LABEL=`` whose last part names weights, ``head + weights == body``:
    ``file.py:fn@W``, ``torchvision:NAME:W`` (also ``timm``, ``open_clip``) or ``BUILTIN:W``; None when the spec
    names no weights (``resnet50``, ``file.py:fn``)."""
    if ".py:" in body:
        path, function, checkpoint = split_file_spec(body)
        return (f"{path}:{function}@", checkpoint) if checkpoint is not None else None
    prefix, _, rest = body.partition(":")
    if prefix in NAMED_PREFIXES:
        name, colon, weights = rest.partition(":")
        return (f"{prefix}:{name}:", weights) if colon and weights else None
    return (f"{prefix}:", rest) if rest else None


def random_spec(spec: str) -> str:
    """The spec of the same architecture with seeded random weights, labelled ``<label>-random``:
    ``resnet50`` -> ``resnet50-random=resnet50:random``, ``torchvision:alexnet`` ->
    ``torchvision-alexnet-random=torchvision:alexnet:random``. A file model with a checkpoint,
    ``file.py:fn@ckpt.pt``, gets the module its function returns (seeded) without the checkpoint: ``file.py:fn``."""
    label, body = labelled(spec)
    if ".py:" in body:
        path, function, checkpoint = split_file_spec(body)
        if checkpoint is None:
            raise NetflocError(
                f"--baseline random cannot re-initialise the file model {spec!r}; add a random-weight variant "
                "yourself as another --model, or give its weights as a checkpoint (file.py:function@weights.pt)"
            )
        return f"{label}-random={path}:{function}"
    prefix, _, rest = body.partition(":")
    if prefix in NAMED_PREFIXES:
        parts = rest.split(":")
        body = f"{prefix}:{parts[0]}:random"
    else:
        body = f"{prefix}:random"
    return f"{label}-random={body}"


_PREFIX_LOADERS: dict[str, Callable[[str, int, str, str], LoadedModel]] = {}


def register_prefix(prefix: str, loader: Callable[[str, int, str, str], LoadedModel]) -> None:
    """Add a spec prefix such as ``timm`` or ``open_clip``; ``loader(argument, seed, label, spec)``."""
    _PREFIX_LOADERS[prefix] = loader
