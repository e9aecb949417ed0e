"""Streaming per-unit sufficient statistics: count, mean and sum of squared deviations per group.

For each group g (a category, a fold, a permutation label) and unit u the accumulator holds
``count[g]``, ``mean[g, u]`` and ``m2[g, u] = Σ_i (x_i − mean)²`` in float64. A batch is reduced to its own
moments (two-pass, in float64) and merged with Chan, Golub & LeVeque's (1979) pairwise formula

    n = n_a + n_b,   δ = mean_b − mean_a,
    mean = mean_a + δ·n_b/n,   m2 = m2_a + m2_b + δ²·n_a·n_b/n,

so memory is O(groups × units) whatever the number of images, and accumulators built on disjoint image
sets merge into the accumulator of their union (which lets work be sharded).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


class MomentAccumulator:
    """Per-group, per-unit count, mean and m2 in float64 on one device."""

    def __init__(self, n_groups: int, n_units: int, device: torch.device | str = "cpu") -> None:
        self.n_groups = n_groups
        self.n_units = n_units
        self.count = torch.zeros(n_groups, dtype=torch.float64, device=device)
        self.mean = torch.zeros(n_groups, n_units, dtype=torch.float64, device=device)
        self.m2 = torch.zeros(n_groups, n_units, dtype=torch.float64, device=device)

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def update(self, values: torch.Tensor, groups: torch.Tensor) -> None:
        """Add a batch: ``values`` is B×U (any float dtype; converted to float64 once), ``groups`` holds B
        group indices."""
        if values.ndim != 2 or values.shape[1] != self.n_units:
            raise ValueError(f"expected a B×{self.n_units} batch, got shape {tuple(values.shape)}")
        groups = groups.to(self.device)
        values = values.to(self.device, torch.float64)
        present = torch.unique(groups).tolist()
        for group in present:
            rows = values if len(present) == 1 else values[groups == group]
            n = rows.shape[0]
            variance, mean = torch.var_mean(rows, dim=0, correction=0)
            self._merge_group(group, float(n), mean, variance * n)

    def _merge_group(self, group: int, n_b: float, mean_b: torch.Tensor, m2_b: torch.Tensor) -> None:
        n_a = float(self.count[group])
        n = n_a + n_b
        delta = mean_b - self.mean[group]
        self.mean[group] += delta * (n_b / n)
        self.m2[group] += m2_b + delta.square() * (n_a * n_b / n)
        self.count[group] = n

    def merge(self, other: MomentAccumulator) -> MomentAccumulator:
        """Fold ``other`` (same groups and units) into this accumulator, in place; returns self."""
        if (other.n_groups, other.n_units) != (self.n_groups, self.n_units):
            raise ValueError("accumulators to merge must have the same groups and units")
        for group in range(self.n_groups):
            n_b = float(other.count[group])
            if n_b:
                self._merge_group(group, n_b, other.mean[group].to(self.device), other.m2[group].to(self.device))
        return self

    def variance(self) -> torch.Tensor:
        """Unbiased variance m2 / (n − 1) per group and unit (0 where n < 2)."""
        dof = (self.count - 1).clamp(min=1).unsqueeze(1)
        return torch.where(self.count.unsqueeze(1) > 1, self.m2 / dof, torch.zeros_like(self.m2))

    def numpy(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(count, mean, m2) as float64 numpy arrays on the CPU."""
        return self.count.cpu().numpy(), self.mean.cpu().numpy(), self.m2.cpu().numpy()

    def save(self, path: str | Path) -> None:
        """Write the moments to an ``.npz`` file (float64), e.g. to merge shards later."""
        count, mean, m2 = self.numpy()
        np.savez(path, count=count, mean=mean, m2=m2)

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu") -> MomentAccumulator:
        """Read an accumulator written by :meth:`save`."""
        with np.load(path) as data:
            count, mean, m2 = data["count"], data["mean"], data["m2"]
        accumulator = cls(mean.shape[0], mean.shape[1], device)
        accumulator.count.copy_(torch.from_numpy(count))
        accumulator.mean.copy_(torch.from_numpy(mean))
        accumulator.m2.copy_(torch.from_numpy(m2))
        return accumulator
