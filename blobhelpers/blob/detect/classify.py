"""Classify one blob difference image: the detection core without the history step.

``classify`` is the daily monitor's detection on a difference image someone else made
(:mod:`blobhelpers.blob.detect.detection`): candidates from a matched-filter S/N map (reference pixels,
NaN and flagged pixels never yield one), the dipole and bright-transient tests, a candidate
budget spent on what passed them, and CNN verification of a 256x256 subframe centred on each
selected candidate, in the representation the model was trained with (read from the model's
``.preprocess.json``). A candidate is a **blob** when its CNN probability is >= ``threshold``.

The ISR's 16-tile view stays in the output: a tile's ``probability`` is that of its strongest
verified candidate (0 when none), and ``cnn_probability`` is the tile CNN of the report (the
whole 256x256 tile through the same model) for comparison. Coordinates are 0-based
(x = column, y = row) in the INPUT array (a 1014x1014 trimmed frame keeps its own coordinates).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from blobhelpers.blob.detect.alertfigures import save_alert_pngs
from blobhelpers.blob.detect.detection import (DetectionConfig, detect_candidates, measure_blob, screen, select,
                                               valid_mask, verify)
from blobhelpers.blob.detect.products import classify_header, product_paths, product_stem, save_products
from blobhelpers.blob.io.fitsio import BORDER, TRIMMED_SIZE, read_frame, to_full_frame
from blobhelpers.blob.learn.cnn import load_model, load_preprocessing
from blobhelpers.blob.learn.inference import saliency
from blobhelpers.blob.preprocess.scaling import TILE, scale_image, tile_origins

__all__ = ["classify_image", "classify_file", "SCHEMA_KEYS", "MAX_REPORTED_REJECTS"]

SCHEMA_KEYS = ("file", "model", "threshold", "new_blob", "tiles", "candidates")
#: Rejected candidates listed in the output (the strongest), so a reader sees what was set aside.
MAX_REPORTED_REJECTS = 20


def classify_image(diff: np.ndarray, model, threshold: float = 0.5, preprocessing: dict | None = None,
                   detection: DetectionConfig | None = None, flagged: np.ndarray | None = None,
                   with_saliency: bool = True, tile_cnn: bool = True) -> dict:
    """Classify a 1024x1024 or 1014x1014 difference image (blobs positive, any units).

    Parameters
    ----------
    diff : numpy.ndarray
    model : keras.Model
    threshold : float
        CNN probability at or above which a verified candidate is a blob.
    preprocessing : dict, optional
        The model's (:func:`~blobhelpers.blob.learn.cnn.load_preprocessing`): ``representation``
        (``"residual"`` or ``"isr"``), ``clip_factor``, ``border_rule``. Default: residual.
    detection : DetectionConfig, optional
    flagged : numpy.ndarray of bool, optional
        Pixels of *diff* that must never yield a candidate (bad pixels from DQ).
    with_saliency : bool
        Keep ``explain`` (candidate index -> (subframe, saliency, (y0, x0))) for alert PNGs.
    tile_cnn : bool
        Also run the model on the 16 grid tiles (the ISR view) and report ``cnn_probability``.

    Returns
    -------
    dict
        ``threshold``, ``new_blob``, ``probability`` (the highest verified candidate's, 0 if none),
        ``tiles`` (16 rows), ``candidates`` (verified ones: x, y, radius, depth, snr, probability,
        blob), ``rejected`` (the strongest candidates set aside, with the reason),
        ``matched_filter`` (the baseline verdict: any candidate that passed the tests),
        ``n_candidates`` and, with *with_saliency*, ``explain`` (not JSON).
    """

    det = detection or DetectionConfig()
    prep = {"representation": "residual", "clip_factor": 0.5, "border_rule": "symmetric", **(preprocessing or {})}
    trimmed = diff.shape == (TRIMMED_SIZE, TRIMMED_SIZE)
    offset = BORDER if trimmed else 0
    full = to_full_frame(diff)
    flag_full = to_full_frame(flagged.astype(np.float32)) > 0 if flagged is not None else None
    valid = valid_mask(full, flag_full)  # a trimmed frame's padded border is NaN and masked either way
    full = np.where(valid, full, np.float32(np.nan))  # masked pixels are blank in the CNN's subframes too
    cands = screen(detect_candidates(full, det.radii, det.snr_min, valid=valid), det)
    chosen, rest = select(cands, det.max_candidates)
    for c in chosen:
        c.update(measure_blob(full, c["x"], c["y"], c["scale"]))
    scaled = None
    if prep["representation"] == "isr":
        scaled, _ = scale_image(full, clip_factor=prep["clip_factor"], border_rule=prep["border_rule"])
    grid = tile_origins(1024, TILE)
    prob, X, origins = verify(model, full, [(c["x"], c["y"]) for c in chosen], prep["representation"], scaled,
                              extra_tiles=grid if tile_cnn else ())
    n = len(chosen)
    out_c = []
    for c, p in zip(chosen, prob[:n]):
        out_c.append({"x": round(c["x"] - offset, 2), "y": round(c["y"] - offset, 2), "radius": round(c["radius"], 2),
                      "depth": round(c["depth"], 6), "snr": round(c["snr"], 2), "dip": round(c["dip"], 2),
                      "neg_snr": round(c["neg_snr"], 2), "probability": round(float(p), 6),
                      "blob": bool(p >= threshold)})
    tiles = []
    for k, (y0, x0) in enumerate(grid):
        inside = [c for c in out_c if y0 <= c["y"] + offset < y0 + TILE and x0 <= c["x"] + offset < x0 + TILE]
        best = max((c["probability"] for c in inside), default=0.0)
        row = {"row": y0 // TILE, "col": x0 // TILE, "x0": x0 - offset, "y0": y0 - offset, "size": TILE,
               "probability": round(float(best), 6), "blob": bool(best >= threshold),
               "max_snr": round(max((c["snr"] for c in inside), default=0.0), 2), "n_candidates": len(inside)}
        if tile_cnn:
            row["cnn_probability"] = round(float(prob[n + k]), 6)
        tiles.append(row)
    rejected = sorted((c for c in rest if c.get("reject")), key=lambda c: -c["snr"])[:MAX_REPORTED_REJECTS]
    result = {
        "threshold": float(threshold),
        "new_blob": any(c["blob"] for c in out_c),
        "probability": round(max((c["probability"] for c in out_c), default=0.0), 6),
        "tiles": tiles,
        "candidates": out_c,
        "rejected": [{"x": round(c["x"] - offset, 2), "y": round(c["y"] - offset, 2), "snr": round(c["snr"], 2),
                      "reason": c["reject"]} for c in rejected],
        "n_candidates": len(cands),
        "n_over_budget": sum(1 for c in rest if not c.get("reject")),
        "matched_filter": {"new_blob": bool(chosen), "snr_min": det.snr_min,
                           "max_snr": round(max((c["snr"] for c in chosen), default=0.0), 2)},
        "representation": prep["representation"],
        "trimmed": trimmed,
    }
    if with_saliency:
        idx = [k for k, c in enumerate(out_c) if c["blob"]]
        result["explain"] = {}
        if idx:
            smaps = saliency(model, X[idx])
            result["explain"] = {k: (X[k], smaps[j], origins[k]) for j, k in enumerate(idx)}
    return result


def classify_file(path: str | Path, model_path: str | Path, threshold: float = 0.5,
                  saliency_dir: str | Path | None = None, model=None, detection: DetectionConfig | None = None,
                  preprocessing: dict | None = None, products_dir: str | Path | None = None) -> dict:
    """:func:`classify_image` on a FITS file; returns the JSON-ready result (schema in README).

    The preprocessing is the model's own (``<model>.preprocess.json``) unless *preprocessing* is given.
    With *products_dir*, the image classified (as read: same array, units and coordinates) and a
    DS9 region file of the verdict are written there (:mod:`blobhelpers.blob.detect.products`:
    ``<stem>_diff.fits``, ``<stem>_regions.reg``) and their paths returned in ``products``; when
    that FITS name is the input itself, the input is not rewritten.
    """

    frame = read_frame(path)
    model = model if model is not None else load_model(model_path)
    prep = preprocessing or load_preprocessing(model_path)
    res = classify_image(frame.data, model, threshold, prep, detection, with_saliency=saliency_dir is not None)
    explain = res.pop("explain", {})
    if saliency_dir is not None:
        res["saliency_pngs"] = save_alert_pngs({**res, "file": str(path)}, explain, Path(saliency_dir),
                                               Path(path).name.split(".")[0])
    out = {"file": str(path), "model": str(model_path), "preprocessing": prep, **res}
    if products_dir is not None:
        stem = product_stem(path)
        dest = product_paths(products_dir, stem)[0]
        same = dest.exists() and dest.resolve() == Path(path).resolve()
        meta = {**{k: frame.meta.get(k) for k in ("FILTER", "DETECTOR")}, "DATE-OBS": frame.header.get("DATE-OBS"),
                "layout": frame.layout, "reader": frame.reader}
        out["products"] = save_products(products_dir, stem, None if same else frame.data, out,
                                        classify_header(out, detection or DetectionConfig(), model_path,
                                                        frame.unit, meta),
                                        fits_path=path if same else None)
    return out
