"""Alert figures (PNG) and the daily HTML summary of the monitor."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from blobhelpers.blob.io.fitsio import BORDER
from blobhelpers.blob.preprocess.scaling import zscale
from blobhelpers.core.plotting import figure_png

__all__ = ["summary_html", "products_html", "candidates_table", "absorbed_html", "binned"]


def _href(path: str, base: str | Path | None) -> str:
    """*path* relative to the folder *base* (the HTML's), as a URL path."""
    import os
    from urllib.parse import quote

    p = Path(path)
    if base is not None:
        try:
            p = Path(os.path.relpath(Path(path).resolve(), Path(base).resolve()))
        except ValueError:  # another drive (Windows): keep it absolute
            p = Path(path).resolve()
    return quote(p.as_posix())


def products_html(rec: dict, base: str | Path | None = None) -> str:
    """The paragraph linking a record's saved difference image and DS9 region file ('' without them).

    Links are relative to *base* (the folder the HTML is written to).

    >>> print(products_html({"products": {"diff_fits": "/o/products/f_diff.fits",
    ...                                   "regions": "/o/products/f_regions.reg"}}, "/o/summary"))
    ... # doctest: +ELLIPSIS
    <p>Check by eye: <a href='../products/f_diff.fits'>difference image (FITS)</a> ... <code>ds9 f_diff.fits -regions f_regions.reg</code>...</p>
    """
    import html as _html

    prod = rec.get("products") or {}
    if not prod.get("diff_fits"):
        return ""
    fits_name, reg = Path(prod["diff_fits"]).name, prod.get("regions")
    links = f"<a href='{_href(prod['diff_fits'], base)}'>difference image (FITS)</a>"
    if reg:
        links += f" and <a href='{_href(reg, base)}'>DS9 regions</a>"
    cmd = f"ds9 {fits_name}" + (f" -regions {Path(reg).name}" if reg else "")
    return (f"<p>Check by eye: {links} (the image this verdict was computed from); in their folder: "
            f"<code>{_html.escape(cmd)}</code>, or <code>blobhelpers review {_html.escape(fits_name)}</code>. "
            "Red: alerts; yellow: not alerts (with the reason); cyan: known blobs; green: the 16 tiles.</p>")


def candidates_table(rec: dict, idx: list[int], title: str) -> str:
    """An HTML table of the record's candidates *idx*: where, how big and deep, the significance in
    each day window (k = 1: today's difference; k >= 2: the mean of the last k days), the share of
    it a registration residual explains, the CNN's probability.

    >>> c = {"x": 1.0, "y": 2.0, "radius": 3.0, "depth": 0.031, "snr": 7.2, "probability": 0.9, "new": True, "k": 2,
    ...      "appeared_days_ago": 1, "registration_explained": 0.0, "windows": [{"k": 1, "snr": 5.1}, {"k": 2, "snr": 7.2}]}
    >>> html = candidates_table({"candidates": [c]}, [0], "Alerts")
    >>> "k=1: 5.1, k=2: 7.2" in html and "<td>1</td>" in html
    True
    >>> c.update(on_raised=True)
    >>> "on an earlier alert" in candidates_table({"candidates": [c]}, [0], "Alerts")
    True
    """
    import html as _html

    rows = [f"<h3>{_html.escape(title)}</h3><table><tr><th>#</th><th>x</th><th>y</th><th>radius px</th>"
            "<th>depth %</th><th>S/N</th><th>window k</th><th>appeared (days ago)</th><th>S/N by window</th>"
            "<th>residual explained</th><th>P(blob)</th><th>on</th><th>alert</th></tr>"]
    for k in idx:
        c = rec["candidates"][k]
        by_k = ", ".join(f"k={w['k']}: {w['snr']:g}" for w in c.get("windows", []))
        rows.append(f"<tr class='{'new' if c['new'] else ''}'><td>{k}</td><td>{c['x']:.1f}</td><td>{c['y']:.1f}</td>"
                    f"<td>{c['radius']:.1f}</td><td>{100 * c['depth']:.2f}</td><td>{c['snr']:.1f}</td>"
                    f"<td>{c.get('k', 1)}</td><td>{c.get('appeared_days_ago', 0)}</td><td>{_html.escape(by_k)}</td>"
                    f"<td>{100 * c.get('registration_explained', 0.0):.0f} %</td><td>{c['probability']:.3f}</td>"
                    f"<td>{_html.escape(_where(c))}</td><td>{'yes' if c['new'] else ''}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


def _where(c: dict) -> str:
    """What a candidate sits on: a catalogued blob (centred on it, or beside it) or an earlier alert.

    >>> _where({"near_known": 23})
    'beside catalogued blob 23'
    >>> _where({"near_known": "alert of 2024-03-08", "on_known": True})
    'on alert of 2024-03-08 (deeper than it can leave)'
    >>> _where({"near_known": None})
    ''
    """
    if c.get("on_raised"):
        return "on an earlier alert (judged on the change since the day before)"
    near = c.get("near_known")
    # an earlier alert the history holds is judged as a catalogued blob (Monitor.catalogs_for): "alert of DATE"
    name = near if str(near).startswith("alert of ") else f"catalogued blob {near}"
    if c.get("on_known"):
        return f"on {name} (deeper than it can leave)"
    if near is not None:
        return f"beside {name}"
    return ""


def absorbed_html(rec: dict, limit: int = 12) -> str:
    """What the day set aside: candidates a catalogued blob or an alert already raised accounts for
    (the record's ``absorbed``), counted by reason, the strongest listed.

    >>> rec = {"absorbed": [{"k": 1, "x": 10.0, "y": 20.0, "snr": 31.5, "by": "alert already raised"}]}
    >>> "alert already raised: 1" in absorbed_html(rec) and "31.5" in absorbed_html(rec)
    True
    >>> many = {"absorbed": [{"k": 2, "x": 1.0, "y": 1.0, "snr": s, "by": "catalogued blob"} for s in range(20)]}
    >>> "<td>19.0</td>" in absorbed_html(many, limit=3) and "<td>0.0</td>" not in absorbed_html(many, limit=3)
    True
    >>> absorbed_html({"absorbed": []})
    ''
    """
    import html as _html

    rows = rec.get("absorbed") or []
    if not rows:
        return ""
    counts: dict = {}
    for a in rows:
        counts[a["by"]] = counts.get(a["by"], 0) + 1
    head = "; ".join(f"{_html.escape(by)}: {n}" for by, n in sorted(counts.items(), key=lambda kv: -kv[1]))
    out = [f"<h3>Set aside ({len(rows)} detections)</h3><p>What the detection core saw that a catalogued blob or "
           f"an alert of an earlier day accounts for: {head}.</p><table><tr><th>window k</th><th>x</th><th>y</th>"
           "<th>S/N</th><th>why</th></tr>"]
    for a in sorted(rows, key=lambda a: -a["snr"])[:limit]:
        out.append(f"<tr><td>{a['k']}</td><td>{a['x']:.1f}</td><td>{a['y']:.1f}</td><td>{a['snr']:.1f}</td>"
                   f"<td>{_html.escape(a['by'])}</td></tr>")
    out.append("</table>")
    return "".join(out)


def binned(img: np.ndarray, f: int = 2) -> np.ndarray:
    """*img* averaged over ``f x f`` blocks, NaN (masked) pixels left out (NaN where a block has none);
    rows and columns beyond a multiple of *f* are dropped.

    The daily HTML draws the difference image this way: at its displayed size (~450 px across) a
    1024 x 1024 image is resampled anyway, and matplotlib's float64 copies of the full image were
    the daily command's memory peak.

    >>> a = np.arange(16, dtype=np.float32).reshape(4, 4); a[0, 0] = np.nan; a[2:, 2:] = np.nan
    >>> binned(a).astype(float).round(2).tolist()   # (1 + 4 + 5) / 3; 2..7; 8..13; nothing
    [[3.33, 4.5], [10.5, nan]]
    """
    n0, n1 = (img.shape[0] // f) * f, (img.shape[1] // f) * f
    blocks = img[:n0, :n1].reshape(n0 // f, f, n1 // f, f)
    ok = np.isfinite(blocks)
    total = np.where(ok, blocks, np.float32(0)).sum(axis=(1, 3), dtype=np.float32)
    count = ok.sum(axis=(1, 3))
    return np.where(count > 0, total / np.maximum(count, 1), np.nan).astype(np.float32)


def summary_html(rec: dict, diff: np.ndarray | None, pngs: list[str], base: str | Path | None = None) -> str:
    """A small, self-contained daily HTML summary (figures inlined).

    *base*: the folder the HTML is written to; the saved products (``rec["products"]``) are
    linked relative to it.
    """
    import base64
    import html as _html

    from matplotlib.figure import Figure  # no pyplot: never touches the notebook's backend or its figures

    parts = [f"<html><head><meta charset='utf-8'><title>blob monitor {rec['frame']}</title>"
             "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
             "td,th{border:1px solid #bbb;padding:2px 6px;font-size:90%}.new{color:#b00;font-weight:bold}</style>"
             "</head><body>",
             f"<h2>WFC3/IR blob monitor: {_html.escape(rec['frame'])} ({rec['date_obs']})</h2>",
             f"<p class='{'new' if rec['new_blob'] else ''}'>Verdict: <b>{rec['verdict'].replace('_', ' ')}</b> "
             f"({rec['n_alerts']} alert(s), {len(rec.get('watch', []))} watched; {len(rec['candidates'])} "
             f"uncatalogued candidate(s) verified, {rec['n_known_matched']} detections matched known blobs, "
             f"{rec.get('n_already_alerted', 0)} matched alerts of earlier days; day windows "
             f"{', '.join(map(str, rec.get('windows', [1])))})</p>",
             f"<p>History: {rec['history']['n']} frames ({_html.escape(rec['history']['first'])} .. "
             f"{_html.escape(rec['history']['last'])}); measured shift {rec['shift']} px; model "
             f"{_html.escape(str(rec['model']))} (threshold {rec['threshold']:.3f}); known catalog "
             f"{rec['known_catalog']['n']} blobs.</p>"]
    if rec.get("products"):
        parts.append(products_html(rec, base))
    inp = rec.get("input") or {}
    if inp:  # provenance: reader path, masked pixels, history consistency, thresholds' source
        esc = _html.escape
        mp, kw = inp.get("masked_pixels") or {}, inp.get("keywords") or {}
        flags = ", ".join(f"{b}: {n}" for b, n in (mp.get("dq_by_flag") or {}).items()) or "none"
        kws = ", ".join(f"{k} {v}" for k, v in kw.items() if v is not None)
        parts.append(f"<p>Input ({esc(str(inp.get('layout', '?')))}): {esc(str(inp.get('reader', '')))}; data in "
                     f"{esc(str(inp.get('unit') or '?'))}; {esc(kws)}. Masked pixels: {mp.get('total', 0)} "
                     f"(reference border {mp.get('reference', 0)}, DQ {mp.get('dq', 0)} [by flag: {esc(flags)}], "
                     f"non-finite in the file {mp.get('nonfinite', 0)}); blob-flagged (DQ 512) pixels kept: "
                     f"{mp.get('dq_512_kept', 0)}"
                     + (f"; DQ flags masked {inp['dq_masked_flags']}, kept {inp['dq_kept_flags']}"
                        if inp.get("dq_masked_flags") else "") + ".</p>")
        hs, cons = inp.get("history") or {}, inp.get("consistency") or {}
        ref = cons.get("reference") or {}
        parts.append(f"<p>History input: {hs.get('n', 0)} frames, layouts {esc(json.dumps(hs.get('layouts', {})))}, "
                     f"EXPTIME {esc(str(hs.get('EXPTIME', [])))}, SAMP_SEQ {esc(str(hs.get('SAMP_SEQ', [])))}, "
                     f"median masked pixels {hs.get('masked_pixels_median', 0)}. Consistency with the newest frame "
                     f"{esc(str(ref.get('frame', '?')))} (FILTER {esc(str(ref.get('FILTER', '?')))}, DETECTOR "
                     f"{esc(str(ref.get('DETECTOR', '?')))}, {esc(str(ref.get('shape', '?')))}, "
                     f"{esc(str(ref.get('unit', '?')))}): {cons.get('n_skipped', 0)} frame(s) skipped"
                     + (f" ({esc(', '.join(cons.get('skipped', [])))})" if cons.get("skipped") else "") + ".</p>")
        th = inp.get("thresholds") or {}
        vals = ", ".join(f"{k} {v:g}" for k, v in (th.get("values") or {}).items())
        parts.append(f"<p>Thresholds ({esc(vals)}): {esc(str(th.get('description', 'not recorded')))}"
                     + (f" [{esc(str(th['file']))}]" if th.get("file") else "") + ".</p>")
    if rec["skipped_frames"]:
        parts.append("<p>Skipped frames: " + "; ".join(_html.escape(f"{s['file']}: {s['reason']}")
                                                       for s in rec["skipped_frames"]) + "</p>")
    if diff is not None:
        fig = Figure(figsize=(6, 6))
        ax = fig.subplots()
        lo, hi = zscale(diff)
        # drawn 2 x 2 binned, in the full image's pixel coordinates (the markers below are)
        ny, nx = diff.shape
        im = ax.imshow(binned(diff), origin="lower", cmap="gray", vmin=lo, vmax=hi, interpolation="nearest",
                       extent=(-0.5, nx - nx % 2 - 0.5, -0.5, ny - ny % 2 - 0.5))
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label="e-/s")
        off = BORDER if diff.shape[0] == 1024 and rec.get("trimmed") else 0
        for c in rec["candidates"]:
            ax.plot(c["x"] + off, c["y"] + off, "o", mfc="none",
                    mec="red" if c["new"] else ("orange" if c.get("watch") else "yellow"), ms=12 if c["new"] else 8)
        ax.set_title("difference image (median - current); red: alerts, orange: watched, yellow: other", fontsize=9)
        b64 = base64.b64encode(figure_png(fig)).decode()
        parts.append(f"<img src='data:image/png;base64,{b64}'/>")
    groups = [("Alerts", [k for k, c in enumerate(rec["candidates"]) if c["new"]]),
              ("Watched (above the watch level, below the alert threshold: carried in the log)",
               [k for k, c in enumerate(rec["candidates"]) if c.get("watch")]),
              ("Other candidates", [k for k, c in enumerate(rec["candidates"]) if not c["new"] and not c.get("watch")])]
    for title, idx in groups:
        if idx:
            parts.append(candidates_table(rec, idx, title))
    if rec.get("absorbed"):
        parts.append(absorbed_html(rec))
    for p in pngs:
        b64 = base64.b64encode(Path(p).read_bytes()).decode()
        parts.append(f"<div><img src='data:image/png;base64,{b64}'/></div>")
    parts.append(f"<p style='font-size:80%'>versions: {_html.escape(json.dumps(rec['versions']))}</p></body></html>")
    return "\n".join(parts)
