"""Export blobnet's hyperparameter searches (``dvc exp``) as one table, and fetch chosen models from the cache.

    python scripts/exp_table.py --prefix grid1 --prefix rand1 --out experiments/blobnet_search.csv
    python scripts/exp_table.py --extract grid1-8 --to build/search_models

Run it in the repository that ran the experiments (scripts/exp_grid.sh, scripts/exp_random.py). The
table has one row per finished experiment: its name, search (the prefix), experiment commit,
blobnet's learning rate, width and noise, the VALIDATION metrics stage train wrote (the search is
never scored on the test set), and the wall and CPU time of its stage train, read from the queue's log
(``[report] 02_train: done in ..., CPU ...``). Rows are sorted by search and experiment number, values
written with 10 significant digits, so re-exporting the same experiments gives the same bytes.

``--extract`` copies ``blobnet.keras`` and ``blobnet.preprocess.json`` of the named experiments out of
DVC's cache (the ``models`` output recorded in each experiment) into ``--to/<name>/``, for scoring the
chosen model on data the search never saw (scripts/exp_crosssim.py). Where the queue's temporary
workspaces did not keep the model files in the cache (as on the run committed here), retrain the
setting instead: training is deterministic, and the retrained model's validation AUC must equal the
table's (docs/parameters.md).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

PARAMS = ("learning_rate", "width", "noise_sigma")
METRICS = ("blobnet_val_auc", "blobnet_val_tpr_at_fpr0.03", "blobnet_val_threshold", "blobnet_dead_fc1", "best")
COLUMNS = ("experiment", "search", "commit", *PARAMS, *METRICS, "train_wall_s", "train_cpu_s")
_DONE = re.compile(r"\[report\] 02_train: done in ((?:\d+ min )?\d+) s, CPU ((?:\d+ min )?\d+) s")


def _dvc() -> list[str]:
    if os.environ.get("DVC"):
        return shlex.split(os.environ["DVC"])
    return [".venv/bin/dvc"] if Path(".venv/bin/dvc").exists() else ["dvc"]


def seconds(text: str) -> int:
    """``"2 min 33"`` -> 153 (the runner's duration without its unit).

    >>> seconds("2 min 33"), seconds("48")
    (153, 48)
    """
    m = re.fullmatch(r"(?:(\d+) min )?(\d+)", text.strip())
    if not m:
        raise ValueError(f"not a duration: {text!r}")
    return int(m.group(1) or 0) * 60 + int(m.group(2))


def experiments(show: list) -> dict[str, dict]:
    """``dvc exp show --json`` -> {experiment name: {"rev", "params", "metrics", "models"}} (finished ones)."""
    out = {}
    for baseline in show:
        for exp in baseline.get("experiments") or []:
            for rev in exp.get("revs") or []:
                data = rev.get("data") or {}
                name = rev.get("name") or exp.get("name")
                metrics = ((data.get("metrics") or {}).get("metrics/02_train.json") or {}).get("data")
                if not name or not metrics:
                    continue  # queued, running or failed
                blob = data["params"]["params.yaml"]["data"]["train"]["models"]["blobnet"]
                models = ((data.get("outs") or {}).get("models") or {}).get("hash")
                out[name] = {"rev": rev["rev"], "params": blob, "metrics": metrics, "models": models}
    return out


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.10g}"
    return "" if v is None else str(v)


def table(exps: dict, prefixes: list[str], times: dict) -> str:
    """The CSV text (see the module docstring)."""
    def key(name):
        search, _, k = name.rpartition("-")
        return (prefixes.index(search) if search in prefixes else len(prefixes), search, int(k) if k.isdigit() else 0)

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for name in sorted((n for n in exps if n.rpartition("-")[0] in prefixes), key=key):
        e = exps[name]
        wall, cpu = times.get(name, (None, None))
        w.writerow([name, name.rpartition("-")[0], e["rev"][:7],
                    *(_fmt(e["params"].get(p, 16 if p == "width" else None)) for p in PARAMS),
                    *(_fmt(e["metrics"].get(m)) for m in METRICS), _fmt(wall), _fmt(cpu)])
    return buf.getvalue()


def queue_times(names) -> dict[str, tuple[int, int]]:
    """{name: (wall s, CPU s)} of stage train, from ``dvc queue logs`` (names without a log are left out)."""
    out = {}
    for name in names:
        r = subprocess.run([*_dvc(), "queue", "logs", name], capture_output=True, text=True)
        m = _DONE.search(r.stdout + r.stderr)
        if m:
            out[name] = (seconds(m.group(1)), seconds(m.group(2)))
    return out


def _cache_file(md5: str) -> Path:
    for base in (Path(".dvc/cache/files/md5"), Path(".dvc/cache")):
        p = base / md5[:2] / md5[2:]
        if p.exists():
            return p
    raise FileNotFoundError(f"{md5}: not in this repository's DVC cache (the queue's temporary workspaces may not "
                            "have kept the models): retrain the setting instead, see docs/parameters.md")


def extract(exps: dict, names: list[str], dest: Path) -> None:
    for name in names:
        if name not in exps or not exps[name]["models"]:
            sys.exit(f"exp_table: {name}: no finished experiment with a models output")
        listing = json.loads(_cache_file(exps[name]["models"]).read_text())
        files = {e["relpath"]: e["md5"] for e in listing}
        out = dest / name
        out.mkdir(parents=True, exist_ok=True)
        for rel in ("blobnet.keras", "blobnet.preprocess.json"):
            shutil.copyfile(_cache_file(files[rel]), out / rel)
        print(f"[exp-table] {name}: {out}/blobnet.keras")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--prefix", action="append", default=[], help="experiment name prefix (repeatable)")
    p.add_argument("--out", type=Path, default=None, help="CSV to write (default: stdout)")
    p.add_argument("--extract", nargs="+", default=None, help="experiments whose blobnet model to copy out")
    p.add_argument("--to", type=Path, default=Path("build/search_models"))
    a = p.parse_args(argv)
    r = subprocess.run([*_dvc(), "exp", "show", "--json"], capture_output=True, text=True)
    if r.returncode:
        sys.exit(f"exp_table: dvc exp show failed:\n{r.stderr[-2000:]}")
    exps = experiments(json.loads(r.stdout))
    if a.extract:
        extract(exps, a.extract, a.to)
        return 0
    if not a.prefix:
        p.error("give at least one --prefix (or --extract)")
    names = [n for n in exps if n.rpartition("-")[0] in a.prefix]
    text = table(exps, a.prefix, queue_times(names))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text)
        print(f"[exp-table] {len(names)} experiments -> {a.out}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
