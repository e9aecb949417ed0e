"""Batch axis and layouts: sequence-first outputs are refused, channels-last outputs are recognised, tokens
are chosen explicitly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from netfloc.analysis.lesion import LesionTarget, lesioned
from netfloc.errors import NetflocError
from netfloc.recording.hooks import LayerRecorder
from netfloc.recording.layouts import declared_layout


class SequenceFirst(nn.Module):
    """Returns tokens as T×B×D, as old open_clip transformers did."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.flatten(2).transpose(1, 2)  # B×T×D
        return self.blocks(tokens.transpose(0, 1))


class ChannelsLast(nn.Module):
    """A timm-style model whose stage outputs B×H×W×C (declared by ``output_fmt``)."""

    output_fmt = "NHWC"

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.stage = nn.Identity()
        self.feature_info = [{"module": "stage", "num_chs": 4}]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stage(self.conv(x).permute(0, 2, 3, 1))


class Tokens(nn.Module):
    """A ViT-like model: one class token then 4 patch tokens of width 3 (B×5×3)."""

    def __init__(self, prefix: int = 1) -> None:
        super().__init__()
        self.num_prefix_tokens = prefix
        self.block = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


def test_sequence_first_output_is_refused_naming_the_layer_and_the_batch():
    with LayerRecorder(SequenceFirst(), {"blocks": "blocks"}) as recorder, pytest.raises(NetflocError) as error:
        recorder.record(torch.randn(3, 6, 5, 1))
    message = str(error.value)
    assert "'blocks'" in message and "batch" in message and "\n" not in message


def test_channels_last_is_recognised_and_units_are_channel_major():
    model = ChannelsLast().eval()
    images = torch.randn(2, 3, 5, 6)
    assert declared_layout(model, "stage") == "NHWC" and declared_layout(model, "conv") is None
    with LayerRecorder(model, {"stage": "stage", "conv": "conv"}, units="channel") as recorder:
        channel = recorder.record(images)
    with LayerRecorder(model, {"stage": "stage", "conv": "conv"}) as recorder:
        element = recorder.record(images)
    assert recorder.layouts == {"stage": "NHWC", "conv": "NCHW"}
    assert recorder.shapes["stage"] == recorder.shapes["conv"] == (4, 5, 6)
    torch.testing.assert_close(element["stage"], element["conv"])  # C×H×W order whatever the layout
    torch.testing.assert_close(channel["stage"], model.conv(images).double().mean(dim=(2, 3)))
    torch.testing.assert_close(channel["stage"], channel["conv"])


def test_timm_swin_stages_are_channels_last():
    timm = pytest.importorskip("timm")
    model = timm.create_model(
        "swin_tiny_patch4_window7_224", pretrained=False, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1), embed_dim=8
    ).eval()
    layers = {entry["module"]: entry["module"] for entry in model.feature_info}
    with LayerRecorder(model, layers, units="channel") as recorder:
        recorder.record(torch.randn(2, 3, 224, 224))
    assert set(recorder.layouts.values()) == {"NHWC"}
    channels = [recorder.shapes[entry["module"]][0] for entry in model.feature_info]
    assert channels == [entry["num_chs"] for entry in model.feature_info]
    assert declared_layout(model, "patch_embed.proj") is None


@pytest.mark.parametrize(
    ("tokens", "expected"), [("all", slice(None)), ("patch", slice(1, None)), ("cls", slice(0, 1))]
)
def test_tokens_choose_which_tokens_are_units(tokens, expected):
    x = torch.randn(2, 5, 3)
    with LayerRecorder(Tokens(), {"block": "block"}, units="channel", tokens=tokens) as recorder:
        channel = recorder.record(x)["block"]
    torch.testing.assert_close(channel, x[:, expected].double().mean(dim=1))
    with LayerRecorder(Tokens(), {"block": "block"}, tokens=tokens) as recorder:
        element = recorder.record(x)["block"]
    torch.testing.assert_close(element, x[:, expected].reshape(2, -1))
    assert recorder.layouts["block"] == "NLC"


def test_patch_tokens_need_a_model_with_prefix_tokens():
    with (
        LayerRecorder(Tokens(prefix=0), {"block": "block"}, tokens="patch") as recorder,
        pytest.raises(NetflocError, match="--tokens all"),
    ):
        recorder.record(torch.randn(2, 5, 3))


def test_lesion_of_a_channels_last_layer_hits_the_recorded_unit():
    model = ChannelsLast().eval()
    images = torch.randn(1, 3, 2, 3)
    unit = 1 * 6 + 1 * 3 + 2  # channel 1, row 1, column 2 in C×H×W order
    target = LesionTarget("stage", "element", np.array([unit]), np.array([7.0]), layout="NHWC")
    with lesioned(model, target), torch.no_grad():
        output = model(images)
    assert output[0, 1, 2, 1].item() == 7.0
    assert (output != 7.0).sum().item() == output.numel() - 1
