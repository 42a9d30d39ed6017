"""Resuming a training run exactly where its last validation left it.

After every validation the run's state (weights, optimizer and its learning rates, the random
generators, and the progress: iteration, history, best score) is written beside the checkpoint as ``NAME.state.pt``, atomically. A run
started again with ``resume`` loads it and goes on; given the same settings it ends with the
same weights as a run that was never interrupted (training batches are numbered, and batch ``k``
depends only on the seed and ``k``, so the resumed run makes the batches it would have). A state from other settings is refused,
naming what differs, so two different runs are never spliced together.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path

import torch

from pspnet_geo.errors import CheckpointError, InputError, first_line
from pspnet_geo.outputs import atomic_output
from pspnet_geo.training.loop import Progress

log = logging.getLogger(__name__)


def state_path(out: str | Path) -> Path:
    """Where the run writing checkpoint ``out`` keeps its state."""
    return Path(out).with_suffix(".state.pt")


class RunState:
    """Saves and restores one run's state, for a model and its optimizer."""

    def __init__(self, path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 settings: dict) -> None:
        self.path, self.model, self.optimizer = path, model, optimizer
        self.settings = settings

    def save(self, progress: Progress) -> None:
        """Write the state reached at ``progress`` (called after each validation)."""
        state = {
            "settings": self.settings, "progress": vars(progress), "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }
        with atomic_output(self.path, overwrite=True) as temporary:
            torch.save(state, temporary)

    def restore(self) -> Progress:
        """Load the saved state into the model, optimizer and generators; the progress."""
        state = self._load()
        differing = sorted(key for key in set(state["settings"]) | set(self.settings)
                           if state["settings"].get(key) != self.settings.get(key))
        if differing:
            raise InputError(f"cannot resume from {self.path}: it was made with other settings "
                             f"({', '.join(differing)}); start over without resume")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        progress = Progress(**state["progress"])
        log.info("resuming %s at iteration %d", self.path, progress.iteration)
        return progress

    def _load(self) -> dict:
        if not self.path.is_file():
            raise InputError(f"cannot resume: {self.path} does not exist (no validation was reached)")
        try:
            return torch.load(self.path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            if "Unsupported global" in str(err):    # torch refused an object other than tensors and plain values
                raise CheckpointError(f"refusing training state {self.path}: it holds objects other than "
                                      "tensors and plain values, and loading them could run code") from None
            raise CheckpointError(f"cannot read training state {self.path}: {first_line(err)}") from None
        except Exception as err:  # a truncated or foreign file: the user's to fix, one line
            raise CheckpointError(f"cannot read training state {self.path}: {first_line(err)}") from None
