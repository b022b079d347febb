"""Alert thresholds tuned on a development campaign, stored beside the model they were tuned for.

Where the thresholds in force come from is kept with the configuration: :func:`apply_tuned`
records it, :func:`set_thresholds_provenance` lets a caller record it for values it set itself,
and :func:`thresholds_provenance` returns it for the monitor's log and daily HTML (e.g. "tuned on
simulated development campaign, seed 20211300, 150 frames ..."). A tuned file records what it
was tuned on in its ``provenance``: ``seed`` (a simulated development campaign, as stage 04
writes) or ``tuned_on`` (free text, e.g. a team's own confirmed history).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from blobhelpers.blob.detect.monitor.config import TUNED, MonitorConfig, held
from blobhelpers.core.errors import InputError
from blobhelpers.core.paths import project_root, sha256_file, write_json

__all__ = ["tuned_thresholds_path", "write_tuned", "read_tuned", "apply_tuned", "tuned_description", "thresholds_provenance",
           "set_thresholds_provenance"]

#: Tuned names a thresholds file may lack (written before they were tuned): left as configured.
OPTIONAL = ("snr_acc", "threshold_acc")

_ATTR = "_thresholds_provenance"  # an instance attribute, not a dataclass field (not in asdict)

log = logging.getLogger("blobhelpers.blob.detect.monitor")


def tuned_thresholds_path(root: str | Path | None = None) -> Path:
    """Where stage monitor writes the alert thresholds it tuned for the deployed model
    (``build/monitor/thresholds.json`` under the project root); the commands read them from there."""
    return Path(root if root is not None else project_root()) / "build" / "monitor" / "thresholds.json"


def write_tuned(path: str | Path, chosen: dict, model_path: str | Path, provenance: dict | None = None) -> Path:
    """Write the tuned alert thresholds (:data:`~blobhelpers.blob.detect.monitor.config.TUNED`) for *model_path*.

    *provenance* says what they were tuned on: ``{"seed": ..., "n_frames": ...}`` for a simulated
    development campaign (stage 04), ``{"tuned_on": "our confirmed history 2023-2024", ...}`` for
    real data; it is repeated in every monitor verdict that uses these thresholds.
    """

    model_path = Path(model_path)
    doc = {k: float(chosen[k]) for k in TUNED if chosen.get(k) is not None}
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
        if k in OPTIONAL and k not in doc:
            continue
        v = doc.get(k)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
            raise InputError(f"{path}: '{k}' must be a finite number, got {v!r}")
    return doc


def tuned_description(doc: dict) -> str:
    """One line saying what a tuned-thresholds document was tuned on."""
    prov = doc.get("provenance") or {}
    if prov.get("tuned_on"):
        text = f"tuned on {prov['tuned_on']}"
    elif "seed" in prov:
        text = f"tuned on simulated development campaign, seed {prov['seed']}"
        if prov.get("n_frames") is not None:
            text += f", {prov['n_frames']} frames"
    else:
        return "tuned (the file records nothing about what it was tuned on)"
    extra = []
    if prov.get("n_quiet_days") is not None:
        extra.append(f"{prov['n_quiet_days']} quiet days")
    if prov.get("detection_deeper") is not None:
        extra.append(f"first-day detection {float(prov['detection_deeper']):.0%} of blobs deeper than 3 %")
    if prov.get("fa_days_per_100_quiet") is not None:
        extra.append(f"{float(prov['fa_days_per_100_quiet']):g} false-alarm days per 100 quiet days")
    return text + (f" ({'; '.join(extra)})" if extra else "")


def set_thresholds_provenance(cfg: MonitorConfig, source: str, description: str, **extra) -> None:
    """Record where *cfg*'s alert thresholds come from (shown in every verdict of the monitor)."""
    setattr(cfg, _ATTR, {"source": source, "description": description, **extra})


def thresholds_provenance(cfg: MonitorConfig) -> dict:
    """Where *cfg*'s alert thresholds come from, with their values (JSON-ready).

    ``source`` is ``tuned`` (applied from a tuned file: ``file``, ``model``, ``description``,
    ``applied``, ``kept``), ``untuned`` (a tuned file was looked for but not used, and why), or
    ``config`` (nothing recorded: the values were set directly in the configuration).
    """
    values = {k: float(getattr(cfg, k)) for k in TUNED if k != "threshold_acc"}
    values["threshold_acc"] = cfg.cnn_threshold(2)
    prov = getattr(cfg, _ATTR, None)
    if not prov:
        prov = {"source": "config", "description": "as given in the monitor configuration (no tuned-thresholds "
                                                   "file applied)"}
    return {**prov, "values": values}


def apply_tuned(cfg: MonitorConfig, tuned_path: str | Path | None, model_path: str | Path,
                keep: tuple = ()) -> list[str]:
    """Set ``cfg``'s alert thresholds from *tuned_path* (keys in *keep* stay as they are; a CNN
    ``threshold`` kept as given also holds for the day windows unless ``threshold_acc`` is given too).

    The file applies only to the model it was tuned for (same SHA-256); otherwise, or when the
    file does not exist, nothing changes and the reason is returned. Returns what was applied.
    Either way, where the thresholds come from is recorded (:func:`thresholds_provenance`).
    """
    if tuned_path is None:
        set_thresholds_provenance(cfg, "untuned", "no tuned-thresholds file used (untuned or given values)")
        return []
    if not Path(tuned_path).exists():
        set_thresholds_provenance(cfg, "untuned", f"{tuned_path} not found: untuned or given values",
                                  file=str(tuned_path))
        return []
    doc = read_tuned(tuned_path)
    mp = Path(model_path)
    if not mp.is_file() or doc.get("model_sha256") != sha256_file(mp):
        log.warning("%s: tuned for another model (%s); using the untuned thresholds", tuned_path,
                    doc.get("model", "?"))
        set_thresholds_provenance(cfg, "untuned", f"{tuned_path} was tuned for another model "
                                  f"({doc.get('model', '?')}): untuned or given values", file=str(tuned_path))
        return []
    keep = held(keep)
    done = []
    have = [k for k in TUNED if k in doc]
    for k in have:
        if k not in keep:
            setattr(cfg, k, float(doc[k]))
            done.append(f"{k}={float(doc[k]):g}")
    set_thresholds_provenance(cfg, "tuned", tuned_description(doc), file=str(tuned_path), model=doc.get("model"),
                              model_sha256=doc.get("model_sha256"), applied=[k for k in have if k not in keep],
                              kept=[k for k in TUNED if k in keep],
                              tuned_provenance={k: v for k, v in (doc.get("provenance") or {}).items() if k != "grids"})
    return done
