"""SVM image models: spacekit's ensemble architecture, our image CNN and stacked ensemble, grouped comparison."""


import numpy as np
import pandas as pd
import pytest

from blobhelpers.core.errors import InputError
from blobhelpers.svm.ensemble import (SPACEKIT_PARAMS, build_cnn2d, build_spacekit_ensemble, check_images,
                                      compare_models, fit_image_model, image_channels, load_image_model, metrics,
                                      predict_proba, side_by_side)
from blobhelpers.svm.features import read_features, visit_of

RELEASED = "data/svm/pretrained_spacekit/svm_align.zip"
IMAGES_12 = "data/svm/images/svm_images_12"
FAST = {"epochs": 6, "width": 8}


def _render(rng, misaligned: bool) -> np.ndarray:
    """(3, 128, 128, 3) uint8: plain sources; catalog circles (red); Gaia circles (green).

    Misaligned visits have doubled sources (two exposures offset by ~5 px) and Gaia circles
    ~6 px off the sources: the gross failure a thumbnail can show.
    """
    yy, xx = np.mgrid[:128, :128].astype(np.float32)
    k = 8
    pos = rng.uniform(12, 116, (k, 2)).astype(np.float32)
    amp = rng.uniform(120, 220, k).astype(np.float32)[:, None, None]

    def blobs(p, a):
        return (a * np.exp(-((yy - p[:, 0, None, None]) ** 2 + (xx - p[:, 1, None, None]) ** 2) / 4.5)).sum(0)

    def rings(p, r=5.0):
        d = np.sqrt((yy - p[:, 0, None, None]) ** 2 + (xx - p[:, 1, None, None]) ** 2)
        return (np.abs(d - r) < 0.8).any(0)

    plain = blobs(pos, amp)
    gaia = pos.copy()
    if misaligned:
        ang = rng.uniform(0, 2 * np.pi)
        plain = 0.6 * plain + 0.6 * blobs(pos + 5 * np.array([np.cos(ang), np.sin(ang)], np.float32), amp)
        ang = rng.uniform(0, 2 * np.pi)
        gaia = pos + 6 * np.array([np.cos(ang), np.sin(ang)], np.float32)
    plain = np.clip(plain + rng.normal(20, 6, plain.shape), 0, 255)
    frames = np.repeat(plain[None, :, :, None], 3, axis=0).repeat(3, axis=3)
    frames[1][rings(pos)] = (255, 0, 0)
    frames[2][rings(gaia)] = (0, 255, 0)
    return frames.astype(np.uint8)


def synth(n_visits: int = 40, seed: int = 0, variants: bool = True):
    """Feature rows (weakly informative per class) + images (class-dependent pattern); some visits have a synthetic variant."""
    rng = np.random.default_rng(seed)
    rows, imgs = [], []
    for v in range(n_visits):
        bad = v % 2 == 1
        base = f"hst_{2000 + v}_{v % 90:02d}_acs_wfc_total_j{v:05d}"
        rms = rng.uniform(3, 25, 2) * (1.6 if bad else 1.0)
        rows.append(dict(numexp=int(rng.integers(1, 10)), rms_ra=rms[0], rms_dec=rms[1],
                         nmatches=int(rng.integers(2, 40 if bad else 80)), point=int(rng.integers(10, 900)),
                         segment=int(rng.integers(10, 900)), gaia=float(rng.integers(1, 100)),
                         det=int(rng.integers(0, 5)), wcs=0, cat=int(rng.integers(0, 8)), label=int(bad), index=base))
        imgs.append(_render(rng, bad))
        if variants and v % 5 == 0:  # a synthetic misaligned variant of the visit
            rows.append(dict(rows[-1], rms_ra=rng.uniform(20, 60), rms_dec=rng.uniform(20, 60), label=1,
                             index=f"{base}_f814w_all_stoc"))
            imgs.append(_render(rng, True))
    return pd.DataFrame(rows), np.stack(imgs)


@pytest.fixture(scope="module")
def data():
    return synth(40, seed=0)


@pytest.fixture(scope="module")
def stacked(data):
    df, img = data
    return fit_image_model("stacked", df, img, df["label"], seed=1, epochs=4,
                           params={"width": 8, "inner_splits": 2})


@pytest.fixture(scope="module")
def real12(root):
    df = read_features(root / f"{IMAGES_12}.csv", "spacekit-2021")
    with np.load(root / f"{IMAGES_12}.npz", allow_pickle=False) as z:
        idx, img = [str(i) for i in z["index"]], z["images"].astype(np.float32)
    assert idx == df["index"].tolist()
    return df, img


def test_spacekit_ensemble_architecture(root):
    m = build_spacekit_ensemble(compile=False)
    assert [i.name for i in m.inputs] == ["svm_inputs", "img3d_inputs"]
    assert tuple(m.inputs[0].shape[1:]) == (10,) and tuple(m.inputs[1].shape[1:]) == (3, 128, 128, 3)
    assert tuple(m.outputs[0].shape[1:]) == (1,)
    assert m.count_params() == SPACEKIT_PARAMS == 1_335_981
    from blobhelpers.svm.images import load_spacekit_model

    released = load_spacekit_model(root / RELEASED)
    assert [l.name for l in m.layers if l.weights] == [l.name for l in released.layers if l.weights]
    assert [w.shape for w in m.get_weights()] == [w.shape for w in released.get_weights()]
    assert build_cnn2d().count_params() < 100_000


def test_spacekit_ensemble_trains_with_its_recipe(tmp_path, data):
    df, img = data
    m = fit_image_model("spacekit", df.head(8), img[:8], df["label"].head(8), seed=0, epochs=1)
    assert m.net.count_params() == SPACEKIT_PARAMS
    assert m.net.loss == "binary_crossentropy" and m.params["batch_size"] == 32
    assert m.net.optimizer.get_config()["learning_rate"] == pytest.approx(1e-4)
    assert m.tx is not None and len(m.tx["lambdas"]) == 7  # feature transform fitted on the 8 training rows
    p = m.predict_proba(df.head(8), img[:8])
    assert ((p >= 0) & (p <= 1)).all()
    back = load_image_model(m.save(tmp_path / "sk"))
    np.testing.assert_array_equal(back.predict_proba(df.head(8), img[:8]), p)


def test_cnn_learns_a_class_dependent_pattern():
    df, img = synth(48, seed=3, variants=False)
    test_df, test_img = synth(24, seed=9, variants=False)
    m = fit_image_model("cnn2d", df, img, df["label"], seed=0, params=FAST)
    p = predict_proba(m, test_df, test_img)
    assert p.shape == (24,) and ((p >= 0) & (p <= 1)).all()
    assert metrics(test_df["label"], p)["roc_auc"] > 0.8


def test_images_are_optional_for_the_stacked_model(data, stacked):
    df, img = data
    p_tab = stacked.tabular.predict_proba(df)
    no_img = predict_proba(stacked, df)
    np.testing.assert_array_equal(no_img, p_tab)
    with_img = predict_proba(stacked, df, img)
    assert with_img.shape == (len(df),) and np.isfinite(with_img).all() and ((with_img >= 0) & (with_img <= 1)).all()
    mask = np.arange(len(df)) % 2 == 0
    mixed = predict_proba(stacked, df, img, has_image=mask)
    np.testing.assert_allclose(mixed[mask], with_img[mask], rtol=1e-6)
    np.testing.assert_array_equal(mixed[~mask], p_tab[~mask])
    assert len(stacked.stack["coef"]) == 2
    with pytest.raises(InputError, match="needs images"):
        predict_proba(fit_image_model("cnn2d", df, img, df["label"], seed=0, epochs=1, params={"width": 4}), df)


def test_save_load_roundtrip(tmp_path, data, stacked):
    df, img = data
    folder = stacked.save(tmp_path / "ens")
    assert (folder / "image.keras").exists() and (folder / "tabular" / "model.json").exists()
    assert not list(folder.rglob("*.pkl")) and not list(folder.glob(".*"))
    back = load_image_model(folder)
    np.testing.assert_array_equal(back.predict_proba(df, img), stacked.predict_proba(df, img))
    np.testing.assert_array_equal(back.predict_proba(df), stacked.predict_proba(df))
    with pytest.raises(InputError, match="no ensemble.json"):
        load_image_model(tmp_path)


def test_same_seed_same_result(data):
    df, img = data
    a = fit_image_model("cnn2d", df, img, df["label"], seed=5, epochs=1, params={"width": 4})
    b = fit_image_model("cnn2d", df, img, df["label"], seed=5, epochs=1, params={"width": 4})
    np.testing.assert_array_equal(a.predict_proba(df, img), b.predict_proba(df, img))


def test_compare_models_never_splits_a_visit(data):
    df, img = data
    res = compare_models(df, img, models=("tabular", "cnn2d"), n_splits=3, seed=0, epochs=2,
                         params={"cnn2d": {"width": 4}})
    visits = visit_of(df["index"]).to_numpy()
    covered = np.zeros(len(df), int)
    for tr, te in res["folds"]:
        assert not set(visits[tr]) & set(visits[te])
        covered[te] += 1
    assert (covered == 1).all()
    for name in ("tabular", "cnn2d"):
        r = res["models"][name]
        assert np.isfinite(r["proba"]).all() and (r["fold"] >= 0).all()
        m = r["metrics"]
        from sklearn.metrics import average_precision_score, roc_auc_score

        assert m["roc_auc"] == pytest.approx(roc_auc_score(df["label"], r["proba"]))
        assert m["pr_auc"] == pytest.approx(average_precision_score(df["label"], r["proba"]))
        assert m["recall_at_fa"]["lo"] <= m["recall_at_fa"]["rate"] <= m["recall_at_fa"]["hi"]
        assert m["recall_synthetic_at_fa"]["n"] == int((df["index"].str.count("_") > 6).sum())
    again = compare_models(df, img, models=("tabular",), n_splits=3, seed=0)
    np.testing.assert_array_equal(again["models"]["tabular"]["proba"], res["models"]["tabular"]["proba"])


def test_worker_processes_give_the_serial_comparison_and_stack_bit_for_bit(data):
    """n_jobs changes where the (model, fold) fits and a stack's inner folds run, not one bit of the results;
    a stacked model that takes the cnn2d model's network equals one that trains its own."""
    df, img = data
    kw = dict(models=("tabular", "cnn2d", "stacked"), n_splits=2, seed=4, epochs=2,
              params={"cnn2d": {"width": 4}, "stacked": {"width": 4, "inner_splits": 2}})
    serial, pool = compare_models(df, img, n_jobs=1, **kw), compare_models(df, img, n_jobs=2, **kw)
    for name in kw["models"]:
        assert np.array_equal(serial["models"][name]["proba"], pool["models"][name]["proba"]), name
        assert np.array_equal(serial["models"][name]["fold"], pool["models"][name]["fold"]), name
    alone = compare_models(df, img, **{**kw, "models": ("stacked",)}, n_jobs=1)  # trains its own network
    assert np.array_equal(alone["models"]["stacked"]["proba"], serial["models"]["stacked"]["proba"])
    # per-model epochs (the networks differ: nothing shared); each column is the one its own epochs give
    mixed = compare_models(df, img, **{**kw, "models": ("cnn2d", "stacked"), "epochs": {"cnn2d": 1, "stacked": 2}})
    assert np.array_equal(mixed["models"]["stacked"]["proba"], serial["models"]["stacked"]["proba"])
    assert not np.array_equal(mixed["models"]["cnn2d"]["proba"], serial["models"]["cnn2d"]["proba"])
    with pytest.raises(InputError, match="epochs"):
        compare_models(df, img, models=("cnn2d", "stacked"), epochs={"cnn2d": 1})
    with pytest.raises(InputError, match="n_jobs"):
        compare_models(df, img, models=("tabular",), n_jobs=0)
    fits = [fit_image_model("stacked", df, img, df["label"], seed=2, epochs=1, params={"width": 4, "inner_splits": 2},
                            n_jobs=n) for n in (1, 2)]
    assert fits[0].stack == fits[1].stack
    np.testing.assert_array_equal(fits[0].predict_proba(df, img), fits[1].predict_proba(df, img))
    from blobhelpers.svm.ensemble import ImageModel

    with pytest.raises(InputError, match="trains its own network"):
        ImageModel("cnn2d", {"width": 4})._fit(df, img, df["label"], net=fits[0].net)


def test_bad_inputs(data):
    df, img = data
    y = df["label"]
    with pytest.raises(InputError, match="shape"):
        fit_image_model("cnn2d", df, img[:, :2], y)
    with pytest.raises(InputError, match="shape"):
        check_images(np.zeros((2, 128, 128, 9)))
    with pytest.raises(InputError, match="image stacks for"):
        fit_image_model("cnn2d", df, img[:-1], y)
    with pytest.raises(InputError, match=r"missing column\(s\) \['rms_ra'\]"):
        fit_image_model("cnn2d", df.drop(columns="rms_ra"), img, y)
    with pytest.raises(InputError, match="NaN"):
        fit_image_model("cnn2d", df.assign(rms_dec=np.where(np.arange(len(df)) == 3, np.nan, df["rms_dec"])), img, y)
    bad = img.astype(np.float32)
    bad[0, 0, 0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        fit_image_model("cnn2d", df, bad, y)
    with pytest.raises(InputError, match="0-255"):
        check_images(img.astype(np.float32) * 2)
    with pytest.raises(InputError, match="unknown image model kind"):
        fit_image_model("resnet", df, img, y)
    with pytest.raises(InputError, match="unknown parameter"):
        fit_image_model("cnn2d", df, img, y, params={"widht": 3})
    with pytest.raises(InputError, match="grouped folds"):
        compare_models(df.head(4), img[:4], n_splits=5)


def test_image_channels_are_fixed_scaling():
    x = np.full((1, 3, 128, 128, 3), 51.0, np.float32)
    x[0, 1] = 102.0
    c = image_channels(x)
    np.testing.assert_allclose(c[0, 0, 0], [0.2] * 3 + [0.2] * 3 + [0.0] * 3, atol=1e-6)


def test_released_model_on_the_12_real_samples(root, real12):
    df, img = real12
    out = side_by_side(df.assign(cat=0.0), img, spacekit_model=root / RELEASED)  # any valid cat code
    p = out["p_spacekit_released"].to_numpy()
    assert len(p) == 12 and np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()
    assert out["index"].tolist() == df["index"].tolist()
    # our build with the released weights gives the released model's probabilities
    from blobhelpers.svm.images import load_spacekit_model, spacekit_predict

    released = load_spacekit_model(root / RELEASED)
    ours = build_spacekit_ensemble(compile=False)
    ours.set_weights(released.get_weights())
    np.testing.assert_allclose(spacekit_predict(ours, df, img), spacekit_predict(released, df, img), atol=1e-6)


def test_svm_predict_with_the_stacked_model_images_optional(tmp_path, data, stacked):
    from blobhelpers.svm.predict import predict_file

    df, img = data
    rows = df.head(10).reset_index(drop=True)
    folder = stacked.save(tmp_path / "image_model")
    csv = tmp_path / "features.csv"
    rows.to_csv(csv, index=False)
    npz = tmp_path / "images.npz"
    np.savez(npz, index=np.array(rows["index"][:6], dtype=str), images=img[:6].astype(np.uint8))
    # the real tabular model (here one fitted on other rows) decides the visits without images
    from blobhelpers.svm.features import sample_kind
    from blobhelpers.svm.models import build_model

    other = df.iloc[10:]
    tab = build_model("logreg", {}, seed=0).fit(other, other["label"], sample_kind(other))
    tab.threshold = 0.4
    tab_dir = tab.save(tmp_path / "tabular")
    preds = predict_file(csv, tmp_path / "out", model=folder, images=npz, cat_encoding="spacekit",
                         force_cat_encoding=True, tabular_model=tab_dir)
    assert (tmp_path / "out" / "predictions.csv").is_file() and (tmp_path / "out" / "compromised.txt").is_file()
    assert list(preds["decided_by"]) == ["stacked:image+tabular (simulated)"] * 6 + ["tabular:logreg"] * 4
    np.testing.assert_allclose(preds["y_proba"][6:], tab.predict_proba(rows.iloc[6:]), rtol=1e-12)
    assert not np.allclose(preds["y_proba"][6:], stacked.tabular.predict_proba(rows.iloc[6:]))
    np.testing.assert_allclose(preds["y_proba"][:6], predict_proba(stacked, rows.iloc[:6], img[:6].astype(np.uint8)
                                                                   .astype(np.float32)), rtol=1e-5)
    thr = np.where(np.arange(10) < 6, stacked.threshold, 0.4)
    assert (preds["y_pred"] == (preds["y_proba"] >= thr)).all()
    # without --images the real tabular model decides every visit
    preds = predict_file(csv, tmp_path / "out2", model=folder, cat_encoding="spacekit", force_cat_encoding=True,
                         tabular_model=tab_dir)
    np.testing.assert_allclose(preds["y_proba"], tab.predict_proba(rows), rtol=1e-12)


def test_image_model_saves_identical_bytes(tmp_path):
    """Saving the same fitted model twice gives the same image.keras bytes (no save date), so a
    rerun with identical weights does not change the DVC output."""
    import time

    df, img = synth(24, seed=5, variants=False)
    m = fit_image_model("cnn2d", df, img, df["label"], seed=0, epochs=1, params={"width": 4})
    a = (m.save(tmp_path / "a") / "image.keras").read_bytes()
    time.sleep(1.1)
    b = (m.save(tmp_path / "b") / "image.keras").read_bytes()
    assert a == b


_SAVE_TWICE = """
import sys
from pathlib import Path

sys.path[:0] = [sys.argv[2], str(Path(sys.argv[2]).parent)]
from svm_toy import toy

from blobhelpers.core.deeplearning import set_determinism
from blobhelpers.svm.ensemble import ImageModel, build_cnn2d
from blobhelpers.svm.features import sample_kind
from blobhelpers.svm.models import build_model

out = Path(sys.argv[1])
if sys.argv[3] == "busy":  # a process that built and compiled other models first (Keras numbers unnamed objects)
    build_cnn2d(width=2), build_model("spacekit_mlp", {}, seed=0).build()
set_determinism(3)
m = ImageModel("cnn2d", {"width": 4}, seed=3)
m.net = build_cnn2d(width=4)
m.save(out / "image_model")
df = toy(20, seed=1)
build_model("spacekit_mlp", {"epochs": 1}, seed=2).fit(df, df["label"], sample_kind(df)).save(out / "mlp")
"""


def test_saved_keras_files_are_byte_identical_across_processes(tmp_path):
    """The same weights saved by two processes (different clocks, memory addresses and histories) give the same
    bytes: stage 14's image_model/ and a spacekit_mlp model folder, every file."""
    import subprocess
    import sys
    from pathlib import Path

    tests = Path(__file__).resolve().parent
    trees = []
    for k, history in enumerate(("fresh", "busy")):
        out = tmp_path / f"run{k}"
        r = subprocess.run([sys.executable, "-c", _SAVE_TWICE, str(out), str(tests), history], capture_output=True,
                           text=True, timeout=600, check=False)
        assert r.returncode == 0, r.stderr[-3000:]
        trees.append({p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()})
    assert {"image_model/image.keras", "image_model/ensemble.json", "mlp/model.keras"} <= set(trees[0])
    assert trees[0].keys() == trees[1].keys()
    for name in trees[0]:
        assert trees[0][name] == trees[1][name], f"{name} differs between two saves of the same weights"
    back = load_image_model(tmp_path / "run0" / "image_model")
    assert back.net.count_params() == build_cnn2d(width=4).count_params()


_FIT_ELSEWHERE = """
import os, sys
from pathlib import Path

import numpy as np

sys.path[:0] = [sys.argv[2], str(Path(sys.argv[2]).parent)]
from test_ensemble import synth

from blobhelpers.svm.ensemble import compare_models, fit_image_model

if __name__ == "__main__":
    df, img = synth(16, seed=6, variants=False)
    fit_image_model("cnn2d", df, img, df["label"], seed=1, epochs=1, params={"width": 2})  # an earlier fit
    m = fit_image_model("cnn2d", df, img, df["label"], seed=0, epochs=2, params={"width": 4})
    m.save(Path(sys.argv[1]) / "image_model")
    res = compare_models(df, img, models=("tabular", "cnn2d"), n_splits=2, seed=0, epochs=1,
                         params={"cnn2d": {"width": 4}}, n_jobs=1)
    np.savez(Path(sys.argv[1]) / "cv.npz", **{k: v["proba"] for k, v in res["models"].items()})
"""


def test_image_fits_do_not_depend_on_the_cpu_threads_or_history_of_the_caller(tmp_path):
    """Stage 14's numbers moved between two machines of the same kind: TensorFlow's CPU results depend on its
    thread-pool size and on oneDNN's / OpenBLAS' kernels for the CPU (AVX2 vs AVX-512), read when TensorFlow
    starts. Image-model fits and the comparison's fits run in new processes with those fixed, so a caller with
    other threads, another instruction set and an earlier fit behind it gets the same bytes as this process."""
    import subprocess
    import sys
    from pathlib import Path

    from blobhelpers.core.deeplearning import reproducible_tf_env

    df, img = synth(16, seed=6, variants=False)
    m = fit_image_model("cnn2d", df, img, df["label"], seed=0, epochs=2, params={"width": 4})
    assert m.info["training_env"] == reproducible_tf_env()
    here = (m.save(tmp_path / "here" / "image_model") / "image.keras").read_bytes()
    res = compare_models(df, img, models=("tabular", "cnn2d"), n_splits=2, seed=0, epochs=1,
                         params={"cnn2d": {"width": 4}}, n_jobs=2)
    import os

    # what another machine's defaults look like from TensorFlow's side: other pool sizes, an AVX2-only CPU
    other = {**os.environ, "TF_NUM_INTRAOP_THREADS": "3", "TF_NUM_INTEROP_THREADS": "1", "ONEDNN_MAX_CPU_ISA": "AVX2",
             "OPENBLAS_CORETYPE": "Prescott", "OMP_NUM_THREADS": "2"}
    r = subprocess.run([sys.executable, "-c", _FIT_ELSEWHERE, str(tmp_path / "there"), str(Path(__file__).parent)],
                       capture_output=True, text=True, timeout=600, env=other, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "there" / "image_model" / "image.keras").read_bytes() == here
    with np.load(tmp_path / "there" / "cv.npz") as cv:
        for name in ("tabular", "cnn2d"):
            assert np.array_equal(cv[name], res["models"][name]["proba"]), name
