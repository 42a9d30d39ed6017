"""vectorize_mask: block-by-block polygons must equal polygonising the whole mask at once."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.features
import shapely
from affine import Affine
from rasterio.windows import Window
from shapely.geometry import shape

from pspnet_geo.errors import RasterError
from pspnet_geo.vector.mask_windows import file_grid
from pspnet_geo.config.postprocess import parse_postprocess
from pspnet_geo.vector.vectorize import MaskVectorizer, vectorize_mask

def polygons_of(*args, **kwargs):
    return vectorize_mask(*args, **kwargs).polygons


SAMPLE = Path(__file__).resolve().parents[2] / "pspnet_geo" / "sample_data"
TRANSFORM = Affine(0.5, 0.0, 733600.0, 0.0, -0.5, 3725140.0)


def write_mask(path: Path, array: np.ndarray, *, tiled: bool = True, crs="EPSG:32616",
               nodata=None, transform=TRANSFORM) -> Path:
    profile = dict(driver="GTiff", width=array.shape[1], height=array.shape[0], count=1,
                   dtype=array.dtype, nodata=nodata)
    if crs is not None:
        profile.update(crs=crs, transform=transform)
    if tiled:
        profile.update(tiled=True, blockxsize=16, blockysize=16)
    else:
        profile.update(tiled=False, blockysize=3)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(array, 1)
    return path


def reference(array: np.ndarray, valid: np.ndarray, transform) -> list[tuple[int, shapely.Polygon]]:
    """The whole mask polygonised in one call: what the block-by-block result must equal."""
    return [(int(value), shape(geom)) for geom, value in rasterio.features.shapes(
        array, mask=valid, connectivity=4, transform=transform)]


def assert_same_polygons(result, expected) -> None:
    assert len(result) == len(expected)
    assert Counter(result["class_id"].tolist()) == Counter(c for c, _ in expected)
    assert result.geometry.is_valid.all()
    assert set(result.geometry.geom_type) <= {"Polygon"}
    for class_id in {c for c, _ in expected}:
        got = result.geometry[result["class_id"] == class_id]
        want = [g for c, g in expected if c == class_id]
        want_area = sum(g.area for g in want)
        assert got.area.sum() == pytest.approx(want_area, rel=1e-9)
        assert result["area"][result["class_id"] == class_id].sum() == pytest.approx(want_area)
        difference = shapely.symmetric_difference(got.union_all(), shapely.union_all(want))
        assert difference.area < 1e-9 * want_area


def stress_mask() -> np.ndarray:
    """Shapes that cross 16-pixel windows in every awkward way; 255 is nodata."""
    mask = np.zeros((83, 77), dtype=np.uint8)
    for step in range(0, 60, 4):                   # a staircase snake crossing many windows
        mask[step:step + 5, step + 2:step + 4] = 1
        mask[step + 3:step + 5, step + 2:step + 8] = 1
    mask[28:37, 28:37] = 2                         # a ring around the window corner (32, 32)
    mask[30:35, 30:35] = 0
    mask[40:62, 2:30] = 1                          # a hole crossing two seams
    mask[44:53, 14:20] = 0
    mask[15, 15] = mask[16, 16] = 3                # diagonal touch across a window corner
    mask[15, 48] = mask[16, 47] = 3                # anti-diagonal touch across a seam
    mask[31, 70] = mask[32, 71] = 3
    mask[0:10, 60:64] = 1                          # different classes side by side on a seam
    mask[0:10, 64:68] = 2
    mask[66:80, 40:76] = 4                         # nodata cutting a feature along a seam
    mask[70:75, 47:49] = 255
    mask[75:83, 60:77] = 5                         # a feature on the ragged last window
    return mask


@pytest.mark.parametrize("tiled", [True, False])
@pytest.mark.parametrize("block_size", [16, 40])
def test_blocks_equal_whole_mask_on_stress_shapes(tmp_path, tiled, block_size):
    mask = stress_mask()
    path = write_mask(tmp_path / "mask.tif", mask, tiled=tiled, nodata=255)
    result = polygons_of(path, ["background", "a", "b", "c"], block_size=block_size)
    expected = reference(mask, (mask != 0) & (mask != 255), TRANSFORM)
    assert_same_polygons(result, expected)
    assert Counter(result["class_id"])[3] == 6     # diagonal neighbours stay separate
    corner = shapely.Point(TRANSFORM @ (32, 32))
    rings = result.geometry[result["class_id"] == 2]
    ring = rings[rings.distance(corner) < 1.5].item()
    assert len(ring.interiors) == 1 and not ring.contains(corner)


@pytest.mark.parametrize("dtype, transform", [
    ("uint8", TRANSFORM),
    ("uint32", Affine(0.5, 0.2, 733600.0, 0.1, -0.5, 3725140.0)),   # rotated grid, cast dtype
])
def test_blocks_equal_whole_mask_on_noise(tmp_path, dtype, transform):
    mask = np.random.default_rng(7).integers(0, 4, size=(64, 64)).astype(dtype)
    path = write_mask(tmp_path / "noise.tif", mask, transform=transform)
    result = polygons_of(path, ["background", "x", "y", "z"], block_size=16)
    assert_same_polygons(result, reference(mask.astype(np.int32), mask != 0, transform))


def test_real_road_mask_in_geographic_crs(tmp_path):
    path = SAMPLE / "spacenet_vegas_roads" / "road_mask.tif"
    result = polygons_of(path, ["background"], block_size=256)
    with rasterio.open(path) as src:
        mask, transform, crs = src.read(1), src.transform, src.crs
    assert result.crs == crs
    assert set(result["class_name"]) == {"class_255"}
    expected = reference(mask, mask != 0, transform)
    assert len(result) == len(expected)
    assert shapely.area(result.geometry.values).sum() == pytest.approx(
        sum(g.area for _, g in expected), rel=1e-9)
    # Geodesic areas: each road pixel is about 0.30 m x 0.24 m at this latitude.
    assert result["area"].sum() / (mask != 0).sum() == pytest.approx(0.0726, rel=0.02)


def test_background_none_and_class_names(tmp_path):
    mask = np.zeros((20, 20), dtype=np.uint8)
    mask[2:6, 2:6] = 1
    mask[10:12, 10:12] = 7
    path = write_mask(tmp_path / "m.tif", mask)
    result = polygons_of(path, ["bg", "house"], background=None, block_size=16)
    assert sorted(result["class_name"]) == ["bg", "class_7", "house"]
    assert result["class_id"].dtype == np.int64
    assert result.loc[result["class_name"] == "house", "area"].item() == pytest.approx(16 * 0.25)
    assert result["area"].sum() == pytest.approx(400 * 0.25)


def test_nodata_override_and_empty_result_types(tmp_path):
    mask = np.full((20, 20), 9, dtype=np.uint16)
    path = write_mask(tmp_path / "m.tif", mask)
    assert len(polygons_of(path, ["bg"], block_size=16)) == 1
    empty = polygons_of(path, ["bg"], nodata=9, block_size=16)
    assert len(empty) == 0
    assert list(empty.columns) == ["class_id", "class_name", "area", "geometry"]
    assert empty["class_id"].dtype == np.int64 and empty["area"].dtype == np.float64
    assert empty.crs == "EPSG:32616"


@pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")
def test_no_crs_gives_pixel_coordinates_and_nan_area(tmp_path, caplog):
    mask = np.zeros((10, 10), dtype=np.uint8)
    mask[2:4, 3:8] = 1
    path = write_mask(tmp_path / "plain.tif", mask, crs=None)
    with caplog.at_level(logging.WARNING, logger="pspnet_geo.vector.vectorize"):
        result = polygons_of(path, ["bg", "thing"])
    assert "no CRS" in caplog.text
    assert result.crs is None
    assert result.geometry.iloc[0].bounds == (3.0, 2.0, 8.0, 4.0)
    assert np.isnan(result["area"]).all()


def test_block_windows_cover_raster_once_aligned_to_blocks(tmp_path):
    mask = np.zeros((83, 77), dtype=np.uint8)
    for tiled, block_size in [(True, 40), (True, 10), (False, 40)]:
        path = write_mask(tmp_path / f"w{tiled}{block_size}.tif", mask, tiled=tiled)
        with rasterio.open(path) as src:
            block_rows, block_cols = src.block_shapes[0]
            grid = file_grid(src, block_size)
            windows = [grid.core(*key) for key in grid.cores()]
        hits = np.zeros(mask.shape, dtype=int)
        for w in windows:
            assert w.width <= block_size and w.height <= block_size
            if block_rows <= block_size:
                assert w.row_off % block_rows == 0
            if block_cols <= block_size:
                assert w.col_off % block_cols == 0
            hits[w.row_off:w.row_off + w.height, w.col_off:w.col_off + w.width] += 1
        assert (hits == 1).all()


def test_bad_masks_raise_raster_error(tmp_path):
    path = write_mask(tmp_path / "f.tif", np.zeros((8, 8), dtype=np.float32))
    with pytest.raises(RasterError, match="not a class mask"):
        vectorize_mask(path, ["bg"])
    with pytest.raises(RasterError, match="cannot open"):
        vectorize_mask(tmp_path / "missing.tif", ["bg"])


def vegas_classes() -> tuple[np.ndarray, rasterio.Affine, object]:
    """The Vegas road mask as class 2, with small and large class-1 blocks and specks."""
    with rasterio.open(SAMPLE / "spacenet_vegas_roads" / "road_mask.tif") as src:
        roads, transform, crs = src.read(1), src.transform, src.crs
    mask = np.where(roads > 0, 2, 0).astype(np.uint8)
    rng = np.random.default_rng(3)
    for row, col in rng.integers(0, min(mask.shape) - 40, size=(25, 2)):
        mask[row:row + rng.integers(2, 40), col:col + rng.integers(2, 40)] = 1
    mask[rng.integers(0, mask.shape[0], 300), rng.integers(0, mask.shape[1], 300)] = 1
    return mask, transform, crs


CLEANUP = {
    "sieve_m2": 1.0,
    "classes": {
        "building": {"fill_holes_m2": 2, "remove_specks_m2": 5, "simplify_m": 0.3},
        "road": {"centerlines": {"max_width_m": 8, "spur_length_m": 5, "smooth_m": 0.5}},
    },
}


def test_streamed_pieces_give_the_same_vectors_as_reading_the_file(tmp_path):
    mask, transform, crs = vegas_classes()
    names = ["background", "building", "road"]
    config = parse_postprocess(CLEANUP, names, "test")
    path = write_mask(tmp_path / "m.tif", mask, crs=crs, transform=transform, nodata=255)
    from_file = vectorize_mask(path, names, block_size=256, postprocess=config)
    vectorizer = MaskVectorizer(mask.shape[0], mask.shape[1], transform, crs, names, background=0,
                                nodata=255, postprocess=config, block_size=160)
    rng = np.random.default_rng(0)
    rows = [0, *sorted(rng.choice(np.arange(1, mask.shape[0]), 6, replace=False)), mask.shape[0]]
    cols = [0, *sorted(rng.choice(np.arange(1, mask.shape[1]), 6, replace=False)), mask.shape[1]]
    pieces = [(r0, r1, c0, c1) for r0, r1 in zip(rows, rows[1:]) for c0, c1 in zip(cols, cols[1:])]
    for index in rng.permutation(len(pieces)):
        r0, r1, c0, c1 = pieces[index]
        vectorizer.add_piece(Window(c0, r0, c1 - c0, r1 - r0), mask[r0:r1, c0:c1].copy())
    streamed = vectorizer.finish()
    for got, want in ((streamed.polygons, from_file.polygons), (streamed.lines, from_file.lines)):
        assert len(got) > 10 and list(got["class_id"]) == list(want["class_id"])
        assert shapely.equals_exact(got.geometry.values, want.geometry.values, tolerance=1e-9).all()
    raw = vectorize_mask(path, names, block_size=256)
    assert len(from_file.polygons) < len(raw.polygons) and from_file.polygons.is_valid.all()
    buildings = from_file.polygons[from_file.polygons["class_id"] == 1]
    assert buildings["area"].min() >= 5
