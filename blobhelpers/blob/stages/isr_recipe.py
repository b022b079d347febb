"""Stage 06_isr_recipe's card: the ISR's own recipe and its published rates.

Its headline metrics, the checks of its verdict box and its verdict sentence
(:class:`blobhelpers.core.stagecard.StageCard`).
"""

from __future__ import annotations

from blobhelpers.core.stagecard import Check, StageCard, fmt, metric

__all__ = ["CARD"]


def verdict(m: dict) -> str:
    met = metric(m, "isr_recipe_isr2021_val_tpr") >= 0.89 and metric(m, "isr_recipe_isr2021_val_tnr") >= 0.83
    x_auc, own_auc = metric(m, "isr_recipe_isr2021_xsim_auc"), m.get("isr_recipe_isr2021_isrtest_auc")
    tail = ""
    if own_auc is not None and x_auc < own_auc - 0.1:
        tail = (" So the published rates measure finding pasted cutouts among backgrounds of the same images, "
                "not new blobs in new difference images.")
    return (f"ISR recipe (pasted cutouts): isr2021 validation TPR {fmt(metric(m, 'isr_recipe_isr2021_val_tpr'))}, "
            f"TNR {fmt(metric(m, 'isr_recipe_isr2021_val_tnr'))} (published 0.94 / 0.88; targets 0.89 / 0.83 "
            f"{'met' if met else 'not met'}); on the independent cross-simulator's tiles the same model's AUC is "
            f"{fmt(x_auc)}" + (f" (ISR-style test crops: {fmt(own_auc)})" if own_auc is not None else "") + "." + tail)


CARD = StageCard(
    stem="06_isr_recipe",
    data="own",
    headlines=("isr_recipe_isr2021_val_tpr", "isr_recipe_isr2021_val_tnr", "isr_recipe_isr2021_val_n_pos",
               "isr_recipe_isr2021_val_n_neg", "isr_recipe_isr2021_isrtest_auc", "isr_recipe_isr2021_xsim_auc",
               "isr_recipe_blobnet_xsim_auc", "project_recipe_isr2021_xsim_auc", "project_recipe_blobnet_xsim_auc",
               "probe_isr_recipe_isr2021_blank_square_flagged", "anomaly_projtest_auc", "anomaly_xsim_auc"),
    checks=(
        Check("isr2021, ISR recipe: validation TPR (published 0.94)", "isr_recipe_isr2021_val_tpr", ">=", 0.89,
              n_key="isr_recipe_isr2021_val_n_pos"),
        Check("isr2021, ISR recipe: validation TNR (published 0.88)", "isr_recipe_isr2021_val_tnr", ">=", 0.83,
              n_key="isr_recipe_isr2021_val_n_neg"),
        Check("isr2021, ISR recipe: AUC on cross-simulator tiles (independent)", "isr_recipe_isr2021_xsim_auc"),
        Check("blobnet, project recipe: AUC on cross-simulator tiles (independent)", "project_recipe_blobnet_xsim_auc"),
    ),
    verdict=verdict,
)
