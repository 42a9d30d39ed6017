"""The ``postprocess`` section of a pipeline preset, checked into typed settings.

```yaml
postprocess:
  sieve_m2: 1.0                      # raster: regions under 1 m² join their largest neighbour
  classes:
    building: {fill_holes_m2: 4, split_bridges_m: 1.2, remove_specks_m2: 8, regularize_m: 0.6}
    road:
      remove_specks_m2: 20
      simplify_m: 0.5
      centerlines: {max_width_m: 30, spur_length_m: 8, smooth_m: 1.0}
  coverage: {classes: [field, forest], simplify_m: 2.0, sliver_area_m2: 100}
```

Geometry steps run in a fixed order (holes, bridges, specks, regularisation, simplification)
whatever the order written, because each needs the one before: bridges split only filled
footprints, specks are judged after splitting, and regularisation works on clean outlines.
Classes in ``coverage`` tile the ground together: they take no per-class geometry step (filling
a hole or dropping a speck would open a gap or an overlap with the neighbouring class).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pspnet_geo.config.schema import check_keys, positive, typed
from pspnet_geo.errors import PipelineError

GEOMETRY_STEPS = ("fill_holes_m2", "split_bridges_m", "remove_specks_m2", "regularize_m",
                  "simplify_m")
_CENTERLINE_KEYS = ("max_width_m", "spur_length_m", "smooth_m")
_COVERAGE_KEYS = ("classes", "simplify_m", "sliver_area_m2")


@dataclass(frozen=True)
class CenterlineSettings:
    """Road centerlines: the widest road expected, the shortest branch kept, smoothing."""

    max_width_m: float
    spur_length_m: float
    smooth_m: float


@dataclass(frozen=True)
class ClassSteps:
    """The geometry steps of one class, in the order they run, and its centerlines if any."""

    steps: tuple[tuple[str, float], ...] = ()
    centerlines: CenterlineSettings | None = None


@dataclass(frozen=True)
class CoverageSettings:
    """Classes that share edges (land cover): simplified together, slivers merged away."""

    classes: tuple[int, ...]
    simplify_m: float
    sliver_area_m2: float


@dataclass(frozen=True)
class PostprocessConfig:
    """Every clean-up setting of a preset; the empty config changes nothing."""

    sieve_m2: float | None = None
    classes: dict[int, ClassSteps] = field(default_factory=dict)
    coverage: CoverageSettings | None = None

    @property
    def is_empty(self) -> bool:
        return self.sieve_m2 is None and not self.classes and self.coverage is None

    @property
    def has_centerlines(self) -> bool:
        """Whether some class is drawn as centerlines too (a layer of its own)."""
        return any(steps.centerlines for steps in self.classes.values())

    def describe(self, class_names: Sequence[str]) -> str:
        """One line for ``pspnet-geo pipelines``."""
        parts = [] if self.sieve_m2 is None else [f"sieve {self.sieve_m2:g} m²"]
        for class_id, steps in sorted(self.classes.items()):
            named = [f"{step} {value:g}" for step, value in steps.steps]
            named += ["centerlines"] if steps.centerlines else []
            parts.append(f"{class_names[class_id]}: {', '.join(named)}")
        if self.coverage is not None:
            shared = ", ".join(class_names[i] for i in self.coverage.classes)
            parts.append(f"coverage of {shared} (simplify {self.coverage.simplify_m:g} m, "
                         f"slivers < {self.coverage.sliver_area_m2:g} m²)")
        return "; ".join(parts) or "none"


def parse_postprocess(value: Any, class_names: Sequence[str], where: str) -> PostprocessConfig:
    """Check a preset's ``postprocess`` mapping against its classes."""
    what = f"{where}: postprocess"
    data = typed(value, dict, what)
    check_keys(data, (), ("sieve_m2", "classes", "coverage"), what)
    sieve = data.get("sieve_m2")
    coverage = _coverage(data.get("coverage"), class_names, f"{what}.coverage")
    classes = {
        _class_id(name, class_names, f"{what}.classes"): _class_steps(entry, f"{what}.classes.{name}")
        for name, entry in typed(data.get("classes", {}), dict, f"{what}.classes").items()
    }
    shared = set(classes) & set(coverage.classes if coverage else ())
    clashing = [class_names[i] for i in sorted(shared) if classes[i].steps]
    if clashing:
        raise PipelineError(f"{what}: class {clashing[0]!r} is in coverage, so it takes no "
                            "per-class geometry steps (they would open gaps between classes)")
    return PostprocessConfig(
        sieve_m2=None if sieve is None else positive(sieve, f"{what}.sieve_m2"),
        classes=classes, coverage=coverage,
    )


def _class_id(name: Any, class_names: Sequence[str], what: str) -> int:
    if name not in class_names:
        raise PipelineError(f"{what}: {name!r} is not a class (classes: {', '.join(class_names)})")
    return list(class_names).index(name)


def _class_steps(value: Any, what: str) -> ClassSteps:
    data = typed(value, dict, what)
    check_keys(data, (), GEOMETRY_STEPS + ("centerlines",), what)
    steps = tuple((step, positive(data[step], f"{what}.{step}")) for step in GEOMETRY_STEPS
                  if step in data)
    lines = data.get("centerlines")
    if lines is not None:
        check_keys(typed(lines, dict, f"{what}.centerlines"), _CENTERLINE_KEYS, (),
                   f"{what}.centerlines")
        lines = CenterlineSettings(*(positive(lines[key], f"{what}.centerlines.{key}")
                                     for key in _CENTERLINE_KEYS))
    return ClassSteps(steps, lines)


def _coverage(value: Any, class_names: Sequence[str], what: str) -> CoverageSettings | None:
    if value is None:
        return None
    data = typed(value, dict, what)
    check_keys(data, _COVERAGE_KEYS, (), what)
    names = typed(data["classes"], list, f"{what}.classes")
    if not names:
        raise PipelineError(f"{what}.classes must name at least one class")
    return CoverageSettings(
        classes=tuple(sorted({_class_id(name, class_names, f"{what}.classes") for name in names})),
        simplify_m=positive(data["simplify_m"], f"{what}.simplify_m"),
        sliver_area_m2=positive(data["sliver_area_m2"], f"{what}.sliver_area_m2"),
    )
