"""STAC in and out: Items as scenes (:mod:`.inputs`), and an Item describing a run's outputs
(:mod:`.outputs`), through pystac."""
