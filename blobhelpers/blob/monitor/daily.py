"""The monitor itself: frames ordered by date -> difference -> candidates -> CNN -> verdicts."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...core.errors import InputError
from ...core.report import versions
from ..detection import centred_origin, detect_candidates, measure_blob
from ..fitsio import BORDER, expand_frame_paths, frame_time, read_frame, read_header
from ..scaling import TILE, scale_image, tile_origins
from .catalog import KnownCatalog
from .config import MonitorConfig
from .records import MonitorLog, sha256_file
from .render import save_alert_pngs, summary_html

__all__ = ["FrameResult", "Monitor", "run_monitor", "confirm"]

log = logging.getLogger("blobhelpers.blob.monitor")


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
        from ..cnn import load_model

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
            self.model_sha256 = sha256_file(self.model_path) if self.model_path.is_file() else ""
            self.model = load_model(model)
        else:
            self.model_path, self.model_sha256, self.model = None, "", model
        self.model_name = model_name or (str(self.model_path) if self.model_path else getattr(model, "name", "model"))
        self._cache: dict[int, np.ndarray | None] = {}
        self._trimmed: dict[int, bool] = {}
        self._versions = versions()

    # -- frames ---------------------------------------------------------------------------
    def _skip(self, path, reason: str) -> None:
        if not any(s["file"] == str(path) for s in self.skipped):
            log.warning("skipping %s: %s", path, reason)
            self.skipped.append({"file": str(path), "reason": reason})

    def _load(self, indices) -> None:
        """Read and normalise the frames *indices* not yet cached (bad ones cached as None)."""
        from ..difference import normalize_many

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
        from ..difference import difference_of_normalized
        from ..scoring import predict_logits, saliency
        from ..cnn import probabilities

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
            "trimmed": bool(self._trimmed.get(i)),
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


def run_monitor(frames, model, out: str | Path, config: MonitorConfig | None = None,
                known_path: str | Path | None = None, all_frames: bool = False, progress: bool = False,
                html: bool = True) -> list[dict]:
    """What ``blobhelpers monitor`` does; returns the records written to ``OUT/monitor_log.jsonl``.

    In the default (daily) mode a newest frame that cannot be processed raises
    :class:`InputError`; with *all_frames* such frames are skipped with a warning.
    """
    from tqdm.auto import tqdm

    from ...core.paths import write_text

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
