"""Merge property of the streaming moment accumulators."""

from __future__ import annotations

import numpy as np
import torch

from netfloc.moments.accumulator import MomentAccumulator, UpcastBuffer


def feed(values: np.ndarray, labels: np.ndarray, groups: int, batch: int) -> MomentAccumulator:
    accumulator = MomentAccumulator(groups, values.shape[1])
    for start in range(0, len(values), batch):
        accumulator.update(
            torch.from_numpy(values[start : start + batch]), torch.from_numpy(labels[start : start + batch])
        )
    return accumulator


def test_disjoint_accumulators_merge_into_the_one_pass_result():
    rng = np.random.default_rng(0)
    values = rng.normal(3.0, 2.0, (200, 40)).astype(np.float32)
    labels = rng.integers(0, 5, 200)
    whole = feed(values, labels, 5, 17)
    left = feed(values[:73], labels[:73], 5, 9)
    right = feed(values[73:], labels[73:], 5, 31)
    merged = left.merge(right)
    for a, b in zip(merged.numpy(), whole.numpy(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    reference = values.astype(np.float64)
    for k in range(5):
        rows = reference[labels == k]
        np.testing.assert_allclose(merged.mean[k].numpy(), rows.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(merged.m2[k].numpy(), ((rows - rows.mean(axis=0)) ** 2).sum(axis=0), rtol=1e-10)


def test_accumulators_sharing_one_upcast_buffer_keep_their_own_sums(monkeypatch):
    """The layers of a pass share one buffer and update in turn, with chunks of different widths (the narrow
    layer first, so the buffer grows at the wide one's first chunk)."""
    monkeypatch.setattr("netfloc.moments.accumulator.BUFFER_VALUES", 8)  # chunks of 1024 units: 3 for the wide layer
    rng = np.random.default_rng(3)
    wide, narrow = rng.normal(5.0, 2.0, (24, 2500)), rng.normal(-1.0, 0.5, (24, 700))
    labels = rng.integers(0, 3, 24)
    buffer = UpcastBuffer()
    shared = [MomentAccumulator(3, values.shape[1], buffer=buffer) for values in (narrow, wide)]
    for start in range(0, 24, 5):
        for accumulator, values in zip(shared, (narrow, wide), strict=True):
            accumulator.update(torch.from_numpy(values[start : start + 5]), labels[start : start + 5])
    for accumulator, values in zip(shared, (narrow, wide), strict=True):
        for k in range(3):
            rows = values[labels == k]
            m2 = ((rows - rows.mean(axis=0)) ** 2).sum(axis=0)
            np.testing.assert_allclose(accumulator.mean[k].numpy(), rows.mean(axis=0), rtol=1e-12)
            np.testing.assert_allclose(accumulator.m2[k].numpy(), m2, rtol=1e-10)


def test_merge_with_empty_groups_and_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    values = rng.normal(size=(30, 8))
    only_zero = feed(values[:10], np.zeros(10, dtype=int), 3, 4)
    only_two = feed(values[10:], np.full(20, 2), 3, 7)
    merged = MomentAccumulator(3, 8).merge(only_zero).merge(only_two)
    assert merged.count.tolist() == [10.0, 0.0, 20.0]
    assert np.all(merged.mean[1].numpy() == 0) and np.all(merged.m2[1].numpy() == 0)
    merged.save(tmp_path / "shard.npz")
    loaded = MomentAccumulator.load(tmp_path / "shard.npz")
    for a, b in zip(loaded.numpy(), merged.numpy(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_float32_offsets_keep_their_digits():
    """Large mean, small spread: a float32 sum of squares would lose the variance."""
    rng = np.random.default_rng(2)
    values = (1e4 + rng.normal(0, 1e-2, (500, 4))).astype(np.float32)
    accumulator = feed(values, np.zeros(500, dtype=int), 1, 32)
    expected = values.astype(np.float64).var(axis=0, ddof=1)
    np.testing.assert_allclose(accumulator.variance()[0].numpy(), expected, rtol=1e-9)


def test_stacked_groupings_in_uneven_batches_match_a_float64_reference():
    """Categories, folds and permutations accumulated at once (one membership matrix) keep rtol 1e-12."""
    from netfloc.moments.accumulator import membership

    rng = np.random.default_rng(3)
    values = (rng.normal(50.0, 2.0, (157, 70)) * rng.uniform(0.01, 100, 70)).astype(np.float32)
    values[:, :5] = 0.0  # dead units
    labelings = [rng.integers(0, 4, 157), rng.integers(0, 12, 157), rng.permutation(np.repeat(np.arange(4), 40)[:157])]
    sizes = [4, 12, 4]
    members = np.concatenate([membership(labels, n) for labels, n in zip(labelings, sizes, strict=True)], axis=1)
    accumulator = MomentAccumulator(members.shape[1], 70)
    for start, stop in ((0, 1), (1, 33), (33, 40), (40, 157)):
        accumulator.update_members(torch.from_numpy(values[start:stop]), members[start:stop])
    count, mean, m2 = accumulator.numpy()
    reference = values.astype(np.float64)
    offset = 0
    for labels, n in zip(labelings, sizes, strict=True):
        for group in range(n):
            rows = reference[labels == group]
            assert count[offset + group] == len(rows)
            np.testing.assert_allclose(mean[offset + group], rows.mean(axis=0), rtol=1e-12, atol=1e-12)
            expected = ((rows - rows.mean(axis=0)) ** 2).sum(axis=0)
            np.testing.assert_allclose(m2[offset + group], expected, rtol=1e-10, atol=1e-9 * expected.max())
        offset += n
    assert (m2[:, :5] == 0).all() and (mean[:, :5] == 0).all()


def test_present_blocks_cover_exactly_the_groups_in_a_batch():
    from netfloc.moments.accumulator import MAX_BLOCKS, membership, present_blocks

    assert present_blocks(membership(np.array([2, 2, 3]), 6)) == [slice(2, 4)]
    assert present_blocks(membership(np.array([0, 2, 5, 5]), 6)) == [slice(0, 1), slice(2, 3), slice(5, 6)]
    scattered = np.arange(0, 2 * (MAX_BLOCKS + 1), 2)  # MAX_BLOCKS + 1 separate runs: one product over all
    assert present_blocks(membership(scattered, 2 * (MAX_BLOCKS + 1))) == [slice(0, 2 * (MAX_BLOCKS + 1))]
    runs = np.arange(0, 2 * MAX_BLOCKS, 2)  # exactly MAX_BLOCKS runs stay separate
    assert present_blocks(membership(runs, 2 * MAX_BLOCKS)) == [slice(g, g + 1) for g in runs]
    assert present_blocks(membership(np.arange(6), 6)) == [slice(0, 6)]
    assert present_blocks(membership(np.array([], dtype=np.int64), 6)) == []


def test_category_ordered_batches_update_only_their_groups_and_stay_exact():
    """Stimuli in category order: pure batches, batches spanning two categories and batches with more runs of
    groups than MAX_BLOCKS all give the float64 reference moments (rtol 1e-12)."""
    rng = np.random.default_rng(5)
    labels = np.concatenate([np.repeat(np.arange(10), 9), rng.integers(0, 10, 30)])
    values = (rng.normal(3.0, 1.0, (len(labels), 40)) * rng.uniform(0.1, 10, 40)).astype(np.float32)
    accumulator = feed(values, labels, 10, batch=7)
    count, mean, m2 = accumulator.numpy()
    reference = values.astype(np.float64)
    for group in range(10):
        rows = reference[labels == group]
        assert count[group] == len(rows)
        np.testing.assert_allclose(mean[group], rows.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(m2[group], ((rows - rows.mean(axis=0)) ** 2).sum(axis=0), rtol=1e-10)
