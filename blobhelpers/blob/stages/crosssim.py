"""Stage 05_crosssim's card: the detection core on the independent cross-simulator.

Its headline metrics, the checks of its verdict box and its verdict sentence
(:class:`blobhelpers.core.stagecard.StageCard`).
"""

from __future__ import annotations

from blobhelpers.core.stagecard import Check, StageCard, fmt, metric

__all__ = ["CARD"]


def verdict(m: dict) -> str:
    return (f"independent simulator: classify flags {fmt(metric(m, 'xsim_cnn_image_fpr'))} of blob-free images "
            f"(matched filter {fmt(metric(m, 'xsim_mf_image_fpr'))}), localises {fmt(metric(m, 'xsim_cnn_localised'))} of S/N>=3 "
            f"blobs; monitor finds {fmt(metric(m, 'xsim_monitor_found'))} on day 1 (targets 0.05 / 0.95 / 0.95).")


CARD = StageCard(
    stem="05_crosssim",
    data="independent",
    headlines=("xsim_cnn_tile_tpr", "xsim_cnn_tile_fpr", "xsim_cnn_image_fpr", "xsim_mf_image_fpr", "xsim_cnn_localised",
               "xsim_mf_localised", "xsim_monitor_found", "xsim_mf_found", "xsim_monitor_false_alarm_series",
               "own_cnn_tile_tpr", "own_cnn_tile_fpr", "offset_change_pp",
               # the daily job over several days (day windows, then the one-day detector beside it)
               "xsim_multiday_within_1", "xsim_multiday_within_3", "xsim_multiday_fa_days_per_100",
               "xsim_jitter_deep_fa_days_per_100", "xsim_multiday_oneday_within_1", "xsim_multiday_oneday_within_3",
               "xsim_multiday_oneday_fa_days_per_100", "xsim_jitter_deep_oneday_fa_days_per_100"),
    checks=(
        Check("classify: blob-free images flagged", "xsim_cnn_image_fpr", "<=", 0.05),
        Check("classify: new blobs (S/N >= 3) localised", "xsim_cnn_localised", ">=", 0.95),
        Check("classify: tile FPR", "xsim_cnn_tile_fpr", "<=", 0.01),
        Check("monitor: new blobs found on day 1", "xsim_monitor_found", ">=", 0.95),
        Check("monitor: blob-free series with an alert", "xsim_monitor_false_alarm_series", "<=", 0.02),
        Check("daily job: jittered deep-blob series, false-alarm days per 100", "xsim_jitter_deep_fa_days_per_100",
              "<=", 2.0),
        Check("daily job: blob-free false-alarm days per 100", "xsim_multiday_fa_days_per_100", "<=", 2.0),
    ),
    verdict=verdict,
)
