"""How busy ``batch`` keeps the model over many small chips.

In one run, on the same chips, tiles and threads, this times
(a) the model alone: the forward passes over every tile of every chip, read and normalised
    before the clock starts, spread over the threads as ``segment``'s engine spreads blocks;
(b) ``pspnet-geo batch`` over the chip folder (several chips in flight), with masks, polygons
    and the manifest;
(c) the same batch with one chip at a time (``files_in_flight=1``), the naive loop.
(b)/(a) is what the batch machinery costs; (c)/(b) is what keeping several chips in flight
saves. Each measurement runs in a fresh child process.

The chips are cut from a mosaic of the bundled aerial image on one grid; the model is
``segment_overhead``'s untrained, calibrated PSPNet (timings do not depend on weight values).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import rasterio
import torch
from rasterio.windows import Window

from harness import add_common_options, command_line, log, machine, peak_rss_mib, run_child, use_checkout
from harness import main as run_benchmark
from segment_overhead import block_tiles, build_checkpoint, build_scene

ROOT = use_checkout()

from pspnet_geo.batch.run import run_batch  # noqa: E402
from pspnet_geo.segmentation.inference import default_batch_size, load_model, predict  # noqa: E402
from pspnet_geo.scene import open_scene  # noqa: E402
from pspnet_geo.config.settings import InferenceSettings, TilingSettings  # noqa: E402
from pspnet_geo.segmentation.planning import make_plan  # noqa: E402

SCRIPT = Path(__file__).resolve()
TILE, OVERLAP = 256, 64


def build_chips(folder: Path, count: int, size: int, mosaic: Path) -> Path:
    """``count`` chips of ``size`` px cut side by side from ``mosaic``, as separate GeoTIFFs."""
    folder.mkdir(parents=True, exist_ok=True)
    with rasterio.open(mosaic) as src:
        per_row = src.width // size
        for n in range(count):
            window = Window((n % per_row) * size, (n // per_row) * size, size, size)
            profile = {**src.profile, "width": size, "height": size, "transform": src.window_transform(window),
                       "blockxsize": min(size, 256), "blockysize": min(size, 256)}
            with rasterio.open(folder / f"chip_{n:04d}.tif", "w", **profile) as dst:
                dst.write(src.read(window=window))
    return folder


def child_model(job: dict) -> dict:
    """(a): the forward passes over every chip's tiles alone, on the batch's threads."""
    torch.set_num_threads(1)
    checkpoint, model = load_model(job["model"], job["device"])
    settings = InferenceSettings(TilingSettings(TILE, OVERLAP), tuple(checkpoint.bands), job["device"], job["batch_size"])
    stacks = []
    for chip in sorted(Path(job["chips"]).glob("*.tif")):
        scene = open_scene(chip)
        plan = make_plan(scene, settings, job["threads"])
        stacks += [block_tiles(scene, plan, block, checkpoint) for block in plan.blocks]

    def run(stack) -> None:
        for _ in predict(model, stack, job["batch_size"], job["device"]):
            pass

    started = time.perf_counter()
    with ThreadPoolExecutor(job["threads"]) as pool:
        list(pool.map(run, stacks))
    return {"seconds": time.perf_counter() - started, "tiles": sum(len(s) for s in stacks)}


def child_batch(job: dict) -> dict:
    """(b) or (c): one ``run_batch`` over the chip folder into a fresh output folder."""
    started = time.perf_counter()
    result = run_batch(job["chips"], job["out_dir"], model=job["model"], tile_size=TILE, overlap=OVERLAP,
                       batch_size=job["batch_size"], device=job["device"], threads=job["threads"],
                       files_in_flight=job["files_in_flight"], restart=True, progress=False)
    return {"seconds": time.perf_counter() - started, "done": len(result.done), "failed": len(result.failed),
            "peak_rss_mib": peak_rss_mib()}


CHILDREN = {"model": child_model, "batch": child_batch}


def benchmark(args: argparse.Namespace, work: Path) -> dict:
    """Build chips and model, then time (a), (b) and (c), best of ``--repeat`` each."""
    threads = args.threads or max(1, os.cpu_count() or 1)
    batch = args.batch_size or default_batch_size(args.device)
    side = math.ceil(math.sqrt(args.chips))
    mosaic = build_scene(work / f"mosaic_{side * args.chip_size}.tif", side * args.chip_size)
    chips = build_chips(work / "chips", args.chips, args.chip_size, mosaic)
    job = {"model": str(build_checkpoint(work / "model_resnet18.pt", "resnet18")), "chips": str(chips),
           "threads": threads, "batch_size": batch, "device": args.device}
    runs = {"model": [], "batch": [], "one_at_a_time": []}
    for attempt in range(args.repeat):
        runs["model"].append(run_child(SCRIPT, {**job, "mode": "model"}))
        runs["batch"].append(run_child(SCRIPT, {**job, "mode": "batch", "files_in_flight": None,
                                                "out_dir": str(work / "out_b")}))
        runs["one_at_a_time"].append(run_child(SCRIPT, {**job, "mode": "batch", "files_in_flight": 1,
                                                        "out_dir": str(work / "out_c")}))
        log("  " + ", ".join(f"{k} {v[-1]['seconds']:.1f} s" for k, v in runs.items()) + f" ({attempt + 1})")
    best = {k: min(r["seconds"] for r in v) for k, v in runs.items()}
    return {"setup": {"command": command_line(SCRIPT), "machine": machine(), "torch": torch.__version__,
                      "chips": args.chips, "chip_size": args.chip_size, "tiles": runs["model"][0]["tiles"],
                      "threads": threads, "batch_size": batch, "device": args.device, "repeat": args.repeat},
            "seconds": {k: round(v, 2) for k, v in best.items()},
            "ratios": {"batch_over_model": round(best["batch"] / best["model"], 3),
                       "one_at_a_time_over_batch": round(best["one_at_a_time"] / best["batch"], 3)},
            "failed": runs["batch"][0]["failed"], "batch_peak_rss_mib": round(runs["batch"][0]["peak_rss_mib"], 1)}


def markdown(summary: dict) -> str:
    """The results as a Markdown section."""
    s, t, r = summary["setup"], summary["seconds"], summary["ratios"]
    return "\n".join([
        f"Command: `{s['command']}`", "",
        f"{s['machine']}; torch {s['torch']}; PSPNet-resnet18, {s['chips']} chips of {s['chip_size']} px, "
        f"{s['tiles']} tiles of {TILE} px (overlap {OVERLAP}), batch {s['batch_size']}, {s['threads']} threads, "
        f"device {s['device']}, best of {s['repeat']}.", "",
        "| (a) model only (s) | (b) batch (s) | (c) one chip at a time (s) | (b)/(a) | (c)/(b) | (b) peak RSS (MiB) |",
        "|---|---|---|---|---|---|",
        f"| {t['model']:.1f} | {t['batch']:.1f} | {t['one_at_a_time']:.1f} | {r['batch_over_model']:.3f} | "
        f"{r['one_at_a_time_over_batch']:.3f} | {summary['batch_peak_rss_mib']:.0f} |", ""])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; ``--child`` (hidden) runs one measurement and prints it as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chips", type=int, default=64, help="number of chips (default: 64)")
    parser.add_argument("--chip-size", type=int, default=320, help="chip side in pixels (default: 320)")
    parser.add_argument("--threads", type=int, default=None, help="threads (default: CPU cores)")
    parser.add_argument("--batch-size", type=int, default=None, help="tiles per model call (default: the device's)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    add_common_options(parser, "runs of (a), (b) and (c); best kept (default: 1)",
                       "where chips, model and outputs go; reused if present (default: a temp dir)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with ``--child``, one measurement of it)."""
    return run_benchmark(parse_args(argv), CHILDREN, benchmark, markdown, "pspnet-geo-batch-")


if __name__ == "__main__":
    sys.exit(main())
