"""Inside reuse_freed_memory glibc serves large blocks from its heap and keeps them there when they are freed;
after it they are mappings again and the heap's free top is released (the pass and the statistics running
inside it: test_memory_format)."""

from __future__ import annotations

import ctypes
import os

import pytest

from netfloc.recording import allocator
from netfloc.recording.allocator import reuse_freed_memory

#: Far above glibc's largest mmap threshold (32 MiB): by default glibc maps such a block.
LARGE_BYTES = 2**30
#: A block that is written, so it is resident until released.
WRITTEN_BYTES = 2**28

glibc = pytest.mark.skipif(
    allocator._glibc("mallinfo2") is None or allocator.user_chose_allocator(),
    reason="glibc (2.33 or later: mallinfo2) is needed, with its tunables left to netfloc",
)


def in_heap(address: int) -> bool:
    """Whether ``address`` lies in glibc's main heap ([heap] in /proc/self/maps)."""
    with open("/proc/self/maps") as maps:
        line = next(line for line in maps if line.rstrip().endswith("[heap]"))
    start, end = (int(bound, 16) for bound in line.split()[0].split("-"))
    return start <= address < end


class MallInfo2(ctypes.Structure):
    """glibc's struct mallinfo2 (malloc.h)."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ] + [("keepcost", ctypes.c_size_t)]


def _glibc_memory_functions():
    malloc, free, mallinfo2 = (allocator._glibc(name) for name in ("malloc", "free", "mallinfo2"))
    malloc.restype, malloc.argtypes, free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]
    mallinfo2.restype = MallInfo2
    return malloc, free, mallinfo2


def write_and_free_at_the_top(size: int) -> None:
    """malloc a block larger than all free memory in the heap (so that, from the heap, it extends it: it is the
    top block), write its last ``size`` bytes and free it; a trim threshold below ``size`` returns them."""
    malloc, free, mallinfo2 = _glibc_memory_functions()
    total = mallinfo2().fordblks + size
    block = malloc(total)
    ctypes.memset(block + total - size, 1, size)
    free(block)


def large_block_in_heap() -> bool:
    """Whether a fresh block larger than all free memory in the heap (1 GiB more, never written, so it costs
    no memory) comes from the heap rather than from a mapping of its own (PyTorch's CPU tensors are malloc'ed)."""
    malloc, free, mallinfo2 = _glibc_memory_functions()
    block = malloc(mallinfo2().fordblks + LARGE_BYTES)
    try:
        return in_heap(block)
    finally:
        free(block)


def resident() -> int:
    """The process's resident memory in bytes (/proc/self/statm)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@glibc
def test_large_blocks_come_from_the_heap_and_stay_there_inside_and_are_mappings_after() -> None:
    assert not large_block_in_heap()
    before = resident()
    with reuse_freed_memory() as reusing:
        assert reusing and large_block_in_heap()
        write_and_free_at_the_top(WRITTEN_BYTES)
        assert resident() - before > 0.75 * WRITTEN_BYTES  # freed and kept (by default: unmapped or trimmed)
    assert resident() - before < 0.25 * WRITTEN_BYTES  # the last context released the heap's free pages
    assert not large_block_in_heap()


@glibc
def test_overlapping_contexts_keep_the_heap_until_the_last_exits() -> None:
    with reuse_freed_memory():
        with reuse_freed_memory():
            pass
        assert large_block_in_heap()
    assert not large_block_in_heap() and allocator._open_contexts == 0


@pytest.mark.parametrize(
    "variable, value",
    [("MALLOC_MMAP_MAX_", "0"), ("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=0"), ("LD_PRELOAD", "libjemalloc.so")],
)
def test_an_allocator_the_user_chose_is_left_alone(monkeypatch, variable, value) -> None:
    monkeypatch.setenv(variable, value)
    with reuse_freed_memory() as reusing:
        assert not reusing and allocator._open_contexts == 0


def test_a_disabled_context_changes_nothing() -> None:
    with reuse_freed_memory(enabled=False) as reusing:
        assert not reusing and allocator._open_contexts == 0
