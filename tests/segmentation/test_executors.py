"""The engines: an existing Dask cluster through ``scheduler``, and a worker lost mid-run."""

from __future__ import annotations

import os
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import rasterio
from distributed import Client, LocalCluster, WorkerPlugin

from helpers import ATLANTA
from pspnet_geo.segmentation.abandon import Abandoned
from pspnet_geo.segmentation import executors
from pspnet_geo.segmentation.executors import LOCAL_HTTP, LocalExecutor, local_dashboard, open_executor
from pspnet_geo.errors import InputError, RunError
from pspnet_geo.segmentation.run import segment
from reference import blend_whole_scene


class KillOnceOnThirdTask(WorkerPlugin):
    """Kills the first worker process that starts its third task; only once per run."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.started = 0

    def transition(self, key, start, finish, **kwargs) -> None:
        if finish != "executing":
            return
        self.started += 1
        if self.started == 3 and not Path(self.marker).exists():
            Path(self.marker).touch()
            os._exit(1)


@pytest.mark.slow
def test_a_worker_lost_mid_run_is_retried_on_an_existing_cluster(tmp_path, atlanta_model):
    marker = tmp_path / "killed"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=LOCAL_HTTP) as cluster, \
            Client(cluster) as client:
        client.register_plugin(KillOnceOnThirdTask(str(marker)))
        segment(ATLANTA, mask_out=tmp_path / "mask.tif", model=atlanta_model, tile_size=256,
                overlap=64, block_tiles=1, scheduler=cluster.scheduler_address, progress=False)
    assert marker.exists()
    with rasterio.open(tmp_path / "mask.tif") as src:
        assert np.array_equal(src.read(1), blend_whole_scene(ATLANTA, atlanta_model, 256, 64))


def test_an_unreachable_scheduler_fails_within_seconds():
    with pytest.raises(RunError, match="cannot reach the Dask scheduler"):
        with open_executor(scheduler="tcp://127.0.0.1:9"):
            pass


def test_the_local_executor_bounds_what_is_in_flight():
    started = []

    def record(item):
        started.append(item)
        return item

    executor = LocalExecutor(2)
    results = executor.map_unordered(record, range(100), in_flight=3)
    first = next(results)
    assert first in range(3) and len(started) <= 4
    assert sorted([first, *results]) == list(range(100))
    executor.close()


@pytest.mark.parametrize("options, message", [
    (dict(threads=0), "--threads must be at least 1, got 0"),
    (dict(threads=-2), "--threads must be at least 1, got -2"),
    (dict(scheduler="notanaddress"), "'notanaddress' is not a Dask scheduler address"),
    (dict(scheduler="tcp://host:port"), "'tcp://host:port' is not a Dask scheduler address"),
])
def test_executor_options_that_cannot_work_are_one_clear_error(options, message):
    with pytest.raises(InputError, match=re.escape(message)), open_executor(**options):
        pass


def test_an_abandoned_dask_executor_starts_nothing_submitted_later():
    with open_executor(workers=2, threads=1) as executor:
        assert executor.dashboard.startswith(("http://", "none (it needs bokeh"))
        assert executor.submit(abs, -1).result() == 1
        executor.abandon()
        late = executor.submit(abs, -2)
        assert isinstance(late.exception(), Abandoned)


def test_the_local_clusters_dashboard_is_its_address_or_how_to_get_one(monkeypatch):
    client = SimpleNamespace(dashboard_link="http://127.0.0.1:40123/status")
    monkeypatch.setattr(executors.importlib.util, "find_spec", lambda name: None)
    assert local_dashboard(client) == "none (it needs bokeh: pip install 'pspnet-geo[dashboard]')"
    monkeypatch.setattr(executors.importlib.util, "find_spec", lambda name: SimpleNamespace(name=name))
    assert local_dashboard(client) == "http://127.0.0.1:40123/status"
