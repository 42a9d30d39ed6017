"""A batch killed at any moment and rerun, or losing a Dask worker part-way, ends with exactly
the outputs of an uninterrupted single-process run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import dask
import geopandas as gpd
import rasterio
import rasterio.shutil
import pytest
from distributed import Client

from conftest import ATLANTA, make_checkpoint
from pspnet_geo.batch.run import run_batch
from pspnet_geo.errors import RunError
from pspnet_geo.batch.manifest import content_hash
from test_cli_batch import write_chips

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
        if name.suffix == ".tif":
            assert content_hash(out / name) == content_hash(reference / name), name
        else:
            got, want = gpd.read_file(out / name), gpd.read_file(reference / name)
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


def test_a_batch_on_a_dask_cluster_survives_losing_a_worker(chips_and_reference, tmp_path):
    root, model = chips_and_reference
    scheduler, workers, address = _start_cluster(tmp_path)
    try:
        out = tmp_path / "out"
        batch = threading.Thread(target=run_batch, args=(root / "chips", out),
                                 kwargs=dict(model=model, scheduler=address, **OPTIONS))
        batch.start()
        deadline = time.monotonic() + 120
        while _done_count(out) < 1 and batch.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        workers[1].kill()
        batch.join(timeout=300)
        assert not batch.is_alive()
        assert_same_outputs(out, root / "reference")
    finally:
        for process in [*workers, scheduler]:
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
