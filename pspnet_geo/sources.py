"""What a raster file makes GDAL open besides itself: the sources a VRT names, and whether
opening a file from an untrusted folder could send requests over the network.

GDAL opens whatever a file points to. A VRT names source files, which may be URLs
(``/vsicurl/``, ``/vsis3/``, ``http://``); a GDAL WMS or WMTS description, a tile index or a
STAC document is nothing but pointers to servers. :func:`check_local_only` is the test behind
``--no-remote-sources``: it reads the file's first bytes, and opens only formats that cannot
name other files (GeoTIFF, PNG, JPEG, JPEG 2000, Erdas Imagine, NITF) and VRTs whose every
source passes the same test. Anything it cannot check is refused, not guessed at: a batch over
someone else's folder must not make requests anywhere. GDAL has no switch that turns its
network access off, hence this check. Sidecar files GDAL opens beside a raster (``.ovr``,
``.msk``, ``.aux``, ``.aux.xml``) are checked too: an ``.ovr`` may be a VRT, an ``.aux.xml`` may
name an overview file anywhere.
"""

from __future__ import annotations

import os
import re
from xml.etree import ElementTree

from pspnet_geo.errors import InputError

_REMOTE = re.compile(r"(/vsi(curl|s3|gs|az|adls|oss|swift|hdfs|webhdfs)(_streaming)?/|[a-z][a-z0-9+.-]*://)",
                     re.IGNORECASE)
_DRIVER_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9_]+:")
"""A source opened through a driver's own syntax (``NETCDF:"f.nc":var``, ``GTIFF_DIR:1:f.tif``)."""

SELF_CONTAINED = {
    b"II*\x00": "GeoTIFF", b"MM\x00*": "GeoTIFF", b"II+\x00": "BigTIFF", b"MM\x00+": "BigTIFF",
    b"\x89PNG": "PNG", b"\xff\xd8\xff": "JPEG", b"\xff\x4f\xff\x51": "JPEG 2000",
    b"\x00\x00\x00\x0cjP  ": "JPEG 2000", b"EHFA_HEADER_TAG": "Erdas Imagine", b"NITF": "NITF", b"NSIF": "NITF",
}
"""Leading bytes of formats that hold their pixels and name no other file."""

SOURCE_ELEMENTS = {"sourcefilename", "sourcedataset"}
"""VRT elements naming a file to open, lower case (GDAL reads them in any case):
``SourceFilename`` of every source, overview and mask band, ``SourceDataset`` of a warped VRT."""

SIDECARS = (".ovr", ".msk", ".aux")
"""Files beside a raster that GDAL opens with it (external overviews and masks, an Imagine
.aux), each a raster that may itself be a VRT; ``.aux.xml`` is checked as text."""

MAX_DEPTH = 8
"""How deep VRTs naming VRTs are followed."""

HEAD = 1024
"""Bytes read to tell a file's format (GDAL finds ``<VRTDataset`` anywhere in its first KB)."""


def vrt_sources(path: str, strict: bool = False) -> list[tuple[str, str]]:
    """(name as written, local path) of every file a local VRT names, the VRT recognised by its
    content whatever its name; none for other files. A VRT that cannot be parsed has none, or
    (``strict``) is refused: GDAL's parser is laxer than Python's."""
    if not os.path.isfile(path) or _format_of(path) != "VRT":
        return []
    try:
        root = ElementTree.parse(path).getroot()
    except (ElementTree.ParseError, OSError):
        if strict:
            raise InputError(f"{path} is a VRT that cannot be parsed, so its sources cannot be checked; "
                             "--no-remote-sources refuses it") from None
        return []
    folder, sources = os.path.dirname(os.path.realpath(path)), []    # GDAL follows a link to the VRT
    for element in root.iter():
        if not isinstance(element.tag, str) or element.tag.lower() not in SOURCE_ELEMENTS:
            continue
        name = (element.text or "").strip()
        relative = _gdal_true({key.lower(): value for key, value in element.attrib.items()}.get("relativetovrt"))
        if name:
            sources.append((name, os.path.join(folder, name) if relative else name))
    return sources


def _gdal_true(value: str | None) -> bool:
    """An attribute as GDAL reads a number: any nonzero integer (``1``, `` 01``, ``2``) is true."""
    try:
        return int((value or "0").strip() or "0") != 0
    except ValueError:
        return False


def missing_vrt_sources(path: str) -> list[str]:
    """The source files a local VRT names that do not exist (GDAL only says "Read failed"),
    in the order it names them; none for other files or a VRT that cannot be parsed."""
    missing = []
    for name, source in vrt_sources(path):
        special = name.startswith("/vsi") or "://" in name or _DRIVER_PREFIX.match(name)
        if not special and not os.path.exists(source) and source not in missing:
            missing.append(source)
    return missing


def check_local_only(path: str) -> None:
    """Refuse, before GDAL opens it, a raster whose opening could reach the network: a URL or
    any GDAL virtual path, a format that names servers or files we cannot check, or a VRT or
    sidecar file naming any of those."""
    _check(path, (), set())


def _check(path: str, chain: tuple[str, ...], seen: set[str]) -> None:
    """:func:`check_local_only` for a file named through ``chain`` (the VRTs above it); a file
    already checked (``seen``) is not checked again, so VRTs naming each other many times cost
    one check per file."""
    if path.startswith("/vsi") or _REMOTE.search(path):
        if chain:
            raise InputError(f"{chain[-1]} names a network source or a GDAL virtual file ({path}); "
                             "--no-remote-sources refuses it")
        raise InputError(f"{path} is a network address or a GDAL virtual file; --no-remote-sources refuses it")
    real = os.path.realpath(path)
    if real in chain:
        raise InputError(f"{chain[-1]} names {path}, which names it back (a loop); --no-remote-sources refuses it")
    if len(chain) >= MAX_DEPTH:
        raise InputError(f"{chain[0]} nests files more than {MAX_DEPTH} deep; --no-remote-sources stops there")
    if real in seen:
        return
    seen.add(real)
    kind = _format_of(path)
    if kind == "missing" and chain:     # a name GDAL may open otherwise (inline XML, a driver's syntax)
        raise InputError(f"{chain[-1]} names {path}, which is not a file; --no-remote-sources cannot check it")
    if kind == "missing":
        return      # the input itself: left to the reader, which names it
    if kind is None:
        raise InputError(f"{path}: --no-remote-sources opens only GeoTIFF, PNG, JPEG, JPEG 2000, Erdas Imagine, "
                         "NITF and VRT files, which it can check for network sources; convert it to GeoTIFF "
                         "or leave the option out for files you trust")
    for _name, source in vrt_sources(path, strict=True):
        _check(source, (*chain, real), seen)
    _check_sidecars(path, (*chain, real), seen)


def _check_sidecars(path: str, chain: tuple[str, ...], seen: set[str]) -> None:
    """The files GDAL opens beside ``path`` (its names in either case, ``.aux`` also in place of
    the extension): rasters checked like the input, an ``.aux.xml`` refused when it names
    another file (an external overview) or an address in its values."""
    stem = os.path.splitext(path)[0]
    candidates = [path + suffix for suffix in SIDECARS] + [stem + ".aux"]
    for candidate in candidates + [name[:-4] + name[-4:].upper() for name in candidates]:
        if os.path.isfile(candidate):
            _check(candidate, chain, seen)
    for aux in (path + ".aux.xml", path + ".AUX.XML"):
        if os.path.isfile(aux) and _names_files(aux):
            raise InputError(f"{aux} names other files (an overview file or an address); --no-remote-sources "
                             "refuses it")


def _names_files(aux: str) -> bool:
    """Whether a PAM ``.aux.xml`` points GDAL at another file: an ``OVERVIEW_FILE`` item, or a
    value (not an XML namespace, which any ArcGIS file has) holding a URL or a /vsi path. One
    that cannot be parsed counts as naming files."""
    try:
        root = ElementTree.parse(aux).getroot()
    except (ElementTree.ParseError, OSError):
        return True
    for element in root.iter():
        text = (element.text or "").strip()
        if any(value.upper() == "OVERVIEW_FILE" for value in element.attrib.values()):
            return True
        if text.startswith("/vsi") or _REMOTE.search(text):
            return True
    return False


def _format_of(path: str) -> str | None:
    """The self-contained format or ``"VRT"`` that ``path`` starts like; ``"missing"`` for a
    file that does not exist; None for anything else."""
    try:
        with open(path, "rb") as file:
            head = file.read(HEAD)
    except FileNotFoundError:
        return "missing"
    except OSError as err:
        raise InputError(f"cannot read {path}: {err.strerror}") from None
    lowered = head.lower()
    if b"<vrtdataset" in lowered:       # before the magic bytes: GDAL's VRT driver looks first
        return "VRT"
    if b"<gdaltileindexdataset" in lowered:
        return None
    for magic, kind in SELF_CONTAINED.items():
        if head.startswith(magic):
            return kind
    return None
