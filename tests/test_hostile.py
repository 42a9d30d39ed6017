"""Hostile and mistaken inputs, files and options, across every command (issue 13).

One table, one shape: each case runs the command line, which must exit with the case's code
(2 for a user's mistake) and one line naming the problem, with no traceback; it must create
nothing in its output folder, leave every input byte for byte as it was and every file of the
inputs' folder in place, and never run code from a file it reads (a planted pickle would
create ``ran_code``). Cases of another shape (a warning and a run that goes on, a killed run)
are tested beside the code they cover; docs/security.md lists them all.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
from pathlib import Path

import dask
import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner

from helpers import AERIAL, ATLANTA, ATLANTA_LABELS
from pspnet_geo.cli.main import cli

TRAIN = "train {scene} -l {labels} --classes background,building --class-column none"
SEGMENT = "segment {scene} -m {model}"
TILE_RULE = "tile size must be between 64 and 4096 px"
CASES = {
    # Options that would destroy or lose data: an output never replaces an input, two outputs
    # of one run never share a file, a device is never replaced.
    "segment: --mask-out is the scene": (f"{SEGMENT} --mask-out {{scene}} --overwrite", "is the input scene"),
    "segment: --proba-out is the scene": (f"{SEGMENT} --proba-out {{scene}} --overwrite", "is the input scene"),
    "segment: --mask-out through a link to the scene": (f"{SEGMENT} --mask-out {{link}} --overwrite",
                                                        "is the input scene"),
    "segment: --mask-out is the model": (f"{SEGMENT} --mask-out {{model}} --overwrite", "is the model"),
    "segment: --out and --mask-out share a file": (f"{SEGMENT} -o {{out}}/x.gpkg --mask-out {{out}}/x.gpkg",
                                                   "same file"),
    "segment: --mask-out and --proba-out share a file": (
        f"{SEGMENT} --mask-out {{out}}/m.tif --proba-out {{out}}/m.tif", "same file"),
    "segment: --mask-out is a pipe": (f"{SEGMENT} --mask-out {{pipe}} --overwrite", "not a regular file"),
    "train: -o is the image": (f"{TRAIN} -o {{scene}} --overwrite", "is an input image"),
    "train: --metrics-log is the labels": (f"{TRAIN} -o {{out}}/m.pt --metrics-log {{labels}} --overwrite",
                                           "is the labels"),
    "evaluate: --json is the prediction": ("evaluate {scene} {labels} --json {scene} --overwrite",
                                           "is the prediction"),
    "vectorize: --preview is the image": ("vectorize {mask} -o {out}/v.gpkg --image {picture} --preview {picture} "
                                          "--overwrite", "is --image"),
    "batch: --merge onto a file it did not write": (
        "batch {scene} --out-dir {out}/b -m {model} --merge {existing}", "pass --overwrite"),
    "demo: a folder holding a model": ("demo --out-dir {demo}", "--overwrite"),
    # Files that carry code, or forged fields.
    "segment: a checkpoint carrying code": ("segment {scene} -m {code} --mask-out {out}/m.tif",
                                            "not a torch checkpoint"),
    "info: a checkpoint carrying code": ("info {code}", "not a torch checkpoint"),
    "train --resume: a state file carrying code": (
        f"{TRAIN} -o {{resumed}} --resume --iterations 1 --backbone-weights none",
        "could run code"),
    "segment: a checkpoint with tile_size 0": ("segment {scene} -m {tile_0} --mask-out {out}/m.tif", "tile_size"),
    "segment: a checkpoint with tile_size '128'": ("segment {scene} -m {tile_text} --mask-out {out}/m.tif",
                                                   "tile_size"),
    "segment: a checkpoint with background '0'": ("segment {scene} -m {background_text} --mask-out {out}/m.tif",
                                                  "background"),
    "segment --resume: OUT.parts is a symbolic link": (
        f"{SEGMENT} -o {{planted}} --resume --tile-size 128 --block-tiles 1", "symbolic link"),
    # Inputs that would give silent wrong results.
    "vectorize: an RGB image as the mask": ("vectorize {aerial} -o {out}/v.gpkg", "3 bands"),
    "vectorize: a float raster as the mask": ("vectorize {float} -o {out}/v.gpkg", "float"),
    "vectorize: --background outside the classes": ("vectorize {mask} -o {out}/v.gpkg --background 999",
                                                     "--background"),
    "evaluate: a float raster as the prediction": ("evaluate {float} {labels}", "float"),
    # Options outside their range: one rule, enforced in every command.
    "segment: --tile-size 0": (f"{SEGMENT} --mask-out {{out}}/m.tif --tile-size 0", TILE_RULE),
    "segment: --tile-size 16": (f"{SEGMENT} --mask-out {{out}}/m.tif --tile-size 16", TILE_RULE),
    "segment: --tile-size 20000": (f"{SEGMENT} --mask-out {{out}}/m.tif --tile-size 20000", TILE_RULE),
    "segment: --overlap equal to the tile": (f"{SEGMENT} --mask-out {{out}}/m.tif --tile-size 256 --overlap 256",
                                            "overlap"),
    "segment: --block-tiles 0": (f"{SEGMENT} --mask-out {{out}}/m.tif --block-tiles 0", "block"),
    "segment: --threads 0": (f"{SEGMENT} --mask-out {{out}}/m.tif --threads 0", "--threads"),
    "segment: --threads -2": (f"{SEGMENT} --mask-out {{out}}/m.tif --threads -2", "--threads"),
    "segment: a malformed --scheduler": (f"{SEGMENT} --mask-out {{out}}/m.tif --scheduler tcp://host:port",
                                        "scheduler address"),
    "segment: a malformed DASK_SCHEDULER_ADDRESS": (f"{SEGMENT} --mask-out {{out}}/m.tif", "scheduler address",
                                                    {"DASK_SCHEDULER_ADDRESS": "::nonsense::"}),
    "segment: a scene over --max-tiles": (f"{SEGMENT} --mask-out {{out}}/m.tif --max-tiles 1", "--max-tiles"),
    "batch: --threads -2": ("batch {scene} --out-dir {out}/b -m {model} --threads -2", "--threads"),
    "batch: --tile-size 0": ("batch {scene} --out-dir {out}/b -m {model} --tile-size 0", TILE_RULE),
    "train: --tile-size 16": (f"{TRAIN} -o {{out}}/m.pt --tile-size 16", TILE_RULE),
    # Sources a scene names.
    "segment: a VRT whose source is missing": ("segment {missing_vrt} -m {model} --mask-out {out}/m.tif",
                                              "gone.tif, which does not exist"),
    "segment --no-remote-sources: a VRT naming the network": (
        "segment {remote_vrt} -m {model} --mask-out {out}/m.tif --no-remote-sources", "network"),
    # train --config values of the wrong type.
    **{f"train --config: {line}": (f"train --config {{config_{index}}}", message)
       for index, (line, message) in enumerate([
           ("bands: abc", "bands must be a list of integers, not 'abc'"),
           ("patience: x", "patience must be an integer, not 'x'"),
           ("out: 5", "out must be a string, not 5"),
           ("holdout_bounds: [1, 2]", "holdout_bounds must be four numbers"),
           ("label_values: [1, 2]", "label_values must be a string or a mapping, not [1, 2]"),
           ("groups: 7", "groups must be a list of strings, not 7"),
           ("images: 7", "images must be a string or a list of strings, not 7"),
           ("metrics_log: [1]", "metrics_log must be a string, not [1]"),
           ("lr: fast", "lr must be a number, not 'fast'"),
       ])},
}
USAGE = ("Usage: ", "Try '")
"""Click's reminder of the usage, printed above its one-line error for a value out of range."""
CONFIG_LINES = [case.split(": ", 1)[1] for case in CASES if case.startswith("train --config: ")]


class RunsCode:
    """Unpickling this creates ``ran_code`` beside the hostile files."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def digests(folder: Path) -> dict[str, str]:
    """Every plain file under ``folder`` (links not followed) with its content's hash."""
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file() and not path.is_symlink()}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory, atlanta_model) -> dict[str, Path]:
    """The hostile inputs, in one folder (copies: a mistake must not touch the bundled files)."""
    folder = tmp_path_factory.mktemp("hostile")
    paths = {name: folder / name for name in ("scene.tif", "labels.geojson", "model.pt", "mask.tif",
                                              "existing.gpkg", "picture.png", "float.tif", "code.pt", "aerial.tif")}
    shutil.copy(ATLANTA, paths["scene.tif"])
    shutil.copy(ATLANTA_LABELS, paths["labels.geojson"])
    shutil.copy(atlanta_model, paths["model.pt"])
    shutil.copy(AERIAL, paths["aerial.tif"])
    shutil.copy(ATLANTA, paths["picture.png"])       # an input named like a preview: checked by path
    shutil.copy(ATLANTA_LABELS, paths["existing.gpkg"])
    (folder / "link.tif").symlink_to(paths["scene.tif"])
    os.mkfifo(folder / "pipe")      # not /dev/null: a regression run as root would replace the machine's
    assert CliRunner().invoke(cli, ["segment", str(paths["scene.tif"]), "-m", str(atlanta_model), "--mask-out",
                                    str(paths["mask.tif"]), "--tile-size", "256", "--no-progress"]).exit_code == 0
    _write_float(paths["float.tif"])
    marker = folder / "ran_code"
    paths["code.pt"].write_bytes(pickle.dumps(RunsCode(marker)))
    torch.save({"weights": RunsCode(marker)}, folder / "resumed.state.pt")
    _forge(atlanta_model, folder)
    _write_vrts(folder)
    (folder / "demo").mkdir()
    (folder / "demo" / "model.pt").write_bytes(b"a model of the user's own")
    (folder / "elsewhere").mkdir()
    (folder / "planted.gpkg.parts").symlink_to(folder / "elsewhere")
    for index, line in enumerate(CONFIG_LINES):
        (folder / f"config_{index}.yaml").write_text(
            f"images: [{paths['scene.tif']}]\nlabels: [{paths['labels.geojson']}]\nclasses: background,building\n"
            f"out: {folder / 'never.pt'}\n{line}\n")
    names = {name: folder / name for name in os.listdir(folder)}
    return {Path(name).stem if name.count(".") == 1 else name: path for name, path in names.items()} | {
        "link": folder / "link.tif", "pipe": folder / "pipe", "resumed": folder / "resumed.pt", "planted": folder / "planted.gpkg",
        "folder": folder, "marker": marker}


def _write_float(path: Path) -> None:
    with rasterio.open(ATLANTA) as src:
        profile = {**src.profile, "count": 1, "dtype": "float32", "nodata": None}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.random.default_rng(0).random((1, profile["height"], profile["width"]), np.float32))


def _forge(model: Path, folder: Path) -> None:
    """Checkpoints with one field forged, as a hand-edited or crafted file would have it."""
    payload = torch.load(model, weights_only=True)
    for name, field, value in (("tile_0", "tile_size", 0), ("tile_text", "tile_size", "128"),
                               ("background_text", "background", "0")):
        torch.save({**payload, field: value}, folder / f"{name}.pt")


def _write_vrts(folder: Path) -> None:
    """A VRT whose source file is gone, and one naming a network source."""
    with rasterio.open(ATLANTA) as src:
        width, height = src.width, src.height
    for name, source in (("missing_vrt", str(folder / "gone.tif")), ("remote_vrt", "/vsicurl/http://127.0.0.1:9/x.tif")):
        (folder / f"{name}.vrt").write_text(
            f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}"><VRTRasterBand dataType="Byte" band="1">'
            f'<SimpleSource><SourceFilename relativeToVRT="0">{source}</SourceFilename><SourceBand>1</SourceBand>'
            f'</SimpleSource></VRTRasterBand></VRTDataset>')


@pytest.mark.parametrize("case", CASES)
def test_a_hostile_input_or_option_is_one_line_and_changes_nothing(tmp_path, hostile, monkeypatch, case):
    template, message, *env = CASES[case]
    for name, value in (env[0] if env else {}).items():
        monkeypatch.setenv(name, value)
    dask.config.refresh()     # Dask reads its environment variables only when asked
    args = template.format(out=tmp_path, **{name: str(path) for name, path in hostile.items()}).split()
    before = digests(hostile["folder"])
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line and not line.startswith(USAGE)]
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.output, result.output
    assert digests(hostile["folder"]) == before
    assert os.listdir(tmp_path) == [] and list(Path(hostile["elsewhere"]).iterdir()) == []
    assert not hostile["marker"].exists() and hostile["pipe"].is_fifo()


@pytest.fixture(autouse=True)
def _dask_config_from_a_clean_environment():
    """After a case that set Dask's environment variables, Dask's settings are read anew."""
    yield
    dask.config.refresh()
