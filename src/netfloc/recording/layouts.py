"""Layouts of recorded layer outputs, and how they become units.

Every recorded output has the batch first. Its layout is one of

- ``NC``: B×D vectors (pooled features, logits, embeddings);
- ``NCHW``: B×C×H×W feature maps (torchvision, timm CNNs);
- ``NHWC``: B×H×W×C channels-last feature maps (timm Swin-style stages, declared by timm through
  ``output_fmt``);
- ``NLC``: B×T×D tokens (vision transformers, batch-first).

The layout is never guessed from the rank alone where a model declares it: a module with its own
``output_fmt`` attribute (timm ``PatchEmbed``), a module named in ``feature_info`` of a model whose
``output_fmt`` is ``NHWC``, and every non-convolutional 4-D output of such a model are channels-last.

Units are always stored channel-major: ``NHWC`` outputs are permuted to C×H×W (copies before flattening, moments
at the end of the pass, below), so the recorded ``shape`` is (C, H, W) for both feature-map layouts and the
feature-map analyses read C from axis 0. ``--units channel`` averages each channel over H×W (``NCHW``/``NHWC``) or
over the chosen tokens (``NLC``: ``--tokens all`` every token, ``patch`` the tokens after the model's prefix
(class/register) tokens, ``cls`` the prefix tokens only); ``NC`` vectors are their own channels.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn

from netfloc.errors import NetflocError

Layout = Literal["NC", "NCHW", "NHWC", "NLC", "NCDHW"]
UnitsName = Literal["element", "channel"]
TokensName = Literal["all", "patch", "cls"]
#: Order of a B×U view's units: C×H×W (``channel_major``) or H×W×C (``channels_last``; any rank ≥ 3).
UnitOrder = Literal["channel_major", "channels_last"]
RANK_LAYOUTS: dict[int, Layout] = {1: "NC", 2: "NC", 3: "NLC", 4: "NCHW", 5: "NCDHW"}
_CHANNELS_FIRST_MODULES = (nn.Conv2d, nn.BatchNorm2d, nn.ConvTranspose2d, nn.MaxPool2d, nn.AvgPool2d)


def declared_layout(root: nn.Module, path: str) -> Layout | None:
    """The layout a model declares for the 4-D output of module ``path`` (timm conventions), or None."""
    module = root.get_submodule(path)
    own = getattr(module, "output_fmt", None)
    if own is not None:
        return "NHWC" if _format_name(own) == "NHWC" else "NCHW"
    if _format_name(getattr(root, "output_fmt", "NCHW")) != "NHWC":
        return None
    features = {entry.get("module") for entry in getattr(root, "feature_info", None) or [] if isinstance(entry, dict)}
    if path in features or not isinstance(module, _CHANNELS_FIRST_MODULES):
        return "NHWC"
    return None


def _format_name(value: object) -> str:
    """``'NHWC'`` for the string or for timm's ``Format.NHWC`` enum member."""
    return str(getattr(value, "value", value))


def prefix_tokens(root: nn.Module) -> int:
    """Number of class/register tokens before the patch tokens (timm ``num_prefix_tokens``; open_clip's
    ``class_embedding``)."""
    count = getattr(root, "num_prefix_tokens", None)
    if count is not None:
        return int(count)
    return 1 if isinstance(getattr(root, "class_embedding", None), torch.Tensor) else 0


def output_layout(tensor: torch.Tensor, declared: Layout | None, layer: str) -> Layout:
    """The layout of one output: the declared one for 4-D outputs, else by rank."""
    if tensor.ndim == 4 and declared is not None:
        return declared
    if tensor.ndim not in RANK_LAYOUTS:
        raise NetflocError(
            f"layer {layer!r} outputs a {tensor.ndim}-D tensor of shape {tuple(tensor.shape)}; netfloc records "
            "1-D to 5-D outputs with the batch first — choose another layer (see `netfloc layers`)"
        )
    return RANK_LAYOUTS[tensor.ndim]


def channel_major(tensor: torch.Tensor, layout: Layout, tokens: TokensName, n_prefix: int, layer: str) -> torch.Tensor:
    """The output with channels on axis 1 (``NHWC`` permuted to ``NCHW``) and, for ``NLC``, only the chosen
    tokens (a view where possible)."""
    if layout == "NHWC":
        return tensor.permute(0, 3, 1, 2)
    if layout != "NLC" or tokens == "all":
        return tensor
    if n_prefix < 1:
        raise NetflocError(
            f"--tokens {tokens} needs a model with class or register tokens, and layer {layer!r} comes from a model "
            "without any; use --tokens all"
        )
    return tensor[:, n_prefix:] if tokens == "patch" else tensor[:, :n_prefix]


def memory_order(tensor: torch.Tensor) -> UnitOrder:
    """``channels_last`` when the B×C×… output is stored with its channels innermost (so B×(…·C) is a view),
    else ``channel_major``."""
    if tensor.ndim >= 3 and not tensor.is_contiguous() and tensor.movedim(1, -1).is_contiguous():
        return "channels_last"
    return "channel_major"


def channel_major_units(values: np.ndarray, shape: tuple[int, ...], order: UnitOrder) -> np.ndarray:
    """Rows of units in ``order`` (G×U, C-contiguous) for an output of channel-major ``shape`` (C, …), put in
    C×… order in place, one row at a time (one row of extra memory); returns ``values``."""
    if order == "channel_major":
        return values
    for row in values:
        row[:] = np.moveaxis(row.reshape(*shape[1:], shape[0]), -1, 0).ravel()
    return values


def to_units(
    tensor: torch.Tensor, layout: Layout, units: UnitsName, copy: bool = True, order: UnitOrder = "channel_major"
) -> torch.Tensor:
    """A channel-major output as B×U units: every element (in ``order``: C×H×W, or H×W×C for
    ``channels_last``), or the mean of each channel over space or tokens (in float64). With ``copy`` the result
    shares no memory with the output, so no later in-place operation can change it; without, elements are a
    view where memory holds them in ``order``."""
    if units == "element" or layout == "NC":
        ordered = tensor.detach().movedim(1, -1) if order == "channels_last" else tensor.detach()
        flat = ordered.reshape(tensor.shape[0], -1)
        return flat.clone() if copy and flat.data_ptr() == tensor.data_ptr() else flat
    if layout == "NLC":
        return tensor.detach().mean(dim=1, dtype=torch.float64)
    return tensor.detach().mean(dim=tuple(range(2, tensor.ndim)), dtype=torch.float64)
