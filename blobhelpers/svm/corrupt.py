"""Synthetic misalignment of simulated visits, re-processed and labelled by what is measured.

spacekit's corruption (FACTS section 6) shifts CRVAL of chip 1 only, without cos(Dec), reruns the
pipeline and labels every result misaligned without looking. Here:

* the chosen exposures' header WCS is moved rigidly -- every chip of an exposure together -- by a
  shift in arcsec (RA divided by cos(Dec)) and a small rotation about the exposure's reference
  point;
* modes as spacekit: ``stat`` (one shift and rotation for all chosen exposures) or ``stoc``
  (independent per exposure and per axis); ``all`` exposures of a filter or a random ``sub``-set
  (at least one, fewer than all when the filter has several);
* the visit is re-processed exactly as a simulated one (:func:`.simulate.process_visit`: relative
  and absolute alignment, which may undo the corruption; CR flags; drizzle; catalogs);
* the misalignment left in the combined product is *measured* (:func:`.simulate.measure_misalignment`)
  and the label is 1 only when it passes the thresholds of :func:`.simulate.label_of` (an exposure
  misregistered by more than ``threshold_px`` native pixels -- default 1 pixel: a one-pixel
  misregistration elongates or doubles the PSF, whose FWHM is 1-2 native pixels -- or a false
  a posteriori fit, or the product more than 1" off the sky). Corruptions that are realigned, or
  too small to matter, are labelled 0.

The output is a visit folder ``OUT/<ipppss>_<filter>_<all|sub>_<stat|stoc>/`` in the same layout;
the product name (``index``, ``dataframe_index``) gets spacekit's suffix, e.g.
``hst_12286_38_wfc3_ir_total_ibl738_f110w_all_stoc``. The QA JSON file names carry the suffix
without underscores (``..._total_ibl738f110wallstoc_svm_num_sources.json``) so that ``svm prep``
can tell corrupted copies of one visit apart when they share a folder tree.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from blobhelpers.core.errors import InputError
from blobhelpers.core.parallel import process_map
from blobhelpers.svm.simulate import (SimConfig, _exposure_sources, _offset_sky, _rot, load_visit, process_visit,
                                      write_visit_products)

__all__ = ["MODES", "EXPOS", "choose_exposures", "draw_shifts", "corrupt_visit", "corrupt"]

MODES = ("stat", "stoc")
EXPOS = ("all", "sub")


def choose_exposures(visit, filt: str | None, expo: str, rng) -> tuple[str, list]:
    """The filter and the indices of the exposures to misalign."""
    filters = sorted({e.filter for e in visit.exposures})
    if filt is None:
        filt = filters[int(rng.integers(len(filters)))]
    filt = filt.lower()
    if filt not in filters:
        raise InputError(f"{visit.index}: filter {filt!r} not in the visit (has {filters})")
    idx = [i for i, e in enumerate(visit.exposures) if e.filter == filt]
    if expo == "sub" and len(idx) > 1:
        k = int(rng.integers(1, len(idx)))
        idx = sorted(rng.choice(idx, k, replace=False).tolist())
    return filt, idx


def draw_shifts(n: int, mode: str, shift_range, rot_max: float, rng) -> list:
    """``[(east, north, rot_deg)]`` for *n* exposures: |shift| ~ U(shift_range) with a random sign."""
    lo, hi = shift_range

    def one():
        return float(rng.uniform(lo, hi) * rng.choice([-1, 1]))

    if mode == "stat":
        s = (one(), one(), float(rng.uniform(-rot_max, rot_max)))
        return [s] * n
    return [(one(), one(), float(rng.uniform(-rot_max, rot_max))) for _ in range(n)]


def corrupt_visit(folder: str | Path, out: str | Path, *, mode: str = "stat", expo: str = "all",
                  filt: str | None = None, shift_range=(0.0, 0.8), rot_max: float = 0.02, seed: int = 0,
                  shift=None, config: SimConfig | None = None, write_exposures: bool = True, sources=None) -> dict:
    """Misalign exposures of the simulated visit in *folder*, re-process, measure, label; write under *out*.

    ``shift`` = ``(east, north)`` arcsec (and optionally a rotation in degrees as a third item)
    applies exactly that to every chosen exposure instead of drawing it (both modes).
    ``write_exposures=False`` leaves the (large) exposure files out of the corrupted copy: its
    ``truth.json`` still records their corrupted header WCS, and ``svm prep``/``render`` need only
    the total product, catalogs and QA files. *sources*: the visit's per-exposure sources found
    beforehand (``simulate._exposure_sources`` of the visit in *folder*; a corruption moves header
    WCSs only, so they are the same for every corruption of the visit); found here when ``None``.
    Returns a summary row (index, label, applied and measured offsets, fit).
    """
    if mode not in MODES:
        raise InputError(f"mode {mode!r}: one of {list(MODES)}")
    if expo not in EXPOS:
        raise InputError(f"expo {expo!r}: one of {list(EXPOS)}")
    lo, hi = (float(shift_range[0]), float(shift_range[1]))
    if not (0 <= lo <= hi) or not math.isfinite(hi):
        raise InputError(f"shift range {shift_range}: needs 0 <= min <= max")
    if not (math.isfinite(rot_max) and rot_max >= 0):
        raise InputError(f"rot_max {rot_max}: must be >= 0")
    visit = load_visit(folder)
    if visit.corruption:
        raise InputError(f"{folder}: already a corrupted visit ({visit.index})")
    cfg = config or SimConfig(size=int(visit.meta.get("size", 256)))
    rng = np.random.default_rng([int(seed), int(visit.meta.get("seed", 0)), int(visit.meta.get("number", 0)),
                                 MODES.index(mode), EXPOS.index(expo)])
    filt, idx = choose_exposures(visit, filt, expo, rng)
    if shift is not None:
        s = [float(v) for v in shift]
        if len(s) not in (2, 3) or not all(math.isfinite(v) for v in s):
            raise InputError(f"shift {shift!r}: needs (east, north[, rot_deg]) finite numbers")
        shifts = [(s[0], s[1], s[2] if len(s) == 3 else 0.0)] * len(idx)
    else:
        shifts = draw_shifts(len(idx), mode, (lo, hi), rot_max, rng)
    applied = []
    for i, (de, dn, rot) in zip(idx, shifts):
        e = visit.exposures[i]
        e.crval = _offset_sky(e.crval, de, dn)
        e.cd = _rot(rot) @ e.cd
        applied.append({"rootname": e.rootname, "east_arcsec": de, "north_arcsec": dn, "rot_deg": rot})
    suffix = f"{filt}_{expo}_{mode}"
    base = visit.index
    visit.index = f"{base}_{suffix}"
    visit.stem = f"{base}{suffix.replace('_', '')}"
    visit.corruption = {"mode": mode, "expo": expo, "filter": filt, "applied": applied, "base_index": base,
                        "seed": int(seed), "shift_range": [lo, hi], "rot_max": float(rot_max)}
    res = process_visit(visit, cfg, sources)
    meas = res["measure"]
    # offset of the corrupted exposures relative to the others (or to the sky when all were moved)
    offs = {o["rootname"]: np.array(o["offset_arcsec"]) for o in meas["exposures"]}
    moved = [a["rootname"] for a in applied]
    rest = [r for r in offs if r not in moved]
    ref = np.median([offs[r] for r in rest], axis=0) if rest else np.zeros(2)
    measured = {r: (offs[r] - ref).tolist() for r in moved}
    visit.corruption["measured_relative_arcsec"] = measured
    dest = Path(out) / f"{visit.meta['ipppss']}_{suffix}"
    write_visit_products(visit, res, dest, write_exposures=write_exposures, config=cfg)
    fit = res["align"]["fit"]
    return {"index": visit.index, "folder": str(dest), "label": int(res["label"]), "reason": res["label_reason"],
            "mode": mode, "expo": expo, "filter": filt, "n_moved": len(moved),
            "applied_max_arcsec": float(max(math.hypot(a["east_arcsec"], a["north_arcsec"]) for a in applied)),
            "measured_max_arcsec": float(max(math.hypot(*v) for v in measured.values())),
            "relative_arcsec": meas["relative_arcsec"], "absolute_arcsec": meas["absolute_arcsec"],
            "nmatches": int(fit["nmatches"]), "rms_ra": float(fit["rms_ra"]), "rms_dec": float(fit["rms_dec"]),
            "wcstype": fit["wcstype"], "detector": visit.spec.name}


def _corrupt_folder(folder: Path, out, combos: list, kw: dict) -> list:
    """Every (mode, expo) corruption of one visit folder, its sources found once (a function of its arguments)."""
    visit = load_visit(folder)
    sources = None if visit.corruption else _exposure_sources(visit)  # corrupt_visit refuses a corrupted visit
    return [corrupt_visit(folder, out, mode=mode, expo=expo, sources=sources, **kw) for mode, expo in combos]


def corrupt(folders, out, *, modes=("stat",), expos=("all",), filt=None, shift_range=(0.0, 0.8), rot_max=0.02,
            seed=0, shift=None, config=None, write_exposures=True, n_jobs: int | None = None) -> list:
    """:func:`corrupt_visit` for every folder and every (mode, expo); returns the summary rows.

    Every corruption is seeded by *seed*, its visit and its (mode, expo) only and writes its own
    folder, so the visits are corrupted in *n_jobs* worker processes (``None``: the default of
    :func:`blobhelpers.core.parallel.n_workers`; 1: in this process) with the same rows and files, byte for
    byte, whatever *n_jobs* (:func:`blobhelpers.core.parallel.process_map`). The rows come in the order
    folders x modes x expos.
    """
    folders = [Path(f) for f in folders]
    if not folders:
        raise InputError("no visit folder given")
    bad = [m for m in modes if m not in MODES] + [e for e in expos if e not in EXPOS]
    if bad:
        raise InputError(f"mode/expo {bad}: modes are {list(MODES)}, expos {list(EXPOS)}")
    combos = [(mode, expo) for mode in modes for expo in expos]
    kw = dict(filt=filt, shift_range=shift_range, rot_max=rot_max, seed=seed, shift=shift, config=config,
              write_exposures=write_exposures)
    done = process_map(_corrupt_folder, [(f, out, combos, kw) for f in folders], n_jobs)
    return [row for rows in done for row in rows]
