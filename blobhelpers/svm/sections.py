"""Typed, typo-rejecting params.yaml sections of the svm wing (``svm``, ``svm_sim``, ``svm_images``).

The defaults of each section live here, once; ``from_dict`` rejects unknown keys with an
:class:`~blobhelpers.core.errors.InputError` naming the section (a typo must not silently fall back
to a default). ``svm.models`` entries are checked by :func:`blobhelpers.svm.evaluate.resolve_candidates`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from blobhelpers.core.config import dataclass_from_params

__all__ = ["SvmSection", "SvmSimSection", "SvmImagesSection"]


@dataclass
class SvmSection:
    """``svm``: the labelled file, the nested CV, the selection criterion and the candidates."""

    labelled: str = "data/svm/svm_labeled_2021-07-28_dev.csv"
    labelled_cat_encoding: str = "spacekit-2021"
    unlabelled: str = "data/svm/svm_unlabeled_2021-10-06.csv"
    cv_splits: int = 5
    inner_splits: int = 3
    inner_repeats: int = 1
    repeats: int = 3
    fa_target: float = 0.05
    selection: str = "roc_auc_real"
    reference: str = "gb_default"
    importance_repeats: int = 3
    models: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict | None) -> "SvmSection":
        return dataclass_from_params(cls, d, "svm")


@dataclass
class SvmSimSection:
    """``svm_sim``: simulated visits and their spacekit-style corruptions (stage 13)."""

    n_visits: int = 30
    size: int = 256
    detectors: list = field(default_factory=lambda: ["ir", "uvis", "wfc", "hrc", "sbc"])
    modes: list = field(default_factory=lambda: ["stat", "stoc"])
    expos: list = field(default_factory=lambda: ["all", "sub"])
    shift_max: float = 0.8
    rot_max: float = 0.02
    threshold_px: float = 1.0
    min_matches: int = 1

    @classmethod
    def from_dict(cls, d: dict | None) -> "SvmSimSection":
        return dataclass_from_params(cls, d, "svm_sim")


@dataclass
class SvmImagesSection:
    """``svm_images``: tabular vs image models on the simulated visits (stage 14)."""

    n_splits: int = 3
    fa_target: float = 0.05
    epochs: int = 12
    inner_splits: int = 2
    models: list = field(default_factory=lambda: ["tabular", "cnn2d", "stacked"])
    spacekit_epochs: int = 1
    tabular: str = "logreg"

    @classmethod
    def from_dict(cls, d: dict | None) -> "SvmImagesSection":
        return dataclass_from_params(cls, d, "svm_images")

    def comparison(self, tab_params: dict) -> dict:
        """Keyword arguments of :func:`blobhelpers.svm.ensemble.compare_models` for stage 14: the
        configured models plus spacekit's ensemble (its own few epochs) when ``spacekit_epochs > 0``,
        all on the same folds; *tab_params*: the tabular model's parameters (stage 11's)."""
        models = list(self.models)
        epochs = {m: self.epochs for m in models}
        if self.spacekit_epochs > 0:
            models += [] if "spacekit" in models else ["spacekit"]
            epochs["spacekit"] = self.spacekit_epochs
        return {"models": models, "epochs": epochs, "n_splits": self.n_splits, "fa_target": self.fa_target,
                "tabular": self.tabular, "params": {"tabular": tab_params, "stacked": {
                    "tabular_params": tab_params, "inner_splits": self.inner_splits}}}
