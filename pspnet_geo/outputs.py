"""Output paths: checked before a run starts, written under a temporary name, moved at the end.

A run that fails leaves no half-written file behind, and an existing output is replaced only
when the user said ``overwrite``.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from pspnet_geo.errors import OutputError
from pspnet_geo.paths import check_local_output

log = logging.getLogger(__name__)

_SIDECARS = (r"(\.aux\.xml|\.msk|\.ovr|-journal|-wal|-shm|\.spool\.gpkg(-journal|-wal|-shm)?"
             r"|\.staged\.tif(\.aux\.xml)?|(\.msk)?\.ovr\.tmp)?")
"""What GDAL and SQLite (and a vector stream's spool, a raster's staging file, the COG driver's
overviews in the making) may leave beside a temporary output."""

MOVED_SIDECARS = (".aux.xml",)
"""Files beside an output that belong to it (GDAL's auxiliary file: a mask's category names)
and move into place with it; an older output's are removed when it is replaced without them."""


def check_output_path(path: str | os.PathLike, overwrite: bool) -> Path:
    """Fail early, with a clear message, if ``path`` cannot be written as a new output. An
    existing directory, device or pipe is never replaced, with or without ``overwrite``, and a
    URL is refused (outputs are written locally: :func:`~pspnet_geo.paths.check_local_output`)."""
    check_local_output(path)
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a directory, not a file")
    if path.exists() and not path.is_file():
        raise OutputError(f"{path} exists and is not a regular file (a device or a pipe); it is never replaced")
    if path.exists() and not overwrite:
        raise OutputError(f"{path} exists; pass --overwrite to replace it")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"output folder {folder} does not exist")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise OutputError(f"output folder {folder} is not writable ({err.strerror})") from None
    return path


def check_distinct(inputs: Iterable[tuple[str, object]], outputs: Iterable[tuple[str, object]]) -> None:
    """Refuse a run in which an output would replace one of its inputs, or two outputs would
    share a file. Paths are compared resolved, through symbolic links; None means not given.
    ``--overwrite`` replaces earlier outputs, never an input. Each path comes with the name the
    message gives it (``("--mask-out", path)``, ``("the input scene", path)``)."""
    taken: dict[Path, str] = {}
    for name, path in inputs:
        if path is not None:
            taken.setdefault(_resolved(path), name)
    written: dict[Path, str] = {}
    for name, path in outputs:
        if path is None:
            continue
        key = _resolved(path)
        if key in taken:
            raise OutputError(f"{name} {path} is {taken[key]}; an output never replaces an input")
        if key in written:
            raise OutputError(f"{written[key]} and {name} are the same file ({path}); give each its own")
        written[key] = name


def _resolved(path: object) -> Path:
    return Path(os.fspath(path)).expanduser().resolve(strict=False)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds."""
    path = check_output_path(path, overwrite)
    remove_stale_temporaries(path)
    temporary = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.partial{path.suffix}")
    try:
        yield temporary
        _forget_sidecars(path)
        os.replace(temporary, path)
        _move_sidecars(temporary, path)
    finally:
        _remove_with_sidecars(temporary)


def _forget_sidecars(path: Path) -> None:
    """Remove an older output's sidecars before it is replaced: a run killed between the two
    moves must not leave the new output beside the old one's (a mask with another model's
    class names)."""
    for suffix in MOVED_SIDECARS:
        with contextlib.suppress(FileNotFoundError):
            path.with_name(path.name + suffix).unlink()


def _move_sidecars(temporary: Path, path: Path) -> None:
    """Put the temporary output's own sidecars beside ``path``."""
    for suffix in MOVED_SIDECARS:
        source = temporary.with_name(temporary.name + suffix)
        if source.exists():
            os.replace(source, path.with_name(path.name + suffix))


def remove_stale_temporaries(path: Path) -> list[Path]:
    """Remove what a killed run left of ``path``: its temporaries, named as :func:`atomic_output`
    names them (``.STEM.XXXXXXXX.partial.EXT``, eight hex digits) and their sidecars. Nothing
    else is touched. A run can leave them only when it is killed outright (SIGKILL, power loss);
    every other ending removes them itself. Returns the files removed."""
    pattern = re.compile(rf"\.{re.escape(path.stem)}\.[0-9a-f]{{8}}\.partial{re.escape(path.suffix)}{_SIDECARS}")
    removed = []
    for candidate in path.parent.glob(f".{glob.escape(path.stem)}.*.partial*"):
        if pattern.fullmatch(candidate.name) and candidate.is_file():
            log.info("removing %s, left by an interrupted run", candidate)
            with contextlib.suppress(FileNotFoundError):
                candidate.unlink()
            removed.append(candidate)
    return removed


def _remove_with_sidecars(path: Path) -> None:
    """Remove a temporary file and the sidecars GDAL may leave beside it (.aux.xml, .msk)."""
    for candidate in path.parent.glob(path.name + "*"):
        with contextlib.suppress(FileNotFoundError):
            candidate.unlink()
