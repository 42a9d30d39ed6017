"""The mask and probability GeoTIFFs, written piece by piece onto the scene's grid."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
import rasterio
import rasterio.shutil
import tifffile
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from pspnet_geo.maskfile import NODATA_CLASS, category_names, mask_class_names, mask_colours
from pspnet_geo.scene import open_scene
from pspnet_geo.segmentation.raster_outputs import ClassInfo, RasterOutputs
from pspnet_geo.segmentation.stitch import FinishedPiece
from helpers import is_cog_layout

HEIGHT, WIDTH = 40, 60
CLASSES = ClassInfo(("background", "building", "road"), ((0, 0, 0), (255, 0, 0), (10, 20, 30)))
TRANSFORM = Affine(0.5, 0.0, 500000.0, 0.0, -0.5, 4000000.0)


@pytest.fixture
def scene(tmp_path):
    path = tmp_path / "scene.tif"
    with rasterio.open(path, "w", driver="GTiff", width=WIDTH, height=HEIGHT, count=3, dtype="uint8",
                       crs="EPSG:32611", transform=TRANSFORM) as dst:
        dst.write(np.zeros((3, HEIGHT, WIDTH), np.uint8))
    return open_scene(path)


def pieces(with_probabilities: bool) -> list[FinishedPiece]:
    """The scene cut into three pieces of known class ids, a few of them nodata."""
    rng = np.random.default_rng(0)
    windows = [Window(0, 0, WIDTH, 16), Window(0, 16, 25, HEIGHT - 16), Window(25, 16, WIDTH - 25, HEIGHT - 16)]
    result = []
    for window in windows:
        classes = rng.integers(0, 3, (window.height, window.width)).astype(np.uint8)
        classes[0, :4] = NODATA_CLASS
        proba = rng.integers(0, 256, (3, window.height, window.width)).astype(np.uint8) if with_probabilities else None
        result.append(FinishedPiece(window, classes, proba))
    return result


def write_all(scene, mask_path, proba_path, finished):
    outputs = RasterOutputs(scene, CLASSES, mask_path, proba_path)
    for piece in reversed(finished):
        outputs.write(piece)
    outputs.close()


def test_pieces_land_in_their_windows_on_the_scene_grid(scene, tmp_path):
    finished = pieces(with_probabilities=False)
    write_all(scene, tmp_path / "mask.tif", None, finished)
    with rasterio.open(tmp_path / "mask.tif") as mask:
        assert (mask.width, mask.height, mask.count, mask.dtypes[0]) == (WIDTH, HEIGHT, 1, "uint8")
        assert mask.crs == CRS.from_epsg(32611) and mask.transform == TRANSFORM
        assert mask.nodata == NODATA_CLASS
        assert mask.descriptions == ("class id",)
        for piece in finished:
            np.testing.assert_array_equal(mask.read(1, window=piece.window), piece.classes)
        whole = mask.read(1)
        assert (whole == NODATA_CLASS).sum() == 3 * 4
        np.testing.assert_array_equal(mask.read_masks(1), np.where(whole == NODATA_CLASS, 0, 255))


def test_the_mask_carries_class_names_and_colours(scene, tmp_path):
    write_all(scene, tmp_path / "mask.tif", None, pieces(with_probabilities=False))
    assert mask_class_names(tmp_path / "mask.tif") == list(CLASSES.names)
    assert mask_colours(tmp_path / "mask.tif")[:3] == list(CLASSES.colours)
    with rasterio.open(tmp_path / "mask.tif") as mask:
        assert mask.colorinterp[0] == rasterio.enums.ColorInterp.palette


def test_probabilities_are_scaled_and_masked_where_the_class_is_nodata(scene, tmp_path):
    finished = pieces(with_probabilities=True)
    write_all(scene, tmp_path / "mask.tif", tmp_path / "proba.tif", finished)
    with rasterio.open(tmp_path / "proba.tif") as proba:
        assert proba.count == 3 and proba.dtypes == ("uint8",) * 3
        assert proba.crs == CRS.from_epsg(32611) and proba.transform == TRANSFORM
        assert proba.nodata is None
        assert proba.scales == pytest.approx((1 / 255,) * 3)
        assert proba.descriptions == tuple(f"probability of {n} (x255)" for n in CLASSES.names)
        for piece in finished:
            np.testing.assert_array_equal(proba.read(window=piece.window), piece.probabilities)
            expected = np.where(piece.classes == NODATA_CLASS, 0, 255)
            np.testing.assert_array_equal(proba.dataset_mask(window=piece.window), expected)


def test_without_a_probability_path_only_the_mask_and_its_categories_are_written(scene, tmp_path):
    write_all(scene, tmp_path / "mask.tif", None, pieces(with_probabilities=False))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.tif", "mask.tif.aux.xml", "scene.tif"]


def test_the_mask_names_its_classes_as_gdal_categories_with_an_attribute_table(scene, tmp_path):
    write_all(scene, tmp_path / "mask.tif", None, pieces(with_probabilities=False))
    categories = category_names(tmp_path / "mask.tif")         # as GDAL reads them
    assert categories[:4] == [*CLASSES.names, ""] and categories[NODATA_CLASS] == "nodata"
    vrt = tmp_path / "mask.vrt"
    rasterio.shutil.copy(tmp_path / "mask.tif", vrt, driver="VRT")
    rows = [[cell.text for cell in row] for row in ET.parse(vrt).getroot().iter("Row")]
    assert rows == [["0", "background", "0", "0", "0"], ["1", "building", "255", "0", "0"],
                    ["2", "road", "10", "20", "30"], ["255", "nodata", "0", "0", "0"]]
    (tmp_path / "mask.tif.aux.xml").unlink()        # a mask from before: its tags still name the classes
    assert category_names(tmp_path / "mask.tif") == []
    assert mask_class_names(tmp_path / "mask.tif") == list(CLASSES.names)


def test_a_mask_kept_only_for_a_preview_is_not_laid_out_again(scene, tmp_path):
    outputs = RasterOutputs(scene, CLASSES, tmp_path / "mask.tif", None, mask_cog=False)
    for piece in pieces(with_probabilities=False):
        outputs.write(piece)
    outputs.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mask.tif", "scene.tif"]
    assert not is_cog_layout(tmp_path / "mask.tif")


def blobs(height: int, width: int, seed: int) -> np.ndarray:
    """Class ids in 16 px squares, a nodata corner."""
    rng = np.random.default_rng(seed)
    classes = np.kron(rng.integers(0, 3, (height // 16 + 1, width // 16 + 1)), np.ones((16, 16), int))
    classes = classes[:height, :width].astype(np.uint8)
    classes[:40, :50] = NODATA_CLASS
    return classes


def assert_cloud_optimized(path) -> int:
    """GDAL's COG rules, read from the file itself: every image tiled, every IFD before any
    tile's data, the structural metadata GDAL's COG driver leaves; the number of overviews."""
    with open(path, "rb") as handle:
        head = handle.read(1024)
    assert b"LAYOUT=IFDS_BEFORE_DATA" in head and b"BLOCK_ORDER=ROW_MAJOR" in head
    with tifffile.TiffFile(path) as tiff:
        pages = list(tiff.pages)
        assert all(page.is_tiled for page in pages)
        last_ifd = max(page.offset for page in pages)
        first_data = min(offset for page in pages for offset in page.dataoffsets if offset)
        assert last_ifd < first_data
        widths = [page.imagewidth for page in pages if not page.is_mask]
        assert widths == sorted(widths, reverse=True) and len(set(widths)) == len(widths)
        return len(widths) - 1


def test_outputs_are_cloud_optimized_geotiffs_with_overviews(tmp_path):
    height, width = 1300, 1100
    path = tmp_path / "scene.tif"
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=3, dtype="uint8",
                       crs="EPSG:32611", transform=TRANSFORM) as dst:
        dst.write(np.zeros((3, height, width), np.uint8))
    classes = blobs(height, width, 1)
    proba = np.stack([(classes == c) * 200 + 20 for c in range(3)]).astype(np.uint8)
    outputs = RasterOutputs(open_scene(path), CLASSES, tmp_path / "mask.tif", tmp_path / "proba.tif")
    for rows in (slice(0, 700), slice(700, height)):
        outputs.write(FinishedPiece(Window(0, rows.start, width, rows.stop - rows.start), classes[rows],
                                    proba[:, rows]))
    outputs.close()
    for name in ("mask.tif", "proba.tif"):
        assert assert_cloud_optimized(tmp_path / name) >= 1
        assert is_cog_layout(tmp_path / name)
    assert not list(tmp_path.glob("*.staged.tif"))
    with rasterio.open(tmp_path / "mask.tif") as mask:
        np.testing.assert_array_equal(mask.read(1), classes)
        assert mask.overviews(1) == [2, 4] and mask.colormap(1)[2][:3] == (10, 20, 30)
        overview = mask.read(1, out_shape=(height // 4, width // 4))
        assert set(np.unique(overview)) <= {0, 1, 2, NODATA_CLASS}      # nearest: no class invented
    with rasterio.open(tmp_path / "proba.tif") as probabilities:
        np.testing.assert_array_equal(probabilities.read(), proba)
        assert probabilities.overviews(1) == [2, 4]
        np.testing.assert_array_equal(probabilities.dataset_mask(), np.where(classes == NODATA_CLASS, 0, 255))
        assert probabilities.scales == pytest.approx((1 / 255,) * 3)
        halved = probabilities.read(1, out_shape=(height // 2, width // 2))
        assert 20 < halved[200:, 200:].mean() < 220      # averaged, not picked


def test_a_discarded_run_leaves_no_staging_file(scene, tmp_path):
    outputs = RasterOutputs(scene, CLASSES, tmp_path / "mask.tif", tmp_path / "proba.tif")
    outputs.write(pieces(with_probabilities=True)[0])
    outputs.discard()
    assert not list(tmp_path.glob("*.staged.tif")) and not (tmp_path / "mask.tif").exists()


def test_pieces_are_gathered_into_whole_blocks_each_written_once():
    """Every write is one whole block (GDAL can lose the first part of a compressed block its
    cache evicted before the rest came), and the blocks hold exactly the pieces' data."""
    from pspnet_geo.segmentation.raster_outputs import BlockGatherer

    height, width = 300, 530
    data = np.random.default_rng(0).integers(0, 255, (2, height, width), dtype=np.uint8)
    gatherer = BlockGatherer(height, width, 128, 2)
    rows, cols = [0, 70, 200, 300], [0, 64, 300, 301, 530]
    pieces = [(r0, r1, c0, c1) for r0, r1 in zip(rows, rows[1:]) for c0, c1 in zip(cols, cols[1:])]
    written = np.zeros_like(data)
    blocks = []
    for index in np.random.default_rng(1).permutation(len(pieces)):
        r0, r1, c0, c1 = pieces[index]
        for window, block in gatherer.add(Window(c0, r0, c1 - c0, r1 - r0), data[:, r0:r1, c0:c1]):
            assert window.col_off % 128 == 0 and window.row_off % 128 == 0
            assert block.shape == (2, window.height, window.width)
            written[:, window.toslices()[0], window.toslices()[1]] = block
            blocks.append((window.row_off, window.col_off))
    assert gatherer.pending_count == 0 and len(blocks) == len(set(blocks)) == 3 * 5
    np.testing.assert_array_equal(written, data)


def test_a_write_that_fails_on_the_writer_thread_fails_the_run_and_a_discard_does_not_raise(scene, tmp_path,
                                                                                          monkeypatch):
    def full_disk(self, window, data):
        raise OSError("No space left on device")

    monkeypatch.setattr(RasterOutputs, "_write_block", full_disk)
    outputs = RasterOutputs(scene, CLASSES, tmp_path / "mask.tif", None)
    with pytest.raises(OSError, match="No space left"):     # at a later write, or at close
        for piece in pieces(with_probabilities=False):
            outputs.write(piece)
        outputs.close()
    outputs.discard()       # what a failed run does: no second error
    assert outputs.mask.closed
