"""Measuring what the rest does (imports every layer below, and the cross-simulator).

Modules
-------
scoring
    rates with Wilson intervals, strata, campaign events
figures
    the report figures
regression
    the monitor over a simulated campaign, scored against the truth; threshold tuning
truth
    alerts and tiles against the truth of a labelled set (tile labels, targets, AUC)
crosseval
    detection scored on the independent cross-simulator and the stress matrix
isreval
    models of either recipe scored on the same test sets (stage isr_recipe)
"""

__all__ = ["scoring", "figures", "regression", "truth", "crosseval", "isreval"]
