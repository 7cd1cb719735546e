"""Executors for the sweep's points: local worker processes or a Dask cluster, each worker
single-threaded, behind the one ``concurrent.futures.Executor`` interface."""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import contextmanager

from .._system import THREADS_VARIABLE, available_cores
from .spec import SweepInputError

#: Thread pools of numeric libraries and of the loop, held to one thread per worker process.
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", THREADS_VARIABLE)


@contextmanager
def open_executor(kind: str = "local", *, scheduler: str | None = None,
                  workers: int | None = None) -> Iterator[Executor]:
    """A ``concurrent.futures.Executor`` for the sweep's points.

    ``local``: a ProcessPoolExecutor with the ``forkserver`` start method (forking a parent
    that runs threads can deadlock) and ``workers`` processes (default: all cores), each
    single-threaded. ``dask``: the executor of a ``dask.distributed`` Client, connected to
    ``scheduler`` (``tcp://host:port``) or to a LocalCluster of ``workers`` single-threaded
    worker processes on loopback.
    """
    if scheduler is not None or kind == "dask":
        with _dask_executor(scheduler, workers) as executor:
            yield executor
        return
    if kind != "local":
        raise SweepInputError(f"The 'executor' parameter of run_sweep must be one of "
                         f"['local', 'dask']. Got {kind!r} instead.")
    import multiprocessing

    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    # Worker processes inherit the environment at start; set it only where the user has not.
    saved = {k: os.environ.get(k) for k in _THREAD_VARS}
    os.environ.update({k: "1" for k, v in saved.items() if v is None})
    pool = ProcessPoolExecutor(max_workers=workers or available_cores(),
                               mp_context=multiprocessing.get_context(method))
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)


@contextmanager
def _dask_executor(scheduler: str | None, workers: int | None) -> Iterator[Executor]:
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise SweepInputError("the dask executor needs dask.distributed: "
                         "pip install 'modelcollapse[dask]'") from None
    cluster = None
    if scheduler is not None:
        if workers is not None:
            raise SweepInputError("'workers' and 'scheduler' conflict: a running cluster has its "
                             "own workers")
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as exc:
            raise ConnectionError(f"could not reach the Dask scheduler at {scheduler!r}: "
                                  f"{exc}") from None
    else:
        import dask

        # Nannies set OMP_NUM_THREADS=1 in their workers (distributed's pre-spawn-environ),
        # and also MALLOC_TRIM_THRESHOLD_, which turns off glibc's adaptive mmap threshold:
        # every large array of every generation is then a fresh mmap, and the loop runs
        # 1.3-2x slower. None unsets it (see docs/sweeps.md for a cluster started elsewhere).
        environ = "distributed.nanny.pre-spawn-environ"
        with dask.config.set({f"{environ}.MALLOC_TRIM_THRESHOLD_": None,
                              f"{environ}.{THREADS_VARIABLE}": "1"}):
            cluster = LocalCluster(n_workers=workers or available_cores(), threads_per_worker=1,
                                   processes=True, host="127.0.0.1", dashboard_address=None)
        client = Client(cluster)
    executor = client.get_executor()
    try:
        yield executor
    finally:
        executor.shutdown(wait=False)
        client.close()
        if cluster is not None:
            cluster.close()
