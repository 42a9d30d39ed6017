"""A batch killed at any moment and rerun, or losing a Dask worker part-way, ends with exactly
the outputs of an uninterrupted single-process run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent import futures
from pathlib import Path

import dask
import geopandas as gpd
import psutil
import rasterio
import rasterio.shutil
import pytest
from distributed import Client

from helpers import ATLANTA, make_checkpoint, write_chips
from pspnet_geo.batch.run import run_batch
from pspnet_geo.errors import RunError
from pspnet_geo.stamps import content_hash

pytestmark = pytest.mark.slow
CORNERS = ((0, 0), (0, 300), (300, 0), (300, 300), (600, 0), (600, 300))
OPTIONS = dict(tile_size=128, overlap=32, progress=False)
CLI = [sys.executable, "-c", "from pspnet_geo.cli.main import cli; cli()"]


@pytest.fixture(scope="module")
def chips_and_reference(tmp_path_factory):
    """Six chips, a model, and the outputs of one uninterrupted single-process batch."""
    root = tmp_path_factory.mktemp("resume")
    write_chips(root / "chips", CORNERS)
    model = make_checkpoint(root / "model.pt", ATLANTA, tile_size=128)
    run_batch(root / "chips", root / "reference", model=model, **OPTIONS)
    return root, model


def assert_same_outputs(out: Path, reference: Path) -> None:
    """Same files; masks byte for byte; the same features in every vector file."""
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file() and p.name != "manifest.json")
    assert files == sorted(p.relative_to(reference) for p in reference.rglob("*")
                           if p.is_file() and p.name != "manifest.json")
    for name in files:
        if name.suffix in (".tif", ".xml"):       # a mask, or its categories (.aux.xml)
            assert content_hash(out / name) == content_hash(reference / name), name
        else:
            layer = name.stem if name.suffix == ".gpkg" else None    # a GeoPackage also lists its styles
            got, want = gpd.read_file(out / name, layer=layer), gpd.read_file(reference / name, layer=layer)
            assert got.drop(columns="geometry").equals(want.drop(columns="geometry")), name
            assert got.geometry.geom_equals_exact(want.geometry, tolerance=0).all(), name
    entries = json.loads((out / "manifest.json").read_text())["entries"]
    assert len(entries) == len(CORNERS) and all(e["status"] == "done" for e in entries.values())


def _done_count(out: Path) -> int:
    try:
        return len(json.loads((out / "manifest.json").read_text())["entries"])
    except (OSError, ValueError):
        return 0


@pytest.mark.parametrize("kill_after", ["start", "one done", "two done"])
def test_a_killed_batch_rerun_ends_as_an_uninterrupted_one(chips_and_reference, tmp_path, kill_after):
    root, model = chips_and_reference
    command = CLI + ["batch", str(root / "chips"), "-d", str(tmp_path / "out"), "-m", str(model),
                     "--tile-size", "128", "--overlap", "32", "--no-progress"]
    process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    wanted = {"start": 0, "one done": 1, "two done": 2}[kill_after]
    deadline = time.monotonic() + 120
    while _done_count(tmp_path / "out") < wanted and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if kill_after == "start":
        time.sleep(2)
    assert process.poll() is None, "the batch ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    rerun = subprocess.run(command, stderr=subprocess.PIPE, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert_same_outputs(tmp_path / "out", root / "reference")


def _start_cluster(folder: Path, workers: int = 2, cwd: Path | None = None
                   ) -> tuple[subprocess.Popen, list[subprocess.Popen], str]:
    """A real ``dask scheduler`` and ``workers`` ``dask worker`` processes on localhost."""
    scheduler_file = folder / "scheduler.json"
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                  "--port", "0", "--no-dashboard", "--scheduler-file", str(scheduler_file)],
                                 stderr=subprocess.DEVNULL)
    started = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file",
                                 str(scheduler_file), "--nthreads", "1", "--no-dashboard", "--name", f"w{i}"],
                                stderr=subprocess.DEVNULL, cwd=cwd) for i in range(workers)]
    deadline = time.monotonic() + 60
    while not scheduler_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    with Client(scheduler_file=str(scheduler_file), timeout="30s") as client:
        client.wait_for_workers(workers, timeout=60)
        return scheduler, started, client.scheduler.address


def _in_background(function, *args, **kwargs) -> futures.Future:
    """``function`` running in a daemon thread: a batch that hangs cannot keep pytest from exiting."""
    future = futures.Future()

    def target():
        future.set_running_or_notify_cancel()
        try:
            future.set_result(function(*args, **kwargs))
        except BaseException as error:
            future.set_exception(error)

    threading.Thread(target=target, daemon=True).start()
    return future


def _has_exited(process: psutil.Process) -> bool:
    """Gone, or a zombie: a process whose parent was killed may wait a while to be reaped."""
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_batch_on_a_dask_cluster_survives_losing_a_worker(chips_and_reference, tmp_path):
    """A worker busy with the batch's tasks is killed, nanny and all, while the batch runs; the
    scheduler reruns what it held and the outputs are those of an uninterrupted run."""
    root, model = chips_and_reference
    scheduler, nannies, address = _start_cluster(tmp_path)
    try:
        with Client(address, timeout="30s") as watcher:
            names = {addr: info["name"] for addr, info in watcher.scheduler_info()["workers"].items()}
            pids = watcher.run(os.getpid)
            out = tmp_path / "out"
            batch = _in_background(run_batch, root / "chips", out, model=model, scheduler=address, **OPTIONS)
            busy, deadline = None, time.monotonic() + 180
            while busy is None and not batch.done() and time.monotonic() < deadline:
                if _done_count(out) >= 1:
                    busy = next((addr for addr, keys in watcher.processing().items() if keys), None)
                time.sleep(0.05)
            assert not batch.done(), "the batch ended before a worker could be killed"
            assert busy is not None, "no worker was running a task of the batch"
            nanny = nannies[int(names[busy].removeprefix("w"))]
            worker = psutil.Process(pids[busy])
            assert worker.ppid() == nanny.pid
            nanny.kill()
            assert nanny.wait(timeout=30) == -signal.SIGKILL
            deadline = time.monotonic() + 30
            while not _has_exited(worker) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert _has_exited(worker), "the worker process outlived its nanny"
            assert not batch.done(), "the batch ended before the worker was gone"
            result = batch.result(timeout=300)
            assert len(result.done) == len(CORNERS) and result.failed == []
            deadline = time.monotonic() + 30
            while busy in watcher.scheduler_info()["workers"] and time.monotonic() < deadline:
                time.sleep(0.1)
            assert list(watcher.scheduler_info()["workers"]) == [a for a in names if a != busy]
        assert_same_outputs(out, root / "reference")
    finally:
        for process in [*nannies, scheduler]:
            process.kill()
            process.wait()


def test_an_input_a_worker_cannot_read_is_that_inputs_failure(chips_and_reference, tmp_path):
    """A path only the client can open (GDAL's in-memory file system is per process): the
    workers' read error becomes that input's recorded failure."""
    root, model = chips_and_reference
    scheduler, workers, address = _start_cluster(tmp_path, workers=1)
    in_memory = "/vsimem/batch_test/chip_0.tif"
    try:
        with rasterio.open(root / "chips" / "aoi_0" / "chip_0.tif") as src, \
                rasterio.open(in_memory, "w", **src.profile) as dst:
            dst.write(src.read())
        listing = tmp_path / "inputs.txt"
        listing.write_text(in_memory + "\n")
        result = run_batch(listing, tmp_path / "out", model=model, scheduler=address, **OPTIONS)
        assert result.done == [] and [name for name, _ in result.failed] == ["chip_0"]
        assert f"reading {in_memory} failed" in result.failed[0][1]
        entry = json.loads((tmp_path / "out" / "manifest.json").read_text())["entries"]["chip_0"]
        assert entry["status"] == "failed" and entry["error"] == result.failed[0][1]
    finally:
        rasterio.shutil.delete(in_memory)
        for process in [*workers, scheduler]:
            process.kill()
            process.wait()


@pytest.mark.parametrize("through", ["option", "dask config"])
def test_an_unreachable_scheduler_fails_within_seconds(chips_and_reference, tmp_path, through):
    root, model = chips_and_reference
    configured = {"scheduler-address": "tcp://127.0.0.1:1" if through == "dask config" else None}
    started = time.monotonic()
    with dask.config.set(configured), pytest.raises(RunError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:1"):
        run_batch(root / "chips", tmp_path / "out", model=model,
                  scheduler="tcp://127.0.0.1:1" if through == "option" else None)
    assert time.monotonic() - started < 30
