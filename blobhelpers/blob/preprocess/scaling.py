"""ISR 2021-08 preprocessing: zscale, clipping, z-scoring, border handling and tiling.

The report clips the blob difference image at 0.5 x its zscale limits (the IRAF algorithm
as implemented in ginga 3.1), z-scores the clipped image and sets NaN pixels and the
reference-pixel border to the median. :func:`zscale` is this project's own implementation
of the IRAF algorithm with ginga-3.1-style 2-D grid sampling (astropy's
``ZScaleInterval`` samples a 1-D stride over the flattened image instead, which gives
different limits on the same data; see ``tests/blob/preprocess/test_scaling.py``).

The scaling is split in two so that blobs can be injected in difference-image units
*between* measuring the statistics of the whole image and applying them:
:func:`scaling_params` measures, :func:`apply_scaling` applies.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from blobhelpers.blob.preprocess.difference import block_medians, fill_grid

__all__ = [
    "zscale",
    "ScaleParams",
    "border_mask",
    "fill_bad",
    "scaling_params",
    "apply_scaling",
    "scale_image",
    "TILE",
    "tile_origins",
    "extract_tiles",
    "REPRESENTATIONS",
    "residual",
]

#: The input representations a model can be trained on (saved beside the model):
#: ``"isr"`` the ISR's whole-image zscale clip + z-score (the faithful reproduction);
#: ``"residual"`` this project's: each 256x256 subframe minus its smooth background, in units of
#: its local robust noise, clipped (:func:`residual`).
REPRESENTATIONS = ("isr", "residual")

TILE = 256


def zscale(image: np.ndarray, nsamples: int = 1000, contrast: float = 0.25, max_reject: float = 0.5,
           min_npixels: int = 5, krej: float = 2.5, max_iterations: int = 5) -> tuple[float, float]:
    """IRAF zscale display limits with ginga-3.1-style sampling.

    The image is sampled on a regular 2-D grid with stride
    ``int(max(1, sqrt((ncols - 1) * (nlines - 1) / nsamples)))`` (32 for a 1024x1024 image),
    non-finite samples are dropped and the first *nsamples* kept and sorted. A straight line
    is fitted to the sorted values against their rank with iterative *krej*-sigma rejection
    (the rejection mask dilated by a window of 1 % of the sample); the limits are the median
    minus/plus the fitted slope divided by *contrast* times the rank distance to the ends,
    bounded by the sample's minimum and maximum.

    Parameters
    ----------
    image : numpy.ndarray
        2-D image (NaN allowed).
    nsamples, contrast, max_reject, min_npixels, krej, max_iterations
        The IRAF parameters (same defaults as IRAF, ginga and astropy).

    Returns
    -------
    (z1, z2) : tuple of float

    Examples
    --------
    >>> import numpy as np
    >>> img = np.random.default_rng(0).normal(0, 1, (1024, 1024))
    >>> z1, z2 = zscale(img)
    >>> -4 < z1 < -1 < 1 < z2 < 4
    True
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"zscale needs a 2-D image, got shape {image.shape}")
    nl, nc = image.shape
    stride = int(max(1.0, np.sqrt((nc - 1) * (nl - 1) / float(nsamples))))
    samples = image[::stride, ::stride].ravel()
    samples = samples[np.isfinite(samples)][:nsamples]
    if samples.size == 0:
        raise ValueError("zscale: the image has no finite pixels")
    samples = np.sort(samples.astype(np.float64))
    npix = samples.size
    zmin, zmax = float(samples[0]), float(samples[-1])
    center = (npix - 1) // 2
    median = float(samples[center]) if npix % 2 else float(0.5 * (samples[center] + samples[center + 1]))

    minpix = max(min_npixels, int(npix * max_reject))
    ngrow = max(1, int(npix * 0.01))
    grow = np.ones(ngrow)
    bad = np.zeros(npix, bool)
    x = np.arange(npix, dtype=np.float64)
    slope = 0.0
    ngood, last_ngood = npix, npix + 1
    for _ in range(max_iterations):
        # Stop when an iteration rejected nothing new, or too few points are left.
        if ngood >= last_ngood or ngood < minpix:
            break
        xg, yg = x[~bad], samples[~bad]
        xm, ym = xg.mean(), yg.mean()
        sxx = ((xg - xm) ** 2).sum()
        slope = float(((xg - xm) * (yg - ym)).sum() / sxx) if sxx > 0 else 0.0
        resid = samples - (ym + slope * (x - xm))
        sigma = resid[~bad].std()
        # Rejection is cumulative; the mask is then dilated by a window of ngrow samples
        # (numdisplay / ginga 3.1 behaviour), which also re-grows earlier rejections.
        bad |= np.abs(resid) > krej * sigma
        bad = np.convolve(bad, grow, mode="same") > 0
        last_ngood, ngood = ngood, int((~bad).sum())
    if ngood < minpix:
        return zmin, zmax
    if contrast > 0:
        slope /= contrast
    z1 = max(zmin, median - (center - 1) * slope)
    z2 = min(zmax, median + (npix - center) * slope)
    return float(z1), float(z2)


@dataclass
class ScaleParams:
    """Statistics that map a difference image to the network's input units.

    ``x -> (clip(x, lo, hi) - mean) / std`` with NaN and border pixels set to ``fill``
    (the median of the interior) before clipping.
    """

    lo: float
    hi: float
    mean: float
    std: float
    fill: float
    z1: float
    z2: float
    clip_factor: float

    def to_dict(self) -> dict:
        return {k: float(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "ScaleParams":
        return cls(**{k: float(d[k]) for k in cls.__dataclass_fields__})


def border_mask(shape: tuple[int, int], rule: str = "symmetric", width: int = 10) -> np.ndarray:
    """Boolean mask of the border pixels that are set to the median.

    Parameters
    ----------
    shape : tuple
        Image shape.
    rule : {"symmetric", "isr"}
        ``"symmetric"`` (default): *width* pixels on every side (the 5-px reference border of a
        1024x1024 frame plus 5 px of margin). ``"isr"``: the report's rule, rows/columns < 10 or
        > 1000, which also blanks 23 light-sensitive rows/columns at the top and right.
    width : int
        Border width for the symmetric rule.
    """
    m = np.zeros(shape, bool)
    if rule == "symmetric":
        if width > 0:
            m[:width, :] = m[-width:, :] = True
            m[:, :width] = m[:, -width:] = True
    elif rule == "isr":
        m[:10, :] = m[1001:, :] = True
        m[:, :10] = m[:, 1001:] = True
    elif rule != "none":
        raise ValueError(f"border rule must be 'symmetric', 'isr' or 'none', not {rule!r}")
    return m


def fill_bad(image: np.ndarray, rule: str = "symmetric", width: int = 10) -> tuple[np.ndarray, float]:
    """Return a copy with NaN/inf and border pixels set to the median of the other pixels."""
    img = np.array(image, dtype=np.float32, copy=True)
    bad = ~np.isfinite(img) | border_mask(img.shape, rule, width)
    if bad.all():
        raise ValueError("every pixel is NaN or border; nothing to scale")
    fill = float(np.median(img[~bad]))
    img[bad] = fill
    return img, fill


def scaling_params(diff: np.ndarray, clip_factor: float = 0.5, border_rule: str = "symmetric",
                   border_width: int = 10) -> ScaleParams:
    """Measure the ISR scaling of a whole difference image.

    The clip limits are ``clip_factor`` x the zscale limits (ISR: 0.5), measured after NaN and
    border pixels are set to the median; mean and std are those of the clipped image.
    """
    img, fill = fill_bad(diff, border_rule, border_width)
    z1, z2 = zscale(img)
    lo, hi = clip_factor * z1, clip_factor * z2
    if not hi > lo:
        lo, hi = z1, z2
    clipped = np.clip(img, lo, hi)
    mean, std = float(clipped.mean(dtype=np.float64)), float(clipped.std(dtype=np.float64))
    if not std > 0:
        std = 1.0
    return ScaleParams(lo=float(lo), hi=float(hi), mean=mean, std=std, fill=fill, z1=z1, z2=z2,
                       clip_factor=float(clip_factor))


def apply_scaling(x: np.ndarray, p: ScaleParams, out: np.ndarray | None = None) -> np.ndarray:
    """Apply :class:`ScaleParams` to an array of any shape (NaN -> fill first). float32 out."""
    x = np.asarray(x, dtype=np.float32)
    if out is None:
        out = np.empty_like(x, dtype=np.float32)
    np.copyto(out, x)
    bad = ~np.isfinite(out)
    if bad.any():
        out[bad] = p.fill
    np.clip(out, p.lo, p.hi, out=out)
    out -= np.float32(p.mean)
    out *= np.float32(1.0 / p.std)
    return out


def scale_image(diff: np.ndarray, clip_factor: float = 0.5, border_rule: str = "symmetric",
                border_width: int = 10) -> tuple[np.ndarray, ScaleParams]:
    """ISR preprocessing of a whole difference image; returns ``(scaled, params)``."""
    p = scaling_params(diff, clip_factor, border_rule, border_width)
    img, _ = fill_bad(diff, border_rule, border_width)
    return apply_scaling(img, p), p


def tile_origins(size: int = 1024, tile: int = TILE, step: int | None = None) -> list[tuple[int, int]]:
    """(y0, x0) origins of tiles covering a size x size image (step = tile: the 16-tile grid)."""
    step = step or tile
    starts = list(range(0, size - tile + 1, step))
    if starts[-1] != size - tile:
        starts.append(size - tile)
    return [(y, x) for y in starts for x in starts]


def extract_tiles(image: np.ndarray, origins, tile: int = TILE) -> np.ndarray:
    """Stack the tiles at *origins* into an ``(n, tile, tile)`` float32 array."""
    return np.stack([image[y:y + tile, x:x + tile] for y, x in origins]).astype(np.float32)


def _linear_upsample(n: int, factor: int) -> np.ndarray:
    """(n*factor, n) linear interpolation between block centres, extrapolated linearly at the edges.

    ``W @ grid @ W.T`` reproduces a plane exactly everywhere (a constant hold at the edges would
    leave a gradient's residual in the outer half-blocks).
    """
    c = (np.arange(n * factor) + 0.5) / factor - 0.5
    if n == 1:
        return np.ones((n * factor, 1), np.float32)
    i0 = np.clip(np.floor(c).astype(int), 0, n - 2)
    f = (c - i0).astype(np.float32)
    w = np.zeros((n * factor, n), np.float32)
    rows = np.arange(n * factor)
    w[rows, i0] = 1.0 - f
    w[rows, i0 + 1] = f
    return w


def residual(x: np.ndarray, block: int = 64, clip: float = 5.0) -> np.ndarray:
    """This project's CNN input: a subframe minus its smooth background, in local-noise units.

    For each 2-D image (or each of a stack ``(n, H, W)``): the background is the median of each
    *block* x *block* block interpolated bilinearly (it removes the sky level, offsets and
    low-order gradients, whatever the units); the noise is the median absolute deviation of the
    background-subtracted pixels per block (x 1.4826), interpolated the same way; the result is
    ``(x - background) / noise`` clipped to +-*clip* with NaN set to 0. So adding a constant or a
    plane, or multiplying by a positive number, changes nothing: what must not matter cannot be
    learnt. Blobs (radius <= ~15 px) barely move the median of a 64-px block.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> a = rng.normal(0, 1, (256, 256)).astype("f4")
    >>> yy, xx = np.mgrid[0:256, 0:256]
    >>> b = 37.0 * a + 1000.0 + 0.5 * xx - 0.2 * yy    # other units, an offset, a gradient
    >>> bool(np.abs(residual(a) - residual(b)).max() < 0.05)
    True
    """

    arr = np.asarray(x, np.float32)
    single = arr.ndim == 2
    stack = arr[None] if single else arr
    n, ny, nx = stack.shape
    if ny % block or nx % block:
        raise ValueError(f"image shape {(ny, nx)} is not a multiple of block={block}")
    uy, ux = _linear_upsample(ny // block, block), _linear_upsample(nx // block, block)
    out = np.empty(stack.shape, np.float32)
    for i in range(n):
        img = stack[i]
        if not np.isfinite(img).any():
            out[i] = 0.0
            continue
        bg = uy @ fill_grid(block_medians(img, block), 0.0) @ ux.T
        r = img - bg
        mad = fill_grid(block_medians(np.abs(r), block), 0.0)
        pos = mad[mad > 0]
        floor = float(np.median(pos)) * 0.1 if pos.size else 1.0
        noise = np.maximum(uy @ (np.maximum(mad, floor) * np.float32(1.4826)) @ ux.T, floor)
        z = r / noise
        z[~np.isfinite(z)] = 0.0
        np.clip(z, -clip, clip, out=z)
        out[i] = z
    return out[0] if single else out
