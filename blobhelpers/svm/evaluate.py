"""Grouped cross-validation of SVM alignment models, honest thresholds and rates with intervals.

* Folds are built by visit (the first 7 underscore tokens of ``index``), so a visit and its
  synthetic variants are always on the same side; they are stratified on the sample kind (real
  aligned / real misaligned / synthetic) so the few real misalignments spread over the folds.
* Everything fitted (power transform, scaler, model) is fitted inside each training fold.
* The operating threshold for a stated false-alarm rate on real aligned visits is chosen by an
  inner grouped cross-validation of the training fold ("nested"), then applied unchanged to the
  held-out fold: the rates reported at that threshold are honest. The threshold chosen on the
  pooled out-of-fold predictions themselves is reported too, labelled "oracle".
* Rates come with their counts and 95 % Wilson intervals, split into real misaligned, synthetic
  misaligned and real aligned, and by detector.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import InputError
from ..core.stats import rate
from .features import FEATURES, detector_name, sample_kind, visit_of
from .models import build_model

__all__ = ["grouped_folds", "stratified_group_folds", "assert_grouped", "threshold_for_fa", "CVResult", "cross_validate", "rate",
           "summarize", "calibration_table", "permutation_importance", "misclassified", "select_best",
           "train_final", "run_cv", "DEFAULT_SVM", "train_and_select"]


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
    from sklearn.model_selection import StratifiedGroupKFold

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


def threshold_for_fa(p_negative, fa: float) -> float:
    """Lowest threshold *t* such that the fraction of negatives with ``p > t`` is at most *fa*.

    Examples
    --------
    >>> threshold_for_fa([0.1, 0.2, 0.3, 0.4, 0.9], 0.2)  # one false alarm in five allowed
    0.4
    >>> float((np.array([0.1, 0.2, 0.3, 0.4, 0.9]) > 0.4).mean())
    0.2
    """
    s = np.sort(np.asarray(p_negative, float))[::-1]
    if len(s) == 0:
        return 0.5
    k = int(np.floor(fa * len(s) + 1e-9))
    return float(s[k]) if k < len(s) else float(np.nextafter(s[-1], -np.inf))


@dataclass
class CVResult:
    """Out-of-fold predictions of one model."""

    name: str
    proba: np.ndarray  # out-of-fold P(misaligned)
    threshold: np.ndarray  # nested threshold applied to each row (the one of its fold)
    fold: np.ndarray  # fold of each row
    models: list = field(default_factory=list)  # the fitted outer-fold models
    params: dict = field(default_factory=dict)

    @property
    def flagged(self) -> np.ndarray:
        return self.proba > self.threshold


def _fit_predict(name, params, seed, df, tr, te):
    m = build_model(name, params, seed)
    d_tr = df.iloc[tr]
    m.fit(d_tr, d_tr["label"].to_numpy(), sample_kind(d_tr))
    return m, m.predict_proba(df.iloc[te])


def cross_validate(name: str, params: dict, df: pd.DataFrame, folds, seed: int, fa_target: float = 0.05,
                   inner_splits: int = 3, progress: bool = True) -> CVResult:
    """Out-of-fold probabilities and nested thresholds of one model over *folds*."""
    from tqdm.auto import tqdm

    proba, thr, fold = np.full(len(df), np.nan), np.full(len(df), np.nan), np.full(len(df), -1)
    models = []
    for i, (tr, te) in enumerate(tqdm(folds, desc=f"CV {name}", disable=not progress)):
        d_tr = df.iloc[tr].reset_index(drop=True)
        if inner_splits >= 2:
            inner = grouped_folds(d_tr, inner_splits, seed + 1 + i)
            p_in = np.full(len(d_tr), np.nan)
            for itr, ite in inner:
                _, p_in[ite] = _fit_predict(name, params, seed, d_tr, itr, ite)
            neg = sample_kind(d_tr) == 0
            thr[te] = threshold_for_fa(p_in[neg], fa_target)
        else:
            thr[te] = 0.5
        m, proba[te] = _fit_predict(name, params, seed, df, tr, te)
        fold[te] = i
        models.append(m)
    return CVResult(name, proba, thr, fold, models, dict(params or {}))


def _rates_at(df, flagged, kind) -> dict:
    det = df["det"].to_numpy().astype(int)
    out = {"real_misaligned": rate(flagged[kind == 1].sum(), (kind == 1).sum()),
           "synthetic": rate(flagged[kind == 2].sum(), (kind == 2).sum()),
           "false_alarm_real_aligned": rate(flagged[kind == 0].sum(), (kind == 0).sum()),
           "by_detector": {}}
    for d in sorted(np.unique(det)):
        s = det == d
        out["by_detector"][detector_name(d)] = {
            "real_misaligned": rate(flagged[s & (kind == 1)].sum(), (s & (kind == 1)).sum()),
            "synthetic": rate(flagged[s & (kind == 2)].sum(), (s & (kind == 2)).sum()),
            "false_alarm_real_aligned": rate(flagged[s & (kind == 0)].sum(), (s & (kind == 0)).sum())}
    y = df["label"].to_numpy().astype(int)
    out["confusion"] = {"tn": int(((~flagged) & (y == 0)).sum()), "fp": int((flagged & (y == 0)).sum()),
                        "fn": int(((~flagged) & (y == 1)).sum()), "tp": int((flagged & (y == 1)).sum())}
    return out


def summarize(df: pd.DataFrame, res: CVResult, fa_target: float = 0.05) -> dict:
    """AUCs on probabilities, and rates at the nested, oracle and 0.5 thresholds."""
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    kind = sample_kind(df)
    y = df["label"].to_numpy().astype(int)
    p = res.proba
    real = kind < 2
    out = {"model": res.name, "n_rows": int(len(df)), "n_real_misaligned": int((kind == 1).sum()),
           "n_real_aligned": int((kind == 0).sum()), "n_synthetic": int((kind == 2).sum()),
           "roc_auc_all": float(roc_auc_score(y, p)), "pr_auc_all": float(average_precision_score(y, p)),
           "roc_auc_real": float(roc_auc_score(y[real], p[real])),
           "pr_auc_real": float(average_precision_score(y[real], p[real])),
           "roc_auc_synthetic_vs_aligned": float(roc_auc_score(y[kind != 1], p[kind != 1])),
           "brier_all": float(brier_score_loss(y, p)), "fa_target": fa_target}
    out["nested"] = _rates_at(df, res.flagged, kind)
    out["nested"]["thresholds"] = sorted({float(t) for t in res.threshold})
    t_or = threshold_for_fa(p[kind == 0], fa_target)
    out["oracle"] = _rates_at(df, p > t_or, kind)
    out["oracle"]["threshold"] = t_or
    out["at_0.5"] = _rates_at(df, p > 0.5, kind)
    # what false-alarm rate would an 80 % real recall cost (pooled out-of-fold)?
    pos = np.sort(p[kind == 1])
    t80 = pos[int(np.floor(0.2 * len(pos)))] if len(pos) else 1.0
    out["fa_at_real_recall_0.8"] = rate((p[kind == 0] >= t80).sum(), (kind == 0).sum())
    return out


def calibration_table(y, p, bins: int = 10) -> pd.DataFrame:
    """Reliability table: per probability bin, the mean prediction and the observed frequency."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    edges = np.linspace(0, 1, bins + 1)
    b = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    rows = []
    for i in range(bins):
        s = b == i
        rows.append({"bin": f"{edges[i]:.1f}-{edges[i + 1]:.1f}", "n": int(s.sum()),
                     "mean_predicted": float(p[s].mean()) if s.any() else np.nan,
                     "observed": float(y[s].mean()) if s.any() else np.nan})
    return pd.DataFrame(rows)


def permutation_importance(df: pd.DataFrame, res: CVResult, seed: int, repeats: int = 3) -> pd.DataFrame:
    """Drop in held-out ROC-AUC (real rows; all rows) when one raw feature is shuffled within the fold."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    kind = sample_kind(df)
    y = df["label"].to_numpy().astype(int)
    rows = []
    for c in FEATURES:
        d_real, d_all = [], []
        for i, m in enumerate(res.models):
            te = np.flatnonzero(res.fold == i)
            d_te = df.iloc[te]
            yk, kk = y[te], kind[te]
            base = m.predict_proba(d_te)
            for _ in range(repeats):
                shuf = d_te.copy()
                shuf[c] = rng.permutation(shuf[c].to_numpy())
                pp = m.predict_proba(shuf)
                r = kk < 2
                if len(np.unique(yk[r])) == 2:
                    d_real.append(roc_auc_score(yk[r], base[r]) - roc_auc_score(yk[r], pp[r]))
                d_all.append(roc_auc_score(yk, base) - roc_auc_score(yk, pp))
        rows.append({"feature": c, "auc_drop_real": float(np.mean(d_real)) if d_real else np.nan,
                     "auc_drop_all": float(np.mean(d_all))})
    return pd.DataFrame(rows).sort_values("auc_drop_real", ascending=False).reset_index(drop=True)


def misclassified(df: pd.DataFrame, res: CVResult) -> pd.DataFrame:
    """Real misaligned visits missed and real aligned visits flagged (nested thresholds), and missed synthetics."""
    kind = sample_kind(df)
    f = res.flagged
    what = np.select([(kind == 1) & ~f, (kind == 0) & f, (kind == 2) & ~f],
                     ["missed real misaligned", "false alarm (real aligned)", "missed synthetic"], "")
    out = df.assign(y_proba=res.proba, threshold=res.threshold, error=what)
    out = out[out["error"] != ""]
    out = out.assign(detector=[detector_name(d) for d in out["det"]])
    return out.sort_values(["error", "y_proba"]).reset_index(drop=True)


def select_best(summaries: dict) -> str:
    """Name of the model with the highest nested real-misaligned recall (ties: real PR-AUC)."""
    return max(summaries, key=lambda n: (summaries[n]["nested"]["real_misaligned"]["rate"], summaries[n]["pr_auc_real"]))


def run_cv(df: pd.DataFrame, svm: dict, seed: int, progress: bool = True) -> tuple[dict, dict, list]:
    """Grouped CV of every model of ``svm["models"]`` on the same folds: (results, summaries, folds)."""
    folds = grouped_folds(df, int(svm.get("cv_splits", 5)), seed)
    assert_grouped(df, folds)
    fa = float(svm.get("fa_target", 0.05))
    results, summaries = {}, {}
    for name, params in (svm.get("models") or {}).items():
        results[name] = cross_validate(name, params or {}, df, folds, seed, fa, int(svm.get("inner_splits", 3)),
                                       progress)
        summaries[name] = summarize(df, results[name], fa)
    if not results:
        raise InputError("svm.models: no model configured")
    return results, summaries, folds


def train_final(name: str, params: dict, df: pd.DataFrame, seed: int, cv: CVResult, fa_target: float = 0.05,
                summary: dict | None = None):
    """Fit *name* on every labelled row; its threshold is the pooled out-of-fold one for *fa_target*."""
    m = build_model(name, params, seed)
    m.fit(df, df["label"].to_numpy(), sample_kind(df))
    kind = sample_kind(df)
    m.threshold = threshold_for_fa(cv.proba[kind == 0], fa_target)
    m.info = {"threshold_rule": f"false-alarm rate <= {fa_target:g} on real aligned visits, pooled grouped-CV "
                                f"out-of-fold predictions", "n_train": int(len(df)),
              "n_real_misaligned": int((kind == 1).sum()), "n_synthetic": int((kind == 2).sum())}
    if summary:
        m.info["cv"] = {k: summary[k] for k in ("roc_auc_all", "pr_auc_all", "roc_auc_real", "pr_auc_real")}
        m.info["cv"]["nested_real_recall"] = summary["nested"]["real_misaligned"]
        m.info["cv"]["nested_synthetic_recall"] = summary["nested"]["synthetic"]
        m.info["cv"]["nested_false_alarm"] = summary["nested"]["false_alarm_real_aligned"]
    return m


DEFAULT_SVM = {
    "labelled": "data/svm/svm_labeled_2021-07-28_dev.csv", "labelled_cat_encoding": "spacekit-2021",
    "cv_splits": 5, "inner_splits": 3, "fa_target": 0.05,
    "models": {"spacekit_mlp": {}, "logreg": {}, "hgb": {}},
}


def train_and_select(df: pd.DataFrame, svm: dict | None, seed: int, out=None, progress: bool = True) -> dict:
    """Grouped CV of every configured model, the best chosen, refitted on all rows and saved to *out*.

    The single code path behind ``blobhelpers svm train`` and the models notebook. Returns
    ``{"results", "summaries", "folds", "best", "model"}``; writes ``out/model.json`` (+ weights)
    and ``out/cv_summary.json`` when *out* is given.
    """
    from ..core.paths import write_json

    svm = {**DEFAULT_SVM, **(svm or {})}
    if "label" not in df:
        raise InputError("training data need a 'label' column")
    results, summaries, folds = run_cv(df, svm, seed, progress)
    best = select_best(summaries)
    fa = float(svm["fa_target"])
    model = train_final(best, (svm["models"] or {}).get(best) or {}, df, seed, results[best], fa, summaries[best])
    if out is not None:
        model.save(out)
        write_json(Path(out) / "cv_summary.json", {"best": best, "seed": seed, "summaries": summaries})
    return {"results": results, "summaries": summaries, "folds": folds, "best": best, "model": model}
