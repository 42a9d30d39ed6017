"""A ``segment`` run killed outright (SIGKILL) leaves no output file, and running the same
command again gives exactly the features of an uninterrupted run, with or without ``--resume``."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import pytest

from helpers import ATLANTA

pytestmark = pytest.mark.slow
CLI = [sys.executable, "-c", "from pspnet_geo.cli.main import cli; cli()"]


def command(folder: Path, model: Path, *extra: str) -> list[str]:
    return CLI + ["segment", str(ATLANTA), "-o", str(folder / "b.gpkg"), "--mask-out", str(folder / "m.tif"),
                  "-m", str(model), "--pipeline", "spacenet-buildings", "--tile-size", "128", "--overlap", "32",
                  "--block-tiles", "1", "--threads", "1", "--no-progress", *extra]


def wait_for(ready, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not ready() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed"


@pytest.fixture(scope="module")
def reference(tmp_path_factory, atlanta_model) -> Path:
    """The polygons of an uninterrupted run."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    subprocess.run(command(folder, atlanta_model), check=True, stderr=subprocess.DEVNULL)
    return folder


@pytest.mark.parametrize("resume", [False, True])
def test_a_killed_run_leaves_no_output_and_a_rerun_gives_the_same_features(tmp_path, atlanta_model, reference,
                                                                           resume):
    folder = tmp_path / "run"
    folder.mkdir()
    extra = ("--resume",) if resume else ()
    process = subprocess.Popen(command(folder, atlanta_model, *extra), stderr=subprocess.DEVNULL)
    if resume:
        wait_for(lambda: len(list((folder / "b.gpkg.parts").glob("block_*"))) >= 10, process)
    else:
        wait_for(lambda: any(folder.glob(".m.*.partial.tif*")), process)   # blocks are running
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (folder / "b.gpkg").exists() and not (folder / "m.tif").exists()
    assert any(folder.glob(".*.partial*"))                  # what only a SIGKILL leaves behind
    rerun = subprocess.run(command(folder, atlanta_model, *extra), stderr=subprocess.PIPE, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["b.gpkg", "m.tif", "m.tif.aux.xml"]
    got, want = gpd.read_file(folder / "b.gpkg", layer="b"), gpd.read_file(reference / "b.gpkg", layer="b")
    assert len(got) == len(want) > 0
    assert got.drop(columns="geometry").equals(want.drop(columns="geometry"))
    assert got.geometry.geom_equals_exact(want.geometry, tolerance=0).all()
