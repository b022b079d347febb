"""Alert figures (PNG) and the daily HTML summary of the monitor."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import json

import numpy as np

from ..fitsio import BORDER

if TYPE_CHECKING:  # pragma: no cover
    from .daily import FrameResult

__all__ = ["save_alert_pngs", "summary_html"]


def _figure_png(fig) -> bytes:
    import io as _io

    import matplotlib.pyplot as plt

    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def save_alert_pngs(result: FrameResult, outdir: Path) -> list[str]:
    """One PNG per alert: the centred subframe with the candidate marked, and its saliency."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ...core.paths import atomic_path

    rec = result.record
    off = BORDER if rec.get("trimmed") else 0
    stem = Path(rec["frame"]).name.split(".")[0]
    paths = []
    outdir.mkdir(parents=True, exist_ok=True)
    for k, (img, sal, (y0, x0)) in sorted(result.explain.items()):
        c = rec["candidates"][k]
        fig, axs = plt.subplots(1, 2, figsize=(8, 4))
        axs[0].imshow(img, origin="lower", cmap="gray", vmin=-3, vmax=3)
        axs[1].imshow(sal, origin="lower", cmap="inferno")
        for ax in axs:
            ax.plot(c["x"] + off - x0, c["y"] + off - y0, "o", mfc="none", mec="lime", ms=16)
            ax.set_xticks([])
            ax.set_yticks([])
        axs[0].set_title(f"candidate {k}: x={c['x']:.1f} y={c['y']:.1f}  P={c['probability']:.3f}", fontsize=9)
        axs[1].set_title(f"saliency; depth {100 * c['depth']:.1f} %, r {c['radius']:.1f} px, S/N {c['snr']:.1f}",
                         fontsize=9)
        dest = outdir / f"{stem}_cand{k}.png"
        with atomic_path(dest, suffix=".png") as tmp:
            tmp.write_bytes(_figure_png(fig))
        paths.append(str(dest))
    return paths


def summary_html(rec: dict, diff: np.ndarray | None, pngs: list[str]) -> str:
    """A small, self-contained daily HTML summary (figures inlined)."""
    import base64
    import html as _html

    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    parts = [f"<html><head><meta charset='utf-8'><title>blob monitor {rec['frame']}</title>"
             "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
             "td,th{border:1px solid #bbb;padding:2px 6px;font-size:90%}.new{color:#b00;font-weight:bold}</style>"
             "</head><body>",
             f"<h2>WFC3/IR blob monitor: {_html.escape(rec['frame'])} ({rec['date_obs']})</h2>",
             f"<p class='{'new' if rec['new_blob'] else ''}'>Verdict: <b>{rec['verdict'].replace('_', ' ')}</b> "
             f"({rec['n_alerts']} alert(s); {len(rec['candidates'])} uncatalogued candidate(s) verified, "
             f"{rec['n_known_matched']} detections matched known blobs)</p>",
             f"<p>History: {rec['history']['n']} frames ({_html.escape(rec['history']['first'])} .. "
             f"{_html.escape(rec['history']['last'])}); measured shift {rec['shift']} px; model "
             f"{_html.escape(str(rec['model']))} (threshold {rec['threshold']:.3f}); known catalog "
             f"{rec['known_catalog']['n']} blobs.</p>"]
    if rec["skipped_frames"]:
        parts.append("<p>Skipped frames: " + "; ".join(_html.escape(f"{s['file']}: {s['reason']}")
                                                       for s in rec["skipped_frames"]) + "</p>")
    if diff is not None:
        from ..scaling import zscale

        fig, ax = plt.subplots(figsize=(6, 6))
        lo, hi = zscale(diff)
        ax.imshow(diff, origin="lower", cmap="gray", vmin=lo, vmax=hi)
        off = BORDER if diff.shape[0] == 1024 and rec.get("trimmed") else 0
        for c in rec["candidates"]:
            ax.plot(c["x"] + off, c["y"] + off, "o", mfc="none", mec="red" if c["new"] else "yellow",
                    ms=12 if c["new"] else 8)
        ax.set_title("difference image (median - current); red: alerts, yellow: rejected", fontsize=9)
        b64 = base64.b64encode(_figure_png(fig)).decode()
        parts.append(f"<img src='data:image/png;base64,{b64}'/>")
    if rec["candidates"]:
        parts.append("<table><tr><th>#</th><th>x</th><th>y</th><th>radius px</th><th>depth %</th><th>S/N</th>"
                     "<th>P(blob)</th><th>alert</th></tr>")
        for k, c in enumerate(rec["candidates"]):
            parts.append(f"<tr class='{'new' if c['new'] else ''}'><td>{k}</td><td>{c['x']:.1f}</td><td>{c['y']:.1f}</td>"
                         f"<td>{c['radius']:.1f}</td><td>{100 * c['depth']:.2f}</td><td>{c['snr']:.1f}</td>"
                         f"<td>{c['probability']:.3f}</td><td>{'yes' if c['new'] else ''}</td></tr>")
        parts.append("</table>")
    for p in pngs:
        b64 = base64.b64encode(Path(p).read_bytes()).decode()
        parts.append(f"<div><img src='data:image/png;base64,{b64}'/></div>")
    parts.append(f"<p style='font-size:80%'>versions: {_html.escape(json.dumps(rec['versions']))}</p></body></html>")
    return "\n".join(parts)
