"""What the benchmark scripts share: fresh-process measurements, peak memory, the command line.

Every measured run is a fresh child process (the script run again with ``--child JOB``, JOB a
JSON object whose ``mode`` names the measurement), so one run's imports, caches and peak memory
never leak into another's. The parent builds the inputs in a work folder, gathers what the
children print, and writes the results as Markdown to stdout (and as JSON or Markdown files);
progress goes to stderr. The scripts are run as ``python benchmarks/NAME.py``, which puts this
folder on ``sys.path``, so they import this module by its plain name.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

ROOT = Path(__file__).resolve().parent.parent


def use_checkout() -> Path:
    """Put this checkout first on ``sys.path``, so the benchmarks measure it whether or not
    the package is installed; return its root."""
    sys.path.insert(0, str(ROOT))
    return ROOT


def log(message: str) -> None:
    """Progress goes to stderr so stdout holds only the results."""
    print(message, file=sys.stderr, flush=True)


def mirrored(start: int, stop: int, length: int) -> np.ndarray:
    """Source indices for mosaic indices start..stop: copies alternate with mirrored copies,
    so a small source tiles a large mosaic with edges that match."""
    folded = np.arange(start, stop) % (2 * length)
    return np.where(folded < length, folded, 2 * length - 1 - folded)


def write_tiled_raster(path: Path, size: int, block: int, window_array: Callable[[Window], np.ndarray],
                       **profile: object) -> Path:
    """Write a ``size`` x ``size`` tiled, deflate GeoTIFF window by window, never whole.

    ``window_array`` gives the (bands, rows, cols) pixels of each ``block`` x ``block`` window;
    ``profile`` adds count, dtype, crs, transform and the like. The file is written under a
    temporary name and renamed when complete, so an interrupted build is never reused.
    """
    profile = {"driver": "GTiff", "width": size, "height": size, "tiled": True, "blockxsize": block,
               "blockysize": block, "compress": "deflate", **profile, "bigtiff": "IF_SAFER"}
    partial = path.with_suffix(".partial.tif")
    with rasterio.open(partial, "w", **profile) as dst:
        for row in range(0, size, block):
            for col in range(0, size, block):
                window = Window(col, row, min(block, size - col), min(block, size - row))
                dst.write(window_array(window), window=window)
    partial.replace(path)
    return path


def start_peak() -> float:
    """Restart peak tracking here; return the resident memory now, in MiB.

    The imports' own transient peak would otherwise hide a smaller run's peak, so on Linux the
    kernel's high-water mark is reset (``/proc/self/clear_refs``); elsewhere the peak since the
    process started is the best there is.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _proc_status_mib("VmRSS")
    except OSError:
        return peak_rss_mib()


def peak_rss_mib() -> float:
    """This process's peak resident memory since ``start_peak`` (or since it started), in MiB.

    On Linux this is the kernel's high-water mark (``VmHWM``) rather than ``getrusage``: a child
    started by ``subprocess`` inherits its parent's peak in ``ru_maxrss``, which would hide the
    child's own peak whenever the parent's was higher.
    """
    try:
        return _proc_status_mib("VmHWM")
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _proc_status_mib(field: str) -> float:
    """One memory field of /proc/self/status (Linux), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 2**10
    raise OSError(f"no {field} in /proc/self/status")


def run_child(script: Path, job: dict) -> dict:
    """Run one measurement (``job``, with its ``mode``) in a fresh process of ``script`` and
    return what it reports."""
    command = [sys.executable, str(script), "--child", json.dumps(job)]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def add_common_options(parser: argparse.ArgumentParser, repeat_help: str, work_dir_help: str) -> None:
    """The options every benchmark has: repeats, work folder, result files, and the hidden
    ``--child`` that runs one measurement and prints it as JSON."""
    parser.add_argument("--repeat", type=int, default=1, help=repeat_help)
    parser.add_argument("--work-dir", type=Path, default=None, help=work_dir_help)
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    parser.add_argument("--markdown", type=Path, default=None, help="also write the results as Markdown here")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)


def command_line(script: Path) -> str:
    """How this run was started, as one would type it from the repository root, less the
    scratch folder (``--work-dir``), which changes nothing in the results."""
    arguments, skip = [], False
    for argument in sys.argv[1:]:
        if skip or argument == "--work-dir" or argument.startswith("--work-dir="):
            skip = argument == "--work-dir"
            continue
        arguments.append(argument)
    return shlex.join(["python", f"benchmarks/{script.name}", *arguments])


def machine() -> str:
    """The machine in a few words: architecture, system and CPU cores."""
    return f"{platform.machine()} {platform.system()}, {os.cpu_count()} CPU cores"


def main(args: argparse.Namespace, children: dict[str, Callable[[dict], dict]],
         benchmark: Callable[[argparse.Namespace, Path], dict], markdown: Callable[[dict], str],
         scratch_prefix: str) -> int:
    """Run one child measurement (``--child``) or the whole benchmark, and report it.

    ``children`` maps each job's ``mode`` to its measurement; ``benchmark`` builds its inputs in
    the work folder (``--work-dir``, else a temporary one) and returns the summary, which
    ``markdown`` turns into the report.
    """
    if args.child:
        job = json.loads(args.child)
        print(json.dumps(children[job["mode"]](job)), flush=True)
        return 0
    with tempfile.TemporaryDirectory(prefix=scratch_prefix) as scratch:
        work = args.work_dir or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        summary = benchmark(args, work)
    write_results(args, summary, markdown(summary))
    return 0


def write_results(args: argparse.Namespace, summary: dict, text: str) -> None:
    """The Markdown report to stdout, and to ``--json`` / ``--markdown`` where asked."""
    print(text, end="")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(text)
