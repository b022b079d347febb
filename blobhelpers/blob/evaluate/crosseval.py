"""Blob detection scored on data it was not built on: the cross-simulator set and the stress matrix.

Everything here is EVALUATION. The data come from :mod:`blobhelpers.blob.crosssim`, an
independently written simulator (different noise model, units, gradients, mis-registration,
heavy tails, blob profiles, held-out real cutout shapes); nothing measured here is used to train,
to choose a threshold or to select a model. Thresholds come from the project's own simulator
(validation set, development campaign).

Scores, for each image or series:

* **classify** (:func:`score_difference`): the detection core + CNN verdict, and beside it the
  **matched-filter baseline** (the same candidates and tests, no CNN: a candidate that passed the
  tests is an alert). Tiles are the 16 grid tiles of the ISR; a tile is *positive* when a new blob
  of S/N >= 3 has its centre in it, *ambiguous* (left out) when only a weaker one does, *negative*
  otherwise. A new blob is *localised* when an alert lies within max(6 px, 1.5 r) of it.
* **monitor** (:func:`score_series`): the daily monitor on the 31-frame series (no known-blob
  catalog: nothing is known about these detectors); a new blob of S/N >= 3 is found on its first
  day when an alert lies within max(6 px, 1.5 r); a blob-free series with any alert is a false
  alarm.
* **the daily job over several days** (:func:`score_series_days`): multi-day series (new blobs
  appear on the first monitored day and stay); the monitor runs once per monitored day, in date
  order, with the alerts of earlier days already raised (as the daily job's log keeps them), both
  with its day windows and as the one-day detector (``accumulate=()``). Per new blob: the first
  day it is alerted and the window ``k`` of that alert; per day: alerts that match no new blob
  (a *false-alarm day*). :func:`summarise_days` gives detection within N days, latency and
  false-alarm days per 100 blob-free days (with the jittered deep-blob series apart).
* **shortcuts** (:func:`shortcut_aucs`): how well the tile mean and the tile's brightest pixel
  alone separate positive from negative tiles (a model may lean on either).
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path

import numpy as np

from blobhelpers.blob import crosssim
from blobhelpers.blob.detect.classify import classify_image
from blobhelpers.blob.detect.detection import DetectionConfig
from blobhelpers.blob.detect.monitor import KnownCatalog, Monitor
from blobhelpers.blob.evaluate.truth import (SNR_TARGET, _located, auc, is_target,  # noqa: F401 (re-exported)
                                             tile_labels)
from blobhelpers.blob.io.fitsio import BORDER, TRIMMED_SIZE
from blobhelpers.core.stats import median_mad, rate

__all__ = ["SNR_TARGET", "is_target", "tile_labels", "score_difference", "score_series", "summarise_images",
           "summarise_series", "shortcut_aucs", "auc", "stress_cases", "DETECTORS", "score_days",
           "score_series_days", "summarise_days"]

#: The two ways the daily job is scored over several days: with its day windows (the monitor's
#: ``accumulate``) and as today's one-day detector (the same monitor with ``accumulate=()``).
DETECTORS = ("windows", "one_day")

def score_difference(image: np.ndarray, new_blobs: list[dict], model, threshold: float, preprocessing: dict,
                     detection, case: str = "", regime: str = "") -> tuple[dict, list[dict], list[dict]]:
    """Classify one difference image and score it against its new blobs.

    Returns ``(image_row, tile_rows, blob_rows)``. *new_blobs*: dicts with x, y, radius, depth, snr.
    """

    res = classify_image(image, model, threshold, preprocessing, detection, with_saliency=False, tile_cnn=True)
    alerts = [c for c in res["candidates"] if c["blob"]]
    mf = res["candidates"]  # every candidate that passed the tests and got verified
    off = BORDER if image.shape == (TRIMMED_SIZE, TRIMMED_SIZE) else 0
    labels = tile_labels(res["tiles"], new_blobs)
    full = np.asarray(image, np.float64)
    tiles = []
    for t, lab in zip(res["tiles"], labels):
        y0, x0 = t["y0"] + off, t["x0"] + off
        sub = full[max(0, y0 - off):y0 - off + t["size"], max(0, x0 - off):x0 - off + t["size"]]
        fin = sub[np.isfinite(sub)]
        noise = float(median_mad(fin)[1]) * 1.4826 if fin.size else 1.0
        tiles.append({"case": case, "regime": regime, "row": t["row"], "col": t["col"], "label": lab,
                      "p_cnn": t["probability"], "alert": t["blob"], "mf_snr": t["max_snr"],
                      "mf_alert": t["n_candidates"] > 0, "p_tile_cnn": t["cnn_probability"],
                      "tile_mean": float(np.mean(fin)) / noise if fin.size and noise > 0 else 0.0,
                      "tile_max": float(np.max(fin)) / noise if fin.size and noise > 0 else 0.0})
    target = [b for b in new_blobs if is_target(b)]
    blobs = [{"case": case, "regime": regime, "x": b["x"], "y": b["y"], "radius": b["radius"], "depth": b["depth"],
              "snr": b["snr"], "target": is_target(b), "localised": _located(b, alerts),
              "mf_localised": _located(b, mf)} for b in new_blobs]
    row = {"case": case, "regime": regime, "has_target_blob": bool(target), "has_any_blob": bool(new_blobs),
           "new_blob": res["new_blob"], "probability": res["probability"], "mf_new_blob": res["matched_filter"]["new_blob"],
           "mf_max_snr": res["matched_filter"]["max_snr"], "n_candidates": res["n_candidates"],
           "n_rejected_dipole": sum(1 for r in res["rejected"] if r["reason"] == "dipole"),
           "false_alerts": sum(1 for a in alerts if not any(_located(b, [a]) for b in new_blobs)),
           "mf_false_alerts": sum(1 for a in mf if not any(_located(b, [a]) for b in new_blobs))}
    return row, tiles, blobs


def score_series(frames, headers, truth: dict, model_path, config, case: str = "", regime: str = "",
                 workdir: str | Path | None = None, preprocessing: dict | None = None) -> tuple[dict, list[dict]]:
    """Write one series to a temporary folder, run the daily monitor on its newest frame, score it.

    *model_path*: the model file, or a loaded model with its *preprocessing* record (one model
    shared by series scored in several threads). The frames are removed afterwards (a 31-frame
    series is ~130 MB). Returns ``(row, blob_rows)``.
    """
    tmp = Path(tempfile.mkdtemp(prefix="crosssim_", dir=workdir))
    try:
        _write_series(tmp, frames, headers)
        mon = Monitor([tmp], model_path, config, KnownCatalog(), preprocessing=preprocessing)
        rec = mon.process(len(mon.ordered) - 1).record
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    new = truth["new_blobs"]
    alerts = [c for c in rec["candidates"] if c["new"]]
    mf = [c for c in rec["candidates"] if c["snr"] >= config.snr_min and not c.get("veto")]
    blobs = [{"case": case, "regime": regime, "x": b["x"], "y": b["y"], "radius": b["radius"], "depth": b["depth"],
              "snr": b["snr"], "target": b["snr"] >= SNR_TARGET, "found": _located(b, alerts),
              "mf_found": _located(b, mf)} for b in new]
    row = {"case": case, "regime": regime, "units": truth["units"], "size": truth["size"],
           "misreg_px": truth["shifts"]["latest_abs"], "has_target_blob": any(b["snr"] >= SNR_TARGET for b in new),
           "has_any_blob": bool(new), "alert": bool(alerts), "mf_alert": bool(mf),
           "false_alerts": sum(1 for a in alerts if not any(_located(b, [a]) for b in new)),
           "mf_false_alerts": sum(1 for a in mf if not any(_located(b, [a]) for b in new)),
           "n_candidates": len(rec["candidates"]), "shift": rec["shift"]}
    return row, blobs


def _write_series(folder: Path, frames, headers) -> list[Path]:
    from astropy.io import fits

    paths = []
    for k, (f, h) in enumerate(zip(frames, headers)):
        hdr = fits.Header()
        for key, v in h.items():
            hdr[key] = v
        paths.append(folder / f"frame_{k:02d}.fits")
        fits.PrimaryHDU(np.asarray(f, np.float32), hdr).writeto(paths[-1])
    return paths


def score_days(records: list[dict], truth: dict, detector: str = "windows", case: str = "", regime: str = "",
               kind: str = "") -> tuple[list[dict], list[dict]]:
    """Score the monitor's records of the monitored days of one series (day 1 first).

    A new blob is *found on day d* when an alert (a candidate with ``new``) of day d lies within
    max(6 px, 1.5 r) of where the blob is that day (``xy_by_day`` of the truth, else x, y); its
    first such day and the window ``k`` of that alert are kept. An alert that matches no new blob
    is a false alert; a day with one is a *false-alarm day*.

    Parameters
    ----------
    records : list of dict
        One monitor log record per monitored day, in date order (``candidates`` with ``new``,
        ``x``, ``y``, ``k``).
    truth : dict
        The series truth (:func:`blobhelpers.blob.crosssim.make_series`): ``new_blobs``.
    detector, case, regime, kind : str
        Labels copied into the rows.

    Returns
    -------
    day_rows, blob_rows : list of dict
        One row per monitored day and one per new blob (``first_day`` None when never alerted,
        ``latency_days`` = first day - 1).
    """
    new = truth["new_blobs"]
    skies = truth.get("sky_e")
    n_hist = truth.get("n_history")
    frame_of = list(truth.get("monitored_frames") or ([len(skies) - 1] if skies else []))
    first: list[int | None] = [None] * len(new)
    k_of: list[int | None] = [None] * len(new)
    days = []
    for d, rec in enumerate(records, start=1):
        alerts = [c for c in rec["candidates"] if c["new"]]
        where = [dict(b, x=b["xy_by_day"][d - 1][0], y=b["xy_by_day"][d - 1][1]) if "xy_by_day" in b else b
                 for b in new]
        false = 0
        for a in alerts:
            hit = [n for n, b in enumerate(where) if _located(b, [a])]
            if not hit:
                false += 1
            for n in hit:
                if first[n] is None:
                    first[n], k_of[n] = d, int(a.get("k", 1))
        t = frame_of[d - 1] if d - 1 < len(frame_of) else None
        sky_ratio = (round(skies[t] / float(np.median(skies[:n_hist])), 4)
                     if t is not None and skies and n_hist else None)  # the day's sky / the history's
        days.append({"case": case, "regime": regime, "kind": kind, "detector": detector, "day": d,
                     "date_obs": rec.get("date_obs", ""), "units": truth.get("units"), "size": truth.get("size"),
                     "sky_ratio": sky_ratio, "has_any_blob": bool(new), "n_alerts": len(alerts),
                     "false_alerts": false, "false_alarm_day": false > 0,
                     "n_candidates": len(rec["candidates"]),
                     "alert_windows": ",".join(str(int(a.get("k", 1))) for a in alerts)})
    blobs = [{"case": case, "regime": regime, "kind": kind, "detector": detector, "x": b["x"], "y": b["y"],
              "radius": b["radius"], "depth": b["depth"], "snr": b["snr"], "target": b["snr"] >= SNR_TARGET,
              "first_day": f, "k": k, "latency_days": None if f is None else f - 1}
             for b, f, k in zip(new, first, k_of)]
    return days, blobs


def score_series_days(frames, headers, truth: dict, model, config, case: str = "", regime: str = "",
                      kind: str = "", workdir: str | Path | None = None, preprocessing: dict | None = None,
                      detectors: tuple = DETECTORS, classify: DetectionConfig | None = None
                      ) -> tuple[list[dict], list[dict]]:
    """Run the daily job on every monitored day of one multi-day series and score it.

    The series is written to a temporary folder (removed afterwards). For each detector of
    *detectors* (``windows``: *config* as given; ``one_day``: the same with ``accumulate=()``) one
    :class:`Monitor` judges the monitored frames (``truth["monitored_frames"]``, else the newest)
    one after the other in date order; a frame's verdict uses only the frames before it, and the
    alerts of earlier days join the monitor's already-raised list (what the daily job reads back
    from its log), so a blob alerted once is not counted again. No known-blob catalog.

    Parameters
    ----------
    frames, headers, truth
        A series of :func:`blobhelpers.blob.crosssim.make_series` (``n_days >= 1``).
    model : keras.Model or path-like
        With a loaded model pass its *preprocessing* record.
    config : MonitorConfig
        History, thresholds and day windows of the monitor.
    case, regime, kind : str
        Labels of the rows.
    workdir : path, optional
        Where the temporary folder goes.
    detectors : tuple of str
        Any of :data:`DETECTORS`.
    classify : DetectionConfig, optional
        Also classify each monitored day's one-day difference image (the monitor's, made by the first
        detector) as ``blobhelpers classify`` does (:func:`score_difference` with *config*'s CNN
        threshold and this detection configuration): every day row gets ``classify_flagged`` (the
        image flagged: a new blob found in it).

    Returns
    -------
    day_rows, blob_rows : list of dict
        Those of :func:`score_days` for each detector, in the order of *detectors*.
    """
    bad = [d for d in detectors if d not in DETECTORS]
    if bad or not detectors:
        raise ValueError(f"detectors must be some of {DETECTORS}, got {list(detectors)}")
    if len(frames) != len(headers):
        raise ValueError(f"{len(frames)} frames but {len(headers)} headers")
    monitored = list(truth.get("monitored_frames") or [len(frames) - 1])
    if not all(0 < t < len(frames) for t in monitored) or monitored != sorted(set(monitored)):
        raise ValueError(f"monitored_frames {monitored} do not fit a series of {len(frames)} frames")
    days, blobs = [], []
    tmp = Path(tempfile.mkdtemp(prefix="crosssim_days_", dir=workdir))
    try:
        paths = _write_series(tmp, frames, headers)
        flagged: list[bool] = []
        for n_det, det in enumerate(detectors):
            cfg = config if det == "windows" else dataclasses.replace(config, accumulate=())
            mon = Monitor([tmp], model, cfg, KnownCatalog(), preprocessing=preprocessing)
            records = []
            for t in monitored:
                fr = mon.process(mon.index_of(paths[t]), with_arrays=classify is not None and n_det == 0)
                rec = fr.record
                if fr.diff is not None:   # classify on the day's difference image, as a user would
                    row, _, _ = score_difference(fr.diff, [], mon.model, config.threshold, mon.preprocessing, classify)
                    flagged.append(bool(row["new_blob"]))
                for c in rec["candidates"]:  # raised today: not raised again on a later day
                    if c["new"]:
                        mon.raised.add(c["x"], c["y"], c["radius"], c.get("depth"), rec["date_obs"][:10],
                                       f"alert {rec['frame']}")
                records.append(rec)
            d, b = score_days(records, truth, det, case, regime, kind)
            if classify is not None:
                for row, f in zip(d, flagged):
                    row["classify_flagged"] = f
            days += d
            blobs += b
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return days, blobs


def summarise_days(day_rows, blob_rows, n_days: int, prefix: str = "xsim") -> dict:
    """Headline numbers of :func:`score_series_days` rows, for each detector.

    Keys (``<p>`` = ``<prefix>_multiday`` for the monitor with day windows, ``<prefix>_multiday_oneday``
    for the one-day detector; ``<j>`` = ``<prefix>_jitter_deep`` / ``<prefix>_jitter_deep_oneday``):

    * ``<p>_within_N`` (N = 1..n_days): new blobs alerted within N days (rate dict, Wilson
      interval); ``<p>_target_within_N`` the same for S/N >= 3; ``<p>_latency_mean_days``: mean days
      from appearance to the alert of the blobs alerted;
    * ``<p>_fa_days``: false-alarm days among the monitored days of the blob-free series (kinds
      ``quiet`` and ``dips``; rate dict), ``<p>_fa_days_per_100`` and ``<p>_fa_days_per_100_ub95``
      (per 100 such days, and its 95 % Wilson upper bound);
    * ``<j>_fa_days``, ``<j>_fa_days_per_100``, ``<j>_fa_days_per_100_ub95``: the same over the
      ``jitter_deep`` series (blob-free, jittered frames, deep existing blobs), counted apart;
    * ``<prefix>_jitter_deep_classify_flagged``: the share of those days' one-day difference images
      that ``classify`` flags (rate dict; when the rows carry ``classify_flagged``).
    """
    if int(n_days) < 1:
        raise ValueError(f"n_days must be >= 1, not {n_days!r}")
    out: dict = {}
    for det, sfx in (("windows", ""), ("one_day", "_oneday")):
        bl = [b for b in blob_rows if b["detector"] == det]
        dy = [d for d in day_rows if d["detector"] == det]
        if not bl and not dy:
            continue
        p = f"{prefix}_multiday{sfx}"
        for n in range(1, int(n_days) + 1):
            out[f"{p}_within_{n}"] = _r(rate(sum(b["first_day"] is not None and b["first_day"] <= n for b in bl),
                                             len(bl)))
            tg = [b for b in bl if b["target"]]
            out[f"{p}_target_within_{n}"] = _r(rate(sum(b["first_day"] is not None and b["first_day"] <= n
                                                        for b in tg), len(tg)))
        lat = [b["latency_days"] for b in bl if b["latency_days"] is not None]
        out[f"{p}_latency_mean_days"] = round(float(np.mean(lat)), 4) if lat else float("nan")
        for q, kinds in ((p, ("quiet", "dips")), (f"{prefix}_jitter_deep{sfx}", ("jitter_deep",))):
            free = [d for d in dy if d["kind"] in kinds and not d["has_any_blob"]]
            r = rate(sum(d["false_alarm_day"] for d in free), len(free))
            out[f"{q}_fa_days"] = _r(r)
            out[f"{q}_fa_days_per_100"] = round(100 * r["rate"], 3) if r["n"] else float("nan")
            out[f"{q}_fa_days_per_100_ub95"] = round(100 * r["hi"], 3) if r["n"] else float("nan")
    # classify on the jittered series' one-day difference images (rows of score_series_days(classify=...))
    cl = [d for d in day_rows if d["kind"] == "jitter_deep" and "classify_flagged" in d
          and d["detector"] == day_rows[0]["detector"]]
    if cl:
        out[f"{prefix}_jitter_deep_classify_flagged"] = _r(rate(sum(d["classify_flagged"] for d in cl), len(cl)))
    return out


def _r(r: dict) -> dict:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}


def summarise_images(images, tiles, blobs, prefix: str) -> dict:
    """Headline rates (with Wilson intervals) of :func:`score_difference` rows, CNN and matched filter."""
    out = {}
    tl = [t for t in tiles if t["label"] != "ambiguous"]
    pos = [t for t in tl if t["label"] == "pos"]
    neg = [t for t in tl if t["label"] == "neg"]
    free = [i for i in images if not i["has_any_blob"]]
    tgt = [b for b in blobs if b["target"]]
    for who, a_tile, a_img, loc in (("cnn", "alert", "new_blob", "localised"), ("mf", "mf_alert", "mf_new_blob",
                                                                              "mf_localised")):
        out[f"{prefix}_{who}_tile_tpr"] = _r(rate(sum(t[a_tile] for t in pos), len(pos)))
        out[f"{prefix}_{who}_tile_fpr"] = _r(rate(sum(t[a_tile] for t in neg), len(neg)))
        out[f"{prefix}_{who}_image_fpr"] = _r(rate(sum(i[a_img] for i in free), len(free)))
        out[f"{prefix}_{who}_localised"] = _r(rate(sum(b[loc] for b in tgt), len(tgt)))
    out[f"{prefix}_cnn_tile_auc"] = auc([t["label"] == "pos" for t in tl], [t["p_cnn"] for t in tl])
    out[f"{prefix}_mf_tile_auc"] = auc([t["label"] == "pos" for t in tl], [t["mf_snr"] for t in tl])
    out[f"{prefix}_tile_cnn_auc"] = auc([t["label"] == "pos" for t in tl], [t["p_tile_cnn"] for t in tl])
    out.update({f"{prefix}_{k}": v for k, v in shortcut_aucs(tl).items()})
    return out


def summarise_series(rows, blobs, prefix: str) -> dict:
    """Headline rates of :func:`score_series` rows: first-day detection, false-alarm series."""
    out = {}
    free = [r for r in rows if not r["has_any_blob"]]
    tgt = [b for b in blobs if b["target"]]
    for who, a, f in (("monitor", "alert", "found"), ("mf", "mf_alert", "mf_found")):
        out[f"{prefix}_{who}_found"] = _r(rate(sum(b[f] for b in tgt), len(tgt)))
        out[f"{prefix}_{who}_false_alarm_series"] = _r(rate(sum(r[a] for r in free), len(free)))
    return out


def shortcut_aucs(tiles) -> dict:
    """AUC of the tile mean and of the tile's brightest pixel (in robust-noise units) for pos vs neg tiles."""
    y = [t["label"] == "pos" for t in tiles]
    return {"shortcut_auc_tile_mean": auc(y, [t["tile_mean"] for t in tiles]),
            "shortcut_auc_tile_max": auc(y, [t["tile_max"] for t in tiles])}


def stress_cases(names_levels: dict, n_per: int, snr: float, seed: int, templates=None):
    """Cases of the nuisance stress matrix: for each nuisance and level, *n_per* blob-free and *n_per* one-blob images.

    Yields ``(nuisance, level, has_blob, image, truth)``; every other knob keeps the cross-simulator's
    typical default, the blob has the fixed S/N *snr*.
    """

    for name, levels in names_levels.items():
        for li, level in enumerate(levels):
            nu = crosssim.Nuisance.named(name, level)
            for k in range(2 * n_per):
                has = k >= n_per
                rng = np.random.default_rng([int(seed), li, k, sum(map(ord, name))])
                blobs = [crosssim.sample_new_blob(rng, snr=snr, nuisance=nu, templates=templates)] if has else []
                img, truth = crosssim.make_difference(rng, nu, blobs, templates=templates)
                yield name, level, has, img, truth
