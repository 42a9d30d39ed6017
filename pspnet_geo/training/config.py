"""``train --config FILE``: every setting of a training run in one YAML file.

The keys are the parameters of :func:`pspnet_geo.training.train` (``images`` and ``labels``
included), so the file and the function cannot drift apart; an unknown key (a typo) or a
value of the wrong type is a one-line error naming the file, never silently ignored.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

from pspnet_geo.errors import PipelineError
from pspnet_geo.config.schema import check_keys, parse_yaml, typed
from pspnet_geo.training.api import train

_PARAMETERS = inspect.signature(train).parameters


def load_train_config(path: str | os.PathLike) -> dict[str, Any]:
    """The settings in ``path``, checked against ``train``'s parameters."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise PipelineError(f"cannot read training config {where}: {err}") from None
    data = parse_yaml(text, where)
    check_keys(data, (), tuple(_PARAMETERS), where)
    return {key: _checked(key, value, where) for key, value in data.items()}


def _checked(key: str, value: Any, where: str) -> Any:
    """``value`` if it has the type of ``key``'s default (None is always allowed)."""
    default = _PARAMETERS[key].default
    if value is None or default is inspect.Parameter.empty or default is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise PipelineError(f"{where}: {key} must be true or false, not {value!r}")
        return value
    kind = float if isinstance(default, float) else type(default)
    if kind in (int, float, str):
        return typed(value, kind, f"{where}: {key}")
    return value
