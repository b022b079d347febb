"""Parameters (params.yaml), profiles and the project's output locations."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import yaml

from .errors import InputError
from .paths import project_root, write_text

__all__ = ["load_params", "deep_merge", "apply_profile", "dataclass_from_params", "ProjectPaths", "SECTIONS",
           "validate_params"]


def load_params(path: str | Path | None = None) -> dict:
    """Read params.yaml (default: the project's) into a dict; clear error if unreadable."""
    path = Path(path) if path is not None else project_root() / "params.yaml"
    try:
        with open(path) as fh:
            params = yaml.safe_load(fh) or {}
    except FileNotFoundError as exc:
        raise InputError(f"{path}: parameter file not found") from exc
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(params, dict):
        raise InputError(f"{path}: expected a mapping of sections at the top level")
    return params


def dataclass_from_params(cls, params: dict | None, section: str, ignore: tuple = ()):
    """Build dataclass *cls* from a params.yaml *section*; unknown keys are an error (typos must not pass)."""
    import dataclasses

    params = dict(params or {})
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - names - set(ignore))
    if unknown:
        raise InputError(f"{section}: unknown parameter(s) {unknown}; known: {sorted(names)}")
    return cls(**{k: v for k, v in params.items() if k in names})


#: The typed class of every params.yaml section (``module:Class``; imported only when validating,
#: so the core does not depend on the wings). Sub-sections are checked by their section's class.
SECTIONS = {
    "simulate": "blobhelpers.blob.campaign:CampaignConfig",
    "difference": "blobhelpers.blob.sections:DifferenceConfig",
    "dataset": "blobhelpers.blob.sections:DatasetConfig",
    "train": "blobhelpers.blob.sections:TrainSection",
    "evaluate": "blobhelpers.blob.sections:EvaluateConfig",
    "monitor": "blobhelpers.blob.monitor.config:MonitorConfig",
    "crosssim": "blobhelpers.blob.sections:CrossSimConfig",
    "isr_recipe": "blobhelpers.blob.isrrecipe:IsrRecipeConfig",
    "svm": "blobhelpers.svm.sections:SvmSection",
    "svm_sim": "blobhelpers.svm.sections:SvmSimSection",
    "svm_images": "blobhelpers.svm.sections:SvmImagesSection",
}


def validate_params(params: dict, source: str = "params.yaml") -> dict:
    """Build every section of *params* that has a typed class (:data:`SECTIONS`); return them by name.

    Unknown keys anywhere in those sections raise :class:`InputError` naming the section, so a
    typo fails before a stage runs rather than silently taking a default. ``base.seed`` must be an
    integer.
    """
    import importlib

    out = {}
    base = params.get("base") or {}
    if not isinstance(base, dict) or not isinstance(base.get("seed", 0), int):
        raise InputError(f"{source}: base.seed must be an integer")
    for name, target in SECTIONS.items():
        if name not in params:
            continue
        mod, cls = target.split(":")
        klass = getattr(importlib.import_module(mod), cls)
        try:
            out[name] = klass.from_dict(params[name])
        except TypeError as exc:
            raise InputError(f"{source}: section {name!r}: {exc}") from exc
        except InputError as exc:
            raise InputError(f"{source}: {exc}") from exc
    return out


def deep_merge(base: dict, override: dict) -> dict:
    """Return *base* updated recursively with *override* (neither is modified)."""
    out = copy.deepcopy(base)
    for k, v in (override or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def apply_profile(name_or_path: str | Path, params_path: str | Path | None = None) -> Path:
    """Merge a profile (``profiles/<name>.yaml``, only the keys it changes) into params.yaml.

    Unknown top-level sections in the profile are an error (a typo must not pass silently).
    """
    root = project_root()
    params_path = Path(params_path) if params_path else root / "params.yaml"
    prof = Path(name_or_path)
    if not prof.exists():
        prof = root / "profiles" / f"{name_or_path}.yaml"
    if not prof.exists():
        known = sorted(p.stem for p in (root / "profiles").glob("*.yaml"))
        raise InputError(f"profile {name_or_path!r} not found; known profiles: {known}")
    base = load_params(params_path)
    over = load_params(prof)
    unknown = sorted(set(over) - set(base))
    if unknown:
        raise InputError(f"{prof}: section(s) {unknown} are not in {params_path}")
    merged = deep_merge(base, over)
    header = f"# params.yaml with profile '{prof.stem}' applied (restore the default: git checkout params.yaml)\n"
    write_text(params_path, header + yaml.safe_dump(merged, sort_keys=False))
    return params_path


@dataclass
class ProjectPaths:
    """Where the pipeline reads and writes, relative to the project root."""

    root: Path

    @classmethod
    def default(cls) -> "ProjectPaths":
        return cls(project_root())

    @property
    def cutouts(self) -> Path:
        return self.root / "data" / "blob_cutouts" / "real_blob_cutouts.npz"

    @property
    def campaign(self) -> Path:
        return self.root / "build" / "campaign"

    @property
    def diffs(self) -> Path:
        return self.root / "build" / "diffs"

    @property
    def datasets(self) -> Path:
        return self.root / "build" / "datasets"

    @property
    def monitor_campaign(self) -> Path:
        return self.root / "build" / "monitor_campaign"

    @property
    def monitor_out(self) -> Path:
        return self.root / "build" / "monitor"

    @property
    def monitor_demo(self) -> Path:
        """Stage 04's demonstration run of ``blobhelpers monitor`` (not a DVC output: its log
        records the wall-clock processing time, which differs on every run)."""
        return self.root / "build" / "monitor_demo"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics"

    @property
    def plots(self) -> Path:
        return self.root / "plots"
