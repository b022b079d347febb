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
                 misaligned rows up-weighted.
================ ===========================================================================

No pickle anywhere: a saved model is a folder with ``model.json`` (kind, parameters, operating
threshold, fitted coefficients or preprocessing), plus ``model.keras`` (MLP; Keras' safe
format) or ``trees.npz`` (gradient boosting: every tree's nodes as plain arrays, evaluated here
by a NumPy tree walk that reproduces scikit-learn's probabilities). Loading never executes code
from the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.errors import InputError
from ..core.paths import atomic_path, write_json
from .features import CONTINUOUS, ENGINEERED, FEATURES, engineer

__all__ = ["KINDS", "DEFAULT_PARAMS", "SvmModel", "SpacekitMLP", "LogisticModel", "GradientBoostingModel",
           "build_model", "load_model", "yeo_johnson", "sample_weights"]

KINDS = ("spacekit_mlp", "logreg", "hgb")
DEFAULT_PARAMS = {
    "spacekit_mlp": {"epochs": 60, "batch_size": 32, "learning_rate": 1e-4, "balanced_batches": True},
    "logreg": {"C": 0.3, "real_positive_weight": 10.0},
    "hgb": {"max_iter": 200, "learning_rate": 0.05, "max_depth": 3, "min_samples_leaf": 20,
            "l2_regularization": 1.0, "real_positive_weight": 10.0},
}


def sample_weights(kind_of_rows, real_positive_weight: float = 1.0) -> np.ndarray:
    """Row weights: *real_positive_weight* for real misaligned rows (kind 1), 1 otherwise.

    Examples
    --------
    >>> sample_weights([0, 1, 2], 10.0).tolist()
    [1.0, 10.0, 1.0]
    """
    k = np.asarray(kind_of_rows)
    return np.where(k == 1, float(real_positive_weight), 1.0)


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
        from ..core.deeplearning import keras_module as _keras

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
        model.compile(optimizer=keras.optimizers.Adam(sched), loss="binary_crossentropy", metrics=["accuracy"])
        return model

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        X = self._x(df).to_numpy(dtype=float).copy()
        cont = X[:, : len(CONTINUOUS)]
        X[:, : len(CONTINUOUS)] = (yeo_johnson(cont, self.tx["lambdas"]) - self.tx["mu"]) / self.tx["sigma"]
        return X.astype(np.float32)

    def fit(self, df, y, kind=None):
        from sklearn.preprocessing import PowerTransformer

        from ..core.deeplearning import set_determinism

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
            self.model.save(tmp)
        write_json(folder / "tx_data.json", {k: np.asarray(v).tolist() for k, v in self.tx.items()})

    def _load_state(self, folder, state):
        from ..core.deeplearning import keras_module as _keras

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
        p = {k: v for k, v in self.params.items() if k != "real_positive_weight"}
        est = HistGradientBoostingClassifier(random_state=self.seed, early_stopping=False, **p)
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


_CLASSES = {c.kind: c for c in (SpacekitMLP, LogisticModel, GradientBoostingModel)}


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
