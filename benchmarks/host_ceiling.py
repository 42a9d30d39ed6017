"""The host ceiling: how fast ``segment`` could feed a model that costs nothing (issue 12).

On a GPU the model is one to two orders of magnitude faster than on these CPUs; then reading,
normalising, blending, stitching seams, writing the mask, vectorising and writing polygons
decide the throughput. This runs ``segment`` end to end (mask and GeoPackage) with the model
replaced, inside this benchmark only, by the near-free stand-in of ``polygon_scale.py`` (8 x 8
cell brightness: realistic blobs), on mirrored mosaics of the bundled aerial image, each size
in a fresh process, and reports Mpx/s, tiles/s, peak resident memory and where the time goes.

Where the time goes: each stage's function is wrapped, in the child only, by a timer that
counts its exclusive wall time (time in the stages it calls is counted there) per thread, so
the block tasks' stages and the client's (the thread calling ``segment``) are apart. The
client's own CPU time (``time.thread_time`` of its thread) per megapixel is the number that
says whether one scene can feed a fast GPU: every pixel passes through that one thread.
Targets on 2 CPU cores: >= 30 Mpx/s at 16384^2, client work <= 10 ms/Mpx.

    python benchmarks/host_ceiling.py [--sizes 4096 16384] [--threads 2] [--processes N]

``--processes N`` polygonises in N worker processes whatever the cores, as ``segment`` does on
a machine of 4N cores or more: the client's figure then is its own work without the polygons.

About 3 minutes on 2 cores, plus a minute or two to build the 16384^2 mosaic (~0.5 GB of disk)
the first time in a --work-dir.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

from harness import log, peak_rss_mib, use_checkout
from harness import main as run_benchmark

ROOT = use_checkout()

from polygon_scale import measure_sizes, parse_args, stand_in_predict  # noqa: E402
from segment_overhead import OVERLAP, TILE  # noqa: E402

SCRIPT = Path(__file__).resolve()
STAGES = ("read", "arrange block", "normalise", "select tiles", "model (stand-in)", "blend",
          "seams", "mask write", "COG layout", "vectorise", "vector write")
CLIENT_TARGET_MS = 10.0
THROUGHPUT_TARGET = 30.0


class StageClock:
    """Exclusive wall time per (stage, client or task), from wrappers around stage functions."""

    def __init__(self, client: threading.Thread) -> None:
        self.client = client
        self.seconds: dict[tuple[str, str], float] = defaultdict(float)
        self._local = threading.local()

    def wrap(self, stage: str, function):
        """``function``, timed as ``stage``."""
        def timed(*args, **kwargs):
            with self.timing(stage):
                return function(*args, **kwargs)
        return timed

    def wrap_generator(self, stage: str, generator_function):
        """A generator function whose every step is timed as ``stage``."""
        def timed(*args, **kwargs):
            items = generator_function(*args, **kwargs)
            while True:
                with self.timing(stage):
                    item = next(items, StopIteration)
                if item is StopIteration:
                    return
                yield item
        return timed

    def timing(self, stage: str):
        clock = self

        class Timing:
            def __enter__(self):
                stack = clock._stack()
                stack.append([stage, time.perf_counter(), 0.0])

            def __exit__(self, *exc):
                stack = clock._stack()
                name, started, inner = stack.pop()
                spent = time.perf_counter() - started
                where = "client" if threading.current_thread() is clock.client else "tasks"
                clock.seconds[(name, where)] += spent - inner
                if stack:
                    stack[-1][2] += spent
        return Timing()

    def _stack(self) -> list:
        if not hasattr(self._local, "stack"):
            self._local.stack = []
        return self._local.stack


def instrument(clock: StageClock) -> None:
    """Put the stand-in model in place and a timer around every stage (this process only)."""
    from pspnet_geo.checkpoint import Checkpoint
    from pspnet_geo.segmentation import blocks
    from pspnet_geo.segmentation import raster_outputs
    from pspnet_geo.segmentation.raster_outputs import RasterOutputs
    from pspnet_geo.segmentation.stitch import Stitcher
    from pspnet_geo.vector.output import VectorOutput
    from pspnet_geo.vector.vectorize import MaskVectorizer

    blocks.predict = clock.wrap_generator("model (stand-in)", stand_in_predict)
    timed = [(blocks, "read_finite", "read"), (blocks, "read_block_pixels", "arrange block"),
             (blocks, "block_inputs", "select tiles"), (blocks, "_blend", "blend"),
             (Checkpoint, "normalise", "normalise"), (Stitcher, "add", "seams"),
             (RasterOutputs, "write", "mask write"), (RasterOutputs, "close", "mask write"),
             (raster_outputs, "write_cog", "COG layout"),
             (MaskVectorizer, "add_piece", "vectorise"), (MaskVectorizer, "finish", "vectorise"),
             (VectorOutput, "add", "vector write"), (VectorOutput, "finish", "vector write")]
    for owner, name, stage in timed:
        setattr(owner, name, clock.wrap(stage, getattr(owner, name)))


def polygonise_in(processes: int) -> None:
    """Polygonise in ``processes`` worker processes whatever the cores (this process only): what
    ``segment`` does on a machine of ``4 * processes`` cores, so the client's own work shows
    without the polygons."""
    from pspnet_geo.vector import pool, vectorize

    vectorize.processes_for = lambda windows, cores=None: processes if windows >= pool.MIN_WINDOWS else 0


def child_segment(job: dict) -> dict:
    """One ``segment`` run with the stand-in model and the stage timers."""
    from pspnet_geo.segmentation.run import segment

    clock = StageClock(threading.current_thread())
    instrument(clock)
    if job.get("processes") is not None:
        polygonise_in(job["processes"])
    out = Path(job["out_dir"]) / f"ceiling_{job['size']}"
    cpu_before, started = time.thread_time(), time.perf_counter()
    result = segment(job["scene"], out.with_suffix(".gpkg"), model=job["model"], mask_out=f"{out}_mask.tif",
                     tile_size=TILE, overlap=OVERLAP, threads=job["threads"], device="cpu", progress=False,
                     overwrite=True)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "client_cpu_s": time.thread_time() - cpu_before, "features": result.features,
            "tiles": result.tiles_run + result.tiles_skipped, "peak_rss_mib": peak_rss_mib(),
            "stages": {f"{stage}|{where}": spent for (stage, where), spent in clock.seconds.items()}}


CHILDREN = {"segment": child_segment}


def measure(size: int, job: dict) -> dict:
    """One size, in a fresh process."""
    from harness import run_child

    found = run_child(SCRIPT, {**job, "size": size, "mode": "segment"})
    megapixels = size * size / 1e6
    row = {"size": size, "seconds": round(found["seconds"], 2), "mpx_s": round(megapixels / found["seconds"], 2),
           "tiles_s": round(found["tiles"] / found["seconds"], 1), "features": found["features"],
           "peak_rss_mib": round(found["peak_rss_mib"], 1),
           "client_ms_per_mpx": round(1000 * found["client_cpu_s"] / megapixels, 1),
           "stages": {key: round(value, 2) for key, value in found["stages"].items()}}
    log(f"  {size}: {row['seconds']} s, {row['mpx_s']} Mpx/s, client {row['client_ms_per_mpx']} ms/Mpx")
    return row


def benchmark(args: argparse.Namespace, work: Path) -> dict:
    """Build the scenes and the checkpoint in ``work``; measure every size."""
    setup, rows = measure_sizes(args, work, SCRIPT,
                                lambda size, job: measure(size, {**job, "processes": args.processes}))
    return {"setup": {**setup, "processes": args.processes}, "results": rows}


def markdown(summary: dict) -> str:
    """The throughput table, then each size's stages (seconds of exclusive wall time)."""
    setup = summary["setup"]
    lines = [f"Command: `{setup['command']}`", "",
             f"{setup['machine']}; near-free stand-in model; tiles {TILE} px, overlap {OVERLAP} px, "
             f"{setup['threads']} threads, {_polygonising(setup.get('processes'))}. Targets: >= {THROUGHPUT_TARGET:.0f} Mpx/s at 16384^2, client "
             f"<= {CLIENT_TARGET_MS:.0f} ms/Mpx.", "",
             "| scene (px) | seconds | Mpx/s | tiles/s | polygons | peak RSS (MiB) | client CPU (ms/Mpx) |",
             "|---|---|---|---|---|---|---|"]
    for r in summary["results"]:
        lines.append(f"| {r['size']}x{r['size']} | {r['seconds']:.1f} | {r['mpx_s']:.1f} | {r['tiles_s']:.0f} | "
                     f"{r['features']} | {r['peak_rss_mib']:.0f} | {r['client_ms_per_mpx']:.1f} |")
    sizes = [r["size"] for r in summary["results"]]
    lines += ["", "Exclusive wall seconds per stage, in the block tasks (all threads summed) and on the client:",
              "", "| stage | " + " | ".join(f"{s}^2 tasks | {s}^2 client" for s in sizes) + " |",
              "|---|" + "---|---|" * len(sizes)]
    for stage in STAGES:
        cells = [f"{r['stages'].get(f'{stage}|{where}', 0.0):.2f}" for r in summary["results"]
                 for where in ("tasks", "client")]
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _polygonising(processes: int | None) -> str:
    if processes is None:
        return "polygonising processes by the cores"
    return f"{processes} polygonising process(es) whatever the cores"


def _more_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--processes", type=int, default=None,
                        help="polygonise in this many worker processes whatever the cores (default: "
                             "segment's choice: one per 4 cores, at least one on 2 cores)")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or, with ``--child``, one measurement of it)."""
    return run_benchmark(parse_args(argv, __doc__, _more_options), CHILDREN, benchmark, markdown,
                         "pspnet-geo-ceiling-")


if __name__ == "__main__":
    sys.exit(main())
