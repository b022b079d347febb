"""The Keras bootstrap and determinism, shared by the blob and svm wings.

TensorFlow is imported lazily (``keras_module()``), with its C++ log level lowered before the
first import, so that modules which only *may* need Keras stay cheap to import.
"""

from __future__ import annotations

import os

__all__ = ["keras_module", "set_determinism"]


def keras_module():
    """Import and return :mod:`keras` (TensorFlow backend), quietening TensorFlow's C++ logs first."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    return keras


def set_determinism(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow, and ask TensorFlow for deterministic kernels."""
    keras = keras_module()
    keras.utils.set_random_seed(int(seed))
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
