"""What identifies one version of a file: its stamp (path, size, modification time) and, when
the stamp alone cannot tell, its content's SHA-256.

Used wherever a result must be tied to the files it came from: the per-process model cache,
the block journal of a resumable run and the manifest of a batch.
"""

from __future__ import annotations

import functools
import hashlib
from importlib.metadata import PackageNotFoundError, version
import os

_CHUNK = 1 << 20


def file_stamp(path: str | os.PathLike) -> dict | None:
    """Absolute path, size and modification time of a local file; None for a URL or a
    missing file."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return {"path": os.path.abspath(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def content_hash(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's content, computed once per version of the file (a batch names
    one model in every chip's record)."""
    stat = os.stat(path)
    return _hash(os.path.abspath(path), (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns))


@functools.lru_cache(maxsize=64)
def _hash(path: str, version: tuple) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint(path: str | os.PathLike) -> dict | None:
    """Size, modification time and SHA-256 of a file, or None when it is missing."""
    stamp = file_stamp(path)
    return None if stamp is None else {"size": stamp["size"], "mtime_ns": stamp["mtime_ns"],
                                       "sha256": content_hash(path)}


def package_version() -> str:
    """pspnet-geo's installed version, as results record what made them ("unknown" when it
    runs from a source tree that was never installed)."""
    try:
        return version("pspnet-geo")
    except PackageNotFoundError:
        return "unknown"
