"""Mask windows with halos: the same whether read from a file or assembled from pieces."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from pspnet_geo.vector.mask_windows import WindowAssembler, WindowGrid, file_grid, read_mask_windows


def random_pieces(height: int, width: int, rng: np.random.Generator) -> list[Window]:
    """Rectangles of uneven sizes tiling the raster, as inference's interiors and seams do."""
    rows = np.unique(np.concatenate([[0, height], rng.integers(1, height, 5)]))
    cols = np.unique(np.concatenate([[0, width], rng.integers(1, width, 6)]))
    return [Window(int(c0), int(r0), int(c1 - c0), int(r1 - r0))
            for r0, r1 in zip(rows[:-1], rows[1:]) for c0, c1 in zip(cols[:-1], cols[1:])]


@pytest.mark.parametrize("halo", [0, 3, 25])
def test_assembled_windows_equal_the_full_array_with_halo(halo):
    rng = np.random.default_rng(halo)
    mask = rng.integers(0, 5, size=(61, 77)).astype(np.uint8)
    grid = WindowGrid(61, 77, 16, 20)
    assembler = WindowAssembler(grid, halo)
    pieces = random_pieces(61, 77, rng)
    seen = {}
    for index in rng.permutation(len(pieces)):
        piece = pieces[index]
        data = mask[piece.row_off:piece.row_off + piece.height, piece.col_off:piece.col_off + piece.width]
        for window in assembler.add(piece, data.copy()):
            key = (window.core.row_off, window.core.col_off)
            assert key not in seen
            seen[key] = window
    assert assembler.pending_count == 0
    assert len(seen) == grid.shape[0] * grid.shape[1]
    for window in seen.values():
        outer = window.outer
        expected = mask[outer.row_off:outer.row_off + outer.height, outer.col_off:outer.col_off + outer.width]
        np.testing.assert_array_equal(window.data, expected)
        assert outer.row_off == max(0, window.core.row_off - halo)
        assert outer.col_off + outer.width == min(77, window.core.col_off + window.core.width + halo)
        core = window.data[window.core_slices]
        assert core.shape == (window.core.height, window.core.width)


def test_pending_windows_stay_a_band_not_the_scene():
    grid = WindowGrid(400, 400, 40, 40)
    assembler = WindowAssembler(grid, 8)
    most = 0
    for row in range(0, 400, 20):            # row-major strips, as blocks finish roughly in order
        for col in range(0, 400, 50):
            assembler.add(Window(col, row, 50, 20), np.zeros((20, 50), np.uint8))
            most = max(most, assembler.pending_count)
    assert assembler.pending_count == 0
    assert most <= 2 * grid.shape[1]


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_file_windows_with_halo(tmp_path):
    mask = np.arange(50 * 70, dtype=np.uint16).reshape(50, 70)
    path = tmp_path / "m.tif"
    with rasterio.open(path, "w", driver="GTiff", width=70, height=50, count=1, dtype="uint16",
                       tiled=True, blockxsize=16, blockysize=16) as dst:
        dst.write(mask, 1)
    with rasterio.open(path) as src:
        grid = file_grid(src, 40)
        windows = list(read_mask_windows(src, grid, 5))
    assert (grid.step_rows, grid.step_cols) == (32, 32)
    covered = np.zeros(mask.shape, int)
    for window in windows:
        core = window.core
        covered[core.row_off:core.row_off + core.height, core.col_off:core.col_off + core.width] += 1
        np.testing.assert_array_equal(
            window.data[window.core_slices],
            mask[core.row_off:core.row_off + core.height, core.col_off:core.col_off + core.width])
    assert (covered == 1).all()
