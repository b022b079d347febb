"""SVM prep: drizzlepac QA JSON + FITS header scrape, encodings against spacekit's, per-visit errors."""

import json

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from blobhelpers.core.errors import InputError
from blobhelpers.svm.features import (CAT_SCHEMES, DETECTORS, WCSTYPES, encode_raw, read_features, recode_cat,
                                      validate_features)
from blobhelpers.svm.prep import SCRUB_COLUMNS, flatten_qa_json, prep, write_visit

SAMPLE = "hst_12286_38_wfc3_ir_total_ibl738"


@pytest.fixture(scope="module")
def svm_data(root):
    d = root / "data" / "svm"
    if not (d / "sample_visit_ibl738").exists():
        pytest.fail(f"{d} missing: run `dvc pull` (tasks.sh does it) before the tests")
    return d


def _sample_visit(folder, svm_data, **over):
    s = pd.read_csv(svm_data / "sample_visit_ibl738" / "scraped_fits.csv").iloc[0]
    kw = dict(targname=s.targname, ra_targ=s.ra_targ, dec_targ=s.dec_targ, numexp=int(s.numexp), point=int(s.point),
              segment=int(s.segment), gaia=int(s.gaia), rms_ra=s.rms_ra, rms_dec=s.rms_dec, nmatches=int(s.nmatches))
    kw.update(over)
    return write_visit(folder, s["index"], **kw)


def test_scrape_reproduces_every_step_of_the_sample_visit(tmp_path, svm_data):
    """JSON scrape == single_scrub, + FITS == scraped_fits, + category == scraped_mast (same text in CSV)."""
    _sample_visit(tmp_path / "in" / "ibl738", svm_data)
    res = prep(tmp_path / "in", tmp_path / "out", progress=False)
    assert res.errors == []
    sv = svm_data / "sample_visit_ibl738"
    assert (tmp_path / "out" / "scraped_json.csv").read_text() == (sv / "single_scrub.6e163fa.csv").read_text()
    raw = pd.read_csv(tmp_path / "out" / "raw_svm_data.csv")
    mast = pd.read_csv(sv / "scraped_mast.csv")
    pd.testing.assert_frame_equal(raw, mast)
    fits_cols = pd.read_csv(sv / "scraped_fits.csv").columns
    pd.testing.assert_frame_equal(raw[fits_cols], pd.read_csv(sv / "scraped_fits.csv"))
    feat = pd.read_csv(tmp_path / "out" / "svm_data.csv")
    reg = pd.read_csv(sv / "single_reg.csv")
    assert list(feat.columns) == list(reg.columns)  # spacekit's order, index last
    same = ["numexp", "rms_ra", "rms_dec", "nmatches", "point", "segment", "gaia", "wcs", "index"]
    pd.testing.assert_frame_equal(feat[same], reg[same])
    # single_reg.csv came from a LabelEncoder fitted on this one row (ir -> 0, U -> 0); the fixed
    # tables give ir 1 and U 3 (current spacekit), U 6 in the 2021 files.
    assert (reg.det[0], reg.cat[0]) == (0, 0)
    assert (feat.det[0], feat.cat[0]) == (DETECTORS["ir"], CAT_SCHEMES["spacekit"]["U"])
    assert (tmp_path / "out" / "prep_errors.csv").read_text().strip() == "visit,error"


def test_flatten_matches_spacekit_keys(tmp_path, svm_data):
    _sample_visit(tmp_path, svm_data)
    keys = {}
    for f in tmp_path.glob("*.json"):
        keys.update(flatten_qa_json(json.loads(f.read_text())))
    assert set(SCRUB_COLUMNS) <= set(keys)
    assert keys["number_of_sources.point"] == 284 and keys["Number_of_GAIA_sources.Number_of_GAIA_sources"] == 7
    assert keys["gen_info.dataframe_index"] == SAMPLE
    assert not any(k.startswith("GAIA_sources.RA.data") for k in keys)  # source tables (lists) are skipped


def test_legacy_num_sources_name_and_several_visits(tmp_path, svm_data):
    _sample_visit(tmp_path / "a", svm_data, legacy_num_sources=True)
    write_visit(tmp_path / "b", "hst_9454_11_acs_hrc_total_j8ff11", targname="30-DOR", numexp=4, point=18,
                segment=30, gaia=1, rms_ra=0.0, rms_dec=0.0, nmatches=0,
                wcstype="undistorted a priori solution relative to GSC240")
    res = prep(tmp_path, None, progress=False)
    assert res.errors == []
    f = res.features.set_index("index")
    assert f.loc[SAMPLE, "nmatches"] == 5
    row = f.loc["hst_9454_11_acs_hrc_total_j8ff11"]
    assert (row["det"], row["wcs"], row["cat"]) == (0, 1, CAT_SCHEMES["spacekit"]["SC"])  # 30-DOR: EXT-CLUSTER -> SC


@pytest.mark.parametrize("damage, expect", [
    ("malformed_json", "malformed JSON"),
    ("no_gaia", "Number of GAIA sources"),
    ("missing_keyword", "lacks ['NMATCHES']"),
    ("unreadable_fits", "unreadable FITS"),
    ("missing_fits", "not found"),
    ("unknown_target", "not in the category tables"),
    ("bad_wcstype", "WCSTYPE"),
    ("wrong_detector", "does not match"),
])
def test_bad_visit_is_skipped_and_listed(tmp_path, svm_data, damage, expect):
    good = "hst_9454_11_acs_hrc_total_j8ff11"
    write_visit(tmp_path / "good", good, targname="30-DOR", numexp=4, point=18, segment=30, gaia=1, rms_ra=1.0,
                rms_dec=2.0, nmatches=5)
    over = {"no_gaia": {"gaia": None}, "missing_keyword": {"nmatches": None}, "unknown_target": {"targname": "ZZTOP-9"},
            "bad_wcstype": {"wcstype": "undistorted sideways"}}.get(damage, {})
    bad = _sample_visit(tmp_path / "bad", svm_data, **over)
    if damage == "malformed_json":
        f = bad / f"{SAMPLE}_svm_num_sources.json"
        f.write_text(f.read_text()[:-20])
    elif damage == "unreadable_fits":
        (bad / f"{SAMPLE}_drz.fits").write_bytes(b"SIMPLE  = not really a FITS file")
    elif damage == "missing_fits":
        (bad / f"{SAMPLE}_drz.fits").unlink()
    elif damage == "wrong_detector":
        f = bad / f"{SAMPLE}_svm_num_sources.json"
        qa = json.loads(f.read_text())
        qa["data"]["number_of_sources"]["data"]["detector"] = "uvis"
        f.write_text(json.dumps(qa))
    res = prep(tmp_path, tmp_path / "out", progress=False)
    assert res.features["index"].tolist() == [good]  # the good visit is kept, no half row for the bad one
    assert len(res.errors) == 1
    visit, reason = res.errors[0]
    assert expect in reason and ("ibl738" in visit)
    listed = pd.read_csv(tmp_path / "out" / "prep_errors.csv")
    assert listed["error"].str.contains(expect, regex=False).all()


def test_spacekit_fill_values_only_when_asked(tmp_path, svm_data):
    _sample_visit(tmp_path, svm_data, gaia=None, nmatches=None)
    assert len(prep(tmp_path, None, progress=False).raw) == 0
    res = prep(tmp_path, None, missing_gaia="zero", missing_keywords="zero", progress=False)
    assert res.errors == [] and res.raw.loc[0, "gaia"] == 0 and res.raw.loc[0, "nmatches"] == 0


def test_fits_header_is_read_from_the_sci_extension(tmp_path, svm_data):
    v = _sample_visit(tmp_path, svm_data)
    with fits.open(v / f"{SAMPLE}_drz.fits", mode="update") as h:
        h[0].header["NMATCHES"] = 999  # a primary-header value must not be used
    assert prep(tmp_path, None, progress=False).raw.loc[0, "nmatches"] == 5


def test_encodings_against_spacekit_2021_files(svm_data):
    """The raw (string) table encoded with the 2021 scheme equals the 2021 files on every shared visit."""
    raw = pd.read_csv(svm_data / "raw_svm_data_2021-11-02.csv")
    enc = encode_raw(raw, "spacekit-2021").set_index("index")
    n_checked = 0
    # the October file is the same processing as the raw table: every column agrees; the July file
    # was processed earlier (other rms/wcs), so only the visit's own properties are compared there
    for name, cols in (("svm_unlabeled_2021-10-06.csv", ("det", "wcs", "cat", "numexp", "rms_ra", "nmatches", "gaia")),
                       ("svm_labeled_2021-07-28_dev.csv", ("det", "cat", "numexp"))):
        ref = pd.read_csv(svm_data / name).set_index("index")
        common = enc.index.intersection(ref.index)
        assert len(common) >= 10
        for c in cols:
            np.testing.assert_array_equal(enc.loc[common, c], ref.loc[common, c], err_msg=f"{name}: {c}")
        n_checked += len(common)
    assert n_checked >= 25
    # the current spacekit table differs from the 2021 one for the same strings
    cur = encode_raw(raw, "spacekit").set_index("index")
    assert (cur["cat"] != enc["cat"]).any()
    np.testing.assert_array_equal(recode_cat(enc["cat"], "spacekit-2021", "spacekit"), cur["cat"])


def test_documented_encodings():
    assert DETECTORS == {"hrc": 0, "ir": 1, "sbc": 2, "uvis": 3, "wfc": 4}
    assert WCSTYPES == {"a posteriori": 0, "a priori": 1, "default a": 2, "not aligned": 3}
    sk = CAT_SCHEMES["spacekit"]
    assert [sk[a] for a in ("C", "SS", "I", "U", "SC", "S", "GC", "G", "?")] == list(range(9))
    old = CAT_SCHEMES["spacekit-2021"]
    assert [old[a] for a in ("C", "G", "GC", "I", "S", "SC", "U", "?")] == list(range(8))
    # round trip of every code: there and back gives the same codes, and each code keeps its category
    for src, dst in (("spacekit", "spacekit-2021"), ("spacekit-2021", "spacekit")):
        codes = np.array(sorted(CAT_SCHEMES[src].values()))
        there = recode_cat(codes, src, dst)
        abbr = {v: k for k, v in CAT_SCHEMES[src].items() if v != CAT_SCHEMES[src]["?"]}  # unknown stays unknown
        unknown = CAT_SCHEMES[dst]["?"]
        # each category keeps its meaning; one the other table lacks (SS, solar system, is absent from the
        # 2021 files) becomes that table's unknown code
        want = [CAT_SCHEMES[dst].get(abbr.get(int(c), "?"), unknown) for c in codes]
        assert there.tolist() == want
        kept = np.array([w != unknown for w in want])
        np.testing.assert_array_equal(recode_cat(there, dst, src)[kept], codes[kept])
    assert recode_cat([1], "spacekit", "spacekit-2021").tolist() == [CAT_SCHEMES["spacekit-2021"]["?"]]


def test_feature_file_validation(tmp_path):
    good = pd.DataFrame({"numexp": [1], "rms_ra": [1.0], "rms_dec": [2.0], "nmatches": [5], "point": [1], "segment": [1],
                         "gaia": [3.0], "det": [1], "wcs": [0], "cat": [3], "index": ["hst_1_01_wfc3_ir_total_i00001"]})
    assert validate_features(good).shape == (1, 11)
    with pytest.raises(InputError, match="missing column.*'gaia'"):
        validate_features(good.drop(columns="gaia"), "x.csv")
    bad = good.astype({"rms_ra": object})
    bad.loc[0, "rms_ra"] = "n/a"
    with pytest.raises(InputError, match="x.csv: column 'rms_ra'.*non-numeric.*'n/a'"):
        validate_features(bad, "x.csv")
    with pytest.raises(InputError, match="no rows"):
        validate_features(good.iloc[:0], "x.csv")
    with pytest.raises(InputError, match="'det' has code"):
        validate_features(good.assign(det=7), "x.csv")
    p = tmp_path / "empty.csv"
    p.write_text("")
    with pytest.raises(InputError, match="empty.csv: empty file"):
        read_features(p)
    p.write_text(good.assign(cat=8).to_csv(index=False))
    with pytest.raises(InputError, match="cat code"):
        read_features(p, "spacekit-2021")  # 8 does not exist in the 2021 table
