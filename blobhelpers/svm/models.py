"""SVM alignment models: spacekit's MLP (faithful baseline) and tabular alternatives.

================ ===========================================================================
kind             what
================ ===========================================================================
``spacekit_mlp`` spacekit's MLP branch as published: 10 inputs -> Dense 18, 32, 64, 32, 18
                 (leaky ReLU) -> Dense 1 sigmoid; Adam 1e-4 with exponential decay (100,000
                 steps, 0.96, staircase), binary cross entropy, batch 32, 60 epochs,
                 class-balanced batches; its ``PowerX`` preprocessing (Yeo-Johnson +
                 standardisation of the 7 continuous features; det/wcs/cat raw) -- fitted on
                 the training rows only (spacekit fitted it on test rows too).
``logreg``       logistic regression on :func:`~blobhelpers.svm.features.engineered <engineer>`
                 features (standardised on the training rows), real misaligned rows up-weighted.
``hgb``          scikit-learn histogram gradient boosting on the engineered features, real
                 misaligned rows up-weighted; optional monotone constraints
                 (``monotonic: {engineered feature: +1 or -1}``).
``forest``       scikit-learn random forest (``features``: the 10 raw features, ``engineered``
                 or ``interactions`` = raw + rms == 0, nmatches < 4, their product and the
                 matches/points per Gaia source), real misaligned rows weighted
                 ``real_positive_weight``, synthetic rows ``synthetic_weight``.
``extra_trees``  the same with scikit-learn's extremely randomised trees.
``gb``           scikit-learn ``GradientBoostingClassifier`` (defaults: 100 trees of depth 3,
                 learning rate 0.1, no weighting): the "default gradient boosting" reference.
``stack``        a calibrated stack: a logistic regression on the logits of other models'
                 grouped (by visit) out-of-fold probabilities (+ one intercept per detector
                 with ``per_detector``: per-detector calibration); the base models are then
                 refitted on all rows.
================ ===========================================================================

No pickle anywhere: a saved model is a folder with ``model.json`` (kind, parameters, operating
threshold, fitted coefficients or preprocessing), plus ``model.keras`` (MLP; Keras' safe
format) or ``trees.npz`` (tree models: every tree's nodes as plain arrays, evaluated here by a
NumPy tree walk that reproduces scikit-learn's probabilities to ~1e-15), or, for ``stack``, one
such folder per base model under ``bases/``. Loading never executes code from the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from blobhelpers.core.deeplearning import keras_module as _keras, save_keras_reproducibly, set_determinism
from blobhelpers.core.errors import InputError
from blobhelpers.core.paths import atomic_path, write_json
from blobhelpers.svm.features import CONTINUOUS, DETECTORS, ENGINEERED, FEATURES, engineer, visit_of
from blobhelpers.svm.folds import stratified_group_folds

__all__ = ["KINDS", "DEFAULT_PARAMS", "SvmModel", "SpacekitMLP", "LogisticModel", "GradientBoostingModel",
           "TreeEnsembleModel", "StackModel", "build_model", "load_model", "yeo_johnson", "sample_weights",
           "design_matrix", "DESIGNS", "single_thread"]

KINDS = ("spacekit_mlp", "logreg", "hgb", "forest", "extra_trees", "gb", "stack")
_FOREST = {"n_estimators": 300, "min_samples_leaf": 3, "max_features": "sqrt", "max_depth": None,
           "real_positive_weight": 10.0, "synthetic_weight": 1.0, "features": "raw"}
DEFAULT_PARAMS = {
    "spacekit_mlp": {"epochs": 60, "batch_size": 32, "learning_rate": 1e-4, "balanced_batches": True},
    "logreg": {"C": 0.3, "real_positive_weight": 10.0},
    "hgb": {"max_iter": 200, "learning_rate": 0.05, "max_depth": 3, "min_samples_leaf": 20,
            "l2_regularization": 1.0, "real_positive_weight": 10.0, "monotonic": {}},
    "forest": dict(_FOREST),
    "extra_trees": {**_FOREST, "min_samples_leaf": 2},
    "gb": {"n_estimators": 100, "learning_rate": 0.1, "max_depth": 3, "subsample": 1.0, "min_samples_leaf": 1,
           "real_positive_weight": 1.0, "synthetic_weight": 1.0, "features": "raw"},
    "stack": {"bases": {}, "per_detector": False, "C": 1.0, "inner_splits": 3, "real_positive_weight": 10.0},
}

#: Inputs of the tree models: the raw 10 features, the engineered ones, or raw + interactions.
DESIGNS = {
    "raw": tuple(FEATURES),
    "engineered": ENGINEERED,
    "interactions": (*FEATURES, "rms_zero", "few_matches", "rms_zero_and_few_matches", "log_match_per_gaia",
                     "log_point_per_gaia"),
}


def design_matrix(df: pd.DataFrame, which: str = "raw") -> np.ndarray:
    """Input matrix of a tree model (columns :data:`DESIGNS` [*which*]).

    Examples
    --------
    >>> d = pd.DataFrame([dict(numexp=4, rms_ra=0.0, rms_dec=0.0, nmatches=1, point=53, segment=36, gaia=1.0,
    ...                        det=2, wcs=0, cat=7)])
    >>> dict(zip(DESIGNS["interactions"], design_matrix(d, "interactions")[0].tolist()))["rms_zero_and_few_matches"]
    1.0
    """
    if which not in DESIGNS:
        raise InputError(f"features {which!r}: known {sorted(DESIGNS)}")
    if which == "engineered":
        return engineer(df)
    raw = df[list(FEATURES)].to_numpy(dtype=float)
    if which == "raw":
        return raw
    f = {c: raw[:, i] for i, c in enumerate(FEATURES)}
    rz = ((f["rms_ra"] == 0) & (f["rms_dec"] == 0)).astype(float)
    few = (f["nmatches"] < 4).astype(float)
    pos = {c: np.clip(f[c], 0, None) for c in ("nmatches", "point", "gaia")}
    return np.column_stack([raw, rz, few, rz * few, np.log((pos["nmatches"] + 1) / (pos["gaia"] + 1)),
                            np.log((pos["point"] + 1) / (pos["gaia"] + 1))])


def single_thread():
    """Context limiting native thread pools (OpenMP, BLAS) to one thread.

    scikit-learn's histogram gradient boosting spins OpenMP threads; on a small, shared machine
    that makes a 0.1 s fit take 3 s. Everything here is fitted inside this context.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def sample_weights(kind_of_rows, real_positive_weight: float = 1.0, synthetic_weight: float = 1.0) -> np.ndarray:
    """Row weights: *real_positive_weight* for real misaligned rows (kind 1), *synthetic_weight*
    for synthetic ones (kind 2), 1 for real aligned rows.

    Examples
    --------
    >>> sample_weights([0, 1, 2], 10.0).tolist()
    [1.0, 10.0, 1.0]
    >>> sample_weights([0, 1, 2], 10.0, 0.5).tolist()
    [1.0, 10.0, 0.5]
    """
    k = np.asarray(kind_of_rows)
    return np.where(k == 1, float(real_positive_weight), np.where(k == 2, float(synthetic_weight), 1.0))


def yeo_johnson(x: np.ndarray, lmbda: np.ndarray) -> np.ndarray:
    """Yeo-Johnson transform of the columns of *x* with per-column *lmbda* (scikit-learn's formula).

    Examples
    --------
    >>> yeo_johnson(np.array([[0.0], [1.0], [-1.0]]), np.array([1.0])).ravel().tolist()
    [0.0, 1.0, -1.0]
    """
    x = np.asarray(x, dtype=float)
    lm = np.broadcast_to(np.asarray(lmbda, dtype=float), x.shape)
    out = np.empty_like(x)
    pos = x >= 0
    a = np.abs(lm) < 1e-8
    b = np.abs(lm - 2) < 1e-8
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(pos & ~a, (np.power(np.where(pos, x, 0) + 1, lm) - 1) / np.where(a, 1, lm), out)
        out = np.where(pos & a, np.log1p(np.where(pos, x, 0)), out)
        out = np.where(~pos & ~b, -(np.power(-np.where(pos, 0, x) + 1, 2 - lm) - 1) / np.where(b, 1, 2 - lm), out)
        out = np.where(~pos & b, -np.log1p(-np.where(pos, 0, x)), out)
    return out


class SvmModel:
    """Common interface: ``fit(df, y, kind)``, ``predict_proba(df)``, ``save(folder)``; ``threshold``."""
    kind = "base"

    def __init__(self, name: str | None = None, params: dict | None = None, seed: int = 0):
        unknown = sorted(set(params or {}) - set(DEFAULT_PARAMS[self.kind]) - {"kind"})
        if unknown:
            raise InputError(f"svm model {name or self.kind}: unknown parameter(s) {unknown}; "
                             f"known: {sorted(DEFAULT_PARAMS[self.kind])}")
        self.name = name or self.kind
        self.params = {**DEFAULT_PARAMS[self.kind], **{k: v for k, v in (params or {}).items() if k != "kind"}}
        self.seed = int(seed)
        self.threshold = 0.5
        self.info: dict = {}

    @staticmethod
    def _x(df: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in FEATURES if c not in df.columns]
        if missing:
            raise InputError(f"features lack column(s) {missing}")
        return df[list(FEATURES)]

    def fit(self, df: pd.DataFrame, y, kind=None):  # pragma: no cover - interface
        raise NotImplementedError

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def _meta(self) -> dict:
        return {"name": self.name, "kind": self.kind, "params": self.params, "seed": self.seed,
                "threshold": float(self.threshold), "features": list(FEATURES), "cat_encoding": "spacekit",
                "info": self.info}

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self._save_state(folder)
        write_json(folder / "model.json", {**self._meta(), "state": self._state()})
        return folder

    def _state(self) -> dict:
        return {}

    def _save_state(self, folder: Path) -> None:
        pass


class SpacekitMLP(SvmModel):
    """spacekit's MLP branch (see the module docstring); preprocessing fitted on the training rows."""
    kind = "spacekit_mlp"

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.model = None
        self.tx = None  # {"lambdas", "mu", "sigma"} as in spacekit's tx_data.json

    def build(self):
        keras = _keras()
        L = keras.layers
        inp = keras.Input((len(FEATURES),), name="svm_regression_inputs")
        x = inp
        for i, units in enumerate((18, 32, 64, 32, 18), start=1):
            x = L.Dense(units, activation="leaky_relu", name=f"{i}_dense{units}")(x)
        out = L.Dense(1, activation="sigmoid", name="svm_regression_output")(x)
        model = keras.Model(inp, out, name="svm_mlp")
        sched = keras.optimizers.schedules.ExponentialDecay(float(self.params["learning_rate"]), 100000, 0.96,
                                                           staircase=True)
        # named, not numbered by how many optimizers this process made before ("adam_17"): stable .keras bytes
        opt = keras.optimizers.Adam(sched, name="adam")
        model.compile(optimizer=opt, loss="binary_crossentropy", metrics=["accuracy"])
        return model

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        X = self._x(df).to_numpy(dtype=float).copy()
        cont = X[:, : len(CONTINUOUS)]
        X[:, : len(CONTINUOUS)] = (yeo_johnson(cont, self.tx["lambdas"]) - self.tx["mu"]) / self.tx["sigma"]
        return X.astype(np.float32)

    def fit(self, df, y, kind=None):
        from sklearn.preprocessing import PowerTransformer

        y = np.asarray(y, dtype=np.float32)
        pt = PowerTransformer(method="yeo-johnson", standardize=True).fit(self._x(df)[list(CONTINUOUS)].to_numpy(float))
        self.tx = {"lambdas": pt.lambdas_.astype(float), "mu": pt._scaler.mean_.astype(float),
                   "sigma": pt._scaler.scale_.astype(float)}
        X = self.transform(df)
        set_determinism(self.seed)
        self.model = self.build()
        rng = np.random.default_rng(self.seed)
        bs, epochs = int(self.params["batch_size"]), int(self.params["epochs"])
        steps = max(1, int(np.ceil(len(y) / bs)))
        if self.params["balanced_batches"] and 0 < y.sum() < len(y):
            pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
            half = bs // 2
            idx = np.concatenate([np.concatenate([rng.choice(pos, half), rng.choice(neg, bs - half)])
                                  for _ in range(steps * epochs)])
        else:
            idx = np.concatenate([rng.permutation(len(y)) for _ in range(epochs)])
        # one pass over epochs x balanced batches (same optimizer steps as spacekit's epoch loop)
        self.model.fit(X[idx], y[idx], batch_size=bs, epochs=1, shuffle=False, verbose=0)
        return self

    def predict_proba(self, df):
        X = self.transform(df)
        out = [np.asarray(self.model(X[i:i + 4096], training=False)) for i in range(0, len(X), 4096)]
        return np.concatenate(out).ravel().astype(float)

    def _state(self):
        return {"tx_data": {k: np.asarray(v).tolist() for k, v in self.tx.items()}}

    def _save_state(self, folder):
        with atomic_path(folder / "model.keras") as tmp:
            save_keras_reproducibly(self.model, tmp)  # same weights -> same bytes
        write_json(folder / "tx_data.json", {k: np.asarray(v).tolist() for k, v in self.tx.items()})

    def _load_state(self, folder, state):
        self.tx = {k: np.asarray(v, dtype=float) for k, v in state["tx_data"].items()}
        self.model = _keras().saving.load_model(folder / "model.keras", compile=False, safe_mode=True)


class LogisticModel(SvmModel):
    """Logistic regression on the engineered features; stored as coefficients (JSON)."""
    kind = "logreg"

    def fit(self, df, y, kind=None):
        from sklearn.linear_model import LogisticRegression

        X = engineer(self._x(df))
        self.mean = X.mean(0)
        self.scale = np.where(X.std(0) > 0, X.std(0), 1.0)
        w = sample_weights(kind if kind is not None else np.zeros(len(X)), self.params["real_positive_weight"])
        lr = LogisticRegression(C=float(self.params["C"]), max_iter=5000)
        with single_thread():
            lr.fit((X - self.mean) / self.scale, np.asarray(y, int), sample_weight=w)
        self.coef, self.intercept = lr.coef_.ravel().astype(float), float(lr.intercept_[0])
        return self

    def decision(self, df):
        return ((engineer(self._x(df)) - self.mean) / self.scale) @ self.coef + self.intercept

    def predict_proba(self, df):
        return 1.0 / (1.0 + np.exp(-self.decision(df)))

    def _state(self):
        return {"columns": list(ENGINEERED), "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "coef": self.coef.tolist(), "intercept": self.intercept}

    def _load_state(self, folder, state):
        if state["columns"] != list(ENGINEERED):
            raise InputError(f"{folder}: model was saved with other engineered features")
        self.mean, self.scale = np.asarray(state["mean"]), np.asarray(state["scale"])
        self.coef, self.intercept = np.asarray(state["coef"]), float(state["intercept"])


class GradientBoostingModel(SvmModel):
    """scikit-learn HistGradientBoostingClassifier on engineered features; trees stored as arrays."""
    kind = "hgb"

    def fit(self, df, y, kind=None):
        from sklearn.ensemble import HistGradientBoostingClassifier

        X = engineer(self._x(df))
        w = sample_weights(kind if kind is not None else np.zeros(len(X)), self.params["real_positive_weight"])
        p = {k: v for k, v in self.params.items() if k not in ("real_positive_weight", "monotonic")}
        mono = dict(self.params.get("monotonic") or {})
        bad = sorted(set(mono) - set(ENGINEERED))
        if bad or any(v not in (-1, 0, 1) for v in mono.values()):
            raise InputError(f"svm model {self.name}: monotonic wants {{engineered feature: -1/0/1}}; bad: {bad or mono}")
        if mono:
            p["monotonic_cst"] = [int(mono.get(c, 0)) for c in ENGINEERED]
        est = HistGradientBoostingClassifier(random_state=self.seed, early_stopping=False, **p)
        with single_thread():
            est.fit(X, np.asarray(y, int), sample_weight=w)
        self.sklearn_ = est
        self._export(est)
        return self

    def _export(self, est):
        trees = [it[0].nodes for it in est._predictors]
        if any(t["is_categorical"].any() for t in trees):  # pragma: no cover - we pass no categorical features
            raise InputError("categorical splits cannot be exported")
        sizes = np.array([len(t) for t in trees])
        offs = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        allt = np.concatenate(trees)
        shift = np.repeat(offs, sizes)
        self.trees = {"feature_idx": allt["feature_idx"].astype(np.int64),
                      "threshold": allt["num_threshold"].astype(float),
                      "missing_left": allt["missing_go_to_left"].astype(bool),
                      "left": (allt["left"].astype(np.int64) + shift), "right": (allt["right"].astype(np.int64) + shift),
                      "is_leaf": allt["is_leaf"].astype(bool), "value": allt["value"].astype(float),
                      "roots": offs.astype(np.int64), "max_depth": np.array([int(allt["depth"].max())]),
                      "baseline": np.asarray(est._baseline_prediction, float).ravel()[:1]}

    def decision(self, df):
        X = engineer(self._x(df))
        t = self.trees
        cur = np.broadcast_to(t["roots"], (len(X), len(t["roots"]))).copy()
        rows = np.arange(len(X))[:, None]
        for _ in range(int(t["max_depth"][0]) + 1):
            leaf = t["is_leaf"][cur]
            if leaf.all():
                break
            x = X[rows, t["feature_idx"][cur]]
            left = np.where(np.isnan(x), t["missing_left"][cur], x <= t["threshold"][cur])
            cur = np.where(leaf, cur, np.where(left, t["left"][cur], t["right"][cur]))
        return t["baseline"][0] + t["value"][cur].sum(1)

    def predict_proba(self, df):
        return 1.0 / (1.0 + np.exp(-self.decision(df)))

    def _state(self):
        return {"columns": list(ENGINEERED), "n_trees": int(len(self.trees["roots"]))}

    def _save_state(self, folder):
        with atomic_path(folder / "trees.npz") as tmp:
            np.savez(tmp, **self.trees)

    def _load_state(self, folder, state):
        if state["columns"] != list(ENGINEERED):
            raise InputError(f"{folder}: model was saved with other engineered features")
        with np.load(folder / "trees.npz", allow_pickle=False) as z:
            self.trees = {k: z[k] for k in z.files}


def _walk(trees: dict, X: np.ndarray) -> np.ndarray:
    """Leaf index reached in every tree by every row (scikit-learn's rule: ``x <= threshold`` goes left,
    on the features as float32; NaN follows ``missing_left``)."""
    X = np.asarray(X, dtype=np.float32).astype(np.float64)
    n, n_trees = len(X), len(trees["roots"])
    left_of, right_of = trees["left"], trees["right"]
    cur = np.broadcast_to(trees["roots"], (n, n_trees)).copy()
    flat = cur.reshape(-1)  # a view: (row, tree) pairs, row-major
    # only the pairs still at an internal node move on (most reach a leaf long before max_depth)
    act = np.flatnonzero(left_of[flat] >= 0)
    node, row = flat[act], act // max(n_trees, 1)
    for _ in range(int(trees["max_depth"][0]) + 1):
        if not len(act):
            break
        x = X[row, trees["feature"][node]]
        go_left = np.where(np.isnan(x), trees["missing_left"][node], x <= trees["threshold"][node])
        node = np.where(go_left, left_of[node], right_of[node])
        inner = left_of[node] >= 0
        flat[act[~inner]] = node[~inner]
        act, node, row = act[inner], node[inner], row[inner]
    flat[act] = node  # pairs not at a leaf after max_depth + 1 steps (a malformed file): where they stopped
    return cur


def export_sklearn_trees(estimators, leaf_value) -> dict:
    """Concatenate fitted scikit-learn trees into plain arrays (``left``/``right`` -1 at leaves).

    *leaf_value(tree_)* gives each node's value (the class-1 fraction for a forest, the scaled
    regression value for gradient boosting).
    """
    feats, thr, left, right, miss, val, roots, depth = [], [], [], [], [], [], [], 0
    off = 0
    for e in estimators:
        t = e.tree_
        n = t.node_count
        leaf = t.children_left < 0
        roots.append(off)
        feats.append(np.where(leaf, 0, t.feature).astype(np.int64))
        thr.append(t.threshold.astype(float))
        left.append(np.where(leaf, -1, t.children_left + off).astype(np.int64))
        right.append(np.where(leaf, -1, t.children_right + off).astype(np.int64))
        mgl = getattr(t, "missing_go_to_left", None)
        miss.append(np.zeros(n, bool) if mgl is None else np.asarray(mgl).astype(bool))
        val.append(np.asarray(leaf_value(t), float))
        depth = max(depth, int(t.max_depth))
        off += n
    return {"feature": np.concatenate(feats), "threshold": np.concatenate(thr), "left": np.concatenate(left),
            "right": np.concatenate(right), "missing_left": np.concatenate(miss), "value": np.concatenate(val),
            "roots": np.asarray(roots, np.int64), "max_depth": np.array([depth])}


class TreeEnsembleModel(SvmModel):
    """Random forest / extra trees / gradient boosting (scikit-learn) exported as node arrays.

    ``forest`` and ``extra_trees`` average their trees' class-1 leaf fractions (scikit-learn's
    ``predict_proba``); ``gb`` adds its trees' scaled leaf values to the prior log-odds and applies
    the logistic function. Predictions always go through the NumPy walk of the exported arrays
    (what a loaded model runs), tested to reproduce scikit-learn to 1e-12.
    """

    kind = "forest"

    def _estimator(self):
        from sklearn.ensemble import ExtraTreesClassifier, GradientBoostingClassifier, RandomForestClassifier

        p = {k: v for k, v in self.params.items() if k not in ("real_positive_weight", "synthetic_weight", "features")}
        if self.kind == "gb":
            return GradientBoostingClassifier(random_state=self.seed, **p)
        cls = RandomForestClassifier if self.kind == "forest" else ExtraTreesClassifier
        return cls(random_state=self.seed, n_jobs=1, **p)

    def fit(self, df, y, kind=None):
        X = design_matrix(self._x(df), self.params["features"])
        k = kind if kind is not None else np.zeros(len(X))
        w = sample_weights(k, self.params["real_positive_weight"], self.params["synthetic_weight"])
        est = self._estimator()
        with single_thread():
            est.fit(X, np.asarray(y, int), sample_weight=w)
        self.sklearn_ = est
        if self.kind == "gb":
            lr = float(est.learning_rate)
            self.trees = export_sklearn_trees(est.estimators_[:, 0], lambda t: lr * t.value[:, 0, 0])
            self.trees["baseline"] = np.asarray(est._raw_predict_init(X[:1]), float).ravel()[:1]
        else:
            col = list(est.classes_).index(1) if 1 in est.classes_ else None

            def frac(t):
                v = t.value[:, 0, :]
                return v[:, col] / v.sum(1) if col is not None else np.zeros(len(v))

            self.trees = export_sklearn_trees(est.estimators_, frac)
        return self

    def predict_proba(self, df):
        X = design_matrix(self._x(df), self.params["features"])
        leaf = _walk(self.trees, X)
        if self.kind == "gb":
            z = self.trees["baseline"][0] + self.trees["value"][leaf].sum(1)
            return 1.0 / (1.0 + np.exp(-z))
        return self.trees["value"][leaf].mean(1)

    def _state(self):
        return {"columns": list(DESIGNS[self.params["features"]]), "n_trees": int(len(self.trees["roots"]))}

    def _save_state(self, folder):
        with atomic_path(folder / "trees.npz") as tmp:
            np.savez(tmp, **self.trees)

    def _load_state(self, folder, state):
        if state["columns"] != list(DESIGNS[self.params["features"]]):
            raise InputError(f"{folder}: model was saved with other input columns")
        with np.load(folder / "trees.npz", allow_pickle=False) as z:
            self.trees = {k: z[k] for k in z.files}


class ExtraTreesModel(TreeEnsembleModel):
    kind = "extra_trees"


class SklearnGBModel(TreeEnsembleModel):
    kind = "gb"


def _logit(p):
    p = np.clip(np.asarray(p, float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


class StackModel(SvmModel):
    """Calibrated stack: logistic regression on base models' out-of-fold logits (+ per-detector intercepts).

    ``params["bases"]``: ``{name: {kind, parameters}}``. :meth:`fit` makes grouped (by visit)
    out-of-fold probabilities of every base on the training rows (``inner_splits`` folds), fits
    the combiner on their logits with real misaligned rows weighted ``real_positive_weight``,
    then refits every base on all rows. ``fit(..., oof=...)`` takes precomputed out-of-fold
    probabilities (the model-selection loop has them already).
    """

    kind = "stack"

    def _z(self, probs: dict, df) -> np.ndarray:
        cols = [_logit(probs[b]) for b in self.base_names]
        if self.params["per_detector"]:
            det = df["det"].to_numpy(float)
            cols += [(det == d).astype(float) for d in sorted(DETECTORS.values())]
        return np.column_stack(cols)

    @property
    def base_names(self) -> list:
        return list(self.params["bases"])

    def fit_combiner(self, probs: dict, df, y, kind=None):
        """Fit the combiner on the bases' held-out probabilities *probs* (``{base: p}``) of the rows of *df*."""
        from sklearn.linear_model import LogisticRegression

        y = np.asarray(y, int)
        w = sample_weights(kind if kind is not None else y, self.params["real_positive_weight"])
        lr = LogisticRegression(C=float(self.params["C"]), max_iter=5000)
        with single_thread():
            lr.fit(self._z(probs, df), y, sample_weight=w)
        self.coef, self.intercept = lr.coef_.ravel().astype(float), float(lr.intercept_[0])
        return self

    def fit(self, df, y, kind=None, oof: dict | None = None, folds=None):
        if not self.params["bases"]:
            raise InputError(f"svm model {self.name}: a stack needs bases")
        y = np.asarray(y, int)
        kind = np.asarray(kind if kind is not None else y)
        if oof is None:
            groups = visit_of(df["index"]).to_numpy() if "index" in df else np.arange(len(df))
            folds = folds or stratified_group_folds(kind, groups, int(self.params["inner_splits"]), self.seed)
            oof = {b: np.full(len(df), np.nan) for b in self.base_names}
            for tr, te in folds:
                for b in self.base_names:
                    m = build_model(b, self.params["bases"][b], self.seed)
                    m.fit(df.iloc[tr], y[tr], kind[tr])
                    oof[b][te] = m.predict_proba(df.iloc[te])
        self.fit_combiner(oof, df, y, kind)
        self.bases = {}
        for b in self.base_names:
            self.bases[b] = build_model(b, self.params["bases"][b], self.seed).fit(df, y, kind)
        return self

    def combine(self, probs: dict, df) -> np.ndarray:
        """The stack's probability from its bases' probabilities (*probs*: ``{base: p}``)."""
        return 1.0 / (1.0 + np.exp(-(self._z(probs, df) @ self.coef + self.intercept)))

    def predict_proba(self, df):
        return self.combine({b: m.predict_proba(df) for b, m in self.bases.items()}, df)

    def _state(self):
        return {"bases": self.base_names, "coef": self.coef.tolist(), "intercept": self.intercept}

    def _save_state(self, folder):
        for b, m in self.bases.items():
            m.save(folder / "bases" / b)

    def _load_state(self, folder, state):
        if state["bases"] != self.base_names:
            raise InputError(f"{folder}: stack bases {state['bases']} differ from its parameters")
        self.coef, self.intercept = np.asarray(state["coef"], float), float(state["intercept"])
        self.bases = {b: load_model(folder / "bases" / b) for b in self.base_names}


_CLASSES = {c.kind: c for c in (SpacekitMLP, LogisticModel, GradientBoostingModel, TreeEnsembleModel, ExtraTreesModel,
                                SklearnGBModel, StackModel)}


def build_model(name: str, params: dict | None = None, seed: int = 0) -> SvmModel:
    """A model from a ``svm.models.<name>`` section: ``kind`` (default: *name*) plus parameters.

    Examples
    --------
    >>> m = build_model("lr_strong", {"kind": "logreg", "C": 1.0})
    >>> m.kind, m.params["C"], m.params["real_positive_weight"]
    ('logreg', 1.0, 10.0)
    """
    kind = (params or {}).get("kind", name)
    if kind not in _CLASSES:
        raise InputError(f"svm model {name!r}: unknown kind {kind!r}; known: {list(KINDS)}")
    return _CLASSES[kind](name, params, seed)


def load_model(folder: str | Path) -> SvmModel:
    """Load a model folder written by :meth:`SvmModel.save` (no pickle; Keras safe mode)."""
    folder = Path(folder)
    meta_path = folder / "model.json"
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError as exc:
        raise InputError(f"{folder}: not a blobhelpers SVM model folder (no model.json); train one with "
                         f"`blobhelpers svm train` or `dvc repro`") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"{meta_path}: malformed JSON ({exc.msg})") from exc
    if meta.get("kind") not in _CLASSES:
        raise InputError(f"{meta_path}: unknown model kind {meta.get('kind')!r}")
    if meta.get("features") != list(FEATURES):
        raise InputError(f"{meta_path}: model features {meta.get('features')} differ from {list(FEATURES)}")
    m = _CLASSES[meta["kind"]](meta["name"], meta["params"], meta.get("seed", 0))
    m.threshold = float(meta.get("threshold", 0.5))
    m.info = meta.get("info", {})
    m._load_state(folder, meta["state"])
    return m
