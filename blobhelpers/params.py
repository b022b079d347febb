"""params.yaml checked as a whole: every section with its typed class, from both wings.

Each wing declares the classes of its own sections (the blob wing's in
:mod:`blobhelpers.blob.sections` and its monitor and ISR-recipe modules, the SVM wing's in
:mod:`blobhelpers.svm.sections`); this module, above both wings, puts them together, so the core
never names a wing's class. ``blobhelpers params check [FILE]`` runs :func:`check` (exit 2 naming the
section and the key on an unknown key or a wrong type).
"""

from __future__ import annotations

from pathlib import Path

from blobhelpers.blob.data.isrrecipe import IsrRecipeConfig
from blobhelpers.blob.detect.monitor.config import MonitorConfig
from blobhelpers.blob.sections import (CampaignConfig, CrossSimConfig, DatasetConfig, DifferenceConfig, EvaluateConfig,
                                       TrainSection)
from blobhelpers.core.config import load_params, validate_params
from blobhelpers.svm.sections import SvmImagesSection, SvmSection, SvmSimSection

__all__ = ["SECTIONS", "check"]

#: The typed class of every params.yaml section (sub-sections are checked by their section's class).
SECTIONS = {
    "simulate": CampaignConfig,
    "difference": DifferenceConfig,
    "dataset": DatasetConfig,
    "train": TrainSection,
    "evaluate": EvaluateConfig,
    "monitor": MonitorConfig,
    "crosssim": CrossSimConfig,
    "isr_recipe": IsrRecipeConfig,
    "svm": SvmSection,
    "svm_sim": SvmSimSection,
    "svm_images": SvmImagesSection,
}


def check(params: dict | str | Path | None = None, source: str | None = None) -> dict:
    """Validate a params dict or file (default: the project's params.yaml); the typed sections by name."""
    if params is None or isinstance(params, (str, Path)):
        source = source or str(params or "params.yaml")
        params = load_params(params)
    return validate_params(params, SECTIONS, source or "params.yaml")
