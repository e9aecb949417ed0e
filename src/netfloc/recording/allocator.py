"""How the C library's allocator treats the memory a forward pass frees (glibc on Linux; no-ops elsewhere).

A forward pass on the CPU allocates and frees its activations every batch: blocks of up to 100 MB for ResNet-50
at batch 32. glibc serves blocks above its mmap threshold (at most 32 MiB) with fresh pages from the kernel and
unmaps them when they are freed, so every batch pays a page fault and the kernel's zeroing for each of their
pages again. Within :func:`reuse_freed_memory` glibc keeps freed blocks in its heap instead (``mallopt``:
``M_MMAP_MAX`` = 0, ``M_TRIM_THRESHOLD`` = 2 GiB − 1; glibc manual, "Malloc Tunable Parameters") and the next
batch reuses them. When the last context exits, the heap's free pages go back to the system
(:func:`release_freed_memory`) and glibc's thresholds are set to where its own dynamic adjustment takes them once
blocks of 32 MiB have been freed: mappings for blocks of 32 MiB and more, the heap's top trimmed beyond 64 MiB.
Setting any of them turns that adjustment off for good (mallopt(3)), so its state before cannot be given back.
Where the environment sets these glibc tunables or preloads another allocator, nothing is changed.

PyTorch's huge-page allocations (``THP_MEM_ALLOC_ENABLE=1``) are best left off with it: whole 864-image runs of
ResNet-50 took 92–94 s with them and 82–84 s without (:func:`reuse_freed_memory`). They align blocks of 2 MB and
more to 2 MB, and the heap reuses such blocks less well: rounds of batch-like allocations (64 and 32 MiB blocks;
page faults from ``getrusage``) kept faulting 544–1,088 pages per round with them and none without.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
from collections.abc import Callable, Iterator

#: mallopt parameters (malloc.h).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_MMAP_MAX = -1, -3, -4
#: Inside the contexts: no mappings; free memory at the heap's top kept up to the largest int mallopt takes.
REUSING = {M_MMAP_MAX: 0, M_TRIM_THRESHOLD: 2**31 - 1}
#: After them: glibc's default number of mappings, and its dynamic thresholds' largest values (module docstring).
AFTERWARDS = {M_MMAP_MAX: 65536, M_MMAP_THRESHOLD: 32 * 2**20, M_TRIM_THRESHOLD: 64 * 2**20}
#: The environment variables that set those tunables (glibc manual, "Memory Allocation Tunables").
TUNABLE_VARIABLES = ("MALLOC_MMAP_MAX_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
TUNABLE_NAMES = ("glibc.malloc.mmap_max", "glibc.malloc.mmap_threshold", "glibc.malloc.trim_threshold")


def _glibc(name: str) -> Callable[..., int] | None:
    """glibc's function ``name`` (None on other systems and C libraries: musl's mallopt does nothing)."""
    if not sys.platform.startswith("linux"):
        return None
    library = ctypes.CDLL(None)
    return getattr(library, name, None) if hasattr(library, "gnu_get_libc_version") else None


def user_chose_allocator() -> bool:
    """Whether the environment sets glibc's mmap or trim tunables, or preloads another allocator (jemalloc,
    tcmalloc, mimalloc): then :func:`reuse_freed_memory` leaves the allocator alone."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    chosen = any(name in os.environ for name in TUNABLE_VARIABLES) or any(name in tunables for name in TUNABLE_NAMES)
    return chosen or "malloc" in os.environ.get("LD_PRELOAD", "")


def release_freed_memory() -> None:
    """Hand the memory the forward passes freed back to the operating system (glibc's ``malloc_trim``; a no-op
    on other C libraries). glibc keeps freed blocks below its mmap threshold (up to 32 MiB: most feature maps)
    in the heap, where they would count towards the process's memory for the rest of the run."""
    trim = _glibc("malloc_trim")
    if trim is not None:
        trim(0)


#: Contexts of :func:`reuse_freed_memory` open now (threads may overlap them: statistics beside a GPU pass).
_open_contexts = 0
_lock = threading.Lock()


@contextlib.contextmanager
def reuse_freed_memory(enabled: bool = True) -> Iterator[bool]:
    """Within the context, glibc keeps the blocks that are freed and reuses them for the next ones (a forward
    pass's next batch, a layer's next statistic) rather than mapping fresh pages (module docstring); yields
    whether it does: False where ``enabled`` is False, the C library is not glibc or the user chose the
    allocator's settings (:func:`user_chose_allocator`). When the last open context exits, the free heap pages
    are released (:func:`release_freed_memory`) and glibc's thresholds set as the module docstring says.

    Measured on ResNet-50, ``stages``, 864 images, 2 cores (whole ``netfloc run`` processes, two alternated
    rounds): 100.6 and 107.2 s with huge pages and fresh pages every batch → 81.7 and 84.3 s, kernel time 23–25 s
    → 3.6–3.9 s; the peak memory grows by the gaps the heap keeps between blocks, 1.52–1.56 → 1.57–1.70 GB
    (README, Benchmarks)."""
    global _open_contexts
    mallopt = _glibc("mallopt") if enabled and not user_chose_allocator() else None
    if mallopt is None:
        yield False
        return
    with _lock:
        if _open_contexts == 0:
            _set(mallopt, REUSING)
        _open_contexts += 1
    try:
        yield True
    finally:
        with _lock:
            _open_contexts -= 1
            if _open_contexts == 0:
                release_freed_memory()
                _set(mallopt, AFTERWARDS)


def _set(mallopt: Callable[..., int], values: dict[int, int]) -> None:
    for parameter, value in values.items():
        mallopt(parameter, value)
