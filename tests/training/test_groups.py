"""Group-aware splits: validation never sees ground that training sees in another image of its group."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS

from pspnet_geo.errors import InputError
from pspnet_geo.scene import Scene
from pspnet_geo.training.groups import validation_groups
from pspnet_geo.training.sampling import plan_split

UTM = CRS.from_epsg(32616)
TRANSFORM = Affine(0.5, 0, 1000.0, 0, -0.5, 2000.0)


def _scene(width: int, height: int, transform: Affine = TRANSFORM, crs: CRS = UTM) -> Scene:
    return Scene("mem.tif", width, height, 1, "uint16", crs, transform, 0, (256, 256))


def _world(scene: Scene, rows: np.ndarray, cols: np.ndarray, size: int) -> np.ndarray:
    """World boxes (xmin, ymin, xmax, ymax) of ``size``-pixel squares at the given offsets."""
    x0, y0 = scene.transform @ (cols, rows)
    x1, y1 = scene.transform @ (cols + size, rows + size)
    return np.stack([np.minimum(x0, x1), np.minimum(y0, y1), np.maximum(x0, x1), np.maximum(y0, y1)], 1)


def _positions_world(scene, image) -> np.ndarray:
    return _world(scene, image.positions[:, 0], image.positions[:, 1], image.tile)


def _cells_world(scene, image) -> np.ndarray:
    cells = np.array(image.val_cells).reshape(-1, 2) * image.tile
    return _world(scene, cells[:, 0], cells[:, 1], image.tile)


def _overlapping(a: np.ndarray, b: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Which pairs of boxes share area: shape (len(a), len(b))."""
    a, b = a[:, None, :], b[None, :, :]
    return ((a[..., 0] < b[..., 2] - eps) & (b[..., 0] < a[..., 2] - eps)
            & (a[..., 1] < b[..., 3] - eps) & (b[..., 1] < a[..., 3] - eps))


def _inside(a: np.ndarray, b: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Which boxes of ``a`` lie wholly inside some box of ``b``."""
    a, b = a[:, None, :], b[None, :, :]
    inside = ((a[..., 0] > b[..., 0] - eps) & (a[..., 1] > b[..., 1] - eps)
              & (a[..., 2] < b[..., 2] + eps) & (a[..., 3] < b[..., 3] + eps))
    return inside.any(axis=1)


def test_several_groups_validate_on_whole_groups_only(caplog):
    names = [f"aoi{g}" for g in range(10) for _ in range(3)]
    scenes = [_scene(256, 192) for _ in names]
    with caplog.at_level(logging.INFO, logger="pspnet_geo"):
        split = plan_split(scenes, 64, 0.2, None, groups=names)
    assert split.held_out_validation and "2 of 10 groups" in caplog.text
    validated = {name for name, image in zip(names, split.images) if image.val_cells}
    assert len(validated) == 2
    for name, image in zip(names, split.images):
        if name in validated:
            assert len(image.val_cells) == 12 and len(image.positions) == 0
            assert image.training_cells(exclude_validation=True) == []
        else:
            assert image.val_cells == [] and len(image.positions) > 0


def test_the_validation_groups_do_not_depend_on_image_order():
    names = [f"aoi{g}" for g in range(7) for _ in range(2)]
    order = np.random.default_rng(1).permutation(len(names))
    first = plan_split([_scene(128, 128) for _ in names], 64, 0.3, None, groups=names)
    shuffled = [names[i] for i in order]
    second = plan_split([_scene(128, 128) for _ in names], 64, 0.3, None, groups=shuffled)
    assert ({n for n, im in zip(names, first.images) if im.val_cells}
            == {n for n, im in zip(shuffled, second.images) if im.val_cells})


def test_at_least_one_validation_group_and_never_all():
    assert len(validation_groups(["a", "b", "c"], 0.1)) == 1
    assert len(validation_groups(["a", "b"], 0.9)) == 1
    assert validation_groups(["a", "b", "c"], 0.0) == []
    assert validation_groups([f"g{i:02d}" for i in range(20)], 0.2) == ["g02", "g07", "g12", "g17"]


def test_one_group_of_co_registered_images_validates_on_the_same_ground():
    monthly = Affine(4.77731426716, 0, 16813770.9012, 0, -4.77731426716, -3217482.3117)  # SpaceNet 7
    scenes = [_scene(640, 512, monthly, CRS.from_epsg(3857)) for _ in range(2)]
    split = plan_split(scenes, 64, 0.2, None, groups=["L15-0331E-1257N", "L15-0331E-1257N"])
    first, second = split.images
    assert split.held_out_validation and len(first.val_cells) == 16
    assert second.val_cells == first.val_cells and len(second.positions) > 1000
    validation = _cells_world(scenes[0], first)
    for scene, image in zip(scenes, split.images):
        assert not _overlapping(_positions_world(scene, image), validation).any()


@pytest.mark.parametrize("pixel", [0.5, 0.25])
def test_one_group_on_shifted_grids_never_trains_on_validation_ground(pixel):
    shifted = Affine(pixel, 0, 1000.0 + 5.3, 0, -pixel, 2000.0 - 7.9)
    scenes = [_scene(640, 512), _scene(700, 560, shifted)]
    split = plan_split(scenes, 64, 0.2, None, groups=["aoi", "aoi"])
    first, second = split.images
    assert split.held_out_validation and len(second.positions) > 1000
    validation = _cells_world(scenes[0], first)
    assert not _overlapping(_positions_world(scenes[1], second), validation).any()
    assert _inside(_cells_world(scenes[1], second), validation).all()
    # a shifted grid of the same pixel size fits no whole cell in a validation cell; finer pixels do
    assert bool(second.val_cells) == (pixel == 0.25)
    stats = second.training_cells(exclude_validation=True)
    rows = np.array([w.row_off for w in stats])
    cols = np.array([w.col_off for w in stats])
    assert not _overlapping(_world(scenes[1], rows, cols, 64), validation).any()


def test_one_group_in_different_crss_is_an_error():
    scenes = [_scene(256, 256), _scene(256, 256, crs=CRS.from_epsg(32617))]
    with pytest.raises(InputError, match="different CRSs"):
        plan_split(scenes, 64, 0.2, None, groups=["aoi", "aoi"])


def test_one_group_name_per_image_is_required():
    with pytest.raises(InputError, match="3 group names for 2 images"):
        plan_split([_scene(256, 256), _scene(256, 256)], 64, 0.2, None, groups=["a", "b", "c"])


def test_every_image_its_own_group_is_the_plain_split():
    scenes = [_scene(300, 200), _scene(500, 400), _scene(640, 640)]
    plain = plan_split(scenes, 64, 0.2, (1010.0, 1900.0, 1100.0, 2000.0))
    grouped = plan_split(scenes, 64, 0.2, (1010.0, 1900.0, 1100.0, 2000.0), groups=["a", "b", "c"])
    for a, b in zip(plain.images, grouped.images):
        assert a.val_cells == b.val_cells and np.array_equal(a.positions, b.positions)
        assert a.holdout == b.holdout and a.reserved == b.reserved == []


def test_groups_without_a_usable_validation_group_fall_back_and_say_so(caplog):
    with caplog.at_level(logging.WARNING, logger="pspnet_geo"):
        split = plan_split([_scene(256, 256), _scene(256, 256), _scene(50, 50)], 64, 0.2, None,
                           groups=["a", "a", "b"])  # "b" is chosen for validation and has no whole cell
    assert not split.held_out_validation and "optimistic" in caplog.text
    assert all(len(image.positions) > 0 and image.reserved == [] for image in split.images[:2])


def test_one_group_with_one_whole_cell_falls_back():
    split = plan_split([_scene(100, 90), _scene(100, 90)], 64, 0.2, None, groups=["a", "a"])
    assert not split.held_out_validation
    assert all(image.val_cells == [(0, 0)] and len(image.positions) > 0 for image in split.images)
