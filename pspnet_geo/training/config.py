"""``train --config FILE``: every setting of a training run in one YAML file.

The keys are the fields of :class:`~pspnet_geo.training.settings.TrainSettings`, plus
``images``, ``labels`` and ``out``, so the file and the settings cannot drift apart; an unknown key (a typo) or a
value of the wrong type is a one-line error naming the file, never silently ignored.
"""

from __future__ import annotations

import math
import os
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pspnet_geo.config.schema import check_keys, parse_yaml
from pspnet_geo.errors import PipelineError
from pspnet_geo.training.settings import TrainSettings

_DATA_KEYS = ("images", "labels", "out")


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
    """``value`` if it has the type the setting ``key`` is declared with (None is always
    allowed: it means the default)."""
    hint = _DATA_HINTS.get(key) or _HINTS[key]
    if _plain(hint) is float and isinstance(value, str):
        value = _number_text(value)          # YAML 1.1 reads 1e-4 (no dot) as a string
    if not _matches(value, hint):
        shown = "null" if value is None else repr(value)
        raise PipelineError(f"{where}: {key} must be {_describe(hint)}, not {shown}")
    if value is None:
        return value
    if key == "holdout_bounds" and len(value) != 4:
        raise PipelineError(f"{where}: holdout_bounds must be four numbers (left, bottom, right, top), "
                            f"not {len(value)}")
    return float(value) if _plain(hint) is float else value


_HINTS = typing.get_type_hints(TrainSettings)
# Keys whose values are checked further where they are used: images, labels and out are not
# settings; classes may be written out in full (names with colours and values, see
# labels.classes.parse_classes), and label_values keys may be quoted.
_DATA_HINTS = {"images": str | Sequence[str], "labels": str | Sequence[str], "out": str,
               "classes": str | Sequence[str | dict] | None, "label_values": str | dict | None}


def _number_text(text: str) -> float | str:
    """``text`` as a number when it is one (``1e-4``), else unchanged."""
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def _plain(hint: Any) -> Any:
    """``hint`` without None (``float | None`` -> ``float``)."""
    args = [arg for arg in typing.get_args(hint) if arg is not type(None)]
    return args[0] if _is_union(hint) and len(args) == 1 else hint


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _matches(value: Any, hint: Any) -> bool:
    """Whether a YAML value fits a settings type (bool is not a number; an int is a float)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if _is_union(hint):
        return any(_matches(value, arg) for arg in args)
    if origin in (list, tuple, Sequence):
        return isinstance(value, list) and all(_matches(item, args[0]) for item in value)
    if origin is dict:
        return isinstance(value, dict) and all(_matches(k, args[0]) and _matches(v, args[1]) for k, v in value.items())
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(hint, type) and hint is not os.PathLike and isinstance(value, hint)


_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false", type(None): "null",
          dict: "a mapping", list: "a list"}


def _describe(hint: Any) -> str:
    """A reader's name for a settings type: "a list of integers", "a string or a list of strings"."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if _is_union(hint):
        names = [_describe(arg) for arg in args if arg not in (type(None), os.PathLike)]
        return " or ".join(dict.fromkeys(names))
    if origin in (list, tuple, Sequence):
        return f"a list of {_describe(args[0]).split(' ', 1)[-1]}s"
    if origin is dict:
        return f"a mapping of {_describe(args[0]).split(' ', 1)[-1]}s to {_describe(args[1]).split(' ', 1)[-1]}s"
    return _NAMES.get(hint, getattr(hint, "__name__", str(hint)))
