"""Simulated SVM visits: drizzle products, corruption measured back, labels, prep, renderings, spacekit model."""

import hashlib
import json
import math

import numpy as np
import pandas as pd
import pytest

from blobhelpers.core.errors import InputError
from blobhelpers.svm.corrupt import corrupt_visit
from blobhelpers.svm.features import DETECTORS, FEATURES
from blobhelpers.svm.images import load_images
from blobhelpers.svm.prep import prep
from blobhelpers.svm.render import render
from blobhelpers.svm.simulate import (DETECTOR_SPECS, SimConfig, fit_transform, load_visit, match_offset, simulate,
                                      simulate_visit)

SIZE = 192  # IR: 24" field, enough Gaia-like stars in a stellar cluster for an a posteriori fit


@pytest.fixture(scope="module")
def sims(tmp_path_factory):
    """A crowded IR visit (aligned a posteriori) and one sparse visit per other detector."""
    root = tmp_path_factory.mktemp("sim")
    rows = simulate(root / "visits", n_visits=1, seed=11, detectors=["ir"], size=SIZE, field_kinds=["stellar_cluster"])
    rows += simulate(root / "visits", n_visits=4, seed=12, detectors=["uvis", "wfc", "hrc", "sbc"], size=96)
    return root, rows


def _truth(folder):
    return json.loads((folder / "truth.json").read_text())


def _multi_exposure_filter(folder):
    counts = pd.Series([e["filter"] for e in _truth(folder)["exposures"]]).value_counts()
    return counts.index[0] if counts.iloc[0] >= 2 else None


def test_crowded_visit_is_aligned_a_posteriori(sims):
    root, rows = sims
    idx, folder, label = rows[0]
    t = _truth(folder)
    assert t["fit"]["accepted"] and t["fit"]["wcstype"].startswith("undistorted a posteriori")
    assert t["fit"]["nmatches"] >= 3
    assert label == 0 and t["label"] == 0
    # the fit removed the a priori pointing error: every exposure within a pixel of the truth
    for e in t["measure"]["exposures"]:
        assert math.hypot(*e["wcs_error_arcsec"]) < DETECTOR_SPECS["ir"].scale


def test_known_shift_is_measured_back(sims, tmp_path):
    _, rows = sims
    folder = rows[0][1]
    filt = _multi_exposure_filter(folder)
    assert filt is not None
    r = corrupt_visit(folder, tmp_path, mode="stat", expo="sub", filt=filt, shift=(1.5, -1.0))
    t = _truth(tmp_path / r["folder"].split("/")[-1])
    measured = t["corruption"]["measured_relative_arcsec"]
    assert measured
    for east, north in measured.values():  # 1.5" east, 1" south, beyond the relative search radius
        assert abs(east - 1.5) < 0.06 and abs(north + 1.0) < 0.06
    assert r["label"] == 1 and r["index"].endswith(f"_{filt}_sub_stat")


def test_labels_big_shift_1_zero_and_subthreshold_0(sims, tmp_path):
    _, rows = sims
    folder = rows[0][1]
    filt = _multi_exposure_filter(folder)
    big = corrupt_visit(folder, tmp_path / "big", mode="stoc", expo="sub", filt=filt, shift=(3.0, 2.0))
    zero = corrupt_visit(folder, tmp_path / "zero", mode="stat", expo="sub", filt=filt, shift=(0.0, 0.0))
    tiny = corrupt_visit(folder, tmp_path / "tiny", mode="stat", expo="all", filt=filt, shift=(0.02, -0.02))
    assert big["label"] == 1
    assert zero["label"] == 0 and tiny["label"] == 0
    # a shift within the relative search radius is realigned by the pipeline: labelled aligned
    small = corrupt_visit(folder, tmp_path / "small", mode="stat", expo="sub", filt=filt, shift=(0.3, 0.2))
    assert small["label"] == 0 and small["measured_max_arcsec"] < DETECTOR_SPECS["ir"].scale


def test_prep_reads_simulated_visits(sims, tmp_path):
    root, rows = sims
    res = prep(root / "visits", tmp_path / "prep", missing_gaia="zero", progress=False)
    assert res.errors == []
    f = res.features.set_index("index")
    assert list(res.features.columns) == [*FEATURES, "index"]
    assert len(f) == len(rows)
    for idx, folder, _ in rows:
        det = idx.split("_")[4]
        assert f.loc[idx, "det"] == DETECTORS[det]
        assert f.loc[idx, "numexp"] == len(_truth(folder)["exposures"])
    crowded = f.loc[rows[0][0]]
    assert crowded["nmatches"] > 0 and crowded["wcs"] == 0 and crowded["point"] > 10 and crowded["gaia"] > 0
    assert (f[["rms_ra", "rms_dec"]] >= 0).all().all() and (f["rms_ra"] < 200).all()
    raw = res.raw.set_index("index")
    assert set(raw["wcstype"]) <= {"a posteriori", "a priori", "default a", "not aligned"}


def test_renderings_load_as_spacekit_arrays_and_released_model_runs(sims, tmp_path):
    from blobhelpers.svm.images import load_spacekit_model, spacekit_predict
    from blobhelpers.core.paths import project_root

    root, rows = sims
    done = render(root / "visits", tmp_path / "png")
    assert sorted(done) == sorted(r[0] for r in rows)
    for idx in done:
        for sfx in ("", "_source", "_gaia"):
            assert (tmp_path / "png" / idx / f"{idx}{sfx}.png").exists()
    found, imgs = load_images(tmp_path / "png", done)
    assert found == done and imgs.shape == (len(done), 3, 128, 128, 3)
    assert imgs.max() > imgs.min()
    assert not np.array_equal(imgs[:, 0], imgs[:, 1])  # catalog circles drawn
    feats = prep(root / "visits", None, missing_gaia="zero", progress=False).features.set_index("index").loc[found]
    model = load_spacekit_model(project_root() / "data" / "svm" / "pretrained_spacekit" / "svm_align.zip")
    p = spacekit_predict(model, feats.reset_index(), imgs)
    assert p.shape == (len(found),) and np.all((p >= 0) & (p <= 1)) and np.all(np.isfinite(p))


def _digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_same_files(tmp_path):
    kw = dict(n_visits=1, detectors=["wfc"], size=64)
    simulate(tmp_path / "a", seed=3, **kw)
    simulate(tmp_path / "b", seed=3, **kw)
    simulate(tmp_path / "c", seed=4, **kw)
    a, b, c = _digest(tmp_path / "a"), _digest(tmp_path / "b"), _digest(tmp_path / "c")
    assert a and a == b and a != c
    v = next(p for p in (tmp_path / "a").iterdir() if p.is_dir())
    corrupt_visit(v, tmp_path / "ca", mode="stoc", expo="all", seed=1)
    corrupt_visit(v, tmp_path / "cb", mode="stoc", expo="all", seed=1)
    assert _digest(tmp_path / "ca") == _digest(tmp_path / "cb")
    render(tmp_path / "a", tmp_path / "pa")
    render(tmp_path / "b", tmp_path / "pb")
    assert _digest(tmp_path / "pa") == _digest(tmp_path / "pb")


def test_worker_processes_write_the_serial_files_byte_for_byte(tmp_path):
    """n_jobs changes where visits are simulated, corrupted and rendered, not one byte written nor the row order;
    a corruption with the visit's sources found once equals one that finds them itself."""
    from blobhelpers.svm.corrupt import corrupt

    kw = dict(n_visits=3, seed=5, detectors=["wfc", "ir"], size=64)
    rows = {n: simulate(tmp_path / f"s{n}", n_jobs=n, **kw) for n in (1, 2)}
    assert [r[::2] for r in rows[1]] == [r[::2] for r in rows[2]]
    assert [r[1].parent for r in rows[2]] == [tmp_path / "s2"] * 3
    assert _digest(tmp_path / "s1") == _digest(tmp_path / "s2")
    folders = [r[1] for r in rows[1]]
    ckw = dict(modes=("stat", "stoc"), expos=("all", "sub"), seed=2, write_exposures=False)
    cor = {n: corrupt(folders, tmp_path / f"c{n}", n_jobs=n, **ckw) for n in (1, 2)}
    strip = [{k: v for k, v in r.items() if k != "folder"} for r in cor[1]]
    assert strip == [{k: v for k, v in r.items() if k != "folder"} for r in cor[2]]
    assert [(r["index"].startswith(_truth(f)["index"] + "_"), r["mode"], r["expo"]) for r, f in
            zip(cor[1], np.repeat(folders, 4))] == [(True, m, e) for _ in folders for m in ("stat", "stoc")
                                                    for e in ("all", "sub")]  # folders x modes x expos
    assert _digest(tmp_path / "c1") == _digest(tmp_path / "c2")
    one = corrupt_visit(folders[1], tmp_path / "own", mode="stoc", expo="sub", seed=2, write_exposures=False)
    assert {k: v for k, v in one.items() if k != "folder"} == strip[7]
    assert _digest(tmp_path / "own") == {k: v for k, v in _digest(tmp_path / "c1").items()
                                         if k.startswith(one["folder"].split("/")[-1] + "/")}
    for n in (1, 2):
        render(tmp_path / "c1", tmp_path / f"p{n}", n_jobs=n)
    assert _digest(tmp_path / "p1") == _digest(tmp_path / "p2") and len(_digest(tmp_path / "p1")) == 3 * 12
    with pytest.raises(InputError, match="n_jobs"):
        simulate(tmp_path / "bad", n_jobs=0, **kw)


def test_matching_and_fit_recover_a_transform():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 200, (60, 2))
    c = np.array([100.0, 100.0])
    th = math.radians(0.3)
    rot = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    ref = (src - c) @ rot.T + c + [4.2, -3.1] + rng.normal(0, 0.05, src.shape)
    off, a, b = match_offset(src, ref, 10.0, 2.0)
    assert len(a) >= 55 and np.allclose(off, [4.2, -3.1], atol=0.8)
    f = fit_transform(src[a], ref[b], c, "rshift")
    assert np.allclose(f["shift"], [4.2, -3.1], atol=0.05) and abs(f["rot_deg"] - 0.3) < 0.01
    # one match: exact fit, zero residual (drizzlepac's "rms 0 with few matches")
    f1 = fit_transform(src[:1], ref[:1], c, "shift")
    assert np.allclose(f1["residuals"], 0)


def test_bad_inputs_raise_input_error(tmp_path, sims):
    with pytest.raises(InputError, match="unknown detector"):
        simulate_visit("nicmos", 0)
    with pytest.raises(InputError, match="size"):
        simulate(tmp_path / "x", size=8)
    with pytest.raises(InputError, match="truth.json"):
        load_visit(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "truth.json").write_text("{not json")
    with pytest.raises(InputError, match="truth.json"):
        corrupt_visit(bad, tmp_path / "o")
    _, rows = sims
    with pytest.raises(InputError, match="filter"):
        corrupt_visit(rows[0][1], tmp_path / "o", filt="f999w")
    with pytest.raises(InputError, match="mode"):
        corrupt_visit(rows[0][1], tmp_path / "o", mode="multi")
    with pytest.raises(InputError, match="no total detection products"):
        render(tmp_path / "bad", tmp_path / "png")
    with pytest.raises(InputError, match="SimConfig|positive"):
        SimConfig(tol_px=-1).check()


def test_cli_simulate_corrupt_render_and_exit_2(tmp_path, capsys):
    from blobhelpers.svm.commands import main

    assert main(["simulate", str(tmp_path / "s"), "--n-visits", "1", "--detectors", "sbc", "--size", "64", "-q"]) == 0
    visit = next(p for p in (tmp_path / "s").iterdir() if p.is_dir())
    assert main(["corrupt", str(visit), "-o", str(tmp_path / "c"), "--mode", "stoc", "--expo", "sub",
                 "--no-exposures"]) == 0
    assert not list((tmp_path / "c").glob("*/*_flt.fits")) and list((tmp_path / "c").glob("*/*_drz.fits"))
    table = pd.read_csv(tmp_path / "c" / "corruptions.csv")
    assert len(table) == 1 and table["index"][0].endswith("_sub_stoc") and set(table["label"]) <= {0, 1}
    assert main(["render", str(tmp_path), "-o", str(tmp_path / "png")]) == 0
    assert len(list((tmp_path / "png").glob("*/*_gaia.png"))) == 2
    capsys.readouterr()
    assert main(["corrupt", str(tmp_path / "nope"), "-o", str(tmp_path / "c2")]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["render", str(tmp_path / "nope"), "-o", str(tmp_path / "p2")]) == 2


def test_too_few_matches_fall_back_to_the_a_priori_wcs(sims):
    from blobhelpers.svm.simulate import WCSTYPE_STRINGS, process_visit

    _, rows = sims
    v = load_visit(rows[0][1])
    res = process_visit(v, SimConfig(size=SIZE, min_matches=10_000))
    fit = res["align"]["fit"]
    assert not fit["accepted"] and "min_matches" in fit["reason"]
    assert (fit["nmatches"], fit["rms_ra"], fit["rms_dec"]) == (0, 0.0, 0.0)
    assert fit["wcstype"] == WCSTYPE_STRINGS[v.truth["apriori_kind"]]
    # every exposure keeps its a priori header WCS
    for e, (crval, cd) in zip(v.exposures, res["final"]):
        assert np.array_equal(crval, e.crval) and np.array_equal(cd, e.cd)


def test_shift_in_arcsec_handles_cos_dec():
    from astropy.coordinates import SkyCoord

    from blobhelpers.svm.simulate import _offset_sky

    for dec in (0.0, 60.0, 85.0):
        a = SkyCoord(10.0, dec, unit="deg")
        b = _offset_sky((10.0, dec), 2.0, 0.0)
        sep = a.separation(SkyCoord(b[0], b[1], unit="deg")).arcsec
        assert abs(sep - 2.0) < 1e-3


def test_stat_and_stoc_shifts():
    from blobhelpers.svm.corrupt import draw_shifts

    rng = np.random.default_rng(0)
    stat = draw_shifts(4, "stat", (0.1, 0.8), 0.02, rng)
    stoc = draw_shifts(4, "stoc", (0.1, 0.8), 0.02, rng)
    assert len(set(stat)) == 1 and len(set(stoc)) == 4  # one shift for all vs independent per exposure
    for e, n, r in stat + stoc:
        assert 0.1 <= abs(e) <= 0.8 and 0.1 <= abs(n) <= 0.8 and abs(r) <= 0.02


def test_cli_simulate_takes_params_yaml_and_rejects_typos(tmp_path, capsys):
    """`svm simulate/corrupt --params`: the svm_sim section gives the defaults, flags win, typos are errors."""
    import yaml

    from blobhelpers.svm.commands import main

    params = tmp_path / "p.yaml"
    params.write_text(yaml.safe_dump({"svm_sim": {"n_visits": 2, "size": 64, "detectors": ["sbc"],
                                                  "modes": ["stoc"], "expos": ["all"]}}))
    assert main(["simulate", str(tmp_path / "s"), "--params", str(params), "--n-visits", "1", "-q"]) == 0
    visits = [p for p in (tmp_path / "s").iterdir() if p.is_dir()]
    assert len(visits) == 1  # the flag won over the section's 2
    assert json.loads(capsys.readouterr().out)["visits"] == 1
    assert main(["corrupt", str(visits[0]), "-o", str(tmp_path / "c"), "--params", str(params), "--no-exposures"]) == 0
    table = pd.read_csv(tmp_path / "c" / "corruptions.csv")
    assert [i.rsplit("_", 2)[1:] for i in table["index"]] == [["all", "stoc"]]  # modes/expos from the section
    params.write_text(yaml.safe_dump({"svm_sim": {"n_visit": 2}}))
    capsys.readouterr()
    assert main(["simulate", str(tmp_path / "s2"), "--params", str(params), "-q"]) == 2
    err = capsys.readouterr().err
    assert "svm_sim" in err and "n_visit" in err and not (tmp_path / "s2").exists()
