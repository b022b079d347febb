"""Daily new-blob monitor: newest CSM-monitor frame vs its history -> verdict, where, how strong, why.

For a target frame (the newest, or every frame with enough history) the monitor

1. orders the frames by DATE-OBS (not by name); unreadable frames are skipped with a warning
   naming them; the previous ``history`` usable frames form the median stack;
2. builds the registered blob difference image (:mod:`blobhelpers.difference`; blobs positive);
3. **detects** positive, blob-sized residuals with a multi-scale matched filter (Gaussian
   kernels of several radii; significance against a local, robust noise map) -- a cheap,
   complete list of places where *something* got darker;
4. drops candidates that coincide with blobs of the **known-blob catalog** (existing blobs and
   their mis-registration dips are not news);
5. **verifies** each remaining candidate with the CNN on a 256x256 subframe centred on it (the
   same preprocessing as training: clip at 0.5 x zscale, z-score; known blobs masked to the
   median so they cannot vouch for a candidate) and estimates its radius and central depth
   from the difference image;
6. explains every alert with a saliency map of the CNN's blob log-odds on that subframe.

A frame is a *new blob* day when at least one non-catalogued candidate has CNN probability
>= ``threshold`` and matched-filter significance >= ``snr_min``. The 16 grid tiles of the
image are classified too and logged (the ISR's per-subframe view).

Coordinates are 0-based pixel positions (x = column, y = row) in the input frames' arrays
(trimmed 1014x1014 frames keep their own coordinates), the same as the catalog's.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from .errors import InputError
from .io import BORDER, expand_frame_paths, frame_time, read_frame, read_header
from .preprocess import TILE, scale_image, tile_origins

__all__ = [
    "MonitorConfig",
    "Monitor",
    "detect_candidates",
    "measure_blob",
    "centred_origin",
    "KnownCatalog",
    "MonitorLog",
    "EXIT_NOTHING_NEW",
    "EXIT_NEW_BLOB",
    "run_monitor",
    "TUNED",
    "write_tuned",
    "read_tuned",
    "apply_tuned",
]

log = logging.getLogger("blobhelpers.monitor")

#: Exit codes of ``blobhelpers monitor`` (2 = bad input, 1 = internal error, as every command).
EXIT_NOTHING_NEW = 0
EXIT_NEW_BLOB = 3

CATALOG_COLUMNS = ["id", "x", "y", "radius", "depth", "first_seen", "source", "note"]

#: Alert thresholds chosen on a development campaign (stage 04 writes them with
#: :func:`write_tuned`); ``null`` in params.yaml means "use the tuned value".
TUNED = ("snr_min", "threshold", "neg_veto")


@dataclass
class MonitorConfig:
    """Parameters of the monitor (the ``monitor`` section of params.yaml, minus ``campaign``)."""

    history: int = 30            # frames in the median stack
    min_history: int = 10        # fewer usable frames than this: no verdict (clear error)
    register: bool = True        # sub-pixel registration + dip subtraction
    clip_factor: float = 0.5     # the model's training preprocessing
    border_rule: str = "symmetric"
    threshold: float = 0.5       # CNN P(blob) of a candidate's centred subframe
    snr_min: float = 5.5         # matched-filter significance of a candidate
    radii: tuple = (2.0, 3.5, 5.5, 8.0, 12.0)  # matched-filter blob radii (px)
    max_candidates: int = 20     # non-catalogued candidates verified per frame (strongest first)
    known_margin: float = 4.0    # a candidate within radius + margin of a known blob is known
    neg_veto: float = 8.0        # no alert next to a residual more negative than -neg_veto sigma
    min_depth: float = 0.0       # optional floor on the estimated central depth
    saliency: bool = True        # saliency PNG per alert

    @classmethod
    def from_dict(cls, params: dict | None) -> "MonitorConfig":
        from .config import dataclass_from_params

        params = {k: v for k, v in (params or {}).items() if not (k in TUNED and v is None)}
        cfg = dataclass_from_params(cls, params, "monitor", ignore=("campaign", "seed", "regression", "tune"))
        cfg.radii = tuple(float(r) for r in cfg.radii)
        return cfg


# ---------------------------------------------------------------------------------------------
# detection and measurement
def _block_stat(img: np.ndarray, block: int = 32) -> np.ndarray:
    """Block medians of *img* (NaN ignored) upsampled bilinearly to full size."""
    from .difference import illumination

    return illumination(img, block)


def detect_candidates(diff: np.ndarray, radii=(2.0, 3.5, 5.5, 8.0, 12.0), snr_min: float = 5.5,
                      max_peaks: int = 400) -> list[dict]:
    """Positive, blob-sized residuals of a difference image (blobs positive), strongest first.

    Each scale ``r`` smooths the image with a Gaussian of sigma ``0.6 r`` (close to the
    matched filter of a flat disc of radius ``r`` in white noise). The significance is the
    smoothed value (after winsorising single pixels at +-4 sigma) over a local noise level: the block-wise robust pixel scatter (MAD over
    32x32 blocks, so the low-QE region and vignetting are noisier) times a per-scale factor
    measured robustly over the whole frame (it absorbs pixel correlations and heavy tails).
    Peaks of the best significance over scales above *snr_min* are returned as dicts with
    ``x``, ``y`` (input-array pixels), ``snr``, ``scale`` (the best radius) and ``neg_snr``,
    the most negative significance within ``max(12, 3 scale)`` px (a bright transient nearby:
    persistence or a snowball in the current frame biases its normalisation block and leaves
    a positive halo that is not a blob).

    >>> import numpy as np
    >>> from blobhelpers.blobs import BlobShape, render
    >>> rng = np.random.default_rng(1)
    >>> d = rng.normal(0, 0.02, (512, 512)).astype("f4")
    >>> render(d, 300.0, 200.0, BlobShape(6.0), 0.03)   # a 3 % blob, radius 6 px
    >>> c = detect_candidates(d)
    >>> len(c), round(c[0]["x"]), round(c[0]["y"])
    (1, 300, 200)
    """
    d = np.asarray(diff, np.float32)
    finite = np.isfinite(d)
    d0 = np.where(finite, d, 0.0).astype(np.float32)
    # robust local pixel scatter (blocks of 32 px, NaN ignored)
    med = _block_stat(np.where(finite, d, np.nan))
    sig_pix = _block_stat(np.where(finite, np.abs(d - med), np.nan)) / 0.6745
    sig_pix = np.where(np.isfinite(sig_pix) & (sig_pix > 0), sig_pix, np.nanmedian(sig_pix[sig_pix > 0]))
    # Winsorise at +-4 sigma: single hot/RTS/cosmic-ray pixels must not look like blobs, while
    # a blob (many pixels a few sigma high) keeps almost all of its matched-filter signal.
    base = np.clip(d0 - np.where(finite, med, 0.0), -4.0 * sig_pix, 4.0 * sig_pix)
    best = np.full(d.shape, -np.inf, np.float32)
    worst = np.full(d.shape, np.inf, np.float32)
    scale = np.zeros(d.shape, np.float32)
    sub = (slice(8, None, 4), slice(8, None, 4))
    for r in radii:
        f = ndimage.gaussian_filter(base, 0.6 * r, truncate=3.0, mode="constant")
        z = f / sig_pix
        zz = z[sub]
        ok = finite[sub]
        mad = np.median(np.abs(zz[ok] - np.median(zz[ok]))) / 0.6745
        snr = z / max(float(mad), 1e-12)
        upd = snr > best
        best[upd] = snr[upd]
        scale[upd] = r
        np.minimum(worst, snr, out=worst)
    peaks = (best == ndimage.maximum_filter(best, size=5)) & (best >= snr_min) & finite
    ys, xs = np.nonzero(peaks)
    order = np.argsort(-best[ys, xs])[: max_peaks * 4]
    out: list[dict] = []
    for k in order:
        y, x = int(ys[k]), int(xs[k])
        r = float(scale[y, x])
        if any(np.hypot(c["x"] - x, c["y"] - y) < max(5.0, 0.8 * max(r, c["scale"])) for c in out):
            continue  # same blob seen at another scale or a secondary maximum
        h = int(max(12, 3 * r))
        neg = float(worst[max(0, y - h):y + h + 1, max(0, x - h):x + h + 1].min())
        out.append({"x": float(x), "y": float(y), "snr": float(best[y, x]), "scale": r, "neg_snr": neg})
        if len(out) >= max_peaks:
            break
    return out


def measure_blob(diff: np.ndarray, x: float, y: float, scale: float) -> dict:
    """Refine the position and estimate the radius and central depth of a candidate.

    Position: centroid of the lightly smoothed difference above a quarter of its peak, within
    ``2 scale + 2`` px (iterated).
    Depth: mean of the difference within ``max(1.5, 0.4 scale)`` px of that centre (the
    central obscuration, as a fraction of the sky). Radius: where the azimuthal mean profile
    falls below half of its maximum (a ring's radius is that of its peak).

    >>> import numpy as np
    >>> from blobhelpers.blobs import BlobShape, render
    >>> d = np.zeros((128, 128), np.float32)
    >>> render(d, 60.3, 70.6, BlobShape(7.0), 0.05)
    >>> m = measure_blob(d, 61, 70, 5.5)
    >>> round(m["x"]), round(m["y"]), round(m["radius"]), round(m["depth"], 2)
    (60, 71, 7, 0.05)
    """
    d = np.where(np.isfinite(diff), diff, 0.0).astype(np.float32)
    ny, nx = d.shape
    R = int(np.ceil(3 * scale + 6))
    x0, x1 = max(0, int(x) - R), min(nx, int(x) + R + 1)
    y0, y1 = max(0, int(y) - R), min(ny, int(y) + R + 1)
    cut = ndimage.gaussian_filter(d[y0:y1, x0:x1], 1.0)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    cx, cy = float(x), float(y)
    for _ in range(3):  # centroid of the part above a quarter of the peak, re-centred
        win = np.hypot(xx - cx, yy - cy) <= 2 * scale + 2
        peak = float(cut[win & (np.hypot(xx - cx, yy - cy) <= max(2.0, scale))].max())
        w = np.clip(cut - 0.25 * peak, 0.0, None) * win
        if not (peak > 0 and w.sum() > 0):
            break
        cx, cy = float((w * xx).sum() / w.sum()), float((w * yy).sum() / w.sum())
    rr = np.hypot(xx - cx, yy - cy)
    raw = d[y0:y1, x0:x1]
    core = rr <= max(1.5, 0.4 * scale)
    depth = float(raw[core].mean()) if core.any() else float("nan")
    nb = int(R)
    idx = np.minimum(rr.astype(int), nb)
    sums = np.bincount(idx.ravel(), cut.ravel(), nb + 1)
    cnts = np.bincount(idx.ravel(), None, nb + 1)
    prof = sums / np.maximum(cnts, 1)
    pmax = float(prof[: max(2, int(2 * scale) + 1)].max())
    radius = float(scale)
    if pmax > 0:
        ipk = int(np.argmax(prof[: max(2, int(2 * scale) + 1)]))
        below = np.nonzero(prof[ipk:] < 0.5 * pmax)[0]
        if below.size:
            j = ipk + int(below[0])
            # linear interpolation between j-1 and j (profile bin k ~ radius k + 0.5)
            a, b = prof[j - 1], prof[j]
            frac = (a - 0.5 * pmax) / (a - b) if a != b else 0.0
            radius = float(j - 1 + 0.5 + frac)
    return {"x": cx, "y": cy, "radius": radius, "depth": depth}


def centred_origin(x: float, y: float, size: int = 1024, tile: int = TILE) -> tuple[int, int]:
    """(y0, x0) of the *tile*-sized subframe centred on (x, y), kept inside the image.

    >>> centred_origin(10, 1000)
    (768, 0)
    >>> centred_origin(500.4, 300.6)
    (173, 372)
    """
    x0 = int(np.clip(round(x) - tile // 2, 0, size - tile))
    y0 = int(np.clip(round(y) - tile // 2, 0, size - tile))
    return y0, x0


# ---------------------------------------------------------------------------------------------
# known-blob catalog
class KnownCatalog:
    """Blobs already known (x, y, radius in the frames' pixel coordinates), read from / written to CSV.

    Columns: ``id, x, y, radius, depth, first_seen, source, note`` (only x, y, radius are
    required when reading; a simulated campaign's ``catalog.csv`` can be used directly).
    """

    def __init__(self, rows: list[dict] | None = None, path: str | Path | None = None):
        self.rows = list(rows or [])
        self.path = Path(path) if path else None

    @classmethod
    def read(cls, path: str | Path, must_exist: bool = True) -> "KnownCatalog":
        import pandas as pd

        path = Path(path)
        if not path.exists():
            if must_exist:
                raise InputError(f"{path}: known-blob catalog not found")
            return cls([], path)
        try:
            df = pd.read_csv(path)
        except Exception as exc:  # noqa: BLE001
            raise InputError(f"{path}: cannot read the known-blob catalog ({exc})") from exc
        missing = {"x", "y", "radius"} - set(df.columns)
        if missing:
            raise InputError(f"{path}: catalog lacks column(s) {sorted(missing)}")
        for c in ("x", "y", "radius"):
            vals = pd.to_numeric(df[c], errors="coerce")
            if vals.isna().any():
                bad = int(np.nonzero(vals.isna().to_numpy())[0][0]) + 2
                raise InputError(f"{path}: line {bad}: column {c!r} is not a number")
            df[c] = vals
        rows = df.to_dict("records")
        for i, r in enumerate(rows):
            r.setdefault("id", i)
        return cls(rows, path)

    def __len__(self) -> int:
        return len(self.rows)

    def xyr(self) -> np.ndarray:
        if not self.rows:
            return np.zeros((0, 3))
        return np.array([[float(r["x"]), float(r["y"]), float(r["radius"])] for r in self.rows])

    def match(self, x: float, y: float, margin: float) -> dict | None:
        """The known blob whose disc (radius + *margin*) contains (x, y), nearest first."""
        if not self.rows:
            return None
        k = self.xyr()
        dist = np.hypot(k[:, 0] - x, k[:, 1] - y)
        inside = dist <= k[:, 2] + margin
        if not inside.any():
            return None
        j = int(np.argmin(np.where(inside, dist, np.inf)))
        return self.rows[j]

    def add(self, x: float, y: float, radius: float, depth: float | None = None, first_seen: str = "",
            source: str = "", note: str = "", merge_px: float = 3.0) -> dict:
        """Add a confirmed blob (an entry within *merge_px* of an existing one is not duplicated)."""
        for r in self.rows:
            if np.hypot(float(r["x"]) - x, float(r["y"]) - y) <= merge_px:
                return r
        ids = [int(r["id"]) for r in self.rows if str(r.get("id", "")).lstrip("-").isdigit()]
        row = {"id": (max(ids) + 1) if ids else 0, "x": round(float(x), 2), "y": round(float(y), 2),
               "radius": round(float(radius), 2), "depth": "" if depth is None else round(float(depth), 5),
               "first_seen": first_seen, "source": source, "note": note}
        self.rows.append(row)
        return row

    def write(self, path: str | Path | None = None) -> Path:
        import csv

        from .paths import atomic_path

        path = Path(path or self.path)
        cols = list(CATALOG_COLUMNS)
        for r in self.rows:
            cols += [k for k in r if k not in cols]
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            with open(tmp, "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=cols)
                w.writeheader()
                for r in self.rows:
                    w.writerow({k: r.get(k, "") for k in cols})
        return path


# ---------------------------------------------------------------------------------------------
# log
class MonitorLog:
    """``monitor_log.jsonl``: one JSON line per processed frame, keyed by the frame's file name.

    Processing a frame again replaces its line (idempotent); lines stay ordered by date. The
    file is rewritten atomically, so an interrupted run never leaves half a line.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        out = []
        for n, line in enumerate(self.path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InputError(f"{self.path}: line {n} is not valid JSON ({exc.msg})") from exc
        return out

    def update(self, records: list[dict]) -> list[dict]:
        from .paths import write_text

        entries = {r["frame"]: r for r in self.read()}
        for r in records:
            entries[r["frame"]] = r
        rows = sorted(entries.values(), key=lambda r: (r.get("date_obs", ""), r["frame"]))
        write_text(self.path, "".join(json.dumps(r, sort_keys=False) + "\n" for r in rows))
        return rows


# ---------------------------------------------------------------------------------------------
def _versions() -> dict:
    import importlib.metadata as md

    from . import __version__

    out = {"blobhelpers": __version__}
    for pkg in ("numpy", "scipy", "astropy", "tensorflow-cpu", "tensorflow", "keras"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class FrameResult:
    """One processed frame: the JSON record plus arrays for figures (not logged)."""

    record: dict
    diff: np.ndarray | None = None
    scaled: np.ndarray | None = None
    explain: dict = field(default_factory=dict)  # candidate index -> (subframe, saliency, (y0, x0))


class Monitor:
    """Run the monitor over an ordered set of frames (see the module docstring).

    Parameters
    ----------
    frames : iterable of path-like
        FITS files, folders or globs; ordered by DATE-OBS (unreadable headers: skipped, warned).
    model : keras.Model or path-like
    config : MonitorConfig
    known : KnownCatalog, optional
    model_name : str, optional
        Recorded in the log (default: the model path).
    """

    def __init__(self, frames, model, config: MonitorConfig | None = None, known: KnownCatalog | None = None,
                 model_name: str | None = None):
        from .models import load_model

        self.config = config or MonitorConfig()
        self.known = known if known is not None else KnownCatalog()
        paths = expand_frame_paths(frames)
        if not paths:
            raise InputError(f"no FITS frames found in {[str(f) for f in frames]}")
        self.skipped: list[dict] = []
        ordered = []
        for p in paths:
            try:
                ordered.append((p, frame_time(read_header(p), p)))
            except InputError as exc:
                self._skip(p, str(exc))
        if not ordered:
            raise InputError("none of the frames given could be read: " + "; ".join(s["reason"] for s in self.skipped))
        ordered.sort(key=lambda t: (t[1], str(t[0])))
        self.ordered = ordered
        if isinstance(model, (str, Path)):
            self.model_path = Path(model)
            self.model_sha256 = _sha256(self.model_path) if self.model_path.is_file() else ""
            self.model = load_model(model)
        else:
            self.model_path, self.model_sha256, self.model = None, "", model
        self.model_name = model_name or (str(self.model_path) if self.model_path else getattr(model, "name", "model"))
        self._cache: dict[int, np.ndarray | None] = {}
        self._trimmed: dict[int, bool] = {}
        self._versions = _versions()

    # -- frames ---------------------------------------------------------------------------
    def _skip(self, path, reason: str) -> None:
        if not any(s["file"] == str(path) for s in self.skipped):
            log.warning("skipping %s: %s", path, reason)
            self.skipped.append({"file": str(path), "reason": reason})

    def _load(self, indices) -> None:
        """Read and normalise the frames *indices* not yet cached (bad ones cached as None)."""
        from .difference import normalize_many

        todo = [j for j in indices if j not in self._cache]
        raw, ok = [], []
        for j in todo:
            path = self.ordered[j][0]
            try:
                fr = read_frame(path)
            except InputError as exc:
                self._skip(path, str(exc).replace(f"{path}: ", ""))
                self._cache[j] = None
                continue
            good = np.isfinite(fr.data).mean()
            if good < 0.5:
                self._skip(path, f"only {good:.0%} of the pixels are finite")
                self._cache[j] = None
                continue
            raw.append(fr.data)
            ok.append(j)
            self._trimmed[j] = fr.trimmed
        for j, img in zip(ok, normalize_many(raw) if raw else []):
            self._cache[j] = img

    def _evict(self, keep_from: int) -> None:
        for j in [j for j in self._cache if j < keep_from]:
            del self._cache[j]

    def history_of(self, i: int) -> list[int]:
        """Indices of the usable frames forming the history of frame *i* (oldest first)."""
        need = self.config.history
        hist: list[int] = []
        j = i - 1
        while j >= 0 and len(hist) < need:
            lo = max(0, j - (need - len(hist)) + 1)
            self._load(range(lo, j + 1))
            hist += [k for k in range(j, lo - 1, -1) if self._cache.get(k) is not None][: need - len(hist)]
            j = lo - 1
        return sorted(hist)

    def index_of(self, path) -> int:
        p = Path(path).resolve()
        for i, (q, _) in enumerate(self.ordered):
            if q.resolve() == p:
                return i
        raise InputError(f"{path}: not among the frames given (or unreadable)")

    # -- one frame ------------------------------------------------------------------------
    def process(self, i: int, with_arrays: bool = False) -> FrameResult:
        """Difference, detect, verify and explain frame *i* (an index into ``self.ordered``).

        Raises :class:`InputError` when the frame itself is unreadable or has fewer than
        ``min_history`` usable frames before it.
        """
        from .difference import difference_of_normalized
        from .evaluation import predict_logits, saliency
        from .models import probabilities

        cfg = self.config
        path, when = self.ordered[i]
        self._load([i])
        cur = self._cache.get(i)
        if cur is None:
            reason = next((s["reason"] for s in self.skipped if s["file"] == str(path)), "unreadable")
            raise InputError(f"{path}: cannot process the frame ({reason})")
        hist = self.history_of(i)
        if len(hist) < cfg.min_history:
            raise InputError(f"{path}: only {len(hist)} usable frame(s) before it (dated {when:%Y-%m-%d}); "
                             f"the monitor needs at least {cfg.min_history} (history {cfg.history})")
        self._evict(hist[0])
        diff = difference_of_normalized([self._cache[j] for j in hist], cur, cfg.register)
        d = diff.data
        off = BORDER if self._trimmed.get(i) else 0
        scaled, _ = scale_image(d, clip_factor=cfg.clip_factor, border_rule=cfg.border_rule)

        # detection -> known-catalog filter -> measurement
        cands = []
        n_known = 0
        for c in detect_candidates(d, cfg.radii, cfg.snr_min):
            m = measure_blob(d, c["x"], c["y"], c["scale"])
            x_in, y_in = m["x"] - off, m["y"] - off
            k = self.known.match(x_in, y_in, cfg.known_margin)
            if k is not None:
                n_known += 1
                continue
            cands.append({"x": round(x_in, 2), "y": round(y_in, 2), "radius": round(m["radius"], 2),
                          "depth": round(m["depth"], 5), "snr": round(c["snr"], 2),
                          "neg_snr": round(c["neg_snr"], 2)})
            if len(cands) >= cfg.max_candidates:
                break
        # CNN: the 16 grid tiles + one centred subframe per candidate, in one batch. Known blobs
        # (and their dips) are masked to the median in the candidates' subframes, so that a
        # catalogued blob sharing the subframe cannot vouch for a candidate.
        grid = tile_origins(1024, TILE)
        origins = list(grid) + [centred_origin(c["x"] + off, c["y"] + off) for c in cands]
        masked = self._mask_known(scaled, off) if cands else scaled
        X = np.stack([scaled[y:y + TILE, x:x + TILE] for y, x in grid]
                     + [masked[y:y + TILE, x:x + TILE] for y, x in origins[len(grid):]])
        prob = probabilities(predict_logits(self.model, X))
        tiles = [{"row": y0 // TILE, "col": x0 // TILE, "x0": x0 - off, "y0": y0 - off, "size": TILE,
                  "probability": round(float(p), 6), "blob": bool(p >= cfg.threshold)}
                 for (y0, x0), p in zip(grid, prob[: len(grid)])]
        alerts = []
        for c, p in zip(cands, prob[len(grid):]):
            c["probability"] = round(float(p), 6)
            c["veto"] = "bright transient nearby" if c["neg_snr"] < -cfg.neg_veto else ""
            c["new"] = bool(p >= cfg.threshold and c["snr"] >= cfg.snr_min and c["depth"] >= cfg.min_depth
                            and not c["veto"])
            if c["new"]:
                alerts.append(c)
        explain = {}
        if alerts and cfg.saliency:
            idx = [k for k, c in enumerate(cands) if c["new"]]
            sub = X[[len(grid) + k for k in idx]]
            smaps = saliency(self.model, sub)
            for n, k in enumerate(idx):
                explain[k] = (sub[n], smaps[n], origins[len(grid) + k])
        record = {
            "frame": path.name,
            "path": str(path),
            "date_obs": when.isoformat(timespec="seconds"),
            "verdict": "new_blob" if alerts else "nothing_new",
            "new_blob": bool(alerts),
            "n_alerts": len(alerts),
            "candidates": cands,
            "n_known_matched": n_known,
            "tiles": tiles,
            "history": {"n": len(hist), "first": self.ordered[hist[0]][0].name,
                        "last": self.ordered[hist[-1]][0].name},
            "shift": [round(diff.shift[0], 4), round(diff.shift[1], 4)],
            "skipped_frames": [s for s in self.skipped],
            "model": self.model_name,
            "model_sha256": self.model_sha256,
            "threshold": cfg.threshold,
            "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()},
            "known_catalog": {"path": str(self.known.path) if self.known.path else None, "n": len(self.known)},
            "versions": self._versions,
            "processed_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        return FrameResult(record, d if with_arrays else None, scaled if with_arrays else None, explain)

    def _mask_known(self, scaled: np.ndarray, off: int) -> np.ndarray:
        """*scaled* with every known blob's disc (radius + margin) set to 0 (the median)."""
        k = self.known.xyr()
        if not len(k):
            return scaled
        out = scaled.copy()
        n = out.shape[0]
        for x, y, r in k:
            R = r + self.config.known_margin
            x0, x1 = max(0, int(x + off - R)), min(n, int(x + off + R) + 2)
            y0, y1 = max(0, int(y + off - R)), min(n, int(y + off + R) + 2)
            if x0 >= x1 or y0 >= y1:
                continue
            yy, xx = np.ogrid[y0:y1, x0:x1]
            sub = out[y0:y1, x0:x1]
            sub[(xx - x - off) ** 2 + (yy - y - off) ** 2 <= R * R] = 0.0
        return out

    def targets(self, all_frames: bool = False) -> list[int]:
        """The newest frame, or every frame with at least ``min_history`` earlier frames."""
        if not all_frames:
            return [len(self.ordered) - 1]
        return list(range(self.config.min_history, len(self.ordered)))


# ---------------------------------------------------------------------------------------------
# outputs
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

    from .paths import atomic_path

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
        from .preprocess import zscale

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


def run_monitor(frames, model, out: str | Path, config: MonitorConfig | None = None,
                known_path: str | Path | None = None, all_frames: bool = False, progress: bool = False,
                html: bool = True) -> list[dict]:
    """What ``blobhelpers monitor`` does; returns the records written to ``OUT/monitor_log.jsonl``.

    In the default (daily) mode a newest frame that cannot be processed raises
    :class:`InputError`; with *all_frames* such frames are skipped with a warning.
    """
    from tqdm.auto import tqdm

    from .paths import write_text

    out = Path(out)
    known = KnownCatalog.read(known_path) if known_path else KnownCatalog()
    mon = Monitor(frames, model, config, known)
    records = []
    for i in tqdm(mon.targets(all_frames), desc="monitor", disable=not progress):
        try:
            res = mon.process(i, with_arrays=html)
        except InputError as exc:
            if not all_frames:
                raise
            log.warning("%s", exc)
            continue
        res.record["trimmed"] = bool(mon._trimmed.get(i))
        pngs = save_alert_pngs(res, out / "saliency") if mon.config.saliency and res.explain else []
        res.record["saliency_pngs"] = pngs
        if html:
            stem = Path(res.record["frame"]).name.split(".")[0]
            write_text(out / "summary" / f"{stem}.html", summary_html(res.record, res.diff, pngs))
            res.record["summary_html"] = str(out / "summary" / f"{stem}.html")
        records.append(res.record)
    if records:
        MonitorLog(out / "monitor_log.jsonl").update(records)
    return records


def confirm(catalog_path: str | Path, log_path: str | Path | None = None, frame: str | None = None,
            candidates: list[int] | None = None, x: float | None = None, y: float | None = None,
            radius: float | None = None, depth: float | None = None, note: str = "") -> list[dict]:
    """Add confirmed blobs to the known-blob catalog (created if absent); returns the rows added.

    Either give a monitor log and a frame name (all its alerts, or the *candidates* indices),
    or a position (*x*, *y*, *radius*).
    """
    cat = KnownCatalog.read(catalog_path, must_exist=False)
    added = []
    if log_path is not None:
        if frame is None:
            raise InputError("confirm: --frame is required with --log")
        recs = [r for r in MonitorLog(log_path).read() if r["frame"] == frame or Path(r["path"]).name == frame]
        if not recs:
            raise InputError(f"{log_path}: no entry for frame {frame!r}")
        rec = recs[-1]
        cands = rec["candidates"]
        pick = candidates if candidates else [k for k, c in enumerate(cands) if c.get("new")]
        for k in pick:
            if not 0 <= k < len(cands):
                raise InputError(f"{log_path}: frame {frame} has no candidate {k} (0..{len(cands) - 1})")
            c = cands[k]
            added.append(cat.add(c["x"], c["y"], c["radius"], c.get("depth"), rec["date_obs"][:10],
                                 f"monitor:{frame}#{k}", note))
        if not pick:
            raise InputError(f"{log_path}: frame {frame} has no alerts to confirm (pass --candidate)")
    elif x is not None and y is not None:
        if radius is None or not radius > 0:
            raise InputError("confirm: --radius (> 0) is required with --x/--y")
        added.append(cat.add(x, y, radius, depth, "", "manual", note))
    else:
        raise InputError("confirm: give --log LOG --frame NAME, or --x X --y Y --radius R")
    cat.write(catalog_path)
    return added


def known_from_truth(catalog_csv: str | Path, before_index: int = 0) -> KnownCatalog:
    """A known-blob catalog from a simulated campaign's truth: blobs present before frame *before_index*."""
    import pandas as pd

    df = pd.read_csv(catalog_csv)
    df = df[df["appear_index"] < before_index] if before_index > 0 else df[df["appear_index"] < 0]
    rows = [{"id": int(r.id), "x": float(r.x), "y": float(r.y), "radius": float(r.radius), "depth": float(r.depth),
             "first_seen": r.appear_date if isinstance(r.appear_date, str) else "", "source": "simulation truth",
             "note": r.category} for r in df.itertuples()]
    return KnownCatalog(rows)



# ---------------------------------------------------------------------------------------------
# thresholds tuned on a development campaign
def write_tuned(path: str | Path, chosen: dict, model_path: str | Path, provenance: dict | None = None) -> Path:
    """Write the tuned alert thresholds (``snr_min``, ``threshold``, ``neg_veto``) for *model_path*."""
    from .paths import write_json

    model_path = Path(model_path)
    doc = {k: float(chosen[k]) for k in TUNED}
    doc.update(model=model_path.name, model_sha256=_sha256(model_path), provenance=provenance or {})
    write_json(path, doc)
    return Path(path)


def read_tuned(path: str | Path) -> dict:
    """Read a tuned-thresholds JSON; :class:`InputError` naming the file when it is malformed."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read the tuned monitor thresholds ({exc})") from exc
    if not isinstance(doc, dict):
        raise InputError(f"{path}: tuned monitor thresholds must be a JSON object")
    for k in TUNED:
        v = doc.get(k)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
            raise InputError(f"{path}: '{k}' must be a finite number, got {v!r}")
    return doc


def apply_tuned(cfg: MonitorConfig, tuned_path: str | Path | None, model_path: str | Path,
                keep: tuple = ()) -> list[str]:
    """Set ``cfg``'s alert thresholds from *tuned_path* (keys in *keep* stay as they are).

    The file applies only to the model it was tuned for (same SHA-256); otherwise, or when the
    file does not exist, nothing changes and the reason is returned. Returns what was applied.
    """
    if tuned_path is None or not Path(tuned_path).exists():
        return []
    doc = read_tuned(tuned_path)
    mp = Path(model_path)
    if not mp.is_file() or doc.get("model_sha256") != _sha256(mp):
        log.warning("%s: tuned for another model (%s); using the untuned thresholds", tuned_path,
                    doc.get("model", "?"))
        return []
    done = []
    for k in TUNED:
        if k not in keep:
            setattr(cfg, k, float(doc[k]))
            done.append(f"{k}={float(doc[k]):g}")
    return done
