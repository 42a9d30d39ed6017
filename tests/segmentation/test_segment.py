"""segment(): invariance to how the work is cut, seams, nodata, grids and atomic outputs."""

from __future__ import annotations

import logging
from functools import partial

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
import torch
from rasterio.windows import Window

from helpers import ATLANTA, BAD_INPUTS, LANDSAT
from pspnet_geo.errors import BandMismatchError, InputError, OutputError, RunError
from pspnet_geo.config.pipelines import load_pipeline
from pspnet_geo.maskfile import NODATA_CLASS
from pspnet_geo.segmentation.run import segment
from pspnet_geo.segmentation.tiling import TilePlan
from pspnet_geo.vector.vectorize import vectorize_mask
from reference import blend_whole_scene

TILE, OVERLAP = 256, 64


def read_mask(path):
    with rasterio.open(path) as src:
        return src.read(1)


@pytest.fixture(scope="module")
def atlanta_reference(atlanta_model):
    return blend_whole_scene(ATLANTA, atlanta_model, TILE, OVERLAP)


@pytest.mark.parametrize("block_tiles", [1, 3, None])
def test_mask_equals_the_in_memory_reference_for_any_block_size(tmp_path, atlanta_model, atlanta_reference, block_tiles):
    segment(ATLANTA, mask_out=tmp_path / "mask.tif", model=atlanta_model, tile_size=TILE,
            overlap=OVERLAP, block_tiles=block_tiles, progress=False)
    mask = read_mask(tmp_path / "mask.tif")
    assert np.array_equal(mask, atlanta_reference)
    assert len(np.unique(mask)) == 2


@pytest.mark.slow
def test_mask_is_identical_with_two_dask_workers(tmp_path, atlanta_model, atlanta_reference):
    said = []
    segment(ATLANTA, mask_out=tmp_path / "mask.tif", model=atlanta_model, tile_size=TILE,
            overlap=OVERLAP, block_tiles=2, workers=2, threads=1, progress=False, report=said.append)
    assert np.array_equal(read_mask(tmp_path / "mask.tif"), atlanta_reference)
    assert len(said) == 1 and said[0].startswith("Dask dashboard: ")


def test_a_scene_smaller_than_one_tile(tmp_path, atlanta_model):
    small = tmp_path / "small.tif"
    with rasterio.open(ATLANTA) as src:
        window = Window(300, 200, 77, 100)
        profile = src.profile | {"width": 77, "height": 100, "transform": src.window_transform(window)}
        with rasterio.open(small, "w", **profile) as dst:
            dst.write(src.read(window=window))
    segment(small, mask_out=tmp_path / "mask.tif", model=atlanta_model, tile_size=TILE,
            overlap=OVERLAP, progress=False)
    assert np.array_equal(read_mask(tmp_path / "mask.tif"), blend_whole_scene(small, atlanta_model, TILE, OVERLAP))


def seam_contrast(mask: np.ndarray, edges: list[int]) -> float:
    """How much more often the class changes across the given row/column lines than elsewhere.

    A line after pixel ``e`` separates pixels e and e+1. A seam makes predictions jump across
    tile edges, so this is well above 1 for a mask with seams and about 1 without.
    """
    rows = (mask[1:, :] != mask[:-1, :]).mean(axis=1)
    cols = (mask[:, 1:] != mask[:, :-1]).mean(axis=0)
    on_edges = np.r_[rows[edges], cols[edges]].mean()
    others = np.r_[np.delete(rows, edges), np.delete(cols, edges)].mean()
    return on_edges / others


def test_blending_removes_the_seams_of_an_overlap_free_run(tmp_path, atlanta_model, atlanta_reference):
    segment(ATLANTA, mask_out=tmp_path / "butted.tif", model=atlanta_model, tile_size=TILE,
            overlap=0, progress=False)
    butted = read_mask(tmp_path / "butted.tif")
    butted_edges = list(range(TILE - 1, 900 - 1, TILE))
    stride = TILE - OVERLAP
    blended_edges = sorted({*range(stride - 1, 899, stride), *range(TILE - 1, 899, stride)})
    assert seam_contrast(butted, butted_edges) > 3
    assert seam_contrast(atlanta_reference, blended_edges) < 2
    assert seam_contrast(atlanta_reference, butted_edges) < 1.5


def test_nodata_stays_nodata_and_empty_tiles_are_not_run(tmp_path, landsat_model):
    result = segment(LANDSAT, tmp_path / "polygons.gpkg", mask_out=tmp_path / "mask.tif",
                     model=landsat_model, tile_size=128, overlap=32, progress=False)
    with rasterio.open(LANDSAT) as src:
        valid = src.dataset_mask() > 0
    mask = read_mask(tmp_path / "mask.tif")
    assert np.array_equal(mask == 255, ~valid)
    assert result.tiles_skipped > 0
    assert result.tiles_run + result.tiles_skipped == TilePlan(718, 791, 128, 32, 1).tile_count
    assert np.array_equal(mask, blend_whole_scene(LANDSAT, landsat_model, 128, 32))


def test_outputs_are_on_the_scenes_exact_grid(tmp_path, landsat_model):
    result = segment(LANDSAT, tmp_path / "polygons.gpkg", mask_out=tmp_path / "mask.tif",
                     proba_out=tmp_path / "proba.tif", model=landsat_model, tile_size=128,
                     overlap=32, progress=False)
    with rasterio.open(LANDSAT) as scene, rasterio.open(tmp_path / "mask.tif") as mask, \
            rasterio.open(tmp_path / "proba.tif") as proba:
        for out in (mask, proba):
            assert (out.crs, out.transform, out.width, out.height) == (scene.crs, scene.transform, scene.width, scene.height)
            assert out.profile["tiled"] and out.compression is not None
        assert mask.colormap(1)[1][:3] == (255, 0, 0)
        probabilities, classes = proba.read(), mask.read(1)
        valid = classes != 255
        assert proba.count == 3 and proba.scales[0] == pytest.approx(1 / 255)
        assert np.all(np.abs(probabilities[:, valid].astype(int).sum(axis=0) - 255) <= 2)
        assert np.mean(probabilities[:, valid].argmax(axis=0) == classes[valid]) > 0.99
        assert np.all(proba.dataset_mask()[~valid] == 0)
    polygons = gpd.read_file(tmp_path / "polygons.gpkg", layer="polygons")
    assert polygons.crs == scene.crs and len(polygons) == result.features > 0
    assert set(polygons.class_name) <= {"class1", "class2"} and (polygons.area > 0).all()


def test_a_read_error_part_way_leaves_no_output(tmp_path, landsat_model):
    with pytest.raises(RunError, match="corrupt.tif"):
        segment(BAD_INPUTS / "corrupt.tif", tmp_path / "out.gpkg", mask_out=tmp_path / "mask.tif",
                model=landsat_model, tile_size=128, overlap=32, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_output_needs_overwrite(tmp_path, atlanta_model):
    (tmp_path / "mask.tif").write_bytes(b"keep me")
    with pytest.raises(OutputError, match="--overwrite"):
        segment(ATLANTA, mask_out=tmp_path / "mask.tif", model=atlanta_model, progress=False)
    assert (tmp_path / "mask.tif").read_bytes() == b"keep me"


def test_an_all_nodata_scene_gives_an_empty_layer_and_a_warning(tmp_path, caplog, landsat_model):
    scene = tmp_path / "nodata.tif"
    with rasterio.open(BAD_INPUTS / "all-nodata.tif") as src:
        with rasterio.open(scene, "w", **(src.profile | {"count": 3})) as dst:
            dst.write(src.read([1, 2, 3]))
    with caplog.at_level(logging.WARNING):
        result = segment(scene, tmp_path / "out.gpkg", model=landsat_model, tile_size=128, progress=False)
    assert result.tiles_run == 0 and result.features == 0
    assert len(gpd.read_file(tmp_path / "out.gpkg", layer="out")) == 0
    assert "nodata" in caplog.text


def test_a_band_count_that_does_not_match_the_model(tmp_path, atlanta_model):
    with pytest.raises(BandMismatchError, match="3 bands but the model takes 1"):
        segment(LANDSAT, mask_out=tmp_path / "mask.tif", model=atlanta_model, progress=False)
    segment(LANDSAT, mask_out=tmp_path / "mask.tif", model=atlanta_model, bands=[2], tile_size=128, progress=False)
    assert read_mask(tmp_path / "mask.tif").shape == (718, 791)


def test_streamed_polygons_equal_vectorising_the_written_mask(tmp_path, atlanta_model):
    result = segment(ATLANTA, tmp_path / "b.gpkg", mask_out=tmp_path / "m.tif", model=atlanta_model,
                     pipeline="spacenet-buildings", tile_size=TILE, overlap=OVERLAP, block_tiles=1,
                     progress=False)
    preset = load_pipeline("spacenet-buildings")
    expected = vectorize_mask(tmp_path / "m.tif", preset.class_names,
                              postprocess=preset.postprocess).polygons
    streamed = gpd.read_file(tmp_path / "b.gpkg", layer="b")
    assert result.features == len(streamed) == len(expected) > 0
    assert shapely.equals_exact(streamed.geometry.values, expected.geometry.values, 1e-6).all()
    raw = segment(ATLANTA, tmp_path / "raw.gpkg", model=atlanta_model, pipeline="spacenet-buildings",
                  tile_size=TILE, overlap=OVERLAP, postprocess=False, progress=False)
    assert raw.features > result.features


def test_each_worker_resolves_auto_device_and_batch_size_itself(tmp_path, atlanta_model, monkeypatch):
    """A client without a GPU must not decide for GPU workers: ``auto`` travels to the worker."""
    from pspnet_geo.segmentation import blocks

    asked = []
    real = blocks.resolve_device
    monkeypatch.setattr(blocks, "resolve_device", lambda device: asked.append(device) or real(device))
    segment(ATLANTA, mask_out=tmp_path / "m.tif", model=atlanta_model, tile_size=256, progress=False)
    assert asked and set(asked) == {"auto"}


def test_an_interrupted_scene_resumes_without_rerunning_its_finished_blocks(
        tmp_path, atlanta_model, atlanta_reference, monkeypatch):
    from pspnet_geo.segmentation import streaming as segmentation

    real, ran = segmentation.run_block, []

    def fail_after_three(job):
        if len(ran) == 3:
            raise KeyboardInterrupt
        ran.append((job.block.row, job.block.col))
        return real(job)

    options = dict(out=tmp_path / "b.gpkg", mask_out=tmp_path / "mask.tif", model=atlanta_model, tile_size=TILE,
                   overlap=OVERLAP, block_tiles=1, threads=1, progress=False, resume=True)
    monkeypatch.setattr(segmentation, "run_block", fail_after_three)
    with pytest.raises(KeyboardInterrupt):
        segment(ATLANTA, **options)
    saved = sorted(p.stem for p in (tmp_path / "b.gpkg.parts").glob("block_*.npz"))
    assert not (tmp_path / "mask.tif").exists() and 1 <= len(saved) <= 3
    first, ran = [tuple(int(v) for v in name.split("_")[1:]) for name in saved], []
    monkeypatch.setattr(segmentation, "run_block", lambda job: ran.append((job.block.row, job.block.col)) or real(job))
    result = segment(ATLANTA, **options)
    assert not set(first) & set(ran) and len(first) + len(ran) == len(TilePlan(900, 900, TILE, OVERLAP, 1).blocks)
    assert np.array_equal(read_mask(tmp_path / "mask.tif"), atlanta_reference)
    assert not (tmp_path / "b.gpkg.parts").exists()
    whole = segment(ATLANTA, out=tmp_path / "w.gpkg", model=atlanta_model, tile_size=TILE, overlap=OVERLAP,
                    progress=False)
    assert result.features == whole.features
    got, want = gpd.read_file(tmp_path / "b.gpkg", layer="b"), gpd.read_file(tmp_path / "w.gpkg", layer="w")
    assert got.geometry.geom_equals_exact(want.geometry, tolerance=0).all()


def test_blocks_saved_under_another_plan_are_not_reused(tmp_path, atlanta_model, atlanta_reference, monkeypatch):
    """The plan depends on the threads; a resumed run with more threads plans other blocks."""
    from pspnet_geo.segmentation import streaming as segmentation

    real, ran = segmentation.run_block, []

    def fail_after_three(job):
        if len(ran) == 3:
            raise KeyboardInterrupt
        ran.append(job.block)
        return real(job)

    options = dict(mask_out=tmp_path / "mask.tif", model=atlanta_model, tile_size=TILE, overlap=OVERLAP,
                   progress=False, resume=True)
    monkeypatch.setattr(segmentation, "run_block", fail_after_three)
    with pytest.raises(KeyboardInterrupt):
        segment(ATLANTA, threads=1, **options)
    monkeypatch.setattr(segmentation, "run_block", real)
    segment(ATLANTA, threads=8, **options)
    assert np.array_equal(read_mask(tmp_path / "mask.tif"), atlanta_reference)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_is_checked_by_the_client_only_when_the_blocks_run_here(tmp_path, atlanta_model, monkeypatch):
    """A client without a GPU refuses --device cuda for its own threads, but leaves it to
    the workers of a remote cluster, which may have GPUs."""
    from pspnet_geo.segmentation import blocks
    from pspnet_geo.segmentation.executors import LocalExecutor

    options = dict(mask_out=tmp_path / "m.tif", model=atlanta_model, tile_size=TILE, progress=False)
    with pytest.raises(InputError, match="unknown device 'tpu'"):
        segment(ATLANTA, device="tpu", **options)
    asked = []
    real = blocks.resolve_device
    monkeypatch.setattr(blocks, "resolve_device", lambda device: asked.append(device) or real(device))
    with pytest.raises(InputError, match="no CUDA device"):
        segment(ATLANTA, device="cuda", **options)
    assert asked == []
    remote = LocalExecutor(1)
    remote.remote = True
    with pytest.raises(InputError, match="no CUDA device"):
        segment(ATLANTA, device="cuda", executor=remote, **options)
    remote.close()
    assert "cuda" in asked


def test_nan_and_infinite_pixels_are_nodata_and_never_reach_the_model(tmp_path, atlanta_model, caplog):
    with rasterio.open(ATLANTA) as src:
        window = Window(0, 0, 300, 300)
        pixels = src.read(window=window).astype("float32")
        profile = src.profile | {"width": 300, "height": 300, "dtype": "float32", "nodata": None,
                                 "transform": src.window_transform(window)}
    broken = pixels.copy()
    broken[:, 100:105] = np.nan
    broken[-1, 200, 7] = np.inf
    declared = np.where(np.isfinite(broken), broken, -9999.0).astype("float32")
    for name, data, nodata in (("broken.tif", broken, None), ("declared.tif", declared, -9999.0)):
        with rasterio.open(tmp_path / name, "w", **(profile | {"nodata": nodata})) as dst:
            dst.write(data)
    with caplog.at_level(logging.WARNING, logger="pspnet_geo.segmentation.streaming"):
        segment(tmp_path / "broken.tif", mask_out=tmp_path / "b.tif", model=atlanta_model, tile_size=128,
                overlap=32, block_tiles=1, progress=False)
    assert "1501 pixels are NaN or infinite; they were treated as nodata" in caplog.text
    segment(tmp_path / "declared.tif", mask_out=tmp_path / "d.tif", model=atlanta_model, tile_size=128,
            overlap=32, block_tiles=1, progress=False)
    got, want = read_mask(tmp_path / "b.tif"), read_mask(tmp_path / "d.tif")
    assert np.array_equal(got, want)
    assert (got[100:105] == NODATA_CLASS).all() and got[200, 7] == NODATA_CLASS
    assert (got[:100] != NODATA_CLASS).all()


def test_a_scene_over_max_tiles_is_refused_and_a_long_run_says_so_up_front(tmp_path, atlanta_model, caplog,
                                                                             monkeypatch):
    with pytest.raises(InputError, match="needs 100 tiles of 128 px, more than --max-tiles 99"):
        segment(ATLANTA, mask_out=tmp_path / "m.tif", model=atlanta_model, tile_size=128, overlap=32,
                max_tiles=99, progress=False)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr("pspnet_geo.segmentation.checks.LONG_RUN_S", 0)
    with caplog.at_level(logging.WARNING, logger="pspnet_geo.segmentation.checks"):
        segment(ATLANTA, mask_out=tmp_path / "m.tif", model=atlanta_model, tile_size=128, overlap=32,
                max_tiles=100, block_tiles=2, progress=False)
    assert "100 tiles in 25 blocks (25 to run); at the pace of the first, about" in caplog.text


def test_polygons_reach_the_output_file_before_the_last_block_finishes(tmp_path, atlanta_model, monkeypatch):
    """Streaming, seen from outside: with every block but the last stitched, the temporary
    GeoPackage already holds most of the polygons; the final file equals the whole-mask run."""
    from pspnet_geo.segmentation import run as segmentation
    from pspnet_geo.segmentation.stitch import Stitcher

    real, calls, seen = Stitcher.add, [], []
    blocks = len(TilePlan(900, 900, 128, 32, 1).blocks)

    def counting(self, key, partials):
        calls.append(key)
        if len(calls) == blocks:       # the last block's result, before it is stitched
            [temporary] = tmp_path.glob(".b.*.partial.gpkg")
            seen.append(pyogrio.read_info(temporary)["features"])
        return real(self, key, partials)

    def small_chunks(*args):
        output = real_output(*args)
        output.chunk = 5                # written 5 polygons at a time, not 2,000: a small scene streams too
        return output

    real_output = segmentation._vector_output
    monkeypatch.setattr(segmentation, "_vector_output", small_chunks)
    # Windows of 128 px, not 1,024: the 900 px chip is then many windows, as a large scene is.
    monkeypatch.setattr(segmentation, "MaskVectorizer", partial(segmentation.MaskVectorizer, block_size=128))
    monkeypatch.setattr(Stitcher, "add", counting)
    result = segment(ATLANTA, tmp_path / "b.gpkg", mask_out=tmp_path / "m.tif", model=atlanta_model,
                     tile_size=128, overlap=32, block_tiles=1, threads=1, progress=False)
    expected = vectorize_mask(tmp_path / "m.tif", ["background", "building"]).polygons
    assert result.features == len(expected) > 20
    assert seen and 0.5 * len(expected) < seen[0] < len(expected)
    got = gpd.read_file(tmp_path / "b.gpkg", layer="b")
    assert sorted(shapely.normalize(got.geometry.values).tolist(), key=lambda g: g.wkb) == sorted(
        shapely.normalize(expected.geometry.values).tolist(), key=lambda g: g.wkb)
