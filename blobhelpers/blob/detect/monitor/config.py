"""Monitor parameters, exit codes and the names of the tuned thresholds."""

from __future__ import annotations

from dataclasses import dataclass

from blobhelpers.blob.detect.detection import DetectionConfig
from blobhelpers.blob.sections import DifferenceConfig, MonitorCampaignConfig, MonitorTuneConfig, RegressionConfig
from blobhelpers.core.config import dataclass_from_params
from blobhelpers.core.errors import InputError

__all__ = ["MonitorConfig", "EXIT_NOTHING_NEW", "EXIT_NEW_BLOB", "TUNED", "deep_enough", "held"]

#: Exit codes of ``blobhelpers monitor`` (2 = bad input, 1 = internal error, as every command).
EXIT_NOTHING_NEW = 0
EXIT_NEW_BLOB = 3

#: Alert thresholds chosen on a development campaign (stage 04 writes them with
#: :func:`write_tuned`); ``null`` in params.yaml means "use the tuned value".
TUNED = ("snr_min", "threshold", "neg_veto", "snr_acc", "threshold_acc")


@dataclass
class MonitorConfig:
    """Parameters of the monitor (the ``monitor`` section of params.yaml, minus ``campaign``)."""
    history: int = 30            # frames in the median stack
    min_history: int = 10        # fewer usable frames than this: no verdict (clear error)
    register: bool = True        # sub-pixel registration + dip subtraction
    clip_factor: float = 0.5     # the model's training preprocessing
    border_rule: str = "symmetric"
    threshold: float = 0.5       # CNN P(blob) of a candidate's centred subframe
    snr_min: float = 5.5         # matched-filter significance of a candidate
    radii: tuple = (2.0, 3.5, 5.5, 8.0, 12.0)  # matched-filter blob radii (px)
    max_candidates: int = 20     # non-catalogued candidates verified per frame (strongest first)
    known_margin: float = 4.0    # a candidate within radius + margin of a known blob may be that blob ...
    known_core: float = 0.5      # ... it is when its centre is within this x the blob's radius (>= 2 px) of it,
    known_residual: float = 0.5  # ... or a registration residual explains this share of it; else it is judged
    known_excess: float = 3.0    # ... unless deeper than the blob can leave by this many sigma (a new blob on it)
    neg_veto: float = 8.0        # no alert next to a residual more negative than -neg_veto sigma
    min_depth: float = 0.0       # optional floor on the estimated central depth (0: none; deep_enough)
    saliency: bool = True        # saliency PNG per alert
    dipole_ratio: float = 0.5    # dipole test of the detection core (blobhelpers.blob.detect.detection.screen)
    dipole_min: float = 4.0
    # evidence accumulated over days (blobhelpers.blob.detect.monitor.accumulate)
    accumulate: tuple = (2, 3)   # besides today's difference, the means of the last k one-day differences
    snr_acc: float = 7.0         # significance an accumulated (k >= 2) candidate needs (tuned with the others)
    threshold_acc: float | None = None   # CNN P(blob) an accumulated candidate needs (None: ``threshold``)
    snr_acc_grid: tuple = (5.5, 6.0, 6.5, 7.0, 7.5, 8.0, 9.0)   # what stage 04 tunes snr_acc on
    watch_snr: float = 4.5       # below the alert threshold but above this: watched (logged, shown apart)
    residual_window: int = 32    # half-size (px) of the local fit of a registration residual
    residual_gradient: float = 0.005   # no blob edge (pattern gradient per px below this): no residual fit
    pattern_fit: bool = True     # fit and remove the share of the history's blob pattern in the difference
    renormalize: bool = True     # leave strong structure out of the current frame's illumination (deep new blobs)
    renormalize_nsigma: float = 5.0    # what is strong: the 2-px-smoothed difference beyond this many sigma

    @classmethod
    def resolve(cls, params: dict | None, fallback_threshold: float | None = None) -> tuple["MonitorConfig", set]:
        """The monitor's settings from a whole params dict, with the precedence every caller uses.

        ``monitor`` keys > (for ``threshold`` when it is null) *fallback_threshold* (the model's
        validation-chosen one) > the defaults above; ``difference.clip_factor/border_rule`` fill
        the ISR scaling used only for a model saved without its preprocessing file. Returns the
        config and the set of :data:`TUNED` names fixed in params.yaml (tuned values must not
        override those).
        """
        params = params or {}
        mon = params.get("monitor") or {}
        cfg = cls.from_dict(mon)

        dif = DifferenceConfig.from_dict(params.get("difference"))
        cfg.clip_factor, cfg.border_rule = dif.clip_factor, dif.border_rule
        if mon.get("threshold") is None and fallback_threshold is not None:
            cfg.threshold = float(fallback_threshold)
        return cfg, held({k for k in TUNED if mon.get(k) is not None})

    def snr_threshold(self, k: int = 1) -> float:
        """The significance a candidate of day window *k* needs: ``snr_min`` for today's difference
        (k = 1), ``snr_acc`` for the means of k >= 2 days.

        >>> MonitorConfig(snr_min=6.0, snr_acc=5.5).snr_threshold(2)
        5.5
        """
        return float(self.snr_min if k == 1 else self.snr_acc)

    def cnn_threshold(self, k: int = 1) -> float:
        """The CNN probability a candidate of day window *k* needs: ``threshold`` for today's
        difference (k = 1), ``threshold_acc`` for the means of k >= 2 days (``threshold`` when unset).

        >>> cfg = MonitorConfig(threshold=0.6)
        >>> cfg.cnn_threshold(1), cfg.cnn_threshold(3)
        (0.6, 0.6)
        >>> cfg.threshold_acc = 0.5
        >>> cfg.cnn_threshold(1), cfg.cnn_threshold(2)
        (0.6, 0.5)
        """
        return float(self.threshold if k == 1 or self.threshold_acc is None else self.threshold_acc)

    def detection(self):
        """The :class:`~blobhelpers.blob.detect.detection.DetectionConfig` of these settings."""
        return DetectionConfig(radii=tuple(self.radii), snr_min=self.snr_min, max_candidates=self.max_candidates,
                               dipole_ratio=self.dipole_ratio, dipole_min=self.dipole_min, neg_veto=self.neg_veto)

    @classmethod
    def from_dict(cls, params: dict | None) -> "MonitorConfig":
        params = {k: v for k, v in (params or {}).items() if not (k in TUNED and v is None)}
        MonitorTuneConfig.from_dict(params.get("tune"))
        MonitorCampaignConfig.from_dict(params.get("campaign"))
        RegressionConfig.from_dict(params.get("regression"))
        cfg = dataclass_from_params(cls, params, "monitor", ignore=("campaign", "seed", "regression", "tune"))
        cfg.radii = tuple(float(r) for r in cfg.radii)
        cfg.accumulate = tuple(int(k) for k in cfg.accumulate)
        cfg.snr_acc_grid = tuple(float(v) for v in cfg.snr_acc_grid)
        if any(k < 2 for k in cfg.accumulate):
            raise InputError(f"monitor.accumulate: day windows must be 2 or more (1 is today's difference), got "
                             f"{list(cfg.accumulate)}")
        return cfg


def held(fixed) -> set:
    """The tuned names that values given by hand (*fixed*: in params.yaml or on the command line)
    keep from the tuned file: *fixed*, and ``threshold_acc`` with ``threshold`` (a CNN threshold
    given by hand holds for every day window unless ``threshold_acc`` is given too).

    >>> sorted(held({"threshold"})), sorted(held({"snr_min"}))
    (['threshold', 'threshold_acc'], ['snr_min'])
    """
    fixed = set(fixed)
    return fixed | {"threshold_acc"} if "threshold" in fixed else fixed


def deep_enough(depth: float, floor: float) -> bool:
    """Whether a candidate's estimated central depth passes the optional *floor* (``min_depth``).

    A floor of 0 (the default) is no floor: the central depth is the mean over a few pixels
    (``measure_blob``), and for a faint blob it is as noisy as the blob is deep, so a blob found at
    its significance threshold can measure below 0; rejecting it for that would be a second,
    noisier significance test.

    >>> deep_enough(-0.004, 0.0), deep_enough(0.012, 0.01), deep_enough(0.008, 0.01)
    (True, True, False)
    """
    return floor <= 0 or depth >= floor
