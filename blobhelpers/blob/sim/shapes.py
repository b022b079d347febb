"""Blob morphology: parametric disc and ring profiles and their random distributions.

A WFC3/IR blob is the shadow of an out-of-focus particle on the CSM fold mirror. Strong
blobs look like flat-topped discs; several faint ones are annuli with a central spot (the
diffraction pattern of a defocused obscuration). The same profile function draws blobs in
the simulated frames and draws parametric blobs injected into training subframes, so the
two can never drift apart.

Profiles are *obscurations*: 0 outside, peak 1. A blob of depth ``d`` multiplies the
illumination by ``1 - d * profile``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["BlobShape", "profile", "render", "stamp", "sample_depths", "sample_shapes", "PROFILES"]

#: Profile kinds, encoded as integers in arrays and catalogs.
PROFILES = ("disc", "ring")


@dataclass
class BlobShape:
    """Geometry of one blob (pixels).

    Attributes
    ----------
    radius : float
        Outer radius of the disc, or of the ring's peak.
    kind : str
        ``"disc"`` or ``"ring"``.
    axis_ratio : float
        Minor/major axis ratio (1 = round).
    theta : float
        Position angle of the major axis (radians, from +x).
    edge : float
        Softness of the disc edge (logistic scale, px).
    spot : float
        Relative depth of the central spot of a ring.
    """

    radius: float
    kind: str = "disc"
    axis_ratio: float = 1.0
    theta: float = 0.0
    edge: float = 0.6
    spot: float = 0.8


def profile(dx: np.ndarray, dy: np.ndarray, shape: BlobShape) -> np.ndarray:
    """Evaluate the obscuration profile (peak ~1) at offsets *dx*, *dy* from the centre."""
    c, s = np.cos(shape.theta), np.sin(shape.theta)
    u = dx * c + dy * s
    v = (-dx * s + dy * c) / max(shape.axis_ratio, 1e-3)
    r = np.sqrt(u * u + v * v)
    if shape.kind == "disc":
        # Flat top with a soft (Fresnel-blurred) edge and a slight darkening towards the rim.
        top = 1.0 / (1.0 + np.exp((r - shape.radius) / shape.edge))
        return top * (0.9 + 0.1 * np.clip(r / max(shape.radius, 1e-3), 0, 1) ** 2)
    if shape.kind == "ring":
        width = max(0.9, 0.22 * shape.radius)
        ring = np.exp(-0.5 * ((r - shape.radius) / width) ** 2)
        spot = shape.spot * np.exp(-0.5 * (r / 1.1) ** 2)
        floor = 0.25 / (1.0 + np.exp((r - shape.radius) / shape.edge))
        return np.clip(np.maximum(ring, spot) + floor, 0.0, 1.0)
    raise ValueError(f"unknown blob profile {shape.kind!r}; expected one of {PROFILES}")


def stamp(shape: BlobShape, frac_x: float = 0.0, frac_y: float = 0.0, pad: float = 4.0) -> np.ndarray:
    """Render a square stamp of the profile centred at (half + frac_x, half + frac_y).

    The stamp has odd side ``2 * half + 1`` with ``half = ceil(radius + pad * edge + 2)``.
    """
    half = int(np.ceil(shape.radius / max(shape.axis_ratio, 0.3) + pad * shape.edge + 2))
    y, x = np.mgrid[-half:half + 1, -half:half + 1].astype(np.float32)
    return profile(x - frac_x, y - frac_y, shape).astype(np.float32)


def render(image: np.ndarray, x: float, y: float, shape: BlobShape, amplitude: float,
           mode: str = "add") -> None:
    """Draw one blob into *image* in place (clipped at the image edges).

    Parameters
    ----------
    image : numpy.ndarray
        2-D float array, modified in place.
    x, y : float
        Centre in pixel coordinates (x = column, y = row; pixel centres at integers).
    shape : BlobShape
    amplitude : float
        Multiplies the profile.
    mode : {"add", "subtract"}
        Add or subtract ``amplitude * profile``.
    """
    ix, iy = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
    st = stamp(shape, x - ix, y - iy) * amplitude
    half = st.shape[0] // 2
    y0, x0 = iy - half, ix - half
    ny, nx = image.shape
    sy0, sx0 = max(0, -y0), max(0, -x0)
    sy1, sx1 = st.shape[0] - max(0, y0 + st.shape[0] - ny), st.shape[1] - max(0, x0 + st.shape[1] - nx)
    if sy1 <= sy0 or sx1 <= sx0:
        return
    target = image[y0 + sy0:y0 + sy1, x0 + sx0:x0 + sx1]
    if mode == "add":
        target += st[sy0:sy1, sx0:sx1]
    elif mode == "subtract":
        target -= st[sy0:sy1, sx0:sx1]
    else:
        raise ValueError(f"mode must be 'add' or 'subtract', not {mode!r}")


def sample_depths(rng: np.random.Generator, n: int, d_min: float = 0.015, d_max: float = 0.30,
                  slope: float = 2.0) -> np.ndarray:
    """Draw *n* central depths from a truncated power law ``p(d) ~ d**-slope``.

    Many faint, few strong: with the defaults the median is ~0.03 and ~8 % exceed 0.15.
    """
    u = rng.random(n)
    if np.isclose(slope, 1.0):
        return d_min * (d_max / d_min) ** u
    a = 1.0 - slope
    lo, hi = d_min ** a, d_max ** a
    return (lo + u * (hi - lo)) ** (1.0 / a)


def sample_shapes(rng: np.random.Generator, depths: np.ndarray, r_median: float = 5.0,
                  r_sigma: float = 0.35, r_min: float = 2.5, r_max: float = 14.0,
                  ring_fraction_faint: float = 0.5, ring_fraction_strong: float = 0.1) -> list[BlobShape]:
    """Draw a shape for each depth: lognormal radius, disc or ring, mild ellipticity.

    Faint blobs are rings more often than strong ones (as in the released real cutouts).
    """
    n = len(depths)
    radius = np.clip(r_median * np.exp(r_sigma * rng.standard_normal(n)), r_min, r_max)
    strong = np.clip((np.asarray(depths) - 0.03) / 0.12, 0.0, 1.0)
    p_ring = ring_fraction_faint + (ring_fraction_strong - ring_fraction_faint) * strong
    is_ring = rng.random(n) < p_ring
    # Rings need room for an annulus around the spot.
    radius = np.where(is_ring, np.maximum(radius, 3.5), radius)
    q = np.clip(1.0 - np.abs(rng.normal(0, 0.07, n)), 0.75, 1.0)
    theta = rng.uniform(0, np.pi, n)
    edge = rng.uniform(0.45, 0.9, n)
    spot = rng.uniform(0.5, 1.0, n)
    return [BlobShape(float(radius[i]), "ring" if is_ring[i] else "disc", float(q[i]), float(theta[i]),
                      float(edge[i]), float(spot[i])) for i in range(n)]
