"""Stage 14_svm_images's card: SVM image models against tables alone.

Its headline metrics, the checks of its verdict box and its verdict sentence
(:class:`blobhelpers.core.stagecard.StageCard`).
"""

from __future__ import annotations

from blobhelpers.core.stagecard import Check, StageCard, fmt, metric

__all__ = ["CARD"]


def verdict(m: dict) -> str:
    tab, img = metric(m, "tabular_roc_auc"), max(metric(m, "cnn2d_roc_auc"), metric(m, "stacked_roc_auc"))
    return (f"ROC-AUC tables {fmt(tab)} vs best with images {fmt(img)}: images "
            f"{'add ranking power' if img > tab + 0.01 else 'do not add ranking power'} here.")


CARD = StageCard(
    stem="14_svm_images",
    data="sim-svm",
    headlines=("n_products", "tabular_roc_auc", "cnn2d_roc_auc", "stacked_roc_auc", "spacekit_roc_auc", "best_image_model"),
    checks=(
        Check("tables only: ROC-AUC", "tabular_roc_auc"),
        Check("stacked (tables + images): ROC-AUC", "stacked_roc_auc"),
        Check("2-D CNN on the renderings: ROC-AUC", "cnn2d_roc_auc"),
        Check("spacekit's ensemble, same folds: ROC-AUC", "spacekit_roc_auc"),
    ),
    verdict=verdict,
)
