"""WFC3/IR product reader and writer: RAW/IMA/FLT/plain layouts, zero-read subtraction, DQ masking,
clear errors (UVIS, subarray, no SCI, NSAMP = 1), the simulator's layout option."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from blobhelpers.blob.sim.campaign import Campaign, simulate_campaign

from blobhelpers.blob.sections import CampaignConfig
from blobhelpers.blob.io.fitsio import read_frame
from blobhelpers.blob.io.wfc3 import DEFAULT_DQ_MASK, KEPT_FLAGS, describe, write_product
from blobhelpers.cli import main
from blobhelpers.core.errors import InputError

EXPTIME = 302.9
HEADER = {"INSTRUME": ("WFC3", ""), "DETECTOR": ("IR", ""), "FILTER": ("F153M", ""),
          "DATE-OBS": ("2024-05-01", ""), "TIME-OBS": ("01:00:00", ""), "EXPSTART": (60431.04, ""),
          "EXPTIME": (EXPTIME, ""), "BUNIT": ("ELECTRONS", "")}


@pytest.fixture(scope="module")
def scene():
    """A 1024x1024 image in e- (sky ~2500 e-, gradient, dead pixels as NaN) and a blob mask."""
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[0:1024, 0:1024]
    img = rng.poisson(2500.0 * (1 + 0.1 * xx / 1024)).astype(np.float32) + rng.normal(0, 15, (1024, 1024)).astype("f4")
    img[:5] = img[-5:] = 15.0
    img[:, :5] = img[:, -5:] = 15.0
    dead = rng.choice(1024 * 1024, 300, replace=False)
    img.reshape(-1)[dead] = np.nan
    blob = (xx - 400) ** 2 + (yy - 300) ** 2 < 8 ** 2
    return img, blob


def _write(tmp_path, scene, layout, **kw):
    img, blob = scene
    name = "f.fits" if layout == "plain" else f"f_{layout}.fits"
    return write_product(tmp_path / name, img, HEADER, layout, exptime=EXPTIME, blob_mask=blob, **kw)


@pytest.mark.parametrize("layout", ["plain", "raw", "ima", "flt"])
def test_each_layout_reads_back_the_scene(tmp_path, scene, layout):
    img, blob = scene
    fr = read_frame(_write(tmp_path, scene, layout, nsamp=4))
    assert fr.layout == layout and fr.data.dtype == np.float32 and fr.data.dtype.isnative
    assert fr.meta["FILTER"] == "F153M" and fr.meta["DETECTOR"] == "IR" and fr.meta["EXPTIME"] == EXPTIME
    if layout == "plain":  # unchanged: as stored, in e-, reference border kept
        np.testing.assert_array_equal(fr.data, img)
        assert fr.unit == "ELECTRONS" and fr.mask_counts["reference"] == 0 and fr.mask_counts["reference_kept"] == 20380
        return
    assert fr.unit == "e-/s" and fr.header["BUNIT"] == "e-/s"
    assert fr.meta["NSAMP"] == 4 and fr.meta["SAMP_SEQ"] == "NONE"
    assert fr.meta["BUNIT"] == {"raw": "COUNTS", "ima": "ELECTRONS/S", "flt": "ELECTRONS/S"}[layout]
    want = img / EXPTIME
    if layout == "flt":
        want = want[5:-5, 5:-5]
        assert fr.trimmed and fr.mask_counts["reference"] == 0
    else:
        want = want.copy()
        want[:5] = want[-5:] = np.nan
        want[:, :5] = want[:, -5:] = np.nan
        assert fr.mask_counts["reference"] == 20380 and "final read minus zero read" in fr.reader
    np.testing.assert_array_equal(np.isnan(fr.data), np.isnan(want))  # dead pixels: DQ 4 -> NaN
    tol = 0.5 * 2.3 / EXPTIME + 1e-4 if layout == "raw" else 1e-4  # RAW: DN quantisation
    assert np.nanmax(np.abs(fr.data - want)) < tol
    inner = ~np.isnan(img[5:-5, 5:-5])
    assert fr.mask_counts["dq"] == int((~inner).sum()) and fr.mask_counts["dq_by_flag"] == {"4": int((~inner).sum())}
    assert fr.mask_counts["dq_512_kept"] == int(blob.sum())
    assert describe(fr.path) == {**fr.signature, "layout": layout}
    prov = fr.provenance()
    assert prov["layout"] == layout and prov["unit"] == "e-/s" and 512 in prov["dq_kept_flags"]
    assert 4 in prov["dq_masked_flags"] and prov["keywords"]["SAMP_SEQ"] == "NONE"


def test_raw_structure_is_the_real_layout(tmp_path, scene):
    p = _write(tmp_path, scene, "raw")  # default NSAMP for 302.9 s: SPARS25, 14 reads
    with fits.open(p) as h:
        assert h[0].header["NAXIS"] == 0 and h[0].header["NSAMP"] == 14 and h[0].header["SAMP_SEQ"] == "SPARS25"
        assert [x.name for x in h[1:6]] == ["SCI", "ERR", "DQ", "SAMP", "TIME"] and len(h) == 1 + 5 * 14
        assert h["SCI", 1].header["SAMPTIME"] == pytest.approx(EXPTIME) and h["SCI", 14].header["SAMPTIME"] == 0
        assert h["SCI", 1].data.dtype == np.uint16 and h["SCI", 1].header["BUNIT"] == "COUNTS"
        assert h["TIME", 2].header["PIXVALUE"] == pytest.approx(h["SCI", 2].header["SAMPTIME"])
        assert h[0].header["FILENAME"] == "f_raw.fits" and "BUNIT" not in h[0].header


def test_zero_read_subtraction_measures_a_known_signal_back(tmp_path):
    """RAW: a known rate with a per-pixel bias; final - zero read, x gain / time gives the rate."""
    rate = np.full((1024, 1024), 7.5, np.float32)
    rate[:, 512:] = 40.0
    p = write_product(tmp_path / "k_raw.fits", rate * EXPTIME, HEADER, "raw", exptime=EXPTIME, nsamp=5, gain=2.4)
    fr = read_frame(p)
    live = fr.data[5:-5, 5:-5]
    assert np.abs(live - rate[5:-5, 5:-5]).max() <= 0.5 * 2.4 / EXPTIME + 1e-5
    assert "gain 2.4" in fr.reader and "[SCI,1] - [SCI,5]" in fr.reader
    # the final read alone carries the bias (~11000 DN): what the old reader took as the signal
    final = fits.getdata(p, ("SCI", 1)).astype(float) * 2.4 / EXPTIME
    assert np.median(final[5:-5, 5:-5] - rate[5:-5, 5:-5]) > 80.0

    # reads stored zero-read-first: the order comes from SAMPTIME, not from the position
    with fits.open(p) as h:
        sets = [h[1 + 5 * k: 6 + 5 * k] for k in range(5)][::-1]
        rev = fits.HDUList([fits.PrimaryHDU(header=h[0].header)] + [x.copy() for s in sets for x in s])
        for v, k in enumerate(range(1, len(rev), 5), 1):
            for x in rev[k:k + 5]:
                x.header["EXTVER"] = v
        rev.writeto(tmp_path / "r_raw.fits")
    fr2 = read_frame(tmp_path / "r_raw.fits")
    np.testing.assert_array_equal(fr2.data, fr.data)
    assert "[SCI,5] - [SCI,1]" in fr2.reader

    # per-quadrant gains (A upper left, B lower left, C lower right, D upper right)
    with fits.open(p) as h:
        for q, g in zip("ABCD", (2.0, 2.2, 2.4, 2.6)):
            h[0].header[f"ATODGN{q}"] = g
        h.writeto(tmp_path / "q_raw.fits")
    fq = read_frame(tmp_path / "q_raw.fits")
    dn = fr.data * EXPTIME / 2.4
    for (ys, xs), g in (((slice(600, 700), slice(100, 200)), 2.0), ((slice(100, 200), slice(100, 200)), 2.2),
                        ((slice(100, 200), slice(600, 700)), 2.4), ((slice(600, 700), slice(600, 700)), 2.6)):
        np.testing.assert_allclose(fq.data[ys, xs], dn[ys, xs] * g / EXPTIME, rtol=1e-5)


def test_ima_known_signal(tmp_path):
    rate = np.full((1024, 1024), 3.25, np.float32)
    fr = read_frame(write_product(tmp_path / "k_ima.fits", rate * EXPTIME, HEADER, "ima", exptime=EXPTIME, nsamp=3))
    np.testing.assert_allclose(fr.data[5:-5, 5:-5], 3.25, rtol=1e-5)
    assert np.isnan(fr.data[:5]).all() and np.isnan(fr.data[:, -5:]).all()


def test_dq_masking_keeps_512_and_documents_the_flags(tmp_path):
    sci = np.full((1014, 1014), 2.0, np.float32)
    dq = np.zeros((1014, 1014), np.int16)
    flags = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]
    for k, f in enumerate(flags):
        dq[10 + k, 10:20] = f
    dq[40, 10:20] = 512 | 64      # blob + warm: kept
    dq[41, 10:20] = 512 | 4       # blob + dead: masked (4 wins)
    sci[50, 50] = np.nan          # NaN in the file
    prim = fits.Header({"INSTRUME": "WFC3", "DETECTOR": "IR", "FILTER": "F153M", "EXPTIME": 100.0,
                        "DATE-OBS": "2024-01-01"})
    s = fits.ImageHDU(sci, name="SCI")
    s.header["BUNIT"] = "ELECTRONS/S"
    p = tmp_path / "x_flt.fits"
    fits.HDUList([fits.PrimaryHDU(header=prim), s, fits.ImageHDU(np.ones_like(sci), name="ERR"),
                  fits.ImageHDU(dq, name="DQ")]).writeto(p)
    fr = read_frame(p)
    for k, f in enumerate(flags):
        row = fr.data[10 + k, 10:20]
        if f in KEPT_FLAGS:
            assert (row == 2.0).all(), f
        else:
            assert np.isnan(row).all(), f
    assert (fr.data[40, 10:20] == 2.0).all() and np.isnan(fr.data[41, 10:20]).all()
    mc = fr.mask_counts
    masked_rows = sum(f not in KEPT_FLAGS for f in flags) + 1
    assert mc["dq"] == 10 * masked_rows and mc["nonfinite"] == 1 and mc["total"] == 10 * masked_rows + 1
    assert mc["dq_512_kept"] == 20 and mc["dq_by_flag"]["4"] == 20 and "512" not in mc["dq_by_flag"]
    assert DEFAULT_DQ_MASK & 512 == 0 and DEFAULT_DQ_MASK & 4
    # a team can choose its own mask, e.g. keep hot pixels
    fr2 = read_frame(p, dq_mask=DEFAULT_DQ_MASK & ~16)
    assert (fr2.data[14, 10:20] == 2.0).all()
    # FLT in electrons: converted to e-/s with EXPTIME
    s.header["BUNIT"] = "ELECTRONS"
    fits.HDUList([fits.PrimaryHDU(header=prim), s, fits.ImageHDU(dq, name="DQ")]).writeto(tmp_path / "e_flt.fits")
    fe = read_frame(tmp_path / "e_flt.fits")
    assert fe.unit == "e-/s" and fe.data[500, 500] == pytest.approx(0.02) and "EXPTIME 100" in fe.reader


def _product(path, detector="IR", shape=(1024, 1024), nsci=3, subarray=False, sci=True, instrume="WFC3"):
    prim = fits.Header({"INSTRUME": instrume, "DETECTOR": detector, "FILTER": "F153M", "DATE-OBS": "2024-01-01",
                        "EXPTIME": 100.0, "NSAMP": nsci, "SUBARRAY": subarray, "APERTURE": "IRSUB512" if subarray else "IR"})
    hdus = [fits.PrimaryHDU(header=prim)]
    for v in range(1, nsci + 1):
        if sci:
            h = fits.ImageHDU(np.full(shape, 1000 + 10 * (nsci - v), np.uint16), name="SCI")
            h.header.update({"EXTVER": v, "BUNIT": "COUNTS", "SAMPTIME": 50.0 * (nsci - v)})
            hdus.append(h)
        d = fits.ImageHDU(np.zeros(shape, np.int16), name="DQ")
        d.header["EXTVER"] = v
        hdus.append(d)
    fits.HDUList(hdus).writeto(path)
    return path


@pytest.mark.parametrize("case, match", [
    ("uvis", "UVIS file"),
    ("subarray", "subarray 512x512"),
    ("subarray_flt", "subarray 512x512"),
    ("nosci", "no SCI extension"),
    ("nsamp1", "NSAMP = 1"),
    ("acs", "INSTRUME = ACS"),
    ("drz", "_drz product"),
])
def test_clear_errors_name_file_and_problem(tmp_path, case, match):
    p = tmp_path / {"subarray_flt": "s_flt.fits", "drz": "d_drz.fits"}.get(case, f"{case}_raw.fits")
    if case == "uvis":
        _product(p, detector="UVIS", shape=(64, 64))
    elif case in ("subarray", "subarray_flt"):
        _product(p, shape=(512, 512), nsci=3 if case == "subarray" else 1, subarray=True)
    elif case == "nosci":
        _product(p, sci=False)
    elif case == "nsamp1":
        _product(p, nsci=1)
    elif case == "acs":
        _product(p, instrume="ACS")
    elif case == "drz":
        _product(p, nsci=1)
    with pytest.raises(InputError, match=match) as info:
        read_frame(p)
    assert str(p) in str(info.value)
    with pytest.raises(InputError, match=match):
        describe(p)


def test_cli_exit_2_for_uvis_and_subarray(tmp_path, capsys):
    hist = tmp_path / "h_raw.fits"
    _product(hist)
    for name, kw, match in (("u_raw.fits", {"detector": "UVIS"}, "UVIS file"),
                            ("s_raw.fits", {"shape": (512, 512), "subarray": True}, "subarray 512x512")):
        cur = _product(tmp_path / name, **kw)
        with fits.open(cur, mode="update") as h:
            h[0].header["DATE-OBS"] = "2024-01-02"  # the newest frame
        assert main(["difference", str(hist), str(cur), "-o", str(tmp_path / "d.fits"), "--history", "1"]) == 2
        err = capsys.readouterr().err
        assert name in err and match in err
        cur.unlink()
    assert not (tmp_path / "d.fits").exists()


def test_simulator_layout_option(tmp_path):
    cfg = CampaignConfig(n_frames=2, n_existing=10, new_blob_rate=0.0)
    simulate_campaign(tmp_path / "plain", cfg, seed=5, progress=False)
    simulate_campaign(tmp_path / "flt", cfg, seed=5, progress=False, layout="flt")
    simulate_campaign(tmp_path / "raw", cfg, seed=5, progress=False, layout="raw", nsamp=3)
    plain = sorted((tmp_path / "plain" / "frames").glob("*.fits"))
    flt = sorted((tmp_path / "flt" / "frames").glob("*.fits"))
    raw = sorted((tmp_path / "raw" / "frames").glob("*.fits"))
    assert [p.name for p in plain] == ["blob_20240101_0000.fits", "blob_20240102_0001.fits"]
    assert [p.name for p in flt] == ["blob_20240101_0000_flt.fits", "blob_20240102_0001_flt.fits"]
    # the default layout is unchanged: one primary image, exactly the campaign's frame
    img, hdr, _ = Campaign(cfg, seed=5).frame(1)
    with fits.open(plain[1]) as h:
        assert len(h) == 1 and h[0].header["BUNIT"] == "ELECTRONS"
        np.testing.assert_array_equal(h[0].data, img)
    with fits.open(flt[1]) as h:
        assert [x.name for x in h] == ["PRIMARY", "SCI", "ERR", "DQ", "SAMP", "TIME"]
        assert h[0].header["FILTER"] == "F153M" and h[0].header["DATE-OBS"] == hdr["DATE-OBS"][0]
        assert h["SCI"].header["BUNIT"] == "ELECTRONS/S" and h["SCI"].data.shape == (1014, 1014)
        assert (h["DQ"].data & 512).any() and (h["DQ"].data & 4).any()
    fp, ff, fr = read_frame(plain[1]), read_frame(flt[1]), read_frame(raw[1])
    np.testing.assert_allclose(ff.data, fp.data[5:-5, 5:-5] / cfg.exptime, rtol=1e-5, atol=1e-5)
    assert np.nanmax(np.abs(fr.data[5:-5, 5:-5] - ff.data)) < 0.5 * 2.3 / cfg.exptime + 1e-4
    with pytest.raises(InputError, match="layout"):
        simulate_campaign(tmp_path / "bad", cfg, seed=5, progress=False, layout="drz")
