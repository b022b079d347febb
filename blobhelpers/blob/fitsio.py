"""FITS input and output for WFC3/IR blob frames and difference images.

Everything read from FITS leaves this module as a native-byte-order ``float32`` array
(astropy returns big-endian data, which TensorFlow silently mangles), and every problem
with an input file raises :class:`~blobhelpers.core.errors.InputError` with the file named.

:func:`read_frame` knows the WFC3/IR product layouts (RAW, IMA, FLT; see
:mod:`blobhelpers.blob.wfc3`): RAW/IMA give final-minus-zero-read signal in e-/s with the
reference pixels masked, FLT gives e-/s, DQ-flagged pixels come out as NaN (flag 512, blobs,
is kept), and the :class:`Frame` says which reader path was used, the unit and the masked
pixel counts. Plain 2-D FITS (the simulator's default) is read as stored.
"""

from __future__ import annotations

import datetime as _dt
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits

from ..core.errors import InputError
from ..core.paths import atomic_path

__all__ = [
    "FULL_SIZE",
    "TRIMMED_SIZE",
    "BORDER",
    "Frame",
    "read_frame",
    "read_header",
    "frame_time",
    "to_full_frame",
    "write_image",
    "expand_frame_paths",
]

#: Raw WFC3/IR frames are 1024x1024 with a 5-pixel reference-pixel border on every side.
FULL_SIZE = 1024
#: Calibrated (FLT) frames are trimmed to the 1014x1014 light-sensitive area.
TRIMMED_SIZE = 1014
#: Width of the reference-pixel border of a full frame.
BORDER = 5


@dataclass
class Frame:
    """A 2-D image read from FITS.

    Attributes
    ----------
    data : numpy.ndarray
        Native float32 array, as stored (1024x1024 or 1014x1014).
    header : astropy.io.fits.Header
        Primary header merged with the header of the extension the data came from
        (extension keywords win).
    path : pathlib.Path
        The file it came from.
    extension : str or int
        ``"SCI"`` or the HDU index used.
    layout : str
        Reader path: ``plain`` (2-D image in the primary or first image HDU, as stored),
        ``raw``/``ima`` (final minus zero read, e-/s, reference pixels masked), ``flt``
        (e-/s), ``sci`` (another file with a SCI extension, as stored) or ``extension`` (an
        extension asked for explicitly, as stored).
    unit : str
        Unit of :attr:`data` (``"e-/s"`` for RAW/IMA/FLT; else the stored BUNIT, upper case).
    reader : str
        One line saying how :attr:`data` was made from the file.
    mask_counts : dict
        Pixels set to NaN: ``reference`` (RAW/IMA border), ``dq`` (DQ-flagged; ``dq_by_flag``
        per bit), ``nonfinite`` (NaN/inf in the file), ``total``; ``dq_512_kept`` counts the
        blob-flagged pixels that were kept.
    meta : dict
        INSTRUME, DETECTOR, FILTER, EXPTIME, SAMP_SEQ, NSAMP, SUBARRAY, APERTURE, BUNIT (as
        stored) and, for RAW/IMA, which reads were used.
    dq_mask : int
        DQ bits that masked a pixel (0 when no DQ was read).
    """

    data: np.ndarray
    header: fits.Header
    path: Path
    extension: str | int
    layout: str = "plain"
    unit: str = ""
    reader: str = ""
    mask_counts: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    dq_mask: int = 0

    @property
    def time(self) -> _dt.datetime:
        """Observation time from the header (see :func:`frame_time`)."""
        return frame_time(self.header, self.path)

    @property
    def trimmed(self) -> bool:
        """True for a 1014x1014 (reference pixels removed) image."""
        return self.data.shape == (TRIMMED_SIZE, TRIMMED_SIZE)

    @property
    def light_sensitive(self) -> tuple[slice, slice]:
        """(rows, columns) slices of the light-sensitive area in :attr:`data`."""
        if self.data.shape == (FULL_SIZE, FULL_SIZE):
            return slice(BORDER, FULL_SIZE - BORDER), slice(BORDER, FULL_SIZE - BORDER)
        return slice(0, self.data.shape[0]), slice(0, self.data.shape[1])

    @property
    def signature(self) -> dict:
        """What history frames must share with the newest one: FILTER, DETECTOR, size, unit."""
        return {"FILTER": self.meta.get("FILTER") or "", "DETECTOR": self.meta.get("DETECTOR") or "",
                "shape": f"{self.data.shape[0]}x{self.data.shape[1]}", "unit": self.unit}

    def provenance(self) -> dict:
        """JSON-ready summary: reader path, unit, header keywords, masked pixel counts."""
        from .wfc3 import DQ_FLAGS

        keys = ("BUNIT", "EXPTIME", "SAMP_SEQ", "NSAMP", "FILTER", "DETECTOR")
        kw = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in self.meta.items() if k in keys}
        out = {"file": self.path.name, "layout": self.layout, "reader": self.reader, "unit": self.unit,
               "keywords": kw, "masked_pixels": dict(self.mask_counts)}
        if self.dq_mask:
            out["dq_masked_flags"] = [b for b in DQ_FLAGS if b & self.dq_mask]
            out["dq_kept_flags"] = [b for b in DQ_FLAGS if not b & self.dq_mask]
        return out


def _open(path: Path):
    if not path.exists():
        raise InputError(f"{path}: file does not exist")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a FITS file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty")
    with open(path, "rb") as fh:
        magic = fh.read(9)
    if magic != b"SIMPLE  =" and magic[:2] != b"\x1f\x8b":  # plain or gzip-compressed FITS
        raise InputError(f"{path}: not a FITS file (it does not start with a SIMPLE card)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hdul = fits.open(path, memmap=False, lazy_load_hdus=False)
    except Exception as exc:  # astropy raises OSError, ValueError, TypeError... on corrupt files
        raise InputError(f"{path}: unreadable FITS file ({exc})") from exc
    return hdul


def read_header(path: str | os.PathLike) -> fits.Header:
    """Read only the primary header of *path* (cheap: used to order frames by date)."""
    path = Path(path)
    hdul = _open(path)
    try:
        return hdul[0].header.copy()
    finally:
        hdul.close()


def read_frame(path: str | os.PathLike, extension: str | int | None = None,
               allowed_shapes=((FULL_SIZE, FULL_SIZE), (TRIMMED_SIZE, TRIMMED_SIZE)),
               dq_mask: int | None = None) -> Frame:
    """Read a WFC3/IR image (raw 1024x1024 or trimmed 1014x1014) as native float32.

    Parameters
    ----------
    path : path-like
        FITS file: a WFC3/IR RAW, IMA or FLT product, a file with a SCI extension, or a plain
        2-D FITS image (see :mod:`blobhelpers.blob.wfc3` for what each gives). With
        *extension*, exactly that HDU is read as stored.
    extension : str or int, optional
        Extension name or index to read.
    allowed_shapes : sequence of tuple
        Accepted image shapes; anything else raises :class:`InputError`. Pass ``None`` to
        accept any 2-D shape.
    dq_mask : int, optional
        DQ bits that mask a pixel (default :data:`blobhelpers.blob.wfc3.DEFAULT_DQ_MASK`:
        every flag but 64, 512, 2048 and 8192).

    Returns
    -------
    Frame

    Raises
    ------
    InputError
        Missing, empty, non-FITS, truncated or corrupt file; no image data; wrong shape;
        every pixel NaN; a UVIS or non-WFC3 file; a subarray; a product without a SCI
        extension; a RAW/IMA file with NSAMP = 1. The message starts with the file name.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "f.fits"
    >>> _ = write_image(p, np.ones((1014, 1014), ">f4"))
    >>> fr = read_frame(p)
    >>> fr.data.dtype.byteorder in "=|", fr.data.dtype.name, fr.trimmed
    (True, 'float32', True)
    """
    path = Path(path)
    if extension is None:
        from .wfc3 import DEFAULT_DQ_MASK, read_product

        return read_product(path, DEFAULT_DQ_MASK if dq_mask is None else dq_mask, allowed_shapes)
    hdul = _open(path)
    try:
        try:
            hdul.verify("silentfix")
        except Exception:  # noqa: BLE001 - verification problems surface below as read errors
            pass
        try:
            hdu = hdul[extension]
        except (KeyError, IndexError) as exc:
            raise InputError(f"{path}: no extension {extension!r}") from exc
        from .wfc3 import hdu_data

        raw = hdu_data(hdu, path, f"extension {extension!r}")
        if raw.ndim != 2:
            raise InputError(f"{path}: image is {raw.ndim}-D with shape {raw.shape}; expected a 2-D image")
        if allowed_shapes is not None and tuple(raw.shape) not in {tuple(s) for s in allowed_shapes}:
            want = " or ".join(f"{s[0]}x{s[1]}" for s in allowed_shapes)
            raise InputError(f"{path}: image shape {raw.shape[0]}x{raw.shape[1]} is not a WFC3/IR frame ({want})")
        data = np.asarray(raw, dtype=np.float32)  # native byte order, float32 (copies)
        data = np.ascontiguousarray(data)
        if not np.isfinite(data).any():
            raise InputError(f"{path}: every pixel is NaN or infinite")
        header = hdul[0].header.copy()
        if hdu is not hdul[0]:
            for card in hdu.header.cards:
                if card.keyword in ("", "COMMENT", "HISTORY", "XTENSION", "BITPIX", "NAXIS", "NAXIS1",
                                    "NAXIS2", "PCOUNT", "GCOUNT", "EXTEND", "SIMPLE"):
                    continue
                header[card.keyword] = (card.value, card.comment)
        n_bad = int((~np.isfinite(data)).sum())
        return Frame(data=data, header=header, path=path, extension=extension, layout="extension",
                     unit=str(header.get("BUNIT", "") or "").strip().upper(),
                     reader=f"extension {extension!r} as stored",
                     mask_counts={"reference": 0, "dq": 0, "dq_by_flag": {}, "dq_512_kept": 0, "nonfinite": n_bad,
                                  "total": n_bad},
                     meta={k: header.get(k) for k in ("INSTRUME", "DETECTOR", "FILTER", "EXPTIME", "SAMP_SEQ",
                                                      "NSAMP", "SUBARRAY", "APERTURE", "BUNIT")})
    finally:
        hdul.close()


def frame_time(header: fits.Header, path: str | os.PathLike | None = None) -> _dt.datetime:
    """Observation start time from DATE-OBS (+ TIME-OBS), or EXPSTART (MJD) as a fallback.

    Raises :class:`InputError` naming *path* when neither is usable.
    """
    where = f"{path}: " if path is not None else ""
    date = header.get("DATE-OBS")
    if date:
        text = str(date).strip()
        tobs = header.get("TIME-OBS")
        if "T" not in text and tobs:
            text = f"{text}T{str(tobs).strip()}"
        try:
            return _dt.datetime.fromisoformat(text)
        except ValueError as exc:
            raise InputError(f"{where}DATE-OBS/TIME-OBS {text!r} is not an ISO date") from exc
    if "EXPSTART" in header:
        from astropy.time import Time

        try:
            return Time(float(header["EXPSTART"]), format="mjd").to_datetime()
        except (TypeError, ValueError) as exc:
            raise InputError(f"{where}EXPSTART {header['EXPSTART']!r} is not an MJD") from exc
    raise InputError(f"{where}no DATE-OBS or EXPSTART keyword; cannot order the frame in time")


def to_full_frame(data: np.ndarray) -> np.ndarray:
    """Return a 1024x1024 float32 image: trimmed 1014x1014 input is padded with NaN borders.

    Pixel (y, x) of a trimmed image lands at (y + 5, x + 5) of the result.
    """
    if data.shape == (FULL_SIZE, FULL_SIZE):
        return np.asarray(data, dtype=np.float32)
    if data.shape == (TRIMMED_SIZE, TRIMMED_SIZE):
        out = np.full((FULL_SIZE, FULL_SIZE), np.nan, np.float32)
        out[BORDER:-BORDER, BORDER:-BORDER] = data
        return out
    raise InputError(f"image shape {data.shape} is neither 1024x1024 nor 1014x1014")


def write_image(path: str | os.PathLike, data: np.ndarray, header: fits.Header | dict | None = None,
                extra: dict[str, np.ndarray] | None = None, overwrite: bool = True) -> Path:
    """Write *data* as the primary HDU of a FITS file, atomically.

    Parameters
    ----------
    path : path-like
        Destination.
    data : numpy.ndarray
        Image, written as float32.
    header : Header or dict, optional
        Keywords for the primary header (dict values may be ``(value, comment)`` tuples).
    extra : dict, optional
        Additional image extensions, ``{EXTNAME: array}``.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(path)
    hdr = fits.Header()
    if header is not None:
        items = header.items() if isinstance(header, dict) else ((c.keyword, (c.value, c.comment))
                                                                 for c in header.cards)
        for key, value in items:
            hdr[key] = value
    hdus = [fits.PrimaryHDU(np.asarray(data, dtype=np.float32), header=hdr)]
    for name, arr in (extra or {}).items():
        hdus.append(fits.ImageHDU(np.asarray(arr, dtype=np.float32), name=name))
    with atomic_path(path, suffix=".fits") as tmp:
        fits.HDUList(hdus).writeto(tmp, overwrite=True)
    return path


def expand_frame_paths(items) -> list[Path]:
    """Expand files, folders (their ``*.fits`` files) and glob patterns into a sorted list."""
    import glob

    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            out.extend(sorted(p.glob("*.fits")) + sorted(p.glob("*.fits.gz")))
        elif any(ch in str(item) for ch in "*?["):
            out.extend(Path(x) for x in sorted(glob.glob(str(item))))
        else:
            out.append(p)
    seen, uniq = set(), []
    for p in out:
        if p.resolve() not in seen:
            seen.add(p.resolve())
            uniq.append(p)
    return uniq
