"""The search scripts' own logic (the queue itself is exercised by tests/test_experiments.py, slow)."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_random_search_draws_the_grids_space_reproducibly():
    r = _load("exp_random")
    a, b = r.draw(18, 20261205), r.draw(18, 20261205)
    assert a == b and a != r.draw(18, 1)
    assert all(5e-4 <= p["learning_rate"] <= 2e-3 and p["width"] in (8, 16) and 0.1 <= p["noise_sigma"] <= 0.4 for p in a)
    assert {p["width"] for p in a} == {8, 16}


def _show(name, rev, lr, auc, width=None):
    blob = {"learning_rate": lr, "noise_sigma": 0.2, **({"width": width} if width else {})}
    data = {"params": {"params.yaml": {"data": {"train": {"models": {"blobnet": blob}}}}},
            "metrics": {"metrics/02_train.json": {"data": {"blobnet_val_auc": auc, "best": "blobnet"}}},
            "outs": {"models": {"hash": "abc.dir"}}}
    return {"name": name, "revs": [{"name": name, "rev": rev, "data": data}]}


def test_table_keeps_finished_experiments_of_the_asked_searches_in_order():
    t = _load("exp_table")
    show = [{"rev": "workspace", "experiments": []},
            {"rev": "main", "experiments": [
                _show("grid1-10", "b" * 40, 0.001, 0.97, 16), _show("grid1-2", "a" * 40, 0.0005, 0.9512345678901),
                _show("rand1-1", "c" * 40, 0.0007, 0.96, 8), _show("other-1", "d" * 40, 0.1, 0.5),
                {"name": "grid1-3", "revs": [{"name": "grid1-3", "rev": "e" * 40, "data": {"metrics": {}}}]}]}]
    exps = t.experiments(show)
    assert set(exps) == {"grid1-10", "grid1-2", "rand1-1", "other-1"}  # grid1-3 has not finished
    text = t.table(exps, ["grid1", "rand1"], {"grid1-2": (153, 131)})
    lines = text.splitlines()
    assert lines[0].split(",")[:6] == ["experiment", "search", "commit", "learning_rate", "width", "noise_sigma"]
    assert [ln.split(",")[0] for ln in lines[1:]] == ["grid1-2", "grid1-10", "rand1-1"]
    row = dict(zip(lines[0].split(","), lines[1].split(",")))
    assert row["width"] == "16" and row["blobnet_val_auc"] == "0.9512345679" and row["train_wall_s"] == "153"
    assert row["commit"] == "aaaaaaa" and text == t.table(exps, ["grid1", "rand1"], {"grid1-2": (153, 131)})
    assert t.seconds("2 min 33") == 153 and t.seconds("9") == 9
    with pytest.raises(ValueError):
        t.seconds("2 h")
    assert json.loads(json.dumps(exps))  # plain data
