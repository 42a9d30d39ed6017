"""What the GPU did during a ``segment_overhead.py`` run: the figures ``gpu_check.sh`` prints.

Reads the JSON ``segment_overhead.py`` wrote and the samples ``nvidia-smi`` took during it
(``--query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader,nounits``), and
prints one line per scene size: model-only and ``segment`` Mpx/s, their ratio, the GPU's mean
utilisation while ``segment`` ran and the share of samples at 85% or more, peak GPU memory
(torch's allocation) and the batch size used. Targets (issue 12): ratio <= 1.15 for
PSPNet-R50 in bf16, utilisation >= 85% over the run.

    python benchmarks/gpu_utilisation.py RESULTS.json SAMPLES.csv
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

BUSY = 85.0


def samples(path: Path) -> list[tuple[float, float]]:
    """(epoch seconds, utilisation %) of every well-formed line of ``nvidia-smi``'s CSV."""
    found = []
    for line in path.read_text().splitlines():
        fields = [field.strip() for field in line.split(",")]
        try:
            when = datetime.strptime(fields[0], "%Y/%m/%d %H:%M:%S.%f").timestamp()
            found.append((when, float(fields[1])))
        except (ValueError, IndexError):
            continue    # a header or a line cut short when the sampler was stopped
    return found


def summary_lines(results: dict, taken: list[tuple[float, float]]) -> list[str]:
    """One line per scene size."""
    setup, lines = results["setup"], []
    for row in results["results"]:
        megapixels = row["size"] ** 2 / 1e6
        start, end = row["segment_window"]
        during = [util for when, util in taken if start <= when <= end]
        mean = sum(during) / len(during) if during else float("nan")
        busy = sum(util >= BUSY for util in during) / len(during) if during else float("nan")
        lines.append(
            f"{setup['backbone']} {row['size']}^2 tile 512 batch {setup['batch_size']} on {setup['device']}: "
            f"model only {megapixels / row['model_seconds']:.1f} Mpx/s, "
            f"segment{' (mask only)' if setup.get('mask_only') else ''} "
            f"{megapixels / row['segment_seconds']:.1f} Mpx/s, ratio {row['ratio']:.3f}; GPU utilisation "
            f"during segment {mean:.0f}% mean, {100 * busy:.0f}% of {len(during)} samples >= {BUSY:.0f}%; "
            f"peak GPU memory {row.get('gpu_peak_mib', 0.0):.0f} MiB")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path, help="segment_overhead.py's --json")
    parser.add_argument("samples", type=Path, help="nvidia-smi's CSV samples taken during it")
    args = parser.parse_args(argv)
    for line in summary_lines(json.loads(args.results.read_text()), samples(args.samples)):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
