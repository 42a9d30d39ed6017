"""How much ``segment`` costs beyond the model, and how its memory grows with the scene.

For each scene size, in one run on the same tiles and threads, this times
(a) the model alone: the forward passes over exactly the tiles ``segment`` runs, read and
    normalised before the clock starts, with the same threads and batch size, and
(b) the full ``segment``: read, infer, blend, write the mask, vectorise, write polygons,
and records the peak resident memory of (b). Every measured run is a fresh child process, so
each peak is that run's own. Targets on CPU: (b)/(a) <= 1.10, and the larger scene's peak
memory <= 1.25 x the smaller's.

The scenes are mosaics of the bundled aerial image (mirrored copies, so edges match), written
window by window; the model is a PSPNet with random weights and BatchNorm statistics
calibrated on that image (timings do not depend on the weights' values; nothing is downloaded).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.windows import Window

from harness import (add_common_options, command_line, log, machine, mirrored, peak_rss_mib, run_child,
                     use_checkout, write_tiled_raster)
from harness import main as run_benchmark

# Benchmark the checkout this script lives in, whether or not the package is installed.
ROOT = use_checkout()

from pspnet_geo.segmentation.blocks import block_inputs  # noqa: E402
from pspnet_geo.checkpoint import Checkpoint, ModelConfig  # noqa: E402
from pspnet_geo.segmentation.inference import default_batch_size, load_model, predict  # noqa: E402
from pspnet_geo.models import PSPNet  # noqa: E402
from pspnet_geo.scene import Scene, open_scene  # noqa: E402
from pspnet_geo.config.settings import InferenceSettings, TilingSettings  # noqa: E402
from pspnet_geo.segmentation.planning import make_plan  # noqa: E402
from pspnet_geo.segmentation.run import segment  # noqa: E402
from pspnet_geo.segmentation.tiling import Block, TilePlan  # noqa: E402

SCRIPT = Path(__file__).resolve()
SOURCE = ROOT / "pspnet_geo" / "sample_data" / "aerial_rgb_cog" / "cogeo.tif"
TILE, OVERLAP, FILE_BLOCK = 512, 128, 512
OVERHEAD_TARGET, MEMORY_TARGET = 1.10, 1.25


def build_scene(path: Path, size: int) -> Path:
    """A ``size`` x ``size`` tiled, deflate GeoTIFF mosaic of the bundled image, on its grid."""
    if path.exists():
        return path
    with rasterio.open(SOURCE) as src:
        image = src.read()
        profile = {"count": src.count, "dtype": src.dtypes[0], "crs": src.crs, "transform": src.transform,
                   "photometric": "RGB"}

    def window_pixels(window: Window) -> np.ndarray:
        """One window of the mosaic, all bands."""
        rows = mirrored(window.row_off, window.row_off + window.height, image.shape[1])
        cols = mirrored(window.col_off, window.col_off + window.width, image.shape[2])
        return image[:, rows][:, :, cols]

    return write_tiled_raster(path, size, FILE_BLOCK, window_pixels, **profile)


def build_checkpoint(path: Path, backbone: str) -> Path:
    """A 2-class PSPNet checkpoint, random weights, BatchNorm statistics from the bundled image."""
    if path.exists():
        return path
    torch.manual_seed(0)
    with rasterio.open(SOURCE) as src:
        image = src.read().astype(np.float32)
    mean, std = image.mean(axis=(1, 2)), image.std(axis=(1, 2)) + 1e-6
    crop, edge = 256, image.shape[1] - 256
    crops = np.stack([image[:, r:r + crop, c:c + crop] for r in (0, edge) for c in (0, edge)])
    model = PSPNet(2, len(mean), backbone, aux=False, backbone_weights=None)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.momentum = None
    model.train()
    with torch.no_grad():
        model(torch.from_numpy((crops - mean[:, None, None]) / std[:, None, None]))
    Checkpoint(
        model=ModelConfig(backbone, 8, len(mean), 2), class_names=["background", "object"],
        class_colours=[(0, 0, 0), (255, 0, 0)], bands=list(range(1, len(mean) + 1)),
        band_mean=mean.tolist(), band_std=std.tolist(), tile_size=TILE,
        training={"note": "untrained benchmark model"}, state_dict=model.state_dict(),
    ).save(path)
    return path


def block_tiles(scene: Scene, plan: TilePlan, block: Block, checkpoint: Checkpoint) -> np.ndarray:
    """The normalised tiles ``segment`` runs for ``block``, stacked in the order it runs them."""
    inputs = block_inputs(scene, plan, block, checkpoint, list(checkpoint.bands))
    if not inputs.arrays:
        return np.zeros((0, len(checkpoint.bands), TILE, TILE), np.float32)
    return np.stack(inputs.arrays)


def child_model(job: dict) -> dict:
    """(a): time the forward passes alone, run the way ``segment``'s default engine runs them."""
    torch.set_num_threads(1)
    scene = open_scene(job["scene"])
    checkpoint, model = load_model(job["model"], job["device"])
    settings = InferenceSettings(TilingSettings(TILE, OVERLAP), tuple(checkpoint.bands), job["device"], job["batch_size"])
    plan = make_plan(scene, settings, job["threads"])
    stacks = [block_tiles(scene, plan, block, checkpoint) for block in plan.blocks]

    def run(stack: np.ndarray) -> None:
        for _ in predict(model, stack, job["batch_size"], job["device"]):
            pass

    began, started = time.time(), time.perf_counter()
    with ThreadPoolExecutor(job["threads"]) as pool:
        list(pool.map(run, stacks))
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "tiles": sum(len(s) for s in stacks), "peak_rss_mib": peak_rss_mib(),
            **_device_figures(job["device"], began)}


def child_segment(job: dict) -> dict:
    """(b): time one full ``segment`` run with the default engine (one worker, threads)."""
    out_dir = Path(job["out_dir"])
    stem = Path(job["scene"]).stem
    baseline = peak_rss_mib()
    began, started = time.time(), time.perf_counter()
    vectors = None if job.get("mask_only") else out_dir / f"{stem}.gpkg"
    result = segment(job["scene"], vectors, model=job["model"],
                     mask_out=out_dir / f"{stem}_mask.tif", tile_size=TILE, overlap=OVERLAP,
                     batch_size=job["batch_size"], device=job["device"], threads=job["threads"],
                     progress=False, overwrite=True)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "tiles": result.tiles_run, "features": result.features,
            "peak_rss_mib": peak_rss_mib(), "baseline_rss_mib": baseline, **_device_figures(job["device"], began)}


def _device_figures(device: str, began: float) -> dict:
    """When the run began and ended (epoch seconds, to match GPU utilisation samples to it) and,
    on CUDA, the peak GPU memory torch allocated."""
    figures = {"window": [began, time.time()]}
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        figures["gpu_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return figures


CHILDREN = {"model": child_model, "segment": child_segment}


def measure(size: int, scene: Path, job: dict, repeat: int) -> dict:
    """(a) then (b) on one scene, ``repeat`` times; fastest time and highest peak kept."""
    job = {**job, "scene": str(scene)}
    model_runs, segment_runs = [], []
    for attempt in range(repeat):
        model_runs.append(run_child(SCRIPT, {**job, "mode": "model"}))
        log(f"  {size}: model only {model_runs[-1]['seconds']:.1f} s ({attempt + 1}/{repeat})")
        segment_runs.append(run_child(SCRIPT, {**job, "mode": "segment"}))
        log(f"  {size}: segment {segment_runs[-1]['seconds']:.1f} s, "
            f"peak {segment_runs[-1]['peak_rss_mib']:.0f} MiB ({attempt + 1}/{repeat})")
    model_s = min(r["seconds"] for r in model_runs)
    segment_s = min(r["seconds"] for r in segment_runs)
    return {"size": size, "tiles_model": model_runs[0]["tiles"], "tiles_segment": segment_runs[0]["tiles"],
            "features": segment_runs[0]["features"], "model_seconds": round(model_s, 2),
            "segment_seconds": round(segment_s, 2), "ratio": round(segment_s / model_s, 3),
            "segment_peak_rss_mib": round(max(r["peak_rss_mib"] for r in segment_runs), 1),
            "segment_import_rss_mib": round(segment_runs[0]["baseline_rss_mib"], 1),
            "model_window": model_runs[-1]["window"], "segment_window": segment_runs[-1]["window"],
            "gpu_peak_mib": max((r.get("gpu_peak_mib", 0.0) for r in model_runs + segment_runs), default=0.0)}


def summarise(rows: list[dict], setup: dict) -> dict:
    """The results, the memory ratio between the largest and smallest scene, and the targets."""
    small, large = min(rows, key=lambda r: r["size"]), max(rows, key=lambda r: r["size"])
    memory_ratio = large["segment_peak_rss_mib"] / small["segment_peak_rss_mib"]
    return {"setup": setup, "results": rows,
            "memory_ratio": {"large": large["size"], "small": small["size"], "ratio": round(memory_ratio, 3)},
            "targets": {"overhead_max": OVERHEAD_TARGET, "memory_ratio_max": MEMORY_TARGET,
                        "overhead_missed_at": [r["size"] for r in rows if r["ratio"] > OVERHEAD_TARGET],
                        "memory_met": memory_ratio <= MEMORY_TARGET}}


def markdown(summary: dict) -> str:
    """The results as a Markdown section: command, setup, table, memory ratio."""
    setup, memory = summary["setup"], summary["memory_ratio"]
    lines = [f"Command: `{setup['command']}`", "",
             f"{setup['machine']}; torch {setup['torch']}; PSPNet-{setup['backbone']}, tiles {TILE} px, "
             f"overlap {OVERLAP} px, batch {setup['batch_size']}, {setup['threads']} threads, "
             f"device {setup['device']}, best of {setup['repeat']}"
             f"{'; (b) writes the mask only' if setup.get('mask_only') else ''}.", "",
             "| scene (px) | tiles | (a) model only (s) | (b) segment (s) | (b)/(a) | (b) peak RSS (MiB) | polygons |",
             "|---|---|---|---|---|---|---|"]
    for r in summary["results"]:
        lines.append(f"| {r['size']}x{r['size']} | {r['tiles_segment']} | {r['model_seconds']:.1f} | "
                     f"{r['segment_seconds']:.1f} | {r['ratio']:.3f} | {r['segment_peak_rss_mib']:.0f} | "
                     f"{r['features']} |")
    targets = summary["targets"]
    missed = ", ".join(map(str, targets["overhead_missed_at"]))
    lines += ["", f"Overhead (b)/(a) target <= {OVERHEAD_TARGET:.2f}: "
              + (f"missed at {missed} px." if missed else "met at every size."),
              f"Peak memory {memory['large']}^2 / {memory['small']}^2: {memory['ratio']:.3f} "
              f"(target <= {MEMORY_TARGET:.2f}: {'met' if targets['memory_met'] else 'missed'})."]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; ``--child`` (hidden) runs one measurement and prints it as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 8192],
                        help="scene sizes in pixels (default: 2048 8192)")
    parser.add_argument("--backbone", choices=["resnet18", "resnet50"], default="resnet18",
                        help="PSPNet backbone (default: resnet18)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for both (a) and (b) (default: CPU cores, segment's default)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="tiles per model call (default: segment's default for the device)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--mask-only", action="store_true",
                        help="(b) writes the mask alone, no polygons: the pipeline around the model without "
                             "the vectoriser, whose cost follows the mask's regions (many with random weights)")
    add_common_options(parser, "runs of (a) and (b) per size; best kept (default: 1)",
                       "where scenes, model and outputs go; reused if present (default: a temp dir)")
    return parser.parse_args(argv)


def benchmark(args: argparse.Namespace, work: Path) -> dict:
    """Build the scenes and model in ``work``, measure every size, and summarise."""
    threads = args.threads or max(1, os.cpu_count() or 1)
    batch = args.batch_size or default_batch_size(args.device)
    log(f"building the {args.backbone} checkpoint and scenes {args.sizes} in {work}")
    job = {"model": str(build_checkpoint(work / f"model_{args.backbone}.pt", args.backbone)),
           "threads": threads, "batch_size": batch, "device": args.device, "out_dir": str(work),
           "mask_only": args.mask_only}
    scenes = {size: build_scene(work / f"scene_{size}.tif", size) for size in sorted(set(args.sizes))}
    rows = [measure(size, scene, job, args.repeat) for size, scene in scenes.items()]
    setup = {"command": command_line(SCRIPT), "machine": machine(),
             "torch": torch.__version__, "backbone": args.backbone, "threads": threads,
             "batch_size": batch, "device": args.device, "repeat": args.repeat, "mask_only": args.mask_only}
    return summarise(rows, setup)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with ``--child``, one measurement of it)."""
    return run_benchmark(parse_args(argv), CHILDREN, benchmark, markdown, "pspnet-geo-bench-")


if __name__ == "__main__":
    sys.exit(main())
