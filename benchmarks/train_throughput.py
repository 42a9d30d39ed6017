"""Training iterations per second with 0 and N loader workers (issue 15), and on CUDA the GPU's
utilisation while it trained.

A 4096² tiled, deflate mosaic of the bundled aerial image and a label raster on its grid (two
classes: bright and dark ground, so every window is labelled) are built in the work folder.
For each loader worker count, a fresh process trains PSPNet (random initial weights; nothing
is downloaded) for ``--iterations`` iterations with one validation at the end; the time of the
loop less that validation gives iterations/s. A second fresh process times the input pipeline
alone (the same numbered batches, read, labelled and augmented, no model): the batches/s the
workers can feed. On CUDA, ``nvidia-smi`` is sampled every 200 ms while the loop runs.

    python benchmarks/train_throughput.py [--workers 0 2] [--iterations 10] [--device auto]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from harness import add_common_options, command_line, log, machine, main as harness_main, run_child, use_checkout
from segment_overhead import build_scene

ROOT = use_checkout()

import torch  # noqa: E402

from pspnet_geo.training import train  # noqa: E402
from pspnet_geo.training import loop as loop_module  # noqa: E402

SCRIPT = Path(__file__).resolve()
SIZE, LABEL_BLOCK = 4096, 512


def build_labels(scene: Path, path: Path) -> Path:
    """Class 1 where the mean of the bands is above 110 (bright roofs and roads), else 0."""
    if path.exists():
        return path
    with rasterio.open(scene) as src:
        profile = {**src.profile, "count": 1, "dtype": "uint8", "photometric": "MINISBLACK", "nodata": None}
        with rasterio.open(path, "w", **profile) as dst:
            for row in range(0, src.height, LABEL_BLOCK):
                window = Window(0, row, src.width, min(LABEL_BLOCK, src.height - row))
                dst.write((src.read(window=window).mean(axis=0) > 110).astype(np.uint8)[None], window=window)
    return path


def child_train(job: dict) -> dict:
    """Train for ``iterations``; the loop's seconds less its one validation."""
    validating = [0.0]
    real_evaluate = loop_module.evaluate

    def timed_evaluate(*args):
        started = time.perf_counter()
        try:
            return real_evaluate(*args)
        finally:
            validating[0] += time.perf_counter() - started

    loop_module.evaluate = timed_evaluate
    began = time.time()
    result = train(job["scene"], job["labels"], Path(job["out"]), classes="dark,bright", background=0,
                   tile_size=job["tile"], batch_size=job["batch_size"], iterations=job["iterations"],
                   val_every=job["iterations"], val_fraction=0.01, backbone=job["backbone"],
                   backbone_weights=None, device=job["device"], loader_workers=job["workers"],
                   overwrite=True)
    seconds = result.history[-1]["elapsed_s"] - validating[0]
    return {"seconds": seconds, "iterations_per_s": job["iterations"] / seconds,
            "window": [began, time.time()]}


def child_input(job: dict) -> dict:
    """Make ``batches`` training batches with the same settings, no model: batches/s."""
    from pspnet_geo.labels.classes import parse_classes
    from pspnet_geo.training.augment import augmentation, training_transform
    from pspnet_geo.training.batches import TrainingBatches, WindowChoice
    from pspnet_geo.training.data import TrainingData
    from pspnet_geo.training.loader import batch_stream
    from pspnet_geo.training.sampling import plan_split

    data = TrainingData.open(job["scene"], job["labels"], parse_classes("dark,bright"), None, "background",
                             0, None, 255)
    split = plan_split(data.scenes, job["tile"], 0.01, None)
    transform = training_transform(augmentation("full"), [120.0] * 3, [50.0] * 3, data.value_range(), 255)
    batches = TrainingBatches(data, split, WindowChoice.build("rare-classes", 0.5).for_classes([1, 1]),
                              transform, job["batch_size"], seed=0)
    with batch_stream(batches, 0, job["workers"]) as next_batch:
        next_batch()                       # the workers' start, not counted
        started = time.perf_counter()
        for _ in range(job["batches"]):
            next_batch()
        seconds = time.perf_counter() - started
    return {"batches_per_s": job["batches"] / seconds}


CHILDREN = {"train": child_train, "input": child_input}


def gpu_utilisation(job: dict) -> tuple[dict, float | None]:
    """Run the training child, sampling ``nvidia-smi`` on CUDA; the mean utilisation in its loop."""
    if not job["device"].startswith("cuda") or shutil.which("nvidia-smi") is None:
        return run_child(SCRIPT, job), None
    query = ["nvidia-smi", "-i", "0", "--query-gpu=timestamp,utilization.gpu", "--format=csv,noheader,nounits",
             "-lms", "200"]
    sampler = subprocess.Popen(query, stdout=subprocess.PIPE, text=True)
    stamps = []
    try:
        result = run_child(SCRIPT, job)
    finally:
        sampler.terminate()
        output = sampler.communicate()[0]
    for line in output.splitlines():
        stamp, value = line.split(", ")
        stamps.append((time.mktime(time.strptime(stamp.split(".")[0], "%Y/%m/%d %H:%M:%S")), float(value)))
    began, ended = result["window"]
    inside = [value for stamp, value in stamps if began <= stamp <= ended]
    return result, (sum(inside) / len(inside) if inside else None)


def benchmark(args: argparse.Namespace, work: Path) -> dict:
    """Build the scene and labels, then measure every worker count."""
    scene = build_scene(work / f"mosaic_{SIZE}.tif", SIZE)
    labels = build_labels(scene, work / f"labels_{SIZE}.tif")
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    device = "cpu" if device == "auto" else device
    job = {"scene": str(scene), "labels": str(labels), "out": str(work / "model.pt"), "tile": args.tile,
           "batch_size": args.batch_size, "iterations": args.iterations, "backbone": args.backbone,
           "device": device, "batches": args.input_batches}
    rows = []
    for workers in args.workers:
        trained, utilisation = gpu_utilisation({**job, "mode": "train", "workers": workers})
        fed = run_child(SCRIPT, {**job, "mode": "input", "workers": workers})
        rows.append({"workers": workers, "iterations_per_s": round(trained["iterations_per_s"], 3),
                     "batches_per_s": round(fed["batches_per_s"], 2),
                     "gpu_utilisation": None if utilisation is None else round(utilisation, 1)})
        log(f"  {workers} workers: {rows[-1]}")
    return {"command": command_line(SCRIPT), "machine": machine(), "device": device, "rows": rows,
            "settings": {k: job[k] for k in ("tile", "batch_size", "iterations", "backbone")}}


def markdown(summary: dict) -> str:
    """The results table."""
    s = summary["settings"]
    lines = [f"`{summary['command']}` on {summary['machine']}, device {summary['device']}: PSPNet-"
             f"{s['backbone']}, tile {s['tile']}, batch {s['batch_size']}, {s['iterations']} iterations.", "",
             "| loader workers | training iterations/s | input pipeline alone, batches/s | GPU utilisation |",
             "|---|---|---|---|"]
    for row in summary["rows"]:
        utilisation = "n/a" if row["gpu_utilisation"] is None else f"{row['gpu_utilisation']:.0f}%"
        lines.append(f"| {row['workers']} | {row['iterations_per_s']:.3f} | {row['batches_per_s']:.2f} | {utilisation} |")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="loader worker counts (default 0 2)")
    parser.add_argument("--iterations", type=int, default=10, help="training iterations per run (default 10)")
    parser.add_argument("--batch-size", type=int, default=8, help="windows per batch (default 8)")
    parser.add_argument("--tile", type=int, default=256, help="training window size (default 256)")
    parser.add_argument("--backbone", default="resnet18", help="resnet18 (default) or resnet50")
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda")
    parser.add_argument("--input-batches", type=int, default=20, help="batches timed without the model (default 20)")
    add_common_options(parser, "unused", "folder for the mosaic and labels (default: a temporary one)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(harness_main(parse_args(None), CHILDREN, benchmark, markdown, "pspnet-train-"))
