"""Finished blocks of one scene's run, kept on disk so that a killed run resumes part-way.

With ``segment(..., resume=True)`` every block's result (its finished interior and its shares
of the seams with its neighbours) is saved as it arrives, in a folder beside the outputs
(``OUT.parts/``). A rerun with the same scene, model and settings loads those results instead
of running their blocks again, and feeds them through the same stitching, so the outputs equal
those of an uninterrupted run. The folder is removed once the outputs are in place. Results
are pickled: the folder is the run's own scratch space, written and read by the same user.
A folder made by another scene, model, settings or pspnet-geo version is discarded with a
warning.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from pspnet_geo.errors import OutputError
from pspnet_geo.segmentation.blocks import BlockResult

log = logging.getLogger(__name__)

_IDENTITY = "identity.json"
FORMAT = 3
"""Bumped whenever what a saved block holds, or how a run's identity is written, changes (2: the
settings are nested as :class:`~pspnet_geo.config.settings.InferenceSettings`; 3: the upper block
of a seam keeps its share summed), so older folders are discarded rather than misread."""


class BlockJournal:
    """The saved block results of one run, keyed by block (row, col)."""

    def __init__(self, folder: str | os.PathLike, identity: dict) -> None:
        self.folder = Path(folder)
        identity = json.loads(json.dumps({**identity, "pspnet_geo": _version(), "format": FORMAT}, sort_keys=True))
        if self.folder.is_dir() and _stored_identity(self.folder) != identity:
            log.warning("%s holds blocks of another run (scene, model, settings or version differ); "
                        "starting over", self.folder)
            shutil.rmtree(self.folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            temporary = self.folder / f"{_IDENTITY}.tmp"
            temporary.write_text(json.dumps(identity, sort_keys=True))
            os.replace(temporary, self.folder / _IDENTITY)
        except OSError as err:
            raise OutputError(f"cannot keep resumable blocks in {self.folder} ({err.strerror})") from None
        self.done = {key for key in map(_key, self.folder.glob("block_*.pkl")) if key is not None}
        if self.done:
            log.info("%s: resuming, %d blocks already done", self.folder, len(self.done))

    def saved(self) -> Iterator[BlockResult]:
        """The saved results, one at a time."""
        for row, col in sorted(self.done):
            with (self.folder / f"block_{row}_{col}.pkl").open("rb") as stream:
                yield pickle.load(stream)

    def save(self, result: BlockResult) -> None:
        """Keep ``result`` (written under a temporary name, then moved into place)."""
        path = self.folder / f"block_{result.block.row}_{result.block.col}.pkl"
        temporary = path.with_suffix(".tmp")
        with temporary.open("wb") as stream:
            pickle.dump(result, stream, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temporary, path)

    def remove(self) -> None:
        """Delete the folder, once the run's outputs are in place."""
        shutil.rmtree(self.folder, ignore_errors=True)


def _stored_identity(folder: Path) -> dict | None:
    """The identity a folder was made with; None when it is missing or unreadable."""
    try:
        return json.loads((folder / _IDENTITY).read_text())
    except (OSError, ValueError):
        return None


def _version() -> str:
    try:
        return version("pspnet-geo")
    except PackageNotFoundError:
        return "unknown"


def _key(path: Path) -> tuple[int, int] | None:
    parts = path.stem.split("_")
    return (int(parts[1]), int(parts[2])) if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit() else None
