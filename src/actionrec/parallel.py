"""One way to run a function over many videos on all cores, with a progress bar."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")
R = TypeVar("R")


def available_cores() -> int:
    """CPU cores this process may run on (respects taskset / cgroup affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_workers(workers: int) -> int:
    """``0`` means every available core; any other value is taken as is."""
    return available_cores() if workers <= 0 else workers


def _one_thread_per_worker() -> None:
    """Pool initializer: OpenCV's own threads would oversubscribe the cores the pool uses."""
    import cv2

    cv2.setNumThreads(1)


def imap_progress(fn: Callable[[T], R], items: Iterable[T], workers: int, desc: str,
                  unit: str = "clip", progress: bool = True) -> Iterator[R]:
    """Yield ``fn(item)`` for every item, in completion order, on ``workers`` processes.

    ``workers`` as in :func:`resolve_workers`; with one worker everything runs in
    this process. Results stream back one at a time, so memory does not grow with
    the number of items as long as each result is small. ``fn`` must be a
    module-level function (it is pickled).

    Workers come from the ``forkserver`` start method, not a plain ``fork`` of this
    process: a process that has already used OpenCV's (or TensorFlow's) thread pool
    and then forks can deadlock in the child, as OpenCV's pool lock is copied held.
    The fork server is a fresh process that preloads OpenCV and NumPy once, so
    workers still start in milliseconds.
    """
    items = list(items)
    n = min(resolve_workers(workers), max(1, len(items)))
    with tqdm(total=len(items), desc=desc, unit=unit, disable=not progress) as bar:
        if n == 1:
            for item in items:
                yield fn(item)
                bar.update(1)
            return
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["cv2", "numpy", "actionrec.parallel"])
        with ctx.Pool(n, initializer=_one_thread_per_worker, maxtasksperchild=200) as pool:
            for result in pool.imap_unordered(fn, items, chunksize=1):
                yield result
                bar.update(1)
