"""Review a monitor verdict: the frame, its difference image, known blobs and candidates marked.

- :func:`overlay_shapes` turns a monitor record (and a known-blob catalog) into circles in
  the frame's pixel coordinates (0-based, pixel centres at integers, as in the log);
- :func:`ginga_viewer` shows an image with those circles in an interactive ginga viewer in
  JupyterLab (pan, zoom, cuts, colour maps via ginga's standard bindings; needs ipywidgets and
  ipyevents);
- :func:`render_ginga` draws the same view off-screen with ginga's PIL renderer (headless: used
  by the tests and for the HTML report);
- :func:`review_figure` is the static matplotlib fallback for the HTML report;
- :func:`load_review` opens what the monitor (or ``classify --save-products``) saved for one
  verdict -- a difference image and its DS9 region file (:mod:`blobhelpers.blob.detect.products`),
  found from a monitor log or from the FITS file -- and :func:`review_png` /
  :func:`show_in_ginga` show it (``blobhelpers review``).

Shapes are dicts with ``x``, ``y`` (0-based, pixel centres at integers), ``color``, ``label``
and either ``r`` (a circle, the default) or ``shape="box"`` with ``w``, ``h``; optional
``linewidth`` and ``linestyle`` (``solid`` or ``dash``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from blobhelpers.blob.detect.monitor.records import MonitorLog
from blobhelpers.blob.detect.products import read_regions, record_shapes, regions_beside
from blobhelpers.blob.io.fitsio import read_frame
from blobhelpers.blob.preprocess.scaling import zscale
from blobhelpers.core.errors import InputError
from blobhelpers.core.paths import atomic_path

__all__ = ["overlay_shapes", "ginga_viewer", "render_ginga", "review_figure", "COLORS", "ReviewView",
           "load_review", "review_png", "display_available", "show_in_ginga"]

COLORS = {"alert": "red", "candidate": "yellow", "known": "cyan"}


def overlay_shapes(record: dict, known=None, show_known: bool = True, min_radius: float = 4.0) -> list[dict]:
    """Circles for a monitor record: alerts (red), rejected candidates (yellow), known blobs (cyan).

    Each shape: ``{"kind": ..., "x": ..., "y": ..., "r": ..., "color": ..., "label": ...}`` with
    x = column and y = row in the frame's pixel coordinates; the radius is the blob's estimated
    radius plus 3 px (at least *min_radius*) so the circle does not hide the blob.

    >>> rec = {"candidates": [{"x": 10.0, "y": 20.0, "radius": 5.0, "new": True, "probability": 0.9},
    ...                       {"x": 50.0, "y": 60.0, "radius": 1.0, "new": False, "probability": 0.1}]}
    >>> [(s["kind"], s["x"], s["y"], s["r"], s["color"]) for s in overlay_shapes(rec)]
    [('alert', 10.0, 20.0, 8.0, 'red'), ('candidate', 50.0, 60.0, 4.0, 'yellow')]
    """
    shapes = []
    for k, c in enumerate(record.get("candidates", [])):
        kind = "alert" if c.get("new") else "candidate"
        shapes.append({"kind": kind, "x": float(c["x"]), "y": float(c["y"]),
                       "r": max(min_radius, float(c.get("radius", 0.0)) + 3.0), "color": COLORS[kind],
                       "label": f"{k}: P={float(c.get('probability', float('nan'))):.2f}"})
    if show_known and known is not None:
        for x, y, r in known.xyr():
            shapes.append({"kind": "known", "x": float(x), "y": float(y), "r": max(min_radius, float(r) + 3.0),
                           "color": COLORS["known"], "label": ""})
    return shapes


def _astro_image(data: np.ndarray, logger):
    from ginga.AstroImage import AstroImage

    img = AstroImage(logger=logger)
    img.set_data(np.asarray(data, np.float32))
    return img


def _draw(viewer, data, shapes, cuts=None, labels: bool = True) -> None:
    from ginga.canvas.CanvasObject import get_canvas_types

    dc = get_canvas_types()
    arr = np.asarray(data, np.float32)
    lo, hi = cuts if cuts is not None else zscale(arr)
    if not np.isfinite(arr).all():  # ginga casts NaN to an undefined colour (with a warning): show masked pixels at the low cut
        arr = np.where(np.isfinite(arr), arr, np.float32(lo))
    viewer.set_image(_astro_image(arr, viewer.logger))
    viewer.cut_levels(float(lo), float(hi))
    canvas = viewer.get_canvas()
    for s in shapes:
        style = {"color": s["color"], "linewidth": int(s.get("linewidth", 2)),
                 "linestyle": "dash" if s.get("linestyle", "solid") != "solid" else "solid"}
        if s.get("shape", "circle") == "box":
            canvas.add(dc.Box(s["x"], s["y"], s["w"] / 2, s["h"] / 2, **style))
            continue
        canvas.add(dc.Circle(s["x"], s["y"], s["r"], **style))
        if labels and s.get("label"):
            canvas.add(dc.Text(s["x"] + s["r"] + 2, s["y"], text=s["label"], color=s["color"], fontsize=10))


def render_ginga(data: np.ndarray, shapes: list[dict], size: int = 512, cuts=None, labels: bool = False):
    """Render *data* with *shapes* off-screen with ginga's PIL renderer.

    Returns ``(rgb, to_window)``: an ``(size, size, 3)`` uint8 array and a function mapping a
    data (x, y) to the (column, row) of that array.
    """
    from ginga.misc.log import get_logger
    from ginga.pilw.ImageViewPil import CanvasView

    logger = get_logger("blobhelpers.blob.detect.review", null=True)
    v = CanvasView(logger=logger)
    v.configure_surface(size, size)
    v.enable_autocuts("off")
    _draw(v, data, shapes, cuts, labels)
    v.zoom_fit()
    rgb = np.asarray(v.get_image_as_array())[..., :3].copy()

    def to_window(x, y):
        wx, wy = v.get_canvas_xy(x, y)
        return int(round(wx)), int(round(wy))

    return rgb, to_window


def ginga_viewer(data: np.ndarray, shapes: list[dict], width: int = 700, height: int = 700, cuts=None):
    """An interactive ginga viewer widget for JupyterLab (display the returned widget).

    Mouse/keyboard bindings are ginga's defaults: scroll to zoom, drag with the middle button
    or the arrow keys to pan, right-drag to change the cut levels, 'z'/'Z' for zscale.
    Returns ``(viewer, widget)``.
    """
    try:
        import ipywidgets as widgets
        from ginga.misc.log import get_logger
        from ginga.web.jupyterw.ImageViewJpw import EnhancedCanvasView
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(f"the interactive ginga viewer needs ipywidgets and ipyevents ({exc}); "
                           "use review_figure() for a static view") from exc
    widget = widgets.Image(format="png", width=width, height=height)
    v = EnhancedCanvasView(logger=get_logger("blobhelpers.blob.detect.review", null=True))
    v.set_widget(widget)
    v.get_bindings().enable_all(True)
    v.enable_autocuts("off")
    _draw(v, data, shapes, cuts, labels=True)
    v.zoom_fit()
    return v, widget


def review_figure(frame: np.ndarray | None, diff: np.ndarray, shapes: list[dict], title: str = "",
                  zoom_on: dict | None = None, half: int = 64):
    """Static review figure: frame (if given), difference image and, optionally, a zoom."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle, Rectangle

    panels = [("frame", frame)] if frame is not None else []
    panels.append(("difference (median - current)", diff))
    if zoom_on is not None:
        panels.append(("zoom", diff))
    fig, axs = plt.subplots(1, len(panels), figsize=(5 * len(panels), 5))
    axs = np.atleast_1d(axs)
    for ax, (name, img) in zip(axs, panels):
        lo, hi = zscale(np.asarray(img, np.float32))
        ax.imshow(img, origin="lower", cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        for s in shapes:
            ls = "--" if s.get("linestyle", "solid") != "solid" else "-"
            if s.get("shape", "circle") == "box":
                ax.add_patch(Rectangle((s["x"] - s["w"] / 2, s["y"] - s["h"] / 2), s["w"], s["h"], fill=False,
                                       ec=s["color"], lw=0.8, ls=ls))
            else:
                ax.add_patch(Circle((s["x"], s["y"]), s["r"], fill=False, ec=s["color"], lw=1.2, ls=ls))
        if name == "zoom":
            ax.set_xlim(zoom_on["x"] - half, zoom_on["x"] + half)
            ax.set_ylim(zoom_on["y"] - half, zoom_on["y"] + half)
            for s in shapes:
                if (s.get("label") and s.get("shape", "circle") != "box" and abs(s["x"] - zoom_on["x"]) < half
                        and abs(s["y"] - zoom_on["y"]) < half):
                    ax.text(s["x"] + s["r"] + 1, s["y"], s["label"], color=s["color"], fontsize=8)
        ax.set_title(name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# -- reviewing a saved verdict (blobhelpers review) -----------------------------------------
@dataclass
class ReviewView:
    """A saved verdict ready to look at: the difference image and its overlay shapes."""
    data: np.ndarray
    shapes: list[dict]
    fits_path: Path
    regions_path: Path | None = None
    record: dict | None = None
    title: str = ""
    notes: list[str] = field(default_factory=list)


def _is_fits(path: Path) -> bool:
    with open(path, "rb") as fh:
        magic = fh.read(9)
    return magic == b"SIMPLE  =" or magic[:2] == b"\x1f\x8b"


def _check_log(path: Path) -> None:
    """:class:`InputError` naming *path* unless its first non-blank line is a monitor-log record (a JSON
    object with a ``frame``): a file that is not FITS is taken for a log, and anything else (notes, a
    PNG, a CSV) is neither -- said as such, not as a log with a bad line. Later lines are checked when
    the log is read (their line number is then the news)."""
    import json

    what = f"{path}: neither a FITS file nor a monitor log (JSON Lines, as `blobhelpers monitor` writes)"
    try:
        with open(path, encoding="utf-8") as fh:
            n, first = next(((n, ln) for n, ln in enumerate(fh, 1) if ln.strip()), (0, ""))
    except UnicodeDecodeError as exc:
        raise InputError(f"{what}: not text") from exc
    if not first:
        raise InputError(f"{what}: only blank lines")
    try:
        rec = json.loads(first)
    except json.JSONDecodeError as exc:
        raise InputError(f"{what}: line {n} is not valid JSON ({exc.msg})") from exc
    if not isinstance(rec, dict) or "frame" not in rec:
        raise InputError(f"{what}: line {n} is not a monitor record (no 'frame')")


def _pick_record(log_path: Path, frame: str | None) -> dict:
    _check_log(log_path)
    recs = MonitorLog(log_path).read()
    if not recs:
        raise InputError(f"{log_path}: the monitor log has no records")
    if any(not isinstance(r, dict) or "frame" not in r for r in recs):
        raise InputError(f"{log_path}: not a monitor log (a line without a 'frame')")
    if frame is not None:
        hits = [r for r in recs if frame in (r["frame"], Path(r.get("path", "")).name, r["frame"].split(".")[0])]
        if not hits:
            names = ", ".join(r["frame"] for r in recs[-5:])
            raise InputError(f"{log_path}: no record for frame {frame!r} (latest: {names})")
        return hits[-1]
    ordered = sorted(recs, key=lambda r: (r.get("date_obs", ""), r["frame"]))
    alerting = [r for r in ordered if r.get("new_blob")]
    return (alerting or ordered)[-1]


def _locate(recorded: str, log_path: Path) -> Path:
    """A product path from a log: as recorded (relative to where the monitor ran), else relative to
    the log's folder, else in its ``products/`` folder (the log moved with its output folder)."""
    p = Path(recorded)
    tries = [p] if p.is_absolute() else [p, log_path.parent / p]
    tries.append(log_path.parent / "products" / p.name)
    return next((q for q in tries if q.exists()), p)


def load_review(path: str | os.PathLike, frame: str | None = None) -> ReviewView:
    """What was saved for one verdict, from a monitor log or a saved difference image.

    Parameters
    ----------
    path : path-like
        A ``monitor_log.jsonl`` (the record of *frame*; default: the latest alerting record,
        else the latest one), or a difference image FITS saved with ``--save-products`` (its
        region file is found beside it: :func:`blobhelpers.blob.detect.products.regions_beside`; any
        1024x1024 or 1014x1014 difference image works, without overlays when it has none).
    frame : str, optional
        Frame name (or stem) in the log.

    Raises
    ------
    InputError
        Missing or unreadable file, no such frame, a record without saved products. The
        message names the file.
    """

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file does not exist")
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give a monitor log (monitor_log.jsonl) or a saved *_diff.fits")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty")
    record, notes = None, []
    if _is_fits(path):
        fits_path, reg = path, regions_beside(path)
        if frame is not None:
            notes.append(f"--frame {frame} ignored: {path.name} is one image")
    else:
        try:
            record = _pick_record(path, frame)
        except UnicodeDecodeError as exc:  # a later line that is not text
            raise InputError(f"{path}: neither a FITS file nor a monitor log (JSON Lines)") from exc
        prod = record.get("products") or {}
        if not prod.get("diff_fits"):
            raise InputError(f"{path}: frame {record['frame']} has no saved difference image (the monitor ran "
                             "with --no-save-products, or before products existed); rerun `blobhelpers monitor` "
                             "on it to save one")
        fits_path = _locate(prod["diff_fits"], path)
        if not fits_path.exists():
            raise InputError(f"{path}: frame {record['frame']}: its difference image {fits_path} does not exist")
        reg = _locate(prod["regions"], path) if prod.get("regions") else None
    img = read_frame(fits_path, allowed_shapes=None)
    if reg is not None and reg.exists():
        shapes = read_regions(reg)
    elif record is not None:
        shapes = record_shapes(record)
        notes.append(f"region file {reg} missing: overlays drawn from the log record")
        reg = None
    else:
        shapes, reg = [], None
        notes.append(f"no region file beside {fits_path.name}: no overlays")
    rec_name = record["frame"] if record else img.header.get("FRAME", fits_path.name)
    verdict = record.get("verdict") if record else img.header.get("VERDICT", "")
    n_alert = sum(s.get("kind") == "alert" for s in shapes)
    title = f"{rec_name}: {verdict or '?'} ({n_alert} alert(s))"
    return ReviewView(img.data, shapes, fits_path, reg, record, title, notes)


def review_png(view: ReviewView, dest: str | os.PathLike, size: int = 1024, labels: bool = True) -> Path:
    """Write *view* rendered off-screen with ginga (:func:`render_ginga`) as a PNG, atomically."""
    from PIL import Image

    rgb, _ = render_ginga(view.data, view.shapes, size=size, labels=labels)
    with atomic_path(dest, suffix=".png") as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG")
    return Path(dest)


def display_available() -> bool:
    """True when a ginga window can be opened: ``DISPLAY`` (or ``WAYLAND_DISPLAY``) is set and a
    Qt binding (PyQt5/6, PySide2/6) plus qtpy are installed."""
    import importlib.util

    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    if importlib.util.find_spec("qtpy") is None:
        return False
    return any(importlib.util.find_spec(m) is not None for m in ("PyQt5", "PyQt6", "PySide6", "PySide2"))


def show_in_ginga(view: ReviewView, width: int = 900, height: int = 900) -> None:  # pragma: no cover - needs a display
    """Open *view* in a ginga Qt window (blocks until it is closed).

    ginga's standard bindings: scroll to zoom, middle-drag or arrow keys to pan, right-drag for
    the cut levels, 'z' for zscale.
    """
    from ginga.misc.log import get_logger
    from ginga.qtw.ImageViewQt import CanvasView
    from ginga.qtw.QtHelp import QtGui

    app = QtGui.QApplication.instance() or QtGui.QApplication([])
    v = CanvasView(get_logger("blobhelpers.blob.detect.review", null=True), render="widget")
    v.enable_autocuts("off")
    v.get_bindings().enable_all(True)
    v.ui_set_active(True)
    _draw(v, view.data, view.shapes, labels=True)
    v.zoom_fit()
    w = v.get_widget()
    w.resize(width, height)
    w.setWindowTitle(f"{view.title} - {view.fits_path.name}")
    w.show()
    (app.exec() if hasattr(app, "exec") else app.exec_())
