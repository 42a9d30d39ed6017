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
import importlib.util
import logging
import os
import signal
import threading
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from functools import partial
from itertools import islice
from typing import Protocol, TypeVar

import dask
import torch
from distributed import Client, LocalCluster, WorkerPlugin, as_completed
from distributed.comm.addressing import parse_address, parse_host_port

from pspnet_geo.errors import InputError, RunError
from pspnet_geo.segmentation.abandon import Abandoned, call_until_stopped
from pspnet_geo.segmentation.gpus import gpu_cluster

log = logging.getLogger(__name__)
CLOSE_ABANDONED_S = 0.5
"""How long an abandoned run waits for its embedded cluster to close (its workers are killed first)."""
LOCAL_HTTP = "127.0.0.1:0"
"""Where an embedded cluster's scheduler serves HTTP: this machine only, on a free port. With no
address Dask tries port 8787 on every interface, and when another cluster holds that port it
leaks a socket as it moves to another one."""
T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    """Runs a function over items, yielding results as they complete."""

    slots: int
    dashboard: str | None
    remote: bool
    """True when the blocks run on other machines, whose devices the client cannot check."""

    def map_unordered(self, fn: Callable[[T], R], items: Iterable[T], in_flight: int) -> Generator[R, None, None]:
        ...

    def submit(self, fn: Callable[[T], R], item: T):
        """Run ``fn(item)``; a future with ``result()`` and ``add_done_callback()``."""
        ...

    def abandon(self) -> None:
        """Give up all work: queued items never start, running ones stop as soon as they can."""
        ...


class LocalExecutor:
    """Blocks run in threads of this process (the default for one worker)."""

    def __init__(self, threads: int) -> None:
        self.slots, self.dashboard, self.remote = threads, None, False
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="pspnet-geo")
        self._closing = threading.Event()

    def map_unordered(self, fn, items, in_flight):
        """Results as they complete. When the caller stops early (closes this generator, or an
        error or Ctrl-C unwinds it), queued items are cancelled and running ones abandoned."""
        over = threading.Event()
        stopped = partial(_either_set, over, self._closing)
        pending = set()
        source = iter(items)
        try:
            pending = {self._pool.submit(call_until_stopped, stopped, fn, item) for item in islice(source, in_flight)}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    pending |= {self._pool.submit(call_until_stopped, stopped, fn, item) for item in islice(source, 1)}
                    yield future.result()
        finally:
            over.set()
            for future in pending:
                future.cancel()

    def submit(self, fn, item):
        return self._pool.submit(call_until_stopped, self._closing.is_set, fn, item)

    def abandon(self) -> None:
        self._closing.set()

    def close(self) -> None:
        """Wait for running items; after :meth:`abandon` (or an interrupted run) that is at most
        one model batch each."""
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor:
    """Blocks run as Dask tasks on an embedded local cluster or an existing scheduler."""

    def __init__(self, client, dashboard: str | None = None, remote: bool = False) -> None:
        self.client, self.dashboard, self.remote = client, dashboard, remote
        self.slots = max(1, sum(client.nthreads().values()))
        self._submitted: set = set()
        self._abandoned = False

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
        if self._abandoned:     # the run is over: a late submission never starts
            return _failed(Abandoned("the run was abandoned"))
        future = self.client.submit(fn, item, pure=False)
        self._submitted.add(future)
        future.add_done_callback(self._submitted.discard)
        return future

    def abandon(self) -> None:
        """Cancel every task still queued or running, and any submitted later (a task running
        on a worker stops only when the worker does; the embedded cluster's stop at close)."""
        self._abandoned = True      # first: a submission racing this call is refused or cancelled
        self.client.cancel(list(self._submitted.copy()))   # copy: callbacks run on another thread

    def close(self) -> None:
        cluster = self.client.cluster
        if cluster is not None and self._abandoned:
            _stop_workers_now(cluster)
        self.client.close()
        if cluster is None:
            return
        try:
            cluster.close(timeout=CLOSE_ABANDONED_S if self._abandoned else None)
        except Exception as err:   # a slow close must not replace the error that ended the run
            if not self._abandoned:
                raise
            log.debug("the abandoned cluster did not close in time: %s", err)


def _failed(error: BaseException) -> Future:
    future: Future = Future()
    future.set_exception(error)
    return future


def _stop_workers_now(cluster: LocalCluster) -> None:
    """Stop the embedded cluster's worker processes (ours: its nannies started them) at once,
    by their process ids. Closing the cluster would first let each worker finish its running
    block, and asking each nanny in turn to kill its worker took a second or more per worker."""
    for nanny in list(cluster.workers.values()):
        pid = getattr(nanny, "pid", None)
        nanny.close_gracefully(reason="pspnet-geo run abandoned")    # or it starts a new worker
        if pid:
            with contextlib.suppress(ProcessLookupError):   # a worker already gone needs nothing
                os.kill(pid, signal.SIGKILL)


def _either_set(first: threading.Event, second: threading.Event) -> bool:
    return first.is_set() or second.is_set()


@contextlib.contextmanager
def open_executor(workers: int = 1, threads: int | None = None, scheduler: str | None = None,
                  gpus: Sequence[str] = ()) -> Iterator[Executor]:
    """An executor for the run; torch uses one intra-op thread per call while it is open.
    ``gpus`` (ids, see :func:`~pspnet_geo.segmentation.gpus.chosen_gpus`) starts one worker per GPU."""
    check_executor_options(workers, threads, scheduler)
    threads = threads or max(1, (os.cpu_count() or 1) // max(workers, len(gpus)))
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    executor = _make_executor(workers, threads, scheduler, gpus)
    try:
        yield executor
    except BaseException:   # Ctrl-C or a failure: running blocks give up rather than finish
        try:
            executor.abandon()
        except Exception as err:   # e.g. a lost scheduler: the error that ended the run is the one to report
            log.debug("abandoning the run's tasks failed: %s", err)
        raise
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


def _make_executor(workers: int, threads: int, scheduler: str | None, gpus: Sequence[str]) -> Executor:
    scheduler = scheduler or dask.config.get("scheduler-address", None)
    if gpus:        # its own local cluster, whatever Dask's settings name
        cluster = gpu_cluster(gpus, threads, LOCAL_HTTP)
    elif scheduler:
        client = _connect(scheduler)
        return DaskExecutor(client, client.dashboard_link, remote=True)
    elif workers == 1:
        return LocalExecutor(threads)
    else:
        log.info("starting a local Dask cluster: %d workers x %d threads", workers, threads)
        cluster = LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True,
                               dashboard_address=LOCAL_HTTP, silence_logs=logging.ERROR)
    client = Client(cluster)
    client.register_plugin(SingleThreadTorch())
    return DaskExecutor(client, local_dashboard(client))


DASHBOARD_EXTRA = "pip install 'pspnet-geo[dashboard]'"


def local_dashboard(client) -> str:
    """Where the embedded cluster's dashboard is served (its blocks' tasks and progress), or why
    there is none: Dask serves it only with bokeh installed, an optional extra of ours."""
    if importlib.util.find_spec("bokeh") is None:
        return f"none (it needs bokeh: {DASHBOARD_EXTRA})"
    return client.dashboard_link


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
