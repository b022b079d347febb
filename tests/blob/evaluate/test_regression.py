"""The monitor's regression summary: detection within N days as the daily job is used, and latency."""

import pytest

from blobhelpers.blob.evaluate.regression import latency, within_days


def _ev(appear, detected=False, first=None, depth=0.05, radius=5.0):
    return {"appear_index": appear, "detected": detected, "first_alert_day": first, "depth": depth, "radius": radius}


def test_latency_counts_days_from_appearance_to_the_first_alert():
    assert latency(_ev(3, detected=True, first=3)) == 0
    assert latency(_ev(3, first=5)) == 2
    assert latency(_ev(3)) is None


def test_within_n_days_is_cumulative_and_leaves_out_blobs_too_close_to_the_end():
    events = [_ev(0, detected=True, first=0), _ev(0, first=1), _ev(1, first=4), _ev(2), _ev(9, first=9, detected=True),
              _ev(8, first=9, depth=0.01, radius=9.0)]
    out = within_days(events, last_day=9, min_depth=0.03, max_days=5)
    w = out["detection_within_days"]
    assert [w[str(n)]["all"]["k"] for n in range(1, 6)] == [2, 3, 2, 3, 3]
    # N = 1: all six; N = 2: the blob of day 9 cannot be seen twice; N = 3..5: nor the one of day 8
    assert [w[str(n)]["all"]["n"] for n in range(1, 6)] == [6, 5, 4, 4, 4]
    assert w["1"]["deeper"]["n"] == 5 and w["2"]["deeper"]["k"] == 2  # the 1 % blob is not "deeper"
    assert sum(v["n"] for v in w["1"]["depth"].values()) == 6 and sum(v["n"] for v in w["1"]["radius"].values()) == 6
    # on the same blobs, more days never lose an alert (N = 3..5 count the same four)
    assert w["3"]["all"]["k"] <= w["4"]["all"]["k"] <= w["5"]["all"]["k"]
    lat = out["latency_days"]
    assert lat["n_alerted"] == 5 and lat["counts"] == {"0": 2, "1": 2, "3": 1} and lat["median"] == 1.0
    r = w["5"]["all"]
    assert r["lo"] <= r["rate"] <= r["hi"] and r["rate"] == pytest.approx(0.75)


def test_ideal_snr_is_what_the_matched_filter_reaches_at_best():
    """The ideal observer's S/N of a blob in white noise is the detection core's significance of it,
    up to the core's losses (a search over a few radii, its own noise estimate): never far below."""
    import numpy as np

    from blobhelpers.blob.detect.detection import detect_candidates
    from blobhelpers.blob.evaluate.regression import ideal_snr
    from blobhelpers.blob.sim.shapes import BlobShape, render

    rng = np.random.default_rng(3)
    for radius, depth in ((3.0, 0.03), (6.0, 0.015), (9.0, 0.01)):
        noise = rng.normal(0, 0.02, (384, 384)).astype(np.float32)
        img = noise.copy()
        render(img, 190.0, 200.0, BlobShape(radius), depth)
        ideal = ideal_snr(img, 190.0, 200.0, BlobShape(radius), depth)
        found = [c for c in detect_candidates(img, snr_min=2.0) if np.hypot(c["x"] - 190, c["y"] - 200) < 4]
        assert found, (radius, depth)
        assert 0.75 * ideal["ideal_snr_day1"] <= found[0]["snr"] <= 1.15 * ideal["ideal_snr_day1"], (radius, ideal, found)
        assert ideal["ideal_snr_3d"] > 1.6 * ideal["ideal_snr_day1"]  # 3 frames average, the 30-frame median does not


def test_ideal_limit_separates_blobs_below_the_limit_from_our_misses():
    from blobhelpers.blob.evaluate.regression import ideal_limit

    def ev(day1, hit_day=None):
        return {"appear_index": 0, "detected": hit_day == 0, "first_alert_day": hit_day, "ideal_snr_day1": day1,
                "ideal_snr_3d": 1.65 * day1, "ideal_snr_5d": 2.0 * day1}
    events = [ev(10.0, 0), ev(6.0, 2), ev(6.0), ev(2.0), ev(3.0, None)]
    out = ideal_limit(events, last_day=10, snr_day1=6.5, snr_k=7.0)
    # ideal 3-day S/N: 16.5, 9.9, 9.9, 3.3, 4.95 -> above 8: three, two found within 3 days
    assert (out["above_limit"]["k"], out["above_limit"]["n"]) == (2, 3)
    assert out["missed_within_3"] == 3 and out["below_limit"] == 2 and out["missed_by_ours"] == 1
    day1 = out["curves"]["day1"]["bins"]
    assert sum(b["n"] for b in day1) == 5 and day1[-1]["ideal_curve"] > 0.9
