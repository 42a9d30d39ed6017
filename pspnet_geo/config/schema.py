"""Checking user-written YAML settings (pipeline presets and their clean-up steps).

Every check ends in a one-line PipelineError that says where the problem is, so a typo in a
preset is reported instead of silently ignored.
"""

from __future__ import annotations

from typing import Any

import yaml

from pspnet_geo.errors import PipelineError

_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", list: "a list",
               dict: "a mapping"}


def parse_yaml(text: str, where: str) -> dict:
    """The YAML document as a mapping; a syntax error becomes one line (with its position)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        position = f", line {mark.line + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "unreadable"
        raise PipelineError(f"{where}{position}: invalid YAML ({problem})") from None
    return typed(data, dict, where)


def check_keys(data: dict, required: tuple, optional: tuple, where: str) -> None:
    """Unknown keys (typos) and missing keys are errors, so no setting is silently ignored."""
    unknown = sorted(str(key) for key in data if key not in required + optional)
    if unknown:
        known = ", ".join(required + optional)
        raise PipelineError(f"{where}: unknown key {unknown[0]!r} (known keys: {known})")
    missing = [key for key in required if key not in data]
    if missing:
        raise PipelineError(f"{where}: missing key {missing[0]!r}")


def typed(value: Any, kind: type, what: str) -> Any:
    """``value`` if it is of ``kind`` (a YAML true/false is not a number; an int is a float)."""
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool):
        return value
    found = "null" if value is None else type(value).__name__
    raise PipelineError(f"{what} must be {_TYPE_NAMES[kind]}, not {found}")


def positive(value: Any, what: str) -> float:
    """A number above zero (a length in metres, an area in square metres)."""
    number = typed(value, float, what)
    if not number > 0:
        raise PipelineError(f"{what} must be above 0, not {value}")
    return number
