"""Evidence that accumulates over days, and registration residuals of existing blobs.

A blob is permanent: once it has appeared, every later frame carries it, while the history
median (30 frames) does not absorb it for about 15 days. The one-day difference of day ``i``
(``D_i``: median of the history minus frame ``i``, registered) holds the blob at its full depth
on every day since it appeared, with independent frame noise. The mean of the last ``k`` one-day
differences (:func:`window_means`) therefore carries a blob that appeared ``k`` or more days ago
at full depth with ~``sqrt(k)`` times less frame noise: a 4.5-sigma blob is ~6.4 sigma after 2
days and ~7.8 after 3. Each ``k`` is searched with the same detection core (masks, dipole and
bright-transient tests); the noise is measured on each mean image itself. The ``k`` whose mean
gives the highest significance estimates how many days ago the blob appeared (a blob that
appeared ``a`` days ago is diluted by ``a / k`` in the means over more days).

(The history medians of consecutive days share 29 of 30 frames, and the median of day ``i`` may
hold a blob that appeared within its last few frames; for a faint blob that lowers the median by
about (days in the history with the blob) / 30 of its depth, a small loss, and the one-day
difference of every day is computed once and reused.)

A sub-pixel registration error ``s`` leaves, around every existing blob, the residual
``grad(P) . s`` of the history's blob pattern ``P``: a crescent on the rim of a deep blob, whose
negative lobe can be weak enough to pass the dipole test. :func:`registration_explained` fits
that residual locally (a shift of ``P`` and a constant over a window around the candidate, by
least squares) and returns the part of the candidate's matched-filter signal the fit explains; the
monitor judges the candidate on the rest. A new blob on top of an old one keeps most of its
signal: a disc is not the gradient of the old blob, and the window holds the old blob's whole rim,
which fixes the shift.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from blobhelpers.blob.preprocess.difference import _blob_pattern  # the dip model's pattern, shared
from blobhelpers.blob.preprocess.difference import block_medians, upsample_matrix
from blobhelpers.core.stats import median_mad

__all__ = ["window_means", "registration_explained", "merge_windows", "strong_structure", "illumination_fix",
           "pattern_scale", "pixel_noise", "core_mean", "deeper_than_known"]


def window_means(diffs: list[np.ndarray], ks) -> dict[int, np.ndarray]:
    """``{k: mean of the last k of diffs}`` for each k of *ks* with ``2 <= k <= len(diffs)`` (newest last).

    NaN (masked) in any of the k frames stays NaN. Running sums: one addition per frame.

    >>> d = [np.full((2, 2), v, np.float32) for v in (1.0, 2.0, 6.0)]
    >>> {k: float(m[0, 0]) for k, m in window_means(d, (2, 3, 5)).items()}
    {2: 4.0, 3: 3.0}
    """
    out: dict[int, np.ndarray] = {}
    want = sorted({int(k) for k in ks if 2 <= int(k) <= len(diffs)})
    if not want:
        return out
    acc = np.zeros_like(diffs[-1], dtype=np.float32)
    for n, d in enumerate(reversed(diffs), start=1):
        acc += d
        if n in want:
            out[n] = (acc / np.float32(n)).astype(np.float32)
        if n >= want[-1]:
            break
    return out


def registration_explained(diff: np.ndarray, stack: np.ndarray, x: float, y: float, scale: float,
                           half: int = 32, min_gradient: float = 0.005, max_shift: float = 1.0) -> float:
    """The fraction (0..1) of a candidate's matched-filter signal that a local registration
    residual of the history's blob pattern explains.

    Over the ``(2 half + 1)`` px window around (*x*, *y*), the difference image is fitted by
    least squares as ``c + gx sx + gy sy`` (``g``: gradient of the stack's smooth blob pattern;
    ``s``: a residual shift, bounded by *max_shift* px). The explained fraction is
    ``sum(w * fit) / sum(w * diff)`` with ``w`` the candidate's matched filter (a Gaussian of sigma
    ``0.6 scale`` at the candidate), clipped to 0..1. With no blob edge in the window (the pattern's
    steepest gradient below *min_gradient* per px) nothing is explained: 0.

    >>> from blobhelpers.blob.sim.shapes import BlobShape, render
    >>> occ = np.zeros((128, 128), np.float32); render(occ, 64.0, 64.0, BlobShape(8.0), 0.3)
    >>> stack = 1 - occ                      # the history: a 30 % deep existing blob
    >>> moved = np.zeros_like(occ); render(moved, 64.25, 64.0, BlobShape(8.0), 0.3)
    >>> crescent = (1 - occ) - (1 - moved)   # today's frame shifted by 0.25 px: a rim residual
    >>> x = float(np.argmax(crescent[64]))
    >>> registration_explained(crescent, stack, x, 64.0, 2.0) > 0.8
    True
    >>> new = np.zeros_like(occ); render(new, 64.0 + 8.0, 64.0, BlobShape(4.0), 0.08)   # a new blob on the rim
    >>> registration_explained(new, stack, 72.0, 64.0, 3.5) < 0.3
    True
    """
    ny, nx = diff.shape
    xi, yi = int(round(x)), int(round(y))
    x0, x1 = max(0, xi - half), min(nx, xi + half + 1)
    y0, y1 = max(0, yi - half), min(ny, yi + half + 1)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return 0.0
    # the pattern of a slightly larger cut (no edge effects in the gradient)
    m = 3
    px0, px1, py0, py1 = max(0, x0 - m), min(nx, x1 + m), max(0, y0 - m), min(ny, y1 + m)
    # the history's blob pattern as the dip model of the difference image sees it (specks removed,
    # capped at the sky level, smoothed by 0.7 px)
    P = ndimage.gaussian_filter(_blob_pattern(stack[py0:py1, px0:px1]), 0.7)
    gy, gx = np.gradient(P)
    gy, gx = gy[y0 - py0:y1 - py0, x0 - px0:x1 - px0], gx[y0 - py0:y1 - py0, x0 - px0:x1 - px0]
    if float(np.hypot(gx, gy).max()) < min_gradient:
        return 0.0
    d = diff[y0:y1, x0:x1].astype(np.float64)
    ok = np.isfinite(d)
    if ok.sum() < 50:
        return 0.0
    # P shifted by s: P(x - s) ~ P - g.s, so the residual "stack - today" is ~ -g.s; fit its coefficients
    # on the window WITHOUT the candidate's own disc: a registration residual runs along the whole rim
    # of the old blob, so the rest of the rim fixes the shift; a new blob there cannot pull the fit.
    yy, xx = np.mgrid[y0:y1, x0:x1]
    sig = 0.6 * max(float(scale), 1.0)
    use = ok & ((xx - x) ** 2 + (yy - y) ** 2 > (max(3.0, 1.5 * float(scale))) ** 2)
    if use.sum() < 50:
        return 0.0
    A = np.stack([np.ones(use.sum()), -gx[use], -gy[use]], axis=1).astype(np.float64)
    coef, *_ = np.linalg.lstsq(A, d[use], rcond=None)
    s = np.clip(coef[1:], -max_shift, max_shift)
    fit = -(gx * s[0] + gy * s[1])  # the constant is the local background: not part of the residual
    w = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sig * sig)) * ok
    signal = float((w * np.where(ok, d - coef[0], 0.0)).sum())
    if signal <= 0:
        return 0.0
    return float(np.clip((w * fit).sum() / signal, 0.0, 1.0))


def strong_structure(diff: np.ndarray, nsigma: float = 5.0, smooth: float = 2.0, grow: int = 3,
                     max_size: int = 48) -> np.ndarray | None:
    """Pixels of strong positive (blob-like) structure in a difference image, or None if none.

    Single pixels are winsorised at 4 robust standard deviations, the image is smoothed by a
    Gaussian of *smooth* px; a pixel whose smoothed value lies more than
    *nsigma* robust standard deviations (MAD of a 4-px subsample) above the median belongs to a
    strong structure; only blob-sized pieces are kept (a connected piece whose bounding box spans at
    most *max_size* px each way: not a row, a column or a frame-wide pattern), and the mask is grown
    by *grow* px (a blob's soft edge). NaN pixels count as 0.
    Only the positive side is taken: the negative halo a deep blob leaves is its consequence, and
    masking it too would leave the blob's blocks with no pixels to measure.

    >>> d = np.random.default_rng(0).normal(0, 0.05, (256, 256)).astype(np.float32)
    >>> strong_structure(d) is None
    True
    >>> d[100:120, 100:120] += 0.1
    >>> m = strong_structure(d); bool(m[110, 110]), bool(m[10, 10])
    (True, False)
    >>> d[:, 200:203] += 0.1                                 # a bright column is not a blob
    >>> m = strong_structure(d); bool(m[110, 110]), bool(m[30, 201])
    (True, False)
    """
    d = np.where(np.isfinite(diff), diff, 0.0).astype(np.float32)
    # single hot, RTS or cosmic-ray pixels are winsorised first (as in the detection core): they are
    # not structure that biases a block median
    pmed, psig = (float(v) for v in median_mad(d[8::4, 8::4]))
    psig /= 0.6745
    if psig > 0:
        d = np.clip(d, pmed - 4 * psig, pmed + 4 * psig)
    s = ndimage.gaussian_filter(d, smooth, truncate=3.0)
    med, sig = (float(v) for v in median_mad(s[8::4, 8::4]))
    sig /= 0.6745
    if sig <= 0:
        return None
    hot = s - med > nsigma * sig
    if not hot.any():
        return None
    lab, n = ndimage.label(hot)
    big = [k + 1 for k, sl in enumerate(ndimage.find_objects(lab))
           if sl[0].stop - sl[0].start > max_size or sl[1].stop - sl[1].start > max_size]
    if big:
        hot &= ~np.isin(lab, big)
        if not hot.any():
            return None
    return ndimage.maximum_filter(hot.view(np.uint8), size=2 * grow + 1).astype(bool)


def pattern_scale(diff: np.ndarray, stack: np.ndarray, min_dip: float = 0.005, smooth: float = 1.0,
                  dips: np.ndarray | None = None) -> float:
    """The share of the history's blob pattern that the difference image holds, fitted over the
    whole frame (0 when the history has too few deep blob pixels).

    An additive level in the current frame that the history lacks (a bias pedestal left in a
    trimmed DN frame, a glow or a sky-dependent dark) does not divide out with the illumination:
    every blob of the frame then looks shallower (or deeper) by the same factor, and the difference
    shows each existing blob as a faint disc -- concentric, so no registration shift explains it.
    The factor ``a`` of ``diff ~ a (1 - P)`` is fitted by least squares on the pixels where the
    pattern (smoothed by *smooth* px) dips by more than 5 robust standard deviations of its own
    scatter and at least *min_dip* (existing blobs: a threshold relative to the noise, because a
    pedestal also compresses every normalised dip), with two rounds of 4-sigma clipping so that a
    new blob on an old one cannot pull it; the monitor subtracts ``a (1 - P)``.

    >>> occ = np.zeros((256, 256), np.float32)
    >>> from blobhelpers.blob.sim.shapes import BlobShape, render
    >>> for x, y in ((60.0, 60.0), (180.0, 90.0), (120.0, 200.0)):
    ...     render(occ, x, y, BlobShape(10.0), 0.3)
    >>> stack = 1 - occ
    >>> today = 1 - 0.9 * occ                      # an offset of ~11 % of the sky: dips 10 % shallower
    >>> round(pattern_scale(stack - today, stack), 3)   # (history - today) = -0.1 (1 - P)
    -0.1
    >>> pattern_scale(np.zeros_like(stack), stack)
    0.0
    """
    B = 1.0 - _blob_pattern(stack) if dips is None else dips   # dips: a precomputed 1 - P
    Bs = 1.0 - ndimage.gaussian_filter(1.0 - B, smooth)
    mid, spread = (float(v) for v in median_mad(Bs[8::4, 8::4]))
    spread /= 0.6745
    sel = np.isfinite(diff) & (Bs > max(min_dip, mid + 5.0 * spread))
    if sel.sum() < 200:
        return 0.0
    x = B[sel].astype(np.float64)
    y = diff[sel].astype(np.float64)
    keep = np.ones(x.size, bool)
    a = 0.0
    for _ in range(3):
        a = float((x[keep] * y[keep]).sum() / (x[keep] * x[keep]).sum())
        r = y - a * x
        mad = float(median_mad(r[keep])[1]) / 0.6745
        if mad <= 0:
            break
        keep = np.abs(r) <= 4.0 * mad
        if keep.sum() < 200:
            break
    return a


def illumination_fix(current: np.ndarray, mask: np.ndarray, block: int = 32) -> np.ndarray:
    """The factor that re-normalises a normalised frame with the pixels of *mask* left out.

    Each frame is divided by its own illumination, the block medians of the frame (32 px). A deep
    new blob covering much of a block lowers that block's median: the frame's normalisation then
    lifts the blob's surroundings, and the difference image (history minus frame) shows the blob
    shallower inside a NEGATIVE halo -- strong enough to look like a bright transient or the other
    lobe of a dipole, so the detection core rejects the blob (a bright transient does the reverse).
    The block medians of the normalised frame with *mask* left out, over those without it, give the
    factor to divide the frame by; it is exactly 1 wherever no block near the mask changed.

    >>> rng = np.random.default_rng(1)
    >>> frame = rng.normal(1.0, 0.02, (128, 128)).astype(np.float32)
    >>> frame[40:60, 40:60] *= 0.8                      # a deep blob: 40 % of a 32-px block
    >>> from blobhelpers.blob.preprocess.difference import normalize
    >>> norm = normalize(frame)
    >>> mask = np.zeros(frame.shape, bool); mask[36:64, 36:64] = True
    >>> fixed = norm / illumination_fix(norm, mask)
    >>> rim = (slice(32, 40), slice(40, 60))             # the sky just outside the blob
    >>> round(float(np.median(norm[rim])), 3), round(float(np.median(fixed[rim])), 3)
    (1.008, 0.999)
    >>> round(float(np.median(norm[40:60, 40:60])), 3), round(float(np.median(fixed[40:60, 40:60])), 3)
    (0.812, 0.802)
    >>> bool((illumination_fix(norm, mask)[:, 100:] == 1).all())
    True
    """
    ny, nx = current.shape
    by, bx = ny // block, nx // block
    cells = mask[:by * block, :bx * block].reshape(by, block, bx, block).any(axis=(1, 3))
    if not cells.any():
        return np.ones(current.shape, np.float32)
    with_all = block_medians(current, block)
    left_out = block_medians(np.where(mask, np.nan, current).astype(np.float32), block)  # NaN: empty
    q = np.ones((by, bx), np.float32)
    # a block keeps its factor 1 unless an eighth of its pixels remain to measure it (a block that
    # is mostly NaN, e.g. a masked corner, would otherwise get a median of a handful of pixels)
    left = np.where(mask, np.nan, current)[:by * block, :bx * block]
    n_left = np.isfinite(left).reshape(by, block, bx, block).sum(axis=(1, 3))
    sel = cells & np.isfinite(with_all) & (with_all > 0) & (n_left >= block * block // 8)
    q[sel] = left_out[sel] / with_all[sel]   # finite: a selected block keeps pixels to measure
    corr = (upsample_matrix(by, block) @ q @ upsample_matrix(bx, block).T).astype(np.float32)
    near = ndimage.binary_dilation(cells, iterations=1)      # bilinear weights reach one block out
    keep = ~np.kron(near, np.ones((block, block), bool))
    corr[keep] = 1.0
    return corr


def pixel_noise(img: np.ndarray) -> float:
    """Robust per-pixel noise of an image: 1.4826 x the MAD of a 4-px subsample of its finite pixels.

    >>> round(pixel_noise(np.random.default_rng(0).normal(0, 0.02, (512, 512))), 3)
    0.02
    """
    sub = img[8::4, 8::4]
    sub = sub[np.isfinite(sub)]
    if sub.size == 0:
        return float("nan")
    return float(median_mad(sub)[1]) * 1.4826


def change_on_raised(change: np.ndarray, before: np.ndarray, found: list[dict], x: float, y: float,
                     scale: float) -> tuple[float, dict | None]:
    """``(snr, candidate)``: what appeared near (*x*, *y*) since the day before -- a new blob on a blob
    the monitor has already alerted on -- and its significance.

    An alert already raised is in both days' differences in full (the history holds it only ~15
    days later), so *change* = today's difference minus the day *before*'s cancels it and keeps what
    appeared since. *found*: the detection core's candidates of *change*; the one nearest (*x*, *y*)
    within ``max(3, 0.5 scale)`` px is the new blob, its significance lowered by what the alerted blob
    explains by moving (the two days' pointings differ) or fading (:func:`change_explained`, fitted
    within ``max(12, 3 scale)`` px of (*x*, *y*), the alerted blob's peak today).
    ``(0, None)`` when nothing is there.

    >>> from blobhelpers.blob.sim.shapes import BlobShape, render
    >>> rng = np.random.default_rng(0)
    >>> old = np.zeros((128, 128), np.float32); render(old, 64.0, 64.0, BlobShape(8.0), 0.12)
    >>> before = old + rng.normal(0, 0.01, old.shape).astype(np.float32)
    >>> new = old + rng.normal(0, 0.01, old.shape).astype(np.float32); render(new, 66.0, 64.0, BlobShape(5.0), 0.03)
    >>> snr, q = change_on_raised(new - before, before, [{"x": 66.0, "y": 64.0, "snr": 9.0, "scale": 5.5}],
    ...                           64.5, 64.0, 8.0)
    >>> snr > 8.0, q["x"]
    (True, 66.0)
    >>> change_on_raised(new - before, before, [], 64.5, 64.0, 5.5)
    (0.0, None)
    """
    reach = max(3.0, 0.5 * float(scale))
    near = [q for q in found if np.hypot(q["x"] - x, q["y"] - y) <= reach]
    if not near:
        return 0.0, None
    q = min(near, key=lambda q: np.hypot(q["x"] - x, q["y"] - y))
    # the alerted blob's motion is fitted on a window around it (today's candidate is its peak)
    half = int(max(12.0, 3.0 * float(scale)))
    return float(q["snr"]) * (1.0 - change_explained(change, before, q["x"], q["y"], q["scale"], half,
                                                     centre=(x, y))), q


def change_explained(change: np.ndarray, before: np.ndarray, x: float, y: float, scale: float, half: int = 24,
                     max_shift: float = 3.0, iterations: int = 8, centre: tuple | None = None) -> float:
    """The fraction (0..1) of the matched-filter signal of a candidate at (*x*, *y*) in the day-over-day
    *change* that the alerted blob of the day *before* explains by moving or fading.

    Over the ``(2 half + 1)`` px window around *centre* (default: the candidate), today's difference
    (``before + change``) is fitted as ``c + (1 + a) B(x - s)`` with ``B`` the day before's difference
    (smoothed by 0.7 px): a shift *s*
    of the pointing between the two days (Gauss-Newton on the whole shifted blob, not a linearised
    crescent: the pointing may move by more than a pixel; at most *max_shift* px) and a fading
    ``a <= 0`` (the history median takes one more frame of the alerted blob each day); pixels off the
    fit by more than 3 robust sigma (a new blob) are left out of the next iteration. A new blob is
    neither, so what the fit explains is ``sum(w fit) / sum(w (change - c))`` with
    ``fit = (1 + a) B(x - s) - B`` and ``w`` the candidate's matched filter (a Gaussian of sigma
    ``0.6 scale``), clipped to 0..1.

    >>> from blobhelpers.blob.sim.shapes import BlobShape, render
    >>> old = np.zeros((96, 96), np.float32); render(old, 48.0, 48.0, BlobShape(4.0), 0.3)
    >>> moved = np.zeros_like(old); render(moved, 48.0, 46.6, BlobShape(4.0), 0.3)
    >>> crescent = moved - old                    # the same alerted blob, the pointing 1.4 px apart
    >>> change_explained(crescent, old, 48.0, 43.0, 3.5) > 0.8
    True
    >>> new = np.zeros_like(old); render(new, 50.0, 48.0, BlobShape(3.0), 0.05)   # a new blob on it
    >>> change_explained(new, old, 50.0, 48.0, 3.5) < 0.3
    True
    """
    ny, nx = change.shape
    xi, yi = (int(round(x)), int(round(y))) if centre is None else (int(round(centre[0])), int(round(centre[1])))
    x0, x1 = max(0, xi - half), min(nx, xi + half + 1)
    y0, y1 = max(0, yi - half), min(ny, yi + half + 1)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return 0.0
    B = ndimage.gaussian_filter(np.where(np.isfinite(before[y0:y1, x0:x1]), before[y0:y1, x0:x1],
                                         0.0).astype(np.float64), 0.7)
    today = (before[y0:y1, x0:x1].astype(np.float64) + change[y0:y1, x0:x1].astype(np.float64))
    ok = np.isfinite(today)
    if ok.sum() < 50:
        return 0.0
    coef = ndimage.spline_filter(B, order=3, mode="nearest")
    yy, xx = np.mgrid[0:y1 - y0, 0:x1 - x0].astype(np.float64)
    s = np.zeros(2)
    use = ok.copy()
    floor = 0.01 * float(np.abs(B).max()) + 1e-9   # noiseless input: a residual this small is a fit
    c, amp, Bs = 0.0, 1.0, B
    for _ in range(iterations):
        Bs = ndimage.map_coordinates(coef, [yy - s[1], xx - s[0]], order=3, mode="nearest", prefilter=False)
        gy, gx = np.gradient(Bs)
        # today ~ c + amp Bs - amp (gx dsx + gy dsy)
        A = np.stack([np.ones(use.sum()), Bs[use], -gx[use], -gy[use]], axis=1)
        sol, *_ = np.linalg.lstsq(A, today[use], rcond=None)
        c, amp = float(sol[0]), float(sol[1])
        if amp <= 0:
            return 0.0
        ds = sol[2:] / amp
        s = np.clip(s + ds, -max_shift, max_shift)
        resid = today - (c + amp * Bs)
        _, mad = median_mad(resid[ok])
        use = ok & (np.abs(resid) <= max(3.0 * 1.4826 * float(mad), floor))
        if np.hypot(*ds) < 1e-3 or use.sum() < 50:
            break
    a = min(amp - 1.0, 0.0)     # it cannot deepen: that would be a new blob
    fit = (1.0 + a) * Bs - B
    d = np.where(ok, change[y0:y1, x0:x1].astype(np.float64), 0.0)
    sig = 0.6 * max(float(scale), 1.0)
    w = np.exp(-((xx + x0 - x) ** 2 + (yy + y0 - y) ** 2) / (2 * sig * sig)) * ok
    signal = float((w * (d - c)).sum())   # the fit's constant: the change's background there
    if signal <= 0:
        return 0.0
    return float(np.clip((w * np.where(ok, fit, 0.0)).sum() / signal, 0.0, 1.0))


def core_mean(img: np.ndarray, x: float, y: float, radius: float) -> float:
    """Mean of the finite pixels of *img* within *radius* px of (*x*, *y*) (NaN if none): the
    depth of :func:`~blobhelpers.blob.detect.detection.measure_blob` when *img* is a difference
    image, the dip the history holds when *img* is ``1 - stack``.

    >>> a = np.zeros((20, 20)); a[8:13, 8:13] = 0.1
    >>> round(core_mean(a, 10.0, 10.0, 1.5), 3), round(core_mean(a, 3.0, 3.0, 1.5), 3)
    (0.1, 0.0)
    """
    ny, nx = img.shape
    r = int(np.ceil(radius))
    x0, x1 = max(0, int(round(x)) - r), min(nx, int(round(x)) + r + 1)
    y0, y1 = max(0, int(round(y)) - r), min(ny, int(round(y)) + r + 1)
    if x0 >= x1 or y0 >= y1:
        return float("nan")
    yy, xx = np.mgrid[y0:y1, x0:x1]
    cut = img[y0:y1, x0:x1]
    sel = ((xx - x) ** 2 + (yy - y) ** 2 <= radius * radius) & np.isfinite(cut)
    return float(cut[sel].mean()) if sel.any() else float("nan")


def deeper_than_known(seen: float, known_depth: float | None, history_dip: float, noise: float,
                      nsigma: float = 3.0) -> bool:
    """Whether a candidate on a known blob (or an alert already raised) is more than that blob can
    leave in the difference image: a new blob on top of an old one.

    A blob leaves, besides registration residuals, at most what the history lacks of it: its
    depth *known_depth* minus the dip the history (median stack) already holds at the candidate,
    *history_dip*. A candidate of depth *seen* is new structure when it exceeds twice that by
    *nsigma* x *noise* (the noise of its depth; twice, because an alert's recorded depth may be
    diluted when a day window raised it) and is at least half as deep as the history's dip (what a
    blob the history holds leaves centred on itself -- a sharper or slightly deeper copy today under
    pointing jitter -- scales with its depth and stays well below half of it; a new blob shallower
    than half of an old one it sits on is not found this way). With the depth unknown, the blob can leave nothing
    only when the history holds at least half of what is seen there; otherwise the candidate is the
    blob (False).

    >>> deeper_than_known(0.02, 0.02, 0.0, 0.003)   # a fresh alert, not yet in the history: itself
    False
    >>> deeper_than_known(0.075, 0.026, 0.0, 0.003)  # a 10 % blob appears on a fresh 2.6 % alert
    True
    >>> deeper_than_known(0.03, None, 0.022, 0.003)  # on a catalogued blob the history holds
    True
    >>> deeper_than_known(0.03, None, 0.002, 0.003)  # a catalogued blob the history lacks: itself
    False
    >>> deeper_than_known(0.08, None, 0.30, 0.002)   # 8 % at the centre of a 30 % blob: its residual
    False
    """
    if not (np.isfinite(seen) and np.isfinite(history_dip)):
        return False
    if known_depth is None:
        if history_dip < 0.5 * seen:
            return False
        expected = 0.0
    else:
        expected = max(0.0, float(known_depth) - history_dip)
    return bool(seen > 2.0 * expected + nsigma * noise and seen >= 0.5 * history_dip)


#: The fields of a place in the log, in this order (then ``windows``, ``appeared_days_ago``).
PLACE_KEYS = ("x", "y", "radius", "depth", "snr", "snr_raw", "neg_snr", "dip", "probability", "veto", "new", "k",
              "registration_explained", "near_known", "on_known", "on_raised")


def merge_windows(members: list[dict], px: float = 5.0) -> tuple[list[dict], list[int]]:
    """One candidate per place from the candidates of every day window (key ``k``).

    The members are taken alerts first (``new``), then by how far they pass their window's
    threshold (``margin``); one within ``max(px, radius)`` of a place already made joins it. The
    first member of a place speaks for it (its fields); the place lists every window that saw it in
    ``windows`` (k, snr, probability, neg_snr, depth, new; by k) and ``appeared_days_ago``, the k of
    the best significance minus 1. Returns the places and, for each, the index of its member.

    >>> m = [{"k": 1, "x": 10.0, "y": 10.0, "radius": 3.0, "snr": 5.0, "margin": -1.5, "new": False},
    ...      {"k": 2, "x": 11.0, "y": 10.0, "radius": 3.0, "snr": 7.5, "margin": 0.5, "new": True},
    ...      {"k": 3, "x": 80.0, "y": 10.0, "radius": 3.0, "snr": 6.0, "margin": -1.0, "new": False}]
    >>> for d in m: d.update(probability=0.9, neg_snr=-1.0, depth=0.03)
    >>> places, rep = merge_windows(m)
    >>> rep, [[w["k"] for w in p["windows"]] for p in places], [p["appeared_days_ago"] for p in places]
    ([1, 2], [[1, 2], [3]], [1, 2])
    """
    places: list[dict] = []
    rep_of: list[int] = []
    for n in sorted(range(len(members)), key=lambda n: (-members[n]["new"], -members[n]["margin"])):
        c = members[n]
        brief = {key: c[key] for key in ("k", "snr", "probability", "neg_snr", "depth", "new")}
        home = next((o for o in places if np.hypot(o["x"] - c["x"], o["y"] - c["y"]) <= max(px, o["radius"])), None)
        if home is None:
            places.append({**{key: c[key] for key in PLACE_KEYS if key in c}, "windows": [brief]})
            rep_of.append(n)
        else:
            home["windows"].append(brief)
    for p in places:
        p["windows"].sort(key=lambda w: w["k"])
        p["appeared_days_ago"] = max(p["windows"], key=lambda w: w["snr"])["k"] - 1
    return places, rep_of
