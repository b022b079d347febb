"""A stage notebook run by hand never touches the pipeline's results: it runs in a scratch copy.

Opening ``notebooks/03_evaluate.py`` in JupyterLab and running it top to bottom is how a scientist
explores a stage. Only ``dvc repro`` (the runner, :func:`blobhelpers.core.report.run_notebook`) may
write a stage's DVC outputs; a run by hand writes them under ``scratch/<stage>/`` instead, which git
ignores. That folder mirrors the project: every file and folder is a symbolic link to the real one,
except the stage's own outputs (its ``outs``, ``metrics`` and ``plots`` in ``dvc.yaml``), which start
empty and are written there. So the notebook reads the real data, models and upstream results, and
its new figures, metrics and products land in scratch, where they can be compared with the
committed ones. Each run by hand starts from a fresh scratch folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath

import yaml

from blobhelpers.core.errors import InputError

__all__ = ["SCRATCH", "stage_outputs", "scratch_project"]

#: The folder (under the project root, git-ignored) of the runs by hand.
SCRATCH = "scratch"


def stage_outputs(root: str | Path, stem: str) -> list[str]:
    """The ``outs``, ``metrics`` and ``plots`` paths of the dvc.yaml stage that runs ``notebooks/<stem>.py``."""
    path = Path(root) / "dvc.yaml"
    try:
        stages = (yaml.safe_load(path.read_text()) or {}).get("stages", {})
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: cannot read the pipeline ({exc})") from exc
    for stage in stages.values():
        if f"notebooks/{stem}.py" in str(stage.get("cmd", "")):
            return [str(next(iter(o))) if isinstance(o, dict) else str(o)
                    for key in ("outs", "metrics", "plots") for o in stage.get(key, [])]
    raise InputError(f"{path}: no stage runs notebooks/{stem}.py")


def _mirror(src: Path, dst: Path, outs: list[tuple[str, ...]], skip: tuple[str, ...] = ()) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for child in sorted(src.iterdir()):
        if child.name in skip:
            continue
        below = [o[1:] for o in outs if o[0] == child.name]
        if not below:
            (dst / child.name).symlink_to(child.resolve())
        elif any(not o for o in below):
            continue  # one of the stage's outputs: left for the stage to write here
        elif child.is_dir():
            _mirror(child, dst / child.name, below)


def scratch_project(root: str | Path, stem: str) -> Path:
    """A fresh ``scratch/<stem>/`` mirror of the project *root* without the stage's outputs (see the module)."""
    root = Path(root).resolve()
    outs = [PurePosixPath(o).parts for o in stage_outputs(root, stem)]
    dest = root / SCRATCH / stem
    if dest.is_symlink() or dest.is_file():
        dest.unlink()
    elif dest.exists():
        shutil.rmtree(dest)  # removes the links, never what they point to
    _mirror(root, dest, outs, skip=(SCRATCH, ".git"))
    return dest
