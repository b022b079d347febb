"""SVM models and grouped evaluation: folds by visit, leak-free preprocessing, saving without pickle."""

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import PowerTransformer

from blobhelpers.core.errors import InputError
from blobhelpers.core.stats import flag
from blobhelpers.svm.evaluate import cross_validate, misclassified, real_threshold, summarize, train_and_select
from blobhelpers.svm.folds import assert_grouped, grouped_folds
from blobhelpers.svm.features import CONTINUOUS, engineer, read_features, sample_kind, visit_of
from blobhelpers.svm.models import build_model, design_matrix, load_model, yeo_johnson
from svm_toy import toy

FAST = {"spacekit_mlp": {"epochs": 2}, "logreg": {}, "hgb": {"max_iter": 15}, "forest": {"n_estimators": 20},
        "extra_trees": {"n_estimators": 20, "features": "interactions"}, "gb": {"n_estimators": 20},
        "stack": {"bases": {"extra_trees": {"n_estimators": 10}, "logreg": {}}, "inner_splits": 2, "per_detector": True}}


@pytest.fixture(scope="module")
def labelled(root):
    return read_features(root / "data" / "svm" / "svm_labeled_2021-07-28_dev.csv", "spacekit-2021", require_label=True)


def test_grouped_folds_on_the_real_file(labelled):
    folds = grouped_folds(labelled, 5, seed=3)
    assert assert_grouped(labelled, folds)
    kind = sample_kind(labelled)
    visits = visit_of(labelled["index"]).to_numpy()
    for tr, te in folds:
        assert not set(visits[tr]) & set(visits[te])
        assert 5 <= (kind[te] == 1).sum() <= 14  # the 46 real misalignments are spread over the folds
        syn = te[kind[te] == 2]
        assert set(visits[syn]) <= set(visits[te])  # synthetic variants stay with their visit
    again = grouped_folds(labelled, 5, seed=3)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again))
    other = grouped_folds(labelled, 5, seed=4)
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(folds, other))
    assert (kind == 1).sum() == 46 and (kind == 0).sum() == 832 and (kind == 2).sum() == 537


def test_assert_grouped_catches_a_split_visit():
    df = toy(20)
    folds = grouped_folds(df, 4, 0)
    tr, te = folds[0]
    syn = np.flatnonzero(df["index"].str.contains("_stoc").to_numpy())
    moved = syn[~np.isin(syn, te)][0]
    bad = [(np.setdiff1d(tr, [moved]), np.append(te, moved))] + folds[1:]
    with pytest.raises(AssertionError, match="both sides"):
        assert_grouped(df, bad)


def test_preprocessing_is_fitted_on_training_rows_only():
    df = toy(60)
    folds = grouped_folds(df, 3, 0)
    res = cross_validate("spacekit_mlp", FAST["spacekit_mlp"], df, folds, seed=1, inner_splits=0, progress=False)
    for (tr, _), m in zip(folds, res.models):
        pt = PowerTransformer().fit(df.iloc[tr][list(CONTINUOUS)].to_numpy(float))
        np.testing.assert_allclose(m.tx["lambdas"], pt.lambdas_, rtol=1e-6)
        np.testing.assert_allclose(m.tx["mu"], pt._scaler.mean_, rtol=1e-6)
    allfit = PowerTransformer().fit(df[list(CONTINUOUS)].to_numpy(float))
    assert not np.allclose(res.models[0].tx["mu"], allfit._scaler.mean_)


def test_held_out_fold_cannot_influence_its_own_predictions():
    """Scrambling the test fold (labels and features) leaves its out-of-fold predictions and threshold unchanged."""
    df = toy(60)
    folds = grouped_folds(df, 3, 0)
    a = cross_validate("logreg", {}, df, folds, seed=0, inner_splits=2, progress=False)
    tr, te = folds[0]
    d2 = df.copy()
    d2.loc[d2.index[te], "label"] = 1 - d2.loc[d2.index[te], "label"]
    d2.loc[d2.index[te], "rms_ra"] = 1e4
    b = cross_validate("logreg", {}, d2, folds, seed=0, inner_splits=2, progress=False)
    np.testing.assert_array_equal(a.threshold[te], b.threshold[te])
    assert not np.allclose(a.proba[te], b.proba[te])  # the changed features do reach the prediction...
    d3 = df.copy()
    d3.loc[d3.index[te], "label"] = 1 - d3.loc[d3.index[te], "label"]
    c = cross_validate("logreg", {}, d3, folds, seed=0, inner_splits=2, progress=False)
    np.testing.assert_array_equal(a.proba[te], c.proba[te])  # ...but the held-out labels never do
    np.testing.assert_array_equal(a.threshold[te], c.threshold[te])


@pytest.mark.parametrize("kind", ["logreg", "hgb", "spacekit_mlp", "forest", "extra_trees", "gb", "stack"])
def test_save_load_roundtrip_and_determinism(tmp_path, kind):
    df = toy(40)
    y, k = df["label"].to_numpy(), sample_kind(df)
    m1 = build_model(kind, FAST[kind], seed=5).fit(df, y, k)
    m2 = build_model(kind, FAST[kind], seed=5).fit(df, y, k)
    p = m1.predict_proba(df)
    np.testing.assert_array_equal(p, m2.predict_proba(df))  # same seed, same result
    m1.threshold = 0.37
    m1.save(tmp_path / kind)
    assert not list((tmp_path / kind).glob("*.pkl")) and not list((tmp_path / kind).glob("*.joblib"))
    back = load_model(tmp_path / kind)
    np.testing.assert_allclose(back.predict_proba(df), p, rtol=0, atol=1e-12)
    assert back.threshold == 0.37 and back.kind == kind


def test_exported_trees_reproduce_sklearn():
    df = toy(80, seed=2)
    m = build_model("hgb", {"max_iter": 30, "max_depth": 4}, seed=0).fit(df, df["label"], sample_kind(df))
    odd = df.copy()
    odd["rms_ra"] = np.linspace(-1, 500, len(df))  # values outside the training range
    for d in (df, odd):
        np.testing.assert_allclose(m.predict_proba(d), m.sklearn_.predict_proba(engineer(d))[:, 1], atol=1e-12)


def test_yeo_johnson_matches_sklearn():
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(0, 3, 200), rng.exponential(50, 200), -rng.exponential(2, 200)])
    pt = PowerTransformer(standardize=False).fit(x)
    np.testing.assert_allclose(yeo_johnson(x, pt.lambdas_), pt.transform(x), rtol=1e-9, atol=1e-9)
    assert yeo_johnson(np.array([[3.0]]), np.array([0.0]))[0, 0] == pytest.approx(np.log(4))
    assert yeo_johnson(np.array([[-3.0]]), np.array([2.0]))[0, 0] == pytest.approx(-np.log(4))


@pytest.mark.parametrize("kind, params", [("forest", {"n_estimators": 25, "min_samples_leaf": 1}),
                                          ("extra_trees", {"n_estimators": 25, "features": "engineered"}),
                                          ("gb", {}), ("gb", {"real_positive_weight": 10.0, "subsample": 0.7})])
def test_exported_forests_and_boosting_reproduce_sklearn(kind, params):
    df = toy(80, seed=3)
    m = build_model(kind, params, seed=1).fit(df, df["label"], sample_kind(df))
    odd = df.copy()
    odd["rms_ra"] = np.linspace(-1, 500, len(df))
    odd["nmatches"] = np.arange(len(df)) % 7
    for d in (df, odd):
        ref = m.sklearn_.predict_proba(design_matrix(d, m.params["features"]))[:, 1]
        np.testing.assert_allclose(m.predict_proba(d), ref, rtol=0, atol=1e-12)
        assert 0 < ref.min() < ref.max() < 1 or kind != "gb"


@pytest.mark.parametrize("kind, params", [("forest", {"n_estimators": 30, "min_samples_leaf": 1}),
                                          ("extra_trees", {"n_estimators": 30, "features": "interactions"}),
                                          ("gb", {"n_estimators": 15})])
def test_tree_walk_reaches_sklearns_leaves(kind, params):
    """The NumPy walk of the exported trees ends in the leaf scikit-learn's ``apply`` gives, for every row and tree."""
    from blobhelpers.svm.models import _walk

    df = toy(80, seed=5)
    m = build_model(kind, params, seed=2).fit(df, df["label"], sample_kind(df))
    est = m.sklearn_
    odd = df.copy()
    odd["rms_ra"] = np.linspace(-1, 500, len(df))
    for d in (df, odd, df.iloc[:1], df.iloc[:0]):
        X = design_matrix(d, m.params["features"])
        leaves = _walk(m.trees, X)
        assert leaves.shape == (len(d), len(m.trees["roots"]))
        if len(d):
            ref = est.apply(X.astype(np.float32)).reshape(len(d), -1)  # per-tree node ids (gb: (n, trees, 1))
            np.testing.assert_array_equal(leaves - m.trees["roots"], ref)
        assert (m.trees["left"][leaves] < 0).all()


def test_real_threshold_never_exceeds_the_target_on_real_aligned_rows():
    rng = np.random.default_rng(1)
    for n in (7, 50, 832):
        p = rng.random(n).round(2)  # with ties
        kind = rng.choice([0, 1, 2], n, p=[0.8, 0.1, 0.1])
        p[kind == 2] = 1.0  # synthetic rows never count as false alarms
        for fa in (0.0, 0.05, 0.2):
            t = real_threshold(kind, p, fa)
            neg = p[kind == 0]
            assert flag(neg, t).mean() <= fa + 1e-12
            # the lowest such threshold: one step lower would exceed the target (unless all negatives are flagged)
            assert flag(neg, np.nextafter(t, -np.inf) if t > neg.min() else t).mean() > fa or t <= neg.min() or fa == 0


def test_summary_counts_and_selection():
    df = toy(60)
    folds = grouped_folds(df, 3, 0)
    res = {n: cross_validate(n, FAST[n], df, folds, 0, 0.05, 2, progress=False) for n in ("logreg", "hgb")}
    sums = {n: summarize(df, r) for n, r in res.items()}
    kind = sample_kind(df)
    for n, s in sums.items():
        nested = s["nested"]
        assert nested["real_misaligned"]["n"] == (kind == 1).sum()
        assert nested["synthetic"]["n"] == (kind == 2).sum()
        assert nested["false_alarm_real_aligned"]["k"] == (res[n].flagged & (kind == 0)).sum()
        assert sum(d["real_misaligned"]["n"] for d in nested["by_detector"].values()) == (kind == 1).sum()
        lo, hi = nested["real_misaligned"]["lo"], nested["real_misaligned"]["hi"]
        assert lo - 1e-9 <= nested["real_misaligned"]["rate"] <= hi + 1e-9
        c = nested["confusion"]
        assert c["tp"] + c["fn"] == int(df["label"].sum())
        real = kind != 2  # the ROC-AUC on real rows, recomputed from the out-of-fold probabilities
        from sklearn.metrics import roc_auc_score

        assert s["roc_auc_real"] == pytest.approx(roc_auc_score(df["label"][real], res[n].proba[real]))
        assert s["oracle"]["false_alarm_real_aligned"]["rate"] <= 0.05 + 1e-12
    mis = misclassified(df, res["logreg"])
    assert set(mis["error"]) <= {"missed real misaligned", "false alarm (real aligned)", "missed synthetic"}


def test_train_and_select_writes_a_loadable_model(tmp_path):
    df = toy(60)
    svm = {"cv_splits": 3, "inner_splits": 2, "models": {"logreg": {}, "hgb": {"max_iter": 10}}}
    r = train_and_select(df, svm, seed=0, out=tmp_path / "m", progress=False)
    m = load_model(tmp_path / "m")
    assert m.name == r["best"] and (tmp_path / "m" / "cv_summary.json").exists()
    kind = sample_kind(df)
    run = r["run"]
    assert len(run.seeds) == 3  # default: 3 fold seeds
    assert m.threshold == np.median([real_threshold(kind, run.proba[r["best"]][i], 0.05) for i in range(3)])
    assert r["best"] == max(r["scores"], key=r["scores"].get)
    oof = pd.read_csv(tmp_path / "m" / "cv_oof.csv")
    np.testing.assert_allclose(oof["p_selected_model"], run.proba[r["best"]].mean(0))


def test_bad_model_configuration():
    with pytest.raises(InputError, match="unknown kind"):
        build_model("x", {"kind": "jungle"})
    with pytest.raises(InputError, match="monotonic"):
        build_model("hgb", {"monotonic": {"no_such_feature": 1}}).fit(toy(20), toy(20)["label"])
    with pytest.raises(InputError, match="unknown parameter"):
        build_model("hgb", {"max_iters": 3})
    with pytest.raises(InputError, match="no model.json"):
        load_model("/nonexistent/model")
