"""Classes: their names, colours, and the user's own codes for them.

A class list comes as names, a comma-separated string or a small YAML file. The file may also
say which column of the vector labels holds the class, and which of the user's values (land-use
codes such as ``wheat`` or ``21``) mean each class, so labels need no recoding before training.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from pspnet_geo.config.schema import check_keys, typed
from pspnet_geo.errors import InputError, first_line

DEFAULT_CLASS_COLUMN = "class"
_PALETTE = [
    (0, 0, 0), (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
]
_INTEGER = re.compile(r"[+-]?\d+")
_CLASS_KEYS = ("colour", "color", "values")


@dataclass(frozen=True)
class ClassSpec:
    """Class names (index = class id), the colour each is drawn in, and the user's own codes.

    ``values`` maps label values (strings, or integers for ``21``, ``21.0`` and ``"21"`` alike)
    to class ids, for labels coded otherwise than by class name or id; ``column`` is the class
    column a class file names for vector labels.
    """

    names: list[str]
    colours: list[tuple[int, int, int]]
    values: dict[int | str, int] = field(default_factory=dict)
    column: str | None = None

    def describe(self) -> str:
        """``0=background, 1=building``: how messages list the known classes."""
        return ", ".join(f"{i}={name}" for i, name in enumerate(self.names))

    def describe_values(self, limit: int = 20) -> str:
        """``'wheat'=crop, 21=crop``: how messages list the configured values (up to ``limit``)."""
        pairs = [f"{value!r}={self.names[class_id]}" for value, class_id in self.values.items()]
        more = f", ... ({len(pairs)} in all)" if len(pairs) > limit else ""
        return ", ".join(pairs[:limit]) + more

    def class_of(self, value: object) -> int | None:
        """A label value's class id: a configured value's class, else the class of that name,
        else the class of that id; None when it is none of these."""
        key = _value_key(value)
        if key in self.values:
            return self.values[key]
        if isinstance(key, str):
            return self.names.index(key) if key in self.names else None
        return key if key is not None and 0 <= key < len(self.names) else None


def parse_classes(classes: str | os.PathLike | Sequence[str]) -> ClassSpec:
    """Classes from a list of names, a comma-separated string or a YAML file.

    The YAML file holds a list (or a mapping with a ``classes`` list and an optional class
    ``column``) whose items are names or ``{name: ..., colour: [r, g, b], values: [...]}``;
    ``values`` are the label values that mean the class. Classes without a colour get one from
    a fixed palette. Unknown keys are errors, so a typo is never silently ignored.
    """
    column, where = None, "classes"
    if isinstance(classes, (str, os.PathLike)) and Path(classes).suffix.lower() in {".yaml", ".yml"}:
        items, column = _read_class_file(Path(classes))
        where = f"class file {classes}"
    elif isinstance(classes, str):
        items = [name.strip() for name in classes.split(",")]
    else:
        items = list(classes)
    entries = [_class_entry(item, f"{where}, class {index}") for index, item in enumerate(items)]
    names = [str(entry["name"]).strip() for entry in entries]
    if len(names) < 2 or not all(names) or len(set(names)) != len(names):
        raise InputError(f"classes must be at least two distinct non-empty names, got {names}")
    colours = [_colour(entry.get("colour", entry.get("color")), i) for i, entry in enumerate(entries)]
    values = _value_map(names, [entry.get("values", []) for entry in entries], where)
    return ClassSpec(names, colours, values, column)


def _class_entry(item: object, where: str) -> dict:
    if not isinstance(item, dict):
        return {"name": item}
    check_keys(item, ("name",), _CLASS_KEYS, where)
    if "values" in item:
        typed(item["values"], list, f"{where}: values")
    return item


def _value_map(names: list[str], per_class: list[list], where: str) -> dict[int | str, int]:
    """Label value -> class id; a value listed under two classes is an error naming both."""
    mapping: dict[int | str, int] = {}
    for class_id, values in enumerate(per_class):
        for value in values:
            if isinstance(value, bool) or not isinstance(value, (int, str)):
                raise InputError(f"{where}: value {value!r} of class {names[class_id]!r} is "
                                 "neither a string nor an integer")
            key = _value_key(value)
            if mapping.setdefault(key, class_id) != class_id:
                raise InputError(f"{where}: value {value!r} is listed under both "
                                 f"{names[mapping[key]]!r} and {names[class_id]!r}")
    return mapping


def _value_key(value: object) -> int | str | None:
    """The form values are compared in, so ``21``, ``21.0`` and ``"21"`` are one value."""
    if isinstance(value, str):
        text = value.strip()
        return int(text) if _INTEGER.fullmatch(text) else text
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    return None


def raster_value_map(spec: ClassSpec) -> dict[int, int] | None:
    """The integer values of ``spec`` (raster value -> class id) for a label raster; None if none."""
    mapping = {value: class_id for value, class_id in spec.values.items() if isinstance(value, int)}
    return mapping or None


def _read_class_file(path: Path) -> tuple[list, str | None]:
    if not path.is_file():
        raise InputError(f"class file {path} does not exist")
    try:
        content = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise InputError(f"class file {path} is not valid YAML ({first_line(err)})") from None
    column = None
    if isinstance(content, dict):
        check_keys(content, ("classes",), ("column",), f"class file {path}")
        if content.get("column") is not None:
            column = typed(content["column"], str, f"class file {path}: column")
        content = content["classes"]
    if not isinstance(content, list):
        raise InputError(f"class file {path} has no list of classes")
    return content, column


def _colour(value: object, index: int) -> tuple[int, int, int]:
    if value is None:
        return _PALETTE[index % len(_PALETTE)]
    if isinstance(value, str) and value.startswith("#") and len(value) == 7:
        return tuple(int(value[i:i + 2], 16) for i in (1, 3, 5))
    if isinstance(value, (list, tuple)) and len(value) == 3 and all(
        isinstance(v, int) and 0 <= v <= 255 for v in value
    ):
        return tuple(value)
    raise InputError(f"class colour {value!r} is neither [r, g, b] (0-255) nor '#rrggbb'")


def parse_label_values(text: str | Mapping[int, int] | None) -> dict[int, int] | None:
    """``0=0,255=1`` (raster value = class id) as a mapping; None stays None."""
    if text is None or isinstance(text, Mapping):
        return None if text is None else {int(k): int(v) for k, v in text.items()}
    try:
        pairs = [part.split("=") for part in text.split(",") if part.strip()]
        mapping = {int(raw): int(class_id) for raw, class_id in pairs}
    except ValueError:
        raise InputError(f"label values must look like 0=0,255=1 (raster value=class id), not {text!r}") from None
    if not mapping:
        raise InputError("label values are empty; give pairs such as 0=0,255=1")
    return mapping


def class_column(spec: ClassSpec, given: str | None) -> str | None:
    """The class column of vector labels: the class file's, unless another was given."""
    return spec.column if spec.column and given == DEFAULT_CLASS_COLUMN else given


def label_value_map(spec: ClassSpec, given: str | Mapping[int, int] | None) -> dict[int, int] | None:
    """Label raster values to class ids: the class file's integer codes, overridden by ``given``."""
    merged = {**(raster_value_map(spec) or {}), **(parse_label_values(given) or {})}
    return merged or None
