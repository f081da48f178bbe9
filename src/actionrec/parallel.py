"""One way to run a function over many videos on all cores, with a progress bar."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

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
                  unit: str = "clip", progress: bool = True, total: int | None = None,
                  count: Callable[[R], int] | None = None,
                  engine: str = "local", actors: bool = False) -> Iterator[R]:
    """Yield ``fn(item)`` for every item, in completion order, on ``workers`` processes.

    ``workers`` as in :func:`resolve_workers`; with one worker (and the local engine)
    everything runs in this process. Results stream back one at a time, so memory does not
    grow with the number of items as long as each result is small. ``fn`` must be a
    module-level function (it is pickled). The progress bar counts ``total`` units, each
    result adding ``count(result)`` (default: one per item).

    ``engine``: ``local``, a process pool on this machine; ``ray``, Ray Data
    (:func:`ray_map`): on the Ray cluster that ``$RAY_ADDRESS`` names, else on a Ray
    started on this machine for this call. Both give the same results. ``actors``: on Ray,
    ``workers`` long-lived actors run the calls (:func:`ray_map`), for work whose setup
    ``fn`` caches per process (a Keras model).

    Local workers come from the ``forkserver`` start method, not a plain ``fork`` of this
    process: a process that has already used OpenCV's (or TensorFlow's) thread pool
    and then forks can deadlock in the child, as OpenCV's pool lock is copied held.
    The fork server is a fresh process that preloads OpenCV and NumPy once, so
    workers still start in milliseconds.
    """
    items = list(items)
    with tqdm(total=len(items) if total is None else total, desc=desc, unit=unit,
              disable=not progress) as bar:
        for result in _run(fn, items, workers, engine, actors):
            yield result
            bar.update(1 if count is None else count(result))


def _run(fn: Callable[[T], R], items: list[T], workers: int, engine: str,
         actors: bool) -> Iterator[R]:
    if engine == "ray":
        yield from ray_map(fn, items, workers, actors)
        return
    if engine != "local":
        raise ValueError(f"engine {engine!r}: expected local or ray")
    n = min(resolve_workers(workers), max(1, len(items)))
    if n == 1:
        yield from map(fn, items)
        return
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["cv2", "numpy", "actionrec.parallel"])
    with ctx.Pool(n, initializer=_one_thread_per_worker, maxtasksperchild=200) as pool:
        yield from pool.imap_unordered(fn, items, chunksize=1)


#: Ray reads this when it is imported: with it ``0``, a Ray started on this machine (no
#: ``$RAY_ADDRESS``) listens on the loopback address only, as Ray does on macOS and Windows,
#: instead of the host's network address (Ray's ``ray_constants.ENABLE_RAY_CLUSTER``).
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def local_ray_on_loopback() -> None:
    """Make a Ray started by this process (and its workers, which inherit the environment)
    listen on 127.0.0.1 only. Call it before ``ray`` is first imported; a value already set
    is kept.

    Raises:
        RuntimeError: ``ray`` was imported before without it (its address is fixed).
    """
    import sys

    if LOOPBACK_ENV not in os.environ and "ray" in sys.modules:
        raise RuntimeError(f"ray was imported before {LOOPBACK_ENV} was set: a Ray started "
                           "here would listen on the host's address; call "
                           "local_ray_on_loopback() before importing ray")
    os.environ.setdefault(LOOPBACK_ENV, "0")


class _RayCall:
    """``fn`` on one Ray Data row: the item and the result travel pickled (Arrow would
    turn dicts and tuples into its own types). Ray Data runs an instance as a task, the
    class (given ``fn`` as its constructor's argument) as an actor."""

    def __init__(self, fn: Callable[[Any], Any]):
        self.fn = fn

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        import pickle

        import ray

        _one_thread_per_worker()
        return {"result": pickle.dumps(self.fn(pickle.loads(row["item"]))),
                "node": ray.get_runtime_context().get_node_id()}


def ray_map(fn: Callable[[T], R], items: list[T], workers: int = 0,
            actors: bool = False) -> Iterator[R]:
    """``fn(item)`` for every item as a Ray Data map, one block (one task) per item, results
    in completion order.

    ``actors``: the calls run in a pool of ``workers`` actors (one CPU each; on a cluster
    with ``workers`` 0, one per CPU of it; where the cluster has GPUs, one GPU each and at
    most one actor a GPU: not yet run on a GPU), each a process that lives for the whole
    map, so what ``fn`` caches per process (a Keras model) is built once per actor, not
    per item; else each call is a Ray task. At the end it prints how many nodes did the
    work (``ray: 6 tasks on 2 nodes of the cluster at $RAY_ADDRESS``).

    With ``$RAY_ADDRESS`` set (``ray://host:10001``, ``host:6379`` or ``auto``) the work runs
    on that cluster: every node needs this project's environment and the same paths (the
    data on a shared mount). Otherwise a Ray is started on this machine for the call, on the
    loopback address (:func:`local_ray_on_loopback`), with ``workers`` CPUs
    (:func:`resolve_workers`; docs/benchmarks.md has its start-up cost), and stopped after
    it. A Ray already initialised in this process is used as it is.
    """
    import logging
    import pickle

    address = os.environ.get("RAY_ADDRESS") or None
    if address is None:
        local_ray_on_loopback()
    import ray
    import ray.data

    started = not ray.is_initialized()
    if started:
        ray.init(address=address, num_cpus=None if address else resolve_workers(workers),
                 include_dashboard=False, log_to_driver=False, configure_logging=False,
                 logging_level=logging.WARNING)
    try:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the caller's bar counts what is done
        context.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        if not items:
            return
        ds = ray.data.from_items([{"item": pickle.dumps(i)} for i in items],
                                 override_num_blocks=len(items))
        if actors:
            resources = ray.cluster_resources()
            size = resolve_workers(workers) if workers or not address else \
                max(1, int(resources.get("CPU", 1)))
            gpus = int(resources.get("GPU", 0))
            mapped = ds.map(_RayCall, fn_constructor_args=(fn,), num_cpus=1,
                            num_gpus=1 if gpus else None, compute=ray.data.ActorPoolStrategy(
                                size=min(size, len(items), gpus or size)))
        else:
            mapped = ds.map(_RayCall(fn), num_cpus=1)
        nodes = set()
        for row in mapped.iter_rows():
            nodes.add(row["node"])
            yield pickle.loads(row["result"])
        where = ("the cluster at $RAY_ADDRESS" if address else
                 "a Ray started here" if started else "this process's Ray")
        print(f"ray: {len(items)} {'actor calls' if actors else 'tasks'} on {len(nodes)} "
              f"node{'s' * (len(nodes) != 1)} of {where}", flush=True)
    finally:
        if started:
            ray.shutdown()
