"""Stage 11_svm_models's card: SVM model selection, nested, on real visits.

Its headline metrics, the checks of its verdict box and its verdict sentence
(:class:`blobhelpers.core.stagecard.StageCard`).
"""

from __future__ import annotations

from blobhelpers.core.stagecard import Check, StageCard, fmt, metric

__all__ = ["CARD"]


def verdict(m: dict) -> str:
    b = metric(m, "best")
    if "nested_selection_nested_real_misaligned" in m:  # the whole procedure (selection + threshold), out of sample
        rec, fa = m["nested_selection_nested_real_misaligned"], m["nested_selection_nested_false_alarm_real_aligned"]
        auc = m.get("nested_selection_roc_auc_real")
        return (f"deployed {b}; the selection procedure out of sample: real ROC-AUC {fmt(auc)}, real recall "
                f"{fmt(rec)} at false alarm {fmt(fa)} — targets 0.88 / 0.55 "
                f"{'reached' if rec >= 0.55 and (auc or 0) >= 0.88 else 'not reached'}.")
    rec = metric(m, f"{b}_nested_real_misaligned")
    return (f"{b}: real recall {fmt(rec)} at false alarm {fmt(metric(m, f'{b}_nested_false_alarm_real_aligned'))} "
            f"(nested) — target 0.80 {'reached' if rec >= 0.8 else 'not reached'}.")


CARD = StageCard(
    stem="11_svm_models",
    data="real",
    headlines=("best", "threshold", "nested_selection_roc_auc_real", "nested_selection_nested_real_misaligned",
               "nested_selection_nested_false_alarm_real_aligned", "nested_selection_nested_synthetic",
               "{best}_roc_auc_real", "{best}_nested_real_misaligned", "gb_default_roc_auc_real",
               "gb_default_nested_real_misaligned"),
    checks=(
        Check("selection procedure, out of sample: real ROC-AUC", "nested_selection_roc_auc_real", ">=", 0.88),
        Check("real recall (nested; mean count over 3 repeats)", "nested_selection_nested_real_misaligned", ">=", 0.55,
              n_key="n_real_misaligned"),
        Check("false alarms on real aligned visits (nested)", "nested_selection_nested_false_alarm_real_aligned",
              "<=", 0.05, n_key="n_real_aligned"),
        Check("default gradient boosting, same folds: real ROC-AUC", "gb_default_roc_auc_real"),
    ),
    verdict=verdict,
)
