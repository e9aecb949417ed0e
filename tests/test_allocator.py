"""Inside reuse_freed_memory glibc serves large blocks from its heap, where freed ones are reused; outside it
they are fresh mappings (the pass and the statistics running inside it: test_memory_format)."""

from __future__ import annotations

import ctypes

import pytest
import torch

from netfloc.recording import allocator
from netfloc.recording.allocator import reuse_freed_memory

#: 1 GiB of float32, never written: far above glibc's largest mmap threshold (32 MiB) and above any free block
#: the heap may hold, so by default glibc maps it; left unwritten, it costs no memory.
LARGE_VALUES = 2**28

glibc = pytest.mark.skipif(allocator._glibc("mallopt") is None, reason="glibc's mallopt is needed")


def from_heap() -> bool:
    """Whether a fresh large block lies in glibc's heap (below the program break) rather than in a mapping
    (on Linux, mappings lie above the heap)."""
    sbrk = allocator._glibc("sbrk")
    sbrk.restype, sbrk.argtypes = ctypes.c_void_p, [ctypes.c_ssize_t]
    block = torch.empty(LARGE_VALUES)
    return block.data_ptr() < sbrk(0)


@glibc
def test_large_blocks_come_from_the_heap_inside_and_from_mappings_after() -> None:
    assert not from_heap()
    with reuse_freed_memory() as reusing:
        assert reusing and from_heap()
    assert not from_heap()


@glibc
def test_overlapping_contexts_keep_the_heap_until_the_last_exits() -> None:
    with reuse_freed_memory():
        with reuse_freed_memory():
            pass
        assert from_heap()
    assert not from_heap() and allocator._open_contexts == 0


def test_a_disabled_context_changes_nothing() -> None:
    with reuse_freed_memory(enabled=False) as reusing:
        assert not reusing and allocator._open_contexts == 0
