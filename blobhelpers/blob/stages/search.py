"""Stage 07_search's card: blobnet's hyperparameter search, read from its committed table.

Its headline metrics, the checks of its verdict box and its verdict sentence
(:class:`blobhelpers.core.stagecard.StageCard`).
"""

from __future__ import annotations

from blobhelpers.core.stagecard import Check, StageCard, fmt, metric

__all__ = ["CARD"]


def verdict(m: dict) -> str:
    head = (f"chosen on validation (own simulator): {metric(m, 'best')} (val AUC {fmt(metric(m, 'best_val_auc'))}) "
            f"against today's {fmt(m.get('today_val_auc'))}")
    xs = ""
    if "best_xsim_auc" in m and "today_xsim_auc" in m:
        xs = (f"; on the independent cross-simulator {fmt(m['best_xsim_auc'])} against today's "
              f"{fmt(m['today_xsim_auc'])}")
    return head + xs + (": propose the switch." if m.get("propose_switch") else ": keep today's setting.")


CARD = StageCard(
    stem="07_search",
    data="own",
    headlines=("n_runs", "best", "best_val_auc", "today_val_auc", "best_minus_today_val_auc", "val_auc_se",
               "best_xsim_auc", "today_xsim_auc", "*_best_val_auc", "propose_switch", "cost_cpu_min"),
    checks=(
        Check("chosen setting: validation AUC", "best_val_auc"),
        Check("today's setting: validation AUC", "today_val_auc"),
        Check("chosen setting: cross-simulator tile AUC (independent)", "best_xsim_auc"),
        Check("today's setting: cross-simulator tile AUC (independent)", "today_xsim_auc"),
    ),
    verdict=verdict,
)
