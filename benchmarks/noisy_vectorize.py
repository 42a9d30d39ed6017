"""Vectorising a noisy class mask: tens of thousands of small regions, most of them cut by seams.

An untrained or weak model, or a speckled land-cover class, gives masks like this (PSPNet-R18
with random weights on the bundled aerial image gave about 870 regions per Mpx); each region
costs the vectoriser Python work, and every region a window edge cuts has to be joined across
the seam. The mask here is smoothed random noise (Gaussian, sigma 6 px): class 1 below minus one
standard deviation, class 2 above plus one, background between (blobs, none spanning the scene),
2048^2 mirrored into a ``--size`` mosaic, written window by window (deterministic).
Each run is a fresh process timing ``vectorize_mask`` (1024 px windows, no clean-up) with the
given polygonising processes; it also runs a checkout without the ``processes`` option
(``--checkout``), for before/after figures of one run.

    python benchmarks/noisy_vectorize.py [--size 8192] [--processes 0 1] [--checkout OLD_TREE]
        [--tile-from MASK]
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from pathlib import Path

import numpy as np
import rasterio
from scipy.ndimage import gaussian_filter

from harness import add_common_options, command_line, log, machine, mirrored, run_child, write_tiled_raster
from harness import main as run_benchmark

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
TILE = 2048


def noise_tile() -> np.ndarray:
    """The noisy 2048^2 tile (0 background, 1 and 2 the classes), one band."""
    noise = gaussian_filter(np.random.default_rng(0).standard_normal((TILE, TILE)), 6.0)
    spread = noise.std()
    return np.select([noise < -spread, noise > spread], [1, 2], 0).astype(np.uint8)[None]


def build_mask(path: Path, size: int, tile_from: Path | None) -> Path:
    """The mosaic of the noisy tile (or of the mask ``tile_from``), on a UTM grid at 0.3 m."""
    if path.exists():
        return path
    if tile_from is None:
        tile = noise_tile()
    else:
        with rasterio.open(tile_from) as src:
            tile = src.read(1)[None]

    def window_pixels(window) -> np.ndarray:
        rows = mirrored(window.row_off, window.row_off + window.height, tile.shape[1])
        cols = mirrored(window.col_off, window.col_off + window.width, tile.shape[2])
        return tile[:, rows][:, :, cols]

    transform = rasterio.Affine(0.3, 0.0, 733600.0, 0.0, -0.3, 3725140.0)
    return write_tiled_raster(path, size, 512, window_pixels, count=1, dtype="uint8", crs="EPSG:32616",
                              transform=transform, nodata=255)


def child_vectorize(job: dict) -> dict:
    """Time one ``vectorize_mask`` of the checkout ``job['checkout']``."""
    sys.path.insert(0, job["checkout"])
    from pspnet_geo.vector import vectorize

    options = {}
    if "processes" in inspect.signature(vectorize.vectorize_mask).parameters:
        options["processes"] = job["processes"]
    elif job["processes"]:
        raise SystemExit(f"{job['checkout']} has no polygonising processes")
    started, cpu = time.perf_counter(), time.process_time()
    found = vectorize.vectorize_mask(job["mask"], ["background", "a", "b"], block_size=1024, **options)
    return {"seconds": time.perf_counter() - started, "main_cpu_seconds": time.process_time() - cpu,
            "polygons": len(found.polygons), "package": str(Path(vectorize.__file__).parents[2])}


CHILDREN = {"vectorize": child_vectorize}


def benchmark(args: argparse.Namespace, work: Path) -> dict:
    """Build the mask, then time each checkout and process count."""
    name = f"noisy_{args.size}.tif" if args.tile_from is None else f"{args.tile_from.stem}_{args.size}.tif"
    mask = build_mask(work / name, args.size, args.tile_from)
    runs = [(str(args.checkout), 0)] if args.checkout else []
    runs += [(str(ROOT), processes) for processes in args.processes]
    rows = []
    for checkout, processes in runs:
        found = min((run_child(SCRIPT, {"mode": "vectorize", "mask": str(mask), "checkout": checkout,
                                        "processes": processes}) for _ in range(args.repeat)),
                    key=lambda r: r["seconds"])
        if Path(found["package"]).resolve() != Path(checkout).resolve():
            raise RuntimeError(f"{checkout} was asked for, {found['package']} was imported")
        log(f"  {checkout} processes {processes}: {found['seconds']:.2f} s, {found['polygons']} polygons")
        rows.append({"checkout": checkout, "processes": processes, **found})
    return {"setup": {"command": command_line(SCRIPT), "machine": machine(), "size": args.size,
                      "tile": "smoothed noise" if args.tile_from is None else args.tile_from.name}, "results": rows}


def markdown(summary: dict) -> str:
    setup = summary["setup"]
    megapixels = setup["size"] ** 2 / 1e6
    lines = [f"Command: `{setup['command']}`", "", f"{setup['machine']}; {setup['size']}^2 mosaic of {setup['tile']}, "
             "1024 px windows.", "",
             "| checkout | processes | polygons | seconds | Mpx/s | main process CPU (ms/Mpx) |", "|---|---|---|---|---|---|"]
    for r in summary["results"]:
        lines.append(f"| {Path(r['checkout']).name} | {r['processes']} | {r['polygons']} | {r['seconds']:.2f} | "
                     f"{megapixels / r['seconds']:.1f} | {1000 * r['main_cpu_seconds'] / megapixels:.0f} |")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=8192, help="mask side in pixels (default: 8192)")
    parser.add_argument("--processes", type=int, nargs="+", default=[0, 1],
                        help="polygonising processes to time (default: 0 1)")
    parser.add_argument("--checkout", type=Path, default=None,
                        help="also time this checkout (an older tree, e.g. from git worktree), in-thread")
    parser.add_argument("--tile-from", type=Path, default=None,
                        help="mirror this class mask instead of the noise (e.g. the mask segment_overhead.py "
                             "writes with its random-weight model)")
    add_common_options(parser, "runs of each; fastest kept (default: 1)", "where the mask goes (default: a temp dir)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return run_benchmark(parse_args(argv), CHILDREN, benchmark, markdown, "pspnet-geo-noisy-")


if __name__ == "__main__":
    sys.exit(main())
