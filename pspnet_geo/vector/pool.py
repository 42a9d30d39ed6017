"""Polygonising mask windows in worker processes, so one thread is never every pixel's path.

``rasterio.features.shapes`` (GDAL's polygoniser) holds the GIL, so threads cannot share the
work: on one thread, a scene's polygons cost about as much as everything else ``segment`` does
on the host, and a GPU would wait on them. Each window's raster clean-up, labelling and
polygonising is a pure function of its pixels (:func:`polygonise_window`), so it runs in a
small pool of processes; the caller keeps only the bookkeeping (joining seams, ordering,
writing). Results are taken in the order the windows were given, so the output is the same
with or without the pool.

The pool is started once per process, on first use, with ``spawn`` (forking a process that
runs threads, as Dask and torch do, is unsafe), and reused by later scenes (a batch): a
process costs about a second to start. Scenes of few windows do not use it. A spawned process
normally imports the caller's main script again, which reruns a script without an
``if __name__ == "__main__":`` guard (a whole ``segment`` call, then a failure): our workers
need nothing from it, so every process is started at once with the main script hidden from
``multiprocessing`` (:func:`_main_script_hidden`).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import numpy as np

from pspnet_geo.vector.mask_windows import MaskWindow, WindowGrid
from pspnet_geo.vector.polygonize import WindowPieces, cut_window
from pspnet_geo.vector.postprocess.apply import WindowSteps

log = logging.getLogger(__name__)

MIN_WINDOWS = 8
"""Masks of fewer windows are polygonised in the calling thread: starting processes costs more."""

CORES_PER_PROCESS = 4
"""One polygonising process per this many CPU cores (at least one on two cores or more): the
rest read, normalise and blend blocks, write the mask and join seams. On two cores one process
still pays: the client thread it relieves would otherwise hold the GIL the block threads want
(near-free-model ``segment`` of a 16384^2 mosaic: 26.9-28.4 Mpx/s with one process, 25.3-25.9
without; see docs/benchmarks.md). On one core a process only adds its copies."""


@dataclass(frozen=True)
class WindowJob:
    """What polygonising any window of one mask needs: its grid, the values that make no
    polygon, and the raster clean-up steps."""

    grid: WindowGrid
    background: int | None
    nodata: float | None
    steps: WindowSteps


def polygonise_window(job: WindowJob, window: MaskWindow) -> tuple[WindowPieces, dict[int, np.ndarray]]:
    """Clean one window (with its halo) and polygonise its core; its centerline pieces by class."""
    core, lines = job.steps.apply(window)
    return cut_window(job.grid, job.background, job.nodata, window.core, core), lines


def processes_for(windows: int, cores: int | None = None) -> int:
    """Polygonising processes for a mask of ``windows`` windows on ``cores`` cores (default: the
    cores this process may run on); none in a daemonic process (a Dask worker, a
    ``multiprocessing.Pool`` worker), which may not start processes of its own."""
    if windows < MIN_WINDOWS or multiprocessing.current_process().daemon:
        return 0
    usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    cores = cores or len(usable)
    return max(1, cores // CORES_PER_PROCESS) if cores >= 2 else 0


class WindowQueue:
    """Windows polygonised in order, in the shared pool when ``processes`` > 0, else at once.

    At most twice the processes' windows are in flight; :meth:`add` hands each result to
    ``take`` once every window given before it has been taken. Where processes cannot start or
    die (no ``/dev/shm``, a sandbox, the OOM killer), the windows are polygonised in the calling
    thread instead, with a warning: slower, the same result.
    """

    def __init__(self, job: WindowJob, processes: int,
                 take: Callable[[WindowPieces, dict[int, np.ndarray]], None]) -> None:
        self.job, self.take = job, take
        self._pool = _started(processes) if processes > 0 else None
        self._limit = 2 * processes
        self._waiting: deque[tuple[Future, MaskWindow]] = deque()

    def add(self, window: MaskWindow) -> None:
        """Polygonise ``window`` (now, or in the pool)."""
        if self._pool is None:
            self.take(*polygonise_window(self.job, window))
            return
        try:
            self._waiting.append((self._pool.submit(polygonise_window, self.job, window), window))
        except (BrokenProcessPool, RuntimeError) as err:
            self._give_up_pool(err)
            self.add(window)
            return
        while len(self._waiting) > self._limit or (self._waiting and self._waiting[0][0].done()):
            self._take_next()

    def drain(self) -> None:
        """Take every window still in flight."""
        while self._waiting:
            self._take_next()

    def cancel(self) -> None:
        """Give up the windows in flight (a failed or interrupted run)."""
        while self._waiting:
            self._waiting.popleft()[0].cancel()

    def _take_next(self) -> None:
        future, window = self._waiting.popleft()
        try:
            found = future.result()
        except BrokenProcessPool as err:
            self._give_up_pool(err)
            found = polygonise_window(self.job, window)
        self.take(*found)

    def _give_up_pool(self, err: BaseException) -> None:
        if self._pool is not None:
            log.warning("the polygonising processes stopped (%s); polygonising in this thread", err)
        self._pool = None


def _started(processes: int) -> ProcessPoolExecutor | None:
    """The shared pool, or None where processes cannot be started here."""
    try:
        return shared_pool(processes)
    except (OSError, ImportError, NotImplementedError) as err:
        log.warning("cannot start polygonising processes (%s); polygonising in this thread", err)
        return None


_POOL: ProcessPoolExecutor | None = None
_POOL_SIZE = 0
_POOL_LOCK = threading.Lock()


def shared_pool(processes: int) -> ProcessPoolExecutor:
    """This process's polygonising pool, of at least ``processes`` processes, started on first
    use (and again if it broke: a worker killed by the OOM killer). A larger pool asked for
    replaces it, letting the scenes that hold the old one finish on it."""
    global _POOL, _POOL_SIZE
    with _POOL_LOCK:
        broken = _POOL is not None and getattr(_POOL, "_broken", False)
        if _POOL is None or broken or _POOL_SIZE < processes:
            if broken:      # a pool merely smaller is left to the scenes using it, and goes with them
                _POOL.shutdown(wait=False, cancel_futures=True)
            log.info("starting %d polygonising process(es)", processes)
            pool = ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=_ignore_interrupts)
            with _main_script_hidden():     # each submission to a pool with no idle worker starts one
                for _ in range(processes):      # (not waited for: they boot while the blocks run)
                    pool.submit(os.getpid)
            _POOL, _POOL_SIZE = pool, processes
        return _POOL


def _ignore_interrupts() -> None:
    """Ctrl-C is the caller's to handle (it stops the run); a worker it reached would break the
    pool and print a traceback of its own."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _forget_pool_after_fork() -> None:
    """A forked child cannot use its parent's pool (its manager thread did not survive the fork)."""
    global _POOL, _POOL_SIZE, _POOL_LOCK
    _POOL, _POOL_SIZE, _POOL_LOCK = None, 0, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool_after_fork)


@contextlib.contextmanager
def _main_script_hidden() -> Iterator[None]:
    """While processes start, ``multiprocessing`` finds no main script to import in them."""
    main = sys.modules["__main__"]
    saved = {name: main.__dict__[name] for name in ("__file__", "__spec__") if name in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__spec__ = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


@atexit.register
def _stop_pool() -> None:
    if _POOL is not None:
        _POOL.shutdown(wait=False, cancel_futures=True)
