"""A network whose category-selective units are planted, for end-to-end tests.

Stimuli (see :func:`write_planted_stimuli`): 32×32 grey noise images; in images of category k the k-th
8×8 patch of the top row is brighter. The model's layer ``units`` outputs 4 + 512 units: first the mean of
each top-row patch (unit k is k-selective by construction), then the 512 pixels of the bottom half, which
are the same noise for every category (null units, selective for nothing).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torchvision import transforms

CATEGORIES = ("faces", "bodies", "scenes", "words")
N_PLANTED = 4
N_NULL = 16 * 32
PATCH_BOOST = 0.1


class PlantedModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.patches = nn.AvgPool2d(8)
        self.units = nn.Identity()
        self.head = nn.Linear(N_PLANTED + N_NULL, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grey = x[:, 0]
        planted = self.patches(grey.unsqueeze(1))[:, 0, 0, :]
        null = grey[:, 16:, :].flatten(1)
        return self.head(self.units(torch.cat([planted, null], dim=1)))


def build() -> tuple[nn.Module, transforms.ToTensor]:
    """Entry point for the spec ``tests/planted_model.py:build``."""
    return PlantedModel(), transforms.ToTensor()


def write_planted_stimuli(root: Path, per_category: int = 12, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for k, category in enumerate(CATEGORIES):
        (root / category).mkdir(parents=True, exist_ok=True)
        for i in range(per_category):
            pixels = rng.normal(0.5, 0.1, (32, 32))
            pixels[:8, 8 * k : 8 * (k + 1)] += PATCH_BOOST
            image = np.clip(np.rint(pixels * 255), 0, 255).astype(np.uint8)
            Image.fromarray(image).save(root / category / f"{category}-{i:02d}.png")
    return root
