"""Training the blob classifiers on materialised, freshly augmented subframes.

Every epoch draws new augmentation (rotation, flip, N(0, 0.75) noise) for every training
subframe from a generator seeded by (seed, epoch, batch), so a run is reproducible while no
two epochs see the same pixels. Recipes:

* ``isr``: the report's -- batch 100, Adam for the first ``adam_epochs`` epochs, then SGD
  (momentum 0.9), cross entropy;
* ``adamw_cosine``: AdamW with a cosine learning-rate decay (this project's model).

Models are saved without optimizer state (``.keras``), atomically.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import InputError
from ..core.deeplearning import keras_module as _keras, save_keras_reproducibly, set_determinism
from .cnn import build_model

__all__ = ["TrainConfig", "SubframeSequence", "train_model", "save_model", "set_determinism", "relu_activity"]


@dataclass
class TrainConfig:
    """Training settings of one model (a ``train.models.<name>`` section of params.yaml)."""

    architecture: str = "isr2021"
    recipe: str = "isr"
    epochs: int = 10
    adam_epochs: int = 5
    batch_size: int = 100
    learning_rate: float = 1e-3
    sgd_learning_rate: float = 0.01
    weight_decay: float = 1e-4
    restore_best: bool = False
    hard_negatives: float = 0.0  # fraction of blob-free training subframes given a negative feature
    noise_sigma: float | None = None  # augmentation noise (None: the dataset's, ISR 0.75)
    n_train: int | None = None  # use only the first n training subframes (None: all)
    curriculum_boost: float = 1.0  # injected depths x this factor in epoch 0, decaying linearly ...
    curriculum_epochs: int = 0  # ... to x1 at this epoch (0: no curriculum)
    representation: str = "isr"  # model input: "isr" (whole-image zscale clip + z-score) or "residual"
    nuisances: float = 0.0  # fraction of training subframes given domain randomisation (dataset.add_nuisances)

    def boost(self, epoch: int) -> float:
        """Depth multiplier of the injected blobs in *epoch* (0-based) under the curriculum."""
        if self.curriculum_epochs <= 0 or self.curriculum_boost == 1.0:
            return 1.0
        f = max(0.0, 1.0 - epoch / self.curriculum_epochs)
        return 1.0 + (self.curriculum_boost - 1.0) * f

    @classmethod
    def from_dict(cls, d: dict | None) -> "TrainConfig":
        from ..core.config import dataclass_from_params

        return dataclass_from_params(cls, d, "train.models.<name>")


def _sequence_base():
    keras = _keras()
    return keras.utils.PyDataset


class SubframeSequence(_sequence_base()):
    """Keras dataset yielding ``(batch, 256, 256, 1)`` augmented subframes and labels."""

    def __init__(self, dataset, batch_size: int = 100, seed: int = 0, augment: bool = True,
                 shuffle: bool = True, n: int | None = None, hard_negatives: float = 0.0,
                 noise_sigma: float | None = None, boost=None, representation: str = "isr",
                 nuisances: float = 0.0):
        super().__init__(workers=1, use_multiprocessing=False)
        self.representation = representation
        self.nuisances = float(nuisances)
        self.boost = boost  # callable epoch -> depth multiplier of the injected blobs, or None
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.augment = augment
        self.shuffle = shuffle
        self.hard_negatives = float(hard_negatives)
        self.noise_sigma = noise_sigma
        self.n = min(len(dataset), n) if n else len(dataset)
        self.epoch = 0
        self._order()

    def _order(self):
        rng = np.random.default_rng([self.seed, self.epoch, 7])
        self.order = rng.permutation(self.n) if self.shuffle else np.arange(self.n)

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def __getitem__(self, i):
        idx = self.order[i * self.batch_size:(i + 1) * self.batch_size]
        rng = np.random.default_rng([self.seed, self.epoch, int(i)]) if self.augment else None
        b = float(self.boost(self.epoch)) if self.boost is not None else 1.0
        x, y = self.dataset.batch(idx, rng, self.hard_negatives, self.noise_sigma, boost=b,
                                  representation=self.representation, nuisances=self.nuisances)
        return x[..., None], y.astype(np.int32)

    def on_epoch_end(self):
        self.epoch += 1
        self._order()


def _compile(model, optimizer):
    keras = _keras()
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])


class _Timer(_keras().callbacks.Callback):
    def __init__(self, n_samples):
        super().__init__()
        self.n_samples = n_samples
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._t = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._t)


def train_model(cfg: TrainConfig, train_ds, val_ds, seed: int, verbose: int = 2):
    """Train one model; return ``(model, history)``.

    *history* is a dict of per-epoch lists (loss, accuracy, val_loss, val_accuracy, optimizer,
    seconds, samples_per_s) plus ``best_epoch`` and ``n_params``.
    """
    keras = _keras()
    set_determinism(seed)
    model = build_model(cfg.architecture, seed=seed)
    train_seq = SubframeSequence(train_ds, cfg.batch_size, seed, augment=True, shuffle=True, n=cfg.n_train,
                                 hard_negatives=cfg.hard_negatives, noise_sigma=cfg.noise_sigma, boost=cfg.boost,
                                 representation=cfg.representation, nuisances=cfg.nuisances)
    xv, yv = val_ds.arrays(representation=cfg.representation)
    val = (xv[..., None], yv.astype(np.int32))
    hist = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": [], "optimizer": [], "seconds": []}
    timer = _Timer(train_seq.n)
    best = {"val_loss": np.inf, "weights": None, "epoch": -1}

    def run(optimizer, name, first, last):
        if last <= first:
            return
        _compile(model, optimizer)
        h = model.fit(train_seq, validation_data=val, initial_epoch=first, epochs=last, verbose=verbose,
                      callbacks=[timer, _Best(best)], shuffle=False)
        for k in ("loss", "accuracy", "val_loss", "val_accuracy"):
            hist[k].extend(float(v) for v in h.history[k])
        hist["optimizer"].extend([name] * (last - first))

    if cfg.recipe == "isr":
        a = min(cfg.adam_epochs, cfg.epochs)
        run(keras.optimizers.Adam(cfg.learning_rate), "adam", 0, a)
        run(keras.optimizers.SGD(cfg.sgd_learning_rate, momentum=0.9), "sgd", a, cfg.epochs)
    elif cfg.recipe == "adamw_cosine":
        steps = max(1, len(train_seq) * cfg.epochs)
        sched = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, decay_steps=steps, alpha=0.02)
        run(keras.optimizers.AdamW(sched, weight_decay=cfg.weight_decay), "adamw", 0, cfg.epochs)
    else:
        raise InputError(f"train: unknown recipe {cfg.recipe!r} (isr, adamw_cosine)")
    hist["seconds"] = timer.seconds
    hist["samples_per_s"] = [train_seq.n / s for s in timer.seconds]
    hist["best_epoch"] = int(best["epoch"])
    hist["n_params"] = int(model.count_params())
    hist["n_train"] = int(train_seq.n)
    if cfg.restore_best and best["weights"] is not None:
        model.set_weights(best["weights"])
        hist["restored_epoch"] = int(best["epoch"])
    return model, hist


class _Best(_keras().callbacks.Callback):
    def __init__(self, store):
        super().__init__()
        self.store = store

    def on_epoch_end(self, epoch, logs=None):
        v = (logs or {}).get("val_loss")
        if v is not None and v < self.store["val_loss"]:
            self.store.update(val_loss=float(v), weights=self.model.get_weights(), epoch=int(epoch))


def save_model(model, path: str | Path, architecture: str | None = None,
               preprocessing: dict | None = None) -> Path:
    """Save *model* as ``.keras`` without optimizer state, atomically, with its preprocessing.

    *preprocessing* (``representation``, and for ``"isr"`` the ``clip_factor`` and
    ``border_rule`` of the scaling) is written beside the model as ``<name>.preprocess.json``:
    ``classify`` and the monitor read it (:func:`~blobhelpers.blob.cnn.load_preprocessing`)
    instead of whatever params.yaml happens to be around.
    """
    from ..core.paths import atomic_path, write_json
    from .cnn import preprocessing_path

    arch = architecture or model.name
    clean = build_model(arch)
    clean.set_weights(model.get_weights())
    with atomic_path(path, suffix=".keras") as tmp:
        save_keras_reproducibly(clean, tmp)
    if preprocessing is not None:
        write_json(preprocessing_path(path), {"architecture": arch, **preprocessing})
    return Path(path)


def relu_activity(model, X, layers=None, batch: int = 50) -> dict:
    """How alive the ReLU layers of *model* are on inputs *X* ``(n, 256, 256)``.

    For each ReLU layer (default: every Conv2D/Dense layer with a ReLU activation) returns
    ``{"active": mean fraction of positive outputs, "dead": fraction of units (channels) that are
    never positive on any input}``. A network stuck at the ln 2 loss plateau shows most units of
    its second convolution or first dense layer dead.
    """
    keras = _keras()
    if layers is None:
        layers = [l.name for l in model.layers
                  if isinstance(l, (keras.layers.Conv2D, keras.layers.Dense))
                  and getattr(l.activation, "__name__", "") == "relu"]
    if not layers:
        return {}
    probe = keras.Model(model.input, [model.get_layer(n).output for n in layers])
    pos = {n: 0.0 for n in layers}
    ever = {n: None for n in layers}
    total = 0
    X = np.asarray(X, np.float32)
    for a in range(0, len(X), batch):
        outs = probe(X[a:a + batch, ..., None], training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for n, o in zip(layers, outs):
            o = np.asarray(o) > 0
            pos[n] += float(o.reshape(len(o), -1).mean(axis=1).sum())
            unit = o.reshape(-1, o.shape[-1]).any(axis=0)
            ever[n] = unit if ever[n] is None else (ever[n] | unit)
        total += min(batch, len(X) - a)
    return {n: {"active": pos[n] / total, "dead": float(1.0 - ever[n].mean())} for n in layers}
