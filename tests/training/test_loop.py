"""The optimisation recipe: parameter groups, poly learning rate, and the mIoU score."""

from __future__ import annotations

import math

import pytest
import torch

from pspnet_geo.errors import InputError
from pspnet_geo.models import PSPNet
from pspnet_geo.training.loop import (
    LoopConfig,
    balanced_class_weights,
    build_optimizer,
    evaluate,
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


class _Predicts(torch.nn.Module):
    """A "model" whose logits are one-hot of fixed predictions."""

    def __init__(self, predicted: torch.Tensor, classes: int) -> None:
        super().__init__()
        self.logits = torch.nn.functional.one_hot(predicted, classes).permute(0, 3, 1, 2).float()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits


def _scores(predicted, target, classes=3):
    config = LoopConfig(1, 0.0, 255, 1, [str(i) for i in range(classes)], torch.device("cpu"))
    model = _Predicts(torch.tensor([[predicted]]), classes)
    return evaluate(model, [(torch.zeros(1, 1, 1, len(target)), torch.tensor([[target]]))], config)


def test_validation_scores_skip_ignored_pixels():
    scores = _scores([0, 1, 1, 1, 2, 0], [0, 0, 1, 1, 255, 2])
    assert scores.confusion.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert scores.iou.tolist() == pytest.approx([1 / 3, 2 / 3, 0.0])
    assert scores.miou == pytest.approx(1 / 3)


def test_classes_absent_from_truth_and_prediction_do_not_count():
    scores = _scores([0, 0, 1], [0, 0, 1])
    assert scores.iou[:2].tolist() == [1.0, 1.0] and math.isnan(scores.iou[2]) and scores.miou == 1.0


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
