"""Real WFC3/IR layouts through the monitor and classify: the same scene written as RAW, IMA, FLT and
plain FITS gives the same verdicts and alert positions; mixed-filter histories; provenance."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from astropy.io import fits

from blob_frames import frames_with_new_blob
from blobhelpers.blob.sim.campaign import Campaign
from blobhelpers.blob.sections import CampaignConfig
from blobhelpers.blob.detect.classify import classify_file
from blobhelpers.blob.preprocess.difference import difference_from_files
from blobhelpers.blob.io.fitsio import write_image
from blobhelpers.blob.detect.monitor import (
    KnownCatalog,
    Monitor,
    MonitorConfig,
    apply_tuned,
    summary_html,
    write_tuned,
)
from blobhelpers.blob.io.wfc3 import write_product
from blobhelpers.cli import main
from blobhelpers.core.errors import InputError

BLOB = (612.0, 401.0, 7.0, 0.12)  # x, y, radius, depth of the blob that appears in the last frame
LAYOUTS = ("plain", "raw", "ima", "flt")


def matched_filter_model():
    """A fixed-weight Keras 'CNN': 8x8 average pool -> global max -> logits 4 (m - 1).

    Deterministic and cheap; a tile holding a clipped blob has m ~ 2.7, a quiet tile ~ 0.5,
    so the verdict is not decided by noise in the weights of an untrained network.
    """
    import keras

    L = keras.layers
    inp = keras.Input((256, 256, 1))
    out = L.Dense(2)(L.GlobalMaxPooling2D()(L.AveragePooling2D(8)(inp)))
    model = keras.Model(inp, out, name="matched_filter")
    model.layers[-1].set_weights([np.array([[-2.0, 2.0]], np.float32), np.array([2.0, -2.0], np.float32)])
    return model


@pytest.fixture(scope="module")
def model():
    return matched_filter_model()


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """7 simulated days written in every layout (RAW with 3 reads); a 12 % blob appears on the last."""
    cfg = CampaignConfig(n_frames=7, n_existing=25, new_blob_rate=0.0, persistence_prob=0.0,
                         snowballs_per_frame=0.0, start_date="2024-05-01T01:00:00")
    camp = Campaign(cfg, seed=11)
    blob_mask = camp.obscuration(0, shift=(0.0, 0.0)) > 0.03
    root = tmp_path_factory.mktemp("layouts")
    dirs = {lay: root / lay for lay in LAYOUTS}
    for d in dirs.values():
        d.mkdir()
    for i, img, hdr in frames_with_new_blob(camp, cfg.n_frames, BLOB):
        for lay, d in dirs.items():
            name = f"day{i}.fits" if lay == "plain" else f"day{i}_{lay}.fits"
            write_product(d / name, img, hdr, lay, exptime=cfg.exptime, nsamp=3, blob_mask=blob_mask, bias_seed=i)
    known = KnownCatalog([{"id": b.id, "x": b.x, "y": b.y, "radius": b.shape.radius} for b in camp.blobs])
    return dirs, known


def _cfg(**kw):
    return MonitorConfig(**{"history": 5, "min_history": 4, "threshold": 0.5, "saliency": False, **kw})


def test_same_verdict_and_positions_in_every_layout(scene, model, tmp_path):
    dirs, known = scene
    mon_out, cls_out = {}, {}
    for lay, d in dirs.items():
        mon = Monitor([d], model, _cfg(), known)
        n = len(mon.ordered)
        recs = [mon.process(i).record for i in (n - 2, n - 1)]  # a quiet day, then the new blob
        off = 5 if recs[-1]["trimmed"] else 0  # FLT keeps its own (1014) coordinates
        assert recs[-1]["trimmed"] == (lay == "flt")
        mon_out[lay] = [(r["verdict"], [(c["x"] + off, c["y"] + off, c["probability"]) for c in r["candidates"]
                                        if c["new"]]) for r in recs]
        assert recs[-1]["input"]["layout"] == lay and recs[-1]["input"]["history"]["layouts"] == {lay: 5}
        diff, _ = difference_from_files(sorted(d.glob("*.fits")), history=5)
        p = tmp_path / f"diff_{lay}.fits"
        write_image(p, diff.data, diff.header())
        res = classify_file(p, "matched_filter", threshold=0.5, model=model)
        cls_out[lay] = (res["new_blob"], [(c["x"], c["y"]) for c in res["candidates"]])
    ref_m, ref_c = mon_out["plain"], cls_out["plain"]
    assert [v for v, _ in ref_m] == ["nothing_new", "new_blob"]
    (x, y, _), = ref_m[1][1]
    assert np.hypot(x - BLOB[0], y - BLOB[1]) < 1.5
    assert ref_c[0] and len(ref_c[1]) == 1 and np.hypot(ref_c[1][0][0] - BLOB[0], ref_c[1][0][1] - BLOB[1]) < 2.0
    for lay in LAYOUTS[1:]:
        got_m, got_c = mon_out[lay], cls_out[lay]
        assert [v for v, _ in got_m] == [v for v, _ in ref_m], lay
        for (_, a), (_, b) in zip(got_m, ref_m):
            assert len(a) == len(b), lay
            for (xa, ya, pa), (xb, yb, pb) in zip(a, b):
                assert np.hypot(xa - xb, ya - yb) <= 0.5 and abs(pa - pb) < 0.01, lay
        assert got_c[0] == ref_c[0] and len(got_c[1]) == len(ref_c[1]), lay
        for (xa, ya), (xb, yb) in zip(got_c[1], ref_c[1]):
            assert np.hypot(xa - xb, ya - yb) <= 0.5, lay


@pytest.fixture()
def plain_days(scene, tmp_path):
    """Copies of the plain-layout days that a test may edit."""
    dirs, known = scene
    out = tmp_path / "days"
    out.mkdir()
    for p in sorted(dirs["plain"].glob("*.fits")):
        (out / p.name).write_bytes(p.read_bytes())
    return out, known


def test_mixed_filter_history_frame_is_skipped_and_named(plain_days, model, caplog):
    folder, known = plain_days
    odd = folder / "day3.fits"
    with fits.open(odd, mode="update") as h:
        h[0].header["FILTER"] = "F110W"
    caplog.set_level(logging.WARNING, logger="blobhelpers.blob.detect.monitor")
    mon = Monitor([folder], model, _cfg(history=6, min_history=4), known)
    rec = mon.process(len(mon.ordered) - 1).record
    assert rec["history"]["n"] == 5 and rec["verdict"] == "new_blob"
    skipped = [s for s in rec["skipped_frames"] if s["kind"] == "inconsistent"]
    assert [s["file"] for s in skipped] == [str(odd)] and "FILTER F110W (newest: F153M)" in skipped[0]["reason"]
    assert any("day3.fits" in r.getMessage() and "F110W" in r.getMessage() for r in caplog.records)
    cons = rec["input"]["consistency"]
    assert cons["n_skipped"] == 1 and cons["skipped"] == ["day3.fits"] and cons["reference"]["FILTER"] == "F153M"
    assert json.loads(json.dumps(rec))["input"] == rec["input"]  # JSON-ready


def test_history_that_cannot_be_made_consistent_is_a_clear_error(plain_days, model, tmp_path, capsys):
    folder, known = plain_days
    newest = folder / "day6.fits"
    with fits.open(newest, mode="update") as h:
        h[0].header["FILTER"] = "F110W"
    with pytest.raises(InputError, match="cannot be made consistent with the newest frame day6.fits") as info:
        Monitor([folder], model, _cfg(), known)
    assert "day0.fits: FILTER F153M (newest: F110W)" in str(info.value)
    # the CLI: exit 2 before any model is loaded
    rc = main(["monitor", str(folder), "--out", str(tmp_path / "o"), "--no-tuned", "--model", str(tmp_path / "m.keras"),
               "--history", "5", "--min-history", "4", "-q"])
    assert rc == 2 and "cannot be made consistent" in capsys.readouterr().err


def test_mixed_units_and_sizes_are_skipped(scene, model, tmp_path):
    """A plain (ELECTRONS) frame and an FLT (1014x1014) frame in a RAW history are skipped, named."""
    dirs, known = scene
    folder = tmp_path / "mix"
    folder.mkdir()
    for p in sorted(dirs["raw"].glob("*.fits")):
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "day2_raw.fits").unlink()
    (folder / "day3_raw.fits").unlink()
    (folder / "day2.fits").write_bytes((dirs["plain"] / "day2.fits").read_bytes())
    (folder / "day3_flt.fits").write_bytes((dirs["flt"] / "day3_flt.fits").read_bytes())
    mon = Monitor([folder], model, _cfg(history=6, min_history=4), known)
    rec = mon.process(len(mon.ordered) - 1).record
    reasons = {s["file"].rsplit("/", 1)[-1]: s["reason"] for s in rec["skipped_frames"] if s["kind"] == "inconsistent"}
    assert set(reasons) == {"day2.fits", "day3_flt.fits"}
    assert "unit ELECTRONS (newest: e-/s)" in reasons["day2.fits"]
    assert "size 1014x1014 (newest: 1024x1024)" in reasons["day3_flt.fits"]
    assert rec["history"]["n"] == 4 and rec["verdict"] == "new_blob"


def test_provenance_in_the_record_and_the_daily_html(scene, model, tmp_path):
    dirs, known = scene
    cfg = _cfg()
    fake_model = tmp_path / "model.keras"
    fake_model.write_bytes(b"weights")
    tuned = write_tuned(tmp_path / "thresholds.json", {"snr_min": 6.0, "threshold": 0.6, "neg_veto": 9.0}, fake_model,
                        {"seed": 20211300, "n_frames": 150, "n_quiet_days": 64, "detection_deeper": 0.9,
                         "fa_days_per_100_quiet": 1.5, "grids": {"snr_grid": [5.0]}})
    assert apply_tuned(cfg, tuned, fake_model, keep=("threshold",)) == ["snr_min=6", "neg_veto=9"]
    mon = Monitor([dirs["raw"]], model, cfg, known)
    rec = mon.process(len(mon.ordered) - 1).record
    inp = rec["input"]
    assert inp["layout"] == "raw" and inp["unit"] == "e-/s" and inp["file"] == "day6_raw.fits"
    assert inp["reader"].startswith("RAW: final read minus zero read [SCI,1] - [SCI,3]")
    assert inp["keywords"] == {"BUNIT": "COUNTS", "EXPTIME": 302.9, "SAMP_SEQ": "NONE", "NSAMP": 3,
                               "FILTER": "F153M", "DETECTOR": "IR"}
    mp = inp["masked_pixels"]
    assert mp["reference"] == 20380 and mp["dq"] > 500 and mp["dq_by_flag"] == {"4": mp["dq"]}
    assert mp["dq_512_kept"] > 0 and mp["total"] >= mp["reference"] + mp["dq"]
    assert 512 in inp["dq_kept_flags"] and 4 in inp["dq_masked_flags"]
    assert inp["history"]["n"] == 5 and inp["history"]["EXPTIME"] == [302.9]
    th = inp["thresholds"]
    assert th["source"] == "tuned" and th["description"].startswith(
        "tuned on simulated development campaign, seed 20211300, 150 frames")
    assert th["applied"] == ["snr_min", "neg_veto"] and th["kept"] == ["threshold", "threshold_acc"]
    assert th["file"] == str(tuned)
    # a file written without snr_acc leaves it as configured (here the default, 7); the day windows' CNN
    # threshold follows today's
    assert th["values"] == {"snr_min": 6.0, "threshold": 0.5, "neg_veto": 9.0, "snr_acc": 7.0, "threshold_acc": 0.5}
    assert "grids" not in th["tuned_provenance"]
    html = summary_html(rec, None, [])
    assert "final read minus zero read" in html and "reference border 20380" in html
    assert "tuned on simulated development campaign, seed 20211300" in html and "DQ 512" in html
    # untuned: said so
    cfg2 = _cfg()
    apply_tuned(cfg2, None, fake_model)
    rec2 = Monitor([dirs["flt"]], model, cfg2, known).process(6).record
    assert rec2["input"]["thresholds"]["source"] == "untuned" and rec2["input"]["masked_pixels"]["reference"] == 0
    assert "config" == Monitor([dirs["flt"]], model, _cfg(), known).input_provenance(6)["thresholds"]["source"]
