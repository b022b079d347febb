"""Evidence accumulated over days, alerts not raised twice, and registration residuals of deep
existing blobs (blobhelpers.blob.detect.monitor.accumulate and its use in the daily monitor).

Every series here is a small simulated campaign (history of 8 frames) run day by day as the daily
job runs: ``run_monitor`` on the frames up to that day, with the same ``--out`` folder. The CNN
threshold is 0, so these tests judge the detection core, the day windows and the residual fit.
"""

from __future__ import annotations

import numpy as np
import pytest

from blobhelpers.blob.detect.monitor import MonitorConfig, run_monitor
from blobhelpers.blob.detect.monitor.accumulate import registration_explained
from blobhelpers.blob.io.fitsio import write_image
from blobhelpers.blob.sections import CampaignConfig
from blobhelpers.blob.sim.campaign import Campaign
from blobhelpers.blob.sim.shapes import BlobShape, render

N_FRAMES, APPEAR = 15, 11


def _series(out, seed, new=None, deep=None, deep_jitter=0.0, shift_sigma=0.02, later=None, n_frames=N_FRAMES):
    """Frames 0..n_frames-1 (default 14) of a quiet campaign; *new* (x, y, r, depth) appears on frame 11 and stays;
    *deep* (x, y, r, depth) is an existing blob that also moves by its own N(0, deep_jitter) px
    each frame (a registration error the global shift cannot remove); *later* (x, y, r, depth,
    frame) appears on that frame and stays."""
    cfg = CampaignConfig(n_frames=n_frames, n_existing=12, new_blob_rate=0.0, persistence_prob=0.0,
                         snowballs_per_frame=0.0, shift_sigma=shift_sigma, jump_fraction=0.0,
                         start_date="2024-05-01T01:00:00")
    camp = Campaign(cfg, seed=seed)
    rng = np.random.default_rng(seed + 100)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n_frames):
        img, hdr, _ = camp.frame(i)
        occ = np.zeros_like(img)
        sx, sy = camp.shifts[i]
        if deep is not None:
            ex, ey = rng.normal(0.0, deep_jitter, 2)
            render(occ, deep[0] + sx + ex, deep[1] + sy + ey, BlobShape(deep[2]), deep[3])
        if new is not None and i >= APPEAR:
            render(occ, new[0] + sx, new[1] + sy, BlobShape(new[2]), new[3])
        if later is not None and i >= later[4]:
            render(occ, later[0] + sx, later[1] + sy, BlobShape(later[2]), later[3])
        p = out / f"f{i:02d}.fits"
        write_image(p, img * (1 - occ), hdr)
        paths.append(p)
    return paths


def _cfg(**kw):
    base = dict(history=8, min_history=8, threshold=0.0, snr_min=6.5, snr_acc=7.0, saliency=False)
    base.update(kw)
    return MonitorConfig(**base)


def _daily(paths, model, out, cfg, days=range(9, N_FRAMES)):
    """The daily job: one run per day on the frames up to that day, the same OUT each day."""
    return {day: run_monitor(paths[:day + 1], model, out, cfg, html=False)[0] for day in days}


def _near(rec, x, y, r=8.0):
    return [c for c in rec["candidates"] if np.hypot(c["x"] - x, c["y"] - y) < r]


FAINT = (600.0, 420.0, 6.0, 0.02)  # a 2 % blob, radius 6 px: below today's threshold on its first day


@pytest.fixture(scope="module")
def faint_series(tmp_path_factory):
    return _series(tmp_path_factory.mktemp("faint"), seed=4, new=FAINT)


def test_a_faint_blob_is_found_by_the_accumulated_test_and_not_raised_again(faint_series, trained_tiny, tmp_path):
    recs = _daily(faint_series, trained_tiny[2], tmp_path / "out", _cfg())
    alert_days = [d for d, r in recs.items() if any(c["new"] for c in _near(r, *FAINT[:2]))]
    assert alert_days == [APPEAR + 1], {d: _near(r, *FAINT[:2]) for d, r in recs.items()}  # day 2 of the blob
    alert = next(c for c in _near(recs[APPEAR + 1], *FAINT[:2]) if c["new"])
    assert alert["k"] >= 2 and alert["snr"] >= 7.0  # an accumulated window raised it
    assert alert["appeared_days_ago"] == 1  # the best window says: it appeared yesterday
    assert np.hypot(alert["x"] - FAINT[0], alert["y"] - FAINT[1]) < 2.0
    # today's difference alone does not reach the alert threshold on its first day
    w1 = [w for c in _near(recs[APPEAR], *FAINT[:2]) for w in c["windows"] if w["k"] == 1]
    assert all(w["snr"] < 6.5 for w in w1)
    for day in range(APPEAR + 2, N_FRAMES):  # still there, still significant, never raised again
        assert not recs[day]["new_blob"], _near(recs[day], *FAINT[:2])
    # ... because the alert raised the day before absorbs it (in one window or another)
    assert any(a["by"] == "alert already raised" and np.hypot(a["x"] - FAINT[0], a["y"] - FAINT[1]) < 4.0
               for day in (APPEAR + 2, APPEAR + 3) for a in recs[day]["absorbed"]), \
        {day: recs[day]["absorbed"] for day in (APPEAR + 2, APPEAR + 3)}
    # the same without the windows: today's difference alone raises it later, if at all
    one_day = _daily(faint_series, trained_tiny[2], tmp_path / "out1", _cfg(accumulate=()))
    one_day_alerts = [d for d, r in one_day.items() if any(c["new"] for c in _near(r, *FAINT[:2]))]
    assert not one_day_alerts or one_day_alerts[0] > APPEAR + 1, one_day_alerts


def test_the_day_windows_have_their_own_cnn_threshold(faint_series, trained_tiny, tmp_path):
    """threshold_acc judges the k >= 2 windows and threshold today's difference: with today's CNN threshold
    out of reach (above 1) the faint blob is still raised by a window; with the windows' out of reach it is not."""
    days = [APPEAR + 1]
    windows_only = _daily(faint_series, trained_tiny[2], tmp_path / "a", _cfg(threshold=1.01, threshold_acc=0.0), days)
    alerts = [c for c in _near(windows_only[APPEAR + 1], *FAINT[:2]) if c["new"]]
    assert alerts and all(c["k"] >= 2 for c in alerts)
    assert not any(c["new"] and c["k"] == 1 for c in windows_only[APPEAR + 1]["candidates"])
    today_only = _daily(faint_series, trained_tiny[2], tmp_path / "b", _cfg(threshold=0.0, threshold_acc=1.01), days)
    assert not any(c["new"] and c["k"] >= 2 for c in today_only[APPEAR + 1]["candidates"])
    assert not [c for c in _near(today_only[APPEAR + 1], *FAINT[:2]) if c["new"]]


def test_rerunning_a_day_gives_the_same_verdict(faint_series, trained_tiny, tmp_path):
    cfg = _cfg()
    out = tmp_path / "out"
    first = _daily(faint_series, trained_tiny[2], out, cfg, days=[APPEAR + 1])[APPEAR + 1]
    again = run_monitor(faint_series[:APPEAR + 2], trained_tiny[2], out, cfg, html=False)[0]
    assert first["new_blob"] and again["new_blob"]  # the log holds today's alert, which is not "earlier"
    assert [c["x"] for c in again["candidates"] if c["new"]] == [c["x"] for c in first["candidates"] if c["new"]]


def test_a_quiet_series_raises_nothing(trained_tiny, tmp_path):
    paths = _series(tmp_path / "frames", seed=4)
    recs = _daily(paths, trained_tiny[2], tmp_path / "out", _cfg())
    assert not any(r["new_blob"] for r in recs.values()), {d: r["candidates"] for d, r in recs.items()}


DEEP = (500.0, 500.0, 8.0, 0.30)  # a 30 % deep existing blob, radius 8 px


def test_registration_residuals_of_a_deep_blob_are_not_new_blobs(trained_tiny, tmp_path):
    paths = _series(tmp_path / "frames", seed=7, deep=DEEP, deep_jitter=0.5, shift_sigma=0.35)
    recs = _daily(paths, trained_tiny[2], tmp_path / "out", _cfg())
    assert not any(r["new_blob"] for r in recs.values()), {d: _near(r, *DEEP[:2], 20) for d, r in recs.items()}
    rim = [c for r in recs.values() for c in _near(r, *DEEP[:2], 20)]
    assert any(c["snr_raw"] >= 6.5 > c["snr"] and c["registration_explained"] > 0.3 for c in rim)
    # without the residual fit the same rim residual raises an alert: the fit is what stops it
    off = _daily(paths, trained_tiny[2], tmp_path / "off", _cfg(residual_gradient=1e9))
    assert any(r["new_blob"] for r in off.values())


def test_a_new_blob_on_the_rim_of_a_deep_blob_is_found(trained_tiny, tmp_path):
    new = (DEEP[0] + DEEP[2], DEEP[1], 4.0, 0.05)  # a 5 % blob centred on the old blob's rim
    paths = _series(tmp_path / "frames", seed=7, new=new, deep=DEEP, deep_jitter=0.5, shift_sigma=0.35)
    recs = _daily(paths, trained_tiny[2], tmp_path / "out", _cfg(), days=[APPEAR])
    hits = [c for c in _near(recs[APPEAR], *new[:2], 4.0) if c["new"]]
    assert hits and hits[0]["k"] == 1 and hits[0]["registration_explained"] < 0.5


def test_registration_explained_fits_a_crescent_not_a_disc():
    rng = np.random.default_rng(0)
    occ = np.zeros((128, 128), np.float32)
    render(occ, 64.0, 64.0, BlobShape(8.0), 0.3)
    stack = 1 - occ + rng.normal(0, 0.004, occ.shape).astype(np.float32)
    moved = np.zeros_like(occ)
    render(moved, 64.4, 64.2, BlobShape(8.0), 0.3)
    crescent = moved - occ + rng.normal(0, 0.02, occ.shape).astype(np.float32)
    x = float(np.argmax((moved - occ)[64]))
    assert registration_explained(crescent, stack, x, 64.0, 2.0) > 0.7
    disc = np.zeros_like(occ)
    render(disc, 72.0, 64.0, BlobShape(4.0), 0.08)
    assert registration_explained(disc + rng.normal(0, 0.02, occ.shape).astype(np.float32), stack, 72.0, 64.0,
                                  3.5) < 0.15
    # no blob edge nearby: nothing to explain
    assert registration_explained(disc, np.ones_like(stack), 72.0, 64.0, 3.5) == 0.0


BIG = (432.0, 656.0, 13.0, 0.10)  # a 10 % deep new blob, radius 13 px, centred on a 32-px block: half of it


def test_a_deep_large_new_blob_is_found_on_its_first_day(trained_tiny, tmp_path):
    """Its own frame's illumination (block medians) and the S/N map's block background would dig a
    negative ring around it, and the detection core would reject it as a dipole or a bright
    transient; left out of both (``renormalize``), it is alerted on its first day."""
    paths = _series(tmp_path / "frames", seed=5, new=BIG)
    on = _daily(paths, trained_tiny[2], tmp_path / "on", _cfg(), days=[APPEAR])[APPEAR]
    hits = [c for c in _near(on, *BIG[:2]) if c["new"]]
    assert hits and hits[0]["k"] == 1, _near(on, *BIG[:2])
    assert np.hypot(hits[0]["x"] - BIG[0], hits[0]["y"] - BIG[1]) < 1.5
    assert hits[0]["depth"] > 0.75 * BIG[3]  # the depth is no longer eaten by the normalisation
    off = _daily(paths, trained_tiny[2], tmp_path / "off", _cfg(renormalize=False), days=[APPEAR])[APPEAR]
    assert not any(c["new"] for c in _near(off, *BIG[:2])), _near(off, *BIG[:2])
    rejected = [r for r in off["rejected"] if np.hypot(r["x"] - BIG[0], r["y"] - BIG[1]) < 8]
    assert rejected and rejected[0]["reason"] in ("dipole", "bright transient")


def test_a_new_blob_beside_a_known_blob_is_not_taken_for_it(trained_tiny, tmp_path):
    """A known blob absorbs the candidates centred on it (the blob itself, e.g. confirmed lately) and
    its registration residuals; a new blob 9 px from the centre of a 12-px known blob is judged."""
    from blobhelpers.blob.detect.monitor import KnownCatalog

    old = (300.0, 300.0, 12.0, 0.03)
    new = (309.0, 300.0, 6.0, 0.08)
    paths = _series(tmp_path / "frames", seed=6, new=new, deep=old)
    known = tmp_path / "known.csv"
    KnownCatalog([{"id": 0, "x": old[0], "y": old[1], "radius": old[2], "depth": old[3]}]).write(known)
    rec = run_monitor(paths[:APPEAR + 1], trained_tiny[2], tmp_path / "out", _cfg(), known_path=known, html=False)[0]
    hits = [c for c in _near(rec, *new[:2], 4.0) if c["new"]]
    assert hits and hits[0]["near_known"] == 0, rec["candidates"]
    # the known blob itself, shown in full by a difference whose history lacks it, is absorbed
    lately = (600.0, 600.0, 8.0, 0.08)
    paths = _series(tmp_path / "frames2", seed=6, new=lately)
    KnownCatalog([{"id": 0, "x": lately[0] + 0.8, "y": lately[1] - 0.6, "radius": lately[2]}]).write(known)
    rec = run_monitor(paths[:APPEAR + 1], trained_tiny[2], tmp_path / "out2", _cfg(), known_path=known, html=False)[0]
    assert not _near(rec, *lately[:2]) and rec["n_known_matched"] >= 1, rec["candidates"]


def test_a_level_the_history_has_and_today_lacks_leaves_no_alert_on_existing_blobs(trained_tiny, tmp_path):
    """An additive level that differs between the history and today (here the history's frames carry
    12 % of the sky that the newest frame lacks, as a bias pedestal left in trimmed DN files does when
    the sky changes) makes every existing blob deeper today by the same factor: the difference shows
    each one as a faint concentric disc that no registration shift explains. The global fit of the
    history's blob pattern removes it; with the fit off, the deep blob alerts."""
    from astropy.io import fits

    paths = _series(tmp_path / "frames", seed=8, deep=DEEP)
    with fits.open(paths[APPEAR], mode="update") as hdul:
        data = hdul[0].data.astype(np.float32)
        hdul[0].data = data - np.float32(0.12 * np.nanmedian(data))
    on = run_monitor(paths[:APPEAR + 1], trained_tiny[2], tmp_path / "on", _cfg(), html=False)[0]
    assert not on["new_blob"], on["candidates"]
    assert 0.08 < on["pattern_scale"] < 0.2  # dips ~14 % deeper today: (history - today) = a (1 - P)
    off = run_monitor(paths[:APPEAR + 1], trained_tiny[2], tmp_path / "off", _cfg(pattern_fit=False), html=False)[0]
    assert any(c["new"] for c in _near(off, *DEEP[:2], 6.0)), off["candidates"]


def test_the_daily_job_reuses_earlier_days_saved_differences_and_gives_the_same_verdicts(faint_series, trained_tiny,
                                                                                           tmp_path):
    """With products saved (the command's default), a day's run reads the two earlier days' one-day
    differences from OUT/products instead of making them again -- and its record is what a run
    that makes them gives. A frame whose pixels changed since (same name) is not reused."""
    from blobhelpers.blob.detect.monitor import Monitor
    from blobhelpers.blob.io.fitsio import read_frame

    cfg, model = _cfg(), trained_tiny[2]
    out = tmp_path / "out"
    for day in (APPEAR, APPEAR + 1):
        run_monitor(faint_series[:day + 1], model, out, cfg, html=False, save_products=True)
    day = APPEAR + 2
    saved = Monitor(faint_series[:day + 1], model, cfg, products=out / "products")
    fresh = Monitor(faint_series[:day + 1], model, cfg)
    a, b = saved.process(day).record, fresh.process(day).record
    assert sorted(saved.reused) == ["f11_diff.fits", "f12_diff.fits"] and fresh.reused == []
    strip = ("processed_utc",)
    assert {k: v for k, v in a.items() if k not in strip} == {k: v for k, v in b.items() if k not in strip}
    assert max(w["k"] for w in _near(a, *FAINT[:2])[0]["windows"]) == 3   # the day windows were searched
    # yesterday's frame rewritten with other pixels under the same name: its saved difference is stale
    changed = tmp_path / "changed"
    changed.mkdir()
    paths = []
    for p in faint_series[:day + 1]:
        q = changed / p.name
        fr = read_frame(p)
        write_image(q, fr.data * (0.99 if p == faint_series[day - 1] else 1.0), fr.header)
        paths.append(q)
    again = Monitor(paths, model, cfg, products=out / "products")
    again.process(day)
    assert again.reused == ["f11_diff.fits"]   # f12's own pixels changed; f11's inputs did not


def test_a_new_blob_on_top_of_a_known_blob_is_found_and_a_raised_alert_is_not_raised_again(trained_tiny, tmp_path):
    """A new blob centred on a catalogued blob that the history holds is more than that blob can
    leave (it leaves nothing but registration residuals): judged, and found. An alert already
    raised absorbs what lies on it on the next days: it is not raised again."""
    from blobhelpers.blob.detect.monitor import KnownCatalog

    old = (400.0, 500.0, 6.0, 0.025)        # catalogued, in the history from the start
    new = (401.5, 500.5, 5.0, 0.05)         # appears on frame 11, almost concentric
    paths = _series(tmp_path / "frames", seed=8, new=new, deep=old)
    known = tmp_path / "known.csv"
    KnownCatalog([{"id": 3, "x": old[0], "y": old[1], "radius": old[2]}]).write(known)   # depth unknown
    rec = run_monitor(paths[:APPEAR + 1], trained_tiny[2], tmp_path / "out", _cfg(), known_path=known, html=False)[0]
    hits = [c for c in _near(rec, *new[:2], 4.0) if c["new"]]
    assert hits and hits[0]["near_known"] == 3 and hits[0]["on_known"], rec["candidates"]
    # with the rule off (known_excess huge) the known blob absorbs it, as it did before
    rec = run_monitor(paths[:APPEAR + 1], trained_tiny[2], tmp_path / "out_off", _cfg(known_excess=1e9),
                      known_path=known, html=False)[0]
    assert not any(c["new"] for c in _near(rec, *new[:2], 4.0)), rec["candidates"]
    # ... and the record says what it set aside there, and why
    from blobhelpers.blob.evaluate.regression import miss_reason

    assert any(a["by"] == "catalogued blob" and np.hypot(a["x"] - new[0], a["y"] - new[1]) < 4.0
               for a in rec["absorbed"]), rec["absorbed"]
    assert miss_reason(rec, new[0], new[1], new[2] + 2.0, _cfg(known_excess=1e9)) == "absorbed: catalogued blob"
    # a fresh blob alerted on its first day is not raised again the day after
    fresh = (200.0, 700.0, 8.0, 0.03)
    paths = _series(tmp_path / "frames2", seed=8, new=fresh)
    out = tmp_path / "out2"
    first = run_monitor(paths[:APPEAR + 1], trained_tiny[2], out, _cfg(), html=False)[0]
    assert any(c["new"] for c in _near(first, *fresh[:2])), first["candidates"]
    again = run_monitor(paths[:APPEAR + 2], trained_tiny[2], out, _cfg(), html=False)[0]
    assert not any(c["new"] for c in _near(again, *fresh[:2], 12.0)) and again["n_already_alerted"] >= 1
    assert any(a["by"] == "alert already raised" and np.hypot(a["x"] - fresh[0], a["y"] - fresh[1]) < fresh[2]
               for a in again["absorbed"]), again["absorbed"]
    assert miss_reason(first, *fresh[:2], fresh[2] + 2.0, _cfg()) == "alerted"


def test_a_new_blob_on_an_alert_already_raised_is_found_from_the_day_over_day_change(trained_tiny, tmp_path):
    """A blob alerted on frame 11 absorbs what is seen on it later (it is in every difference until the
    history holds it); a new blob appearing on it two days later is found from what changed since the
    day before (``on_raised``), once; without it, nothing is raised after the first alert."""
    first = (300.0, 640.0, 9.0, 0.08)
    on_top = (304.0, 642.0, 4.0, 0.06, APPEAR + 2)
    cfg = _cfg()
    # without a blob on top: a small 30 % deep alerted blob, the pointing jittering by 0.5 px each frame:
    # the change holds the alerted blob's crescent (S/N ~16, a dipole), which its fitted motion explains
    for later, blob, jitter in ((on_top, first, 0.02), (None, (300.0, 640.0, 4.0, 0.3), 0.5)):
        first = blob
        paths = _series(tmp_path / f"frames_{later is None}", seed=12, new=first, later=later, shift_sigma=jitter)
        recs = _daily(paths, trained_tiny[2], tmp_path / f"out_{later is None}", cfg, days=range(APPEAR, N_FRAMES))
        assert any(c["new"] for c in _near(recs[APPEAR], *first[:2], first[2])), recs[APPEAR]["candidates"]
        assert not any(c["new"] for c in _near(recs[APPEAR + 1], *first[:2], 16.0)), recs[APPEAR + 1]["candidates"]
        late = [c for c in _near(recs[APPEAR + 2], *first[:2], 16.0) if c["new"]]
        if later is None:
            assert not late and not any(c["new"] for c in _near(recs[APPEAR + 3], *first[:2], 16.0))
            continue
        assert late and late[0]["on_raised"] and np.hypot(late[0]["x"] - on_top[0], late[0]["y"] - on_top[1]) < 2.5, late
        # the daily HTML says where the alert sits, and what was set aside that day
        from blobhelpers.blob.detect.monitor.render import summary_html

        page = summary_html(recs[APPEAR + 2], None, [])
        assert "on an earlier alert" in page and "Set aside" in page and "alert already raised" in page
        assert not any(c["new"] for c in _near(recs[APPEAR + 3], *first[:2], 16.0)), recs[APPEAR + 3]["candidates"]


def test_a_new_blob_on_an_alert_the_history_holds_is_judged_as_on_a_catalogued_blob(trained_tiny, tmp_path):
    """An alert raised on frame 11 is held by every history of the day windows (8 frames; windows of
    2 and 3 days) from frame 21 on: from then it is judged as a catalogued blob, not as an alert that
    absorbs everything on it. A new blob appearing on it that day is found as a blob on it
    (``on_known``, beside "alert of DATE"), not through the day-over-day change, and not raised again
    the next day; without one, the held alert's own residuals raise nothing."""
    first = (300.0, 640.0, 7.0, 0.06)
    held = APPEAR + 10
    on_top = (301.0, 641.0, 5.0, 0.08, held)
    for later in (on_top, None):
        paths = _series(tmp_path / f"frames_{later is None}", seed=13, new=first, later=later, n_frames=held + 2)
        recs = _daily(paths, trained_tiny[2], tmp_path / f"out_{later is None}", _cfg(),
                      days=(APPEAR, APPEAR + 1, held - 1, held, held + 1))
        assert any(c["new"] for c in _near(recs[APPEAR], *first[:2], first[2])), recs[APPEAR]["candidates"]
        for day in (APPEAR + 1, held - 1):   # not yet held: what lies on it is absorbed
            assert not any(c["new"] for c in _near(recs[day], *first[:2], 16.0)), (day, recs[day]["candidates"])
        late = [c for day in (held, held + 1) for c in _near(recs[day], *first[:2], 16.0) if c["new"]]
        if later is None:
            assert not late, late
            continue
        hit = [c for c in _near(recs[held], *on_top[:2], 4.0) if c["new"]]
        assert hit and hit[0]["on_known"] and not hit[0]["on_raised"], recs[held]["candidates"]
        assert str(hit[0]["near_known"]).startswith("alert of 2024-05-"), hit[0]
        assert not any(c["new"] for c in _near(recs[held + 1], *first[:2], 16.0)), recs[held + 1]["candidates"]
