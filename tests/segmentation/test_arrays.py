"""segment() on what notebook users hold: open datasets and xarray DataArrays, and the mask back
as a DataArray on the scene's grid."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
import rioxarray
import xarray as xr

from helpers import ATLANTA
from pspnet_geo.errors import InputError
from pspnet_geo.maskfile import NODATA_CLASS
from pspnet_geo.segmentation.run import segment

TILE, OVERLAP = 256, 64


@pytest.fixture(scope="module")
def from_path(atlanta_model, tmp_path_factory):
    """The mask of the Atlanta scene segmented from its path."""
    out = tmp_path_factory.mktemp("path") / "mask.tif"
    segment(ATLANTA, mask_out=out, model=atlanta_model, tile_size=TILE, overlap=OVERLAP, progress=False)
    with rasterio.open(out) as src:
        return src.read(1), src.transform, src.crs


def run(scene, model, **options):
    return segment(scene, model=model, tile_size=TILE, overlap=OVERLAP, progress=False, mask_array=True,
                   **options)


def test_an_open_dataset_segments_like_its_path_and_the_mask_comes_back_on_its_grid(atlanta_model, from_path):
    mask, transform, crs = from_path
    with rasterio.open(ATLANTA) as dataset:
        result = run(dataset, atlanta_model)
    array = result.mask_array
    assert result.mask_out is None and array.dims == ("y", "x") and array.dtype == np.uint8
    np.testing.assert_array_equal(array.values, mask)
    assert array.rio.crs == crs and array.rio.transform() == transform
    assert array.rio.nodata == NODATA_CLASS and array.attrs["class_names"] == ["background", "class1"]
    x0, y0 = transform @ (0.5, 0.5)
    assert array.x.values[0] == pytest.approx(x0) and array.y.values[0] == pytest.approx(y0)


@pytest.mark.parametrize("lazy", [False, True])
def test_a_data_array_segments_like_the_file_it_came_from(atlanta_model, from_path, lazy):
    with rioxarray.open_rasterio(ATLANTA, chunks={"x": 300, "y": 300} if lazy else None) as scene:
        result = run(scene, atlanta_model)
    np.testing.assert_array_equal(result.mask_array.values, from_path[0])


def test_an_in_memory_array_of_a_modified_scene_is_segmented_as_it_is(atlanta_model, from_path, tmp_path):
    with rioxarray.open_rasterio(ATLANTA) as scene:
        half = scene.isel(x=slice(0, 200)).load()
    result = run(half, atlanta_model, mask_out=tmp_path / "half.tif")
    with rasterio.open(tmp_path / "half.tif") as src:
        assert src.width == 200 and src.transform == from_path[1]
    assert result.mask_array.shape == (from_path[0].shape[0], 200)


def test_arrays_and_datasets_that_cannot_be_scenes_are_refused_in_one_line(atlanta_model):
    plain = xr.DataArray(np.zeros((3, 64, 64), np.uint8), dims=("band", "y", "x"))
    with pytest.raises(InputError, match="no CRS"):
        run(plain, atlanta_model)
    with rasterio.open(ATLANTA) as dataset:
        pass
    with pytest.raises(InputError, match="closed"):
        run(dataset, atlanta_model)


def test_requests_only_a_file_or_a_local_run_can_serve_are_refused(atlanta_model):
    with rioxarray.open_rasterio(ATLANTA) as scene:
        with pytest.raises(InputError, match="cannot reach the workers of a Dask scheduler"):
            run(scene, atlanta_model, scheduler="tcp://127.0.0.1:1")
        with pytest.raises(InputError, match="--resume keeps the finished blocks beside an output file"):
            run(scene, atlanta_model, resume=True)
    with pytest.raises(InputError, match="not a list"):
        run([1, 2], atlanta_model)
