"""Regression of the daily monitor over a simulated campaign (the ISR's planned historical test).

Every frame with enough history is processed in date order, as the monitor would be run each
day. The known-blob catalog starts with the blobs present before the campaign; each day the
alerts that coincide with a real, not yet catalogued blob are *confirmed* (added to the
catalog at the monitor's measured position and radius), as the team would do after looking
at them. Missed blobs stay uncatalogued: if the monitor finds them on a later day that alert
counts as a *late* detection, not a false alarm.

Per event (a blob appearing on a day): detected on its first day or not, localisation error.
Per day: false alerts (alerts matching no uncatalogued real blob). Two simpler verdicts are
scored on the same days for comparison: the matched filter alone (any uncatalogued candidate)
and the ISR-style tile classifier alone (any of the 16 grid tiles at the threshold).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from blobhelpers.blob.detect.monitor import KnownCatalog, Monitor, MonitorConfig
from blobhelpers.blob.detect.monitor.config import deep_enough
from blobhelpers.blob.io.frames import BORDER
from blobhelpers.blob.sim.shapes import BlobShape, render
from blobhelpers.core.stats import DEPTH_BINS, RADIUS_BINS, median_mad, rate

__all__ = ["RegressionResult", "run_regression", "summarize", "within_days", "latency", "tune_thresholds",
           "tune_accumulated", "alerts_by_window", "ideal_snr", "cnn_side_by_side",
           "ideal_limit", "miss_reason", "MISS_REASONS"]



@dataclass
class RegressionResult:
    events: list = field(default_factory=list)   # one dict per new blob
    days: list = field(default_factory=list)     # one dict per processed day
    records: list = field(default_factory=list)  # the monitor's JSON records
    crops: dict = field(default_factory=dict)    # (kind, day, k) -> 64x64 difference crop
    seconds_per_day: list = field(default_factory=list)
    known: KnownCatalog | None = None           # the catalog at the end (existing + confirmed)


def _crop(img: np.ndarray, x: float, y: float, half: int = 32) -> np.ndarray:
    n = img.shape[0]
    xi, yi = int(round(x)), int(round(y))
    out = np.zeros((2 * half, 2 * half), np.float32)
    x0, y0 = xi - half, yi - half
    sx0, sy0 = max(0, x0), max(0, y0)
    sx1, sy1 = min(n, x0 + 2 * half), min(n, y0 + 2 * half)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = np.nan_to_num(img[sy0:sy1, sx0:sx1])
    return out


def run_regression(campaign_dir: str | Path, model, config: MonitorConfig | None = None,
                   match_px: float = 2.0, progress: bool = True, keep_crops: int = 12,
                   workers: int | None = None) -> RegressionResult:
    """Run the monitor over every frame of a simulated campaign and score it against the truth.

    *match_px*: an alert matches a real blob when it lies within the blob's radius plus this.
    *workers*: frames differenced at a time (:meth:`Monitor.process_many`; the result does not
    depend on it).
    """
    import pandas as pd
    from tqdm.auto import tqdm

    campaign_dir = Path(campaign_dir)
    cat = pd.read_csv(campaign_dir / "catalog.csv")
    frames = pd.read_csv(campaign_dir / "frames.csv")
    shift = {Path(f).name: (sx, sy) for f, sx, sy in zip(frames["file"], frames["shift_x"], frames["shift_y"])}
    index_of = {Path(f).name: int(i) for f, i in zip(frames["file"], frames["index"])}
    persist = {Path(f).name: bool(p) for f, p in zip(frames["file"], frames["persistence"])}
    existing = cat[cat["appear_index"] < 0]
    known = KnownCatalog([{"id": int(r.id), "x": float(r.x), "y": float(r.y), "radius": float(r.radius),
                           "source": "catalog before the campaign"} for r in existing.itertuples()])
    mon = Monitor([campaign_dir / "frames"], model, config, known)
    new = cat[cat["appear_index"] >= 0]
    confirmed: set[int] = set()
    res = RegressionResult()
    event_rows = {int(r.id): {"id": int(r.id), "appear_index": int(r.appear_index), "date": r.appear_date,
                              "x": float(r.x), "y": float(r.y), "radius": float(r.radius), "depth": float(r.depth),
                              "category": r.category, "detected": False, "candidate": False, "first_alert_day": None,
                              "loc_error": None, "probability": None, "snr": None, "processed": False,
                              "why_not_found": MISS_REASONS[0]}
                  for r in new.itertuples()}
    n_kept = {"missed": 0, "false": 0}
    todo = [i for i in mon.targets(all_frames=True) if mon.ordered[i][0].name in index_of]
    t0 = time.perf_counter()
    # frames are differenced a few at a time in threads and judged in order (Monitor.process_many):
    # a confirmed alert joins the known catalog before the next day is judged, as in daily use
    for i, fr in tqdm(mon.process_many(todo, with_arrays=True, workers=workers), total=len(todo),
                      desc="monitor regression", disable=not progress):
        res.seconds_per_day.append(time.perf_counter() - t0)  # wall time per day at this throughput
        t0 = time.perf_counter()
        name = mon.ordered[i][0].name
        day = index_of[name]
        rec = fr.record
        sx, sy = shift[name]
        live = new[(new["appear_index"] <= day) & ~new["id"].isin(confirmed)]
        lx, ly = live["x"].to_numpy() + sx, live["y"].to_numpy() + sy
        lr, lid = live["radius"].to_numpy(), live["id"].to_numpy()
        todays = set(int(b) for b in new.loc[new["appear_index"] == day, "id"])
        for b in todays:
            event_rows[b]["processed"] = True
            if fr.diff is not None:
                row = new[new["id"] == b].iloc[0]
                event_rows[b].update(ideal_snr(fr.diff, float(row.x) + sx, float(row.y) + sy, _shape_of(row),
                                               float(row.depth), n_history=rec["history"]["n"]))
        n_false, n_true, n_late = 0, 0, 0
        false_alerts = []

        def nearest(c):
            if not len(lid):
                return None, None
            dist = np.hypot(lx - c["x"], ly - c["y"])
            j = int(np.argmin(dist))
            return (j, float(dist[j])) if dist[j] <= lr[j] + match_px else (None, None)

        for k, c in enumerate(rec["candidates"]):
            j, dist = nearest(c)
            # every candidate, alert or not, gets its truth (threshold tuning uses them all)
            if j is None:
                c["truth"] = "false"
            else:
                b = int(lid[j])
                c["truth"] = "new today" if b in todays else "late"
                c["truth_id"] = b
                c["truth_dist"] = round(dist, 3)
                if b in todays:
                    event_rows[b]["candidate"] = True
            if not c["new"]:
                continue
            if j is None:
                n_false += 1
                false_alerts.append(k)
                continue
            b = int(lid[j])
            ev = event_rows[b]
            if b in todays:
                n_true += 1
                if not ev["detected"]:
                    ev.update(detected=True, loc_error=round(dist, 3), probability=c["probability"], snr=c["snr"])
            else:
                n_late += 1
            if ev["first_alert_day"] is None:
                ev["first_alert_day"] = day
            confirmed.add(b)
            # a raised alert, as in the daily job (Monitor.raised): the blob itself, not yet in the history
            mon.raised.add(c["x"], c["y"], max(c["radius"], 3.0), c["depth"], rec["date_obs"][:10],
                           f"confirmed alert day {day}", merge_px=0.0)
        # why the blobs of the last three days not alerted yet were not (the stage of the monitor each reached)
        for j, b in enumerate(lid):
            ev = event_rows[int(b)]
            if ev["first_alert_day"] is None and 0 <= day - ev["appear_index"] <= 2:
                why = miss_reason(rec, float(lx[j]), float(ly[j]), float(lr[j]) + match_px, config)
                if MISS_REASONS.index(why) > MISS_REASONS.index(ev["why_not_found"]):
                    ev["why_not_found"] = why
        # baselines on the same day
        det_only = [c for c in rec["candidates"] if _window(c, 1) is not None and nearest(c)[0] is None]
        tiles_flag = [t for t in rec["tiles"] if t["blob"]]
        tile_true = 0
        for t in tiles_flag:
            inside = ((lx >= t["x0"]) & (lx < t["x0"] + t["size"]) & (ly >= t["y0"]) & (ly < t["y0"] + t["size"]))
            tile_true += int(inside.any())
        res.days.append({"day": day, "frame": name, "date": rec["date_obs"][:10], "n_events": len(todays),
                         "quiet": len(todays) == 0, "alerts": rec["n_alerts"], "true_alerts": n_true,
                         "late_alerts": n_late, "false_alerts": n_false, "candidates": len(rec["candidates"]),
                         "detector_only_false": len(det_only), "tiles_flagged": len(tiles_flag),
                         "tiles_flagged_without_blob": len(tiles_flag) - tile_true,
                         "persistence": persist.get(name, False), "shift": float(np.hypot(*rec["shift"])),
                         "max_tile_probability": max(t["probability"] for t in rec["tiles"])})
        # images of what went wrong (a few of each kind)
        if fr.diff is not None:
            for b in todays:
                ev = event_rows[b]
                if not ev["detected"] and n_kept["missed"] < keep_crops:
                    res.crops[("missed", day, b)] = _crop(fr.diff, ev["x"] + sx, ev["y"] + sy)
                    n_kept["missed"] += 1
            for k in false_alerts:
                if n_kept["false"] < keep_crops:
                    c = rec["candidates"][k]
                    res.crops[("false", day, k)] = _crop(fr.diff, c["x"], c["y"])
                    n_kept["false"] += 1
        rec.pop("versions", None)
        rec.pop("config", None)
        res.records.append(rec)
    res.events = [e for e in event_rows.values() if e["processed"]]
    for e in res.events:   # alerted within 3 days: nothing to explain
        if (lat := latency(e)) is not None and lat <= 2:
            e["why_not_found"] = ""
    res.known = KnownCatalog([dict(r) for r in mon.known.rows])  # existing + confirmed alerts, fresh ids
    for r in mon.raised.rows:
        res.known.add(r["x"], r["y"], r["radius"], r["depth"] if r["depth"] != "" else None, r["first_seen"],
                      r["source"], merge_px=0.0)
    return res


#: Why a new blob was not alerted within 3 days, from the first stage to the last it reached in the
#: monitor (the furthest one of its three days is kept; :func:`miss_reason`).
MISS_REASONS = ("no candidate", "rejected: dipole", "rejected: bright transient", "rejected: over budget",
                "absorbed: catalogued blob: registration residual", "absorbed: catalogued blob",
                "absorbed: alert already raised", "vetoed: bright transient nearby", "below the significance threshold",
                "shallower than min_depth", "CNN below threshold", "alerted")


def miss_reason(rec: dict, x: float, y: float, reach: float, config: MonitorConfig | None = None) -> str:
    """The furthest stage of the monitor that something within *reach* px of (*x*, *y*) reached in one
    day's *rec* (:data:`MISS_REASONS`): an alert; a candidate judged and not alerted (and why: the CNN, the
    depth, the significance, the bright-transient veto); a candidate set aside (``absorbed``: a catalogued
    blob or an alert already raised accounts for it); one rejected by the detection core's tests (today's
    difference only); or nothing at all.

    >>> rec = {"candidates": [{"x": 10.0, "y": 10.0, "k": 1, "snr": 9.0, "new": False, "veto": "", "depth": 0.02,
    ...                        "probability": 0.1}], "absorbed": [], "rejected": []}
    >>> miss_reason(rec, 11.0, 10.0, 4.0), miss_reason(rec, 40.0, 10.0, 4.0)
    ('CNN below threshold', 'no candidate')
    """
    cfg = config or MonitorConfig()
    best = 0

    def near(c) -> bool:
        return float(np.hypot(c["x"] - x, c["y"] - y)) <= reach

    for c in rec.get("candidates", []):
        if not near(c):
            continue
        if c.get("new"):
            why = "alerted"
        elif c.get("veto"):
            why = "vetoed: bright transient nearby"
        elif c["snr"] < cfg.snr_threshold(c.get("k", 1)):
            why = "below the significance threshold"
        elif not deep_enough(c.get("depth", 1.0), cfg.min_depth):
            why = "shallower than min_depth"
        else:
            why = "CNN below threshold"
        best = max(best, MISS_REASONS.index(why))
    for a in rec.get("absorbed", []):
        if near(a):
            best = max(best, MISS_REASONS.index("absorbed: " + a["by"]))
    for r in rec.get("rejected", []):
        if near(r) and ("rejected: " + r["reason"]) in MISS_REASONS:
            best = max(best, MISS_REASONS.index("rejected: " + r["reason"]))
    return MISS_REASONS[best]


def _shape_of(row) -> BlobShape:
    """The simulated blob's shape from its catalog row."""
    return BlobShape(float(row.radius), str(getattr(row, "profile", "disc")), float(getattr(row, "axis_ratio", 1.0)),
                     float(getattr(row, "theta", 0.0)), float(getattr(row, "edge", 0.6)),
                     float(getattr(row, "spot", 0.8)))


def ideal_snr(diff: np.ndarray, x: float, y: float, shape: BlobShape, depth: float, n_history: int = 30,
              days=(1, 3, 5), box: int = 48) -> dict:
    """The ideal observer's significance of a new blob: the matched filter of its TRUE profile
    (``depth x profile``, sky fraction, on the light-sensitive unmasked pixels) against the true
    noise of the frames, on its first day and after k days.

    The per-pixel noise ``sigma_D`` is measured robustly (MAD) on the day's difference image in a
    ``(2 box)^2`` px box around the blob, away from it. ``D = median(n) - today`` has variance
    ``s^2 (1 + pi / (2 n))`` (``s``: one frame's noise; the median of n frames has about
    ``pi / 2`` times the variance of their mean). The mean of the last k one-day differences keeps
    the medians' part and averages the frames': ``s^2 (1 / k + pi / (2 n))``. Returns
    ``{"ideal_snr_day1": .., "ideal_snr_3d": .., ...}`` (None where nothing can be measured).

    >>> rng = np.random.default_rng(0)
    >>> d = rng.normal(0, 0.02, (256, 256)).astype(np.float32)
    >>> out = ideal_snr(d, 128.0, 128.0, BlobShape(3.0), 0.02)   # a 2 % disc of radius 3 px: sqrt(28 px) x 1 sigma
    >>> round(out["ideal_snr_day1"], 1), round(out["ideal_snr_3d"] / out["ideal_snr_day1"], 2)
    (4.3, 1.65)
    """
    ny, nx = diff.shape
    xi, yi = int(round(x)), int(round(y))
    x0, x1 = max(0, xi - box), min(nx, xi + box)
    y0, y1 = max(0, yi - box), min(ny, yi + box)
    keys = {f"ideal_snr_{'day1' if k == 1 else f'{k}d'}": None for k in days}
    if x1 <= x0 or y1 <= y0:
        return keys
    cut = diff[y0:y1, x0:x1]
    ok = np.isfinite(cut)
    if diff.shape == (1024, 1024):  # reference pixels see no light
        yy, xx = np.mgrid[y0:y1, x0:x1]
        ok &= (xx >= BORDER) & (xx < nx - BORDER) & (yy >= BORDER) & (yy < ny - BORDER)
    prof = np.zeros(cut.shape, np.float32)
    render(prof, x - x0, y - y0, shape, depth)
    far = ok & (prof == 0)
    far &= ~ndimage.binary_dilation(prof != 0, iterations=4)
    if far.sum() < 100:
        return keys
    v = cut[far]
    sigma_d = 1.4826 * float(median_mad(v)[1])
    if not sigma_d > 0:
        return keys
    energy = float(np.sqrt((prof[ok].astype(np.float64) ** 2).sum()))
    s1 = energy / sigma_d
    med = np.pi / (2 * max(int(n_history), 1))
    for k, key in zip(days, keys):
        keys[key] = round(s1 * float(np.sqrt((1 + med) / (1 / k + med))), 3)
    return keys


def _rate(flags) -> dict:
    """:func:`~blobhelpers.core.stats.rate` of a list of booleans, its interval rounded to 4 decimals."""
    x = rate(sum(bool(f) for f in flags), len(flags))
    return {k: (round(v, 4) if k in ("lo", "hi") else v) for k, v in x.items()}


def _window(c: dict, k: int) -> dict | None:
    """The day-window *k* entry of a monitor candidate (None if that window did not see it); a
    record written before windows existed is all window 1."""
    if "windows" not in c:
        return c if k == 1 else None
    return next((w for w in c["windows"] if w["k"] == k), None)


def _bin(v: float, edges) -> tuple[float, str]:
    """(lower edge, label) of the bin of *v*; the last bin is open-ended."""
    for n, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        if lo <= v < hi:
            return lo, (f">={lo:g}" if n == len(edges) - 2 else f"{lo:g}-{hi:g}")
    return edges[-1], f">={edges[-1]:g}"


def summarize(res: RegressionResult, min_depth: float = 0.03, snr_day1: float | None = None,
              snr_k: float | None = None) -> dict:
    """Headline metrics (with Wilson intervals) and strata of a :class:`RegressionResult`."""
    ev = res.events
    days = res.days
    quiet = [d for d in days if d["quiet"]]

    def rate_of(items, key):
        return _rate([bool(x[key]) for x in items])

    deep = [e for e in ev if e["depth"] > min_depth]
    qf = [{"fa": d["false_alerts"] > 0} for d in quiet]
    det_only = [{"fa": d["detector_only_false"] > 0} for d in quiet]
    tiles = [{"fa": d["tiles_flagged_without_blob"] > 0} for d in quiet]
    loc = [e["loc_error"] for e in ev if e["detected"]]
    strata = {}
    for name, key, edges in (("depth", "depth", DEPTH_BINS), ("radius", "radius", RADIUS_BINS)):
        groups: dict[tuple, list] = {}
        for e in ev:
            groups.setdefault(_bin(e[key], edges), []).append(e)
        strata[name] = {label: rate_of(v, "detected") for (_, label), v in sorted(groups.items())}
    groups = {}
    for e in ev:
        groups.setdefault(e["category"], []).append(e)
    strata["category"] = {g: rate_of(v, "detected") for g, v in sorted(groups.items())}
    eventually = [{"x": e["detected"] or e["first_alert_day"] is not None} for e in ev]
    secs = np.asarray(res.seconds_per_day) if res.seconds_per_day else np.zeros(1)
    last_day = max((d["day"] for d in days), default=-1)
    out_within = within_days(ev, last_day, min_depth)
    out = {
        "n_days": len(days),
        "n_quiet_days": len(quiet),
        "n_events": len(ev),
        "n_events_deeper": len(deep),
        "depth_threshold": min_depth,
        "detection_deeper": rate_of(deep, "detected"),
        "detection_all": rate_of(ev, "detected"),
        "detection_eventually": rate_of(eventually, "x"),
        "candidate_found_all": rate_of(ev, "candidate"),
        "false_alarm_days_per_100_quiet": {**rate_of(qf, "fa"), "per_100": round(100 * np.mean([q["fa"] for q in qf]), 2)
                                           if qf else None},
        "false_alerts_total": int(sum(d["false_alerts"] for d in days)),
        "false_alerts_per_100_days": round(100 * sum(d["false_alerts"] for d in days) / max(1, len(days)), 2),
        "late_alerts_total": int(sum(d["late_alerts"] for d in days)),
        "median_loc_error_px": round(float(np.median(loc)), 3) if loc else None,
        "p90_loc_error_px": round(float(np.percentile(loc, 90)), 3) if loc else None,
        "baseline_detector_only_fa_per_100_quiet": round(100 * np.mean([q["fa"] for q in det_only]), 2) if det_only else None,
        "baseline_tile_cnn_fa_per_100_quiet": round(100 * np.mean([q["fa"] for q in tiles]), 2) if tiles else None,
        "seconds_per_day_median": round(float(np.median(secs)), 3),
        "alerts_by_window": alerts_by_window(res.records),
        **({"ideal": ideal_limit(ev, last_day, snr_day1, snr_k)} if snr_day1 is not None and snr_k is not None
           else {}),
        "strata": strata,
        **out_within,
    }
    return out


IDEAL_BINS = (0.0, 3.0, 5.0, 7.0, 9.0, 12.0, 16.0, 25.0, 1e9)


def ideal_limit(events: list[dict], last_day: int, snr_day1: float, snr_k: float, margin: float = 1.0) -> dict:
    """Detection against the ideal observer's significance (:func:`ideal_snr`): what any detector at
    the same thresholds could see, and what ours missed.

    Per window (day 1: today's difference at *snr_day1*; within 3 and 5 days: the k-day means at
    *snr_k*), the blobs are binned by their ideal S/N; each bin gets the fraction found (Wilson
    interval) and the ideal curve ``Phi(s - t)`` (the matched filter of the true profile at the
    true position crosses the threshold t with that probability). ``above_limit``: the blobs
    whose ideal 3-day S/N exceeds *snr_k* + *margin*, and how many of them were found within 3
    days; the misses within 3 days split into ``below_limit`` (ideal 3-day S/N under *snr_k*: no
    detector at this threshold sees them reliably) and ``missed_by_ours``.

    >>> ev = [{"appear_index": 0, "detected": True, "first_alert_day": 0, "ideal_snr_day1": 9.0, "ideal_snr_3d": 14.9,
    ...        "ideal_snr_5d": 18.4},
    ...       {"appear_index": 0, "detected": False, "first_alert_day": None, "ideal_snr_day1": 2.0, "ideal_snr_3d": 3.3,
    ...        "ideal_snr_5d": 4.1}]
    >>> out = ideal_limit(ev, last_day=9, snr_day1=6.5, snr_k=7.0)
    >>> out["above_limit"]["k"], out["above_limit"]["n"], out["below_limit"], out["missed_by_ours"]
    (1, 1, 1, 0)
    """
    from scipy.stats import norm

    curves = {}
    for name, key, n_days, t in (("day1", "ideal_snr_day1", 1, snr_day1), ("within_3", "ideal_snr_3d", 3, snr_k),
                                 ("within_5", "ideal_snr_5d", 5, snr_k)):
        seen = [e for e in events if e.get(key) is not None and e["appear_index"] + n_days - 1 <= last_day]
        rows = []
        for lo, hi in zip(IDEAL_BINS[:-1], IDEAL_BINS[1:]):
            grp = [e for e in seen if lo <= e[key] < hi]
            if not grp:
                continue
            hit = [(lat := latency(e)) is not None and lat <= n_days - 1 for e in grp]
            mid = float(np.median([e[key] for e in grp]))
            rows.append({"bin": f"{lo:g}-{hi:g}" if hi < 1e8 else f">={lo:g}", "ideal_snr_median": round(mid, 2),
                         **_rate(hit), "ideal_curve": round(float(norm.cdf(mid - t)), 4)})
        curves[name] = {"threshold": t, "bins": rows}
    three = [e for e in events if e.get("ideal_snr_3d") is not None and e["appear_index"] + 2 <= last_day]
    hit3 = [(lat := latency(e)) is not None and lat <= 2 for e in three]
    above = [h for h, e in zip(hit3, three) if e["ideal_snr_3d"] >= snr_k + margin]
    missed = [e for h, e in zip(hit3, three) if not h]
    ours = [e for e in missed if e["ideal_snr_3d"] >= snr_k]
    why: dict = {}
    for e in ours:
        r = e.get("why_not_found") or "unknown"
        why[r] = why.get(r, 0) + 1
    return {"curves": curves, "margin": margin,
            "above_limit": _rate(above),
            "below_limit": sum(1 for e in missed if e["ideal_snr_3d"] < snr_k),
            "missed_by_ours": len(ours),
            "missed_by_ours_why": dict(sorted(why.items(), key=lambda kv: (-kv[1], kv[0]))),
            "missed_within_3": len(missed)}


def alerts_by_window(records: list[dict]) -> dict:
    """How many alerts each day window raised (``{"1": n, "2": n, ...}``), and how many of them were
    true (matched a real new blob: truth ``new today`` or ``late``).

    >>> alerts_by_window([{"candidates": [{"new": True, "k": 2, "truth": "late"}, {"new": False, "k": 1},
    ...                                   {"new": True, "k": 1, "truth": "false"}]}])
    {'1': {'alerts': 1, 'true': 0}, '2': {'alerts': 1, 'true': 1}}
    """
    out: dict = {}
    for rec in records:
        for c in rec["candidates"]:
            if c.get("new"):
                row = out.setdefault(str(c.get("k", 1)), {"alerts": 0, "true": 0})
                row["alerts"] += 1
                row["true"] += c.get("truth") in ("new today", "late")
    return dict(sorted(out.items(), key=lambda kv: int(kv[0])))


def latency(e: dict) -> int | None:
    """Days from a blob's appearance to its first alert (0: alerted the day it appeared; None: never)."""
    if e["detected"]:
        return 0
    return None if e["first_alert_day"] is None else int(e["first_alert_day"] - e["appear_index"])


def within_days(events: list[dict], last_day: int, min_depth: float = 0.03, max_days: int = 5) -> dict:
    """Detection within N days (N = 1..*max_days*) as the daily job is used, and the latency of the alerts.

    A blob counts for N only if the campaign lasted N days after it appeared (``appear_index + N - 1 <=
    last_day``), so the last days do not count as misses. Per N: all new blobs, those deeper than
    *min_depth*, and the depth and radius strata, each a rate with its 95 % Wilson interval.

    >>> ev = [{"appear_index": 0, "detected": False, "first_alert_day": 2, "depth": 0.05, "radius": 5.0},
    ...       {"appear_index": 9, "detected": False, "first_alert_day": None, "depth": 0.02, "radius": 3.0}]
    >>> w = within_days(ev, last_day=9, max_days=3)["detection_within_days"]
    >>> [(n, w[n]["all"]["k"], w[n]["all"]["n"]) for n in ("1", "2", "3")]
    [('1', 0, 2), ('2', 0, 1), ('3', 1, 1)]
    """
    out: dict = {}
    for n in range(1, max_days + 1):
        seen = [e for e in events if e["appear_index"] + n - 1 <= last_day]
        hit = [(lat := latency(e)) is not None and lat <= n - 1 for e in seen]
        row = {"all": _rate(hit), "deeper": _rate([h for h, e in zip(hit, seen) if e["depth"] > min_depth])}
        for name, key, edges in (("depth", "depth", DEPTH_BINS), ("radius", "radius", RADIUS_BINS)):
            groups: dict[tuple, list] = {}
            for h, e in zip(hit, seen):
                groups.setdefault(_bin(e[key], edges), []).append(h)
            row[name] = {label: _rate(v) for (_, label), v in sorted(groups.items())}
        out[str(n)] = row
    lats = [lat for e in events if (lat := latency(e)) is not None]
    counts = {str(k): int(sum(1 for x in lats if x == k)) for k in sorted(set(lats))}
    return {"detection_within_days": out,
            "latency_days": {"n_alerted": len(lats), "median": float(np.median(lats)) if lats else None,
                             "counts": counts}}


def cnn_side_by_side(res: RegressionResult, snr_min: float, snr_acc: float, neg_veto: float,
                     min_depth: float = 0.03, depth_floor: float = 0.0) -> dict:
    """The same regression with the CNN verification and without it, side by side.

    *With*: the records' verdicts. *Without*: every place the detection core and its tests pass
    alerts -- a window ``k`` whose significance reaches ``snr_min`` (today) or ``snr_acc`` (a k-day
    mean), with no residual below ``-neg_veto`` next to it and depth >= *depth_floor*: the CNN's
    threshold at 0 -- re-derived from the same records (their candidates carry every window's
    numbers, whatever the CNN said). Per verdict: first-day and within-3-days detection of new
    blobs deeper than *min_depth*, false-alarm days per 100 quiet days and false alerts. The
    re-derivation is exact for first-day detection and for false alarms on quiet days (neither
    depends on which blobs were raised before), and a lower bound on the CNN-free run's later-day
    detections (a blob the CNN run raised is not among later days' candidates).

    >>> res = RegressionResult(
    ...     events=[{"id": 1, "appear_index": 0, "depth": 0.05}],
    ...     days=[{"day": 0, "quiet": False}, {"day": 1, "quiet": True}, {"day": 2, "quiet": True}],
    ...     records=[{"candidates": [{"new": False, "truth": "new today", "truth_id": 1,
    ...                               "windows": [{"k": 1, "snr": 7.0, "neg_snr": -2.0, "depth": 0.05}]}]},
    ...              {"candidates": [{"new": False, "truth": "false",
    ...                               "windows": [{"k": 1, "snr": 6.5, "neg_snr": -1.0, "depth": 0.02}]}]},
    ...              {"candidates": []}])
    >>> t = cnn_side_by_side(res, 6.0, 6.0, 8.0)
    >>> [(v["day1"]["k"], v["false_alarm_days"]["k"]) for v in (t["with_cnn"], t["without_cnn"])]
    [(0, 0), (1, 1)]
    """
    last_day = max((d["day"] for d in res.days), default=-1)
    deep = [e for e in res.events if e["depth"] > min_depth]
    quiet = [k for k, d in enumerate(res.days) if d["quiet"]]

    def passes(c: dict) -> bool:
        for w in c.get("windows") or [c]:
            need = snr_min if int(w.get("k", 1)) == 1 else snr_acc
            if w["snr"] >= need and w["neg_snr"] >= -neg_veto and deep_enough(w["depth"], depth_floor):
                return True
        return False

    out = {}
    for name, alerts in (("with_cnn", lambda c: bool(c.get("new"))), ("without_cnn", passes)):
        first: dict[int, int] = {}
        n_false, fa_days = 0, set()
        for k, (d, rec) in enumerate(zip(res.days, res.records)):
            for c in rec["candidates"]:
                if not alerts(c):
                    continue
                if c.get("truth") in ("new today", "late"):
                    first.setdefault(int(c["truth_id"]), d["day"])
                elif c.get("truth") == "false":
                    n_false += 1
                    if d["quiet"]:
                        fa_days.add(k)
        day1 = [first.get(e["id"]) == e["appear_index"] for e in deep]
        three = [e for e in deep if e["appear_index"] + 2 <= last_day]
        within3 = [e["id"] in first and first[e["id"]] - e["appear_index"] <= 2 for e in three]
        fa = _rate([k in fa_days for k in quiet])
        out[name] = {"day1": _rate(day1), "within_3": _rate(within3), "false_alarm_days": fa,
                     "false_alarm_days_per_100_quiet": round(100 * fa["rate"], 2) if quiet else None,
                     "false_alerts": n_false}
    return out


def tune_thresholds(res: RegressionResult, snr_grid, p_grid, veto_grid, min_depth: float = 0.03,
                    fa_target: float = 2.0, depth_floor: float = 0.0) -> dict:
    """Choose the monitor's alert thresholds on a DEVELOPMENT campaign, never the regression one.

    *res* must come from :func:`run_regression` with permissive settings (``snr_min`` at most
    ``min(snr_grid)``, CNN ``threshold`` 0, no veto), so that every candidate a stricter setting
    would raise is in the records with its truth. For each combination of matched-filter
    significance ``snr_min``, CNN probability ``threshold`` and bright-transient veto ``neg_veto``
    the alerts are re-derived offline and scored: first-day detection of new blobs deeper than
    *min_depth*, and false-alarm days per 100 quiet days. (Re-deriving is exact for both: an
    event counts only on its first day, and a false alarm matches no real blob, so neither depends
    on which real blobs the permissive run confirmed earlier.)

    The chosen setting maximises that detection subject to a *conservative* false-alarm estimate
    ``100 (k + 1) / n_quiet <= fa_target`` (k false-alarm days of n_quiet; the +1 guards against
    picking a setting that merely got lucky on a short development campaign -- with 100 quiet days
    and a target of 2, at most one false-alarm day is allowed); ties go to fewer false alarms, then
    to the stricter setting. When no setting meets the budget (fewer than ``100 / fa_target`` quiet
    days can never meet it), the same order is applied to the settings with the fewest
    false-alarm days and ``target_met`` is False: the caller must say so, since such thresholds are
    tuned on too short a campaign. Returns ``{"chosen": {...}, "table": [row per setting],
    "target_met": bool, ...}``.
    """
    days = res.days
    if len(days) != len(res.records):
        raise ValueError("tune_thresholds: days and records differ in length")
    deep = {e["id"]: e for e in res.events if e["depth"] > min_depth}
    day_of = {e["id"]: e["appear_index"] for e in deep.values()}
    quiet = [k for k, d in enumerate(days) if d["quiet"]]
    if not quiet or not deep:
        raise ValueError("tune_thresholds: the development campaign needs quiet days and new blobs "
                         f"deeper than {min_depth} (has {len(quiet)} quiet days, {len(deep)} such blobs)")
    cands = []  # (day position, snr, p, neg_snr, depth, truth, truth_id) of today's difference (window k = 1)
    for k, (d, rec) in enumerate(zip(days, res.records)):
        for c in rec["candidates"]:
            w = _window(c, 1)
            if w is not None:
                cands.append((k, d["day"], w["snr"], w["probability"], w["neg_snr"], w["depth"], c.get("truth", ""),
                              c.get("truth_id", -1)))
    if not cands:
        raise ValueError("tune_thresholds: the development run has no candidates")
    pos, day, snr, prob, neg, depth, truth, tid = (np.asarray(v) for v in zip(*cands))
    quiet_set = np.isin(pos, quiet)
    rows = []
    for s in snr_grid:
        for p in p_grid:
            for v in veto_grid:
                alert = (snr >= s) & (prob >= p) & (neg >= -v) & ((depth >= depth_floor) | (depth_floor <= 0))
                fa_days = len(set(pos[alert & quiet_set & (truth == "false")].tolist()))
                hit = alert & (truth == "new today")
                found = {int(t) for t, dd in zip(tid[hit], day[hit]) if int(t) in day_of and day_of[int(t)] == dd}
                rows.append({"snr_min": float(s), "threshold": float(p), "neg_veto": float(v),
                             "detection_deeper": len(found) / len(deep), "detected": len(found),
                             "fa_days": fa_days, "fa_days_per_100_quiet": 100.0 * fa_days / len(quiet)})
    ok = [r for r in rows if 100.0 * (r["fa_days"] + 1) / len(quiet) <= fa_target]
    met = bool(ok)
    if not met:  # too few quiet days for the budget: the fewest false-alarm days, then the same order
        fewest = min(r["fa_days"] for r in rows)
        ok = [r for r in rows if r["fa_days"] == fewest]
    chosen = max(ok, key=lambda r: (r["detection_deeper"], -r["fa_days"], r["snr_min"], r["threshold"],
                                    -r["neg_veto"]))
    return {"chosen": chosen, "table": rows, "n_quiet_days": len(quiet), "n_events_deeper": len(deep),
            "fa_target": fa_target, "min_depth": min_depth, "target_met": met}


def tune_accumulated(res: RegressionResult, chosen: dict, snr_grid, fa_target: float = 2.0,
                     depth_floor: float = 0.0, p_grid=None) -> dict:
    """Choose ``snr_acc`` and ``threshold_acc``, the significance and the CNN probability an
    accumulated candidate (day window k >= 2) needs, on the DEVELOPMENT campaign, after today's
    thresholds (*chosen*: ``snr_min``, ``threshold``, ``neg_veto``).

    *res* must come from the permissive development run of :func:`tune_thresholds` (accumulated
    candidates down to ``min(snr_grid)``, every one verified by the CNN). A quiet day is a
    false-alarm day for a pair ``(s, p)`` when a candidate matching no real blob alerts in today's
    difference at *chosen*, or in any window k >= 2 with significance >= ``s``, CNN probability
    >= ``p`` and the same veto. The K windows are tested together: their false alarms are counted
    as one daily rate, held to the same conservative ``100 (k + 1) / n_quiet <= fa_target`` as
    today's thresholds. Detection only grows as either threshold falls, so each is the lowest that
    meets the budget, the significance first (at today's CNN threshold): ``snr_acc`` from
    *snr_grid*; then, at that ``snr_acc``, ``threshold_acc`` from the values of *p_grid* not above
    today's threshold (None: today's threshold, untuned). When no ``snr_acc`` meets the budget,
    the one with the fewest false-alarm days (the highest among those), today's CNN threshold, and
    ``target_met`` False.

    >>> from types import SimpleNamespace
    >>> w = lambda k, snr, p=0.9: {"k": k, "snr": snr, "probability": p, "neg_snr": -1.0, "depth": 0.05}
    >>> days = [{"day": d, "quiet": True} for d in range(100)]
    >>> recs = [{"candidates": []} for _ in days]
    >>> recs[3]["candidates"] = [{"truth": "false", "windows": [w(2, 6.2)]}]
    >>> recs[9]["candidates"] = [{"truth": "false", "windows": [w(3, 7.4)]}]
    >>> recs[20]["candidates"] = [{"truth": "false", "windows": [w(2, 9.5, 0.35)]}]
    >>> out = tune_accumulated(SimpleNamespace(days=days, records=recs),
    ...                        {"snr_min": 6.5, "threshold": 0.5, "neg_veto": 8.0}, [6.0, 7.0, 8.0], p_grid=[0.3, 0.4, 0.5, 0.9])
    >>> [(r["snr_acc"], r["fa_days"]) for r in out["table"]], out["snr_acc"], out["target_met"]
    ([(6.0, 2), (7.0, 1), (8.0, 0)], 7.0, True)
    >>> [(r["threshold_acc"], r["fa_days"]) for r in out["p_table"]], out["threshold_acc"]
    ([(0.3, 2), (0.4, 1), (0.5, 1)], 0.4)
    """
    quiet = [k for k, d in enumerate(res.days) if d["quiet"]]
    if not quiet:
        raise ValueError("tune_accumulated: the development campaign has no quiet days")
    p, v = float(chosen["threshold"]), float(chosen["neg_veto"])

    def alerts(w, s, q):
        return w["snr"] >= s and w["probability"] >= q and w["neg_snr"] >= -v and deep_enough(w["depth"], depth_floor)

    today_fa, acc = set(), {}  # quiet days with a false one-day alert; per day the false k >= 2 windows (S/N, P)
    for k in quiet:
        for c in res.records[k]["candidates"]:
            if c.get("truth", "false") != "false":
                continue
            w1 = _window(c, 1)
            if w1 is not None and alerts(w1, float(chosen["snr_min"]), p):
                today_fa.add(k)
            for w in c.get("windows", []):
                if w["k"] >= 2 and alerts(w, -np.inf, -np.inf):
                    acc.setdefault(k, []).append((float(w["snr"]), float(w["probability"])))

    def fa_days(s: float, q: float) -> int:
        return len(today_fa | {k for k, ws in acc.items() if any(a >= s and b >= q for a, b in ws)})

    def within(n: int) -> bool:
        return 100.0 * (n + 1) / len(quiet) <= fa_target

    rows = []
    for s in sorted(float(x) for x in snr_grid):
        n = fa_days(s, p)
        rows.append({"snr_acc": s, "fa_days": n, "fa_days_per_100_quiet": 100.0 * n / len(quiet)})
    ok = [r for r in rows if within(r["fa_days"])]
    met = bool(ok)
    pick = ok[0] if met else max(rows, key=lambda r: (-r["fa_days"], r["snr_acc"]))
    p_rows = []
    if met and p_grid is not None:
        for q in sorted({float(x) for x in p_grid if float(x) <= p} | {p}):
            n = fa_days(pick["snr_acc"], q)
            p_rows.append({"threshold_acc": q, "fa_days": n, "fa_days_per_100_quiet": 100.0 * n / len(quiet)})
    p_pick = next((r for r in p_rows if within(r["fa_days"])), None)
    return {"snr_acc": pick["snr_acc"], "chosen": p_pick or pick, "table": rows, "n_quiet_days": len(quiet),
            "today_fa_days": len(today_fa), "fa_target": fa_target, "target_met": met,
            "threshold_acc": p_pick["threshold_acc"] if p_pick else p, "p_table": p_rows}
