"""Running a trained blob CNN: logits in batches, and saliency maps of its blob log-odds.

Used by detection (verifying candidates), the monitor and ``classify`` (alert saliency) and by
evaluation. TensorFlow is loaded only when a model is actually run
(:func:`blobhelpers.core.deeplearning.tensorflow`).
"""

from __future__ import annotations

import weakref

import numpy as np

from blobhelpers.core.deeplearning import tensorflow

__all__ = ["predict_logits", "saliency", "per_panel"]


def predict_logits(model, X: np.ndarray, batch: int = 64) -> np.ndarray:
    """Logits for ``(n, 256, 256)`` or ``(n, 256, 256, 1)`` subframes, in batches."""
    X = np.asarray(X, np.float32)
    if X.ndim == 3:
        X = X[..., None]
    out = [np.asarray(model(X[i:i + batch], training=False)) for i in range(0, len(X), batch)]
    return np.concatenate(out) if out else np.zeros((0, 2), np.float32)


_GRAD_FNS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def saliency(model, X: np.ndarray, method: str = "vanilla", n_samples: int = 16, noise: float = 0.15,
             seed: int = 0) -> np.ndarray:
    """Absolute input gradients of the blob log-odds (logit[1] - logit[0]).

    ``method="smoothgrad"`` averages the gradients over *n_samples* copies with Gaussian noise
    of *noise* x the input's range added (Smilkov et al. 2017). Returns ``(n, 256, 256)``.
    """
    tf = tensorflow()
    X = np.asarray(X, np.float32)
    if X.ndim == 3:
        X = X[..., None]

    grad = _GRAD_FNS.get(model)
    if grad is None:  # one traced function per model (no retracing across calls)
        @tf.function(reduce_retracing=True)
        def grad(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                logits = model(x, training=False)
                score = logits[:, 1] - logits[:, 0]
            return tape.gradient(score, x)

        _GRAD_FNS[model] = grad

    if method == "vanilla":
        return np.abs(np.asarray(grad(tf.constant(X))))[..., 0]
    if method != "smoothgrad":
        raise ValueError(f"saliency method must be 'vanilla' or 'smoothgrad', not {method!r}")
    rng = np.random.default_rng(seed)
    span = (X.max(axis=(1, 2, 3), keepdims=True) - X.min(axis=(1, 2, 3), keepdims=True)).astype(np.float32)
    acc = np.zeros(X.shape, np.float32)
    for _ in range(n_samples):
        xn = X + rng.standard_normal(X.shape, dtype=np.float32) * (noise * span)
        acc += np.asarray(grad(tf.constant(xn)))
    return np.abs(acc / n_samples)[..., 0]


def per_panel(maps: np.ndarray) -> np.ndarray:
    """Saliency maps each scaled to its own maximum (0..1): in a grid of panels the colour says
    where the model looks, not how strongly compared with the other panels.

    >>> per_panel(np.array([[[0.0, 2.0]], [[0.0, 0.0]]])).tolist()
    [[[0.0, 1.0]], [[0.0, 0.0]]]
    """
    m = np.asarray(maps)
    m = m.astype(np.result_type(m.dtype, np.float32), copy=False)
    peak = m.reshape(len(m), -1).max(axis=1) if len(m) else np.zeros(0)
    return m / np.maximum(peak, 1e-12).reshape((-1,) + (1,) * (m.ndim - 1))
