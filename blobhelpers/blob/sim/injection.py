"""Blob injection in difference-image units, from real cutouts and parametric profiles.

The released reference code pastes (replaces) square real cutouts into already-scaled
crops and re-z-scores them, which leaves shortcuts a network can learn instead of blobs:
square patch edges, a different noise texture inside the patch, and pasted peaks far above
the clipped background. Here, instead:

* every stamp has peak 1 and goes smoothly to exactly 0 at its rim (raised-cosine taper);
* it is multiplied by a depth (fraction of the sky, the difference image's unit) and ADDED
  to the raw difference image before the ISR clipping and z-scoring, so strong blobs
  saturate at the same clip as everything else and the background noise is untouched;
* real cutouts carry their own noise, so they are lightly smoothed and their background
  level removed first (their residual noise is ~1/3 of the background's, added in
  quadrature it changes the local noise by ~5 %).

Stamps are resampled (zoom), rotated and flipped at random and may sit partly off the crop.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from blobhelpers.blob.sim.shapes import PROFILES, BlobShape, stamp as profile_stamp
from blobhelpers.core.errors import InputError

__all__ = ["taper", "prepare_real_stamp", "read_cutouts", "load_real_stamps", "add_stamp", "make_stamp"]


def taper(n: int, inner: float = 0.6) -> np.ndarray:
    """Circular raised-cosine window on an n x n grid: 1 inside *inner* x half-size, 0 at the rim."""
    c = (n - 1) / 2.0
    y, x = np.mgrid[0:n, 0:n]
    r = np.hypot(x - c, y - c) / max(c, 1e-6)
    w = np.where(r <= inner, 1.0, 0.5 * (1 + np.cos(np.pi * np.clip((r - inner) / (1 - inner), 0, 1))))
    return w.astype(np.float32)


def prepare_real_stamp(cutout: np.ndarray, smooth: float = 0.8, pad: int = 3) -> np.ndarray:
    """Turn a processed real cutout into a peak-1 stamp that fades to 0 at its rim.

    The background (median of the outer ring of pixels) is subtracted, the cutout is padded
    by *pad* pixels, smoothed with a Gaussian of *smooth* px, tapered, and normalised to a
    peak of 1. Negative values (noise) are kept: they are part of the real texture.
    """
    a = np.asarray(cutout, np.float64)
    if a.ndim != 2 or a.shape[0] < 5 or a.shape[1] < 5:
        raise InputError(f"real cutout has unusable shape {a.shape}")
    rim = np.concatenate([a[0], a[-1], a[1:-1, 0], a[1:-1, -1]])
    a = a - np.median(rim)
    a = np.pad(a, pad, mode="constant", constant_values=0.0)
    if smooth > 0:
        a = ndimage.gaussian_filter(a, smooth)
    n = max(a.shape)
    if a.shape[0] != a.shape[1]:
        a = np.pad(a, ((0, n - a.shape[0]), (0, n - a.shape[1])))
    a *= taper(n)
    peak = a.max()
    if not peak > 0:
        raise InputError("real cutout has no positive signal (blobs must be positive)")
    return (a / peak).astype(np.float32)


def read_cutouts(path: str | Path) -> dict[str, np.ndarray]:
    """The real blob cutouts as shipped (``.npz``, one finite 2-D array per name), float32, sorted by name.

    The one reader of the cutout file (the project's injection and the ISR recipe both use it).
    Raises :class:`InputError` naming the file if it is missing, not an npz of finite 2-D arrays,
    empty, or would need pickle.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            raw = {k: np.asarray(z[k], np.float32) for k in sorted(z.files)}
    except FileNotFoundError as exc:
        raise InputError(f"{path}: real blob cutouts not found (run 'dvc pull' or see data/README.md)") from exc
    except (ValueError, OSError) as exc:
        raise InputError(f"{path}: not a readable .npz of arrays ({exc})") from exc
    if not raw:
        raise InputError(f"{path}: holds no cutouts")
    for k, v in raw.items():
        if v.ndim != 2 or min(v.shape) < 1 or not np.isfinite(v).all():
            raise InputError(f"{path}: cutout {k!r} must be a finite 2-D array, got shape {v.shape}")
    return raw


def load_real_stamps(path: str | Path, smooth: float = 0.8) -> dict[str, np.ndarray]:
    """The real blob cutouts (:func:`read_cutouts`) prepared as injection stamps, by name."""
    out = {}
    for k, v in read_cutouts(path).items():
        try:
            out[k] = prepare_real_stamp(v, smooth)
        except InputError as exc:
            raise InputError(f"{path}: cutout {k!r}: {exc}") from exc
    return out


def make_stamp(source: int, cutout: np.ndarray | None, radius: float, profile: int, axis_ratio: float,
               theta: float, edge: float, spot: float, zoom: float, rot: int, flip: int,
               frac_x: float, frac_y: float) -> np.ndarray:
    """Build one peak-1 stamp: parametric (*source* 0) or a prepared real *cutout* (*source* 1)."""
    if source == 0:
        return profile_stamp(BlobShape(radius, PROFILES[profile], axis_ratio, theta, edge, spot), frac_x, frac_y)
    st = cutout
    if zoom != 1.0:
        st = ndimage.zoom(st, zoom, order=1)
    st = np.rot90(st, rot)
    if flip:
        st = st[:, ::-1]
    if frac_x or frac_y:
        st = ndimage.shift(st, (frac_y, frac_x), order=1, mode="constant")
    peak = st.max()
    return (st / peak).astype(np.float32) if peak > 0 else st.astype(np.float32)


def add_stamp(image: np.ndarray, st: np.ndarray, x: float, y: float, amplitude: float) -> None:
    """Add ``amplitude * st`` to *image* centred at integer-rounded (x, y); clipped at edges."""
    half_y, half_x = st.shape[0] // 2, st.shape[1] // 2
    iy, ix = int(np.floor(y + 0.5)), int(np.floor(x + 0.5))
    y0, x0 = iy - half_y, ix - half_x
    ny, nx = image.shape
    sy0, sx0 = max(0, -y0), max(0, -x0)
    sy1 = min(st.shape[0], ny - y0)
    sx1 = min(st.shape[1], nx - x0)
    if sy1 <= sy0 or sx1 <= sx0:
        return
    image[y0 + sy0:y0 + sy1, x0 + sx0:x0 + sx1] += amplitude * st[sy0:sy1, sx0:sx1]
