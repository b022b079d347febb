"""The package's maps match its files: docs/layout.md's tree and every (sub-)package's docstring and ``__all__``."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "blobhelpers"


def modules_on_disk(folder: Path) -> set[str]:
    """Module and sub-package names directly in *folder* (no dunder files)."""
    mods = {p.stem for p in folder.glob("*.py") if not p.stem.startswith("__")}
    pkgs = {p.name for p in folder.iterdir() if (p / "__init__.py").is_file()}
    return mods | pkgs


def tree_of_layout(text: str) -> set[str]:
    """Paths (``blobhelpers/blob/io/frames.py``, ``blobhelpers/svm/stages/``) named in docs/layout.md's tree."""
    block = text[text.index("```\nblobhelpers/") + 4:]
    block = block[: block.index("```")]
    out, stack = set(), []
    for line in block.splitlines():
        m = re.match(r"^( *)(\S+)", line)
        if not m or not re.fullmatch(r"[\w.]+/?", m.group(2)) or not m.group(2).endswith(("/", ".py")):
            continue
        depth = len(m.group(1)) // 2
        stack = stack[:depth] + [m.group(2)]
        if stack[0] != "blobhelpers/":
            continue
        out.add("".join(stack))
    return out


def test_docs_layout_tree_matches_the_package():
    named = tree_of_layout((ROOT / "docs" / "layout.md").read_text())
    on_disk = set()
    for init in PKG.rglob("__init__.py"):
        folder = init.parent
        rel = folder.relative_to(ROOT).as_posix() + "/"
        on_disk.add(rel)
        on_disk |= {rel + p.name for p in folder.glob("*.py") if not p.stem.startswith("__")}
    # packages whose modules the tree names on one line (their docstrings map them, tested below)
    listed_flat = {"blobhelpers/blob/detect/monitor/", "blobhelpers/blob/stages/", "blobhelpers/svm/stages/"}
    on_disk = {p for p in on_disk if not any(p.startswith(f) and p != f for f in listed_flat)}
    assert named == on_disk, {"named, not on disk": sorted(named - on_disk), "on disk, not named": sorted(on_disk - named)}


PACKAGES = sorted(p.parent for p in PKG.rglob("__init__.py") if p.parent != PKG)


@pytest.mark.parametrize("folder", PACKAGES, ids=[p.relative_to(ROOT).as_posix() for p in PACKAGES])
def test_every_package_docstring_and_all_name_its_modules(folder):
    tree = ast.parse((folder / "__init__.py").read_text())
    doc = ast.get_docstring(tree) or ""
    assert doc, f"{folder}: no docstring"
    disk = modules_on_disk(folder)
    if "Modules\n-------" in doc:  # a map: one line per module (or "a, b" for several)
        section = doc.split("Modules\n-------\n", 1)[1]
        names = set()
        for line in section.splitlines():
            if line and not line.startswith(" "):
                if not re.fullmatch(r"[\w, ]+", line):
                    break
                names |= {n.strip() for n in line.split(",")}
    else:  # a one-line list: "Modules: a, b, c."
        m = re.search(r"Modules: ([\w, ]+)\.", doc)
        assert m, f"{folder}: the docstring maps no modules"
        names = {n.strip() for n in m.group(1).split(",")}
    assert names == disk, {"in docstring only": sorted(names - disk), "not in docstring": sorted(disk - names)}
    exported = next((ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                     and any(getattr(t, "id", "") == "__all__" for t in n.targets)), None)
    if exported is not None and folder.name not in ("monitor", "crosssim"):  # these re-export their API
        assert set(exported) == disk


def test_tests_mirror_the_package():
    """tests/<wing>/<sub-package>/test_<module>.py tests blobhelpers/<wing>/<sub-package>/<module>."""
    tests = ROOT / "tests"
    checked = 0
    for f in sorted(tests.glob("*/**/test_*.py")):
        rel = f.parent.relative_to(tests)
        folder = PKG / rel
        assert folder.is_dir(), f"{f.relative_to(ROOT)}: no package blobhelpers/{rel.as_posix()}"
        name = f.stem[len("test_"):]
        mods = modules_on_disk(folder)
        assert name in mods or name.split("_")[0] in mods, f"{f.relative_to(ROOT)}: no module {name} in {folder}"
        checked += 1
    assert checked >= 30
