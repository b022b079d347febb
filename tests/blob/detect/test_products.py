"""Alerts a person can check by eye: the difference image the verdict was computed from (FITS), its DS9
region file (1-based coordinates, styles per verdict), classify reproducing the verdict from the saved
FITS, ``blobhelpers review`` (PNG without a display, clear errors) and atomic writing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from regions import CirclePixelRegion, RectanglePixelRegion, Regions

from blob_frames import frames_with_new_blob
from blobhelpers.blob.sim.campaign import Campaign
from blobhelpers.blob.sections import CampaignConfig
from blobhelpers.blob.detect.classify import classify_file
from blobhelpers.blob.io.fitsio import frame_time, read_frame, write_image
from blobhelpers.blob.detect.monitor import EXIT_NEW_BLOB, EXIT_NOTHING_NEW, KnownCatalog, Monitor, MonitorConfig, MonitorLog
from blobhelpers.blob.detect.monitor import run_monitor
from blobhelpers.blob.detect.products import monitor_header, read_regions, record_image, record_shapes, save_products
from blobhelpers.blob.preprocess.scaling import tile_origins
from blobhelpers.cli import main

BLOB = (612.0, 401.0, 7.0, 0.12)  # x, y, radius, depth of the blob that appears in the last frame
CIRCLE = re.compile(r"^circle\(([-\d.]+),([-\d.]+),([-\d.]+)\)\s*#(.*)$")
BOX = re.compile(r"^box\(([-\d.]+),([-\d.]+),([-\d.]+),([-\d.]+),[-\d.]+\)\s*#(.*)$")


def _lines(path, pattern):
    """The shapes of a region file as DS9 reads them: numbers (1-based) + the rest of the line."""
    out = []
    for line in Path(path).read_text().splitlines():
        m = pattern.match(line)
        if m:
            out.append(([float(v) for v in m.groups()[:-1]], m.groups()[-1]))
    return out


def _record():
    grid = tile_origins(1024, 256)
    return {"frame": "day.fits", "verdict": "new_blob", "new_blob": True, "threshold": 0.5,
            "config": {"snr_min": 5.5, "min_depth": 0.0}, "trimmed": False,
            "candidates": [
                {"x": 612.4, "y": 401.1, "radius": 7.0, "new": True, "probability": 0.97, "snr": 12.3, "veto": ""},
                {"x": 100.0, "y": 200.0, "radius": 3.0, "new": False, "probability": 0.2, "snr": 7.0, "veto": ""},
                {"x": 300.0, "y": 310.0, "radius": 4.0, "new": False, "probability": 0.9, "snr": 8.0,
                 "veto": "bright transient nearby"}],
            "rejected": [{"x": 50.0, "y": 60.0, "snr": 9.0, "reason": "dipole"}],
            "tiles": [{"row": y0 // 256, "col": x0 // 256, "x0": x0, "y0": y0, "size": 256,
                       "blob": (y0, x0) == (256, 512)} for y0, x0 in grid]}


# -- region files and the saved image (no model) ---------------------------------------------
def test_region_file_is_one_based_and_styled_per_verdict(tmp_path):
    rec = _record()
    known = KnownCatalog([{"id": 4, "x": 700.0, "y": 800.0, "radius": 10.0}])
    img = np.zeros((1024, 1024), np.float32)
    out = save_products(tmp_path, "day", img, rec, monitor_header(rec), known)
    reg = Path(out["regions"])
    assert reg.name == "day_regions.reg" and Path(out["diff_fits"]).name == "day_diff.fits"
    circles = _lines(reg, CIRCLE)
    # DS9 image coordinates are 1-based: the log's 0-based (612.4, 401.1) is DS9 (613.4, 402.1);
    # the circle is the blob radius + 3 px
    alert = [c for c in circles if "tag={alert}" in c[1]]
    assert len(alert) == 1
    assert alert[0][0] == pytest.approx([613.4, 402.1, 10.0], abs=1e-6)
    assert "color=red" in alert[0][1] and "P=0.97" in alert[0][1]
    known_line = [c for c in circles if "tag={known}" in c[1]]
    assert known_line[0][0] == pytest.approx([701.0, 801.0, 13.0]) and "color=cyan" in known_line[0][1]
    # regions parses it back to its 0-based PixCoord: the same position as the log
    regs = Regions.read(str(reg), format="ds9")
    by_tag = {}
    for r in regs:
        by_tag.setdefault(r.meta["tag"][0], []).append(r)
    a = by_tag["alert"][0]
    assert isinstance(a, CirclePixelRegion)
    assert (a.center.x, a.center.y, a.radius) == pytest.approx((612.4, 401.1, 10.0))
    assert a.visual["edgecolor"] == "red"
    rej = {r.meta["text"]: r for r in by_tag["rejected"]}
    assert {r.visual["edgecolor"] for r in rej.values()} == {"yellow"}
    texts = " | ".join(rej)
    assert "P=0.20 < 0.50" in texts and "bright transient nearby" in texts and "dipole" in texts
    dip = next(r for t, r in rej.items() if "dipole" in t)
    assert dip.visual.get("linestyle") == "dashed"  # set aside before the CNN
    assert (dip.center.x, dip.center.y) == pytest.approx((50.0, 60.0))
    assert by_tag["known"][0].visual["edgecolor"] == "cyan" and by_tag["known"][0].meta["text"] == "known 4"
    # the 16 tiles: tile (0, 0) covers 0-based pixels 0..255 = DS9 pixels 1..256 (edges 0.5..256.5)
    tiles = _lines(reg, BOX)
    assert len(tiles) == 16 and len(by_tag["tile"]) == 16
    assert all(isinstance(r, RectanglePixelRegion) for r in by_tag["tile"])
    first = next(t for t in tiles if t[0][:2] == pytest.approx([128.5, 128.5]))
    assert first[0][2:] == [256.0, 256.0] and "dash=1" in first[1]
    flagged = [t for t in tiles if "width=2" in t[1]]
    assert len(flagged) == 1 and flagged[0][0][:2] == pytest.approx([512 + 128.5, 256 + 128.5])
    assert "dash=1" not in flagged[0][1]
    # read back as overlay shapes for review: 0-based again
    shapes = read_regions(reg)
    s = next(s for s in shapes if s["kind"] == "alert")
    assert (s["x"], s["y"], s["r"]) == pytest.approx((612.4, 401.1, 10.0)) and s["color"] == "red"


def test_ds9_pixel_of_a_region_is_the_fits_pixel_of_the_log_position(tmp_path):
    """DS9 pixel (i, j) is data[j - 1, i - 1]: a region written for the log's (x, y) sits on data[y, x]."""
    img = np.zeros((1024, 1024), np.float32)
    img[401, 612] = 5.0  # row 401, column 612
    rec = {"frame": "p.fits", "threshold": 0.5, "tiles": [],
           "candidates": [{"x": 612.0, "y": 401.0, "radius": 2.0, "new": True, "probability": 0.9, "snr": 9.0}]}
    out = save_products(tmp_path, "p", img, rec, None)
    (i, j, _), _ = _lines(out["regions"], CIRCLE)[0]
    data = fits.getdata(out["diff_fits"])
    assert data.dtype == np.dtype(">f4")
    assert data[int(j) - 1, int(i) - 1] == 5.0
    assert np.argwhere(data == 5.0).tolist() == [[int(j) - 1, int(i) - 1]]


def test_trimmed_frames_keep_their_coordinates():
    full = np.full((1024, 1024), np.nan, np.float32)
    full[5:-5, 5:-5] = np.arange(1014 * 1014, dtype=np.float32).reshape(1014, 1014)
    img = record_image(full, trimmed=True)
    assert img.shape == (1014, 1014) and img[0, 0] == 0.0 and np.isfinite(img).all()
    assert record_image(full, trimmed=False).shape == (1024, 1024)
    # a trimmed record's first tile starts at -5: DS9 box centre -5 + 127.5 + 1
    rec = {"tiles": [{"row": 0, "col": 0, "x0": -5, "y0": -5, "size": 256, "blob": False}], "candidates": []}
    (tile,) = record_shapes(rec)
    assert (tile["x"], tile["y"], tile["w"]) == (122.5, 122.5, 256)


def test_nothing_half_written_when_writing_fails(tmp_path, monkeypatch):
    rec = _record()
    img = np.ones((1024, 1024), np.float32)
    first = save_products(tmp_path, "day", img, rec, monitor_header(rec))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def broken_write_text(self, text, *a, **k):  # the region file fails half-way
        with open(self, "w") as fh:
            fh.write(text[:20])
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", broken_write_text)
    with pytest.raises(OSError, match="disk full"):
        save_products(tmp_path, "day", img * 2, rec, monitor_header(rec))
    monkeypatch.undo()
    # the FITS already written to its temporary name is not renamed either: the old pair stays whole
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert fits.getdata(first["diff_fits"])[500, 500] == 1.0

    def broken_fits(self, name, *a, **k):
        Path(name).write_bytes(b"SIMPLE  =    T")
        raise OSError("no space left")

    monkeypatch.setattr(fits.PrimaryHDU, "writeto", broken_fits)
    with pytest.raises(OSError, match="no space"):
        save_products(tmp_path / "new", "x", img, rec, monitor_header(rec))
    assert list((tmp_path / "new").iterdir()) == []


# -- the monitor end to end (tiny model) -----------------------------------------------------
@pytest.fixture(scope="module")
def frame_images():
    cfg = CampaignConfig(n_frames=8, n_existing=25, new_blob_rate=0.0, persistence_prob=0.0,
                         snowballs_per_frame=0.0, start_date="2024-05-01T01:00:00")
    camp = Campaign(cfg, seed=11)
    return camp, list(frames_with_new_blob(camp, cfg.n_frames, BLOB))


def _write_frames(folder: Path, images, trim: bool = False) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, img, hdr in images:
        p = folder / f"frame_{len(images) - i:02d}.fits"
        write_image(p, img[5:-5, 5:-5] if trim else img, hdr)
        paths.append(p)
    return paths


def _args(folder, model, known, out, *extra):
    return [str(folder), "--model", str(model), "--threshold", "0.5", "--history", "6", "--min-history", "4",
            "--known", str(known), "-o", str(out), "-q", "--no-tuned", *extra]


@pytest.fixture(scope="module")
def monitor_run(frame_images, trained_tiny, tmp_path_factory):
    """``blobhelpers monitor`` with its defaults (products on): the output folder and the log record."""
    camp, images = frame_images
    base = tmp_path_factory.mktemp("products_run")
    paths = _write_frames(base / "frames", images)
    known = base / "known.csv"
    KnownCatalog([{"id": b.id, "x": b.x, "y": b.y, "radius": b.shape.radius} for b in camp.blobs]).write(known)
    out = base / "out"
    code = main(["monitor", *_args(base / "frames", trained_tiny[2], known, out)])
    (rec,) = MonitorLog(out / "monitor_log.jsonl").read()
    return {"code": code, "out": out, "record": rec, "paths": paths, "known": known, "base": base}


def test_cli_monitor_writes_products_by_default(monitor_run):
    out, rec = monitor_run["out"], monitor_run["record"]
    assert monitor_run["code"] == EXIT_NEW_BLOB and rec["new_blob"]
    stem = monitor_run["paths"][-1].stem
    prod = rec["products"]
    assert Path(prod["diff_fits"]) == out / "products" / f"{stem}_diff.fits"
    assert Path(prod["regions"]) == out / "products" / f"{stem}_regions.reg"
    assert sorted(p.name for p in (out / "products").iterdir()) == [f"{stem}_diff.fits", f"{stem}_regions.reg"]
    with fits.open(prod["diff_fits"]) as h:
        hdr, data = h[0].header, h[0].data
        assert len(h) == 1 and data.dtype == np.dtype(">f4") and data.shape == (1024, 1024)
    hist = rec["history"]
    assert hdr["FRAME"] == rec["frame"] and hdr["FRAMEPTH"] == rec["path"] and hdr["DATE-OBS"] == rec["date_obs"]
    assert (hdr["NHISTORY"], hdr["HFIRST"], hdr["HLAST"]) == (6, hist["first"], hist["last"])
    assert "first_date_obs" not in hist  # the log record's schema is unchanged
    dates = {p.name: frame_time(fits.getheader(p)).isoformat(timespec="seconds") for p in monitor_run["paths"]}
    assert (hdr["HFIRSTDT"], hdr["HLASTDT"]) == (dates[hist["first"]], dates[hist["last"]])
    assert hdr["HFIRSTDT"] < hdr["HLASTDT"] < rec["date_obs"]
    assert (hdr["SHIFTX"], hdr["SHIFTY"]) == tuple(rec["shift"]) and hdr["REGISTER"] is True
    assert hdr["BUNIT"] == "SKYFRAC" and hdr["DIFFTYPE"] == "MEDIAN-MINUS-CURRENT"
    assert hdr["INLAYOUT"] == rec["input"]["layout"] == "plain" and hdr["INREADER"] == rec["input"]["reader"]
    assert hdr["INUNIT"] == rec["input"]["unit"]
    cfg = rec["config"]
    assert (hdr["THRESH"], hdr["SNR_MIN"], hdr["NEG_VETO"], hdr["MAXCAND"]) == \
        (0.5, cfg["snr_min"], cfg["neg_veto"], cfg["max_candidates"])
    assert hdr["MODEL"] == rec["model"] and hdr["MODELSHA"] == rec["model_sha256"] and len(hdr["MODELSHA"]) == 64
    assert hdr["VERDICT"] == "new_blob" and hdr["NALERTS"] == rec["n_alerts"] and hdr["TRIMMED"] is False
    assert hdr["REGFILE"] == f"{stem}_regions.reg" and hdr["KNOWNCAT"] == str(monitor_run["known"])
    # the region file circles the logged alert, DS9 1-based
    alerts = [c for c in rec["candidates"] if c["new"]]
    drawn = [v for v, rest in _lines(prod["regions"], CIRCLE) if "tag={alert}" in rest]
    assert sorted((round(x - 1, 3), round(y - 1, 3)) for x, y, _ in drawn) == \
        sorted((c["x"], c["y"]) for c in alerts)
    assert np.hypot(alerts[0]["x"] - BLOB[0], alerts[0]["y"] - BLOB[1]) < 2.0
    n_known = sum("tag={known}" in rest for _, rest in _lines(prod["regions"], CIRCLE))
    assert n_known == len(KnownCatalog.read(monitor_run["known"]))
    # the daily HTML links both, relative to its own folder
    html_path = out / "summary" / f"{stem}.html"
    html = html_path.read_text()
    links = re.findall(r"href='([^']+)'", html)
    assert f"../products/{stem}_diff.fits" in links and f"../products/{stem}_regions.reg" in links
    assert all((html_path.parent / link).resolve().is_file() for link in links)
    assert f"ds9 {stem}_diff.fits -regions {stem}_regions.reg" in html


def test_saved_difference_is_the_array_the_verdict_was_computed_from(monitor_run, trained_tiny):
    folder = monitor_run["paths"][0].parent
    mon = Monitor([folder], trained_tiny[2], MonitorConfig(history=6, min_history=4, threshold=0.5),
                  KnownCatalog.read(monitor_run["known"]))
    res = mon.process(len(mon.ordered) - 1, with_arrays=True)
    saved = read_frame(monitor_run["record"]["products"]["diff_fits"])
    assert saved.layout == "plain" and saved.unit == "SKYFRAC"  # classify's reader: as stored, same units
    assert np.array_equal(saved.data, res.diff, equal_nan=True)


def test_classify_on_the_saved_fits_reproduces_the_verdict(monitor_run, trained_tiny, tmp_path, capsys):
    rec = monitor_run["record"]
    saved = rec["products"]["diff_fits"]
    out = tmp_path / "c.json"
    assert main(["classify", saved, "--model", str(trained_tiny[2]), "--threshold", "0.5", "--no-tuned",
                 "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["new_blob"] == rec["new_blob"] and not list(tmp_path.glob("*.reg"))  # products are opt-in
    mon_alerts = sorted((c["x"], c["y"], c["probability"]) for c in rec["candidates"] if c["new"])
    cls_alerts = sorted((c["x"], c["y"], c["probability"]) for c in res["candidates"] if c["blob"])
    assert len(mon_alerts) == len(cls_alerts) >= 1
    for m, c in zip(mon_alerts, cls_alerts):
        assert c == pytest.approx(m, abs=0.02)
    flagged = lambda tiles: {(t["row"], t["col"]) for t in tiles if t["blob"]}  # noqa: E731
    assert flagged(res["tiles"]) == flagged(rec["tiles"]) == {(1, 2)}
    # classify --save-products: regions (and the image) beside its output
    work = tmp_path / "w"
    work.mkdir()
    j = work / "r.json"
    assert main(["classify", saved, "--model", str(trained_tiny[2]), "--threshold", "0.5", "--no-tuned",
                 "--json", str(j), "--save-products"]) == 0
    doc = json.loads(j.read_text())
    stem = Path(saved).name[: -len("_diff.fits")]
    assert doc["products"] == {"diff_fits": str(work / f"{stem}_diff.fits"), "regions": str(work / f"{stem}_regions.reg")}
    with fits.open(doc["products"]["diff_fits"]) as h:
        assert h[0].header["BHTASK"] == "classify" and h[0].header["BUNIT"] == "SKYFRAC"
        assert h[0].header["THRESH"] == 0.5 and len(h[0].header["MODELSHA"]) == 64
        assert np.array_equal(h[0].data, fits.getdata(saved), equal_nan=True)
    drawn = [v for v, rest in _lines(doc["products"]["regions"], CIRCLE) if "tag={alert}" in rest]
    assert [(round(x - 1, 3), round(y - 1, 3)) for x, y, _ in drawn] == [(a[0], a[1]) for a in cls_alerts]
    # into the folder of its own input: the input (same name) is not rewritten, the regions are
    before = Path(saved).read_bytes()
    copy = tmp_path / "own" / Path(saved).name
    copy.parent.mkdir()
    copy.write_bytes(before)
    capsys.readouterr()
    assert main(["classify", str(copy), "--model", str(trained_tiny[2]), "--threshold", "0.5", "--no-tuned",
                 "--products-dir", str(copy.parent)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["products"]["diff_fits"] == str(copy) and copy.read_bytes() == before
    assert Path(doc["products"]["regions"]).is_file()


def test_trimmed_frames_products_keep_the_log_coordinates(frame_images, trained_tiny, tmp_path):
    _, images = frame_images
    folder = tmp_path / "trimmed"
    _write_frames(folder, images, trim=True)
    cfg = MonitorConfig(history=6, min_history=4, threshold=0.5)
    (rec,) = run_monitor([folder], trained_tiny[2], tmp_path / "o", cfg, html=False, save_products=True)
    saved = Path(rec["products"]["diff_fits"])
    assert rec["trimmed"] and fits.getdata(saved).shape == (1014, 1014) and fits.getheader(saved)["TRIMMED"]
    alert = next(c for c in rec["candidates"] if c["new"])
    assert np.hypot(alert["x"] - (BLOB[0] - 5), alert["y"] - (BLOB[1] - 5)) < 2.0  # the frames' own coordinates
    res = classify_file(saved, trained_tiny[2], 0.5, detection=cfg.detection())
    assert res["trimmed"]
    best = next(c for c in res["candidates"] if c["blob"])
    assert (best["x"], best["y"]) == pytest.approx((alert["x"], alert["y"]), abs=0.02)
    (x, y, _), _ = next(v for v in _lines(rec["products"]["regions"], CIRCLE) if "tag={alert}" in v[1])
    assert (x - 1, y - 1) == pytest.approx((alert["x"], alert["y"]))
    # the run without products (as the pipeline calls it) writes none
    (plain,) = run_monitor([folder], trained_tiny[2], tmp_path / "o2", cfg, html=False)
    assert "products" not in plain and not (tmp_path / "o2" / "products").exists()


@pytest.fixture(scope="module")
def no_products_log(monitor_run, trained_tiny):
    out = monitor_run["base"] / "out_noprod"
    code = main(["monitor", *_args(monitor_run["paths"][0].parent, trained_tiny[2], monitor_run["known"], out),
                 "--no-save-products"])
    return code, out


def test_cli_monitor_no_save_products(no_products_log):
    code, out = no_products_log
    assert code == EXIT_NEW_BLOB
    (rec,) = MonitorLog(out / "monitor_log.jsonl").read()
    assert "products" not in rec and not (out / "products").exists()
    assert "products/" not in (out / "summary" / f"{Path(rec['frame']).stem}.html").read_text()


# -- blobhelpers review ----------------------------------------------------------------------
def _png(path):
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_review_without_display_writes_the_png(monitor_run, tmp_path, monkeypatch, capsys):
    from blobhelpers.blob.detect.review import load_review, render_ginga

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    log = monitor_run["out"] / "monitor_log.jsonl"
    rec = monitor_run["record"]
    png = tmp_path / "view.png"
    capsys.readouterr()
    assert main(["review", str(log), "--out", str(png)]) == 0
    assert capsys.readouterr().out.strip() == str(png)
    rgb = _png(png)
    assert rgb.shape == (1024, 1024, 3)
    view = load_review(log)
    assert view.record["frame"] == rec["frame"] and str(view.fits_path) == rec["products"]["diff_fits"]
    ref, to_win = render_ginga(view.data, view.shapes, size=1024, labels=True)
    assert np.array_equal(rgb, ref)
    # the alert circle (read back from the region file) is drawn around the logged position
    alert = next(c for c in rec["candidates"] if c["new"])
    shape = next(s for s in view.shapes if s["kind"] == "alert")
    assert (shape["x"], shape["y"]) == pytest.approx((alert["x"], alert["y"]))
    wx, wy = to_win(alert["x"] + shape["r"], alert["y"])
    patch = rgb[wy - 1:wy + 2, wx - 1:wx + 2].reshape(-1, 3).astype(int)
    assert any(p[0] > 200 and p[1] < 60 and p[2] < 60 for p in patch)
    # the cyan known blobs and the green tiles are drawn too
    assert ((rgb[..., 0] < 60) & (rgb[..., 1] > 200) & (rgb[..., 2] > 200)).sum() > 100
    # from the FITS: the region file is found beside it; default PNG beside the FITS
    fits_path = Path(rec["products"]["diff_fits"])
    assert main(["review", str(fits_path), "--frame", "ignored"]) == 0
    default = fits_path.parent / f"{fits_path.name[:-len('_diff.fits')]}_review.png"
    assert capsys.readouterr().out.strip() == str(default)
    assert np.array_equal(_png(default), rgb)
    default.unlink()
    # --frame picks the record by name or stem
    assert main(["review", str(log), "--frame", Path(rec["frame"]).stem, "--out", str(tmp_path / "b.png")]) == 0


def test_review_bad_inputs_name_the_file(monitor_run, no_products_log, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    log = monitor_run["out"] / "monitor_log.jsonl"
    garbage = tmp_path / "notes.txt"
    garbage.write_text("this is not a log\n")
    truncated = tmp_path / "cut_diff.fits"
    truncated.write_bytes(Path(monitor_run["record"]["products"]["diff_fits"]).read_bytes()[:4000])
    no_prod = no_products_log[1] / "monitor_log.jsonl"
    cases = [([str(tmp_path / "absent.jsonl")], "absent.jsonl", "does not exist"),
             ([str(garbage)], "notes.txt", "not valid JSON"),
             ([str(truncated)], "cut_diff.fits", ""),
             ([str(no_prod)], str(no_prod), "no saved difference image"),
             ([str(log), "--frame", "nope.fits"], str(log), "no record for frame 'nope.fits'"),
             ([str(tmp_path)], str(tmp_path), "folder")]
    for args, name, why in cases:
        png = tmp_path / "x.png"
        capsys.readouterr()
        assert main(["review", *args, "--out", str(png)]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("blobhelpers review: error: ") and name in err and why in err, err
        assert not png.exists()
    assert not list(tmp_path.glob(".*"))  # no temporary files left
