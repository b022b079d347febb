"""Datasets (imports io, sim, preprocess): the project's subframe recipes, the ISR's recipe, the data stage.

Modules
-------
dataset
    train/validation/test subframe recipes with injected blobs, the held-out cutout split
isrrecipe
    the ISR 2021-08 recipe as its released code builds subframes (pasted cutouts)
datastage
    stage data_prep as functions: campaign -> difference images -> dataset recipes
"""

__all__ = ["dataset", "isrrecipe", "datastage"]
