"""Hyperparameter search with `dvc exp`: scripts/exp_grid.sh queues a grid, the queue runs it, and
`dvc exp show` compares the experiments on their validation metric.

End to end, like test_pipeline_e2e.py: a clean copy of the repository, the tiny profile, a 2-point grid
(blobnet's learning rate) queued by the script and run with `dvc exp run --run-all` (the queue's workers,
no network), up to stage `train` only.
"""

import json
import sys

import pytest
from repo_copy import project_copy, sh

pytestmark = pytest.mark.slow  # runs in the normal test command; `-m "not slow"` leaves it out


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory, root):
    """A fresh git repository holding the project's files (tracked + new unignored), data pulled, tiny profile."""
    dest = tmp_path_factory.mktemp("exprepo")
    env = project_copy(root, dest)
    sh([sys.executable, "-m", "dvc", "pull", "-q", "data.dvc"], dest, env)
    sh([sys.executable, "-m", "blobhelpers", "profile", "tiny"], dest, env)
    sh(["git", "add", "-A"], dest, env)
    sh(["git", "commit", "-qm", "clean copy, tiny profile"], dest, env)
    return dest, env


def _experiments(show: list) -> dict:
    """``dvc exp show --json`` -> {experiment name: its data (params, metrics)}."""
    out = {}
    for baseline in show:
        for exp in baseline.get("experiments") or []:
            for rev in exp.get("revs") or []:
                out[rev.get("name") or exp.get("name")] = rev["data"]
    return out


def test_grid_of_two_experiments_up_to_train(tiny_repo):
    repo, env = tiny_repo
    dvc = [sys.executable, "-m", "dvc"]
    # stage data_prep in the workspace once: the script copies its outputs into every experiment (-C),
    # so the experiments do not rerun it
    sh([*dvc, "repro", "data_prep"], repo, env)
    sh(["git", "add", "-A"], repo, env)  # its reports, plots and metrics live in git
    sh(["git", "commit", "-qm", "data_prep"], repo, env)
    r = sh(["bash", "scripts/exp_grid.sh", "--lr", "0.001,0.003", "--width", "8", "--noise", "0.2", "--name", "lr"],
           repo, env)
    assert "[exp-grid] 2 experiment(s) (lr-1 ... lr-2)" in r.stdout
    assert "-C build/datasets" in r.stdout and "queue start" in r.stdout
    queued = sh([*dvc, "queue", "status"], repo, env).stdout
    assert queued.count("Queued") == 2, queued
    try:
        run = sh([*dvc, "exp", "run", "--run-all"], repo, env, timeout=1100)
    finally:
        sh([*dvc, "queue", "stop"], repo, env, check=False, timeout=60)  # no worker left behind
    log = run.stdout + run.stderr
    assert log.count("Running stage 'train'") == 2, log[-3000:]
    assert "Running stage 'data_prep'" not in log, log[-3000:]  # copied in, up to date
    assert "Running stage 'evaluate'" not in log, log[-3000:]  # the test set is not looked at

    show = json.loads(sh([*dvc, "exp", "show", "--json"], repo, env).stdout)
    exps = _experiments(show)
    assert {"lr-1", "lr-2"} <= set(exps), sorted(exps)
    blob = {n: exps[n]["params"]["params.yaml"]["data"]["train"]["models"]["blobnet"] for n in ("lr-1", "lr-2")}
    assert sorted(b["learning_rate"] for b in blob.values()) == [0.001, 0.003]
    assert all(b["width"] == 8 and b["noise_sigma"] == 0.2 for b in blob.values())
    for n in ("lr-1", "lr-2"):
        m = exps[n]["metrics"]["metrics/02_train.json"]["data"]  # the validation metrics of stage train
        assert 0.0 <= m["blobnet_val_auc"] <= 1.0 and "isr2021_val_auc" in m
    # the workspace is left as it was: the grid's params are only in the experiments
    assert "width" not in (repo / "params.yaml").read_text()
    table = sh([*dvc, "exp", "show", "--csv", "--drop", ".*", "--keep",
                r"Experiment|train\.models\.blobnet\.(learning_rate|width)$|blobnet_val_auc",
                "--sort-by", "metrics/02_train.json:blobnet_val_auc", "--sort-order", "desc"], repo, env).stdout
    assert "lr-1" in table and "lr-2" in table and "blobnet_val_auc" in table.splitlines()[0]
