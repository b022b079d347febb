"""Simulated HST single-visit mosaics (SVM): exposures, alignment, drizzled total product, QA files.

A simulated visit goes through the same steps as drizzlepac's SVM processing, in miniature:

1. **Sky**: stars (power-law luminosity function, magnitudes 16-27) and galaxies (elliptical
   double-Gaussian profiles) around a random target; the field kind (galaxy field, cluster of
   galaxies, parallel field, star, stellar cluster, ISM, calibration field) sets the number of
   sources, from sparse to crowded, and the target name/category.
2. **Exposures**: 1-3 filters, 1-4 exposures per filter, small dithers; each exposure has a *true*
   TAN WCS and an *a priori* header WCS = truth + a visit-wide pointing error (guide-star catalog
   error: 0.15" per axis with an astrometry-database a priori solution, 0.5" with the pipeline
   default, 1" with none) + a few mas of per-exposure jitter + a small roll error. Pixels are
   rendered with the true WCS: pixel-integrated double-Gaussian PSF (Gaussian core + a broad
   Moffat-like halo with 20 % of the flux), sky, Poisson noise, read noise, cosmic rays (not for
   IR, whose up-the-ramp fitting removes them, nor for the SBC MAMA).
3. **Alignment** (:func:`align`): sources found in every exposure (DAOStarFinder) are projected
   with the header WCS; relative alignment of each exposure to the one with most sources (2-D
   histogram offset search, one-to-one matching, shift or shift+rotation fit with 3-sigma
   clipping, kept when it matches >= 3 sources and >= 25 % of the smaller catalog with an rms
   <= 0.9 pixel -- chance matches in a crowded field are few and spread over the whole tolerance
   disk); then the combined catalog is matched to a Gaia-like
   reference (true stars brighter than G = 21; errors at the HST epoch from Gaia-like position and
   proper-motion errors times 0-12 years, 10 % two-parameter solutions whose proper motion is not
   corrected, and 6 mas per axis standing for HST distortion residuals) and fitted. ``NMATCHES`` is the number of reference stars
   matched, ``RMS_RA``/``RMS_DEC`` the rms of the fit residuals in mas (no degrees-of-freedom
   correction, so 1 match gives exactly 0 and 2-3 matches nearly 0, as in drizzlepac). The fit is
   accepted when it has at least ``min_matches`` matches (default 1: the drizzlepac-3.3-era
   behaviour behind the real "few matches, zero rms" failures, drizzlepac issue 1183) and an rms
   below ``max_rms_px`` pixels. Otherwise every exposure reverts to its a priori header WCS and
   WCSTYPE tells which ("a priori", "default a", "not aligned") with RMS 0 and NMATCHES 0.
4. **Combination**: cosmic rays flagged per filter (median of the single-drizzled exposures,
   blotted back, compared with each exposure) and per exposure (a small L.A.Cosmic-like
   sharpness test, :func:`single_cr_mask`, also used before the per-exposure source finding),
   then all exposures drizzled with the real ``drizzle`` package (square kernel, pixfrac 1) onto a north-up grid at the native scale.
5. **Catalogs**: point catalog (DAOStarFinder, 5 sigma) and segment catalog (photutils
   segmentation, 10 pixels above 1.5 sigma of the smoothed image) of the total image.
6. **Files**, in drizzlepac's layout (what ``blobhelpers svm prep`` reads)::

       <ipppss>/<ipppssoot>_flt.fits                     exposures (SCI,1 [SCI,2]; a priori WCS)
       <ipppss>/<index>_drz.fits (_drc.fits UVIS/WFC)     total detection image: PRIMARY, SCI, WHT
       <ipppss>/<index>_point-cat.ecsv, _segment-cat.ecsv
       <ipppss>/<stem>_svm_num_sources.json, <stem>_svm_gaia_sources.json  (HapDiagnostic format;
            no Gaia JSON when no reference star falls in the footprint, as drizzlepac)
       <ipppss>/truth.json                                sky model, true/a priori/final WCS,
                                                          fit, measured misalignment, label

   ``index`` is ``hst_<proposal>_<visit>_<instrument>_<detector>_total_<ipppss>``; ``stem`` equals
   it for a simulated visit (corrupted copies add a suffix, see :mod:`.corrupt`).

Real detector geometry and the simulated default (``size`` = simulated chip width in pixels; the
pixel scale is the real one, so PSF widths, shifts in arcsec and rms in mas keep their real meaning
and only the field of view shrinks; source *counts* follow the ranges of the real catalogs, so
crowded simulated fields are denser than real ones):

========  =========  ========================  ======  =================  ====================
detector  scale "/px real chip (x by y)         chips   default simulated  PSF FWHM (")
========  =========  ========================  ======  =================  ====================
wfc3/ir   0.128      1014 x 1014                1       256 x 256          0.13-0.16
wfc3/uvis 0.040      4096 x 2051 (gap ~31 px)   2       256 x 128 (x2)     0.07-0.08
acs/wfc   0.050      4096 x 2048 (gap ~50 px)   2       256 x 128 (x2)     0.09-0.11
acs/hrc   0.025      1024 x 1024                1       256 x 256          0.05-0.06
acs/sbc   0.025      1024 x 1024                1       256 x 256          0.06-0.09
========  =========  ========================  ======  =================  ====================

Same seed -> byte-identical files.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blobhelpers.core.errors import InputError
from blobhelpers.core.parallel import process_map
from blobhelpers.core.paths import atomic_path, project_root, write_text

__all__ = ["DetectorSpec", "DETECTOR_SPECS", "FIELD_KINDS", "SimConfig", "Exposure", "Visit", "simulate_visit",
           "simulate", "align", "process_visit", "write_visit_products", "load_visit", "measure_misalignment",
           "label_of", "WCSTYPE_STRINGS", "match_offset", "fit_transform", "single_cr_mask"]


@dataclass(frozen=True)
class DetectorSpec:
    name: str  # spacekit's detector code: ir, uvis, wfc, hrc, sbc
    instrument: str  # wfc3 / acs
    scale: float  # arcsec per pixel (real)
    real_chip: tuple  # (nx, ny) of one real chip
    nchips: int
    real_gap: int  # real gap between chips (pixels)
    filters: tuple
    fwhm: float  # PSF FWHM (arcsec), typical
    read_noise: float  # e-
    sky: tuple  # sky rate range (e-/s/pixel)
    cr_rate: float  # cosmic rays per pixel per second (0: none)
    zeropoint: float  # magnitude giving 1 e-/s
    exptime: tuple  # exposure time range (s)
    product: str  # drz / drc
    prefix: str  # first letter of rootnames: i (WFC3), j (ACS)


DETECTOR_SPECS = {
    "ir": DetectorSpec("ir", "wfc3", 0.128, (1014, 1014), 1, 0, ("f105w", "f110w", "f125w", "f140w", "f160w"),
                       0.145, 15.0, (0.5, 1.5), 0.0, 26.0, (150.0, 900.0), "drz", "i"),
    "uvis": DetectorSpec("uvis", "wfc3", 0.040, (4096, 2051), 2, 31,
                         ("f275w", "f336w", "f438w", "f555w", "f606w", "f814w"), 0.075, 3.1, (0.01, 0.1), 6e-6,
                         25.5, (300.0, 1200.0), "drc", "i"),
    "wfc": DetectorSpec("wfc", "acs", 0.050, (4096, 2048), 2, 50, ("f435w", "f475w", "f606w", "f775w", "f814w",
                                                                   "f850lp"), 0.10, 4.0, (0.03, 0.15), 6e-6, 25.8,
                        (300.0, 1200.0), "drc", "j"),
    "hrc": DetectorSpec("hrc", "acs", 0.025, (1024, 1024), 1, 0, ("f220w", "f250w", "f330w", "f435w", "f555w",
                                                                  "f606w", "f814w"), 0.055, 4.7, (0.005, 0.03),
                        1.3e-5, 24.5, (200.0, 1000.0), "drz", "j"),
    "sbc": DetectorSpec("sbc", "acs", 0.025, (1024, 1024), 1, 0, ("f115lp", "f122m", "f125lp", "f140lp", "f150lp",
                                                                  "f165lp"), 0.075, 0.0, (1e-4, 1e-3), 0.0, 21.5,
                        (300.0, 1500.0), "drz", "j"),
}

# field kind -> (MAST category head, stars range, galaxies range) for a 256 x 256 field (scaled by area)
FIELD_KINDS = {
    "galaxy": ("GALAXY", (10, 120), (20, 150)),
    "galaxy_cluster": ("CLUSTER OF GALAXIES", (5, 80), (60, 250)),
    "parallel": ("UNIDENTIFIED", (20, 300), (10, 80)),
    "star": ("STAR", (30, 400), (5, 40)),
    "stellar_cluster": ("STELLAR CLUSTER", (300, 2000), (0, 20)),
    "ism": ("ISM", (50, 600), (0, 30)),
}
_FIELD_WEIGHTS = {"galaxy": 0.22, "galaxy_cluster": 0.06, "parallel": 0.12, "star": 0.2, "stellar_cluster": 0.28,
                  "ism": 0.12}
# a priori solution kind -> (probability, pointing error sigma per axis (arcsec), WCSTYPE string on fallback)
_APRIORI = {"a priori": (0.80, 0.15, "undistorted a priori solution relative to GSC240"),
            "default a": (0.17, 0.50, "undistorted default a priori solution"),
            "not aligned": (0.03, 1.00, "distorted not aligned")}
WCSTYPE_STRINGS = {"a posteriori": "undistorted a posteriori solution relative to GAIAeDR3",
                   **{k: v[2] for k, v in _APRIORI.items()}}
GAIA_LIMIT = 21.0


@dataclass
class SimConfig:
    """Knobs of the simulation and of the processing (alignment, matching, labels)."""

    size: int = 256  # simulated chip width (pixels)
    searchrad: float = 1.5  # absolute (to Gaia) offset search radius, arcsec
    rel_searchrad: float = 0.5  # relative (exposure to exposure) search radius, arcsec
    tol_px: float = 2.0  # matching tolerance, native pixels
    min_matches: int = 1  # fewest reference matches for an accepted fit (drizzlepac 3.3 era)
    min_rel_matches: int = 3  # fewest matches for a relative exposure-to-exposure fit
    max_rel_rms_px: float = 0.9  # largest rms (native px) of an accepted relative fit
    min_rel_fraction: float = 0.25  # ... and at least this fraction of the smaller catalog matched
    max_rms_px: float = 2.0  # largest accepted fit rms (native pixels)
    threshold_px: float = 1.0  # label 1 when an exposure is misregistered by more than this (native px)
    abs_threshold: float = 1.0  # ... or when the product is off the sky by more than this (arcsec)
    max_sources: int = 200  # brightest sources per exposure used for alignment

    def check(self):
        if int(self.size) < 32 or int(self.size) > 4096:
            raise InputError(f"size {self.size}: must be between 32 and 4096 pixels")
        for k in ("searchrad", "rel_searchrad", "tol_px", "max_rms_px", "max_rel_rms_px", "threshold_px",
                  "abs_threshold"):
            v = getattr(self, k)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise InputError(f"{k} = {v!r}: must be a positive number")
        if not (0.0 <= self.min_rel_fraction <= 1.0):
            raise InputError(f"min_rel_fraction {self.min_rel_fraction}: must be within [0, 1]")
        if self.min_matches < 1 or self.min_rel_matches < 1:
            raise InputError("min_matches and min_rel_matches must be >= 1")
        return self


@dataclass
class Exposure:
    rootname: str
    filter: str
    exptime: float
    chips: list  # float32 arrays (electrons), one per chip
    crpix: list  # per chip (x, y), 1-based
    crval: np.ndarray  # header (a priori) WCS reference, degrees
    cd: np.ndarray  # header CD matrix (deg/px)

    def wcs(self, k: int, crval=None, cd=None):
        return _make_wcs(self.crval if crval is None else crval, self.cd if cd is None else cd, self.crpix[k],
                         self.chips[k].shape)


@dataclass
class Visit:
    spec: DetectorSpec
    index: str
    meta: dict  # proposal, visit, ipppss, targname, category, ra_targ, dec_targ, field kind, fwhm, ...
    exposures: list
    truth: dict  # stars, galaxies, reference, per-exposure true crval/cd, apriori kind
    corruption: dict | None = None
    stem: str | None = None  # file stem of the QA JSON files (defaults to index)


# ---------------------------------------------------------------- WCS helpers

def _make_wcs(crval, cd, crpix, shape):
    from astropy.wcs import WCS

    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [float(crval[0]), float(crval[1])]
    w.wcs.cd = np.asarray(cd, float)
    w.wcs.crpix = [float(crpix[0]), float(crpix[1])]
    w.pixel_shape = (int(shape[1]), int(shape[0]))
    return w


def _cd(scale_arcsec, pa_deg):
    s = scale_arcsec / 3600.0
    c, n = math.cos(math.radians(pa_deg)), math.sin(math.radians(pa_deg))
    return np.array([[-s * c, s * n], [s * n, s * c]])


def _offset_sky(crval, east_arcsec, north_arcsec):
    """CRVAL moved by (east, north) arcsec, RA corrected by cos(Dec)."""
    ra, dec = float(crval[0]), float(crval[1])
    return np.array([ra + east_arcsec / 3600.0 / math.cos(math.radians(dec)), dec + north_arcsec / 3600.0])


def _rot(theta_deg):
    c, s = math.cos(math.radians(theta_deg)), math.sin(math.radians(theta_deg))
    return np.array([[c, -s], [s, c]])


def _wcs_header(w, hdr):
    hdr["CTYPE1"], hdr["CTYPE2"] = "RA---TAN", "DEC--TAN"
    hdr["CRVAL1"], hdr["CRVAL2"] = float(w.wcs.crval[0]), float(w.wcs.crval[1])
    hdr["CRPIX1"], hdr["CRPIX2"] = float(w.wcs.crpix[0]), float(w.wcs.crpix[1])
    cd = w.wcs.cd
    hdr["CD1_1"], hdr["CD1_2"], hdr["CD2_1"], hdr["CD2_2"] = (float(cd[0, 0]), float(cd[0, 1]), float(cd[1, 0]),
                                                             float(cd[1, 1]))
    hdr["RADESYS"] = "ICRS"
    return hdr


def _frame(spec, ra, dec):
    """Alignment frame: north-up TAN at the target, native pixel scale (origin at the target)."""
    return _make_wcs((ra, dec), _cd(spec.scale, 0.0), (0.0, 0.0), (1, 1))


def _to_frame(frame, ra, dec):
    x, y = frame.wcs_world2pix(np.asarray(ra, float), np.asarray(dec, float), 0)
    return np.column_stack([x, y]) if np.ndim(x) else np.array([x, y])


# ---------------------------------------------------------------- simulation

def _targets():
    try:
        import pandas as pd

        t = pd.read_csv(project_root() / "data" / "svm" / "target_categories.csv", dtype=str)
        return [(str(n), str(c)) for n, c in zip(t["targname"], t["category"]) if isinstance(c, str)]
    except (OSError, KeyError, ValueError):
        return []


def _pick_target(rng, category_head, targets):
    names = sorted(n for n, c in targets if c.split(";")[0].strip().upper() in _HEADS[category_head])
    if not names:
        return "ANY", "UNIDENTIFIED;PARALLEL FIELD"
    n = names[int(rng.integers(len(names)))]
    return n, dict(targets)[n]


_HEADS = {"GALAXY": {"GALAXY"}, "CLUSTER OF GALAXIES": {"CLUSTER OF GALAXIES"}, "UNIDENTIFIED": {"UNIDENTIFIED"},
          "STAR": {"STAR", "EXT-STAR"}, "STELLAR CLUSTER": {"STELLAR CLUSTER", "EXT-CLUSTER"}, "ISM": {"ISM"}}


def _loguniform_int(rng, lo, hi, factor):
    lo, hi = max(lo * factor, 0.5), max(hi * factor, 1.0)
    return int(math.floor(math.exp(rng.uniform(math.log(lo), math.log(hi)))))


def _chip_shape(spec, size):
    nx = int(size)
    ny = max(16, int(round(nx * spec.real_chip[1] / spec.real_chip[0])))
    gap = 0 if spec.nchips == 1 else max(2, int(round(spec.real_gap * nx / spec.real_chip[0])))
    return nx, ny, gap


def _render(spec, sky_model, w, shape, exptime, fwhm_px, filt_i, nfilt, rng):
    """One chip in electrons: separable pixel-integrated double-Gaussian sources + sky + noise + CRs."""
    from scipy.special import erf

    ny, nx = shape
    ra = np.concatenate([sky_model["star_ra"], sky_model["gal_ra"]])
    dec = np.concatenate([sky_model["star_dec"], sky_model["gal_dec"]])
    colour = np.concatenate([sky_model["star_col"], sky_model["gal_col"]])
    mag = np.concatenate([sky_model["star_mag"], sky_model["gal_mag"]])
    nst = len(sky_model["star_ra"])
    x, y = w.wcs_world2pix(ra, dec, 0) if len(ra) else (np.zeros(0), np.zeros(0))
    sig = fwhm_px / 2.3548
    sx = np.concatenate([np.full(nst, sig), np.hypot(sky_model["gal_sx"] / spec.scale, sig)])
    sy = np.concatenate([np.full(nst, sig), np.hypot(sky_model["gal_sy"] / spec.scale, sig)])
    pad = 6 * np.maximum(sx, sy) * 3
    inside = (x > -pad) & (x < nx + pad) & (y > -pad) & (y < ny + pad)
    dm = colour * ((filt_i - (nfilt - 1) / 2.0) if nfilt > 1 else 0.0)
    flux = 10 ** (-0.4 * (mag + dm - spec.zeropoint)) * exptime
    x, y, sx, sy, flux = x[inside], y[inside], sx[inside], sy[inside], flux[inside]
    # core (80 %) + halo (20 %, 3x wider): a cheap Moffat-like wing
    xs, ys = np.concatenate([x, x]), np.concatenate([y, y])
    sxs, sys_ = np.concatenate([sx, 3 * sx]), np.concatenate([sy, 3 * sy])
    fs = np.concatenate([0.8 * flux, 0.2 * flux])
    img = np.zeros((ny, nx))
    if len(xs):
        ex = np.arange(nx + 1) - 0.5
        ey = np.arange(ny + 1) - 0.5
        cx = erf((ex[None, :] - xs[:, None]) / (math.sqrt(2) * sxs[:, None]))
        cy = erf((ey[None, :] - ys[:, None]) / (math.sqrt(2) * sys_[:, None]))
        gx = 0.5 * np.diff(cx, axis=1)
        gy = 0.5 * np.diff(cy, axis=1)
        img = gy.T @ (fs[:, None] * gx)
    sky = float(rng.uniform(*spec.sky)) * exptime
    data = rng.poisson(np.clip(img, 0, None) + sky).astype(np.float64)
    if spec.read_noise > 0:
        data += rng.normal(0.0, spec.read_noise, data.shape)
    data -= sky  # sky-subtracted, as drizzlepac's sky step leaves it
    if spec.cr_rate > 0:
        ncr = int(rng.poisson(spec.cr_rate * nx * ny * exptime))
        for _ in range(ncr):
            x0, y0 = rng.integers(0, nx), rng.integers(0, ny)
            length = int(rng.integers(1, 6))
            ang = rng.uniform(0, np.pi)
            e = rng.uniform(300, 5000)
            for t in range(length):
                xi = int(round(x0 + t * math.cos(ang)))
                yi = int(round(y0 + t * math.sin(ang)))
                if 0 <= xi < nx and 0 <= yi < ny:
                    data[yi, xi] += e
    return data.astype(np.float32)


def simulate_visit(detector: str, seed: int, number: int = 0, config: SimConfig | None = None,
                   field_kind: str | None = None, apriori: str | None = None) -> Visit:
    """One simulated visit (exposures with a priori header WCS, truth), not yet processed."""
    cfg = (config or SimConfig()).check()
    if detector not in DETECTOR_SPECS:
        raise InputError(f"unknown detector {detector!r}; known: {sorted(DETECTOR_SPECS)}")
    if field_kind is not None and field_kind not in FIELD_KINDS:
        raise InputError(f"unknown field kind {field_kind!r}; known: {sorted(FIELD_KINDS)}")
    if apriori is not None and apriori not in _APRIORI:
        raise InputError(f"unknown a priori kind {apriori!r}; known: {sorted(_APRIORI)}")
    spec = DETECTOR_SPECS[detector]
    rng = np.random.default_rng([int(seed), int(number), sorted(DETECTOR_SPECS).index(detector)])
    nx, ny, gap = _chip_shape(spec, cfg.size)
    height = spec.nchips * ny + (spec.nchips - 1) * gap
    area = nx * height / 65536.0
    kinds = sorted(_FIELD_WEIGHTS)
    kind = field_kind or kinds[int(rng.choice(len(kinds), p=np.array([_FIELD_WEIGHTS[k] for k in kinds])))]
    head, (s_lo, s_hi), (g_lo, g_hi) = FIELD_KINDS[kind]
    targname, category = _pick_target(rng, head, _targets())
    ra0 = float(rng.uniform(0, 360))
    dec0 = float(np.degrees(np.arcsin(rng.uniform(-0.97, 0.97))))
    pa = float(rng.uniform(0, 360))
    # sky model over a field a bit larger than the detector (dithers, pointing errors)
    half = 0.5 * math.hypot(nx, height) * spec.scale + 3.0  # arcsec
    nstar = _loguniform_int(rng, s_lo, s_hi, area * 1.6)
    ngal = _loguniform_int(rng, g_lo, g_hi, area * 1.6)

    def positions(n):
        e, nn = rng.uniform(-half, half, n), rng.uniform(-half, half, n)
        return ra0 + e / 3600.0 / math.cos(math.radians(dec0)), dec0 + nn / 3600.0

    # stars: dN/dm ~ 10^(0.15 m), 16 < m < 27 (about 10 % brighter than G = 21)
    u = rng.random(nstar)
    a, b = 10 ** (0.15 * 16), 10 ** (0.15 * 27)
    star_mag = np.log10(a + u * (b - a)) / 0.15
    sra, sdec = positions(nstar)
    gra, gdec = positions(ngal)
    r_eff = np.exp(rng.uniform(math.log(0.05), math.log(0.6), ngal))  # arcsec
    q = rng.uniform(0.3, 1.0, ngal)
    flip = rng.random(ngal) < 0.5
    sky_model = {"star_ra": sra, "star_dec": sdec, "star_mag": star_mag, "star_col": rng.normal(0, 0.3, nstar),
                 "gal_ra": gra, "gal_dec": gdec, "gal_mag": rng.uniform(20.0, 26.0, ngal),
                 "gal_col": rng.normal(0.2, 0.3, ngal), "gal_sx": np.where(flip, r_eff * q, r_eff),
                 "gal_sy": np.where(flip, r_eff, r_eff * q)}
    # Gaia-like reference: stars brighter than G = 21 with ~mas errors (crowded fields: incomplete)
    bright = np.flatnonzero(star_mag < GAIA_LIMIT)
    if kind == "stellar_cluster":
        bright = bright[rng.random(len(bright)) < 0.7]
    # position error at the HST epoch (mas): Gaia position + proper-motion error x epoch difference,
    # 10 % two-parameter solutions (proper motion ~5 mas/yr not corrected), 6 mas of HST distortion residual
    fm = 10 ** (0.4 * (star_mag[bright] - GAIA_LIMIT))
    dt = float(rng.uniform(0.0, 12.0))
    gerr = np.sqrt((0.5 + 3.0 * fm) ** 2 + ((0.05 + 1.5 * fm) * dt) ** 2 + 6.0 ** 2)
    two_par = rng.random(len(bright)) < 0.1
    pm = rng.normal(0, 5.0, (len(bright), 2)) * dt * two_par[:, None]
    dra = (rng.normal(0, 1, len(bright)) * gerr + pm[:, 0]) / 1000.0  # arcsec
    ddec = (rng.normal(0, 1, len(bright)) * gerr + pm[:, 1]) / 1000.0
    ref_ra = sra[bright] + dra / 3600.0 / math.cos(math.radians(dec0))
    ref_dec = sdec[bright] + ddec / 3600.0
    # a priori solution kind and the visit-wide pointing error
    ap_kinds = sorted(_APRIORI)
    ap = apriori or ap_kinds[int(rng.choice(len(ap_kinds), p=np.array([_APRIORI[k][0] for k in ap_kinds])))]
    sig_ap = _APRIORI[ap][1]
    err_e, err_n = rng.normal(0, sig_ap, 2)
    roll_err = float(rng.normal(0, 0.003))
    # filters and exposures
    nf = int(rng.choice([1, 2, 2, 3]))
    filters = sorted(rng.choice(len(spec.filters), nf, replace=False).tolist())
    fwhm = {spec.filters[i]: spec.fwhm * float(rng.uniform(0.9, 1.15)) for i in filters}
    nexp = [int(rng.choice([1, 2, 2, 3, 3, 4])) for _ in filters]
    if sum(nexp) < 2:
        nexp[0] = 2
    prop = int(rng.integers(10000, 17000))
    vis = f"{int(rng.integers(1, 100)):02d}"
    b36 = "0123456789abcdefghijklmnopqrstuvwxyz"
    ppp = b36[10 + int(rng.integers(26))] + b36[(int(number) // 36) % 36] + b36[int(number) % 36]  # unique per seed
    ipppss = f"{spec.prefix}{ppp}{vis}"
    index = f"hst_{prop}_{vis}_{spec.instrument}_{spec.name}_total_{ipppss}"
    reacq = rng.random() < 0.1  # guide-star re-acquisition between filters: a larger per-filter jitter
    exposures, true_wcs = [], []
    ycoords = [k * (ny + gap) for k in range(spec.nchips)]
    crpix = [(nx / 2.0 + 0.5, height / 2.0 + 0.5 - y0) for y0 in ycoords]
    n = 0
    for fi, (f_idx, ne) in enumerate(zip(filters, nexp)):
        filt = spec.filters[f_idx]
        texp = float(np.round(rng.uniform(*spec.exptime), 1))
        f_jit = rng.normal(0, 0.03, 2) if (reacq and fi > 0) else np.zeros(2)
        for j in range(ne):
            d = (rng.uniform(-0.03, 0.03, 2) * nx) * spec.scale  # dither, arcsec in the detector frame
            de, dn = float(-d[0] * math.cos(math.radians(pa)) + d[1] * math.sin(math.radians(pa))), \
                float(d[0] * math.sin(math.radians(pa)) + d[1] * math.cos(math.radians(pa)))
            t_crval = _offset_sky((ra0, dec0), de, dn)
            t_cd = _cd(spec.scale, pa)
            jit = rng.normal(0, 0.004, 2) + f_jit
            a_crval = _offset_sky(t_crval, err_e + jit[0], err_n + jit[1])
            a_cd = _rot(roll_err) @ t_cd
            chips = []
            for k in range(spec.nchips):
                w = _make_wcs(t_crval, t_cd, crpix[k], (ny, nx))
                chips.append(_render(spec, sky_model, w, (ny, nx), texp, fwhm[filt] / spec.scale, fi, nf, rng))
            root = f"{ipppss}{'abcdefghjklmnopqrstuvwxyz'[n // 9]}{n % 9 + 1}q"
            exposures.append(Exposure(root, filt, texp, chips, crpix, a_crval, a_cd))
            true_wcs.append({"rootname": root, "crval": t_crval.tolist(), "cd": t_cd.tolist()})
            n += 1
    meta = {"proposal": prop, "visit": vis, "ipppss": ipppss, "targname": targname, "category": category,
            "ra_targ": ra0, "dec_targ": dec0, "pa": pa, "field_kind": kind, "fwhm_arcsec": fwhm,
            "detector": spec.name, "instrument": spec.instrument, "size": int(cfg.size), "seed": int(seed),
            "number": int(number)}
    truth = {"stars": {"ra": sra.tolist(), "dec": sdec.tolist(), "mag": star_mag.tolist()},
             "galaxies": {"ra": gra.tolist(), "dec": gdec.tolist(), "mag": sky_model["gal_mag"].tolist()},
             "reference": {"ra": ref_ra.tolist(), "dec": ref_dec.tolist(), "mag": star_mag[bright].tolist()},
             "exposures": true_wcs, "apriori_kind": ap, "apriori_error_arcsec": [float(err_e), float(err_n)],
             "roll_error_deg": roll_err}
    return Visit(spec, index, meta, exposures, truth)


# ---------------------------------------------------------------- source finding, matching, fitting

def _find(data, fwhm_px, nsigma=5.0, mask=None, n_brightest=None):
    from astropy.stats import sigma_clipped_stats
    from photutils.detection import DAOStarFinder

    good = np.isfinite(data) if mask is None else (np.isfinite(data) & ~mask)
    if good.sum() < 16:
        return np.zeros((0, 2)), np.zeros(0)
    _, med, std = sigma_clipped_stats(data[good], sigma=3.0, maxiters=5)
    if not np.isfinite(std) or std <= 0:
        return np.zeros((0, 2)), np.zeros(0)
    finder = DAOStarFinder(threshold=nsigma * std, fwhm=max(float(fwhm_px), 1.0), exclude_border=True,
                           min_separation=max(1.0, 1.5 * fwhm_px), n_brightest=n_brightest)
    from photutils.utils.exceptions import NoDetectionsWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoDetectionsWarning)
        tab = finder.find_stars(data - med, mask=None if mask is None else mask)
    if tab is None or len(tab) == 0:
        return np.zeros((0, 2)), np.zeros(0)
    xy = np.column_stack([np.asarray(tab["x_centroid"], float), np.asarray(tab["y_centroid"], float)])
    ok = np.all(np.isfinite(xy), axis=1)
    return xy[ok], np.asarray(tab["flux"], float)[ok]


def match_offset(src, ref, searchrad, tol):
    """Offset ``ref - src`` from a 2-D histogram of pair offsets, then one-to-one matches within *tol*.

    Returns ``(offset (2,), i_src, i_ref)``; ``offset`` is None when no pair is within *searchrad*.
    Ties of the histogram peak go to the smallest offset (the a priori position is the best guess).
    """
    from scipy.ndimage import uniform_filter
    from scipy.spatial import cKDTree

    src, ref = np.asarray(src, float).reshape(-1, 2), np.asarray(ref, float).reshape(-1, 2)
    empty = (None, np.zeros(0, int), np.zeros(0, int))
    if len(src) == 0 or len(ref) == 0:
        return empty
    d = ref[None, :, :] - src[:, None, :]
    dd = d[np.hypot(d[..., 0], d[..., 1]) <= searchrad]
    if len(dd) == 0:
        return empty
    nb = int(math.ceil(searchrad / tol))
    edge = (nb + 0.5) * tol
    h, _, _ = np.histogram2d(dd[:, 0], dd[:, 1], bins=2 * nb + 1, range=[[-edge, edge], [-edge, edge]])
    hs = np.rint(uniform_filter(h, 3, mode="constant") * 9)
    peaks = np.argwhere(hs == hs.max())
    centre = (peaks - nb) * tol
    best = peaks[np.argmin(np.hypot(centre[:, 0], centre[:, 1]))]
    c0 = (best - nb) * tol
    box = (np.abs(dd[:, 0] - c0[0]) <= 1.5 * tol) & (np.abs(dd[:, 1] - c0[1]) <= 1.5 * tol)
    off = dd[box].mean(axis=0) if box.any() else c0  # centroid of the 3x3-bin block of the peak
    for _ in range(3):  # refine on the pairs around the estimate
        near = np.hypot(dd[:, 0] - off[0], dd[:, 1] - off[1]) <= tol
        if not near.any():
            break
        off = np.median(dd[near], axis=0)
    dist, j = cKDTree(ref).query(src + off, k=1, distance_upper_bound=tol)
    ok = np.isfinite(dist)
    i_src, j_ref, dist = np.flatnonzero(ok), j[ok], dist[ok]
    order = np.lexsort((i_src, dist))  # closest first; one source per reference star
    _, first = np.unique(j_ref[order], return_index=True)
    keep = np.sort(order[first])
    return off, i_src[keep], j_ref[keep]


def fit_transform(src, ref, center, geom="shift", sigma=3.0, maxiter=3):
    """Least-squares ``ref = R(theta) (src - center) + center + t`` with sigma clipping.

    Returns dict(shift (2,), rot_deg, keep (bool mask), residuals (n, 2)).
    """
    src, ref = np.asarray(src, float), np.asarray(ref, float)
    n = len(src)
    keep = np.ones(n, bool)
    c = np.asarray(center, float)

    def solve(mask):
        s, r = src[mask] - c, ref[mask] - c
        if geom == "rshift":
            a = np.zeros((2 * len(s), 3))
            a[0::2, 0], a[1::2, 1] = 1, 1
            a[0::2, 2], a[1::2, 2] = -s[:, 1], s[:, 0]
            sol, *_ = np.linalg.lstsq(a, (r - s).reshape(-1), rcond=None)
            return sol[:2], math.degrees(sol[2])
        return (r - s).mean(axis=0), 0.0

    t, th = solve(keep)
    for _ in range(maxiter):
        res = ref - (((src - c) @ _rot(th).T) + c + t)
        rr = np.hypot(res[:, 0], res[:, 1])
        rms = math.sqrt(float(np.mean(rr[keep] ** 2))) if keep.any() else 0.0
        new = rr <= max(sigma * rms, 1e-6)
        if new.sum() < (3 if geom == "rshift" else 1) or (new == keep).all():
            break
        keep = new
        t, th = solve(keep)
    res = ref - (((src - c) @ _rot(th).T) + c + t)
    return {"shift": np.asarray(t, float), "rot_deg": float(th), "keep": keep, "residuals": res}


def _apply(exp, frame, shift_px, rot_deg, center):
    """Exposure WCS corrected by a frame-pixel transform (all chips move together)."""
    p = _to_frame(frame, exp.crval[0], exp.crval[1])
    p2 = (_rot(rot_deg) @ (p - center)) + center + shift_px
    ra, dec = frame.wcs_pix2world(p2[0], p2[1], 0)
    cdf = frame.wcs.cd
    m = cdf @ _rot(rot_deg) @ np.linalg.inv(cdf)
    return np.array([float(ra), float(dec)]), m @ exp.cd


def single_cr_mask(data, read_noise, nsigma=5.0, fine_ratio=2.0):
    """Cosmic rays of one exposure from its sharpness alone (a small L.A.Cosmic-like test).

    A pixel is a cosmic ray when it stands *nsigma* above its 3x3 median (in noise units, minus
    the local median of that significance) and its excess is more than *fine_ratio* times the
    image's fine structure there (PSF-shaped sources have a broad excess, cosmic rays a sharp one).
    """
    from scipy.ndimage import binary_dilation, median_filter

    m3 = median_filter(data, size=3, mode="nearest")
    m5 = median_filter(data, size=5, mode="nearest")
    noise = np.sqrt(np.clip(m5, 0, None) + read_noise ** 2 + 1.0)
    sig = (data - m3) / noise
    sig -= median_filter(sig, size=5, mode="nearest")
    fine = m3 - median_filter(m3, size=7, mode="nearest")
    cr = (sig > nsigma) & ((data - m3) > fine_ratio * np.maximum(fine, noise))
    return binary_dilation(cr, iterations=1) & ((data - m5) > 2.0 * noise)


def _exposure_sources(visit):
    """Per exposure: list of (chip k, xy (n,2), flux, CR mask) of the sources (cosmic rays masked first).

    A function of the pixels only (not of the header WCS): a corrupted copy of a visit has the
    same sources (:func:`.corrupt.corrupt` finds them once per visit).
    """
    out = []
    for e in visit.exposures:
        fw = visit.meta["fwhm_arcsec"][e.filter] / visit.spec.scale
        per = []
        for k, data in enumerate(e.chips):
            mask = single_cr_mask(data, visit.spec.read_noise) if visit.spec.cr_rate > 0 else None
            xy, fl = _find(data, fw, 5.0, mask=mask)
            per.append((k, xy, fl, mask))
        out.append(per)
    return out


def _sky_of(exp, srcs, crval=None, cd=None):
    ra, dec, fl = [], [], []
    for k, xy, f, _ in srcs:
        if len(xy):
            r, d = exp.wcs(k, crval, cd).wcs_pix2world(xy[:, 0], xy[:, 1], 0)
            ra.append(r)
            dec.append(d)
            fl.append(f)
    if not ra:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    return np.concatenate(ra), np.concatenate(dec), np.concatenate(fl)


def align(visit: Visit, config: SimConfig | None = None, sources=None) -> dict:
    """Relative + absolute alignment of *visit*; the final (crval, cd) of each exposure and the fit record."""
    cfg = config or SimConfig()
    spec = visit.spec
    frame = _frame(spec, visit.meta["ra_targ"], visit.meta["dec_targ"])
    sources = _exposure_sources(visit) if sources is None else sources
    tol = cfg.tol_px
    pos = []
    for e, s in zip(visit.exposures, sources):
        ra, dec, fl = _sky_of(e, s)
        order = np.argsort(-fl, kind="stable")[:cfg.max_sources]
        pos.append(_to_frame(frame, ra[order], dec[order]).reshape(-1, 2))
    counts = [len(p) for p in pos]
    centre = np.mean(np.vstack(pos), axis=0) if sum(counts) else np.zeros(2)
    ref_i = int(np.argmax(counts)) if counts else 0
    rel = []
    for i, p in enumerate(pos):
        if i == ref_i:
            rel.append({"shift": [0.0, 0.0], "rot_deg": 0.0, "nmatches": len(p), "fitted": True})
            continue
        off, a, b = match_offset(p, pos[ref_i], cfg.rel_searchrad / spec.scale, tol)
        f = fit_transform(p[a], pos[ref_i][b], centre, "rshift" if len(a) >= 10 else "shift") if len(a) else None
        rms = math.sqrt(float(np.mean(np.sum(f["residuals"][f["keep"]] ** 2, axis=1)))) if f else math.inf
        # chance matches of a crowded field scatter over the whole tolerance disk; real ones do not
        need = max(cfg.min_rel_matches, cfg.min_rel_fraction * min(len(p), len(pos[ref_i])))
        if len(a) >= need and rms <= cfg.max_rel_rms_px:
            rel.append({"shift": f["shift"].tolist(), "rot_deg": f["rot_deg"], "nmatches": int(len(a)),
                        "rms_px": round(rms, 4), "fitted": True})
        else:
            rel.append({"shift": [0.0, 0.0], "rot_deg": 0.0, "nmatches": int(len(a)),
                        "rms_px": None if not math.isfinite(rms) else round(rms, 4), "fitted": False})
    # combined catalog in the relative frame
    comb = [((_rot(r["rot_deg"]) @ (p - centre).T).T + centre + np.asarray(r["shift"])) if len(p) else p
            for p, r in zip(pos, rel)]
    allp = np.vstack(comb) if sum(counts) else np.zeros((0, 2))
    ref = visit.truth["reference"]
    refp = _to_frame(frame, np.asarray(ref["ra"], float), np.asarray(ref["dec"], float)).reshape(-1, 2)
    # reference stars inside the a priori footprint (what drizzlepac queries)
    fp = _footprint(visit, frame)
    inside = ((refp[:, 0] >= fp[0]) & (refp[:, 0] <= fp[1]) & (refp[:, 1] >= fp[2]) & (refp[:, 1] <= fp[3]))
    refp_in = refp[inside]
    fit = {"nmatches": 0, "rms_ra": 0.0, "rms_dec": 0.0, "accepted": False, "geom": None, "shift_px": [0.0, 0.0],
           "rot_deg": 0.0, "relative": rel, "reference_exposure": visit.exposures[ref_i].rootname if counts else None,
           "n_reference_in_footprint": int(inside.sum()), "reason": ""}
    off, a, b = match_offset(allp, refp_in, cfg.searchrad / spec.scale, tol)
    if len(a):
        # merge duplicates: one position per matched reference star (mean of its matched sources)
        # every source within tol of a reference star after the offset contributes
        from scipy.spatial import cKDTree

        dist, j = cKDTree(refp_in).query(allp + off, k=1, distance_upper_bound=tol)
        ok = np.isfinite(dist)
        stars = np.unique(j[ok])
        mean_src = np.array([allp[ok][j[ok] == s].mean(axis=0) for s in stars])
        refs = refp_in[stars]
        geom = "rshift" if len(stars) >= 6 else "shift"
        f = fit_transform(mean_src, refs, centre, geom)
        res = f["residuals"][f["keep"]]
        nm = int(f["keep"].sum())
        rms_x = math.sqrt(float(np.mean(res[:, 0] ** 2))) if nm else 0.0
        rms_y = math.sqrt(float(np.mean(res[:, 1] ** 2))) if nm else 0.0
        fit.update(nmatches=nm, rms_ra=round(rms_x * spec.scale * 1000, 3), rms_dec=round(rms_y * spec.scale * 1000, 3),
                   geom=geom, shift_px=f["shift"].tolist(), rot_deg=f["rot_deg"])
        if nm < cfg.min_matches:
            fit["reason"] = f"{nm} matches < min_matches {cfg.min_matches}"
        elif math.hypot(rms_x, rms_y) > cfg.max_rms_px:
            fit["reason"] = f"rms {math.hypot(rms_x, rms_y):.2f} px > {cfg.max_rms_px}"
        else:
            fit["accepted"] = True
    else:
        fit["reason"] = "no reference star in the footprint" if not len(refp_in) else "no match to the reference"
    final = []
    for e, r in zip(visit.exposures, rel):
        if fit["accepted"]:
            crval, cd = _apply(e, frame, np.asarray(r["shift"]), r["rot_deg"], centre)
            tmp = Exposure(e.rootname, e.filter, e.exptime, e.chips, e.crpix, crval, cd)
            crval, cd = _apply(tmp, frame, np.asarray(fit["shift_px"]), fit["rot_deg"], centre)
        else:
            crval, cd = e.crval.copy(), e.cd.copy()
        final.append((crval, cd))
    if fit["accepted"]:
        fit["wcstype"] = WCSTYPE_STRINGS["a posteriori"]
    else:
        fit["wcstype"] = WCSTYPE_STRINGS[visit.truth["apriori_kind"]]
        fit.update(nmatches=0, rms_ra=0.0, rms_dec=0.0)
    return {"final": final, "fit": fit, "sources": sources, "frame": frame, "centre": centre}


def _footprint(visit, frame, wcs_list=None):
    xs, ys = [], []
    for i, e in enumerate(visit.exposures):
        for k, chip in enumerate(e.chips):
            ny, nx = chip.shape
            w = e.wcs(k) if wcs_list is None else e.wcs(k, *wcs_list[i])
            r, d = w.wcs_pix2world(np.array([-0.5, nx - 0.5, nx - 0.5, -0.5]),
                                   np.array([-0.5, -0.5, ny - 0.5, ny - 0.5]), 0)
            p = _to_frame(frame, r, d)
            xs.append(p[:, 0])
            ys.append(p[:, 1])
    xs, ys = np.concatenate(xs), np.concatenate(ys)
    return float(xs.min()), float(xs.max()), float(ys.min()), float(ys.max())


# ---------------------------------------------------------------- drizzling

def _output_wcs(visit, final):
    spec = visit.spec
    frame = _frame(spec, visit.meta["ra_targ"], visit.meta["dec_targ"])
    x0, x1, y0, y1 = _footprint(visit, frame, final)
    x0, y0 = math.floor(x0) - 2, math.floor(y0) - 2
    nx, ny = int(math.ceil(x1)) + 3 - x0, int(math.ceil(y1)) + 3 - y0
    return _make_wcs((visit.meta["ra_targ"], visit.meta["dec_targ"]), frame.wcs.cd, (1.0 - x0, 1.0 - y0), (ny, nx))


def _drizzle(visit, final, out_wcs, masks=None, which=None):
    from drizzle.resample import Drizzle
    from drizzle.utils import calc_pixmap

    shape = (out_wcs.pixel_shape[1], out_wcs.pixel_shape[0])
    d = Drizzle(kernel="square", fillval=0.0, out_shape=shape, disable_ctx=True)
    for i, e in enumerate(visit.exposures):
        if which is not None and i not in which:
            continue
        for k, data in enumerate(e.chips):
            pm = calc_pixmap(e.wcs(k, *final[i]), out_wcs, shape=data.shape)
            wm = np.ones(data.shape, np.float32) if masks is None else (~masks[i][k]).astype(np.float32)
            d.add_image(data.astype(np.float32), exptime=e.exptime, pixmap=pm, weight_map=wm, in_units="counts",
                        pixfrac=1.0)
    return d.out_img, d.out_wht


def _cr_masks(visit, final, out_wcs, sources=None):
    """drizzlepac-like CR flags: median of the single-drizzled exposures, blotted back, compared.

    Per filter with 2 or more exposures (as drizzlepac); the single-image test of
    :func:`single_cr_mask` is added for every exposure (the only one for a filter's lone exposure).
    """
    from drizzle.utils import calc_pixmap
    from scipy.ndimage import map_coordinates, maximum_filter

    spec = visit.spec
    masks = [[np.zeros(c.shape, bool) for c in e.chips] for e in visit.exposures]
    if sources is not None:
        for i, per in enumerate(sources):
            for k, _, _, m in per:
                if m is not None:
                    masks[i][k] = m.copy()
    byf = {}
    for i, e in enumerate(visit.exposures):
        byf.setdefault(e.filter, []).append(i)
    for filt, idx in byf.items():
        if len(idx) < 2:
            continue
        singles = []
        for i in idx:
            img, wht = _drizzle(visit, final, out_wcs, which={i})
            singles.append(np.where(wht > 0, img, np.nan))
        stack = np.stack(singles)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="All-NaN slice encountered")
            med = np.nanmin(stack, axis=0) if len(idx) == 2 else np.nanmedian(stack, axis=0)
        med = np.nan_to_num(med, nan=0.0)
        for i in idx:
            e = visit.exposures[i]
            for k, data in enumerate(e.chips):
                pm = calc_pixmap(e.wcs(k, *final[i]), out_wcs, shape=data.shape)
                blot = map_coordinates(med, [pm[..., 1], pm[..., 0]], order=1, mode="constant", cval=0.0) * e.exptime
                noise = np.sqrt(np.clip(blot, 0, None) + spec.read_noise ** 2 + 1.0)
                bad = (data - blot) > (5.0 * noise + 0.5 * np.abs(blot))
                masks[i][k] |= maximum_filter(bad, size=3) & ((data - blot) > 2.5 * noise + 0.25 * np.abs(blot))
    return masks


# ---------------------------------------------------------------- catalogs

def _catalogs(img, wht, out_wcs, fwhm_px):
    from astropy.stats import sigma_clipped_stats
    from photutils.segmentation import SourceCatalog, detect_sources, make_2dgaussian_kernel
    from scipy.ndimage import convolve

    mask = wht <= 0
    good = ~mask
    if good.sum() < 16:
        return [], []
    _, med, std = sigma_clipped_stats(img[good], sigma=3.0, maxiters=5)
    data = np.where(mask, 0.0, img - med)
    wmax = float(wht.max())
    xy, flux = _find(np.where(mask, 0.0, img), fwhm_px, 5.0, mask=mask)
    point = []
    if len(xy):
        ra, dec = out_wcs.wcs_pix2world(xy[:, 0], xy[:, 1], 0)
        wv = wht[np.clip(np.rint(xy[:, 1]).astype(int), 0, wht.shape[0] - 1),
                 np.clip(np.rint(xy[:, 0]).astype(int), 0, wht.shape[1] - 1)]
        for i in range(len(xy)):
            flag = 1 if wv[i] < 0.5 * wmax else 0
            point.append((i + 1, float(xy[i, 0]), float(xy[i, 1]), float(ra[i]), float(dec[i]), float(flux[i]), flag))
    segment = []
    if std > 0 and np.isfinite(std):
        kern = make_2dgaussian_kernel(max(fwhm_px, 1.5), size=5)
        conv = convolve(data, np.asarray(kern.array), mode="constant")
        from photutils.utils.exceptions import NoDetectionsWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NoDetectionsWarning)
            segm = detect_sources(conv, 1.5 * std, n_pixels=10, mask=mask)
        if segm is not None:
            cat = SourceCatalog(data, segm, convolved_data=conv, mask=mask)
            xs, ys = np.asarray(cat.x_centroid, float), np.asarray(cat.y_centroid, float)
            ok = np.isfinite(xs) & np.isfinite(ys)
            fl, area = np.asarray(cat.segment_flux, float), np.asarray(cat.area.value, float)
            ra, dec = out_wcs.wcs_pix2world(np.where(ok, xs, 0), np.where(ok, ys, 0), 0)
            n = 0
            for i in np.flatnonzero(ok):
                wv = wht[min(max(int(round(ys[i])), 0), wht.shape[0] - 1), min(max(int(round(xs[i])), 0),
                                                                               wht.shape[1] - 1)]
                n += 1
                segment.append((n, float(xs[i]), float(ys[i]), float(ra[i]), float(dec[i]), float(fl[i]),
                                int(area[i]), 1 if wv < 0.5 * wmax else 0))
    return point, segment


def _write_ecsv(path, rows, names, dtypes):
    from astropy.table import Table

    t = Table(rows=rows if rows else None, names=names, dtype=dtypes)
    for c in t.colnames:
        if t[c].dtype.kind == "f":
            t[c].info.format = ".7f" if c in ("RA", "DEC") else ".4f"
    with atomic_path(path) as tmp:
        t.write(tmp, format="ascii.ecsv", overwrite=True)


# ---------------------------------------------------------------- measurement and label

def measure_misalignment(visit: Visit, final, sources, config: SimConfig | None = None) -> dict:
    """Offset of every exposure in the combined product, measured from its sources.

    Each exposure's sources, projected with its final WCS, are matched to the true star
    positions (the noise-free sky; histogram offset search within 3", one-to-one within the
    matching tolerance) and the median offset (east, north; arcsec) is kept when at least 3
    stars match ("sources") and it agrees with the exact WCS error within the matching tolerance
    (otherwise the peak was a chance coincidence). Else the offset of the final WCS from the true
    WCS at the chip centres is used ("wcs"); both are returned for every exposure.
    """
    cfg = config or SimConfig()
    spec = visit.spec
    frame = _frame(spec, visit.meta["ra_targ"], visit.meta["dec_targ"])
    st = visit.truth["stars"]
    star_p = _to_frame(frame, np.asarray(st["ra"], float), np.asarray(st["dec"], float)).reshape(-1, 2)
    truths = {t["rootname"]: t for t in visit.truth["exposures"]}
    out = []
    for i, e in enumerate(visit.exposures):
        t = truths[e.rootname]
        # exact WCS error at the chip centres (east, north, arcsec)
        errs = []
        for k, chip in enumerate(e.chips):
            ny, nx = chip.shape
            r1, d1 = e.wcs(k, *final[i]).wcs_pix2world((nx - 1) / 2.0, (ny - 1) / 2.0, 0)
            r0, d0 = e.wcs(k, np.asarray(t["crval"]), np.asarray(t["cd"])).wcs_pix2world((nx - 1) / 2.0,
                                                                                         (ny - 1) / 2.0, 0)
            errs.append([(float(r1) - float(r0)) * 3600 * math.cos(math.radians(float(d0))),
                         (float(d1) - float(d0)) * 3600])
        wcs_err = np.mean(errs, axis=0)
        ra, dec, _ = _sky_of(e, sources[i], *final[i])
        p = _to_frame(frame, ra, dec).reshape(-1, 2)
        off, a, b = match_offset(p, star_p, 3.0 / spec.scale, cfg.tol_px)
        meas, method = wcs_err, "wcs"
        if len(a) >= 5:
            d = np.median(p[a] - star_p[b], axis=0)  # frame px: +x is west
            m_src = np.array([-d[0] * spec.scale, d[1] * spec.scale])
            if math.hypot(*(m_src - wcs_err)) <= cfg.tol_px * spec.scale:
                meas, method = m_src, "sources"
            else:  # a chance peak of unrelated pairs: the measurement failed
                method = "wcs (source match disagreed)"
        out.append({"rootname": e.rootname, "filter": e.filter, "offset_arcsec": [float(meas[0]), float(meas[1])],
                    "method": method, "nmatched": int(len(a)), "wcs_error_arcsec": [float(wcs_err[0]),
                                                                                   float(wcs_err[1])]})
    offs = np.array([o["offset_arcsec"] for o in out])
    med = np.median(offs, axis=0)
    rel = np.hypot(*(offs - med).T)
    return {"exposures": out, "relative_arcsec": float(rel.max()) if len(rel) else 0.0,
            "absolute_arcsec": float(np.hypot(*med)), "max_offset_arcsec": float(np.hypot(*offs.T).max())}


def label_of(measure: dict, wcstype: str, spec: DetectorSpec, config: SimConfig | None = None) -> tuple[int, str]:
    """1 (misaligned) or 0 with the reason.

    1 when an exposure is misregistered relative to the others by more than ``threshold_px``
    native pixels (doubled or smeared sources in the combined product), or when a fit that claims
    an a posteriori solution left the product off the sky by more than that (a false fit), or
    when the product is off the sky by more than ``abs_threshold`` arcsec whatever its WCS type.
    """
    cfg = config or SimConfig()
    thr = cfg.threshold_px * spec.scale
    if measure["relative_arcsec"] > thr:
        return 1, f"exposures misregistered by {measure['relative_arcsec']:.3f}\" > {thr:.3f}\""
    if wcstype.startswith("undistorted a posteriori") and measure["absolute_arcsec"] > thr:
        return 1, f"a posteriori fit off by {measure['absolute_arcsec']:.3f}\" > {thr:.3f}\""
    if measure["absolute_arcsec"] > cfg.abs_threshold:
        return 1, f"product off by {measure['absolute_arcsec']:.3f}\" > {cfg.abs_threshold}\""
    return 0, "aligned within thresholds"


# ---------------------------------------------------------------- processing and files

def process_visit(visit: Visit, config: SimConfig | None = None, sources=None) -> dict:
    """Align, flag cosmic rays, drizzle, build catalogs, measure and label; returns the products in memory."""
    cfg = config or SimConfig()
    al = align(visit, cfg, sources)
    final = al["final"]
    out_wcs = _output_wcs(visit, final)
    masks = _cr_masks(visit, final, out_wcs, al["sources"])
    img, wht = _drizzle(visit, final, out_wcs, masks)
    fw = float(np.mean(list(visit.meta["fwhm_arcsec"].values()))) / visit.spec.scale
    point, segment = _catalogs(img, wht, out_wcs, fw)
    meas = measure_misalignment(visit, final, al["sources"], cfg)
    label, why = label_of(meas, al["fit"]["wcstype"], visit.spec, cfg)
    # Gaia sources in the footprint of the total product
    ref = visit.truth["reference"]
    rx, ry = out_wcs.wcs_world2pix(np.asarray(ref["ra"], float), np.asarray(ref["dec"], float), 0)
    ix = np.clip(np.rint(rx).astype(int), 0, img.shape[1] - 1)
    iy = np.clip(np.rint(ry).astype(int), 0, img.shape[0] - 1)
    inside = (rx >= -0.5) & (rx < img.shape[1] - 0.5) & (ry >= -0.5) & (ry < img.shape[0] - 0.5)
    inside &= wht[iy, ix] > 0
    gaia = {"ra": np.asarray(ref["ra"])[inside].tolist(), "dec": np.asarray(ref["dec"])[inside].tolist(),
            "mag": np.asarray(ref["mag"])[inside].tolist()}
    return {"align": al, "out_wcs": out_wcs, "img": img.astype(np.float32), "wht": wht.astype(np.float32),
            "point": point, "segment": segment, "gaia": gaia, "measure": meas, "label": label,
            "label_reason": why, "final": final}


def _jsonable(o):
    if isinstance(o, dict):
        return {str(k): _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, np.ndarray):
        return _jsonable(o.tolist())
    if isinstance(o, np.generic):
        return o.item()
    return o


def write_visit_products(visit: Visit, res: dict, folder: str | Path, write_exposures: bool = True,
                         config: SimConfig | None = None) -> Path:
    """Write the exposures, total product, catalogs, QA JSON files and truth.json of a processed visit."""
    from astropy.io import fits

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    spec, m = visit.spec, visit.meta
    index = visit.index
    stem = visit.stem or index
    img_name = f"{index}_{spec.product}.fits"
    if write_exposures:
        for e in visit.exposures:
            ph = fits.Header()
            for k, v in (("TELESCOP", "HST"), ("INSTRUME", spec.instrument.upper()), ("DETECTOR", spec.name.upper()),
                         ("ROOTNAME", e.rootname), ("FILTER", e.filter.upper()), ("EXPTIME", e.exptime),
                         ("TARGNAME", m["targname"]), ("RA_TARG", m["ra_targ"]), ("DEC_TARG", m["dec_targ"]),
                         ("PROPOSID", m["proposal"]), ("BUNIT", "ELECTRONS")):
                ph[k] = v
            hdus = [fits.PrimaryHDU(header=ph)]
            for k, data in enumerate(e.chips):
                h = _wcs_header(e.wcs(k), fits.Header())
                h["CCDCHIP"] = k + 1
                h["BUNIT"] = "ELECTRONS"
                hdus.append(fits.ImageHDU(data, h, name="SCI", ver=k + 1))
            with atomic_path(folder / f"{e.rootname}_flt.fits") as tmp:
                fits.HDUList(hdus).writeto(tmp, overwrite=True)
    fit = res["align"]["fit"]
    header = {"TELESCOP": "HST", "INSTRUME": spec.instrument.upper(), "DETECTOR": spec.name.upper(),
              "PROPOSID": int(m["proposal"]), "TARGNAME": m["targname"], "RA_TARG": float(m["ra_targ"]),
              "DEC_TARG": float(m["dec_targ"]), "NUMEXP": len(visit.exposures), "FILENAME": img_name,
              "FILTER": "detection", "EXPTIME": float(sum(e.exptime for e in visit.exposures)),
              "ROOTNAME": m["ipppss"]}
    ph = fits.Header()
    for k, v in header.items():
        ph[k] = v
    sci = _wcs_header(res["out_wcs"], fits.Header())
    sci["BUNIT"] = "ELECTRONS/S"
    sci["RMS_RA"] = (float(fit["rms_ra"]), "RMS in RA of the fit (mas)")
    sci["RMS_DEC"] = (float(fit["rms_dec"]), "RMS in Dec of the fit (mas)")
    sci["NMATCHES"] = (int(fit["nmatches"]), "reference sources matched")
    sci["WCSTYPE"] = fit["wcstype"]
    sci["WCSNAME"] = "IDC_sim-FIT_SVM_GAIAeDR3" if fit["accepted"] else "IDC_sim"
    whth = _wcs_header(res["out_wcs"], fits.Header())
    hdul = fits.HDUList([fits.PrimaryHDU(header=ph), fits.ImageHDU(res["img"], sci, name="SCI"),
                         fits.ImageHDU(res["wht"], whth, name="WHT")])
    with atomic_path(folder / img_name) as tmp:
        hdul.writeto(tmp, overwrite=True)
    _write_ecsv(folder / f"{index}_point-cat.ecsv", res["point"],
                ("ID", "X-Center", "Y-Center", "RA", "DEC", "Flux", "Flags"),
                ("i8", "f8", "f8", "f8", "f8", "f8", "i4"))
    _write_ecsv(folder / f"{index}_segment-cat.ecsv", res["segment"],
                ("ID", "X-Centroid", "Y-Centroid", "RA", "DEC", "Flux", "Area", "Flags"),
                ("i8", "f8", "f8", "f8", "f8", "f8", "i8", "i4"))
    tok = index.split("_")
    gen = {"telescope": "HST", "proposal_id": tok[1], "instrument": spec.instrument.upper(),
           "detector": spec.name.upper(), "visit": tok[2], "filter": "detection", "dataset": m["ipppss"],
           "dataframe_index": index, "imgname": img_name, "generation date": "01/01/2026",
           "generation time": "00:00:00", "seconds since epoch": 1767225600.0, "commit id": "simulated",
           "data_source": None, "description": None}

    def qa(data, source, description):
        return {"header": header, "general information": dict(gen, data_source=f"svm_quality_analysis.{source}",
                                                               description=description), "data": data}

    num = {"number_of_sources": {"original format": "<class 'dict'>",
                                 "data": {"detector": spec.name.upper(), "point": len(res["point"]),
                                          "segment": len(res["segment"])},
                                 "descriptions": {"detector": "Detector in use",
                                                  "point": "Number of detected sources in Point catalog",
                                                  "segment": "Number of detected sources in Segmented catalog"},
                                 "units": {"detector": "unitless", "point": "unitless", "segment": "unitless"}}}
    write_text(folder / f"{stem}_svm_num_sources.json",
               json.dumps(qa(num, "compare_num_sources", "Number of sources in Point and Segment catalogs"), indent=4))
    g = res["gaia"]
    gpath = folder / f"{stem}_svm_gaia_sources.json"
    if len(g["ra"]):
        table = {"RA": {"dtype": "float64", "unit": "deg", "format": None, "data": g["ra"]},
                 "DEC": {"dtype": "float64", "unit": "deg", "format": None, "data": g["dec"]},
                 "mag": {"dtype": "float64", "unit": "mag", "format": None, "data": g["mag"]}}
        data = {"GAIA sources": {"original format": "<class 'astropy.table.table.Table'>", "data": table,
                                 "descriptions": {"RA": "Right Ascension", "DEC": "Declination", "mag": "G"},
                                 "units": {"RA": "degrees", "DEC": "degrees", "mag": "mag"}},
                "Number of GAIA sources": {"original format": "<class 'collections.OrderedDict'>",
                                           "data": {"Number of GAIA sources": len(g["ra"])},
                                           "descriptions": {"Number of GAIA sources": "Number of GAIA sources in "
                                                                                      "image footprint"},
                                           "units": {"Number of GAIA sources": "unitless"}}}
        write_text(gpath, json.dumps(qa(data, "find_gaia_sources", "A table of GAIA sources in image footprint"),
                                     indent=4))
    elif gpath.exists():
        gpath.unlink()
    truth = {"index": index, "stem": stem, "imgname": img_name, "meta": m, "label": int(res["label"]),
             "label_reason": res["label_reason"], "measure": res["measure"],
             "fit": {k: v for k, v in fit.items()},
             "final_wcs": [{"rootname": e.rootname, "crval": f[0], "cd": f[1]}
                           for e, f in zip(visit.exposures, res["final"])],
             "exposures": [{"rootname": e.rootname, "filter": e.filter, "exptime": e.exptime,
                            "header_crval": e.crval, "header_cd": e.cd} for e in visit.exposures],
             "corruption": visit.corruption, "truth": visit.truth,
             "config": dataclasses.asdict(config or SimConfig(size=int(m.get("size", 256))))}
    write_text(folder / "truth.json", json.dumps(_jsonable(truth), indent=1, sort_keys=True) + "\n")
    return folder


def load_visit(folder: str | Path) -> Visit:
    """Read a simulated visit folder back (exposures with their header WCS, truth); InputError naming the file."""
    from astropy.io import fits

    folder = Path(folder)
    tpath = folder / "truth.json"
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder")
    try:
        t = json.loads(tpath.read_text())
    except FileNotFoundError as exc:
        raise InputError(f"{tpath}: missing (not a simulated visit folder)") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{tpath}: unreadable ({exc})") from exc
    try:
        meta = t["meta"]
        spec = DETECTOR_SPECS[meta["detector"]]
        truth = t["truth"]
        exps = []
        for ex in t["exposures"]:
            p = folder / f"{ex['rootname']}_flt.fits"
            try:
                with fits.open(p, memmap=False) as hdul:
                    sci = [h for h in hdul if h.name == "SCI"]
                    if not sci:
                        raise InputError(f"{p}: no SCI extension")
                    chips = [np.asarray(h.data, np.float32) for h in sci]
                    h0 = sci[0].header
                    crval = np.array([h0["CRVAL1"], h0["CRVAL2"]], float)
                    cd = np.array([[h0["CD1_1"], h0["CD1_2"]], [h0["CD2_1"], h0["CD2_2"]]], float)
                    crpix = [(float(h.header["CRPIX1"]), float(h.header["CRPIX2"])) for h in sci]
                    filt = str(hdul[0].header["FILTER"]).lower()
                    texp = float(hdul[0].header["EXPTIME"])
            except FileNotFoundError as exc:
                raise InputError(f"{p}: exposure file missing") from exc
            except (OSError, KeyError, TypeError, ValueError) as exc:
                if isinstance(exc, InputError):
                    raise
                raise InputError(f"{p}: unreadable exposure ({exc})") from exc
            exps.append(Exposure(ex["rootname"], filt, texp, chips, crpix, crval, cd))
    except (KeyError, TypeError) as exc:
        raise InputError(f"{tpath}: not a simulated-visit truth file (missing {exc})") from exc
    meta["fwhm_arcsec"] = {k: float(v) for k, v in meta["fwhm_arcsec"].items()}
    return Visit(spec, t["index"], meta, exps, truth, t.get("corruption"), t.get("stem"))


def _simulate_one(out: Path, detector: str, seed: int, number: int, config: SimConfig, field_kind) -> tuple:
    """Simulate, process and write visit *number* (a function of its arguments only: seeded by seed and number)."""
    v = simulate_visit(detector, seed, number, config, field_kind=field_kind)
    res = process_visit(v, config)
    folder = write_visit_products(v, res, out / v.meta["ipppss"], config=config)
    fit = res["align"]["fit"]
    return v.index, folder, int(res["label"]), int(fit["nmatches"])


def simulate(out: str | Path, n_visits: int = 5, seed: int = 0, detectors=("ir", "uvis", "wfc", "hrc", "sbc"),
             size: int = 256, config: SimConfig | None = None, field_kinds=None, progress: bool = False,
             n_jobs: int | None = None) -> list:
    """Simulate *n_visits* visits (detectors in turn) under *out*/<ipppss>/; returns [(index, folder, label)].

    Every visit is seeded by *seed* and its number only, so the visits are simulated in *n_jobs*
    worker processes (``None``: the default of :func:`blobhelpers.core.parallel.n_workers`; 1: in this
    process) with the same files and rows, byte for byte, whatever *n_jobs*
    (:func:`blobhelpers.core.parallel.process_map`).
    """
    cfg = config or SimConfig(size=int(size))
    cfg.size = int(size)
    cfg.check()
    if int(n_visits) < 1:
        raise InputError(f"n_visits {n_visits}: must be >= 1")
    dets = list(detectors)
    bad = [d for d in dets if d not in DETECTOR_SPECS]
    if bad or not dets:
        raise InputError(f"detectors {bad or dets}: known are {sorted(DETECTOR_SPECS)}")
    kinds = list(field_kinds or [])
    bad = [k for k in kinds if k not in FIELD_KINDS]
    if bad:
        raise InputError(f"unknown field kind(s) {bad}; known: {sorted(FIELD_KINDS)}")
    out = Path(out)
    tasks = [(out, dets[i % len(dets)], int(seed), i, cfg, kinds[i % len(kinds)] if kinds else None)
             for i in range(int(n_visits))]

    def show(r):
        if progress:
            print(f"{r[0]}: nmatches {r[3]} label {r[2]}", flush=True)

    return [r[:3] for r in process_map(_simulate_one, tasks, n_jobs, show)]
