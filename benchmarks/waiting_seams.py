"""How the polygon builder copes when many seam pieces wait: a road grid across the whole mask.

A grid of one-pixel roads every 50 px is one region that reaches every window, so its pieces
wait until the last window; 20,000 one-pixel dots of another class are final at once. Windows
arrive in row-major order. Before the builder kept its groups between windows it rebuilt a
spatial index over every waiting piece at each window, so the time grew with windows x waiting
pieces. This prints the seconds and the polygons made (in one process; a single run).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from harness import use_checkout

use_checkout()

from pspnet_geo.vector.mask_windows import WindowGrid  # noqa: E402
from pspnet_geo.vector.polygonize import PolygonBuilder  # noqa: E402


def road_grid(size: int, spacing: int = 50, dots: int = 20000) -> np.ndarray:
    """Class 1 on every ``spacing``-th row and column, ``dots`` random pixels of class 2."""
    mask = np.zeros((size, size), np.uint8)
    mask[::spacing, :] = mask[:, ::spacing] = 1
    where = np.random.default_rng(0).integers(0, size, (dots, 2))
    mask[where[:, 0], where[:, 1]] = 2
    return mask


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=4096, help="mask side in pixels (default 4096)")
    parser.add_argument("--window", type=int, default=64, help="window side in pixels (default 64)")
    args = parser.parse_args(argv)
    mask = road_grid(args.size)
    grid = WindowGrid(args.size, args.size, args.window, args.window)
    builder, polygons = PolygonBuilder(grid, 0, None), 0
    started = time.perf_counter()
    for row, col in grid.cores():
        window = grid.core(row, col)
        rows, cols = window.toslices()
        polygons += sum(len(shapes) for _, shapes in builder.add(window, mask[rows, cols]))
    polygons += sum(len(shapes) for _, shapes in builder.finish())
    print(f"{args.size}^2 mask, {grid.shape[0] * grid.shape[1]} windows of {args.window} px: "
          f"{time.perf_counter() - started:.1f} s, {polygons} polygons")
    return 0


if __name__ == "__main__":
    sys.exit(main())
