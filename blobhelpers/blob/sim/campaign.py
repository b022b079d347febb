"""Simulated WFC3/IR CSM-monitor blob campaign with ground truth (the embedded default data).

Real full-frame blob images cannot be downloaded here, so the pipeline's default input is
a physically grounded simulation of the daily F153M dark-Earth "blob frames":

* **illumination**: a sky (airglow) level that changes from day to day, a smooth fixed
  vignetting pattern and a frame-to-frame large-scale gradient;
* **detector**: fixed flat field (pixel-to-pixel and a low-QE region), 5-pixel reference
  border with no light, Poisson photon noise, ~15 e- read noise, fixed hot pixels (which
  cancel in a difference), random-telegraph pixels (which do not), residual cosmic rays,
  occasional "snowballs" and persistence patches, fixed and random NaN pixels;
* **blobs**: an existing population (discs and rings, radius ~3-10+ px, depths from a steep
  many-faint/few-strong law up to ~30 %) present in every frame, and new blobs appearing on
  known days -- typical, faint-and-small and edge cases;
* **mis-registration**: the whole blob pattern shifts by a fraction of a pixel from frame to
  frame (CSM positioning), with occasional larger jumps, so difference images carry dips.

Each frame is written as a FITS file with DATE-OBS/TIME-OBS/EXPSTART/FILTER/BUNIT headers;
``catalog.csv`` lists every blob (id, x, y, radius, depth, profile, appearance date) and
``frames.csv`` the per-frame truth (shift, sky level, blobs present). A campaign is fully
determined by its configuration and seed; frame *i* depends only on (seed, i), not on how
many frames are made.
"""

from __future__ import annotations

import csv
import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from blobhelpers import __version__
from blobhelpers.blob.io.fitsio import BORDER, FULL_SIZE, write_image
from blobhelpers.blob.io.wfc3 import LAYOUTS, write_product
from blobhelpers.blob.sections import CampaignConfig
from blobhelpers.blob.sim.shapes import BlobShape, render, sample_depths, sample_shapes
from blobhelpers.core.errors import InputError
from blobhelpers.core.paths import atomic_path

__all__ = ["Campaign", "BlobTruth", "simulate_campaign"]


@dataclass
class BlobTruth:
    """One blob of the simulated campaign."""
    id: int
    x: float
    y: float
    shape: BlobShape
    depth: float
    appear_index: int  # -1: present before the campaign
    category: str  # existing, typical, faint_small, edge
    appear_date: str = ""

    def row(self) -> dict:
        return {"id": self.id, "x": round(self.x, 3), "y": round(self.y, 3), "radius": round(self.shape.radius, 3),
                "depth": round(self.depth, 5), "profile": self.shape.kind, "appear_date": self.appear_date,
                "appear_index": self.appear_index, "category": self.category,
                "axis_ratio": round(self.shape.axis_ratio, 4), "theta": round(self.shape.theta, 4),
                "edge": round(self.shape.edge, 4), "spot": round(self.shape.spot, 4)}


CATALOG_COLUMNS = ["id", "x", "y", "radius", "depth", "profile", "appear_date", "appear_index", "category",
                   "axis_ratio", "theta", "edge", "spot"]
FRAME_COLUMNS = ["index", "file", "date_obs", "shift_x", "shift_y", "sky_e", "n_blobs", "n_new", "persistence"]


class Campaign:
    """A deterministic simulated campaign; frames are made on demand with :meth:`frame`.

    Parameters
    ----------
    config : CampaignConfig
    seed : int

    Examples
    --------
    >>> c = Campaign(CampaignConfig(n_frames=3, n_existing=5, new_blob_rate=0.0), seed=1)
    >>> img, hdr, truth = c.frame(0)
    >>> img.shape, img.dtype.name, hdr["FILTER"][0]
    ((1024, 1024), 'float32', 'F153M')
    """

    size = FULL_SIZE
    border = BORDER

    def __init__(self, config: CampaignConfig | None = None, seed: int = 0):
        self.config = cfg = config or CampaignConfig()
        self.seed = int(seed)
        ss = np.random.SeedSequence([self.seed, 20210800])
        rng = np.random.default_rng(ss)
        n = self.size
        lo, hi = self.border, n - self.border  # light-sensitive [lo, hi)
        self.start = _dt.datetime.fromisoformat(cfg.start_date)

        # --- detector: flat field, hot/RTS/bad pixels -------------------------------------
        yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
        xn, yn = (xx - n / 2) / (n / 2), (yy - n / 2) / (n / 2)
        vignette = 1.0 - 0.06 * (xn ** 2 + yn ** 2) + 0.02 * xn
        # A low-QE region near the bottom edge (like the IR "death star") and a few soft
        # large-scale QE features.
        low_qe = 1.0 - 0.35 * np.exp(-(((xx - 0.42 * n) / 45.0) ** 2 + ((yy - 18.0) / 28.0) ** 2) ** 2)
        qe_waves = 1.0 + 0.01 * np.sin(xx / 97.0 + 1.3) * np.cos(yy / 131.0)
        pixel = 1.0 + cfg.flat_pixel_sigma * rng.standard_normal((n, n)).astype(np.float32)
        self.flat = (vignette * low_qe * qe_waves * pixel).astype(np.float32)
        self.light = np.zeros((n, n), bool)
        self.light[lo:hi, lo:hi] = True
        npx = n * n
        self.hot_idx = rng.choice(npx, int(cfg.hot_fraction * npx), replace=False)
        self.hot_e = (rng.lognormal(np.log(300.0), 1.2, self.hot_idx.size)).astype(np.float32)
        self.rts_idx = rng.choice(npx, int(cfg.rts_fraction * npx), replace=False)
        self.rts_amp = (cfg.rts_amp_e * rng.lognormal(0.0, 0.7, self.rts_idx.size)).astype(np.float32)
        self.rts_amp *= np.where(rng.random(self.rts_idx.size) < 0.5, 1.0, -1.0).astype(np.float32)
        self.bad_idx = rng.choice(npx, int(cfg.bad_fraction * npx), replace=False)

        # --- blobs ------------------------------------------------------------------------
        self.blobs: list[BlobTruth] = []
        depths = sample_depths(rng, cfg.n_existing, cfg.depth_min, cfg.depth_max, cfg.depth_slope)
        shapes = sample_shapes(rng, depths, r_median=cfg.radius_median)
        for d, s in zip(depths, shapes):
            x, y = rng.uniform(lo + 2, hi - 2, 2)
            self._add_blob(x, y, s, d, -1, "existing")
        # --- per-frame pointing, sky and new blobs: frame i's draws depend on (seed, i) only, so a
        # longer campaign with the same seed starts with exactly the same frames.
        m = cfg.n_frames
        self.shifts = np.zeros((m, 2))  # (shift_x, shift_y) of the blob pattern in each frame
        self.sky = np.zeros(m)
        self.gradients = np.zeros((m, 3))
        for i in range(m):
            r = np.random.default_rng(np.random.SeedSequence([self.seed, 20210802, i]))
            shift = r.normal(0.0, cfg.shift_sigma, 2)
            if r.random() < cfg.jump_fraction:
                ang, amp = r.uniform(0, 2 * np.pi), r.uniform(cfg.jump_min, cfg.jump_max)
                shift += amp * np.array([np.cos(ang), np.sin(ang)])
            self.shifts[i] = shift
            self.sky[i] = cfg.sky_e * np.exp(cfg.sky_day_sigma * r.standard_normal() - 0.5 * cfg.sky_day_sigma ** 2)
            self.gradients[i] = r.normal(0.0, cfg.illum_gradient_sigma, 3)
            # The first frame defines the "before" state: new blobs appear from frame 1 on.
            if cfg.event_day_fraction is None:
                n_new = int(r.poisson(cfg.new_blob_rate)) if i > 0 else 0
            else:
                n_new = (1 + int(r.poisson(cfg.new_blob_rate))) if (i > 0 and r.random() < cfg.event_day_fraction) else 0
            for _ in range(n_new):
                self._new_blob(r, i, lo, hi)
        for b in self.blobs:
            b.appear_date = (self.date(b.appear_index).date().isoformat() if b.appear_index >= 0 else "")

    # ------------------------------------------------------------------------------------
    def _add_blob(self, x, y, shape, depth, index, category):
        self.blobs.append(BlobTruth(len(self.blobs), float(x), float(y), shape, float(depth), int(index), category))

    def _new_blob(self, rng, index, lo, hi):
        cfg = self.config
        u = rng.random()
        if u < cfg.faint_small_fraction:
            depth = rng.uniform(0.012, 0.04)
            shape = sample_shapes(rng, np.array([depth]), r_median=3.2, r_sigma=0.15, r_max=4.5)[0]
            shape.kind = "disc" if shape.radius < 3.5 else shape.kind
            x, y = rng.uniform(lo + 15, hi - 15, 2)
            cat = "faint_small"
        elif u < cfg.faint_small_fraction + cfg.edge_fraction:
            depth = sample_depths(rng, 1, max(cfg.depth_min, 0.02), cfg.depth_max, cfg.depth_slope)[0]
            shape = sample_shapes(rng, np.array([depth]), r_median=cfg.radius_median)[0]
            # Centre from half a radius outside the light-sensitive edge to 12 px inside it.
            off = rng.uniform(-0.5 * shape.radius, 12.0)
            along = rng.uniform(lo, hi)
            side = rng.integers(4)
            x, y = [(lo + off, along), (hi - 1 - off, along), (along, lo + off), (along, hi - 1 - off)][side]
            cat = "edge"
        else:
            depth = sample_depths(rng, 1, max(cfg.depth_min, 0.02), cfg.depth_max, cfg.depth_slope)[0]
            shape = sample_shapes(rng, np.array([depth]), r_median=cfg.radius_median)[0]
            x, y = rng.uniform(lo + 15, hi - 15, 2)
            cat = "typical"
        self._add_blob(x, y, shape, depth, index, cat)

    def date(self, index: int) -> _dt.datetime:
        """Observation start of frame *index* (jittered by up to +-2 h around the cadence)."""
        jitter = ((index * 7919) % 240 - 120) / 60.0  # deterministic, hours
        return self.start + _dt.timedelta(days=self.config.cadence_days * index, hours=jitter)

    def visible(self, index: int) -> list[BlobTruth]:
        """Blobs present in frame *index*."""
        return [b for b in self.blobs if b.appear_index <= index]

    def obscuration(self, index: int, shift: tuple[float, float] | None = None) -> np.ndarray:
        """Fractional obscuration map (sum of depth x profile) of frame *index*."""
        sx, sy = self.shifts[index] if shift is None else shift
        occ = np.zeros((self.size, self.size), np.float32)
        for b in self.visible(index):
            render(occ, b.x + sx, b.y + sy, b.shape, b.depth)
        return occ

    def frame(self, index: int):
        """Make frame *index*: returns ``(image_e, header_dict, truth_dict)``."""
        cfg = self.config
        if not 0 <= index < cfg.n_frames:
            raise IndexError(f"frame {index} outside 0..{cfg.n_frames - 1}")
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 20210801, index]))
        n = self.size
        trans = np.clip(1.0 - self.obscuration(index), 0.3, 1.0)
        g = self.gradients[index]
        ramp = np.linspace(-1.0, 1.0, n, dtype=np.float32)
        illum = (1.0 + g[0] * ramp[None, :] + g[1] * ramp[:, None] + g[2] * (ramp[None, :] * ramp[:, None]))
        expected = (self.sky[index] * illum * self.flat * trans).astype(np.float32)
        expected[~self.light] = 0.0
        expected += cfg.dark_e_per_s * cfg.exptime
        flat_view = expected.reshape(-1)
        flat_view[self.hot_idx] += self.hot_e
        # Persistence from an earlier bright exposure: smooth positive patches.
        persistence = rng.random() < cfg.persistence_prob
        if persistence:
            for _ in range(rng.integers(1, 4)):
                px, py = rng.uniform(0, n, 2)
                sig = rng.uniform(4, 25)
                a = rng.uniform(0.01, 0.08) * self.sky[index]
                h = int(4 * sig)
                x0, x1 = max(0, int(px) - h), min(n, int(px) + h)
                y0, y1 = max(0, int(py) - h), min(n, int(py) + h)
                yy, xx = np.mgrid[y0:y1, x0:x1]
                expected[y0:y1, x0:x1] += a * np.exp(-0.5 * ((xx - px) ** 2 + (yy - py) ** 2) / sig ** 2)
        img = rng.poisson(np.maximum(expected, 0.0)).astype(np.float32)
        img += (cfg.read_noise_e * rng.standard_normal((n, n), dtype=np.float32))
        flat_img = img.reshape(-1)
        # Random-telegraph pixels: each is in its high or low state at random.
        state = rng.random(self.rts_idx.size) < 0.5
        flat_img[self.rts_idx] += np.where(state, self.rts_amp, 0.0).astype(np.float32)
        # Residual cosmic rays: short tracks.
        ncr = rng.poisson(cfg.cr_per_frame)
        if ncr:
            length = rng.integers(1, 7, ncr)
            ang = rng.uniform(0, np.pi, ncr)
            cx, cy = rng.uniform(0, n, ncr), rng.uniform(0, n, ncr)
            amp = rng.lognormal(np.log(400.0), 1.0, ncr)
            for k in range(ncr):
                t = np.arange(length[k])
                xs = np.clip((cx[k] + t * np.cos(ang[k])).astype(int), 0, n - 1)
                ys = np.clip((cy[k] + t * np.sin(ang[k])).astype(int), 0, n - 1)
                img[ys, xs] += amp[k] * rng.uniform(0.5, 1.0, length[k])
        # Snowballs: round, saturated-looking events a few pixels across.
        for _ in range(rng.poisson(cfg.snowballs_per_frame)):
            sx, sy = rng.uniform(0, n, 2)
            shape = BlobShape(rng.uniform(1.5, 3.5), "disc", 1.0, 0.0, 0.7)
            render(img, sx, sy, shape, rng.uniform(2000, 20000))
        np.minimum(img, 78000.0, out=img)
        bad = np.concatenate([self.bad_idx, rng.choice(n * n, cfg.nan_per_frame, replace=False)])
        flat_img[bad] = np.nan
        when = self.date(index)
        from astropy.time import Time

        header = {
            "TELESCOP": ("HST", "telescope (simulated)"),
            "INSTRUME": ("WFC3", "instrument"),
            "DETECTOR": ("IR", "detector"),
            "FILTER": ("F153M", "element selected from filter wheel"),
            "OBSTYPE": ("IMAGING", ""),
            "TARGNAME": ("DARK-EARTH", "CSM blob monitor (dark-Earth airglow)"),
            "DATE-OBS": (when.date().isoformat(), "UT date of start of observation"),
            "TIME-OBS": (when.time().isoformat(timespec="seconds"), "UT time of start of observation"),
            "EXPSTART": (float(Time(when).mjd), "exposure start time (MJD)"),
            "EXPTIME": (cfg.exptime, "exposure duration (s)"),
            "BUNIT": ("ELECTRONS", "brightness units"),
            "ADCGAIN": (2.3, "e-/DN (not applied: data are in electrons)"),
            "SIMULATE": (True, "simulated by blobhelpers.blob.sim.campaign"),
            "SIMVERS": (__version__, "blobhelpers version"),
            "SIMSEED": (self.seed, "campaign seed"),
            "SIMFRAME": (index, "frame index in the campaign"),
            "TRUESHX": (round(float(self.shifts[index, 0]), 5), "true x shift of the blob pattern (px)"),
            "TRUESHY": (round(float(self.shifts[index, 1]), 5), "true y shift of the blob pattern (px)"),
            "SKYLEVEL": (round(float(self.sky[index]), 2), "mean sky level (e-)"),
        }
        truth = {"index": index, "date_obs": when.isoformat(timespec="seconds"),
                 "shift_x": float(self.shifts[index, 0]), "shift_y": float(self.shifts[index, 1]),
                 "sky_e": float(self.sky[index]), "n_blobs": len(self.visible(index)),
                 "n_new": sum(b.appear_index == index for b in self.blobs), "persistence": bool(persistence)}
        return img, header, truth

    def catalog_rows(self) -> list[dict]:
        return [b.row() for b in self.blobs]


def _write_csv(path: Path, rows: list[dict], columns: list[str]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=columns)
            w.writeheader()
            for r in rows:
                w.writerow({k: r.get(k, "") for k in columns})


def simulate_campaign(outdir: str | Path, config: CampaignConfig | None = None, seed: int = 0,
                      progress: bool = True, layout: str = "plain", nsamp: int | None = None) -> Campaign:
    """Simulate a campaign and write it to *outdir*.

    Writes ``outdir/frames/blob_<date>_<index>.fits``, ``outdir/catalog.csv`` (every blob)
    and ``outdir/frames.csv`` (per-frame truth). Files are written atomically; stale frame
    files from an earlier, longer campaign in the same folder are removed.

    *layout* ``"plain"`` (default) writes each frame as one 2-D image in electrons in the
    primary HDU. ``"raw"``, ``"ima"`` or ``"flt"`` write the same scene in the real WFC3/IR
    layout (:func:`blobhelpers.blob.io.wfc3.write_product`; files ``blob_<date>_<index>_<layout>.fits``):
    RAW with *nsamp* reads in DN (default: SPARS25, 14 reads for 302.9 s), IMA, or FLT with
    ERR/DQ/SAMP/TIME; DQ flags the dead pixels (4) and the pre-existing blobs deeper than 3 %
    (512, as the IR bad-pixel tables do).

    Returns the :class:`Campaign`.
    """
    from tqdm.auto import tqdm

    if layout not in LAYOUTS:
        raise InputError(f"simulate: layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    outdir = Path(outdir)
    camp = Campaign(config, seed)
    # the known-blob flag (512) of the bad-pixel table: blobs present before the campaign
    blob_mask = camp.obscuration(0, shift=(0.0, 0.0)) > 0.03 if layout != "plain" else None
    frames_dir = outdir / "frames"
    frames_dir.mkdir(parents=True, exist_ok=True)
    rows, names = [], set()
    for i in tqdm(range(camp.config.n_frames), desc="simulate frames", disable=not progress):
        img, header, truth = camp.frame(i)
        if layout == "plain":
            name = f"blob_{camp.date(i):%Y%m%d}_{i:04d}.fits"
            write_image(frames_dir / name, img, header)
        else:
            name = f"blob_{camp.date(i):%Y%m%d}_{i:04d}_{layout}.fits"
            write_product(frames_dir / name, img, header, layout, exptime=camp.config.exptime, nsamp=nsamp,
                          read_noise_e=camp.config.read_noise_e, blob_mask=blob_mask, bias_seed=camp.seed * 100003 + i)
        names.add(name)
        rows.append({**truth, "file": f"frames/{name}"})
    for old in frames_dir.glob("*.fits"):
        if old.name not in names:
            old.unlink()
    _write_csv(outdir / "catalog.csv", camp.catalog_rows(), CATALOG_COLUMNS)
    _write_csv(outdir / "frames.csv", rows, FRAME_COLUMNS)
    return camp
