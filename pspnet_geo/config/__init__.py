"""The config wing: named presets, their schema and the settings objects of a run.

Everything here is plain data and validation: no torch, no rasters, so presets and settings
load fast (the ``rio`` plugin and ``pspnet-geo pipelines`` import only this).
"""
