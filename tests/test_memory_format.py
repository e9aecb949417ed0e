"""Channels-last forward passes: units reach the accumulators in memory order without a copy, the moments come
out channel-major, ``auto`` picks the format by the network's modules, and lesions still hit their unit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from netfloc.analysis.lesion import LesionTarget, lesioned
from netfloc.errors import NetflocError
from netfloc.models.base import LoadedModel
from netfloc.moments.accumulator import UpcastBuffer
from netfloc.moments.groupings import category_grouping
from netfloc.moments.stream import record_moments
from netfloc.recording import allocator
from netfloc.recording.hooks import LayerRecorder
from netfloc.recording.layouts import channel_major_units, memory_order
from netfloc.recording.loader import hooked_batches, resolve_memory_format
from netfloc.stimuli import load_stimulus_set


class SmallCNN(nn.Module):
    """Three channels in, feature maps of 5 channels on a non-square grid (so a wrong unit order shows)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 3, padding=1)
        self.block = nn.Sequential(nn.Conv2d(5, 5, 3, padding=1), nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.block(self.conv(x))).flatten(1)


def test_memory_order_and_channel_major_units_match_numpy():
    tensor = torch.randn(2, 5, 3, 4)
    assert memory_order(tensor) == "channel_major"
    stored = tensor.contiguous(memory_format=torch.channels_last)
    assert memory_order(stored) == "channels_last"
    rows = stored.permute(0, 2, 3, 1).reshape(2, -1).double().numpy()  # H×W×C order, as memory holds it
    expected = tensor.reshape(2, -1).double().numpy()
    np.testing.assert_array_equal(channel_major_units(rows, (5, 3, 4), "channels_last"), expected)
    np.testing.assert_array_equal(channel_major_units(expected, (5, 3, 4), "channel_major"), expected)
    assert memory_order(torch.randn(2, 7)) == "channel_major"


def test_channels_last_sink_gets_views_in_memory_order_and_copies_stay_channel_major():
    model = SmallCNN().eval().to(memory_format=torch.channels_last)
    images = torch.randn(2, 3, 6, 7).contiguous(memory_format=torch.channels_last)
    storage, seen = {}, {}
    handle = model.conv.register_forward_hook(lambda _m, _i, out: storage.__setitem__("conv", out.data_ptr()))

    def sink(name: str, values: torch.Tensor) -> None:
        seen[name] = (values.clone(), values.data_ptr())

    try:
        with LayerRecorder(model, {"conv": "conv"}, sink=sink) as recorder:
            recorder.record(images)
    finally:
        handle.remove()
    with LayerRecorder(model, {"conv": "conv"}) as copies:
        copied = copies.record(images)["conv"]
    assert recorder.unit_orders == {"conv": "channels_last"} and copies.unit_orders == {}
    assert seen["conv"][1] == storage["conv"], "the sink got a copy"
    reordered = channel_major_units(seen["conv"][0].double().numpy(), recorder.shapes["conv"], "channels_last")
    np.testing.assert_array_equal(reordered, copied.double().numpy())


def test_a_later_batch_in_another_format_is_copied_into_the_first_batchs_order():
    model = SmallCNN().eval()
    first, second = torch.randn(2, 3, 6, 7), torch.randn(2, 3, 6, 7)
    seen = []
    with LayerRecorder(model, {"conv": "conv"}, sink=lambda _name, values: seen.append(values.clone())) as recorder:
        recorder.record(first.contiguous(memory_format=torch.channels_last))
        recorder.record(second)  # contiguous weights and input: a C×H×W output
    assert recorder.unit_orders == {"conv": "channels_last"}
    with torch.no_grad():
        expected = model.conv(second).permute(0, 2, 3, 1).reshape(2, -1)
    torch.testing.assert_close(seen[1], expected)


@pytest.fixture
def stimuli(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for category in ("faces", "places"):
        (tmp_path / category).mkdir()
        for index in range(5):
            pixels = rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / category / f"{index}.png")
    return load_stimulus_set(tmp_path)


def small_model() -> LoadedModel:
    torch.manual_seed(0)
    catalog = {"conv": "conv", "block": "block"}
    return LoadedModel("small", "small", SmallCNN().eval(), _to_tensor, catalog, {"all": list(catalog)}, "all")


def _to_tensor(image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


def test_channels_last_moments_are_channel_major_and_equal_a_float64_reference(stimuli):
    """The moments of a channels-last pass equal float64 statistics of the same pass's outputs copied in C×H×W
    order (a missing or wrong reordering fails: the grid is not square), and the contiguous pass's within
    float32 rounding."""
    layers = {"conv": "conv", "block": "block"}
    model = small_model()
    options = {"batch_size": 3, "progress": False}
    formats = []
    handle = model.module.conv.register_forward_hook(
        lambda _m, _i, out: formats.append(out.is_contiguous(memory_format=torch.channels_last))
    )
    moments, shapes, _ = record_moments(model, layers, stimuli, memory_format="channels_last", **options)
    handle.remove()
    assert formats == [True] * 4 and not model.module.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert all(parameter.is_contiguous() for parameter in model.module.parameters()), "format not restored"
    outputs = {name: [] for name in layers}
    for batch, _, recorder in hooked_batches(model, layers, stimuli, memory_format="channels_last", **options):
        for name, values in recorder.record(batch).items():
            outputs[name].append(values.double().numpy())
    labels = category_grouping(stimuli).labels
    for name in layers:
        values = np.concatenate(outputs[name])
        count, mean, m2 = moments["category"][name]
        assert list(count) == [5, 5]
        for group in range(2):
            rows = values[labels == group]
            np.testing.assert_allclose(mean[group], rows.mean(axis=0), rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(m2[group], ((rows - rows.mean(axis=0)) ** 2).sum(axis=0), rtol=1e-9, atol=1e-9)
    contiguous, _, _ = record_moments(model, layers, stimuli, memory_format="contiguous", **options)
    for name in layers:
        np.testing.assert_allclose(contiguous["category"][name][1], moments["category"][name][1], rtol=1e-4, atol=1e-5)
    assert shapes == {"conv": (5, 12, 10), "block": (5, 12, 10)}


def test_the_layers_of_a_pass_share_one_upcast_buffer(stimuli, monkeypatch):
    used = set()
    matrix = UpcastBuffer.matrix
    monkeypatch.setattr(UpcastBuffer, "matrix", lambda self, *shape: used.add(id(self)) or matrix(self, *shape))
    record_moments(small_model(), {"conv": "conv", "block": "block"}, stimuli, batch_size=3, progress=False)
    assert len(used) == 1


@pytest.mark.skipif(
    allocator._glibc("mallopt") is None or allocator.user_chose_allocator(), reason="reuse needs glibc's mallopt"
)
def test_the_recording_pass_and_each_layers_statistics_reuse_freed_memory(stimuli, monkeypatch):
    """Every forward hook of a CPU pass and every layer's statistics run inside reuse_freed_memory (fails when
    either is outside it), and none is left open after them."""
    from netfloc.pipeline import model_run
    from netfloc.pipeline.options import RunOptions
    from netfloc.statistics import SelectivitySettings

    seen = []
    model = small_model()
    model.module.conv.register_forward_hook(lambda *_: seen.append(("forward", allocator._open_contexts)))
    from_moments = model_run.LayerResult.from_moments
    statistics = lambda *args: seen.append(("statistics", allocator._open_contexts)) or from_moments(*args)  # noqa: E731
    monkeypatch.setattr(model_run.LayerResult, "from_moments", statistics)
    layers = {"conv": "conv", "block": "block"}
    moments, shapes, _ = record_moments(model, layers, stimuli, batch_size=3, progress=False)
    settings = SelectivitySettings()
    model_run.pass_statistics("small", layers, stimuli.categories, shapes, moments, settings, RunOptions(), False)
    assert [kind for kind, _ in seen] == ["forward"] * 4 + ["statistics"] * 2
    assert all(depth > 0 for _, depth in seen) and allocator._open_contexts == 0


def test_auto_picks_channels_last_for_convolutional_networks_on_the_cpu():
    resnet = torchvision.models.resnet18(weights=None)
    vit = torchvision.models.VisionTransformer(
        image_size=32, patch_size=16, num_layers=1, num_heads=1, hidden_dim=8, mlp_dim=8
    )
    assert resolve_memory_format(resnet, "cpu") == "channels_last"
    assert resolve_memory_format(vit, "cpu") == "contiguous"
    assert resolve_memory_format(resnet, torch.device("cuda")) == "contiguous"
    assert resolve_memory_format(vit, "cpu", "channels_last") == "channels_last"
    with pytest.raises(NetflocError, match="--memory-format"):
        resolve_memory_format(resnet, "cpu", "nhwc")


def test_lesion_of_an_element_unit_in_a_channels_last_network_hits_it():
    model = SmallCNN().eval().to(memory_format=torch.channels_last)
    images = torch.randn(1, 3, 6, 7).contiguous(memory_format=torch.channels_last)
    unit = 2 * 42 + 3 * 7 + 5  # channel 2, row 3, column 5 in C×H×W order
    target = LesionTarget("conv", "element", np.array([unit]), np.array([9.0]))
    captured = {}
    handle = model.block.register_forward_hook(lambda _m, inputs, _o: captured.__setitem__("x", inputs[0].clone()))
    try:
        with lesioned(model, target), torch.no_grad():
            model(images)
    finally:
        handle.remove()
    assert captured["x"][0, 2, 3, 5].item() == 9.0
    with torch.no_grad():
        assert (captured["x"] != model.conv(images)).sum().item() == 1


class TimmStyleNHWC(nn.Module):
    """A stage that outputs B×H×W×C (declared by ``output_fmt``), as timm's Swin stages do."""

    output_fmt = "NHWC"

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.stage = nn.Identity()
        self.feature_info = [{"module": "stage", "num_chs": 4}]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stage(self.conv(x).permute(0, 2, 3, 1).contiguous())  # stored B×H×W×C


def test_nhwc_layouts_reach_the_accumulators_in_memory_order_and_come_out_channel_major(stimuli):
    catalog = {"stage": "stage", "conv": "conv"}
    model = LoadedModel("nhwc", "nhwc", TimmStyleNHWC().eval(), _to_tensor, catalog, {"all": list(catalog)}, "all")
    options = {"batch_size": 4, "progress": False, "memory_format": "contiguous"}  # the conv's output: C×H×W
    moments, _, layouts = record_moments(model, catalog, stimuli, **options)
    assert layouts == {"stage": "NHWC", "conv": "NCHW"}
    for group in range(2):  # the stage is the conv's output permuted: the same units in the same order
        np.testing.assert_array_equal(moments["category"]["stage"][1][group], moments["category"]["conv"][1][group])


class ViewsFeatureMaps(nn.Module):
    """A hand-written model that flattens a feature map with ``view``: fails on channels-last tensors."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 3, padding=1)
        self.conv2 = nn.Conv2d(2, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv(x)).view(x.shape[0], -1)


def test_auto_falls_back_to_contiguous_for_a_model_that_fails_channels_last(stimuli):
    from netfloc.pipeline.model_run import probe_in_memory_format
    from netfloc.pipeline.options import RunOptions

    catalog = {"conv": "conv"}
    model = LoadedModel("views", "views", ViewsFeatureMaps().eval(), _to_tensor, catalog, {"all": ["conv"]}, "all")
    assert resolve_memory_format(model.module, "cpu") == "channels_last"
    chosen, shapes = probe_in_memory_format(model, catalog, stimuli, RunOptions(), None)
    assert chosen == "contiguous" and shapes == {"conv": (2, 12, 10)}
    with pytest.raises(NetflocError, match="--memory-format contiguous"):
        probe_in_memory_format(model, catalog, stimuli, RunOptions(memory_format="channels_last"), None)
    assert probe_in_memory_format(model, catalog, stimuli, RunOptions(memory_format="contiguous"), None)[0] == (
        "contiguous"
    )


def test_the_model_is_put_back_as_it_was_also_when_the_pass_stops_early(stimuli):
    model = small_model()
    model.module.block[0].weight.data = model.module.block[0].weight.data.contiguous(memory_format=torch.channels_last)
    batches = hooked_batches(model, {"conv": "conv"}, stimuli, memory_format="channels_last", progress=False)
    next(batches)
    assert model.module.conv.weight.is_contiguous(memory_format=torch.channels_last)
    batches.close()
    assert model.module.conv.weight.is_contiguous()
    assert model.module.block[0].weight.is_contiguous(memory_format=torch.channels_last)  # it was so before
    for _ in hooked_batches(model, {"conv": "conv"}, stimuli, memory_format="contiguous", progress=False):
        assert model.module.block[0].weight.is_contiguous()
    assert model.module.block[0].weight.is_contiguous(memory_format=torch.channels_last)
