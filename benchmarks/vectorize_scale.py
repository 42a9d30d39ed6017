"""Block vectorisation with seam merging against one whole-mask ``rasterio.features.shapes`` call.

On one large class mask, each in a fresh process, this times and records the peak resident
memory (above that of the imports) of
(a) the reference: read the whole mask, one ``shapes`` call (4-connectivity, background masked
    out) consumed into shapely geometries; and, on its own, that ``shapes`` call alone, consumed
    as GeoJSON-like dicts, with the mask already in memory (the strictest time to beat);
(b) ``pspnet_geo.vector.vectorize.vectorize_mask`` (read block by block, polygonise, merge at seams)
    for each block size asked for.
It checks that (b) gives what (a) gives: the same number of features and the same total area
per class (relative difference <= 1e-6), every geometry valid. Target: (b) takes at most 1.5 x
the ``shapes`` call, at a fraction of the reference's peak memory.

The mask is a mosaic of the bundled real labels, at 0.3 m in the Atlanta chip's UTM zone:
Las Vegas road labels (class 2), Atlanta building footprints rasterised at 0.3 m on that chip's
footprint (class 1), and forest from the bundled aerial image (dark after smoothing, class 3),
painted in that order. Each layer repeats with its own period (1300, 1500 and 2048 px), alternate
copies mirrored, so roads and forest run on across copies: each main road is one feature as
wide as the mosaic, crossing every column of blocks, and forest stands with holes straddle many
seams. The mask is written window by window and reused from ``--work-dir`` if already there.
GDAL's block cache is what the package sets (``GDAL_CACHEMAX``, unless already in the
environment), the same for every run.
"""

from __future__ import annotations

import argparse
import inspect
import math
import os
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import rasterio.features
import shapely
import shapely.geometry
from rasterio.transform import from_origin
from rasterio.windows import Window
from scipy import ndimage
from skimage.filters import threshold_otsu

from harness import (add_common_options, command_line, log, machine, mirrored, peak_rss_mib, run_child,
                     start_peak, use_checkout, write_tiled_raster)
from harness import main as run_benchmark

# Benchmark the checkout this script lives in, whether or not the package is installed.
ROOT = use_checkout()

from pspnet_geo.vector.vectorize import vectorize_mask  # noqa: E402

SCRIPT = Path(__file__).resolve()
DATA = ROOT / "pspnet_geo" / "sample_data"
ROADS = DATA / "spacenet_vegas_roads" / "road_mask.tif"
ATLANTA = DATA / "spacenet_atlanta_buildings" / "image.tif"
BUILDINGS = DATA / "spacenet_atlanta_buildings" / "buildings.geojson"
AERIAL = DATA / "aerial_rgb_cog" / "cogeo.tif"
CLASS_NAMES = ["background", "building", "road", "vegetation"]
BUILDING, ROAD, VEGETATION = 1, 2, 3
PIXEL, FILE_BLOCK = 0.3, 512
DEFAULT_BLOCK = inspect.signature(vectorize_mask).parameters["block_size"].default
TIME_TARGET, AREA_TOLERANCE = 1.5, 1e-6


def road_layer() -> np.ndarray:
    """The Las Vegas road labels (0/255, about 0.3 m pixels) as a boolean mask."""
    with rasterio.open(ROADS) as src:
        return src.read(1) > 0


def building_layer() -> np.ndarray:
    """The Atlanta footprints rasterised at ``PIXEL`` metres on their image's footprint."""
    with rasterio.open(ATLANTA) as src:
        bounds, crs = src.bounds, src.crs
    shape = (round((bounds.top - bounds.bottom) / PIXEL), round((bounds.right - bounds.left) / PIXEL))
    footprints = gpd.read_file(BUILDINGS).to_crs(crs).geometry
    transform = from_origin(bounds.left, bounds.top, PIXEL, PIXEL)
    return rasterio.features.rasterize(footprints, out_shape=shape, transform=transform, dtype="uint8") > 0


def vegetation_layer() -> np.ndarray:
    """Forest in the bundled aerial image: dark after smoothing (Otsu), upsampled to ~0.3 m."""
    with rasterio.open(AERIAL) as src:
        grey = src.read().astype(np.float32).mean(axis=0)
    smooth = ndimage.zoom(ndimage.gaussian_filter(grey, 3), 2, order=1)
    return smooth < threshold_otsu(smooth)


def build_mask(path: Path, size: int) -> Path:
    """A ``size`` x ``size`` tiled, deflate uint8 class mask, written window by window."""
    if path.exists():
        return path
    layers = {VEGETATION: vegetation_layer(), BUILDING: building_layer(), ROAD: road_layer()}
    with rasterio.open(ATLANTA) as src:
        crs, transform = src.crs, from_origin(src.bounds.left, src.bounds.top, PIXEL, PIXEL)
    return write_tiled_raster(path, size, FILE_BLOCK, lambda window: paint(layers, window)[np.newaxis],
                              count=1, dtype="uint8", crs=crs, transform=transform)


def paint(layers: dict[int, np.ndarray], window: Window) -> np.ndarray:
    """One window of the mosaic: each layer's class painted over the ones before it."""
    out = np.zeros((window.height, window.width), dtype=np.uint8)
    for class_id, layer in layers.items():
        rows = mirrored(window.row_off, window.row_off + window.height, layer.shape[0])
        cols = mirrored(window.col_off, window.col_off + window.width, layer.shape[1])
        out[layer[np.ix_(rows, cols)]] = class_id
    return out


def class_stats(class_ids: np.ndarray, geometries: np.ndarray) -> dict[str, dict]:
    """Per class: number of features, total area (exactly summed), invalid geometries."""
    areas, valid = shapely.area(geometries), shapely.is_valid(geometries)
    return {str(c): {"features": int((class_ids == c).sum()),
                     "area_m2": math.fsum(areas[class_ids == c].tolist()),
                     "invalid": int((~valid[class_ids == c]).sum())}
            for c in np.unique(class_ids).tolist()}


def read_whole(mask: str) -> tuple[np.ndarray, object]:
    """The whole mask in memory, and its transform."""
    with rasterio.open(mask) as src:
        return src.read(1), src.transform


def child_reference(job: dict) -> dict:
    """(a): read the whole mask, one ``shapes`` call, every feature made a shapely geometry."""
    baseline = start_peak()
    started = time.perf_counter()
    array, transform = read_whole(job["mask"])
    read_s = time.perf_counter() - started
    class_ids, geometries = [], []
    for geometry, value in rasterio.features.shapes(array, mask=array != 0, connectivity=4, transform=transform):
        class_ids.append(int(value))
        geometries.append(shapely.geometry.shape(geometry))
    seconds, peak = time.perf_counter() - started, peak_rss_mib()
    return {"seconds": seconds, "read_seconds": read_s, "peak_rss_mib": peak, "baseline_rss_mib": baseline,
            "classes": class_stats(np.array(class_ids), np.array(geometries, dtype=object))}


def child_shapes(job: dict) -> dict:
    """(a'): the ``shapes`` call alone on the mask already in memory, consumed as dicts."""
    baseline = start_peak()
    array, transform = read_whole(job["mask"])
    started = time.perf_counter()
    found = list(rasterio.features.shapes(array, mask=array != 0, connectivity=4, transform=transform))
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "features": len(found), "peak_rss_mib": peak_rss_mib(),
            "baseline_rss_mib": baseline}


def child_blocks(job: dict) -> dict:
    """(b): ``vectorize_mask`` on the file, block by block with seam merging."""
    baseline = start_peak()
    started = time.perf_counter()
    frame = vectorize_mask(job["mask"], CLASS_NAMES, block_size=job["block_size"]).polygons
    seconds, peak = time.perf_counter() - started, peak_rss_mib()
    return {"seconds": seconds, "peak_rss_mib": peak, "baseline_rss_mib": baseline,
            "classes": class_stats(frame["class_id"].to_numpy(), frame.geometry.to_numpy())}


CHILDREN = {"reference": child_reference, "shapes": child_shapes, "blocks": child_blocks}


def best_of(job: dict, repeat: int, label: str) -> dict:
    """``repeat`` runs of one measurement: the fastest time, the highest peak above the imports."""
    runs = []
    for attempt in range(repeat):
        runs.append(run_child(SCRIPT, job))
        log(f"  {label}: {runs[-1]['seconds']:.1f} s, peak {runs[-1]['peak_rss_mib']:.0f} MiB "
            f"({attempt + 1}/{repeat})")
    best = min(runs, key=lambda r: r["seconds"])
    return {**best, "net_peak_rss_mib": max(r["peak_rss_mib"] - r["baseline_rss_mib"] for r in runs)}


def agrees(reference: dict, blocks: dict) -> bool:
    """Same classes, same feature counts, total areas within ``AREA_TOLERANCE``, all valid."""
    if reference.keys() != blocks.keys():
        return False
    return all(reference[c]["features"] == blocks[c]["features"] and blocks[c]["invalid"] == 0
               and math.isclose(reference[c]["area_m2"], blocks[c]["area_m2"], rel_tol=AREA_TOLERANCE)
               for c in reference)


def measure(mask: Path, block_sizes: list[int], repeat: int) -> dict:
    """The shapes call, the reference and every block size on one mask, with ratios and checks."""
    shapes_run = best_of({"mode": "shapes", "mask": str(mask)}, repeat, "shapes call alone")
    reference = best_of({"mode": "reference", "mask": str(mask)}, repeat, "reference")
    rows = []
    for block in block_sizes:
        run = best_of({"mode": "blocks", "mask": str(mask), "block_size": block}, repeat, f"blocks of {block}")
        rows.append({**run, "block_size": block,
                     "time_vs_shapes": run["seconds"] / shapes_run["seconds"],
                     "time_vs_reference": run["seconds"] / reference["seconds"],
                     "memory_vs_reference": run["net_peak_rss_mib"] / reference["net_peak_rss_mib"],
                     "agrees": agrees(reference["classes"], run["classes"])})
        log(f"  blocks of {block}: counts and areas {'PASS' if rows[-1]['agrees'] else 'FAIL'}")
    return {"shapes_call": shapes_run, "reference": reference, "blocks": rows}


def markdown(summary: dict) -> str:
    """The results as Markdown: command, setup, the timing table, the per-class table, verdicts."""
    setup, shapes_run, ref = summary["setup"], summary["shapes_call"], summary["reference"]
    lines = [f"Command: `{setup['command']}`", "",
             f"Mask {setup['size']} x {setup['size']} px, {PIXEL} m, {setup['crs']}; {setup['machine']}; "
             f"rasterio {setup['rasterio']}, GDAL {setup['gdal']}, shapely {setup['shapely']}, GEOS {setup['geos']}; "
             f"GDAL_CACHEMAX {setup['gdal_cachemax']}; best of {setup['repeat']}. "
             "Peak RSS: above the process's resident memory after its imports.", "",
             "| run | time (s) | / shapes call | / reference | peak RSS (MiB) | / reference | features "
             "| = reference |",
             "|---|---|---|---|---|---|---|---|",
             f"| `shapes` call alone, as dicts (mask already read, in {ref['read_seconds']:.2f} s) | "
             f"{shapes_run['seconds']:.2f} | 1.000 | | {shapes_run['net_peak_rss_mib']:.0f} | | "
             f"{shapes_run['features']} | |",
             f"| reference: read + `shapes` + shapely | {ref['seconds']:.2f} | "
             f"{ref['seconds'] / shapes_run['seconds']:.3f} | 1.000 | {ref['net_peak_rss_mib']:.0f} | 1.000 | "
             f"{total_features(ref)} | |"]
    for r in summary["blocks"]:
        lines.append(f"| `vectorize_mask`, blocks of {r['block_size']} px | {r['seconds']:.2f} | "
                     f"**{r['time_vs_shapes']:.3f}** | {r['time_vs_reference']:.3f} | "
                     f"{r['net_peak_rss_mib']:.0f} | **{r['memory_vs_reference']:.3f}** | "
                     f"{total_features(r)} | {'PASS' if r['agrees'] else 'FAIL'} |")
    return "\n".join(lines + ["", *class_table(summary), "", *verdicts(summary)]) + "\n"


def total_features(run: dict) -> int:
    """Features over all classes of one run."""
    return sum(s["features"] for s in run["classes"].values())


def class_table(summary: dict) -> list[str]:
    """Per class: share of the mask, then features and total area of every run."""
    runs = [("reference", summary["reference"]["classes"])]
    runs += [(f"blocks of {r['block_size']}", r["classes"]) for r in summary["blocks"]]
    mask_m2 = (summary["setup"]["size"] * PIXEL) ** 2
    lines = ["| class | share of mask | " + " | ".join(f"{name}: features, area (m²)" for name, _ in runs) + " |",
             "|---|---|" + "---|" * len(runs)]
    for class_id, stats in runs[0][1].items():
        cells = [f"{s[class_id]['features']}, {s[class_id]['area_m2']:.2f}" if class_id in s else "-"
                 for _, s in runs]
        share = f"{100 * stats['area_m2'] / mask_m2:.1f}%"
        lines.append(f"| {class_id} {CLASS_NAMES[int(class_id)]} | {share} | " + " | ".join(cells) + " |")
    return lines


def verdicts(summary: dict) -> list[str]:
    """One line per block size: the time target, the memory ratio and the equality check."""
    return [f"- Blocks of {r['block_size']} px: time {r['time_vs_shapes']:.3f} x the `shapes` call (target "
            f"<= {TIME_TARGET}: {'met' if r['time_vs_shapes'] <= TIME_TARGET else 'missed'}), peak memory "
            f"{r['memory_vs_reference']:.3f} x the reference's; features and area per class "
            f"{'PASS' if r['agrees'] else 'FAIL'} (relative tolerance {AREA_TOLERANCE:g}, all geometries valid)."
            for r in summary["blocks"]]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; ``--child`` (hidden) runs one measurement and prints it as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=16384, help="mask width and height in pixels (default: 16384)")
    parser.add_argument("--block-sizes", type=int, nargs="+", default=[DEFAULT_BLOCK],
                        help=f"block sizes for vectorize_mask (default: its default, {DEFAULT_BLOCK})")
    add_common_options(parser, "runs of each measurement; best kept (default: 1)",
                       "where the mask is built; reused if present (default: a temp dir)")
    return parser.parse_args(argv)


def benchmark(args: argparse.Namespace, work: Path) -> dict:
    """Build the mask in ``work``, measure, and gather the setup."""
    log(f"building the {args.size} px mask in {work}")
    mask = build_mask(work / f"mosaic_mask_{args.size}.tif", args.size)
    with rasterio.open(mask) as src:
        crs = src.crs.to_string()
    summary = measure(mask, args.block_sizes, args.repeat)
    summary["setup"] = {
        "command": command_line(SCRIPT), "machine": machine(),
        "size": args.size, "crs": crs, "repeat": args.repeat, "rasterio": rasterio.__version__,
        "gdal": rasterio.__gdal_version__, "shapely": shapely.__version__, "geos": shapely.geos_version_string,
        "gdal_cachemax": os.environ.get("GDAL_CACHEMAX", "GDAL's default")}
    return summary


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with ``--child``, one measurement of it)."""
    return run_benchmark(parse_args(argv), CHILDREN, benchmark, markdown, "pspnet-geo-vectorize-")


if __name__ == "__main__":
    sys.exit(main())
