"""The optimisation recipe: parameter groups, poly learning rate, and the mIoU score."""

from __future__ import annotations

import math

import pytest
import torch

from pspnet_geo.errors import InputError
from pspnet_geo.models import PSPNet
from pspnet_geo.training.loop import (
    balanced_class_weights,
    build_optimizer,
    confusion_matrix,
    iou_per_class,
    mean_iou,
    poly_scheduler,
)


@pytest.fixture(scope="module")
def model() -> PSPNet:
    torch.manual_seed(0)
    return PSPNet(3, in_channels=1, backbone="resnet18", backbone_weights=None)


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_heads_learn_ten_times_faster_than_the_backbone(model, name):
    optimizer = build_optimizer(model, name, 0.02)
    backbone, heads = optimizer.param_groups
    assert {id(p) for p in backbone["params"]} == {id(p) for p in model.backbone.parameters()}
    head_ids = {id(p) for p in model.head.parameters()} | {id(p) for p in model.aux_head.parameters()}
    assert {id(p) for p in heads["params"]} == head_ids
    assert backbone["lr"] == pytest.approx(0.02) and heads["lr"] == pytest.approx(0.2)


def test_sgd_uses_the_paper_momentum_and_weight_decay(model):
    group = build_optimizer(model, "sgd", 0.01).param_groups[0]
    assert group["momentum"] == 0.9 and group["weight_decay"] == 1e-4


def test_an_unknown_optimizer_is_an_input_error(model):
    with pytest.raises(InputError, match="sgd or adamw"):
        build_optimizer(model, "adam", 0.01)


def test_poly_decay_per_iteration(model):
    optimizer = build_optimizer(model, "sgd", 0.01)
    scheduler = poly_scheduler(optimizer, 20)
    for it in range(20):
        expected = 0.01 * (1 - it / 20) ** 0.9
        assert optimizer.param_groups[0]["lr"] == pytest.approx(expected)
        assert optimizer.param_groups[1]["lr"] == pytest.approx(10 * expected)
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == 0


def test_confusion_matrix_skips_ignored_pixels():
    target = torch.tensor([[0, 0, 1, 1, 255, 2]])
    pred = torch.tensor([[0, 1, 1, 1, 2, 0]])
    confusion = confusion_matrix(pred, target, 3, 255)
    assert confusion.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    ious = iou_per_class(confusion)
    assert ious == pytest.approx([1 / 3, 2 / 3, 0.0])
    assert mean_iou(ious) == pytest.approx(1 / 3)


def test_classes_absent_from_truth_and_prediction_do_not_count():
    confusion = confusion_matrix(torch.tensor([0, 0, 1]), torch.tensor([0, 0, 1]), 3, 255)
    ious = iou_per_class(confusion)
    assert ious[:2] == [1.0, 1.0] and math.isnan(ious[2]) and mean_iou(ious) == 1.0


def test_balanced_class_weights_favour_rare_classes_by_inverse_sqrt_frequency():
    weights = balanced_class_weights([900, 100, 0])
    assert weights[2] == 0
    assert weights[1] / weights[0] == pytest.approx(3.0)
    assert weights[:2].mean() == pytest.approx(1.0)


def test_the_progress_bar_counts_epochs_with_loss_learning_rate_and_score(monkeypatch, capsys):
    from pspnet_geo.training import loop

    monkeypatch.setattr(loop, "_show_progress", lambda: True)
    torch.manual_seed(0)
    net = PSPNet(2, in_channels=1, backbone="resnet18", output_stride=16, backbone_weights=None)
    batch = (torch.randn(2, 1, 32, 32), torch.randint(0, 2, (2, 32, 32)))
    config = loop.LoopConfig(4, 0.4, 255, 2, ["background", "building"], torch.device("cpu"))
    history = loop.run(net, build_optimizer(net, "sgd", 0.01), lambda: batch, lambda: [batch],
                       lambda record: None, config)
    shown = capsys.readouterr().err
    assert [h["iteration"] for h in history] == [2, 4]
    assert "epoch 1/2" in shown and "epoch 2/2" in shown
    assert "lr=" in shown and "loss=" in shown and f"val_miou={history[0]['val_miou']:.3f}" in shown
