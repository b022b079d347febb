import json
import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits

from blobhelpers.cli import main


def run(*args):
    return subprocess.run([sys.executable, "-m", "blobhelpers", *map(str, args)], capture_output=True, text=True)


def test_simulate_then_difference(tmp_path):
    out = tmp_path / "camp"
    r = run("simulate", "-o", out, "--n-frames", 4, "--seed", 3, "-q")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["frames"] == 4 and len(list((out / "frames").glob("*.fits"))) == 4
    d = tmp_path / "diff.fits"
    r = run("difference", out / "frames", "-o", d, "--history", 3)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["history"] == 3 and res["registered"] is True
    with fits.open(d) as h:
        assert h[0].data.shape == (1024, 1024) and h[0].header["DIFFTYPE"] == "MEDIAN-MINUS-CURRENT"
        assert h[0].header["NHISTORY"] == 3


def test_difference_on_trimmed_flt_frames(tmp_path):
    rng = np.random.default_rng(0)
    for k in range(4):
        img = (1000 + rng.normal(0, 20, (1014, 1014))).astype("f4")
        if k == 3:
            img[400:412, 600:612] *= 0.85  # a new blob in the newest frame
        hdul = fits.HDUList([fits.PrimaryHDU(header=fits.Header({"DATE-OBS": f"2023-02-0{k + 1}"})),
                             fits.ImageHDU(img, name="SCI")])
        hdul.writeto(tmp_path / f"flt_{3 - k}.fits")  # names in reverse date order
    d = tmp_path / "d.fits"
    assert main(["difference", str(tmp_path / "flt_*.fits"), "-o", str(d), "--no-register"]) == 0
    data = fits.getdata(d)
    # trimmed pixel (y, x) is at (y + 5, x + 5) of the full frame
    assert np.nanmean(data[405:417, 605:617]) == pytest.approx(0.15, abs=0.03)
    assert abs(np.nanmedian(data[100:300, 100:300])) < 0.005


def test_unknown_profile_and_bad_params(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text("base: [unclosed")
    r = run("prepare", "--params", p)
    assert r.returncode == 2 and "params.yaml" in r.stderr and "YAML" in r.stderr
    r = run("profile", "no_such_profile", "--params", p)
    assert r.returncode == 2 and "no_such_profile" in r.stderr


def test_profile_merges_overrides(tmp_path, root):
    params = tmp_path / "params.yaml"
    params.write_text((root / "params.yaml").read_text())
    assert main(["profile", "tiny", "--params", str(params)]) == 0
    import yaml

    merged = yaml.safe_load(params.read_text())
    assert merged["simulate"]["n_frames"] == 14 and merged["dataset"]["n_train"] == 48
    assert merged["simulate"]["sky_e"] == 2500.0  # untouched keys kept


def test_products_flags():
    """monitor saves its products by default (--no-save-products turns it off); classify only on request."""
    from blobhelpers.cli import build_parser

    p = build_parser()
    assert p.parse_args(["monitor", "frames/"]).save_products is True
    assert p.parse_args(["monitor", "frames/", "--no-save-products"]).save_products is False
    a = p.parse_args(["classify", "d.fits"])
    assert a.save_products is False and a.products_dir is None
    a = p.parse_args(["classify", "d.fits", "--save-products", "--products-dir", "out"])
    assert a.save_products is True and str(a.products_dir) == "out"
    a = p.parse_args(["review", "monitor_out/monitor_log.jsonl", "--frame", "f.fits", "--out", "v.png"])
    assert (str(a.source), a.frame, str(a.out), a.no_window) == ("monitor_out/monitor_log.jsonl", "f.fits", "v.png",
                                                                  False)
    r = run("review", "no_such_log.jsonl")
    assert r.returncode == 2 and "no_such_log.jsonl" in r.stderr and "does not exist" in r.stderr


_STARTUP_NOISE = ("absl::InitializeLog", "oneDNN custom operations", "cpu_feature_guard", "port.cc:")


def _quiet_env(**extra):
    """The environment of a user who set nothing for TensorFlow (the test session sets TF_CPP_MIN_LOG_LEVEL)."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    return {**env, **extra}


def test_commands_print_no_tensorflow_startup_lines(tmp_path):
    """TensorFlow 2.21 logs "oneDNN custom operations are on ..." and absl's "All log messages before
    absl::InitializeLog() ..." while it loads, whatever TF_CPP_MIN_LOG_LEVEL says: no command shows them
    (``blobhelpers``, ``python -m blobhelpers``, ``python -m blobhelpers.svm``), and an error still shows."""
    from blobhelpers.blob.learn.cnn import build_model
    from blobhelpers.blob.learn.training import save_model
    from blobhelpers.svm.features import sample_kind
    from blobhelpers.svm.models import build_model as build_svm_model
    from svm_toy import toy

    model = save_model(build_model("tiny", seed=0), tmp_path / "tiny.keras", "tiny",
                       preprocessing={"representation": "residual"})
    diff = tmp_path / "d.fits"
    fits.PrimaryHDU(np.random.default_rng(0).normal(0, 0.02, (1024, 1024)).astype("f4")).writeto(diff)
    df = toy(20, seed=1)
    mlp = build_svm_model("spacekit_mlp", {"epochs": 1}, seed=0).fit(df, df["label"], sample_kind(df))
    mlp_dir = mlp.save(tmp_path / "mlp")
    df.drop(columns="label").to_csv(tmp_path / "features.csv", index=False)
    env = _quiet_env()
    runs = [[sys.executable, "-m", "blobhelpers", "--help"],
            [sys.executable, "-m", "blobhelpers", "classify", str(diff), "--model", str(model), "--threshold", "0.5"],
            [sys.executable, "-m", "blobhelpers.svm", "predict", str(tmp_path / "features.csv"), "--model",
             str(mlp_dir), "-o", str(tmp_path / "pred"), "--cat-encoding", "spacekit", "--force-cat-encoding"]]
    for cmd in runs:
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, check=False)
        assert r.returncode == 0, (cmd, r.stderr[-2000:])
        assert not [line for line in r.stderr.splitlines() if any(n in line for n in _STARTUP_NOISE)], (cmd, r.stderr)
    out = subprocess.run(runs[1], capture_output=True, text=True, env=env, check=True).stdout
    assert json.loads(out)["file"] == str(diff)
    # the filter is TensorFlow's own level: TF_CPP_MIN_LOG_LEVEL=0 shows the start-up lines again
    r = subprocess.run(runs[1], capture_output=True, text=True, env=_quiet_env(TF_CPP_MIN_LOG_LEVEL="0"), check=False)
    assert r.returncode == 0 and "oneDNN custom operations" in r.stderr
    # errors still reach stderr: a model file that is not a Keras model
    bad = tmp_path / "bad.keras"
    bad.write_text("not a model")
    r = subprocess.run([*runs[1][:5], "--model", str(bad)], capture_output=True, text=True, env=env, check=False)
    assert r.returncode == 2 and "bad.keras" in r.stderr and "error" in r.stderr


def test_startup_filter_drops_only_records_below_the_level():
    from blobhelpers.core.deeplearning import _startup_noise

    info = b"I0000 00:00:1796485300.401411    7477 port.cc:153] oneDNN custom operations are on. You may see ..."
    warn = b"W0000 00:00:1796485300.401411    7477 some_op.cc:12] something odd"
    err = b"E0000 00:00:1796485302.488406    7477 node_def_util.cc:682] NodeDef mentions attribute ..."
    pre = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
    assert [_startup_noise(x, 2) for x in (info, warn, err, pre)] == [True, True, False, True]
    assert [_startup_noise(x, 1) for x in (info, warn, err, pre)] == [True, False, False, True]
    assert not any(_startup_noise(x, 0) for x in (info, warn, err, pre))
    for line in (b"Traceback (most recent call last):", b"ImportError: libfoo.so: cannot open shared object file",
                 b"UserWarning: I0000 is not a log record", b""):
        assert not _startup_noise(line, 3)
