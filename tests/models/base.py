"""The checks every segmentation model of pspnet-geo must pass, shared by the model tests.

A test module subclasses :class:`ModelTester` as ``TestSomething``, implements
:meth:`ModelTester.make_model` and overrides the class attributes it needs to; every test
below then runs against that model. Inputs are small so the whole set stays fast.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn


class ModelTester:
    """Shared behaviour tests: shapes, band counts, train/eval outputs, BatchNorm in eval."""

    num_classes = 3
    in_channels = 3
    band_counts: tuple[int, ...] = (1, 3, 4, 8)
    odd_sizes: tuple[tuple[int, int], ...] = ((65, 67), (97, 33))
    size: tuple[int, int] = (33, 35)
    has_aux = True

    def make_model(self, **overrides) -> nn.Module:
        """A fresh model with random weights; ``overrides`` replace constructor arguments."""
        raise NotImplementedError

    def sample(
        self, batch: int = 2, bands: int | None = None, size: tuple[int, int] | None = None
    ) -> torch.Tensor:
        """A reproducible random input batch."""
        height, width = size or self.size
        generator = torch.Generator().manual_seed(0)
        return torch.randn(batch, bands or self.in_channels, height, width, generator=generator)

    @torch.no_grad()
    def test_eval_output_has_input_size(self) -> None:
        model = self.make_model().eval()
        for size in self.odd_sizes:
            logits = model(self.sample(size=size))
            assert logits.shape == (2, self.num_classes, *size)

    @torch.no_grad()
    def test_any_band_count(self) -> None:
        for bands in self.band_counts:
            model = self.make_model(in_channels=bands).eval()
            logits = model(self.sample(batch=1, bands=bands))
            assert logits.shape == (1, self.num_classes, *self.size)
            assert torch.isfinite(logits).all()

    @torch.no_grad()
    def test_eval_returns_one_tensor(self) -> None:
        assert isinstance(self.make_model().eval()(self.sample()), torch.Tensor)

    def test_train_returns_main_and_aux(self) -> None:
        if not self.has_aux:
            pytest.skip("model has no auxiliary head")
        outputs = self.make_model().train()(self.sample())
        assert isinstance(outputs, tuple) and len(outputs) == 2
        main, aux = outputs
        assert main.shape == aux.shape == (2, self.num_classes, *self.size)

    def test_train_without_aux_returns_one_tensor(self) -> None:
        logits = self.make_model(aux=False).train()(self.sample())
        assert isinstance(logits, torch.Tensor)
        assert logits.shape == (2, self.num_classes, *self.size)

    def test_every_parameter_gets_a_gradient(self) -> None:
        model = self.make_model().train()
        outputs = model(self.sample())
        outputs = outputs if isinstance(outputs, tuple) else (outputs,)
        sum(o.mean() for o in outputs).backward()
        unused = [name for name, p in model.named_parameters() if p.grad is None]
        assert not unused

    @torch.no_grad()
    def test_eval_batchnorm_is_per_sample(self) -> None:
        """A tile's logits must not depend on the other tiles of its batch (no seams)."""
        model = self.make_model().eval()
        batch = self.sample(batch=4)
        together = model(batch)
        alone = model(batch[2:3])
        torch.testing.assert_close(alone, together[2:3], rtol=0, atol=1e-5)

    @torch.no_grad()
    def test_training_steps_change_batchnorm_statistics_only_in_train_mode(self) -> None:
        model = self.make_model()
        before = {k: v.clone() for k, v in model.state_dict().items()}
        model.eval()(self.sample())
        assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
        model.train()(self.sample())
        assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
