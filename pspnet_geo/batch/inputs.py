"""What a batch runs over: the input rasters and the name each one's outputs take.

An input specification is a glob, a folder, a text file listing one path or URL per line, or
a dataset split as it ships (relative paths in a list are relative to the list), or a STAC
Item or ItemCollection file. A folder gives its rasters, recursively, or when it has none its
STAC Items (each ``.json`` file that is one). A DeepGlobe split
(``*_sat.jpg`` beside ``*_mask.png``) gives only its satellite images, and a SpaceNet
product folder (``PS-RGB/``, ``MUL/``...) its chips. Output names mirror the input paths below
the folder, the glob's fixed prefix or the listed files' common folder, so chips with the same
name in different folders never overwrite each other.
"""

from __future__ import annotations

import glob
import logging
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pspnet_geo.datasets import CACHE_FOLDER, spacenet
from pspnet_geo.errors import InputError
from pspnet_geo.paths import gdal_path, is_virtual
from pspnet_geo.stac.inputs import is_stac_item, item_sources, safe_name

RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2", ".img")
DEEPGLOBE_IMAGE = "*_sat.jpg"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchInput:
    """One input raster (a path or a GDAL URL) and the relative stem of its outputs."""

    source: str
    name: PurePosixPath


def find_inputs(spec: str | os.PathLike, exclude: str | os.PathLike | None = None) -> list[BatchInput]:
    """The inputs named by ``spec`` (see the module docstring), sorted by name, leaving out
    files under ``exclude`` (the batch's own output folder, which may lie among the inputs)."""
    inputs = _find(os.fspath(spec))
    if exclude is not None:
        inputs = [item for item in inputs if not _is_under(item.source, Path(exclude))]
    if not inputs:
        raise InputError(f"{spec} names no input outside the output folder {exclude}")
    return inputs


def _is_under(source: str, folder: Path) -> bool:
    return not is_virtual(source) and Path(source).resolve().is_relative_to(folder.resolve())


def _find(text: str) -> list[BatchInput]:
    if is_stac_item(text) and "://" in text:     # a STAC URL is pystac's to read, not GDAL's
        return _unique(_from_stac(text, PurePosixPath()))
    text = gdal_path(text)
    if is_virtual(text):    # before the glob test: a URL's query may hold a ? or a [
        return [BatchInput(text, PurePosixPath(PurePosixPath(text).stem))]
    if glob.has_magic(text):
        return _from_glob(text)
    path = Path(text)
    if path.is_dir():
        return _from_folder(path)
    if path.is_file() and path.suffix.lower() in (".txt", ".lst", ".csv"):
        return _from_list(path)
    if path.is_file() and path.suffix.lower() == ".json":
        return _unique(_from_stac(str(path), PurePosixPath()))
    if path.is_file():
        return [BatchInput(text, PurePosixPath(path.stem))]
    raise InputError(f"batch input {text} is not a glob, a folder, a list of paths or a raster")


def _from_glob(pattern: str) -> list[BatchInput]:
    prefix = _fixed_prefix(pattern)
    matches = _each_file_once(sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file()),
                              prefix)
    if not matches:
        raise InputError(f"the glob {pattern} matches no file")
    return _named(matches, prefix)


def _each_file_once(files: list[Path], root: Path) -> list[Path]:
    """Each real file of ``files`` once, under the name with the fewest symbolic links to
    folders below ``root`` on the way (a link may loop back, making one file look like dozens,
    nested ever deeper), and its own name rather than a link's where it has both."""
    def links(path: Path) -> int:
        return sum(parent.is_symlink() for parent in path.parents if root in parent.parents)

    seen: set[str] = set()
    kept = []
    for path in sorted(files, key=lambda path: (links(path), path.is_symlink(), len(path.parts), str(path))):
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            kept.append(path)
    if len(kept) < len(files):
        log.info("%d paths name files already found under another name (symbolic links); each file "
                 "is one input", len(files) - len(kept))
    return sorted(kept)


def _fixed_prefix(pattern: str) -> Path:
    """The folder part of a glob before its first wildcard."""
    parts = Path(pattern).parts
    fixed = parts[:next(i for i, p in enumerate(parts) if glob.has_magic(p))]
    return Path(*fixed) if fixed else Path(".")


def _from_folder(folder: Path) -> list[BatchInput]:
    files = sorted(p for p in folder.rglob(DEEPGLOBE_IMAGE) if not _skipped(p, folder))
    if not files:
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in RASTER_SUFFIXES
                       and p.is_file() and not _skipped(p, folder))
    if not files:
        items = [item for path in sorted(folder.rglob("*.json")) if not _skipped(path, folder)
                 for item in _from_stac(path, PurePosixPath(path.parent.relative_to(folder).as_posix()), quiet=True)]
        if items:
            return _unique(items)
        raise InputError(f"folder {folder} holds no raster ({', '.join(RASTER_SUFFIXES)} or {DEEPGLOBE_IMAGE}) "
                         "and no STAC Item")
    return _named(_each_file_once(_one_spacenet_product(folder, files), folder), folder)


def _one_spacenet_product(folder: Path, files: list[Path]) -> list[Path]:
    """The chips of one imagery product when ``folder`` is a SpaceNet AOI holding several
    (PS-RGB, MUL, PAN...), chosen as training chooses; other folders' files unchanged."""
    products = spacenet.chips_by_product(folder, folder / CACHE_FOLDER)
    if len(products) < 2:
        return files
    chosen = spacenet.choose_product(folder, products, None)
    log.info("%s: segmenting the %s chips (products: %s)", folder, chosen, ", ".join(sorted(products)))
    return sorted(path for chips in products[chosen].values() for path in chips)


def _from_stac(document: str | Path, folder: PurePosixPath, quiet: bool = False) -> list[BatchInput]:
    """Each Item of a STAC Item or ItemCollection file, named by its id (in ``folder``); a file
    that is no STAC document is refused, or with ``quiet`` (a folder's other JSON) left out."""
    try:
        found = item_sources(document)
    except InputError:
        if not quiet:
            raise
        log.debug("%s is no STAC Item; left out", document)
        return []
    return [BatchInput(source, folder / safe_name(item_id)) for source, item_id in found]


def _skipped(path: Path, root: Path) -> bool:
    return any(part == CACHE_FOLDER for part in path.relative_to(root).parts)


def _from_list(listing: Path) -> list[BatchInput]:
    lines = [line.strip() for line in listing.read_text().splitlines()]
    entries = [gdal_path(line) for line in lines if line and not line.startswith("#")]
    if not entries:
        raise InputError(f"input list {listing} names no file")
    urls = [BatchInput(e, PurePosixPath(PurePosixPath(e).stem)) for e in entries if is_virtual(e)]
    local = [(listing.parent / e).absolute() for e in entries if not is_virtual(e)]
    missing = [str(p) for p in local if not p.is_file()]
    if missing:
        raise InputError(f"input list {listing} names {len(missing)} missing files, first {missing[0]}")
    root = Path(os.path.commonpath([p.parent for p in local])) if local else Path(".")
    return _named(local, root, urls)


def _named(files: list[Path], root: Path, others: list[BatchInput] = ()) -> list[BatchInput]:
    named = [BatchInput(str(p), PurePosixPath(p.relative_to(root).with_suffix("").as_posix())) for p in files]
    return _unique(named + list(others))


def _unique(inputs: list[BatchInput]) -> list[BatchInput]:
    """``inputs`` sorted by name, refusing two inputs whose outputs would share a name."""
    seen: dict[PurePosixPath, str] = {}
    for item in inputs:
        if item.name in seen:
            raise InputError(f"{seen[item.name]} and {item.source} would write the same outputs ({item.name})")
        seen[item.name] = item.source
    return sorted(inputs, key=lambda item: str(item.name))
