"""Scoring against the independent cross-simulator (evaluation only)."""

import numpy as np
import pytest

from blobhelpers.blob.evaluate import crosseval

from blobhelpers.blob import crosssim
from blobhelpers.blob.detect.detection import DetectionConfig


@pytest.fixture(scope="module")
def untrained():
    from blobhelpers.blob.learn.cnn import build_model

    return build_model("tiny", seed=0)


def test_auc_matches_the_rank_definition():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.random(200) < 0.3
    s = np.round(rng.normal(y * 0.8, 1.0), 1)  # ties on purpose
    assert crosseval.auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert np.isnan(crosseval.auc([True, True], [0.1, 0.2]))


def test_tile_labels_positive_ambiguous_negative():
    tiles = [{"x0": 0, "y0": 0, "size": 256}, {"x0": 256, "y0": 0, "size": 256}, {"x0": 512, "y0": 0, "size": 256}]
    blobs = [{"x": 10.0, "y": 10.0, "snr": 5.0}, {"x": 300.0, "y": 20.0, "snr": 2.0}]
    assert crosseval.tile_labels(tiles, blobs) == ["pos", "ambiguous", "neg"]


def test_a_strong_cross_sim_blob_is_localised_by_the_matched_filter(untrained):
    rng = np.random.default_rng(1)
    nu = crosssim.Nuisance(frame_size=1014, units="e-", misreg_px=0.0, n_existing=10)
    blob = crosssim.sample_new_blob(rng, snr=10.0, nuisance=nu, radius=6.0, kind="disc", x=400.0, y=700.0)
    img, truth = crosssim.make_difference(rng, nu, [blob], n_history=10)
    row, tiles, blobs = crosseval.score_difference(img, truth["new_blobs"], untrained, 0.5,
                                                   {"representation": "residual"}, DetectionConfig(), "c", "quiet")
    assert blobs[0]["target"] and blobs[0]["mf_localised"]
    assert row["mf_new_blob"] and row["has_target_blob"]
    labels = {(t["row"], t["col"]): t["label"] for t in tiles}
    assert labels[(2, 1)] == "pos" and sum(v == "pos" for v in labels.values()) == 1  # x 400 -> col 1 (x0 251)
    s = crosseval.summarise_images([row], tiles, blobs, "t")
    assert s["t_mf_localised"]["k"] == 1 and s["t_mf_tile_tpr"]["n"] == 1 and s["t_mf_tile_fpr"]["n"] == 15


def test_stress_cases_vary_one_nuisance_only():
    cases = list(crosseval.stress_cases({"offset": [0.0, 1.0]}, n_per=1, snr=6.0, seed=3))
    assert [(c[0], c[1], c[2]) for c in cases] == [("offset", 0.0, False), ("offset", 0.0, True),
                                                  ("offset", 1.0, False), ("offset", 1.0, True)]
    assert all(c[4]["nuisance"]["offset_sigma"] == c[1] for c in cases)
    assert [len(c[4]["new_blobs"]) for c in cases] == [0, 1, 0, 1]


def test_a_blob_may_declare_itself_a_target():
    tiles = [{"x0": 0, "y0": 0, "size": 256}, {"x0": 256, "y0": 0, "size": 256}]
    blobs = [{"x": 10.0, "y": 10.0, "snr": 1.2, "target": True}, {"x": 300.0, "y": 20.0, "snr": 9.0, "target": False}]
    assert crosseval.tile_labels(tiles, blobs) == ["pos", "ambiguous"]
    assert [crosseval.is_target(b) for b in blobs] == [True, False]
    assert crosseval.is_target({"snr": 3.0}) and not crosseval.is_target({"snr": 2.99})


def _rec(day: int, alerts=(), others=()) -> dict:
    cands = [{"x": x, "y": y, "radius": 4.0, "k": k, "new": True} for x, y, k in alerts]
    cands += [{"x": x, "y": y, "radius": 4.0, "k": 1, "new": False} for x, y in others]
    return {"date_obs": f"2024-01-{day:02d}T00:00:00", "frame": f"f{day}.fits", "candidates": cands}


def test_multi_day_scoring_first_day_window_and_false_alarm_days():
    blob = {"x": 100.0, "y": 100.0, "radius": 5.0, "depth": 0.02, "snr": 2.0,
            "xy_by_day": [[100.0, 100.0], [100.4, 100.0], [100.8, 100.0]]}
    missed = {"x": 500.0, "y": 500.0, "radius": 5.0, "depth": 0.05, "snr": 5.0}
    truth = {"new_blobs": [blob, missed], "n_history": 3, "sky_e": [1.0, 1.0, 1.0, 1.0, 2.0, 1.0],
             "monitored_frames": [3, 4, 5]}
    # day 1: a false alert and a candidate near the blob that does not alert; day 2: the 2-day window alerts it
    recs = [_rec(1, alerts=[(800.0, 800.0, 1)], others=[(100.0, 100.0)]), _rec(2, alerts=[(101.0, 100.5, 2)]),
            _rec(3)]
    days, blobs = crosseval.score_days(recs, truth, "windows", "c", "dips", "new")
    assert [b["first_day"] for b in blobs] == [2, None] and blobs[0]["k"] == 2 and blobs[0]["latency_days"] == 1
    assert [d["false_alarm_day"] for d in days] == [True, False, False] and days[0]["false_alerts"] == 1
    assert [d["sky_ratio"] for d in days] == [1.0, 2.0, 1.0]
    # blob-free series: one of three days with a false alert; a jittered deep-blob series is counted apart
    free_days, _ = crosseval.score_days([_rec(1), _rec(2, alerts=[(50.0, 60.0, 3)]), _rec(3)], {"new_blobs": []},
                                        "windows", "q", "quiet", "quiet")
    jit_days, _ = crosseval.score_days([_rec(1), _rec(2), _rec(3)], {"new_blobs": []}, "windows", "j",
                                       "jitter_deep", "jitter_deep")
    s = crosseval.summarise_days(days + free_days + jit_days, blobs, 3)
    assert (s["xsim_multiday_within_1"]["k"], s["xsim_multiday_within_2"]["k"]) == (0, 1)
    assert s["xsim_multiday_within_2"]["n"] == 2 and s["xsim_multiday_within_3"]["k"] == 1
    assert s["xsim_multiday_target_within_3"] == crosseval._r(crosseval.rate(0, 1))
    assert s["xsim_multiday_latency_mean_days"] == 1.0
    assert (s["xsim_multiday_fa_days"]["k"], s["xsim_multiday_fa_days"]["n"]) == (1, 3)  # blob-free days only
    assert s["xsim_multiday_fa_days_per_100"] == pytest.approx(100 / 3, abs=1e-3)
    assert s["xsim_multiday_fa_days_per_100_ub95"] > s["xsim_multiday_fa_days_per_100"]
    assert (s["xsim_jitter_deep_fa_days"]["k"], s["xsim_jitter_deep_fa_days"]["n"]) == (0, 3)
    assert s["xsim_jitter_deep_fa_days_per_100"] == 0.0 and 0 < s["xsim_jitter_deep_fa_days_per_100_ub95"] < 100
    assert not any(k.startswith("xsim_multiday_oneday") for k in s)  # no one-day rows given


def test_the_daily_job_is_run_day_by_day_with_and_without_day_windows(untrained, tmp_path):
    from blobhelpers.blob.detect.monitor import MonitorConfig

    rng = np.random.default_rng(2)
    nu = crosssim.Nuisance(units="e-", misreg_px=0.0, history_jitter_px=0.0, n_existing=5, cr_per_frame=0,
                           unstable_fraction=0.0, nan_fraction=0.0, gradient_sigma=0.0)
    blob = crosssim.sample_new_blob(rng, snr=12.0, nuisance=nu, radius=6.0, kind="disc", x=400.0, y=600.0)
    frames, headers, truth = crosssim.make_series(rng, nu, [blob], n_history=5, n_days=2)
    cfg = MonitorConfig(history=5, min_history=3, threshold=0.0, saliency=False, accumulate=(2,))
    days, blobs = crosseval.score_series_days(frames, headers, truth, untrained, cfg, "c", "quiet", "new",
                                              workdir=tmp_path, preprocessing={"representation": "isr"})
    assert [(d["detector"], d["day"]) for d in days] == [("windows", 1), ("windows", 2), ("one_day", 1),
                                                         ("one_day", 2)]
    assert [d["date_obs"][:10] for d in days[:2]] == [h["DATE-OBS"][:10] for h in headers[5:]]
    # the strong blob alerts on day 1 (any CNN verdict passes at threshold 0) and is not alerted again on day 2
    assert [(b["detector"], b["first_day"]) for b in blobs] == [("windows", 1), ("one_day", 1)]
    assert all(d["n_alerts"] == d["false_alerts"] for d in days if d["day"] == 2)  # no alert at the blob on day 2
    assert list(tmp_path.iterdir()) == []  # the frames are removed
    with pytest.raises(ValueError, match="detectors"):
        crosseval.score_series_days(frames, headers, truth, untrained, cfg, detectors=("bogus",))
    # with classify: each day's one-day difference image is classified on its own, as a user's image; the
    # strong blob is in both days' differences (no history holds it yet), so both images are flagged
    from blobhelpers.blob.detect.detection import DetectionConfig

    days, _ = crosseval.score_series_days(frames, headers, truth, untrained, cfg, "c", "jitter_deep", "jitter_deep",
                                          workdir=tmp_path, preprocessing={"representation": "isr"},
                                          classify=DetectionConfig())
    assert [d["classify_flagged"] for d in days] == [True, True, True, True]
    s = crosseval.summarise_days(days, [], 2)
    assert (s["xsim_jitter_deep_classify_flagged"]["k"], s["xsim_jitter_deep_classify_flagged"]["n"]) == (2, 2)
    # a blob-free series: nothing flagged
    frames, headers, truth = crosssim.make_series(np.random.default_rng(3), nu, [], n_history=5, n_days=2)
    days, _ = crosseval.score_series_days(frames, headers, truth, untrained, cfg, "q", "jitter_deep", "jitter_deep",
                                          workdir=tmp_path, preprocessing={"representation": "isr"},
                                          classify=DetectionConfig(), detectors=("one_day",))
    assert [d["classify_flagged"] for d in days] == [False, False]
    assert crosseval.summarise_days(days, [], 2)["xsim_jitter_deep_classify_flagged"]["k"] == 0
