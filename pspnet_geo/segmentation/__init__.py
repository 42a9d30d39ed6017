"""The segment wing: a scene's tiles through the model into a blended class mask.

tiling (tile plan) -> blocks and inference (run the model over a block's tiles, on the
executors) -> stitch (blend seams between blocks) -> raster_outputs (write the mask);
:mod:`~pspnet_geo.segmentation.streaming` runs a plan's blocks and hands finished mask windows to
the vector wing; :mod:`~pspnet_geo.segmentation.run` is ``segment`` around it. Nothing is imported here, so importing a module of this wing loads only what it needs.
"""
