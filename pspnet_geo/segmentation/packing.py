"""Model batches shared by several scenes: small chips still fill a GPU batch.

A batch of small chips runs several ``segment`` calls at once on one executor. Each chip may
be a single block of a few tiles, fewer than a model batch, so a GPU would run half-empty
batches one chip after another. :class:`PackingExecutor` sits between those calls and the
executor: it gathers the blocks they submit into packs of about one model batch of tiles and
runs each pack as one task (the function's packed form, given when the executor is made, such as
:func:`pspnet_geo.segmentation.blocks.run_blocks` for ``run_block``), then hands every result back to
the call that submitted it. Functions without a packed form run item by item, as on the executor
itself.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

from pspnet_geo.segmentation.abandon import Abandoned
from pspnet_geo.segmentation.executors import Executor

log = logging.getLogger(__name__)

LINGER_S = 0.02
"""How long a pack waits for more blocks before it runs part-full."""


@dataclass
class _Request:
    fn: Callable[[Any], Any]
    item: Any
    size: int
    reply: queue.Queue


DELIVER_TIMEOUT_S = 30
"""How long a finished pack's result may take to fetch before its callers are told it failed."""


class PackingExecutor:
    """Wraps an executor so that items of concurrent ``map_unordered`` calls share tasks.

    ``packed`` maps a function of one item to its form over a list of items (results in the
    same order); ``size_of`` weighs an item against ``pack_size``."""

    def __init__(self, inner: Executor, pack_size: int, size_of: Callable[[Any], int],
                 packed: dict[Callable, Callable[[list], list]]) -> None:
        self.inner, self.pack_size, self.size_of, self.packed = inner, pack_size, size_of, packed
        self.slots, self.dashboard, self.remote = inner.slots, inner.dashboard, inner.remote
        self._requests: queue.Queue = queue.Queue()
        self._running = threading.BoundedSemaphore(2 * inner.slots)
        self._abandoned = threading.Event()
        self._accepting = threading.Lock()
        self._dispatcher = threading.Thread(target=self._dispatch, name="pspnet-geo-packing", daemon=True)
        self._dispatcher.start()

    def map_unordered(self, fn: Callable, items: Iterable, in_flight: int) -> Iterator:
        """Results of ``fn`` over ``items`` as they complete; packed with other calls' items."""
        many = self.packed.get(fn)
        if many is None:
            yield from self.inner.map_unordered(fn, items, in_flight)
            return
        reply: queue.Queue = queue.Queue()
        source, waiting = iter(items), 0
        for item in islice(source, in_flight):
            self._request(_Request(many, item, self.size_of(item), reply))
            waiting += 1
        while waiting:
            result = reply.get()
            waiting -= 1
            for item in islice(source, 1):
                self._request(_Request(many, item, self.size_of(item), reply))
                waiting += 1
            if isinstance(result, BaseException):
                raise result
            yield result

    def _request(self, request: _Request) -> None:
        with self._accepting:       # never after close() has answered the last waiting request
            if self._abandoned.is_set():
                raise Abandoned("the run was abandoned")
            self._requests.put(request)

    def abandon(self) -> None:
        """Give up all work: requests not yet packed are answered at once, and the inner
        executor (which this one shares) gives up what it runs."""
        self._abandoned.set()
        self.inner.abandon()

    def close(self) -> None:
        """Stop packing; requests still queued, or arriving later, are answered with an error
        rather than left waiting. The inner executor is closed by its owner."""
        with self._accepting:
            self._abandoned.set()
        self._requests.put(None)
        self._dispatcher.join()
        self._refuse_waiting()

    def _dispatch(self) -> None:
        while (pack := self._next_pack()) is not None:
            if self._abandoned.is_set():
                self._refuse(pack)
                continue
            self._running.acquire()
            try:
                future = self.inner.submit(pack[0].fn, [request.item for request in pack])
            except Exception as err:    # its callers hear of it; the dispatcher goes on
                self._running.release()
                for request in pack:
                    request.reply.put(err)
                continue
            future.add_done_callback(lambda done, pack=pack: self._deliver(done, pack))

    def _refuse_waiting(self) -> None:
        while True:
            try:
                request = self._requests.get_nowait()
            except queue.Empty:
                return
            if request is not None:
                self._refuse([request])

    @staticmethod
    def _refuse(pack: list[_Request]) -> None:
        for request in pack:
            request.reply.put(Abandoned("the run was abandoned"))

    def _next_pack(self) -> list[_Request] | None:
        """Requests of one function totalling about ``pack_size``, waiting briefly for more."""
        first = self._requests.get()
        if first is None:
            return None
        pack, size = [first], first.size
        while size < self.pack_size:
            try:
                request = self._requests.get(timeout=LINGER_S)
            except queue.Empty:
                break
            if request is None or request.fn is not first.fn:
                self._requests.put(request)
                break
            pack.append(request)
            size += request.size
        return pack

    def _deliver(self, done: Any, pack: list[_Request]) -> None:
        """Hand each result (or the pack's error) to the call that asked for it."""
        self._running.release()
        try:
            # Done already; the timeout is for a Dask future, whose result() goes through its
            # client's event loop: once that loop is closed it would wait forever, and the
            # process would hang at exit joining this callback's thread (seen once in CI).
            results = done.result(timeout=DELIVER_TIMEOUT_S)
        except BaseException as err:  # the pack failed as a whole: every caller hears of it
            results = [err] * len(pack)
        for request, result in zip(pack, results):
            request.reply.put(result)
