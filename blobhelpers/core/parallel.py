"""Use both cores of a small machine for independent items, with results that do not depend on it.

NumPy, SciPy (``ndimage`` since 1.x releases the GIL) and TensorFlow spend their time outside
the GIL, so threads are enough: no pickling, no second copy of a model in memory.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor

__all__ = ["default_workers", "ordered_map"]


def default_workers(limit: int = 2) -> int:
    """Threads to use: the CPU count, at most *limit* (more only adds memory on a 2-4 core machine).

    ``BLOBHELPERS_WORKERS`` overrides it (1: everything in the calling thread).
    """
    env = os.environ.get("BLOBHELPERS_WORKERS", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise ValueError(f"BLOBHELPERS_WORKERS={env!r}: expected a whole number of threads") from None
    return max(1, min(limit, os.cpu_count() or 1))


def ordered_map(fn, items, workers: int | None = None):
    """Yield ``fn(item)`` for every item of *items*, in the order of *items*.

    Up to *workers* calls run at once in threads; *items* itself is consumed in the calling
    thread, one item ahead of the slowest pending call, so a generator that draws random numbers
    draws them in the same order as a plain loop, and at most *workers* + 1 items are in memory.
    *fn* must not depend on the order in which the calls run (no shared random generator, no
    shared mutable state). An exception in *fn* is raised when its item's turn comes.

    >>> list(ordered_map(lambda x: x * x, range(5), workers=2))
    [0, 1, 4, 9, 16]
    """
    workers = default_workers() if workers is None else max(1, int(workers))
    if workers == 1:
        for item in items:
            yield fn(item)
        return
    with ThreadPoolExecutor(workers) as ex:
        pending: deque = deque()
        for item in items:
            pending.append(ex.submit(fn, item))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
