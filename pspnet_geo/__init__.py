"""pspnet-geo: PSPNet segmentation of large georeferenced rasters into polygons."""
