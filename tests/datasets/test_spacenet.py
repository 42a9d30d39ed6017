"""SpaceNet readers on tiny generated datasets in the real layouts, read back through training."""

from __future__ import annotations

import logging

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from shapely.geometry import LineString

from pspnet_geo.datasets import find_samples
from pspnet_geo.datasets.spacenet import buffer_roads
from pspnet_geo.errors import InputError, LabelError

from datasets.make_test_data import (
    BUILDING_PIXELS,
    UTM,
    make_spacenet4,
    make_spacenet7,
    make_spacenet_buildings,
    make_spacenet_roads,
    pixel_to_xy,
    to_lonlat,
    training_labels,
)


def test_buildings_match_chips_by_id_and_report_partners_missing(tmp_path, caplog):
    root = make_spacenet_buildings(tmp_path / "sn2")
    with caplog.at_level(logging.WARNING, logger="pspnet_geo.datasets"):
        samples = find_samples(root, "spacenet-buildings")
    assert [s.id for s in samples] == ["SN2_buildings_train_AOI_2_Vegas_PS-RGB_img1",
                                       "SN2_buildings_train_AOI_2_Vegas_PS-RGB_img2"]
    assert [s.group for s in samples] == ["AOI_2_Vegas_img1", "AOI_2_Vegas_img2"]
    assert samples[0].labels.name == "buildings_AOI_2_Vegas_img1.geojson"
    assert all(s.image.parent.name == "PS-RGB" for s in samples)
    assert "1 PS-RGB chips without building labels: SN2_buildings_train_AOI_2_Vegas_PS-RGB_img3.tif" \
        in caplog.text
    assert "1 building label files without a PS-RGB chip: buildings_AOI_2_Vegas_img9.geojson" in caplog.text


def test_4326_labels_are_reprojected_to_the_utm_chip_and_empty_files_are_background(tmp_path):
    samples = find_samples(make_spacenet_buildings(tmp_path / "sn2"), "spacenet-buildings")
    with_building, empty = training_labels(samples, "spacenet-buildings")
    expected = np.zeros_like(with_building)
    r0, r1, c0, c1 = BUILDING_PIXELS
    expected[r0:r1, c0:c1] = 1
    np.testing.assert_array_equal(with_building, expected)
    assert samples[1].labels.suffix == ".tif"
    np.testing.assert_array_equal(empty, np.zeros_like(empty))


def test_another_product_is_chosen_by_name_and_unknown_products_are_listed(tmp_path):
    root = make_spacenet_buildings(tmp_path / "sn2")
    samples = find_samples(root, "spacenet-buildings", product="MUL")
    assert [s.image.parent.name for s in samples] == ["MUL", "MUL"]
    with pytest.raises(InputError, match="no PAN/ chips; products found: MUL, PS-RGB"):
        find_samples(root, "spacenet-buildings", product="PAN")


def test_several_products_without_a_preferred_one_must_be_chosen(tmp_path):
    root = make_spacenet_buildings(tmp_path / "sn2")
    (root / "AOI_2_Vegas_Train" / "PS-RGB").rename(root / "AOI_2_Vegas_Train" / "PAN")
    with pytest.raises(InputError, match=r"several imagery products \(MUL, PAN\); choose one"):
        find_samples(root, "spacenet-buildings")


def test_spacenet4_nadir_angles_share_one_label_file_and_one_group(tmp_path):
    samples = find_samples(make_spacenet4(tmp_path / "sn4"), "spacenet-buildings")
    assert len(samples) == 2
    assert {s.labels.name for s in samples} == {"spacenet-buildings_600000_4000000.geojson"}
    assert {s.group for s in samples} == {"600000_4000000"}


def test_no_matching_pair_is_an_error(tmp_path):
    root = make_spacenet_buildings(tmp_path / "sn2")
    for path in (root / "AOI_2_Vegas_Train" / "geojson" / "buildings").glob("*img[12].geojson"):
        path.unlink()
    with pytest.raises(LabelError, match="no PS-RGB chips with building label files found"):
        find_samples(root, "spacenet-buildings")


def test_road_lines_are_buffered_to_the_width_in_metres(tmp_path):
    samples = find_samples(make_spacenet_roads(tmp_path / "sn3"), "spacenet-roads", road_width_m=6.0)
    roads = gpd.read_file(samples[0].labels)
    assert roads.crs.to_epsg() == 4326 and list(roads["class"]) == ["road"]
    across = LineString([pixel_to_xy(0, 20), pixel_to_xy(64, 20)])
    assert roads.to_crs(UTM).geometry.iloc[0].intersection(across).length == pytest.approx(6.0, abs=0.01)
    road, empty = training_labels(samples, "spacenet-roads")
    expected = np.zeros_like(road)
    expected[26:38, :] = 1  # 3 m = 6 pixels either side of the pixel edge at row 32
    np.testing.assert_array_equal(road, expected)
    np.testing.assert_array_equal(empty, np.zeros_like(empty))


def test_buffer_roads_width_holds_in_a_geographic_crs():
    line = LineString(to_lonlat([pixel_to_xy(0, 0), pixel_to_xy(0, 400)]))
    lines = gpd.GeoDataFrame(geometry=[line], crs="EPSG:4326")
    polygons = buffer_roads(lines, 10.0)
    assert polygons.crs == lines.crs
    polygon = polygons.to_crs(UTM).geometry.iloc[0]
    # 200 m long, 10 m wide with round ends: area = length * width + pi * (width / 2) ** 2
    assert polygon.area == pytest.approx(200 * 10 + np.pi * 25, rel=0.01)


def test_road_width_must_be_positive(tmp_path):
    with pytest.raises(InputError, match="road width"):
        find_samples(make_spacenet_roads(tmp_path / "sn3"), "spacenet-roads", road_width_m=0)


def test_spacenet7_mosaics_match_labels_by_name_within_the_scene(tmp_path, caplog):
    root = make_spacenet7(tmp_path / "sn7")
    with caplog.at_level(logging.WARNING, logger="pspnet_geo.datasets"):
        samples = find_samples(root, "spacenet7")
    assert len(samples) == 1 and samples[0].labels.name.endswith("_Buildings.geojson")
    assert samples[0].group == "L15-0331E-1257N_1327_3160_13"
    assert "1 SpaceNet 7 mosaics without labels" in caplog.text
    (labels,) = training_labels(samples, "spacenet7")
    expected = np.zeros_like(labels)
    expected[5:15, 5:15] = 1
    np.testing.assert_array_equal(labels, expected)


def test_converted_labels_are_reused_while_fresh(tmp_path):
    root = make_spacenet_roads(tmp_path / "sn3")
    first = find_samples(root, "spacenet-roads", cache=tmp_path / "cache")
    stamps = [s.labels.stat().st_mtime_ns for s in first]
    second = find_samples(root, "spacenet-roads", cache=tmp_path / "cache")
    assert [s.labels for s in second] == [s.labels for s in first]
    assert [s.labels.stat().st_mtime_ns for s in second] == stamps
    assert all(s.labels.is_relative_to(tmp_path / "cache") for s in second)
    with rasterio.open(second[1].labels) as src, rasterio.open(second[1].image) as chip:
        assert (src.crs, src.transform, src.shape) == (chip.crs, chip.transform, chip.shape)
