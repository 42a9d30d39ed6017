"""DeepGlobe readers on tiny generated tiles, read back through training as label rasters."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from PIL import Image

from pspnet_geo.datasets import LAND_COVER_CLASSES, find_samples
from pspnet_geo.datasets.deepglobe import land_cover_classes
from pspnet_geo.errors import InputError, LabelError

from datasets.make_test_data import land_cover_mask, make_deepglobe_land_cover, make_deepglobe_roads, training_labels


def test_land_cover_colours_are_thresholded_to_the_seven_classes():
    mask = np.array([[(0, 255, 255), (255, 255, 0), (255, 0, 255), (0, 255, 0)],
                     [(0, 0, 255), (255, 255, 255), (0, 0, 0), (128, 127, 255)]], dtype=np.uint8)
    classes = land_cover_classes(mask, "m.png")
    np.testing.assert_array_equal(classes, [[1, 2, 3, 4], [5, 6, 0, 3]])
    assert LAND_COVER_CLASSES[3] == "rangeland"


def test_land_cover_masks_become_label_rasters_on_the_image_grid(tmp_path, caplog):
    root = make_deepglobe_land_cover(tmp_path / "lc")
    with caplog.at_level(logging.WARNING, logger="pspnet_geo.datasets"):
        samples = find_samples(root, "deepglobe-landcover")
    assert [(s.image.name, s.id) for s in samples] == [("100_sat.jpg", "100")]
    assert "1 DeepGlobe images without a mask: 200_sat.jpg" in caplog.text
    (labels,) = training_labels(samples, "deepglobe-landcover")
    urban, water, barren = (LAND_COVER_CLASSES.index(n) for n in ("urban", "water", "barren"))
    expected = np.full((32, 32), 255)  # unknown is ignored by default
    expected[:16, :16], expected[:16, 16:], expected[16:, :16] = urban, water, barren
    np.testing.assert_array_equal(labels, expected)


def test_unknown_can_be_kept_as_a_class(tmp_path):
    root = make_deepglobe_land_cover(tmp_path / "lc")
    samples = find_samples(root, "deepglobe-landcover", ignore_unknown=False)
    (labels,) = training_labels(samples, "deepglobe-landcover")
    assert (labels[16:, 16:] == LAND_COVER_CLASSES.index("unknown")).all()


def test_a_foreign_colour_names_the_file_and_the_first_pixel(tmp_path):
    root = make_deepglobe_land_cover(tmp_path / "lc", bad_pixels=((5, 7), (20, 3), (5, 9)))
    with pytest.raises(LabelError, match=r"100_mask\.png: pixel \(row 5, col 7\) has colour \(200, 30, 20\)"):
        find_samples(root, "deepglobe-landcover")


def test_mask_of_another_size_than_its_image_is_an_error(tmp_path):
    root = make_deepglobe_land_cover(tmp_path / "lc")
    Image.fromarray(land_cover_mask(16)).save(root / "train" / "100_mask.png")
    with pytest.raises(LabelError, match="is 16x16 pixels but its image is 32x32"):
        find_samples(root, "deepglobe-landcover")


def test_road_masks_become_zero_one_labels(tmp_path, caplog):
    root = make_deepglobe_roads(tmp_path / "roads")
    with caplog.at_level(logging.WARNING, logger="pspnet_geo.datasets"):
        samples = find_samples(root, "deepglobe-roads")
    assert [s.id for s in samples] == ["7"]
    assert "1 DeepGlobe masks without an image: 8_mask.png" in caplog.text
    (labels,) = training_labels(samples, "deepglobe-roads")
    expected = np.zeros((32, 32))
    expected[:, 10:14] = 1
    np.testing.assert_array_equal(labels, expected)


def test_folder_without_pairs_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(LabelError, match="no DeepGlobe road pairs"):
        find_samples(tmp_path / "empty", "deepglobe-roads")


def test_unknown_layout_lists_the_known_ones(tmp_path):
    with pytest.raises(InputError, match="unknown dataset layout 'spacenet9'; known layouts: spacenet-buildings"):
        find_samples(tmp_path, "spacenet9")


def test_missing_dataset_folder_is_an_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        find_samples(tmp_path / "nowhere", "deepglobe-roads")


def test_layouts_with_a_pipeline_name_its_classes_and_background():
    from pspnet_geo.datasets import LAYOUTS
    from pspnet_geo.config.pipelines import list_pipelines

    presets = {pipeline.name: pipeline for pipeline in list_pipelines()}
    shared = set(LAYOUTS) & set(presets)
    assert shared == {"spacenet-buildings", "spacenet-roads", "deepglobe-landcover", "deepglobe-roads"}
    for name in shared:
        assert LAYOUTS[name].classes == list(presets[name].class_names), name
        assert LAYOUTS[name].background == presets[name].background, name
