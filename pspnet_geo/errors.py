"""The exceptions pspnet-geo raises for problems a user can cause.

Everything a user can get wrong (a missing file, a raster the model cannot read, an output
that already exists) is a :class:`PspnetGeoError` with a one-line message; the CLI turns it
into that line and an exit code. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class PspnetGeoError(Exception):
    """Base class of every error a user can cause. ``exit_code`` is what the CLI returns."""

    exit_code = 1


class InputError(PspnetGeoError):
    """An input (raster, label file, checkpoint, option value) cannot be used as given."""

    exit_code = 2


class RasterError(InputError):
    """A raster is missing, unreadable or has a grid pspnet-geo cannot work on."""


class BandMismatchError(InputError):
    """The scene's bands do not match what the model was trained on."""


class CheckpointError(InputError):
    """A checkpoint file is missing, damaged or not a pspnet-geo checkpoint."""


class PipelineError(InputError):
    """A pipeline preset is unknown or malformed, or names no usable model."""


class LabelError(InputError):
    """Training labels are missing, empty or do not fit the image."""


class OutputError(PspnetGeoError):
    """An output cannot be written (exists already, unwritable folder, unknown format)."""

    exit_code = 2


class RunError(PspnetGeoError):
    """The run failed part-way (a read error in the middle of a scene, a lost cluster)."""

    exit_code = 1


def first_line(err: BaseException) -> str:
    """The first line of ``err``'s message (GDAL's and torch's run to paragraphs), for an error
    of ours that must stay one line; the exception's type name when it has no message."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
