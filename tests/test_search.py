"""The hyperparameter search read back: validation chooses, today's setting is found, effects, the proposal rule."""

import json

import numpy as np
import pandas as pd
import pytest

from blobhelpers import search
from blobhelpers.core.errors import InputError

COLS = ["experiment", "search", "commit", "learning_rate", "width", "noise_sigma", "blobnet_val_auc",
        "blobnet_val_tpr_at_fpr0.03", "train_wall_s", "train_cpu_s"]


def _table(tmp_path, rows):
    path = tmp_path / "search.csv"
    pd.DataFrame(rows, columns=COLS).to_csv(path, index=False)
    return path


@pytest.fixture
def runs(tmp_path):
    rows = []
    k = 0
    for lr in (0.0005, 0.001):
        for width in (8, 16):
            k += 1
            auc = 0.95 + (0.02 if lr == 0.001 else 0.0) + (0.005 if width == 8 else 0.0)
            rows.append([f"grid-{k}", "grid", f"c{k}", lr, width, 0.2, auc, 0.9, 100, 120])
    rows.append(["rand-1", "rand", "r1", 0.0007, 16, 0.3, 0.955, 0.91, 90, 100])
    rows.append(["rand-2", "rand", "r2", 0.0012, 8, 0.15, 0.985, 0.92, 95, 110])
    return search.read_search(_table(tmp_path, rows))


def test_validation_chooses_and_todays_setting_is_found(runs):
    best = search.choose(runs)
    assert best.experiment == "rand-2"
    assert search.find_setting(runs, {"learning_rate": 0.001, "width": 16, "noise_sigma": 0.2}).experiment == "grid-4"
    assert search.find_setting(runs, {"learning_rate": 0.003, "width": 16, "noise_sigma": 0.2}) is None


def test_effects_measure_each_parameter_over_its_levels(runs):
    grid = runs[runs.search == "grid"]
    lr = search.effects(grid, "learning_rate").set_index("level")
    assert lr.loc[0.001, "mean"] - lr.loc[0.0005, "mean"] == pytest.approx(0.02)
    w = search.effects(grid, "width").set_index("level")
    assert w.loc[8, "mean"] - w.loc[16, "mean"] == pytest.approx(0.005) and (w["n"] == 2).all()
    assert list(search.best_so_far(grid)) == pytest.approx([0.955, 0.955, 0.975, 0.975])


def test_the_proposal_needs_a_validation_gain_beyond_one_se_and_no_loss_on_the_cross_simulator(runs):
    today = {"learning_rate": 0.001, "width": 16, "noise_sigma": 0.2}
    xs = {"models": {"rand-2": 0.96, "today": 0.95}, "n_tiles": 600, "n_pos": 50, "n_images": 80}
    s = search.summary(runs, today, xs, 259, 241)
    assert s["best"] == "rand-2" and s["today"] == "grid-4"
    assert s["best_minus_today_val_auc"] == pytest.approx(0.015) and s["val_auc_se"] < 0.015
    assert s["propose_switch"] and s["searches"] == {"grid": 4, "rand": 2}
    assert s["cost_cpu_min"] == pytest.approx((4 * 120 + 210) / 60, abs=0.05)
    worse = dict(xs, models={"rand-2": 0.94, "today": 0.95})
    assert not search.summary(runs, today, worse, 259, 241)["propose_switch"]
    assert not search.summary(runs, today, xs, 25, 24)["propose_switch"]  # the gain is within one SE here


def test_bad_tables_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        search.read_search(tmp_path / "none.csv")
    bad = tmp_path / "cols.csv"
    bad.write_text("experiment,search\nx,grid\n")
    with pytest.raises(InputError, match="missing column"):
        search.read_search(bad)
    with pytest.raises(InputError, match=r"outside \[0, 1\]"):
        search.read_search(_table(tmp_path, [["g-1", "g", "c", 0.001, 8, 0.2, 1.5, 0.9, 1, 1]]))
    j = tmp_path / "x.json"
    j.write_text(json.dumps({"models": {"a": {}}}))
    with pytest.raises(InputError, match="cross-simulator scores"):
        search.read_crosssim(j)


def test_auc_standard_error_shrinks_with_more_cases():
    assert search.auc_se(0.97, 2590, 2410) < search.auc_se(0.97, 259, 241)
    assert np.isclose(search.auc_se(0.5, 100, 100), np.sqrt((0.25 + 99 * (1 / 3 - 0.25) * 2) / 10000))
