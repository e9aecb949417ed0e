"""Capture correctness: recorded outputs equal a forward pass without in-place operations."""

from __future__ import annotations

import copy
import types

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.resnet import Bottleneck

from netfloc.errors import NetflocError
from netfloc.models import load_model
from netfloc.recording.hooks import LayerRecorder
from netfloc.recording.layers import describe_layers, expand_layers
from netfloc.recording.layouts import to_units


def bottleneck_without_inplace(self: Bottleneck, x: torch.Tensor) -> torch.Tensor:
    """torchvision's Bottleneck.forward with ``out = out + identity`` instead of ``out += identity``."""
    identity = x if self.downsample is None else self.downsample(x)
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.relu(self.bn2(self.conv2(out)))
    out = self.bn3(self.conv3(out))
    return self.relu(out + identity)


def rewritten_without_inplace(model: nn.Module) -> nn.Module:
    clean = copy.deepcopy(model)
    for module in clean.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
        if isinstance(module, Bottleneck):
            module.forward = types.MethodType(bottleneck_without_inplace, module)
    return clean


def reference_outputs(model: nn.Module, paths: list[str], images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Plain hooks that keep references; correct only because the model has no in-place operations."""
    modules = dict(model.named_modules())
    kept: dict[str, torch.Tensor] = {}
    handles = [
        modules[path].register_forward_hook(lambda _m, _i, out, path=path: kept.__setitem__(path, out))
        for path in paths
    ]
    with torch.no_grad():
        model(images)
    for handle in handles:
        handle.remove()
    return kept


@pytest.fixture(scope="module")
def resnet50():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = torchvision.models.resnet50(weights=None).eval()
    images = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    return model, images


def capturable_paths(model: nn.Module) -> list[str]:
    """Every module that runs once per forward (the shared ReLUs run three times and are excluded)."""
    return [name for name, module in model.named_modules() if name and not isinstance(module, nn.ReLU)]


def test_recorder_matches_forward_without_inplace_ops_on_resnet50(resnet50):
    model, images = resnet50
    paths = capturable_paths(model)
    assert {"layer1.0.bn3", "layer1.0.downsample.1", "layer4.2", "layer4", "avgpool", "fc"} <= set(paths)
    expected = reference_outputs(rewritten_without_inplace(model), paths, images)
    with LayerRecorder(model, {path: path for path in paths}) as recorder:
        recorded = recorder.record(images)
    for path in paths:
        torch.testing.assert_close(recorded[path], expected[path].flatten(1), rtol=0, atol=0, msg=path)


def test_sink_sees_each_output_before_in_place_operations_and_without_a_copy(resnet50):
    """With a sink (the moment accumulators), outputs are consumed inside the hook as views of the module's own
    output: correct although Bottleneck later adds into bn3's output in place, and no batch copy is made."""
    model, images = resnet50
    paths = ["layer1.0.bn3", "layer2.1.bn3", "layer3", "fc"]
    expected = reference_outputs(rewritten_without_inplace(model), paths, images)
    storage, seen = {}, {}
    modules = dict(model.named_modules())
    handles = [
        modules[path].register_forward_hook(
            lambda _m, _i, out, path=path: storage.__setitem__(path, out.untyped_storage().data_ptr())
        )
        for path in paths
    ]

    def sink(name: str, values: torch.Tensor) -> None:
        seen[name] = (values.clone(), values.untyped_storage().data_ptr())

    try:
        with LayerRecorder(model, {path: path for path in paths}, sink=sink) as recorder:
            assert recorder.record(images) == {}
    finally:
        for handle in handles:
            handle.remove()
    for path in paths:
        torch.testing.assert_close(seen[path][0], expected[path].flatten(1), rtol=0, atol=0, msg=path)
        assert seen[path][1] == storage[path], f"{path}: the sink got a copy"


def test_reference_hooks_on_the_original_model_are_wrong(resnet50):
    """The naive capture this test guards against really records corrupted values on ResNet-50."""
    model, images = resnet50
    naive = reference_outputs(model, ["layer1.0.bn3"], images)["layer1.0.bn3"]
    clean = reference_outputs(rewritten_without_inplace(model), ["layer1.0.bn3"], images)["layer1.0.bn3"]
    assert not torch.equal(naive, clean)


def test_module_run_several_times_is_refused(resnet50):
    model, images = resnet50
    with (
        LayerRecorder(model, {"shared relu": "layer1.0.relu"}) as recorder,
        pytest.raises(NetflocError, match="more than once"),
    ):
        recorder.record(images)


def test_channel_units_are_spatial_means_of_element_units(resnet50):
    model, images = resnet50
    with LayerRecorder(model, {"layer2": "layer2"}, units="channel") as recorder:
        channel = recorder.record(images)["layer2"]
    with LayerRecorder(model, {"layer2": "layer2"}) as recorder:
        element = recorder.record(images)["layer2"]
    assert recorder.shapes["layer2"] == (512, 12, 12)
    reference = element.double().reshape(2, 512, -1).mean(dim=2)
    torch.testing.assert_close(channel, reference, rtol=1e-12, atol=1e-12)


def test_to_units_copies_vectors():
    output = torch.arange(6.0).reshape(2, 3)
    units = to_units(output, "NC", "element")
    output.add_(100)
    assert units.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]


def test_unknown_layer_lists_close_matches():
    model = load_model("torchvision:resnet18:random")
    with pytest.raises(NetflocError, match=r"no layer 'layer5'.*did you mean") as error:
        expand_layers(model, ["layer5"])
    assert "\n" not in str(error.value)


def test_presets_and_layer_listing():
    model = load_model("torchvision:resnet18:random")
    assert list(expand_layers(model, None)) == ["stem", "layer1", "layer2", "layer3", "layer4", "embedding"]
    assert expand_layers(model, ["stem", "layer4.1"]) == {"stem": "maxpool", "layer4.1": "layer4.1"}
    rows = {row.name: row for row in describe_layers(model)}
    assert rows["layer4"].shape == (512, 7, 7) and rows["layer4"].capturable
    assert rows["layer1.0.relu"].calls == 2 and not rows["layer1.0.relu"].capturable


def test_truncated_forward_stops_after_the_deepest_layer_with_identical_outputs(resnet50):
    model, images = resnet50
    calls = []
    handle = model.fc.register_forward_hook(lambda *_: calls.append(1))
    layers = {"layer1": "layer1", "stem": "maxpool"}
    with LayerRecorder(model, layers) as recorder:
        full = recorder.record(images)
    assert len(calls) == 1
    with LayerRecorder(model, layers, truncate=True) as recorder:
        truncated = recorder.record(images)
    handle.remove()
    assert len(calls) == 1, "the head never ran in the truncated pass"
    for name in layers:
        torch.testing.assert_close(truncated[name], full[name], rtol=0, atol=0)
