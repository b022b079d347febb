"""The deployed blob model: published in one place, found in one place.

Stage train chooses a model on the validation set and :func:`publish` deploys it as
``models/best.keras`` with its preprocessing (``best.preprocess.json``: the input representation
it was trained on) and ``models/best.json`` (its name, architecture, the selection criterion and
the validation-chosen P(blob) threshold). Everything that runs "the model" reads it back through
:func:`deployed_info` or :func:`resolve`: stages evaluate, monitor and crosssim, and the
``classify`` and ``monitor`` commands. The alert thresholds the monitor tunes on its development
campaign for that model are the monitor's
(:func:`blobhelpers.blob.detect.monitor.tuning.tuned_thresholds_path`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from blobhelpers.blob.learn.cnn import preprocessing_path
from blobhelpers.core.errors import InputError
from blobhelpers.core.paths import atomic_path, project_root, write_json, write_text

__all__ = ["DEPLOYED", "models_dir", "deployed_path", "publish", "deployed_info", "resolve"]

#: File stem of the deployed model in the models folder.
DEPLOYED = "best"


def models_dir(root: str | Path | None = None) -> Path:
    """The project's ``models/`` folder (*root*: the project root, default the current project's)."""
    return Path(root if root is not None else project_root()) / "models"


def deployed_path(folder: str | Path | None = None) -> Path:
    """``models/best.keras`` (in *folder*, default the project's models folder)."""
    return Path(folder if folder is not None else models_dir()) / f"{DEPLOYED}.keras"


def publish(folder: str | Path, name: str, info: dict) -> Path:
    """Deploy ``<folder>/<name>.keras``: copy it (atomically) to ``best.keras`` with its preprocessing, and
    write ``best.json`` = ``{"name": name, **info}`` (*info*: architecture, criterion, value, val_threshold)."""
    folder = Path(folder)
    src, dest = folder / f"{name}.keras", deployed_path(folder)
    if not src.is_file():
        raise InputError(f"{src}: model to deploy not found")
    with atomic_path(dest, suffix=".keras") as tmp:
        shutil.copyfile(src, tmp)
    write_text(preprocessing_path(dest), preprocessing_path(src).read_text())
    write_json(folder / f"{DEPLOYED}.json", {"name": name, **info})
    return dest


def deployed_info(folder: str | Path | None = None) -> dict:
    """The deployed model's ``best.json`` (name, architecture, criterion, value, val_threshold)."""
    path = Path(folder if folder is not None else models_dir()) / f"{DEPLOYED}.json"
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise InputError(f"{path}: no deployed model (run stage train: `dvc repro train`)") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(info, dict) or "name" not in info:
        raise InputError(f"{path}: expected an object with the deployed model's 'name'")
    return info


def resolve(model: str | Path | None = None, threshold: float | None = None,
            folder: str | Path | None = None) -> tuple[Path, float]:
    """The model and P(blob) threshold a command uses.

    *model* defaults to the deployed one; *threshold* to the deployed model's validation-chosen
    threshold when the model IS the deployed one (and ``best.json`` exists), else 0.5.
    """
    best = deployed_path(folder)
    model = Path(model) if model is not None else best
    if threshold is None:
        threshold = 0.5
        info = best.with_suffix(".json")
        if model.resolve() == best.resolve() and info.exists():
            threshold = float(deployed_info(best.parent).get("val_threshold", 0.5))
    return model, float(threshold)

