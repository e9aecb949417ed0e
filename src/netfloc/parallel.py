"""``parallel_map``: one function over many items on every core, in threads.

For work that releases the GIL (numpy, scipy's special functions and sorts, image decoding, hashing, zlib):
threads share the inputs without copies. An error or an interrupt cancels the items not yet started instead of
waiting for all of them. A ``parallel_map`` called inside another's item gets that item's share of the cores
(cores // the outer map's threads): with 2 cores and 20 null permutations each permutation's unit pairs run in
its own thread; with 16 cores and 5 folds each fold's pairs run on 3 threads.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")


#: The cores a :func:`parallel_map` thread's own maps may use (unset outside them: every core).
_worker = threading.local()


def parallel_map(function: Callable[[_Item], _Result], items: Iterable[_Item]) -> list[_Result]:
    """``[function(item) for item in items]`` on every core, or on the share of an outer map's item (threads; in
    the calling thread for one item or one core); the first error is raised once the items already running
    have finished, the others are not started."""
    items = list(items)
    cores = getattr(_worker, "cores", None) or os.cpu_count() or 1
    workers = min(len(items), cores)
    if workers < 2:
        return [function(item) for item in items]
    pool = ThreadPoolExecutor(max_workers=workers, initializer=_set_cores, initargs=(max(1, cores // workers),))
    try:
        return list(pool.map(function, items))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _set_cores(cores: int) -> None:
    _worker.cores = cores
