"""Polygonising windows in worker processes: the same vectors as in the calling thread, and the
caller's script never run again in the workers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import shapely

from pspnet_geo.config.postprocess import parse_postprocess
from pspnet_geo.vector import pool
from pspnet_geo.vector.vectorize import vectorize_mask
from tests.vector.test_vectorize import CLEANUP, vegas_classes, write_mask


def test_the_pool_gives_the_same_polygons_and_centerlines_as_the_calling_thread(tmp_path):
    mask, transform, crs = vegas_classes()
    names = ["background", "building", "road"]
    config = parse_postprocess(CLEANUP, names, "test")
    path = write_mask(tmp_path / "m.tif", mask, crs=crs, transform=transform, nodata=255)
    inline = vectorize_mask(path, names, block_size=128, postprocess=config, processes=0)
    pooled = vectorize_mask(path, names, block_size=128, postprocess=config, processes=2)
    for got, want in ((pooled.polygons, inline.polygons), (pooled.lines, inline.lines)):
        assert len(got) > 10 and list(got["class_id"]) == list(want["class_id"])
        assert shapely.equals_exact(got.geometry.values, want.geometry.values, tolerance=0).all()


def test_small_masks_and_one_core_stay_in_the_calling_thread_large_ones_get_a_process_per_four_cores():
    assert pool.processes_for(pool.MIN_WINDOWS - 1, cores=64) == 0
    assert pool.processes_for(1000, cores=1) == 0
    assert pool.processes_for(1000, cores=2) == 1
    assert pool.processes_for(pool.MIN_WINDOWS, cores=4) == 1
    assert pool.processes_for(1000, cores=16) == 4


def test_workers_do_not_run_the_callers_script_again(tmp_path):
    mask = np.kron(np.random.default_rng(1).integers(0, 3, (16, 16)), np.ones((8, 8), int)).astype(np.uint8)
    path = write_mask(tmp_path / "m.tif", mask)
    runs = tmp_path / "runs.txt"
    script = tmp_path / "unguarded.py"     # no `if __name__ == "__main__":`, as users write them
    script.write_text(textwrap.dedent(f"""
        with open({str(runs)!r}, "a") as out:
            out.write("ran\\n")
        from pspnet_geo.vector.vectorize import vectorize_mask
        found = vectorize_mask({str(path)!r}, ["a", "b", "c"], block_size=16, processes=2)
        print(len(found.polygons))
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) > 10
    assert runs.read_text() == "ran\n"


def test_hiding_the_main_script_puts_it_back():
    main = sys.modules["__main__"]
    before = (main.__dict__.get("__file__"), main.__dict__.get("__spec__"))
    with pool._main_script_hidden():
        assert "__file__" not in main.__dict__ and main.__spec__ is None
    assert (main.__dict__.get("__file__"), main.__dict__.get("__spec__")) == before


def test_daemonic_processes_polygonise_in_their_own_thread(monkeypatch):
    monkeypatch.setattr(pool.multiprocessing.current_process(), "daemon", True, raising=False)
    assert pool.processes_for(1000, cores=16) == 0


def test_a_forked_child_starts_its_own_pool():
    pool.shared_pool(1)
    read, write = os.pipe()
    with warnings.catch_warnings():     # Python 3.12+ warns that forking a threaded process is risky
        warnings.simplefilter("ignore", DeprecationWarning)
        child = os.fork()
    if child == 0:      # the child: its parent's pool is forgotten, and a new one works
        ok = False
        try:
            fresh = pool._POOL is None
            ours = pool.shared_pool(1)
            ok = fresh and ours.submit(os.getpid).result(timeout=60) != os.getpid()
            ours.shutdown(wait=True)
        except BaseException:
            pass
        finally:
            os.write(write, b"1" if ok else b"0")
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.waitpid(child, 0)
    assert answer == b"1"


def test_a_discarded_queue_gives_up_the_windows_not_yet_started(monkeypatch):
    gate = threading.Event()
    executor = ThreadPoolExecutor(1)
    monkeypatch.setattr(pool, "shared_pool", lambda processes: executor)
    monkeypatch.setattr(pool, "polygonise_window", lambda job, window: (gate.wait(5), {}))
    taken = []
    queue = pool.WindowQueue(None, 2, lambda *found: taken.append(found))
    for window in range(4):
        queue.add(window)
    futures = [future for future, _ in queue._waiting]
    queue.cancel()
    gate.set()
    executor.shutdown(wait=True)
    assert not queue._waiting and not taken
    assert [future.cancelled() for future in futures] == [False, True, True, True]


def test_windows_are_polygonised_in_the_thread_when_processes_cannot_start_or_die(monkeypatch, caplog):
    def no_processes(processes):
        raise OSError("Function not implemented: /dev/shm")

    monkeypatch.setattr(pool, "shared_pool", no_processes)
    monkeypatch.setattr(pool, "polygonise_window", lambda job, window: (window, {}))
    taken = []
    queue = pool.WindowQueue(None, 2, lambda pieces, lines: taken.append(pieces))
    for window in range(3):
        queue.add(window)
    assert taken == [0, 1, 2] and "cannot start polygonising processes" in caplog.text

    class Dying(ThreadPoolExecutor):
        def submit(self, fn, *args):
            future = Future()
            future.set_exception(BrokenProcessPool("a worker was killed"))
            return future

    monkeypatch.setattr(pool, "shared_pool", lambda processes: Dying(1))
    taken.clear()
    queue = pool.WindowQueue(None, 1, lambda pieces, lines: taken.append(pieces))
    for window in range(4):
        queue.add(window)
    queue.drain()
    assert taken == [0, 1, 2, 3] and "polygonising processes stopped" in caplog.text
