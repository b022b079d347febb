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
* **shortcuts** (:func:`shortcut_aucs`): how well the tile mean and the tile's brightest pixel
  alone separate positive from negative tiles (a model may lean on either).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from blobhelpers.blob import crosssim
from blobhelpers.blob.detect.classify import classify_image
from blobhelpers.blob.detect.monitor import KnownCatalog, Monitor
from blobhelpers.blob.evaluate.truth import (SNR_TARGET, _located, auc, is_target,  # noqa: F401 (re-exported)
                                             tile_labels)
from blobhelpers.blob.io.fitsio import BORDER, TRIMMED_SIZE
from blobhelpers.core.stats import rate

__all__ = ["SNR_TARGET", "is_target", "tile_labels", "score_difference", "score_series", "summarise_images",
           "summarise_series", "shortcut_aucs", "auc", "stress_cases"]

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
        noise = float(np.median(np.abs(fin - np.median(fin)))) * 1.4826 if fin.size else 1.0
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
    from astropy.io import fits

    tmp = Path(tempfile.mkdtemp(prefix="crosssim_", dir=workdir))
    try:
        for k, (f, h) in enumerate(zip(frames, headers)):
            hdr = fits.Header()
            for key, v in h.items():
                hdr[key] = v
            fits.PrimaryHDU(np.asarray(f, np.float32), hdr).writeto(tmp / f"frame_{k:02d}.fits")
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
