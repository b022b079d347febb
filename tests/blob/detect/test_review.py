"""Review helpers: overlay geometry and a headless ginga rendering."""

import numpy as np

from blobhelpers.blob.detect.monitor import KnownCatalog
from blobhelpers.blob.detect.review import overlay_shapes, render_ginga, review_figure


def test_overlay_geometry_and_ginga_render(rng):
    rec = {"candidates": [{"x": 150.0, "y": 60.0, "radius": 6.0, "new": True, "probability": 0.97},
                          {"x": 40.0, "y": 200.0, "radius": 3.0, "new": False, "probability": 0.2}]}
    known = KnownCatalog([{"x": 200.0, "y": 180.0, "radius": 10.0}])
    shapes = overlay_shapes(rec, known)
    assert [(s["kind"], s["color"]) for s in shapes] == [("alert", "red"), ("candidate", "yellow"), ("known", "cyan")]
    assert shapes[0]["r"] == 9.0 and shapes[2]["r"] == 13.0 and shapes[2]["x"] == 200.0
    img = rng.normal(0, 1, (256, 256)).astype(np.float32)
    rgb, to_win = render_ginga(img, shapes, size=256, cuts=(-3, 3))
    assert rgb.shape == (256, 256, 3) and rgb.dtype == np.uint8
    # a pixel on the alert circle (right-most point) is red; its centre is grey (image)
    wx, wy = to_win(150.0 + 9.0, 60.0)
    patch = rgb[max(0, wy - 1):wy + 2, max(0, wx - 1):wx + 2].reshape(-1, 3).astype(int)
    assert any(p[0] > 200 and p[1] < 60 and p[2] < 60 for p in patch)
    cx, cy = to_win(150.0, 60.0)
    c = rgb[cy, cx].astype(int)
    assert abs(c[0] - c[1]) < 5 and abs(c[1] - c[2]) < 5  # grey image pixel, not overlay
    # the y axis is not flipped: the known blob (larger y) is drawn above the alert in the window
    assert to_win(200.0, 180.0)[1] < to_win(150.0, 60.0)[1]


def test_static_review_figure(rng):
    import matplotlib

    matplotlib.use("Agg")
    diff = rng.normal(0, 0.02, (128, 128)).astype(np.float32)
    shapes = overlay_shapes({"candidates": [{"x": 64.0, "y": 64.0, "radius": 5.0, "new": True, "probability": 0.9}]})
    fig = review_figure(diff + 1, diff, shapes, title="t", zoom_on={"x": 64.0, "y": 64.0}, half=20)
    assert len(fig.axes) == 3
    assert len(fig.axes[1].patches) == 1
    assert fig.axes[2].get_xlim() == (44.0, 84.0)


def test_boxes_and_dashed_lines_render(rng):
    """The 16-tile grid of the region files: boxes (ginga and matplotlib), dashed when not flagged."""
    import matplotlib

    matplotlib.use("Agg")
    img = rng.normal(0, 1, (256, 256)).astype(np.float32)
    shapes = [{"shape": "box", "x": 63.5, "y": 63.5, "w": 128, "h": 128, "color": "green", "label": "",
               "linewidth": 2, "linestyle": "solid"},
              {"x": 190.0, "y": 190.0, "r": 10.0, "color": "yellow", "label": "x", "linestyle": "dash"}]
    rgb, to_win = render_ginga(img, shapes, size=256, cuts=(-3, 3))
    # the right edge of the box (x = 127.5, between pixels 127 and 128) is green at mid-height
    wx, wy = to_win(127.5, 63.5)
    patch = rgb[wy - 1:wy + 2, wx - 1:wx + 2].reshape(-1, 3).astype(int)
    assert any(p[1] > 100 and p[0] < 60 and p[2] < 60 for p in patch)
    fig = review_figure(None, img, shapes)
    kinds = sorted(type(p).__name__ for p in fig.axes[0].patches)
    assert kinds == ["Circle", "Rectangle"]
    rect = next(p for p in fig.axes[0].patches if type(p).__name__ == "Rectangle")
    assert rect.get_xy() == (-0.5, -0.5) and rect.get_width() == 128


def test_masked_pixels_render_without_warnings(rng):
    """NaN (masked) pixels are shown at the low cut, not cast to an undefined colour by ginga."""
    import warnings

    img = rng.normal(0, 1, (128, 128)).astype(np.float32)
    img[:20] = np.nan
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rgb, to_win = render_ginga(img, [], size=128, cuts=(-3, 3))
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], [str(w.message) for w in caught]
    wx, wy = to_win(64.0, 5.0)
    assert (rgb[wy, wx] == 0).all()  # masked: black (the low cut of the grey map)


def test_review_of_a_file_that_is_neither_fits_nor_a_monitor_log(tmp_path, capsys):
    """``blobhelpers review notes.fits`` on notes: the file is named and said to be neither a FITS file nor a
    monitor log (not "line 1 is not valid JSON" alone), exit code 2, nothing written; a real log with a bad
    later line still gets its line number."""
    import json
    import subprocess
    import sys

    from blobhelpers.cli import main

    notes = tmp_path / "notes.fits"
    notes.write_text("observing notes, 3 March\nnothing odd\n")
    binary = tmp_path / "picture.fits"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    no_frame = tmp_path / "other.jsonl"
    no_frame.write_text('{"time": 1}\n')
    for path in (notes, binary, no_frame):
        capsys.readouterr()
        assert main(["review", str(path), "--out", str(tmp_path / "x.png")]) == 2, path
        err = capsys.readouterr().err
        assert err.startswith("blobhelpers review: error: ") and str(path) in err, err
        assert "neither a FITS file nor a monitor log" in err, err
    assert not (tmp_path / "x.png").exists()
    r = subprocess.run([sys.executable, "-m", "blobhelpers", "review", str(notes)], capture_output=True, text=True,
                       check=False)
    assert r.returncode == 2 and str(notes) in r.stderr and "neither a FITS file nor a monitor log" in r.stderr
    log = tmp_path / "monitor_log.jsonl"
    log.write_text(json.dumps({"frame": "a.fits"}) + "\n{broken\n")
    assert main(["review", str(log)]) == 2
    err = capsys.readouterr().err
    assert "line 2 is not valid JSON" in err and "neither" not in err
