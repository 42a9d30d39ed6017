"""What a raster file makes GDAL open besides itself: the sources a VRT names, and whether
opening a file from an untrusted folder could send requests over the network.

GDAL opens whatever a file points to. A VRT names source files, which may be URLs
(``/vsicurl/``, ``/vsis3/``, ``http://``); a GDAL WMS or WMTS description, a tile index or a
STAC document is nothing but pointers to servers. :func:`check_local_only` is the test behind
``--no-remote-sources``: it reads the file's first bytes, and opens only formats that cannot
name other files (GeoTIFF, PNG, JPEG, JPEG 2000, Erdas Imagine, NITF) and VRTs whose every
source passes the same test. Anything it cannot check is refused, not guessed at: a batch over
someone else's folder must not make requests anywhere. GDAL has no switch that turns its
network access off, hence this check (it still reads sidecar files such as ``.aux.xml`` and
``.ovr``, which name nothing).
"""

from __future__ import annotations

import os
import re
from xml.etree import ElementTree

from pspnet_geo.errors import InputError

_REMOTE = re.compile(r"(/vsi(curl|s3|gs|az|adls|oss|swift|hdfs|webhdfs)(_streaming)?/|[a-z][a-z0-9+.-]*://)",
                     re.IGNORECASE)
_DRIVER_PREFIX = re.compile(r"[A-Za-z0-9_]{2,}:")
"""A source opened through a driver's own syntax (``NETCDF:"f.nc":var``, ``GTIFF_DIR:1:f.tif``)."""

SELF_CONTAINED = {
    b"II*\x00": "GeoTIFF", b"MM\x00*": "GeoTIFF", b"II+\x00": "BigTIFF", b"MM\x00+": "BigTIFF",
    b"\x89PNG": "PNG", b"\xff\xd8\xff": "JPEG", b"\xff\x4f\xff\x51": "JPEG 2000",
    b"\x00\x00\x00\x0cjP  ": "JPEG 2000", b"EHFA_HEADER_TAG": "Erdas Imagine", b"NITF": "NITF", b"NSIF": "NITF",
}
"""Leading bytes of formats that hold their pixels and name no other file."""

MAX_DEPTH = 8
"""How deep VRTs naming VRTs are followed (GDAL itself stops a loop; this check must too)."""


def vrt_sources(path: str) -> list[tuple[str, str]]:
    """(name as written, local path) of every source a local VRT names; none for other files
    or a VRT that cannot be parsed."""
    if not path.lower().endswith(".vrt") or not os.path.isfile(path):
        return []
    try:
        root = ElementTree.parse(path).getroot()
    except (ElementTree.ParseError, OSError):
        return []
    folder, sources = os.path.dirname(path), []
    for element in root.iter("SourceFilename"):
        name = (element.text or "").strip()
        if name:
            sources.append((name, os.path.join(folder, name) if element.get("relativeToVRT") == "1" else name))
    return sources


def missing_vrt_sources(path: str) -> list[str]:
    """The source files a local VRT names that do not exist (GDAL only says "Read failed"),
    in the order it names them; none for other files or a VRT that cannot be parsed."""
    missing = []
    for name, source in vrt_sources(path):
        special = name.startswith("/vsi") or "://" in name or _DRIVER_PREFIX.match(name)
        if not special and not os.path.exists(source) and source not in missing:
            missing.append(source)
    return missing


def check_local_only(path: str, depth: int = MAX_DEPTH) -> None:
    """Refuse, before GDAL opens it, a raster whose opening could reach the network: a URL, a
    format that names servers or other files we cannot check, or a VRT naming any of those."""
    if _REMOTE.search(path):
        raise InputError(f"{path} is a network address; --no-remote-sources refuses it")
    kind = _format_of(path)
    if kind == "VRT":
        _check_vrt(path, depth)
    elif kind is None:
        raise InputError(f"{path}: --no-remote-sources opens only GeoTIFF, PNG, JPEG, JPEG 2000, Erdas Imagine, "
                         "NITF and VRT files, which it can check for network sources; convert it to GeoTIFF "
                         "or leave the option out for files you trust")


def _check_vrt(path: str, depth: int) -> None:
    for name, source in vrt_sources(path):
        if _REMOTE.search(name):
            raise InputError(f"{path} names a network source ({name}); --no-remote-sources refuses it")
        if name.startswith("/vsi") or _DRIVER_PREFIX.match(name):
            raise InputError(f"{path} names a source --no-remote-sources cannot check ({name})")
        if depth <= 0:
            raise InputError(f"{path} nests VRTs more than {MAX_DEPTH} deep; --no-remote-sources stops there")
        if os.path.exists(source):
            check_local_only(source, depth - 1)


def _format_of(path: str) -> str | None:
    """The self-contained format or ``"VRT"`` that ``path`` starts like; None for anything
    else (a missing file is left to the reader, which names it)."""
    try:
        with open(path, "rb") as file:
            head = file.read(64)
    except FileNotFoundError:
        return "missing"
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror}") from None
    for magic, kind in SELF_CONTAINED.items():
        if head.startswith(magic):
            return kind
    return "VRT" if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<VRTDataset") else None
