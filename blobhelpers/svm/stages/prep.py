"""Stage 10_svm_prep's card: the real SVM data prepared.

Its headline metrics, the checks of its verdict box and its verdict sentence
(:class:`blobhelpers.core.stagecard.StageCard`).
"""

from __future__ import annotations

from blobhelpers.core.stagecard import Check, StageCard, fmt, metric

__all__ = ["CARD"]


def verdict(m: dict) -> str:
    return (f"{metric(m, 'n_real_misaligned')} real misaligned vs {metric(m, 'n_real_aligned')} real aligned visits; "
            f"rms 0 in {fmt(metric(m, 'frac_rms0_real_misaligned'))} of the misaligned.")


CARD = StageCard(
    stem="10_svm_prep",
    data="real",
    headlines=("n_real_aligned", "n_real_misaligned", "n_synthetic_misaligned", "n_unlabelled", "frac_rms0_real_misaligned",
               "frac_rms0_real_aligned"),
    checks=(
        Check("real misaligned visits", "n_real_misaligned"),
        Check("real aligned visits", "n_real_aligned"),
        Check("misaligned visits with rms 0", "frac_rms0_real_misaligned", n_key="n_real_misaligned"),
    ),
    verdict=verdict,
)
