"""The vector wing: class-mask windows in, cleaned polygons and centerlines out, written.

mask_windows (windows of a finished mask) -> polygonize (polygons merged across window
seams) -> postprocess (per-class clean-up) -> vectorize (tables) -> io (files); merge joins
several runs' files. This wing never imports the segment or batch wings.
"""
