"""Reading windows of a scene: each thread keeps its scenes open between reads."""

from __future__ import annotations

import os
import shutil
import threading

import numpy as np
from rasterio.windows import Window

from helpers import ATLANTA, LANDSAT, VEGAS
from pspnet_geo import scene as scenes
from pspnet_geo.scene import KEEP_OPEN, open_scene, read_finite

WINDOW = Window(0, 0, 32, 32)


def _kept() -> dict:
    return {path: dataset for path, (_, dataset) in scenes._OPEN.datasets.items()}


def test_a_thread_reads_a_scene_through_one_open_dataset(tmp_path):
    path = tmp_path / "a.tif"
    shutil.copy(ATLANTA, path)
    scene = open_scene(path)
    read_finite(scene, WINDOW, [1])
    first = _kept()[str(path)]
    read_finite(scene, Window(32, 32, 32, 32), [1])
    assert _kept()[str(path)] is first and not first.closed


def test_a_changed_file_is_opened_again(tmp_path):
    path = tmp_path / "a.tif"
    shutil.copy(ATLANTA, path)
    scene = open_scene(path)
    before = read_finite(scene, WINDOW, [1])[0]
    first = _kept()[str(path)]
    shutil.copy(VEGAS, path)        # another image under the same name
    os.utime(path, ns=(1, 1))
    after = read_finite(open_scene(path), WINDOW, [1])[0]
    assert first.closed and not np.array_equal(before, after)


def test_at_most_a_few_scenes_stay_open_per_thread_and_threads_keep_their_own(tmp_path):
    opened = []
    for index, source in enumerate([ATLANTA, VEGAS, LANDSAT]):
        path = tmp_path / f"{index}.tif"
        shutil.copy(source, path)
        read_finite(open_scene(path), WINDOW, [1])
        opened.append(_kept()[str(path)])
    assert len(_kept()) == KEEP_OPEN and opened[0].closed
    seen = []
    thread = threading.Thread(target=lambda: (read_finite(open_scene(tmp_path / "2.tif"), WINDOW, [1]),
                                              seen.append(_kept())))
    thread.start()
    thread.join()
    assert list(seen[0]) == [str(tmp_path / "2.tif")] and seen[0][str(tmp_path / "2.tif")] is not opened[2]
