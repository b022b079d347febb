"""The Keras bootstrap and determinism, shared by the blob and svm wings.

TensorFlow is imported lazily (``keras_module()``), with its C++ log level lowered before the
first import, so that modules which only *may* need Keras stay cheap to import.
"""

from __future__ import annotations

import os

__all__ = ["keras_module", "set_determinism", "save_keras_reproducibly"]


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


def save_keras_reproducibly(model, path) -> None:
    """Save *model* as ``.keras`` at *path* so that the same weights give the same bytes.

    Keras writes the save time into ``metadata.json`` (``date_saved``) and stamps the weights
    member with the current time, so every retrain with identical results would change the file,
    its DVC hash and ``dvc.lock``. Its ``config.json`` also names shared objects by their memory
    address (``shared_object_id``), which differs in every process. The archive is rewritten with
    ``date_saved`` removed, the shared-object ids renumbered 1, 2, ... in order of appearance
    (:func:`renumber_shared_ids`) and every member dated 1980-01-01 (what Keras already uses for
    the other members); its content is otherwise unchanged and loads with
    ``keras.saving.load_model``.
    """
    import json
    import tempfile
    import zipfile
    from pathlib import Path

    path = Path(path)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmpdir:
        raw = Path(tmpdir) / "raw.keras"
        model.save(raw)
        with zipfile.ZipFile(raw) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as dst:
            for info in src.infolist():
                data = src.read(info.filename)
                if info.filename == "metadata.json":
                    meta = json.loads(data)
                    meta.pop("date_saved", None)
                    data = json.dumps(meta, sort_keys=True).encode()
                elif info.filename == "config.json":
                    data = renumber_shared_ids(data.decode()).encode()
                out = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
                out.compress_type = zipfile.ZIP_STORED
                out.external_attr = 0o644 << 16
                dst.writestr(out, data)


def renumber_shared_ids(config_text: str) -> str:
    """Replace Keras' ``"shared_object_id": <memory address>`` values by 1, 2, ... in order of first appearance.

    The same address keeps the same number, so objects shared in the saved graph stay shared.

    >>> renumber_shared_ids('{"a": {"shared_object_id": 1406218}, "b": {"shared_object_id": 99}, '
    ...                     '"c": {"shared_object_id": 1406218}}')
    '{"a": {"shared_object_id": 1}, "b": {"shared_object_id": 2}, "c": {"shared_object_id": 1}}'
    """
    import re

    ids: dict[str, int] = {}

    def sub(m):
        return f'{m.group(1)}{ids.setdefault(m.group(2), len(ids) + 1)}'

    return re.sub(r'("shared_object_id":\s*)(\d+)', sub, config_text)
