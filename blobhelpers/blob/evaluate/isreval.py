"""Scoring models trained under either recipe on the same test sets (stage 06).

A model's input depends on how it was trained:

* ``"isr"``: the ISR's whole-image scaling (a project-recipe ISR model: stage 02's ``isr2021``);
* ``"isr_crop"``: the same, then each 256 x 256 crop re-z-scored -- what an ISR-recipe model
  was trained on (:mod:`blobhelpers.blob.data.isrrecipe` re-z-scores every crop), so it gets the
  same at test time;
* ``"residual"``: this project's residual representation (any units).

Test sets: the ISR-style test crops (already in processed units, re-z-scored), the project's
held-out test subframes (difference units + each image's scaling), and the grid tiles of the
cross-simulator's difference images (any units; labelled by :func:`truth.tile_labels`).
"""

from __future__ import annotations

import numpy as np

from blobhelpers.blob.data.isrrecipe import crop_zscore
from blobhelpers.blob.evaluate.truth import tile_labels
from blobhelpers.blob.preprocess.scaling import TILE, apply_scaling, fill_bad, residual, scaling_params, tile_origins
from blobhelpers.core.stats import rate

__all__ = ["INPUTS", "to_input", "crosssim_tiles", "binary_summary"]

INPUTS = ("isr", "isr_crop", "residual")


def to_input(kind: str, processed: np.ndarray, raw: np.ndarray | None = None) -> np.ndarray:
    """Model input of *kind* from crops in the ISR's processed units (*processed*) or, for the
    residual, from the crops in their original units (*raw*, default: *processed*)."""
    if kind == "isr":
        return np.asarray(processed, np.float32)
    if kind == "isr_crop":
        return crop_zscore(processed)
    if kind == "residual":
        return residual(processed if raw is None else raw)
    raise ValueError(f"input kind must be one of {INPUTS}, not {kind!r}")


def crosssim_tiles(image: np.ndarray, new_blobs: list[dict], clip_factor: float = 0.5,
                   border_rule: str = "symmetric") -> tuple[np.ndarray, np.ndarray, list[str], list[dict]]:
    """The 16 grid tiles of one difference image: ``(processed, raw, labels, tiles)``.

    *processed*: ISR-scaled (whole image); *raw*: the image with NaN/border pixels set to its
    median, in its own units; *labels*: "pos" / "neg" / "ambiguous" per tile
    (:func:`~blobhelpers.blob.evaluate.truth.tile_labels`); *tiles*: their origins.
    """

    img = np.asarray(image, np.float32)
    filled, _ = fill_bad(img, border_rule)
    scaled = apply_scaling(filled, scaling_params(img, clip_factor, border_rule))
    origins = tile_origins(img.shape[0])
    tiles = [{"y0": y, "x0": x, "size": TILE} for y, x in origins]
    processed = np.stack([scaled[y:y + TILE, x:x + TILE] for y, x in origins])
    raw = np.stack([filled[y:y + TILE, x:x + TILE] for y, x in origins])
    return processed, raw, tile_labels(tiles, new_blobs), tiles


def binary_summary(y, p, threshold: float = 0.5) -> dict:
    """AUC and the rates at *threshold* (p >= t flags) with their Wilson intervals."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y, bool)
    p = np.asarray(p, float)
    flagged = p >= threshold
    out = {"n_pos": int(y.sum()), "n_neg": int((~y).sum()),
           "auc": float(roc_auc_score(y, p)) if 0 < y.sum() < y.size else float("nan"),
           "tpr": rate(int((flagged & y).sum()), int(y.sum())),
           "tnr": rate(int((~flagged & ~y).sum()), int((~y).sum()))}
    return out
