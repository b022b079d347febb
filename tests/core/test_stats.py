"""core.stats: the Wilson interval, the rate shape, the one threshold convention and the confusion rates."""

import math

import numpy as np
import pytest

from blobhelpers.core.stats import confusion_rates, flag, format_rate, rate, threshold_for_fpr, wilson


@pytest.mark.parametrize("k, n", [(0, 11), (6, 6), (1, 2), (491, 500), (0, 1), (107, 107)])
def test_wilson_holds_the_proportion_and_stays_in_0_1(k, n):
    lo, hi = wilson(k, n)
    assert 0.0 <= lo <= k / n <= hi <= 1.0
    assert (lo == 0.0) == (k == 0) and (hi == 1.0) == (k == n)


def test_wilson_matches_the_closed_form_and_narrows_with_n():
    lo, hi = wilson(94, 100)
    p, z, n = 0.94, 1.96, 100
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    assert (lo + hi) / 2 == pytest.approx(centre)
    assert wilson(940, 1000)[1] - wilson(940, 1000)[0] < hi - lo
    assert all(math.isnan(v) for v in wilson(0, 0))


def test_rate_and_its_text():
    r = rate(3, 4)
    assert (r["k"], r["n"], r["rate"]) == (3, 4, 0.75) and r["lo"] < 0.75 < r["hi"]
    assert format_rate(r) == "0.750 [0.301-0.954] (3/4)"
    assert format_rate(rate(0, 0)) == "-" and math.isnan(rate(0, 0)["rate"])


def test_threshold_for_fpr_allows_exactly_the_target_number_of_false_positives():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(200, int), np.ones(50, int)]
    p = np.r_[rng.random(200), rng.random(50) + 0.5]
    for target in (0.0, 0.03, 0.1, 0.5):
        t = threshold_for_fpr(y, p, target)
        fp = int(flag(p[y == 0], t).sum())
        assert fp == int(np.floor(target * 200 + 1e-9))  # as many as allowed, and no more
    assert threshold_for_fpr([1, 1], [0.2, 0.9], 0.1) == 0.5  # no negatives: the neutral threshold


def test_confusion_rates_use_p_greater_or_equal_threshold():
    y = [1, 1, 0, 0, 0]
    p = [0.5, 0.4, 0.5, 0.1, 0.0]
    c = confusion_rates(y, p, 0.5)  # p == t flags
    assert (c["tp"], c["fn"], c["fp"], c["tn"]) == (1, 1, 1, 2)
    assert c["tpr"] == 0.5 and c["fpr"] == pytest.approx(1 / 3) and c["accuracy"] == pytest.approx(3 / 5)
    assert c["tpr_lo"] < 0.5 < c["tpr_hi"]
