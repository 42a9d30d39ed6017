"""The benchmarks' stand-ins keep the signature of what they replace, so the scripts still run."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

from pspnet_geo.segmentation import inference

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_the_stand_in_model_takes_every_argument_of_predict(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import polygon_scale

    try:
        expected = list(inspect.signature(inference.predict).parameters)
        assert list(inspect.signature(polygon_scale.stand_in_predict).parameters) == expected
    finally:
        sys.modules.pop("polygon_scale", None)
        sys.modules.pop("harness", None)
