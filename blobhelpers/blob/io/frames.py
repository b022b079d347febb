"""The bottom of the blob wing's file I/O: what every reader and writer of WFC3/IR images shares.

The frame sizes, the :class:`Frame` a reader returns, the WFC3 data-quality flag table, opening a
FITS file with a clear error (:func:`open_fits`), the observation time of a header
(:func:`frame_time`) and the atomic image writer (:func:`write_image`). :mod:`.wfc3` (the product
layouts) and :mod:`.fitsio` (the public reader) both import from here and never from each other
upwards: ``frames`` < ``wfc3`` < ``fitsio``.
"""

from __future__ import annotations

import datetime as _dt
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.time import Time

from blobhelpers.core.errors import InputError
from blobhelpers.core.paths import atomic_path

__all__ = ["FULL_SIZE", "TRIMMED_SIZE", "BORDER", "Frame", "DQ_FLAGS", "KEPT_FLAGS", "DEFAULT_DQ_MASK",
           "open_fits", "frame_time", "write_image"]

#: WFC3 data-quality bits (IR meanings).
DQ_FLAGS = {
    1: "lost during compression",
    2: "replaced by fill value",
    4: "bad detector pixel",
    8: "deviant zero read",
    16: "hot pixel",
    32: "unstable response",
    64: "warm pixel",
    128: "bad reference pixel / bias",
    256: "full-well saturation",
    512: "bad flat value (blob)",
    1024: "cosmic-ray spike (IR)",
    2048: "signal in zero read (corrected)",
    4096: "cosmic ray (AstroDrizzle)",
    8192: "cosmic ray rejected by the ramp fit",
    16384: "ghost / crosstalk / too many cosmic rays",
    32768: "flagged by user",
}
#: Flags whose pixels are KEPT (their values are valid; 512 marks blobs, the very thing we look for).
KEPT_FLAGS = (64, 512, 2048, 8192)
#: Bits that mask a pixel by default: 1 2 4 8 16 32 128 256 1024 4096 16384 32768.
DEFAULT_DQ_MASK = sum(DQ_FLAGS) - sum(KEPT_FLAGS)
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
        keys = ("BUNIT", "EXPTIME", "SAMP_SEQ", "NSAMP", "FILTER", "DETECTOR")
        kw = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in self.meta.items() if k in keys}
        out = {"file": self.path.name, "layout": self.layout, "reader": self.reader, "unit": self.unit,
               "keywords": kw, "masked_pixels": dict(self.mask_counts)}
        if self.dq_mask:
            out["dq_masked_flags"] = [b for b in DQ_FLAGS if b & self.dq_mask]
            out["dq_kept_flags"] = [b for b in DQ_FLAGS if not b & self.dq_mask]
        return out


def open_fits(path: Path):
    """Open a FITS file (plain or gzip) read into memory, or raise InputError saying what is wrong with it."""
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
        try:
            return Time(float(header["EXPSTART"]), format="mjd").to_datetime()
        except (TypeError, ValueError) as exc:
            raise InputError(f"{where}EXPSTART {header['EXPSTART']!r} is not an MJD") from exc
    raise InputError(f"{where}no DATE-OBS or EXPSTART keyword; cannot order the frame in time")


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
