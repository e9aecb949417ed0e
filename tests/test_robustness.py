"""Inputs that must fail with one clear line, not a traceback, a silent NaN or mixed-up units."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from netfloc import localize
from netfloc.errors import NetflocError

from .conftest import write_noise_images

MODELS = """
import torch
from torch import nn
from torchvision import transforms
from torchvision.models import resnet18


class Exploding(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Identity()
        self.blowup = nn.Identity()
        self.score = nn.Identity()

    def forward(self, x):
        x = self.scale(x)
        self.score(x.mean(dim=(1, 2, 3)))
        return self.blowup(x / (x - x))


def convolutional():
    return resnet18(), transforms.ToTensor()


def exploding():
    return Exploding(), transforms.ToTensor()


def broken():
    raise RuntimeError("this user function is broken")
"""


@pytest.fixture
def models(tmp_path: Path) -> Path:
    path = tmp_path / "models.py"
    path.write_text(MODELS)
    return path


@pytest.fixture
def mixed_sizes(tmp_path: Path) -> Path:
    root = write_noise_images(tmp_path / "stimuli", {"a": 3, "b": 3}, size=32)
    Image.fromarray(np.zeros((48, 40, 3), np.uint8)).save(root / "b" / "odd.png")
    return root


def test_images_of_different_sizes_are_refused(models, mixed_sizes):
    spec = f"{models}:convolutional"
    with pytest.raises(NetflocError, match="different sizes"):
        localize(spec, mixed_sizes, layers=["layer1"], batch_size=8, progress=False)
    with pytest.raises(NetflocError, match="changed shape"):
        localize(spec, mixed_sizes, layers=["layer1"], batch_size=1, progress=False)


def test_non_finite_outputs_name_the_layer(models, noise_stimuli):
    with pytest.raises(NetflocError, match=r"layer blowup of model models-exploding outputs inf or NaN") as error:
        localize(f"{models}:exploding", noise_stimuli, layers=["blowup"], progress=False)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("units", ["element", "channel"])
def test_vector_layer_with_one_value_per_image(models, noise_stimuli, units):
    result = localize(f"{models}:exploding", noise_stimuli, layers=["score"], units=units, progress=False)
    assert result.layers[0].mean.shape == (3, 1) and result.layers[0].shape == ()


def test_failing_model_code_is_one_line(models, noise_stimuli):
    with pytest.raises(NetflocError, match="this user function is broken"):
        localize(f"{models}:broken", noise_stimuli, progress=False)
