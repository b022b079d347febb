"""Stage 13_svm_simulate's card: simulated SVM visits and corruptions.

Its headline metrics, the checks of its verdict box and its verdict sentence
(:class:`blobhelpers.core.stagecard.StageCard`).
"""

from __future__ import annotations

from blobhelpers.core.stagecard import Check, StageCard, fmt, metric

__all__ = ["CARD"]


def verdict(m: dict) -> str:
    return (f"{fmt(metric(m, 'frac_corrupted_labelled_1'))} of {metric(m, 'n_corrupted')} corruptions measured misaligned "
            f"({metric(m, 'n_visits')} simulated visits).")


CARD = StageCard(
    stem="13_svm_simulate",
    data="sim-svm",
    headlines=("n_visits", "n_corrupted", "frac_corrupted_labelled_1", "frac_rms0_sim_misaligned",
               "frac_rms0_real_misaligned"),
    checks=(
        Check("corruptions measured misaligned", "frac_corrupted_labelled_1", n_key="n_corrupted"),
    ),
    verdict=verdict,
)
