"""APLS on road grids of growing size: seconds per score (issue 15).

Identical square grids of roads 100 m apart, 2 km and 4 km wide, scored against themselves
(APLS 1.0): every control point is routed in both graphs, so this is the cost of a scene-sized
network in ``evaluate --roads``.

    python benchmarks/apls_scale.py [--km 2 4]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from shapely.geometry import LineString

from harness import use_checkout

ROOT = use_checkout()

from pspnet_geo.evaluation.apls import apls  # noqa: E402


def grid(km: int, step: float = 100.0) -> np.ndarray:
    """Roads every ``step`` metres across a ``km`` x ``km`` square, both ways."""
    count, size = int(km * 1000 / step), km * 1000.0
    lines = [LineString([(0, i * step), (size, i * step)]) for i in range(count + 1)]
    lines += [LineString([(i * step, 0), (i * step, size)]) for i in range(count + 1)]
    return np.array(lines, dtype=object)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--km", type=int, nargs="+", default=[2, 4], help="grid widths in km (default: 2 4)")
    args = parser.parse_args(argv)
    for km in args.km:
        roads = grid(km)
        started = time.perf_counter()
        score = apls(roads, roads).score
        print(f"{km} km grid ({len(roads)} roads): APLS {score:.3f} in {time.perf_counter() - started:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
