"""Evaluation of blob classifiers: rates with Wilson intervals, strata, campaign events.

Inference and saliency (used by detection too) live in :mod:`blobhelpers.blob.learn.inference`.

Rates always come with the number of cases behind them and a 95 % Wilson interval.
Operating thresholds are chosen on the VALIDATION set and then applied unchanged to the test
set. The one exception is labelled ``oracle`` in the metrics: the TPR at a false-positive rate
measured on the test set itself, given only as a reference for targets phrased that way.
"""

from __future__ import annotations

import numpy as np

from blobhelpers.blob.data.dataset import AMBIGUOUS_DEPTH, VISIBLE_DEPTH
from blobhelpers.blob.preprocess.scaling import tile_origins
from blobhelpers.core.stats import DEPTH_BINS, confusion_rates as rates, rate, threshold_for_fpr, wilson

__all__ = ["wilson", "rates", "threshold_for_fpr", "strata_table", "campaign_tiles", "campaign_events",
           "campaign_summary", "DEPTH_BINS"]


def _bin_label(lo, hi):
    return f"{lo:g}-{hi:g}" if hi < 1 else f">={lo:g}"


def strata_table(recipe, p: np.ndarray, threshold: float, dip_threshold: float = 0.01) -> list[dict]:
    """TPR by injected depth / radius / edge and TNR on dip and quiet negatives.

    Positives are stratified by their FAINTEST blob (``min_depth``: injected or natural) and
    smallest radius; negatives are split by ``dip_amp`` (depth x residual mis-registration of
    the strongest existing blob in the crop).
    """
    c = recipe.crops
    y = c["label"].astype(bool)
    pred = np.asarray(p) >= threshold
    rows = []

    def add(group, name, sel, positive):
        n = int(sel.sum())
        k = int((pred[sel] if positive else ~pred[sel]).sum())
        lo, hi = wilson(k, n)
        rows.append({"group": group, "stratum": name, "rate": "TPR" if positive else "TNR", "n": n,
                     "value": k / n if n else float("nan"), "lo": lo, "hi": hi})

    depth = c["min_depth"]
    for lo_, hi_ in zip(DEPTH_BINS[:-1], DEPTH_BINS[1:]):
        add("depth", _bin_label(lo_, hi_), y & (depth >= lo_) & (depth < hi_), True)
    rad = c["min_radius"]
    for lo_, hi_ in ((0, 4), (4, 6), (6, 9), (9, 99)):
        add("radius (px)", f"{lo_}-{hi_}" if hi_ < 99 else f">={lo_}", y & (rad >= lo_) & (rad < hi_), True)
    add("position", "edge (partly off the tile)", y & (c["edge"] == 1), True)
    add("position", "interior", y & (c["edge"] == 0) & (c["n_injected"] > 0), True)
    add("position", "natural new blob", y & (c["n_natural"] > 0), True)
    dip = c["dip_amp"]
    add("negatives", f"dip amplitude >= {dip_threshold:g}", ~y & (dip >= dip_threshold), False)
    add("negatives", f"dip amplitude < {dip_threshold:g}", ~y & (dip < dip_threshold), False)
    return rows


def campaign_tiles(diff_infos, tile: int = 256):
    """Tile labels of whole difference images: which of the 16 tiles hold a natural new blob.

    Returns a list of dicts (one per difference image and tile) with the new blobs (x, y,
    radius, residual depth, frame index of appearance) whose centre is in the tile.
    """

    rows = []
    for k, d in enumerate(diff_infos):
        for (y0, x0) in tile_origins(1024, tile):
            nat = d.natural
            inside = (nat[:, 0] >= x0) & (nat[:, 0] < x0 + tile) & (nat[:, 1] >= y0) & (nat[:, 1] < y0 + tile) \
                if len(nat) else np.zeros(0, bool)
            rows.append({"diff": k, "date": d.date, "y0": y0, "x0": x0, "blobs": nat[inside].tolist(),
                         "label": int(inside.any())})
    return rows


def campaign_events(infos, results, first_test_frame: int) -> tuple[list[dict], list[bool], list[float]]:
    """Score whole-image classifications of the campaign's test days against its new blobs.

    Parameters
    ----------
    infos : list of DiffInfo
        The test-day difference images (with their natural new blobs).
    results : list of dict
        :func:`~blobhelpers.blob.detect.classify.classify_image` of each, in the same order.
    first_test_frame : int
        Blobs that appeared before it were seen in the training days: a tile holding one (residual
        depth >= :data:`~blobhelpers.blob.data.dataset.AMBIGUOUS_DEPTH`) is neither event nor quiet.

    Returns
    -------
    events : list of dict
        One per visible new blob (residual depth >= :data:`~blobhelpers.blob.data.dataset.VISIBLE_DEPTH`):
        day, x, y, radius, depth, ``tile_flagged`` (its grid tile flagged), ``located`` (an alert
        within max(10, 2 r) px).
    quiet : list of bool
        Whether each blob-free tile was flagged (a false alarm).
    loc_err : list of float
        Distance (px) of the nearest alert of each located event.
    """

    tiles = campaign_tiles(infos)
    events, quiet, loc_err = [], [], []
    for k, (d, res) in enumerate(zip(infos, results)):
        for tr, tl in zip(res["tiles"], [t for t in tiles if t["diff"] == k]):
            if any(b[4] < first_test_frame and b[3] >= AMBIGUOUS_DEPTH for b in tl["blobs"]):
                continue
            visible = [b for b in tl["blobs"] if b[3] >= VISIBLE_DEPTH]
            if visible:
                for b in visible:
                    hit = [c for c in res["candidates"]
                           if c["blob"] and np.hypot(c["x"] - b[0], c["y"] - b[1]) < max(10, 2 * b[2])]
                    events.append({"day": d.date, "x": b[0], "y": b[1], "radius": b[2], "depth": b[3],
                                   "tile_flagged": tr["blob"], "located": bool(hit)})
                    if hit:
                        loc_err.append(min(float(np.hypot(c["x"] - b[0], c["y"] - b[1])) for c in hit))
            elif not tl["blobs"]:
                quiet.append(bool(tr["blob"]))
    return events, quiet, loc_err


def campaign_summary(events: list[dict], quiet: list[bool], loc_err: list[float], min_depth: float = 0.03) -> dict:
    """Detection and false-alarm rates (:func:`~blobhelpers.core.stats.rate`) of :func:`campaign_events`."""
    deep = [e for e in events if e["depth"] >= min_depth]
    return {"detection": rate(sum(e["tile_flagged"] for e in events), len(events)),
            "detection_deeper": rate(sum(e["tile_flagged"] for e in deep), len(deep)),
            "located": rate(sum(e["located"] for e in events), len(events)),
            "false_alarm_tiles": rate(sum(quiet), len(quiet)),
            "median_loc_error_px": float(np.median(loc_err)) if loc_err else float("nan")}
