"""parallel_map: results in item order, items on worker threads, nested maps on their item's share of the cores."""

from __future__ import annotations

import os
import threading

import pytest

from netfloc.parallel import parallel_map


def test_nested_maps_run_in_their_items_thread_and_results_keep_their_order(monkeypatch):
    """With two cores the outer items run on pool threads, and a map inside an item runs in that item's thread
    (fails when nested maps open pools of their own: the cores would be oversubscribed)."""
    monkeypatch.setattr(os, "cpu_count", lambda: 2)

    def item(index: int) -> tuple[int, int, set[int]]:
        inner = parallel_map(lambda _: threading.get_ident(), range(4))
        return index, threading.get_ident(), set(inner)

    found = parallel_map(item, range(6))
    assert [index for index, _, _ in found] == list(range(6))
    assert all(inner == {outer} for _, outer, inner in found)
    assert threading.get_ident() not in {outer for _, outer, _ in found}
    assert parallel_map(lambda _: threading.get_ident(), range(4)) != [threading.get_ident()] * 4


def test_a_nested_map_uses_the_cores_its_item_was_left(monkeypatch):
    """With 8 cores and 2 outer items each item's map of 4 runs its 4 items at once (each waits for the other
    three); fails, by a broken barrier, when nested maps always run in their item's thread."""
    monkeypatch.setattr(os, "cpu_count", lambda: 8)

    def item(_: int) -> int:
        barrier = threading.Barrier(4, timeout=5)
        return len(set(parallel_map(lambda _: barrier.wait() is not None and threading.get_ident(), range(4))))

    assert parallel_map(item, range(2)) == [4, 4]


def test_the_first_error_is_raised(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)

    def fail_on_three(index: int) -> int:
        if index == 3:
            raise ValueError("three")
        return index

    with pytest.raises(ValueError, match="three"):
        parallel_map(fail_on_three, range(8))
