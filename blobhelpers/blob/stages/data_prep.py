"""Stage 01_data_prep's card: the data stage: campaign, difference images, subframe recipes.

Its headline metrics, the checks of its verdict box and its verdict sentence
(:class:`blobhelpers.core.stagecard.StageCard`).
"""

from __future__ import annotations

from blobhelpers.core.stagecard import Check, StageCard, fmt, metric

__all__ = ["CARD"]


def verdict(m: dict) -> str:
    auc = metric(m, "max_pixel_auc_val")
    ok = abs(auc - 0.5) < 0.1
    return (f"{metric(m, 'n_train')} / {metric(m, 'n_val')} / {metric(m, 'n_test')} train/val/test subframes; the brightest "
            f"pixel {'does not give' if ok else 'GIVES'} the label away (AUC {fmt(auc)}).")


CARD = StageCard(
    stem="01_data_prep",
    data="own",
    headlines=("n_train", "n_val", "n_test", "n_difference_images", "max_pixel_auc_val", "dip_dipole_registered"),
    checks=(
        Check("brightest-pixel AUC on validation (0.5 = gives nothing away)", "max_pixel_auc_val"),
        Check("training / validation / test subframes", "n_train"),
    ),
    verdict=verdict,
)
