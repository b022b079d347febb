"""PatchPCAScorer: an unsupervised blob score fitted on blob-free tiles only (blobhelpers.blob.learn.anomaly)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from blobhelpers.blob.learn.anomaly import PatchPCAScorer

N = 256
YY, XX = np.mgrid[0:N, 0:N].astype(np.float32)
SIGMA = 3.0   # noise in "difference-image" units; tiles also carry an offset (residual removes it)
LEVEL = 200.0


def _gauss(x, y, s, amp):
    return amp * np.exp(-((XX - x) ** 2 + (YY - y) ** 2) / (2.0 * s * s))


def _disc(x, y, r, amp):
    return amp / (1.0 + np.exp(np.minimum((np.hypot(XX - x, YY - y) - r) / 0.6, 50.0)))


def blob_free(rng, n):
    """Gaussian noise, a few heavy-tailed pixels and cosmic-ray hits, sometimes a dipole or a dip."""
    t = rng.normal(LEVEL, SIGMA, (n, N, N)).astype(np.float32)
    for i in range(n):
        bad = rng.random((N, N)) < 0.003
        t[i][bad] += SIGMA * 2.0 * rng.standard_t(2, int(bad.sum())).astype(np.float32)
        for _ in range(rng.integers(0, 3)):  # cosmic-ray residuals: 1-2 px, 8-30 sigma
            y, x = rng.integers(2, N - 3, 2)
            t[i, y:y + rng.integers(1, 3), x:x + rng.integers(1, 3)] += SIGMA * rng.uniform(8, 30)
        if rng.random() < 0.3:  # mis-registration dipole
            y, x = rng.uniform(20, N - 20, 2)
            s, a, ang = rng.uniform(1.5, 3.0), rng.uniform(3, 6), rng.uniform(0, 2 * np.pi)
            dx, dy = 1.2 * s * np.cos(ang), 1.2 * s * np.sin(ang)
            t[i] += SIGMA * (_gauss(x + dx, y + dy, s, a) - _gauss(x - dx, y - dy, s, a))
        if rng.random() < 0.3:  # broad persistence dip
            y, x = rng.uniform(20, N - 20, 2)
            t[i] -= SIGMA * _gauss(x, y, rng.uniform(5, 10), rng.uniform(2, 4))
    return t


def blob(x, y, r, peak, kind):
    """A positive bump of *peak* noise sigmas: a Gaussian (HWHM ~ r) or a soft-edged disc of radius r."""
    return SIGMA * (_gauss(x, y, r / 1.2, peak) if kind == "gauss" else _disc(x, y, r, peak))


def with_blobs(rng, n, peak=5.0):
    t = blob_free(rng, n)
    xy = rng.uniform(24, N - 24, (n, 2))
    for i in range(n):
        t[i] += blob(*xy[i], rng.uniform(4, 8), peak, ("gauss", "disc")[i % 2])
    return t, xy


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(2024)
    train = blob_free(rng, 24)
    neg = blob_free(rng, 30)
    pos, xy = with_blobs(rng, 30)
    return train, neg, pos, xy


@pytest.fixture(scope="module")
def scorer(data):
    return PatchPCAScorer().fit(data[0], seed=0)


def test_auc_on_held_out_tiles(data, scorer):
    _, neg, pos, _ = data
    s_neg, s_pos = scorer.score(neg), scorer.score(pos)
    assert s_neg.shape == (30,) and s_pos.shape == (30,)
    assert np.isfinite(s_neg).all() and np.isfinite(s_pos).all()
    auc = roc_auc_score(np.r_[np.zeros(30), np.ones(30)], np.r_[s_neg, s_pos])
    assert auc > 0.9, auc
    # The score is in robust sigmas of blob-free training patches: a blob-free tile's maximum
    # over its 841 patches is a few sigma, a clear blob far more.
    assert np.median(s_neg) < 8
    assert np.median(s_pos) > 20


def test_locate_finds_the_blob(data, scorer):
    _, _, pos, xy = data
    scores, loc = scorer.score_and_locate(pos)
    assert loc.shape == (30, 2)
    np.testing.assert_array_equal(loc, scorer.locate(pos))
    np.testing.assert_array_equal(scores, scorer.score(pos))
    err = np.hypot(*(loc - xy).T)
    assert np.median(err) < 4, err
    assert (err < 8).all(), err
    maps = scorer.patch_scores(pos[:2])
    assert maps.shape == (2, 29, 29)
    np.testing.assert_allclose(maps.reshape(2, -1).max(axis=1), scores[:2])


def test_offset_plane_and_units_do_not_matter(data, scorer):
    _, neg, pos, _ = data
    tiles = np.concatenate([pos[:4], neg[:4]])
    base = scorer.score(tiles)
    # An offset and a change of units: residual() is equivariant, so the scores barely move.
    for other in (tiles + 500.0, tiles * 10.0, (tiles - LEVEL) * 10.0 + LEVEL):
        np.testing.assert_allclose(scorer.score(other), base, rtol=1e-3)
    # A plane (1 noise sigma across the tile): residual() removes it with its 64-px block medians,
    # whose sampling noise shifts the residual by a few 0.01 sigma. A blob tile's score moves
    # < 1 %; a blob-free tile's (a few sigma) by < 0.25 of a sigma (measured: <= 0.07).
    plane = (500.0 + 0.002 * SIGMA * XX - 0.003 * SIGMA * YY).astype(np.float32)
    for other in (tiles + plane, (tiles - LEVEL) * 10.0 + plane):
        got = scorer.score(other)
        np.testing.assert_allclose(got[:4], base[:4], rtol=0.01)
        np.testing.assert_allclose(got[4:], base[4:], atol=0.25)


def test_signed_default_scores_a_dip_below_the_same_blob(data, scorer):
    rng = np.random.default_rng(5)
    bg = rng.normal(LEVEL, SIGMA, (4, N, N)).astype(np.float32)
    bump = np.stack([blob(100 + 20 * i, 140, 6.0, 5.0, ("gauss", "disc")[i % 2]) for i in range(4)])
    up, down = scorer.score(bg + bump), scorer.score(bg - bump)
    assert (down < up).all() and (down < 0.5 * up).all(), (up, down)
    assert (down < 8).all()  # a dip looks like a blob-free tile
    # The pure, symmetric version flags both (this is what the sign awareness buys).
    sym = PatchPCAScorer(signed=False).fit(data[0], seed=0)
    s_up, s_down = sym.score(bg + bump), sym.score(bg - bump)
    assert (s_down > 0.5 * s_up).all()


def test_json_round_trip_is_exact(data, scorer):
    _, neg, pos, _ = data
    tiles = np.concatenate([pos[:3], neg[:3]])
    d = json.loads(json.dumps(scorer.to_dict()))
    back = PatchPCAScorer.from_dict(d)
    np.testing.assert_array_equal(back.score(tiles), scorer.score(tiles))
    np.testing.assert_array_equal(back.locate(tiles), scorer.locate(tiles))
    assert back.to_dict() == d
    assert len(d["components"]) == 32 and len(d["mean"]) == 256


def test_fit_is_deterministic_and_subsamples(data):
    train, neg, pos, _ = data
    tiles = np.concatenate([pos[:3], neg[:3]])
    a = PatchPCAScorer(max_patches=5000).fit(train, seed=3)
    b = PatchPCAScorer(max_patches=5000).fit(train, seed=3)
    c = PatchPCAScorer(max_patches=5000).fit(train, seed=4)
    assert a.n_patches_fit_ <= 5000
    np.testing.assert_array_equal(a.score(tiles), b.score(tiles))
    assert not np.array_equal(a.mean_, c.mean_)  # the seed picks the patches


def test_nan_and_already_residual(data, scorer):
    from blobhelpers.blob.preprocess.scaling import residual

    _, neg, pos, _ = data
    tiles = np.concatenate([pos[:2], neg[:2]]).copy()
    np.testing.assert_allclose(scorer.score(residual(tiles), already_residual=True), scorer.score(tiles),
                               rtol=1e-6)
    tiles[:, 30:60, 100:140] = np.nan
    blank = np.full((1, N, N), np.nan, np.float32)
    s = scorer.score(np.concatenate([tiles, blank]))
    assert np.isfinite(s).all() and s[-1] < 8
    r = residual(tiles)
    r[0, :5, :5] = np.nan  # NaN in a residual given as such are zeroed too
    assert np.isfinite(scorer.score(r, already_residual=True)).all()


def test_bad_input_raises(scorer):
    with pytest.raises(ValueError, match="multiple of 64"):
        scorer.score(np.zeros((2, 100, 100), np.float32))
    with pytest.raises(ValueError, match="empty"):
        scorer.score(np.zeros((0, 256, 256), np.float32))
    with pytest.raises(ValueError, match=r"shape \(n, H, W\)"):
        scorer.score(np.zeros((256, 256), np.float32))
    with pytest.raises(ValueError, match=r"shape \(n, H, W\)"):
        PatchPCAScorer().fit(np.zeros((1, 2, 256, 256), np.float32))
    with pytest.raises(ValueError, match="empty"):
        PatchPCAScorer().fit(np.zeros((0, 256, 256), np.float32))
    with pytest.raises(ValueError, match="not fitted"):
        PatchPCAScorer().score(np.zeros((1, 256, 256), np.float32))
    with pytest.raises(ValueError, match="format"):
        PatchPCAScorer.from_dict({"mean": [0.0]})
    for bad in ({"downsample": 3}, {"n_components": 1.5}, {"n_components": 0}, {"window": -1.0},
                {"window": "wide"}, {"top_k": 0}, {"stride": 0}):
        with pytest.raises(ValueError):
            PatchPCAScorer(**bad)
