"""Streaming per-unit sufficient statistics: count, mean and sum of squared deviations per group.

For each group g (a category, a fold, a permutation label) and unit u the accumulator holds
``count[g]`` (on the host), ``mean[g, u]`` and ``m2[g, u] = Σ_i (x_i − mean)²`` in float64 (on the device).

A batch is reduced for every group at once: with the B×G membership matrix A (A[i, g] = 1 when image i is in
group g; an image belongs to one group of every grouping, so groupings stack as columns) and the batch
shifted by a fixed per-unit reference K (the first batch's mean; shifting keeps the sums well conditioned),

    n_g = Σ_i A[i, g],   S = Aᵀ(X − K),   Q = Aᵀ(X − K)²,   mean_g = K + S_g/n_g,   m2_g = Q_g − S_g²/n_g,

two matrix products per chunk of units (float64, ``CHUNK`` units at a time, so no B×U float64 copy of a whole
layer exists). Batch moments merge into the running ones with Chan, Golub & LeVeque's (1979) formula,
vectorised over groups,

    n = n_a + n_b,   δ = mean_b − mean_a,   mean = mean_a + δ·n_b/n,   m2 = m2_a + m2_b + δ²·n_a·n_b/n,

so memory is O(groups × units) whatever the number of images, no Python loop runs over groups, and nothing is
read back from the device per batch. Accumulators built on disjoint image sets merge into the accumulator of
their union (which lets work be sharded).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

#: Units upcast to float64 at a time (B × CHUNK × 8 bytes per temporary).
CHUNK = 65_536


def membership(groups: np.ndarray, n_groups: int) -> np.ndarray:
    """The B×G one-hot membership matrix of one grouping (``groups[i]`` is image i's group)."""
    matrix = np.zeros((len(groups), n_groups))
    matrix[np.arange(len(groups)), groups] = 1.0
    return matrix


class MomentAccumulator:
    """Per-group, per-unit count (host), mean and m2 (float64, on one device)."""

    def __init__(self, n_groups: int, n_units: int, device: torch.device | str = "cpu") -> None:
        self.n_groups = n_groups
        self.n_units = n_units
        self.count = np.zeros(n_groups)
        self.mean = torch.zeros(n_groups, n_units, dtype=torch.float64, device=device)
        self.m2 = torch.zeros(n_groups, n_units, dtype=torch.float64, device=device)
        self.reference: torch.Tensor | None = None

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def update(self, values: torch.Tensor, groups: torch.Tensor | np.ndarray) -> None:
        """Add a batch: ``values`` is B×U (any float dtype), ``groups`` holds B group indices."""
        groups = groups.cpu().numpy() if isinstance(groups, torch.Tensor) else np.asarray(groups)
        self.update_members(values, membership(groups, self.n_groups))

    def update_members(self, values: torch.Tensor, members: np.ndarray) -> None:
        """Add a batch given its B×G membership matrix (module docstring)."""
        if values.ndim != 2 or values.shape[1] != self.n_units or members.shape != (values.shape[0], self.n_groups):
            raise ValueError(f"expected a B×{self.n_units} batch and B×{self.n_groups} memberships")
        n_b = members.sum(axis=0)
        weights = torch.from_numpy(members.T.copy()).to(self.device, non_blocking=True)
        if self.reference is None:
            self.reference = values.to(self.device, torch.float64).mean(dim=0)
        n_a, n = self.count, self.count + n_b
        inverse_n_b = self._column(np.where(n_b > 0, 1.0 / np.maximum(n_b, 1.0), 0.0))
        share, cross = self._chan_weights(n_a, n_b)
        for start in range(0, self.n_units, CHUNK):
            chunk = slice(start, start + CHUNK)
            shifted = values[:, chunk].to(self.device, torch.float64) - self.reference[chunk]
            sums = weights @ shifted
            squares = weights @ shifted.square_()
            batch_mean = self.reference[chunk] + sums * inverse_n_b
            batch_m2 = (squares - sums.square() * inverse_n_b).clamp_(min=0.0)
            delta = batch_mean - self.mean[:, chunk]  # groups without images: share = cross = 0, no change
            self.mean[:, chunk] += delta * share
            self.m2[:, chunk] += batch_m2 + delta.square() * cross
        self.count = n

    def _column(self, values: np.ndarray) -> torch.Tensor:
        """A host vector as a G×1 float64 column on the device (copied without waiting)."""
        return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64)).to(self.device, non_blocking=True)[
            :, None
        ]

    def _chan_weights(self, n_a: np.ndarray, n_b: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Columns n_b/n and n_a·n_b/n of Chan's merge (0 for groups without new images)."""
        n = np.maximum(n_a + n_b, 1.0)
        return self._column(np.where(n_b > 0, n_b / n, 0.0)), self._column(np.where(n_b > 0, n_a * n_b / n, 0.0))

    def merge(self, other: MomentAccumulator) -> MomentAccumulator:
        """Fold ``other`` (same groups and units) into this accumulator, in place; returns self."""
        if (other.n_groups, other.n_units) != (self.n_groups, self.n_units):
            raise ValueError("accumulators to merge must have the same groups and units")
        share, cross = self._chan_weights(self.count, other.count)
        delta = other.mean.to(self.device) - self.mean
        self.mean += delta * share
        self.m2 += other.m2.to(self.device) + delta.square() * cross
        self.count = self.count + other.count
        return self

    def variance(self) -> torch.Tensor:
        """Unbiased variance m2 / (n − 1) per group and unit (0 where n < 2)."""
        dof = self._column(np.maximum(self.count - 1, 1.0))
        return torch.where(self._column(self.count) > 1, self.m2 / dof, torch.zeros_like(self.m2))

    def numpy(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(count, mean, m2) as float64 numpy arrays on the CPU."""
        return self.count.copy(), self.mean.cpu().numpy(), self.m2.cpu().numpy()

    def save(self, path: str | Path) -> None:
        """Write the moments to an ``.npz`` file (float64), e.g. to merge shards later."""
        count, mean, m2 = self.numpy()
        np.savez(path, count=count, mean=mean, m2=m2)

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu") -> MomentAccumulator:
        """Read an accumulator written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as data:
            count, mean, m2 = data["count"], data["mean"], data["m2"]
        accumulator = cls(mean.shape[0], mean.shape[1], device)
        accumulator.count = count.astype(np.float64)
        accumulator.mean.copy_(torch.from_numpy(mean))
        accumulator.m2.copy_(torch.from_numpy(m2))
        return accumulator
