"""Raster sieving: nodata untouched, and window-by-window results equal to the whole mask."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from scipy import ndimage

from pspnet_geo.vector.postprocess.sieve import sieve_classes, sieve_halo

NODATA = 255


def sieve_by_windows(data: np.ndarray, min_pixels: int, core: int, halo: int) -> np.ndarray:
    """Sieve each ``core`` x ``core`` window with ``halo`` pixels of context, keep the core."""
    result = np.empty_like(data)
    height, width = data.shape
    for row in range(0, height, core):
        for col in range(0, width, core):
            top, left = max(row - halo, 0), max(col - halo, 0)
            bottom, right = min(row + core + halo, height), min(col + core + halo, width)
            window = data[top:bottom, left:right]
            sieved = sieve_classes(window, min_pixels)
            core_rows = slice(row - top, row - top + core)
            core_cols = slice(col - left, col - left + core)
            result[row : row + core, col : col + core] = sieved[core_rows, core_cols]
    return result


@pytest.fixture(scope="module")
def road_mask(sample_data: Path) -> np.ndarray:
    """The Vegas road mask as classes 0 (ground) and 1 (road), with bands of nodata."""
    with rasterio.open(sample_data / "spacenet_vegas_roads" / "road_mask.tif") as source:
        mask = (source.read(1) > 127).astype(np.uint8)
    mask[:, :40] = NODATA
    mask[600:603, :] = NODATA
    return mask


def with_noise(mask: np.ndarray, classes: int, seed: int) -> np.ndarray:
    """Segmentation noise: 3000 strokes 1 to 20 pixels long (specks and short lines, many
    crossing window edges) of random classes, and 2 % of pixels flipped to a random class."""
    rng = np.random.default_rng(seed)
    noisy = mask.copy()
    height, width = mask.shape
    for row, col, length, value, across in zip(
        rng.integers(0, height, 3000),
        rng.integers(0, width, 3000),
        rng.integers(1, 21, 3000),
        rng.integers(0, classes, 3000),
        rng.random(3000) < 0.5,
    ):
        if across:
            noisy[row, col : col + length] = value
        else:
            noisy[row : row + length, col] = value
    specks = rng.random(mask.shape) < 0.02
    noisy[specks] = rng.integers(0, classes, specks.sum())
    noisy[mask == NODATA] = NODATA
    return noisy


def test_windows_with_the_halo_sieve_a_two_class_mask_exactly_like_the_whole(road_mask):
    data = with_noise(road_mask, classes=2, seed=0)
    whole = sieve_classes(data, 12)
    assert (whole != data).sum() > 10_000
    windowed = sieve_by_windows(data, 12, core=128, halo=sieve_halo(12))
    assert np.array_equal(windowed, whole)
    assert np.array_equal(whole == NODATA, data == NODATA)
    assert not np.array_equal(sieve_by_windows(data, 12, core=128, halo=0), whole)


def test_with_three_classes_the_same_pixels_change_and_only_a_choice_can_differ(road_mask):
    """Where the new class differs, the speck touched two other classes: the window saw one of
    them cut by its edge, hence smaller (the case documented in sieve_halo)."""
    data = with_noise(road_mask, classes=3, seed=1)
    whole = sieve_classes(data, 10)
    windowed = sieve_by_windows(data, 10, core=128, halo=sieve_halo(10))
    assert np.array_equal(windowed != data, whole != data)
    differing = np.argwhere(windowed != whole)
    assert len(differing) <= 10
    for row, col in differing:
        labels, _ = ndimage.label(data == data[row, col])
        region = labels == labels[row, col]
        around = ndimage.binary_dilation(region) & ~region
        assert region.sum() < 10
        assert len(set(np.unique(data[around])) - {NODATA}) >= 2


def test_the_halo_must_show_a_large_neighbour_as_large():
    """A one-pixel speck at the core's edge whose only neighbour is an 8-pixel line running
    out of the core, everything else nodata. With only ``min_pixels - 1`` pixels of halo the
    line looks small, the speck has no large neighbour and is left alone."""
    data = np.full((9, 30), NODATA, dtype=np.uint8)
    data[4, 9] = 1
    data[4, 10:18] = 2
    whole = sieve_classes(data, 5)
    assert whole[4, 9] == 2
    assert sieve_halo(5) == 8
    assert np.array_equal(sieve_by_windows(data, 5, core=10, halo=sieve_halo(5)), whole)
    assert sieve_by_windows(data, 5, core=10, halo=4)[4, 9] == 1


def test_nodata_never_changes_and_never_absorbs():
    data = np.zeros((12, 12), dtype=np.uint8)
    data[:, 6:] = NODATA  # the largest region by far
    data[5, 5] = 1  # a speck between ground and nodata: becomes ground, not nodata
    data[8, 2] = NODATA  # a one-pixel nodata hole in the ground: stays
    data[10, 9] = 1  # a speck surrounded by nodata only: stays, nothing to join
    result = sieve_classes(data, 3)
    expected = data.copy()
    expected[5, 5] = 0
    assert np.array_equal(result, expected)


def test_a_cluster_of_specks_joins_the_large_region_beside_it():
    data = np.full((6, 9), NODATA, dtype=np.uint8)
    data[:, :4] = 0
    data[2, 4] = 2  # touches the ground
    data[2, 5:7] = 1  # touches only the speck of class 2
    assert sieve_classes(data, 3)[2, 4:7].tolist() == [0, 0, 0]


def test_connectivity_decides_what_a_region_is():
    data = np.zeros((6, 6), dtype=np.uint8)
    data[2, 2] = data[3, 3] = 1  # two diagonal pixels: one region of 2 with 8-connectivity
    assert sieve_classes(data, 2, connectivity=8)[2, 2] == 1
    assert sieve_classes(data, 2, connectivity=4)[2, 2] == 0


def test_min_pixels_of_one_or_less_returns_an_unchanged_copy():
    data = np.array([[0, 1], [2, NODATA]], dtype=np.uint8)
    for min_pixels in (1, 0, -3):
        result = sieve_classes(data, min_pixels)
        assert np.array_equal(result, data) and result is not data
        assert sieve_halo(min_pixels) == 0


def test_bad_arrays_and_connectivity_are_rejected():
    with pytest.raises(ValueError):
        sieve_classes(np.zeros((4, 4), dtype=np.float32), 3)
    with pytest.raises(ValueError):
        sieve_classes(np.zeros((2, 4, 4), dtype=np.uint8), 3)
    with pytest.raises(ValueError):
        sieve_classes(np.zeros((4, 4), dtype=np.uint8), 3, connectivity=6)
