"""Stopping early: blocks still running when their run ends give up between model batches.

A run ends early on Ctrl-C, or when something fails, while blocks are still on the executor.
Queued blocks are cancelled, but a running block would go on to its last tile: with small
tiles that is dozens of model calls, and the run (a Ctrl-C, a failed batch) waits for it.
Instead, an executor thread runs each block under a stop test (:func:`call_until_stopped`), and
the model loop calls :func:`check` before each batch, so a block whose run is over raises
:class:`Abandoned` within one model batch. Blocks running on other processes (Dask workers)
cannot be reached this way; their executor cancels them instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

_local = threading.local()


class Abandoned(RuntimeError):
    """A block given up because the run that asked for it is over. Never a user's mistake:
    the run already ends for another reason (an interrupt, an error), which is the one reported."""


def call_until_stopped(stopped: Callable[[], bool], fn: Callable[[T], R], item: T) -> R:
    """``fn(item)`` in this thread; once ``stopped()`` is true, the next :func:`check` raises."""
    if stopped():
        raise Abandoned("the run was over before this block started")
    _local.stopped = stopped
    try:
        return fn(item)
    finally:
        _local.stopped = None


def check() -> None:
    """Raise :class:`Abandoned` if the run of the block this thread is running is over
    (a no-op outside :func:`call_until_stopped`)."""
    stopped = getattr(_local, "stopped", None)
    if stopped is not None and stopped():
        raise Abandoned("the run ended while this block was running")
