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
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from pspnet_geo.errors import OutputError
from pspnet_geo.segmentation.blocks import BlockResult
from pspnet_geo.segmentation.block_arrays import from_arrays, to_arrays
from pspnet_geo.segmentation.tiling import TilePlan
from pspnet_geo.stamps import package_version

log = logging.getLogger(__name__)

_IDENTITY = "identity.json"
FORMAT = 4
"""Bumped whenever what a saved block holds, or how a run's identity is written, changes (2: the
settings are nested as :class:`~pspnet_geo.config.settings.InferenceSettings`; 3: the upper block
of a seam keeps its share summed; 4: blocks are ``.npz`` arrays, no longer pickles), so older
folders are cleared rather than misread."""


class BlockJournal:
    """The saved block results of one run of ``plan`` with ``classes`` classes, keyed by block
    (row, col)."""

    def __init__(self, folder: str | os.PathLike, identity: dict, plan: TilePlan, classes: int) -> None:
        self.folder, self.plan, self.classes = Path(folder), plan, classes
        identity = json.loads(json.dumps({**identity, "pspnet_geo": package_version(), "format": FORMAT}, sort_keys=True))
        if self.folder.is_symlink():
            raise OutputError(f"{self.folder} is a symbolic link; resumable blocks are kept only in a "
                              "folder of their own")
        # An empty folder (or one a run was killed in before its identity was in place) is taken.
        if self.folder.exists() and any(p.name != f"{_IDENTITY}.tmp" for p in self.folder.iterdir()):
            self._check_folder(identity)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with _new_file(self.folder / f"{_IDENTITY}.tmp") as stream:
                stream.write(json.dumps(identity, sort_keys=True).encode())
            os.replace(self.folder / f"{_IDENTITY}.tmp", self.folder / _IDENTITY)
        except OSError as err:
            raise OutputError(f"cannot keep resumable blocks in {self.folder} ({err.strerror})") from None
        self.done = {key for key in map(_key, self.folder.glob("block_*.npz")) if key is not None}
        if self.done:
            log.info("%s: resuming, %d blocks already done", self.folder, len(self.done))

    def _check_folder(self, identity: dict) -> None:
        """Refuse a folder that is not this user's or that no journal made; clear another run's."""
        if hasattr(os, "getuid") and self.folder.stat().st_uid != os.getuid():
            raise OutputError(f"{self.folder} belongs to another user; resumable blocks are kept only in "
                              "a folder of one's own")
        stored = _stored_identity(self.folder)
        if stored is None:
            raise OutputError(f"{self.folder} exists and was not made by a resumable pspnet-geo run; "
                              "move it away to resume")
        if stored != identity:
            log.warning("%s holds blocks of another run (scene, model, settings or version differ); "
                        "starting over", self.folder)
            _clear_blocks(self.folder)

    def saved(self) -> Iterator[BlockResult]:
        """The saved results, one at a time. A damaged one is deleted and leaves :attr:`done`
        (with a warning), so a run that plans its blocks after this has run them again."""
        for key in sorted(self.done):
            path = self.folder / f"block_{key[0]}_{key[1]}.npz"
            try:
                if path.is_symlink() or not path.is_file():     # a link or a pipe: never followed
                    raise ValueError("not a plain file")
                with path.open("rb") as stream, np.load(stream, allow_pickle=False) as stored:
                    result = from_arrays(dict(stored), key, self.plan, self.classes)
            # Anything in the folder may have been damaged or planted, and reading it fails in many
            # ways (zip, JSON, shapes); every one means the same: run the block again.
            except Exception as err:
                log.warning("%s is damaged (%s); its block runs again", path, err)
                path.unlink(missing_ok=True)
                self.done.discard(key)
                continue
            yield result

    def save(self, result: BlockResult) -> None:
        """Keep ``result`` (written under a temporary name, then moved into place)."""
        path = self.folder / f"block_{result.block.row}_{result.block.col}.npz"
        with _new_file(path.with_suffix(".tmp")) as stream:
            np.savez(stream, **to_arrays(result))
        os.replace(path.with_suffix(".tmp"), path)

    def remove(self) -> None:
        """Delete what this journal wrote, and the folder if nothing else is in it."""
        discard(self.folder)


def discard(folder: str | os.PathLike) -> bool:
    """Remove a journal folder's blocks, and its identity and the folder itself if nothing else
    is left in it (a folder holding other files keeps its identity, so it stays recognisably a
    journal's). Only a folder a journal made is touched. Whether it was one."""
    folder = Path(folder)
    if folder.is_symlink() or not folder.is_dir() or _stored_identity(folder) is None:
        return False
    _clear_blocks(folder)
    if [path.name for path in folder.iterdir()] == [_IDENTITY]:
        (folder / _IDENTITY).unlink()
        folder.rmdir()
    else:
        log.info("%s: kept, it holds files that are not blocks", folder)
    return True


def _clear_blocks(folder: Path) -> None:
    """Remove the blocks a journal writes and their temporaries, only those."""
    for path in folder.glob("*"):
        if path.name == f"{_IDENTITY}.tmp" or (path.suffix in (".npz", ".tmp", ".pkl") and _key(path) is not None):
            path.unlink(missing_ok=True)


def _new_file(path: Path) -> BinaryIO:
    """``path`` opened as a new file: a link planted under its name is removed, never followed."""
    path.unlink(missing_ok=True)
    return path.open("xb")


def _stored_identity(folder: Path) -> dict | None:
    """The identity a folder was made with; None when it is missing or unreadable."""
    try:
        stored = json.loads((folder / _IDENTITY).read_text())
    except (OSError, ValueError):
        return None
    return stored if isinstance(stored, dict) and "format" in stored else None


def _key(path: Path) -> tuple[int, int] | None:
    found = re.fullmatch(r"block_([0-9]+)_([0-9]+)", path.stem)
    return (int(found[1]), int(found[2])) if found else None
