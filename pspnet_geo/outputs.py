"""Output paths: checked before a run starts, written under a temporary name, moved at the end.

A run that fails leaves no half-written file behind, and an existing output is replaced only
when the user said ``overwrite``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from pspnet_geo.errors import OutputError


def check_output_path(path: str | os.PathLike, overwrite: bool) -> Path:
    """Fail early, with a clear message, if ``path`` cannot be written as a new output."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise OutputError(f"{path} exists; pass --overwrite to replace it")
    if path.is_dir():
        raise OutputError(f"{path} is a directory, not a file")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"output folder {folder} does not exist")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise OutputError(f"output folder {folder} is not writable ({err.strerror})") from None
    return path


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds."""
    path = check_output_path(path, overwrite)
    temporary = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.partial{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        _remove_with_sidecars(temporary)


def _remove_with_sidecars(path: Path) -> None:
    """Remove a temporary file and the sidecars GDAL may leave beside it (.aux.xml, .msk)."""
    for candidate in path.parent.glob(path.name + "*"):
        with contextlib.suppress(FileNotFoundError):
            candidate.unlink()
