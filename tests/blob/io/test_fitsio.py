import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits

from blobhelpers.core.errors import InputError
from blobhelpers.blob.io.fitsio import frame_time, read_frame, to_full_frame, write_image


def _write(path, data, ext=False, header=None):
    hdr = fits.Header(header or {})
    if ext:
        fits.HDUList([fits.PrimaryHDU(header=hdr), fits.ImageHDU(data, name="SCI")]).writeto(path)
    else:
        fits.PrimaryHDU(data, header=hdr).writeto(path)
    return path


def test_reads_primary_as_native_float32(tmp_path):
    data = np.arange(1024 * 1024, dtype=">f4").reshape(1024, 1024)
    fr = read_frame(_write(tmp_path / "a.fits", data))
    assert fr.data.dtype == np.float32 and fr.data.dtype.isnative
    np.testing.assert_array_equal(fr.data, data.astype(np.float32))
    assert fr.extension == 0 and not fr.trimmed


def test_reads_sci_extension_and_trimmed_shape(tmp_path):
    data = np.full((1014, 1014), 3, dtype=">i2")
    fr = read_frame(_write(tmp_path / "flt.fits", data, ext=True, header={"DATE-OBS": "2020-01-02"}))
    assert fr.extension == "SCI" and fr.trimmed and fr.data.dtype == np.float32
    assert fr.header["DATE-OBS"] == "2020-01-02"
    full = to_full_frame(fr.data)
    assert full.shape == (1024, 1024)
    assert np.isnan(full[:5]).all() and np.isnan(full[:, -5:]).all() and (full[5:-5, 5:-5] == 3).all()


@pytest.mark.parametrize("kind, match", [
    ("text", "not a FITS file"),
    ("empty", "file is empty"),
    ("missing", "does not exist"),
    ("truncated", "truncated|unreadable|cannot read"),
    ("shape", "not a WFC3/IR frame"),
    ("nan", "every pixel is NaN"),
    ("cube", "3-D"),
    ("nodata", "no image data"),
])
def test_bad_inputs_name_the_file_and_problem(tmp_path, kind, match):
    p = tmp_path / f"{kind}.fits"
    if kind == "text":
        p.write_text("hello, I am not FITS\n" * 200)
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "truncated":
        _write(p, np.ones((1024, 1024), "f4"))
        p.write_bytes(p.read_bytes()[: 2880 * 3])
    elif kind == "shape":
        _write(p, np.ones((100, 120), "f4"))
    elif kind == "nan":
        _write(p, np.full((1024, 1024), np.nan, "f4"))
    elif kind == "cube":
        _write(p, np.ones((2, 1024, 1024), "f4"))
    elif kind == "nodata":
        fits.PrimaryHDU().writeto(p)
    with pytest.raises(InputError, match=match) as info:
        read_frame(p)
    assert str(p) in str(info.value)


def test_frame_time_orders_by_header(tmp_path):
    h = fits.Header({"DATE-OBS": "2021-05-01", "TIME-OBS": "12:30:00"})
    assert frame_time(h).isoformat() == "2021-05-01T12:30:00"
    h2 = fits.Header({"EXPSTART": 59335.5})
    assert frame_time(h2).isoformat().startswith("2021-05-01T12:00")
    with pytest.raises(InputError, match="no DATE-OBS"):
        frame_time(fits.Header(), tmp_path / "x.fits")


def test_write_image_is_atomic(tmp_path, monkeypatch):
    dest = tmp_path / "out.fits"

    write_image(dest, np.ones((4, 4)), {"FOO": (1, "bar")})
    before = dest.read_bytes()
    from astropy.io import fits as _fits

    def half_written(self, name, *a, **k):  # the disk fills up half-way through the write
        with open(name, "wb") as fh:
            fh.write(b"SIMPLE  =                    T" + b" " * 50)
        raise OSError("No space left on device")

    monkeypatch.setattr(_fits.HDUList, "writeto", half_written)
    with pytest.raises(OSError, match="No space left"):
        write_image(dest, np.zeros((4, 4)), {"FOO": (2, "bar")})
    assert dest.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.fits"]


def test_cli_reports_bad_input_with_nonzero_exit(tmp_path):
    bad = tmp_path / "bad.fits"
    bad.write_text("not fits")
    good = tmp_path / "good.fits"
    _write(good, np.ones((1024, 1024), "f4"), header={"DATE-OBS": "2020-01-01"})
    r = subprocess.run([sys.executable, "-m", "blobhelpers", "difference", str(good), str(bad), "-o",
                        str(tmp_path / "d.fits")], capture_output=True, text=True)
    assert r.returncode == 2
    assert "bad.fits" in r.stderr and "not a FITS file" in r.stderr
    assert not (tmp_path / "d.fits").exists()


def test_gzipped_fits_and_bad_expstart(tmp_path):
    import gzip as gz

    p = tmp_path / "f.fits"
    _write(p, np.ones((1014, 1014), "f4"), header={"DATE-OBS": "2024-01-01"})
    g = tmp_path / "f.fits.gz"
    g.write_bytes(gz.compress(p.read_bytes()))
    assert read_frame(g).data.shape == (1014, 1014)
    h = fits.Header({"EXPSTART": "N/A"})
    with pytest.raises(InputError, match="x.fits: EXPSTART"):
        frame_time(h, "x.fits")


def test_frame_reports_reader_path_unit_and_masks(tmp_path):
    """Plain frames are read as stored and say so; an explicit extension is read as stored."""
    data = np.ones((1024, 1024), "f4")
    data[100, 100] = np.nan
    fr = read_frame(_write(tmp_path / "p.fits", data, header={"BUNIT": "ELECTRONS", "FILTER": "F153M"}))
    assert fr.layout == "plain" and fr.unit == "ELECTRONS" and "as stored" in fr.reader
    assert fr.mask_counts["total"] == 1 and fr.mask_counts["reference"] == 0
    assert fr.signature == {"FILTER": "F153M", "DETECTOR": "", "shape": "1024x1024", "unit": "ELECTRONS"}
    assert fr.light_sensitive == (slice(5, 1019), slice(5, 1019))
    fe = read_frame(_write(tmp_path / "e.fits", np.ones((1014, 1014), "f4"), ext=True), extension="SCI")
    assert fe.layout == "extension" and fe.extension == "SCI" and fe.trimmed
    # a plain image whose name looks like a product is still a plain image
    assert read_frame(_write(tmp_path / "x_raw.fits", data)).layout == "plain"
    # Frame keeps working when built by hand (new fields have defaults)
    from blobhelpers.blob.io.fitsio import Frame

    assert Frame(data, fits.Header(), tmp_path / "m.fits", 0).mask_counts == {}
