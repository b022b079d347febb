"""End to end: a clean copy of the repository, `dvc pull` from the bundled remote, and
`dvc repro` on the tiny profile. Proves the pipeline itself works, not only its functions."""

import json
import re
import shutil
import sys

import numpy as np
import pytest
from repo_copy import project_copy, sh

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def clean_copy(tmp_path_factory, root):
    """The repository's files as a fresh clone would have them (git-tracked + new unignored)."""
    dest = tmp_path_factory.mktemp("repo")
    env = project_copy(root, dest)
    sh(["git", "add", "-A"], dest, env)
    sh(["git", "commit", "-qm", "clean copy"], dest, env)
    return dest, env


def test_dvc_pull_then_repro_tiny_profile(clean_copy):
    repo, env = clean_copy
    dvc = [sys.executable, "-m", "dvc"]
    assert not (repo / "data").exists()
    sh([*dvc, "pull", "-q", "data.dvc"], repo, env)
    assert (repo / "data" / "blob_cutouts" / "real_blob_cutouts.npz").is_file()
    assert "up to date" in sh([*dvc, "status", "data.dvc"], repo, env).stdout
    sh([sys.executable, "-m", "blobhelpers", "profile", "tiny"], repo, env)
    sh([*dvc, "repro"], repo, env)

    html = (repo / "reports" / "01_data_prep.html").read_text()
    assert len(re.findall(r"data:image/(?:png|jpeg);base64", html)) >= 6  # the figures are inlined
    assert "https://cdn" not in html and "Traceback" not in html
    assert "simulate.n_frames" in html and "numpy" in html  # parameters and versions (collapsed, at the end)
    assert html.index('id="verdict"') < html.index("<h2") < html.index('id="provenance"')  # verdict first
    metrics = json.loads((repo / "metrics" / "01_data_prep.json").read_text())
    assert metrics["n_difference_images"] == 14 - 10
    assert metrics["n_train"] == 48 and metrics["n_test"] == 24
    for split in ("train", "val", "test"):
        with np.load(repo / "build" / "datasets" / f"{split}.npz", allow_pickle=False) as z:
            assert len(z["crop_label"]) == {"train": 48, "val": 16, "test": 24}[split]
    assert len(list((repo / "build" / "diffs").glob("diff_*.fits"))) == 4
    assert len(list((repo / "plots" / "01_data_prep").glob("*.png"))) >= 6

    # Stages 02-03: models, selection, evaluation, classify on a difference image of stage 01.
    for name in ("isr2021", "deepwfc3", "blobnet", "best"):
        assert (repo / "models" / f"{name}.keras").is_file()
    best = json.loads((repo / "models" / "best.json").read_text())
    assert best["name"] in ("isr2021", "deepwfc3", "blobnet") and 0 <= best["val_threshold"] <= 1
    ev = json.loads((repo / "metrics" / "03_evaluate.json").read_text())
    assert ev["n_test"] == 24 and ev["best"] == best["name"]
    # the per-sample confusion rows (dvc plots) reproduce the reported rates of the best model
    import pandas as pd

    conf = pd.read_csv(repo / "plots" / "03_evaluate" / "confusion_best.csv")
    assert len(conf) == ev["n_test"]
    pos = conf[conf.actual == "blob"]
    assert ev[f"{best['name']}_tval_tpr"] == pytest.approx((pos.predicted == "blob").mean())
    for name in ("isr2021", "deepwfc3", "blobnet"):  # each model carries its preprocessing
        prep = json.loads((repo / "models" / f"{name}.preprocess.json").read_text())
        assert prep["representation"] == ("residual" if name == "blobnet" else "isr")
    for report in ("02_train", "03_evaluate"):
        html = (repo / "reports" / f"{report}.html").read_text()
        assert "Traceback" not in html and "https://cdn" not in html and "data:image/png;base64" in html
    assert "actual,predicted" in (repo / "plots" / "03_evaluate" / "confusion_best.csv").read_text()
    diff = sorted((repo / "build" / "diffs").glob("diff_*.fits"))[-1]
    r = sh([sys.executable, "-m", "blobhelpers", "classify", diff], repo, env)
    res = json.loads(r.stdout)
    tuned = json.loads((repo / "build" / "monitor" / "thresholds.json").read_text())
    assert len(res["tiles"]) == 16 and res["threshold"] == pytest.approx(tuned["threshold"])  # the tuned one
    assert res["preprocessing"]["representation"] == json.loads(
        (repo / "models" / "best.preprocess.json").read_text())["representation"]

    # Stage 04: the monitor regression and one `blobhelpers monitor` run with its log.
    mon = json.loads((repo / "metrics" / "details" / "04_monitor.json").read_text())  # all it measured
    head = json.loads((repo / "metrics" / "04_monitor.json").read_text())  # the DVC metric: headline only
    assert head["campaign.n_days"] == mon["campaign"]["n_days"] and len(head) <= 12
    assert not any("seconds" in k for k in head) and not any("seconds" in k for k in mon)
    assert mon["campaign"]["n_days"] == 16 - 10 and mon["model"] == best["name"]
    fa = mon["false_alarm_days"]
    assert mon["false_alarm_days_per_100_quiet"] == pytest.approx(100 * fa["k"] / fa["n"], abs=0.01)
    days = pd.read_csv(repo / "plots" / "04_monitor" / "days.csv")
    assert len(days) == mon["campaign"]["n_days"]
    assert (repo / "build" / "monitor_demo" / "monitor_log.jsonl").read_text().count("\n") == 1
    assert sorted(p.name for p in (repo / "build" / "monitor").iterdir()) == ["thresholds.json"]
    html = (repo / "reports" / "04_monitor.html").read_text()
    assert "Traceback" not in html and len(re.findall(r"data:image/(?:png|jpeg);base64", html)) >= 3
    r = sh([sys.executable, "-m", "blobhelpers", "monitor", repo / "build" / "monitor_campaign" / "frames",
            "--out", repo / "build" / "mon_cli", "--no-html", "-q"], repo, env, check=False)
    assert r.returncode in (0, 3), r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["verdict"] in ("new_blob", "nothing_new")
    # the thresholds tuned on the development campaign are recorded and used by the CLI
    assert mon["thresholds_tuned_on_development_campaign"]["n_quiet_days"] >= 1
    assert (mon["snr_min"], mon["threshold"], mon["neg_veto"]) == (tuned["snr_min"], tuned["threshold"],
                                                                   tuned["neg_veto"])
    used = json.loads((repo / "build" / "mon_cli" / "monitor_log.jsonl").read_text().splitlines()[-1])["config"]
    assert (used["snr_min"], used["threshold"], used["neg_veto"]) == (tuned["snr_min"], tuned["threshold"],
                                                                     tuned["neg_veto"])

    # Stage 05: the independent cross-simulator (tiny: 2 + 2 difference images, 1 + 1 series).
    xs = json.loads((repo / "metrics" / "details" / "05_crosssim.json").read_text())
    assert xs["n_diff_images"] == 4 and xs["n_series"] == 2 and xs["xsim_cnn_image_fpr_n"] == 2
    rows = pd.read_csv(repo / "plots" / "05_crosssim" / "crosssim_images.csv")
    free = rows[~rows.has_any_blob]
    assert xs["xsim_cnn_image_fpr"] == pytest.approx(free.new_blob.mean())
    assert xs["xsim_mf_image_fpr"] == pytest.approx(free.mf_new_blob.mean())
    assert json.loads((repo / "metrics" / "05_crosssim.json").read_text())["xsim_cnn_image_fpr"] == xs["xsim_cnn_image_fpr"]
    assert "Traceback" not in (repo / "reports" / "05_crosssim.html").read_text()

    # Stages 10-12: SVM prep, models (grouped CV), screening.
    svm = json.loads((repo / "metrics" / "11_svm_models.json").read_text())
    assert svm and (repo / "build" / "svm" / "model").is_dir()
    for report in ("10_svm_prep", "11_svm_models", "12_svm_screen"):
        html = (repo / "reports" / f"{report}.html").read_text()
        assert "Traceback" not in html and "https://cdn" not in html
    assert (repo / "metrics" / "12_svm_screen.json").is_file()

    # Stages 13-14: simulated SVM visits (drizzle, measured corruption labels), images vs tables.
    sim = json.loads((repo / "metrics" / "13_svm_simulate.json").read_text())
    assert sim["n_visits"] == 5 and sim["n_corrupted"] == 20 and 0 <= sim["frac_corrupted_labelled_1"] <= 1
    img = json.loads((repo / "metrics" / "14_svm_images.json").read_text())
    assert img["n_products"] == 25 and {"tabular_roc_auc", "stacked_roc_auc", "spacekit_roc_auc"} <= set(img)
    assert (repo / "build" / "svm" / "image_model" / "ensemble.json").is_file()
    for report in ("13_svm_simulate", "14_svm_images"):
        html = (repo / "reports" / f"{report}.html").read_text()
        assert "Traceback" not in html and "https://cdn" not in html

    # Every report and the article pass the report lint (sizes: the tiny profile's budgets are the default's).
    from blobhelpers.core.reportlint import lint_notebook, lint_reports

    problems = lint_reports(repo / "reports")
    problems += [p for nb in sorted((repo / "build" / "notebooks").glob("*.ipynb"))
                 if not nb.name.endswith(".src.ipynb") for p in lint_notebook(nb)]
    assert not problems, "\n".join(map(str, problems))
    index = (repo / "reports" / "index.html").read_text()
    assert "WFC3 ISR 2021-08, rebuilt" in index and "Fig. 8" in index and 'href="04_monitor.html"' in index

    # Nothing changed: a second repro reruns nothing.
    out = sh([*dvc, "repro"], repo, env).stdout
    assert "Running stage" not in out

    # A stage notebook run by hand, as JupyterLab runs it (no injected parameters, the notebooks folder as
    # the working folder), reads params.yaml and the real upstream results, and writes only under scratch/.
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "outputs of the tiny pipeline"], repo, env)
    committed = (repo / "metrics" / "03_evaluate.json").read_bytes()
    import jupytext
    import papermill

    from blobhelpers.core.report import _kernel_name

    built = repo / "build" / "by_hand.ipynb"
    jupytext.write(jupytext.read(repo / "notebooks" / "03_evaluate.py"), built)
    papermill.execute_notebook(str(built), str(built), kernel_name=_kernel_name(), cwd=str(repo / "notebooks"),
                               progress_bar=False)
    assert sh(["git", "status", "--porcelain"], repo, env).stdout == ""
    assert "up to date" in sh([*dvc, "status"], repo, env).stdout
    assert (repo / "metrics" / "03_evaluate.json").read_bytes() == committed
    scratch = json.loads((repo / "scratch" / "03_evaluate" / "metrics" / "03_evaluate.json").read_text())
    assert scratch["n_test"] == ev["n_test"]  # the same params.yaml as the pipeline
    assert (repo / "scratch" / "03_evaluate" / "models").is_symlink()  # upstream results: the real ones

    # Changing a parameter the stage uses makes it stale.
    params = (repo / "params.yaml").read_text().replace("n_test: 24", "n_test: 20")
    (repo / "params.yaml").write_text(params)
    assert "data_prep" in sh([*dvc, "status"], repo, env).stdout


def test_bundled_remote_is_verified(clean_copy, tmp_path):
    """The hash in data.dvc means something: a corrupted file in the store fails the pull."""
    repo, env = clean_copy
    copy = tmp_path / "corrupt"
    shutil.copytree(repo, copy, ignore=shutil.ignore_patterns("build", "data", "cache", "tmp"))
    victim = next(p for p in (copy / "dvc-store").rglob("*") if p.is_file() and not p.name.endswith(".dir"))
    victim.chmod(0o644)
    victim.write_bytes(victim.read_bytes() + b"corrupt")
    r = sh([sys.executable, "-m", "dvc", "pull", "data.dvc"], copy, env, check=False)
    assert r.returncode != 0
    assert not (copy / "data" / "blob_cutouts" / "real_blob_cutouts.npz").exists()
