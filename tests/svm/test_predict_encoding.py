"""predict cannot silently mislead: the `cat` encoding is detected or refused; image-model routing."""

import json

import numpy as np
import pandas as pd
import pytest
from svm_toy import logreg_model_dir, svm_cli, toy

from blobhelpers.core.errors import InputError
from blobhelpers.svm.features import (
    detect_cat_encoding,
    read_features,
    recode_cat,
    resolve_cat_encoding,
)
from blobhelpers.svm.predict import predict_file

UNLABELLED = "data/svm/svm_unlabeled_2021-10-06.csv"




@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return logreg_model_dir(tmp_path_factory.mktemp("model"), 0.3)


@pytest.fixture(scope="module")
def oct2021(root, tmp_path_factory):
    """The first 200 visits of the Oct 2021 run (2021 encoding)."""
    p = tmp_path_factory.mktemp("oct") / "oct.csv"
    pd.read_csv(root / UNLABELLED).head(200).to_csv(p, index=False)
    return p


def test_the_2021_file_is_detected_and_matches_the_explicit_encoding(tmp_path, model_dir, oct2021):
    auto = predict_file(oct2021, tmp_path / "auto", model_dir)
    given = predict_file(oct2021, tmp_path / "given", model_dir, cat_encoding="spacekit-2021")
    np.testing.assert_array_equal(auto["y_proba"], given["y_proba"])
    assert "cat encoding: spacekit-2021 (detected" in (tmp_path / "auto" / "clf_report.txt").read_text()
    # the canonical codes differ from reading the same file as current spacekit: the choice matters
    raw = pd.read_csv(oct2021)["cat"]
    assert (recode_cat(raw, "spacekit-2021", "spacekit") != raw).mean() > 0.5
    # the same visits re-encoded in the current table are detected as such and predicted identically
    cur = pd.read_csv(oct2021)
    cur["cat"] = recode_cat(cur["cat"], "spacekit-2021", "spacekit")
    cur.to_csv(tmp_path / "cur.csv", index=False)
    back = predict_file(tmp_path / "cur.csv", tmp_path / "cur", model_dir)
    np.testing.assert_allclose(back["y_proba"], auto["y_proba"], rtol=0, atol=0)
    assert (back["cat"].to_numpy() == cur["cat"].to_numpy()).all()  # written back as given


def test_a_wrong_cat_encoding_is_refused_not_applied(tmp_path, model_dir, oct2021):
    out = tmp_path / "out"
    r = svm_cli("predict", oct2021, "--model", model_dir, "--cat-encoding", "spacekit", "-o", out)
    assert r.returncode == 2, r.stderr
    assert "contradicts" in r.stderr and "--cat-encoding spacekit-2021" in r.stderr and "Traceback" not in r.stderr
    assert not (out / "predictions.csv").exists()
    # forcing it is possible, and says so
    r = svm_cli("predict", oct2021, "--model", model_dir, "--cat-encoding", "spacekit", "--force-cat-encoding",
                "-o", out)
    assert r.returncode == 0, r.stderr
    assert "forced" in (out / "clf_report.txt").read_text()


def test_ambiguous_files_are_refused_with_auto(tmp_path, model_dir):
    df = toy(12, seed=1)
    df["cat"] = np.resize([4, 5], len(df))  # S/SC in one table, SC/S in the other: equally plausible
    p = tmp_path / "amb.csv"
    df.to_csv(p, index=False)
    r = svm_cli("predict", p, "--model", model_dir, "-o", tmp_path / "o")
    assert r.returncode == 2 and "cannot tell" in r.stderr and "--cat-encoding" in r.stderr
    a = predict_file(p, tmp_path / "a", model_dir, cat_encoding="spacekit")
    b = predict_file(p, tmp_path / "b", model_dir, cat_encoding="spacekit-2021")
    assert not np.allclose(a["y_proba"], b["y_proba"])  # the choice matters, hence the refusal
    # codes that mean the same in both tables (only 0) need no choice
    df.assign(cat=0).to_csv(p, index=False)
    assert len(predict_file(p, tmp_path / "c", model_dir)) == len(df)


def test_evidence_from_columns_and_impossible_codes():
    d = pd.DataFrame({"cat": [1, 6], "category": ["GALAXY;SPIRAL", "UNIDENTIFIED"]})
    assert detect_cat_encoding(d)["encoding"] == "spacekit-2021"
    assert detect_cat_encoding(d.assign(cat=[7, 3]))["encoding"] == "spacekit"
    with pytest.raises(InputError, match="does not reproduce"):
        detect_cat_encoding(d.assign(cat=[2, 2]))
    assert detect_cat_encoding(pd.DataFrame({"cat": [4, 8]}))["encoding"] == "spacekit"
    with pytest.raises(InputError, match="cat code"):
        resolve_cat_encoding(pd.DataFrame({"cat": [4, 8]}), "spacekit-2021")
    assert resolve_cat_encoding(pd.DataFrame({"cat": [4], "cat_encoding": ["spacekit-2021"]}))[0] == "spacekit-2021"


def test_training_reads_are_checked_too(root, tmp_path):
    df = read_features(root / UNLABELLED)
    assert df.attrs["cat_encoding"] == "spacekit-2021"
    with pytest.raises(InputError, match="contradicts"):
        read_features(root / UNLABELLED, "spacekit")


class StubImageModel:
    """Stands in for a stacked image model: records the rows it is asked about."""

    kind, threshold = "stacked", 0.5

    def __init__(self):
        self.calls = []

    def predict_proba(self, X_feat, X_img=None, has_image=None):
        self.calls.append((list(X_feat["index"]), None if X_img is None else len(X_img)))
        return np.full(len(X_feat), 0.99)


def test_rows_without_images_are_decided_by_the_real_tabular_model(tmp_path, model_dir, monkeypatch):
    import blobhelpers.svm.predict as pred

    stub = StubImageModel()
    monkeypatch.setattr(pred, "load_image_model", lambda folder: stub)  # the name predict calls
    image_model = tmp_path / "image_model"
    image_model.mkdir()
    (image_model / "ensemble.json").write_text(json.dumps({"kind": "stacked"}))
    rows = toy(10, seed=5).assign(cat=7)
    csv = tmp_path / "f.csv"
    rows.to_csv(csv, index=False)
    with_img = rows["index"].tolist()[:4]
    npz = tmp_path / "img.npz"
    np.savez(npz, index=np.array(with_img), images=np.zeros((4, 3, 128, 128, 3), np.uint8))
    preds = predict_file(csv, tmp_path / "out", image_model, images=npz, tabular_model=model_dir)
    assert stub.calls == [(with_img, 4)]  # the image model never sees a row without images
    has = preds["index"].isin(with_img).to_numpy()
    assert (preds.loc[has, "decided_by"] == "stacked:image+tabular (simulated)").all()
    assert (preds.loc[~has, "decided_by"] == "tabular:logreg").all()
    from blobhelpers.svm.models import load_model

    real_tab = load_model(model_dir)
    np.testing.assert_allclose(preds.loc[~has, "y_proba"], real_tab.predict_proba(rows[~has]), rtol=0, atol=1e-15)
    assert (preds.loc[~has, "threshold"] == real_tab.threshold).all() and (preds.loc[has, "threshold"] == 0.5).all()
    # no images at all: every row is the tabular model's; no tabular model: a clear error
    stub.calls.clear()
    preds = predict_file(csv, tmp_path / "out2", image_model, tabular_model=model_dir)
    assert stub.calls == [] and (preds["decided_by"] == "tabular:logreg").all()
    with pytest.raises(InputError, match="without images.*no tabular model"):
        predict_file(csv, tmp_path / "out3", image_model, images=npz, tabular_model=tmp_path / "none")
