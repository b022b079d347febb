"""Blob difference images: the latest frame against the median of the previous N.

The ISR 2021-08 input is a *blob difference image*: the median of the previous 30 CSM-monitor
frames minus the latest frame, so that a blob that appeared since then is POSITIVE. Here
each frame is first divided by its own smooth illumination (airglow level and large-scale
gradients change from day to day), so the difference is in units of the local sky: a new
blob of central depth ``d`` appears with peak value ``~ d``.

The CSM does not return to exactly the same position every day, so the blob pattern moves
by a fraction of a pixel and existing blobs leave dipoles ("dips") in the difference. With
``register=True`` the sub-pixel shift of the latest frame's blob pattern relative to the
stack is measured (a global Lucas-Kanade fit on the smoothed images) and the predicted dip
pattern is subtracted. The correction moves only the (smoothed) blob pattern of the stack,
not the detector's fixed pixel-to-pixel flat field, which does not move with the CSM.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from blobhelpers.blob.io.fitsio import BORDER, Frame, frame_time, read_frame, read_header, to_full_frame
from blobhelpers.core.errors import InputError
from blobhelpers.core.parallel import default_workers
from blobhelpers.core.stats import median_mad

__all__ = [
    "illumination",
    "block_medians",
    "fill_grid",
    "upsample_matrix",
    "normalize",
    "median_network",
    "median_stack",
    "normalize_many",
    "single_threaded_blas",
    "estimate_shift",
    "dip_model",
    "Difference",
    "blob_difference",
    "difference_of_normalized",
    "difference_from_stack",
    "shift_cubic",
    "order_frames",
    "difference_from_files",
]


def block_medians(image: np.ndarray, block: int = 32) -> np.ndarray:
    """Medians of the *block* x *block* blocks of *image*, NaN/inf ignored (NaN for an empty block).

    >>> import numpy as np
    >>> a = np.arange(16, dtype=np.float32).reshape(4, 4)
    >>> a[0, 1] = np.nan
    >>> block_medians(a, 2).tolist()     # top left: 0, 4, 5 and one bad value -> (4 + 5) / 2
    [[4.5, 4.5], [10.5, 12.5]]
    """
    ny, nx = image.shape
    if ny % block or nx % block:
        raise ValueError(f"image shape {image.shape} is not a multiple of block={block}")
    work = np.asarray(image, np.float32).reshape(ny // block, block, nx // block, block)
    # a copy, always (partitioned in place below; the caller's image is left as it was)
    work = np.array(work.transpose(0, 2, 1, 3), order="C").reshape(ny // block, nx // block, block * block)
    n = work.shape[-1]
    k = n // 2
    # The median as np.median computes it (mean of the two middle values for an even count),
    # from ONE partition: the upper middle value at rank k, the lower one the maximum left of it.
    # NaN-aware without nanmedian's slow per-block loop: a block's b bad values count as
    # floor(b/2) values below all others and the rest above (the median of its good values: exact
    # for an even b, within half a rank otherwise); they are set to +inf, which puts the wanted
    # values at rank k - floor(b/2) of the block: the few blocks with two or more bad values are
    # partitioned again there. An all-bad block gives NaN.
    bad = ~np.isfinite(work)
    half = None
    if bad.any():
        half = bad.sum(axis=-1) // 2
        np.copyto(work, np.float32(np.inf), where=bad)
    work.partition(k, axis=-1)

    def middle(part: np.ndarray, r: int) -> np.ndarray:
        return part[..., r] if n % 2 else (part[..., :r].max(axis=-1) + part[..., r]) / np.float32(2)

    with np.errstate(invalid="ignore"):
        med = np.asarray(middle(work, k), np.float32)
        if half is not None:
            for m in np.unique(half[half > 0]):
                sel = half == m
                r = k - int(m)
                if r < (0 if n % 2 else 1):   # (nearly) every value bad
                    med[sel] = np.nan
                    continue
                part = work[sel]
                part.partition(r, axis=-1)
                med[sel] = middle(part, r)
    med[~np.isfinite(med)] = np.nan
    return med


def fill_grid(med: np.ndarray, fallback: float = 1.0) -> np.ndarray:
    """Fill NaN cells of a coarse grid from their finite neighbours (normalised convolution)."""
    good = np.isfinite(med)
    if good.all():
        return med
    if not good.any():
        return np.full_like(med, fallback)
    out = med.copy()
    vals = np.where(good, med, 0.0)
    w = good.astype(np.float32)
    sigma = 1.0
    while not np.isfinite(out).all():
        num = ndimage.gaussian_filter(vals, sigma, mode="nearest")
        den = ndimage.gaussian_filter(w, sigma, mode="nearest")
        fill = (den > 1e-6) & ~np.isfinite(out)
        out[fill] = num[fill] / den[fill]
        sigma *= 2
        if sigma > 4 * max(med.shape):
            out[~np.isfinite(out)] = float(np.nanmedian(med))
    return out


def illumination(image: np.ndarray, block: int = 32) -> np.ndarray:
    """Smooth illumination map: block medians of *image* interpolated back to full size.

    Parameters
    ----------
    image : numpy.ndarray
        2-D frame (NaN allowed). Its size must be a multiple of *block*.
    block : int
        Block size in pixels; blobs (radius <= ~15 px) are much smaller than the default 32
        and barely move a block median. Empty blocks are filled from their neighbours.
    """
    ny, nx = image.shape
    med = fill_grid(block_medians(image, block)).astype(np.float32)
    return (upsample_matrix(ny // block, block) @ med @ upsample_matrix(nx // block, block).T).astype(np.float32)


def upsample_matrix(n: int, factor: int) -> np.ndarray:
    """(n*factor, n) bilinear interpolation weights between block centres, edges held constant.

    ``W @ m @ W.T`` equals ``scipy.ndimage.zoom(m, factor, order=1, mode="nearest",
    grid_mode=True)`` and is ~5x faster for a 32x32 -> 1024x1024 map.

    >>> import numpy as np
    >>> from scipy import ndimage
    >>> m = np.random.default_rng(0).random((4, 5)).astype("f4")
    >>> ref = ndimage.zoom(m, 8, order=1, mode="nearest", grid_mode=True)
    >>> bool(np.allclose(upsample_matrix(4, 8) @ m @ upsample_matrix(5, 8).T, ref, atol=1e-6))
    True
    """
    c = (np.arange(n * factor) + 0.5) / factor - 0.5
    i0 = np.floor(c).astype(int)
    f = (c - i0).astype(np.float32)
    w = np.zeros((n * factor, n), np.float32)
    rows = np.arange(n * factor)
    np.add.at(w, (rows, np.clip(i0, 0, n - 1)), 1.0 - f)
    np.add.at(w, (rows, np.clip(i0 + 1, 0, n - 1)), f)
    return w


def normalize(image: np.ndarray, block: int = 32, mask: np.ndarray | None = None) -> np.ndarray:
    """Divide *image* by its smooth illumination (reference-pixel border left near 0).

    The illumination is measured on the light-sensitive area only (the 5-px reference border
    of a 1024x1024 frame has no light), so the normalised frame is ~1 everywhere it is lit.
    Pixels where *mask* is True are left out of the illumination (blocks left empty are
    interpolated from their neighbours).
    """
    img = np.asarray(image, np.float32)
    b = BORDER if img.shape[0] == 1024 else 0
    lit = img.copy()
    if b:
        # Fill the unlit border with the nearest lit values so edge blocks are not biased.
        lit[:b, :] = lit[b:b + 1, :]
        lit[-b:, :] = lit[-b - 1:-b, :]
        lit[:, :b] = lit[:, b:b + 1]
        lit[:, -b:] = lit[:, -b - 1:-b]
    if mask is not None:
        lit[mask] = np.nan
    ill = illumination(lit, block)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = img / np.where(ill > 0, ill, np.nan)
    return out.astype(np.float32, copy=False)


def _batcher_pairs(m: int) -> list[tuple[int, int]]:
    """Comparators ``(i, j)`` (i < j: the minimum goes to i) of Batcher's odd-even merge sort of
    *m* wires, *m* a power of two."""
    pairs = []
    p = 1
    while p < m:
        k = p
        while k >= 1:
            for j in range(k % p, m - k, 2 * k):
                for i in range(min(k, m - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return pairs


@functools.lru_cache(maxsize=None)
def median_network(n: int) -> tuple[tuple[tuple[int, int], ...], tuple[int, ...]]:
    """A selection network for the median of *n* values: ``(comparators, outputs)``.

    Batcher's sorting network for the next power of two, its extra wires fixed at -inf and
    +inf (half each, so the middle ranks stay in the middle) and the comparators they decide
    turned into renamings; then every comparator that cannot reach the middle rank(s) is
    dropped. Each comparator ``(a, b)`` puts the minimum of values *a*, *b* into *a* and the
    maximum into *b*; the median is value ``outputs[0]`` (odd *n*) or the mean of the two
    *outputs* (even *n*). 30 values: 147 comparators.

    >>> import numpy as np
    >>> comps, outs = median_network(5)
    >>> v = [3.0, 1.0, 4.0, 1.5, 9.0]
    >>> for a, b in comps:
    ...     v[a], v[b] = min(v[a], v[b]), max(v[a], v[b])
    >>> v[outs[0]]
    3.0
    """
    m = 1
    while m < n:
        m *= 2
    low = (m - n) // 2
    wires: list = ["lo"] * low + list(range(n)) + ["hi"] * (m - n - low)
    comps = []
    for i, j in _batcher_pairs(m):
        a, b = wires[i], wires[j]
        if a == "lo" or b == "hi":
            continue                        # already in order
        if a == "hi" or b == "lo":
            wires[i], wires[j] = b, a       # decided by the sentinel: a renaming
            continue
        comps.append((a, b))
    k = n // 2
    outs = tuple(wires[low + r] for r in ((k,) if n % 2 else (k - 1, k)))
    need, kept = set(outs), []
    for a, b in reversed(comps):
        if a in need or b in need:
            kept.append((a, b))
            need |= {a, b}
    return tuple(reversed(kept)), outs


def median_stack(frames, fill: float = 1.0, threads: int | None = None) -> np.ndarray:
    """Pixel-wise median of normalised frames.

    NaN pixels are replaced by *fill* (the normalised sky level) before the median: with one
    or two NaN among 30 values this moves the median by at most a rank, far cheaper than
    ``nanmedian``. A pixel NaN in every frame stays finite (= *fill*); the current frame's
    NaN propagate to the difference and are handled by the preprocessing.

    Up to 64 frames, the median is selected by a network of elementwise minima and maxima
    (:func:`median_network`) on bands of rows that stay in the CPU cache: the same values as
    ``np.partition`` (the median of an even count is the mean of the two middle values, in
    float32), ~5x faster for 30 frames. More frames: ``np.partition``. The bands run in
    *threads* threads (numpy releases the GIL; default: the CPU count, at most 4).

    >>> import numpy as np
    >>> f = [np.full((4, 4), v, np.float32) for v in (3.0, 1.0, np.nan, 2.0, 5.0)]
    >>> float(median_stack(f)[0, 0])   # NaN -> 1.0 -> median of 3, 1, 1, 2, 5
    2.0
    >>> rng = np.random.default_rng(0)
    >>> f = [rng.normal(size=(40, 9)).astype(np.float32) for _ in range(30)]
    >>> bool(np.array_equal(median_stack(f), np.median(np.stack(f), axis=0).astype(np.float32)))
    True
    """
    from concurrent.futures import ThreadPoolExecutor

    frames = list(frames)
    if not frames:
        raise InputError("median_stack: no frames given")
    shape = np.shape(frames[0])
    n = len(frames)
    k = n // 2
    out = np.empty(shape, np.float32)
    rows = shape[0]
    network = median_network(n) if n <= 64 else None
    threads = threads or default_workers(4)
    # bands of the network: 16 rows stay in one core's cache; threads need longer calls (the GIL)
    band = (16 if threads == 1 else 64) if network is not None else max(8, rows // 16)

    def work(y0: int) -> None:
        sl = slice(y0, min(rows, y0 + band))
        if network is not None:
            comps, outs = network
            v = [np.array(f[sl], np.float32) for f in frames]
            for a in v:
                np.nan_to_num(a, copy=False, nan=fill, posinf=fill, neginf=fill)
            tmp = np.empty_like(v[0])
            for a, b in comps:
                np.minimum(v[a], v[b], out=tmp)
                np.maximum(v[a], v[b], out=v[b])
                v[a], tmp = tmp, v[a]
            out[sl] = v[outs[0]] if len(outs) == 1 else np.float32(0.5) * (v[outs[0]] + v[outs[1]])
            return
        cube = np.stack([np.asarray(f[sl], np.float32) for f in frames])
        np.nan_to_num(cube, copy=False, nan=fill, posinf=fill, neginf=fill)
        if n % 2:
            out[sl] = np.partition(cube, k, axis=0)[k]
        else:
            part = np.partition(cube, (k - 1, k), axis=0)
            out[sl] = 0.5 * (part[k - 1] + part[k])

    starts = range(0, rows, band)
    if threads > 1:
        with ThreadPoolExecutor(threads) as ex:
            list(ex.map(work, starts))
    else:
        for y0 in starts:
            work(y0)
    return out


def normalize_many(images, block: int = 32, threads: int | None = None) -> list[np.ndarray]:
    """:func:`normalize` of several frames (padded to full frame) in a thread pool.

    The illumination's upsampling is a small matrix product: BLAS is held to one thread while the
    frames run in parallel (BLAS threads inside each of them would only compete for the cores)."""
    with single_threaded_blas():
        return list(_pool_map(lambda im: normalize(to_full_frame(im), block), images, threads))


def _pool_map(fn, items, threads: int | None = None):
    """``map(fn, items)`` in *threads* threads (default: the CPU count, at most 4; ``BLOBHELPERS_WORKERS``
    overrides), in order."""
    from concurrent.futures import ThreadPoolExecutor

    threads = threads or default_workers(4)
    if threads <= 1:
        return map(fn, items)
    with ThreadPoolExecutor(threads) as ex:
        return list(ex.map(fn, items))


class _Finished:
    """A result already made, in the place of a future."""

    def __init__(self, value):
        self._value = value

    def result(self):
        return self._value


def _now(fn, *args, **kwargs) -> _Finished:
    """``fn(*args, **kwargs)`` run now, as a finished future (no pool)."""
    return _Finished(fn(*args, **kwargs))


def single_threaded_blas():
    """Context in which BLAS runs on one thread (for work that is parallel already); the
    results of the small products here do not depend on BLAS's thread count."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def _valid_mask(shape, margin: int) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[margin:-margin, margin:-margin] = True
    return m


def _blob_pattern(image: np.ndarray) -> np.ndarray:
    """Keep the extended, dark blob pattern of a normalised image, drop detector-fixed specks.

    Hot, RTS and bad pixels are fixed to the detector and do not move with the CSM; they are
    point-like and mostly positive, whereas blobs are extended obscurations. A 3x3 median
    removes the specks and values above the sky level (1) are capped. The unlit 5-px border
    of a full frame is set to the sky level.
    """
    filled = np.where(np.isfinite(image), image, 1.0).astype(np.float32)
    if filled.shape == (1024, 1024):
        # The unlit reference-pixel border is not a shadow on the CSM and does not move with
        # it; left in, it would be "shifted" into a strong false dipole along the edges.
        filled[:BORDER, :] = filled[-BORDER:, :] = 1.0
        filled[:, :BORDER] = filled[:, -BORDER:] = 1.0
    return np.minimum(median3x3(filled), 1.0)


def median3x3(image: np.ndarray) -> np.ndarray:
    """3x3 median filter, identical to ``scipy.ndimage.median_filter(image, size=3)`` (mode
    "reflect") for finite input, ~5x faster: a median-of-9 selection network of elementwise
    minima and maxima over the 9 shifted views (19 exchanges; the median is selected exactly,
    nothing is averaged).

    >>> import numpy as np
    >>> from scipy import ndimage
    >>> a = np.random.default_rng(1).normal(size=(40, 33)).astype("f4")
    >>> bool(np.array_equal(median3x3(a), ndimage.median_filter(a, size=3)))
    True
    """
    a = np.asarray(image, np.float32)
    p = np.pad(a, 1, mode="symmetric")  # scipy's "reflect" (edge value repeated)
    ny, nx = a.shape
    v = [p[dy:dy + ny, dx:dx + nx] for dy in range(3) for dx in range(3)]

    def sort2(i, j):
        lo, hi = np.minimum(v[i], v[j]), np.maximum(v[i], v[j])
        v[i], v[j] = lo, hi

    # Paeth's median-of-9 network (the median ends in v[4])
    for i, j in ((1, 2), (4, 5), (7, 8), (0, 1), (3, 4), (6, 7), (1, 2), (4, 5), (7, 8), (0, 3), (5, 8), (4, 7),
                 (3, 6), (1, 4), (2, 5), (4, 7), (4, 2), (6, 4), (4, 2)):
        sort2(i, j)
    return np.ascontiguousarray(v[4])


def estimate_shift(stack: np.ndarray, current: np.ndarray, sigma: float = 1.5, iterations: int = 5,
                   margin: int = 16, grad_quantile: float = 0.97, select_sigma: float = 3.0,
                   stack_pattern: np.ndarray | None = None, pool=None) -> tuple[float, float]:
    """Measure the sub-pixel shift (sx, sy) of the blob pattern of *current* relative to *stack*.

    Model: ``current(x) = stack(x - s)`` for the blob pattern, so the smoothed difference
    ``G*(stack - current) ~ B - shift(B, s)`` with ``B = G*stack``. The shift is found by
    Gauss-Newton on the pixels with the strongest stack gradients (blob edges), rejecting
    outliers (new blobs, cosmic rays) at 4 sigma. The pixels are selected on a more heavily
    smoothed stack (*select_sigma*): selecting on the same noisy gradients that enter the fit
    favours noise peaks and biases the shift towards zero.

    Accuracy on simulated frames: a few hundredths of a pixel with a steady history, up to
    ~0.1 px when new blobs and jitter blur the stack (see the stage-01 report).

    *stack_pattern* may pass a precomputed ``_blob_pattern(stack)`` (it is shared with
    :func:`dip_model`). With a thread *pool* (``concurrent.futures``), the independent filters
    run in it side by side (the same results).

    Returns
    -------
    (sx, sy) : tuple of float
        Shift in pixels along x (columns) and y (rows).
    """
    run = pool.submit if pool is not None else _now
    s_fill = _blob_pattern(stack) if stack_pattern is None else stack_pattern
    f_sel = run(ndimage.gaussian_filter, s_fill, select_sigma)
    f_B = run(ndimage.gaussian_filter, s_fill, sigma)
    c_fill = _blob_pattern(np.where(np.isfinite(current), current, stack))
    f_C = run(ndimage.gaussian_filter, c_fill, sigma)
    B = f_B.result()
    # the cubic-spline coefficients of B (used below) do not depend on the shift
    f_coef = run(ndimage.spline_filter, B, order=3, mode="nearest", output=np.float64)
    D = B - f_C.result()
    gy, gx = np.gradient(f_sel.result())
    g2 = gx * gx + gy * gy
    valid = _valid_mask(B.shape, margin) & np.isfinite(current)
    thresh = np.quantile(g2[valid], grad_quantile)
    ys, xs = np.nonzero(valid & (g2 >= thresh))
    # Only the selected pixels enter the fit, and only they and their 4 neighbours (for the
    # central-difference gradient) of the shifted stack are needed. The cubic-spline coefficients
    # of B do not depend on the shift, so they are computed once and the shifted stack is
    # interpolated at those points alone: the values of ndimage.shift(B, ..., order=3,
    # mode="nearest") there, bit for bit, and the fit below does the arithmetic of a full-image
    # version in the same order and precision (float32), so the shift is the same to the last bit.
    coef = f_coef.result()
    stencil = ((0, 0), (0, 1), (0, -1), (1, 0), (-1, 0))  # (dy, dx): centre, x+1, x-1, y+1, y-1
    pts_y = np.concatenate([ys + dy for dy, _ in stencil]).astype(np.float64)
    pts_x = np.concatenate([xs + dx for _, dx in stencil]).astype(np.float64)
    n = ys.size
    Bu, Du = B[ys, xs], D[ys, xs]
    s = np.zeros(2)
    resid_sigma = None
    for _ in range(iterations):
        if s.any():
            v = ndimage.map_coordinates(coef, [pts_y - s[1], pts_x - s[0]], order=3, mode="nearest",
                                        prefilter=False, output=B.dtype)
        else:
            v = np.concatenate([B[ys + dy, xs + dx] for dy, dx in stencil])
        c0, xp, xm, yp, ym = (v[k * n:(k + 1) * n] for k in range(5))
        r = Du - (Bu - c0)
        jx, jy = (xp - xm) / 2.0, (yp - ym) / 2.0  # np.gradient's interior rule
        sel = slice(None) if resid_sigma is None else np.abs(r) < 4 * resid_sigma
        a, b_, c = (jx[sel] ** 2).sum(), (jx[sel] * jy[sel]).sum(), (jy[sel] ** 2).sum()
        rhs = np.array([(jx[sel] * r[sel]).sum(), (jy[sel] * r[sel]).sum()])
        det = a * c - b_ * b_
        if not np.isfinite(det) or det <= 0:
            break
        ds = np.array([c * rhs[0] - b_ * rhs[1], a * rhs[1] - b_ * rhs[0]]) / det
        s += ds
        resid_sigma = 1.4826 * median_mad(r)[1]
        if np.hypot(*ds) < 1e-3:
            break
    return float(s[0]), float(s[1])


def dip_model(stack: np.ndarray, shift: tuple[float, float], sigma: float = 0.7,
              stack_pattern: np.ndarray | None = None, smoothed: np.ndarray | None = None) -> np.ndarray:
    """Predicted dip pattern ``P - shift(P, s)`` of the stack's blob pattern for shift *s*.

    ``P`` is the stack lightly smoothed (Gaussian *sigma* px) so that the pixel-scale flat
    field and stack noise, which do not move with the CSM, are not shifted into the model.
    *smoothed* may pass ``P`` made already.
    """
    if smoothed is not None:
        P = smoothed
    else:
        filled = _blob_pattern(stack) if stack_pattern is None else stack_pattern
        P = ndimage.gaussian_filter(filled, sigma) if sigma > 0 else filled
    return (P - shift_cubic(P, shift)).astype(np.float32)


#: Rows of padding of scipy's cubic-spline prefilter in mode "nearest" (``ndimage.shift`` pads by this
#: much before the prefilter; :func:`shift_cubic` repeats it).
_SPLINE_PAD = 12


def shift_cubic(image: np.ndarray, shift: tuple[float, float], threads: int | None = None) -> np.ndarray:
    """*image* shifted by *shift* = (sx, sy) px by cubic-spline interpolation, edges "nearest":
    ``scipy.ndimage.shift(image, (sy, sx), order=3, mode="nearest")`` to the last bit, in *threads*
    threads (default :func:`~blobhelpers.core.parallel.default_workers`).

    scipy pads the image by 12 edge values, runs the spline prefilter along each axis (float64)
    and interpolates; all three run on one thread. Here the prefilter down the columns (axis 0)
    runs on bands of columns and the one along the rows (axis 1) on bands of rows (each line is
    filtered alone: the same numbers), and the interpolation on bands of output rows, each from
    its rows of coefficients plus a margin wider than the shift (every value it reads is the one
    scipy reads). Shifts beyond 9 px, small images and one thread: scipy's own call.

    >>> import numpy as np
    >>> from scipy import ndimage
    >>> a = np.random.default_rng(2).normal(size=(90, 70)).astype("f4")
    >>> bool(np.array_equal(shift_cubic(a, (0.4, -1.3), threads=3), ndimage.shift(a, (-1.3, 0.4), order=3, mode="nearest")))
    True
    """
    from concurrent.futures import ThreadPoolExecutor

    img = np.asarray(image)
    sx, sy = float(shift[0]), float(shift[1])
    threads = threads or default_workers()
    ny, nx = img.shape
    far = max(abs(sx), abs(sy))
    if threads <= 1 or min(ny, nx) < 64 or not np.isfinite(far) or far > _SPLINE_PAD - 3:
        return ndimage.shift(img, (sy, sx), order=3, mode="nearest")
    npad = _SPLINE_PAD
    coef = np.pad(img, npad, mode="edge").astype(np.float64)
    cols = np.linspace(0, coef.shape[1], threads + 1).astype(int)
    rows = np.linspace(0, coef.shape[0], threads + 1).astype(int)
    edges = np.linspace(0, ny, threads + 1).astype(int)
    out = np.empty(img.shape, img.dtype)
    margin = int(np.ceil(far)) + 3

    def down_columns(b):   # the prefilter along axis 0, on a band of columns
        band = coef[:, cols[b]:cols[b + 1]]
        ndimage.spline_filter1d(band, 3, axis=0, output=band, mode="nearest")

    def along_rows(b):     # the prefilter along axis 1, on a band of rows
        band = coef[rows[b]:rows[b + 1]]
        ndimage.spline_filter1d(band, 3, axis=1, output=band, mode="nearest")

    def interpolate(b):
        r0, r1 = edges[b], edges[b + 1]
        a0, a1 = max(0, r0 - margin), min(ny, r1 + margin)
        part = ndimage.shift(coef[a0:a1 + 2 * npad], (sy, sx), order=3, mode="nearest", prefilter=False,
                             output=img.dtype)
        out[r0:r1] = part[npad + r0 - a0:npad + r1 - a0, npad:npad + nx]

    with ThreadPoolExecutor(threads) as ex:
        for step in (down_columns, along_rows, interpolate):
            list(ex.map(step, range(threads)))
    return out


@dataclass
class Difference:
    """A blob difference image and how it was made.

    Attributes
    ----------
    data : numpy.ndarray
        ``median(previous N) - current`` in units of the local sky (blobs positive), 1024x1024.
    stack : numpy.ndarray
        The normalised median stack.
    shift : tuple of float
        Measured (sx, sy) shift of the current blob pattern relative to the stack (0, 0 if not
        registered).
    registered : bool
    n_history : int
    meta : dict
        Free-form provenance (file names, dates...).
    pattern : numpy.ndarray or None
        The stack's blob pattern (specks removed, capped at the sky level) when the registration
        made it; shared with later steps so that it is made once.
    """

    data: np.ndarray
    stack: np.ndarray
    shift: tuple[float, float] = (0.0, 0.0)
    registered: bool = False
    n_history: int = 0
    meta: dict = field(default_factory=dict)
    pattern: np.ndarray | None = field(default=None, repr=False, compare=False)  # _blob_pattern(stack), if made

    def header(self) -> dict:
        """FITS keywords describing this difference image."""
        return {
            "BUNIT": ("SKYFRAC", "fraction of the local sky level"),
            "DIFFTYPE": ("MEDIAN-MINUS-CURRENT", "blobs positive"),
            "NHISTORY": (self.n_history, "frames in the median stack"),
            "REGISTER": (bool(self.registered), "dip correction applied"),
            "SHIFTX": (round(self.shift[0], 5), "measured x shift of current vs stack (px)"),
            "SHIFTY": (round(self.shift[1], 5), "measured y shift of current vs stack (px)"),
            **{k: v for k, v in self.meta.items() if len(k) <= 8},
        }


def blob_difference(history, current: np.ndarray, register: bool = True, sigma: float = 0.7,
                    block: int = 32) -> Difference:
    """Make the blob difference image of *current* against the median of *history*.

    Parameters
    ----------
    history : sequence of numpy.ndarray
        Previous frames (raw units; 1024x1024, or 1014x1014 which are padded with NaN).
    current : numpy.ndarray
        The latest frame.
    register : bool
        Measure the sub-pixel shift of the blob pattern and subtract the predicted dips.
    sigma : float
        Smoothing of the stack used for the dip model.
    block : int
        Block size of the illumination normalisation.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> hist = [1000 + rng.normal(0, 30, (1024, 1024)).astype("f4") for _ in range(5)]
    >>> cur = 1000 + rng.normal(0, 30, (1024, 1024)).astype("f4")
    >>> cur[500:510, 500:510] *= 0.8          # a new 20 % blob
    >>> d = blob_difference(hist, cur, register=False)
    >>> bool(d.data[500:510, 500:510].mean() > 0.15)
    True
    """
    hist = normalize_many(history, block)
    if not hist:
        raise InputError("no history frames to build a median stack from")
    return difference_of_normalized(hist, normalize(to_full_frame(current), block), register, sigma)


def difference_of_normalized(history, current: np.ndarray, register: bool = True,
                             sigma: float = 0.7) -> Difference:
    """:func:`blob_difference` for frames already passed through :func:`normalize`."""
    return difference_from_stack(median_stack(history), current, register, sigma, len(history))


def difference_from_stack(stack: np.ndarray, current: np.ndarray, register: bool = True, sigma: float = 0.7,
                          n_history: int = 0) -> Difference:
    """:func:`difference_of_normalized` given the median *stack* of the *n_history* frames (a caller
    may let the frames go once their median is made)."""
    diff = stack - current
    shift = (0.0, 0.0)
    pattern = None
    if register:
        from concurrent.futures import ThreadPoolExecutor

        pattern = _blob_pattern(stack)
        # the dip model's smoothed pattern does not depend on the shift: made while it is measured
        with ThreadPoolExecutor(2) as ex:
            smooth = ex.submit(ndimage.gaussian_filter, pattern, sigma) if sigma > 0 else _now(lambda: pattern)
            shift = estimate_shift(stack, current, stack_pattern=pattern, pool=ex)
            P = smooth.result()
        diff = diff - dip_model(stack, shift, sigma, smoothed=P)
    return Difference(diff.astype(np.float32), stack, shift, register, int(n_history), pattern=pattern)


def order_frames(paths) -> list[tuple[Path, object]]:
    """Return ``(path, time)`` pairs sorted by observation time (DATE-OBS), not by name.

    Unreadable files raise :class:`InputError` naming the file.
    """

    items = []
    for p in paths:
        p = Path(p)
        items.append((p, frame_time(read_header(p), p)))
    items.sort(key=lambda t: (t[1], str(t[0])))
    return items


def difference_from_files(paths, history: int = 30, register: bool = True, current: str | Path | None = None,
                          ) -> tuple[Difference, Frame]:
    """Difference image of the newest frame (or *current*) against the *history* frames before it.

    Frames are ordered by DATE-OBS. Returns ``(difference, current_frame)``.
    """
    ordered = order_frames(paths)
    if current is not None:
        cur_path = Path(current).resolve()
        idx = next((i for i, (p, _) in enumerate(ordered) if p.resolve() == cur_path), None)
        if idx is None:
            raise InputError(f"{current}: not among the frames given")
    else:
        idx = len(ordered) - 1
    prev = ordered[max(0, idx - history):idx]
    if len(prev) < 1:
        raise InputError(f"{ordered[idx][0]}: no earlier frames to difference against (need up to {history})")
    cur = read_frame(ordered[idx][0])
    hist = [read_frame(p).data for p, _ in prev]
    diff = blob_difference(hist, cur.data, register=register)
    diff.meta.update({"CURFILE": (ordered[idx][0].name[:68], "current frame"),
                      "DATE-OBS": (cur.header.get("DATE-OBS", ""), "of the current frame"),
                      "FIRSTHIS": (prev[0][0].name[:68], "first history frame"),
                      "LASTHIS": (prev[-1][0].name[:68], "last history frame")})
    return diff, cur
