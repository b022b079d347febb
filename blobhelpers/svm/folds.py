"""Cross-validation folds of the SVM wing: stratified by sample kind and grouped by visit.

A visit's detector/filter products are near copies of each other; a fold that puts one visit on
both sides of a split measures memory, not generalisation. Every cross-validation in the wing
(:mod:`.evaluate`, :mod:`.models`, :mod:`.ensemble`) takes its folds from here.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from blobhelpers.core.errors import InputError
from blobhelpers.svm.features import sample_kind, visit_of

__all__ = ["grouped_folds", "stratified_group_folds", "assert_grouped"]


def grouped_folds(df: pd.DataFrame, n_splits: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified (by sample kind) folds grouped by visit; fixed *seed*.

    Examples
    --------
    >>> df = pd.DataFrame({"index": [f"hst_1_{v:02d}_acs_wfc_total_j{v:05d}{s}" for v in range(12) for s in ("", "_f1_all_stat")],
    ...                    "label": [v % 3 == 0 or s == 1 for v in range(12) for s in (0, 1)]})
    >>> folds = grouped_folds(df, 3, seed=0)
    >>> assert_grouped(df, folds)
    True
    """
    return stratified_group_folds(sample_kind(df), visit_of(df["index"]).to_numpy(), n_splits, seed)


def stratified_group_folds(strata, groups, n_splits: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``StratifiedGroupKFold`` folds (shuffled with *seed*): a group (visit) is never split.

    :class:`InputError` when there are fewer groups than folds.
    """
    groups = np.asarray(groups)
    n_groups = len(np.unique(groups))
    if n_splits < 2 or n_splits > n_groups:
        raise InputError(f"cannot make {n_splits} grouped folds from {n_groups} visits")
    sgk = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=int(seed))
    with warnings.catch_warnings():
        # a kind rarer than n_splits (few real misalignments in a small set) is expected: some folds lack it
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        return [(tr, te) for tr, te in sgk.split(np.zeros(len(groups)), np.asarray(strata), groups)]


def assert_grouped(df: pd.DataFrame, folds) -> bool:
    """Raise if a visit has rows on both sides of a split or rows are not covered exactly once."""
    groups = visit_of(df["index"]).to_numpy()
    seen = np.zeros(len(df), int)
    for tr, te in folds:
        both = set(groups[tr]) & set(groups[te])
        if both:
            raise AssertionError(f"visit(s) on both sides of a split: {sorted(both)[:3]}")
        seen[te] += 1
    if not (seen == 1).all():
        raise AssertionError("folds do not cover every row exactly once")
    return True
