"""The code a pipeline stage runs: the import closure of its notebook within ``blobhelpers``.

``dvc.yaml`` must list, for every stage, each package file that its notebook imports directly or
transitively (``tests/core/test_deps.py`` fails on any gap), so that ``dvc repro`` reruns a
stage whenever code it runs has changed. Print a stage's list, or rewrite every stage's ``blobhelpers/`` deps in ``dvc.yaml`` in place::
    python -m blobhelpers.core.deps notebooks/02_train.py
    python -m blobhelpers.core.deps --sync dvc.yaml
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from blobhelpers.core.paths import write_text

__all__ = ["module_file", "import_closure", "stage_code", "sync_dvc_yaml"]

PACKAGE = "blobhelpers"


def module_file(root: Path, dotted: str) -> Path | None:
    """The file of module *dotted* under *root* (``pkg/__init__.py`` for a package), or None."""
    base = root.joinpath(*dotted.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    f = base.with_suffix(".py")
    return f if f.is_file() else None


def _imports(path: Path, dotted: str | None, root: Path) -> set[str]:
    """Dotted names of the blobhelpers modules *path* imports (anywhere in the file)."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == PACKAGE}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if dotted is None:
                    continue
                parts = dotted.split(".")
                base = parts if is_pkg else parts[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != PACKAGE:
                continue
            out.add(mod)
            for a in node.names:  # `from pkg import module`
                if module_file(root, f"{mod}.{a.name}") is not None:
                    out.add(f"{mod}.{a.name}")
    return out


def import_closure(source: str | Path, root: str | Path | None = None) -> list[str]:
    """Sorted project-relative paths of every ``blobhelpers`` file that *source* runs.

    Parents' ``__init__.py`` files are included (importing ``a.b.c`` runs ``a`` and ``a.b``).
    """
    root = Path(root) if root is not None else Path(__file__).resolve().parents[2]
    seen: dict[str, Path] = {}
    todo = [(Path(source) if Path(source).is_absolute() else root / source, None)]
    files: set[Path] = set()
    while todo:
        path, dotted = todo.pop()
        for name in _imports(path, dotted, root):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                sub = ".".join(parts[:i])
                if sub in seen:
                    continue
                f = module_file(root, sub)
                if f is None:
                    continue
                seen[sub] = f
                files.add(f)
                todo.append((f, sub))
    return sorted(str(f.relative_to(root)) for f in files)


#: What every stage runs around its notebook (``python -m blobhelpers.core.report``).
RUNNER = "blobhelpers/core/report.py"


def stage_code(notebook: str | Path, root: str | Path | None = None) -> list[str]:
    """Every ``blobhelpers`` file a stage running *notebook* executes: the runner's and the notebook's closure."""
    root = Path(root) if root is not None else Path(__file__).resolve().parents[2]
    return sorted(set(import_closure(notebook, root)) | set(import_closure(RUNNER, root)) | {RUNNER})


def sync_dvc_yaml(path: str | Path, root: str | Path | None = None) -> list[str]:
    """Rewrite the ``blobhelpers/`` entries of each stage's ``deps`` in *path* to :func:`stage_code`.

    Other deps, comments and layout are kept; a stage is recognised by the notebook in its ``cmd``.
    Returns the names of the stages whose list changed.
    """
    import re

    path = Path(path)
    root = Path(root) if root is not None else path.resolve().parent
    lines = path.read_text().split("\n")
    out, changed, stage, nb = [], [], None, None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^  ([A-Za-z0-9_-]+):\s*$", line)
        if m:
            stage, nb = m.group(1), None
        m = re.search(r"(notebooks/\S+\.py)", line)
        if m and nb is None and stage:
            nb = m.group(1)
        if line.strip() == "deps:" and nb:
            out.append(line)
            i += 1
            keep, old = [], []
            while i < len(lines) and lines[i].startswith("      - "):
                (old if lines[i].strip().startswith("- blobhelpers/") else keep).append(lines[i])
                i += 1
            new = [f"      - {p}" for p in stage_code(nb, root)]
            if new != old:
                changed.append(stage)
            out += keep + new
            nb = None
            continue
        out.append(line)
        i += 1
    text = "\n".join(out)
    if text != path.read_text():
        write_text(path, text)
    return changed


if __name__ == "__main__":  # pragma: no cover
    if sys.argv[1:2] == ["--sync"]:
        print("updated:", ", ".join(sync_dvc_yaml(sys.argv[2] if len(sys.argv) > 2 else "dvc.yaml")) or "nothing")
    else:
        for nb in sys.argv[1:]:
            print("\n".join(f"      - {p}" for p in stage_code(nb)))
