"""Blob classifiers: one factory for the ISR 2021-08 model, the released-code variant and ours.

All models take ``(256, 256, 1)`` subframes in the ISR's scaled units and return two
**logits** (no softmax): saliency is taken on logits, and training uses a cross entropy
``from_logits=True``. :func:`probabilities` turns logits into P(blob).

============ ========================================================== ==============
name         architecture                                               parameters
============ ========================================================== ==============
``isr2021``  the report's text: conv 8 and 16 filters 5x5 "same" + ReLU, 528,098
             4x4 max pool after each, flatten, FC 128, FC 2; dropout
             0.15 (before FC 128) and 0.3 (before FC 2)
``deepwfc3`` the released code's variant: the same with 2x2 pools        8,392,418
``blobnet``  this project's model (see the stage-02 report for why): a   64,674
             2x2 average pool (blobs are >= 5 px across, averaging raises
             the per-pixel S/N), four 5x5/3x3 conv + ReLU blocks, and
             global max + average pooling, so a blob is found wherever it
             is in the tile (batch normalisation was tried and dropped: its
             train/inference statistics diverged and validation collapsed)
``tiny``     a small fast model for tests and smoke runs                 1,410
============ ========================================================== ==============

``blobnet`` takes a *width* (filters of its first conv block, then 2x, 4x, 4x; default 16): the
hyperparameter search of README "Hyperparameter search (dvc exp)" varies it through
``train.models.blobnet.width``. The saved ``.keras`` file records the layers, so
:func:`load_model` rebuilds any width without being told.
"""

from __future__ import annotations

__all__ = ["MODELS", "build_model", "count_params", "probabilities", "load_model", "preprocessing_path",
           "load_preprocessing", "model_width", "DEFAULT_WIDTH"]

MODELS = ("isr2021", "deepwfc3", "blobnet", "tiny")
#: Architectures that take a width, and their default.
DEFAULT_WIDTH = {"blobnet": 16}


from blobhelpers.core.deeplearning import keras_module as _keras
from blobhelpers.core.errors import InputError


def _torch_init(keras, fan_in: int) -> dict:
    """PyTorch's default layer initialisation: weights and biases uniform in +-1/sqrt(fan_in).

    The ISR's reference implementation is PyTorch, so the faithful models start from its
    defaults rather than Keras' (Glorot weights, zero biases).
    """
    bound = 1.0 / float(fan_in) ** 0.5
    return {"kernel_initializer": keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform"),
            "bias_initializer": keras.initializers.RandomUniform(-bound, bound)}


def _isr(keras, pool: int, input_shape, name):
    L = keras.layers
    inp = keras.Input(input_shape, name="subframe")
    x = L.Conv2D(8, 5, padding="same", activation="relu", name="conv1", **_torch_init(keras, 25))(inp)
    x = L.MaxPooling2D(pool, name="pool1")(x)
    x = L.Conv2D(16, 5, padding="same", activation="relu", name="conv2", **_torch_init(keras, 200))(x)
    x = L.MaxPooling2D(pool, name="pool2")(x)
    flat = (input_shape[0] // pool // pool) * (input_shape[1] // pool // pool) * 16
    x = L.Flatten(name="flatten")(x)
    x = L.Dropout(0.15, name="dropout1")(x)
    x = L.Dense(128, activation="relu", name="fc1", **_torch_init(keras, flat))(x)
    x = L.Dropout(0.3, name="dropout2")(x)
    out = L.Dense(2, name="logits", **_torch_init(keras, 128))(x)
    return keras.Model(inp, out, name=name)


def _blobnet(keras, input_shape, name, width: int = 16):
    L = keras.layers
    inp = keras.Input(input_shape, name="subframe")
    x = L.AveragePooling2D(2, name="avg_in")(inp)  # 128x128, S/N per pixel x2
    for i, (filters, k) in enumerate(((width, 5), (2 * width, 3), (4 * width, 3), (4 * width, 3))):
        x = L.Conv2D(filters, k, padding="same", activation="relu", name=f"conv{i + 1}")(x)
        if i < 3:
            x = L.MaxPooling2D(2, name=f"pool{i + 1}")(x)
    gmax = L.GlobalMaxPooling2D(name="gmax")(x)
    gavg = L.GlobalAveragePooling2D(name="gavg")(x)
    x = L.Concatenate(name="pooled")([gmax, gavg])
    x = L.Dropout(0.2, name="dropout")(x)
    x = L.Dense(32, activation="relu", name="fc1")(x)
    out = L.Dense(2, name="logits")(x)
    return keras.Model(inp, out, name=name)


def _tiny(keras, input_shape, name):
    L = keras.layers
    inp = keras.Input(input_shape, name="subframe")
    x = L.AveragePooling2D(4, name="avg_in")(inp)
    x = L.Conv2D(8, 5, padding="same", activation="relu", name="conv1")(x)
    x = L.MaxPooling2D(2, name="pool1")(x)
    x = L.Conv2D(16, 3, padding="same", activation="relu", name="conv2")(x)
    x = L.GlobalMaxPooling2D(name="gmax")(x)
    out = L.Dense(2, name="logits")(x)
    return keras.Model(inp, out, name=name)


def build_model(name: str, input_shape=(256, 256, 1), seed: int | None = None, width: int | None = None):
    """Build an uncompiled Keras model by name (see the module table).

    *width* (``blobnet`` only): filters of the first conv block; None is the architecture's
    default (:data:`DEFAULT_WIDTH`), the same model as before the option existed.

    Examples
    --------
    >>> m = build_model("isr2021")
    >>> m.count_params(), m.output_shape
    (528098, (None, 2))
    >>> build_model("blobnet", width=8).count_params() < build_model("blobnet").count_params()
    True
    """

    if name not in MODELS:
        raise InputError(f"unknown model {name!r}; choose one of {MODELS}")
    if width is not None:
        if name not in DEFAULT_WIDTH:
            raise InputError(f"model {name!r} has a fixed architecture: width applies to "
                             f"{', '.join(DEFAULT_WIDTH)} only (got width={width!r})")
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise InputError(f"width must be a positive integer (got {width!r})")
    keras = _keras()
    if seed is not None:
        keras.utils.set_random_seed(int(seed))
    if name == "isr2021":
        return _isr(keras, 4, input_shape, name)
    if name == "deepwfc3":
        return _isr(keras, 2, input_shape, name)
    if name == "blobnet":
        return _blobnet(keras, input_shape, name, width=DEFAULT_WIDTH[name] if width is None else width)
    return _tiny(keras, input_shape, name)


def model_width(model, name: str | None = None) -> int | None:
    """The width of a built model of an architecture that takes one (see :func:`build_model`); else None."""
    name = name or model.name
    if name != "blobnet":
        return None
    return int(model.get_layer("conv1").filters)


def count_params(model) -> int:
    return int(model.count_params())


def probabilities(logits):
    """P(blob) from the two logits: softmax(logits)[:, 1], computed stably."""
    import numpy as np
    from scipy.special import expit

    z = np.asarray(logits, dtype=np.float64)
    return expit(z[:, 1] - z[:, 0])


def load_model(path):
    """Load a ``.keras`` model; a missing or corrupt file raises InputError naming it."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: model file not found (train it with `dvc repro` or pass --model)")
    keras = _keras()
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for a bad archive
        raise InputError(f"{path}: not a readable .keras model ({type(exc).__name__}: {exc})") from exc
    shape = tuple(model.input_shape[1:])
    if shape != (256, 256, 1) or tuple(model.output_shape[1:]) != (2,):
        raise InputError(f"{path}: model takes {shape} and returns {model.output_shape[1:]}; "
                         "expected (256, 256, 1) -> 2 logits")
    return model


def preprocessing_path(model_path):
    """``models/blobnet.keras`` -> ``models/blobnet.preprocess.json``."""
    from pathlib import Path

    p = Path(model_path)
    return p.with_name(p.name[: -len(p.suffix)] + ".preprocess.json" if p.suffix else p.name + ".preprocess.json")


def load_preprocessing(model_path, fallback: dict | None = None) -> dict:
    """The preprocessing a saved model was trained with (``representation``, ``clip_factor``, ``border_rule``).

    Read from :func:`preprocessing_path`; a model saved without it (older than this file) gets
    *fallback* (default: the ISR representation with clip 0.5 and the symmetric border) and
    ``"source": "fallback"`` so callers can say so.
    """
    import json

    p = preprocessing_path(model_path)
    base = {"representation": "isr", "clip_factor": 0.5, "border_rule": "symmetric"}
    if not p.exists():
        return {**base, **(fallback or {}), "source": "fallback"}
    try:
        doc = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{p}: unreadable preprocessing file ({exc})") from exc
    if doc.get("representation") not in ("isr", "residual"):
        raise InputError(f"{p}: unknown representation {doc.get('representation')!r}")
    return {**base, **doc, "source": str(p.name)}
