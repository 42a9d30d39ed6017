"""Rasters named as users type them: cloud and web URLs become GDAL virtual file paths.

``s3://bucket/key.tif`` is ``/vsis3/bucket/key.tif`` to GDAL, ``gs://`` is ``/vsigs/``, ``az://``
is ``/vsiaz/``, ``https://host/a.tif`` is ``/vsicurl/https://host/a.tif``, and an archive scheme
in front (``zip+https://host/a.zip!/b.tif``) reads a member of an archive there. This is the
mapping ``rasterio.open`` applies to its own argument, but rasterio keeps it in
``rasterio._path``, which its docstring calls "not part of Rasterio's API ... for internal use
only"; so the table is here, small, and tested against rasterio's (``tests/test_paths.py``).
A path is mapped once, where it enters (:func:`~pspnet_geo.scene.open_scene`, batch inputs,
label files), so the rest of pspnet-geo sees the GDAL name, as for a path given as ``/vsi...``.

Outputs stay local (:func:`check_local_output`): every output is written under a temporary
name beside its final one and moved into place when the run succeeds, which an object store
cannot do (no rename), and GeoPackage outputs need random writes. GDAL can write a GeoTIFF to
``/vsis3/`` only with ``CPL_VSIL_USE_TEMP_FILE_FOR_RANDOM_WRITE`` (a local copy uploaded on
close), which is what writing locally and copying does, with the copy under the user's control.
"""

from __future__ import annotations

import os
import re

from pspnet_geo.errors import OutputError, RasterError

REMOTE = {"s3": "vsis3", "gs": "vsigs", "az": "vsiaz", "http": "vsicurl", "https": "vsicurl", "ftp": "vsicurl"}
"""URL schemes GDAL reads through a virtual file system (as rasterio maps them)."""
CURL = {"http", "https", "ftp"}
"""Schemes whose whole URL follows ``/vsicurl/``."""
ARCHIVES = {"zip": "vsizip", "tar": "vsitar", "gzip": "vsigzip"}
"""Archive schemes, alone (a local archive) or before a remote one (``zip+s3://``)."""

_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://(.*)", re.DOTALL)


def gdal_path(path: str | os.PathLike) -> str:
    """The name GDAL opens ``path`` by: a URL of a known scheme as a ``/vsi...`` path; anything
    else (a local path, a ``/vsi`` path, a driver's syntax, an unknown scheme) unchanged."""
    text = os.fspath(path)
    match = _URL.fullmatch(text)
    if match is None or os.path.exists(text):
        return text
    scheme, rest = match.group(1).lower(), match.group(2)
    archive, _, base = scheme.rpartition("+")
    if (archive in ARCHIVES and base in REMOTE) or (archive == "" and base in ARCHIVES):
        return _archive_member(archive or base, base if archive else None, rest)
    if archive == "" and base in REMOTE:
        return _remote(base, rest)
    if archive == "" and base == "file" and rest.startswith("/"):
        return rest
    return text


def _remote(scheme: str, rest: str) -> str:
    """``scheme://rest`` as a GDAL network path."""
    if scheme in CURL:
        return f"/{REMOTE[scheme]}/{scheme}://{rest}"
    return f"/{REMOTE[scheme]}/{rest}"


def _archive_member(archive: str, remote: str | None, rest: str) -> str:
    """``rest`` (``ARCHIVE!MEMBER``, or an archive alone) read through ``/vsizip/`` and the
    like; the archive is remote when ``remote`` names its scheme, else a local path."""
    container, _, member = rest.partition("!")
    if remote is not None:
        container = _remote(remote, container)
    prefix = f"/{ARCHIVES[archive]}" + ("" if container.startswith("/vsi") else "/")
    return prefix + container + (f"/{member.lstrip('/')}" if member else "")


def is_virtual(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a GDAL virtual file (``/vsis3/``, ``/vsicurl/``, ``/vsizip/``...),
    whose existence only GDAL can tell."""
    return os.fspath(path).startswith("/vsi")


def check_exists(path: str) -> None:
    """Refuse a local raster path that does not exist, or a URL of a scheme GDAL is not given
    (left unmapped by :func:`gdal_path`); a GDAL virtual path is GDAL's to open or refuse."""
    if is_virtual(path) or os.path.exists(path):
        return
    match = _URL.fullmatch(path)
    if match is not None:
        raise RasterError(f"{path}: {match.group(1)}:// is not a URL scheme pspnet-geo reads; give s3://, gs://, "
                          "az://, http(s)://, a zip+ or tar+ one of those, or a GDAL /vsi... path")
    raise RasterError(f"{path}: no such file")


def check_local_output(path: str | os.PathLike, what: str = "output") -> None:
    """Refuse an output named as a URL or a GDAL virtual path (see the module docstring)."""
    text = os.fspath(path)
    if is_virtual(text) or _URL.fullmatch(text):
        raise OutputError(f"{what} {text} is a URL or GDAL virtual path; pspnet-geo writes outputs locally "
                          "(under a temporary name, then moved into place): write to a local path and copy "
                          "it (aws s3 cp, gsutil cp, azcopy)")
