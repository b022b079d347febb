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
