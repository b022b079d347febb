"""Independent cross-simulator of WFC3/IR blob data, for evaluation only.

Independence rule
-----------------
This module was written from ``docs/crosssim_spec.md`` and the physics facts
(``docs/facts.md`` sections 1-2) alone, WITHOUT reading or importing any of the
project's own simulation or blob code (``simulate``, ``blobs``, ``injection``,
``difference``, ``blob.campaign``, ``blob.shapes``, ...).  It imports only
numpy, scipy, astropy and the standard library.  Its data are meant to
*evaluate* detectors, never to train them, tune thresholds or select models.

What it simulates
-----------------
A CSM-monitor series is 30 history frames plus the latest frame (F153M
airglow flats), one day apart.  In electrons, the light-sensitive pixels of
frame ``t`` hold::

    S_t * I_t(x - s_t) * T_t(x - s_t) * F(x) + dark + hot + noise (+ CRs, ...)

``S_t`` is the day's sky level, ``I_t`` the smooth illumination (vignetting
times a low-order polynomial, both changing a little from day to day),
``T_t`` the blob transmission (product of ``1 - depth * profile`` over the
blobs), ``s_t`` the CSM mis-registration shift (the blob pattern and the
illumination move; the flat field ``F`` does not).  Existing blobs are in
every frame; new blobs only in the latest frame, where they are rendered at
exactly their truth position (no shift).  The difference image follows the
ISR convention ``D = median(history / own illumination) - latest / own
illumination`` (new blobs positive, peak ~ depth).

Multi-day series (``n_days > 1``) follow the history with ``n_days`` monitored frames, one
day apart: new blobs appear in the first and stay (same shape and depth, moving with each
frame's blob-pattern shift), and every monitored frame has its own noise, sky, illumination
and mis-registration shift, as the latest frame of a one-day series.  The ``jitter_deep``
cases are blob-free series in which every frame is jittered by 0.15-0.5 px and a few existing
blobs are 25-30 % deep (radius 5-15 px): registration residuals, no new blob.

Choices made where the physics leaves freedom
---------------------------------------------
* Noise: Gaussian approximation of Poisson noise (variance = expected
  electrons), plus read noise that is fixed per pixel and drawn from a
  lognormal (``read_noise_e`` is its rms, ``read_noise_spread`` the log
  sigma), plus 1/f-like row stripes (half 1/f, half white in variance),
  independent in the left and right detector halves and present in the
  reference pixels too.  ``row_noise`` is their rms in units of the
  single-frame white noise.
* Pixel flat: multiplicative, Gaussian, ``flat_rms`` rms, fixed to the
  detector (it does not move with the mis-registration).
* Unstable pixels: a fixed set (``unstable_fraction`` of the light area);
  half are random-telegraph pixels (two levels 0 / ``a``, a new state each
  frame), half draw a Student-t (2 degrees of freedom) excursion each frame.
  Amplitudes are ``unstable_scale`` x U(0.5, 1.5) single-frame sigma.  Hot
  pixels (``hot_fraction``) carry a constant lognormal dark excess.
* Cosmic rays: ``Poisson(cr_per_frame)`` short tracks (1-8 px) per frame,
  lognormal energy (median 1500 e-); the median removes those of the
  history, the latest frame keeps its own (negative in the difference).
* Persistence: 1-3 smooth elliptical Gaussian patches (sigma 6-40 px) in the
  latest frame, peak ``persistence`` x difference sigma (negative in D).
* NaN: fixed detector defects in the light area, totalling ``nan_fraction``
  of it, split at random between partial bad columns, small clusters, a dead
  quarter-disc corner and isolated pixels.  The same pixels are NaN in every
  frame of a series.
* Residual gradient: plane + quadratic + one broad Gaussian bump,
  normalised to max |P| = 1 over the light area, times ``gradient_sigma`` x
  difference sigma.  In a series it is a change of the latest frame's
  illumination (``I_L * (1 - g sigma P)``) that a normalisation by the true
  illumination does not remove.  ``offset_sigma`` is a constant (in D) made
  in a series by an additive electron offset in the latest frame.
* Units: ``normalised`` = electrons / ``sky_e`` (nominal sky, so day-to-day
  level changes stay visible in a series); ``e-``; ``e-/s`` = e- /
  ``exptime``; ``DN`` = e- / ``gain`` + ``pedestal_dn`` (light area).  A
  difference image is fractional (normalised) or that times the latest sky
  level in e- (``e-``), e-/s or DN; ``truth["scale"]`` is the factor.  BUNIT
  (``RELATIVE``, ``ELECTRONS``, ``ELECTRONS/S``, ``DN``) is written only when
  ``write_bunit``.  Headers carry DATE-OBS (and maybe BUNIT) only.
* Reference border (1024 frames): no sky, no blobs, no flat, no dark; its
  own bias ``ref_bias`` (in DN, converted to the file unit) plus read noise
  and row stripes.  In a difference image the border is each frame's border
  divided by its scalar sky level (there is no illumination there), so it
  holds ``ref_bias*gain*(1/S_hist - 1/S_latest)`` plus read noise only.
* Blob profiles (``radius`` is the outer half-maximum radius of each kind):
  ``disc`` = super-Gaussian ``exp(-ln2 (r/R)^(2m))`` with sharpness
  ``m`` in 1.5-4 (flat top, soft edge); ``ellipse`` = the same with an axis
  ratio 0.55-0.85; ``ring`` = defocused-obscuration annulus: Gaussian ring
  of width ``w = max(0.7, 0.16 R)`` at ``R - 1.18 w`` + central spot +
  low plateau, normalised to peak 1; ``template`` = a caller's 2-D cutout
  (border median subtracted, lightly smoothed, tapered, peak 1) resampled
  bilinearly so that its outer half-maximum radius is ``R``.  Profiles are
  point-sampled at pixel centres.  Depths of existing blobs are Pareto-like
  (``0.01 U^(-1/1.3)``, capped at 0.3): many 1-3 %, few strong.
* Mis-registration: history frames jitter ``N(0, history_jitter_px)`` per
  axis; the latest frame is shifted by ``misreg_px x U(0.75, 1)`` in a random
  direction (each monitored frame of a multi-day series by its own such
  shift).  ``make_difference`` computes the exact median over the 30
  noiseless history transmissions near the blobs and approximates the noise
  of the median as ``var = c_n * var(one frame)`` (``c_30 ~ 0.050``).
* S/N: ``depth / noise_frac`` with ``noise_frac`` the per-pixel sigma of the
  difference in fractional units at illumination 1:
  ``sqrt((1 + row^2) (sigma_L^2 + c_n sigma_H^2))``, ``sigma = sqrt(S +
  dark + rn^2) / S`` for the latest and the median history sky.  A blob
  given an ``snr`` gets ``depth = snr * noise_frac`` of its case.

Coordinates: ``x`` = column, ``y`` = row, 0-based, in the written array (the
light-sensitive area of a 1024 frame is 5..1018).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import math
import os
import sys
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from astropy.io import fits
from scipy import ndimage

__all__ = [
    "UNITS",
    "DIFFERENCE_UNITS",
    "BLOB_KINDS",
    "NUISANCE_NAMES",
    "Nuisance",
    "BlobSpec",
    "iter_series_cases",
    "expected_noise_frac",
    "blob_profile",
    "sample_new_blob",
    "make_series",
    "make_difference",
    "write_series_set",
    "write_difference_set",
    "main",
]

BORDER = 5
LIGHT = 1014
N_HISTORY = 30
UNITS = ("normalised", "e-", "e-/s", "DN")
DIFFERENCE_UNITS = ("normalised", "e-", "e-/s")
BLOB_KINDS = ("disc", "ring", "ellipse", "template")
_BUNIT = {"normalised": "RELATIVE", "e-": "ELECTRONS", "e-/s": "ELECTRONS/S", "DN": "DN"}
_LN2 = math.log(2.0)
_EPOCH = _dt.datetime(2012, 1, 1)

_NAMED = {
    "gradient": "gradient_sigma",
    "offset": "offset_sigma",
    "misregistration": "misreg_px",
    "unstable": "unstable_fraction",
    "cosmic_rays": "cr_per_frame",
    "persistence": "persistence",
    "nan": "nan_fraction",
    "row_noise": "row_noise",
    "units": "units",
    "frame_size": "frame_size",
}
NUISANCE_NAMES = tuple(_NAMED)


# ----------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Nuisance:
    """Every knob of one simulated case, with typical defaults.

    Parameters
    ----------
    frame_size : int
        1014 (trimmed, light-sensitive only) or 1024 (with the 5-px reference border).
    units : str
        One of :data:`UNITS`: ``normalised`` (fraction of the nominal sky), ``e-``,
        ``e-/s`` or ``DN``.
    write_bunit : bool
        Whether the FITS files carry a BUNIT card.
    sky_e : float
        Nominal sky level per frame, e-/px.
    sky_day_scatter : float
        Relative rms of the day-to-day sky level.
    illum_day_change : float
        Rms of the day-to-day change of the illumination polynomial coefficients.
    vignetting : float
        Typical amplitude of the radial illumination fall-off.
    read_noise_e : float
        Rms read noise (CDS), e-; per-pixel values are lognormal around it.
    read_noise_spread : float
        Log sigma of the per-pixel read noise.
    flat_rms : float
        Pixel-to-pixel flat-field rms (fixed to the detector).
    gain : float
        e-/DN.
    exptime : float
        Exposure time, s (for e-/s).
    dark_e_s : float
        Dark current, e-/s/px.
    hot_fraction : float
        Fraction of hot pixels (constant dark excess).
    misreg_px : float
        Maximum mis-registration shift of the latest frame vs the history, px.
    history_jitter_px : float
        Rms per-axis jitter of the history frames, px.
    n_existing : int
        Number of existing blobs (in every frame).
    gradient_sigma : float
        Residual low-order sky in the difference, peak, in difference noise sigma.
    offset_sigma : float
        Constant offset of the difference, in difference noise sigma.
    unstable_fraction : float
        Fraction of unstable (telegraph / heavy-tailed) pixels.
    unstable_scale : float
        Typical excursion of unstable pixels, in single-frame noise sigma.
    cr_per_frame : int
        Mean number of cosmic-ray events per frame.
    persistence : float
        Peak of the persistence patches in the latest frame, in difference noise sigma
        (0 = none).
    nan_fraction : float
        Fraction of NaN pixels in the light area.
    ref_bias : float
        Bias of the reference border, DN (1024 frames only).
    pedestal_dn : float
        Bias pedestal of the light-sensitive pixels in DN files.
    row_noise : float
        Rms of the correlated row stripes, in single-frame white-noise sigma.
    """

    frame_size: int = 1014
    units: str = "normalised"
    write_bunit: bool = True
    sky_e: float = 2000.0
    sky_day_scatter: float = 0.12
    illum_day_change: float = 0.004
    vignetting: float = 0.08
    read_noise_e: float = 18.0
    read_noise_spread: float = 0.25
    flat_rms: float = 0.02
    gain: float = 2.3
    exptime: float = 350.0
    dark_e_s: float = 0.05
    hot_fraction: float = 3e-4
    misreg_px: float = 0.1
    history_jitter_px: float = 0.04
    n_existing: int = 60
    gradient_sigma: float = 0.3
    offset_sigma: float = 0.0
    unstable_fraction: float = 1e-3
    unstable_scale: float = 6.0
    cr_per_frame: int = 80
    persistence: float = 0.0
    nan_fraction: float = 2e-4
    ref_bias: float = 250.0
    pedestal_dn: float = 1500.0
    row_noise: float = 0.15

    def __post_init__(self) -> None:
        if self.frame_size not in (LIGHT, LIGHT + 2 * BORDER):
            raise ValueError(f"frame_size must be 1014 or 1024, not {self.frame_size!r}")
        if self.units not in UNITS:
            raise ValueError(f"units must be one of {UNITS}, not {self.units!r}")
        for name in ("sky_e", "gain", "exptime"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")
        for name in ("sky_day_scatter", "illum_day_change", "vignetting", "read_noise_e", "read_noise_spread",
                     "flat_rms", "dark_e_s", "hot_fraction", "misreg_px", "history_jitter_px", "n_existing",
                     "unstable_fraction", "unstable_scale", "cr_per_frame", "persistence", "nan_fraction",
                     "row_noise"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        for name in ("unstable_fraction", "nan_fraction", "hot_fraction"):
            if getattr(self, name) > 0.5:
                raise ValueError(f"{name} must be <= 0.5")
        if self.vignetting > 0.3:
            raise ValueError("vignetting must be <= 0.3")

    @classmethod
    def named(cls, name: str, level: Any) -> Nuisance:
        """Defaults with ONE nuisance set to `level` on its natural scale.

        Parameters
        ----------
        name : str
            One of :data:`NUISANCE_NAMES`: ``gradient`` (sigma), ``offset`` (sigma),
            ``misregistration`` (px), ``unstable`` (pixel fraction), ``cosmic_rays``
            (per frame), ``persistence`` (sigma), ``nan`` (pixel fraction), ``row_noise``
            (sigma), ``units`` (index into :data:`UNITS`, or the unit name) and
            ``frame_size`` (1014 / 1024, or index 0 / 1).
        level : float, int or str
            The value.

        Returns
        -------
        Nuisance

        Examples
        --------
        >>> Nuisance.named("gradient", 2.0).gradient_sigma
        2.0
        >>> Nuisance.named("units", 3).units
        'DN'
        """
        if name not in _NAMED:
            raise ValueError(f"unknown nuisance {name!r}; expected one of {NUISANCE_NAMES}")
        if name == "units":
            value: Any = level if isinstance(level, str) else UNITS[int(level)]
        elif name == "frame_size":
            lv = int(level)
            value = (LIGHT, LIGHT + 2 * BORDER)[lv] if lv in (0, 1) else lv
        elif name == "cosmic_rays":
            value = int(round(float(level)))
        else:
            value = float(level)
        return cls(**{_NAMED[name]: value})

    def to_dict(self) -> dict:
        """All knob values as a plain dict."""
        return {k: (_r(v) if isinstance(v, float) else v) for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True, eq=False)
class BlobSpec:
    """One blob (a shadow multiplying the illumination by ``1 - depth * profile``).

    Parameters
    ----------
    x, y : float
        Centre, column and row, 0-based, in the written array.  For a new blob this is
        where it lies in the latest frame; for an existing blob it is the unshifted
        (history) position.
    radius : float
        Outer half-maximum radius, px (major axis for elliptical blobs).
    depth : float or None
        Peak fractional depth.  May be None when `snr` is given (set per case).
    kind : str
        ``disc``, ``ring``, ``ellipse`` or ``template``.
    axis_ratio : float
        Minor / major axis, in (0, 1].
    angle : float
        Position angle of the major axis, radians from the +x axis.
    template : ndarray or None
        2-D cutout for ``kind="template"`` (blob positive, background ~0).
    snr : float or None
        Requested S/N; when set, the case sets ``depth = snr * noise_frac``.
    sharpness : float
        Super-Gaussian exponent ``m`` of discs and ellipses.
    spot : float
        Relative amplitude of the central spot of a ring.
    plateau : float
        Relative level of the shadow plateau inside a ring.
    template_id : int or None
        Index of the template in the caller's list (recorded in the truth).
    """

    x: float
    y: float
    radius: float
    depth: float | None = None
    kind: str = "disc"
    axis_ratio: float = 1.0
    angle: float = 0.0
    template: np.ndarray | None = None
    snr: float | None = None
    sharpness: float = 2.5
    spot: float = 0.7
    plateau: float = 0.3
    template_id: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in BLOB_KINDS:
            raise ValueError(f"kind must be one of {BLOB_KINDS}, not {self.kind!r}")
        if not self.radius > 0:
            raise ValueError("radius must be > 0")
        if not 0 < self.axis_ratio <= 1:
            raise ValueError("axis_ratio must be in (0, 1]")
        if self.kind == "template" and (self.template is None or np.ndim(self.template) != 2):
            raise ValueError("kind='template' needs a 2-D template array")
        if self.depth is None and self.snr is None:
            raise ValueError("give depth or snr")
        if self.sharpness <= 0:
            raise ValueError("sharpness must be > 0")

    def to_dict(self, noise_frac: float | None = None, dx: float = 0.0, dy: float = 0.0) -> dict:
        """Plain-JSON description (the template array itself is left out)."""
        d = {"x": _r(self.x), "y": _r(self.y), "radius": _r(self.radius),
             "depth": None if self.depth is None else _r(self.depth), "kind": self.kind,
             "axis_ratio": _r(self.axis_ratio), "angle": _r(self.angle)}
        if self.kind in ("disc", "ellipse"):
            d["sharpness"] = _r(self.sharpness)
        if self.kind == "ring":
            d["spot"] = _r(self.spot)
            d["plateau"] = _r(self.plateau)
        if self.template_id is not None:
            d["template_id"] = int(self.template_id)
        if noise_frac is not None and self.depth is not None:
            d["snr"] = _r(self.depth / noise_frac)
        if dx or dy:
            d["x_latest"] = _r(self.x + dx)
            d["y_latest"] = _r(self.y + dy)
        return d


# ----------------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------------
def _r(v: float) -> float:
    """Round to 6 significant digits (plain JSON float)."""
    v = float(v)
    if not math.isfinite(v):
        raise ValueError("non-finite value in truth")
    return float(f"{v:.6g}")


def _bounds(size: int) -> tuple[int, int]:
    lo = 0 if size == LIGHT else BORDER
    return lo, lo + LIGHT


@lru_cache(maxsize=None)
def _median_var_factor(n: int) -> float:
    """Variance of the median of `n` iid unit Gaussians (fixed-seed Monte Carlo)."""
    if n <= 1:
        return 1.0
    rng = np.random.default_rng(20240607 + n)
    m = np.median(rng.standard_normal((max(20000, 400000 // n), n)), axis=1)
    return float(m.var())


def _sigma1_e(nu: Nuisance, sky: float) -> float:
    """White single-frame noise (e-) at illumination 1."""
    return math.sqrt(sky + nu.dark_e_s * nu.exptime + nu.read_noise_e ** 2)


def _noise_frac(nu: Nuisance, sky_latest: float, sky_hist: Sequence[float]) -> float:
    c = _median_var_factor(len(sky_hist))
    var_l = (_sigma1_e(nu, sky_latest) / sky_latest) ** 2
    var_h = float(np.mean([(_sigma1_e(nu, s) / s) ** 2 for s in sky_hist]))
    return math.sqrt((1.0 + nu.row_noise ** 2) * (var_l + c * var_h))


def expected_noise_frac(nuisance: Nuisance | None = None, n_history: int = N_HISTORY) -> float:
    """Nominal per-pixel sigma of a median-minus-latest difference, fractional units.

    Parameters
    ----------
    nuisance : Nuisance, optional
        The case knobs (defaults if None); uses the nominal sky for every frame.
    n_history : int
        Number of history frames.

    Returns
    -------
    float
    """
    nu = nuisance or Nuisance()
    return _noise_frac(nu, nu.sky_e, [nu.sky_e] * n_history)


def _finalise(b: BlobSpec, noise_frac: float) -> BlobSpec:
    depth = b.snr * noise_frac if b.snr is not None else b.depth
    return dataclasses.replace(b, depth=float(min(max(depth, 0.0), 0.95)))


# ----------------------------------------------------------------------------------------------
# Blob profiles
# ----------------------------------------------------------------------------------------------
def _prepare_template(template: np.ndarray) -> tuple[np.ndarray, float, float, float, float]:
    """Normalised, tapered template; returns (array, cy, cx, half-max radius, extent)."""
    t = np.array(template, dtype=float)
    t[~np.isfinite(t)] = 0.0
    if min(t.shape) < 5:
        raise ValueError("template too small")
    edge = np.concatenate([t[:2].ravel(), t[-2:].ravel(), t[:, :2].ravel(), t[:, -2:].ravel()])
    t = ndimage.gaussian_filter(t - np.median(edge), 0.8, mode="nearest")
    peak = t.max()
    if not peak > 0:
        raise ValueError("template has no positive blob")
    t /= peak
    w = np.clip(t, 0, None) * (t > 0.25)
    yy, xx = np.indices(t.shape)
    cy, cx = float((w * yy).sum() / w.sum()), float((w * xx).sum() / w.sum())
    rr = np.hypot(yy - cy, xx - cx)
    # radial profile (0.5-px bins), normalised to its own maximum; outer 0.5 crossing
    nb = int(rr.max() / 0.5) + 1
    idx = np.minimum((rr / 0.5).astype(int), nb - 1)
    cnt = np.bincount(idx.ravel(), minlength=nb)
    prof = np.bincount(idx.ravel(), weights=t.ravel(), minlength=nb) / np.maximum(cnt, 1)
    prof = prof / prof.max()
    above = np.nonzero(prof >= 0.5)[0]
    r_half = max(1.0, 0.5 * (above[-1] + 1)) if above.size else 1.0
    above_low = np.nonzero(prof >= 0.08)[0]
    extent = 0.5 * (above_low[-1] + 1) + 2.0 if above_low.size else 2 * r_half
    extent = max(extent, 1.5 * r_half)
    # smooth circular taper beyond the blob, and a window that reaches 0 at the cutout's edge
    # (tight cutouts would otherwise give square, sharp-edged shadows); shadows only darken
    ny, nx = t.shape
    edge_dist = np.minimum(np.minimum(yy, ny - 1 - yy), np.minimum(xx, nx - 1 - xx)).astype(float)
    taper = np.clip((extent - rr) / 2.0, 0.0, 1.0) * np.clip(edge_dist / 2.5, 0.0, 1.0)
    out = np.clip(t, 0.0, None) * taper
    if not out.max() > 0:
        raise ValueError("template has no positive blob inside its taper")
    return out / out.max(), cy, cx, r_half, extent


def _prepare(b: BlobSpec) -> Any:
    if b.kind == "template":
        return _prepare_template(b.template)
    if b.kind == "ring":
        w = max(0.7, 0.16 * b.radius)
        r0 = max(0.5, b.radius - 1.1774 * w)
        ss = max(0.7, 0.2 * b.radius)
        rg = np.linspace(0, 2.5 * b.radius, 600)
        p = _ring(rg, r0, w, ss, b.spot, b.plateau)
        return (r0, w, ss, float(p.max()))
    return None


def _ring(r, r0, w, ss, spot, plateau):
    return (np.exp(-0.5 * ((r - r0) / w) ** 2) + spot * np.exp(-0.5 * (r / ss) ** 2)
            + plateau / (1.0 + np.exp((r - r0) / 0.7)))


def _half_size(b: BlobSpec, prep: Any) -> float:
    if b.kind == "template":
        return prep[4] * b.radius / prep[3] + 2.0
    return 2.3 * b.radius + 2.0


def _profile(b: BlobSpec, prep: Any, ddx, ddy) -> np.ndarray:
    """Profile (peak 1) of `b` at offsets (ddx, ddy) from its centre (broadcast)."""
    ddx, ddy = np.broadcast_arrays(np.asarray(ddx, dtype=np.float64), np.asarray(ddy, dtype=np.float64))
    c, s = math.cos(b.angle), math.sin(b.angle)
    u = ddx * c + ddy * s
    v = (-ddx * s + ddy * c) / b.axis_ratio
    if b.kind == "template":
        tmpl, cy, cx, r_half, _ = prep
        sc = r_half / b.radius
        coords = np.stack([(cy + v * sc).ravel(), (cx + u * sc).ravel()])
        return ndimage.map_coordinates(tmpl, coords, order=1, mode="constant", cval=0.0).reshape(u.shape)
    r2 = u * u + v * v
    if b.kind == "ring":
        r0, w, ss, norm = prep
        return _ring(np.sqrt(r2), r0, w, ss, b.spot, b.plateau) / norm
    return np.exp(-_LN2 * np.power(r2 / (b.radius * b.radius), b.sharpness))


def blob_profile(blob: BlobSpec, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Render the profile (peak ~1) of `blob` on a small array centred on the blob.

    Parameters
    ----------
    blob : BlobSpec
        Only its shape parameters are used (the centre is placed at the array centre).
    shape : tuple of int, optional
        Output shape; default a square of side ``2 * ceil(2.3 R + 2) + 1``.

    Returns
    -------
    ndarray
        float64 profile; multiply by depth for the fractional dip.
    """
    prep = _prepare(blob)
    if shape is None:
        h = int(math.ceil(_half_size(blob, prep)))
        shape = (2 * h + 1, 2 * h + 1)
    yy, xx = np.indices(shape, dtype=float)
    return _profile(blob, prep, xx - (shape[1] - 1) / 2, yy - (shape[0] - 1) / 2)


def _box(b: BlobSpec, prep: Any, lo: int, hi: int, pad: float = 1.0):
    h = _half_size(b, prep) + pad
    x0, x1 = max(lo, int(math.floor(b.x - h))), min(hi, int(math.ceil(b.x + h)) + 1)
    y0, y1 = max(lo, int(math.floor(b.y - h))), min(hi, int(math.ceil(b.y + h)) + 1)
    if x0 >= x1 or y0 >= y1:
        return None
    return y0, y1, x0, x1


def _multiply_blobs(T: np.ndarray, blobs, preps, lo: int, hi: int, dx: float, dy: float) -> None:
    """Multiply the light-area transmission `T` (origin `lo`) by the blobs shifted by (dx, dy)."""
    for b, prep in zip(blobs, preps):
        box = _box(b, prep, lo, hi, pad=abs(dx) + abs(dy) + 1)
        if box is None:
            continue
        y0, y1, x0, x1 = box
        p = _profile(b, prep, np.arange(x0, x1)[None, :] - (b.x + dx), np.arange(y0, y1)[:, None] - (b.y + dy))
        T[y0 - lo:y1 - lo, x0 - lo:x1 - lo] *= (1.0 - b.depth * p).astype(np.float32)


def _history_median_T(blobs, preps, lo: int, hi: int, shifts: np.ndarray) -> np.ndarray:
    """Exact per-pixel median over the noiseless history transmissions (light area)."""
    T = np.ones((LIGHT, LIGHT), np.float32)
    if not blobs:
        return T
    pad = float(np.abs(shifts).max()) + 1.0
    boxes = [_box(b, p, lo, hi, pad=pad) for b, p in zip(blobs, preps)]
    mask = np.zeros((LIGHT, LIGHT), bool)
    for bx in boxes:
        if bx is not None:
            y0, y1, x0, x1 = bx
            mask[y0 - lo:y1 - lo, x0 - lo:x1 - lo] = True
    index = (np.cumsum(mask.ravel()) - 1).reshape(mask.shape)
    acc = np.ones((len(shifts), int(mask.sum())), np.float32)
    sx = shifts[:, 0][:, None, None]
    sy = shifts[:, 1][:, None, None]
    for b, prep, bx in zip(blobs, preps, boxes):
        if bx is None:
            continue
        y0, y1, x0, x1 = bx
        p = _profile(b, prep, np.arange(x0, x1)[None, None, :] - (b.x + sx),
                     np.arange(y0, y1)[None, :, None] - (b.y + sy))
        idx = index[y0 - lo:y1 - lo, x0 - lo:x1 - lo].ravel()
        acc[:, idx] *= (1.0 - b.depth * p).reshape(len(shifts), -1).astype(np.float32)
    T[mask] = np.median(acc, axis=0)
    return T


def _draw_kind(rng: np.random.Generator, templates) -> str:
    if templates and rng.random() < 0.35:
        return "template"
    return str(rng.choice(["disc", "ring", "ellipse"], p=[0.4, 0.35, 0.25]))


def _draw_shape(rng: np.random.Generator, kind: str, radius: float | None, templates) -> dict:
    """Radius and shape parameters of a blob of `kind` (rng consumption fixed per kind)."""
    if radius is None:
        radius = float(rng.uniform(5.0, 10.0) if kind == "ring" else rng.uniform(3.0, 10.0))
    out: dict[str, Any] = {"radius": float(radius), "kind": kind, "angle": float(rng.uniform(0, math.pi))}
    if kind == "ellipse":
        out["axis_ratio"] = float(rng.uniform(0.55, 0.85))
    elif kind == "template":
        out["axis_ratio"] = float(rng.uniform(0.85, 1.0))
    else:
        out["axis_ratio"] = float(rng.uniform(0.9, 1.0))
    out["sharpness"] = float(rng.uniform(1.5, 4.0))
    out["spot"] = float(rng.uniform(0.4, 1.0))
    out["plateau"] = float(rng.uniform(0.15, 0.45))
    if kind == "template":
        if not templates:
            raise ValueError("kind='template' needs templates")
        i = int(rng.integers(len(templates)))
        out["template"] = np.asarray(templates[i])
        out["template_id"] = i
    return out


def _steep_depth(rng: np.random.Generator) -> float:
    return float(min(0.3, 0.01 * (1.0 - rng.random()) ** (-1.0 / 1.3)))


def _far_enough(x: float, y: float, r: float, avoid: Sequence[BlobSpec], sep: float) -> bool:
    return all(math.hypot(x - a.x, y - a.y) > r + a.radius + sep for a in avoid)


def sample_new_blob(rng: np.random.Generator, snr: float | None = None, depth: float | None = None, *,
                    nuisance: Nuisance | None = None, noise_frac: float | None = None,
                    radius: float | None = None, kind: str | None = None, x: float | None = None,
                    y: float | None = None, templates: Sequence[np.ndarray] | None = None,
                    margin: float | None = None, avoid: Sequence[BlobSpec] = (),
                    min_separation: float = 4.0) -> BlobSpec:
    """Draw a new blob at a random position in the light-sensitive area.

    Parameters
    ----------
    rng : numpy.random.Generator
    snr : float, optional
        Requested S/N (peak depth / difference noise sigma).  The blob keeps it, and
        :func:`make_series` / :func:`make_difference` set its depth from the noise of
        their case; ``depth`` here is the nominal estimate.
    depth : float, optional
        Fractional peak depth (used when `snr` is None).  If both are None the depth is
        drawn from the steep many-faint / few-strong distribution.
    nuisance : Nuisance, optional
        Case knobs (frame size and nominal noise); defaults if None.
    noise_frac : float, optional
        Noise to convert `snr` to the nominal depth (default :func:`expected_noise_frac`).
    radius, kind : optional
        Fix the radius (px) or morphology; drawn otherwise.
    x, y : float, optional
        Fix the position (written-array coordinates).
    templates : sequence of 2-D arrays, optional
        Real-shape templates; with them about a third of the blobs are template blobs.
    margin : float, optional
        Minimum distance of the centre from the light-area edge (default radius + 2).
    avoid : sequence of BlobSpec
        Blobs to keep clear of (centre distance > r1 + r2 + `min_separation`).
    min_separation : float

    Returns
    -------
    BlobSpec
    """
    nu = nuisance or Nuisance()
    kind = kind or _draw_kind(rng, templates)
    shape = _draw_shape(rng, kind, radius, templates)
    lo, hi = _bounds(nu.frame_size)
    m = shape["radius"] + 2.0 if margin is None else float(margin)
    for _ in range(1000):
        bx = float(rng.uniform(lo + m, hi - 1 - m)) if x is None else float(x)
        by = float(rng.uniform(lo + m, hi - 1 - m)) if y is None else float(y)
        if (x is not None and y is not None) or _far_enough(bx, by, shape["radius"], avoid, min_separation):
            break
    if snr is not None:
        nf = noise_frac if noise_frac is not None else expected_noise_frac(nu)
        d = float(snr) * nf
    elif depth is not None:
        d = float(depth)
    else:
        d = _steep_depth(rng)
    return BlobSpec(x=bx, y=by, depth=min(d, 0.95), snr=None if snr is None else float(snr), **shape)


# ----------------------------------------------------------------------------------------------
# One case: everything that is fixed before the pixel noise is drawn
# ----------------------------------------------------------------------------------------------
@dataclass
class _Case:
    nu: Nuisance
    n_hist: int
    lo: int
    hi: int
    dates: list
    skies: np.ndarray
    shifts: np.ndarray
    cu: float
    cv: float
    vig: np.ndarray
    gcoef: np.ndarray
    noise_frac: float
    new: list
    new_preps: list
    existing: list
    existing_preps: list
    grad: dict
    pers: dict
    nan_idx: np.ndarray
    flat: np.ndarray
    rn: np.ndarray
    hot_idx: np.ndarray
    hot_e: np.ndarray
    unst_idx: np.ndarray
    unst_rts: np.ndarray
    unst_amp: np.ndarray
    unst_p: np.ndarray


def _nan_indices(rng: np.random.Generator, fraction: float) -> np.ndarray:
    """Flat indices (light area) of NaN defects: columns, clusters, a corner, singles."""
    budget = int(round(fraction * LIGHT * LIGHT))
    if budget <= 0:
        return np.zeros(0, np.int64)
    w = rng.dirichlet([1.0, 1.0, 1.0, 0.5])
    mask = np.zeros((LIGHT, LIGHT), bool)
    # bad (partial) columns
    need = int(w[0] * budget)
    while need > 0:
        c = int(rng.integers(LIGHT))
        ln = int(min(need, rng.integers(30, 400)))
        r0 = int(rng.integers(0, LIGHT - ln + 1))
        mask[r0:r0 + ln, c] = True
        need -= ln
    # small clusters
    need = int(w[1] * budget)
    while need > 0:
        rad = float(rng.uniform(0.8, 3.0))
        cy, cx = rng.uniform(3, LIGHT - 4, size=2)
        yy, xx = np.mgrid[int(cy) - 4:int(cy) + 5, int(cx) - 4:int(cx) + 5]
        sel = (yy - cy) ** 2 + (xx - cx) ** 2 <= rad * rad
        mask[yy[sel], xx[sel]] = True
        need -= max(1, int(sel.sum()))
    # a dead corner (quarter disc)
    n_corner = int(w[2] * budget)
    if n_corner > 0:
        rad = math.sqrt(4.0 * n_corner / math.pi)
        k = int(rng.integers(4))
        r = int(math.ceil(rad)) + 1
        yy, xx = np.mgrid[0:r, 0:r]
        sel = yy ** 2 + xx ** 2 <= rad * rad
        ys, xs = yy[sel], xx[sel]
        if k & 1:
            xs = LIGHT - 1 - xs
        if k & 2:
            ys = LIGHT - 1 - ys
        mask[np.clip(ys, 0, LIGHT - 1), np.clip(xs, 0, LIGHT - 1)] = True
    # isolated pixels to complete the budget
    rest = budget - int(mask.sum())
    if rest > 0:
        mask.ravel()[rng.choice(LIGHT * LIGHT, size=rest, replace=False)] = True
    return np.flatnonzero(mask)


def _draw_existing(rng: np.random.Generator, nu: Nuisance, templates, avoid: Sequence[BlobSpec]) -> list[BlobSpec]:
    """``nu.n_existing`` random existing blobs (steep depths), clear of the blobs `avoid`."""
    lo, hi = _bounds(nu.frame_size)
    ex = []
    for _ in range(int(nu.n_existing)):
        kind = _draw_kind(rng, templates)
        shape = _draw_shape(rng, kind, None, templates)
        m = shape["radius"] + 1.0
        for _ in range(200):
            bx, by = rng.uniform(lo + m, hi - 1 - m, size=2)
            if _far_enough(bx, by, shape["radius"], avoid, 3.0):
                break
        ex.append(BlobSpec(x=float(bx), y=float(by), depth=_steep_depth(rng), **shape))
    return ex


def _draw_deep_existing(rng: np.random.Generator, nu: Nuisance, templates, avoid: Sequence[BlobSpec],
                        n: int) -> list[BlobSpec]:
    """`n` deep existing blobs: depth U(0.25, 0.30), radius U(5, 15) px, clear of each other."""
    lo, hi = _bounds(nu.frame_size)
    out: list[BlobSpec] = []
    for _ in range(int(n)):
        kind = _draw_kind(rng, templates)
        shape = _draw_shape(rng, kind, float(rng.uniform(5.0, 15.0)), templates)
        m = shape["radius"] + 2.0
        for _ in range(200):
            bx, by = rng.uniform(lo + m, hi - 1 - m, size=2)
            if _far_enough(bx, by, shape["radius"], [*avoid, *out], 10.0):
                break
        out.append(BlobSpec(x=float(bx), y=float(by), depth=float(rng.uniform(0.25, 0.30)), **shape))
    return out


def _prepare_case(rng: np.random.Generator, nu: Nuisance, new_blobs: Sequence[BlobSpec], templates,
                  existing: Sequence[BlobSpec] | None, n_history: int, start_date: str | None,
                  n_days: int = 1) -> _Case:
    if n_history < 1:
        raise ValueError("n_history must be >= 1")
    if isinstance(n_days, bool) or not isinstance(n_days, (int, np.integer)) or n_days < 1:
        raise ValueError(f"n_days must be an integer >= 1, not {n_days!r}")
    lo, hi = _bounds(nu.frame_size)
    n = n_history + int(n_days)
    if start_date is None:
        start = _EPOCH + _dt.timedelta(days=int(rng.integers(0, 4700)), seconds=int(rng.integers(0, 86400)))
    else:
        start = _dt.datetime.fromisoformat(start_date)
        rng.integers(0, 4700), rng.integers(0, 86400)
    dates = [(start + _dt.timedelta(days=t)).strftime("%Y-%m-%dT%H:%M:%S") for t in range(n)]
    skies = nu.sky_e * np.clip(1.0 + nu.sky_day_scatter * rng.standard_normal(n), 0.3, None)
    shifts = np.zeros((n, 2))
    shifts[:n_history] = nu.history_jitter_px * rng.standard_normal((n_history, 2))
    for t in range(n_history, n):  # every monitored frame: its own shift, drawn as the latest frame's
        mag = nu.misreg_px * rng.uniform(0.75, 1.0)
        ang = rng.uniform(0, 2 * math.pi)
        shifts[t] = (mag * math.cos(ang), mag * math.sin(ang))
    cu, cv = rng.uniform(-0.2, 0.2, size=2)
    vig = np.clip(nu.vignetting * rng.uniform(0.7, 1.3) * (1 + 3 * nu.illum_day_change * rng.standard_normal(n)),
                  0, 0.3)
    gcoef = 0.03 * rng.standard_normal(3)[None, :] + nu.illum_day_change * rng.standard_normal((n, 3))
    # S/N refers to the first monitored day's difference (its own sky vs the history's)
    noise_frac = _noise_frac(nu, float(skies[n_history]), [float(s) for s in skies[:n_history]])
    new = [_finalise(b, noise_frac) for b in new_blobs]
    if existing is None:
        ex = _draw_existing(rng, nu, templates, new)
    else:
        ex = [_finalise(b, noise_frac) for b in existing]
    grad = {"coef": rng.standard_normal(5), "bump": float(rng.uniform(0, 0.6)),
            "bump_uv": rng.uniform(-0.7, 0.7, size=2), "bump_sigma": float(rng.uniform(0.2, 0.5))}
    npers = int(rng.integers(1, 4))
    pers = {"centres": rng.uniform(lo, hi - 1, size=(npers, 2)), "sigmas": rng.uniform(6, 40, size=(npers, 2)),
            "weights": rng.uniform(0.5, 1.0, size=npers)}
    nan_idx = _nan_indices(rng, nu.nan_fraction)
    flat = (1.0 + nu.flat_rms * rng.standard_normal((LIGHT, LIGHT), dtype=np.float32)).astype(np.float32)
    s = nu.read_noise_spread
    size = nu.frame_size
    rn = (nu.read_noise_e * np.exp(s * rng.standard_normal((size, size), dtype=np.float32) - s * s)).astype(np.float32)
    nh = int(round(nu.hot_fraction * LIGHT * LIGHT))
    hot_idx = rng.choice(LIGHT * LIGHT, size=nh, replace=False) if nh else np.zeros(0, np.int64)
    hot_e = (rng.lognormal(math.log(0.5), 1.0, size=nh) * nu.exptime).astype(np.float32)
    nun = int(round(nu.unstable_fraction * LIGHT * LIGHT))
    unst_idx = rng.choice(LIGHT * LIGHT, size=nun, replace=False) if nun else np.zeros(0, np.int64)
    unst_rts = rng.random(nun) < 0.5
    unst_amp = nu.unstable_scale * rng.uniform(0.5, 1.5, size=nun)
    unst_p = rng.uniform(0.2, 0.8, size=nun)
    return _Case(nu=nu, n_hist=n_history, lo=lo, hi=hi, dates=dates, skies=skies, shifts=shifts, cu=float(cu),
                 cv=float(cv), vig=vig, gcoef=gcoef, noise_frac=noise_frac, new=new,
                 new_preps=[_prepare(b) for b in new], existing=ex, existing_preps=[_prepare(b) for b in ex],
                 grad=grad, pers=pers, nan_idx=nan_idx, flat=flat, rn=rn, hot_idx=hot_idx, hot_e=hot_e,
                 unst_idx=unst_idx, unst_rts=unst_rts, unst_amp=unst_amp, unst_p=unst_p)


def _uv(case: _Case, dx: float = 0.0, dy: float = 0.0):
    centre = case.lo + (LIGHT - 1) / 2.0
    x = np.arange(case.lo, case.hi, dtype=np.float64)
    u = ((x - dx - centre) / (LIGHT / 2.0)).astype(np.float32)
    v = ((x - dy - centre) / (LIGHT / 2.0)).astype(np.float32)
    return u, v


def _illumination(case: _Case, vig: float, g: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Smooth illumination (mean ~1) on the light area, shifted by (dx, dy)."""
    u, v = _uv(case, dx, dy)
    k0 = 2.0 / 3.0 + case.cu ** 2 + case.cv ** 2
    a = 1.0 - vig * ((u - case.cu) ** 2 - k0 / 2)
    b = -vig * ((v - case.cv) ** 2 - k0 / 2)
    vign = a[None, :] + b[:, None]
    poly = (1.0 + g[0] * u)[None, :] + (g[1] * v)[:, None] + g[2] * (u[None, :] * v[:, None])
    return (vign * poly).astype(np.float32)


def _gradient_map(case: _Case) -> np.ndarray:
    """Plane + quadratic + broad bump, max |P| = 1 on the light area."""
    u, v = _uv(case)
    c = case.grad["coef"]
    uu, vv = u[None, :], v[:, None]
    p = c[0] * uu + c[1] * vv + c[2] * (uu * uu - 1 / 3) + c[3] * uu * vv + c[4] * (vv * vv - 1 / 3)
    bu, bv = case.grad["bump_uv"]
    s = case.grad["bump_sigma"]
    gx = np.exp(-0.5 * ((u - bu) / s) ** 2)
    gy = np.exp(-0.5 * ((v - bv) / s) ** 2)
    p = p + case.grad["bump"] * np.outer(gy, gx)
    p -= 0.5 * (p.max() + p.min())
    return (p / max(np.abs(p).max(), 1e-12)).astype(np.float32)


def _persistence_map(case: _Case) -> np.ndarray:
    x = np.arange(case.lo, case.hi, dtype=np.float64)
    out = np.zeros((LIGHT, LIGHT), np.float64)
    for (cx, cy), (sx, sy), w in zip(case.pers["centres"], case.pers["sigmas"], case.pers["weights"]):
        out += w * np.outer(np.exp(-0.5 * ((x - cy) / sy) ** 2), np.exp(-0.5 * ((x - cx) / sx) ** 2))
    return (out / out.max()).astype(np.float32)


def _row_pattern(rng: np.random.Generator, size: int, rms: float) -> np.ndarray:
    """(size, 2) row offsets for the left / right halves: half 1/f, half white (variance)."""
    f = np.fft.rfftfreq(size)
    amp = np.zeros_like(f)
    amp[1:] = 1.0 / np.sqrt(f[1:])
    spec = (rng.standard_normal((2, f.size)) + 1j * rng.standard_normal((2, f.size))) * amp
    pink = np.fft.irfft(spec, n=size, axis=1)
    pink /= pink.std(axis=1, keepdims=True)
    white = rng.standard_normal((2, size))
    return (rms * math.sqrt(0.5) * (pink + white)).T


def _add_rows(img: np.ndarray, rows: np.ndarray) -> None:
    h = img.shape[1] // 2
    img[:, :h] += rows[:, 0:1].astype(np.float32)
    img[:, h:] += rows[:, 1:2].astype(np.float32)


def _unstable_values(rng: np.random.Generator, case: _Case, nframes: int) -> np.ndarray:
    """(nframes, n_unstable) excursions in single-frame sigma units."""
    k = case.unst_idx.size
    bits = rng.random((nframes, k)) < case.unst_p[None, :]
    tvals = 0.5 * rng.standard_t(2.0, size=(nframes, k))
    return np.where(case.unst_rts[None, :], case.unst_amp * bits, case.unst_amp * tvals)


def _cosmic_rays(rng: np.random.Generator, mean_n: float) -> tuple[np.ndarray, np.ndarray]:
    """Flat light-area indices and e- of one frame's cosmic-ray tracks."""
    n = int(rng.poisson(mean_n))
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    x0 = rng.uniform(0, LIGHT, n)
    y0 = rng.uniform(0, LIGHT, n)
    length = np.minimum(rng.geometric(0.45, n), 8)
    ang = rng.uniform(0, 2 * math.pi, n)
    energy = rng.lognormal(math.log(1500.0), 0.9, n)
    step = np.arange(8)[None, :]
    xs = np.floor(x0[:, None] + step * np.cos(ang)[:, None]).astype(np.int64)
    ys = np.floor(y0[:, None] + step * np.sin(ang)[:, None]).astype(np.int64)
    val = (energy / length)[:, None] * rng.uniform(0.6, 1.4, (n, 8))
    ok = (step < length[:, None]) & (xs >= 0) & (xs < LIGHT) & (ys >= 0) & (ys < LIGHT)
    return (ys[ok] * LIGHT + xs[ok]), val[ok].astype(np.float32)


def _truth_common(case: _Case, kind: str) -> dict:
    nu = case.nu
    sl = float(case.skies[-1])
    sh = float(np.median(case.skies[:case.n_hist]))
    dx, dy = case.shifts[-1]
    return {
        "kind": kind,
        "size": nu.frame_size,
        "light_area": [case.lo, case.hi - 1],
        "units": nu.units,
        "bunit": _BUNIT[nu.units] if nu.write_bunit else None,
        "exptime": _r(nu.exptime),
        "gain": _r(nu.gain),
        "pedestal_dn": _r(nu.pedestal_dn) if nu.units == "DN" else None,
        "ref_bias_dn": _r(nu.ref_bias) if nu.frame_size != LIGHT else None,
        "n_history": case.n_hist,
        "date_obs": case.dates[-1],
        "dates": list(case.dates),
        "sky_e_latest": _r(sl),
        "sky_e_history_median": _r(sh),
        "sky_e": [_r(s) for s in case.skies],
        "noise_frac": _r(case.noise_frac),
        "shifts": {"latest": [_r(dx), _r(dy)], "latest_abs": _r(math.hypot(dx, dy)),
                   "history": [[_r(a), _r(b)] for a, b in case.shifts[:case.n_hist]],
                   "note": "(dx, dy) px of the blob pattern and illumination in each frame"},
        "nuisance": nu.to_dict(),
        "gradient_peak_frac": _r(nu.gradient_sigma * case.noise_frac),
        "offset_frac": _r(nu.offset_sigma * case.noise_frac),
        "persistence_peak_frac": _r(nu.persistence * case.noise_frac),
        "n_nan": int(case.nan_idx.size),
        "existing_blobs": [b.to_dict(case.noise_frac, dx, dy) for b in case.existing],
        "new_blobs": [dict(b.to_dict(case.noise_frac), requested_snr=None if b.snr is None else _r(b.snr),
                           below_target=bool(b.depth / case.noise_frac < 3.0)) for b in case.new],
        "coordinates": "x = column, y = row, 0-based, written array",
    }


# ----------------------------------------------------------------------------------------------
# Series and difference
# ----------------------------------------------------------------------------------------------
def _to_units(img_e: np.ndarray, nu: Nuisance, light: tuple[slice, slice]) -> np.ndarray:
    if nu.units == "normalised":
        img_e *= np.float32(1.0 / nu.sky_e)
    elif nu.units == "e-/s":
        img_e *= np.float32(1.0 / nu.exptime)
    elif nu.units == "DN":
        img_e *= np.float32(1.0 / nu.gain)
        img_e[light] += np.float32(nu.pedestal_dn)
    return img_e


def make_series(rng: np.random.Generator, nuisance: Nuisance, new_blobs: Sequence[BlobSpec] = (), *,
                templates: Sequence[np.ndarray] | None = None, existing: Sequence[BlobSpec] | None = None,
                n_history: int = N_HISTORY, start_date: str | None = None, n_days: int = 1
                ) -> tuple[list[np.ndarray], list[dict], dict]:
    """Simulate a CSM-monitor series: `n_history` history frames + `n_days` monitored frames.

    Parameters
    ----------
    rng : numpy.random.Generator
    nuisance : Nuisance
        The knobs of the case (units, frame size, noise, ...).
    new_blobs : sequence of BlobSpec
        Blobs that appear in the first monitored frame, at exactly (x, y), and stay in every
        later one (same shape and depth, moving with the blob pattern's shift of each day, like
        the existing blobs).  A blob with ``snr`` set gets ``depth = snr * truth["noise_frac"]``.
    templates : sequence of 2-D arrays, optional
        Real-shape templates for the randomly drawn existing blobs.
    existing : sequence of BlobSpec, optional
        Existing blobs to use instead of ``nuisance.n_existing`` random ones.
    n_history : int
        Number of history frames (default 30).
    start_date : str, optional
        ISO DATE-OBS of the first frame; random (2012-2024) if None.
    n_days : int
        Number of monitored frames, one day apart after the history (default 1: the latest
        frame only; the frames, truth and random numbers are then those of a call without it).
        Each monitored frame has its own noise, cosmic rays, sky level, illumination and
        mis-registration shift (``misreg_px x U(0.75, 1)``, random direction); the residual
        gradient, offset and persistence of the case are in every monitored frame.

    Returns
    -------
    frames : list of ndarray
        ``n_history + n_days`` float32 arrays (oldest first, latest last) in ``nuisance.units``.
    headers : list of dict
        ``{"DATE-OBS": ...}`` (+ ``"BUNIT"`` if ``nuisance.write_bunit``) per frame.
    truth : dict
        Plain-JSON truth (blobs, shifts, noise_frac, skies, every nuisance value, ...).
        ``noise_frac`` and the blobs' ``snr`` refer to the first monitored day's difference.
        With ``n_days > 1`` also ``n_days``, ``monitored_frames`` (indices), ``monitored_dates``,
        ``shifts["monitored"]`` and, per new blob, ``first_frame`` (index of the frame it appears
        in), ``first_day`` (1) and ``xy_by_day`` (its centre in each monitored frame).
    """
    nu = nuisance
    case = _prepare_case(rng, nu, new_blobs, templates, existing, n_history, start_date, n_days)
    size, lo, hi = nu.frame_size, case.lo, case.hi
    light = (slice(lo, hi), slice(lo, hi))
    border = None
    if size != LIGHT:
        border = np.ones((size, size), bool)
        border[light] = False
    dark_e = np.float32(nu.dark_e_s * nu.exptime)
    rn2_light = case.rn[light] ** 2
    grad = _gradient_map(case) if nu.gradient_sigma else None
    pers = _persistence_map(case) if nu.persistence else None
    n = n_history + int(n_days)
    s0 = case.shifts[n_history]  # the new blobs' truth position is in the first monitored frame
    frames, headers = [], []
    n_cr_latest = 0
    for t in range(n):
        monitored = t >= n_history
        sky = float(case.skies[t])
        dx, dy = case.shifts[t]
        illum = _illumination(case, float(case.vig[t]), case.gcoef[t], dx, dy)
        T = np.ones((LIGHT, LIGHT), np.float32)
        _multiply_blobs(T, case.existing, case.existing_preps, lo, hi, dx, dy)
        if monitored:
            _multiply_blobs(T, case.new, case.new_preps, lo, hi, float(dx - s0[0]), float(dy - s0[1]))
        mean = np.float32(sky) * illum * T * case.flat
        if monitored:
            if grad is not None:
                mean *= 1.0 - np.float32(nu.gradient_sigma * case.noise_frac) * grad
            if nu.offset_sigma:
                mean -= np.float32(nu.offset_sigma * case.noise_frac * sky)
            if pers is not None:
                mean += np.float32(nu.persistence * case.noise_frac * sky) * pers * illum
        mean += dark_e
        mean.ravel()[case.hot_idx] += case.hot_e
        var = np.maximum(mean, 0) + rn2_light
        frame = np.empty((size, size), np.float32)
        frame[light] = mean + np.sqrt(var) * rng.standard_normal((LIGHT, LIGHT), dtype=np.float32)
        if border is not None:
            nb = int(border.sum())
            frame[border] = (np.float32(nu.ref_bias * nu.gain)
                             + case.rn[border] * rng.standard_normal(nb, dtype=np.float32))
        s1 = _sigma1_e(nu, sky)
        if nu.row_noise:
            _add_rows(frame, _row_pattern(rng, size, nu.row_noise * s1))
        fl = np.ascontiguousarray(frame[light])
        if case.unst_idx.size:
            fl.ravel()[case.unst_idx] += (s1 * _unstable_values(rng, case, 1)[0]).astype(np.float32)
        cr_idx, cr_e = _cosmic_rays(rng, nu.cr_per_frame)
        np.add.at(fl.ravel(), cr_idx, cr_e)
        if t == n - 1:
            n_cr_latest = int(cr_idx.size)
        frame[light] = fl
        frame = _to_units(frame, nu, light)
        if case.nan_idx.size:
            fl = np.ascontiguousarray(frame[light])
            fl.ravel()[case.nan_idx] = np.nan
            frame[light] = fl
        frames.append(frame)
        hdr = {"DATE-OBS": case.dates[t]}
        if nu.write_bunit:
            hdr["BUNIT"] = _BUNIT[nu.units]
        headers.append(hdr)
    truth = _truth_common(case, "series")
    truth["conversion"] = {"e_per_unit": _r({"normalised": nu.sky_e, "e-": 1.0, "e-/s": nu.exptime,
                                             "DN": nu.gain}[nu.units]),
                           "pedestal": _r(nu.pedestal_dn) if nu.units == "DN" else 0.0,
                           "note": "e- = (value - pedestal) * e_per_unit (pedestal: light area, DN only)"}
    truth["n_cosmic_ray_pixels_latest"] = n_cr_latest
    truth["difference_convention"] = ("D = median(history_t / (S_t I_t)) - latest / (S_L I_L); the latest "
                                      "frame's gradient and offset terms are NOT part of I_L")
    if n_days > 1:  # (absent for one monitored frame: the truth of a call without n_days)
        mon = range(n_history, n)
        truth["n_days"] = int(n_days)
        truth["monitored_frames"] = list(mon)
        truth["monitored_dates"] = [case.dates[t] for t in mon]
        truth["shifts"]["monitored"] = [[_r(case.shifts[t][0]), _r(case.shifts[t][1])] for t in mon]
        truth["shifts"]["note"] += ("; latest = the last frame, monitored = every frame after the history; "
                                    "noise_frac and snr refer to the first monitored day")
        for b, d in zip(case.new, truth["new_blobs"]):
            d["first_frame"] = int(n_history)
            d["first_day"] = 1
            d["xy_by_day"] = [[_r(b.x + case.shifts[t][0] - s0[0]), _r(b.y + case.shifts[t][1] - s0[1])]
                              for t in mon]
    return frames, headers, truth


def make_difference(rng: np.random.Generator, nuisance: Nuisance, new_blobs: Sequence[BlobSpec] = (), *,
                    templates: Sequence[np.ndarray] | None = None,
                    existing: Sequence[BlobSpec] | None = None, n_history: int = N_HISTORY,
                    start_date: str | None = None) -> tuple[np.ndarray, dict]:
    """Simulate one median-minus-latest difference image directly (blobs positive).

    Its statistics follow what :func:`make_series` followed by ``median(history /
    illumination) - latest / illumination`` gives: the same case preparation, an exact
    median of the noiseless history blob transmissions, and a noise whose per-pixel
    variance is ``var(latest) + c_n var(history frame)``.

    Parameters
    ----------
    rng : numpy.random.Generator
    nuisance : Nuisance
        The knobs of the case.  ``units``: ``normalised`` (fractional), ``e-`` / ``e-/s``
        / ``DN`` (fractional times the latest sky in e-, e-/s or DN, no pedestal).
    new_blobs : sequence of BlobSpec
        New blobs (positive in the image), at exactly (x, y).
    templates, existing, n_history, start_date
        As in :func:`make_series`.

    Returns
    -------
    image : ndarray
        float32, ``(frame_size, frame_size)``.
    truth : dict
        Plain-JSON truth; ``noise_frac`` is the per-pixel sigma in fractional units,
        ``scale`` the factor from fractional to file units, ``noise_file_units`` their
        product; per new blob its depth and S/N.
    """
    nu = nuisance
    case = _prepare_case(rng, nu, new_blobs, templates, existing, n_history, start_date)
    size, lo, hi = nu.frame_size, case.lo, case.hi
    light = (slice(lo, hi), slice(lo, hi))
    sl = float(case.skies[-1])
    sky_h = case.skies[:-1]
    shm = float(np.median(sky_h))
    c = _median_var_factor(n_history)
    dxl, dyl = case.shifts[-1]
    hist_shift = case.shifts[:-1]
    mdx, mdy = np.median(hist_shift, axis=0)
    illum_l = _illumination(case, float(case.vig[-1]), case.gcoef[-1], dxl, dyl)
    illum_h = _illumination(case, float(np.median(case.vig[:-1])), np.median(case.gcoef[:-1], axis=0), mdx, mdy)
    T_l = np.ones((LIGHT, LIGHT), np.float32)
    _multiply_blobs(T_l, case.existing, case.existing_preps, lo, hi, dxl, dyl)
    _multiply_blobs(T_l, case.new, case.new_preps, lo, hi, 0.0, 0.0)
    T_h = _history_median_T(case.existing, case.existing_preps, lo, hi, hist_shift)
    F = case.flat
    dark_e = np.float32(nu.dark_e_s * nu.exptime)
    extra = np.full((LIGHT, LIGHT), dark_e, np.float32)
    extra.ravel()[case.hot_idx] += case.hot_e
    extra += case.rn[light] ** 2
    sl_i = np.float32(sl) * illum_l
    sh_i = np.float32(shm) * illum_h
    var = (sl_i * F * T_l + extra) / (sl_i * sl_i) + np.float32(c) * (sh_i * F * T_h + extra) / (sh_i * sh_i)
    img = np.zeros((size, size), np.float32)
    d = F * (T_h - T_l)
    d += np.sqrt(var) * rng.standard_normal((LIGHT, LIGHT), dtype=np.float32)
    if case.hot_idx.size:
        hv = case.hot_e / sh_i.ravel()[case.hot_idx] - case.hot_e / sl_i.ravel()[case.hot_idx]
        d.ravel()[case.hot_idx] += hv
    if nu.gradient_sigma:
        d += np.float32(nu.gradient_sigma * case.noise_frac) * _gradient_map(case) * F * T_l
    if nu.offset_sigma:
        d += np.float32(nu.offset_sigma * case.noise_frac) / illum_l
    if nu.persistence:
        d -= np.float32(nu.persistence * case.noise_frac) * _persistence_map(case)
    img[light] = d
    if size != LIGHT:
        border = np.ones((size, size), bool)
        border[light] = False
        rnb = case.rn[border]
        ref_e = nu.ref_bias * nu.gain
        img[border] = (np.float32(ref_e * (1.0 / shm - 1.0 / sl))
                       + rnb * np.float32(math.sqrt(1.0 / sl ** 2 + c / shm ** 2))
                       * rng.standard_normal(rnb.size, dtype=np.float32))
    if nu.row_noise:
        s_rows = nu.row_noise * math.sqrt((_sigma1_e(nu, sl) / sl) ** 2 + c * (_sigma1_e(nu, shm) / shm) ** 2)
        _add_rows(img, _row_pattern(rng, size, s_rows))
    fl = np.ascontiguousarray(img[light])
    if case.unst_idx.size:
        vals = _unstable_values(rng, case, n_history + 1)
        s1h = np.array([_sigma1_e(nu, float(s)) / float(s) for s in sky_h])[:, None]
        med_h = np.median(vals[:-1] * s1h, axis=0)
        ill_l = illum_l.ravel()[case.unst_idx]
        ill_h = illum_h.ravel()[case.unst_idx]
        fl.ravel()[case.unst_idx] += (med_h / ill_h - vals[-1] * (_sigma1_e(nu, sl) / sl) / ill_l).astype(np.float32)
    cr_idx, cr_e = _cosmic_rays(rng, nu.cr_per_frame)
    np.subtract.at(fl.ravel(), cr_idx, cr_e / sl_i.ravel()[cr_idx])
    if case.nan_idx.size:
        fl.ravel()[case.nan_idx] = np.nan
    img[light] = fl
    scale = {"normalised": 1.0, "e-": sl, "e-/s": sl / nu.exptime, "DN": sl / nu.gain}[nu.units]
    if scale != 1.0:
        img *= np.float32(scale)
    truth = _truth_common(case, "difference")
    truth["scale"] = _r(scale)
    truth["noise_file_units"] = _r(case.noise_frac * scale)
    truth["n_cosmic_ray_pixels_latest"] = int(cr_idx.size)
    truth["ref_border_level_frac"] = (_r(nu.ref_bias * nu.gain * (1.0 / shm - 1.0 / sl))
                                      if size != LIGHT else None)
    truth["difference_convention"] = "D = median(history / own illumination) - latest / own illumination"
    return img, truth


# ----------------------------------------------------------------------------------------------
# Writing the evaluation sets
# ----------------------------------------------------------------------------------------------
def _write_fits_atomic(path: Path, data: np.ndarray, header: dict) -> None:
    hdu = fits.PrimaryHDU(data=np.ascontiguousarray(data, dtype=np.float32))
    for k, v in header.items():
        hdu.header[k] = v
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        hdu.writeto(tmp, overwrite=True)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _write_json_atomic(path: Path, obj: Any) -> None:
    text = json.dumps(obj, indent=1, allow_nan=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _draw_nuisance(rng: np.random.Generator, regime: str, units_choices: Sequence[str]) -> Nuisance:
    """Random realistic knobs; ``quiet`` (little mis-registration), ``dips`` (0.2-0.6 px + more) or
    ``jitter_deep`` (every frame jittered: history rms 0.15-0.5 px per frame, monitored frames shifted
    0.15-0.5 px; other nuisances as ``quiet``)."""
    loguni = lambda a, b: float(math.exp(rng.uniform(math.log(a), math.log(b))))
    common = dict(
        frame_size=int(rng.choice([LIGHT, LIGHT + 2 * BORDER])),
        units=str(units_choices[int(rng.integers(len(units_choices)))]),
        write_bunit=bool(rng.random() < 0.5),
        sky_e=float(rng.uniform(1000, 4000)),
        sky_day_scatter=float(rng.uniform(0.05, 0.25)),
        illum_day_change=float(rng.uniform(0.001, 0.008)),
        vignetting=float(rng.uniform(0.03, 0.15)),
        read_noise_e=float(rng.uniform(15, 21)),
        read_noise_spread=float(rng.uniform(0.1, 0.4)),
        flat_rms=float(rng.uniform(0.01, 0.03)),
        gain=float(rng.uniform(2.2, 2.5)),
        exptime=float(rng.uniform(200, 600)),
        hot_fraction=loguni(1e-4, 1e-3),
        n_existing=int(rng.integers(20, 161)),
        unstable_scale=float(rng.uniform(3, 12)),
        ref_bias=float(rng.uniform(50, 2000)),
        pedestal_dn=float(rng.uniform(500, 12000)),
        nan_fraction=0.0 if rng.random() < 0.3 else loguni(1e-5, 3e-3),
    )
    if regime == "quiet":
        extra = dict(misreg_px=float(rng.uniform(0.0, 0.05)), history_jitter_px=float(rng.uniform(0.0, 0.03)),
                     gradient_sigma=float(rng.uniform(0.0, 0.3)), offset_sigma=float(rng.normal(0, 0.05)),
                     unstable_fraction=loguni(1e-4, 1e-3), cr_per_frame=int(rng.integers(20, 121)),
                     persistence=0.0, row_noise=float(rng.uniform(0.0, 0.1)))
    elif regime == "dips":
        extra = dict(misreg_px=float(rng.uniform(0.27, 0.6)), history_jitter_px=float(rng.uniform(0.0, 0.1)),
                     gradient_sigma=float(rng.uniform(0.0, 3.0)), offset_sigma=float(rng.normal(0, 0.5)),
                     unstable_fraction=loguni(1e-4, 1e-2), cr_per_frame=int(rng.integers(20, 401)),
                     persistence=0.0 if rng.random() < 0.6 else float(rng.uniform(1, 8)),
                     row_noise=float(rng.uniform(0.0, 0.5)))
    elif regime == "jitter_deep":
        # history: N(0, s) per axis, s = J / sqrt(2), so the rms shift of a frame is J in 0.15-0.5 px;
        # monitored frames: misreg_px x U(0.75, 1) with misreg_px in 0.2-0.5, i.e. 0.15-0.5 px
        extra = dict(misreg_px=float(rng.uniform(0.2, 0.5)),
                     history_jitter_px=float(rng.uniform(0.15, 0.5)) / math.sqrt(2.0),
                     gradient_sigma=float(rng.uniform(0.0, 0.3)), offset_sigma=float(rng.normal(0, 0.05)),
                     unstable_fraction=loguni(1e-4, 1e-3), cr_per_frame=int(rng.integers(20, 121)),
                     persistence=0.0, row_noise=float(rng.uniform(0.0, 0.1)))
    else:
        raise ValueError(f"unknown regime {regime!r}")
    return Nuisance(**common, **extra)


def _draw_new_blobs(rng: np.random.Generator, nu: Nuisance, weak_fraction: float, templates,
                    weak_snr: tuple[float, float] = (1.5, 3.0)) -> list[BlobSpec]:
    k = 1 + int(rng.random() < 0.4)
    out: list[BlobSpec] = []
    for _ in range(k):
        snr = (float(rng.uniform(weak_snr[0], weak_snr[1])) if rng.random() < weak_fraction
               else float(rng.uniform(3.0, 12.0)))
        out.append(sample_new_blob(rng, snr=snr, nuisance=nu, templates=templates, avoid=out, min_separation=10.0))
    return out


def _plan(seed: int, tag: int, n_quiet: int, n_new: int,
          n_jitter_deep: int = 0) -> list[tuple[str, str, np.random.SeedSequence]]:
    """Case names (neutral, shuffled so the order does not reveal the class) and seeds."""
    for name, v in (("n_quiet", n_quiet), ("n_new", n_new), ("n_jitter_deep", n_jitter_deep)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"case counts must be integers >= 0: {name}={v!r}")
    kinds = (["quiet"] * ((n_quiet + 1) // 2) + ["dips"] * (n_quiet // 2) + ["new"] * n_new
             + ["jitter_deep"] * n_jitter_deep)
    order = np.random.default_rng(np.random.SeedSequence([int(seed), tag, 0])).permutation(len(kinds))
    return [(f"case_{i:03d}", kinds[j], np.random.SeedSequence([int(seed), tag, 1, i]))
            for i, j in enumerate(order)]


def _set_meta(seed: int, n_quiet: int, n_new: int, n_history: int, templates, n_days: int = 1,
              n_jitter_deep: int = 0) -> dict:
    meta = {"generator": "blobhelpers.blob.crosssim", "independent": True, "seed": int(seed),
            "n_quiet": int(n_quiet), "n_new": int(n_new), "n_history": int(n_history),
            "n_templates": len(templates) if templates else 0,
            "coordinates": "x = column, y = row, 0-based, written array",
            "snr_definition": "peak fractional depth / per-pixel sigma of the difference (fractional)",
            "purpose": "evaluation only: never train, tune thresholds or select models on it"}
    if n_days != 1 or n_jitter_deep:  # (absent by default: the meta of a set written without them)
        meta.update(n_days=int(n_days), n_jitter_deep=int(n_jitter_deep))
    return meta


def _case_regime(rng: np.random.Generator, kind: str) -> str:
    if kind == "new":
        return "quiet" if rng.random() < 0.5 else "dips"
    return kind


def write_difference_set(outdir: str | os.PathLike, n_quiet: int = 40, n_new: int = 40, seed: int = 0, *,
                         templates: Sequence[np.ndarray] | None = None, weak_fraction: float = 0.15,
                         n_history: int = N_HISTORY) -> dict:
    """Write the default cross-simulator difference-image evaluation set.

    Parameters
    ----------
    outdir : path
        Files go to ``outdir/diff/<case>.fits`` and ``outdir/diff/truth.json``.
    n_quiet : int
        Blob-free cases: half quiet, half with mis-registration dips (0.2-0.6 px) and
        other nuisances drawn from realistic ranges.
    n_new : int
        Cases with 1-2 new blobs, S/N uniform in 3-12, or with probability
        `weak_fraction` in 1.5-3 (flagged ``below_target``).
    seed : int
        Same seed, same bytes.
    templates : sequence of 2-D arrays, optional
        Real blob cutouts used for some blob shapes.
    weak_fraction : float
    n_history : int

    Returns
    -------
    dict
        The truth written to ``truth.json``.
    """
    out = Path(outdir) / "diff"
    out.mkdir(parents=True, exist_ok=True)
    cases = []
    for name, kind, ss in _plan(seed, 1, n_quiet, n_new):
        rng = np.random.default_rng(ss)
        regime = _case_regime(rng, kind)
        nu = _draw_nuisance(rng, regime, DIFFERENCE_UNITS)
        new = _draw_new_blobs(rng, nu, weak_fraction, templates) if kind == "new" else []
        img, truth = make_difference(rng, nu, new, templates=templates, n_history=n_history)
        hdr = {"DATE-OBS": truth["date_obs"]}
        if nu.write_bunit:
            hdr["BUNIT"] = _BUNIT[nu.units]
        _write_fits_atomic(out / f"{name}.fits", img, hdr)
        cases.append({"case": name, "file": f"{name}.fits", "case_kind": kind, "nuisance_regime": regime,
                      "has_new_blob": bool(new), **truth})
    result = {**_set_meta(seed, n_quiet, n_new, n_history, templates), "cases": cases}
    _write_json_atomic(out / "truth.json", result)
    return result


def _series_tag(n_days: int) -> int:
    """Seed tag of the series sets: one-day sets keep their seeds; multi-day sets draw their own cases."""
    return 2 if n_days == 1 else 3


def iter_series_cases(n_quiet: int = 20, n_new: int = 22, seed: int = 0, *,
                      templates: Sequence[np.ndarray] | None = None, weak_fraction: float = 0.15,
                      n_history: int = N_HISTORY, n_days: int = 1, n_jitter_deep: int = 0,
                      weak_snr: Sequence[float] = (1.5, 3.0)):
    """The cases of :func:`write_series_set`, one at a time, in memory (same seeds, same frames).

    Yields ``(name, case_kind, nuisance_regime, frames, headers, truth)``; a caller that needs
    the frames on disk only briefly (a 31-frame series is ~130 MB) writes and removes them itself.
    ``case_kind`` is ``quiet``, ``dips``, ``new`` or ``jitter_deep`` (see :func:`write_series_set`).
    With the defaults (``n_days=1``, ``n_jitter_deep=0``, ``weak_snr=(1.5, 3)``) the cases are those
    of a call without them.
    """
    if isinstance(n_days, bool) or not isinstance(n_days, (int, np.integer)) or n_days < 1:
        raise ValueError(f"n_days must be an integer >= 1, not {n_days!r}")
    if not 0.0 <= weak_fraction <= 1.0:
        raise ValueError(f"weak_fraction must be in [0, 1], not {weak_fraction!r}")
    weak = tuple(float(v) for v in weak_snr)
    if len(weak) != 2 or not 0 < weak[0] <= weak[1]:
        raise ValueError(f"weak_snr must be (low, high) with 0 < low <= high, not {weak_snr!r}")
    for name, kind, ss in _plan(seed, _series_tag(n_days), n_quiet, n_new, n_jitter_deep):
        rng = np.random.default_rng(ss)
        regime = _case_regime(rng, kind)
        nu = _draw_nuisance(rng, regime, UNITS)
        new = _draw_new_blobs(rng, nu, weak_fraction, templates, weak) if kind == "new" else []
        existing = None
        if kind == "jitter_deep":  # the usual population plus 3-5 deep ones (25-30 %, radius 5-15 px)
            population = _draw_existing(rng, nu, templates, [])
            existing = population + _draw_deep_existing(rng, nu, templates, population, int(rng.integers(3, 6)))
        frames, headers, truth = make_series(rng, nu, new, templates=templates, existing=existing,
                                             n_history=n_history, n_days=n_days)
        if kind == "jitter_deep":
            truth["n_deep_existing"] = sum(1 for b in existing if b.depth >= 0.25)
        yield name, kind, regime, frames, headers, truth


def write_series_set(outdir: str | os.PathLike, n_quiet: int = 20, n_new: int = 22, seed: int = 0, *,
                     templates: Sequence[np.ndarray] | None = None, weak_fraction: float = 0.15,
                     n_history: int = N_HISTORY, n_days: int = 1, n_jitter_deep: int = 0,
                     weak_snr: Sequence[float] = (1.5, 3.0)) -> dict:
    """Write the default cross-simulator series evaluation set.

    Parameters
    ----------
    outdir : path
        Files go to ``outdir/series/<case>/frame_NN.fits`` (``NN`` = 00 oldest ...
        ``n_history + n_days - 1`` latest) and ``outdir/series/truth.json``.
    n_quiet, n_new, seed, templates, weak_fraction, n_history
        As in :func:`write_difference_set` (units also include DN).
    n_days : int
        Monitored frames per series (default 1, the latest frame only).  New blobs appear in
        the first monitored frame and stay.  Multi-day sets (``n_days > 1``) draw their own
        cases (other seeds than the one-day set).
    n_jitter_deep : int
        Blob-free series in which every frame is jittered (history: rms 0.15-0.5 px per frame;
        monitored frames: shifted 0.15-0.5 px) and the existing blobs include 3-5 deep ones
        (depth 25-30 %, radius 5-15 px); case kind ``jitter_deep``.
    weak_snr : (float, float)
        S/N range of the weak share (`weak_fraction`) of the new blobs (default 1.5-3; the others
        are 3-12).

    Returns
    -------
    dict
        The truth written to ``truth.json``.
    """
    out = Path(outdir) / "series"
    out.mkdir(parents=True, exist_ok=True)
    cases = []
    for name, kind, regime, frames, headers, truth in iter_series_cases(
            n_quiet, n_new, seed, templates=templates, weak_fraction=weak_fraction, n_history=n_history,
            n_days=n_days, n_jitter_deep=n_jitter_deep, weak_snr=weak_snr):
        new = truth["new_blobs"]
        cdir = out / name
        cdir.mkdir(exist_ok=True)
        files = []
        for t, (frame, hdr) in enumerate(zip(frames, headers)):
            fname = f"frame_{t:02d}.fits"
            _write_fits_atomic(cdir / fname, frame, hdr)
            files.append(f"{name}/{fname}")
        del frames
        extra = {"monitored": files[n_history:]} if n_days > 1 else {}
        cases.append({"case": name, "files": files, "latest": files[-1], **extra, "case_kind": kind,
                      "nuisance_regime": regime, "has_new_blob": bool(new), **truth})
    result = {**_set_meta(seed, n_quiet, n_new, n_history, templates, n_days, n_jitter_deep), "cases": cases}
    _write_json_atomic(out / "truth.json", result)
    return result


def _load_templates(path: str) -> list[np.ndarray]:
    obj = np.load(path, allow_pickle=False)
    arrays = [obj[k] for k in obj.files] if hasattr(obj, "files") else [obj]
    out: list[np.ndarray] = []
    for a in arrays:
        a = np.asarray(a, dtype=float)
        if a.ndim == 2:
            out.append(a)
        elif a.ndim == 3:
            out.extend(list(a))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m blobhelpers.blob.crosssim OUTDIR --seed N ...``.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status.
    """
    p = argparse.ArgumentParser(prog="python -m blobhelpers.blob.crosssim",
                                description="Write the independent cross-simulator evaluation sets.")
    p.add_argument("outdir")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-quiet-diff", type=int, default=40)
    p.add_argument("--n-new-diff", type=int, default=40)
    p.add_argument("--n-quiet-series", type=int, default=20)
    p.add_argument("--n-new-series", type=int, default=22)
    p.add_argument("--n-history", type=int, default=N_HISTORY)
    p.add_argument("--n-days", type=int, default=1, help="monitored frames per series (new blobs stay)")
    p.add_argument("--n-jitter-deep", type=int, default=0,
                   help="blob-free series with jittered frames and deep existing blobs")
    p.add_argument("--templates", default=None, help="optional .npz/.npy of 2-D blob cutouts")
    args = p.parse_args(argv)
    templates = _load_templates(args.templates) if args.templates else None
    if args.n_quiet_diff or args.n_new_diff:
        write_difference_set(args.outdir, args.n_quiet_diff, args.n_new_diff, args.seed, templates=templates,
                             n_history=args.n_history)
        print(f"wrote {args.n_quiet_diff + args.n_new_diff} difference cases to {Path(args.outdir) / 'diff'}")
    if args.n_quiet_series or args.n_new_series or args.n_jitter_deep:
        write_series_set(args.outdir, args.n_quiet_series, args.n_new_series, args.seed, templates=templates,
                         n_history=args.n_history, n_days=args.n_days, n_jitter_deep=args.n_jitter_deep)
        n_series = args.n_quiet_series + args.n_new_series + args.n_jitter_deep
        print(f"wrote {n_series} series to {Path(args.outdir) / 'series'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
