"""Classify a whole blob difference image: 16 tiles (+ overlapping tiles), candidates, saliency.

The image goes through exactly the training preprocessing (NaN/border to the median, clip
at 0.5 x zscale, z-score). The 16 tiles of the 4x4 grid are classified, and -- with
``overlap=True`` -- the 33 tiles offset by half a tile as well, so a blob cut by a tile
border is seen whole by some tile. Each flagged tile is explained by a saliency map
(gradients of the blob log-odds), and candidates are the peaks of the saliency-weighted,
smoothed positive image, refined by a centroid; candidates from overlapping tiles within
``merge_px`` are merged. Coordinates are 0-based (x = column, y = row) in the INPUT array
(a 1014x1014 trimmed frame keeps its own coordinates).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from .fitsio import BORDER, TRIMMED_SIZE, read_frame, to_full_frame
from .scaling import TILE, scale_image, tile_origins

__all__ = ["classify_image", "classify_file", "SCHEMA_KEYS"]

SCHEMA_KEYS = ("file", "model", "threshold", "new_blob", "tiles", "candidates")


def _candidates_in_tile(img_tile: np.ndarray, sal: np.ndarray, max_peaks: int = 3, min_sep: int = 15,
                        rel: float = 0.5) -> list[tuple[float, float, float]]:
    """(x, y, score) peaks of saliency x smoothed positive image in one tile (tile coordinates)."""
    smooth_img = np.maximum(ndimage.gaussian_filter(img_tile, 2.0), 0.0)
    smooth_sal = ndimage.gaussian_filter(sal, 3.0)
    smax = smooth_sal.max()
    score = smooth_img * (smooth_sal / smax if smax > 0 else 1.0)
    peaks = []
    work = score.copy()
    top = work.max()
    if not top > 0:
        return peaks
    yy, xx = np.mgrid[0:TILE, 0:TILE]
    for _ in range(max_peaks):
        iy, ix = np.unravel_index(int(np.argmax(work)), work.shape)
        v = float(work[iy, ix])
        if v < rel * top:
            break
        y0, y1, x0, x1 = max(0, iy - 4), min(TILE, iy + 5), max(0, ix - 4), min(TILE, ix + 5)
        w = smooth_img[y0:y1, x0:x1]
        if w.sum() > 0:
            cy = float((w * yy[y0:y1, x0:x1]).sum() / w.sum())
            cx = float((w * xx[y0:y1, x0:x1]).sum() / w.sum())
        else:
            cy, cx = float(iy), float(ix)
        peaks.append((cx, cy, v))
        work[np.hypot(xx - ix, yy - iy) < min_sep] = 0.0
    return peaks


def classify_image(diff: np.ndarray, model, threshold: float = 0.5, overlap: bool = True,
                   with_saliency: bool = True, merge_px: float = 12.0, border_rule: str = "symmetric",
                   clip_factor: float = 0.5) -> dict:
    """Classify a 1024x1024 or 1014x1014 difference image (blobs positive).

    Returns a dict with ``threshold``, ``new_blob``, ``tiles`` (the 16 grid tiles: row, col,
    x0, y0, size, probability, blob), ``candidates`` (x, y, probability, tile) and, when
    *with_saliency*, ``saliency`` ``{(row, col): (tile_image, saliency_map)}`` for flagged grid
    tiles (not JSON; used for PNGs).
    """
    from .scoring import predict_logits, saliency
    from .cnn import probabilities

    offset = BORDER if diff.shape == (TRIMMED_SIZE, TRIMMED_SIZE) else 0
    full = to_full_frame(diff)
    scaled, _ = scale_image(full, clip_factor=clip_factor, border_rule=border_rule)
    grid = tile_origins(1024, TILE)
    origins = list(grid)
    if overlap:
        origins += [o for o in tile_origins(1024, TILE, TILE // 2) if o not in grid]
    tiles = np.stack([scaled[y:y + TILE, x:x + TILE] for y, x in origins])
    prob = probabilities(predict_logits(model, tiles))
    flagged = np.nonzero(prob >= threshold)[0]
    sal = {}
    cands: list[dict] = []
    if len(flagged):
        smaps = saliency(model, tiles[flagged])
        for k, t in enumerate(flagged):
            y0, x0 = origins[t]
            sal[(y0, x0)] = (tiles[t], smaps[k])
            for cx, cy, v in _candidates_in_tile(tiles[t], smaps[k]):
                cands.append({"x": cx + x0 - offset, "y": cy + y0 - offset, "probability": float(prob[t]),
                              "score": v, "tile": [int(y0 // TILE), int(x0 // TILE)] if (y0, x0) in grid else None})
    # merge candidates seen by several tiles: keep the highest probability, average positions
    merged: list[dict] = []
    for c in sorted(cands, key=lambda c: (-c["probability"], -c["score"])):
        for m in merged:
            if np.hypot(m["x"] - c["x"], m["y"] - c["y"]) < merge_px:
                m["n"] += 1
                break
        else:
            merged.append({**c, "n": 1})
    size = diff.shape[0]
    out_cands = [{"x": round(float(np.clip(m["x"], 0, size - 1)), 2), "y": round(float(np.clip(m["y"], 0, size - 1)), 2),
                  "probability": round(m["probability"], 6), "n_tiles": m["n"]} for m in merged]
    tile_rows = []
    for (y0, x0), p in zip(grid, prob[:len(grid)]):
        tile_rows.append({"row": y0 // TILE, "col": x0 // TILE, "x0": x0 - offset, "y0": y0 - offset, "size": TILE,
                          "probability": round(float(p), 6), "blob": bool(p >= threshold)})
    result = {"threshold": float(threshold), "new_blob": bool(len(flagged) > 0), "tiles": tile_rows,
              "candidates": out_cands, "n_tiles_classified": len(origins),
              "max_probability": round(float(prob.max()), 6)}
    if with_saliency:
        result["saliency"] = {k: v for k, v in sal.items() if k in set(grid)}
    return result


def save_saliency_pngs(result: dict, outdir: str | Path, stem: str) -> list[Path]:
    """One PNG per flagged grid tile: the tile and its saliency map, candidates marked."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ..core.paths import atomic_path

    outdir = Path(outdir)
    off = BORDER if result.get("trimmed") else 0  # tile origins are full-frame, results input-frame
    prob = {(t["y0"] + off, t["x0"] + off): t["probability"] for t in result["tiles"]}
    paths = []
    for (y0, x0), (img, sal) in sorted(result.get("saliency", {}).items()):
        fig, axs = plt.subplots(1, 2, figsize=(8, 4))
        axs[0].imshow(img, origin="lower", cmap="gray", vmin=-3, vmax=3)
        axs[1].imshow(sal, origin="lower", cmap="inferno")
        for c in result["candidates"]:
            cx, cy = c["x"] + off - x0, c["y"] + off - y0
            if 0 <= cx < TILE and 0 <= cy < TILE:
                for ax in axs:
                    ax.plot(cx, cy, "o", mfc="none", mec="lime", ms=14)
        axs[0].set_title(f"tile row {y0 // TILE} col {x0 // TILE}: P(blob) = {prob[(y0, x0)]:.3f}", fontsize=9)
        axs[1].set_title("saliency |d log-odds / d pixel|", fontsize=9)
        for ax in axs:
            ax.set_xticks([])
            ax.set_yticks([])
        dest = outdir / f"{stem}_tile_r{y0 // TILE}_c{x0 // TILE}.png"
        with atomic_path(dest, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=80, bbox_inches="tight")
        plt.close(fig)
        paths.append(dest)
    return paths


def classify_file(path: str | Path, model_path: str | Path, threshold: float = 0.5, overlap: bool = True,
                  saliency_dir: str | Path | None = None, model=None, clip_factor: float = 0.5,
                  border_rule: str = "symmetric") -> dict:
    """:func:`classify_image` on a FITS file; returns the JSON-ready result (schema in README).

    *clip_factor* and *border_rule* must be those the model was trained with (params.yaml
    ``difference`` section; the CLI reads them from there).
    """
    from .cnn import load_model

    frame = read_frame(path)
    model = model if model is not None else load_model(model_path)
    res = classify_image(frame.data, model, threshold, overlap, with_saliency=saliency_dir is not None,
                         border_rule=border_rule, clip_factor=clip_factor)
    res["trimmed"] = frame.trimmed
    if saliency_dir is not None:
        res["saliency_pngs"] = [str(p) for p in save_saliency_pngs(res, saliency_dir, Path(path).stem)]
    res.pop("saliency", None)
    res = {"file": str(path), "model": str(model_path), **res}
    return res
