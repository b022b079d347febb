"""An unsupervised blob score: patch PCA fitted on blob-free tiles only (ISR 2021-08 "future work").

What it is
----------
:class:`PatchPCAScorer` is an anomaly detector for 256x256 subframes ("tiles") of a WFC3/IR
difference image that never sees a blob while it is fitted. It learns what *blob-free* tiles
look like -- noise, heavy-tailed pixels, cosmic-ray residuals, mis-registration dipoles,
persistence dips -- and scores a tile by how unlike that its most unusual small region is.
Because it needs no positive labels it can be measured beside the CNN on the same labelled
test set (ROC / PR), and it does not inherit the biases of the simulated blobs the CNN is
trained on.

Pipeline (for every tile):

1. **Residual.** :func:`blobhelpers.blob.preprocess.scaling.residual`: the tile minus its smooth (64-px
   block-median) background in units of the local robust noise, clipped to +-5, NaN -> 0. So
   offsets, planes and the image's units do not matter, and the noise is ~N(0, 1) per pixel.
2. **Downsample** by ``downsample`` (default 2) with a block *mean*. A blob (radius >= 2 px)
   keeps its integrated signal-to-noise, an isolated hot pixel is diluted 4x, and the work
   drops 4x. (A block mean keeps the noise white: sigma 1/downsample per pixel.)
3. **Patches.** Overlapping ``patch`` x ``patch`` windows (default 16 downsampled px = 32 px,
   a radius-15 blob fits) at ``stride`` (default 4 = 8 px), i.e. 29 x 29 = 841 patches per
   256-px tile.
4. **PCA model of a blob-free patch.** A PCA of the patches of the blob-free training tiles:
   mean patch ``mu``, top ``k`` eigenvectors ``V`` (``n_components``, default 32) with variances
   ``lambda``, and the mean of the discarded variances ``sigma2`` -- a probabilistic-PCA (PPCA)
   Gaussian, covariance ``Sigma = V diag(lambda) V^T + sigma2 (I - V V^T)``. Its Mahalanobis
   distance ``e^T Sigma^-1 e`` (``e = x - mu``) is the whitened in-subspace distance plus the
   residual-space reconstruction error over ``sigma2`` ("PCA / whitened-residual" distance).
5. **Patch statistic.** The Mahalanobis distance is a sum over pixels,
   ``sum_i e_i u_i`` with ``u = Sigma^-1 e``. The patch statistic is that sum weighted by a
   Gaussian window centred on the patch (``window``, default sigma = patch/3 = 10.7 px; ``None``
   = uniform, i.e. the plain Mahalanobis distance), so that each patch speaks about its centre
   and the max-scoring patch is *where* the anomaly is.

   **Sign (default** ``signed=True`` **).** Blobs are *positive*; the symmetric distance flags
   a negative persistence dip just as much, and a mis-registration dipole (a positive and a
   negative lobe) *more* than a blob of the same amplitude. The signed statistic replaces
   ``e_i u_i`` by ``|e_i| u_i``: the contributions of the pixels *below* the mean patch count
   negatively. A blob keeps (almost) its whole distance, a dip becomes strongly negative and a
   dipole's two halves cancel; ordinary noise averages to ~0. ``signed=False`` is the pure,
   symmetric (windowed) Mahalanobis distance. (A first version gated the distance by the sign
   of the patch mean instead; on the synthetic tiles of ``tests/blob/learn/test_anomaly.py``-like data
   with dipoles among the negatives the split was clearly better: ROC-AUC 0.87-0.95 vs 0.75
   for peak-2-sigma blobs of radius 4-8 px.)
6. **Score.** The patch statistic is turned into robust z units of the training patches
   (minus their median, over 1.4826 x their MAD): 0 = a typical blob-free patch. The **tile
   score** is the maximum over its patches (a blob is a *localised* anomaly) or, with
   ``top_k > 1``, the mean of the ``top_k`` largest (a little more robust to a single odd
   patch). :meth:`PatchPCAScorer.locate` gives the (x, y) pixel position (0-based, x =
   column) of the best patch's centre, refined by the centroid of the patch centres in its
   3 x 3 neighbourhood weighted by their score excess over the tile's median patch (the
   patches overlap, so this interpolates between the 8-px grid points; ~2-3 px typical error
   for clear blobs). :meth:`PatchPCAScorer.patch_scores` returns the whole score map.

The PCA is solved exactly (``numpy.linalg.eigh`` of the float64 covariance of at most
``max_patches`` patches, default 200 000, spread evenly over the tiles and subsampled with a
seeded ``numpy.random.default_rng``), so a fit is deterministic for a given seed and input
order; eigenvector signs do not matter (``V`` only appears as ``V diag(.) V^T``). Fitting
holds the float32 patch sample (~200 MB at the cap) and works on chunks of tiles; scoring
works on chunks of ``chunk`` tiles (~30 MB each) with two thin matrix products per chunk
(patches are views from ``numpy.lib.stride_tricks.sliding_window_view``, no Python loop over
patches). The fitted model serialises to plain JSON (:meth:`PatchPCAScorer.to_dict` /
:meth:`PatchPCAScorer.from_dict`, lists of floats, no pickle) and reproduces the scores bit
for bit.

Speed, measured on this project's shared 2-core worker (1000 tiles of 256 x 256, defaults,
load average 5-6, so timings vary ~2x): fit 2-8 s, score 2.5-5 s (``residual`` ~1 s of it, more
with NaN), ``score_and_locate`` the same (one pass); a 1000-tile fit needs < 0.5 GB beyond
the input.

Assumptions
-----------
* Tiles are 2-D, a multiple of 64 px on each side (what ``residual`` needs), blobs positive,
  and the training tiles are blob-free (a few stray blobs in them only make blobs look a
  little more normal; the PCA is not robust to a large fraction of them).
* The blob-free training tiles are representative of the negatives of the test set (same
  instrument mode, same difference-image pipeline). A kind of structure absent from the
  training tiles will be flagged.

Limits
------
* It flags **any** unusual, positive, localised structure, not blobs in particular: a new
  kind of artefact, a bright residual star, a cosmic-ray cluster, a satellite trail, the edge
  of a masked region or a dipole stronger than those in the training set all score high. Its
  false positives are therefore different from the CNN's (which learnt what blobs look like);
  it is a complement / a safety net, not a replacement.
* A Gaussian (PCA) model cannot learn that a *rare* artefact is normal: if dipoles occur in a
  few patches out of thousands, their patches stay far from ``mu`` whatever ``k`` is. The
  signed split removes most of a symmetric dipole, not an asymmetric one.
* It is less sensitive than a matched filter or a CNN to *faint* or *small* blobs: the
  distance spreads the blob's signal over ~``patch**2`` degrees of freedom, and the 2x
  downsampling blurs radius-2 blobs. On synthetic white-noise tiles with heavy-tailed
  pixels, cosmic rays, dipoles and dips among the negatives: ROC-AUC ~1.0 for peak-5-sigma
  blobs of radius 4-8 px, ~0.95 at peak 2 sigma, ~0.8 at peak 1 sigma (radius 5-12) and only
  ~0.6 for peak-1.5-sigma blobs of radius 2-4 px.
* On white-noise-like backgrounds the PCA has little to learn (``k`` barely matters); it
  pays off when the blob-free patches have correlated structure (residual gradients, fringes,
  correlated noise) that the whitening then discounts.
* Very large blobs (radius >~ 16 px) are only partly inside a patch; they are still
  anomalous, but the score is not tuned to them. Blobs cut by the tile edge are scored
  from the part inside the tile.
* A blob overlapping a deeper negative structure can be cancelled by the signed split;
  ``signed=False`` avoids that at the price of flagging dips.
* The score is in robust sigmas of the *training patches* (the maximum over the ~841
  patches of a blob-free tile is typically 3-5); it is not a probability. Choose a threshold on
  a validation set, e.g. a quantile of the blob-free tiles' scores for a target
  false-positive rate.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from blobhelpers.blob.preprocess.scaling import residual
from blobhelpers.core.stats import median_mad

__all__ = ["PatchPCAScorer"]

_FORMAT = "blobhelpers.PatchPCAScorer/1"
_BLOCK = 64  # residual()'s block: tiles must be a multiple of it


def _as_tiles(tiles, what: str = "tiles") -> np.ndarray:
    """Validate ``(n, H, W)`` input (H, W multiples of 64) and return it as a float32 array."""
    try:
        arr = np.asarray(tiles, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} must be a numeric array of shape (n, H, W): {exc}") from None
    if arr.ndim != 3:
        hint = " (for one tile pass tile[None])" if arr.ndim == 2 else ""
        raise ValueError(f"{what} must have shape (n, H, W), got {arr.shape}{hint}")
    n, ny, nx = arr.shape
    if n == 0:
        raise ValueError(f"{what} is empty (shape {arr.shape}); need at least one tile")
    if ny < _BLOCK or nx < _BLOCK or ny % _BLOCK or nx % _BLOCK:
        raise ValueError(f"{what} must be a positive multiple of {_BLOCK} px on each side "
                         f"(e.g. 256 x 256), got {ny} x {nx}")
    return arr


class PatchPCAScorer:
    """Patch-PCA (PPCA Mahalanobis) anomaly score of residual tiles, fitted on blob-free tiles.

    See the module docstring for the method. ``fit`` on blob-free tiles, then ``score`` /
    ``locate`` / ``score_and_locate`` / ``patch_scores`` any tiles ``(n, H, W)`` (raw
    difference-image units; ``already_residual=True`` for :func:`~blobhelpers.blob.preprocess.scaling.residual`
    output). Higher = more anomalous (robust sigmas of the training patches).

    Parameters
    ----------
    patch : int
        Patch side in *downsampled* pixels (default 16 = 32 tile px).
    stride : int
        Patch step in downsampled pixels (default 4 = 8 tile px).
    downsample : int
        Block-mean factor applied to the residual before cutting patches (1, 2 or 4; 64 must
        be a multiple of it).
    n_components : int, float or None
        ``int``: keep that many principal components; ``float`` in (0, 1): the fewest that
        explain that fraction of the variance; ``None``: all (full Mahalanobis distance).
        The rest is modelled as isotropic noise (the residual-space term).
    signed : bool
        Score only positive excursions (default; blobs are positive): the pixels below the
        mean patch count *against* the score. ``False``: the symmetric Mahalanobis score.
    window : "auto", float or None
        Sigma (downsampled px) of the Gaussian centre weighting of each patch's statistic;
        ``"auto"`` = ``patch / 3``; ``None`` = uniform (the plain Mahalanobis distance).
    top_k : int
        Tile score = mean of the ``top_k`` largest patch scores (1 = the maximum).
    max_patches : int
        At most this many training patches (seeded subsample, spread evenly over the tiles).
    chunk : int
        Tiles processed at a time (memory ~ ``chunk`` x 841 x 256 x 4 bytes x a few).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> bg = rng.normal(0, 1, (8, 256, 256)).astype("f4")
    >>> s = PatchPCAScorer(n_components=16).fit(bg, seed=0)
    >>> t = rng.normal(0, 1, (2, 256, 256)).astype("f4")
    >>> yy, xx = np.mgrid[0:256, 0:256]
    >>> t[1] += 5 * np.exp(-((xx - 60) ** 2 + (yy - 170) ** 2) / (2 * 4.0 ** 2))
    >>> sc = s.score(t)
    >>> bool(sc[0] < 8 < 30 < sc[1])
    True
    >>> x, y = s.locate(t[1:])[0]          # the blob is at (60, 170)
    >>> bool(np.hypot(x - 60, y - 170) < 5)
    True
    """

    def __init__(self, patch: int = 16, stride: int = 4, downsample: int = 2,
                 n_components: float | None = 32, signed: bool = True,
                 window: float | str | None = "auto", top_k: int = 1,
                 max_patches: int = 200_000, chunk: int = 32):
        if int(downsample) != downsample or downsample < 1 or _BLOCK % int(downsample):
            raise ValueError(f"downsample must be a divisor of {_BLOCK} (1, 2, 4, ...), got {downsample!r}")
        if int(patch) != patch or patch < 2:
            raise ValueError(f"patch must be an integer >= 2, got {patch!r}")
        if int(stride) != stride or stride < 1:
            raise ValueError(f"stride must be a positive integer, got {stride!r}")
        if int(patch) > _BLOCK // int(downsample) * 4:
            raise ValueError(f"patch={patch} is larger than a 256-px tile after downsample={downsample}")
        if n_components is not None:
            if isinstance(n_components, (bool, np.bool_)):
                raise ValueError("n_components must be an int, a float in (0, 1) or None")
            if isinstance(n_components, (int, np.integer)):
                if n_components < 1:
                    raise ValueError(f"n_components must be >= 1, got {n_components}")
                n_components = int(n_components)
            else:
                n_components = float(n_components)
                if not 0.0 < n_components < 1.0:
                    raise ValueError(f"a float n_components is a variance fraction in (0, 1), got {n_components}")
        if isinstance(window, str):
            if window != "auto":
                raise ValueError(f"window must be 'auto', a positive number or None, got {window!r}")
            window = int(patch) / 3.0
        elif window is not None:
            window = float(window)
            if not window > 0:
                raise ValueError(f"window must be 'auto', a positive number or None, got {window!r}")
        if int(top_k) != top_k or top_k < 1:
            raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
        if int(max_patches) != max_patches or max_patches < 1:
            raise ValueError(f"max_patches must be a positive integer, got {max_patches!r}")
        self.patch = int(patch)
        self.stride = int(stride)
        self.downsample = int(downsample)
        self.n_components = n_components
        self.signed = bool(signed)
        self.window = window
        self.top_k = int(top_k)
        self.max_patches = int(max_patches)
        self.chunk = max(1, int(chunk))
        self._reset()

    def _reset(self) -> None:
        self.mean_: np.ndarray | None = None          # (d,) mean patch
        self.components_: np.ndarray | None = None    # (k, d) orthonormal rows
        self.explained_variance_: np.ndarray | None = None  # (k,)
        self.noise_variance_: float = 0.0             # mean discarded variance (0 if k == d)
        self.center_: float = 0.0                     # median raw statistic of the training patches
        self.scale_: float = 1.0                      # its robust std (1.4826 MAD)
        self.n_tiles_fit_: int = 0
        self.n_patches_fit_: int = 0
        self.seed_: int | None = None

    # ------------------------------------------------------------------ helpers
    @property
    def fitted(self) -> bool:
        return self.components_ is not None

    @property
    def dim(self) -> int:
        return self.patch * self.patch

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise ValueError("PatchPCAScorer is not fitted: call fit(blob_free_tiles) or from_dict() first")

    def _prepare(self, tiles: np.ndarray, already_residual: bool) -> np.ndarray:
        """Residual (unless given) and block-mean downsampled, float32 ``(n, H/ds, W/ds)``."""
        if already_residual:
            r = np.nan_to_num(tiles, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32, copy=False)
        else:
            r = residual(tiles)
        f = self.downsample
        if f > 1:  # block mean as a sum of f*f strided views (faster than reshape().mean())
            acc = r[:, 0::f, 0::f].copy()
            for dy in range(f):
                for dx in range(f):
                    if dy or dx:
                        acc += r[:, dy::f, dx::f]
            acc *= np.float32(1.0 / (f * f))
            r = acc
        return r

    def _grid(self, ny: int, nx: int) -> tuple[int, int]:
        """Number of patch rows/columns on a downsampled ``ny x nx`` image."""
        if ny < self.patch or nx < self.patch:
            raise ValueError(f"tiles of {ny * self.downsample} x {nx * self.downsample} px are smaller than "
                             f"one patch ({self.patch * self.downsample} px)")
        return (ny - self.patch) // self.stride + 1, (nx - self.patch) // self.stride + 1

    def _patches(self, r: np.ndarray, centre: bool = False) -> np.ndarray:
        """``(n, gy, gx, d)`` float32 patches of downsampled residuals ``r`` (a new array).

        ``centre=True`` subtracts the fitted mean patch while copying (one pass).
        """
        p, s = self.patch, self.stride
        w = sliding_window_view(r, (p, p), axis=(1, 2))[:, ::s, ::s]
        n, gy, gx = w.shape[:3]
        if not centre:
            return np.ascontiguousarray(w).reshape(n, gy, gx, p * p)
        out = np.empty((n, gy, gx, p, p), np.float32)
        np.subtract(w, self.mean_.astype(np.float32).reshape(p, p), out=out)
        return out.reshape(n, gy, gx, p * p)

    def _centres(self, gy: int, gx: int) -> tuple[np.ndarray, np.ndarray]:
        """Tile-pixel coordinates (0-based) of the patch centres along y and x."""
        f = self.downsample
        cy = f * (np.arange(gy) * self.stride + self.patch / 2.0) - 0.5
        cx = f * (np.arange(gx) * self.stride + self.patch / 2.0) - 0.5
        return cy, cx

    # ------------------------------------------------------------------ fit
    def fit(self, tiles, seed: int = 0, already_residual: bool = False) -> PatchPCAScorer:
        """Fit the patch PCA on **blob-free** tiles ``(n, H, W)`` (any units; NaN allowed).

        ``already_residual=True``: the tiles are already :func:`~blobhelpers.blob.preprocess.scaling.residual`
        output (NaN/inf are then set to 0 here). Returns ``self``.
        """
        arr = _as_tiles(tiles)
        n = arr.shape[0]
        d = self.dim
        gy, gx = self._grid(arr.shape[1] // self.downsample, arr.shape[2] // self.downsample)
        per_tile = gy * gx
        # Spread the patch budget evenly over the tiles, then a seeded choice inside each tile.
        take = min(per_tile, max(1, math.ceil(self.max_patches / n)))
        rng = np.random.default_rng(seed)
        picked = []
        for i0 in range(0, n, self.chunk):
            block = self._patches(self._prepare(arr[i0:i0 + self.chunk], already_residual)).reshape(-1, per_tile, d)
            for b in block:
                idx = np.sort(rng.choice(per_tile, size=take, replace=False)) if take < per_tile else slice(None)
                picked.append(b[idx])
        x = np.concatenate(picked)  # float32, <= max_patches + n rows (~200 MB at the default cap)
        del picked
        if x.shape[0] > self.max_patches:  # ceil() above can overshoot by < n patches
            x = x[np.sort(rng.choice(x.shape[0], size=self.max_patches, replace=False))]
        m = x.shape[0]
        if m < 2:
            raise ValueError("need at least 2 training patches to fit the PCA")

        # Mean and covariance accumulated in float64 over row chunks (no float64 copy of x).
        rows = 32768
        mu = np.zeros(d, np.float64)
        for r0 in range(0, m, rows):
            mu += x[r0:r0 + rows].sum(axis=0, dtype=np.float64)
        mu /= m
        cov = np.zeros((d, d), np.float64)
        for r0 in range(0, m, rows):
            xc = x[r0:r0 + rows].astype(np.float64) - mu
            cov += xc.T @ xc
        cov /= m - 1
        evals, evecs = np.linalg.eigh(cov)
        evals, evecs = evals[::-1], evecs[:, ::-1]
        total = float(evals.sum())
        # Floor tiny / negative eigenvalues (few patches, constant tiles): whitening must stay finite.
        floor = max(total / d, 1e-12) * 1e-3
        evals = np.maximum(evals, floor)
        k = self._choose_k(evals)
        self.mean_ = mu
        self.components_ = np.ascontiguousarray(evecs[:, :k].T)
        self.explained_variance_ = evals[:k].copy()
        self.noise_variance_ = float(evals[k:].mean()) if k < d else 0.0
        self.n_tiles_fit_, self.n_patches_fit_, self.seed_ = int(n), int(m), int(seed)

        # Calibrate on the training patches themselves (the same float32 path as scoring):
        # the robust centre and spread of T, so that a score is in "background-patch sigmas".
        self.center_, self.scale_ = 0.0, 1.0
        mu32 = mu.astype(np.float32)
        raw = np.concatenate([self._raw(x[r0:r0 + rows] - mu32) for r0 in range(0, m, rows)])
        c, s = (float(v) for v in median_mad(raw))
        s *= 1.4826
        if not s > 0:
            s = float(raw.std()) or 1.0
        self.center_, self.scale_ = c, s
        return self

    def _choose_k(self, evals: np.ndarray) -> int:
        d = evals.size
        nc = self.n_components
        if nc is None:
            return d
        if isinstance(nc, int):
            return min(nc, d)
        frac = np.cumsum(evals) / evals.sum()
        return int(min(d, np.searchsorted(frac, nc) + 1))

    # ------------------------------------------------------------------ scoring
    def _window(self) -> np.ndarray:
        """``(d,)`` centre weights of a patch: a Gaussian of sigma ``window`` (or uniform), summing to d."""
        p = self.patch
        if self.window is None:
            return np.ones(p * p, np.float64)
        c = np.arange(p) - (p - 1) / 2.0
        g = np.exp(-0.5 * (c[:, None] ** 2 + c[None, :] ** 2) / self.window ** 2).ravel()
        return g * (g.size / g.sum())

    def _raw(self, e: np.ndarray) -> np.ndarray:
        """Raw patch statistic ``T`` (before the robust z-scaling) of *centred* patches ``e = x - mu``.

        ``e`` is ``(m, d)`` and is overwritten. ``u = Sigma^-1 e`` under the PPCA model, i.e.
        ``u = (e + V ((sigma2 / lambda - 1) * V^T e)) / sigma2``; the products ``e_i u_i`` split
        the Mahalanobis distance ``e^T Sigma^-1 e`` over the pixels, and ``T`` is their
        window-weighted sum -- with ``|e_i|`` in place of ``e_i`` when signed, so that pixels
        below the mean patch count against the score.
        """
        dt = e.dtype.type
        vt = self.components_.T.astype(dt)          # (d, k)
        proj = e @ vt                                # (m, k)
        if self.noise_variance_ > 0:
            post = 1.0 / self.noise_variance_
            u = (proj * (self.noise_variance_ / self.explained_variance_ - 1.0).astype(dt)) @ vt.T
            u += e
        else:
            post = 1.0
            u = (proj * (1.0 / self.explained_variance_).astype(dt)) @ vt.T
        if self.signed:
            np.abs(e, out=e)
        u *= e
        return (u @ self._window().astype(dt)).astype(np.float64) * post

    def _patch_score(self, x: np.ndarray) -> np.ndarray:
        return (self._raw(x) - self.center_) / self.scale_

    def patch_scores(self, tiles, already_residual: bool = False) -> np.ndarray:
        """Per-patch scores ``(n, gy, gx)`` (29 x 29 for 256-px tiles and the defaults).

        Patch ``(i, j)`` is centred at tile pixel
        ``y = downsample * (i * stride + patch / 2) - 0.5`` (x likewise with ``j``).
        """
        self._check_fitted()
        arr = _as_tiles(tiles)
        n = arr.shape[0]
        gy, gx = self._grid(arr.shape[1] // self.downsample, arr.shape[2] // self.downsample)
        out = np.empty((n, gy, gx), np.float64)
        for i0 in range(0, n, self.chunk):
            pt = self._patches(self._prepare(arr[i0:i0 + self.chunk], already_residual), centre=True)
            nb = pt.shape[0]
            out[i0:i0 + nb] = self._patch_score(pt.reshape(-1, self.dim)).reshape(nb, gy, gx)
        return out

    def _reduce(self, ps: np.ndarray) -> np.ndarray:
        flat = ps.reshape(ps.shape[0], -1)
        k = min(self.top_k, flat.shape[1])
        if k == 1:
            return flat.max(axis=1)
        return np.partition(flat, flat.shape[1] - k, axis=1)[:, -k:].mean(axis=1)

    def _locate(self, ps: np.ndarray) -> np.ndarray:
        n, gy, gx = ps.shape
        cy, cx = self._centres(gy, gx)
        out = np.empty((n, 2), np.float64)
        for t in range(n):
            s = ps[t]
            i, j = np.unravel_index(int(np.argmax(s)), s.shape)
            i0, i1, j0, j1 = max(i - 1, 0), min(i + 2, gy), max(j - 1, 0), min(j + 2, gx)
            w = s[i0:i1, j0:j1] - np.median(s)  # excess over the tile's typical patch
            w = np.maximum(w, 0.0)
            if w.sum() > 0:
                yy, xx = np.meshgrid(cy[i0:i1], cx[j0:j1], indexing="ij")
                out[t] = (float((w * xx).sum() / w.sum()), float((w * yy).sum() / w.sum()))
            else:
                out[t] = (cx[j], cy[i])
        return out

    def score(self, tiles, already_residual: bool = False) -> np.ndarray:
        """Anomaly score ``(n,)`` of tiles ``(n, H, W)``: higher = more blob-like / unusual."""
        return self._reduce(self.patch_scores(tiles, already_residual))

    def locate(self, tiles, already_residual: bool = False) -> np.ndarray:
        """``(n, 2)`` pixel position ``(x, y)`` (0-based, x = column) of each tile's most anomalous patch."""
        return self._locate(self.patch_scores(tiles, already_residual))

    def score_and_locate(self, tiles, already_residual: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`score` and :meth:`locate` from one pass over the tiles."""
        ps = self.patch_scores(tiles, already_residual)
        return self._reduce(ps), self._locate(ps)

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict:
        """JSON-serialisable description of the fitted scorer (floats and lists of floats)."""
        self._check_fitted()
        return {
            "format": _FORMAT,
            "config": {"patch": self.patch, "stride": self.stride, "downsample": self.downsample,
                       "n_components": self.n_components, "signed": self.signed, "window": self.window,
                       "top_k": self.top_k,
                       "max_patches": self.max_patches, "chunk": self.chunk},
            "mean": [float(v) for v in self.mean_],
            "components": [[float(v) for v in row] for row in self.components_],
            "explained_variance": [float(v) for v in self.explained_variance_],
            "noise_variance": float(self.noise_variance_),
            "center": float(self.center_),
            "scale": float(self.scale_),
            "n_tiles_fit": self.n_tiles_fit_,
            "n_patches_fit": self.n_patches_fit_,
            "seed": self.seed_,
        }

    @classmethod
    def from_dict(cls, d: dict) -> PatchPCAScorer:
        """Inverse of :meth:`to_dict` (scores are bit-identical to the original's)."""
        if not isinstance(d, dict) or d.get("format") != _FORMAT:
            raise ValueError(f"not a PatchPCAScorer description (expected format {_FORMAT!r})")
        obj = cls(**d["config"])
        dim = obj.dim
        mean = np.asarray(d["mean"], np.float64)
        comps = np.asarray(d["components"], np.float64)
        ev = np.asarray(d["explained_variance"], np.float64)
        if mean.shape != (dim,) or comps.ndim != 2 or comps.shape[1] != dim or ev.shape != (comps.shape[0],):
            raise ValueError(f"inconsistent PatchPCAScorer arrays: mean {mean.shape}, components {comps.shape}, "
                             f"explained_variance {ev.shape} for patch={obj.patch}")
        obj.mean_, obj.components_, obj.explained_variance_ = mean, np.ascontiguousarray(comps), ev
        obj.noise_variance_ = float(d["noise_variance"])
        obj.center_ = float(d["center"])
        obj.scale_ = float(d["scale"])
        obj.n_tiles_fit_ = int(d.get("n_tiles_fit", 0))
        obj.n_patches_fit_ = int(d.get("n_patches_fit", 0))
        obj.seed_ = None if d.get("seed") is None else int(d["seed"])
        return obj

    def __repr__(self) -> str:
        k = None if self.components_ is None else self.components_.shape[0]
        return (f"PatchPCAScorer(patch={self.patch}, stride={self.stride}, downsample={self.downsample}, "
                f"n_components={self.n_components!r}, signed={self.signed}, window={self.window!r}, "
                f"top_k={self.top_k}, fitted_k={k})")
