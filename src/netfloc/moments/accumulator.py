"""Streaming per-unit sufficient statistics: count, mean and sum of squared deviations per group.

For each group g (a category, a fold, a permutation label) and unit u the accumulator holds ``count[g]`` (on
the host) and, in float64 on the device, the sums of the data shifted by a fixed per-unit reference K (the
first batch's mean; shifting keeps the sums well conditioned, Chan, Golub & LeVeque 1983, "shifted data"):

    S[g, u] = Σ_{i∈g} (x_iu − K_u),   Q[g, u] = Σ_{i∈g} (x_iu − K_u)²,
    mean = K + S/n,   m2 = Σ_{i∈g} (x_iu − mean)² = Q − S²/n.

A batch updates every group at once: with the B×G membership matrix A (A[i, g] = 1 when image i is in group
g; an image belongs to one group of every grouping, so groupings stack as columns), S += Aᵀ(X − K) and
Q += Aᵀ(X − K)², float64 matrix products accumulated in place per chunk of units. They cover only the rows
of the groups present in the batch (:func:`present_blocks`: at most :data:`MAX_BLOCKS` runs of consecutive
groups, else all rows; stimuli in category order make most batches one category). The float32 batch is upcast
``chunk_units(B)`` units at a time into one reused :class:`UpcastBuffer` (2 MiB for batches of up to 256 images;
the accumulators of a pass share one), so no B×U float64 copy exists, nothing is allocated per batch, no Python
loop runs over single groups, and nothing is read back from the device.
Relative rounding error of m2 grows like ε·(1 + (mean − K)²/σ²) — the same conditioning as Welford's or
Chan's per-batch merges with a batch shift.

The tensors may be created inside a forward hook (inference mode), so every method that writes them runs in
inference mode. Accumulators built on disjoint image sets merge into the accumulator of their union (sharded work) with
Chan et al.'s (1979) pairwise formula written for shifted sums: S += n_b(mean_b − K), Q += m2_b + n_b(mean_b − K)².
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

#: float64 values the upcast buffer holds (B × chunk_units(B) ≤ this; 2 MiB).
BUFFER_VALUES = 2**18


def chunk_units(batch_size: int) -> int:
    """Units upcast to float64 at a time for a batch of ``batch_size`` images (at least 1024)."""
    return max(1024, BUFFER_VALUES // max(batch_size, 1))


def membership(groups: np.ndarray, n_groups: int) -> np.ndarray:
    """The B×G one-hot membership matrix of one grouping (``groups[i]`` is image i's group)."""
    matrix = np.zeros((len(groups), n_groups))
    matrix[np.arange(len(groups)), groups] = 1.0
    return matrix


#: Most row blocks a batch's products are split into (:func:`present_blocks`); more become one product.
MAX_BLOCKS = 4


def present_blocks(members: np.ndarray) -> list[slice]:
    """The runs of consecutive groups with images in this batch (columns of ``members`` with a 1), so the
    products skip the rest: a batch of one category updates 1 of K category rows. More than
    :data:`MAX_BLOCKS` runs give one slice over all groups (fewer, larger products)."""
    present = np.concatenate([[False], members.any(axis=0), [False]])
    edges = np.flatnonzero(present[1:] != present[:-1])
    blocks = [slice(int(start), int(stop)) for start, stop in zip(edges[::2], edges[1::2], strict=True)]
    return blocks if len(blocks) <= MAX_BLOCKS else [slice(0, members.shape[1])]


class UpcastBuffer:
    """One float64 buffer, reused for the upcast chunks of every batch (module docstring); accumulators that
    update one at a time (the layers of one forward pass) can share it."""

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self._values: torch.Tensor | None = None

    def matrix(self, rows: int, columns: int) -> torch.Tensor:
        """A rows×columns float64 view of the buffer, which grows when it is too small; valid until the next call."""
        size = rows * columns
        if self._values is None or self._values.numel() < size:
            self._values = None  # the old buffer is freed before the new one is allocated
            self._values = torch.empty(size, dtype=torch.float64, device=self.device)
        return self._values[:size].view(rows, columns)


class MomentAccumulator:
    """Per-group, per-unit count (host) and shifted sums S, Q (float64, on one device); see the module
    docstring. ``moments()`` gives (count, mean, m2); ``finish()`` turns the sums into them in place.
    ``buffer``: an :class:`UpcastBuffer` on the same device shared with other accumulators (default: its own)."""

    def __init__(
        self, n_groups: int, n_units: int, device: torch.device | str = "cpu", buffer: UpcastBuffer | None = None
    ) -> None:
        self.n_groups = n_groups
        self.n_units = n_units
        self.count = np.zeros(n_groups)
        self.sums = torch.zeros(n_groups, n_units, dtype=torch.float64, device=device)
        self.squares = torch.zeros(n_groups, n_units, dtype=torch.float64, device=device)
        self.reference = torch.zeros(n_units, dtype=torch.float64, device=device)
        self._referenced = False
        self._finished = False
        self._buffer = buffer if buffer is not None else UpcastBuffer(self.sums.device)
        if self._buffer.device.type != self.sums.device.type:
            raise ValueError(f"the upcast buffer is on {self._buffer.device}, the accumulator on {self.sums.device}")

    @property
    def device(self) -> torch.device:
        return self.sums.device

    def update(self, values: torch.Tensor, groups: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Add a batch: ``values`` is B×U (any float dtype), ``groups`` holds B group indices."""
        groups = groups.cpu().numpy() if isinstance(groups, torch.Tensor) else np.asarray(groups)
        return self.update_members(values, membership(groups, self.n_groups))

    @torch.inference_mode()
    def update_members(self, values: torch.Tensor, members: np.ndarray) -> torch.Tensor:
        """Add a batch given its B×G membership matrix (module docstring). Returns each image's float64 sum of
        shifted values (B,), on the device: finite exactly when the image's values are all finite."""
        if self._finished:
            raise RuntimeError("this accumulator was finished; its sums are now moments")
        if values.ndim != 2 or values.shape[1] != self.n_units or members.shape != (values.shape[0], self.n_groups):
            raise ValueError(f"expected a B×{self.n_units} batch and B×{self.n_groups} memberships")
        weights = torch.from_numpy(members.T.copy()).to(self.device, non_blocking=True)
        if not self._referenced:
            self._set_reference(values)
        blocks = present_blocks(members)
        image_sums = torch.zeros(values.shape[0], dtype=torch.float64, device=self.device)
        for chunk, shifted in self._shifted_chunks(values):
            image_sums += shifted.sum(dim=1)
            for rows in blocks:
                self.sums[rows, chunk].addmm_(weights[rows], shifted)
            shifted.square_()
            for rows in blocks:
                self.squares[rows, chunk].addmm_(weights[rows], shifted)
        self.count = self.count + members.sum(axis=0)
        return image_sums

    def _shifted_chunks(self, values: torch.Tensor) -> Iterator[tuple[slice, torch.Tensor]]:
        """(slice, B×C float64 view of values[:, slice] − K[slice]) over all units, in the reused buffer."""
        step = chunk_units(values.shape[0])
        for start in range(0, self.n_units, step):
            chunk = slice(start, min(start + step, self.n_units))
            shifted = self._buffer.matrix(values.shape[0], chunk.stop - chunk.start)
            shifted.copy_(values[:, chunk], non_blocking=True).sub_(self.reference[chunk])  # no float64 temporary
            yield chunk, shifted

    @torch.inference_mode()
    def _set_reference(self, values: torch.Tensor) -> None:
        """K = the first batch's mean per unit (0 where it is not finite, so one bad image spoils no other)."""
        step = chunk_units(values.shape[0])
        for start in range(0, self.n_units, step):
            chunk = values[:, start : start + step].to(self.device, torch.float64)
            self.reference[start : start + step] = chunk.mean(dim=0)
        self.reference.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
        self._referenced = True

    def _column(self, values: np.ndarray) -> torch.Tensor:
        """A host vector as a G×1 float64 column on the device."""
        return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64)).to(self.device)[:, None]

    @torch.inference_mode()
    def moments(self) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
        """(count, mean, m2) as new arrays (the sums are kept): mean = K + S/n, m2 = max(Q − S²/n, 0), and
        0 for groups without images."""
        if self._finished:
            return self.count.copy(), self.sums.clone(), self.squares.clone()
        inverse = self._column(np.where(self.count > 0, 1.0 / np.maximum(self.count, 1.0), 0.0))
        mean = torch.where(self._column(self.count) > 0, self.reference + self.sums * inverse, 0.0)
        m2 = (self.squares - self.sums.square() * inverse).clamp_(min=0.0)
        return self.count.copy(), mean, m2

    @torch.inference_mode()
    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Turn the sums into (mean, m2) in place, chunk by chunk (no second G×U copy), and return
        (count, mean, m2) as float64 numpy arrays on the CPU. The accumulator takes no further batches."""
        if not self._finished:
            inverse = self._column(np.where(self.count > 0, 1.0 / np.maximum(self.count, 1.0), 0.0))
            empty = self._column(self.count) == 0
            step = max(1024, BUFFER_VALUES // max(self.n_groups, 1))
            for start in range(0, self.n_units, step):
                sums, squares = self.sums[:, start : start + step], self.squares[:, start : start + step]
                squares.sub_(sums.square() * inverse).clamp_(min=0.0)
                sums.mul_(inverse).add_(self.reference[start : start + step]).masked_fill_(empty, 0.0)
            self._finished = True
        return self.count.copy(), self.sums.cpu().numpy(), self.squares.cpu().numpy()

    @property
    def mean(self) -> torch.Tensor:
        """Per-group means (computed from the sums)."""
        return self.moments()[1]

    @property
    def m2(self) -> torch.Tensor:
        """Per-group sums of squared deviations (computed from the sums)."""
        return self.moments()[2]

    def merge(self, other: MomentAccumulator) -> MomentAccumulator:
        """Fold ``other`` (same groups and units) into this accumulator, in place; returns self."""
        if (other.n_groups, other.n_units) != (self.n_groups, self.n_units):
            raise ValueError("accumulators to merge must have the same groups and units")
        count, mean, m2 = other.moments()
        self.add_moments(count, mean.to(self.device), m2.to(self.device))
        return self

    @torch.inference_mode()
    def add_moments(self, count: np.ndarray, mean: torch.Tensor, m2: torch.Tensor) -> None:
        """Fold per-group (count, mean, m2) of other images into the sums (module docstring)."""
        if self._finished:
            raise RuntimeError("this accumulator was finished; its sums are now moments")
        n_b = self._column(count)
        if not self._referenced:
            weight = torch.from_numpy(count / max(count.sum(), 1.0)).to(self.device)
            self.reference = weight @ mean
            self._referenced = True
        delta = torch.where(n_b > 0, mean - self.reference, 0.0)
        self.sums += n_b * delta
        self.squares += m2 + n_b * delta.square()
        self.count = self.count + count

    def variance(self) -> torch.Tensor:
        """Unbiased variance m2 / (n − 1) per group and unit (0 where n < 2)."""
        dof = self._column(np.maximum(self.count - 1, 1.0))
        return torch.where(self._column(self.count) > 1, self.m2 / dof, 0.0)

    def numpy(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(count, mean, m2) as float64 numpy arrays on the CPU (the sums are kept)."""
        count, mean, m2 = self.moments()
        return count, mean.cpu().numpy(), m2.cpu().numpy()

    def save(self, path: str | Path) -> None:
        """Write the moments to an ``.npz`` file (float64), e.g. to merge shards later."""
        count, mean, m2 = self.numpy()
        np.savez(path, count=count, mean=mean, m2=m2)

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu") -> MomentAccumulator:
        """A finished accumulator holding exactly the moments written by :meth:`save` (merge it into another)."""
        with np.load(path, allow_pickle=False) as data:
            count, mean, m2 = data["count"], data["mean"], data["m2"]
        accumulator = cls(mean.shape[0], mean.shape[1], device)
        accumulator.count = count.astype(np.float64)
        accumulator.sums.copy_(torch.from_numpy(mean))
        accumulator.squares.copy_(torch.from_numpy(m2))
        accumulator._finished = True
        return accumulator
