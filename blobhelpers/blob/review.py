"""Review a monitor verdict: the frame, its difference image, known blobs and candidates marked.

- :func:`overlay_shapes` turns a monitor record (and a known-blob catalog) into circles in
  the frame's pixel coordinates (0-based, pixel centres at integers, as in the log);
- :func:`ginga_viewer` shows an image with those circles in an interactive ginga viewer in
  JupyterLab (pan, zoom, cuts, colour maps via ginga's standard bindings; needs ipywidgets and
  ipyevents);
- :func:`render_ginga` draws the same view off-screen with ginga's PIL renderer (headless: used
  by the tests and for the HTML report);
- :func:`review_figure` is the static matplotlib fallback for the HTML report.
"""

from __future__ import annotations

import numpy as np

__all__ = ["overlay_shapes", "ginga_viewer", "render_ginga", "review_figure", "COLORS"]

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

    from .scaling import zscale

    dc = get_canvas_types()
    viewer.set_image(_astro_image(data, viewer.logger))
    lo, hi = cuts if cuts is not None else zscale(np.asarray(data, np.float32))
    viewer.cut_levels(float(lo), float(hi))
    canvas = viewer.get_canvas()
    for s in shapes:
        canvas.add(dc.Circle(s["x"], s["y"], s["r"], color=s["color"], linewidth=2))
        if labels and s["label"]:
            canvas.add(dc.Text(s["x"] + s["r"] + 2, s["y"], text=s["label"], color=s["color"], fontsize=10))


def render_ginga(data: np.ndarray, shapes: list[dict], size: int = 512, cuts=None, labels: bool = False):
    """Render *data* with *shapes* off-screen with ginga's PIL renderer.

    Returns ``(rgb, to_window)``: an ``(size, size, 3)`` uint8 array and a function mapping a
    data (x, y) to the (column, row) of that array.
    """
    from ginga.misc.log import get_logger
    from ginga.pilw.ImageViewPil import CanvasView

    logger = get_logger("blobhelpers.blob.review", null=True)
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
    v = EnhancedCanvasView(logger=get_logger("blobhelpers.blob.review", null=True))
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
    from matplotlib.patches import Circle

    from .scaling import zscale

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
            ax.add_patch(Circle((s["x"], s["y"]), s["r"], fill=False, ec=s["color"], lw=1.2))
        if name == "zoom":
            ax.set_xlim(zoom_on["x"] - half, zoom_on["x"] + half)
            ax.set_ylim(zoom_on["y"] - half, zoom_on["y"] + half)
            for s in shapes:
                if s["label"] and abs(s["x"] - zoom_on["x"]) < half and abs(s["y"] - zoom_on["y"]) < half:
                    ax.text(s["x"] + s["r"] + 1, s["y"], s["label"], color=s["color"], fontsize=8)
        ax.set_title(name, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
