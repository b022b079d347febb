"""Tests of the independent cross-simulator (blobhelpers/blob/crosssim/simulator.py) against its spec.

The module is loaded from its file, so that these tests neither import nor depend on the
rest of the package (the simulator must stay independent of the project's own code).
Every measurement below is made with plain numpy from the written arrays and the spec's
definitions, not with the simulator's internals.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

_PATH = Path(__file__).resolve().parents[3] / "blobhelpers" / "blob" / "crosssim" / "simulator.py"


def _load():
    name = "_crosssim_under_test"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, _PATH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


cs = _load()

QUIET = dict(n_existing=0, misreg_px=0.0, history_jitter_px=0.0, gradient_sigma=0.0, offset_sigma=0.0,
             unstable_fraction=0.0, cr_per_frame=0, persistence=0.0, nan_fraction=0.0, row_noise=0.0,
             hot_fraction=0.0)


def quiet(**kw):
    return cs.Nuisance(**{**QUIET, **kw})


def light(img: np.ndarray) -> np.ndarray:
    lo = 0 if img.shape[0] == 1014 else 5
    return img[lo:lo + 1014, lo:lo + 1014]


def robust_std(a: np.ndarray) -> float:
    a = a[np.isfinite(a)]
    return float(1.4826 * np.median(np.abs(a - np.median(a))))


def blob_free(img: np.ndarray, truth: dict, factor: float = 2.5) -> np.ndarray:
    """Pixels of `img` farther than factor*radius (+shift) from every truth blob, finite."""
    yy, xx = np.indices(img.shape)
    ok = np.isfinite(img)
    lo, hi = truth["light_area"]
    ok &= (yy >= lo) & (yy <= hi) & (xx >= lo) & (xx <= hi)
    for b in truth["existing_blobs"] + truth["new_blobs"]:
        r = factor * b["radius"] + 2
        y0, y1 = int(max(0, b["y"] - r)), int(min(img.shape[0], b["y"] + r + 1))
        x0, x1 = int(max(0, b["x"] - r)), int(min(img.shape[1], b["x"] + r + 1))
        ok[y0:y1, x0:x1] = False
    return img[ok]


def centre_mean(img: np.ndarray, x: float, y: float, r: float = 1.5) -> float:
    yy, xx = np.indices(img.shape)
    sel = (xx - x) ** 2 + (yy - y) ** 2 <= r * r
    return float(np.nanmean(img[sel]))


def centroid(img: np.ndarray, x: float, y: float, radius: float, thresh: float) -> tuple[float, float]:
    h = int(2 * radius + 4)
    y0, x0 = int(round(y)) - h, int(round(x)) - h
    cut = img[y0:y0 + 2 * h + 1, x0:x0 + 2 * h + 1]
    w = np.where(np.isfinite(cut) & (cut > thresh), cut, 0.0)
    yy, xx = np.indices(cut.shape)
    return float((w * xx).sum() / w.sum() + x0), float((w * yy).sum() / w.sum() + y0)


def local_norm(frame: np.ndarray, x: float, y: float, r_in: float = 25, r_out: float = 45) -> np.ndarray:
    """Frame / median of an annulus around (x, y) (a local 'own illumination')."""
    yy, xx = np.indices(frame.shape)
    d2 = (xx - x) ** 2 + (yy - y) ** 2
    return frame / np.nanmedian(frame[(d2 >= r_in ** 2) & (d2 <= r_out ** 2)])


def box_norm_difference(frames, y0, y1, x0, x1):
    """median(history/box median) - latest/box median over a box (smooth illumination ~ const)."""
    cut = [f[y0:y1, x0:x1] / np.nanmedian(f[y0:y1, x0:x1]) for f in frames]
    return np.median(np.stack(cut[:-1]), axis=0) - cut[-1]


def superg(dx, dy, radius, m):
    return np.exp(-math.log(2) * ((dx * dx + dy * dy) / radius ** 2) ** m)


# ------------------------------------------------------------------------------------------
# difference images
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size,x,y", [(1014, 300.3, 411.7), (1024, 700.8, 120.2)])
def test_difference_new_blob_depth_and_position(size, x, y):
    nu = cs.Nuisance(frame_size=size, n_existing=0, nan_fraction=0.0)
    b = cs.BlobSpec(x=x, y=y, radius=6.0, snr=20.0, kind="disc", sharpness=3.0)
    img, truth = cs.make_difference(np.random.default_rng(11), nu, [b])
    assert img.shape == (size, size) and img.dtype == np.float32
    nb = truth["new_blobs"][0]
    assert nb["x"] == pytest.approx(x) and nb["y"] == pytest.approx(y)
    depth = nb["depth"]
    assert depth == pytest.approx(20 * truth["noise_frac"], rel=1e-4)
    measured = centre_mean(img, x, y)
    assert measured == pytest.approx(depth, rel=0.10)
    cx, cy = centroid(img, x, y, 6.0, 0.3 * depth)
    assert abs(cx - x) < 0.5 and abs(cy - y) < 0.5
    # positive blob: the peak of the 5x5-smoothed image is the blob (heavy-tailed pixels are single)
    from scipy import ndimage
    sm = ndimage.uniform_filter(np.nan_to_num(img.astype(float)), 5)
    py, px = np.unravel_index(np.argmax(sm), sm.shape)
    assert abs(px - x) < 3 and abs(py - y) < 3


def test_difference_snr_matches_measured_noise():
    for i, nu in enumerate([cs.Nuisance(), cs.Nuisance.named("row_noise", 0.5),
                            cs.Nuisance.named("unstable", 0.01), cs.Nuisance(sky_e=1000.0, frame_size=1024)]):
        rng = np.random.default_rng(100 + i)
        b = cs.sample_new_blob(rng, snr=5.0, nuisance=nu)
        assert b.depth == pytest.approx(5.0 * cs.expected_noise_frac(nu), rel=1e-6)
        img, truth = cs.make_difference(rng, nu, [b])
        nf = truth["noise_frac"]
        measured = robust_std(blob_free(img, truth))
        assert measured == pytest.approx(nf, rel=0.12), (i, measured, nf)
        depth = truth["new_blobs"][0]["depth"]
        assert truth["new_blobs"][0]["snr"] == pytest.approx(5.0, rel=1e-4)
        assert depth / measured == pytest.approx(5.0, rel=0.15)
        # ~1.03x one frame's relative noise (row noise applies to both)
        s = nu.sky_e
        one = math.sqrt(s + nu.dark_e_s * nu.exptime + nu.read_noise_e ** 2) / s * math.sqrt(1 + nu.row_noise ** 2)
        assert 0.85 < nf / one < 1.25


def test_difference_units_scale_and_bunit(tmp_path):
    b = cs.BlobSpec(x=500.0, y=500.0, radius=5.0, depth=0.1)
    imgs, truths = {}, {}
    for units in ("normalised", "e-", "e-/s", "DN"):
        nu = cs.Nuisance(units=units, frame_size=1024)
        imgs[units], truths[units] = cs.make_difference(np.random.default_rng(5), nu, [b])
        assert truths[units]["units"] == units
    sl = truths["e-"]["sky_e_latest"]
    assert truths["e-"]["scale"] == pytest.approx(sl)
    ref = imgs["normalised"]
    np.testing.assert_allclose(imgs["e-"] / sl, ref, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(imgs["e-/s"] * truths["e-/s"]["exptime"] / sl, ref, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(imgs["DN"] * truths["DN"]["gain"] / sl, ref, rtol=1e-4, atol=1e-6)
    assert truths["e-"]["noise_file_units"] == pytest.approx(truths["e-"]["noise_frac"] * sl, rel=1e-4)


def test_difference_border_of_1024():
    nu = cs.Nuisance(frame_size=1024, row_noise=0.0, ref_bias=800.0, n_existing=80)
    img, truth = cs.make_difference(np.random.default_rng(3), nu, [cs.BlobSpec(x=6.0 + 5, y=300, radius=4, depth=0.3)])
    border = np.concatenate([img[:5].ravel(), img[-5:].ravel(), img[5:-5, :5].ravel(), img[5:-5, -5:].ravel()])
    assert np.all(np.isfinite(border))
    assert np.mean(border) == pytest.approx(truth["ref_border_level_frac"], abs=5e-4)
    # read noise only: much quieter than the light area, no blobs (no big positive values)
    assert robust_std(border) < 0.7 * truth["noise_frac"]
    assert np.max(border - np.mean(border)) < 6 * robust_std(border)
    for bl in truth["existing_blobs"] + truth["new_blobs"]:
        assert 5 <= bl["x"] <= 1018 and 5 <= bl["y"] <= 1018


def test_misregistration_dipoles_in_difference():
    R, m, depth = 7.0, 2.5, 0.3
    ex = [cs.BlobSpec(x=500.0, y=400.0, radius=R, depth=depth, sharpness=m)]
    nu = quiet(misreg_px=0.5, sky_e=4000.0)
    img, truth = cs.make_difference(np.random.default_rng(8), nu, [], existing=ex)
    dx, dy = truth["shifts"]["latest"]
    assert 0.375 <= math.hypot(dx, dy) <= 0.5
    assert truth["existing_blobs"][0]["x_latest"] == pytest.approx(500.0 + dx, abs=1e-4)
    h = 16
    cut = img[400 - h:400 + h + 1, 500 - h:500 + h + 1].astype(float)
    yy, xx = np.mgrid[-h:h + 1, -h:h + 1].astype(float)
    # D = history - latest = depth * (p(x - s) - p(x)): the latest blob moved by s, so the
    # difference is positive ahead of the shift and negative behind
    model = depth * (superg(xx - dx, yy - dy, R, m) - superg(xx, yy, R, m))
    along = (xx * dx + yy * dy) / math.hypot(dx, dy)
    ring = (np.hypot(xx, yy) > R - 3) & (np.hypot(xx, yy) < R + 3)
    assert cut[ring & (along > 3)].mean() > 0 > cut[ring & (along < -3)].mean()
    coef = float((cut * model).sum() / (model * model).sum())
    assert coef == pytest.approx(1.0, abs=0.2)
    # no dipole without mis-registration
    img0, _ = cs.make_difference(np.random.default_rng(8), quiet(sky_e=4000.0), [], existing=ex)
    cut0 = img0[400 - h:400 + h + 1, 500 - h:500 + h + 1].astype(float)
    assert abs(float((cut0 * model).sum() / (model * model).sum())) < 0.2


def test_template_blob():
    yy, xx = np.mgrid[-20:21, -20:21].astype(float)
    r = np.hypot(xx, yy)
    rng = np.random.default_rng(0)
    tmpl = 5.0 + 3.0 * np.exp(-0.5 * ((r - 6) / 1.5) ** 2) + 2.0 * np.exp(-0.5 * (r / 1.5) ** 2)
    tmpl += 0.05 * rng.standard_normal(tmpl.shape)
    b = cs.BlobSpec(x=400.0, y=600.0, radius=9.0, depth=0.25, kind="template", template=tmpl)
    prof = cs.blob_profile(b)
    assert prof.max() == pytest.approx(1.0, abs=0.06)
    c = (np.array(prof.shape) - 1) / 2
    py, px = np.indices(prof.shape)
    rr = np.hypot(py - c[0], px - c[1])
    outer = rr[prof >= 0.5].max()
    assert outer == pytest.approx(9.0, abs=1.2)
    assert prof[rr > 14].max() < 0.05
    img, truth = cs.make_difference(np.random.default_rng(4), quiet(sky_e=4000.0), [b])
    assert truth["new_blobs"][0]["kind"] == "template"
    sm = img[580:621, 380:421].astype(float)
    from scipy import ndimage
    assert ndimage.uniform_filter(sm, 3).max() == pytest.approx(0.25, rel=0.15)
    # sampled template blobs keep the template index
    kinds = [cs.sample_new_blob(np.random.default_rng(k), snr=5, templates=[tmpl]) for k in range(20)]
    t = [k for k in kinds if k.kind == "template"]
    assert t and all(k.template_id == 0 for k in t)


@pytest.mark.parametrize("name,level", [("gradient", 4.0), ("offset", 2.0), ("persistence", 6.0)])
def test_smooth_nuisances_have_declared_amplitude(name, level):
    knob = {"gradient": "gradient_sigma", "offset": "offset_sigma", "persistence": "persistence"}[name]
    img, truth = cs.make_difference(np.random.default_rng(21), quiet(**{knob: level}), [])
    nf = truth["noise_frac"]
    assert truth["nuisance"][knob] == level
    blocks = light(img).astype(float)[:1008, :1008].reshape(126, 8, 126, 8).mean(axis=(1, 3)) / nf
    if name == "gradient":
        assert 0.8 * level < np.abs(blocks).max() < 1.15 * level
        assert np.abs(np.median(blocks)) < level
    elif name == "offset":
        assert np.median(blocks) == pytest.approx(level, rel=0.1)
    else:
        assert -1.15 * level < blocks.min() < -0.6 * level
        assert blocks.max() < 1.0


def test_heavy_tails_cosmic_rays_and_nan():
    base = quiet()
    img0, t0 = cs.make_difference(np.random.default_rng(2), base, [])
    z0 = light(img0) / t0["noise_frac"]
    frac0 = np.mean(np.abs(z0) > 6)
    assert frac0 < 1e-5
    img1, t1 = cs.make_difference(np.random.default_rng(2), dataclasses.replace(base, unstable_fraction=0.01), [])
    z1 = light(img1) / t1["noise_frac"]
    assert np.mean(np.abs(z1) > 6) > 0.001
    # cosmic rays: in the latest frame only, so strongly NEGATIVE in median - latest
    img2, t2 = cs.make_difference(np.random.default_rng(2), dataclasses.replace(base, cr_per_frame=300), [])
    z2 = light(img2) / t2["noise_frac"]
    n_neg, n_pos = int((z2 < -8).sum()), int((z2 > 8).sum())
    assert n_neg > 0.5 * t2["n_cosmic_ray_pixels_latest"] > 100 and n_pos == 0
    # NaN defects
    img3, t3 = cs.make_difference(np.random.default_rng(2), dataclasses.replace(base, nan_fraction=1e-3), [])
    n_nan = int(np.isnan(img3).sum())
    assert n_nan == t3["n_nan"]
    assert n_nan == pytest.approx(1e-3 * 1014 ** 2, rel=0.25)


# ------------------------------------------------------------------------------------------
# series
# ------------------------------------------------------------------------------------------
def test_series_blob_in_latest_only_and_depth():
    x, y, depth = 400.6, 500.2, 0.2
    nu = cs.Nuisance(units="e-", n_existing=40, misreg_px=0.0, history_jitter_px=0.0, nan_fraction=0.0)
    b = cs.BlobSpec(x=x, y=y, radius=7.0, depth=depth, kind="disc", sharpness=3.0)
    frames, headers, truth = cs.make_series(np.random.default_rng(9), nu, [b])
    assert len(frames) == 31 and len(headers) == 31
    assert all(f.shape == (1014, 1014) and f.dtype == np.float32 for f in frames)
    # DATE-OBS one day apart, only DATE-OBS/BUNIT
    import datetime as dt
    dates = [dt.datetime.fromisoformat(h["DATE-OBS"]) for h in headers]
    assert all((b2 - b1) == dt.timedelta(days=1) for b1, b2 in zip(dates, dates[1:]))
    assert all(set(h) <= {"DATE-OBS", "BUNIT"} for h in headers)
    norm = [local_norm(f, x, y) for f in frames]
    for f in norm[:-1]:
        assert centre_mean(f, x, y, 2.0) == pytest.approx(1.0, abs=0.035)
    assert centre_mean(norm[-1], x, y, 2.0) == pytest.approx(1.0 - depth, abs=0.035)
    cut = np.median(np.stack([f[470:531, 370:431] for f in norm[:-1]]), axis=0) - norm[-1][470:531, 370:431]
    assert centre_mean(cut, x - 370, y - 470) == pytest.approx(depth, rel=0.12)
    cx, cy = centroid(cut, x - 370, y - 470, 7.0, 0.3 * depth)
    assert abs(cx + 370 - x) < 0.5 and abs(cy + 470 - y) < 0.5
    # noise of median-minus-latest matches truth["noise_frac"] (blob-free box)
    tb = {**truth, "light_area": [0, 1013]}
    d = np.full((1014, 1014), np.nan)
    d[600:900, 100:400] = box_norm_difference(frames, 600, 900, 100, 400)
    measured = robust_std(blob_free(d, tb))
    assert measured == pytest.approx(truth["noise_frac"], rel=0.15)
    # existing blobs are in every frame: a strong one dims every frame
    strong = max(truth["existing_blobs"], key=lambda e: e["depth"] if e["kind"] != "ring" else 0)
    if strong["depth"] > 0.08:
        for f in frames[::10]:
            n = local_norm(f, strong["x"], strong["y"], 3 * strong["radius"], 3 * strong["radius"] + 15)
            assert centre_mean(n, strong["x"], strong["y"], 1.0) < 1 - 0.5 * strong["depth"]


def test_series_units_border_and_pedestal():
    b = cs.BlobSpec(x=300.0, y=300.0, radius=5.0, depth=0.2)
    out = {}
    for units in cs.UNITS:
        nu = cs.Nuisance(frame_size=1024, units=units, row_noise=0.0, nan_fraction=5e-4, ref_bias=300.0,
                         pedestal_dn=1200.0, write_bunit=(units != "e-"))
        out[units] = cs.make_series(np.random.default_rng(17), nu, [b], n_history=3)
    fe, he, te = out["e-"]
    fn, hn, tn = out["normalised"]
    fs, _, _ = out["e-/s"]
    fd, hd, td = out["DN"]
    sky, exptime, gain = te["nuisance"]["sky_e"], te["exptime"], te["gain"]
    for a, b_, c, d in zip(fe, fn, fs, fd):
        np.testing.assert_allclose(c * exptime / sky, b_, rtol=1e-5, atol=1e-6, equal_nan=True)
        np.testing.assert_allclose(a / sky, b_, rtol=1e-5, atol=1e-6, equal_nan=True)
        dl = light(d) - 1200.0
        np.testing.assert_allclose(dl * gain, light(a), rtol=1e-4, atol=0.05, equal_nan=True)
    assert "BUNIT" not in he[0] and hn[0]["BUNIT"] and hd[0]["BUNIT"] == "DN"
    assert td["conversion"]["pedestal"] == 1200.0 and tn["conversion"]["e_per_unit"] == pytest.approx(sky)
    # DN: light pedestal + sky/gain, border = its own bias
    lat = fd[-1]
    assert np.nanmedian(light(lat)) == pytest.approx(1200.0 + te["sky_e_latest"] / gain, rel=0.1)
    border = np.concatenate([lat[:5].ravel(), lat[-5:].ravel(), lat[5:-5, :5].ravel(), lat[5:-5, -5:].ravel()])
    assert np.mean(border) == pytest.approx(300.0, abs=0.5)
    # e-: border has no sky, its own bias (ref_bias * gain) and read noise only
    be = np.concatenate([fe[-1][:5].ravel(), fe[-1][-5:].ravel(), fe[-1][5:-5, :5].ravel(),
                         fe[-1][5:-5, -5:].ravel()])
    assert np.mean(be) == pytest.approx(300.0 * gain, abs=1.0)
    assert np.std(be) == pytest.approx(te["nuisance"]["read_noise_e"], rel=0.08)
    assert np.nanmedian(light(fe[-1])) > np.mean(be) + 500
    # the new blob is not in the border and NaN defects sit at the same pixels in every frame
    nan0 = np.isnan(fe[0])
    assert nan0.sum() == te["n_nan"] > 0 and not nan0[:5].any()
    assert all(np.array_equal(np.isnan(f), nan0) for f in fe + fd)


def test_series_misregistration_dipole():
    R, m, depth = 8.0, 2.5, 0.3
    ex = [cs.BlobSpec(x=600.0, y=300.0, radius=R, depth=depth, sharpness=m)]
    frames, _, truth = cs.make_series(np.random.default_rng(12), quiet(misreg_px=0.5, sky_e=4000.0, units="e-"),
                                      [], existing=ex, n_history=10)
    dx, dy = truth["shifts"]["latest"]
    assert truth["new_blobs"] == []
    norm = [local_norm(f, 600, 300, 25, 40) for f in frames]
    h = 16
    d = np.median(np.stack([f[300 - h:300 + h + 1, 600 - h:600 + h + 1] for f in norm[:-1]]), axis=0) \
        - norm[-1][300 - h:300 + h + 1, 600 - h:600 + h + 1]
    yy, xx = np.mgrid[-h:h + 1, -h:h + 1].astype(float)
    model = depth * (superg(xx - dx, yy - dy, R, m) - superg(xx, yy, R, m))
    assert d[model > 0.3 * model.max()].mean() > 0 > d[model < 0.3 * model.min()].mean()
    coef = float((d * model).sum() / (model * model).sum())
    assert coef == pytest.approx(1.0, abs=0.25)


# ------------------------------------------------------------------------------------------
# sets, determinism, configuration
# ------------------------------------------------------------------------------------------
def _read_all(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_difference_set_truth_and_determinism(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    truth = cs.write_difference_set(a, n_quiet=2, n_new=3, seed=3)
    cs.write_difference_set(b, n_quiet=2, n_new=3, seed=3)
    cs.write_difference_set(c, n_quiet=1, n_new=0, seed=4)
    fa, fb, fc = _read_all(a), _read_all(b), _read_all(c)
    assert fa == fb
    assert fa["diff/case_000.fits"] != fc["diff/case_000.fits"]
    assert not [k for k in fa if k.endswith(".tmp") or "/." in k]
    loaded = json.loads(fa["diff/truth.json"])
    assert loaded == truth
    cases = loaded["cases"]
    assert len(cases) == 5
    assert sorted(c_["case_kind"] for c_ in cases) == ["dips", "new", "new", "new", "quiet"]
    for case in cases:
        img = fits.getdata(a / "diff" / case["file"])
        hdr = fits.getheader(a / "diff" / case["file"])
        assert img.shape == (case["size"], case["size"]) and img.dtype.kind == "f" and img.dtype.itemsize == 4
        extra = set(hdr) - {"SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND"}
        assert extra == ({"DATE-OBS", "BUNIT"} if case["bunit"] else {"DATE-OBS"})
        assert case["units"] in cs.DIFFERENCE_UNITS
        for key in ("noise_frac", "shifts", "nuisance", "existing_blobs", "new_blobs", "size", "units"):
            assert key in case
        lo, hi = case["light_area"]
        for bl in case["existing_blobs"] + case["new_blobs"]:
            assert lo <= bl["x"] <= hi and lo <= bl["y"] <= hi
            assert 3 <= bl["radius"] <= 10
        if case["case_kind"] != "new":
            assert case["new_blobs"] == [] and not case["has_new_blob"]
        else:
            assert 1 <= len(case["new_blobs"]) <= 2 and case["has_new_blob"]
            for nb in case["new_blobs"]:
                assert 1.5 <= nb["requested_snr"] <= 12
                assert nb["snr"] == pytest.approx(nb["requested_snr"], rel=1e-3)
                assert nb["below_target"] == (nb["snr"] < 3)
                # the blob is there: local mean above the noise-reduced background
                v = centre_mean(img, nb["x"], nb["y"], 1.5) / case["scale"]
                assert v > 0.3 * nb["depth"]
        if case["case_kind"] == "dips":
            assert 0.2 <= case["shifts"]["latest_abs"] <= 0.6
        if case["case_kind"] == "quiet":
            assert case["shifts"]["latest_abs"] <= 0.05


def test_series_set_layout_and_determinism(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    truth = cs.write_series_set(a, n_quiet=1, n_new=1, seed=5, n_history=2)
    cs.write_series_set(b, n_quiet=1, n_new=1, seed=5, n_history=2)
    fa = _read_all(a)
    assert fa == _read_all(b)
    assert sorted(fa) == ["series/case_000/frame_00.fits", "series/case_000/frame_01.fits",
                          "series/case_000/frame_02.fits", "series/case_001/frame_00.fits",
                          "series/case_001/frame_01.fits", "series/case_001/frame_02.fits", "series/truth.json"]
    assert json.loads(fa["series/truth.json"]) == truth
    for case in truth["cases"]:
        assert case["latest"] == case["files"][-1] and len(case["files"]) == 3
        assert case["units"] in cs.UNITS
        hdr = fits.getheader(a / "series" / case["latest"])
        assert hdr["DATE-OBS"] == case["date_obs"]


def test_cli_main(tmp_path):
    rc = cs.main([str(tmp_path), "--seed", "1", "--n-quiet-diff", "1", "--n-new-diff", "1",
                  "--n-quiet-series", "0", "--n-new-series", "1", "--n-history", "2"])
    assert rc == 0
    assert (tmp_path / "diff" / "truth.json").exists() and (tmp_path / "series" / "truth.json").exists()
    assert len(list((tmp_path / "diff").glob("*.fits"))) == 2
    assert len(list((tmp_path / "series").glob("*/frame_*.fits"))) == 3


def test_named_changes_only_one_knob():
    default = dataclasses.asdict(cs.Nuisance())
    levels = {"gradient": 3.0, "offset": -1.0, "misregistration": 0.45, "unstable": 0.02, "cosmic_rays": 250,
              "persistence": 4.0, "nan": 1e-3, "row_noise": 0.7, "units": 2, "frame_size": 1024}
    assert set(levels) == set(cs.NUISANCE_NAMES)
    for name, level in levels.items():
        got = dataclasses.asdict(cs.Nuisance.named(name, level))
        changed = {k for k in default if got[k] != default[k]}
        assert len(changed) == 1, (name, changed)
    assert cs.Nuisance.named("units", 2).units == "e-/s"
    assert cs.Nuisance.named("frame_size", 1).frame_size == 1024
    assert cs.Nuisance.named("cosmic_rays", 250).cr_per_frame == 250
    with pytest.raises(ValueError):
        cs.Nuisance.named("bogus", 1)
    with pytest.raises(ValueError):
        cs.Nuisance(frame_size=1000)


def test_same_seed_same_arrays_and_truth():
    nu = cs.Nuisance(frame_size=1024, nan_fraction=1e-4)
    i1, t1 = cs.make_difference(np.random.default_rng(42), nu, [cs.BlobSpec(x=200, y=200, radius=5, snr=6)])
    i2, t2 = cs.make_difference(np.random.default_rng(42), nu, [cs.BlobSpec(x=200, y=200, radius=5, snr=6)])
    assert i1.tobytes() == i2.tobytes() and json.dumps(t1) == json.dumps(t2)
    i3, _ = cs.make_difference(np.random.default_rng(43), nu, [cs.BlobSpec(x=200, y=200, radius=5, snr=6)])
    assert i1.tobytes() != i3.tobytes()


# ------------------------------------------------------------------------------------------
# multi-day series (the daily job over several days) and the jittered deep-blob series
# ------------------------------------------------------------------------------------------
def test_one_monitored_day_is_the_series_of_before():
    nu = cs.Nuisance(frame_size=1024, units="DN", misreg_px=0.3, persistence=2.0, n_existing=8)
    b = cs.BlobSpec(x=300.0, y=400.0, radius=5.0, snr=5.0)
    r1, r2 = np.random.default_rng(21), np.random.default_rng(21)
    f1, h1, t1 = cs.make_series(r1, nu, [b], n_history=3)
    f2, h2, t2 = cs.make_series(r2, nu, [b], n_history=3, n_days=1)
    assert [f.tobytes() for f in f1] == [f.tobytes() for f in f2] and h1 == h2
    assert json.dumps(t1) == json.dumps(t2) and r1.random() == r2.random()  # same truth, same draws
    a = list(cs.iter_series_cases(1, 1, 9, n_history=2))
    c = list(cs.iter_series_cases(1, 1, 9, n_history=2, n_days=1, n_jitter_deep=0))
    for x, y in zip(a, c):
        assert x[:3] == y[:3] and [f.tobytes() for f in x[3]] == [f.tobytes() for f in y[3]]
        assert json.dumps(x[5]) == json.dumps(y[5])
    with pytest.raises(ValueError, match="n_days"):
        cs.make_series(np.random.default_rng(0), nu, [], n_history=3, n_days=0)


def test_multi_day_new_blob_stays_in_every_monitored_frame():
    import datetime as dt

    x, y, depth = 400.6, 500.2, 0.2
    nu = quiet(units="e-", sky_e=4000.0, misreg_px=0.3)
    b = cs.BlobSpec(x=x, y=y, radius=7.0, depth=depth, kind="disc", sharpness=3.0)
    frames, headers, truth = cs.make_series(np.random.default_rng(5), nu, [b], n_history=4, n_days=3)
    assert len(frames) == len(headers) == 7
    dates = [dt.datetime.fromisoformat(h["DATE-OBS"]) for h in headers]
    assert all(d2 - d1 == dt.timedelta(days=1) for d1, d2 in zip(dates, dates[1:]))
    assert truth["n_days"] == 3 and truth["monitored_frames"] == [4, 5, 6]
    assert truth["monitored_dates"] == [h["DATE-OBS"] for h in headers[4:]] and truth["date_obs"] == headers[-1]["DATE-OBS"]
    nb = truth["new_blobs"][0]
    assert nb["first_frame"] == 4 and nb["first_day"] == 1 and nb["x"] == pytest.approx(x)
    mon = truth["shifts"]["monitored"]
    assert len(mon) == 3 and len({tuple(s) for s in mon}) == 3  # each day its own shift ...
    assert all(0.75 * 0.3 - 1e-6 <= math.hypot(*s) <= 0.3 + 1e-6 for s in mon)  # ... drawn as the latest's
    assert len(truth["shifts"]["history"]) == 4
    # the blob moves with the blob pattern: its place each day is the day-1 place + (shift - day-1 shift)
    for (bx, by), s in zip(nb["xy_by_day"], mon):
        assert bx == pytest.approx(x + s[0] - mon[0][0], abs=2e-3) and by == pytest.approx(y + s[1] - mon[0][1], abs=2e-3)
    for t, f in enumerate(frames):
        n = local_norm(f, x, y)
        if t < 4:
            assert centre_mean(n, x, y, 2.0) == pytest.approx(1.0, abs=0.03)  # absent from the history
        else:
            bx, by = nb["xy_by_day"][t - 4]
            assert centre_mean(n, bx, by, 2.0) == pytest.approx(1.0 - depth, abs=0.03)  # there, same depth
            cx, cy = centroid(1.0 - n, bx, by, 7.0, 0.3 * depth)
            assert abs(cx - bx) < 0.5 and abs(cy - by) < 0.5


def test_jittered_deep_blob_series_are_blob_free_with_deep_existing_blobs(tmp_path):
    truth = cs.write_series_set(tmp_path, n_quiet=0, n_new=1, seed=4, n_history=2, n_days=2, n_jitter_deep=1)
    assert truth["n_days"] == 2 and truth["n_jitter_deep"] == 1
    kinds = {c["case_kind"]: c for c in truth["cases"]}
    assert set(kinds) == {"new", "jitter_deep"}
    for c in truth["cases"]:
        assert len(c["files"]) == 4 and c["monitored"] == c["files"][2:] and c["latest"] == c["files"][-1]
        assert all((tmp_path / "series" / f).is_file() for f in c["files"])
    jd = kinds["jitter_deep"]
    assert jd["new_blobs"] == [] and not jd["has_new_blob"] and jd["nuisance_regime"] == "jitter_deep"
    deep = [b for b in jd["existing_blobs"] if 0.25 <= b["depth"] <= 0.30 and 5 <= b["radius"] <= 15]
    assert len(deep) >= 3 and jd["n_deep_existing"] >= 3
    # every frame jittered: history rms per frame 0.15-0.5 px, each monitored frame shifted 0.15-0.5 px
    assert 0.15 - 1e-6 <= jd["nuisance"]["history_jitter_px"] * math.sqrt(2) <= 0.5 + 1e-6
    assert all(0.15 - 1e-6 <= math.hypot(*s) <= 0.5 + 1e-6 for s in jd["shifts"]["monitored"])
    nw = kinds["new"]
    assert nw["new_blobs"] and all(b["first_frame"] == 2 for b in nw["new_blobs"])
    with pytest.raises(ValueError, match="n_jitter_deep"):
        list(cs.iter_series_cases(0, 0, 1, n_jitter_deep=-1))
    with pytest.raises(ValueError, match="n_days"):
        list(cs.iter_series_cases(0, 1, 1, n_days=0))
    with pytest.raises(ValueError, match="weak_snr"):
        list(cs.iter_series_cases(0, 1, 1, weak_snr=(2.0, 1.0)))


def test_faint_share_of_new_blobs_takes_its_own_snr_range():
    snrs = [b["requested_snr"] for *_, t in cs.iter_series_cases(0, 6, 2, n_history=1, n_days=2, weak_fraction=1.0,
                                                                 weak_snr=(0.5, 1.5)) for b in t["new_blobs"]]
    assert len(snrs) >= 6 and all(0.5 <= v <= 1.5 for v in snrs)
