"""Shards: the moments of a contiguous block of images, written as files and merged in a fixed order.

The unit of work is (model, image shard): images in ``StimulusSet.items()`` order, ``shard_size`` at a time.
A shard's moments — every grouping of the pass, every layer — go to ``<id>.npz`` (float64) beside a manifest
``<id>.json`` with the image range, the counts and the npz's SHA-256; both are written under temporary names
and renamed, so a killed process leaves either a complete shard or none. The id is a SHA-256 over everything
that changes the moments: the model's weights hash, the stimulus digest, the shard's range, the layers, the
settings that shape units and groups (units, tokens, folds, permutations, seed, the pass's groupings) and
whether TF32 is allowed.

Merging is a fixed binary tree over shard indices ((0,1), (2,3), … then their results, and so on) with Chan
et al.'s (1979) formula, so the merged bytes depend only on the shards, never on the order in which they
finished; they equal a single pass to float64 rounding (rtol 1e-12). :class:`TreeMerger` builds the same tree
while shards arrive in index order, holding at most ⌊log₂ n⌋ + 1 partial merges (a binary counter whose
remaining partial sums are merged from the right at the end).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from netfloc.files import sha256_file

Moments = tuple[np.ndarray, np.ndarray, np.ndarray]
#: grouping -> layer -> (count, mean, m2)
ShardMoments = dict[str, dict[str, Moments]]


def shard_ranges(n_images: int, shard_size: int) -> list[tuple[int, int]]:
    """``[(start, stop), …]`` covering ``range(n_images)`` in blocks of ``shard_size``."""
    return [(start, min(start + shard_size, n_images)) for start in range(0, n_images, shard_size)]


def shard_id(identity: dict[str, Any], start: int, stop: int) -> str:
    """A 16-hex-digit id from the run identity (weights, stimuli, layers, settings) and the image range."""
    text = json.dumps({**identity, "images": [start, stop]}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def write_shard(folder: Path, name: str, moments: ShardMoments, extra: dict[str, Any]) -> Path:
    """Write ``folder/<name>.npz`` and its manifest ``<name>.json`` atomically; returns the npz path."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        f"{grouping}/{layer}/{part}": array
        for grouping, layers in moments.items()
        for layer, values in layers.items()
        for part, array in zip(("count", "mean", "m2"), values, strict=True)
    }
    npz, manifest = folder / f"{name}.npz", folder / f"{name}.json"
    partial = folder / f".{name}.npz.partial"
    with partial.open("wb") as handle:
        np.savez(handle, **arrays)
    os.replace(partial, npz)
    counts = {
        grouping: {layer: values[0].tolist() for layer, values in layers.items()}
        for grouping, layers in moments.items()
    }
    payload = {**extra, "counts": counts, "sha256": sha256_file(npz)}
    manifest.with_suffix(".json.partial").write_text(json.dumps(payload, default=str))
    os.replace(manifest.with_suffix(".json.partial"), manifest)
    return npz


def read_shard(folder: Path, name: str) -> tuple[ShardMoments, dict[str, Any]] | None:
    """A finished shard's moments and manifest, or None when it is missing, incomplete or its checksum is wrong
    (then it is computed again)."""
    npz, manifest = folder / f"{name}.npz", folder / f"{name}.json"
    try:
        info = json.loads(manifest.read_text())
        if sha256_file(npz) != info["sha256"]:
            return None
        with np.load(npz, allow_pickle=False) as data:
            moments: ShardMoments = {}
            for key in data.files:
                grouping, layer, part = key.split("/")
                moments.setdefault(grouping, {}).setdefault(layer, {})[part] = data[key]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {
        grouping: {layer: (parts["count"], parts["mean"], parts["m2"]) for layer, parts in layers.items()}
        for grouping, layers in moments.items()
    }, info


def merge_moments(a: Moments, b: Moments) -> Moments:
    """Moments of the union of two disjoint image sets (Chan, Golub & LeVeque 1979), per group and unit."""
    n_a, mean_a, m2_a = a
    n_b, mean_b, m2_b = b
    n = n_a + n_b
    safe = np.maximum(n, 1.0)[:, None]
    delta = mean_b - mean_a
    mean = mean_a + delta * (n_b[:, None] / safe)
    m2 = m2_a + m2_b + delta**2 * (n_a[:, None] * n_b[:, None] / safe)
    return n, mean, m2


class TreeMerger:
    """The fixed merge tree of :func:`merge_tree`, built incrementally from shards given in index order."""

    def __init__(self) -> None:
        self.stack: list[tuple[int, ShardMoments]] = []

    def add(self, shard: ShardMoments) -> None:
        size = 1
        while self.stack and self.stack[-1][0] == size:
            _, left = self.stack.pop()
            shard, size = _merge_two(left, shard), 2 * size
        self.stack.append((size, shard))

    def result(self) -> ShardMoments:
        while len(self.stack) > 1:
            _, right = self.stack.pop()
            size, left = self.stack.pop()
            self.stack.append((size, _merge_two(left, right)))
        return self.stack[0][1]


def merge_tree(shards: Sequence[ShardMoments]) -> ShardMoments:
    """All shards merged pairwise in a fixed binary tree over their order (module docstring)."""
    merger = TreeMerger()
    for shard in shards:
        merger.add(shard)
    return merger.result()


def _merge_two(a: ShardMoments, b: ShardMoments) -> ShardMoments:
    return {
        grouping: {layer: merge_moments(values, b[grouping][layer]) for layer, values in layers.items()}
        for grouping, layers in a.items()
    }
