"""dvc.yaml's deps are the code each stage runs: no gap between them and the notebook's import closure."""

import re
from pathlib import Path

import pytest
import yaml

from blobhelpers.core.deps import import_closure

ROOT = Path(__file__).resolve().parents[2]
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _notebook(cmd: str) -> str:
    m = re.search(r"(notebooks/\S+\.py)", cmd)
    assert m, cmd
    return m.group(1)


def _covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


@pytest.mark.parametrize("name", sorted(STAGES))
def test_deps_cover_the_import_closure(name):
    st = STAGES[name]
    nb = _notebook(st["cmd"])
    deps = [d if isinstance(d, str) else next(iter(d)) for d in st["deps"]]
    assert nb in deps, f"{name}: its notebook {nb} is not a dependency"
    runner = ["blobhelpers/core/report.py", *import_closure("blobhelpers/core/report.py", ROOT)]
    missing = [p for p in sorted(set(import_closure(nb, ROOT)) | set(runner)) if not _covered(p, deps)]
    assert not missing, f"stage {name} runs code it does not depend on: {missing}"
    stale = [d for d in deps if d.startswith("blobhelpers/") and not (ROOT / d).exists()]
    assert not stale, f"stage {name} depends on files that do not exist: {stale}"


def test_closure_follows_relative_and_lazy_imports(tmp_path):
    pkg = tmp_path / "blobhelpers"
    (pkg / "w").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "w" / "__init__.py").write_text("")
    (pkg / "w" / "a.py").write_text("def f():\n    from .b import g\n    return g\n")
    (pkg / "w" / "b.py").write_text("from ..c import h\n")
    (pkg / "c.py").write_text("import os\n")
    (pkg / "unused.py").write_text("")
    nb = tmp_path / "nb.py"
    nb.write_text("from blobhelpers.w import a\n")
    got = import_closure(nb, tmp_path)
    assert got == ["blobhelpers/__init__.py", "blobhelpers/c.py", "blobhelpers/w/__init__.py",
                   "blobhelpers/w/a.py", "blobhelpers/w/b.py"]
