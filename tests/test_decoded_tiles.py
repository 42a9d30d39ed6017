"""Internal tiles decoded once for every thread: the same pixels as reading the file directly."""

from __future__ import annotations

import threading
from collections import Counter

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.windows import Window

from pspnet_geo import scene as scenes
from pspnet_geo.decoded_tiles import DecodedTiles
from pspnet_geo.scene import open_scene, read_finite


def write_scene(path, *, tiled: bool = True, compress: str | None = "deflate", height: int = 300,
                width: int = 420) -> str:
    """A 3-band uint16 scene with nodata patches (so the validity differs from tile to tile)."""
    rng = np.random.default_rng(4)
    pixels = rng.integers(1, 4000, (3, height, width), dtype=np.uint16)
    pixels[:, 40:90, 100:230] = 0
    profile = {"driver": "GTiff", "count": 3, "dtype": "uint16", "height": height, "width": width,
               "crs": "EPSG:32616", "transform": Affine(0.5, 0, 740000, 0, -0.5, 3730000), "nodata": 0}
    if tiled:
        profile.update(tiled=True, blockxsize=64, blockysize=64)
    if compress:
        profile["compress"] = compress
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(pixels)
    return str(path)


def test_windows_read_through_shared_tiles_equal_direct_reads(tmp_path):
    scene = open_scene(write_scene(tmp_path / "s.tif"))
    assert scene.shared_tiles
    rng = np.random.default_rng(0)
    windows = [Window(0, 0, 420, 300), Window(380, 250, 40, 50), Window(63, 63, 2, 2)]
    for _ in range(20):
        row, col = int(rng.integers(0, 299)), int(rng.integers(0, 419))
        windows.append(Window(col, row, int(rng.integers(1, 421 - col)), int(rng.integers(1, 301 - row))))
    for window in windows:
        shared = read_finite(scene, window, [3, 1])
        direct = scenes._read_direct(scene, window, [3, 1])
        assert np.array_equal(shared[0], direct[0]) and np.array_equal(shared[1], direct[1])
    assert not read_finite(scene, Window(100, 40, 130, 50), [1])[1].any()


@pytest.mark.parametrize("options", [{"tiled": False}, {"compress": None}])
def test_striped_or_uncompressed_files_are_read_directly(tmp_path, options):
    assert not open_scene(write_scene(tmp_path / "s.tif", **options)).shared_tiles


def _counting_reader(pixels: np.ndarray, counts: Counter, gate: threading.Event | None = None):
    def read(bounds: Window):
        if gate is not None:
            gate.wait(5)
        counts[(bounds.row_off, bounds.col_off)] += 1
        rows, cols = bounds.toslices()
        return pixels[:, rows, cols].copy(), pixels[0, rows, cols] > 0
    return read


def test_threads_reading_overlapping_windows_decode_each_tile_once():
    pixels = np.random.default_rng(1).integers(0, 9, (2, 100, 130)).astype(np.uint8)
    tiles, counts, gate = DecodedTiles(), Counter(), threading.Event()
    read = _counting_reader(pixels, counts, gate)
    windows = [Window(col, row, 40, 40) for row in (0, 25, 50) for col in (0, 30, 60, 90)]
    found = {}

    def worker(index: int, window: Window) -> None:
        found[index] = tiles.read("scene", (32, 32), (100, 130), window, read)

    threads = [threading.Thread(target=worker, args=item) for item in enumerate(windows)]
    for thread in threads:
        thread.start()
    gate.set()
    for thread in threads:
        thread.join()
    assert set(counts.values()) == {1} and len(counts) == 3 * 5
    for index, window in enumerate(windows):
        rows, cols = window.toslices()
        assert np.array_equal(found[index][0], pixels[:, rows, cols])


def test_tiles_past_the_budget_are_dropped_least_recently_used_first():
    pixels = np.ones((1, 64, 64 * 10), np.uint8)
    counts = Counter()
    read = _counting_reader(pixels, counts)
    one_tile = 64 * 64 * 2          # its pixels and validity, a byte each
    tiles = DecodedTiles(budget_bytes=3 * one_tile)
    for col in range(10):
        tiles.read("scene", (64, 64), (64, 640), Window(col * 64, 0, 64, 64), read)
    assert tiles.held_bytes == 3 * one_tile
    tiles.read("scene", (64, 64), (64, 640), Window(9 * 64, 0, 64, 64), read)     # held
    tiles.read("scene", (64, 64), (64, 640), Window(0, 0, 64, 64), read)          # dropped
    assert counts[(0, 9 * 64)] == 1 and counts[(0, 0)] == 2


def test_a_failed_read_reaches_its_reader_and_is_not_kept():
    tiles, calls = DecodedTiles(), []

    def failing(bounds: Window):
        calls.append(bounds)
        if len(calls) == 1:
            raise OSError("read failed")
        return np.zeros((1, 8, 8), np.uint8), np.ones((8, 8), bool)

    with pytest.raises(OSError, match="read failed"):
        tiles.read("scene", (8, 8), (8, 8), Window(0, 0, 8, 8), failing)
    assert tiles.read("scene", (8, 8), (8, 8), Window(0, 0, 8, 8), failing)[1].all() and len(calls) == 2
