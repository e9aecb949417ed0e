"""A network whose category selectivity is set by one weight vector, for checkpoint-series tests.

On the planted stimuli (:func:`tests.planted_model.write_planted_stimuli`: in images of category k the k-th 8×8
patch of the top row is brighter), layer ``late`` has 32 units, unit u = scale_u · patch_{u mod 4} + pixel_u, and
layer ``early`` the same with a quarter of the scale and other pixels; the pixels come from the bottom half of the
image, the same noise for every category. With scale = 0 no unit is selective; the larger the scale, the more
units of each category pass the test (``GAINS`` spreads the units' scales). :func:`write_checkpoints` saves
``{"scale": gain · GAINS}`` per step, a series whose selectivity grows with the gain.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision import transforms

N_UNITS = 32
N_CATEGORIES = 4
#: Relative scale of the units of one category (8 units each, unit u has GAINS[u]).
GAINS = torch.linspace(0.25, 1.0, N_UNITS // N_CATEGORIES).repeat_interleave(N_CATEGORIES)


class SeriesModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.patches = nn.AvgPool2d(8)
        self.early = nn.Identity()
        self.late = nn.Identity()
        self.scale = nn.Parameter(torch.zeros(N_UNITS))
        self.category_of = torch.arange(N_UNITS) % N_CATEGORIES

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grey = x[:, 0]
        planted = self.patches(grey.unsqueeze(1))[:, 0, 0, self.category_of]
        pixels = grey[:, 16:, :].flatten(1)
        early = self.early(0.25 * self.scale * planted + pixels[:, N_UNITS : 2 * N_UNITS])
        late = self.late(self.scale * planted + pixels[:, :N_UNITS])
        return torch.cat([early, late], dim=1)


def build() -> tuple[nn.Module, transforms.ToTensor]:
    """Entry point for the spec ``tests/series_model.py:build``."""
    return SeriesModel(), transforms.ToTensor()


def write_checkpoints(folder: Path, gains: dict[int, float], name: str = "step_{step}.pt") -> Path:
    """``folder/step_<step>.pt`` holding ``{"scale": gain · GAINS}`` for every ``step: gain``."""
    folder.mkdir(parents=True, exist_ok=True)
    for step, gain in gains.items():
        torch.save({"scale": gain * GAINS}, folder / name.format(step=step))
    return folder
