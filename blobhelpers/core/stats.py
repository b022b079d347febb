"""Statistics shared by both wings: Wilson intervals, one rate shape, one threshold convention.

Conventions used everywhere in the project
------------------------------------------
* A score ``p`` is *flagged* at threshold ``t`` when ``p >= t`` (:func:`flag`).
* :func:`threshold_for_fpr` returns the lowest threshold whose false-positive rate on the
  given negatives is at most the target, under that convention.
* A rate is a dict ``{"k", "n", "rate", "lo", "hi"}`` (:func:`rate`): the count, the number of
  cases, their ratio (``nan`` for n = 0) and the 95 % Wilson interval.
"""

from __future__ import annotations

import numpy as np

__all__ = ["wilson", "rate", "format_rate", "flag", "threshold_for_fpr", "confusion_rates", "median_mad", "DEPTH_BINS",
           "RADIUS_BINS"]

#: Blob central-depth strata (fraction of the sky) used by every blob report.
DEPTH_BINS = (0.0, 0.02, 0.03, 0.05, 0.10, 1.0)
#: Blob radius strata (px).
RADIUS_BINS = (0.0, 4.0, 7.0, 10.0, 100.0)


def median_mad(values):
    """``(median, MAD)`` of the array *values* as numpy computes them (in their dtype; NaN
    propagate): the median, and the median of the absolute deviations from it, unscaled
    (x 1.4826, i.e. / 0.6745, for the standard deviation of Gaussian noise). The project's one
    robust noise estimate; callers pick the pixels (a 4-px subsample, the finite ones...).

    >>> med, mad = median_mad(np.array([1.0, 2.0, 4.0, 7.0, 100.0]))
    >>> float(med), float(mad)
    (4.0, 3.0)
    """
    med = np.median(values)
    return med, np.median(np.abs(values - med))


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion k/n (``(nan, nan)`` for n = 0).

    Examples
    --------
    >>> lo, hi = wilson(94, 100)
    >>> round(lo, 3), round(hi, 3)
    (0.875, 0.972)
    """
    if n <= 0:
        return float("nan"), float("nan")
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    # The interval always holds p, and is exactly [0, ...] at k = 0 and [..., 1] at k = n; rounding
    # alone would put the bound 1e-17 on the wrong side (e.g. k = 0 of 11, or 6 of 6).
    return float(min(p, max(0.0, centre - half))), float(max(p, min(1.0, centre + half)))


def rate(k: int, n: int) -> dict:
    """``{"k", "n", "rate", "lo", "hi"}`` with a 95 % Wilson interval.

    Examples
    --------
    >>> r = rate(3, 4)
    >>> r["k"], r["n"], r["rate"]
    (3, 4, 0.75)
    """
    k, n = int(k), int(n)
    lo, hi = wilson(k, n)
    return {"k": k, "n": n, "rate": (k / n) if n else float("nan"), "lo": lo, "hi": hi}


def format_rate(r: dict, digits: int = 3) -> str:
    """``"0.750 [0.301-0.954] (3/4)"`` for a :func:`rate` dict (``"-"`` when it has no cases).

    >>> format_rate(rate(3, 4))
    '0.750 [0.301-0.954] (3/4)'
    """
    if not r.get("n"):
        return "-"
    k = r["k"]
    ks = f"{k:.1f}" if isinstance(k, float) and not float(k).is_integer() else f"{int(k)}"  # a mean count
    return f"{r['rate']:.{digits}f} [{r['lo']:.{digits}f}-{r['hi']:.{digits}f}] ({ks}/{r['n']})"


def flag(p, threshold: float) -> np.ndarray:
    """The project's one threshold convention: ``p >= threshold``."""
    return np.asarray(p) >= threshold


def threshold_for_fpr(y, p, fpr_target: float) -> float:
    """Lowest threshold whose false-positive rate on (y, p) is <= *fpr_target* (``p >= t`` flags).

    Examples
    --------
    >>> y = [0, 0, 0, 0, 0, 1]
    >>> t = threshold_for_fpr(y, [0.1, 0.2, 0.3, 0.4, 0.9, 0.95], 0.2)
    >>> int(flag([0.1, 0.2, 0.3, 0.4, 0.9], t).sum())   # one false alarm in five allowed
    1
    """
    y = np.asarray(y).astype(bool)
    neg = np.sort(np.asarray(p)[~y])[::-1]
    if neg.size == 0:
        return 0.5
    k = int(np.floor(fpr_target * neg.size + 1e-9))  # allowed false positives
    if k >= neg.size:
        return float(neg[-1])
    # strictly above the (k+1)-th highest negative score
    return float(np.nextafter(neg[k], np.inf))


def confusion_rates(y, p, threshold: float = 0.5) -> dict:
    """Confusion counts and TPR/TNR/FPR (with Wilson intervals) at *threshold* (``p >= t``)."""
    y = np.asarray(y).astype(bool)
    pred = flag(p, threshold)
    tp, fn = int((pred & y).sum()), int((~pred & y).sum())
    tn, fp = int((~pred & ~y).sum()), int((pred & ~y).sum())
    out = {"threshold": float(threshold), "tp": tp, "fn": fn, "tn": tn, "fp": fp, "n_pos": tp + fn, "n_neg": tn + fp}
    for name, k, n in (("tpr", tp, tp + fn), ("tnr", tn, tn + fp), ("fpr", fp, tn + fp)):
        out[name] = k / n if n else float("nan")
        out[f"{name}_lo"], out[f"{name}_hi"] = wilson(k, n)
    out["accuracy"] = (tp + tn) / max(1, len(y))
    return out
