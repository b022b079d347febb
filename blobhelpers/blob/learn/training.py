"""Training the blob classifiers on materialised, freshly augmented subframes.

Every epoch draws new augmentation (rotation, flip, N(0, 0.75) noise) for every training
subframe from a generator seeded by (seed, epoch, batch), so a run is reproducible while no
two epochs see the same pixels. Recipes:

* ``isr``: the report's -- batch 100, Adam for the first ``adam_epochs`` epochs, then SGD
  (momentum 0.9), cross entropy;
* ``adamw_cosine``: AdamW with a cosine learning-rate decay (this project's model).

Models are saved without optimizer state (``.keras``), atomically.

Long runs (the ``isr_full`` profile: 16,000 subframes x 200 epochs) can checkpoint every epoch
and resume after an interruption (``train_model(..., checkpoint_dir=...)``), and report one
progress line per epoch with an ETA on stderr. A resumed run ends with the same weights, bit for
bit, as an uninterrupted one on the same device: the checkpoint holds every variable (weights,
dropout seed states, the optimizer's slots and iteration counter, hence the position in the
cosine schedule), and the augmentation is a function of (seed, epoch, batch).
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np

from blobhelpers.blob.learn.cnn import DEFAULT_WIDTH, build_model, model_width, preprocessing_path
from blobhelpers.blob.sections import TrainConfig
from blobhelpers.core.deeplearning import keras_module as _keras, save_keras_reproducibly, set_determinism, tensorflow
from blobhelpers.core.errors import InputError
from blobhelpers.core.paths import atomic_path, write_json, write_text
from blobhelpers.core.tables import format_duration

__all__ = ["SubframeSequence", "train_model", "save_model", "set_determinism", "relu_activity",
           "CheckpointWarning", "CHECKPOINT_FILE"]


def _sequence_base():
    keras = _keras()
    return keras.utils.PyDataset


class SubframeSequence(_sequence_base()):
    """Keras dataset yielding ``(batch, 256, 256, 1)`` augmented subframes and labels."""
    def __init__(self, dataset, batch_size: int = 100, seed: int = 0, augment: bool = True,
                 shuffle: bool = True, n: int | None = None, hard_negatives: float = 0.0,
                 noise_sigma: float | None = None, boost=None, representation: str = "isr",
                 nuisances: float = 0.0, prefetch: bool = True, crescents: float = 0.0):
        super().__init__(workers=1, use_multiprocessing=False)
        self.representation = representation
        self.nuisances = float(nuisances)
        self.crescents = float(crescents)
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
        # Make the next batch while the model trains on this one (NumPy releases the GIL); the
        # batches do not depend on it. prefetch=False: everything in the calling thread.
        self.prefetch = bool(prefetch)
        self._pool = None
        self._ahead: dict | None = None
        self._order()

    def _order(self):
        rng = np.random.default_rng([self.seed, self.epoch, 7])
        self.order = rng.permutation(self.n) if self.shuffle else np.arange(self.n)

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def _make(self, epoch: int, order: np.ndarray, i: int):
        """Batch *i* of the epoch with counter *epoch* and sample order *order*: a function of
        these alone (its random numbers are seeded by ``(seed, epoch, i)``)."""
        idx = order[i * self.batch_size:(i + 1) * self.batch_size]
        rng = np.random.default_rng([self.seed, epoch, int(i)]) if self.augment else None
        b = float(self.boost(epoch)) if self.boost is not None else 1.0
        extra = {"crescents": self.crescents} if self.crescents else {}
        x, y = self.dataset.batch(idx, rng, self.hard_negatives, self.noise_sigma, boost=b,
                                  representation=self.representation, nuisances=self.nuisances, **extra)
        return x[..., None], y.astype(np.int32)

    def __getitem__(self, i):
        """Batch *i*; the next batch of the same epoch is then made in a background thread while
        the model trains on this one (the batch is the same either way: see :meth:`_make`)."""
        i = int(i)
        key = (self.epoch, i)
        fut = self._ahead.pop(key, None) if self._ahead is not None else None
        self._ahead = {}  # anything else made ahead is stale (another epoch, or batches asked out of order)
        out = fut.result() if fut is not None else self._make(self.epoch, self.order, i)
        if self.prefetch and i + 1 < len(self):
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(1, thread_name_prefix="subframes")
            self._ahead[(self.epoch, i + 1)] = self._pool.submit(self._make, self.epoch, self.order, i + 1)
        return out

    def __del__(self):
        if getattr(self, "_pool", None) is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

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


def _phases(cfg: TrainConfig, steps_per_epoch: int) -> list:
    """The recipe's optimizer phases that have epochs: ``[(name, make_optimizer, first, last)]``.

    Epochs ``first .. last - 1`` (0-based) are trained with a fresh optimizer from
    ``make_optimizer()`` in one ``fit`` call.
    """
    keras = _keras()
    if cfg.recipe == "isr":
        a = min(cfg.adam_epochs, cfg.epochs)
        phases = [("adam", lambda: keras.optimizers.Adam(cfg.learning_rate), 0, a),
                  ("sgd", lambda: keras.optimizers.SGD(cfg.sgd_learning_rate, momentum=0.9), a, cfg.epochs)]
    elif cfg.recipe == "adamw_cosine":
        steps = max(1, steps_per_epoch * cfg.epochs)

        def adamw():
            sched = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, decay_steps=steps, alpha=0.02)
            return keras.optimizers.AdamW(sched, weight_decay=cfg.weight_decay)

        phases = [("adamw", adamw, 0, cfg.epochs)]
    else:
        raise InputError(f"train: unknown recipe {cfg.recipe!r} (isr, adamw_cosine)")
    return [p for p in phases if p[3] > p[2]]


def train_model(cfg: TrainConfig, train_ds, val_ds, seed: int, verbose: int = 2,
                checkpoint_dir: str | Path | None = None, progress: bool | None = None):
    """Train one model; return ``(model, history)``.

    *history* is a dict of per-epoch lists (loss, accuracy, val_loss, val_accuracy, optimizer,
    seconds, samples_per_s) plus ``best_epoch`` and ``n_params``.

    *verbose*: 0 is silent; 1 and 2 are Keras' progress output (a bar / one line per epoch, on
    stdout) plus one line per epoch with the time per epoch and the ETA on stderr
    (``[train isr2021] epoch 12/200  loss 0.4100  val_loss 0.4400  61 s/epoch  ETA 3h 13m``).
    *progress* overrides whether that stderr line is written (the pipeline's notebooks use
    ``verbose=0, progress=True``: the line goes to the stage log, while the report holds only
    what a resumed and an uninterrupted run share).

    *checkpoint_dir* (default None: no checkpoints, the results are those of a run without
    them): after every epoch the complete training state is written there, atomically, to
    ``checkpoint.npz`` (with a readable copy of its metadata in ``checkpoint.json``; the progress
    lines are appended to ``progress.log``). A later call with the same directory resumes after
    the last completed epoch and ends with the same weights as an uninterrupted run on the same
    device; a checkpoint of a finished run is returned without training. A checkpoint written
    for anything else -- another configuration, seed, dataset (sizes or content), training code,
    or Keras/TensorFlow version -- is set aside as ``checkpoint.rejected.npz`` with a
    :class:`CheckpointWarning` naming what differs, and training starts from epoch 1.
    """
    set_determinism(seed)
    model = build_model(cfg.architecture, seed=seed, width=cfg.width)
    train_seq = SubframeSequence(train_ds, cfg.batch_size, seed, augment=True, shuffle=True, n=cfg.n_train,
                                 hard_negatives=cfg.hard_negatives, noise_sigma=cfg.noise_sigma, boost=cfg.boost,
                                 representation=cfg.representation, nuisances=cfg.nuisances,
                                 crescents=cfg.crescents)
    xv, yv = val_ds.arrays(representation=cfg.representation)
    val = (xv[..., None], yv.astype(np.int32))
    hist = {"loss": [], "accuracy": [], "val_loss": [], "val_accuracy": [], "optimizer": [], "seconds": []}
    timer = _Timer(train_seq.n)
    best = {"val_loss": np.inf, "weights": None, "epoch": -1}
    phases = _phases(cfg, len(train_seq))
    label = Path(checkpoint_dir).name if checkpoint_dir is not None else cfg.architecture
    say = _Say(label, Path(checkpoint_dir) / PROGRESS_FILE if checkpoint_dir is not None else None,
               enabled=verbose > 0 if progress is None else bool(progress), after_bar=verbose == 1)

    ckpt, state, done = None, None, 0
    if checkpoint_dir is not None:
        ckpt = _Checkpoint(Path(checkpoint_dir), _fingerprint(cfg, seed, train_seq, val), hist, best, timer,
                           train_seq, keep_best_weights=cfg.restore_best)
        state = ckpt.load(model)
        if state is not None:
            done = state["epoch"] + 1
            for k in hist:
                hist[k].extend(state["history"][k])
            timer.seconds.extend(state["history"]["seconds"])
            best.update(val_loss=float(state["best"]["val_loss"]), epoch=int(state["best"]["epoch"]),
                        weights=state["best_weights"])
    resume = ""
    if state is not None and done >= cfg.epochs:
        resume = f"; finished checkpoint {ckpt.path}: no training"
    elif state is not None:
        resume = f"; resuming after epoch {done}/{cfg.epochs} from {ckpt.path}"
    say(f"{cfg.epochs} epochs x {len(train_seq)} batches of {cfg.batch_size} ({train_seq.n} subframes) on "
        f"{_device()}{resume}")

    fitted = False
    for p, (name, make_optimizer, first, last) in enumerate(phases):
        if last <= done:
            continue
        start = max(first, done)
        optimizer = make_optimizer()
        _compile(model, optimizer)
        if state is not None and start > first:  # resuming inside this phase: its optimizer's state
            ckpt.restore_optimizer(optimizer, model, state)
        if state is not None and not fitted:
            # Put the sequence where an uninterrupted run has it: fit() advances its epoch counter once
            # when it starts and once after every epoch, so phase p (0-based) trains epoch e on
            # counter e + p + 1. (A run without a checkpoint never sets it: nothing changes there.)
            train_seq.epoch = start + p
            train_seq._order()
        callbacks = [timer, _Best(best), _Record(hist, name)]
        if ckpt is not None:
            ckpt.phase = p
            callbacks.append(ckpt)
        callbacks.append(_Progress(say, cfg.epochs, timer))
        model.fit(train_seq, validation_data=val, initial_epoch=start, epochs=last, verbose=verbose,
                  callbacks=callbacks, shuffle=False)
        fitted = True
    if not fitted and phases:  # a finished checkpoint: the model as the last phase left it
        _compile(model, phases[-1][1]())
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


class _Record(_keras().callbacks.Callback):
    """Appends each epoch's losses and accuracies (and the optimizer's name) to the history."""
    def __init__(self, hist, optimizer_name):
        super().__init__()
        self.hist = hist
        self.name = optimizer_name

    def on_epoch_end(self, epoch, logs=None):
        for k in ("loss", "accuracy", "val_loss", "val_accuracy"):
            self.hist[k].append(float(logs[k]))
        self.hist["optimizer"].append(self.name)


# --------------------------------------------------------------------------- progress lines

PROGRESS_FILE = "progress.log"


class _Say:
    """Writes ``[train <label>] ...`` lines to stderr (and appends them to a log file)."""
    def __init__(self, label: str, log: Path | None, enabled: bool = True, after_bar: bool = False):
        self.label, self.log, self.enabled = label, log, enabled
        self.after_bar = after_bar  # Keras' progress bar (verbose=1) leaves its line open on stdout

    def __call__(self, text: str, epoch_end: bool = False) -> None:
        if not self.enabled:
            return
        line = f"[train {self.label}] {text}"
        # In a notebook kernel sys.stderr only reaches the notebook (under `dvc repro`, saved when the
        # stage ends); the process's own stderr is seen live (`dvc repro`: build/notebooks/<stage>.stderr.log)
        # and ipykernel copies what is written there into the notebook as well.
        in_kernel = type(sys.stderr).__module__.startswith("ipykernel") and sys.__stderr__ is not None
        out = sys.__stderr__ if in_kernel else sys.stderr
        print(("\n" if epoch_end and self.after_bar else "") + line, file=out, flush=True)
        if self.log is not None:
            self.log.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log, "a") as f:
                f.write(line + "\n")


class _Progress(_keras().callbacks.Callback):
    """One line per epoch: losses, seconds per epoch (mean of this session's last 5) and the ETA."""
    def __init__(self, say: _Say, epochs: int, timer: _Timer):
        super().__init__()
        self.say, self.epochs, self.timer = say, epochs, timer
        self.first = len(timer.seconds)  # epochs timed before this fit (restored or earlier phases)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        recent = self.timer.seconds[max(self.first, len(self.timer.seconds) - 5):] or self.timer.seconds[-1:]
        per = float(np.mean(recent)) if recent else float("nan")
        left = self.epochs - (epoch + 1)
        per_s = f"{per:.1f}" if per < 10 else f"{per:.0f}"
        self.say(f"epoch {epoch + 1}/{self.epochs}  loss {logs.get('loss', float('nan')):.4f}  "
                 f"val_loss {logs.get('val_loss', float('nan')):.4f}  {per_s} s/epoch  "
                 + ("done" if left == 0 else f"ETA {format_duration(per * left)}"), epoch_end=True)


def _device() -> str:
    tf = tensorflow()
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        return f"{len(gpus)} GPU{'s' if len(gpus) > 1 else ''} ({', '.join(g.name for g in gpus)})"
    return "CPU"


# --------------------------------------------------------------------------- checkpoints

CHECKPOINT_FILE = "checkpoint.npz"
_FORMAT = "blobhelpers-train-checkpoint/1"


class CheckpointWarning(UserWarning):
    """A training checkpoint could not be used (another configuration, unreadable): training restarts."""


def _sha256(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def _fingerprint(cfg: TrainConfig, seed: int, train_seq, val) -> dict:
    """What a checkpoint must have been written for: everything that decides the training's numbers.

    The configuration and seed; the dataset sizes and content (the validation arrays and the first
    augmented training batch: a changed simulation, augmentation or preprocessing shows there);
    the training and model code; the Keras and TensorFlow versions. Not the device.
    """
    tf = tensorflow()
    keras = _keras()
    here = Path(__file__).resolve().parent
    x0, y0 = train_seq[0]  # pure: a function of (seed, epoch 0, batch 0); no state changes
    return {
        "config": asdict(cfg),
        "seed": int(seed),
        "n_train": int(train_seq.n),
        "n_val": int(len(val[1])),
        "steps_per_epoch": int(len(train_seq)),
        "val_sha256": _sha256(*val),
        "train_batch0_sha256": _sha256(x0, y0),
        "code_sha256": {f: hashlib.sha256((here / f).read_bytes()).hexdigest() for f in ("training.py", "cnn.py")},
        "versions": {"keras": keras.__version__, "tensorflow": tf.__version__},
    }


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k, "<missing>"), new.get(k, "<missing>")
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(_differences(a, b, f"{prefix}{k}."))
        elif a != b:
            short = (lambda v: v[:12] + "..." if isinstance(v, str) and len(v) == 64 else v)
            out.append(f"{prefix}{k} {short(a)!r} -> {short(b)!r}")
    return out


def _var_specs(variables) -> list:
    return [[getattr(v, "path", getattr(v, "name", "")), list(v.shape), str(np.dtype(v.dtype))] for v in variables]


class _Checkpoint(_keras().callbacks.Callback):
    """Writes the whole training state after every epoch; loads and checks it when a run starts.

    Layout of ``<dir>/checkpoint.npz`` (one file, replaced atomically; NumPy arrays only, read
    with ``allow_pickle=False``): ``meta`` (a JSON string: format, fingerprint, last completed
    epoch, phase, history so far, best-epoch store, variable names and shapes), ``model_NNNN``
    (every model variable: weights and dropout seed states), ``optimizer_NNNN`` (the current
    optimizer's variables: iteration counter, learning rate, slots) and ``best_NNNN`` (the
    weights of the best validation epoch, kept only with ``restore_best``).
    """

    def __init__(self, folder: Path, fingerprint: dict, hist: dict, best: dict, timer: _Timer, train_seq,
                 keep_best_weights: bool):
        super().__init__()
        self.folder = folder
        self.path = folder / CHECKPOINT_FILE
        self.fingerprint = fingerprint
        self.digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()
        self.hist, self.best, self.timer, self.train_seq = hist, best, timer, train_seq
        self.keep_best_weights = keep_best_weights
        self.phase = 0

    # -- writing
    def on_epoch_end(self, epoch, logs=None):
        model, optimizer = self.model, self.model.optimizer
        history = {k: list(self.hist[k]) for k in ("loss", "accuracy", "val_loss", "val_accuracy", "optimizer")}
        history["seconds"] = list(self.timer.seconds)
        store_best = self.keep_best_weights and self.best["weights"] is not None
        meta = {
            "format": _FORMAT, "fingerprint": self.digest, "fingerprint_parts": self.fingerprint,
            "epoch": int(epoch), "epochs": int(self.fingerprint["config"]["epochs"]), "phase": int(self.phase),
            "optimizer": self.hist["optimizer"][-1] if self.hist["optimizer"] else None,
            "sequence_epoch": int(self.train_seq.epoch), "history": history,
            "best": {"val_loss": float(self.best["val_loss"]), "epoch": int(self.best["epoch"]),
                     "weights_stored": bool(store_best)},
            "model_variables": _var_specs(model.variables),
            "optimizer_variables": _var_specs(optimizer.variables),
        }
        text = json.dumps(meta, indent=1, sort_keys=True)
        arrays = {"meta": np.array(text)}
        arrays.update({f"model_{i:04d}": np.asarray(v) for i, v in enumerate(model.variables)})
        arrays.update({f"optimizer_{i:04d}": np.asarray(v) for i, v in enumerate(optimizer.variables)})
        if store_best:
            arrays.update({f"best_{i:04d}": np.asarray(w) for i, w in enumerate(self.best["weights"])})
        with atomic_path(self.path, suffix=".npz") as tmp:
            np.savez(tmp, **arrays)
        write_text(self.folder / "checkpoint.json", text + "\n")  # for people; checkpoint.npz is what counts

    # -- reading
    def _reject(self, why: str) -> None:
        import os

        aside = self.folder / "checkpoint.rejected.npz"
        os.replace(self.path, aside)
        (self.folder / "checkpoint.json").unlink(missing_ok=True)
        warnings.warn(f"{self.path}: {why}; set aside as {aside.name}, training starts from epoch 1",
                      CheckpointWarning, stacklevel=3)

    def load(self, model):
        """Restore *model*'s variables from the checkpoint; return its state (None: start afresh)."""
        if not self.path.exists():
            return None
        try:
            with open(self.path, "rb") as f, np.load(f, allow_pickle=False) as z:  # our handle: closed on errors too
                meta = json.loads(str(z["meta"]))
                arrays = {k: z[k] for k in z.files if k != "meta"}
        except Exception as exc:  # noqa: BLE001 - a truncated or foreign file: numpy/zipfile/json errors
            self._reject(f"unreadable checkpoint ({type(exc).__name__}: {exc})")
            return None
        if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
            self._reject("not a training checkpoint of this format")
            return None
        if meta["fingerprint"] != self.digest:
            diff = _differences(meta.get("fingerprint_parts", {}), self.fingerprint)
            self._reject("written for another configuration (" + ("; ".join(diff[:8]) or "fingerprint differs")
                         + (f"; and {len(diff) - 8} more" if len(diff) > 8 else "") + ")")
            return None
        if [s[1:] for s in meta["model_variables"]] != [s[1:] for s in _var_specs(model.variables)]:
            self._reject("its model variables do not match this model's")
            return None
        for i, v in enumerate(model.variables):
            v.assign(arrays[f"model_{i:04d}"])
        meta["best_weights"] = ([arrays[f"best_{i:04d}"] for i in range(len(model.get_weights()))]
                                if meta["best"]["weights_stored"] else None)
        meta["optimizer_arrays"] = [arrays[f"optimizer_{i:04d}"] for i in range(len(meta["optimizer_variables"]))]
        return meta

    def restore_optimizer(self, optimizer, model, state) -> None:
        """Build *optimizer* for *model* and give it the checkpoint's state (same phase only)."""
        optimizer.build(model.trainable_variables)
        if [s[1:] for s in _var_specs(optimizer.variables)] != [s[1:] for s in state["optimizer_variables"]]:
            raise InputError(f"{self.path}: the optimizer state does not fit this optimizer (delete the checkpoint)")
        for v, a in zip(optimizer.variables, state["optimizer_arrays"]):
            v.assign(a)


def save_model(model, path: str | Path, architecture: str | None = None,
               preprocessing: dict | None = None) -> Path:
    """Save *model* as ``.keras`` without optimizer state, atomically, with its preprocessing.

    *preprocessing* (``representation``, and for ``"isr"`` the ``clip_factor`` and
    ``border_rule`` of the scaling) is written beside the model as ``<name>.preprocess.json``:
    ``classify`` and the monitor read it (:func:`~blobhelpers.blob.learn.cnn.load_preprocessing`)
    instead of whatever params.yaml happens to be around.

    The clean copy that is saved is rebuilt with *model*'s width (``blobnet``); a width other
    than the default is also recorded in the preprocessing file (``"width"``), for people: the
    ``.keras`` file holds the layers, and :func:`~blobhelpers.blob.learn.cnn.load_model` needs nothing else.
    """

    arch = architecture or model.name
    width = model_width(model, arch)
    clean = build_model(arch, width=width)
    clean.set_weights(model.get_weights())
    with atomic_path(path, suffix=".keras") as tmp:
        save_keras_reproducibly(clean, tmp)
    if preprocessing is not None:
        extra = {"width": width} if width is not None and width != DEFAULT_WIDTH.get(arch) else {}
        write_json(preprocessing_path(path), {"architecture": arch, **extra, **preprocessing})
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
