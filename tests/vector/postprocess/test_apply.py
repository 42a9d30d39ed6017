"""The clean-up steps of the presets, run through vectorize_mask on real and realistic masks."""

from __future__ import annotations

import random
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import rasterio.features
import shapely
from scipy import ndimage

from pspnet_geo.config.pipelines import load_pipeline
from pspnet_geo.config.postprocess import parse_postprocess
from pspnet_geo.vector.mask_windows import file_grid, read_mask_windows
from pspnet_geo.vector.vectorize import MaskVectorizer, vectorize_mask

SAMPLE = Path(__file__).resolve().parents[3] / "pspnet_geo" / "sample_data"
ATLANTA = SAMPLE / "spacenet_atlanta_buildings"
VEGAS = SAMPLE / "spacenet_vegas_roads" / "road_mask.tif"


def write(path: Path, mask: np.ndarray, profile: dict) -> Path:
    with rasterio.open(path, "w", **(profile | {"count": 1, "dtype": "uint8", "nodata": 255})) as dst:
        dst.write(mask, 1)
    return path


def right_angled(polygon: shapely.Polygon) -> bool:
    ring = np.asarray(polygon.exterior.coords)[:-1]
    edges = np.roll(ring, -1, axis=0) - ring
    following = np.roll(edges, -1, axis=0)
    cosine = (edges * following).sum(1) / np.linalg.norm(edges, axis=1) / np.linalg.norm(following, axis=1)
    return bool(np.all(np.abs(cosine) < 1e-6))


def test_building_preset_regularises_real_footprints_and_splits_a_bridge(tmp_path):
    with rasterio.open(ATLANTA / "image.tif") as src:
        profile = src.profile
    truth = gpd.read_file(ATLANTA / "buildings.geojson").to_crs(profile["crs"])
    mask = rasterio.features.rasterize(truth.geometry, out_shape=(profile["height"], profile["width"]),
                                       transform=profile["transform"], dtype="uint8")
    mask[20:40, 20:40] = mask[20:40, 44:64] = 1          # two sheds joined by a 1-pixel bridge
    mask[30, 40:44] = 1
    mask[5, 5] = mask[100:103, 5:8] = 1                   # specks under 10 m²
    preset = load_pipeline("spacenet-buildings")
    path = write(tmp_path / "b.tif", mask, profile)
    cleaned = vectorize_mask(path, preset.class_names, postprocess=preset.postprocess).polygons
    raw = vectorize_mask(path, preset.class_names).polygons
    assert cleaned.is_valid.all() and all(right_angled(p) for p in cleaned.geometry)
    assert cleaned["area"].min() >= 10 and len(cleaned) < len(raw)
    corner = shapely.Point(profile["transform"] @ (42, 30))
    near = cleaned[cleaned.distance(corner) < 5]
    assert len(near) == 2 and not near.geometry.iloc[0].intersects(near.geometry.iloc[1])
    footprints = truth.union_all()
    kept = cleaned[cleaned.intersects(footprints)].union_all()
    iou = kept.intersection(footprints).area / kept.union(footprints).area
    assert iou > 0.85, iou


def test_speck_areas_are_square_metres_in_a_geographic_crs(tmp_path):
    with rasterio.open(VEGAS) as src:
        profile = src.profile
    mask = np.zeros((profile["height"], profile["width"]), np.uint8)
    mask[100:114, 100:114] = 1          # 196 px of 0.243 m x 0.300 m: about 14.3 m²
    mask[300:321, 300:321] = 1          # 441 px: about 32 m²
    config = parse_postprocess({"classes": {"road": {"remove_specks_m2": 20}}},
                               ["background", "road"], "test")
    result = vectorize_mask(write(tmp_path / "g.tif", mask, profile), ["background", "road"],
                            postprocess=config).polygons
    assert len(result) == 1 and result.crs.to_epsg() == 4326
    assert result["area"].item() == pytest.approx(32.1, rel=0.02)


def land_cover(shape: tuple[int, int], seed: int) -> np.ndarray:
    """Six smooth land-cover classes with noisy edges and specks, like a model's output."""
    rng = np.random.default_rng(seed)
    fields = ndimage.gaussian_filter(rng.normal(size=(6, *shape)), sigma=(0, 12, 12))
    fields += rng.normal(scale=0.004, size=fields.shape)
    return (fields.argmax(0) + 1).astype(np.uint8)


def test_land_cover_preset_keeps_a_gapless_coverage_without_slivers(tmp_path):
    preset = load_pipeline("deepglobe-landcover")
    transform = rasterio.Affine(0.5, 0, 500000, 0, -0.5, 4000000)
    profile = dict(driver="GTiff", width=300, height=300, crs="EPSG:32633", transform=transform)
    mask = land_cover((300, 300), 5)
    path = write(tmp_path / "lc.tif", mask, profile)
    result = vectorize_mask(path, preset.class_names, postprocess=preset.postprocess, block_size=128)
    raw = vectorize_mask(path, preset.class_names, block_size=128).polygons
    polygons = result.polygons.geometry.values
    assert shapely.is_valid(polygons).all() and shapely.coverage_is_valid(polygons)
    assert shapely.union_all(polygons).area == pytest.approx(300 * 300 * 0.25, rel=1e-6)
    assert shapely.area(polygons).sum() == pytest.approx(300 * 300 * 0.25, rel=1e-6)
    assert result.polygons["area"].min() >= 100
    assert len(polygons) < len(raw) and shapely.get_num_coordinates(polygons).sum() < (
        0.5 * shapely.get_num_coordinates(raw.geometry.values).sum())
    whole = vectorize_mask(path, preset.class_names, postprocess=preset.postprocess, block_size=512)
    assert len(whole.polygons) == len(result.polygons)
    assert shapely.equals_exact(whole.polygons.geometry.values, polygons, 1e-6).all()


def test_a_streamed_land_cover_cleaned_in_bands_still_tiles_the_ground(tmp_path, monkeypatch):
    preset = load_pipeline("deepglobe-landcover")
    transform = rasterio.Affine(0.5, 0, 500000, 0, -0.5, 4000000)
    profile = dict(driver="GTiff", width=480, height=480, crs="EPSG:32633", transform=transform)
    path = write(tmp_path / "lc.tif", land_cover((480, 480), 7), profile)
    whole = vectorize_mask(path, preset.class_names, postprocess=preset.postprocess, block_size=96).polygons

    def streamed(band: int) -> gpd.GeoDataFrame:
        monkeypatch.setattr("pspnet_geo.vector.vectorize.COVERAGE_BAND", band)
        tables = []
        rest = vectorize_mask(path, preset.class_names, postprocess=preset.postprocess, block_size=96,
                              on_polygons=tables.append).polygons
        assert len(rest) == 0
        return pd.concat(tables, ignore_index=True)

    # Fewer polygons than a band: cleaned whole, as without streaming.
    alone = streamed(10**6)
    assert sorted(shapely.to_wkb(shapely.normalize(alone.geometry.values))) == sorted(
        shapely.to_wkb(shapely.normalize(whole.geometry.values)))
    # In bands of about 40: still no gap and no overlap, within or between bands.
    tables = streamed(40)
    polygons = tables.geometry.values
    assert len(tables) > 3 * 40 and shapely.is_valid(polygons).all()
    assert shapely.area(polygons).sum() == pytest.approx(480 * 480 * 0.25, rel=1e-9)
    assert shapely.union_all(polygons).area == pytest.approx(480 * 480 * 0.25, rel=1e-9)
    # Edges between bands keep their pixel steps; with bands this small that is most edges.
    raw = vectorize_mask(path, preset.class_names, block_size=96).polygons.geometry.values
    assert shapely.get_num_coordinates(polygons).sum() < 0.8 * shapely.get_num_coordinates(raw).sum()


def test_land_cover_bands_are_the_same_whatever_order_the_windows_arrive_in(tmp_path, monkeypatch):
    preset = load_pipeline("deepglobe-landcover")
    transform = rasterio.Affine(0.5, 0, 500000, 0, -0.5, 4000000)
    profile = dict(driver="GTiff", width=480, height=480, crs="EPSG:32633", transform=transform)
    path = write(tmp_path / "lc.tif", land_cover((480, 480), 7), profile)
    monkeypatch.setattr("pspnet_geo.vector.vectorize.COVERAGE_BAND", 40)

    def streamed(order_seed: int | None) -> list[bytes]:
        with rasterio.open(path) as dataset:
            grid = file_grid(dataset, 96)
            tables = []
            vectorizer = MaskVectorizer(dataset.height, dataset.width, dataset.transform, dataset.crs,
                                        preset.class_names, background=None, nodata=dataset.nodata,
                                        postprocess=preset.postprocess, grid=grid, on_polygons=tables.append)
            windows = list(read_mask_windows(dataset, grid, vectorizer.cleanup.halo))
        if order_seed is not None:
            random.Random(order_seed).shuffle(windows)
        for window in windows:
            vectorizer.add_window(window)
        vectorizer.finish()
        return [shapely.to_wkb(shapely.normalize(g)) for t in tables for g in t.geometry.values]

    in_order = streamed(None)
    assert len(in_order) > 3 * 40
    assert streamed(1) == in_order and streamed(2) == in_order
