"""Small host-side measurements behind choices in the block and client paths (issue 12).

Each line is one measurement, both sides in this process, one after the other:

- opening a scene and reading a 64 px window, per read, against reading through a dataset kept
  open (why each thread keeps its scenes open, ``pspnet_geo/scene.py``): a tiled GeoTIFF and a
  VRT of 1,600 chips of 256 px;
- ``np.argmax`` over the first axis of (classes, 2048, 2048) logits against
  ``stitch.class_ids`` (why class ids are picked class by class), ms per megapixel;
- ``rasterio.features.shapes`` over 8 windows of 1024 px, in one thread and in two (whether
  threads can share the vectorising: they cannot while it holds the GIL);
- reading the windows of ``segment``'s blocks (768 px apart, 896 px with their halos) of a
  tiled deflate 8192 px mosaic in two threads, each through a dataset of its own, against
  through ``pspnet_geo.scene`` (internal tiles decoded once for both threads);
- writing a 4096 px class mask block by block with deflate and with ZSTD, ms per megapixel and
  bytes (masks are deflate: every reader has it; ZSTD would need to be clearly faster).

About a minute on 2 CPU cores: ``python benchmarks/host_micro.py [--work-dir DIR]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from harness import use_checkout

ROOT = use_checkout()

import rasterio  # noqa: E402
import rasterio.features  # noqa: E402
from affine import Affine  # noqa: E402
from rasterio.windows import Window  # noqa: E402

from pspnet_geo.segmentation.stitch import class_ids  # noqa: E402

SOURCE = ROOT / "pspnet_geo" / "sample_data" / "aerial_rgb_cog" / "cogeo.tif"
CHIPS, CHIP = 40, 256


def _clock(function, repeat: int) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        function()
    return (time.perf_counter() - started) / repeat


def opening(path: Path, repeat: int = 20) -> str:
    window = Window(0, 0, 64, 64)

    def reopen():
        with rasterio.open(path) as src:
            src.read(window=window)

    with rasterio.open(path) as kept:
        open_s = _clock(reopen, repeat)
        kept_s = _clock(lambda: kept.read(window=window), repeat)
    return f"{path.name}: open and read {1000 * open_s:.1f} ms, read kept open {1000 * kept_s:.2f} ms"


def chip_mosaic(work: Path) -> Path:
    """A VRT over 40 x 40 chips of 256 px cut from the bundled image (written once)."""
    vrt = work / "chips.vrt"
    if vrt.exists():
        return vrt
    with rasterio.open(SOURCE) as src:
        data, crs, (a, _, c, _, e, f) = src.read(window=Window(0, 0, CHIP, CHIP)), src.crs, src.transform[:6]
    sources = {band: [] for band in (1, 2, 3)}
    for row in range(CHIPS):
        for col in range(CHIPS):
            name = work / f"chip_{row}_{col}.tif"
            with rasterio.open(name, "w", driver="GTiff", width=CHIP, height=CHIP, count=3, dtype="uint8", crs=crs,
                               transform=Affine(a, 0, c + col * CHIP * a, 0, e, f + row * CHIP * e)) as dst:
                dst.write(data)
            for band in sources:
                sources[band].append(
                    f'<SimpleSource><SourceFilename relativeToVRT="1">{name.name}</SourceFilename>'
                    f'<SourceBand>{band}</SourceBand><SrcRect xOff="0" yOff="0" xSize="{CHIP}" ySize="{CHIP}"/>'
                    f'<DstRect xOff="{col * CHIP}" yOff="{row * CHIP}" xSize="{CHIP}" ySize="{CHIP}"/></SimpleSource>')
    bands = "".join(f'<VRTRasterBand dataType="Byte" band="{band}">{"".join(parts)}</VRTRasterBand>'
                    for band, parts in sources.items())
    vrt.write_text(f'<VRTDataset rasterXSize="{CHIPS * CHIP}" rasterYSize="{CHIPS * CHIP}">'
                   f"<GeoTransform>{c}, {a}, 0, {f}, 0, {e}</GeoTransform>{bands}</VRTDataset>")
    return vrt


def picking(classes: int) -> str:
    logits = np.random.default_rng(classes).standard_normal((classes, 2048, 2048)).astype(np.float32)
    megapixels = 2048 * 2048 / 1e6
    numpy_s = _clock(lambda: np.argmax(logits, axis=0).astype(np.uint8), 5)
    ours_s = _clock(lambda: class_ids(logits), 5)
    return (f"{classes} classes: np.argmax(axis=0) {1000 * numpy_s / megapixels:.1f} ms/Mpx, "
            f"class_ids {1000 * ours_s / megapixels:.1f} ms/Mpx")


def polygonising() -> str:
    rng = np.random.default_rng(0)
    mask = np.kron((rng.random((128, 128)) > 0.6).astype(np.uint8), np.ones((8, 8), np.uint8))

    def shapes(_):
        return len(list(rasterio.features.shapes(mask, mask=mask > 0, connectivity=4)))

    one = _clock(lambda: [shapes(i) for i in range(8)], 1)
    with ThreadPoolExecutor(2) as pool:
        two = _clock(lambda: list(pool.map(shapes, range(8))), 1)
    return f"shapes over 8 windows of 1024 px: one thread {one:.2f} s, two threads {two:.2f} s"


def block_reads(work: Path, size: int = 8192, stride: int = 768, halo: int = 64) -> str:
    import threading

    from segment_overhead import build_scene

    from pspnet_geo.scene import open_scene, read_finite

    path = build_scene(work / f"scene_{size}.tif", size)
    windows = [Window(max(0, col - halo), max(0, row - halo), min(size, col + stride + halo) - max(0, col - halo),
                      min(size, row + stride + halo) - max(0, row - halo))
               for row in range(0, size, stride) for col in range(0, size, stride)]
    local = threading.local()

    def own_dataset(window: Window) -> None:
        if not hasattr(local, "dataset"):
            local.dataset = rasterio.open(path)
        local.dataset.read(window=window), local.dataset.dataset_mask(window=window)

    scene = open_scene(path)
    with ThreadPoolExecutor(2) as pool:
        own = _clock(lambda: list(pool.map(own_dataset, windows)), 1)
    with ThreadPoolExecutor(2) as pool:
        shared = _clock(lambda: list(pool.map(lambda w: read_finite(scene, w, [1, 2, 3]), windows)), 1)
    return (f"block windows of a {size} px deflate mosaic, 2 threads: a dataset per thread {own:.2f} s, "
            f"tiles decoded once {shared:.2f} s")


def writing(work: Path, compress: str) -> str:
    rng = np.random.default_rng(0)
    mask = np.kron((rng.random((512, 512)) > 0.6).astype(np.uint8), np.ones((8, 8), np.uint8))
    path, block = work / f"mask_{compress}.tif", 256
    started = time.perf_counter()
    with rasterio.open(path, "w", driver="GTiff", width=4096, height=4096, count=1, dtype="uint8", tiled=True,
                       blockxsize=block, blockysize=block, compress=compress) as dst:
        for row in range(0, 4096, block):
            for col in range(0, 4096, block):
                dst.write(mask[row:row + block, col:col + block], 1, window=Window(col, row, block, block))
    seconds = time.perf_counter() - started
    return f"mask write {compress}: {1000 * seconds / 16.78:.1f} ms/Mpx, {os.path.getsize(path):,} bytes"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work-dir", type=Path, help="where the chips and files go (default: a temp folder)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pspnet-geo-micro-") as scratch:
        work = args.work_dir or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        lines = [opening(SOURCE), opening(chip_mosaic(work)), picking(2), picking(5), polygonising(),
                 block_reads(work), writing(work, "deflate"), writing(work, "zstd")]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
