"""benchmarks/metrics_side_by_side.py: the numbers that differ between two metrics folders."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mod():
    spec = importlib.util.spec_from_file_location("metrics_side_by_side", ROOT / "benchmarks" / "metrics_side_by_side.py")
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def test_only_differing_numbers_are_listed_nested_and_missing_ones_included(mod, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "04_monitor.json").write_text(json.dumps({"snr_min": 6.5, "campaign": {"n_days": 210, "seed": 1}}))
    (b / "04_monitor.json").write_text(json.dumps({"snr_min": 4.5, "campaign": {"n_days": 210, "seed": 1}, "new": 1}))
    (a / "02_train.json").write_text(json.dumps({"auc": 0.9}))
    got = mod.rows(mod.load(a), mod.load(b))
    assert got == [("02_train", "auc", "0.900", "-"), ("04_monitor", "snr_min", "6.500", "4.500"),
                   ("04_monitor", "new", "-", "1")]
    assert len(mod.rows(mod.load(a), mod.load(b), everything=True)) == 5
    assert mod.main([str(a), str(b), "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "| 04_monitor | snr_min | 6.500 | 4.500 |" in out and "n_days" not in out


def test_a_missing_folder_or_bad_json_names_the_file(mod, tmp_path):
    with pytest.raises(SystemExit, match="not a folder"):
        mod.load(tmp_path / "nope")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(SystemExit, match="x.json: not a readable JSON"):
        mod.load(tmp_path)
