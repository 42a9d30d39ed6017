"""How ``segment`` and ``vectorize`` scale with the scene when the model costs nothing.

For each scene size, each in a fresh process, this runs (a) ``segment`` end to end (read, tile,
blend, write the mask, vectorise, write a GeoPackage) with the model replaced, inside this
benchmark only, by a near-free stand-in, and (b) ``vectorize`` on the mask (a) wrote. It reports
seconds, Mpx/s, polygons and peak resident memory. The stand-in still gives realistic masks:
its logits are the tile's brightness averaged over 8 x 8 cells (PSPNet's output stride), so
roofs, roads and fields come out as blobs of buildings' sizes, not pixel noise. Targets (issue
11): peak memory at 16384^2 at most 1.10 x that at 4096^2 (32768^2: 1.15 x), and time per
megapixel flat within 10% across sizes.

Scenes are mirrored mosaics of the bundled aerial image, built in the work folder (16384^2 takes
a minute or two and ~0.5 GB of disk; 32768^2, with ``--sizes 4096 16384 32768``, four times that).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
import time
from pathlib import Path

import numpy as np

from harness import add_common_options, command_line, log, machine, peak_rss_mib, use_checkout
from harness import main as run_benchmark

ROOT = use_checkout()

from segment_overhead import OVERLAP, TILE, build_checkpoint, build_scene  # noqa: E402

SCRIPT = Path(__file__).resolve()
MEMORY_TARGETS = {16384: 1.10, 32768: 1.15}
STRIDE = 8


def stand_in_predict(model, tiles, batch_size: int, device: str, on_device: bool = False, augmentation=None):
    """Two-class logits from each tile's brightness, on 8 x 8 cells: near-free, realistic blobs.
    One pass to sum the bands, one to fill the logits (its share of a run is the host ceiling's
    "model (stand-in)" stage)."""
    for tile in tiles:
        bands, height, width = tile.shape
        rows, cols = height // STRIDE, width // STRIDE
        plane = tile[0].astype(np.float32)
        for band in tile[1:]:
            plane += band
        cells = plane.reshape(rows, STRIDE, cols, STRIDE).sum(axis=(1, 3)) / np.float32(bands * STRIDE ** 2)
        logits = np.empty((2, height, width), np.float32)
        logits[1].reshape(rows, STRIDE, cols, STRIDE)[...] = (cells - np.float32(0.6))[:, None, :, None]
        np.negative(logits[1], out=logits[0])
        yield logits


def child_segment(job: dict) -> dict:
    """(a) one ``segment`` run with the stand-in model."""
    from pspnet_geo.segmentation import blocks
    from pspnet_geo.segmentation.run import segment

    blocks.predict = stand_in_predict
    out = Path(job["out_dir"]) / f"scene_{job['size']}"
    baseline = peak_rss_mib()
    started = time.perf_counter()
    result = segment(job["scene"], out.with_suffix(".gpkg"), model=job["model"], mask_out=f"{out}_mask.tif",
                     tile_size=TILE, overlap=OVERLAP, threads=job["threads"], device="cpu", progress=False,
                     overwrite=True)
    return {"seconds": time.perf_counter() - started, "features": result.features,
            "peak_rss_mib": peak_rss_mib(), "baseline_rss_mib": baseline}


def child_vectorize(job: dict) -> dict:
    """(b) ``vectorize`` on the mask (a) wrote."""
    from pspnet_geo.vector.vectorize_file import vectorize_file

    out = Path(job["out_dir"]) / f"scene_{job['size']}"
    started = time.perf_counter()
    result = vectorize_file(f"{out}_mask.tif", Path(f"{out}_vectorized.gpkg"), overwrite=True)
    return {"seconds": time.perf_counter() - started, "features": result.polygons, "peak_rss_mib": peak_rss_mib()}


CHILDREN = {"segment": child_segment, "vectorize": child_vectorize}


def measure(size: int, job: dict) -> dict:
    """(a) then (b) for one scene size, each in a fresh process."""
    job = {**job, "size": size}
    seg = run_child_logged(job, "segment", size)
    vec = run_child_logged(job, "vectorize", size)
    megapixels = size * size / 1e6
    return {"size": size, "segment_seconds": round(seg["seconds"], 2),
            "segment_mpx_s": round(megapixels / seg["seconds"], 2), "features": seg["features"],
            "segment_peak_rss_mib": round(seg["peak_rss_mib"], 1),
            "vectorize_seconds": round(vec["seconds"], 2), "vectorize_mpx_s": round(megapixels / vec["seconds"], 2),
            "vectorize_features": vec["features"], "vectorize_peak_rss_mib": round(vec["peak_rss_mib"], 1)}


def run_child_logged(job: dict, mode: str, size: int) -> dict:
    from harness import run_child

    found = run_child(SCRIPT, {**job, "mode": mode})
    log(f"  {size}: {mode} {found['seconds']:.1f} s, {found['features']} polygons, peak {found['peak_rss_mib']:.0f} MiB")
    return found


def benchmark(args: argparse.Namespace, work: Path) -> dict:
    """Build the scenes and the (unused but loaded) checkpoint in ``work``, measure every size."""
    setup, rows = measure_sizes(args, work, SCRIPT, measure)
    return {"setup": setup, "results": rows, "ratios": ratios(rows)}


def measure_sizes(args: argparse.Namespace, work: Path, script: Path,
                  measure_one: Callable[[int, dict], dict]) -> tuple[dict, list[dict]]:
    """The setup and one row per size, smallest first: scenes and the (loaded, never run)
    checkpoint built in ``work`` (shared with ``host_ceiling.py``)."""
    log(f"building scenes {args.sizes} in {work}")
    job = {"model": str(build_checkpoint(work / "model_resnet18.pt", "resnet18")), "threads": args.threads,
           "out_dir": str(work)}
    rows = []
    for size in sorted(set(args.sizes)):
        job["scene"] = str(build_scene(work / f"scene_{size}.tif", size))
        rows.append(measure_one(size, job))
    return {"command": command_line(script), "machine": machine(), "threads": args.threads}, rows


def ratios(rows: list[dict]) -> list[dict]:
    """Each size against the smallest: peak memory and seconds per megapixel, (a) and (b)."""
    base = rows[0]
    found = []
    for row in rows[1:]:
        found.append({
            "size": row["size"], "against": base["size"],
            "segment_memory": round(row["segment_peak_rss_mib"] / base["segment_peak_rss_mib"], 3),
            "vectorize_memory": round(row["vectorize_peak_rss_mib"] / base["vectorize_peak_rss_mib"], 3),
            "segment_time_per_mpx": round(base["segment_mpx_s"] / row["segment_mpx_s"], 3),
            "vectorize_time_per_mpx": round(base["vectorize_mpx_s"] / row["vectorize_mpx_s"], 3),
            "memory_target": MEMORY_TARGETS.get(row["size"])})
    return found


def markdown(summary: dict) -> str:
    """The results table and the ratios against the smallest scene."""
    setup = summary["setup"]
    lines = [f"Command: `{setup['command']}`", "",
             f"{setup['machine']}; model replaced by a near-free stand-in; tiles {TILE} px, overlap {OVERLAP} px, "
             f"{setup['threads']} threads.", "",
             "| scene (px) | segment (s) | Mpx/s | polygons | peak RSS (MiB) | vectorize (s) | Mpx/s | peak RSS (MiB) |",
             "|---|---|---|---|---|---|---|---|"]
    for r in summary["results"]:
        lines.append(f"| {r['size']}x{r['size']} | {r['segment_seconds']:.1f} | {r['segment_mpx_s']:.1f} | "
                     f"{r['features']} | {r['segment_peak_rss_mib']:.0f} | {r['vectorize_seconds']:.1f} | "
                     f"{r['vectorize_mpx_s']:.1f} | {r['vectorize_peak_rss_mib']:.0f} |")
    lines.append("")
    for r in summary["ratios"]:
        target = f" (target <= {r['memory_target']:.2f})" if r["memory_target"] else ""
        lines.append(f"- {r['size']}^2 against {r['against']}^2: peak memory {r['segment_memory']:.3f}x (segment), "
                     f"{r['vectorize_memory']:.3f}x (vectorize){target}; time per megapixel "
                     f"{r['segment_time_per_mpx']:.3f}x (segment), {r['vectorize_time_per_mpx']:.3f}x (vectorize)")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None, description: str = __doc__,
               more: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    """--sizes and --threads, the harness's options, and what ``more`` adds (shared with
    ``host_ceiling.py``)."""
    parser = argparse.ArgumentParser(description=description.split("\n")[0])
    if more is not None:
        more(parser)
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 16384],
                        help="scene sizes in pixels, smallest first (default: 4096 16384)")
    parser.add_argument("--threads", type=int, default=2, help="segment's threads (default: 2)")
    add_common_options(parser, "unused: one run per size", "where scenes and outputs go; reused if present")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with ``--child``, one measurement of it)."""
    return run_benchmark(parse_args(argv), CHILDREN, benchmark, markdown, "pspnet-geo-scale-")


if __name__ == "__main__":
    sys.exit(main())
