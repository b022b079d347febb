"""WFC3/IR products in and out: RAW, IMA, FLT and plain 2-D FITS (used by :func:`~blobhelpers.blob.io.fitsio.read_frame`; the flag table lives in :mod:`.frames`).

Layouts (WFC3 Data Handbook, section 2.2; ``docs/facts.md`` section 2)
----------------------------------------------------------------------
``raw``
    Empty primary HDU with the exposure keywords, then NSAMP IMSETs (SCI, ERR, DQ, SAMP, TIME)
    of raw readouts in DN, 1024x1024 with the 5-px reference-pixel border, stored newest first
    (``[SCI,1]`` the final read, ``[SCI,NSAMP]`` the zero read). The order is checked with each
    SCI header's ``SAMPTIME`` (or the TIME extension) when present, else EXTVER order is assumed.
    Signal = ``(final - zero) x gain / (t_final - t_zero)`` in **e-/s**: the zero-read subtraction
    removes the bias and the reset level. Gain: ``ATODGNA..D`` per quadrant when all are set,
    else ``ADCGAIN``, else ``CCDGAIN``, else 2.3 e-/DN (said so in the reader string).
``ima``
    The same IMSET structure, calibrated readouts (normally e-/s, each read divided by its
    sample time). Signal = ``(c_final - c_zero) / (t_final - t_zero)`` with ``c = SCI x t`` for
    a rate unit (``SCI`` for e-, ``SCI x gain`` for DN), in **e-/s**.
``flt``
    One calibrated 1014x1014 IMSET (reference pixels trimmed), converted to **e-/s** if stored
    in e- (divided by EXPTIME) or DN.
``sci``
    Any other file whose image is in a ``SCI`` extension (e.g. a difference image): read as
    stored, DQ applied when a matching DQ extension exists.
``plain``
    A 2-D image in the primary HDU (or the first 2-D HDU): the simulator's default layout,
    read as stored (unit = BUNIT) -- unchanged from the original reader.

No ramp fit is made: the final-minus-zero difference is the exposure's signal; a ramp fit
would only matter for pixels hit by cosmic rays or saturating during the exposure, which the
difference image handles as outliers.

Masks (bad pixels come out as NaN in ``Frame.data``)
----------------------------------------------------
* RAW and IMA: the 5-px reference-pixel border (no light) is set to NaN.
* DQ: a pixel is masked when its DQ value has any bit of :data:`DEFAULT_DQ_MASK` -- every
  WFC3 flag except those of :data:`KEPT_FLAGS` (64 warm pixel, 512 blob / bad flat value,
  2048 zero-read signal corrected, 8192 cosmic ray removed by the ramp fit): the values of
  these pixels are valid, and blobs (512) are what the monitor looks for. For RAW/IMA the DQ
  of the final and the zero read are combined.

Every problem raises :class:`~blobhelpers.core.errors.InputError` naming the file and the
problem: ``UVIS file``, ``subarray 512x512``, ``no SCI extension``, ``NSAMP = 1`` ...
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits

from blobhelpers.blob.io.frames import (BORDER, DEFAULT_DQ_MASK, DQ_FLAGS, FULL_SIZE, KEPT_FLAGS, TRIMMED_SIZE, Frame,
                                        open_fits, write_image)
from blobhelpers.core.errors import InputError
from blobhelpers.core.paths import atomic_path

__all__ = ["DEFAULT_DQ_MASK", "DEFAULT_GAIN", "DQ_FLAGS", "KEPT_FLAGS", "LAYOUTS", "describe", "history_summary",
           "read_product", "sample_times", "signature_differences", "write_product"]

#: Layouts written by :func:`write_product` (``plain`` = the simulator's default single image).
LAYOUTS = ("plain", "raw", "ima", "flt")
#: e-/DN when a RAW file carries no gain keyword (FACTS section 2).
DEFAULT_GAIN = 2.3
#: Declared unit of RAW, IMA and FLT data after reading.
RATE_UNIT = "e-/s"

_PRODUCT_RE = re.compile(r"_(raw|ima|flt|flc|drz|drc|crj|spt|asn)\.fits(\.gz)?$", re.IGNORECASE)
_RATE_UNITS = {"ELECTRONS/S", "ELECTRONS/SEC", "E-/S", "E/S"}
_ELECTRON_UNITS = {"ELECTRONS", "ELECTRON", "E-", "E"}
_DN_UNITS = {"COUNTS", "DN", "COUNT", "ADU"}
_DN_RATE_UNITS = {"COUNTS/S", "DN/S", "COUNTS/SEC"}


def _unit(value) -> str:
    return str(value).strip().upper() if value not in (None, "") else ""


def _kw(headers, key, default=None):
    """First value of *key* in *headers* (primary first)."""
    for h in headers:
        if h is not None and key in h and h[key] not in (None, ""):
            v = h[key]
            return v.strip() if isinstance(v, str) else v
    return default


def _meta(primary: fits.Header, sci_header: fits.Header | None) -> dict:
    hs = (primary, sci_header)
    out = {}
    for k in ("INSTRUME", "DETECTOR", "FILTER", "EXPTIME", "SAMP_SEQ", "NSAMP", "SUBARRAY", "APERTURE", "BUNIT"):
        v = _kw(hs if k != "BUNIT" else (sci_header, primary), k)
        if isinstance(v, (np.generic,)):
            v = v.item()
        out[k] = v
    return out


class _Product:
    """What the headers say: layout, where the image(s) are, shape and unit (no pixel read)."""

    def __init__(self, path, layout, primary, meta, shape, unit_in, unit, sci=(), image_hdu=None):
        self.path, self.layout, self.primary, self.meta = path, layout, primary, meta
        self.shape, self.unit_in, self.unit, self.sci, self.image_hdu = tuple(shape), unit_in, unit, list(sci), image_hdu

    def signature(self) -> dict:
        return {"FILTER": self.meta.get("FILTER") or "", "DETECTOR": self.meta.get("DETECTOR") or "",
                "shape": f"{self.shape[0]}x{self.shape[1]}", "unit": self.unit}


def _shape_of(hdu) -> tuple[int, ...]:
    n = int(hdu.header.get("NAXIS", 0) or 0)
    return tuple(int(hdu.header.get(f"NAXIS{k}", 0)) for k in range(n, 0, -1))


def _identify(hdul, path: Path) -> _Product:
    """Classify an open file; raises InputError for UVIS, subarray, no SCI, NSAMP = 1 ..."""
    primary = hdul[0].header
    sci = [i for i, h in enumerate(hdul) if h.name == "SCI"]
    sci.sort(key=lambda i: int(hdul[i].header.get("EXTVER", 1) or 1))
    sci_hdr = hdul[sci[0]].header if sci else None
    meta = _meta(primary, sci_hdr)
    instrument, detector = _unit(meta["INSTRUME"]), _unit(meta["DETECTOR"])
    if detector == "UVIS":
        raise InputError(f"{path}: UVIS file (DETECTOR = UVIS); only WFC3/IR frames can be read")
    if instrument and instrument != "WFC3":
        raise InputError(f"{path}: INSTRUME = {instrument}: not a WFC3/IR file")
    if detector and detector != "IR":
        raise InputError(f"{path}: DETECTOR = {detector}: not a WFC3/IR file")
    name = str(primary.get("FILENAME", "") or "").strip() or path.name
    m = _PRODUCT_RE.search(name) or _PRODUCT_RE.search(path.name)
    suffix = m.group(1).lower() if m else ""
    # A 2-D image in the primary HDU is a plain file, whatever its name says.
    primary_image = int(primary.get("NAXIS", 0) or 0) >= 2
    if suffix in ("flc", "drz", "drc", "crj", "spt", "asn") and (sci or not primary_image):
        raise InputError(f"{path}: a _{suffix} product; the blob reader takes WFC3/IR RAW, IMA or FLT files")
    subarray = meta.get("SUBARRAY")
    is_sub = subarray is True or _unit(subarray) in ("T", "TRUE", "1")

    if not sci:
        others = {h.name for h in hdul[1:]}
        if not primary_image and (suffix or others & {"ERR", "DQ", "SAMP", "TIME"}):
            kind = f"_{suffix} file" if suffix else "multi-extension file"
            raise InputError(f"{path}: no SCI extension (a WFC3 {kind} without science data)")
        idx = next((i for i, h in enumerate(hdul)
                    if getattr(h, "is_image", False) and int(h.header.get("NAXIS", 0) or 0) >= 2), None)
        if idx is None:
            raise InputError(f"{path}: no image data in any HDU")
        shape = _shape_of(hdul[idx])
        if is_sub:
            raise InputError(f"{path}: subarray {shape[-2]}x{shape[-1]} (SUBARRAY = T); the blob monitor needs "
                             "full frames")
        bunit = _unit(_kw((hdul[idx].header, primary), "BUNIT"))
        meta["BUNIT"] = bunit or None
        return _Product(path, "plain", primary, meta, shape[-2:] if len(shape) >= 2 else shape, bunit, bunit,
                        image_hdu=idx)

    shape = _shape_of(hdul[sci[0]])
    bunit = _unit(meta["BUNIT"])
    if suffix:
        layout = suffix
    elif len(sci) > 1:
        layout = "raw" if bunit in _DN_UNITS or not bunit else "ima"
    else:
        is_flt = (instrument == "WFC3" and int(primary.get("NAXIS", 0) or 0) == 0
                  and any(h.name == "DQ" for h in hdul[1:]) and shape == (TRIMMED_SIZE, TRIMMED_SIZE))
        layout = "flt" if is_flt else "sci"
    if len(shape) != 2 and layout != "sci":
        raise InputError(f"{path}: SCI extension has shape {shape}; expected a 2-D image")
    want = {"raw": (FULL_SIZE, FULL_SIZE), "ima": (FULL_SIZE, FULL_SIZE), "flt": (TRIMMED_SIZE, TRIMMED_SIZE)}
    if layout in want and (is_sub or shape != want[layout]):
        sub = f"subarray {shape[0]}x{shape[1]}" if len(shape) == 2 else f"shape {shape}"
        why = " (SUBARRAY = T)" if is_sub else ""
        aperture = f", APERTURE = {meta['APERTURE']}" if meta.get("APERTURE") else ""
        raise InputError(f"{path}: {sub}{why}{aperture}: a {layout.upper()} file must be a full frame "
                         f"{want[layout][0]}x{want[layout][1]}; the blob monitor needs full frames")
    if layout == "sci" and is_sub:
        raise InputError(f"{path}: subarray {shape[0]}x{shape[1]} (SUBARRAY = T); the blob monitor needs full frames")
    if layout in ("raw", "ima"):
        nsamp = meta.get("NSAMP")
        if (nsamp is not None and int(nsamp) == 1) or len(sci) == 1:
            raise InputError(f"{path}: NSAMP = 1: a single read has no zero read to subtract "
                             f"(a {layout.upper()} file needs at least 2 reads)")
        if nsamp is not None and int(nsamp) != len(sci):
            raise InputError(f"{path}: NSAMP = {int(nsamp)} but {len(sci)} SCI extensions (truncated file?)")
    unit = RATE_UNIT if layout in ("raw", "ima", "flt") else bunit
    if layout == "raw" and bunit not in _DN_UNITS | {""}:
        raise InputError(f"{path}: RAW file with BUNIT = {bunit}; raw readouts must be in COUNTS (DN)")
    if layout in ("ima", "flt") and bunit not in _RATE_UNITS | _ELECTRON_UNITS | _DN_UNITS | _DN_RATE_UNITS:
        raise InputError(f"{path}: {layout.upper()} file with BUNIT = {bunit or '(none)'}; cannot convert to e-/s")
    return _Product(path, layout, primary, meta, shape, bunit, unit, sci=sci)


def describe(path, with_header: bool = False):
    """Header-only summary of a frame: its history-consistency signature (FILTER, DETECTOR,
    shape of the data :func:`read_product` returns, unit) plus ``layout``; with *with_header*,
    ``(summary, primary header)`` from the same reading of the file.

    Raises :class:`InputError` as :func:`read_product` would for the same header problems.
    """
    path = Path(path)
    hdul = open_fits(path)
    try:
        prod = _identify(hdul, path)
        summary = {**prod.signature(), "layout": prod.layout}
        return (summary, hdul[0].header.copy()) if with_header else summary
    finally:
        hdul.close()


def signature_differences(sig: dict, ref: dict) -> list[str]:
    """What differs between a frame's signature and the reference one, as short phrases."""
    out = []
    for k in ("FILTER", "DETECTOR", "shape", "unit"):
        a, b = sig.get(k, ""), ref.get(k, "")
        if str(a).upper() != str(b).upper():
            label = {"shape": "size", "unit": "unit"}.get(k, k)
            out.append(f"{label} {a or '(none)'} (newest: {b or '(none)'})")
    return out


# --------------------------------------------------------------------------------------- reading
def _ext(hdul, name: str, extver: int):
    for h in hdul:
        if h.name == name and int(h.header.get("EXTVER", 1) or 1) == extver:
            return h
    return None


def _array_of(hdu, shape, dtype, path, what):
    """Data of *hdu*, or its constant PIXVALUE (NAXIS = 0 extensions of HST files); None if absent."""
    if hdu is None:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = hdu.data
    except Exception as exc:  # truncated data section
        raise InputError(f"{path}: cannot read the {what} data ({exc}); is the file truncated?") from exc
    if data is None:
        if "PIXVALUE" in hdu.header:
            return np.full(shape, hdu.header["PIXVALUE"], dtype)
        return None
    if data.shape != tuple(shape):
        raise InputError(f"{path}: {what} has shape {data.shape}, the SCI image {tuple(shape)}")
    return np.asarray(data, dtype)


def _sample_time(hdul, i, path):
    h = hdul[i].header
    if "SAMPTIME" in h:
        return float(h["SAMPTIME"])
    tim = _ext(hdul, "TIME", int(h.get("EXTVER", 1) or 1))
    if tim is not None:
        if tim.data is None:
            return float(tim.header["PIXVALUE"]) if "PIXVALUE" in tim.header else None
        return float(np.median(tim.data))
    return None


def _gain(primary, sci_hdr, shape):
    """(gain map or scalar in e-/DN, description)."""
    hs = (primary, sci_hdr)
    quads = [_kw(hs, f"ATODGN{q}") for q in "ABCD"]
    if all(isinstance(g, (int, float, np.floating)) and g > 0 for g in quads):
        qa, qb, qc, qd = (float(g) for g in quads)
        if len({qa, qb, qc, qd}) == 1:
            return qa, f"gain {qa:g} e-/DN (ATODGNA-D)"
        ny, nx = shape
        g = np.empty(shape, np.float32)
        # IR amplifiers: A upper left, B lower left, C lower right, D upper right (0-based rows up)
        g[ny // 2:, : nx // 2], g[: ny // 2, : nx // 2] = qa, qb
        g[: ny // 2, nx // 2:], g[ny // 2:, nx // 2:] = qc, qd
        return g, f"gain per quadrant {qa:g}/{qb:g}/{qc:g}/{qd:g} e-/DN (ATODGNA-D)"
    for key in ("ADCGAIN", "CCDGAIN"):
        v = _kw(hs, key)
        if isinstance(v, (int, float, np.floating)) and not isinstance(v, bool) and v > 0:
            return float(v), f"gain {float(v):g} e-/DN ({key})"
    return DEFAULT_GAIN, f"gain {DEFAULT_GAIN:g} e-/DN ASSUMED (no ATODGN*/ADCGAIN/CCDGAIN keyword)"


def _mask(data, dq, dq_mask, reference: bool, counts: dict) -> None:
    """Set masked pixels to NaN in place and fill *counts*."""
    nonfinite = ~np.isfinite(data)
    ref = np.zeros(data.shape, bool)
    if reference:
        ref[:BORDER, :] = ref[-BORDER:, :] = True
        ref[:, :BORDER] = ref[:, -BORDER:] = True
    counts["reference"] = int(ref.sum())
    by_flag = {}
    dqbad = np.zeros(data.shape, bool)
    if dq is not None:
        dqi = dq.astype(np.int64) & 0xFFFF
        live = ~ref
        dqbad = ((dqi & int(dq_mask)) != 0) & live
        for bit in DQ_FLAGS:
            if bit & int(dq_mask):
                n = int((((dqi & bit) != 0) & live).sum())
                if n:
                    by_flag[str(bit)] = n
        counts["dq_512_kept"] = int((((dqi & 512) != 0) & live & ~dqbad).sum()) if not 512 & int(dq_mask) else 0
    else:
        counts["dq_512_kept"] = 0
    counts["dq"] = int(dqbad.sum())
    counts["dq_by_flag"] = by_flag
    counts["nonfinite"] = int((nonfinite & ~ref & ~dqbad).sum())
    data[ref | dqbad] = np.nan
    counts["total"] = int((~np.isfinite(data)).sum())


def _merged_header(primary, ext_hdr):
    header = primary.copy()
    if ext_hdr is not None:
        for card in ext_hdr.cards:
            if card.keyword in ("", "COMMENT", "HISTORY", "XTENSION", "BITPIX", "NAXIS", "NAXIS1",
                                "NAXIS2", "PCOUNT", "GCOUNT", "EXTEND", "SIMPLE", "BZERO", "BSCALE"):
                continue
            header[card.keyword] = (card.value, card.comment)
    return header


def hdu_data(hdu, path, what="SCI"):
    """The data of *hdu* (warnings silenced); :class:`InputError` naming *path* if truncated or empty."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = hdu.data
    except Exception as exc:  # truncated data section
        raise InputError(f"{path}: cannot read the image data ({exc}); is the file truncated?") from exc
    if raw is None or raw.size == 0:
        raise InputError(f"{path}: {what} extension holds no image data")
    return raw


def _read_ramp(hdul, prod: _Product, dq_mask: int):
    """RAW/IMA: final minus zero read in e-/s, DQ of both reads, description."""
    path = prod.path
    times = [_sample_time(hdul, i, path) for i in prod.sci]
    if all(t is not None for t in times) and len(set(times)) > 1:
        fi, zi = int(np.argmax(times)), int(np.argmin(times))
        order = "by SAMPTIME"
    else:
        fi, zi = 0, len(prod.sci) - 1  # newest first: [SCI,1] final, last IMSET the zero read
        order = "by EXTVER (no sample times)"
    hf, hz = hdul[prod.sci[fi]], hdul[prod.sci[zi]]
    vf, vz = int(hf.header.get("EXTVER", 1) or 1), int(hz.header.get("EXTVER", 1) or 1)
    exptime = prod.meta.get("EXPTIME")
    tf, tz = times[fi], times[zi]
    if tf is not None and tz is not None and tf > tz:
        dt, dt_src = tf - tz, f"t_final - t_zero = {tf - tz:g} s"
    elif isinstance(exptime, (int, float)) and exptime > 0:
        dt, dt_src, tf, tz = float(exptime), f"EXPTIME = {float(exptime):g} s", float(exptime), 0.0
    else:
        raise InputError(f"{path}: no sample times (SAMPTIME/TIME) and no EXPTIME: cannot make a rate")
    final = np.asarray(hdu_data(hf, path), np.float64)
    zero = np.asarray(hdu_data(hz, path), np.float64)
    unit = prod.unit_in
    gain_txt = ""
    if prod.layout == "raw" or unit in _DN_UNITS | _DN_RATE_UNITS:
        gain, gain_txt = _gain(prod.primary, hf.header, final.shape)
    else:
        gain = 1.0
    if prod.layout == "ima" and unit in _RATE_UNITS | _DN_RATE_UNITS:
        counts = final * tf - zero * tz  # rates back to accumulated signal
        how = f"(SCI x TIME)[{vf}] - (SCI x TIME)[{vz}]"
    else:
        counts = final - zero
        how = f"[SCI,{vf}] - [SCI,{vz}]"
    data = (counts * gain / dt).astype(np.float32)
    dq = None
    for h in (hf, hz):
        d = _array_of(_ext(hdul, "DQ", int(h.header.get("EXTVER", 1) or 1)), final.shape, np.int32, path, "DQ")
        if d is not None:
            dq = d if dq is None else (dq | d)
    desc = (f"{prod.layout.upper()}: final read minus zero read {how} (reads ordered {order}), "
            f"{'x ' + gain_txt + ', ' if gain_txt else ''}/ {dt_src} -> e-/s; reference pixels masked")
    return data, dq, desc, hf.header, {"final_extver": vf, "zero_extver": vz, "t_final": tf, "t_zero": tz,
                                        "order": order, "gain": gain_txt}


def read_product(path, dq_mask: int = DEFAULT_DQ_MASK, allowed_shapes=((FULL_SIZE, FULL_SIZE),
                                                                        (TRIMMED_SIZE, TRIMMED_SIZE))) -> Frame:
    """Read any supported layout (see the module docstring) as a :class:`~blobhelpers.blob.io.fitsio.Frame`."""
    path = Path(path)
    hdul = open_fits(path)
    try:
        try:
            hdul.verify("silentfix")
        except Exception:  # noqa: BLE001 - verification problems surface below as read errors
            pass
        prod = _identify(hdul, path)
        counts: dict = {}
        extra: dict = {}
        if prod.layout == "plain":
            hdu = hdul[prod.image_hdu]
            raw = hdu_data(hdu, path, f"HDU {prod.image_hdu}")
            if raw.ndim != 2:
                raise InputError(f"{path}: image is {raw.ndim}-D with shape {raw.shape}; expected a 2-D image")
            _check_shape(path, raw.shape, allowed_shapes)
            data = np.ascontiguousarray(np.asarray(raw, dtype=np.float32))
            counts = {"reference": 0, "dq": 0, "dq_by_flag": {}, "dq_512_kept": 0,
                      "nonfinite": int((~np.isfinite(data)).sum())}
            counts["total"] = counts["nonfinite"]
            if data.shape == (FULL_SIZE, FULL_SIZE):
                counts["reference_kept"] = FULL_SIZE ** 2 - TRIMMED_SIZE ** 2
            desc = (f"plain: 2-D image of HDU {prod.image_hdu} as stored ({prod.unit or 'no BUNIT'})"
                    + ("; reference-pixel border kept as stored" if data.shape == (FULL_SIZE, FULL_SIZE) else ""))
            ext_hdr = hdu.header if prod.image_hdu != 0 else None
            extension = prod.image_hdu
        elif prod.layout in ("raw", "ima"):
            data, dq, desc, ext_hdr, extra = _read_ramp(hdul, prod, dq_mask)
            _mask(data, dq, dq_mask, True, counts)
            extension = "SCI"
        else:  # flt or sci: one SCI extension
            hdu = hdul[prod.sci[0]]
            raw = hdu_data(hdu, path)
            if raw.ndim != 2:
                raise InputError(f"{path}: image is {raw.ndim}-D with shape {raw.shape}; expected a 2-D image")
            _check_shape(path, raw.shape, allowed_shapes)
            data = np.asarray(raw, np.float64)
            extver = int(hdu.header.get("EXTVER", 1) or 1)
            dq = _array_of(_ext(hdul, "DQ", extver), raw.shape, np.int32, path, "DQ")
            ext_hdr = hdu.header
            if prod.layout == "flt":
                exptime = prod.meta.get("EXPTIME")
                u = prod.unit_in
                conv = f"in {u} as stored"
                if u in _ELECTRON_UNITS | _DN_UNITS:
                    if not (isinstance(exptime, (int, float)) and exptime > 0):
                        raise InputError(f"{path}: FLT in {u} without a positive EXPTIME: cannot make e-/s")
                    data = data / float(exptime)
                    conv = f"/ EXPTIME {float(exptime):g} s"
                if u in _DN_UNITS | _DN_RATE_UNITS:
                    gain, gtxt = _gain(prod.primary, hdu.header, raw.shape)
                    data = data * gain
                    conv += f", x {gtxt}"
                desc = f"FLT: [SCI,{extver}] {conv} -> e-/s, DQ applied (reference pixels already trimmed)"
            else:
                desc = f"SCI extension {extver} as stored ({prod.unit or 'no BUNIT'})" + (
                    ", DQ applied" if dq is not None else "")
            data = np.ascontiguousarray(data.astype(np.float32))
            _mask(data, dq, dq_mask, False, counts)
            extension = "SCI"
        if not np.isfinite(data).any():
            raise InputError(f"{path}: every pixel is NaN or infinite")
        header = _merged_header(hdul[0].header, ext_hdr)
        if prod.layout in ("raw", "ima", "flt"):
            header["ORIGUNIT"] = (prod.unit_in or "", "BUNIT of the stored SCI data")
            header["BUNIT"] = (prod.unit, "unit of the data as read by blobhelpers")
        meta = {**prod.meta, **extra, "BUNIT": prod.unit_in or None}
        return Frame(data=data, header=header, path=path, extension=extension, layout=prod.layout, unit=prod.unit,
                     reader=desc, mask_counts=counts, meta=meta, dq_mask=int(dq_mask) if prod.layout != "plain" else 0)
    finally:
        hdul.close()


def _check_shape(path, shape, allowed_shapes):
    if allowed_shapes is not None and tuple(shape) not in {tuple(s) for s in allowed_shapes}:
        want = " or ".join(f"{s[0]}x{s[1]}" for s in allowed_shapes)
        raise InputError(f"{path}: image shape {shape[0]}x{shape[1]} is not a WFC3/IR frame ({want})")


def history_summary(infos: list[dict]) -> dict:
    """Summarise the per-frame provenance of a history: layouts, EXPTIME/SAMP_SEQ seen, masked pixels."""
    if not infos:
        return {"n": 0}
    layouts: dict[str, int] = {}
    for f in infos:
        layouts[f["layout"]] = layouts.get(f["layout"], 0) + 1
    exps = sorted({f["keywords"].get("EXPTIME") for f in infos if f["keywords"].get("EXPTIME") is not None})
    seqs = sorted({str(f["keywords"].get("SAMP_SEQ")) for f in infos if f["keywords"].get("SAMP_SEQ")})
    tot = [f["masked_pixels"].get("total", 0) for f in infos]
    return {"n": len(infos), "layouts": layouts, "EXPTIME": exps, "SAMP_SEQ": seqs,
            "masked_pixels_median": int(np.median(tot)), "masked_pixels_max": int(max(tot))}


# --------------------------------------------------------------------------------------- writing
def sample_times(exptime: float, nsamp: int | None = None) -> np.ndarray:
    """Read times (s, ascending, zero read first) of a SPARS25-like MULTIACCUM sequence.

    The first two reads are 2.932 s apart (as on WFC3/IR), the rest equally spaced up to
    *exptime*; the default *nsamp* gives 25-s steps (302.9 s -> NSAMP 14, SPARS25).
    """
    exptime = float(exptime)
    if nsamp is None:
        nsamp = max(3, 2 + round((float(exptime) - 2.932) / 25.0))
    nsamp = int(nsamp)
    if nsamp < 2:
        raise ValueError("nsamp must be >= 2")
    if nsamp == 2:
        return np.array([0.0, exptime])
    return np.concatenate([[0.0], np.linspace(min(2.932, exptime / 2), exptime, nsamp - 1)])


def _const_hdu(name, extver, value, shape, dtype_comment=""):
    h = fits.ImageHDU(name=name)
    h.header["EXTVER"] = extver
    h.header["PIXVALUE"] = (value, "value of every pixel" + dtype_comment)
    h.header["NPIX1"] = (shape[1], "length of constant array axis 1")
    h.header["NPIX2"] = (shape[0], "length of constant array axis 2")
    return h


def _dq_hdu(extver, dq):
    if not dq.any():
        return _const_hdu("DQ", extver, 0, dq.shape)
    h = fits.ImageHDU(dq.astype(np.int16), name="DQ")
    h.header["EXTVER"] = extver
    return h


def write_product(path, image_e: np.ndarray, header: dict, layout: str, *, exptime: float,
                  gain: float = DEFAULT_GAIN, nsamp: int | None = None, read_noise_e: float = 15.0,
                  blob_mask: np.ndarray | None = None, bias_seed: int = 0) -> Path:
    """Write a simulated frame (*image_e*: e- accumulated in *exptime*, 1024x1024, NaN = dead
    pixel) in a real WFC3/IR layout: ``raw``, ``ima`` or ``flt`` (``plain``: the primary image).

    * DQ: dead pixels get flag 4 (bad detector pixel) and their SCI value is the bias (RAW) or 0;
      pixels where *blob_mask* is True get 512 (the blob flag of the IR bad-pixel tables).
    * RAW: NSAMP reads (``sample_times``), newest first, unsigned 16-bit DN =
      integer per-pixel bias (~11000 DN, fixed by *bias_seed*) + round(signal(t) / gain) with
      signal(t) = image x t / exptime: final minus zero read gives the image back to 0.5 DN.
      ERR is empty (NAXIS = 0), SAMP and TIME are constants (PIXVALUE), as in real raw files.
    * IMA: the same reads in e-/s (zero read 0), ERR arrays, reference pixels included.
    * FLT: the 1014x1014 light-sensitive area in e-/s with ERR and DQ arrays, SAMP and TIME.

    The primary HDU is empty and carries *header* (minus BUNIT) plus FILENAME, ROOTNAME,
    OBSMODE, SAMP_SEQ, NSAMP, SUBARRAY, APERTURE, CCDGAIN, ATODGNA-D, READNSEA-D, EXPEND, NEXTEND.
    """
    path = Path(path)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    img = np.asarray(image_e, np.float64)
    if img.shape != (FULL_SIZE, FULL_SIZE):
        raise ValueError(f"image must be {FULL_SIZE}x{FULL_SIZE}, got {img.shape}")
    dead = ~np.isfinite(img)
    sig = np.where(dead, 0.0, img)
    dq = np.where(dead, 4, 0).astype(np.int16)
    if blob_mask is not None:
        dq |= np.where(blob_mask & ~dead, 512, 0).astype(np.int16)
    times = sample_times(exptime, nsamp)
    n = len(times)
    natural = nsamp is None or n == max(3, 2 + round((float(exptime) - 2.932) / 25.0))
    hdr = fits.Header()
    for key, value in header.items():
        if key != "BUNIT":
            hdr[key] = value
    stem = path.name.split(".")[0]
    root = stem.rsplit("_", 1)[0] if stem.endswith(f"_{layout}") else stem
    expstart = header.get("EXPSTART", 0.0)
    expstart = float(expstart[0] if isinstance(expstart, tuple) else expstart)
    hdr["FILENAME"] = (path.name, "name of file")
    hdr["ROOTNAME"] = (root[:40], "rootname of the observation set")
    hdr["FILETYPE"] = ("SCI", "type of data found in data file")
    hdr["OBSMODE"] = ("MULTIACCUM", "operating mode")
    hdr["SAMP_SEQ"] = ("SPARS25" if natural and n > 2 else "NONE", "MultiAccum exposure time sequence name")
    hdr["NSAMP"] = (n, "number of MULTIACCUM samples")
    hdr["SUBARRAY"] = (False, "data from a subarray (T) or full frame (F)")
    hdr["APERTURE"] = ("IR", "aperture name")
    hdr["EXPTIME"] = (float(exptime), "exposure duration (seconds)--calculated")
    hdr["EXPEND"] = (expstart + float(exptime) / 86400.0, "exposure end time (MJD)")
    hdr["CCDGAIN"] = (2.5, "commanded gain of CCD")
    hdr["ADCGAIN"] = (float(gain), "e-/DN (used by the reader)")
    for q in "ABCD":
        hdr[f"ATODGN{q}"] = (float(gain), f"calibrated gain for amplifier {q}")
        hdr[f"READNSE{q}"] = (float(read_noise_e), f"calibrated read noise for amplifier {q}")
    hdr["SIMLAYOU"] = (layout, "layout written by blobhelpers.blob.io.wfc3")
    hdus = [fits.PrimaryHDU(header=hdr)]

    def sci_hdu(data, extver, k, bunit):
        h = fits.ImageHDU(data, name="SCI")
        h.header["EXTVER"] = extver
        h.header["BUNIT"] = (bunit, "brightness units")
        if k is not None:
            h.header["SAMPNUM"] = (k, "MULTIACCUM sample number (0 = zero read)")
            h.header["SAMPTIME"] = (float(times[k]), "total integration time (sec)")
            h.header["DELTATIM"] = (float(times[k] - times[k - 1]) if k else 0.0, "integration time of this sample (sec)")
            h.header["ROUTTIME"] = (expstart + float(times[k]) / 86400.0, "UT time of array readout (MJD)")
        return h

    if layout == "raw":
        rng = np.random.default_rng(np.random.SeedSequence([int(bias_seed), 20210813]))
        bias = 11000.0 + np.rint(rng.normal(0.0, 25.0, img.shape)) + np.rint(rng.normal(0.0, 8.0, img.shape[1]))[None, :]
        for v in range(1, n + 1):
            k = n - v
            dn = bias + np.rint(sig * (times[k] / float(exptime)) / gain)
            hdus += [sci_hdu(np.clip(dn, 0, 65535).astype(np.uint16), v, k, "COUNTS"),
                     _const_hdu("ERR", v, 0.0, img.shape), _dq_hdu(v, dq),
                     _const_hdu("SAMP", v, k, img.shape), _const_hdu("TIME", v, float(times[k]), img.shape)]
    elif layout == "ima":
        for v in range(1, n + 1):
            k = n - v
            t = float(times[k])
            if t > 0:
                acc = sig * (t / float(exptime))
                rate = (acc / t).astype(np.float32)
                err = (np.sqrt(np.maximum(acc, 0.0) + read_noise_e ** 2) / t).astype(np.float32)
            else:
                rate = np.zeros(img.shape, np.float32)
                err = np.full(img.shape, read_noise_e, np.float32)
            hdus += [sci_hdu(rate, v, k, "ELECTRONS/S"), _err_hdu(v, err), _dq_hdu(v, dq),
                     _const_hdu("SAMP", v, k, img.shape), _const_hdu("TIME", v, t, img.shape)]
    elif layout == "flt":
        b = BORDER
        rate = (sig[b:-b, b:-b] / float(exptime)).astype(np.float32)
        err = (np.sqrt(np.maximum(sig[b:-b, b:-b], 0.0) + read_noise_e ** 2) / float(exptime)).astype(np.float32)
        sh = rate.shape
        s = sci_hdu(rate, 1, None, "ELECTRONS/S")
        s.header["LTV1"] = (-float(b), "offset in X to subsection start")
        s.header["LTV2"] = (-float(b), "offset in Y to subsection start")
        hdus += [s, _err_hdu(1, err), _dq_hdu(1, dq[b:-b, b:-b]), _const_hdu("SAMP", 1, n, sh),
                 _const_hdu("TIME", 1, float(exptime), sh)]
    else:  # plain: the simulator's original layout
        return write_image(path, image_e, header)
    hdus[0].header["NEXTEND"] = (len(hdus) - 1, "number of standard extensions")
    with atomic_path(path, suffix=".fits") as tmp:
        fits.HDUList(hdus).writeto(tmp, overwrite=True)
    return path


def _err_hdu(extver, err):
    h = fits.ImageHDU(err, name="ERR")
    h.header["EXTVER"] = extver
    h.header["BUNIT"] = ("ELECTRONS/S", "brightness units")
    return h
