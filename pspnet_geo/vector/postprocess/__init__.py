"""Clean-up of the polygons made from a class mask, configured per class in the presets.

Raster steps (sieving, skeletons for road centerlines) run on mask windows before they are
polygonised; geometry steps (specks, holes, bridges, regularisation, simplification, shared
land-cover edges) run on the finished polygons, in metres whatever the CRS.
"""
