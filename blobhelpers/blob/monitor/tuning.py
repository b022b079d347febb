"""Alert thresholds tuned on a development campaign, stored beside the model they were tuned for."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from ...core.errors import InputError
from .config import TUNED, MonitorConfig
from .records import sha256_file

__all__ = ["write_tuned", "read_tuned", "apply_tuned"]

log = logging.getLogger("blobhelpers.blob.monitor")


def write_tuned(path: str | Path, chosen: dict, model_path: str | Path, provenance: dict | None = None) -> Path:
    """Write the tuned alert thresholds (``snr_min``, ``threshold``, ``neg_veto``) for *model_path*."""
    from ...core.paths import write_json

    model_path = Path(model_path)
    doc = {k: float(chosen[k]) for k in TUNED}
    doc.update(model=model_path.name, model_sha256=sha256_file(model_path), provenance=provenance or {})
    write_json(path, doc)
    return Path(path)


def read_tuned(path: str | Path) -> dict:
    """Read a tuned-thresholds JSON; :class:`InputError` naming the file when it is malformed."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the tuned monitor thresholds ({exc})") from exc
    if not isinstance(doc, dict):
        raise InputError(f"{path}: tuned monitor thresholds must be a JSON object")
    for k in TUNED:
        v = doc.get(k)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
            raise InputError(f"{path}: '{k}' must be a finite number, got {v!r}")
    return doc


def apply_tuned(cfg: MonitorConfig, tuned_path: str | Path | None, model_path: str | Path,
                keep: tuple = ()) -> list[str]:
    """Set ``cfg``'s alert thresholds from *tuned_path* (keys in *keep* stay as they are).

    The file applies only to the model it was tuned for (same SHA-256); otherwise, or when the
    file does not exist, nothing changes and the reason is returned. Returns what was applied.
    """
    if tuned_path is None or not Path(tuned_path).exists():
        return []
    doc = read_tuned(tuned_path)
    mp = Path(model_path)
    if not mp.is_file() or doc.get("model_sha256") != sha256_file(mp):
        log.warning("%s: tuned for another model (%s); using the untuned thresholds", tuned_path,
                    doc.get("model", "?"))
        return []
    done = []
    for k in TUNED:
        if k not in keep:
            setattr(cfg, k, float(doc[k]))
            done.append(f"{k}={float(doc[k]):g}")
    return done
