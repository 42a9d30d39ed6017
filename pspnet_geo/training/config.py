"""``train --config FILE``: every setting of a training run in one YAML file.

The keys are the fields of :class:`~pspnet_geo.training.settings.TrainSettings`, plus
``images``, ``labels`` and ``out``, so the file and the settings cannot drift apart; an unknown key (a typo) or a
value of the wrong type is a one-line error naming the file, never silently ignored.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pspnet_geo.config.schema import check_keys, parse_yaml, typed
from pspnet_geo.errors import PipelineError
from pspnet_geo.training.settings import TrainSettings

_DATA_KEYS = ("images", "labels", "out")
_DEFAULTS = TrainSettings.defaults()


def load_train_config(path: str | os.PathLike) -> dict[str, Any]:
    """The settings in ``path``, checked against the training settings' names and types."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise PipelineError(f"cannot read training config {where}: {err}") from None
    data = parse_yaml(text, where)
    check_keys(data, (), _DATA_KEYS + TrainSettings.names(), where)
    return {key: _checked(key, value, where) for key, value in data.items()}


def _checked(key: str, value: Any, where: str) -> Any:
    """``value`` if it has the type of ``key``'s default (None is always allowed)."""
    default = _DEFAULTS.get(key)
    if value is None or default is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise PipelineError(f"{where}: {key} must be true or false, not {value!r}")
        return value
    kind = float if isinstance(default, float) else type(default)
    if kind in (int, float, str):
        return typed(value, kind, f"{where}: {key}")
    return value
