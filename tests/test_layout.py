"""The package's layout: imports point down through the wings, light wings load no torch, and
every public name is one object however it is reached."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

import pspnet_geo

PACKAGE = Path(pspnet_geo.__file__).parent

_EDGES = {"demonstration", "cli"}
# Shared modules, below every wing: light ones (no torch), and the model's, which load torch.
LIGHT = {"errors", "maskfile", "stamps", "outputs", "quiet", "scene", "decoded_tiles", "cog", "sources", "preview",
         "paths", "gdal_env", "stac", "labels", "datasets", "__init__"}
HEAVY = {"models", "checkpoint"}
_WINGS = {"vector", "segmentation", "batch", "training", "evaluation"}
_EVERYTHING = {path.name.removesuffix(".py") for path in PACKAGE.iterdir()
               if path.suffix == ".py" or (path / "__init__.py").exists()}
# What each part of the package may never import: the wings above it, and the edges.
FORBIDDEN = {
    "config": _EVERYTHING - {"config", "errors"},
    "light": _WINGS | HEAVY | _EDGES,
    "heavy": _WINGS | _EDGES,
    "vector": {"segmentation", "batch", "training", "evaluation"} | HEAVY | _EDGES,
    "segmentation": {"batch", "training", "evaluation"} | _EDGES,
    "evaluation": {"segmentation", "batch", "training"} | HEAVY | _EDGES,
    "batch": {"training", "evaluation"} | _EDGES,
    "training": {"batch"} | _EDGES,   # validation scores with evaluation's pixel metrics
    "demonstration": {"cli"},
    "cli": set(),
}


def _part(path: Path) -> str:
    """The wing, edge or "shared" a module file belongs to."""
    top = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
    return "light" if top in LIGHT else "heavy" if top in HEAVY else top


def _imported_parts(path: Path) -> set[str]:
    """The top-level parts of pspnet_geo a module imports, at any depth of its code (a name
    imported from the package itself counts as the module that defines it)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        if isinstance(node, ast.ImportFrom) and node.module == "pspnet_geo":
            names = [pspnet_geo._EXPORTS.get(alias.name, f"pspnet_geo.{alias.name}") for alias in node.names]
        found |= {name.split(".")[1] for name in names if name.startswith("pspnet_geo.")}
    return found


@pytest.mark.parametrize("path", sorted(p for p in PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down_through_the_wings(path):
    part = _part(path)
    assert part in FORBIDDEN, f"{path} is in no known part of the package"
    wrong = _imported_parts(path) & FORBIDDEN[part]
    assert not wrong, f"{path.relative_to(PACKAGE)} ({part}) imports {sorted(wrong)}"


def test_config_evaluation_and_vector_load_no_torch():
    """Presets, settings, evaluation and vectorising are used where torch is not wanted (rio,
    notebooks, a machine that only vectorises masks)."""
    code = ("import sys, pspnet_geo.config.pipelines, pspnet_geo.config.settings, pspnet_geo.evaluation, "
            "pspnet_geo.vector.vectorize_file, pspnet_geo.vector.merge, pspnet_geo.maskfile; "
            "print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_export_is_one_object_after_every_submodule_is_imported():
    for module in pkgutil.walk_packages(pspnet_geo.__path__, "pspnet_geo."):
        if module.name != "pspnet_geo.presets":
            importlib.import_module(module.name)
    for name in pspnet_geo.__all__:
        first, second = getattr(pspnet_geo, name), getattr(pspnet_geo, name)
        assert first is second, name
        assert not isinstance(first, types.ModuleType), f"pspnet_geo.{name} is a module, not the export"
        assert callable(first), name
