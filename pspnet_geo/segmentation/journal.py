"""Finished blocks of one scene's run, kept on disk so that a killed run resumes part-way.

With ``segment(..., resume=True)`` every block's result (its finished interior and its shares
of the seams with its neighbours) is saved as it arrives, in a folder beside the outputs
(``OUT.parts/``). A rerun with the same scene, model and settings loads those results instead
of running their blocks again, and feeds them through the same stitching, so the outputs equal
those of an uninterrupted run. The folder is removed once the outputs are in place.

Anyone who can write beside the outputs can plant files there, so a saved block carries data
only: one ``.npz`` of plain arrays read with ``allow_pickle=False`` and a JSON description of
what they are, checked against each other before use. Nothing in the folder can run code.
A folder made by another scene, model, settings or pspnet-geo version is cleared of the files
this module writes, with a warning; a folder this module did not make is refused, never cleared.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from pspnet_geo.errors import OutputError
from pspnet_geo.segmentation.blocks import BlockResult
from pspnet_geo.segmentation.block_arrays import from_arrays, to_arrays

log = logging.getLogger(__name__)

_IDENTITY = "identity.json"
FORMAT = 4
"""Bumped whenever what a saved block holds, or how a run's identity is written, changes (2: the
settings are nested as :class:`~pspnet_geo.config.settings.InferenceSettings`; 3: the upper block
of a seam keeps its share summed; 4: blocks are ``.npz`` arrays, no longer pickles), so older
folders are cleared rather than misread."""


class BlockJournal:
    """The saved block results of one run, keyed by block (row, col)."""

    def __init__(self, folder: str | os.PathLike, identity: dict) -> None:
        self.folder = Path(folder)
        identity = json.loads(json.dumps({**identity, "pspnet_geo": _version(), "format": FORMAT}, sort_keys=True))
        if self.folder.is_symlink():
            raise OutputError(f"{self.folder} is a symbolic link; resumable blocks are kept only in a "
                              "folder of their own")
        if self.folder.exists():
            stored = _stored_identity(self.folder)
            if stored is None:
                raise OutputError(f"{self.folder} exists and was not made by a resumable pspnet-geo run; "
                                  "move it away to resume")
            if stored != identity:
                log.warning("%s holds blocks of another run (scene, model, settings or version differ); "
                            "starting over", self.folder)
                self._clear()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            temporary = self.folder / f"{_IDENTITY}.tmp"
            temporary.write_text(json.dumps(identity, sort_keys=True))
            os.replace(temporary, self.folder / _IDENTITY)
        except OSError as err:
            raise OutputError(f"cannot keep resumable blocks in {self.folder} ({err.strerror})") from None
        self.done = {key for key in map(_key, self.folder.glob("block_*.npz")) if key is not None}
        if self.done:
            log.info("%s: resuming, %d blocks already done", self.folder, len(self.done))

    def saved(self) -> Iterator[BlockResult]:
        """The saved results, one at a time. A damaged one is deleted and leaves :attr:`done`
        (with a warning), so a run that plans its blocks after this has run them again."""
        for key in sorted(self.done):
            path = self.folder / f"block_{key[0]}_{key[1]}.npz"
            try:
                with np.load(path, allow_pickle=False) as stored:
                    result = from_arrays(dict(stored), key)
            except (OSError, ValueError, KeyError, EOFError) as err:
                log.warning("%s is damaged (%s); its block runs again", path, err)
                path.unlink(missing_ok=True)
                self.done.discard(key)
                continue
            yield result

    def save(self, result: BlockResult) -> None:
        """Keep ``result`` (written under a temporary name, then moved into place)."""
        path = self.folder / f"block_{result.block.row}_{result.block.col}.npz"
        temporary = path.with_suffix(".tmp")
        with temporary.open("wb") as stream:
            np.savez(stream, **to_arrays(result))
        os.replace(temporary, path)

    def remove(self) -> None:
        """Delete what this journal wrote, and the folder if nothing else is in it."""
        discard(self.folder)

    def _clear(self) -> None:
        _clear(self.folder)


def discard(folder: str | os.PathLike) -> bool:
    """Remove a journal folder's own files, and the folder if nothing else is left in it; only a
    folder a journal made (it holds a journal identity) is touched. Whether it was one."""
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir() or _stored_identity(folder) is None:
        return False
    _clear(folder)
    try:
        folder.rmdir()
    except OSError:
        log.info("%s: kept, it holds files that are not blocks", folder)
    return True


def _clear(folder: Path) -> None:
    """Remove the files a journal writes (identity, blocks, their temporaries), only those."""
    for path in folder.glob("*"):
        if path.name in (_IDENTITY, f"{_IDENTITY}.tmp") or (
                path.suffix in (".npz", ".tmp", ".pkl") and _key(path) is not None):
            path.unlink(missing_ok=True)


def _stored_identity(folder: Path) -> dict | None:
    """The identity a folder was made with; None when it is missing or unreadable."""
    try:
        stored = json.loads((folder / _IDENTITY).read_text())
    except (OSError, ValueError):
        return None
    return stored if isinstance(stored, dict) and "format" in stored else None


def _version() -> str:
    try:
        return version("pspnet-geo")
    except PackageNotFoundError:
        return "unknown"


def _key(path: Path) -> tuple[int, int] | None:
    parts = path.stem.split("_")
    return (int(parts[1]), int(parts[2])) if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit() else None
