"""Draw docs/images/styled-outputs.png: the demo's real outputs as a GIS shows them, from what
the files themselves carry (docs/gis.md).

    pspnet-geo demo --out-dir demo
    python docs/make_gis_picture.py --demo demo

Left, the class mask over the scene: colours from the mask's colour table, legend labels from
its GDAL category names (read through GDAL, as QGIS reads them). Right, the polygons drawn with
the QGIS style stored in the GeoPackage's ``layer_styles`` table: fill, opacity and outline from
the style's XML. Nothing here knows the classes or colours but the files. Headless (matplotlib's
Agg backend); no QGIS needed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import geopandas as gpd
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import rasterio  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

import pspnet_geo  # noqa: E402
from pspnet_geo.maskfile import NODATA_CLASS, category_names, mask_colours  # noqa: E402
from pspnet_geo.vector.styles import qml_categories, read_style  # noqa: E402

DOCS = Path(__file__).resolve().parent
SCENE = Path(pspnet_geo.__file__).parent / "sample_data" / "spacenet_atlanta_buildings" / "image.tif"


def stretched(path: Path) -> tuple[np.ndarray, tuple]:
    """Band 1 stretched to 2-98% for display, and its extent for imshow."""
    with rasterio.open(path) as src:
        pixels = src.read(1).astype(float)
        left, bottom, right, top = src.bounds
    low, high = np.percentile(pixels[pixels > 0], (2, 98))
    return np.clip((pixels - low) / (high - low), 0, 1), (left, right, bottom, top)


def categories(gpkg: Path, layer: str) -> list[tuple[str, tuple[float, ...], tuple[float, ...]]]:
    """(value, fill RGBA, outline RGBA) of each category of the layer's default QGIS style."""
    return [(value, _rgba(props["color"]), _rgba(props["outline_color"]))
            for value, _, props in qml_categories(read_style(gpkg, layer))]


def _rgba(text: str) -> tuple[float, ...]:
    return tuple(int(v) / 255 for v in text.split(",")[:4])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--demo", type=Path, required=True, help="the folder `pspnet-geo demo` wrote")
    args = parser.parse_args()
    mask_path, gpkg = args.demo / "buildings_mask.tif", args.demo / "buildings.gpkg"
    image, extent = stretched(SCENE)
    with rasterio.open(mask_path) as src:
        mask = src.read(1)
    names, colours = category_names(mask_path), mask_colours(mask_path)
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 6.4), dpi=100)
    for axis in (left, right):
        axis.imshow(image, cmap="gray", extent=extent)
        axis.set_xticks([]), axis.set_yticks([])
    overlay = np.zeros((*mask.shape, 4))
    legend = []
    for value in np.unique(mask):
        if value == NODATA_CLASS or value == 0:     # background and nodata left clear, as a GIS would
            continue
        colour = np.array(colours[value]) / 255
        overlay[mask == value] = (*colour, 0.6)
        legend.append(Patch(color=colour, label=f"{value}: {names[value]} (category)"))
    left.imshow(overlay, extent=extent)
    left.legend(handles=legend, loc="lower left")
    left.set_title("buildings_mask.tif: colour table, GDAL category names")
    polygons = gpd.read_file(gpkg, layer="buildings")
    handles = []
    for value, fill, outline in categories(gpkg, "buildings"):
        chosen = polygons[polygons["class_name"] == value]
        chosen.plot(ax=right, facecolor=fill, edgecolor=outline, linewidth=1.2)
        handles.append(Patch(facecolor=fill, edgecolor=outline, label=f"{value} ({len(chosen)} polygons)"))
    right.legend(handles=handles, loc="lower left")
    right.set_xlabel(""), right.set_ylabel("")
    right.set_title("buildings.gpkg: the layer's QGIS style (layer_styles)")
    figure.suptitle("pspnet-geo demo outputs on the SpaceNet Atlanta chip, styled from the files alone")
    figure.tight_layout()
    out = DOCS / "images" / "styled-outputs.png"
    figure.savefig(out)
    print(out)


if __name__ == "__main__":
    main()
