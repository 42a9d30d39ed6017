"""How long Ctrl-C takes to stop ``segment`` and ``batch`` (issue 13).

Each run is the real command line in its own process group. After a delay (the model loaded
and blocks running), SIGINT goes to the whole group, as a terminal's Ctrl-C does, and the clock
runs until the command has exited. A run stopped mid-block used to wait for its running blocks
to reach their last tile; now they give up between model batches (Dask workers of an embedded
cluster are stopped). Reported per case: the worst and the median over the delays, the exit
code, and any file left in the output folder besides a batch's resumable blocks and manifest.

The scene is a 4096^2 mosaic of the bundled aerial image and the model a PSPNet-ResNet-18 with
random weights (both from ``segment_overhead.py``); a batch runs three copies of the scene.
Small tiles (128 px) are the hard case: many tiles per block. About 6 minutes on 2 CPU cores:

    python benchmarks/interrupt.py [--delays 8 11 14] [--tiles 128 512]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import add_common_options, command_line, log, machine, use_checkout
from harness import main as run_benchmark

ROOT = use_checkout()

from segment_overhead import build_checkpoint, build_scene  # noqa: E402

SCRIPT = Path(__file__).resolve()
CLI = [sys.executable, "-c", "from pspnet_geo.cli.main import cli; cli()"]   # run in the checkout
CASES = {
    "segment, 2 threads": ["segment", "{scene}", "-o", "{out}/x.gpkg", "--mask-out", "{out}/x.tif"],
    "segment, --workers 2": ["segment", "{scene}", "-o", "{out}/x.gpkg", "--mask-out", "{out}/x.tif",
                             "--workers", "2", "--threads", "1"],
    "batch of 3 scenes": ["batch", "{many}", "--out-dir", "{out}"],
}
KEPT_BY_BATCH = {"manifest.json"}


def interrupt_once(command: list[str], out: Path, delay: float) -> dict:
    """Run ``command``, SIGINT its process group after ``delay`` s; time the exit."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, cwd=ROOT, preexec_fn=_hear_sigint)
    time.sleep(delay)
    if process.poll() is not None:
        raise RuntimeError(f"the run ended before the interrupt ({delay} s): {process.stderr.read()[-500:]}")
    started = time.perf_counter()
    os.killpg(process.pid, signal.SIGINT)
    errors = process.communicate()[1]
    seconds = time.perf_counter() - started
    left = sorted(str(path.relative_to(out)) for path in out.rglob("*")
                  if path.is_file() and path.name not in KEPT_BY_BATCH and ".parts" not in str(path))
    return {"seconds": seconds, "exit": process.returncode, "left": left, "last_line": errors.strip()[-200:]}


def _hear_sigint() -> None:
    """In the child before it starts: SIGINT's default action. A benchmark started in the
    background by a shell ignores SIGINT, its children would inherit that, and Python then
    never raises KeyboardInterrupt: every run would go on to its end."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def benchmark(args: argparse.Namespace, work: Path) -> dict:
    scene = build_scene(work / "scene_4096.tif", 4096)
    model = build_checkpoint(work / "model_resnet18.pt", "resnet18")
    many = work / "many"
    many.mkdir(exist_ok=True)
    for index in range(3):
        if not (many / f"scene_{index}.tif").exists():
            shutil.copy(scene, many / f"scene_{index}.tif")
    rows = []
    for name, template in CASES.items():
        for tile in args.tiles:
            runs = []
            for delay in args.delays:
                words = [word.format(scene=scene, many=many, out=work / "out") for word in template]
                command = [*CLI, *words, "-m", str(model), "--tile-size", str(tile), "--no-progress"]
                runs.append(interrupt_once(command, work / "out", delay))
                log(f"{name}, tile {tile}, after {delay} s: stopped in {runs[-1]['seconds']:.2f} s")
            seconds = [run["seconds"] for run in runs]
            rows.append({"case": name, "tile": tile, "worst_s": max(seconds), "median_s": statistics.median(seconds),
                         "exits": sorted({run["exit"] for run in runs}),
                         "left": sorted({file for run in runs for file in run["left"]}), "runs": runs})
    return {"command": command_line(SCRIPT), "machine": machine(), "delays": args.delays, "rows": rows}


def markdown(summary: dict) -> str:
    lines = [f"`{summary['command']}` ({summary['machine']}; SIGINT after {summary['delays']} s)", "",
             "| case | tile | worst s | median s | exit | files left |", "|---|---|---|---|---|---|"]
    for row in summary["rows"]:
        lines.append(f"| {row['case']} | {row['tile']} | {row['worst_s']:.2f} | {row['median_s']:.2f} | "
                     f"{', '.join(map(str, row['exits']))} | {', '.join(row['left']) or 'none'} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--delays", type=float, nargs="+", default=[8.0, 11.0, 14.0],
                        help="seconds after the start to interrupt, one run each")
    parser.add_argument("--tiles", type=int, nargs="+", default=[128, 512], help="tile sizes")
    add_common_options(parser, "unused", "keeps the scene and the model between runs")
    return run_benchmark(parser.parse_args(), {}, benchmark, markdown, "pspnet-geo-interrupt-")


if __name__ == "__main__":
    sys.exit(main())
