"""dvc.yaml's top-level `plots:` declares only what reads as a plot (`bash tasks.sh plots`, `dvc plots diff`).

Every entry is one file a stage writes (no plots/NN_* folder wholesale: DVC would draw every CSV in it as
a line against the row number); a CSV plot names its x and y columns, which the CSV has (numbers where the
template draws them on an axis); every figure a stage saves (PNG) is declared as an image plot.
`plot_problems` checks a parsed dvc.yaml; the tests below feed it broken copies to show that it fails.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DVC_YAML = yaml.safe_load((ROOT / "dvc.yaml").read_text())

TEMPLATES = {"linear", "simple", "scatter", "scatter_jitter", "smooth", "confusion", "confusion_normalized",
             "bar_horizontal", "bar_horizontal_sorted"}
NUMERIC_AXES = {  # template -> the axes it draws as quantitative (confusion counts rows of any labels)
    "linear": ("x", "y"), "simple": ("x", "y"), "scatter": ("x", "y"), "scatter_jitter": ("x", "y"),
    "smooth": ("x", "y"), "bar_horizontal": ("x",), "bar_horizontal_sorted": ("x",),
}
DATA_EXT = {".csv", ".tsv", ".json", ".yaml", ".yml"}
IMAGE_EXT = {".png", ".jpg", ".jpeg", ".gif", ".svg"}


def _as_list(v) -> list:
    return [] if v is None else list(v) if isinstance(v, (list, tuple)) else [v]


def _key(entry) -> str:
    return entry if isinstance(entry, str) else next(iter(entry))


def plot_entries(dvc: dict) -> list[tuple[str, dict]]:
    """(plot id, properties) of every top-level plot entry."""
    out = []
    for entry in dvc.get("plots") or []:
        if isinstance(entry, str):
            out.append((entry, {}))
        else:
            assert isinstance(entry, dict) and len(entry) == 1, f"a plot entry is a path or {{id: props}}: {entry!r}"
            (pid, props), = entry.items()
            out.append((pid, props or {}))
    return out


def plot_files(pid: str, props: dict) -> list[tuple[str, str | None, list[str]]]:
    """(file, x column, y columns) for each file a plot reads, as DVC resolves them."""
    x, y = props.get("x"), props.get("y")
    if isinstance(y, dict):  # a named plot: y = {file: column(s)}; x = column or {file: column}
        return [(f, x.get(f) if isinstance(x, dict) else x, _as_list(cols)) for f, cols in y.items()]
    return [(pid, x if not isinstance(x, dict) else x.get(pid), _as_list(y))]


def stage_outs(dvc: dict) -> list[str]:
    outs = []
    for st in (dvc.get("stages") or {}).values():
        for kind in ("outs", "metrics", "plots"):
            outs += [_key(o) for o in st.get(kind) or []]
    return outs


def _header_and_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t" if path.suffix == ".tsv" else ","))
    return (rows[0] if rows else []), rows[1:]


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def plot_problems(dvc: dict, root: Path = ROOT) -> list[str]:
    problems = []
    outs = stage_outs(dvc)
    for name, st in (dvc.get("stages") or {}).items():
        if st.get("plots"):
            problems.append(f"stage {name} declares plots: declare them in the top-level plots (x, y, template) "
                            f"and keep the files as outs")
    declared = set()
    for pid, props in plot_entries(dvc):
        template = props.get("template", "linear")
        if template not in TEMPLATES and not (root / template).is_file():
            problems.append(f"{pid}: unknown template {template!r}")
        for f, x, ys in plot_files(pid, props):
            path = root / f
            declared.add(f)
            pid = pid if pid == f else f"{pid} ({f})"
            if f.rstrip("/") != f or path.is_dir() or not Path(f).suffix:
                problems.append(f"{pid}: a folder: DVC draws every CSV in it against the row number; "
                                f"declare its plots one file at a time")
                continue
            if not path.is_file():
                problems.append(f"{pid}: does not exist")
            if not any(f == o or f.startswith(o.rstrip("/") + "/") for o in outs):
                problems.append(f"{pid}: no stage writes {f} (not under any stage's outs)")
            ext = path.suffix.lower()
            if ext in IMAGE_EXT:
                continue
            if ext not in DATA_EXT:
                problems.append(f"{pid}: neither data (CSV/TSV/JSON/YAML) nor an image")
                continue
            if not x or not ys:
                problems.append(f"{pid}: declared without x and y: DVC would draw a column "
                                f"against the row number")
                continue
            if ext not in {".csv", ".tsv"} or not path.is_file():
                continue
            header, rows = _header_and_rows(path)
            cols = {"x": [x], "y": ys}
            for col in [x, *ys]:
                if col not in header:
                    problems.append(f"{pid}: no column {col!r} (columns: {', '.join(header)})")
            for axis in NUMERIC_AXES.get(template, ()):
                for col in cols[axis]:
                    if col not in header:
                        continue
                    i = header.index(col)
                    bad = [r[i] for r in rows if i >= len(r) or not _is_number(r[i])][:3] if rows else ["(no rows)"]
                    if bad:
                        problems.append(f"{pid}: column {col!r} ({axis} of template {template}) is not numeric: "
                                        f"{bad}")
    # every figure a stage saves under plots/ is shown
    for o in outs:
        if o.startswith("plots/") and (root / o).is_dir():
            for png in sorted((root / o).rglob("*")):
                rel = png.relative_to(root).as_posix()
                if png.suffix.lower() in IMAGE_EXT and rel not in declared:
                    problems.append(f"{rel} (a figure stage outs write) is not declared as an image plot")
    return problems


def test_dvc_yaml_plots_are_explicit_and_sensible():
    assert DVC_YAML.get("plots"), "dvc.yaml declares no top-level plots"
    assert plot_problems(DVC_YAML) == []


def test_plot_folders_stay_stage_outs_uncached():
    """The plots/NN_* folders are still outputs of their stages (cache: false), whatever plots: lists."""
    folders = [p.relative_to(ROOT).as_posix() for p in sorted((ROOT / "plots").iterdir()) if p.is_dir()]
    outs = {}
    for st in DVC_YAML["stages"].values():
        for o in st.get("outs") or []:
            if isinstance(o, dict):
                outs.update(o)
            else:
                outs[o] = None
    for f in folders:
        assert f in outs, f"{f} is no stage's out"
        assert (outs[f] or {}).get("cache") is False, f"{f}: expected cache: false"


# --- the checker fails on broken declarations -------------------------------------------------------------

def _with_plots(*entries, drop_stage_out=None) -> dict:
    d = copy.deepcopy(DVC_YAML)
    d["plots"] = list(d["plots"]) + list(entries)
    if drop_stage_out:
        for st in d["stages"].values():
            st["outs"] = [o for o in st.get("outs", []) if _key(o) != drop_stage_out]
    return d


BROKEN = {
    "folder listed wholesale": (_with_plots("plots/02_train"), "a folder"),
    "folder with properties": (_with_plots({"plots/04_monitor": {"x": "day", "y": "alerts"}}), "a folder"),
    "CSV without x and y": (_with_plots("plots/03_evaluate/strata.csv"), "without x and y"),
    "CSV with y only": (_with_plots({"plots/04_monitor/days.csv": {"y": "alerts"}}), "without x and y"),
    "missing y column": (_with_plots({"auc": {"x": "epoch", "y": {"plots/02_train/history_blobnet.csv": "val_auc"}}}),
                         "no column 'val_auc'"),
    "missing x column": (_with_plots({"plots/02_train/history_isr2021.csv": {"x": "step", "y": "loss"}}),
                         "no column 'step'"),
    "text on a line plot's axis": (_with_plots({"plots/02_train/history_blobnet.csv": {"x": "epoch", "y": "optimizer"}}),
                                   "not numeric"),
    "file not in the repo": (_with_plots({"roc": {"x": "fpr", "y": {"plots/03_evaluate/roc.csv": "tpr"}}}),
                             "does not exist"),
    "file no stage writes": (_with_plots(drop_stage_out="plots/02_train"), "no stage writes"),
    "unknown template": (_with_plots({"plots/02_train/history_deepwfc3.csv": {"x": "epoch", "y": "loss",
                                                                              "template": "lines"}}),
                         "unknown template"),
    "plots inside a stage": ({**copy.deepcopy(DVC_YAML),
                              "stages": {**DVC_YAML["stages"],
                                         "extra": {"cmd": "true", "plots": ["plots/02_train/history.png"]}}},
                             "declares plots"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_checker_catches(case):
    dvc, expected = BROKEN[case]
    problems = plot_problems(dvc)
    assert any(expected in p for p in problems), f"{case}: expected a problem with {expected!r}, got {problems}"


def test_checker_catches_an_undeclared_figure():
    d = copy.deepcopy(DVC_YAML)
    d["plots"] = [e for e in d["plots"] if _key(e) != "plots/02_train/history.png"]
    assert "plots/02_train/history.png (a figure stage outs write) is not declared as an image plot" in plot_problems(d)


def test_dvc_renders_every_declared_plot():
    """`dvc plots show --json` (what tasks.sh plots renders) loads every plot without an error."""
    pytest.importorskip("dvc")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    res = subprocess.run([sys.executable, "-m", "dvc", "plots", "show", "--json"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert not out.get("errors"), out["errors"]
    ids = [pid for pid, _ in plot_entries(DVC_YAML)]
    assert sorted(out["data"]) == sorted(ids)
    for pid, shown in out["data"].items():
        assert shown, f"{pid}: DVC drew nothing"
