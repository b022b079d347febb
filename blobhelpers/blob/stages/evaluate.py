"""Stage 03_evaluate's card: the chosen model on the held-out test days.

Its headline metrics, the checks of its verdict box and its verdict sentence
(:class:`blobhelpers.core.stagecard.StageCard`).
"""

from __future__ import annotations

from blobhelpers.core.stagecard import Check, StageCard, fmt, metric

__all__ = ["CARD"]


def verdict(m: dict) -> str:
    b = metric(m, "best")
    return (f"{b} on held-out days: test AUC {fmt(metric(m, f'{b}_test_auc'))}, TPR {fmt(metric(m, f'{b}_tval_tpr'))} at "
            f"FPR {fmt(metric(m, f'{b}_tval_fpr'))} (validation-chosen threshold; own simulator, in-distribution).")


CARD = StageCard(
    stem="03_evaluate",
    data="own",
    headlines=("best", "n_test", "{best}_test_auc", "{best}_tval_tpr", "{best}_tval_fpr", "{best}_campaign_detection_rate",
               "{best}_campaign_false_alarm_rate", "*_test_auc"),
    checks=(
        Check("best model's test AUC (held-out days)", "{best}_test_auc"),
        Check("TPR at the validation-chosen threshold", "{best}_tval_tpr", n_key="n_test_pos"),
        Check("FPR at the validation-chosen threshold", "{best}_tval_fpr", "<=", 0.03),
    ),
    verdict=verdict,
)
