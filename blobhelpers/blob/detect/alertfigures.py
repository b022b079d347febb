"""Alert figures: one PNG per alert (the CNN's subframe with the candidate marked, and its saliency).

Written by the daily monitor and by ``classify --save-products``. Drawn on a bare matplotlib
``Figure`` (no pyplot), so rendering an alert never touches a notebook's backend or its figures.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from blobhelpers.blob.io.frames import BORDER
from blobhelpers.core.paths import atomic_path
from blobhelpers.core.plotting import figure_png

__all__ = ["save_alert_pngs"]


def save_alert_pngs(rec: dict, explain: dict, outdir: Path, stem: str | None = None) -> list[str]:
    """One PNG per alert: the centred subframe (the CNN's input) with the candidate marked, and its saliency.

    *rec* is a classify or monitor record (``candidates`` with x, y, probability, depth, radius,
    snr; ``trimmed``); *explain* maps a candidate index to ``(subframe, saliency, (y0, x0))``.
    """
    off = BORDER if rec.get("trimmed") else 0
    stem = stem or Path(rec.get("frame") or rec.get("file")).name.split(".")[0]
    outdir = Path(outdir)
    paths = []
    outdir.mkdir(parents=True, exist_ok=True)
    for k, (img, sal, (y0, x0)) in sorted(explain.items()):
        c = rec["candidates"][k]
        fig = Figure(figsize=(8, 4))
        axs = fig.subplots(1, 2)
        im0 = axs[0].imshow(img, origin="lower", cmap="gray", vmin=-3, vmax=3)
        im1 = axs[1].imshow(sal, origin="lower", cmap="inferno")
        fig.colorbar(im0, ax=axs[0], fraction=0.046, pad=0.02, label="z-score")
        fig.colorbar(im1, ax=axs[1], fraction=0.046, pad=0.02, label="|gradient|")
        for ax in axs:
            ax.plot(c["x"] + off - x0, c["y"] + off - y0, "o", mfc="none", mec="lime", ms=16)
            ax.set_xticks([])
            ax.set_yticks([])
        axs[0].set_title(f"candidate {k}: x={c['x']:.1f} y={c['y']:.1f}  P={c['probability']:.3f}", fontsize=9)
        axs[1].set_title(f"saliency; depth {100 * c['depth']:.1f} %, r {c['radius']:.1f} px, S/N {c['snr']:.1f}",
                         fontsize=9)
        dest = outdir / f"{stem}_cand{k}.png"
        with atomic_path(dest, suffix=".png") as tmp:
            tmp.write_bytes(figure_png(fig))
        paths.append(str(dest))
    return paths
