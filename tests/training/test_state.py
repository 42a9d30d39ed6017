"""A training run's saved state: read back as data only, so a planted file cannot run code."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pspnet_geo.errors import CheckpointError
from pspnet_geo.training.loop import Progress
from pspnet_geo.training.state import RunState


class _Plant:
    """Unpickling this would create ``marker``: what a planted state file would try."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def run_state(path: Path) -> RunState:
    model = torch.nn.Linear(2, 2)
    return RunState(path, model, torch.optim.SGD(model.parameters(), lr=0.1), {"iterations": 4})


def test_a_saved_state_comes_back(tmp_path):
    state = run_state(tmp_path / "m.state.pt")
    state.save(Progress())
    assert isinstance(run_state(tmp_path / "m.state.pt").restore(), Progress)


def test_a_planted_state_file_cannot_run_code(tmp_path):
    path, marker = tmp_path / "m.state.pt", tmp_path / "ran"
    torch.save({"settings": _Plant(marker)}, path)
    with pytest.raises(CheckpointError, match="could run code"):
        run_state(path).restore()
    assert not marker.exists()


def test_a_damaged_state_file_is_one_line(tmp_path):
    path = tmp_path / "m.state.pt"
    run_state(path).save(Progress())
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="cannot read training state") as raised:
        run_state(path).restore()
    assert "\n" not in str(raised.value)
