"""The run manifest of a batch: what ran, with which model, and what each input produced.

It is a JSON file, rewritten atomically as inputs finish (at most once a second, and at the
end), so a batch killed at any moment leaves a manifest that is true about every input it
lists; an input finished but not yet listed is simply run again. An input counts as done only
if the manifest says so, the input file is unchanged (size and modification time), and each
output still has the size and content recorded when it was written (its SHA-256, rehashed only
when its modification time moved); anything else is run again. Output paths are relative to
the manifest's folder, so the folder may move. A manifest made with another model, pipeline or
output settings is refused rather than mixed into, since its outputs would not match.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from pspnet_geo.errors import InputError, OutputError
from pspnet_geo.stamps import content_hash, file_stamp, fingerprint

MANIFEST_VERSION = 2
SAVE_EVERY_S = 1.0


@dataclass
class Entry:
    """One input's record: status (done or failed), its outputs' fingerprints, time, counts."""

    source: str
    status: str
    seconds: float
    input: dict | None = None
    outputs: dict[str, dict] = field(default_factory=dict)
    features: int | None = None
    tiles: int | None = None
    error: str | None = None


@dataclass
class Manifest:
    """The identity of a batch run (model, pipeline, settings) and an entry per input name."""

    path: Path
    identity: dict
    entries: dict[str, Entry] = field(default_factory=dict)
    merged: dict | None = None
    """The merged file this batch wrote (``path`` and its fingerprint), so a rerun may replace it."""
    _saved: float = field(default=float("-inf"), init=False, repr=False)

    @classmethod
    def open(cls, path: str | os.PathLike, identity: dict, restart: bool) -> Manifest:
        """The manifest at ``path`` to resume, or a new one; refuses another run's manifest."""
        path = Path(path)
        if not path.is_file():
            return cls(path, identity)
        if restart:   # the inputs start over, but the merged file it wrote is still its own
            return cls(path, identity, merged=_merged_of(path))
        stored = _read(path)
        differing = sorted(k for k in identity.keys() | stored["identity"].keys()
                           if identity.get(k) != stored["identity"].get(k))
        if differing:
            raise InputError(f"{path} records a run with another {', '.join(differing)}; "
                             "pass --restart to start over")
        entries = {name: Entry(**entry) for name, entry in stored["entries"].items()}
        merged = stored.get("merged")
        return cls(path, identity, entries, merged if isinstance(merged, dict) else None)

    def wrote(self, merged: Path) -> bool:
        """Whether ``merged`` is the merged file this batch wrote, unchanged since."""
        recorded = self.merged
        return (recorded is not None and recorded.get("path") == str(merged.resolve())
                and _unchanged(merged, recorded))

    def record_merged(self, merged: Path) -> None:
        """Remember the merged file just written (saved with the manifest)."""
        self.merged = {"path": str(merged.resolve()), **fingerprint(merged)}
        self.save()

    def is_done(self, name: str, source_stamp: dict | None) -> bool:
        """True when ``name`` finished from an input stamped ``source_stamp`` and every output
        it recorded is still as written."""
        entry = self.entries.get(name)
        if entry is None or entry.status != "done" or entry.input != source_stamp:
            return False
        return all(_unchanged(self.path.parent / key, recorded) for key, recorded in entry.outputs.items())

    def record(self, name: str, entry: Entry) -> None:
        """Store ``entry`` for ``name``; the file is rewritten if a second has passed."""
        self.entries[name] = entry
        if time.monotonic() - self._saved >= SAVE_EVERY_S:
            self.save()

    def save(self) -> None:
        """Write the manifest atomically (a temporary file moved into place)."""
        content = {
            "version": MANIFEST_VERSION, "identity": self.identity,
            "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "entries": {name: asdict(entry) for name, entry in sorted(self.entries.items())},
            **({"merged": self.merged} if self.merged else {}),
        }
        temporary = self.path.with_name(f".{self.path.name}.partial")
        try:
            temporary.write_text(json.dumps(content, indent=1) + "\n")
            os.replace(temporary, self.path)
        except OSError as err:
            raise OutputError(f"cannot write the manifest {self.path} ({err.strerror})") from None
        self._saved = time.monotonic()


def _unchanged(path: Path, recorded: dict) -> bool:
    """Whether ``path`` is the file ``recorded``: same size, and same time or same content."""
    stamp = file_stamp(path)
    if stamp is None or stamp["size"] != recorded["size"]:
        return False
    return stamp["mtime_ns"] == recorded["mtime_ns"] or content_hash(path) == recorded["sha256"]


def _merged_of(path: Path) -> dict | None:
    """The merged file an earlier manifest records, if it can be read."""
    try:
        merged = _read(path).get("merged")
    except InputError:
        return None
    return merged if isinstance(merged, dict) else None


def _read(path: Path) -> dict:
    try:
        content = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"cannot read the manifest {path} ({err}); pass --restart to start over") from None
    if not isinstance(content, dict) or content.get("version") != MANIFEST_VERSION:
        raise InputError(f"{path} is not a pspnet-geo batch manifest (version {MANIFEST_VERSION}); "
                         "pass --restart to start over")
    return content
