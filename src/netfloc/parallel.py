"""``parallel_map``: one function over many items on every core, in threads.

For work that releases the GIL (numpy, scipy's special functions and sorts, image decoding, hashing, zlib):
threads share the inputs without copies. An error or an interrupt cancels the items not yet started instead of
waiting for all of them. A ``parallel_map`` called inside another's item runs in that item's thread: the outer
map already uses every core (e.g. null permutations on every core, each one's unit pairs in its thread).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")


#: Marks the threads of a running :func:`parallel_map`.
_worker = threading.local()


def parallel_map(function: Callable[[_Item], _Result], items: Iterable[_Item]) -> list[_Result]:
    """``[function(item) for item in items]`` on every core (threads; in the calling thread for one item, one
    core, or inside another ``parallel_map``'s item); the first error is raised once the items already running
    have finished, the others are not started."""
    items = list(items)
    workers = min(len(items), os.cpu_count() or 1)
    if workers < 2 or getattr(_worker, "inside", False):
        return [function(item) for item in items]
    pool = ThreadPoolExecutor(max_workers=workers, initializer=_mark_worker)
    try:
        return list(pool.map(function, items))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _mark_worker() -> None:
    _worker.inside = True
