"""The package's layer contracts, checked on the import graph (every import, at the top or inside a function).

- The wings are independent: ``blobhelpers.blob`` and ``blobhelpers.svm`` never import each other, and
  ``blobhelpers.core`` imports neither.
- Inside the blob wing, a module imports only its own sub-package and the layers below it:
  ``sections`` < ``io`` < ``sim``, ``preprocess`` (peers: neither imports the other) < ``data`` < ``learn``
  < ``detect`` < ``evaluate`` < ``commands``, ``stages`` (the stage cards, which import only the core).
- The independent cross-simulator (``blob.crosssim``) imports nothing of the project, and only evaluation
  code imports it, so nothing trained or tuned can depend on it.
- No import cycles anywhere in the package.
- TensorFlow and Keras are imported only by ``core/deeplearning.py`` (the one lazy place).

The checker is run on the real package, and on a copy with an upward import injected, which it must catch.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Rank of each blob sub-package (module path under blobhelpers.blob -> layer).
BLOB_LAYERS = {"sections": 0, "io": 1, "sim": 2, "preprocess": 2, "data": 3, "learn": 4, "detect": 5,
               "evaluate": 6, "commands": 7, "stages": 7}
CROSSSIM_USERS = ("blobhelpers.blob.evaluate",)


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def import_graph(root: Path) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(project edges, third-party top-level names) of every module under ``root/blobhelpers``."""
    files = {_module_name(p, root): p for p in (root / "blobhelpers").rglob("*.py")}
    edges: dict[str, set[str]] = {}
    external: dict[str, set[str]] = {}
    for mod, path in files.items():
        is_pkg = path.name == "__init__.py"
        out, ext = set(), set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    pkg = pkg[: len(pkg) - node.level + 1]
                    base = ".".join(pkg + ([base] if base else []))
                names = [base] + [f"{base}.{a.name}" for a in node.names]
            for n in names:
                if n.split(".")[0] != "blobhelpers":
                    ext.add(n.split(".")[0])
                elif n in files and n != mod:
                    out.add(n)
        edges[mod] = out
        external[mod] = ext
    return edges, external


def _blob_layer(mod: str) -> tuple[str, int] | None:
    parts = mod.split(".")
    if parts[:2] != ["blobhelpers", "blob"] or len(parts) < 3:
        return None
    return (parts[2], BLOB_LAYERS[parts[2]]) if parts[2] in BLOB_LAYERS else None


def violations(edges: dict[str, set[str]], external: dict[str, set[str]]) -> list[str]:
    """Every broken contract, one line each (empty: all hold)."""
    bad = []
    for src, targets in sorted(edges.items()):
        wing = src.split(".")[1] if src.count(".") else ""
        for dst in sorted(targets):
            dwing = dst.split(".")[1] if dst.count(".") else ""
            if wing in ("blob", "svm", "core") and dwing in ("blob", "svm") and dwing != wing:
                bad.append(f"wings: {src} imports {dst}")
            if dst.startswith("blobhelpers.blob.crosssim") and not src.startswith("blobhelpers.blob.crosssim") \
                    and not src.startswith(CROSSSIM_USERS):
                bad.append(f"crosssim: {src} imports the evaluation-only simulator ({dst})")
            if src.startswith("blobhelpers.blob.crosssim") and not dst.startswith("blobhelpers.blob.crosssim"):
                bad.append(f"crosssim: the independent simulator {src} imports {dst}")
            a, b = _blob_layer(src), _blob_layer(dst)
            if a and b and a[0] != b[0] and b[1] >= a[1]:
                bad.append(f"layers: {src} ({a[0]}, layer {a[1]}) imports {dst} ({b[0]}, layer {b[1]})")
        heavy = external.get(src, set()) & {"tensorflow", "keras"}
        if heavy and src != "blobhelpers.core.deeplearning":
            bad.append(f"lazy TensorFlow: {src} imports {sorted(heavy)} (use blobhelpers.core.deeplearning)")
    bad += [f"cycle: {' -> '.join(c)}" for c in cycles(edges)]
    return bad


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One representative cycle per strongly connected component with more than one module."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_package_keeps_its_layer_contracts():
    edges, external = import_graph(ROOT)
    assert "blobhelpers.blob.io.frames" in edges and "blobhelpers.svm.folds" in edges
    assert violations(edges, external) == []


def test_every_blob_subpackage_has_a_layer():
    subs = {p.name for p in (ROOT / "blobhelpers" / "blob").iterdir() if (p / "__init__.py").exists()}
    mods = {p.stem for p in (ROOT / "blobhelpers" / "blob").glob("*.py") if p.stem != "__init__"}
    assert (subs | mods) - {"crosssim"} == set(BLOB_LAYERS)


@pytest.mark.parametrize("target, line, expect", [
    ("blob/io/frames.py", "from blobhelpers.blob.detect import detection", "layers: blobhelpers.blob.io.frames"),
    ("blob/sim/campaign.py", "from blobhelpers.blob.preprocess import scaling", "layers: blobhelpers.blob.sim.campaign"),
    ("blob/learn/cnn.py", "from blobhelpers.blob.crosssim import make_series", "crosssim: blobhelpers.blob.learn.cnn"),
    ("core/stats.py", "from blobhelpers.svm import features", "wings: blobhelpers.core.stats"),
    ("blob/preprocess/scaling.py", "import tensorflow", "lazy TensorFlow: blobhelpers.blob.preprocess.scaling"),
    ("svm/features.py", "from blobhelpers.svm.models import build_model", "cycle: "),
])
def test_an_injected_bad_import_is_caught(tmp_path, target, line, expect):
    shutil.copytree(ROOT / "blobhelpers", tmp_path / "blobhelpers", ignore=shutil.ignore_patterns("__pycache__"))
    path = tmp_path / "blobhelpers" / target
    path.write_text(path.read_text() + f"\n\ndef _injected():\n    {line}\n")  # inside a function: still seen
    found = violations(*import_graph(tmp_path))
    assert any(v.startswith(expect) for v in found), found
