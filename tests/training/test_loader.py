"""Loader workers: the same batches in any number of processes, and a clean start after a fork."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import pytest
import torch
from rasterio.windows import Window

import pspnet_geo
from pspnet_geo import scene as scene_module
from pspnet_geo.checkpoint import Checkpoint
from pspnet_geo.errors import InputError, RunError
from pspnet_geo.labels.classes import parse_classes
from pspnet_geo.training import TrainSettings, train
from pspnet_geo.training.augment import augmentation, training_transform
from pspnet_geo.training.batches import TrainingBatches, WindowChoice
from pspnet_geo.training.data import TrainingData
from pspnet_geo.training.loader import batch_stream, default_loader_workers
from pspnet_geo.training.sampling import plan_split

ATLANTA = Path(pspnet_geo.__file__).parent / "sample_data" / "spacenet_atlanta_buildings"


def _batches() -> TrainingBatches:
    data = TrainingData.open(ATLANTA / "image.tif", ATLANTA / "buildings.geojson",
                             parse_classes("background,building"), None, "background", 0, None, 255)
    split = plan_split(data.scenes, 64, 0.2, None)
    transform = training_transform(augmentation("full"), [100.0], [50.0], data.value_range(), 255)
    return TrainingBatches(data, split, WindowChoice.build("rare-classes", 0.5).for_classes([900, 100]),
                           transform, 4, seed=7)


def _take(batches: TrainingBatches, start: int, workers: int, count: int) -> list:
    with batch_stream(batches, start, workers) as next_batch:
        return [next_batch() for _ in range(count)]


def test_workers_make_the_batches_the_training_process_would_in_order():
    batches = _batches()
    alone = _take(batches, 3, 0, 5)
    for workers in (1, 2):
        made = _take(batches, 3, workers, 5)
        for (image, labels), (expected_image, expected_labels) in zip(made, alone):
            assert torch.equal(image, expected_image) and torch.equal(labels, expected_labels)
    assert not torch.equal(alone[0][0], alone[1][0])


def test_making_a_batch_leaves_torch_s_global_generator_alone():
    batches = _batches()
    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)
    batches.batch(0)
    assert torch.equal(torch.rand(3), expected)


def test_training_with_two_workers_ends_with_the_weights_of_training_without(tmp_path):
    options = dict(classes="background,building", class_column=None, tile_size=64, batch_size=2,
                   iterations=2, backbone_weights=None, device="cpu")
    weights = []
    for workers in (0, 2):
        out = tmp_path / f"model{workers}.pt"
        train(ATLANTA / "image.tif", ATLANTA / "buildings.geojson", out, loader_workers=workers, **options)
        weights.append(Checkpoint.load(out).state_dict)
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])


@pytest.mark.parametrize("cpus, workers", [(1, 0), (2, 1), (4, 3), (16, 4)])
def test_the_default_leaves_a_cpu_to_the_training_loop_and_negative_counts_are_refused(monkeypatch, cpus, workers):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(cpus)))
    assert default_loader_workers() == workers
    with pytest.raises(InputError, match="loader_workers must be 0 or more"):
        TrainSettings(classes="a,b", loader_workers=-1)


def _open_count(queue) -> None:
    queue.put(len(scene_module._OPEN.datasets))


def test_a_forked_process_opens_its_own_datasets():
    opened = scene_module.open_scene(ATLANTA / "image.tif")
    scene_module.read_window(opened, Window(0, 0, 8, 8), [1])
    assert len(scene_module._OPEN.datasets) >= 1
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_open_count, args=(queue,))
    child.start()
    child.join(30)
    assert queue.get(timeout=5) == 0 and child.exitcode == 0
    assert np.isfinite(scene_module.read_window(opened, Window(0, 0, 8, 8), [1])[0]).all()


class _Failing:
    """Stands for TrainingBatches: batch 2 fails as user data can make it fail."""

    seed = 0

    def batch(self, number: int):
        if number == 2:
            raise RunError("reading scene.tif failed at rows 0-64")
        return torch.zeros(1), torch.zeros(1)


def test_a_worker_s_error_reaches_the_trainer_as_our_own_one_line_error():
    with batch_stream(_Failing(), 0, 2) as next_batch:
        next_batch(), next_batch()
        with pytest.raises(RunError) as raised:
            next_batch()
    assert str(raised.value) == "reading scene.tif failed at rows 0-64"


def _default_in_a_daemon(queue) -> None:
    queue.put(default_loader_workers())


def test_a_daemonic_process_defaults_to_no_workers():
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_default_in_a_daemon, args=(queue,), daemon=True)
    child.start()
    child.join(30)
    assert queue.get(timeout=5) == 0
