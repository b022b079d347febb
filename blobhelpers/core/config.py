"""Parameters (params.yaml), profiles and the project's output locations."""

from __future__ import annotations

import copy
import dataclasses
import os
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path

import yaml

from blobhelpers.core.errors import InputError
from blobhelpers.core.paths import project_root, write_text
from blobhelpers.core.scratch import scratch_project

__all__ = ["load_params", "stage_params", "deep_merge", "apply_profile", "dataclass_from_params", "ProjectPaths",
           "validate_params", "type_matches"]


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


def stage_params(*sections: str, path: str | Path | None = None) -> dict[str, dict]:
    """The named sections of params.yaml (default: the project's) by name, ``{}`` for a missing one.

    A stage notebook's parameters cell reads its sections with this, so a run by hand sees the
    same values as ``dvc repro`` (which injects the same sections over them): a notebook holds no
    second set of defaults.
    """
    params = load_params(path)
    return {s: dict(params.get(s) or {}) for s in sections}


def _type_name(hint) -> str:
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if hint is type(None):
        return "null"
    origin = typing.get_origin(hint) or hint
    return {float: "a number", int: "an integer", bool: "true/false", str: "a string", dict: "a mapping",
            list: "a list", tuple: "a list"}.get(origin, getattr(origin, "__name__", str(origin)))


def type_matches(value, hint) -> bool:
    """Does a params.yaml *value* fit the field type *hint*? (an int is a float; a bool is not a number)

    >>> type_matches(30, int), type_matches("thirty", int), type_matches(True, int), type_matches(1, float)
    (True, False, False, True)
    >>> type_matches(None, float), type_matches(None, float | None), type_matches([1], list)
    (False, True, True)
    """
    if hint is typing.Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(type_matches(value, a) for a in typing.get_args(hint))
    if hint is type(None):
        return value is None
    origin = origin or hint
    if origin is bool:
        return isinstance(value, bool)
    if origin is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin in (list, tuple):
        return isinstance(value, (list, tuple))
    return isinstance(value, origin) if isinstance(origin, type) else True


def dataclass_from_params(cls, params: dict | None, section: str, ignore: tuple = ()):
    """Build dataclass *cls* from a params.yaml *section*: an unknown key (a typo) or a value of the
    wrong type is an :class:`InputError` naming ``section.key`` -- neither may pass silently."""
    if params is not None and not isinstance(params, dict):
        raise InputError(f"{section}: expected a mapping of parameters, got {type(params).__name__} {params!r}")
    params = dict(params or {})
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(params) - names - set(ignore))
    if unknown:
        raise InputError(f"{section}: unknown parameter(s) {unknown}; known: {sorted(names)}")
    hints = typing.get_type_hints(cls)
    for key, value in params.items():
        if key in names and not type_matches(value, hints.get(key, typing.Any)):
            raise InputError(f"{section}.{key}: expected {_type_name(hints[key])}, got {value!r}")
    return cls(**{k: v for k, v in params.items() if k in names})


def validate_params(params: dict, sections: dict, source: str = "params.yaml") -> dict:
    """Build every section of *params* that has a typed class in *sections* (name -> class, each wing
    declares its own: :data:`blobhelpers.params.SECTIONS`); return them by name.

    Unknown keys and wrong types anywhere in those sections raise :class:`InputError` naming the
    section and the key, so a typo fails before a stage runs rather than silently taking a default.
    ``base.seed`` must be an integer.
    """
    out = {}
    base = params.get("base") or {}
    if not isinstance(base, dict) or not isinstance(base.get("seed", 0), int) or isinstance(base.get("seed"), bool):
        raise InputError(f"{source}: base.seed must be an integer")
    for name, klass in sections.items():
        if name not in params:
            continue
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

    @classmethod
    def for_stage(cls, stem: str, pipeline_run: bool) -> "ProjectPaths":
        """Where stage *stem*'s notebook reads and writes.

        Run by the pipeline (*pipeline_run*, injected by the runner): the project itself. Run by
        hand (JupyterLab): a fresh scratch mirror of the project (:mod:`blobhelpers.core.scratch`),
        which becomes the working folder, so the stage's outputs land in ``scratch/<stem>/`` and
        the committed results stay as they are.
        """
        root = project_root()
        if pipeline_run:
            return cls(root)
        scratch = scratch_project(root, stem)
        os.chdir(scratch)
        print(f"Run by hand: this stage writes its outputs under {scratch.relative_to(root)}/ (git-ignored); "
              "the pipeline's results are untouched (`dvc repro` writes those).", file=sys.stderr)
        return cls(scratch)

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
