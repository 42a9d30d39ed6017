"""The record of a training run: a JSON-lines metrics log as it goes, and a plot of its curves.

The log gets one line per validation (iteration, training loss, learning rate, validation
mIoU and per-class IoU, elapsed time) as soon as it is known, so a long run can be watched
and a killed one still leaves its curves. The plot is drawn with matplotlib's file-only Agg
backend, so no display is needed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from pspnet_geo.errors import OutputError
from pspnet_geo.outputs import atomic_output, check_output_path


class MetricsLog:
    """A JSON-lines file that gains one line per validation record."""

    def __init__(self, path: str | os.PathLike, overwrite: bool, append: bool = False) -> None:
        """A new log, started by the first record (so a run that fails before its first
        validation leaves none behind), or (``append``, for a resumed run) the old one going on."""
        self.path = check_output_path(path, overwrite or append)
        self._started = append

    def __call__(self, record: dict) -> None:
        with self.path.open("a" if self._started else "w") as log_file:
            log_file.write(json.dumps(record) + "\n")
        self._started = True


def check_plot_path(path: str | os.PathLike, overwrite: bool) -> Path:
    """Fail before training if the plot could not be written."""
    if Path(path).suffix.lower() not in (".png", ".svg", ".pdf"):
        raise OutputError(f"{path}: the plot is written as .png, .svg or .pdf")
    return check_output_path(path, overwrite)


def plot_curves(history: Sequence[dict], path: str | os.PathLike, overwrite: bool) -> Path:
    """Training loss and validation IoUs against the iteration, in one figure."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot

    path = check_plot_path(path, overwrite)
    iterations = [record["iteration"] for record in history]
    figure, (loss_axes, iou_axes) = pyplot.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    loss_axes.plot(iterations, [_number(r["loss"]) for r in history], marker="o")
    loss_axes.set(xlabel="iteration", ylabel="training loss", title="loss (mean since last validation)")
    iou_axes.plot(iterations, [_number(r["val_miou"]) for r in history], marker="o", lw=2, label="mIoU")
    for name in history[0]["val_iou"] if history else []:
        iou_axes.plot(iterations, [_number(r["val_iou"][name]) for r in history], ls="--", label=name)
    iou_axes.set(xlabel="iteration", ylabel="validation IoU", ylim=(0, 1), title="validation")
    iou_axes.legend(loc="lower right", fontsize="small")
    with atomic_output(path, overwrite) as temporary:
        figure.savefig(temporary, format=path.suffix.lower().lstrip("."), dpi=100)
    pyplot.close(figure)
    return path


def _number(value: float | None) -> float:
    return float("nan") if value is None else value
