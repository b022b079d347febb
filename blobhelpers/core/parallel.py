"""Use both cores of a small machine for independent items, with results that do not depend on it.

NumPy, SciPy (``ndimage`` since 1.x releases the GIL) and TensorFlow spend their time outside
the GIL, so threads are enough there (:func:`ordered_map`): no pickling, no second copy of a
model in memory. Work that holds the GIL (scikit-learn tree fits driven from Python, the SVM
simulator's per-source loops) goes to worker processes (:func:`process_map`).

One setting sizes both: ``BLOBHELPERS_WORKERS`` (default: the CPUs this process may use, at most 2).

Work whose floating-point results depend on what a native library picks when it starts (TensorFlow's
thread-pool sizes, oneDNN's and OpenBLAS' kernels for this CPU) goes to workers started with a
fixed environment (``process_map(..., env=...)``), fresh for each task where it must not inherit
anything from an earlier one (``fresh=True``).
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from numbers import Integral

from blobhelpers.core.errors import InputError

__all__ = ["cpu_count", "default_workers", "n_workers", "ordered_map", "process_map", "runs_pinned",
           "PINNED_MARK"]

#: Thread-pool sizes handed to worker processes (BLAS, OpenMP, numexpr); TensorFlow keeps its own unless
#: ``process_map``'s *env* sets them.
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one, else every CPU)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def default_workers(limit: int = 2) -> int:
    """Threads or worker processes to use: the CPU count, at most *limit* (more only adds memory on
    a 2-4 core machine).

    ``BLOBHELPERS_WORKERS`` overrides it (1: everything in the calling thread); anything but a
    whole number >= 1 there is an :class:`~blobhelpers.core.errors.InputError` (a ``ValueError``).
    """

    env = os.environ.get("BLOBHELPERS_WORKERS", "").strip()
    if env:
        if env.isdigit() and int(env) >= 1:
            return int(env)
        raise InputError(f"BLOBHELPERS_WORKERS={env!r}: expected a whole number >= 1")
    return max(1, min(limit, cpu_count()))


def n_workers(n_jobs: int | None, n_tasks: int) -> int:
    """Worker processes for *n_tasks* independent tasks: *n_jobs*, at most one per task, at least 1.

    ``n_jobs=None``: :func:`default_workers`. Anything but ``None`` or a whole number >= 1 is an
    :class:`~blobhelpers.core.errors.InputError`.

    >>> n_workers(4, 3), n_workers(1, 10), n_workers(2, 0)
    (3, 1, 1)
    """

    if n_jobs is None:
        n_jobs = default_workers()
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, Integral) or n_jobs < 1:
        raise InputError(f"n_jobs {n_jobs!r}: must be a whole number >= 1 (or None: the default)")
    return max(1, min(int(n_jobs), int(n_tasks)))


#: Set in the environment of the workers of a :func:`process_map` given *env*: the worker started with it.
PINNED_MARK = "BLOBHELPERS_PINNED_ENV"


def runs_pinned(env: dict) -> bool:
    """True in a process that :func:`process_map` started with every variable of *env* (see its *env*)."""
    return os.environ.get(PINNED_MARK) == "1" and all(os.environ.get(k) == str(v) for k, v in env.items())


def process_map(fn, tasks, n_jobs: int | None = None, progress=None, env: dict | None = None,
                fresh: bool = False) -> list:
    """``[fn(*task) for task in tasks]``, computed in worker processes; results in the order of *tasks*.

    Every task must be independent of the others (its own seed, its own output files): then the
    results do not depend on *n_jobs* nor on which worker ran what, bit for bit. ``n_jobs=1`` (or a
    single task) runs in this process, without workers (but see *env* and *fresh*). Otherwise a
    fresh pool of ``spawn``-ed processes (no fork of a process whose TensorFlow or BLAS threads are
    running) runs the tasks (*fn* and the task arguments must be picklable: a module-level function
    and plain data; only our own objects travel, never a file) and is shut down at the end. Each
    worker gets ``cpu_count // workers`` BLAS/OpenMP threads (unless the environment or *env* sets
    them): no oversubscription of the native thread pools. A task's exception is raised here, with
    its type, in its turn. *progress*: a callable called with each result, in order (e.g. to
    advance a bar).

    *env*: environment variables the workers start with, before anything in them is imported --
    what a native library reads once, when it starts (TensorFlow's thread pools, oneDNN's
    instruction set: :data:`blobhelpers.core.deeplearning.REPRODUCIBLE_TF_ENV`), so it cannot be set
    in a process that already runs it. They override this process' values; while the workers run,
    this process' environment carries them too (spawned processes copy it), and it is restored at the
    end. The workers are also marked (:data:`PINNED_MARK`): in such a worker, a nested call with the
    same *env* and one worker (and not *fresh*) runs in place (:func:`runs_pinned`); anywhere else,
    *env* means worker processes even for one task. *fresh*: every task in a new process (nothing
    left from an earlier task: imported state, caches, counters, seeds); implies workers.
    """
    tasks = list(tasks)
    n = n_workers(n_jobs, len(tasks))
    out = []
    env = {k: str(v) for k, v in (env or {}).items()}
    in_place = n == 1 and not fresh and (not env or runs_pinned(env))
    if in_place or not tasks:
        for t in tasks:
            out.append(fn(*t))
            if progress is not None:
                progress(out[-1])
        return out
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    extra = {**env, PINNED_MARK: "1"} if env else {}
    saved = {k: os.environ.get(k) for k in (*_THREAD_VARS, *extra)}
    try:  # spawned workers copy this environment when they start (a fresh worker per task: later ones too)
        os.environ.update(extra)
        for k in _THREAD_VARS:
            os.environ.setdefault(k, str(max(1, cpu_count() // n)))
        pool = ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"),
                                   max_tasks_per_child=1 if fresh else None)
        try:
            futures = [pool.submit(fn, *t) for t in tasks]
            for f in futures:
                out.append(f.result())
                if progress is not None:
                    progress(out[-1])
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return out


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
