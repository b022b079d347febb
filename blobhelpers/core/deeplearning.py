"""The Keras bootstrap and determinism, shared by the blob and svm wings.

TensorFlow is imported lazily (``keras_module()``), with its C++ log level lowered before the
first import and its start-up notices filtered out (:func:`quiet_tensorflow_startup`), so that
modules which only *may* need Keras stay cheap to import and commands print only what matters.

Reproducible across machines: :func:`set_determinism` makes a training repeat itself in the same
process set-up, but TensorFlow's CPU results also depend on what its native libraries choose when
they start -- the size of TensorFlow's thread pools (the machine's cores: how reductions are
split) and oneDNN's / OpenBLAS' kernels (the CPU's instruction set: AVX2 and AVX-512 kernels sum
in other orders). Measured on a 2-core AVX-512 VM: the same ``cnn2d`` fit gives other weights with
``ONEDNN_MAX_CPU_ISA=AVX2`` (what an AVX2-only machine runs), with ``TF_NUM_INTRAOP_THREADS=1`` or on
one core, and the same bytes whatever ran before it in the process or which worker ran it
(``TF_ENABLE_ONEDNN_OPTS=0`` gives yet other weights, which still change with the instruction-set cap).
A small noisy model (stage 14) turns such last-bit differences into other AUCs after a few epochs.
:data:`REPRODUCIBLE_TF_ENV` fixes all of them; it must be in the environment before TensorFlow
starts, so the SVM wing trains its networks in worker processes started with it
(:func:`blobhelpers.core.parallel.process_map` with ``env=reproducible_tf_env()``): every fit of
:mod:`blobhelpers.svm.ensemble`, and :func:`~blobhelpers.svm.ensemble.compare_models`' held-out
probabilities. Probabilities computed later in the calling process (a fitted model's
``predict_proba``, ``blobhelpers svm predict``) use that process' defaults: at most last-digit
differences, which no training amplifies. The blob wing keeps training in its own process with the
machine's defaults (its published results).
"""

from __future__ import annotations

import os
import re
import sys
from contextlib import contextmanager

from blobhelpers.core.parallel import runs_pinned

__all__ = ["keras_module", "tensorflow", "set_determinism", "save_keras_reproducibly", "quiet_tensorflow_startup",
           "REPRODUCIBLE_TF_ENV", "reproducible_tf_env", "runs_reproducible_tf"]

#: What a process that trains reproducibly across machines starts with (see the module docstring):
#: oneDNN's kernels capped at AVX2 (the instruction set of every x86-64 machine this runs on; an AVX-512
#: machine then computes what an AVX2 one does) and on (the default, whatever the caller's
#: environment says); TensorFlow's pools at 2 threads whatever the cores (the project's 2-core
#: machines' default); one BLAS/OpenMP thread and OpenBLAS' Haswell (AVX2) kernels for the NumPy /
#: scikit-learn parts (logistic regressions). The instruction-set caps apply on x86-64 CPUs with
#: AVX2 only (:func:`reproducible_tf_env`); elsewhere results follow the CPU. Not covered: kernels
#: whose blocking follows the CPU's cache sizes could still sum in another order on a CPU with
#: other caches.
REPRODUCIBLE_TF_ENV = {
    "TF_NUM_INTRAOP_THREADS": "2",
    "TF_NUM_INTEROP_THREADS": "2",
    "TF_ENABLE_ONEDNN_OPTS": "1",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "OPENBLAS_CORETYPE": "Haswell",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
_ISA_VARS = ("ONEDNN_MAX_CPU_ISA", "OPENBLAS_CORETYPE")


def _has_avx2() -> bool:
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        with open("/proc/cpuinfo") as fh:
            return any(line.startswith("flags") and " avx2" in line for line in fh)
    except OSError:  # pragma: no cover - not Linux
        return False


def reproducible_tf_env() -> dict:
    """:data:`REPRODUCIBLE_TF_ENV` for this machine (without the instruction-set caps where the CPU has no AVX2)."""
    if _has_avx2():
        return dict(REPRODUCIBLE_TF_ENV)
    return {k: v for k, v in REPRODUCIBLE_TF_ENV.items() if k not in _ISA_VARS}


def runs_reproducible_tf() -> bool:
    """True in a worker process started with :func:`reproducible_tf_env` (by ``process_map(..., env=...)``)."""
    return runs_pinned(reproducible_tf_env())


# TensorFlow's start-up lines: absl's notice that logging is not initialised yet, and INFO / WARNING
# records in absl's format ("I0000 00:00:1796485300.401411    7477 port.cc:153] oneDNN custom operations
# are on ..."), which TF 2.21 writes before it reads TF_CPP_MIN_LOG_LEVEL.
_ABSL_RECORD = re.compile(rb"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ [^\]\s]+:\d+\] ")
_ABSL_PREINIT = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"


def _startup_noise(line: bytes, level: int) -> bool:
    """Whether a line written to stderr while TensorFlow starts is below *level* (``TF_CPP_MIN_LOG_LEVEL``)."""
    if line.startswith(_ABSL_PREINIT):
        return level >= 1
    m = _ABSL_RECORD.match(line)
    return bool(m) and {b"I": 1, b"W": 2, b"E": 3, b"F": 4}[m.group(1)] <= level


@contextmanager
def quiet_tensorflow_startup():
    """Import TensorFlow inside this block without its start-up notices on stderr.

    ``TF_CPP_MIN_LOG_LEVEL`` defaults to 2 (warnings and info off; a value set by the caller is
    kept). TensorFlow 2.21 ignores it for the lines it logs while its libraries load (absl's "All log
    messages before absl::InitializeLog() ..." and "oneDNN custom operations are on ...", twice), so
    while the block runs -- the first time only -- the process' standard error (file descriptor
    2) goes through a filter that drops absl-format records below that level and passes everything
    else on at once: errors (``E``/``F`` records), Python warnings and tracebacks are not hidden.
    ``TF_CPP_MIN_LOG_LEVEL=0`` shows everything. Does nothing once TensorFlow is imported.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    raw = os.environ["TF_CPP_MIN_LOG_LEVEL"].strip()
    level = int(raw) if raw.isdigit() else 2
    if "tensorflow" in sys.modules or level == 0:
        yield
        return
    import threading

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # pragma: no cover - no file descriptor 2
        yield
        return
    r, w = os.pipe()
    os.dup2(w, 2)
    os.close(w)

    def forward():
        with os.fdopen(r, "rb", buffering=0) as src:
            buf = b""
            while chunk := src.read(65536):
                *lines, buf = (buf + chunk).split(b"\n")
                for line in lines:
                    if not _startup_noise(line, level):
                        os.write(saved, line + b"\n")
            if buf and not _startup_noise(buf, level):
                os.write(saved, buf)

    t = threading.Thread(target=forward, name="tf-startup-stderr", daemon=True)
    t.start()
    try:
        yield
    finally:
        try:
            sys.stderr.flush()
        except (OSError, ValueError):  # pragma: no cover
            pass
        os.dup2(saved, 2)  # the pipe's last writer is gone: the filter reads to the end and stops
        t.join()
        os.close(saved)


def keras_module():
    """Import and return :mod:`keras` (TensorFlow backend), quietening TensorFlow's start-up first
    (:func:`quiet_tensorflow_startup`)."""
    if "keras" in sys.modules:
        return sys.modules["keras"]
    with quiet_tensorflow_startup():
        import keras  # imports TensorFlow

    return keras


def tensorflow():
    """Import and return :mod:`tensorflow` (quietly, through :func:`keras_module`).

    TensorFlow takes seconds to import, so it is the one dependency the package loads lazily: every
    module imports its collaborators at the top, and reaches TensorFlow and Keras only through
    :func:`tensorflow` and :func:`keras_module` when a model is built, trained or run.
    """
    if "tensorflow" not in sys.modules:
        keras_module()
    import tensorflow as tf

    return tf


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
