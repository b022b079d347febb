"""Nested model selection: thresholds and selections come from training rows only; every candidate on the same folds."""

import numpy as np
import pytest
from svm_toy import toy

from blobhelpers.core.errors import InputError
from blobhelpers.core.stats import flag
from blobhelpers.svm.evaluate import (
    SELECTION,
    criterion_score,
    grouped_folds,
    nested_cv,
    real_threshold,
    resolve_candidates,
    summarize_repeated,
)
from blobhelpers.svm.features import sample_kind

CANDS = resolve_candidates({"logreg": {}, "trees": {"kind": "extra_trees", "n_estimators": 15},
                            "gb": {"kind": "gb", "n_estimators": 10},
                            "stack": {"kind": "stack", "bases": ["trees", "logreg"]}})


def noisy_toy(n=90, seed=0):
    """toy() with label noise on the real rows so the candidates differ and thresholds are not trivial."""
    df = toy(n, seed)
    rng = np.random.default_rng(seed + 7)
    real = np.flatnonzero(sample_kind(df) < 2)
    flip = rng.choice(real, 6, replace=False)
    df.loc[df.index[flip], "label"] = 1 - df.loc[df.index[flip], "label"]
    df.loc[df.index[real], "nmatches"] += rng.integers(0, 6, len(real))
    return df


@pytest.fixture(scope="module")
def runs():
    df = noisy_toy()
    a = nested_cv(df, CANDS, seeds=[3, 4], n_splits=3, inner_splits=2, fa_target=0.1, seed=0, progress=False)
    return df, a


def test_held_out_rows_never_choose_their_threshold_or_model(runs):
    """Changing a held-out fold (labels and features) leaves its thresholds and its fold's selection unchanged."""
    df, a = runs
    _, te = a.folds[0][1]
    d2 = df.copy()
    d2.loc[d2.index[te], "label"] = 1 - d2.loc[d2.index[te], "label"]
    d2.loc[d2.index[te], "nmatches"] = 500
    syn = sample_kind(df)[te] == 2
    d2.loc[d2.index[te[syn]], "label"] = 1  # synthetic rows stay misaligned
    b = nested_cv(d2, CANDS, seeds=[3], n_splits=3, inner_splits=2, fa_target=0.1, seed=0, progress=False,
                  outer_folds=[a.folds[0]])
    for name in [*CANDS, SELECTION]:
        np.testing.assert_array_equal(a.threshold[name][0, te], b.threshold[name][0, te])
    assert a.chosen[0, 1] == b.chosen[0, 1]
    assert not np.allclose(a.proba["logreg"][0, te], b.proba["logreg"][0, te])  # the held-out rows were changed


def test_nested_threshold_is_the_inner_cv_rule_on_the_training_rows(runs):
    """Recompute one fold's threshold from scratch: inner grouped CV of the training rows only."""
    from blobhelpers.svm.models import build_model

    df, a = runs
    seed_fold, i = 3, 2
    tr, te = grouped_folds(df, 3, seed_fold)[i]
    d_tr = df.iloc[tr].reset_index(drop=True)
    k_tr = sample_kind(d_tr)
    p_in = np.full(len(d_tr), np.nan)
    for itr, ite in grouped_folds(d_tr, 2, (seed_fold * 1009 + i + 1) % 2**32):
        m = build_model("logreg", CANDS["logreg"], 0).fit(d_tr.iloc[itr], d_tr["label"].to_numpy()[itr], k_tr[itr])
        p_in[ite] = m.predict_proba(d_tr.iloc[ite])
    t = real_threshold(k_tr, p_in, 0.1)
    assert np.all(a.threshold["logreg"][0, te] == t)
    assert a.inner_score["logreg"][0, i] == pytest.approx(criterion_score(d_tr["label"], p_in, k_tr))
    # and the out-of-sample false-alarm rate is counted on the held-out real aligned rows at that threshold
    kind = sample_kind(df)
    s = summarize_repeated(df, a, "logreg")
    per_seed = [int((flag(a.proba["logreg"][r], a.threshold["logreg"][r]) & (kind == 0)).sum()) for r in range(2)]
    assert s["nested"]["false_alarm_real_aligned"]["k_per_seed"] == per_seed
    assert s["nested"]["false_alarm_real_aligned"]["n"] == int((kind == 0).sum())


def test_selection_follows_the_inner_criterion_and_all_candidates_share_folds(runs):
    df, a = runs
    names = list(CANDS)
    for r in range(2):
        for i in range(3):
            scores = [a.inner_score[n][r, i] for n in names]
            best = names[int(np.nanargmax(scores))]
            assert a.chosen[r, i] == best
            te = a.fold[r] == i
            np.testing.assert_array_equal(a.proba[SELECTION][r, te], a.proba[best][r, te])
            np.testing.assert_array_equal(a.threshold[SELECTION][r, te], a.threshold[best][r, te])
    assert sum(summarize_repeated(df, a, SELECTION)["chosen"].values()) == 6
    for n in names:
        assert np.isfinite(a.proba[n]).all()


def test_stack_in_the_loop_equals_a_refitted_stack_on_the_same_probabilities(runs):
    df, a = runs
    st = a.models["stack"][0]  # outer fold 0 of the first seed
    te = a.fold[0] == 0
    np.testing.assert_allclose(st.predict_proba(df[te]), a.proba["stack"][0, te], atol=1e-12)
    assert st.bases["trees"] is a.models["trees"][0]


def test_stack_configuration_errors():
    with pytest.raises(InputError, match="must name other"):
        resolve_candidates({"s": {"kind": "stack", "bases": ["missing"]}})
    with pytest.raises(InputError, match="cannot stack stacks"):
        resolve_candidates({"a": {}, "s": {"kind": "stack", "bases": ["a"]}, "t": {"kind": "stack", "bases": ["s"]}})
    with pytest.raises(InputError, match="selection"):
        nested_cv(toy(20), {"logreg": {}}, [0], 2, 2, criterion="accuracy", progress=False)


def test_repeated_inner_cv_averages_the_criterion_and_takes_the_median_threshold():
    from blobhelpers.svm.models import build_model

    df = noisy_toy(60, seed=2)
    cands = {"logreg": {}}
    a = nested_cv(df, cands, seeds=[5], n_splits=3, inner_splits=2, fa_target=0.1, progress=False, inner_repeats=3)
    i = 1
    tr, te = a.folds[0][i]
    d_tr = df.iloc[tr].reset_index(drop=True)
    k_tr, y_tr = sample_kind(d_tr), d_tr["label"].to_numpy()
    thr, score = [], []
    for j in range(3):
        p = np.full(len(d_tr), np.nan)
        for itr, ite in grouped_folds(d_tr, 2, (5 * 1009 + i + 1 + 7919 * j) % 2**32):
            p[ite] = build_model("logreg", {}, 0).fit(d_tr.iloc[itr], y_tr[itr], k_tr[itr]).predict_proba(d_tr.iloc[ite])
        thr.append(real_threshold(k_tr, p, 0.1))
        score.append(criterion_score(y_tr, p, k_tr))
    assert np.all(a.threshold["logreg"][0, te] == np.median(thr))
    assert a.inner_score["logreg"][0, i] == pytest.approx(np.mean(score))


def test_outer_folds_in_worker_processes_give_the_serial_results_bit_for_bit():
    """n_jobs only changes where the outer folds run: every array, selection and fold model is identical."""
    df = noisy_toy(60, seed=4)
    kw = dict(seeds=[3, 4], n_splits=3, inner_splits=2, fa_target=0.1, seed=0, progress=False)
    serial, pool = nested_cv(df, CANDS, n_jobs=1, **kw), nested_cv(df, CANDS, n_jobs=2, **kw)
    for name in [*CANDS, SELECTION]:
        assert np.array_equal(serial.proba[name], pool.proba[name], equal_nan=True), name
        assert np.array_equal(serial.threshold[name], pool.threshold[name], equal_nan=True), name
    for name in CANDS:
        assert np.array_equal(serial.inner_score[name], pool.inner_score[name], equal_nan=True), name
        for m_s, m_p in zip(serial.models[name], pool.models[name], strict=True):
            assert np.array_equal(m_s.predict_proba(df), m_p.predict_proba(df)), name
    assert (serial.chosen == pool.chosen).all() and np.array_equal(serial.fold, pool.fold)
    assert [[te.tolist() for _, te in f] for f in serial.folds] == [[te.tolist() for _, te in f] for f in pool.folds]
    assert pool.models["stack"][1].bases["trees"] is pool.models["trees"][1]  # shared objects stay shared
    for bad in (0, -1, 1.5, "2"):
        with pytest.raises(InputError, match="n_jobs"):
            nested_cv(df, CANDS, n_jobs=bad, **kw)
