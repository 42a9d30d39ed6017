"""The batch wing: many inputs, one segment run each (or one mosaic), a manifest to resume by.

inputs (what to run) -> run and job (one segment run per input, packed onto one executor),
mosaic and vrt (chips of one mosaic as one scene) -> manifest (what was done, to resume).
"""
