"""The detection core shared by classify and the monitor (issue: robust detection)."""

import numpy as np
import pytest

from blobhelpers.blob.detect.classify import classify_image
from blobhelpers.blob.detect.detection import DetectionConfig, detect_candidates, screen, select, valid_mask
from blobhelpers.blob.preprocess.scaling import residual
from blobhelpers.blob.sim.shapes import BlobShape, render

SIGMA = 0.02


def _noise(seed=0, shape=(1024, 1024)):
    return np.random.default_rng(seed).normal(0, SIGMA, shape).astype(np.float32)


def _dipole(img, x, y, r=6.0, depth=0.2, shift=0.5):
    """An existing blob mis-registered by *shift* px: stack (at x) minus latest (at x + shift)."""
    render(img, x + shift, y, BlobShape(r), depth)
    render(img, x, y, BlobShape(r), -depth)


@pytest.fixture(scope="module")
def untrained():
    from blobhelpers.blob.learn.cnn import build_model

    return build_model("tiny", seed=0)


def test_reference_border_never_yields_candidates():
    img = _noise(1)
    for y in (100, 400, 800):
        img[y - 3:y + 4, 0:5] += 0.5          # strong junk in the 5-px reference border, left
        img[1019:1024, y - 3:y + 4] += 0.5    # and top
    render(img, 512.0, 512.0, BlobShape(6.0), 0.06)
    c = detect_candidates(img, snr_min=5.0)
    assert c and all(5 <= k["x"] <= 1018 and 5 <= k["y"] <= 1018 for k in c)
    assert min(np.hypot(k["x"] - 512, k["y"] - 512) for k in c) < 2
    # a 1014x1014 (trimmed) frame has no reference pixels: its edge pixels stay valid
    assert valid_mask(np.zeros((1014, 1014), np.float32))[0, 0]


def test_flagged_pixels_never_yield_candidates():
    img = _noise(2)
    render(img, 300.0, 300.0, BlobShape(6.0), 0.1)
    flagged = np.zeros(img.shape, bool)
    flagged[280:320, 280:320] = True
    c = detect_candidates(img, snr_min=5.0, valid=valid_mask(img, flagged))
    assert all(np.hypot(k["x"] - 300, k["y"] - 300) > 15 for k in c)


def test_field_of_dipoles_gives_no_alert(untrained):
    img = _noise(3)
    rng = np.random.default_rng(3)
    for x, y in rng.uniform(60, 960, (25, 2)):
        _dipole(img, float(x), float(y), r=float(rng.uniform(4, 9)), depth=float(rng.uniform(0.1, 0.3)),
                shift=float(rng.uniform(0.3, 0.6)))
    res = classify_image(img, untrained, threshold=0.0, preprocessing={"representation": "residual"},
                         with_saliency=False)
    # threshold 0: every verified candidate would be an alert, so nothing may reach the CNN
    assert res["candidates"] == [] and not res["new_blob"] and not res["matched_filter"]["new_blob"]
    assert res["rejected"] and all(r["reason"] == "dipole" for r in res["rejected"])


def test_junk_cannot_starve_a_real_blob(untrained):
    img = _noise(4)
    rng = np.random.default_rng(4)
    xy = rng.uniform(60, 960, (60, 2))
    xy = xy[np.hypot(xy[:, 0] - 777, xy[:, 1] - 222) > 80][:30]
    for x, y in xy:  # 30 strong dipoles, each stronger than the real blob, none next to it
        _dipole(img, float(x), float(y), depth=0.5, shift=0.6)
    render(img, 777.0, 222.0, BlobShape(5.0), 0.03)  # a faint new blob, peak S/N 1.5 per pixel
    det = DetectionConfig(snr_min=5.0, max_candidates=3)
    res = classify_image(img, untrained, threshold=0.0, preprocessing={"representation": "residual"},
                         detection=det, with_saliency=False)
    assert any(np.hypot(c["x"] - 777, c["y"] - 222) < 3 for c in res["candidates"]), res["candidates"]
    assert res["n_candidates"] > det.max_candidates  # the junk was there, and was set aside


def test_select_spends_the_budget_on_what_passed():
    cands = screen([{"snr": 50.0, "dip": -45.0, "neg_snr": -45.0} for _ in range(10)]
                   + [{"snr": 6.0, "dip": -1.0, "neg_snr": -1.0}], DetectionConfig())
    chosen, rest = select(cands, 1)
    assert [c["snr"] for c in chosen] == [6.0] and len(rest) == 10


@pytest.mark.parametrize("value", [0.0, 3.7, -250.0])
def test_blank_or_constant_frame_is_nothing_new(untrained, value):
    img = np.full((1024, 1024), value, np.float32)
    res = classify_image(img, untrained, threshold=0.5, preprocessing={"representation": "residual"},
                         with_saliency=False)
    assert not res["new_blob"] and res["probability"] == 0.0 and res["candidates"] == []
    assert all(t["probability"] == 0.0 for t in res["tiles"])


def test_offset_and_gradient_do_not_change_the_candidates():
    img = _noise(5)
    render(img, 400.0, 600.0, BlobShape(6.0), 0.05)
    yy, xx = np.mgrid[0:1024, 0:1024].astype(np.float32)
    base = [(c["x"], c["y"], c["snr"]) for c in detect_candidates(img, snr_min=4.5)]
    assert any(np.hypot(x - 400, y - 600) < 2 for x, y, _ in base)
    for extra in (0.3 * SIGMA, 0.3 * SIGMA * (xx / 1024 - 0.5) * 2, 0.3 * SIGMA * (yy / 1024) ** 2):
        got = [(c["x"], c["y"], c["snr"]) for c in detect_candidates(img + extra, snr_min=4.5)]
        assert len(got) == len(base)
        for (x, y, s), (x2, y2, s2) in zip(base, got):
            assert (x, y) == (x2, y2) and abs(s - s2) < 0.1


def test_residual_representation_is_invariant_to_units_offset_and_plane():
    rng = np.random.default_rng(6)
    a = rng.normal(0, 1, (4, 256, 256)).astype(np.float32)
    yy, xx = np.mgrid[0:256, 0:256].astype(np.float32)
    np.testing.assert_allclose(residual(a), residual(123.0 * a + 5e4), atol=1e-3)  # units and offset: float32-exact
    b = 123.0 * a + 5e4 + 0.5 * xx - 0.3 * yy   # a plane of ~0.3 sigma per 64-px block
    np.testing.assert_allclose(residual(a), residual(b), atol=0.05)
    r = residual(a)
    assert abs(float(np.std(r)) - 1.0) < 0.05 and float(np.abs(r).max()) <= 5.0
    nan = a.copy()
    nan[:, 10, :] = np.nan
    assert np.isfinite(residual(nan)).all() and (residual(nan)[:, 10, :] == 0).all()


def test_background_mask_keeps_a_large_deep_blob_from_digging_a_ring():
    """A 10 % blob of radius 14 px raises its 32-px blocks' median and scatter: the S/N map then
    shows a negative ring around it. Leaving the blob out of the block statistics removes the ring
    and raises its significance; without a mask the result is what it always was."""

    rng = np.random.default_rng(3)
    d = rng.normal(0, 0.03, (512, 512)).astype("f4")
    render(d, 256.0, 256.0, BlobShape(14.0), 0.10)
    plain = detect_candidates(d)
    assert detect_candidates(d, background_mask=None) == plain
    yy, xx = np.mgrid[:512, :512]
    mask = np.hypot(xx - 256, yy - 256) < 17
    masked = detect_candidates(d, background_mask=mask)
    p, m = plain[0], masked[0]
    assert abs(m["x"] - 256) <= 2 and abs(m["y"] - 256) <= 2
    assert m["snr"] > 1.1 * p["snr"]
    assert m["neg_snr"] > p["neg_snr"] + 1.0  # the ring is (mostly) gone


def test_a_narrow_negative_spike_nearby_is_not_a_blobs_dipole_partner():
    """A faint 5-px blob with a narrow negative spike 12 px away (an RTS pixel pair, a cosmic-ray
    residual: a -4 sigma 2x2 patch, strong at the smallest radius only) keeps its candidacy; the spike
    still counts as a negative for the bright-transient veto (``neg_snr``). A registration dipole,
    whose lobes are alike in width, is still rejected."""
    img = _noise(7)
    render(img, 400.0, 400.0, BlobShape(5.0), 0.02)
    c = [q for q in detect_candidates(img) if np.hypot(q["x"] - 400, q["y"] - 400) < 4]
    assert c and c[0]["snr"] > 6.0 and c[0]["scale"] >= 3.5, c
    neg_before = c[0]["neg_snr"]
    img[411:413, 407:409] -= 4 * SIGMA          # 12 px away
    c = [q for q in detect_candidates(img) if np.hypot(q["x"] - 400, q["y"] - 400) < 4][0]
    assert c["neg_snr"] < neg_before - 1.0 and c["dip"] > -max(4.0, 0.5 * c["snr"]), c   # seen, not a partner
    assert screen([dict(c)], DetectionConfig())[0]["reject"] == "", c
    # the minimum over every radius (the rule before) would have rejected it as a dipole
    assert screen([dict(c, dip=c["neg_snr"])], DetectionConfig())[0]["reject"] == "dipole"
    # a registration dipole of a blob of about the same size keeps its partner
    img = _noise(7)
    _dipole(img, 600.0, 600.0, r=5.0, depth=0.25, shift=0.6)
    c = [q for q in detect_candidates(img) if np.hypot(q["x"] - 600, q["y"] - 600) < 10]
    assert c and all(screen([q], DetectionConfig())[0]["reject"] == "dipole" for q in c), c
