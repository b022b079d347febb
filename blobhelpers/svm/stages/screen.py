"""Stage 12_svm_screen's card: the deployed SVM model on unlabelled visits.

Its headline metrics, the checks of its verdict box and its verdict sentence
(:class:`blobhelpers.core.stagecard.StageCard`).
"""

from __future__ import annotations

from blobhelpers.core.stagecard import Check, StageCard, fmt, metric

__all__ = ["CARD"]


def verdict(m: dict) -> str:
    return f"{fmt(metric(m, 'flagged_all'))} of {metric(m, 'n_screened')} visits flagged (model {metric(m, 'model')})."


CARD = StageCard(
    stem="12_svm_screen",
    data="real",
    headlines=("model", "n_screened", "flagged_all", "flagged_aligned_in_july", "samples12_ours_correct",
               "samples12_spacekit_correct"),
    checks=(
        Check("unlabelled visits flagged", "flagged_all", n_key="n_screened"),
    ),
    verdict=verdict,
)
