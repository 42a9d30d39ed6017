"""Fixtures shared by the whole suite: the bundled sample data and small real checkpoints.

Plain helpers and constants live in ``helpers.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import ATLANTA, LANDSAT, SAMPLE_DATA, make_checkpoint


@pytest.fixture(scope="session")
def sample_data() -> Path:
    return SAMPLE_DATA


@pytest.fixture(scope="session")
def atlanta_model(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("models") / "atlanta.pt", ATLANTA)


@pytest.fixture(scope="session")
def landsat_model(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("models") / "landsat.pt", LANDSAT, num_classes=3)
