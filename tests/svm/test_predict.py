"""``svm predict|prep|train`` outputs and bad inputs (exit codes), images and spacekit's released model."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from blobhelpers.core.errors import InputError
from blobhelpers.svm.features import FEATURES
from blobhelpers.svm.images import load_images, load_spacekit_model, load_triplet, spacekit_predict
from blobhelpers.svm.predict import predict_file
from blobhelpers.svm.features import read_features

from svm_toy import logreg_model_dir, svm_cli, toy




@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return logreg_model_dir(tmp_path_factory.mktemp("model"), 0.5)


@pytest.fixture()
def features_csv(tmp_path):
    df = toy(30, seed=4)  # has a label column: it must be ignored
    # target categories as real visits have them, in the current table (G, U, SC, S): detected as "spacekit"
    df["cat"] = np.random.default_rng(4).choice([7, 3, 4, 5], len(df))
    p = tmp_path / "features.csv"
    df.to_csv(p, index=False)
    return p, df


def test_predict_outputs(tmp_path, model_dir, features_csv):
    path, df = features_csv
    out = tmp_path / "out"
    r = svm_cli("predict", path, "--model", model_dir, "-o", out)
    assert r.returncode == 0, r.stderr
    preds = pd.read_csv(out / "predictions.csv")
    assert list(preds.columns[:3]) == ["index", "y_proba", "y_pred"]
    assert list(preds.columns[3:13]) == list(FEATURES) and "label" not in preds
    assert preds["index"].tolist() == df["index"].tolist()
    np.testing.assert_allclose(preds[list(FEATURES)].to_numpy(float), df[list(FEATURES)].to_numpy(float))
    assert ((preds["y_proba"] >= 0.5).astype(int) == preds["y_pred"]).all()
    assert preds["y_pred"].sum() > 0 and (preds["y_pred"] == 0).sum() > 0
    flagged = (out / "compromised.txt").read_text().splitlines()
    assert flagged == preds.loc[preds["y_pred"] == 1, "index"].tolist()
    report = (out / "clf_report.txt").read_text()
    assert "CLASSIFICATION REPORT" in report and "Misalignment counts by Detector" in report
    for det, code in (("hrc", 0), ("wfc", 4)):
        s = preds["det"] == code
        assert f"{det}\t{int(preds.loc[s, 'y_pred'].sum())} \t ({int(s.sum())})" in report
    assert f"Mean Probability Score:  {preds['y_proba'].mean():.4f}" in report
    assert not list(out.glob(".*"))  # no temporary files left behind


def test_predict_cat_encoding_is_applied(tmp_path, model_dir, features_csv):
    """The same visits written in the 2021 cat encoding give the same predictions with --cat-encoding."""
    from blobhelpers.svm.features import recode_cat

    path, df = features_csv
    df.to_csv(path, index=False)
    old = df.assign(cat=recode_cat(df["cat"], "spacekit", "spacekit-2021"))
    p2 = tmp_path / "old.csv"
    old.to_csv(p2, index=False)
    a = predict_file(path, tmp_path / "a", model_dir)
    b = predict_file(p2, tmp_path / "b", model_dir, cat_encoding="spacekit-2021")
    np.testing.assert_allclose(a["y_proba"], b["y_proba"])
    assert (b["cat"].to_numpy() == old["cat"].to_numpy()).all()  # written back as given


@pytest.mark.parametrize("damage, expect", [
    ("drop_gaia", "missing column"),
    ("text", "non-numeric"),
    ("empty", "no rows"),
    ("blank", "empty file"),
    ("missing_file", "file not found"),
])
def test_predict_bad_input_exit_2(tmp_path, model_dir, features_csv, damage, expect):
    path, df = features_csv
    bad = tmp_path / "bad.csv"
    if damage == "drop_gaia":
        df.drop(columns="gaia").to_csv(bad, index=False)
    elif damage == "text":
        df.astype({"nmatches": object}).assign(nmatches=["many"] + df["nmatches"].tolist()[1:]).to_csv(bad, index=False)
    elif damage == "empty":
        df.iloc[:0].to_csv(bad, index=False)
    elif damage == "blank":
        bad.write_text("")
    r = svm_cli("predict", bad, "--model", model_dir, "-o", tmp_path / "out")
    assert r.returncode == 2, r.stderr
    assert "bad.csv" in r.stderr and expect in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out" / "predictions.csv").exists()


def test_predict_without_a_model_is_a_clear_error(tmp_path, features_csv):
    r = svm_cli("predict", features_csv[0], "--model", tmp_path / "nothing", "-o", tmp_path / "o")
    assert r.returncode == 2 and "no model.json" in r.stderr


def test_prep_cli_lists_skipped_visits(tmp_path, root):
    from blobhelpers.svm.prep import write_visit

    write_visit(tmp_path / "in" / "a", "hst_9454_11_acs_hrc_total_j8ff11", targname="30-DOR", numexp=4, point=18,
                segment=30, gaia=1, rms_ra=1.0, rms_dec=2.0, nmatches=5)
    write_visit(tmp_path / "in" / "b", "hst_12286_38_wfc3_ir_total_ibl738", targname="NOT-IN-TABLE", gaia=3,
                rms_ra=1.0, rms_dec=1.0, nmatches=3)
    r = svm_cli("prep", tmp_path / "in", "-o", tmp_path / "out", "-q", cwd=root)
    assert r.returncode == 0, r.stderr
    assert "1 visit(s) skipped" in r.stderr and "ibl738" in r.stderr and "NOT-IN-TABLE" in r.stderr
    assert len(pd.read_csv(tmp_path / "out" / "svm_data.csv")) == 1
    r = svm_cli("prep", tmp_path / "in" / "b", "-o", tmp_path / "out2", "-q", cwd=root)
    assert r.returncode == 2 and "no visit could be prepared" in r.stderr
    r = svm_cli("prep", tmp_path / "nowhere", "-q")
    assert r.returncode == 2 and "nowhere: not found" in r.stderr


def test_train_cli_then_predict(tmp_path):
    df = toy(60)
    df["cat"] = np.random.default_rng(0).choice([7, 3, 4, 5], len(df))  # current-table codes of common categories
    df.to_csv(tmp_path / "lab.csv", index=False)
    params = tmp_path / "params.yaml"
    params.write_text("base: {seed: 3}\nsvm:\n  cv_splits: 3\n  inner_splits: 2\n  models: {logreg: {}, hgb: {max_iter: 5}}\n")
    r = svm_cli("train", tmp_path / "lab.csv", "-o", tmp_path / "m", "--params", params, "--cat-encoding", "spacekit",
                "--model", "logreg", "-q")
    assert r.returncode == 0, r.stderr
    assert '"best": "logreg"' in r.stdout and '"seed": 3' in r.stdout
    r = svm_cli("predict", tmp_path / "lab.csv", "--model", tmp_path / "m", "-o", tmp_path / "p")
    assert r.returncode == 0, r.stderr
    r = svm_cli("train", tmp_path / "lab.csv", "--params", params, "--model", "forest", "-q")
    assert r.returncode == 2 and "forest" in r.stderr
    df.drop(columns="label").to_csv(tmp_path / "nolab.csv", index=False)
    r = svm_cli("train", tmp_path / "nolab.csv", "--params", params, "-q")
    assert r.returncode == 2 and "label" in r.stderr


def test_load_triplet_resizes_like_spacekit(tmp_path):
    rng = np.random.default_rng(0)
    idx = "hst_1_01_acs_wfc_total_j00001"
    arrays = []
    for sfx in ("", "_source", "_gaia"):
        a = rng.integers(0, 256, (300, 260, 4), dtype=np.uint8)
        Image.fromarray(a, "RGBA").save(tmp_path / f"{idx}{sfx}.png")
        arrays.append(a)
    x = load_triplet(tmp_path, idx)
    assert x.shape == (3, 128, 128, 3) and x.dtype == np.float32
    # nearest-neighbour resize of the RGB channels; frame order plain, _source, _gaia
    expect = np.asarray(Image.fromarray(arrays[1][..., :3]).resize((128, 128), Image.NEAREST), np.float32)
    np.testing.assert_array_equal(x[1], expect)
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / idx).mkdir()
    for f in tmp_path.glob("*.png"):
        f.rename(tmp_path / "1" / idx / f.name)
    found, arr = load_images(tmp_path, [idx, "hst_2_01_acs_wfc_total_j00002"])
    assert found == [idx] and np.array_equal(arr[0], x)
    (tmp_path / "1" / idx / f"{idx}_gaia.png").unlink()
    with pytest.raises(InputError, match="_gaia.png: image missing"):
        load_images(tmp_path, [idx])


def test_bundled_images_match_spacekits_arrays(root):
    d = root / "data" / "svm" / "images"
    found, arr = load_images(d / "svm_images_12.npz", ["hst_8992_03_acs_wfc_total_j8cw03",
                                                      "hst_12109_01_wfc3_uvis_total_ibfn01"])
    with np.load(d / "img_pred_2samples.npz", allow_pickle=False) as z:
        assert [str(i) for i in z["index"]] == found
        np.testing.assert_array_equal(arr, z["images"])


def test_spacekit_released_model_on_two_samples(tmp_path, root):
    """Keras 3 loads the released ensemble in safe mode; a real misalignment scores high, an aligned visit low."""
    d = root / "data" / "svm"
    model = load_spacekit_model(d / "pretrained_spacekit" / "svm_align.zip")
    assert model.count_params() == 1335981
    feats = read_features(d / "images" / "svm_images_12.csv", "spacekit-2021", require_label=True).set_index("index")
    names = ["hst_8992_03_acs_wfc_total_j8cw03", "hst_12109_01_wfc3_uvis_total_ibfn01"]
    found, imgs = load_images(d / "images" / "svm_images_12.npz", names)
    p = spacekit_predict(model, feats.loc[found].reset_index(), imgs)
    assert p[0] < 0.01 and p[1] > 0.98  # measured 5.1e-4 and 0.993
    # through predict: the ensemble decides the visits with images
    csv = tmp_path / "two.csv"
    pd.read_csv(d / "images" / "svm_images_12.csv").set_index("index").loc[names].reset_index().to_csv(csv, index=False)
    preds = predict_file(csv, tmp_path / "o", d / "pretrained_spacekit" / "svm_align.zip",
                         d / "images" / "svm_images_12.npz", cat_encoding="spacekit-2021")
    np.testing.assert_allclose(preds["y_proba"], p, rtol=1e-5)
    assert preds["y_pred"].tolist() == [0, 1] and preds["decided_by"].str.startswith("image:").all()


def test_unsafe_zip_is_refused(tmp_path):
    import zipfile

    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("../../x/model.keras", b"not a model")
    with pytest.raises(InputError, match="unsafe member"):
        load_spacekit_model(z)
    z2 = tmp_path / "empty.zip"
    with zipfile.ZipFile(z2, "w") as zf:
        zf.writestr("readme.txt", b"x")
    with pytest.raises(InputError, match="one .keras file"):
        load_spacekit_model(z2)


def test_svm_is_registered_in_the_main_cli():
    from blobhelpers.cli import build_parser

    choices = next(a for a in build_parser()._actions if a.dest == "command").choices
    assert "svm" in choices
    r = subprocess.run([sys.executable, "-m", "blobhelpers", "svm", "predict", "/nonexistent.csv", "--model", "/x"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "/nonexistent.csv" in r.stderr


def test_classification_report_is_a_function_of_its_inputs():
    """No run date or time: a rerun with the same predictions writes the same clf_report.txt (a DVC output)."""
    import time

    from blobhelpers.svm.predict import classification_report

    preds = pd.DataFrame({"y_proba": [0.1, 0.8, 0.6], "y_pred": [0, 1, 1], "det": [0, 3, 0]})
    a = classification_report(preds, "run.csv", "logreg", 0.5, "current")
    time.sleep(1.1)
    b = classification_report(preds, "run.csv", "logreg", 0.5, "current")
    assert a == b and "run.csv" in a
    assert "date" not in a.lower() and "time:" not in a.lower()
    assert classification_report(preds.assign(y_pred=[0, 0, 1]), "run.csv", "logreg", 0.5, "current") != a
