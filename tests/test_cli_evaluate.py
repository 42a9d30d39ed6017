"""``pspnet-geo evaluate`` through click's CliRunner: table, JSON, per-tile totals, bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.features import rasterize
import shapely
from shapely.affinity import translate

from helpers import assert_one_line_error
from pspnet_geo.cli.main import cli
from pspnet_geo.evaluation import evaluate
from pspnet_geo.evaluation.pixels import pixel_metrics, window_confusion

SAMPLE = Path(__file__).resolve().parent.parent / "pspnet_geo" / "sample_data"
BUILDINGS = SAMPLE / "spacenet_atlanta_buildings" / "buildings.geojson"
ATLANTA_GRID = rasterio.Affine(0.5, 0, 733601.0, 0, -0.5, 3725139.0)
NAMES = ["background", "building", "road"]


@pytest.fixture
def run():
    """Invoke ``pspnet-geo`` as a user would: ``evaluate`` comes through its entry point."""
    return lambda *args: CliRunner().invoke(cli, [str(a) for a in args])


def write_mask(path: Path, array: np.ndarray, *, names=None, transform=ATLANTA_GRID, nodata=255) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=array.shape[1], height=array.shape[0],
                       count=1, dtype="uint8", nodata=nodata, crs="EPSG:32616", transform=transform) as dst:
        dst.write(array, 1)
        if names:
            dst.update_tags(1, **{f"class_{i}": name for i, name in enumerate(names)})
    return path


def arrays(seed: int, shape=(90, 120)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, shape).astype(np.uint8)
    predicted = np.where(rng.random(shape) < 0.7, truth, rng.integers(0, 3, shape)).astype(np.uint8)
    predicted[:5] = 255
    truth[:, :4] = 255
    return predicted, truth


def confusion_of(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    keep = (truth != 255) & (predicted != 255)
    return window_confusion(np.where(keep, truth.astype(np.int64), -1), predicted, 3)


def test_table_and_json_report_the_scores_with_names_from_the_mask(tmp_path, run):
    predicted, truth = arrays(0)
    mask = write_mask(tmp_path / "pred.tif", predicted, names=NAMES)
    labels = write_mask(tmp_path / "truth.tif", truth)
    result = run("evaluate", mask, labels, "--json", tmp_path / "r.json", "--block-size", 64)
    assert result.exit_code == 0, result.output
    expected = pixel_metrics(confusion_of(predicted, truth))
    report = json.loads((tmp_path / "r.json").read_text())["pixels"]
    assert report["confusion_matrix"] == expected.confusion.tolist()
    assert report["miou"] == pytest.approx(expected.miou)
    assert report["classes"]["road"]["iou"] == pytest.approx(expected.iou[2])
    assert report["unpredicted_pixels"] == int(((truth != 255) & (predicted == 255)).sum())
    road_row = next(line for line in result.stdout.splitlines() if line.startswith("road"))
    assert road_row.split()[1] == f"{expected.iou[2]:.4f}"
    assert f"mIoU {expected.miou:.4f}" in result.stdout


def chip_folders(tmp_path: Path) -> tuple[Path, Path, list[tuple[np.ndarray, np.ndarray]]]:
    (tmp_path / "pred").mkdir()
    (tmp_path / "truth").mkdir()
    chips = [arrays(seed, (40 + 10 * seed, 50)) for seed in range(3)]
    for index, (predicted, truth) in enumerate(chips):
        write_mask(tmp_path / "pred" / f"img{index}.tif", predicted, names=NAMES)
        write_mask(tmp_path / "truth" / f"img{index}.tif", truth)
    return tmp_path / "pred", tmp_path / "truth", chips


def test_per_tile_rows_and_a_total_from_summed_matrices(tmp_path):
    predictions, truths, chips = chip_folders(tmp_path)
    result = evaluate(predictions, truths, per_tile=True)
    tiles = result.pixels.tiles
    assert [name for name, _ in tiles] == ["img0", "img1", "img2"]
    for (_, metrics), (predicted, truth) in zip(tiles, chips):
        assert metrics.confusion.tolist() == confusion_of(predicted, truth).tolist()
    total = sum(metrics.confusion for _, metrics in tiles)
    assert result.pixels.total.confusion.tolist() == total.tolist()
    assert result.pixels.total.miou == pytest.approx(pixel_metrics(total).miou)
    assert result.as_dict()["pixels"]["tiles"]["img1"]["pixels"] == tiles[1][1].pixels


def test_per_tile_with_globs_on_the_command_line(tmp_path, run):
    predictions, truths, _ = chip_folders(tmp_path)
    result = run("evaluate", predictions / "img*.tif", truths / "*.tif", "--per-tile")
    assert result.exit_code == 0, result.output
    rows = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    assert rows.count("img0") == rows.count("img2") == rows.count("total") == 1


def test_unmatched_chips_are_an_error_naming_them(tmp_path, run):
    predictions, truths, _ = chip_folders(tmp_path)
    (truths / "img1.tif").rename(truths / "other.tif")
    result = run("evaluate", predictions, truths, "--per-tile")
    assert result.exit_code == 2
    assert "no truth for" in result.stderr and "img1.tif" in result.stderr
    assert "no prediction for" in result.stderr and "other.tif" in result.stderr


def atlanta_mask(tmp_path: Path) -> Path:
    return write_mask(tmp_path / "pred.tif", np.zeros((900, 900), np.uint8),
                      names=["background", "building"])


def test_vector_truth_without_a_class_column_is_the_one_building_class(tmp_path, run):
    result = run("evaluate", atlanta_mask(tmp_path), BUILDINGS)
    assert result.exit_code == 0, result.output
    building = next(line for line in result.stdout.splitlines() if line.startswith("building"))
    assert building.split()[1:3] == ["0.0000", "-"]  # never predicted: IoU 0, precision undefined


def test_label_raster_on_another_grid_is_an_error(tmp_path, run):
    truth = write_mask(tmp_path / "t.tif", np.zeros((900, 899), np.uint8))
    assert_one_line_error(run("evaluate", atlanta_mask(tmp_path), truth), "is not on the grid of", "899x900")


def test_labels_that_miss_the_mask_name_both_extents(tmp_path, run):
    far = gpd.read_file(BUILDINGS)
    far["geometry"] = far.geometry.map(lambda g: translate(g, 5000, 0))
    far.to_file(tmp_path / "far.geojson")
    assert_one_line_error(run("evaluate", atlanta_mask(tmp_path), tmp_path / "far.geojson"),
                          "do not overlap", "extent (738", "extent (733601")


def test_unknown_class_value_lists_the_known_classes(tmp_path, run):
    labels = gpd.read_file(BUILDINGS)[["geometry"]].assign(kind="building")
    labels.loc[0, "kind"] = "tree"
    labels.to_file(tmp_path / "l.geojson")
    result = run("evaluate", atlanta_mask(tmp_path), tmp_path / "l.geojson", "--class-column", "kind")
    assert_one_line_error(result, "'tree'", "known classes: 0=background, 1=building")


def test_empty_label_file_is_an_error(tmp_path, run):
    (tmp_path / "empty.geojson").write_text('{"type": "FeatureCollection", "features": []}')
    assert_one_line_error(run("evaluate", atlanta_mask(tmp_path), tmp_path / "empty.geojson"), "has no features")


def test_class_names_are_needed_once(tmp_path, run):
    mask = write_mask(tmp_path / "m.tif", np.zeros((20, 20), np.uint8))
    assert_one_line_error(run("evaluate", mask, mask), "names no classes", "--classes")
    assert_one_line_error(run("evaluate", mask, mask, "--classes", "a,b", "-p", "spacenet-buildings"), "not both")
    assert run("evaluate", mask, mask, "--classes", "a,b").exit_code == 0


def test_an_existing_json_report_is_kept_without_overwrite(tmp_path, run):
    mask = write_mask(tmp_path / "m.tif", np.zeros((20, 20), np.uint8), names=NAMES)
    (tmp_path / "r.json").write_text("keep")
    assert_one_line_error(run("evaluate", mask, mask, "--json", tmp_path / "r.json"), "exists")
    assert (tmp_path / "r.json").read_text() == "keep"
    assert run("evaluate", mask, mask, "--json", tmp_path / "r.json", "--overwrite").exit_code == 0
    assert json.loads((tmp_path / "r.json").read_text())["pixels"]["pixel_accuracy"] == 1.0


def test_building_f1_of_the_masks_polygons(tmp_path, run):
    truth = gpd.read_file(BUILDINGS)
    mask = rasterize(truth.geometry, out_shape=(900, 900), transform=ATLANTA_GRID, dtype="uint8")
    path = write_mask(tmp_path / "m.tif", mask, names=["background", "building"])
    result = run("evaluate", path, BUILDINGS, "--class-column", "none", "--buildings", "building",
                 "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    objects = json.loads((tmp_path / "r.json").read_text())["objects"]
    assert objects["true_positives"] + objects["false_negatives"] == len(truth) == 43
    assert objects["true_positives"] >= 40 and objects["f1"] > 0.9
    assert "Objects (SpaceNet F1" in result.output


def test_road_metrics_need_a_pipeline_with_centerlines(tmp_path, run):
    with rasterio.open(SAMPLE / "spacenet_vegas_roads" / "road_mask.tif") as src:
        profile, roads = src.profile, (src.read(1) > 0).astype("uint8")
    mask = tmp_path / "roads.tif"
    with rasterio.open(mask, "w", **(profile | {"nodata": 255})) as dst:
        dst.write(roads, 1)
    assert run("vectorize", mask, "-o", tmp_path / "t.gpkg", "-p", "spacenet-roads").exit_code == 0
    lines = gpd.read_file(tmp_path / "t.gpkg", layer="t_centerlines").assign(class_name="road")
    lines.to_file(tmp_path / "truth.gpkg")
    result = run("evaluate", mask, tmp_path / "truth.gpkg", "-p", "spacenet-roads", "--class-column",
                 "class_name", "--roads", "road", "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    roads_report = json.loads((tmp_path / "r.json").read_text())["roads"]
    assert roads_report["length_precision"] == pytest.approx(1.0) and roads_report["length_recall"] == pytest.approx(1.0)
    assert roads_report["apls"] == pytest.approx(1.0) and "APLS" in result.output    # the same network
    plain = run("evaluate", mask, tmp_path / "truth.gpkg", "--classes", "background,road",
                "--class-column", "class_name", "--roads", "road")
    assert plain.exit_code == 2 and "road metrics need centerlines" in plain.output


def test_truth_outside_the_scored_area_is_not_counted_as_missed(tmp_path, run):
    truth = gpd.read_file(BUILDINGS)
    mask = rasterize(truth.geometry, out_shape=(900, 900), transform=ATLANTA_GRID, dtype="uint8")
    right = write_mask(tmp_path / "right.tif", np.ascontiguousarray(mask[:, 600:]), names=["background", "building"],
                       transform=ATLANTA_GRID @ rasterio.Affine.translation(600, 0))
    result = run("evaluate", right, BUILDINGS, "--class-column", "none", "--buildings", "building",
                 "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    objects = json.loads((tmp_path / "r.json").read_text())["objects"]
    inside = truth[truth.intersects(shapely.box(*rasterio.open(right).bounds))]
    assert objects["true_positives"] + objects["false_negatives"] == len(inside) < len(truth)


def test_a_float_raster_as_the_prediction_is_refused_in_one_line(tmp_path, run):
    path = tmp_path / "p.tif"
    with rasterio.open(path, "w", driver="GTiff", width=30, height=20, count=1, dtype="float32",
                       crs="EPSG:32616", transform=ATLANTA_GRID) as dst:
        dst.write(np.random.default_rng(0).random((1, 20, 30)).astype("float32"))
    result = run("evaluate", path, BUILDINGS, "--classes", "background,building", "--class-column", "none")
    assert result.exit_code == 2 and "is not a class mask: band 1 is float32" in result.output
    assert "Traceback" not in result.output


def test_self_intersecting_truth_is_repaired_for_object_scores(tmp_path, run):
    truth = gpd.read_file(BUILDINGS)
    mask = rasterize(truth.geometry, out_shape=(900, 900), transform=ATLANTA_GRID, dtype="uint8")
    x, y = 733700, 3725000
    bowtie = shapely.Polygon([(x, y), (x + 20, y + 20), (x + 20, y), (x, y + 20)])
    gpd.GeoDataFrame(geometry=[*truth.geometry, bowtie], crs=truth.crs).to_file(tmp_path / "t.geojson")
    path = write_mask(tmp_path / "m.tif", mask, names=["background", "building"])
    result = run("evaluate", path, tmp_path / "t.geojson", "--class-column", "none", "--buildings", "building",
                 "--json", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    assert "1 features are not valid geometries" in result.output
    objects = json.loads((tmp_path / "r.json").read_text())["objects"]
    assert objects["true_positives"] + objects["false_negatives"] == 44
