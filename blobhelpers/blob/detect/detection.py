"""The detection core shared by ``classify`` and the daily monitor.

A blob difference image (blobs positive; any units) goes through

1. **masking**: NaN/inf pixels, pixels flagged by the reader, and the 5-px reference-pixel border
   of a 1024x1024 frame can never yield a candidate (:func:`valid_mask`);
2. **an S/N map**: a multi-scale matched filter (Gaussian kernels of several radii) on the image
   minus its smooth background, winsorised at +-4 sigma, in units of a local robust noise
   (:func:`detect_candidates`): invariant to the sky level, units, offsets, low-order gradients
   and the noise level;
3. **tests** (:func:`screen`): a *dipole* (a negative lobe of comparable strength right next to
   the peak: an existing blob left behind by sub-pixel mis-registration) and a *bright transient*
   nearby (persistence or a snowball in the latest frame) reject a candidate, with the reason
   kept;
4. **a budget** spent on what passed the tests, strongest first (:func:`select`): junk that the
   tests reject never takes a slot from a real blob;
5. **verification** (:func:`verify`): the CNN on a 256x256 subframe centred on each selected
   candidate, in the representation the model was trained on
   (:data:`blobhelpers.blob.preprocess.scaling.REPRESENTATIONS`).

``classify`` is this core on one given difference image; the monitor builds the difference
image from the frames' history and drops known blobs between steps 3 and 4.
Coordinates are 0-based pixel positions (x = column, y = row) of the array given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from blobhelpers.blob.io.fitsio import BORDER, FULL_SIZE
from blobhelpers.blob.learn.cnn import probabilities
from blobhelpers.blob.learn.inference import predict_logits
from blobhelpers.blob.preprocess.difference import illumination
from blobhelpers.blob.preprocess.scaling import TILE, residual
from blobhelpers.core.stats import median_mad

__all__ = ["DetectionConfig", "valid_mask", "gaussian_bank", "detect_candidates", "screen", "select", "verify",
           "measure_blob", "centred_origin"]


@dataclass
class DetectionConfig:
    """Parameters of the detection core (shared by ``classify`` and the monitor)."""
    radii: tuple = (2.0, 3.5, 5.5, 8.0, 12.0)  # matched-filter blob radii (px)
    snr_min: float = 5.5          # matched-filter significance of a candidate (sigma)
    max_candidates: int = 20      # candidates verified by the CNN (after the tests)
    dipole_ratio: float = 0.5     # a negative lobe deeper than this x the peak ...
    dipole_min: float = 4.0       # ... and than this many sigma, within max(12, 3 r) px: a dipole
    neg_veto: float = 8.0         # a residual below -neg_veto sigma within max(12, 3 r) px: bright transient


def valid_mask(image: np.ndarray, flagged: np.ndarray | None = None) -> np.ndarray:
    """Pixels that may yield a candidate: finite, not flagged, not reference pixels.

    A 1024x1024 array is a raw-format frame: its outer :data:`~blobhelpers.blob.io.fitsio.BORDER`
    pixels are reference pixels (not light-sensitive) and are excluded. A trimmed 1014x1014
    array has none.

    >>> import numpy as np
    >>> m = valid_mask(np.zeros((1024, 1024), "f4"))
    >>> bool(m[4, 500]), bool(m[5, 500]), bool(m[500, 1019]), bool(m[500, 1018])
    (False, True, False, True)
    """
    ok = np.isfinite(image)
    if image.shape == (FULL_SIZE, FULL_SIZE):
        ok[:BORDER, :] = ok[-BORDER:, :] = False
        ok[:, :BORDER] = ok[:, -BORDER:] = False
    if flagged is not None:
        ok &= ~np.asarray(flagged, bool)
    return ok


def _block_stat(img: np.ndarray, block: int = 32) -> np.ndarray:
    """Block medians of *img* (NaN ignored) upsampled bilinearly to full size."""
    return illumination(img, block)


def gaussian_bank(image: np.ndarray, sigmas, truncate: float = 3.0) -> list[np.ndarray]:
    """``[scipy.ndimage.gaussian_filter(image, s, truncate=truncate, mode="constant") for s in sigmas]``
    (float32), from ONE forward FFT of the zero-padded image and one inverse per sigma.

    The kernels are scipy's (radius ``int(truncate s + 0.5)``, normalised to a sum of 1); the
    image is padded by the largest radius, so the circular convolution is the linear one with
    zeros outside (mode "constant"). Equal to scipy's separable filters to float32 rounding
    (~1e-8 absolute on a unit-variance image), at about a third of the CPU time for the five
    radii of the detection core.

    >>> a = np.random.default_rng(0).normal(size=(100, 130)).astype(np.float32)
    >>> got = gaussian_bank(a, (1.2, 4.8))
    >>> ref = [ndimage.gaussian_filter(a, s, truncate=3.0, mode="constant") for s in (1.2, 4.8)]
    >>> [bool(np.allclose(g, r, rtol=0, atol=1e-5)) for g, r in zip(got, ref)], got[0].dtype
    ([True, True], dtype('float32'))
    """
    from scipy import fft

    img = np.asarray(image, np.float32)
    ny, nx = img.shape
    radii = [int(truncate * float(s) + 0.5) for s in sigmas]
    if not radii:
        return []
    pad = max(radii)
    my, mx = fft.next_fast_len(ny + pad, real=True), fft.next_fast_len(nx + pad, real=True)
    F = fft.rfft2(img, s=(my, mx))

    def transfer(sigma: float, rad: int, m: int, real: bool) -> np.ndarray:
        x = np.arange(-rad, rad + 1, dtype=np.float64)
        k = np.exp(-0.5 / (sigma * sigma) * x * x)
        k /= k.sum()
        w = np.zeros(m)
        w[:rad + 1], w[m - rad:] = k[rad:], k[:rad]
        return (fft.rfft(w) if real else fft.fft(w)).astype(np.complex64)

    out = []
    for s, rad in zip(sigmas, radii):
        if rad == 0:   # a kernel of one tap
            out.append(img.copy())
            continue
        G = F * transfer(float(s), rad, my, False)[:, None] * transfer(float(s), rad, mx, True)[None, :]
        out.append(np.ascontiguousarray(fft.irfft2(G, s=(my, mx))[:ny, :nx], dtype=np.float32))
    return out


def detect_candidates(diff: np.ndarray, radii=(2.0, 3.5, 5.5, 8.0, 12.0), snr_min: float = 5.5,
                      max_peaks: int = 400, valid: np.ndarray | None = None,
                      background_mask: np.ndarray | None = None) -> list[dict]:
    """Positive, blob-sized residuals of a difference image (blobs positive), strongest first.

    Each scale ``r`` smooths the image with a Gaussian of sigma ``0.6 r`` (close to the
    matched filter of a flat disc of radius ``r`` in white noise). The significance is the
    smoothed value (after winsorising single pixels at +-4 sigma) over a local noise level: the block-wise robust pixel scatter (MAD over
    32x32 blocks, so the low-QE region and vignetting are noisier) times a per-scale factor
    measured robustly over the whole frame (it absorbs pixel correlations and heavy tails).
    Peaks of the best significance over scales above *snr_min* are returned as dicts with
    ``x``, ``y`` (input-array pixels), ``snr``, ``scale`` (the best radius), ``neg_snr``,
    the most negative significance at any radius within ``max(12, 3 scale)`` px (a bright
    transient nearby: persistence or a snowball in the current frame biases its normalisation
    block and leaves a positive halo that is not a blob), and ``dip``, the same at the radii
    within a factor 2 of the candidate's own (the other lobe of a mis-registration dipole, which
    lies up to a blob DIAMETER away from the positive crescent and is about as wide as it: at
    every radius, the smallest ones' minimum over a 25-37 px box is a -4 to -6 sigma noise
    excursion often enough to throw faint blobs away as dipoles). Only pixels of *valid*
    (default :func:`valid_mask`) are used or yield candidates. Pixels of *background_mask* (e.g.
    a deep blob already known to be there) are left out of the block background and noise, which
    a blob covering much of a 32-px block would otherwise raise -- a negative ring around it.

    >>> import numpy as np
    >>> from blobhelpers.blob.sim.shapes import BlobShape, render
    >>> rng = np.random.default_rng(1)
    >>> d = rng.normal(0, 0.02, (512, 512)).astype("f4")
    >>> render(d, 300.0, 200.0, BlobShape(6.0), 0.03)   # a 3 % blob, radius 6 px
    >>> c = detect_candidates(d)
    >>> len(c), round(c[0]["x"]), round(c[0]["y"])
    (1, 300, 200)
    """
    d = np.asarray(diff, np.float32)
    finite = valid_mask(d) if valid is None else (np.asarray(valid, bool) & np.isfinite(d))
    if not finite.any():
        return []
    d = np.where(finite, d, np.nan).astype(np.float32, copy=False)
    d0 = np.where(finite, d, 0.0).astype(np.float32, copy=False)
    # robust local pixel scatter (blocks of 32 px, NaN ignored)
    bg = finite if background_mask is None else finite & ~np.asarray(background_mask, bool)
    med = _block_stat(np.where(bg, d, np.nan))
    sig_pix = _block_stat(np.where(bg, np.abs(d - med), np.nan)) / 0.6745
    good = np.isfinite(sig_pix) & (sig_pix > 0)
    if not good.any():
        return []  # no noise at all: a blank or constant image holds no blob-like residual
    if not good.all():   # blocks without a noise estimate take the median of the others
        sig_pix = np.where(good, sig_pix, np.median(sig_pix[good]))
    # Winsorise at +-4 sigma: single hot/RTS/cosmic-ray pixels must not look like blobs, while
    # a blob (many pixels a few sigma high) keeps almost all of its matched-filter signal.
    base = np.clip(d0 - np.where(finite, med, 0.0), -4.0 * sig_pix, 4.0 * sig_pix)
    best = np.full(d.shape, -np.inf, np.float32)
    worst = np.full(d.shape, np.inf, np.float32)
    per_scale = []   # each radius's S/N map: a dipole's negative lobe is sought at the candidate's own scales
    scale = np.zeros(d.shape, np.float32)
    upd = np.empty(d.shape, bool)
    sub = (slice(8, None, 4), slice(8, None, 4))
    ok = finite[sub]
    for r, z in zip(radii, gaussian_bank(base, [0.6 * r for r in radii])):
        np.divide(z, sig_pix, out=z)
        zz = z[sub][ok]
        mad = median_mad(zz)[1] / 0.6745
        np.divide(z, np.float32(max(float(mad), 1e-12)), out=z)   # the S/N map of this radius
        np.greater(z, best, out=upd)
        np.copyto(best, z, where=upd)
        np.copyto(scale, np.float32(r), where=upd)
        np.minimum(worst, z, out=worst)
        per_scale.append(z)
    # local maxima (5x5) above snr_min: the maximum filter is evaluated at the pixels above snr_min only
    ys, xs = np.nonzero((best >= snr_min) & finite)
    if ys.size:
        pad = np.pad(best, 2, mode="constant", constant_values=-np.inf)
        around = np.max([pad[ys + 2 + dy, xs + 2 + dx] for dy in range(-2, 3) for dx in range(-2, 3)], axis=0)
        top = best[ys, xs] == around
        ys, xs = ys[top], xs[top]
    order = np.argsort(-best[ys, xs])[: max_peaks * 4]
    out: list[dict] = []
    for k in order:
        y, x = int(ys[k]), int(xs[k])
        r = float(scale[y, x])
        if any(np.hypot(c["x"] - x, c["y"] - y) < max(5.0, 0.8 * max(r, c["scale"])) for c in out):
            continue  # same blob seen at another scale or a secondary maximum
        h = int(max(12, 3 * r))
        win = (slice(max(0, y - h), y + h + 1), slice(max(0, x - h), x + h + 1))
        neg = float(worst[win].min())
        # the other lobe of a dipole has about the candidate's width: radii within a factor 2 of its own
        dip = min(float(z[win].min()) for s, z in zip(radii, per_scale) if 0.5 * r <= s <= 2.0 * r)
        out.append({"x": float(x), "y": float(y), "snr": float(best[y, x]), "scale": r, "neg_snr": neg,
                    "dip": dip})
        if len(out) >= max_peaks:
            break
    return out


def screen(cands: list[dict], config: DetectionConfig) -> list[dict]:
    """Label each candidate with ``reject``: ``""`` (passed), ``"dipole"`` or ``"bright transient"``.

    A mis-registered existing blob leaves a positive and a negative lobe of similar strength a
    blob diameter apart; a new blob has no negative partner. A candidate whose most negative
    neighbour within ``max(12, 3 r)`` px is deeper than ``dipole_ratio`` x its significance and
    than ``dipole_min`` sigma is a dipole. A residual below ``-neg_veto`` sigma within
    ``max(12, 3 r)`` px marks a bright transient (a positive halo around it is not a blob).

    >>> out = screen([{"snr": 9.0, "dip": -8.0, "neg_snr": -8.0}, {"snr": 9.0, "dip": -2.5, "neg_snr": -2.5},
    ...               {"snr": 6.0, "dip": -3.5, "neg_snr": -9.0}], DetectionConfig())
    >>> [c["reject"] for c in out]
    ['dipole', '', 'bright transient']
    """
    for c in cands:
        if c.get("dip", 0.0) <= -max(config.dipole_min, config.dipole_ratio * c["snr"]):
            c["reject"] = "dipole"
        elif c.get("neg_snr", 0.0) < -config.neg_veto:
            c["reject"] = "bright transient"
        else:
            c["reject"] = ""
    return cands


def select(cands: list[dict], budget: int) -> tuple[list[dict], list[dict]]:
    """Split screened candidates into (to verify, not verified): the *budget* strongest that passed.

    Rejected candidates never take a slot, so junk cannot starve a real blob.

    >>> sel, rest = select([{"snr": 9, "reject": "dipole"}, {"snr": 6, "reject": ""}], 1)
    >>> [c["snr"] for c in sel], [c["snr"] for c in rest]
    ([6], [9])
    """
    ok = sorted((c for c in cands if not c.get("reject")), key=lambda c: -c["snr"])
    return ok[:budget], [c for c in cands if c.get("reject")] + ok[budget:]


def verify(model, full: np.ndarray, centres, representation: str = "residual", scaled: np.ndarray | None = None,
           extra_tiles=()) -> tuple[np.ndarray, np.ndarray, list]:
    """CNN probability of a 256x256 subframe centred on each (x, y) of *centres* (full-frame pixels).

    Parameters
    ----------
    model : keras.Model
    full : numpy.ndarray
        The 1024x1024 difference image (NaN where masked), in its own units.
    centres : sequence of (x, y)
    representation : {"residual", "isr"}
        What the model was trained on. ``"isr"`` crops *scaled* (the whole image after the ISR
        scaling, :func:`~blobhelpers.blob.preprocess.scaling.scale_image`); ``"residual"`` crops *full* and
        applies :func:`~blobhelpers.blob.preprocess.scaling.residual` to each crop.
    extra_tiles : sequence of (y0, x0)
        Further subframes (e.g. the 16 grid tiles) classified in the same batch, after the centred ones.

    Returns
    -------
    prob : numpy.ndarray
        P(blob) of the centred subframes then of *extra_tiles*.
    X : numpy.ndarray
        The model inputs ``(n, 256, 256)``.
    origins : list of (y0, x0)
    """

    n = full.shape[0]
    origins = [centred_origin(x, y, n) for x, y in centres] + list(extra_tiles)
    if not origins:
        return np.zeros(0, np.float32), np.zeros((0, TILE, TILE), np.float32), []
    if representation == "isr":
        if scaled is None:
            raise ValueError("representation 'isr' needs the scaled image")
        X = np.stack([scaled[y:y + TILE, x:x + TILE] for y, x in origins]).astype(np.float32)
    elif representation == "residual":
        X = residual(np.stack([full[y:y + TILE, x:x + TILE] for y, x in origins]))
    else:
        raise ValueError(f"unknown representation {representation!r}")
    return probabilities(predict_logits(model, X)), X, origins


def measure_blob(diff: np.ndarray, x: float, y: float, scale: float) -> dict:
    """Refine the position and estimate the radius and central depth of a candidate.

    Position: centroid of the lightly smoothed difference above a quarter of its peak, within
    ``2 scale + 2`` px (iterated).
    Depth: mean of the difference within ``max(1.5, 0.4 scale)`` px of that centre (the
    central obscuration, as a fraction of the sky). Radius: where the azimuthal mean profile
    falls below half of its maximum (a ring's radius is that of its peak).

    >>> import numpy as np
    >>> from blobhelpers.blob.sim.shapes import BlobShape, render
    >>> d = np.zeros((128, 128), np.float32)
    >>> render(d, 60.3, 70.6, BlobShape(7.0), 0.05)
    >>> m = measure_blob(d, 61, 70, 5.5)
    >>> round(m["x"]), round(m["y"]), round(m["radius"]), round(m["depth"], 2)
    (60, 71, 7, 0.05)
    """
    d = np.where(np.isfinite(diff), diff, 0.0).astype(np.float32)
    ny, nx = d.shape
    R = int(np.ceil(3 * scale + 6))
    x0, x1 = max(0, int(x) - R), min(nx, int(x) + R + 1)
    y0, y1 = max(0, int(y) - R), min(ny, int(y) + R + 1)
    cut = ndimage.gaussian_filter(d[y0:y1, x0:x1], 1.0)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    cx, cy = float(x), float(y)
    for _ in range(3):  # centroid of the part above a quarter of the peak, re-centred
        win = np.hypot(xx - cx, yy - cy) <= 2 * scale + 2
        peak = float(cut[win & (np.hypot(xx - cx, yy - cy) <= max(2.0, scale))].max())
        w = np.clip(cut - 0.25 * peak, 0.0, None) * win
        if not (peak > 0 and w.sum() > 0):
            break
        cx, cy = float((w * xx).sum() / w.sum()), float((w * yy).sum() / w.sum())
    rr = np.hypot(xx - cx, yy - cy)
    raw = d[y0:y1, x0:x1]
    core = rr <= max(1.5, 0.4 * scale)
    depth = float(raw[core].mean()) if core.any() else float("nan")
    nb = int(R)
    idx = np.minimum(rr.astype(int), nb)
    sums = np.bincount(idx.ravel(), cut.ravel(), nb + 1)
    cnts = np.bincount(idx.ravel(), None, nb + 1)
    prof = sums / np.maximum(cnts, 1)
    pmax = float(prof[: max(2, int(2 * scale) + 1)].max())
    radius = float(scale)
    if pmax > 0:
        ipk = int(np.argmax(prof[: max(2, int(2 * scale) + 1)]))
        below = np.nonzero(prof[ipk:] < 0.5 * pmax)[0]
        if below.size:
            j = ipk + int(below[0])
            # linear interpolation between j-1 and j (profile bin k ~ radius k + 0.5)
            a, b = prof[j - 1], prof[j]
            frac = (a - 0.5 * pmax) / (a - b) if a != b else 0.0
            radius = float(j - 1 + 0.5 + frac)
    return {"x": cx, "y": cy, "radius": radius, "depth": depth}


def centred_origin(x: float, y: float, size: int = 1024, tile: int = TILE) -> tuple[int, int]:
    """(y0, x0) of the *tile*-sized subframe centred on (x, y), kept inside the image.

    >>> centred_origin(10, 1000)
    (768, 0)
    >>> centred_origin(500.4, 300.6)
    (173, 372)
    """
    x0 = int(np.clip(round(x) - tile // 2, 0, size - tile))
    y0 = int(np.clip(round(y) - tile // 2, 0, size - tile))
    return y0, x0
