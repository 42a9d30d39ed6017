"""Where blocks run: threads in this process, an embedded Dask cluster, or an existing one.

An existing scheduler is named by ``--scheduler`` or, as for any Dask client, by Dask's
``scheduler-address`` setting (``DASK_SCHEDULER_ADDRESS`` in the environment).

All three give the same thing: results of ``fn`` over ``items`` as they complete, with a
bounded number in flight so memory stays bounded however large the scene. Every model call
runs on one intra-op thread; parallelism comes from running several blocks at once. That
keeps each tile's logits independent of how many workers or threads there are, so results
are bit-identical across ``--workers`` and ``--threads``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from itertools import islice
from typing import Protocol, TypeVar

import dask
import torch
from distributed import Client, LocalCluster, WorkerPlugin, as_completed
from distributed.comm.addressing import parse_address, parse_host_port

from pspnet_geo.errors import InputError, RunError

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    """Runs a function over items, yielding results as they complete."""

    slots: int
    dashboard: str | None
    remote: bool
    """True when the blocks run on other machines, whose devices the client cannot check."""

    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T], in_flight: int) -> Iterator[R]:
        ...

    def submit(self, fn: Callable[[T], R], item: T):
        """Run ``fn(item)``; a future with ``result()`` and ``add_done_callback()``."""
        ...


class LocalExecutor:
    """Blocks run in threads of this process (the default for one worker)."""

    def __init__(self, threads: int) -> None:
        self.slots, self.dashboard, self.remote = threads, None, False
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="pspnet-geo")

    def map_unordered(self, fn, items, in_flight):
        pending = set()
        source = iter(items)
        try:
            pending = {self._pool.submit(fn, item) for item in islice(source, in_flight)}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    pending |= {self._pool.submit(fn, item) for item in islice(source, 1)}
                    yield future.result()
        finally:
            for future in pending:
                future.cancel()

    def submit(self, fn, item):
        return self._pool.submit(fn, item)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor:
    """Blocks run as Dask tasks on an embedded local cluster or an existing scheduler."""

    def __init__(self, client, dashboard: str | None = None, remote: bool = False) -> None:
        self.client, self.dashboard, self.remote = client, dashboard, remote
        self.slots = max(1, sum(client.nthreads().values()))

    def map_unordered(self, fn, items, in_flight):
        source = iter(items)
        running = as_completed([self.client.submit(fn, item, pure=False) for item in islice(source, in_flight)])
        try:
            for future in running:
                result = future.result()
                for item in islice(source, 1):
                    running.add(self.client.submit(fn, item, pure=False))
                future.release()
                yield result
        finally:
            self.client.cancel(list(running.futures))

    def submit(self, fn, item):
        return self.client.submit(fn, item, pure=False)

    def close(self) -> None:
        cluster = self.client.cluster
        self.client.close()
        if cluster is not None:
            cluster.close()


@contextlib.contextmanager
def open_executor(workers: int = 1, threads: int | None = None, scheduler: str | None = None) -> Iterator[Executor]:
    """An executor for the run; torch uses one intra-op thread per call while it is open."""
    check_executor_options(workers, threads, scheduler)
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    executor = _make_executor(workers, threads, scheduler)
    try:
        yield executor
    finally:
        executor.close()
        torch.set_num_threads(previous)


def check_executor_options(workers: int, threads: int | None, scheduler: str | None) -> None:
    """Refuse, in one line and before any work, executor options that cannot work."""
    if workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    if threads is not None and threads < 1:
        raise InputError(f"--threads must be at least 1, got {threads} (leave it out for one per CPU core)")
    address = scheduler or dask.config.get("scheduler-address", None)
    if address:
        _check_address(address)


def _check_address(address: str) -> None:
    try:
        parse_address(address)
        parse_host_port(address.split("://", 1)[-1])
    except (ValueError, TypeError) as err:
        raise InputError(f"{address!r} is not a Dask scheduler address such as tcp://host:8786 "
                         f"(from --scheduler or DASK_SCHEDULER_ADDRESS): {err}") from None


def _make_executor(workers: int, threads: int, scheduler: str | None) -> Executor:
    scheduler = scheduler or dask.config.get("scheduler-address", None)
    if scheduler:
        client = _connect(scheduler)
        return DaskExecutor(client, client.dashboard_link, remote=True)
    if workers == 1:
        return LocalExecutor(threads)
    log.info("starting a local Dask cluster: %d workers x %d threads", workers, threads)
    cluster = LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True,
                           dashboard_address=None, silence_logs=logging.ERROR)
    client = Client(cluster)
    client.register_plugin(SingleThreadTorch())
    return DaskExecutor(client)


def _connect(address: str):
    try:
        client = Client(address, timeout="10s")
    except (OSError, TimeoutError) as err:
        raise RunError(f"cannot reach the Dask scheduler at {address}: {err}") from None
    client.register_plugin(SingleThreadTorch())
    log.info("using Dask cluster %s (dashboard %s)", address, client.dashboard_link)
    return client


class SingleThreadTorch(WorkerPlugin):
    """Dask worker plugin: one intra-op torch thread per call, as in-process runs use."""

    name = "pspnet-geo-single-thread-torch"

    def setup(self, worker) -> None:
        torch.set_num_threads(1)
