"""Options that would destroy or lose data: an output never replaces an input, two outputs of
one run never share a file, and a device, pipe or folder is never replaced. Each case exits 2
with one line, writes nothing, and leaves every input byte for byte as it was."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from helpers import ATLANTA, ATLANTA_LABELS
from pspnet_geo.cli.main import cli


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


CASES = {
    "segment: --mask-out is the scene": (
        "segment {scene} -m {model} --mask-out {scene} --overwrite", "is the input scene"),
    "segment: --proba-out is the scene": (
        "segment {scene} -m {model} --proba-out {scene} --overwrite", "is the input scene"),
    "segment: --mask-out through a link to the scene": (
        "segment {scene} -m {model} --mask-out {link} --overwrite", "is the input scene"),
    "segment: --mask-out is the model": (
        "segment {scene} -m {model} --mask-out {model} --overwrite", "is the model"),
    "segment: --out and --mask-out share a file": (
        "segment {scene} -m {model} -o {folder}/x.gpkg --mask-out {folder}/x.gpkg", "same file"),
    "segment: --mask-out and --proba-out share a file": (
        "segment {scene} -m {model} --mask-out {folder}/m.tif --proba-out {folder}/m.tif", "same file"),
    "segment: --mask-out is a device": (
        "segment {scene} -m {model} --mask-out /dev/null --overwrite", "not a regular file"),
    "train: -o is the image": (
        "train {scene} -l {labels} --classes background,building --class-column none -o {scene} --overwrite",
        "is an input image"),
    "train: --metrics-log is the labels": (
        "train {scene} -l {labels} --classes background,building --class-column none -o {folder}/m.pt "
        "--metrics-log {labels} --overwrite", "is the labels"),
    "evaluate: --json is the prediction": (
        "evaluate {scene} {labels} --json {scene} --overwrite", "is the prediction"),
    "vectorize: --preview is the image": (
        "vectorize {mask} -o {folder}/v.gpkg --image {png} --preview {png} --overwrite", "is --image"),
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, atlanta_model) -> dict[str, Path]:
    """Copies of the inputs (a mistake here must not touch the bundled files)."""
    folder = tmp_path_factory.mktemp("hostile")
    scene, labels, model = folder / "scene.tif", folder / "labels.geojson", folder / "model.pt"
    shutil.copy(ATLANTA, scene)
    shutil.copy(ATLANTA_LABELS, labels)
    shutil.copy(atlanta_model, model)
    (folder / "link.tif").symlink_to(scene)
    mask = folder / "mask.tif"
    assert CliRunner().invoke(cli, ["segment", str(scene), "-m", str(model), "--mask-out", str(mask),
                                    "--tile-size", "256", "--no-progress"]).exit_code == 0
    png = folder / "picture.png"
    shutil.copy(scene, png)       # an input named like a preview: the check is by path, not by kind
    return {"scene": scene, "labels": labels, "model": model, "link": folder / "link.tif", "mask": mask,
            "png": png}


@pytest.mark.parametrize("case", CASES)
def test_an_option_that_would_destroy_or_lose_data_is_refused(tmp_path, inputs, case):
    template, message = CASES[case]
    args = template.format(folder=tmp_path, **inputs).split()
    before = {name: digest(path) for name, path in inputs.items()}
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert {name: digest(path) for name, path in inputs.items()} == before
    assert os.listdir(tmp_path) == []
    assert Path("/dev/null").is_char_device()
