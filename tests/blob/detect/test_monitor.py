"""The daily monitor: ordering, detection + localisation, known-blob catalog, log idempotence,
exit codes, corrupt history frames, too little history."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from blob_frames import frames_with_new_blob
from blobhelpers.cli import main
from blobhelpers.blob.io.fitsio import write_image
from blobhelpers.core.errors import InputError
from blobhelpers.blob.detect.monitor import (EXIT_NEW_BLOB, EXIT_NOTHING_NEW, KnownCatalog, Monitor, MonitorConfig, MonitorLog,
                                 confirm, run_monitor)
from blobhelpers.blob.detect.detection import detect_candidates
from blobhelpers.blob.sim.campaign import Campaign
from blobhelpers.blob.sections import CampaignConfig

BLOB = (612.0, 401.0, 7.0, 0.12)  # x, y, radius, depth of the blob that appears in the last frame


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """8 simulated frames; the last one gets a new 12 % blob. File names sort AGAINST the dates."""
    cfg = CampaignConfig(n_frames=8, n_existing=25, new_blob_rate=0.0, persistence_prob=0.0,
                         snowballs_per_frame=0.0, start_date="2024-05-01T01:00:00")
    camp = Campaign(cfg, seed=11)
    out = tmp_path_factory.mktemp("mon_frames")
    paths = []
    for i, img, hdr in frames_with_new_blob(camp, cfg.n_frames, BLOB):
        p = out / f"frame_{cfg.n_frames - i:02d}.fits"  # newest frame has the smallest name
        write_image(p, img, hdr)
        paths.append(p)
    known = KnownCatalog([{"id": b.id, "x": b.x, "y": b.y, "radius": b.shape.radius} for b in camp.blobs])
    known_csv = out.parent / f"{out.name}_known.csv"
    known.write(known_csv)
    return out, paths, known_csv


def _cfg(**kw):
    base = dict(history=6, min_history=4, threshold=0.0)
    base.update(kw)
    return MonitorConfig(**base)


def test_detect_candidates_ignores_single_hot_pixels(rng):
    d = rng.normal(0, 0.02, (512, 512)).astype(np.float32)
    d[100, 100] = 3.0   # a hot pixel 150 sigma high
    d[300, 50] = 1.0
    assert detect_candidates(d) == []


def test_orders_by_date_and_localises_new_blob(frames, trained_tiny):
    folder, paths, known_csv = frames
    mon = Monitor([folder], trained_tiny[2], _cfg(), KnownCatalog.read(known_csv))
    assert [p for p, _ in mon.ordered] == paths  # by DATE-OBS, not by (reversed) name
    res = mon.process(len(paths) - 1)
    rec = res.record
    assert rec["frame"] == paths[-1].name and rec["history"]["n"] == 6
    assert rec["new_blob"] and rec["verdict"] == "new_blob"
    alerts = [c for c in rec["candidates"] if c["new"]]
    best = min(alerts, key=lambda c: np.hypot(c["x"] - BLOB[0], c["y"] - BLOB[1]))
    assert np.hypot(best["x"] - BLOB[0], best["y"] - BLOB[1]) < 2.0
    assert abs(best["radius"] - BLOB[2]) < 2.5
    assert 0.06 < best["depth"] < 0.18
    assert len(alerts) <= 2


def test_previous_day_is_quiet(frames, trained_tiny):
    folder, paths, known_csv = frames
    mon = Monitor(paths[:-1], trained_tiny[2], _cfg(threshold=0.5), KnownCatalog.read(known_csv))
    rec = mon.process(len(paths) - 2).record
    assert not rec["new_blob"], rec["candidates"]


def test_cli_exit_codes_log_idempotent_and_confirm(frames, trained_tiny, tmp_path, capsys):
    folder, paths, known_csv = frames
    out = tmp_path / "out"
    model = str(trained_tiny[2])
    args = [str(folder), "--model", model, "--threshold", "0.0", "--history", "6", "--min-history", "4",
            "--known", str(known_csv), "-o", str(out), "-q"]
    assert main(["monitor", *args]) == EXIT_NEW_BLOB
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["verdict"] == "new_blob" and line["frame"] == paths[-1].name
    log = out / "monitor_log.jsonl"
    assert len(log.read_text().splitlines()) == 1
    assert main(["monitor", *args]) == EXIT_NEW_BLOB  # same frame again: no duplicate line
    assert len(log.read_text().splitlines()) == 1
    entry = MonitorLog(log).read()[0]
    assert entry["versions"]["blobhelpers"] and entry["model_sha256"]
    assert entry["saliency_pngs"] and all(Path(p).is_file() for p in entry["saliency_pngs"])
    assert (out / "summary" / f"{paths[-1].stem}.html").read_text().count("data:image/png;base64") >= 2
    # the team confirms the blob -> tomorrow (here: the same frame again) it is not news
    cat = tmp_path / "known.csv"
    cat.write_text(known_csv.read_text())
    assert main(["confirm", str(cat), "--log", str(log), "--frame", paths[-1].name]) == 0
    rows = KnownCatalog.read(cat).rows
    assert any(np.hypot(float(r["x"]) - BLOB[0], float(r["y"]) - BLOB[1]) < 2 for r in rows)
    args2 = [a if a != str(known_csv) else str(cat) for a in args]
    capsys.readouterr()
    assert main(["monitor", *args2, "--threshold", "0.5"]) == EXIT_NOTHING_NEW
    assert len(log.read_text().splitlines()) == 1  # replaced, not appended


def test_confirm_by_position_and_bad_catalog(tmp_path):
    cat = tmp_path / "k.csv"
    added = confirm(cat, x=10.0, y=20.0, radius=5.0, note="by eye")
    assert added[0]["x"] == 10.0 and KnownCatalog.read(cat).rows[0]["note"] == "by eye"
    confirm(cat, x=11.0, y=20.5, radius=5.0)  # within 3 px: not duplicated
    assert len(KnownCatalog.read(cat)) == 1
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n1,2\n")
    assert main(["monitor", str(tmp_path), "--known", str(bad)]) == 2
    assert main(["confirm", str(cat), "--x", "3"]) == 2


def test_corrupt_history_frame_is_skipped_with_warning(frames, trained_tiny, tmp_path, caplog):
    folder, paths, known_csv = frames
    import shutil

    work = tmp_path / "f"
    shutil.copytree(folder, work)
    victim = work / paths[3].name
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 3])  # truncated FITS: header fine, data missing
    (work / "notes.fits").write_text("not a fits file")
    with caplog.at_level(logging.WARNING, logger="blobhelpers.blob.detect.monitor"):
        recs = run_monitor([work], trained_tiny[2], tmp_path / "o", _cfg(), known_csv, html=False)
    assert recs and recs[0]["new_blob"]
    skipped = {s["file"] for s in recs[0]["skipped_frames"]}
    assert str(victim) in skipped and str(work / "notes.fits") in skipped
    assert recs[0]["history"]["n"] == 6  # 7 earlier frames, one unreadable: reaches one further back
    assert recs[0]["history"]["first"] == paths[0].name
    assert "notes.fits" in caplog.text and victim.name in caplog.text


def test_too_little_history_is_a_clear_error(frames, trained_tiny, tmp_path, capsys):
    folder, paths, known_csv = frames
    code = main(["monitor", *map(str, paths[:3]), "--model", str(trained_tiny[2]), "--history", "6",
                 "--min-history", "4", "-o", str(tmp_path / "o"), "-q"])
    assert code == 2
    err = capsys.readouterr().err
    assert paths[2].name in err and "at least 4" in err
    assert not (tmp_path / "o" / "monitor_log.jsonl").exists()


def test_log_rejects_corrupt_lines(tmp_path):
    log = tmp_path / "monitor_log.jsonl"
    log.write_text('{"frame": "a", "date_obs": "2024"}\nnot json\n')
    with pytest.raises(Exception, match="line 2"):
        MonitorLog(log).read()


def _fake_regression():
    """Three monitored days: a quiet day with a weak-CNN false candidate, an event day whose blob
    has S/N 5.0, and a quiet day with a strong false candidate next to a bright transient."""
    from blobhelpers.blob.evaluate.regression import RegressionResult

    def cand(snr, p, neg, truth, tid=None):
        c = {"snr": snr, "probability": p, "neg_snr": neg, "depth": 0.04, "truth": truth}
        if tid is not None:
            c["truth_id"] = tid
        return c

    res = RegressionResult()
    res.days = [{"day": 30, "quiet": True}, {"day": 31, "quiet": False}, {"day": 32, "quiet": True}]
    res.records = [{"candidates": [cand(6.0, 0.6, -1.0, "false")]},
                   {"candidates": [cand(5.0, 0.95, -2.0, "new today", 7), cand(9.0, 0.99, -1.0, "late", 3)]},
                   {"candidates": [cand(8.0, 0.99, -20.0, "false")]}]
    res.events = [{"id": 7, "appear_index": 31, "depth": 0.05}, {"id": 8, "appear_index": 31, "depth": 0.01}]
    return res


def test_tune_thresholds_picks_the_best_setting_within_the_false_alarm_budget():
    from blobhelpers.blob.evaluate.regression import tune_thresholds

    res = _fake_regression()
    out = tune_thresholds(res, [4.5, 5.5], [0.5, 0.9], [8.0, 1000.0], min_depth=0.03, fa_target=50.0)
    assert out["n_quiet_days"] == 2 and out["n_events_deeper"] == 1 and len(out["table"]) == 8
    # detecting blob 7 needs snr_min <= 5; p >= 0.9 drops day 30's false candidate; the veto drops day 32's
    assert {k: out["chosen"][k] for k in ("snr_min", "threshold", "neg_veto")} == \
        {"snr_min": 4.5, "threshold": 0.9, "neg_veto": 8.0}
    assert out["chosen"]["detection_deeper"] == 1.0 and out["chosen"]["fa_days"] == 0
    row = next(r for r in out["table"] if (r["snr_min"], r["threshold"], r["neg_veto"]) == (4.5, 0.5, 1000.0))
    assert row["fa_days"] == 2 and row["fa_days_per_100_quiet"] == 100.0
    # a "late" alert (an older, still uncatalogued blob) is neither a detection nor a false alarm
    row = next(r for r in out["table"] if (r["snr_min"], r["threshold"], r["neg_veto"]) == (5.5, 0.9, 8.0))
    assert row["detected"] == 0 and row["fa_days"] == 0
    # the budget uses the conservative estimate (k + 1) / n quiet days: when the blob's CNN
    # probability (0.6) is no higher than that of day 30's false candidate, detecting it costs one
    # false-alarm day, which 2 quiet days can afford only for a target of 100 per 100
    res.records[1]["candidates"][0]["probability"] = 0.6
    loose = tune_thresholds(res, [4.5, 5.5], [0.5, 0.9], [8.0, 1000.0], min_depth=0.03, fa_target=100.0)
    assert (loose["chosen"]["detected"], loose["chosen"]["fa_days"]) == (1, 1)
    strict = tune_thresholds(res, [4.5, 5.5], [0.5, 0.9], [8.0, 1000.0], min_depth=0.03, fa_target=50.0)
    assert (strict["chosen"]["detected"], strict["chosen"]["fa_days"]) == (0, 0)
    res.days = [dict(d, quiet=False) for d in res.days]
    with pytest.raises(ValueError, match="quiet days"):
        tune_thresholds(res, [5.0], [0.5], [8.0])


def test_tune_thresholds_too_few_quiet_days_keeps_the_best_detection_among_the_fewest_false_alarms():
    """With 2 quiet days a target of 1 per 100 cannot be met even by zero false-alarm days; the
    choice must still be the best detection among the settings with the fewest false alarms (not
    the first such setting of the grid) and say that the target was not met."""
    from blobhelpers.blob.evaluate.regression import tune_thresholds

    res = _fake_regression()
    out = tune_thresholds(res, [5.5, 4.5], [0.5, 0.9], [8.0, 1000.0], min_depth=0.03, fa_target=1.0)
    assert out["target_met"] is False
    # (5.5, 0.9, 8.0) comes first in the grid with 0 false-alarm days but misses blob 7 (S/N 5.0)
    assert {k: out["chosen"][k] for k in ("snr_min", "threshold", "neg_veto")} == \
        {"snr_min": 4.5, "threshold": 0.9, "neg_veto": 8.0}
    assert out["chosen"]["fa_days"] == 0 and out["chosen"]["detected"] == 1
    assert tune_thresholds(res, [5.5, 4.5], [0.5, 0.9], [8.0, 1000.0], min_depth=0.03,
                           fa_target=50.0)["target_met"] is True


def test_tuned_thresholds_apply_only_to_their_model(tmp_path):
    from blobhelpers.core.errors import InputError
    from blobhelpers.blob.detect.monitor import apply_tuned, read_tuned, write_tuned

    model = tmp_path / "m.keras"
    model.write_bytes(b"model A")
    other = tmp_path / "other.keras"
    other.write_bytes(b"model B")
    f = write_tuned(tmp_path / "thresholds.json", {"snr_min": 4.5, "threshold": 0.9, "neg_veto": 6.0}, model,
                    {"seed": 1})
    cfg = MonitorConfig()
    assert apply_tuned(cfg, f, model, keep=("snr_min",)) == ["threshold=0.9", "neg_veto=6"]
    assert (cfg.snr_min, cfg.threshold, cfg.neg_veto) == (5.5, 0.9, 6.0)
    cfg2 = MonitorConfig()
    assert apply_tuned(cfg2, f, other) == [] and cfg2.threshold == 0.5
    assert apply_tuned(cfg2, tmp_path / "absent.json", model) == []
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"snr_min": "high", "threshold": 0.5, "neg_veto": 8}))
    with pytest.raises(InputError, match="bad.json.*snr_min"):
        read_tuned(bad)
    assert MonitorConfig.from_dict({"snr_min": None, "threshold": None, "neg_veto": None, "tune": {}}).snr_min == 5.5


def test_the_day_windows_cnn_threshold_is_tuned_applied_and_follows_a_hand_set_threshold(tmp_path):
    """A tuned threshold_acc applies to the k >= 2 windows only; a CNN threshold set by hand (kept) holds for
    every window unless threshold_acc is set too; a file without it (older) leaves the windows at threshold."""
    from blobhelpers.blob.detect.monitor import apply_tuned, write_tuned

    model = tmp_path / "m.keras"
    model.write_bytes(b"model A")
    f = write_tuned(tmp_path / "t.json", {"snr_min": 6.0, "threshold": 0.6, "neg_veto": 8.0, "snr_acc": 5.5,
                                          "threshold_acc": 0.5}, model, {"seed": 1})
    cfg = MonitorConfig()
    apply_tuned(cfg, f, model)
    assert (cfg.cnn_threshold(1), cfg.cnn_threshold(2), cfg.cnn_threshold(3)) == (0.6, 0.5, 0.5)
    by_hand = MonitorConfig(threshold=0.8)
    assert "threshold_acc=0.5" not in apply_tuned(by_hand, f, model, keep=("threshold",))
    assert (by_hand.cnn_threshold(1), by_hand.cnn_threshold(2)) == (0.8, 0.8)
    both = MonitorConfig(threshold=0.8, threshold_acc=0.7)
    apply_tuned(both, f, model, keep=("threshold", "threshold_acc"))
    assert (both.cnn_threshold(1), both.cnn_threshold(2)) == (0.8, 0.7)
    old = write_tuned(tmp_path / "old.json", {"snr_min": 6.0, "threshold": 0.6, "neg_veto": 8.0}, model, {"seed": 1})
    cfg = MonitorConfig()
    apply_tuned(cfg, old, model)
    assert cfg.threshold_acc is None and cfg.cnn_threshold(2) == 0.6
    # params.yaml: null means tuned; a number is fixed there
    assert MonitorConfig.resolve({"monitor": {"threshold_acc": None}})[1] == set()
    assert MonitorConfig.resolve({"monitor": {"threshold_acc": 0.4}})[1] == {"threshold_acc"}
    # a CNN threshold fixed in params.yaml holds for the day windows too: neither takes the tuned value
    assert MonitorConfig.resolve({"monitor": {"threshold": 0.7}})[1] == {"threshold", "threshold_acc"}


def test_process_many_in_threads_equals_one_by_one(frames, trained_tiny, tmp_path):
    """Frames differenced two at a time give exactly the records of process() in turn, including
    a known-catalog entry added by the caller between two days, and an unreadable frame is raised
    in its turn or skipped with a warning."""
    folder, paths, known_csv = frames

    def run(workers, **kw):
        mon = Monitor(paths, trained_tiny[2], _cfg(min_history=3), KnownCatalog.read(known_csv))
        recs = []
        for i, res in mon.process_many(mon.targets(all_frames=True), with_arrays=True, workers=workers, **kw):
            rec = dict(res.record)
            rec.pop("processed_utc")
            recs.append((i, json.dumps(rec, sort_keys=True), float(np.nansum(res.diff))))
            if len(recs) == 2:  # the caller confirms a blob before the next day is judged
                mon.known.add(BLOB[0], BLOB[1], BLOB[2], BLOB[3], rec["date_obs"][:10], "test")
        return recs, mon

    serial, mon1 = run(1)
    threaded, _ = run(2)
    assert [r[0] for r in serial] == list(range(3, len(paths)))
    assert threaded == serial
    # the blob added after day 2 is known on the last day: no alert there, however the frames were scheduled
    assert not json.loads(serial[-1][1])["new_blob"]
    # one by one, by hand: the same
    mon = Monitor(paths, trained_tiny[2], _cfg(min_history=3), KnownCatalog.read(known_csv))
    by_hand = []
    for n, i in enumerate(mon.targets(all_frames=True)):
        res = mon.process(i, with_arrays=True)
        rec = dict(res.record)
        rec.pop("processed_utc")
        by_hand.append((i, json.dumps(rec, sort_keys=True), float(np.nansum(res.diff))))
        if n == 1:
            mon.known.add(BLOB[0], BLOB[1], BLOB[2], BLOB[3], rec["date_obs"][:10], "test")
    assert by_hand == serial
    # one frame alone (the daily job): what process() gives, and the frames read are let go after its difference
    last = len(paths) - 1
    one, alone = (Monitor(paths, trained_tiny[2], _cfg(min_history=3), KnownCatalog.read(known_csv))
                  for _ in range(2))
    want = one.process(last, with_arrays=True)
    assert any(a is not None for a in one._cache.values())
    [(i, got)] = list(alone.process_many([last], with_arrays=True))
    assert i == last and not any(a is not None for a in alone._cache.values())
    assert {**got.record, "processed_utc": 0} == {**want.record, "processed_utc": 0}
    assert np.array_equal(got.diff, want.diff, equal_nan=True)

    # an unusable frame (all NaN) in the middle: raised in its turn, or skipped with a warning
    from astropy.io import fits

    bad = tmp_path / "frames"
    bad.mkdir()
    for p in paths:
        (bad / p.name).write_bytes(p.read_bytes())
    victim = bad / paths[5].name
    with fits.open(victim, mode="update") as hdul:
        hdul[0].data = np.full_like(hdul[0].data, np.nan)
    for workers in (1, 2):
        mon = Monitor([bad], trained_tiny[2], _cfg(min_history=3), KnownCatalog.read(known_csv))
        got = []
        with pytest.raises(InputError, match=victim.name):
            for i, _ in mon.process_many(range(3, len(paths)), workers=workers):
                got.append(i)
        assert got == [3, 4]
        mon = Monitor([bad], trained_tiny[2], _cfg(min_history=3), KnownCatalog.read(known_csv))
        assert [i for i, _ in mon.process_many(range(3, len(paths)), workers=workers, skip_errors=True)] == [3, 4, 6, 7]
    mon = Monitor([bad], trained_tiny[2], _cfg(min_history=3), KnownCatalog.read(known_csv))
    assert list(mon.process_many([5], skip_errors=True)) == []
    with pytest.raises(InputError, match=victim.name):
        list(mon.process_many([5]))


def test_known_catalog_match_uses_each_blobs_own_radius_plus_the_margin():
    """A candidate on the rim of a large known blob is that blob, not a new one; near a small one it is new."""
    from blobhelpers.blob.detect.monitor import KnownCatalog

    cat = KnownCatalog([{"id": 0, "x": 100.0, "y": 100.0, "radius": 20.0},
                        {"id": 1, "x": 300.0, "y": 300.0, "radius": 1.0},
                        {"id": 2, "x": 130.0, "y": 100.0, "radius": 6.0}])
    assert cat.match(118.0, 100.0, margin=3.0)["id"] == 0  # 18 px out: inside 20 + 3
    assert cat.match(100.0, 122.5, margin=3.0)["id"] == 0  # the rim, above
    assert cat.match(100.0, 124.0, margin=3.0) is None  # 24 px out: outside 20 + 3
    assert cat.match(305.0, 300.0, margin=3.0) is None  # 5 px from a 1-px blob: outside 1 + 3
    assert cat.match(303.5, 300.0, margin=3.0)["id"] == 1
    assert cat.match(124.0, 100.0, margin=3.0)["id"] == 2  # inside both discs: the nearest centre


def _update_day(args):
    """One daily run's log update (in its own process): many records of one day, merged into the shared log."""
    path, day, n, start = args
    import time as _time

    while _time.time() < start:  # both processes begin together
        _time.sleep(0.001)
    for k in range(n):
        MonitorLog(path).update([{"frame": f"day{day}_{k}.fits", "date_obs": f"2026-01-{day:02d}T{k:02d}:00:00"}])
    return day


def test_two_daily_runs_finishing_together_keep_every_record(tmp_path):
    """The log's read-merge-write holds a lock: two processes writing different days lose nothing."""
    import multiprocessing as mp
    import time

    path = tmp_path / "out" / "monitor_log.jsonl"
    start = time.time() + 0.5
    with mp.get_context("spawn").Pool(2) as pool:
        assert sorted(pool.map(_update_day, [(path, 1, 40, start), (path, 2, 40, start)])) == [1, 2]
    rows = MonitorLog(path).read()
    assert len(rows) == 80 and len({r["frame"] for r in rows}) == 80
    assert [r["date_obs"] for r in rows] == sorted(r["date_obs"] for r in rows)


def test_without_the_lock_the_same_runs_would_lose_records(tmp_path):
    """The test above can fail: with the lock disabled, overlapping read-merge-writes drop records."""
    import multiprocessing as mp
    import time

    path = tmp_path / "out" / "monitor_log.jsonl"
    lost = 0
    for attempt in range(5):  # lost updates are likely, not certain, on any one try
        if path.exists():
            path.unlink()
        start = time.time() + 0.5
        with mp.get_context("fork").Pool(2, initializer=_no_lock) as pool:
            pool.map(_update_day, [(path, 1, 40, start), (path, 2, 40, start)])
        lost = 80 - len(MonitorLog(path).read())
        if lost:
            break
    assert lost > 0


def _no_lock():
    import contextlib

    MonitorLog.locked = lambda self: contextlib.nullcontext()


def test_known_blobs_are_masked_from_a_candidates_subframe_but_not_the_candidate_itself(frames, trained_tiny):
    """The CNN sees a candidate's subframe with the known blobs masked (so that none can vouch for
    it), but a candidate beside a known blob lies inside that blob's disc + margin: the candidate
    itself must stay visible, or the CNN judges a subframe without it; nothing else is uncovered."""
    out, paths, _ = frames
    known = KnownCatalog([{"id": 0, "x": 500.0, "y": 500.0, "radius": 6.0},
                          {"id": 1, "x": 200.0, "y": 800.0, "radius": 5.0}])
    mon = Monitor(paths, trained_tiny[2], _cfg(known_margin=4.0), known)
    img = np.arange(1024 * 1024, dtype=np.float32).reshape(1024, 1024)
    plain, _ = mon._mask_known(img, None, 0)
    assert np.isnan(plain[500, 509]) and np.isnan(plain[800, 200]) and np.isfinite(plain[500, 511])
    # a candidate 8 px from blob 0's centre (inside 6 + 4), kept within 3 px of it
    kept, _ = mon._mask_known(img, None, 0, keep=[(508.0, 500.0, 3.0)])
    assert kept[500, 508] == img[500, 508] and kept[500, 506] == img[500, 506]   # within 3 px of it
    assert np.isnan(kept[500, 504]) and np.isnan(kept[500, 500])                 # the rest of blob 0's disc
    assert np.isnan(kept[800, 200])                                               # blob 1 untouched
    assert np.isnan(img).sum() == 0                                              # the caller's image intact
    # a candidate outside every disc uncovers nothing, even where its own disc overlaps one
    kept, _ = mon._mask_known(img, None, 0, keep=[(513.0, 500.0, 6.0)])
    assert np.array_equal(np.isnan(kept), np.isnan(plain))
    # the scaled image (ISR representation) follows the same rule, with 0 for masked
    sc = np.ones_like(img)
    _, ks = mon._mask_known(img, sc, 0, keep=[(508.0, 500.0, 3.0)])
    assert ks[500, 508] == 1.0 and ks[500, 500] == 0.0 and sc.min() == 1.0


def test_an_alert_the_history_holds_is_judged_as_a_catalogued_blob(frames, trained_tiny):
    """Alerts already raised absorb what lies on them while the differences may carry them; once every
    frame of the history of the oldest day in the day windows was taken on or after the alert's day,
    the alert joins the known blobs for that frame (judged as one: registration residual, the blob
    itself, or something deeper on it)."""
    out, paths, _ = frames
    mon = Monitor(paths, trained_tiny[2], _cfg(accumulate=(2, 3)), KnownCatalog([{"id": 7, "x": 10.0, "y": 10.0, "radius": 3.0}]))
    days = [mon.ordered[j][1].date().isoformat() for j in range(len(mon.ordered))]
    assert days == sorted(days) and len(set(days)) == len(days) == 8
    hist = list(range(3, 7))                          # the 3-day window's oldest day has history 1..4
    mon.raised.add(100.0, 100.0, 5.0, 0.03, days[0], "alert")   # before frame 1: held
    mon.raised.add(300.0, 300.0, 5.0, 0.03, days[1], "alert")   # on frame 1's day: held
    mon.raised.add(500.0, 500.0, 5.0, 0.03, days[2], "alert")   # frame 1 lacks it: not yet
    mon.raised.add(700.0, 700.0, 5.0, 0.03, "", "alert")         # no date: never held
    known, raised = mon.catalogs_for(hist)
    assert [(r["x"], r["id"]) for r in known.rows] == [(10.0, 7), (100.0, f"alert of {days[0]}"),
                                                       (300.0, f"alert of {days[1]}")]
    assert [r["x"] for r in raised.rows] == [500.0, 700.0]
    assert len(mon.known) == 1 and len(mon.raised) == 4             # the monitor's own catalogs untouched
    known, raised = mon.catalogs_for(list(range(4, 8)))              # a day later: the third is held too
    assert [r["x"] for r in known.rows] == [10.0, 100.0, 300.0, 500.0] and [r["x"] for r in raised.rows] == [700.0]
    mon.config = dataclasses.replace(mon.config, accumulate=())      # today's difference alone: its own history
    assert [r["x"] for r in mon.catalogs_for(hist)[0].rows] == [10.0, 100.0, 300.0, 500.0]
