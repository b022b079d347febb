import json
import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits

from blobhelpers.blob.sim.shapes import BlobShape, render
from blobhelpers.blob.detect.classify import SCHEMA_KEYS, classify_file


def _diff_with_blob(path, x, y, shape=(1024, 1024), depth=0.15, seed=0, sci=False):
    rng = np.random.default_rng(seed)
    img = rng.normal(0, 0.02, shape).astype(np.float32)
    bad = rng.random(shape) < 0.005
    img[bad] += rng.standard_t(2, bad.sum()).astype(np.float32) * 0.1  # heavy tails
    render(img, x, y, BlobShape(6.0, "disc"), depth)
    if sci:
        fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(img, name="SCI")]).writeto(path)
    else:
        fits.PrimaryHDU(img).writeto(path)
    return path


def test_json_schema_and_localisation(trained_tiny, tmp_path):
    _, _, model_path = trained_tiny
    f = _diff_with_blob(tmp_path / "d.fits", 700.0, 300.0)
    res = classify_file(f, model_path, threshold=0.5)
    for k in SCHEMA_KEYS:
        assert k in res
    assert json.loads(json.dumps(res)) == res  # JSON-serialisable
    assert len(res["tiles"]) == 16
    assert {(t["row"], t["col"]) for t in res["tiles"]} == {(r, c) for r in range(4) for c in range(4)}
    for t in res["tiles"]:
        assert t["x0"] == 256 * t["col"] and t["y0"] == 256 * t["row"] and t["size"] == 256
        assert 0 <= t["probability"] <= 1 and t["blob"] == (t["probability"] >= 0.5)
    hit = next(t for t in res["tiles"] if t["row"] == 1 and t["col"] == 2)
    assert hit["blob"] and res["new_blob"]
    best = min(res["candidates"], key=lambda c: np.hypot(c["x"] - 700, c["y"] - 300))
    assert np.hypot(best["x"] - 700, best["y"] - 300) < 4


def test_trimmed_frame_keeps_its_coordinates(trained_tiny, tmp_path):
    _, _, model_path = trained_tiny
    f = _diff_with_blob(tmp_path / "t.fits", 500.0, 610.0, shape=(1014, 1014), sci=True)
    res = classify_file(f, model_path, 0.5)
    assert res["trimmed"] and res["tiles"][0]["x0"] == -5
    best = min(res["candidates"], key=lambda c: np.hypot(c["x"] - 500, c["y"] - 610))
    assert np.hypot(best["x"] - 500, best["y"] - 610) < 4


def run(*args):
    return subprocess.run([sys.executable, "-m", "blobhelpers", *map(str, args)], capture_output=True, text=True)


def test_cli_classify_outputs(trained_tiny, tmp_path):
    _, _, model_path = trained_tiny
    f = _diff_with_blob(tmp_path / "d.fits", 130.0, 900.0)
    out, sal = tmp_path / "out.json", tmp_path / "sal"
    r = run("classify", f, "--model", model_path, "--threshold", 0.5, "--json", out, "--saliency-dir", sal)
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    assert res["file"] == str(f) and res["model"] == str(model_path) and res["threshold"] == 0.5
    alerts = [c for c in res["candidates"] if c["blob"]]
    assert len(list(sal.glob("*.png"))) == len(alerts) >= 1
    assert res["preprocessing"]["representation"] == "residual"  # read from the model's sidecar
    r = run("classify", f, "--model", model_path)  # to stdout
    assert r.returncode == 0 and json.loads(r.stdout)["new_blob"] == res["new_blob"]


@pytest.mark.parametrize("case, match", [("missing_model", "model file not found"), ("corrupt_model", "not a readable"),
                                         ("shape", "not a WFC3/IR frame"), ("nonfits", "not a FITS file"),
                                         ("nan", "every pixel is NaN")])
def test_cli_classify_bad_inputs(trained_tiny, tmp_path, case, match):
    _, _, model_path = trained_tiny
    f = _diff_with_blob(tmp_path / "d.fits", 100.0, 100.0)
    model = model_path
    if case == "missing_model":
        model = tmp_path / "nope.keras"
    elif case == "corrupt_model":
        model = tmp_path / "bad.keras"
        model.write_bytes(b"garbage")
    elif case == "shape":
        f = tmp_path / "small.fits"
        fits.PrimaryHDU(np.zeros((300, 300), "f4")).writeto(f)
    elif case == "nonfits":
        f = tmp_path / "x.fits"
        f.write_text("hello")
    elif case == "nan":
        f = tmp_path / "nan.fits"
        fits.PrimaryHDU(np.full((1024, 1024), np.nan, "f4")).writeto(f)
    out = tmp_path / "o.json"
    r = run("classify", f, "--model", model, "--json", out)
    assert r.returncode == 2
    assert match in r.stderr
    assert not out.exists()


def test_cli_classify_many_files_json_lines(trained_tiny, tmp_path):
    _, _, model_path = trained_tiny
    a = _diff_with_blob(tmp_path / "a.fits", 300.0, 300.0)
    b = _diff_with_blob(tmp_path / "b.fits", 600.0, 700.0, seed=1)
    out = tmp_path / "out.jsonl"
    r = run("classify", tmp_path / "*.fits", "--model", model_path, "--threshold", 0.5, "--json", out)
    assert r.returncode == 0, r.stderr
    docs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [d["file"] for d in docs] == [str(a), str(b)]
    for d, (x, y) in zip(docs, ((300, 300), (600, 700))):
        best = min(d["candidates"], key=lambda c: np.hypot(c["x"] - x, c["y"] - y))
        assert np.hypot(best["x"] - x, best["y"] - y) < 4
