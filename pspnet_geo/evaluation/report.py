"""Evaluation results as a plain-text table for the terminal and as a JSON-able dict.

A report is a list of sections (pixel metrics here; object and road metrics join the list as
their own sections), each able to draw its table and give its numbers as a dict.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pspnet_geo.evaluation.pixels import PixelMetrics


class Section(Protocol):
    """One part of a report: ``key`` names it in the JSON, ``title`` on the terminal."""

    key: str
    title: str

    def table(self) -> str:
        """Aligned plain-text lines."""

    def as_dict(self) -> dict:
        """The numbers, JSON-able (NaN as None)."""


@dataclass(frozen=True)
class PixelSection:
    """Pixel metrics of a whole evaluation, and of each chip when scored chip by chip."""

    class_names: Sequence[str]
    total: PixelMetrics
    unpredicted: int
    tiles: Sequence[tuple[str, PixelMetrics]] = field(default_factory=list)
    key: str = "pixels"
    title: str = "Pixel metrics"

    def table(self) -> str:
        counted = (f"{self.total.pixels} pixels scored, {self.unpredicted} labelled pixels "
                   "with no prediction (nodata)")
        present = int(((self.total.support + self.total.confusion.sum(axis=0)) > 0).sum())
        summary = (f"mIoU {_number(self.total.miou)} over {present} classes present   "
                   f"pixel accuracy {_number(self.total.pixel_accuracy)}")
        parts = [f"{self.title} ({counted})", self._class_table(), summary]
        if self.tiles:
            parts.insert(1, self._tile_table() + "\n")
        return "\n".join(parts)

    def as_dict(self) -> dict:
        result = {**metrics_dict(self.total, self.class_names), "unpredicted_pixels": self.unpredicted}
        if self.tiles:
            result["tiles"] = {name: metrics_dict(m, self.class_names) for name, m in self.tiles}
        return result

    def _class_table(self) -> str:
        m = self.total
        rows = [[name, _number(m.iou[i]), _number(m.precision[i]), _number(m.recall[i]),
                 _number(m.f1[i]), str(int(m.support[i]))] for i, name in enumerate(self.class_names)]
        return format_table(["class", "IoU", "precision", "recall", "F1", "support"], rows)

    def _tile_table(self) -> str:
        header = ["tile", "pixels", "accuracy", "mIoU", *(f"IoU {n}" for n in self.class_names)]
        rows = [_tile_row(name, m) for name, m in self.tiles]
        return format_table(header, [*rows, _tile_row("total", self.total)])


def _tile_row(name: str, m: PixelMetrics) -> list[str]:
    return [name, str(m.pixels), _number(m.pixel_accuracy), _number(m.miou), *map(_number, m.iou)]


def metrics_dict(metrics: PixelMetrics, class_names: Sequence[str]) -> dict:
    """The numbers of ``metrics``, per class by name; undefined scores are None."""
    per_class = {
        name: {"iou": _json(metrics.iou[i]), "precision": _json(metrics.precision[i]),
               "recall": _json(metrics.recall[i]), "f1": _json(metrics.f1[i]),
               "support": int(metrics.support[i])}
        for i, name in enumerate(class_names)
    }
    return {"pixels": metrics.pixels, "pixel_accuracy": _json(metrics.pixel_accuracy),
            "miou": _json(metrics.miou), "classes": per_class,
            "confusion_matrix": metrics.confusion.tolist()}


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell: the first left-aligned, the rest right-aligned."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first, *rest = cells
        return "  ".join([first.ljust(widths[0]), *(c.rjust(w) for c, w in zip(rest, widths[1:]))])

    return "\n".join([line(header), *(line(row) for row in rows)])


def render(sections: Sequence[Section]) -> str:
    """Every section's table, separated by a blank line."""
    return "\n\n".join(section.table() for section in sections)


def report_dict(sections: Sequence[Section]) -> dict:
    """Every section's numbers under its key."""
    return {section.key: section.as_dict() for section in sections}


def _number(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4f}"


def _json(value: float) -> float | None:
    return None if math.isnan(value) else float(value)
