"""Typed, typo-rejecting parameter sections of the blob wing that have no home class elsewhere.

Each dataclass holds the defaults of one params.yaml section (or sub-section) in ONE place; build
it with ``from_dict`` (unknown keys are an :class:`~blobhelpers.core.errors.InputError` naming the
section). Sections that already have a class elsewhere: ``simulate``
(:class:`~blobhelpers.blob.campaign.CampaignConfig`), ``dataset.injection``
(:class:`~blobhelpers.blob.injection.InjectionConfig`), ``train.models.<name>``
(:class:`~blobhelpers.blob.training.TrainConfig`), ``monitor``
(:class:`~blobhelpers.blob.monitor.MonitorConfig`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core.config import dataclass_from_params

__all__ = ["DifferenceConfig", "DatasetConfig", "TrainSection", "EvaluateConfig", "MonitorTuneConfig",
           "MonitorCampaignConfig", "RegressionConfig", "CrossSimConfig", "StressConfig"]


class _FromDict:
    SECTION = ""
    IGNORE: tuple = ()

    @classmethod
    def from_dict(cls, d: dict | None):
        return dataclass_from_params(cls, d, cls.SECTION, cls.IGNORE)


@dataclass
class DifferenceConfig(_FromDict):
    """``difference``: how difference images are made and scaled for the ISR models."""

    SECTION = "difference"
    history: int = 30            # frames in the median stack
    register: bool = True        # measure the sub-pixel shift and subtract the predicted dips
    clip_factor: float = 0.5     # ISR: clip at 0.5 x zscale limits
    border_rule: str = "symmetric"
    test_fraction: float = 0.3   # last fraction of the difference images (by date) -> test set
    min_history: int | None = None


@dataclass
class DatasetConfig(_FromDict):
    """``dataset``: subframe recipes (``injection`` is an InjectionConfig section)."""

    SECTION = "dataset"
    n_train: int = 2000
    n_val: int = 500
    n_test: int = 1000
    positive_fraction: float = 0.5
    test_cutouts: int = 5
    noise_sigma: float = 0.75
    injection: dict = field(default_factory=dict)

    def __post_init__(self):
        from .injection import InjectionConfig

        InjectionConfig.from_dict(self.injection)  # typos in the sub-section fail here too


@dataclass
class TrainSection(_FromDict):
    """``train``: the operating point of model selection and one TrainConfig per model."""

    SECTION = "train"
    select_fpr: float = 0.03
    models: dict = field(default_factory=dict)

    def __post_init__(self):
        from .training import TrainConfig

        for name, d in (self.models or {}).items():
            TrainConfig.from_dict(d)


@dataclass
class EvaluateConfig(_FromDict):
    """``evaluate``: operating point and saliency of the evaluation stage."""

    SECTION = "evaluate"
    fpr_target: float = 0.03
    dip_threshold: float = 0.01
    saliency_examples: int = 3
    smoothgrad_samples: int = 16
    smoothgrad_noise: float = 0.15


@dataclass
class MonitorTuneConfig(_FromDict):
    """``monitor.tune``: the development campaign the alert thresholds are chosen on."""

    SECTION = "monitor.tune"
    seed: int = 20211300
    n_frames: int = 150
    event_day_fraction: float = 0.35
    new_blob_rate: float | None = None
    fa_target: float = 2.0
    max_candidates: int = 40
    snr_grid: list = field(default_factory=lambda: [5.5])
    p_grid: list = field(default_factory=lambda: [0.5])
    veto_grid: list = field(default_factory=lambda: [8.0])


@dataclass
class MonitorCampaignConfig(_FromDict):
    """``monitor.campaign``: the regression campaign (a seed + CampaignConfig overrides)."""

    SECTION = "monitor.campaign"
    seed: int = 20211100

    @classmethod
    def from_dict(cls, d: dict | None):
        from .campaign import CampaignConfig

        from ..core.errors import InputError

        d = dict(d or {})
        seed = d.pop("seed", cls.seed)
        try:
            CampaignConfig.from_dict(d)  # every other key must be a campaign parameter
        except InputError as exc:
            raise InputError(str(exc).replace("simulate:", "monitor.campaign:", 1)) from exc
        return cls(seed=int(seed))


@dataclass
class RegressionConfig(_FromDict):
    """``monitor.regression``: scoring the monitor against the truth."""

    SECTION = "monitor.regression"
    match_px: float = 2.0
    min_depth: float = 0.03


@dataclass
class StressConfig(_FromDict):
    """``crosssim.stress``: the nuisance stress matrix."""

    SECTION = "crosssim.stress"
    n_per: int = 4
    snr: float = 6.0
    levels: dict = field(default_factory=dict)
    monitor_levels: dict = field(default_factory=dict)
    monitor_n_per: int = 2

    def __post_init__(self):
        from .crosssim import NUISANCE_NAMES
        from ..core.errors import InputError

        bad = sorted((set(self.levels or {}) | set(self.monitor_levels or {})) - set(NUISANCE_NAMES))
        if bad:
            raise InputError(f"crosssim.stress: unknown nuisance(s) {bad}; known: {list(NUISANCE_NAMES)}")


@dataclass
class CrossSimConfig(_FromDict):
    """``crosssim``: the independent cross-simulator evaluation sets (evaluation only)."""

    SECTION = "crosssim"
    seed: int = 20261130
    n_quiet_diff: int = 40
    n_new_diff: int = 40
    n_quiet_series: int = 10
    n_new_series: int = 12
    n_history: int = 30
    stress: dict = field(default_factory=dict)

    def __post_init__(self):
        StressConfig.from_dict(self.stress)
