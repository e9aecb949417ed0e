"""A small network with planted category populations whose units vary from image to image, for the brain tests.

Stimuli are those of :mod:`tests.planted_model` (grey noise; category k brightens the k-th 8×8 patch of the top row).
Layer ``units`` outputs ``GROUP`` units per category — unit g of population k is a fixed random positive weighting of
the 64 pixels of patch k, so each population is k-selective and its response pattern follows patch k's noise —
followed by the 512 pixels of the bottom half (selective for nothing).
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision import transforms

N_CATEGORIES = 4  # those of tests/planted_model.py (this file is imported alone, by its path)
GROUP = 6
N_NULL = 16 * 32


class BrainModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.register_buffer("weights", torch.rand(N_CATEGORIES, GROUP, 64, generator=generator) / 32)
        self.units = nn.Identity()
        self.head = nn.Linear(N_CATEGORIES * GROUP + N_NULL, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grey = x[:, 0]
        patches = torch.stack([grey[:, :8, 8 * k : 8 * (k + 1)].flatten(1) for k in range(N_CATEGORIES)], dim=1)
        planted = torch.einsum("bkp,kgp->bkg", patches, self.weights).flatten(1)
        return self.head(self.units(torch.cat([planted, grey[:, 16:, :].flatten(1)], dim=1)))


def build() -> tuple[nn.Module, transforms.ToTensor]:
    """Entry point for the spec ``tests/brain_model.py:build``."""
    return BrainModel(), transforms.ToTensor()
