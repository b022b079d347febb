"""Alerts and tiles against the truth of a labelled evaluation set (any simulator's ``new_blobs`` lists).

Kept apart from :mod:`.crosseval` (which runs the detection core on the cross-simulator's data and
imports the simulator itself), so that code that only labels tiles or ranks scores -- the ISR-recipe
scoring of stage 06 -- does not depend on the simulator's code.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SNR_TARGET", "auc", "is_target", "tile_labels"]

#: New blobs at or above this S/N are what the targets are about; weaker ones are "ambiguous".
SNR_TARGET = 3.0


def auc(y, s) -> float:
    """ROC AUC (Mann-Whitney, ties counted half); nan when one class is missing."""
    y = np.asarray(y, bool)
    s = np.asarray(s, float)
    pos, neg = s[y], s[~y]
    if not len(pos) or not len(neg):
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    vals = np.concatenate([pos, neg])[order]
    i = 0
    while i < len(vals):  # average ranks of ties
        j = i
        while j + 1 < len(vals) and vals[j + 1] == vals[i]:
            j += 1
        ranks[order[i:j + 1]] = 0.5 * (i + j) + 1
        i = j + 1
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def _located(blob: dict, alerts: list[dict]) -> bool:
    lim = max(6.0, 1.5 * float(blob["radius"]))
    return any(np.hypot(a["x"] - blob["x"], a["y"] - blob["y"]) <= lim for a in alerts)


def is_target(blob: dict) -> bool:
    """A blob the targets are about: S/N >= :data:`SNR_TARGET`, unless the blob says ``target`` itself.

    (The project's own campaign marks its visible new blobs, residual depth >= 1 %, as targets: most
    of them are below S/N 3 per pixel, so the S/N rule would leave that set almost empty.)
    """
    return bool(blob["target"]) if "target" in blob else blob["snr"] >= SNR_TARGET


def tile_labels(tiles: list[dict], new_blobs: list[dict]) -> list[str]:
    """``"pos"``, ``"neg"`` or ``"ambiguous"`` for each grid tile (input-array coordinates)."""
    out = []
    for t in tiles:
        inside = [b for b in new_blobs
                  if t["x0"] <= b["x"] < t["x0"] + t["size"] and t["y0"] <= b["y"] < t["y0"] + t["size"]]
        if any(is_target(b) for b in inside):
            out.append("pos")
        elif inside:
            out.append("ambiguous")
        else:
            out.append("neg")
    return out
