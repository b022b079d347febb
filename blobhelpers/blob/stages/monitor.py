"""Stage 04_monitor's card: the daily monitor over the regression campaign.

Its headline metrics, the checks of its verdict box and its verdict sentence
(:class:`blobhelpers.core.stagecard.StageCard`).
"""

from __future__ import annotations

from blobhelpers.core.stagecard import Check, StageCard, fmt, metric

__all__ = ["CARD"]


def verdict(m: dict) -> str:
    return (f"own simulator (in-distribution): false alarms {fmt(metric(m, 'false_alarm_days_per_100_quiet'))} per 100 "
            f"quiet days; new blobs deeper than 3 % alerted on day 1 {fmt(m.get('detection_deeper_3pct.rate'))}, within "
            f"3 days {fmt(m.get('detection_within_days.3.deeper.rate'))}; median localisation "
            f"error {fmt(metric(m, 'median_loc_error_px'))} px (model {metric(m, 'model')}).")


CARD = StageCard(
    stem="04_monitor",
    data="own",
    headlines=("model", "detection_deeper_3pct.rate", "detection_within_days.3.deeper.rate", "detection_all.rate",
               "false_alarm_days_per_100_quiet",
               "false_alerts_per_100_days", "median_loc_error_px", "snr_min", "snr_acc", "threshold", "neg_veto", "campaign.n_days"),
    checks=(
        Check("new blobs deeper than 3 % alerted on day 1", "detection_deeper_3pct.rate", ">=", 0.80),
        Check("all new blobs alerted on day 1", "detection_all.rate"),
        Check("new blobs deeper than 3 % alerted within 3 days", "detection_within_days.3.deeper.rate", ">=", 0.95),
        Check("new blobs with ideal 3-day S/N >= snr_acc + 1 found within 3 days", "ideal_limit.above_limit.rate",
              ">=", 0.97),
        Check("new blobs ever alerted", "detection_eventually.rate"),
        Check("false-alarm days per 100 quiet days", "false_alarm_days_per_100_quiet", "<=", 2.0,
              count_of="false_alarm_days", scale=100.0),
        Check("its 95 % upper bound (fraction of quiet days)", "false_alarm_days.hi", "<=", 0.035),
        Check("median localisation error", "median_loc_error_px", "<=", 1.0, unit=" px"),
    ),
    verdict=verdict,
)
