"""The run manifest of a batch: what ran, with which model, and what each input produced.

It is a JSON file rewritten atomically after every input, so a batch killed at any moment
leaves a manifest that is true about every input it lists. An input counts as done only if
the manifest says so *and* each of its outputs still has the size and SHA-256 recorded when it
was written; anything else is run again. A manifest made with another model, pipeline or
output settings is refused rather than mixed into, since its outputs would not match.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from pspnet_geo.errors import InputError, OutputError

MANIFEST_VERSION = 1
_CHUNK = 1 << 20


@dataclass
class Entry:
    """One input's record: status (done or failed), its outputs' fingerprints, time, counts."""

    source: str
    status: str
    seconds: float
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

    @classmethod
    def open(cls, path: str | os.PathLike, identity: dict, restart: bool) -> Manifest:
        """The manifest at ``path`` to resume, or a new one; refuses another run's manifest."""
        path = Path(path)
        if restart or not path.is_file():
            return cls(path, identity)
        stored = _read(path)
        differing = sorted(k for k in identity.keys() | stored["identity"].keys()
                           if identity.get(k) != stored["identity"].get(k))
        if differing:
            raise InputError(f"{path} records a run with another {', '.join(differing)}; "
                             "pass --restart to start over")
        entries = {name: Entry(**entry) for name, entry in stored["entries"].items()}
        return cls(path, identity, entries)

    def is_done(self, name: str) -> bool:
        """True when ``name`` finished and every output it recorded is still as written."""
        entry = self.entries.get(name)
        if entry is None or entry.status != "done":
            return False
        return all(fingerprint(Path(p)) == print_ for p, print_ in entry.outputs.items())

    def record(self, name: str, entry: Entry) -> None:
        """Store ``entry`` for ``name`` and rewrite the file."""
        self.entries[name] = entry
        self.save()

    def save(self) -> None:
        """Write the manifest atomically (a temporary file moved into place)."""
        content = {
            "version": MANIFEST_VERSION, "identity": self.identity,
            "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "entries": {name: asdict(entry) for name, entry in sorted(self.entries.items())},
        }
        temporary = self.path.with_name(f".{self.path.name}.partial")
        try:
            temporary.write_text(json.dumps(content, indent=1) + "\n")
            os.replace(temporary, self.path)
        except OSError as err:
            raise OutputError(f"cannot write the manifest {self.path} ({err.strerror})") from None


def fingerprint(path: Path) -> dict | None:
    """Size and SHA-256 of a file, or None when it is missing."""
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(_CHUNK), b""):
            digest.update(chunk)
    return {"size": path.stat().st_size, "sha256": digest.hexdigest()}


def _read(path: Path) -> dict:
    try:
        content = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"cannot read the manifest {path} ({err}); pass --restart to start over") from None
    if not isinstance(content, dict) or content.get("version") != MANIFEST_VERSION:
        raise InputError(f"{path} is not a pspnet-geo batch manifest (version {MANIFEST_VERSION}); "
                         "pass --restart to start over")
    return content
