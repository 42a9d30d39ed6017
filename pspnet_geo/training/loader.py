"""Training batches made by worker processes while the model trains.

Reading, labelling and augmenting a batch takes a host's CPU as long as a GPU takes to train
on it, so with ``loader_workers`` above 0 batches are made ahead by that many
``torch.utils.data`` worker processes (the platform's default start method; forked workers drop
the parent's open datasets, see :mod:`pspnet_geo.scene`). Batch ``k`` depends only on the
seed and ``k`` (:class:`~pspnet_geo.training.batches.TrainingBatches`), and the workers take
the numbers in turn, which the loader returns in order; a run is therefore the same with any
number of workers, and a resumed run starts at the batch where it stopped.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from pspnet_geo.errors import InputError, PspnetGeoError
from pspnet_geo.training.batches import TrainingBatches

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor]
MAX_DEFAULT_WORKERS = 4
PREFETCH_BATCHES = 2
"""Batches each worker keeps ready: enough to hide one slow window, little memory."""


def default_loader_workers() -> int:
    """One worker per CPU this process may use, less one for the training loop, at most four;
    none in a daemonic process (a Dask or multiprocessing worker), which may not start any."""
    if multiprocessing.current_process().daemon:
        return 0
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:     # macOS, Windows
        cpus = os.cpu_count() or 1
    return max(0, min(MAX_DEFAULT_WORKERS, cpus - 1))


def check_loader_workers(workers: int | None) -> int:
    """``workers`` as given (0: batches made in the training process), or the default for None."""
    if workers is None:
        return default_loader_workers()
    if workers < 0:
        raise InputError(f"loader_workers must be 0 or more, not {workers}")
    return workers


class _Numbered(IterableDataset):
    """Batches ``start``, ``start + 1``, ...; worker ``i`` of ``n`` makes ``start + i``, then every ``n``th."""

    def __init__(self, batches: TrainingBatches, start: int) -> None:
        self.batches, self.start = batches, start

    def __iter__(self) -> Iterator[Batch | PspnetGeoError]:
        worker = get_worker_info()
        first, step = (0, 1) if worker is None else (worker.id, worker.num_workers)
        for number in itertools.count(self.start + first, step):
            try:
                yield self.batches.batch(number)
            except PspnetGeoError as err:   # the user's to fix: sent as it is, raised by the trainer
                yield err
                return


@contextlib.contextmanager
def batch_stream(batches: TrainingBatches, start: int, workers: int,
                 pin_memory: bool = False) -> Iterator[Callable[[], Batch]]:
    """A function giving batch ``start``, then the next each call; made by ``workers`` worker
    processes (in page-locked memory with ``pin_memory``, for copies to a GPU that overlap its
    work), or in this process with 0. The workers stop when the block ends."""
    if workers == 0:
        numbers = itertools.count(start)
        made = (batches.batch(number) for number in numbers)
        yield (lambda: tuple(t.pin_memory() for t in next(made))) if pin_memory else (lambda: next(made))
        return
    loader = DataLoader(_Numbered(batches, start), batch_size=None, num_workers=workers,
                        pin_memory=pin_memory, prefetch_factor=PREFETCH_BATCHES,
                        generator=torch.Generator().manual_seed(batches.seed))
    stream = iter(loader)
    log.info("making training batches in %d loader worker processes", workers)

    def next_batch() -> Batch:
        made = next(stream)
        if isinstance(made, PspnetGeoError):
            raise made
        return made

    try:
        yield next_batch
    finally:
        # Stopped now, not whenever the collector finds the iterator (torch has no public call).
        stream._shutdown_workers()
