"""Polygons stream to the output file as they become final, and the file equals the whole-mask result."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from rasterio.features import rasterize
from rasterio.windows import Window

from helpers import ATLANTA, ATLANTA_LABELS, SAMPLE_DATA
from pspnet_geo.config.pipelines import load_pipeline
from pspnet_geo.vector.output import VectorOutput
from pspnet_geo.vector.vectorize import MaskVectorizer, Vectors, vectorize_mask
from pspnet_geo.vector.vectorize_file import vectorize_file

VEGAS_ROADS = SAMPLE_DATA / "spacenet_vegas_roads" / "road_mask.tif"


def canonical(frame: gpd.GeoDataFrame) -> list[tuple[int, str]]:
    """The features as a set (class and normalised geometry), whatever the file order."""
    geometries = shapely.to_wkt(shapely.normalize(frame.geometry.values), rounding_precision=6)
    return sorted(zip(frame["class_id"].tolist(), geometries.tolist()))


def atlanta_buildings(tmp_path, tiles: int = 2):
    """A mask of the Atlanta footprints, mirrored ``tiles`` x ``tiles`` times (a larger scene)."""
    with rasterio.open(ATLANTA) as src:
        profile, transform = src.profile, src.transform
    labels = gpd.read_file(ATLANTA_LABELS).to_crs(profile["crs"])
    chip = rasterize(labels.geometry, out_shape=(profile["height"], profile["width"]), transform=transform,
                     dtype="uint8")
    rows = [np.hstack([chip[:, ::-1] if c % 2 else chip for c in range(tiles)]) for _ in range(tiles)]
    mask = np.vstack([row[::-1] if r % 2 else row for r, row in enumerate(rows)])
    path = tmp_path / "buildings.tif"
    with rasterio.open(path, "w", driver="GTiff", width=mask.shape[1], height=mask.shape[0], count=1,
                       dtype="uint8", crs=profile["crs"], transform=transform, nodata=255, tiled=True,
                       blockxsize=128, blockysize=128) as dst:
        dst.write(mask, 1)
    return path, mask, transform, profile["crs"]


@pytest.mark.parametrize("suffix", [".gpkg", ".fgb", ".geojson", ".parquet"])
def test_polygons_are_in_the_temporary_file_before_the_last_window(tmp_path, suffix):
    path, mask, transform, crs = atlanta_buildings(tmp_path)
    names = ["background", "building"]
    out = tmp_path / f"out{suffix}"
    seen = []
    with VectorOutput(out, "single", names, 0, crs, False, overwrite=False, chunk=50) as output:
        vectorizer = MaskVectorizer(*mask.shape, transform, crs, names, background=0, nodata=255,
                                    block_size=300, on_polygons=output.add)
        step = 300
        pieces = [(r, c) for r in range(0, mask.shape[0], step) for c in range(0, mask.shape[1], step)]
        for count, (r, c) in enumerate(pieces, start=1):
            vectorizer.add_piece(Window(c, r, min(step, mask.shape[1] - c), min(step, mask.shape[0] - r)),
                                 mask[r:r + step, c:c + step].copy())
            if count == len(pieces) - 1:
                written = [p for p in tmp_path.iterdir() if ".partial" in p.name]
                seen = [pyogrio.read_info(p, layer="out")["features"] for p in written if p.suffix == ".gpkg"]
        files = output.finish(vectorizer.finish())
    assert files == [out] and not [p for p in tmp_path.iterdir() if ".partial" in p.name]
    whole = vectorize_mask(path, names).polygons
    assert seen and 0.5 * len(whole) < seen[0] < len(whole)     # most were out before the end
    written = gpd.read_parquet(out) if suffix == ".parquet" else gpd.read_file(out)
    assert len(written) == output.polygons == len(whole) > 100
    assert canonical(written) == canonical(whole)


def test_a_failed_run_leaves_no_file(tmp_path):
    path, mask, transform, crs = atlanta_buildings(tmp_path, tiles=1)
    with pytest.raises(RuntimeError, match="boom"):
        with VectorOutput(tmp_path / "out.fgb", "single", ["b", "building"], 0, crs, False, False) as output:
            output.add(vectorize_mask(path, ["b", "building"]).polygons)
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["buildings.tif"]


@pytest.mark.parametrize("pipeline, block_size", [("spacenet-buildings", 256), ("spacenet-buildings", 700),
                                                  ("spacenet-roads", 200), ("deepglobe-landcover", 256)])
def test_each_presets_clean_up_streams_to_the_same_features(tmp_path, pipeline, block_size):
    """vectorize writes as polygons become final; the result equals cleaning the whole mask."""
    preset = load_pipeline(pipeline)
    if pipeline == "spacenet-buildings":
        mask_path = atlanta_buildings(tmp_path)[0]
    elif pipeline == "spacenet-roads":
        mask_path = VEGAS_ROADS
        with rasterio.open(VEGAS_ROADS) as src:
            profile, roads = src.profile, (src.read(1) > 0).astype("uint8")
        mask_path = tmp_path / "roads.tif"
        with rasterio.open(mask_path, "w", **{**profile, "nodata": None}) as dst:
            dst.write(roads, 1)
    else:
        mask_path = tmp_path / "cover.tif"
        rng = np.random.default_rng(5)
        cover = np.kron(rng.integers(0, 7, (30, 30)), np.ones((20, 20))).astype("uint8")
        with rasterio.open(mask_path, "w", driver="GTiff", width=600, height=600, count=1, dtype="uint8",
                           crs="EPSG:32633", transform=rasterio.Affine(0.5, 0, 500000, 0, -0.5, 4000000)) as dst:
            dst.write(cover, 1)
    result = vectorize_file(mask_path, tmp_path / "out.gpkg", pipeline=pipeline, block_size=block_size)
    whole = vectorize_mask(mask_path, list(preset.class_names), background=preset.background,
                           block_size=100_000, postprocess=preset.postprocess)
    written = gpd.read_file(tmp_path / "out.gpkg", layer="out")
    assert result.polygons == len(written) == len(whole.polygons) > 0
    assert canonical(written) == canonical(whole.polygons)
    if whole.lines is not None:
        lines = gpd.read_file(tmp_path / "out.gpkg", layer="out_centerlines")
        assert len(lines) == len(whole.lines) > 0


@pytest.mark.parametrize("suffix", [".gpkg", ".fgb", ".parquet"])
def test_spatial_index_and_extent_are_right_at_the_end(tmp_path, suffix):
    path, mask, transform, crs = atlanta_buildings(tmp_path)
    names = ["background", "building"]
    out = tmp_path / f"out{suffix}"
    with VectorOutput(out, "single", names, 0, crs, False, overwrite=False, chunk=40) as output:
        output.finish(vectorize_mask(path, names, block_size=256, on_polygons=output.add))
    whole = vectorize_mask(path, names).polygons
    if suffix == ".parquet":
        import json

        import pyarrow.parquet

        geo = json.loads(pyarrow.parquet.read_schema(out).metadata[b"geo"])["columns"]["geometry"]
        assert geo["bbox"] == pytest.approx(list(whole.total_bounds)) and geo["geometry_types"] == ["Polygon"]
        assert gpd.read_parquet(out).crs == whole.crs
        return
    info = pyogrio.read_info(out, layer="out", force_total_bounds=True)
    assert info["features"] == len(whole)
    assert info["total_bounds"] == pytest.approx(whole.total_bounds)
    assert info["capabilities"]["fast_spatial_filter"]            # the R-tree / packed index
    if suffix == ".gpkg":
        import sqlite3

        with sqlite3.connect(out) as db:
            extent = db.execute("select min_x, min_y, max_x, max_y from gpkg_contents where table_name='out'").fetchone()
            assert extent == pytest.approx(tuple(whole.total_bounds))
            assert db.execute("select count(*) from rtree_out_geom").fetchone()[0] == len(whole)


@pytest.mark.parametrize("suffix", [".parquet", ".fgb"])   # GeoJSON without a crs member means WGS84
def test_a_layer_without_a_crs_reads_back_without_one(tmp_path, suffix):
    frame = gpd.GeoDataFrame({"class_id": [1], "class_name": ["b"], "area": [float("nan")]},
                             geometry=[shapely.box(0, 0, 1, 1)])
    with VectorOutput(tmp_path / f"o{suffix}", "single", ["a", "b"], 0, None, False, False) as output:
        output.add(frame)
        output.finish(Vectors(frame.iloc[:0], None))
    out = tmp_path / f"o{suffix}"
    written = gpd.read_parquet(out) if suffix == ".parquet" else gpd.read_file(out)
    assert len(written) == 1 and written.crs is None
