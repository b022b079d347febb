"""SVM alignment models that use the visit images: spacekit's ensemble and the project's own.

Inputs are the 10 features (a table with spacekit's :data:`~blobhelpers.svm.features.FEATURES`,
canonical ``cat``) and, per visit, the three 128x128 RGB renderings of
:func:`blobhelpers.svm.images.load_images` -- ``(n, 3, 128, 128, 3)`` in 0-255 (plain,
``_source`` catalog overlay, ``_gaia`` overlay).

================== ==========================================================================
kind               what
================== ==========================================================================
``spacekit``       spacekit's published ensemble (:func:`build_spacekit_ensemble`): MLP
                   10 -> 18 -> 32 -> 64 -> 32 -> 18 on the features, "3D" CNN on the
                   ``(3, 128, 128, 3)`` stack, concatenated -> Dense 9 -> sigmoid; 1,335,981
                   parameters, layer for layer the released ``ensembleSVM`` (its weights load
                   into it). Trained with spacekit's recipe: Adam 1e-4, binary cross entropy,
                   batch 32. Features: Yeo-Johnson + standardisation of the 7 continuous ones,
                   fitted on the training rows (``raw_inputs=True``: raw features and 0-255
                   pixels, as the released model expects).
``cnn2d``          image only: a small 2D CNN (65,537 parameters) on the three renderings stacked
                   as 9 channels ``[plain, source - plain, gaia - plain] / 255``, flip/rot90
                   augmentation, class-balanced loss, global max + average pooling.
``stacked``        a tabular model of :mod:`blobhelpers.svm.models` (``logreg`` or ``hgb``) and
                   ``cnn2d``, combined by a logistic regression on the logits of their grouped
                   out-of-fold probabilities (inner folds by visit within the training rows).
                   Images are optional at prediction time: a row without images gets the
                   tabular probability, unchanged.
================== ==========================================================================

Why the image models are designed this way: a 128-px thumbnail of a ~4k-px drizzled mosaic has
~30 native pixels per thumbnail pixel, so the sub-arcsecond shifts that make a visit misaligned
(spacekit's corruption: <= 0.8") are invisible in it. What a thumbnail can show are gross
failures: doubled sources (exposures misregistered by several pixels of the thumbnail), catalog
or Gaia circles that do not sit on sources, empty or almost empty Gaia overlays. Hence:
difference channels (overlay - plain) isolate the circles; global *max* pooling keeps a local
cue found anywhere; the image model is never trusted alone -- the stacker learns how much the
image adds to the features, and without images the tabular model decides.

Saved model: a folder with ``ensemble.json`` (kind, parameters, seed, pixel and feature
preprocessing, stacking coefficients, threshold), ``image.keras`` (Keras safe format, loaded with
``safe_mode=True``; no Lambda layers, no custom objects) and, for ``stacked``, ``tabular/`` (a
:mod:`blobhelpers.svm.models` folder). No pickle.

:func:`compare_models` runs a grouped (by visit), stratified cross-validation of tabular-only,
image-only, stacked and spacekit's ensemble on the same folds; :func:`side_by_side` runs
spacekit's released model and fitted models of this module on the same arrays.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from blobhelpers.core.deeplearning import (keras_module as k, reproducible_tf_env, runs_reproducible_tf,
                                           save_keras_reproducibly, set_determinism)
from blobhelpers.core.errors import InputError
from blobhelpers.core.parallel import process_map
from blobhelpers.core.paths import atomic_path, write_json
from blobhelpers.core.stats import flag as _flag, rate, threshold_for_fpr
from blobhelpers.svm.features import CONTINUOUS, FEATURES, is_synthetic, recode_cat, visit_of
from blobhelpers.svm.folds import stratified_group_folds
from blobhelpers.svm.images import SIZE, load_spacekit_model, spacekit_predict
from blobhelpers.svm.models import build_model, load_model, yeo_johnson

__all__ = ["IMAGE_KINDS", "DEFAULT_IMAGE_PARAMS", "SPACEKIT_PARAMS", "build_spacekit_ensemble", "build_cnn2d",
           "image_channels", "check_features", "check_images", "ImageModel", "fit_image_model", "predict_proba",
           "load_image_model", "compare_models", "side_by_side", "metrics"]

IMAGE_KINDS = ("spacekit", "cnn2d", "stacked")
SPACEKIT_PARAMS = 1_335_981
DEFAULT_IMAGE_PARAMS = {
    "spacekit": {"epochs": 60, "batch_size": 32, "learning_rate": 1e-4, "raw_inputs": False},
    "cnn2d": {"epochs": 15, "batch_size": 32, "learning_rate": 1e-3, "augment": True, "width": 16},
    "stacked": {"epochs": 15, "batch_size": 32, "learning_rate": 1e-3, "augment": True, "width": 16,
                "tabular": "logreg", "tabular_params": {}, "inner_splits": 3, "stack_C": 1.0},
}
_EPS = 1e-6


def _keras():
    return k()


# ----------------------------------------------------------------------------------------------
# architectures


def build_spacekit_ensemble(learning_rate: float = 1e-4, compile: bool = True):
    """spacekit's SVM ensemble as published (layer names and order of the released model).

    Inputs ``svm_inputs`` ``(10,)`` and ``img3d_inputs`` ``(3, 128, 128, 3)``; output
    ``ensemble_output`` P(misaligned). MLP branch: Dense 18, 32, 64, 32, 18 (leaky ReLU). Image
    branch: Conv3D 32 (3x3x3, same, leaky ReLU) -> MaxPool3D 2 -> BatchNorm, then four blocks
    Conv3D (32, 64, 128, 256) -> MaxPool3D 1 (a no-op kept for fidelity) -> BatchNorm, global
    average pooling -> Dense 512 (leaky ReLU) -> Dropout 0.3. Concatenate ``[mlp, cnn]`` ->
    Dense 9 (leaky ReLU) -> Dense 1 sigmoid. 1,335,981 parameters (1,024 non-trainable), as the
    released ``ensembleSVM``, whose weights can be copied into it with ``set_weights``.
    """
    keras = _keras()
    L = keras.layers
    svm = keras.Input((len(FEATURES),), name="svm_inputs")
    img = keras.Input((3, SIZE, SIZE, 3), name="img3d_inputs")
    x = svm
    for i, units in enumerate((18, 32, 64, 32, 18), start=1):
        x = L.Dense(units, activation="leaky_relu", name=f"{i}_dense{units}")(x)
    y = img
    for i, (filters, pool) in enumerate(((32, 2), (32, 1), (64, 1), (128, 1), (256, 1))):
        y = L.Conv3D(filters, 3, padding="same", activation="leaky_relu", name=f"conv3d_{i + 5}")(y)
        y = L.MaxPooling3D(pool, name=f"max_pooling3d_{i + 5}")(y)
        y = L.BatchNormalization(name=f"batch_normalization_{i + 5}")(y)
    y = L.GlobalAveragePooling3D(name="global_average_pooling3d_1")(y)
    y = L.Dense(512, activation="leaky_relu", name="dense_1")(y)
    y = L.Dropout(0.3, name="dropout_1")(y)
    z = L.Concatenate(name="concatenate_1")([x, y])
    z = L.Dense(9, activation="leaky_relu", name="combined_input")(z)
    out = L.Dense(1, activation="sigmoid", name="ensemble_output")(z)
    model = keras.Model([svm, img], out, name="ensembleSVM")
    if compile:  # a named optimizer: Keras would number it by how many this process made before ("adam_17")
        model.compile(optimizer=keras.optimizers.Adam(float(learning_rate), name="adam"), loss="binary_crossentropy")
    return model


def build_cnn2d(width: int = 16, learning_rate: float = 1e-3, compile: bool = True):
    """Small image-only CNN on ``(128, 128, 9)`` stacked renderings (see :func:`image_channels`).

    Four Conv2D 3x3 blocks (*width*, 2*width, 4*width, 4*width filters; ReLU; 2x2 max pooling
    after the first three), then global max and average pooling concatenated -> Dense 32 ->
    Dropout 0.3 -> Dense 1 sigmoid. With ``width=16``: 65,537 parameters.
    """
    keras = _keras()
    L = keras.layers
    inp = keras.Input((SIZE, SIZE, 9), name="img_channels")
    x = inp
    for i, f in enumerate((width, 2 * width, 4 * width, 4 * width), start=1):
        x = L.Conv2D(f, 3, padding="same", activation="relu", name=f"conv{i}")(x)
        if i < 4:
            x = L.MaxPooling2D(2, name=f"pool{i}")(x)
    x = L.Concatenate(name="pooled")([L.GlobalMaxPooling2D(name="gmax")(x), L.GlobalAveragePooling2D(name="gavg")(x)])
    x = L.Dense(32, activation="relu", name="dense32")(x)
    x = L.Dropout(0.3, name="dropout")(x)
    out = L.Dense(1, activation="sigmoid", name="image_output")(x)
    model = keras.Model(inp, out, name="svm_cnn2d")
    if compile:  # a named optimizer (see build_spacekit_ensemble): the saved bytes do not depend on the process' past
        model.compile(optimizer=keras.optimizers.Adam(float(learning_rate), name="adam"), loss="binary_crossentropy")
    return model


# ----------------------------------------------------------------------------------------------
# inputs


def check_features(X_feat, source: str = "features") -> pd.DataFrame:
    """The feature table with spacekit's 10 columns, finite; :class:`InputError` naming *source* otherwise."""
    if not isinstance(X_feat, pd.DataFrame):
        raise InputError(f"{source}: expected a table (DataFrame) with columns {list(FEATURES)}")
    missing = [c for c in FEATURES if c not in X_feat.columns]
    if missing:
        raise InputError(f"{source}: missing column(s) {missing}; expected spacekit's {list(FEATURES)}")
    if len(X_feat) == 0:
        raise InputError(f"{source}: no rows")
    try:
        X = X_feat[list(FEATURES)].to_numpy(dtype=float)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{source}: non-numeric feature values ({exc})") from exc
    bad = ~np.isfinite(X)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        where = X_feat["index"].iloc[r] if "index" in X_feat else f"row {r}"
        raise InputError(f"{source}: {int(bad.any(1).sum())} row(s) with NaN or infinite features, e.g. "
                         f"{FEATURES[c]!r} of {where}")
    return X_feat


def check_images(X_img, n: int | None = None, source: str = "images") -> np.ndarray:
    """``(n, 3, 128, 128, 3)`` finite pixels in 0-255 as float32; :class:`InputError` otherwise."""
    try:
        arr = np.asarray(X_img, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{source}: not a numeric array ({exc})") from exc
    if arr.ndim != 5 or arr.shape[1:] != (3, SIZE, SIZE, 3):
        raise InputError(f"{source}: shape {arr.shape}, expected (n, 3, {SIZE}, {SIZE}, 3) (three RGB renderings "
                         f"per visit, as blobhelpers.svm.images.load_images returns)")
    if n is not None and len(arr) != n:
        raise InputError(f"{source}: {len(arr)} image stacks for {n} feature rows")
    if not np.isfinite(arr).all():
        raise InputError(f"{source}: NaN or infinite pixels")
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise InputError(f"{source}: pixels outside 0-255 (min {arr.min():g}, max {arr.max():g}); pass raw 0-255 "
                         f"renderings, the models scale them")
    return arr


def image_channels(X_img) -> np.ndarray:
    """Fixed pixel preprocessing of ``cnn2d``: ``(n, 128, 128, 9)`` = ``[plain, source-plain, gaia-plain] / 255``.

    Examples
    --------
    >>> x = np.zeros((1, 3, 128, 128, 3), np.float32); x[0, 2, 5, 5] = 255.0  # a Gaia circle pixel
    >>> c = image_channels(x); c.shape, c[0, 5, 5].tolist()
    ((1, 128, 128, 9), [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    """
    x = np.asarray(X_img, np.float32) / np.float32(255.0)
    plain = x[:, 0]
    return np.concatenate([plain, x[:, 1] - plain, x[:, 2] - plain], axis=-1)


def _augment(x: np.ndarray, rng) -> np.ndarray:
    """Random flips and quarter turns of the two spatial axes, per sample (channels-last images)."""
    out = np.empty_like(x)
    ax = (x.ndim - 3, x.ndim - 2)  # spatial axes of one sample
    for i in range(len(x)):
        s = np.rot90(x[i], int(rng.integers(4)), axes=(ax[0] - 1, ax[1] - 1))
        if rng.integers(2):
            s = np.flip(s, axis=ax[1] - 1)
        out[i] = s
    return out


def _groups_of(X_feat: pd.DataFrame, groups) -> np.ndarray:
    if groups is not None:
        g = np.asarray(groups).astype(str)
        if len(g) != len(X_feat):
            raise InputError(f"groups: {len(g)} values for {len(X_feat)} rows")
        return g
    if "index" in X_feat:
        return visit_of(X_feat["index"].astype(str)).to_numpy()
    return np.arange(len(X_feat)).astype(str)


def _row_kind(X_feat: pd.DataFrame, y: np.ndarray) -> np.ndarray:
    """0 real aligned, 1 real misaligned, 2 synthetic (from ``index`` when present; else the label)."""
    if "index" in X_feat:
        return np.where(is_synthetic(X_feat["index"].astype(str)).to_numpy(), 2, y.astype(int))
    return y.astype(int)


def _logit(p):
    p = np.clip(np.asarray(p, float), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def _folds(y, groups, n_splits: int, seed: int, strata=None):
    """Stratified folds grouped by *groups* (a group is never split); :class:`InputError` if impossible."""
    folds = stratified_group_folds(strata if strata is not None else y, groups, n_splits, seed)
    for tr, te in folds:
        if set(groups[tr]) & set(groups[te]):  # pragma: no cover - StratifiedGroupKFold guarantees it
            raise AssertionError("a visit is on both sides of a split")
    return folds


# ----------------------------------------------------------------------------------------------
# the model


class ImageModel:
    """A fitted ``spacekit``, ``cnn2d`` or ``stacked`` model; see the module docstring."""
    def __init__(self, kind: str, params: dict | None = None, seed: int = 0):
        if kind not in IMAGE_KINDS:
            raise InputError(f"unknown image model kind {kind!r}; known: {list(IMAGE_KINDS)}")
        unknown = sorted(set(params or {}) - set(DEFAULT_IMAGE_PARAMS[kind]))
        if unknown:
            raise InputError(f"image model {kind}: unknown parameter(s) {unknown}; "
                             f"known: {sorted(DEFAULT_IMAGE_PARAMS[kind])}")
        self.kind = kind
        self.params = {**DEFAULT_IMAGE_PARAMS[kind], **(params or {})}
        self.seed = int(seed)
        self.threshold = 0.5
        self.net = None  # Keras model
        self.tabular = None  # blobhelpers.svm.models.SvmModel (stacked)
        self.tx = None  # spacekit feature transform {"lambdas", "mu", "sigma"}
        self.stack = None  # {"coef": [tabular, image], "intercept"}
        self.info: dict = {}

    # -- preprocessing
    def _features(self, X_feat: pd.DataFrame) -> np.ndarray:
        X = X_feat[list(FEATURES)].to_numpy(dtype=float).copy()
        if self.tx is not None:
            k = len(CONTINUOUS)
            X[:, :k] = (yeo_johnson(X[:, :k], self.tx["lambdas"]) - self.tx["mu"]) / self.tx["sigma"]
        return X.astype(np.float32)

    def _pixels(self, X_img: np.ndarray) -> np.ndarray:
        if self.kind == "spacekit":
            return X_img if self.params["raw_inputs"] else X_img / np.float32(255.0)
        return image_channels(X_img)

    def _net_inputs(self, X_feat, X_img):
        if self.kind == "spacekit":
            return {"svm_inputs": self._features(X_feat), "img3d_inputs": self._pixels(X_img)}
        return self._pixels(X_img)

    # -- training
    def _train_net(self, X_feat, X_img, y):
        set_determinism(self.seed)
        p = self.params
        rng = np.random.default_rng(self.seed)
        if self.kind == "spacekit":
            from sklearn.preprocessing import PowerTransformer

            if not p["raw_inputs"]:
                pt = PowerTransformer(method="yeo-johnson", standardize=True)
                pt.fit(X_feat[list(CONTINUOUS)].to_numpy(float))
                self.tx = {"lambdas": pt.lambdas_.astype(float), "mu": pt._scaler.mean_.astype(float),
                           "sigma": pt._scaler.scale_.astype(float)}
            net = build_spacekit_ensemble(p["learning_rate"])
            feats, pix = self._features(X_feat), self._pixels(X_img)
            for _ in range(int(p["epochs"])):
                order = rng.permutation(len(y))
                net.fit({"svm_inputs": feats[order], "img3d_inputs": pix[order]}, y[order],
                        batch_size=int(p["batch_size"]), epochs=1, shuffle=False, verbose=0)
        else:
            net = build_cnn2d(int(p["width"]), p["learning_rate"])
            x = self._pixels(X_img)
            npos = float(y.sum())
            w = {0: len(y) / (2.0 * max(len(y) - npos, 1.0)), 1: len(y) / (2.0 * max(npos, 1.0))}
            sw = np.where(y == 1, w[1], w[0]).astype(np.float32)
            for _ in range(int(p["epochs"])):
                order = rng.permutation(len(y))
                xe = _augment(x[order], rng) if p["augment"] else x[order]
                net.fit(xe, y[order], sample_weight=sw[order], batch_size=int(p["batch_size"]), epochs=1,
                        shuffle=False, verbose=0)
        self.net = net

    def _net_proba(self, X_feat, X_img) -> np.ndarray:
        inputs = self._net_inputs(X_feat, X_img)
        n = len(X_img)
        out = []
        for i in range(0, n, 64):
            sl = {k: v[i:i + 64] for k, v in inputs.items()} if isinstance(inputs, dict) else inputs[i:i + 64]
            out.append(np.asarray(self.net(sl, training=False)).ravel())
        return np.concatenate(out).astype(float) if out else np.zeros(0)

    def fit(self, X_feat, X_img, y, groups=None, n_jobs: int | None = None):
        """Fit on features, images and 0/1 labels.

        The fit runs in a new worker process started with
        :func:`~blobhelpers.core.deeplearning.reproducible_tf_env` (TensorFlow's thread pools, oneDNN's
        and OpenBLAS' instruction set fixed before TensorFlow starts; nothing left from an earlier fit),
        so the fitted model is the same, bit for bit, on every machine of the project's kind, whatever
        this process ran before or how many cores it has (see :mod:`blobhelpers.core.deeplearning`);
        the model comes back here. Already in such a worker, it runs in place.

        ``stacked``: its inner folds (the out-of-fold tabular and ``cnn2d`` probabilities the
        stacker learns from) run in *n_jobs* worker processes (``None``: the default of
        :func:`blobhelpers.core.parallel.n_workers`; 1: one process); each is seeded on its own, so the model
        is the same whatever *n_jobs*.
        """

        if runs_reproducible_tf():
            self._fit(X_feat, X_img, y, groups, n_jobs)
        else:
            _keras()  # TensorFlow started here (quietly) before the fitted network comes back
            fitted = process_map(_fit_in_worker, [(self.kind, self.params, self.seed, X_feat, X_img, y, groups,
                                                   n_jobs)], 1, env=reproducible_tf_env(), fresh=True)[0]
            self.__dict__.update(fitted.__dict__)
        self.info["training_env"] = reproducible_tf_env()
        return self

    def _fit(self, X_feat, X_img, y, groups=None, n_jobs: int | None = None, net=None):
        """:meth:`fit`; a ``stacked`` model takes *net* (if given) as its network instead of training it:
        a ``cnn2d`` network trained by :meth:`_train_net` on these very rows with this model's seed and
        network parameters -- the network it would train (training is deterministic; :func:`compare_models`
        passes its ``cnn2d`` model of the same fold). Runs in this process, as it is: callers run it in a
        worker started with :func:`~blobhelpers.core.deeplearning.reproducible_tf_env` (:meth:`fit`,
        :func:`compare_models`)."""

        if net is not None and self.kind != "stacked":
            raise InputError(f"a {self.kind} model trains its own network")
        X_feat = check_features(X_feat, "training features").reset_index(drop=True)
        y = np.asarray(y, dtype=np.float32).ravel()
        if len(y) != len(X_feat):
            raise InputError(f"labels: {len(y)} values for {len(X_feat)} rows")
        if not np.isin(y, (0, 1)).all() or len(np.unique(y)) < 2:
            raise InputError("labels must be 0/1 with both classes present")
        X_img = check_images(X_img, len(X_feat), "training images")
        if self.kind != "stacked":
            self._train_net(X_feat, X_img, y)
            return self
        g = _groups_of(X_feat, groups)
        kind = _row_kind(X_feat, y)
        p = self.params
        tab_name = p["tabular"]

        def tab_fit(rows):
            m = build_model(tab_name, {"kind": tab_name, **(p["tabular_params"] or {})}, self.seed)
            return m.fit(X_feat.iloc[rows], y[rows].astype(int), kind[rows])

        oof = np.full((len(y), 2), np.nan)
        strata = np.where(kind == 2, 2, y.astype(int))
        folds = _folds(y, g, int(p["inner_splits"]), self.seed + 1, strata)
        for tr, _ in folds:
            if len(np.unique(y[tr])) < 2:
                raise InputError(f"stacked model: an inner training fold has one class only ({len(y)} rows, "
                                 f"{int(y.sum())} positive); give more visits or fewer inner_splits")
        cnn = {k: p[k] for k in DEFAULT_IMAGE_PARAMS["cnn2d"]}
        tasks = [(tab_name, p["tabular_params"] or {}, cnn, self.seed, X_feat.iloc[tr], X_img[tr], y[tr], kind[tr],
                  X_feat.iloc[te], X_img[te]) for tr, te in folds]
        for (_, te), pair in zip(folds, process_map(_stacked_inner_fold, tasks, n_jobs, env=reproducible_tf_env())):
            oof[te, 0], oof[te, 1] = pair
        self.stack = _fit_stacker(_logit(oof), y, float(p["stack_C"]))
        self.info["stack_oof_auc"] = _auc(y, oof)
        self.tabular = tab_fit(np.arange(len(y)))
        if net is None:
            self._train_net(X_feat, X_img, y)
        else:
            self.net = net
        return self

    # -- prediction
    def predict_proba(self, X_feat, X_img=None, has_image=None) -> np.ndarray:
        """P(misaligned). ``stacked``: rows without images (``X_img=None`` or ``has_image`` False) get the tabular one."""
        X_feat = check_features(X_feat).reset_index(drop=True)
        n = len(X_feat)
        if has_image is not None:
            has_image = np.asarray(has_image, bool).ravel()
            if len(has_image) != n:
                raise InputError(f"has_image: {len(has_image)} values for {n} rows")
        if X_img is None:
            if self.kind != "stacked":
                raise InputError(f"the {self.kind} model needs images")
            return self.tabular.predict_proba(X_feat)
        X_img = check_images(X_img, n)
        with_img = np.ones(n, bool) if has_image is None else has_image
        if self.kind != "stacked":
            if not with_img.all():
                raise InputError(f"the {self.kind} model needs images for every row")
            return self._net_proba(X_feat, X_img)
        p = self.tabular.predict_proba(X_feat)
        if with_img.any():
            s = np.flatnonzero(with_img)
            z = np.column_stack([_logit(p[s]), _logit(self._net_proba(X_feat.iloc[s], X_img[s]))])
            p = p.copy()
            p[s] = 1.0 / (1.0 + np.exp(-(z @ np.asarray(self.stack["coef"]) + self.stack["intercept"])))
        return p

    # -- persistence
    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / "image.keras") as tmp:
            save_keras_reproducibly(self.net, tmp)  # same weights -> same bytes (no save date, no addresses)
        if self.tabular is not None:
            self.tabular.save(folder / "tabular")
        meta = {"format": "blobhelpers-svm-image-model", "kind": self.kind, "params": self.params, "seed": self.seed,
                "threshold": float(self.threshold), "features": list(FEATURES), "cat_encoding": "spacekit",
                "pixels": ("raw 0-255" if self.kind == "spacekit" and self.params["raw_inputs"] else
                           "/255" if self.kind == "spacekit" else "[plain, source-plain, gaia-plain]/255"),
                "feature_transform": None if self.tx is None else {k: np.asarray(v).tolist() for k, v in self.tx.items()},
                "stack": self.stack, "info": self.info}
        write_json(folder / "ensemble.json", meta)
        return folder


def _fit_in_worker(kind: str, params: dict, seed: int, X_feat, X_img, y, groups, n_jobs) -> "ImageModel":
    """:meth:`ImageModel.fit` in a worker process started with the reproducible environment; the fitted model."""
    return ImageModel(kind, params, seed)._fit(X_feat, X_img, y, groups, n_jobs)


def _stacked_inner_fold(tab_name: str, tab_params: dict, cnn_params: dict, seed: int, X_tr, img_tr, y_tr, k_tr,
                        X_te, img_te) -> tuple:
    """One inner fold of a ``stacked`` fit: the tabular and ``cnn2d`` probabilities of its held-out rows."""
    tab = build_model(tab_name, {"kind": tab_name, **tab_params}, seed).fit(X_tr, y_tr.astype(int), k_tr)
    inner = ImageModel("cnn2d", cnn_params, seed)
    inner._train_net(X_tr, img_tr, y_tr)
    return tab.predict_proba(X_te), inner._net_proba(X_te, img_te)


def _auc(y, oof) -> list:
    from sklearn.metrics import roc_auc_score

    return [float(roc_auc_score(y, oof[:, j])) for j in range(oof.shape[1])]


def _fit_stacker(Z: np.ndarray, y: np.ndarray, C: float) -> dict:
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=C, max_iter=1000).fit(Z, y.astype(int))
    return {"coef": lr.coef_.ravel().astype(float).tolist(), "intercept": float(lr.intercept_[0]),
            "inputs": ["logit(tabular)", "logit(image)"]}


def fit_image_model(kind: str, X_feat, X_img, y, seed: int = 0, epochs: int | None = None, groups=None,
                    params: dict | None = None, n_jobs: int | None = None) -> ImageModel:
    """Fit a ``spacekit``, ``cnn2d`` or ``stacked`` model (see the module docstring).

    Parameters
    ----------
    X_feat : DataFrame
        spacekit's 10 features (canonical ``cat``); ``index`` (optional) gives the visits and
        marks synthetic rows.
    X_img : array ``(n, 3, 128, 128, 3)``
        Raw 0-255 renderings (all rows need images for training).
    y : 0/1 labels.
    seed : int
        Everything random (initialisation, batches, augmentation, inner folds) follows it.
    epochs : int, optional
        Overrides ``params["epochs"]``.
    groups : array, optional
        Visit of each row for the inner folds of ``stacked`` (default: from ``index``).
    n_jobs : int, optional
        Worker processes for the inner folds of ``stacked`` (``None``: the default of
        :func:`blobhelpers.core.parallel.n_workers`; 1: this process); the fitted model does not depend on it.
    """
    params = dict(params or {})
    if epochs is not None:
        params["epochs"] = int(epochs)
    return ImageModel(kind, params, seed).fit(X_feat, X_img, y, groups, n_jobs)


def predict_proba(model: ImageModel, X_feat, X_img=None, has_image=None) -> np.ndarray:
    """P(misaligned) of a fitted :class:`ImageModel` (images optional for ``stacked``)."""
    return model.predict_proba(X_feat, X_img, has_image)


def load_image_model(folder: str | Path) -> ImageModel:
    """Load a folder written by :meth:`ImageModel.save` (Keras safe mode, JSON; no pickle)."""
    folder = Path(folder)
    meta_path = folder / "ensemble.json"
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError as exc:
        raise InputError(f"{folder}: not a blobhelpers SVM image-model folder (no ensemble.json)") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"{meta_path}: malformed JSON ({exc.msg})") from exc
    if meta.get("format") != "blobhelpers-svm-image-model" or meta.get("kind") not in IMAGE_KINDS:
        raise InputError(f"{meta_path}: not an image-model description (kind {meta.get('kind')!r})")
    if meta.get("features") != list(FEATURES):
        raise InputError(f"{meta_path}: model features {meta.get('features')} differ from {list(FEATURES)}")
    m = ImageModel(meta["kind"], meta["params"], meta.get("seed", 0))
    m.threshold = float(meta.get("threshold", 0.5))
    m.info = meta.get("info", {})
    m.stack = meta.get("stack")
    if meta.get("feature_transform"):
        m.tx = {k: np.asarray(v, float) for k, v in meta["feature_transform"].items()}
    keras_path = folder / "image.keras"
    if not keras_path.exists():
        raise InputError(f"{keras_path}: missing")
    try:
        m.net = _keras().saving.load_model(keras_path, compile=False, safe_mode=True)
    except (ValueError, OSError, TypeError) as exc:
        raise InputError(f"{keras_path}: cannot load as a Keras 3 model ({exc})") from exc
    if m.kind == "stacked":
        if not m.stack:
            raise InputError(f"{meta_path}: stacked model without stacking coefficients")
        m.tabular = load_model(folder / "tabular")
    return m


# ----------------------------------------------------------------------------------------------
# evaluation


def metrics(y, p, fa_target: float = 0.05, row_kind=None) -> dict:
    """ROC-AUC and PR-AUC on probabilities; recall at a false-alarm rate, with 95 % Wilson intervals.

    The threshold is the lowest one giving at most *fa_target* false alarms among the negatives
    (real aligned rows when *row_kind* is given) of the pooled predictions ("oracle": chosen on
    the same out-of-fold predictions it is applied to). Recall is split into real and synthetic
    misaligned rows when *row_kind* (0 real aligned, 1 real misaligned, 2 synthetic) is given.
    """
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    y, p = np.asarray(y, int), np.asarray(p, float)
    kind = np.asarray(row_kind, int) if row_kind is not None else y.copy()
    both = len(np.unique(y)) == 2
    t = threshold_for_fpr(kind[kind < 2] == 1, p[kind < 2], fa_target)  # negatives: kind 0
    flag = _flag(p, t)
    out = {"n": int(len(y)), "n_positive": int(y.sum()),
           "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
           "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
           "brier": float(brier_score_loss(y, p)), "fa_target": float(fa_target), "threshold_oracle": t,
           "recall_at_fa": rate(flag[y == 1].sum(), (y == 1).sum()),
           "false_alarm_at_fa": rate(flag[kind == 0].sum(), (kind == 0).sum()),
           "recall_at_0.5": rate(_flag(p, 0.5)[y == 1].sum(), (y == 1).sum()),
           "false_alarm_at_0.5": rate(_flag(p, 0.5)[kind == 0].sum(), (kind == 0).sum())}
    if row_kind is not None:
        out["recall_real_at_fa"] = rate(flag[kind == 1].sum(), (kind == 1).sum())
        out["recall_synthetic_at_fa"] = rate(flag[kind == 2].sum(), (kind == 2).sum())
        real = kind < 2
        if len(np.unique(y[real])) == 2:
            out["roc_auc_real"] = float(roc_auc_score(y[real], p[real]))
            out["pr_auc_real"] = float(average_precision_score(y[real], p[real]))
    return out


def compare_models(table: pd.DataFrame, images, groups=None, models=("tabular", "cnn2d", "stacked"), n_splits: int = 3,
                   seed: int = 0, epochs: int | dict = 10, fa_target: float = 0.05, tabular: str = "logreg",
                   params: dict | None = None, progress: bool = False, n_jobs: int | None = None) -> dict:
    """Grouped, stratified cross-validation of tabular-only vs image-only vs ensembles on the same folds.

    Parameters
    ----------
    table : DataFrame
        spacekit's 10 features and ``label`` (``index`` optional: visits and synthetic rows).
    images : array ``(n, 3, 128, 128, 3)``, raw 0-255, one stack per row.
    groups : array, optional
        Visit of each row (default: first 7 tokens of ``index``); a visit is never split.
    models : names among ``"tabular"`` (the *tabular* kind of :mod:`~blobhelpers.svm.models`),
        ``"cnn2d"``, ``"stacked"``, ``"spacekit"`` (expensive on CPU: give it few *epochs*).
    epochs : int or dict
        Training epochs of the image models: one number for all, or ``{model: epochs}`` (e.g. fewer
        for ``spacekit``).
    params : dict, optional
        Per-model parameter overrides, ``{"cnn2d": {...}, "tabular": {...}, ...}``.
    n_jobs : int, optional
        Worker processes at a time (``None``: the default of :func:`blobhelpers.core.parallel.n_workers`;
        1: one worker). Every (model, fold) fit -- training and the held-out probabilities -- runs in
        a worker process started with :func:`~blobhelpers.core.deeplearning.reproducible_tf_env`
        (TensorFlow's thread pools, oneDNN's and OpenBLAS' instruction set fixed before TensorFlow starts;
        also with ``n_jobs=1``) and is seeded by *seed* alone (:func:`~blobhelpers.core.deeplearning.set_determinism`
        before each network), and the probabilities are put back in a fixed order, so the results are
        the same, bit for bit, whatever *n_jobs*, the order in which the fits run or which worker ran
        what before (tested), the machine's cores or its CPU's instruction set beyond AVX2 (with each
        machine's defaults, two 2-core machines of the same kind had given other stage-14 AUCs:
        :mod:`blobhelpers.core.deeplearning`). A ``stacked`` model whose network parameters are
        ``cnn2d``'s takes the ``cnn2d`` model's network of the same fold instead of training the same
        network again.

    Returns
    -------
    dict with ``folds`` (list of (train, test) row indices), ``groups``, ``y``, ``row_kind`` and
    ``models``: name -> ``{"proba": out-of-fold P(misaligned), "fold", "metrics"}``
    (:func:`metrics`: ROC/PR-AUC, recall at *fa_target* with Wilson intervals).
    """
    from tqdm.auto import tqdm

    table = check_features(table, "comparison table").reset_index(drop=True)
    if "label" not in table:
        raise InputError("comparison table: needs a 'label' column")
    y = table["label"].to_numpy(dtype=float).astype(int)
    images = check_images(images, len(table), "comparison images")
    g = _groups_of(table, groups)
    kind = _row_kind(table, y)
    unknown = [m for m in models if m not in ("tabular", *IMAGE_KINDS)]
    if unknown:
        raise InputError(f"compare_models: unknown model(s) {unknown}; known: {['tabular', *IMAGE_KINDS]}")
    if not isinstance(epochs, dict):
        epochs = {m: epochs for m in models}
    missing = [m for m in models if m != "tabular" and m not in epochs]
    if missing:
        raise InputError(f"compare_models: epochs {epochs} give none for {missing}")
    strata = np.where(kind == 2, 2, y)
    folds = _folds(y, g, n_splits, seed, strata)
    params = params or {}
    out = {"folds": folds, "groups": g, "y": y, "row_kind": kind, "models": {}}
    img_params = {m: _image_params(m, epochs, tabular, params) for m in models if m != "tabular"}
    # a stacked model's network is the cnn2d model's when their network parameters agree: one fit per fold does both
    share = {"cnn2d", "stacked"} <= set(img_params) and all(img_params["cnn2d"][k] == img_params["stacked"][k]
                                                             for k in DEFAULT_IMAGE_PARAMS["cnn2d"])
    groups_of_models = [("cnn2d", "stacked")] if share else []
    groups_of_models += [(m,) for m in models if not (share and m in ("cnn2d", "stacked"))]
    # the costliest fits first (fewer idle workers at the end); the results are put back by model and fold
    jobs = sorted(((names, i) for names in groups_of_models for i in range(len(folds))),
                  key=lambda j: -sum(_FIT_COST[m] for m in j[0]))
    tasks = []
    for names, i in jobs:
        tr, te = folds[i]
        imgs = (None, None) if names == ("tabular",) else (images[tr], images[te])
        tasks.append((names, table.iloc[tr], table.iloc[te], *imgs, y[tr], kind[tr], g[tr], seed, img_params,
                      tabular, params))
    bar = tqdm(total=len(tasks), desc=f"CV {', '.join(models)}", disable=not progress)
    done = {}
    # every fit in a worker started with the reproducible environment (see the docstring)
    results = process_map(_compare_fold, tasks, n_jobs, lambda _: bar.update(), env=reproducible_tf_env())
    for (names, i), probas in zip(jobs, results):
        done.update({(name, i): p for name, p in probas.items()})
    bar.close()
    for name in models:
        proba, fold = np.full(len(y), np.nan), np.full(len(y), -1)
        for i, (_, te) in enumerate(folds):
            proba[te] = done[name, i]
            fold[te] = i
        out["models"][name] = {"proba": proba, "fold": fold, "metrics": metrics(y, proba, fa_target, kind)}
    return out


#: Rough cost of one fit of :func:`compare_models` (cnn2d trainings; a stacked model sharing the cnn2d
#: model's network: 2), to start the costliest first.
_FIT_COST = {"tabular": 0, "cnn2d": 1, "spacekit": 2, "stacked": 2}


def _image_params(name: str, epochs: dict, tabular: str, params: dict) -> dict:
    """Parameters of image model *name* in :func:`compare_models` (*params* overrides, *epochs* of the model)."""
    pr = {"tabular": tabular, **params.get(name, {})} if name == "stacked" else dict(params.get(name, {}))
    if epochs.get(name) is not None:
        pr["epochs"] = int(epochs[name])
    return ImageModel(name, pr).params  # checked, defaults filled in


def _compare_fold(names: tuple, d_tr: pd.DataFrame, d_te: pd.DataFrame, img_tr, img_te, y_tr, k_tr, g_tr, seed: int,
                  img_params: dict, tabular: str, params: dict) -> dict:
    """Models *names* of :func:`compare_models` on one fold: ``{name: P(misaligned) of the held-out rows}``.

    *img_params*: each image model's parameters. ``("cnn2d", "stacked")``: the stacked model takes
    the cnn2d model's network (the one it would train).
    """

    out, cnn = {}, None
    for name in names:
        if name == "tabular":
            m = build_model(tabular, {"kind": tabular, **params.get("tabular", {})}, seed)
            m.fit(d_tr, y_tr, k_tr)
            out[name] = m.predict_proba(d_te)
            continue
        m = ImageModel(name, img_params[name], seed)
        m._fit(d_tr, img_tr, y_tr, g_tr, n_jobs=1, net=cnn.net if name == "stacked" and cnn is not None else None)
        cnn = m if name == "cnn2d" else cnn
        out[name] = m.predict_proba(d_te, img_te)
    return out


def side_by_side(features: pd.DataFrame, images, models: dict | None = None, spacekit_model=None,
                 cat_encoding: str = "spacekit") -> pd.DataFrame:
    """P(misaligned) of spacekit's released ensemble and of fitted models on the same rows and arrays.

    *features* has the 10 features (``cat`` in *cat_encoding*; ``index`` and ``label`` are
    carried over); *models* maps a column name to a fitted :class:`ImageModel` or tabular
    :class:`~blobhelpers.svm.models.SvmModel`; *spacekit_model* is a loaded Keras model
    (:func:`~blobhelpers.svm.images.load_spacekit_model`) or a path to ``svm_align.zip``.
    """

    features = check_features(features).reset_index(drop=True)
    images = check_images(images, len(features))
    canon = features.copy()
    canon["cat"] = recode_cat(features["cat"].astype(int), cat_encoding, "spacekit").astype(float)
    out = pd.DataFrame({c: features[c] for c in ("index", "label") if c in features})
    if spacekit_model is not None:
        if isinstance(spacekit_model, (str, Path)):
            spacekit_model = load_spacekit_model(spacekit_model)
        out["p_spacekit_released"] = spacekit_predict(spacekit_model, canon, images)
    for name, m in (models or {}).items():
        out[f"p_{name}"] = m.predict_proba(canon, images) if isinstance(m, ImageModel) else m.predict_proba(canon)
    return out
