"""Many tasks at once: local worker threads, each driving its own kept kernel, or a Dask cluster."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence

from . import kernels
from .points import failure, run_point

__all__ = ["run_tasks", "local_workers", "check_workers"]


def local_workers() -> int:
    """The number of cores this process may use: the default number of local workers."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def check_workers(workers, name: str = "workers") -> int | None:
    """``workers`` if it is None or an integer >= 1, else a ``ValueError`` naming ``name``."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"{name} must be an integer >= 1; got {workers!r}")
    return workers


def run_tasks(tasks: Sequence[dict], on_result: Callable[[dict, dict], None], *, workers: int | None = None,
              dask=None, work: Callable[[dict], dict] = run_point) -> None:
    """Run ``work(task)`` for every task and call ``on_result(task, result)`` in this thread as each finishes.

    Local workers (the default, one per core, at most one per task) are threads of this process,
    each driving its own kept kernel: threads start at once, need no ``if __name__ ==
    "__main__"`` guard in a calling script, and were faster than processes when measured; the work
    is in the kernels anyway. With ``dask`` (a scheduler address or a ``distributed.Client``),
    ``work`` runs on that cluster's workers (it must be importable there). A ``KeyboardInterrupt``
    stops the running notebooks within a second and re-raises; the finished results were passed on.
    """
    check_workers(workers)
    if not tasks:
        return
    if dask is not None:
        _run_dask(list(tasks), dask, on_result, work)
    else:
        _run_local(list(tasks), min(workers or local_workers(), len(tasks)), on_result, work)


def _run_local(tasks: list[dict], workers: int, on_result, work) -> None:
    from concurrent.futures import ThreadPoolExecutor, as_completed

    threads: set[int] = set()
    stop = threading.Event()

    def run(task: dict) -> dict:
        if stop.is_set():
            return failure(KeyboardInterrupt("interrupted"))
        return work(task)

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kllab-worker",
                              initializer=lambda: threads.add(threading.get_ident()))
    futures = {pool.submit(run, t): t for t in tasks}
    try:
        for fut in as_completed(futures):
            on_result(futures[fut], fut.result())
    except BaseException:  # Ctrl-C: no new notebooks, and the running ones end within a second
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
        kernels.kill_all(threads)
        raise
    finally:
        pool.shutdown(wait=True)
        kernels.shutdown_all(threads)  # the threads have stopped: now their kernels can be closed


def _run_dask(tasks: list[dict], address, on_result, work) -> None:
    import uuid

    from distributed import Client, as_completed

    own = not isinstance(address, Client)
    client = Client(address, set_as_default=False) if own else address
    run = uuid.uuid4().hex[:8]
    futures = {client.submit(work, t, key=f"kllab-{run}-{i}", pure=False): t for i, t in enumerate(tasks)}
    try:
        for fut in as_completed(list(futures), loop=client.loop):
            try:
                result = fut.result()
            except Exception as err:  # the worker died, or the task could not be sent
                result = failure(err)
            on_result(futures[fut], result)
        try:  # every task is done: free the workers' kept kernels (a shared cluster needs its memory back)
            client.run(kernels.shutdown_all)
        except Exception:  # they go with their workers anyway
            pass
    except BaseException:
        client.cancel(list(futures))
        raise
    finally:
        if own:
            client.close()
