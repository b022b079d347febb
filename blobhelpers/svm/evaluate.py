"""Grouped cross-validation of SVM alignment models: honest selection, thresholds and rates with intervals.

* Folds are built by visit (the first 7 underscore tokens of ``index``), so a visit and its
  synthetic variants are always on the same side; they are stratified on the sample kind (real
  aligned / real misaligned / synthetic) so the few real misalignments spread over the folds.
  The whole cross-validation is repeated with several fold seeds (:func:`nested_cv`).
* Everything fitted (power transform, scaler, model, stacker) is fitted inside each training fold.
* Convention (:mod:`blobhelpers.core.stats`): a visit is flagged when ``p >= threshold``; the
  threshold for a stated false-alarm rate on real aligned visits is
  :func:`~blobhelpers.core.stats.threshold_for_fpr` on real rows (:func:`real_threshold`).
* **Nested**: in every outer training fold an inner grouped CV gives each candidate's
  out-of-fold probabilities; from them (a) the pre-declared selection criterion (mean real
  ROC-AUC by default, :data:`CRITERIA`) picks a candidate and (b) each candidate's threshold is
  chosen. The held-out fold is then predicted by the candidate refitted on the training fold, at
  that threshold: the rates on held-out rows (recall and the *out-of-sample* false-alarm rate)
  measure the whole procedure -- selection included -- that trains the deployed model
  (:func:`train_and_select`). The threshold chosen on the pooled out-of-fold predictions
  themselves is reported too, labelled "oracle" (optimistic).
* Every candidate is reported on the same folds. Rates are ``{"k", "n", "rate", "lo", "hi"}``
  with 95 % Wilson intervals; over repeated fold seeds ``k`` is the mean count per seed and the
  interval is computed for ``n`` distinct rows (each row counts once per seed, so ``R x n`` would
  be overconfident). ROC-AUCs carry Hanley-McNeil 95 % intervals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from blobhelpers.core.errors import InputError
from blobhelpers.core.parallel import process_map
from blobhelpers.core.paths import write_json, write_text
from blobhelpers.core.stats import flag, rate, threshold_for_fpr, wilson
from blobhelpers.svm.features import FEATURES, detector_name, sample_kind
from blobhelpers.svm.folds import assert_grouped, grouped_folds
from blobhelpers.svm.models import build_model
from blobhelpers.svm.sections import SvmSection

__all__ = ["real_threshold", "CVResult", "cross_validate",
           "rate", "summarize", "calibration_table", "permutation_importance", "misclassified", "CRITERIA",
           "criterion_score", "auc_interval", "mean_rate", "resolve_candidates", "NestedCV", "nested_cv",
           "summarize_repeated", "SELECTION", "DEFAULT_SVM", "fold_seeds", "train_and_select"]

#: Name of the pseudo-candidate "the candidate the inner CV selects, at its inner threshold".
SELECTION = "nested selection"


def real_threshold(kind, p, fa: float) -> float:
    """Threshold for a false-alarm rate <= *fa* on the real aligned rows (``kind == 0``; ``p >= t`` flags).

    Examples
    --------
    >>> real_threshold([0, 0, 0, 0, 0, 1, 2], [0.1, 0.2, 0.3, 0.4, 0.9, 0.5, 0.0], 0.2)  # one false alarm of five
    0.4000000000000001
    """
    kind, p = np.asarray(kind), np.asarray(p, float)
    real = kind < 2
    return threshold_for_fpr(kind[real] == 1, p[real], fa)


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
        return flag(self.proba, self.threshold)


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
            thr[te] = real_threshold(sample_kind(d_tr), p_in, fa_target)
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
           "pauc10_real": criterion_score(y, p, kind, "pauc10_real"),
           "pr_auc_real": float(average_precision_score(y[real], p[real])),
           "roc_auc_synthetic_vs_aligned": float(roc_auc_score(y[kind != 1], p[kind != 1])),
           "brier_all": float(brier_score_loss(y, p)), "fa_target": fa_target}
    out["nested"] = _rates_at(df, res.flagged, kind)
    out["nested"]["thresholds"] = sorted({float(t) for t in res.threshold})
    t_or = real_threshold(kind, p, fa_target)
    out["oracle"] = _rates_at(df, flag(p, t_or), kind)
    out["oracle"]["threshold"] = t_or
    out["at_0.5"] = _rates_at(df, flag(p, 0.5), kind)
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
    held_out = [np.flatnonzero(res.fold == i) for i in range(len(res.models))]
    base_p = [m.predict_proba(df.iloc[te]) for m, te in zip(res.models, held_out)]  # unshuffled, once per fold
    rows = []
    for c in FEATURES:
        d_real, d_all = [], []
        for m, te, base in zip(res.models, held_out, base_p):
            d_te = df.iloc[te]
            yk, kk = y[te], kind[te]
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


CRITERIA = {
    "roc_auc_real": "ROC-AUC, real misaligned vs real aligned",
    "pauc10_real": "partial ROC-AUC up to 10 % false alarms (McClish-standardised), real rows",
}


def criterion_score(y, p, kind, criterion: str = "roc_auc_real") -> float:
    """The selection criterion on real rows (``nan`` when they hold one class only)."""
    from sklearn.metrics import roc_auc_score

    if criterion not in CRITERIA:
        raise InputError(f"svm.selection {criterion!r}: known {sorted(CRITERIA)}")
    y, p, kind = np.asarray(y, int), np.asarray(p, float), np.asarray(kind)
    real = kind < 2
    if len(np.unique(y[real])) < 2:
        return float("nan")
    return float(roc_auc_score(y[real], p[real], max_fpr=0.1 if criterion == "pauc10_real" else None))


def auc_interval(auc: float, n_pos: int, n_neg: int, z: float = 1.96) -> tuple[float, float]:
    """Hanley & McNeil (1982) 95 % interval of a ROC-AUC from *n_pos* positives and *n_neg* negatives.

    Examples
    --------
    >>> lo, hi = auc_interval(0.85, 46, 832)
    >>> round(lo, 3), round(hi, 3)
    (0.779, 0.921)
    """
    if not (n_pos and n_neg) or not np.isfinite(auc):
        return float("nan"), float("nan")
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc * auc) + (n_neg - 1) * (q2 - auc * auc)) / (n_pos * n_neg)
    se = math.sqrt(max(var, 0.0))
    return float(max(0.0, auc - z * se)), float(min(1.0, auc + z * se))


def mean_rate(rates: list) -> dict:
    """Average of one rate over repeated fold seeds: mean count ``k`` per seed, Wilson interval for ``n`` rows.

    Examples
    --------
    >>> r = mean_rate([rate(10, 46), rate(12, 46), rate(11, 46)])
    >>> r["k"], r["n"], round(r["rate"], 3), r["k_per_seed"]
    (11.0, 46, 0.239, [10, 12, 11])
    """
    n = int(rates[0]["n"])
    k = float(np.mean([r["k"] for r in rates]))
    lo, hi = wilson(k, n)
    return {"k": k, "n": n, "rate": k / n if n else float("nan"), "lo": lo, "hi": hi,
            "k_per_seed": [int(r["k"]) for r in rates]}


def resolve_candidates(models: dict) -> dict:
    """``svm.models`` with every stack's ``bases`` (a list of sibling names) replaced by their sections."""
    out = {}
    for name, params in (models or {}).items():
        params = dict(params or {})
        if params.get("kind", name) == "stack":
            bases = params.get("bases") or []
            if isinstance(bases, dict):
                bases = list(bases)
            missing = [b for b in bases if b not in models]
            if missing or not bases:
                raise InputError(f"svm.models.{name}: stack bases {missing or bases} must name other svm.models")
            if any((models[b] or {}).get("kind", b) == "stack" for b in bases):
                raise InputError(f"svm.models.{name}: a stack cannot stack stacks")
            params["bases"] = {b: {"kind": (models[b] or {}).get("kind", b), **(models[b] or {})} for b in bases}
        out[name] = params
    return out


@dataclass
class NestedCV:
    """Repeated nested grouped CV of several candidates on the same folds.

    ``proba[name]``, ``threshold[name]``: ``(R, n)`` held-out probabilities and the threshold applied
    to each row (chosen by the inner CV of its outer training fold), one row per fold seed;
    ``fold``: ``(R, n)``; ``inner_score[name]``: ``(R, K)`` criterion on the inner CV of each outer
    training fold; ``chosen``: ``(R, K)`` candidate selected there (``proba[SELECTION]`` follows
    it); ``models[name]``: the outer-fold models of the first seed.
    """

    names: list
    seeds: list
    criterion: str
    fa_target: float
    proba: dict = field(default_factory=dict)
    threshold: dict = field(default_factory=dict)
    fold: np.ndarray | None = None
    inner_score: dict = field(default_factory=dict)
    chosen: np.ndarray | None = None
    models: dict = field(default_factory=dict)
    folds: list = field(default_factory=list)

    def result(self, name: str, r: int = 0) -> CVResult:
        """Seed *r*'s held-out predictions of *name* as a :class:`CVResult`."""
        return CVResult(name, self.proba[name][r], self.threshold[name][r], self.fold[r],
                        self.models.get(name, []) if r == 0 else [])

    def chosen_counts(self) -> dict:
        names, counts = np.unique(self.chosen, return_counts=True)
        return {str(a): int(b) for a, b in zip(names, counts)}


def _cross_fit_stack(st, probs: dict, df, y, kind, folds) -> np.ndarray:
    """Held-out stack probabilities: the combiner fitted on the other folds' base probabilities."""
    out = np.full(len(df), np.nan)
    for tr, te in folds:
        st.fit_combiner({b: p[tr] for b, p in probs.items()}, df.iloc[tr], y[tr], kind[tr])
        out[te] = st.combine({b: p[te] for b, p in probs.items()}, df.iloc[te])
    return out


def _outer_fold(df: pd.DataFrame, candidates: dict, seed: int, fold_seed: int, i: int, tr, te, inner_splits: int,
                inner_repeats: int, fa_target: float, criterion: str, keep_models: bool) -> dict:
    """One outer fold of :func:`nested_cv` (fold *i* of fold seed *fold_seed*); a function of its arguments only.

    Returns every candidate's held-out probabilities (``proba``), the threshold chosen by the inner
    CV (``threshold``), the inner criterion (``score``) and, with *keep_models*, the models fitted
    on the whole training fold (``models``).
    """
    names = list(candidates)
    stacks = [n for n in names if candidates[n].get("kind", n) == "stack"]
    singles = [n for n in names if n not in stacks]
    y_all, k_all = df["label"].to_numpy().astype(int), sample_kind(df)
    d_tr, d_te = df.iloc[tr].reset_index(drop=True), df.iloc[te].reset_index(drop=True)
    y_tr, k_tr = y_all[tr], k_all[tr]
    inners = [grouped_folds(d_tr, inner_splits, (fold_seed * 1009 + i + 1 + 7919 * j) % 2**32)
              for j in range(int(inner_repeats))]
    p_in, p_out, fitted = {}, {}, {}  # p_in[name]: one held-out probability vector per inner fold seed
    for nm in singles:
        p_in[nm] = []
        for inner in inners:
            p = np.full(len(d_tr), np.nan)
            for itr, ite in inner:
                m = build_model(nm, candidates[nm], seed).fit(d_tr.iloc[itr], y_tr[itr], k_tr[itr])
                p[ite] = m.predict_proba(d_tr.iloc[ite])
            p_in[nm].append(p)
        fitted[nm] = build_model(nm, candidates[nm], seed).fit(d_tr, y_tr, k_tr)
        p_out[nm] = fitted[nm].predict_proba(d_te)
    for nm in stacks:
        st = build_model(nm, candidates[nm], seed)
        p_in[nm] = [_cross_fit_stack(st, {b: p_in[b][j] for b in st.base_names}, d_tr, y_tr, k_tr, inner)
                    for j, inner in enumerate(inners)]
        st.fit_combiner({b: p_in[b][0] for b in st.base_names}, d_tr, y_tr, k_tr)
        st.bases = {b: fitted[b] for b in st.base_names}
        fitted[nm] = st
        p_out[nm] = st.combine({b: p_out[b] for b in st.base_names}, d_te)
    return {"proba": p_out,
            "threshold": {nm: float(np.median([real_threshold(k_tr, p, fa_target) for p in p_in[nm]]))
                          for nm in names},
            "score": {nm: float(np.mean([criterion_score(y_tr, p, k_tr, criterion) for p in p_in[nm]]))
                      for nm in names},
            "models": fitted if keep_models else None}


def nested_cv(df: pd.DataFrame, candidates: dict, seeds, n_splits: int = 5, inner_splits: int = 3,
              fa_target: float = 0.05, criterion: str = "roc_auc_real", seed: int = 0, progress: bool = True,
              outer_folds: list | None = None, inner_repeats: int = 1, n_jobs: int | None = None) -> NestedCV:
    """Repeated (one repeat per fold seed in *seeds*) nested grouped CV of *candidates* (``{name: params}``,
    stacks resolved by :func:`resolve_candidates`), on the same folds for every candidate.

    In each outer training fold: an inner grouped CV (``inner_splits`` folds) of every candidate
    gives its inner out-of-fold probabilities -> its threshold (:func:`real_threshold`) and its
    criterion score; a stack's combiner is cross-fitted on its bases' inner probabilities. The
    candidate with the best score is the fold's selection. Every candidate is then refitted on the
    whole training fold (a stack: its combiner on the inner probabilities, its bases the refitted
    candidates) and predicts the held-out fold. With ``inner_repeats`` > 1 the inner CV is repeated
    with as many fold seeds: the criterion is their mean, the threshold their median (the rule the
    deployed model follows over the outer seeds). *outer_folds* (one fold list per seed) replaces
    the folds drawn from *seeds* (which still seed the inner folds).

    The outer folds (``len(seeds) x n_splits``) are independent -- every fit is seeded by *seed*,
    the fold seed and the fold number, never by what ran before -- and run in *n_jobs* worker
    processes (``None``: the default of :func:`blobhelpers.core.parallel.n_workers`; 1: in this process);
    the results are the same bit for bit whatever *n_jobs* (:func:`blobhelpers.core.parallel.process_map`).
    """
    from tqdm.auto import tqdm

    criterion_score([0, 1], [0.0, 1.0], [0, 1], criterion)  # validates the name
    names = list(candidates)
    stacks = [n for n in names if candidates[n].get("kind", n) == "stack"]
    singles = [n for n in names if n not in stacks]
    for st in stacks:
        missing = [b for b in candidates[st]["bases"] if b not in singles]
        if missing:
            raise InputError(f"stack {st}: base(s) {missing} are not candidates")
    n, R = len(df), len(seeds)
    res = NestedCV(names, [int(s) for s in seeds], criterion, float(fa_target))
    for nm in [*names, SELECTION]:
        res.proba[nm] = np.full((R, n), np.nan)
        res.threshold[nm] = np.full((R, n), np.nan)
    res.fold = np.full((R, n), -1)
    if outer_folds is not None:
        n_splits = len(outer_folds[0])
    res.inner_score = {nm: np.full((R, n_splits), np.nan) for nm in names}
    res.chosen = np.empty((R, n_splits), dtype=object)
    res.models = {nm: [] for nm in names}
    tasks = []
    for r, fs in enumerate(res.seeds):
        folds = outer_folds[r] if outer_folds is not None else grouped_folds(df, n_splits, fs)
        assert_grouped(df, folds)
        res.folds.append(folds)
        tasks += [(r, i, fs, tr, te) for i, (tr, te) in enumerate(folds)]
    bar = tqdm(total=len(tasks), desc="nested CV", disable=not progress)
    outs = process_map(_outer_fold, [(df, candidates, seed, fs, i, tr, te, inner_splits, inner_repeats, fa_target,
                                       criterion, r == 0) for r, i, fs, tr, te in tasks], n_jobs,
                        lambda _: bar.update())
    bar.close()
    for (r, i, _, _, te), o in zip(tasks, outs):
        for nm in names:
            res.proba[nm][r, te] = o["proba"][nm]
            res.threshold[nm][r, te] = o["threshold"][nm]
            res.inner_score[nm][r, i] = o["score"][nm]
            if r == 0:
                res.models[nm].append(o["models"][nm])
        scores = np.array([res.inner_score[nm][r, i] for nm in names])
        best = names[int(np.nanargmax(scores))] if np.isfinite(scores).any() else names[0]
        res.chosen[r, i] = best
        res.proba[SELECTION][r, te] = res.proba[best][r, te]
        res.threshold[SELECTION][r, te] = res.threshold[best][r, te]
        res.fold[r, te] = i
    return res


def summarize_repeated(df: pd.DataFrame, run: NestedCV, name: str) -> dict:
    """:func:`summarize` of every fold seed, averaged: AUCs (mean, per seed, Hanley-McNeil interval of the
    mean) and rates (:func:`mean_rate`) at the nested, oracle and 0.5 thresholds, by detector too."""
    per = [summarize(df, run.result(name, r), run.fa_target) for r in range(len(run.seeds))]
    out = {"model": name, **{k: per[0][k] for k in ("n_rows", "n_real_misaligned", "n_real_aligned", "n_synthetic",
                                                     "fa_target")}, "n_seeds": len(per)}
    for k in ("roc_auc_all", "pr_auc_all", "roc_auc_real", "pauc10_real", "pr_auc_real",
              "roc_auc_synthetic_vs_aligned", "brier_all"):
        vals = [p[k] for p in per]
        out[k], out[f"{k}_per_seed"] = float(np.mean(vals)), [float(v) for v in vals]
    out["roc_auc_real_ci"] = auc_interval(out["roc_auc_real"], out["n_real_misaligned"], out["n_real_aligned"])
    for sec in ("nested", "oracle", "at_0.5"):
        out[sec] = {w: mean_rate([p[sec][w] for p in per])
                    for w in ("real_misaligned", "synthetic", "false_alarm_real_aligned")}
        out[sec]["by_detector"] = {
            d: {w: mean_rate([p[sec]["by_detector"][d][w] for p in per])
                for w in ("real_misaligned", "synthetic", "false_alarm_real_aligned")}
            for d in per[0][sec]["by_detector"]}
    out["nested"]["thresholds"] = sorted({t for p in per for t in p["nested"]["thresholds"]})
    out["nested"]["confusion"] = {c: float(np.mean([p["nested"]["confusion"][c] for p in per]))
                                  for c in ("tn", "fp", "fn", "tp")}
    out["fa_at_real_recall_0.8"] = mean_rate([p["fa_at_real_recall_0.8"] for p in per])
    if name in run.inner_score:
        out["inner_criterion_mean"] = float(np.nanmean(run.inner_score[name]))
        out["times_selected"] = int((run.chosen == name).sum())
    else:
        out["chosen"] = run.chosen_counts()
    return out


def fold_seeds(svm: dict, seed: int) -> list:
    """Outer fold seeds: ``svm.fold_seeds`` if given, else ``seed, seed + 1, ...`` (``svm.repeats`` of them)."""
    if svm.get("fold_seeds"):
        return [int(s) for s in svm["fold_seeds"]]
    return [int(seed) + j for j in range(int(svm.get("repeats", 3)))]


DEFAULT_SVM = {
    "labelled": "data/svm/svm_labeled_2021-07-28_dev.csv", "labelled_cat_encoding": "spacekit-2021",
    "cv_splits": 5, "inner_splits": 3, "repeats": 3, "fa_target": 0.05, "selection": "roc_auc_real",
    "reference": "gb_default",
    "models": {"gb_default": {"kind": "gb"}, "logreg": {}, "extra_trees": {}},
}


def train_and_select(df: pd.DataFrame, svm: dict | None, seed: int, out=None, progress: bool = True,
                     n_jobs: int | None = None) -> dict:
    """Select a model by the pre-declared criterion, measure the procedure by nested CV, fit and save it.

    The single code path behind ``blobhelpers svm train`` and the models notebook:
    1. :func:`nested_cv` of every candidate of ``svm.models`` over ``svm.repeats`` fold seeds
       (every candidate on the same folds);
    2. the deployed model is the candidate with the best criterion (``svm.selection``) averaged
       over the fold seeds -- the same rule the inner loop applies in each outer fold, so the
       ``nested selection`` rates are the out-of-sample performance of this very procedure;
    3. its threshold: :func:`real_threshold` of its held-out probabilities for ``svm.fa_target``,
       the median over the fold seeds (the inner loop's rule, one level up); its out-of-sample
       false-alarm rate is the ``nested selection`` one;
    4. refitted on every row (a stack: its combiner on the first seed's held-out base probabilities).

    Returns ``{"run", "summaries", "best", "model", "scores"}``; writes ``out/`` (model files,
    ``cv_summary.json``, ``cv_oof.csv``: every row's held-out probability) when *out* is given.
    *n_jobs*: worker processes of the nested CV (``None``: the default of
    :func:`blobhelpers.core.parallel.n_workers`); the results do not depend on it.
    """

    SvmSection.from_dict(svm)  # a typo in params.yaml's svm section is an error, not a silent default
    svm = {**DEFAULT_SVM, **(svm or {})}
    if "label" not in df:
        raise InputError("training data need a 'label' column")
    cands = resolve_candidates(svm.get("models") or {})
    if not cands:
        raise InputError("svm.models: no model configured")
    fa, crit = float(svm["fa_target"]), str(svm.get("selection", "roc_auc_real"))
    run = nested_cv(df, cands, fold_seeds(svm, seed), int(svm["cv_splits"]), int(svm["inner_splits"]), fa, crit, seed,
                    progress, inner_repeats=int(svm.get("inner_repeats", 1)), n_jobs=n_jobs)
    summaries = {nm: summarize_repeated(df, run, nm) for nm in [*run.names, SELECTION]}
    scores = {nm: summaries[nm][crit] for nm in run.names}
    best = max(run.names, key=lambda nm: (scores[nm], -run.names.index(nm)))
    kind, y = sample_kind(df), df["label"].to_numpy().astype(int)
    thr = float(np.median([real_threshold(kind, run.proba[best][r], fa) for r in range(len(run.seeds))]))
    model = build_model(best, cands[best], seed)
    if model.kind == "stack":
        model.fit(df, y, kind, oof={b: run.proba[b][0] for b in model.base_names})
    else:
        model.fit(df, y, kind)
    model.threshold = thr
    sel, sb = summaries[SELECTION], summaries[best]
    model.info = {
        "threshold_rule": f"p >= threshold flags; false-alarm rate <= {fa:g} on real aligned visits of the held-out "
                          f"predictions of a {svm['cv_splits']}-fold grouped CV, median over {len(run.seeds)} fold seeds",
        "selection": f"highest mean {CRITERIA[crit]} over the fold seeds among {run.names}",
        "scores": scores, "n_train": int(len(df)), "n_real_misaligned": int((kind == 1).sum()),
        "n_synthetic": int((kind == 2).sum()), "fold_seeds": run.seeds,
        "out_of_sample": {"what": "nested CV of the whole procedure (selection + threshold), held-out rows",
                          "real_recall": sel["nested"]["real_misaligned"],
                          "false_alarm": sel["nested"]["false_alarm_real_aligned"],
                          "synthetic_recall": sel["nested"]["synthetic"], "roc_auc_real": sel["roc_auc_real"],
                          "chosen": sel["chosen"]},
        "cv": {k: sb[k] for k in ("roc_auc_all", "pr_auc_all", "roc_auc_real", "pauc10_real", "pr_auc_real")},
    }
    if out is not None:
        model.save(out)
        write_json(Path(out) / "cv_summary.json", {"best": best, "seed": seed, "selection": crit, "scores": scores,
                                                   "summaries": summaries})
        oof = pd.DataFrame({"index": df["index"], "label": y, "kind": kind,
                            "p_selected_model": run.proba[best].mean(0), "p_nested_selection": run.proba[SELECTION].mean(0),
                            "nested_flag_rate": flag(run.proba[SELECTION], run.threshold[SELECTION]).mean(0)})
        write_text(Path(out) / "cv_oof.csv", oof.to_csv(index=False))
    return {"run": run, "summaries": summaries, "best": best, "model": model, "scores": scores}
