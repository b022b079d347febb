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
