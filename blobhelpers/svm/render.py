"""spacekit's three renderings of a visit's total detection image, as PNGs.

For every total detection product ``<index>_drz.fits`` / ``_drc.fits`` found under a path:

* ``<index>.png``: the SCI image in gray, ``vmin = 0``, ``vmax = 2 x`` the upper limit of the
  zscale interval (astropy's :class:`~astropy.visualization.ZScaleInterval`);
* ``<index>_source.png``: the same with the point catalog (``<index>_point-cat.ecsv``) and the
  segment catalog (``<index>_segment-cat.ecsv``) drawn as circles, coloured by catalog and flag
  (spacekit's convention -- point: red for flag <= 1, green for 2-5, none above; segment: blue
  for flag <= 1, green for 2-5, none above; half transparent);
* ``<index>_gaia.png``: the same with the Gaia reference sources of the visit's
  ``*_svm_gaia_sources.json`` (whose ``imgname`` names this product) as cyan circles.

Written to ``OUT/<index>/<index>{,_source,_gaia}.png`` (spacekit's layout), readable by
:func:`.images.load_images` into ``(3, 128, 128, 3)`` arrays. Drawn with matplotlib's Agg backend
(no display); ``dpi`` x 4 inches square (default 256 x 256 pixels), no axes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from blobhelpers.core.errors import InputError
from blobhelpers.core.parallel import process_map
from blobhelpers.core.paths import atomic_path

__all__ = ["find_products", "render_product", "render"]



def _flag_colour(flag: int, low: str) -> str | None:
    """spacekit's marker colour: *low* for flag <= 1, green for 2-5, nothing above."""
    return low if flag <= 1 else ("green" if flag <= 5 else None)



def find_products(path: str | Path) -> list:
    """Total detection products (``*_total_*_dr[cz].fits``) under *path* (a file or a folder tree)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: not found")
    if path.is_file():
        if not (path.name.endswith(("_drz.fits", "_drc.fits")) and "_total_" in path.name):
            raise InputError(f"{path}: not a total detection product (*_total_*_drz.fits or _drc.fits)")
        return [path]
    found = sorted(p for pat in ("*_total_*_drz.fits", "*_total_*_drc.fits") for p in path.rglob(pat))
    if not found:
        raise InputError(f"{path}: no total detection products (*_total_*_drz.fits / _drc.fits) found")
    return found


def _read_catalog(path: Path, xcol: str, ycol: str):
    from astropy.table import Table

    if not path.exists():
        return np.zeros((0, 2)), np.zeros(0, int)
    try:
        t = Table.read(path, format="ascii.ecsv")
        xy = np.column_stack([np.asarray(t[xcol], float), np.asarray(t[ycol], float)]) if len(t) else np.zeros((0, 2))
        flags = np.asarray(t["Flags"], int) if len(t) else np.zeros(0, int)
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{path}: unreadable catalog ({exc})") from exc
    return xy, flags


def _read_gaia(folder: Path, imgname: str):
    for p in sorted(folder.glob("*_svm_gaia_sources.json")):
        try:
            qa = json.loads(p.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{p}: malformed JSON ({exc})") from exc
        if (qa.get("general information") or {}).get("imgname") != imgname:
            continue
        tab = ((qa.get("data") or {}).get("GAIA sources") or {}).get("data") or {}
        try:
            return np.asarray(tab["RA"]["data"], float), np.asarray(tab["DEC"]["data"], float)
        except (KeyError, TypeError) as exc:
            raise InputError(f"{p}: no 'GAIA sources' RA/DEC table") from exc
    return np.zeros(0), np.zeros(0)


def render_product(fits_path: str | Path, out: str | Path, dpi: int = 64, radius: float = 0.006) -> list:
    """Render one total detection product; returns the three PNG paths.

    *radius* of the catalog circles as a fraction of the image's larger side (small markers, as on
    spacekit's full-size renderings once they are shrunk to 128 x 128).
    """
    from astropy.io import fits
    from astropy.visualization import ZScaleInterval
    from astropy.wcs import WCS
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle

    fits_path = Path(fits_path)
    try:
        with fits.open(fits_path, memmap=False) as hdul:
            if len(hdul) < 2 or hdul[1].data is None:
                raise InputError(f"{fits_path}: no SCI image in extension 1")
            img = np.asarray(hdul[1].data, float)
            hdr = hdul[1].header.copy()
    except InputError:
        raise
    except (OSError, ValueError, TypeError) as exc:
        raise InputError(f"{fits_path}: unreadable FITS ({exc})") from exc
    if img.ndim != 2:
        raise InputError(f"{fits_path}: SCI is not a 2-D image")
    index = fits_path.name[:-9]
    folder = fits_path.parent
    finite = np.isfinite(img)
    if not finite.any():
        raise InputError(f"{fits_path}: SCI image has no finite pixel")
    img = np.where(finite, img, 0.0)
    _, zmax = ZScaleInterval().get_limits(img[img != 0] if (img != 0).sum() > 10 else img)
    vmax = 2.0 * float(zmax) if zmax > 0 else 1.0
    pts, pflag = _read_catalog(folder / f"{index}_point-cat.ecsv", "X-Center", "Y-Center")
    seg, sflag = _read_catalog(folder / f"{index}_segment-cat.ecsv", "X-Centroid", "Y-Centroid")
    gra, gdec = _read_gaia(folder, fits_path.name)
    gxy = np.zeros((0, 2))
    if len(gra):
        try:
            w = WCS(hdr)
        except (ValueError, KeyError) as exc:
            raise InputError(f"{fits_path}: SCI header has no usable WCS ({exc})") from exc
        gx, gy = w.wcs_world2pix(gra, gdec, 0)
        gxy = np.column_stack([gx, gy])
    out = Path(out) / index
    r_px = max(1.0, radius * max(img.shape))
    paths = []
    for sfx in ("", "_source", "_gaia"):
        fig = Figure(figsize=(4, 4), dpi=dpi)
        ax = fig.add_axes((0, 0, 1, 1))
        ax.imshow(img, origin="lower", cmap="gray", vmin=0.0, vmax=vmax, interpolation="antialiased")
        ax.set_axis_off()
        ax.set_xlim(-0.5, img.shape[1] - 0.5)
        ax.set_ylim(-0.5, img.shape[0] - 0.5)
        if sfx == "_source":
            for xy, fl, low in ((pts, pflag, "red"), (seg, sflag, "blue")):
                for (x, y), f in zip(xy, fl):
                    colour = _flag_colour(int(f), low)
                    if colour is not None:
                        ax.add_patch(Circle((x, y), r_px, fill=False, lw=0.6, color=colour, alpha=0.5))
        elif sfx == "_gaia":
            for x, y in gxy:
                ax.add_patch(Circle((x, y), r_px, fill=False, lw=0.6, color="cyan"))
        dest = out / f"{index}{sfx}.png"
        with atomic_path(dest) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi, metadata={"Software": None})
        paths.append(dest)
    return paths


def render(path: str | Path, out: str | Path, dpi: int = 64, n_jobs: int | None = None) -> list:
    """Render every total detection product under *path* into *out*; returns the indices rendered.

    Each product is rendered on its own, in *n_jobs* worker processes (``None``: the default of
    :func:`blobhelpers.core.parallel.n_workers`; 1: in this process); the PNGs are the same bytes whatever
    *n_jobs* (:func:`blobhelpers.core.parallel.process_map`).
    """

    products = find_products(path)
    process_map(render_product, [(p, out, dpi) for p in products], n_jobs)
    return [p.name[:-9] for p in products]
