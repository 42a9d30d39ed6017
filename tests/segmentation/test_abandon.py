"""Stopping early: when a run ends (Ctrl-C, an error), blocks still running give up at their next
model batch instead of running to their last tile, and queued ones never start.

Each slow block here would take 20 s; the tests check that it was abandoned, not how fast."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from helpers import ATLANTA
from pspnet_geo.batch import run as batch_run
from pspnet_geo.segmentation.abandon import Abandoned, call_until_stopped
from pspnet_geo.segmentation.abandon import check as check_abandoned
from pspnet_geo.segmentation.executors import LocalExecutor, open_executor
from pspnet_geo.segmentation.packing import PackingExecutor
from pspnet_geo.segmentation.inference import predict

SLOW_STEPS = 2000
"""A slow block checks this many times, 10 ms apart: 20 s if nobody stops it."""


class SlowBlocks:
    """A block function that records what started, what was abandoned and what finished."""

    def __init__(self, quick: set | None = None) -> None:
        self.quick = quick or set()
        self.started, self.abandoned, self.finished = [], [], []
        self.lock = threading.Lock()

    def __call__(self, item):
        with self.lock:
            self.started.append(item)
        try:
            for _ in range(0 if item in self.quick else SLOW_STEPS):
                check_abandoned()
                time.sleep(0.01)
        except Abandoned:
            with self.lock:
                self.abandoned.append(item)
            raise
        with self.lock:
            self.finished.append(item)
        return item

    def wait_until_started(self, count: int) -> None:
        deadline = time.monotonic() + 30
        while len(self.started) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.started) >= count


def test_a_caller_that_stops_early_abandons_running_blocks_and_cancels_queued_ones():
    blocks, executor = SlowBlocks(quick={0}), LocalExecutor(2)
    results = executor.map_unordered(blocks, range(10), in_flight=4)
    assert next(results) == 0
    blocks.wait_until_started(3)
    results.close()
    executor.close()
    assert blocks.finished == [0]
    assert sorted(blocks.abandoned) == sorted(set(blocks.started) - {0}) and len(blocks.abandoned) == 2
    assert len(blocks.started) == 3                      # the two queued behind them never started


def test_an_error_inside_an_open_executor_abandons_what_it_runs():
    blocks = SlowBlocks()
    with pytest.raises(KeyboardInterrupt):
        with open_executor(threads=1) as executor:
            future = executor.submit(blocks, "a")
            blocks.wait_until_started(1)
            raise KeyboardInterrupt
    assert blocks.abandoned == ["a"] and isinstance(future.exception(), Abandoned)


def test_the_model_loop_stops_between_batches_once_the_run_is_over():
    stop = threading.Event()

    class Model(torch.nn.Module):
        calls = 0

        def forward(self, batch):
            Model.calls += 1
            stop.set()                                   # the run ends during the first batch
            return batch

    tiles = [np.zeros((2, 8, 8), np.float32)] * 10
    with pytest.raises(Abandoned):
        call_until_stopped(stop.is_set, lambda items: list(predict(Model(), items, 2, "cpu")), tiles)
    assert Model.calls == 1
    assert len(list(predict(Model(), tiles, 2, "cpu"))) == 10     # outside an executor: no stop test


def test_an_interrupted_segment_abandons_its_running_block(tmp_path, atlanta_model, monkeypatch):
    from pspnet_geo.segmentation import run as segmentation
    from pspnet_geo.segmentation import streaming
    from pspnet_geo.segmentation.raster_outputs import RasterOutputs

    real, slow = streaming.run_block, SlowBlocks()

    def blocks(job):
        if (job.block.row, job.block.col) == (0, 0):
            return real(job)
        return slow(job)

    def interrupted(self, piece):
        slow.wait_until_started(1)
        raise KeyboardInterrupt                          # Ctrl-C while the first result is written

    monkeypatch.setattr(streaming, "run_block", blocks)
    monkeypatch.setattr(RasterOutputs, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        segmentation.segment(ATLANTA, mask_out=tmp_path / "m.tif", model=atlanta_model, tile_size=256,
                             block_tiles=1, threads=2, progress=False)
    assert slow.abandoned and not slow.finished
    assert list(tmp_path.iterdir()) == []


def test_a_batch_that_fails_abandons_the_blocks_of_scenes_still_running():
    slow = SlowBlocks()

    def run(item, executor):
        if item == "broken":
            slow.wait_until_started(1)
            raise KeyboardInterrupt                     # or any error that is not an input's own
        return executor.submit(slow, item).result()

    with open_executor(threads=1) as executor, pytest.raises(KeyboardInterrupt):
        list(batch_run._run_all(SimpleNamespace(run=run), ["slow", "broken"], executor, 2, False, False))
    assert slow.abandoned == ["slow"] and not slow.finished


def test_a_closed_packing_executor_answers_late_callers_instead_of_leaving_them_waiting():
    slow = SlowBlocks(quick={0})
    inner = LocalExecutor(1)
    packing = PackingExecutor(inner, 1, lambda item: 1, {slow: lambda items: [slow(item) for item in items]})
    assert list(packing.map_unordered(slow, [0], in_flight=1)) == [0]
    packing.close()
    outcome = []

    def late_caller():      # a scene's thread still running when the batch closed its executors
        try:
            list(packing.map_unordered(slow, [1, 2], in_flight=2))
        except Abandoned as err:
            outcome.append(err)

    thread = threading.Thread(target=late_caller, daemon=True)
    thread.start()
    thread.join(timeout=10)
    inner.close()
    assert not thread.is_alive() and outcome and slow.started == [0]
