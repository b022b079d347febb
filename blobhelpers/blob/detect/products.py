"""Products a person can check by eye: the difference image judged (FITS) and its overlays (DS9 regions).

For one verdict (a monitor log record, or a ``classify`` result) :func:`save_products` writes,
side by side and atomically (both files or neither):

``<stem>_diff.fits``
    The difference image the verdict was computed from, float32, in its own units (the
    monitor's: ``SKYFRAC``, the fraction of the local sky; blobs positive), in the **same pixel
    coordinates as the record**: a monitor run on trimmed 1014x1014 frames saves the 1014x1014
    area (the NaN border the monitor pads around it is dropped), a full-frame run saves
    1024x1024. It is a plain 2-D primary-HDU image, so ``blobhelpers classify`` reads it back
    as stored (``plain`` reader, same units) and reproduces the verdict. The header says what
    was judged and how (:data:`HEADER_KEYWORDS`).
``<stem>_regions.reg``
    A DS9 region file (written with astropy's ``regions``): alerts (red, width 2), candidates
    that were verified but are not alerts (yellow, with the reason), candidates set aside before
    verification (yellow dashed, with the reason), known blobs (cyan) and the 16-tile grid of
    256x256 tiles (green dashed; a tile flagged as holding a blob: green solid, width 2).
    Each shape has a DS9 ``tag`` (``alert``, ``rejected``, ``known``, ``tile``) so a group can
    be selected or hidden in DS9.

Coordinates: the project's records use 0-based pixel positions (x = column, y = row, pixel
centres at integers); DS9 and FITS image coordinates are 1-based. ``regions`` keeps 0-based
``PixCoord`` in memory and adds 1 when it writes the ``image`` frame, so a record's
``(612.4, 401.1)`` is ``circle(613.4,402.1,...)`` in the file and opens on the right pixel
in DS9 (``ds9 X_diff.fits -regions X_regions.reg``). Circles have the blob's radius + 3 px (at
least 4 px) so that the line does not hide the blob's edge, as in
:func:`blobhelpers.blob.detect.review.overlay_shapes`; the blob's own radius is in the label.
"""

from __future__ import annotations

import datetime as _dt
import math
from pathlib import Path

import numpy as np

from blobhelpers import __version__
from blobhelpers.blob.io.fitsio import BORDER, FULL_SIZE, TRIMMED_SIZE
from blobhelpers.blob.preprocess.scaling import TILE
from blobhelpers.core.errors import InputError
from blobhelpers.core.paths import atomic_path, sha256_file

__all__ = ["FITS_SUFFIX", "REGIONS_SUFFIX", "STYLES", "HEADER_KEYWORDS", "product_paths", "product_stem",
           "record_shapes", "shapes_to_regions", "regions_text", "read_regions", "regions_beside",
           "record_image", "monitor_header", "classify_header", "save_products"]

FITS_SUFFIX = "_diff.fits"
REGIONS_SUFFIX = "_regions.reg"

#: DS9 styles of the region kinds (``dash``: dashed line). A tile flagged as holding a blob is
#: drawn solid with width 2; a candidate set aside before verification (``rejected`` with
#: ``screened``) dashed.
STYLES = {
    "alert": {"color": "red", "width": 2, "dash": False},
    "rejected": {"color": "yellow", "width": 1, "dash": False},
    "known": {"color": "cyan", "width": 1, "dash": False},
    "tile": {"color": "green", "width": 1, "dash": True},
}

#: Keywords of the saved difference image's primary header (what was judged and how).
HEADER_KEYWORDS = {
    "ORIGIN": "software that wrote the file",
    "BHVERS": "blobhelpers version",
    "BHTASK": "monitor or classify",
    "DATE": "UTC time the file was written",
    "DIFFTYPE": "MEDIAN-MINUS-CURRENT: blobs positive",
    "BUNIT": "unit of the data (monitor: SKYFRAC, fraction of the local sky)",
    "FRAME": "file name of the frame (or difference image) judged",
    "FRAMEPTH": "its path",
    "DATE-OBS": "observation time of the frame",
    "FILTER": "of the frame", "DETECTOR": "of the frame",
    "TRIMMED": "T: 1014x1014 area of trimmed input frames (coordinates = theirs)",
    "NHISTORY": "frames in the median stack", "HFIRST": "first history frame", "HLAST": "last history frame",
    "HFIRSTDT": "DATE-OBS of the first history frame", "HLASTDT": "DATE-OBS of the last history frame",
    "REGISTER": "sub-pixel registration + dip subtraction", "SHIFTX": "measured x shift (px)",
    "SHIFTY": "measured y shift (px)",
    "INLAYOUT": "reader path of the frame (plain, raw, ima, flt, sci)", "INUNIT": "unit of the frame as read",
    "INREADER": "how the frame's data were made from its file",
    "THRESH": "CNN P(blob) threshold", "SNR_MIN": "matched-filter threshold (sigma)",
    "NEG_VETO": "bright-transient veto (sigma)", "MINDEPTH": "depth floor of an alert",
    "MAXCAND": "candidates verified per frame", "DIPRATIO": "dipole test ratio", "DIPMIN": "dipole test floor",
    "KNOWNMRG": "known-blob margin (px)", "RADII": "matched-filter radii (px)", "THRSRC": "source of the thresholds",
    "MODEL": "model used", "MODELSHA": "SHA-256 of the model file", "PREPROC": "model input representation",
    "KNOWNCAT": "known-blob catalog", "NKNOWN": "known blobs in it",
    "VERDICT": "new_blob or nothing_new", "NALERTS": "alerts", "REGFILE": "DS9 region file beside this one",
    "DIFFKEY": "monitor: SHA-256 of what made the image (frames' pixels, config, code); a later day's run "
               "reuses the image only if it matches",
}


# -- names --------------------------------------------------------------------------------
def product_stem(name: str | Path) -> str:
    """The stem of a frame's products: its file name up to the first dot (``_diff`` dropped).

    >>> product_stem("ib0x01abq_raw.fits"), product_stem("/a/b/day_diff.fits")
    ('ib0x01abq_raw', 'day')
    """
    stem = Path(name).name.split(".")[0]
    return stem[: -len("_diff")] if stem.endswith("_diff") and len(stem) > len("_diff") else stem


def product_paths(folder: str | Path, stem: str) -> tuple[Path, Path]:
    """``(folder/<stem>_diff.fits, folder/<stem>_regions.reg)``."""
    folder = Path(folder)
    return folder / f"{stem}{FITS_SUFFIX}", folder / f"{stem}{REGIONS_SUFFIX}"


def regions_beside(fits_path: str | Path) -> Path | None:
    """The region file written beside a saved difference image (None when there is none).

    Looked for: the name in its ``REGFILE`` keyword, ``<stem>_regions.reg``, ``<name>.reg``.
    """
    p = Path(fits_path)
    cands = []
    try:
        import warnings

        from astropy.io import fits

        with warnings.catch_warnings():  # a damaged file is reported by the image reader, not here
            warnings.simplefilter("ignore")
            with fits.open(p, memmap=False) as hdul:
                reg = hdul[0].header.get("REGFILE")
        if reg:
            cands.append(p.parent / Path(str(reg)).name)
    except Exception:  # noqa: BLE001 - an unreadable header is reported by the image reader
        pass
    cands += [product_paths(p.parent, product_stem(p.name))[1], p.parent / (p.name.split(".")[0] + ".reg")]
    return next((c for c in cands if c.is_file()), None)


# -- overlays -----------------------------------------------------------------------------
def _fmt(v, spec=".2f") -> str:
    try:
        return format(float(v), spec)
    except (TypeError, ValueError):
        return "?"


def _why_not(c: dict, record: dict) -> str:
    """Why a verified candidate is not an alert (monitor record or classify result)."""
    thr = record.get("threshold")
    p = c.get("probability")
    if c.get("veto"):
        return str(c["veto"])
    if thr is not None and p is not None and float(p) < float(thr):
        return f"P={_fmt(p)} < {_fmt(thr)}"
    cfg = record.get("config") or {}
    if cfg.get("snr_min") is not None and float(c.get("snr", math.inf)) < float(cfg["snr_min"]):
        return f"S/N {_fmt(c.get('snr'), '.1f')} < {_fmt(cfg['snr_min'], '.1f')}"
    if cfg.get("min_depth") is not None and float(c.get("depth", math.inf)) < float(cfg["min_depth"]):
        return f"depth {_fmt(c.get('depth'), '.3f')} < {_fmt(cfg['min_depth'], '.3f')}"
    return "not an alert"


def record_shapes(record: dict, known=None, min_radius: float = 4.0, tiles: bool = True) -> list[dict]:
    """Overlay shapes of a verdict, in the record's 0-based pixel coordinates.

    *record*: a monitor log record (candidates with ``new``) or a ``classify`` result
    (candidates with ``blob``); *known*: a :class:`~blobhelpers.blob.detect.monitor.KnownCatalog`.
    Each shape: ``kind`` (alert, rejected, known, tile), ``shape`` (circle or box), ``x``, ``y``
    (centre), ``r`` (circle) or ``w``, ``h`` (box), ``color``, ``linewidth``, ``linestyle``
    (``solid`` or ``dash``), ``label`` and ``tag``.

    >>> rec = {"threshold": 0.5, "candidates": [
    ...     {"x": 10.0, "y": 20.0, "radius": 5.0, "new": True, "probability": 0.9, "snr": 9.0},
    ...     {"x": 50.0, "y": 60.0, "radius": 2.0, "new": False, "probability": 0.1, "snr": 6.0}],
    ...     "rejected": [{"x": 70.0, "y": 80.0, "snr": 7.0, "reason": "dipole"}]}
    >>> [(s["kind"], s["x"], s["r"], s["color"], s["label"]) for s in record_shapes(rec, tiles=False)]
    ... # doctest: +NORMALIZE_WHITESPACE
    [('alert', 10.0, 8.0, 'red', 'alert 0: P=0.90 S/N=9.0 r=5.0px'),
     ('rejected', 50.0, 5.0, 'yellow', 'cand 1: P=0.10 < 0.50'),
     ('rejected', 70.0, 5.0, 'yellow', 'rejected: dipole (S/N 7.0)')]
    """
    def style(kind, dash=None, width=None):
        st = STYLES[kind]
        d = st["dash"] if dash is None else dash
        return {"color": st["color"], "linewidth": st["width"] if width is None else width,
                "linestyle": "dash" if d else "solid"}

    def radius(c):
        return max(min_radius, float(c.get("radius", 2.0)) + 3.0)

    shapes = []
    for k, c in enumerate(record.get("candidates") or []):
        alert = bool(c.get("new", c.get("blob", False)))
        base = {"shape": "circle", "x": float(c["x"]), "y": float(c["y"]), "r": radius(c), "index": k}
        if alert:
            shapes.append({"kind": "alert", **base, **style("alert"), "tag": "alert",
                           "label": f"alert {k}: P={_fmt(c.get('probability'))} S/N={_fmt(c.get('snr'), '.1f')} "
                                    f"r={_fmt(c.get('radius'), '.1f')}px"})
        else:
            shapes.append({"kind": "rejected", **base, **style("rejected"), "tag": "rejected",
                           "label": f"cand {k}: {_why_not(c, record)}"})
    for c in record.get("rejected") or []:
        shapes.append({"kind": "rejected", "shape": "circle", "x": float(c["x"]), "y": float(c["y"]), "r": radius(c),
                       **style("rejected", dash=True), "tag": "rejected",
                       "label": f"rejected: {c.get('reason') or '?'} (S/N {_fmt(c.get('snr'), '.1f')})"})
    if known is not None:
        for row, (x, y, r) in zip(known.rows, known.xyr()):
            shapes.append({"kind": "known", "shape": "circle", "x": float(x), "y": float(y),
                           "r": max(min_radius, float(r) + 3.0), **style("known"), "tag": "known",
                           "label": f"known {row.get('id', '')}".strip()})
    if tiles:
        for t in record.get("tiles") or []:
            x0, y0, size = float(t["x0"]), float(t["y0"]), float(t.get("size", TILE))
            flagged = bool(t.get("blob"))
            # a tile covers pixels x0 .. x0 + size - 1: its edges are half a pixel outside those centres
            shapes.append({"kind": "tile", "shape": "box", "x": x0 + (size - 1) / 2, "y": y0 + (size - 1) / 2,
                           "w": size, "h": size, **style("tile", dash=not flagged, width=2 if flagged else 1),
                           "tag": "tile", "label": "", "row": t.get("row"), "col": t.get("col")})
    return shapes


def _text(s: str) -> str:
    """DS9 text goes in braces: keep it free of braces, newlines and ';' (a DS9 line separator)."""
    return str(s).replace("{", "(").replace("}", ")").replace("\n", " ").replace(";", ",")


def shapes_to_regions(shapes: list[dict]):
    """:class:`regions.Regions` of *shapes* (0-based ``PixCoord``; ``regions`` writes them 1-based)."""
    from regions import CirclePixelRegion, PixCoord, RectanglePixelRegion, RegionMeta, Regions, RegionVisual

    out = []
    for s in shapes:
        meta = {"tag": [s.get("tag") or s["kind"]]}
        if s.get("label"):
            meta["text"] = _text(s["label"])
        visual = {"color": s["color"], "linewidth": int(s.get("linewidth", 1))}
        if s.get("linestyle", "solid") != "solid":
            visual["linestyle"] = "dashed"
        centre = PixCoord(float(s["x"]), float(s["y"]))
        if s.get("shape", "circle") == "box":
            reg = RectanglePixelRegion(centre, float(s["w"]), float(s["h"]), meta=RegionMeta(meta),
                                       visual=RegionVisual(visual))
        else:
            reg = CirclePixelRegion(centre, float(s["r"]), meta=RegionMeta(meta), visual=RegionVisual(visual))
        out.append(reg)
    return Regions(out)


def regions_text(shapes: list[dict], comment: str = "") -> str:
    """The DS9 region file of *shapes* (``regions``' serializer; *comment* lines after its first line)."""
    text = shapes_to_regions(shapes).serialize(format="ds9", precision=3) if shapes else \
        "# Region file format: DS9 astropy/regions\nimage\n"
    if comment:
        first, _, rest = text.partition("\n")
        extra = "".join(f"# {line}\n" for line in comment.replace(";", ",").splitlines())  # ';' splits DS9 lines
        text = f"{first}\n{extra}{rest}"
    return text


def read_regions(path: str | Path) -> list[dict]:
    """Shapes (as :func:`record_shapes` makes them, 0-based) of a DS9 region file written here.

    Raises :class:`InputError` naming the file when it cannot be parsed.
    """
    from regions import CirclePixelRegion, RectanglePixelRegion, Regions

    path = Path(path)
    try:
        regs = Regions.read(str(path), format="ds9")
    except Exception as exc:  # noqa: BLE001 - regions raises several types on a bad file
        raise InputError(f"{path}: not a readable DS9 region file ({exc})") from exc
    shapes = []
    for r in regs:
        tag = (r.meta.get("tag") or [""])[0]
        color = r.visual.get("edgecolor", r.visual.get("color", "green"))
        common = {"kind": tag or "region", "tag": tag, "color": color, "label": r.meta.get("text", ""),
                  "linewidth": int(float(r.visual.get("linewidth", 1))),
                  "linestyle": "solid" if r.visual.get("linestyle", "solid") in ("solid", "-") else "dash"}
        if isinstance(r, CirclePixelRegion):
            shapes.append({"shape": "circle", "x": float(r.center.x), "y": float(r.center.y), "r": float(r.radius),
                           **common})
        elif isinstance(r, RectanglePixelRegion):
            shapes.append({"shape": "box", "x": float(r.center.x), "y": float(r.center.y), "w": float(r.width),
                           "h": float(r.height), **common})
    return shapes


# -- the image and its header ---------------------------------------------------------------
def record_image(full: np.ndarray, trimmed: bool) -> np.ndarray:
    """The monitor's 1024x1024 difference image in the record's coordinates.

    For trimmed 1014x1014 input frames the monitor pads them with a NaN border of
    :data:`~blobhelpers.blob.io.fitsio.BORDER` px and logs positions in the frames' own
    coordinates; the light-sensitive 1014x1014 area is returned (what ``classify`` pads back
    to the same 1024x1024 array).
    """
    full = np.asarray(full, np.float32)
    if trimmed and full.shape == (FULL_SIZE, FULL_SIZE):
        return full[BORDER:-BORDER, BORDER:-BORDER]
    return full


def _put(hdr, key: str, value, comment: str | None = None) -> None:
    """Set *key* unless *value* is empty; comments only where they fit on the card (no warnings)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return
    if isinstance(value, (list, tuple)):
        value = ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    comment = HEADER_KEYWORDS.get(key, "") if comment is None else comment
    width = 20  # the value field of a card: numbers right-justified in 20 columns, strings quoted, >= 20
    if isinstance(value, str):
        value = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in value)
        width = max(20, len(value) + 2 + value.count("'"))
    room = 80 - 10 - width - 3  # "KEYWORD = " value " / " comment
    if len(comment) > room:
        comment = comment[:room] if room >= 12 else ""
    hdr[key] = (value, comment) if comment else value


def _base_header(task: str):
    from astropy.io import fits

    hdr = fits.Header()
    _put(hdr, "ORIGIN", "blobhelpers")
    _put(hdr, "BHVERS", __version__)
    _put(hdr, "BHTASK", task)
    _put(hdr, "DATE", _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S"))
    _put(hdr, "DIFFTYPE", "MEDIAN-MINUS-CURRENT", "blobs positive")
    return hdr


def monitor_header(record: dict, history_dates: tuple = (), diff_key: str = ""):
    """The saved difference image's header for a monitor log *record* (:data:`HEADER_KEYWORDS`).

    *history_dates*: DATE-OBS of the first and last history frames
    (:attr:`~blobhelpers.blob.detect.monitor.FrameResult.history_dates`); *diff_key*: the
    difference image's ``DIFFKEY`` (:attr:`~blobhelpers.blob.detect.monitor.FrameResult.difference_key`).
    """
    hdr = _base_header("monitor")
    inp = record.get("input") or {}
    kw = inp.get("keywords") or {}
    hist = record.get("history") or {}
    cfg = record.get("config") or {}
    th = inp.get("thresholds") or {}
    _put(hdr, "BUNIT", "SKYFRAC", "fraction of the local sky level")
    _put(hdr, "FRAME", record.get("frame"))
    _put(hdr, "FRAMEPTH", record.get("path"))
    _put(hdr, "DATE-OBS", record.get("date_obs"))
    _put(hdr, "FILTER", kw.get("FILTER"))
    _put(hdr, "DETECTOR", kw.get("DETECTOR"))
    _put(hdr, "TRIMMED", bool(record.get("trimmed")))
    _put(hdr, "NHISTORY", hist.get("n"))
    _put(hdr, "HFIRST", hist.get("first"))
    _put(hdr, "HLAST", hist.get("last"))
    first_date, last_date = (tuple(history_dates) + (None, None))[:2]
    _put(hdr, "HFIRSTDT", first_date)
    _put(hdr, "HLASTDT", last_date)
    _put(hdr, "REGISTER", bool(cfg.get("register", True)))
    shift = record.get("shift") or [None, None]
    _put(hdr, "SHIFTX", shift[0])
    _put(hdr, "SHIFTY", shift[1])
    _put(hdr, "INLAYOUT", inp.get("layout"))
    _put(hdr, "INUNIT", inp.get("unit"))
    _put(hdr, "INREADER", inp.get("reader"))
    _put(hdr, "THRESH", record.get("threshold"))
    for key, name in (("SNR_MIN", "snr_min"), ("NEG_VETO", "neg_veto"), ("MINDEPTH", "min_depth"),
                      ("MAXCAND", "max_candidates"), ("DIPRATIO", "dipole_ratio"), ("DIPMIN", "dipole_min"),
                      ("KNOWNMRG", "known_margin"), ("RADII", "radii")):
        _put(hdr, key, cfg.get(name))
    _put(hdr, "THRSRC", th.get("description"))
    _put(hdr, "MODEL", record.get("model"))
    _put(hdr, "MODELSHA", record.get("model_sha256"))
    _put(hdr, "PREPROC", record.get("preprocessing"))
    kc = record.get("known_catalog") or {}
    _put(hdr, "KNOWNCAT", kc.get("path"))
    _put(hdr, "NKNOWN", kc.get("n"))
    _put(hdr, "VERDICT", record.get("verdict"))
    _put(hdr, "NALERTS", record.get("n_alerts"))
    _put(hdr, "DIFFKEY", diff_key or None)
    return hdr


def classify_header(result: dict, detection=None, model_path=None, unit: str = "", meta: dict | None = None):
    """The saved difference image's header for a ``classify`` *result* (:data:`HEADER_KEYWORDS`)."""
    hdr = _base_header("classify")
    meta = meta or {}
    _put(hdr, "BUNIT", unit or None, "unit of the data as read")
    _put(hdr, "FRAME", Path(result.get("file", "")).name)
    _put(hdr, "FRAMEPTH", result.get("file"))
    _put(hdr, "DATE-OBS", meta.get("DATE-OBS"))
    _put(hdr, "FILTER", meta.get("FILTER"))
    _put(hdr, "DETECTOR", meta.get("DETECTOR"))
    _put(hdr, "TRIMMED", bool(result.get("trimmed")))
    _put(hdr, "INLAYOUT", meta.get("layout"))
    _put(hdr, "INUNIT", unit or None)
    _put(hdr, "INREADER", meta.get("reader"))
    _put(hdr, "THRESH", result.get("threshold"))
    if detection is not None:
        for key, name in (("SNR_MIN", "snr_min"), ("NEG_VETO", "neg_veto"), ("MAXCAND", "max_candidates"),
                          ("DIPRATIO", "dipole_ratio"), ("DIPMIN", "dipole_min"), ("RADII", "radii")):
            _put(hdr, key, getattr(detection, name, None))
    if model_path is not None:
        _put(hdr, "MODEL", str(model_path))
        if Path(model_path).is_file():
            _put(hdr, "MODELSHA", sha256_file(Path(model_path)))
    _put(hdr, "PREPROC", result.get("representation"))
    _put(hdr, "VERDICT", "new_blob" if result.get("new_blob") else "nothing_new")
    _put(hdr, "NALERTS", sum(1 for c in result.get("candidates") or [] if c.get("blob")))
    return hdr


# -- writing ------------------------------------------------------------------------------
def save_products(folder: str | Path, stem: str, image: np.ndarray | None, record: dict, header, known=None,
                  fits_path: str | Path | None = None) -> dict:
    """Write ``<stem>_diff.fits`` (*image* with *header*) and ``<stem>_regions.reg`` into *folder*.

    Both files are written to temporary names and renamed only when both are complete, so an
    error leaves neither (and no temporary file). *image* must be in the record's coordinates
    (:func:`record_image`). With *fits_path* (an existing difference image the record is about,
    e.g. ``classify``'s input), no image is written and the regions refer to that file.

    Returns ``{"diff_fits": path, "regions": path}`` (strings, as they go into the log record).
    """
    from astropy.io import fits

    dest_fits, dest_reg = product_paths(folder, stem)
    if fits_path is not None:
        dest_fits = Path(fits_path)
    else:
        if image is None:
            raise ValueError("save_products: no image given")
        image = np.asarray(image, np.float32)
        if image.shape not in ((FULL_SIZE, FULL_SIZE), (TRIMMED_SIZE, TRIMMED_SIZE)):
            raise ValueError(f"save_products: image shape {image.shape} is not 1024x1024 or 1014x1014")
    shapes = record_shapes(record, known)
    frame = record.get("frame") or Path(record.get("file", "")).name
    n_alert = sum(s["kind"] == "alert" for s in shapes)
    comment = (f"blobhelpers: {frame}: {record.get('verdict') or ('new_blob' if record.get('new_blob') else 'nothing_new')}"
               f" ({n_alert} alert(s)); image of {dest_fits.name}\n"
               "coordinates: DS9 image pixels (1-based) = the log's 0-based x (column), y (row) + 1\n"
               "red: alerts, yellow: not alerts (with the reason, dashed: set aside before the CNN), "
               "cyan: known blobs, green: 256 px tiles (solid: flagged)")
    text = regions_text(shapes, comment)
    if fits_path is not None:
        with atomic_path(dest_reg) as tmp_reg:
            tmp_reg.write_text(text)
        return {"diff_fits": str(dest_fits), "regions": str(dest_reg)}
    hdr = header.copy() if header is not None else fits.Header()
    _put(hdr, "REGFILE", dest_reg.name)
    hdr.add_comment("Difference image a blobhelpers verdict was computed from (median - current, blobs positive).")
    hdr.add_comment("Pixel coordinates: the log's 0-based x = column, y = row; FITS/DS9 pixel = x + 1, y + 1.")
    with atomic_path(dest_fits, suffix=".fits") as tmp_fits, atomic_path(dest_reg) as tmp_reg:
        fits.PrimaryHDU(image, header=hdr).writeto(tmp_fits, overwrite=True)
        tmp_reg.write_text(text)
    return {"diff_fits": str(dest_fits), "regions": str(dest_reg)}
