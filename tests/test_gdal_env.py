"""The caller's rasterio Env reaches every thread and Dask worker that reads its scenes.

rasterio 1.4 sets an Env's options process-wide only in the main thread (thread-locally in any
other), so the runs here are called from another thread, as a web server or a pool would call
them: there, before pspnet_geo.gdal_env, the reading threads never saw the caller's options.
"""

from __future__ import annotations

import pickle
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import rasterio
from rasterio.env import get_gdal_config
from rasterio.windows import Window

from helpers import ATLANTA
from pspnet_geo.batch.run import run_batch
from pspnet_geo.gdal_env import GdalOptions
from pspnet_geo.maskfile import NODATA_CLASS
from pspnet_geo.segmentation import blocks
from pspnet_geo.segmentation.run import segment

OPTION = "PSPNET_GEO_TEST_OPTION"
CREDENTIALS = (("AWS_ACCESS_KEY_ID", "key-id"), ("AWS_SECRET_ACCESS_KEY", "top-secret"))


def in_another_thread(fn):
    """``fn()`` called from a thread that is not the main one; its result, or its error raised."""
    with ThreadPoolExecutor(1, thread_name_prefix="caller") as caller:
        return caller.submit(fn).result()


def option_here(name: str = OPTION) -> str | None:
    return get_gdal_config(name, normalize=False)


def test_capture_takes_the_envs_options_but_not_this_installations_paths():
    assert GdalOptions.capture() == GdalOptions()
    with rasterio.Env(GDAL_HTTP_TIMEOUT="7", **{OPTION: "yes"}):
        options = GdalOptions.capture()
    found = dict(options.items)
    assert found["GDAL_HTTP_TIMEOUT"] == "7" and found[OPTION] == "yes" and "GDAL_DATA" not in found
    assert pickle.loads(pickle.dumps(options)) == options


def test_applied_options_hold_in_their_thread_only_and_carry_credentials():
    options = GdalOptions(((OPTION, "yes"), *CREDENTIALS))

    def inside() -> tuple:
        with options.applied(), ThreadPoolExecutor(1) as other:
            seen = [option_here(), option_here("AWS_ACCESS_KEY_ID"), option_here("AWS_SECRET_ACCESS_KEY")]
            return seen, other.submit(option_here).result(), rasterio.env.hasenv()

    seen, elsewhere, had_env = in_another_thread(inside)
    assert seen == ["yes", "key-id", "top-secret"] and elsewhere is None and had_env
    assert in_another_thread(option_here) is None and option_here() is None
    assert "top-secret" not in repr(options) and "AWS_SECRET_ACCESS_KEY" in repr(options)


@pytest.fixture
def recorded(monkeypatch) -> list[tuple[str, str | None]]:
    """(thread name, the option as GDAL there sees it) at every block read."""
    seen, real = [], blocks.read_finite

    def recording(*args):
        seen.append((threading.current_thread().name, option_here()))
        return real(*args)

    monkeypatch.setattr(blocks, "read_finite", recording)
    return seen


def test_a_callers_env_reaches_the_threads_reading_its_scene(tmp_path, atlanta_model, recorded):
    scene = small_scene(tmp_path)

    def call() -> None:
        with rasterio.Env(**{OPTION: "yes"}):
            segment(scene, mask_out=tmp_path / "mask.tif", model=atlanta_model, tile_size=256, overlap=64,
                    threads=2, progress=False)

    in_another_thread(call)
    assert len(recorded) > 2 and all(name.startswith("pspnet-geo") for name, _ in recorded)
    assert {value for _, value in recorded} == {"yes"}


def test_a_callers_env_reaches_the_threads_of_a_batch(tmp_path, atlanta_model, recorded):
    scene = small_scene(tmp_path)

    def call() -> None:
        with rasterio.Env(**{OPTION: "yes"}):
            run_batch(scene, tmp_path / "out", model=atlanta_model, tile_size=256, overlap=64, threads=2,
                      progress=False)

    in_another_thread(call)
    assert recorded and {value for _, value in recorded} == {"yes"}


def small_scene(folder, name: str = "small.tif", left: int | None = None) -> str:
    """The top left 512 px of the Atlanta scene, without a nodata value; its left quarter set
    to ``left`` when given."""
    path = folder / name
    with rasterio.open(ATLANTA) as src:
        window = Window(0, 0, 512, 512)
        profile = {**src.profile, "width": 512, "height": 512, "transform": src.window_transform(window)}
        data = src.read(window=window)
    profile.pop("nodata")
    if left is not None:
        data[:, :, :128] = left
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return str(path)


def pam_scene(folder) -> str:
    """A scene whose nodata value (9, the left quarter) is only in its .aux.xml, so GDAL sees
    it unless GDAL_PAM_ENABLED=NO: an option whose effect shows in the pixels GDAL reads."""
    path = small_scene(folder, "pam.tif", left=9)
    (folder / "pam.tif.aux.xml").write_text(
        '<PAMDataset><PAMRasterBand band="1"><NoDataValue>9</NoDataValue></PAMRasterBand></PAMDataset>')
    return path


def test_the_pam_scene_has_nodata_unless_pam_is_off(tmp_path):
    path = pam_scene(tmp_path)
    with rasterio.open(path) as src:
        assert src.nodata == 9
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(path) as src:
        assert src.nodata is None


@pytest.mark.slow
def test_a_callers_env_reaches_dask_worker_processes(tmp_path, atlanta_model):
    path = pam_scene(tmp_path)
    with rasterio.Env(GDAL_PAM_ENABLED="NO"):
        segment(path, mask_out=tmp_path / "mask.tif", model=atlanta_model, tile_size=256, overlap=64,
                block_tiles=1, workers=2, threads=1, progress=False)
    with rasterio.open(tmp_path / "mask.tif") as src:
        mask = src.read(1)
    assert not np.any(mask == NODATA_CLASS)     # the workers read with PAM off: no nodata
