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
