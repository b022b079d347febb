"""Typed, typo-rejecting parameter sections of the blob wing: the bottom of the wing, free of Keras.

Each dataclass holds the defaults of one params.yaml section (or sub-section) in ONE place; build
it with ``from_dict``: an unknown key, or a value of the wrong type, is an
:class:`~blobhelpers.core.errors.InputError` naming the section and the key. Every layer of the
wing imports its configuration from here (this module imports only :mod:`blobhelpers.core`), so
reading a configuration never loads the simulator, TensorFlow or the evaluation code. The one
section with its class elsewhere is ``monitor``
(:class:`~blobhelpers.blob.detect.monitor.config.MonitorConfig`, which builds on the detection
core's settings); ``isr_recipe`` is
:class:`~blobhelpers.blob.data.isrrecipe.IsrRecipeConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from blobhelpers.core.config import dataclass_from_params
from blobhelpers.core.errors import InputError

__all__ = ["NUISANCE_NAMES", "CampaignConfig", "InjectionConfig", "TrainConfig", "DifferenceConfig", "DatasetConfig",
           "TrainSection", "EvaluateConfig", "MonitorTuneConfig", "MonitorCampaignConfig", "RegressionConfig", "CrossSimConfig", "StressConfig"]


class _FromDict:
    SECTION = ""
    IGNORE: tuple = ()

    @classmethod
    def from_dict(cls, d: dict | None):
        return dataclass_from_params(cls, d, cls.SECTION, cls.IGNORE)


#: The nuisances of the cross-simulator's stress matrix (``crosssim.stress.levels`` keys). The
#: simulator (:mod:`blobhelpers.blob.crosssim`) keeps its own list, written independently; a test checks
#: the two agree, so validating params.yaml does not import the evaluation-only simulator.
NUISANCE_NAMES = ("gradient", "offset", "misregistration", "unstable", "cosmic_rays", "persistence", "nan",
                  "row_noise", "units", "frame_size")


@dataclass
class CampaignConfig:
    """Parameters of a simulated campaign (the ``simulate`` section of params.yaml)."""

    n_frames: int = 50
    start_date: str = "2024-01-01T03:00:00"
    cadence_days: float = 1.0
    exptime: float = 302.9
    # illumination (electrons per pixel in one frame)
    sky_e: float = 2500.0
    sky_day_sigma: float = 0.25
    illum_gradient_sigma: float = 0.04
    # detector
    flat_pixel_sigma: float = 0.015
    read_noise_e: float = 15.0
    dark_e_per_s: float = 0.048
    hot_fraction: float = 0.004
    rts_fraction: float = 0.02
    rts_amp_e: float = 150.0
    cr_per_frame: float = 1200.0
    snowballs_per_frame: float = 0.7
    persistence_prob: float = 0.15
    bad_fraction: float = 0.0005
    nan_per_frame: int = 60
    # blobs
    n_existing: int = 120
    new_blob_rate: float = 0.3
    # If set: a day has new blobs with this probability, then 1 + Poisson(new_blob_rate) of them
    # (clustered events, so a campaign has both many events and many quiet days).
    event_day_fraction: float | None = None
    faint_small_fraction: float = 0.25
    edge_fraction: float = 0.2
    depth_min: float = 0.015
    depth_max: float = 0.30
    depth_slope: float = 2.0
    radius_median: float = 6.0
    # mis-registration (px)
    shift_sigma: float = 0.12
    jump_fraction: float = 0.08
    jump_min: float = 0.25
    jump_max: float = 0.5

    @classmethod
    def from_dict(cls, params: dict | None) -> "CampaignConfig":
        """Build from a params.yaml ``simulate`` section (``source`` is the data stage's, not ours)."""
        return dataclass_from_params(cls, params, "simulate", ignore=("seed", "source", "frames_glob"))


@dataclass
class InjectionConfig:
    """Random blob injection settings (the ``dataset.injection`` params)."""

    max_blobs: int = 3
    real_fraction: float = 0.5
    depth_min: float = 0.015
    depth_max: float = 0.25
    radius_median: float = 6.0
    radius_sigma: float = 0.35
    radius_min: float = 2.5
    radius_max: float = 12.0
    zoom_min: float = 0.7
    zoom_max: float = 1.4
    off_edge: float = 0.4  # centre may lie this many radii outside the crop

    @classmethod
    def from_dict(cls, d: dict | None) -> "InjectionConfig":
        return dataclass_from_params(cls, d, "dataset.injection")


@dataclass
class TrainConfig:
    """Training settings of one model (a ``train.models.<name>`` section of params.yaml)."""

    architecture: str = "isr2021"
    recipe: str = "isr"
    epochs: int = 10
    adam_epochs: int = 5
    batch_size: int = 100
    learning_rate: float = 1e-3
    sgd_learning_rate: float = 0.01
    weight_decay: float = 1e-4
    restore_best: bool = False
    hard_negatives: float = 0.0  # fraction of blob-free training subframes given a negative feature
    noise_sigma: float | None = None  # augmentation noise (None: the dataset's, ISR 0.75)
    n_train: int | None = None  # use only the first n training subframes (None: all)
    curriculum_boost: float = 1.0  # injected depths x this factor in epoch 0, decaying linearly ...
    curriculum_epochs: int = 0  # ... to x1 at this epoch (0: no curriculum)
    representation: str = "isr"  # model input: "isr" (whole-image zscale clip + z-score) or "residual"
    nuisances: float = 0.0  # fraction of training subframes given domain randomisation (dataset.add_nuisances)
    crescents: float = 0.0  # fraction of blob-free training subframes given a centred deep-blob residual (add_crescents)
    width: int | None = None  # blobnet: filters of its first conv block (None: the architecture's 16)

    def boost(self, epoch: int) -> float:
        """Depth multiplier of the injected blobs in *epoch* (0-based) under the curriculum."""
        if self.curriculum_epochs <= 0 or self.curriculum_boost == 1.0:
            return 1.0
        f = max(0.0, 1.0 - epoch / self.curriculum_epochs)
        return 1.0 + (self.curriculum_boost - 1.0) * f

    @classmethod
    def from_dict(cls, d: dict | None) -> "TrainConfig":
        return dataclass_from_params(cls, d, "train.models.<name>")


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
        InjectionConfig.from_dict(self.injection)  # typos in the sub-section fail here too


@dataclass
class TrainSection(_FromDict):
    """``train``: the operating point of model selection and one TrainConfig per model."""

    SECTION = "train"
    select_fpr: float = 0.03
    models: dict = field(default_factory=dict)

    def __post_init__(self):
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
        d = dict(d or {})
        seed = d.pop("seed", cls.seed)
        try:
            CampaignConfig.from_dict(d)  # every other key must be a campaign parameter
        except InputError as exc:
            msg = str(exc)
            raise InputError(msg.replace("simulate:", "monitor.campaign:", 1).replace("simulate.", "monitor.campaign.", 1)) from exc
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
    n_days: int = 3                  # the daily job over several days: monitored frames per series
    n_quiet_multiday: int = 4
    n_new_multiday: int = 6
    n_jitter_deep: int = 3           # blob-free, jittered frames, deep existing blobs
    weak_fraction_multiday: float = 0.5
    weak_snr_multiday: list = field(default_factory=lambda: [0.5, 1.5])
    stress: dict = field(default_factory=dict)

    def __post_init__(self):
        StressConfig.from_dict(self.stress)
        if self.n_days < 1:
            raise InputError(f"crosssim.n_days: must be >= 1, got {self.n_days}")
        for k in ("n_quiet_multiday", "n_new_multiday", "n_jitter_deep"):
            if getattr(self, k) < 0:
                raise InputError(f"crosssim.{k}: must be >= 0, got {getattr(self, k)}")
        if not 0.0 <= self.weak_fraction_multiday <= 1.0:
            raise InputError(f"crosssim.weak_fraction_multiday: must be in [0, 1], got {self.weak_fraction_multiday}")
        w = self.weak_snr_multiday
        if len(w) != 2 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in w) \
                or not 0 < w[0] <= w[1]:
            raise InputError(f"crosssim.weak_snr_multiday: must be [low, high] with 0 < low <= high, got {w}")
