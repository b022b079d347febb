"""FITS input and output for WFC3/IR blob frames and difference images.

Everything read from FITS leaves this module as a native-byte-order ``float32`` array
(astropy returns big-endian data, which TensorFlow silently mangles), and every problem
with an input file raises :class:`~blobhelpers.core.errors.InputError` with the file named.

:func:`read_frame` knows the WFC3/IR product layouts (RAW, IMA, FLT; see
:mod:`blobhelpers.blob.io.wfc3`): RAW/IMA give final-minus-zero-read signal in e-/s with the
reference pixels masked, FLT gives e-/s, DQ-flagged pixels come out as NaN (flag 512, blobs,
is kept), and the :class:`Frame` says which reader path was used, the unit and the masked
pixel counts. Plain 2-D FITS (the simulator's default) is read as stored.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import numpy as np
from astropy.io import fits

from blobhelpers.blob.io.frames import (BORDER, DEFAULT_DQ_MASK, FULL_SIZE, TRIMMED_SIZE, Frame, frame_time, open_fits,
                                        write_image)
from blobhelpers.blob.io.wfc3 import hdu_data, read_product
from blobhelpers.core.errors import InputError

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

def read_header(path: str | os.PathLike) -> fits.Header:
    """Read only the primary header of *path* (cheap: used to order frames by date)."""
    path = Path(path)
    hdul = open_fits(path)
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
        2-D FITS image (see :mod:`blobhelpers.blob.io.wfc3` for what each gives). With
        *extension*, exactly that HDU is read as stored.
    extension : str or int, optional
        Extension name or index to read.
    allowed_shapes : sequence of tuple
        Accepted image shapes; anything else raises :class:`InputError`. Pass ``None`` to
        accept any 2-D shape.
    dq_mask : int, optional
        DQ bits that mask a pixel (default :data:`blobhelpers.blob.io.wfc3.DEFAULT_DQ_MASK`:
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
        return read_product(path, DEFAULT_DQ_MASK if dq_mask is None else dq_mask, allowed_shapes)
    hdul = open_fits(path)
    try:
        try:
            hdul.verify("silentfix")
        except Exception:  # noqa: BLE001 - verification problems surface below as read errors
            pass
        try:
            hdu = hdul[extension]
        except (KeyError, IndexError) as exc:
            raise InputError(f"{path}: no extension {extension!r}") from exc
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


def expand_frame_paths(items) -> list[Path]:
    """Expand files, folders (their ``*.fits`` files) and glob patterns into a sorted list."""
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
