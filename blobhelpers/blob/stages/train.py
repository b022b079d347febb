"""Stage 02_train's card: training the models and choosing one on the validation set.

Its headline metrics, the checks of its verdict box and its verdict sentence
(:class:`blobhelpers.core.stagecard.StageCard`).
"""

from __future__ import annotations

from blobhelpers.core.stagecard import Check, StageCard, fmt, metric

__all__ = ["CARD"]


def verdict(m: dict) -> str:
    best = metric(m, "best")
    aucs = {k[: -len("_val_auc")]: v for k, v in m.items() if k.endswith("_val_auc")}
    chance = [k for k, v in aucs.items() if v < 0.6]
    tail = f"; at chance (val AUC < 0.6): {', '.join(chance)}" if chance else ""
    return f"best on validation (own simulator, in-distribution): {best} (val AUC {fmt(aucs.get(best))}){tail}."


CARD = StageCard(
    stem="02_train",
    data="own",
    headlines=("best", "{best}_val_auc", "{best}_val_tpr_at_fpr*", "{best}_val_threshold", "*_val_auc", "*_dead_fc1"),
    checks=(
        Check("best model's validation AUC", "{best}_val_auc"),
        Check("best model's validation TPR at FPR 0.03", "{best}_val_tpr_at_fpr0.03"),
    ),
    verdict=verdict,
)
