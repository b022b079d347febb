import numpy as np
import pytest
from scipy import ndimage

from blobhelpers.blob.evaluate.scoring import rates, strata_table, threshold_for_fpr, wilson

from blobhelpers.blob.learn.inference import saliency


def test_wilson_interval():
    lo, hi = wilson(0, 10)
    assert lo == 0 and 0.25 < hi < 0.35
    lo, hi = wilson(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)
    assert np.isnan(wilson(0, 0)[0])


@pytest.mark.parametrize("n", [6, 11, 21, 22, 44, 500, 1222])
def test_wilson_interval_holds_the_rate_at_0_and_n(n):
    """At k = 0 and k = n the bound is exactly 0 or 1: rounding put it 1e-17 on the wrong side for
    these n (an error bar of -1e-17 then stopped matplotlib), so the interval must hold k / n."""
    assert wilson(0, n)[0] == 0.0 and wilson(n, n)[1] == 1.0
    for k in range(n + 1):
        lo, hi = wilson(k, n)
        assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_rates_and_threshold_for_fpr(rng):
    y = np.r_[np.ones(200), np.zeros(800)].astype(int)
    p = np.r_[rng.uniform(0.3, 1, 200), rng.uniform(0, 0.7, 800)]
    t = threshold_for_fpr(y, p, 0.03)
    r = rates(y, p, t)
    assert r["fpr"] <= 0.03 and r["fp"] == int(0.03 * 800)
    assert r["tp"] + r["fn"] == 200 and r["tn"] + r["fp"] == 800
    assert r["tpr_lo"] <= r["tpr"] <= r["tpr_hi"]


def test_strata_cover_all_positives(easy_datasets):
    ds = easy_datasets["test"]
    p = np.where(ds.labels == 1, 0.9, 0.1)
    rows = strata_table(ds.recipe, p, 0.5)
    depth = [r for r in rows if r["group"] == "depth"]
    assert sum(r["n"] for r in depth) == int(ds.labels.sum())
    assert all(r["value"] == 1.0 for r in depth if r["n"])
    neg = [r for r in rows if r["group"] == "negatives"]
    assert sum(r["n"] for r in neg) == int((ds.labels == 0).sum())


def test_saliency_peaks_on_an_injected_blob(trained_tiny, easy_datasets):
    model, _, _ = trained_tiny
    ds = easy_datasets["test"]
    r = ds.recipe
    hits, tried = 0, 0
    for i in np.nonzero(r.crops["n_injected"] == 1)[0][:8]:
        k = ds.injections_of(int(i))[0]
        x, y = r.inj["x"][k], r.inj["y"][k]
        if not (15 < x < 240 and 15 < y < 240):
            continue
        X, _ = ds.batch([int(i)])
        for method in ("vanilla", "smoothgrad"):
            s = ndimage.gaussian_filter(saliency(model, X, method, n_samples=4)[0], 3)
            py, px = np.unravel_index(np.argmax(s), s.shape)
            tried += 1
            hits += np.hypot(px - x, py - y) < 3 * r.inj["radius"][k] + 5
    assert tried >= 4 and hits >= 0.75 * tried


def test_campaign_events_scores_tiles_and_skips_known_blobs():
    from blobhelpers.blob.data.dataset import DiffInfo
    from blobhelpers.blob.preprocess.scaling import ScaleParams
    from blobhelpers.blob.evaluate.scoring import campaign_events, campaign_summary

    sp = ScaleParams(0, 1, 0, 1, 0, 0, 1, 0.5)
    # x, y, radius, residual depth, frame of appearance
    nat = np.array([[100.0, 100.0, 5.0, 0.05, 40],    # tile (0, 0): a visible new blob, found
                    [600.0, 100.0, 5.0, 0.02, 40],    # tile (0, 2): visible, missed
                    [100.0, 600.0, 5.0, 0.05, 10],    # tile (2, 0): appeared in the training days: skipped
                    [900.0, 900.0, 5.0, 0.005, 40]])  # tile (3, 3): too faint to count, not quiet either
    info = DiffInfo("d.fits", sp, natural=nat, date="2024-03-01", frame_index=41)
    tiles = [{"row": r, "col": c, "x0": 256 * c, "y0": 256 * r, "size": 256, "blob": (r, c) in {(0, 0), (1, 1)}}
             for r in range(4) for c in range(4)]
    res = {"tiles": tiles, "candidates": [{"x": 102.0, "y": 99.0, "blob": True}, {"x": 300.0, "y": 300.0, "blob": True}]}
    events, quiet, loc = campaign_events([info], [res], first_test_frame=30)
    assert [(e["x"], e["tile_flagged"], e["located"]) for e in events] == [(100.0, True, True), (600.0, False, False)]
    assert len(quiet) == 16 - 4 and sum(quiet) == 1          # tile (1, 1) is a false alarm
    assert loc == [pytest.approx(np.hypot(2, 1))]
    s = campaign_summary(events, quiet, loc)
    assert (s["detection"]["k"], s["detection"]["n"]) == (1, 2)
    assert (s["detection_deeper"]["k"], s["detection_deeper"]["n"]) == (1, 1)
    assert (s["false_alarm_tiles"]["k"], s["false_alarm_tiles"]["n"]) == (1, 12)
