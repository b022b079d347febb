"""Training, validation and test subframes for the blob classifier.

A dataset is stored as a compact *recipe* (which difference image, where the 256x256 crop
is, which blobs are injected where, at what depth, from which source) plus the difference
images it refers to. :class:`BlobDataset` materialises any subset of it as arrays in the
network's units, deterministically, at thousands of subframes per second, so the stage's
outputs stay small while every subframe can be rebuilt exactly and inspected.

Splits (ISR 2021-08): training crops come from the left 75 % of the frame (x < 768),
validation crops from the right 25 %, both from the same "train" days; the held-out test
set comes from later days that neither saw, over the whole frame, and injects real cutouts
that the training set never used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from blobhelpers.blob.preprocess.augment import augment
from blobhelpers.blob.preprocess.scaling import REPRESENTATIONS, TILE, ScaleParams, apply_scaling, residual
from blobhelpers.blob.sections import InjectionConfig
from blobhelpers.blob.sim.injection import add_stamp, make_stamp
from blobhelpers.core.errors import InputError
from blobhelpers.core.paths import atomic_path
from blobhelpers.core.stats import median_mad

__all__ = [
    "split_cutouts",
    "Subframes",
    "add_nuisances",
    "add_crescents",
    "DiffInfo",
    "Recipe",
    "build_recipe",
    "BlobDataset",
    "median_membership",
    "median_residual_fraction",
    "VISIBLE_DEPTH",
    "CROP_FIELDS",
    "INJ_FIELDS",
]


def split_cutouts(names, n_test: int, source: str = "cutouts") -> tuple[list[str], list[str]]:
    """The held-out cutout rule: (training names, test names), the last *n_test* names in sorted
    order reserved for the test set, so no test blob shape is ever trained on. Used by the data
    stage, the ISR recipe and the cross-simulator's templates alike.

    >>> split_cutouts(["c", "a", "b", "d"], 1)
    (['a', 'b', 'c'], ['d'])
    """
    names = sorted(names)
    if n_test < 0 or n_test >= len(names):
        raise InputError(f"{source}: {len(names)} cutouts; cannot reserve {n_test} for the test set")
    return names[:len(names) - n_test], names[len(names) - n_test:]

CROP_FIELDS = ("diff_index", "y0", "x0", "label", "n_injected", "n_natural", "natural_depth", "dip_amp",
               "min_depth", "max_depth", "min_radius", "edge")

#: A natural new blob whose residual depth in the difference image (sky fraction) is at least
#: this is a positive; between AMBIGUOUS_DEPTH and this, a crop holding it is not drawn at all.
VISIBLE_DEPTH = 0.01
AMBIGUOUS_DEPTH = 0.003
INJ_FIELDS = ("crop", "source", "cutout", "x", "y", "radius", "depth", "profile", "axis_ratio", "theta", "edge",
              "spot", "zoom", "rot", "flip", "frac_x", "frac_y")


def median_membership(n_with: int, n_total: int) -> float:
    """Fraction of a blob's depth that the median of *n_total* frames holds when *n_with* have it.

    0 if fewer than half the frames have the blob, 1 if more than half, 0.5 at exactly half
    (even *n_total*: the median averages the two middle values).
    """
    if 2 * n_with < n_total:
        return 0.0
    if 2 * n_with > n_total:
        return 1.0
    return 0.5


def median_residual_fraction(n_with: int, n_total: int, depth: float, sigma: float) -> float:
    """Fraction of a new blob's depth left in ``median(history) - current`` with noisy frames.

    *n_with* of the *n_total* history frames already show the blob (value ``1 - depth``), the
    others do not (value 1); each value scatters by *sigma*. The expected median ``m`` solves
    ``n_with * Phi((m - 1 + depth) / sigma) + (n_total - n_with) * Phi((m - 1) / sigma) = n_total / 2``
    and the residual is ``(m - (1 - depth)) / depth``. Without noise this is the step of
    :func:`median_membership`; with noise comparable to the depth a blob fades out of the
    difference images gradually, over many more days than half the history.

    Examples
    --------
    >>> round(median_residual_fraction(17, 30, 0.065, 0.02), 2)  # a third still visible after 17 days
    0.35
    >>> median_residual_fraction(0, 30, 0.05, 0.02), median_residual_fraction(30, 30, 0.05, 0.02)
    (1.0, 0.0)
    """
    if n_with <= 0:
        return 1.0
    if n_with >= n_total:
        return 0.0
    if sigma <= 0 or depth <= 0:
        return 1.0 - median_membership(n_with, n_total)
    from scipy.special import ndtr

    lo, hi = 1.0 - depth - 6 * sigma, 1.0 + 6 * sigma
    for _ in range(60):
        m = 0.5 * (lo + hi)
        below = n_with * ndtr((m - 1.0 + depth) / sigma) + (n_total - n_with) * ndtr((m - 1.0) / sigma)
        if below < 0.5 * n_total:
            lo = m
        else:
            hi = m
    return float(np.clip((0.5 * (lo + hi) - (1.0 - depth)) / depth, 0.0, 1.0))


@dataclass
class DiffInfo:
    """A difference image available to the dataset builder, with what is known about it.

    Attributes
    ----------
    path : str
        FITS file of the difference image.
    scale : ScaleParams
        ISR scaling of the whole image.
    natural : numpy.ndarray
        ``(k, 5)``: x, y, radius, residual depth and frame index of appearance of the new blobs
        still (partly) in it (truth; empty for real data). Those with residual depth >=
        VISIBLE_DEPTH count as positives.
    existing : numpy.ndarray
        ``(m, 4)``: x, y, depth, radius of blobs already in the median stack (dip annotation).
    resid_shift : float
        Mis-registration left after registration, px (NaN if unknown).
    date : str
    """

    path: str
    scale: ScaleParams
    natural: np.ndarray = field(default_factory=lambda: np.zeros((0, 5)))
    existing: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    resid_shift: float = float("nan")
    date: str = ""
    frame_index: int = -1


@dataclass
class Recipe:
    """Everything needed to rebuild a split's subframes (see module docstring)."""
    split: str
    diff_files: list[str]
    scales: list[ScaleParams]
    crops: dict[str, np.ndarray]
    inj: dict[str, np.ndarray]
    cutout_names: list[str]
    seed: int
    augment: bool = False
    border_rule: str = "symmetric"

    def __len__(self) -> int:
        return int(self.crops["label"].size)

    @property
    def labels(self) -> np.ndarray:
        return self.crops["label"].astype(np.int64)

    def save(self, path: str | Path) -> Path:
        """Write as ``.npz`` (no pickled objects; loads with ``allow_pickle=False``)."""
        arrays = {f"crop_{k}": v for k, v in self.crops.items()}
        arrays.update({f"inj_{k}": v for k, v in self.inj.items()})
        arrays["diff_files"] = np.array(self.diff_files, dtype=str)
        arrays["cutout_names"] = np.array(self.cutout_names, dtype=str)
        arrays["scales"] = np.array([[getattr(s, k) for k in ScaleParams.__dataclass_fields__] for s in self.scales],
                                    dtype=np.float64).reshape(len(self.scales), -1)
        arrays["meta"] = np.array([self.split, str(self.seed), str(int(self.augment)), self.border_rule], dtype=str)
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez_compressed(tmp, **arrays)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "Recipe":
        """Read a recipe written by :meth:`save`; errors name the file."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                d = {k: z[k] for k in z.files}
        except FileNotFoundError as exc:
            raise InputError(f"{path}: dataset recipe not found (run the data stage: dvc repro data_prep)") from exc
        except (ValueError, OSError) as exc:
            raise InputError(f"{path}: not a dataset recipe ({exc})") from exc
        try:
            crops = {k: d[f"crop_{k}"] for k in CROP_FIELDS}
            inj = {k: d[f"inj_{k}"] for k in INJ_FIELDS}
            keys = list(ScaleParams.__dataclass_fields__)
            scales = [ScaleParams(**dict(zip(keys, map(float, row)))) for row in d["scales"]]
            split, seed, aug, border_rule = (str(x) for x in d["meta"])
        except KeyError as exc:
            raise InputError(f"{path}: dataset recipe lacks field {exc}") from exc
        return cls(split, [str(x) for x in d["diff_files"]], scales, crops, inj,
                   [str(x) for x in d["cutout_names"]], int(seed), bool(int(aug)), border_rule)


def _crop_origin(rng, region: str, size: int, tile: int) -> tuple[int, int]:
    split_x = int(round(0.75 * size))
    y0 = int(rng.integers(0, size - tile + 1))
    if region == "left":
        x0 = int(rng.integers(0, split_x - tile + 1))
    elif region == "right":
        x0 = int(rng.integers(split_x, size - tile + 1))
    elif region == "all":
        x0 = int(rng.integers(0, size - tile + 1))
    else:
        raise ValueError(f"region must be 'left', 'right' or 'all', not {region!r}")
    return y0, x0


def build_recipe(split: str, diffs: list[DiffInfo], n: int, seed: int, region: str,
                 injection: InjectionConfig, cutout_names: list[str], allowed_cutouts: list[str] | None = None,
                 positive_fraction: float = 0.5, size: int = 1024, tile: int = TILE,
                 augment: bool = False, border_rule: str = "symmetric", known_before: int | None = None) -> Recipe:
    """Draw *n* crops from *diffs* in *region* and decide the blobs injected into each.

    Parameters
    ----------
    split : str
        Name stored in the recipe ("train", "val", "test").
    diffs : list of DiffInfo
        Difference images to draw from (uniformly).
    n : int
        Number of subframes.
    seed : int
        Seed of this split's random choices.
    region : {"left", "right", "all"}
        ISR split: "left" = x < 768 (training), "right" = x >= 768 (validation).
    injection : InjectionConfig
    cutout_names : list of str
        Names of all prepared real stamps (indices refer to this list).
    allowed_cutouts : list of str, optional
        Real cutouts this split may use (default: all).
    positive_fraction : float
        Target fraction of positive crops. Crops that contain a natural new blob of the
        campaign are positive whatever is injected.
    known_before : int, optional
        Natural blobs that appeared before this frame index are "known" (seen by another
        split): crops touching one are redrawn and they are never labelled.
    """
    if not diffs:
        raise InputError(f"{split}: no difference images to draw subframes from")
    rng = np.random.default_rng(np.random.SeedSequence([seed, sum(map(ord, split))]))
    allowed = [cutout_names.index(c) for c in (allowed_cutouts or cutout_names)]
    crops = {k: [] for k in CROP_FIELDS}
    inj = {k: [] for k in INJ_FIELDS}
    cfg = injection
    # Pass 1: where the crops are and which natural new blobs they contain.
    # A natural blob is IN a crop when its centre lies within off_edge radii of it (the rule
    # of the injections) and its residual is visible; crops that hold a blob only partly or
    # only faintly (ambiguous truth) are redrawn.
    origins, naturals = [], []
    for i in range(n):
        for _ in range(50):
            di = int(rng.integers(len(diffs)))
            y0, x0 = _crop_origin(rng, region, size, tile)
            nat = diffs[di].natural
            if not len(nat):
                inside, ambiguous = np.zeros(0, bool), False
                break
            m_in = injection.off_edge * nat[:, 2]
            centre_in = ((nat[:, 0] >= x0 - m_in) & (nat[:, 0] <= x0 + tile - 1 + m_in)
                         & (nat[:, 1] >= y0 - m_in) & (nat[:, 1] <= y0 + tile - 1 + m_in))
            touches = ((nat[:, 0] >= x0 - nat[:, 2]) & (nat[:, 0] <= x0 + tile - 1 + nat[:, 2])
                       & (nat[:, 1] >= y0 - nat[:, 2]) & (nat[:, 1] <= y0 + tile - 1 + nat[:, 2]))
            known = (nat[:, 4] < known_before) if known_before is not None else np.zeros(len(nat), bool)
            visible = (nat[:, 3] >= VISIBLE_DEPTH) & ~known
            faint = (nat[:, 3] >= AMBIGUOUS_DEPTH) & ~visible
            inside = centre_in & visible
            ambiguous = bool(((touches & visible & ~centre_in) | (touches & faint)).any())
            if not ambiguous:
                break
        origins.append((di, y0, x0))
        naturals.append(nat[inside] if len(nat) else np.zeros((0, 4)))
    # Crops holding a natural new blob are positive already; inject into the others with the
    # probability that brings the positive fraction to the target.
    f_nat = float(np.mean([len(a) > 0 for a in naturals])) if n else 0.0
    p_inject = float(np.clip((positive_fraction - f_nat) / max(1e-9, 1.0 - f_nat), 0.0, 1.0))
    for i in range(n):
        di, y0, x0 = origins[i]
        d = diffs[di]
        n_nat = len(naturals[i])
        nat_depth = float(naturals[i][:, 3].max()) if n_nat else 0.0
        # dips: existing blobs overlapping the crop
        ex = d.existing
        dip = 0.0
        if len(ex) and np.isfinite(d.resid_shift):
            over = (ex[:, 0] > x0 - 10) & (ex[:, 0] < x0 + tile + 10) & (ex[:, 1] > y0 - 10) & (ex[:, 1] < y0 + tile + 10)
            dip = float(ex[over, 2].max() * d.resid_shift) if over.any() else 0.0
        n_inj = int(rng.integers(1, cfg.max_blobs + 1)) if (n_nat == 0 and rng.random() < p_inject) else 0
        depths, radii, edges = [], [], []
        for _ in range(n_inj):
            real = bool(allowed) and rng.random() < cfg.real_fraction
            depth = float(np.exp(rng.uniform(np.log(cfg.depth_min), np.log(cfg.depth_max))))
            radius = float(np.clip(cfg.radius_median * np.exp(cfg.radius_sigma * rng.standard_normal()),
                                   cfg.radius_min, cfg.radius_max))
            zoom = float(rng.uniform(cfg.zoom_min, cfg.zoom_max)) if real else 1.0
            if real:
                radius = 4.0 * zoom  # nominal: the real cutouts are ~9-21 px across
            off = cfg.off_edge * radius
            x = float(rng.uniform(-off, tile - 1 + off))
            y = float(rng.uniform(-off, tile - 1 + off))
            inj["crop"].append(i)
            inj["source"].append(int(real))
            inj["cutout"].append(int(allowed[rng.integers(len(allowed))]) if real else -1)
            inj["x"].append(x)
            inj["y"].append(y)
            inj["radius"].append(radius)
            inj["depth"].append(depth)
            inj["profile"].append(int(rng.random() < 0.4))
            inj["axis_ratio"].append(float(np.clip(1 - abs(rng.normal(0, 0.07)), 0.75, 1)))
            inj["theta"].append(float(rng.uniform(0, np.pi)))
            inj["edge"].append(float(rng.uniform(0.45, 0.9)))
            inj["spot"].append(float(rng.uniform(0.5, 1.0)))
            inj["zoom"].append(zoom)
            inj["rot"].append(int(rng.integers(4)))
            inj["flip"].append(int(rng.integers(2)))
            inj["frac_x"].append(float(rng.uniform(-0.5, 0.5)))
            inj["frac_y"].append(float(rng.uniform(-0.5, 0.5)))
            depths.append(depth)
            radii.append(radius)
            edges.append(min(x, y, tile - 1 - x, tile - 1 - y) < radius)
        crops["diff_index"].append(di)
        crops["y0"].append(y0)
        crops["x0"].append(x0)
        crops["label"].append(int(n_inj > 0 or n_nat > 0))
        crops["n_injected"].append(n_inj)
        crops["n_natural"].append(n_nat)
        crops["natural_depth"].append(nat_depth)
        crops["dip_amp"].append(dip)
        crops["min_depth"].append(min(depths) if depths else (float(naturals[i][:, 3].min()) if n_nat else np.nan))
        crops["max_depth"].append(max(depths) if depths else (nat_depth if n_nat else np.nan))
        crops["min_radius"].append(min(radii) if radii else np.nan)
        crops["edge"].append(int(any(edges)))
    dtypes = {"diff_index": np.int32, "y0": np.int32, "x0": np.int32, "label": np.int8, "n_injected": np.int8,
              "n_natural": np.int8, "edge": np.int8}
    crops_a = {k: np.asarray(v, dtype=dtypes.get(k, np.float32)) for k, v in crops.items()}
    idt = {"crop": np.int32, "source": np.int8, "cutout": np.int16, "profile": np.int8, "rot": np.int8, "flip": np.int8}
    inj_a = {k: np.asarray(v, dtype=idt.get(k, np.float32)) for k, v in inj.items()}
    return Recipe(split, [d.path for d in diffs], [d.scale for d in diffs], crops_a, inj_a, list(cutout_names),
                  int(seed), augment, border_rule)


class Subframes:
    """What a split of subframes offers besides its own ``batch`` and ``labels``: the whole split as arrays.

    Both recipes' datasets (:class:`BlobDataset`, :class:`~blobhelpers.blob.data.isrrecipe.IsrRecipeDataset`)
    build on it, so a model sees a split the same way whichever recipe made it.
    """

    def arrays(self, augment_seed: int | None = None, chunk: int = 512,
               representation: str = "isr") -> tuple[np.ndarray, np.ndarray]:
        """The whole split as arrays (augmented with *augment_seed* if given)."""
        n = len(self)
        X = np.empty((n, TILE, TILE), np.float32)
        rng = np.random.default_rng(augment_seed) if augment_seed is not None else None
        for a in range(0, n, chunk):
            X[a:a + chunk], _ = self.batch(np.arange(a, min(n, a + chunk)), rng, representation=representation)
        return X, self.labels


class BlobDataset(Subframes):
    """Materialise a :class:`Recipe` as arrays in the network's units.

    Parameters
    ----------
    recipe : Recipe
    images : list of numpy.ndarray
        The difference images of ``recipe.diff_files`` (difference units, 1024x1024) with NaN
        and border pixels already set to the median
        (:func:`~blobhelpers.blob.preprocess.scaling.fill_bad` with ``recipe.border_rule``), exactly as a
        whole image is prepared for classification.
    stamps : dict
        Prepared real stamps by name (:func:`~blobhelpers.blob.sim.injection.load_real_stamps`).
    noise_sigma : float
        Augmentation noise (ISR: 0.75), used when ``augment=True``.
    """

    def __init__(self, recipe: Recipe, images: list[np.ndarray], stamps: dict[str, np.ndarray],
                 noise_sigma: float = 0.75):
        if len(images) != len(recipe.diff_files):
            raise InputError(f"{recipe.split}: {len(images)} images given for {len(recipe.diff_files)} diff files")
        missing = [n for n in recipe.cutout_names if n not in stamps]
        if missing:
            raise InputError(f"{recipe.split}: real cutouts {missing} are not available")
        self.recipe = recipe
        self.images = images
        self.stamp_list = [stamps[n] for n in recipe.cutout_names]
        self.noise_sigma = noise_sigma
        order = np.argsort(recipe.inj["crop"], kind="stable")
        self._inj_order = order
        self._inj_crop_sorted = recipe.inj["crop"][order]

    def __len__(self) -> int:
        return len(self.recipe)

    @property
    def labels(self) -> np.ndarray:
        return self.recipe.labels

    def injections_of(self, i: int) -> np.ndarray:
        """Indices (into ``recipe.inj`` arrays) of the blobs injected into crop *i*."""
        a = np.searchsorted(self._inj_crop_sorted, i, "left")
        b = np.searchsorted(self._inj_crop_sorted, i, "right")
        return self._inj_order[a:b]

    def raw(self, indices, out: np.ndarray | None = None, boost: float = 1.0) -> np.ndarray:
        """Crops with blobs injected, in difference-image units (before scaling).

        *boost* multiplies the depth of every injected blob (training curricula only; 1 = as drawn).
        """
        r = self.recipe
        indices = np.asarray(indices, dtype=np.int64)
        out = np.empty((indices.size, TILE, TILE), np.float32) if out is None else out
        c = r.crops
        inj = r.inj
        for j, i in enumerate(indices):
            img = self.images[c["diff_index"][i]]
            y0, x0 = int(c["y0"][i]), int(c["x0"][i])
            out[j] = img[y0:y0 + TILE, x0:x0 + TILE]
            for k in self.injections_of(int(i)):
                src = int(inj["source"][k])
                st = make_stamp(src, self.stamp_list[inj["cutout"][k]] if src else None, float(inj["radius"][k]),
                                int(inj["profile"][k]), float(inj["axis_ratio"][k]), float(inj["theta"][k]),
                                float(inj["edge"][k]), float(inj["spot"][k]), float(inj["zoom"][k]),
                                int(inj["rot"][k]), int(inj["flip"][k]), float(inj["frac_x"][k]),
                                float(inj["frac_y"][k]))
                add_stamp(out[j], st, float(inj["x"][k]), float(inj["y"][k]), float(inj["depth"][k]) * boost)
        return out

    def batch(self, indices, augment_rng: np.random.Generator | None = None,
              hard_negatives: float = 0.0, noise_sigma: float | None = None,
              boost: float = 1.0, representation: str = "isr",
              nuisances: float = 0.0, crescents: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Scaled (and, with *augment_rng*, augmented) subframes ``(n, 256, 256)`` and labels.

        *hard_negatives* (training only, needs *augment_rng*): this fraction of the blob-free
        subframes gets a NEGATIVE feature added in difference units before the scaling -- an
        inverted blob or a broad persistence-like dip (a bright transient in the current frame)
        -- so a model learns that only positive, blob-shaped signal means "new blob".
        *noise_sigma* overrides the dataset's augmentation noise. *boost* scales the injected
        blobs' depths (a training curriculum: easy, strong blobs first). *representation*: the
        model's input (:data:`~blobhelpers.blob.preprocess.scaling.REPRESENTATIONS`; ``"isr"`` = the ISR's
        whole-image scaling). *nuisances* (training only, needs *augment_rng*): this fraction of
        ALL subframes gets domain randomisation in difference units before the representation
        (:func:`add_nuisances`: mis-registration dipoles, offsets, low-order gradients,
        heavy-tailed pixels, NaN columns, extra noise). *crescents* (training only, needs
        *augment_rng*): this fraction of the blob-free subframes gets, centred on it, the
        registration residual of a deep existing blob under pointing jitter (:func:`add_crescents`):
        what the monitor's verification sees on the rim of a deep blob.
        """
        indices = np.asarray(indices, dtype=np.int64)
        x = self.raw(indices, boost=boost)
        if hard_negatives > 0 and augment_rng is not None:
            _add_hard_negatives(x, self.labels[indices], augment_rng, hard_negatives)
        if nuisances > 0 and augment_rng is not None:
            add_nuisances(x, augment_rng, nuisances, self._noise_of(indices))
        if crescents > 0 and augment_rng is not None:
            add_crescents(x, self.labels[indices], np.random.default_rng(augment_rng.integers(2 ** 63)), crescents)
        if representation == "residual":
            x = residual(x)
        elif representation == "isr":
            di = self.recipe.crops["diff_index"][indices]
            for d in np.unique(di):
                sel = np.nonzero(di == d)[0]
                x[sel] = apply_scaling(x[sel], self.recipe.scales[int(d)])
        else:
            raise InputError(f"unknown representation {representation!r}; expected one of {REPRESENTATIONS}")
        if augment_rng is not None:
            x = augment(x, augment_rng, self.noise_sigma if noise_sigma is None else noise_sigma)
        return x, self.labels[indices]

    def _noise_of(self, indices) -> np.ndarray:
        """Robust per-pixel noise (difference units) of the images the crops *indices* come from."""
        if not hasattr(self, "_noise"):
            self._noise = np.array([float(median_mad(im[::4, ::4])[1]) * 1.4826 for im in self.images], np.float32)
        return self._noise[self.recipe.crops["diff_index"][np.asarray(indices, np.int64)]]


def _add_hard_negatives(x: np.ndarray, labels: np.ndarray, rng: np.random.Generator, fraction: float) -> None:
    """Add one or two negative features (in difference units) to a *fraction* of label-0 crops."""
    for j in np.nonzero(labels == 0)[0]:
        if rng.random() >= fraction:
            continue
        for _ in range(int(rng.integers(1, 3))):
            cx, cy = rng.uniform(-10, TILE + 10, 2)
            if rng.random() < 0.5:  # inverted blob
                r = float(np.clip(6.0 * np.exp(0.35 * rng.standard_normal()), 2.5, 12))
                st = make_stamp(0, None, r, int(rng.random() < 0.4), 1.0, 0.0, float(rng.uniform(0.45, 0.9)),
                                0.8, 1.0, 0, 0, 0.0, 0.0)
                add_stamp(x[j], st, cx, cy, -float(np.exp(rng.uniform(np.log(0.015), np.log(0.15)))))
            else:  # persistence-like broad dip
                sig = float(rng.uniform(4, 25))
                half = int(4 * sig)
                yy, xx = np.mgrid[-half:half + 1, -half:half + 1]
                st = np.exp(-0.5 * (xx ** 2 + yy ** 2) / sig ** 2).astype(np.float32)
                add_stamp(x[j], st, cx, cy, -float(rng.uniform(0.01, 0.08)))


def add_crescents(x: np.ndarray, labels: np.ndarray, rng: np.random.Generator, fraction: float) -> None:
    """Give a *fraction* of the blob-free crops ``(n, 256, 256)`` (difference units, in place) the
    registration residual of a deep existing blob, its positive crescent at the crop's centre.

    Under pointing jitter the history's median holds each existing blob slightly blurred (the
    frames sit 0.15-0.5 px apart), and today's frame holds it sharp and shifted by what the global
    registration left (up to 0.5 px). The difference (history - today) is then
    ``depth x (P_today(r - s) - P_history(r))``: a crescent on the rim, its negative partner
    weaker than a pure shift's. The monitor verifies a candidate on a subframe centred on it, so
    the crescent is put within 2 px of the crop's centre. Blob: disc or ring, radius 3-12 px,
    depth 15-30 %; history blur 0.15-0.5 px (Gaussian sigma); residual shift 0.1-0.5 px.

    >>> x = np.zeros((2, 256, 256), np.float32)
    >>> add_crescents(x, np.array([0, 1]), np.random.default_rng(0), 1.0)
    >>> bool(np.abs(x[1]).max() == 0), bool(x[0][118:139, 118:139].max() > 0.3 * np.abs(x[0]).max())
    (True, True)
    """
    from scipy import ndimage

    c = TILE / 2.0
    for j in np.nonzero(labels == 0)[0]:
        if rng.random() >= fraction:
            continue
        r = float(rng.uniform(3.0, 12.0))
        shape = (r, int(rng.random() < 0.3), float(rng.uniform(0.8, 1.0)), float(rng.uniform(0, np.pi)),
                 float(rng.uniform(0.45, 0.9)), 0.8, 1.0, 0, 0)
        depth = float(rng.uniform(0.15, 0.30))
        ang = float(rng.uniform(0, 2 * np.pi))
        shift = float(rng.uniform(0.1, 0.5))
        # today's blob rendered shifted by the sub-pixel residual, the history's blurred, both placed at
        # the same pixel; the crescent's peak lies on the rim towards the shift: the centre one radius behind
        today = make_stamp(0, None, *shape, shift * np.cos(ang), shift * np.sin(ang))
        history = ndimage.gaussian_filter(make_stamp(0, None, *shape, 0.0, 0.0), float(rng.uniform(0.15, 0.5)))
        off = rng.uniform(-2.0, 2.0, 2)
        bx, by = c + off[0] - r * np.cos(ang), c + off[1] - r * np.sin(ang)
        add_stamp(x[j], today, bx, by, depth)
        add_stamp(x[j], history, bx, by, -depth)


def add_nuisances(x: np.ndarray, rng: np.random.Generator, fraction: float, noise: np.ndarray) -> None:
    """Domain randomisation of crops ``(n, 256, 256)`` in difference units (in place).

    Each crop, with probability *fraction*, gets a random subset of what must not matter to a
    blob detector (*noise* = each crop's per-pixel noise, difference units):
    * 1-4 **mis-registration dipoles**: an existing blob (disc or ring, radius 2.5-12 px, depth
      2-30 %) in the stack and shifted by up to 0.6 px in the latest frame leaves
      ``depth x (P(r - s) - P(r))``;
    * a constant **offset** and a **plane + quadratic** background of up to 1 noise sigma;
    * **heavy-tailed pixels** (Student-t, 0.1-1 % of the pixels, either sign);
    * **NaN** columns or clusters (bad pixels the reader masked);
    * **extra white noise** of up to 0.5 x the noise (different noise levels and units).
    """
    n = x.shape[0]
    yy, xx = np.mgrid[0:TILE, 0:TILE].astype(np.float32) / TILE - 0.5
    for j in range(n):
        if rng.random() >= fraction:
            continue
        s = float(noise[j]) if noise[j] > 0 else 0.01
        if rng.random() < 0.6:
            for _ in range(int(rng.integers(1, 5))):
                r = float(np.clip(6.0 * np.exp(0.4 * rng.standard_normal()), 2.5, 12))
                shape = (r, int(rng.random() < 0.4), float(rng.uniform(0.7, 1.0)), float(rng.uniform(0, np.pi)),
                         float(rng.uniform(0.45, 0.9)), 0.8, 1.0, 0, 0)
                cx, cy = rng.uniform(-5, TILE + 5, 2)
                depth = float(np.exp(rng.uniform(np.log(0.02), np.log(0.30))))
                ang = rng.uniform(0, 2 * np.pi)
                amp = float(rng.uniform(0.05, 0.6))
                # the sub-pixel shift goes into the stamp (add_stamp places stamps on whole pixels)
                add_stamp(x[j], make_stamp(0, None, *shape, amp * np.cos(ang), amp * np.sin(ang)), cx, cy, depth)
                add_stamp(x[j], make_stamp(0, None, *shape, 0.0, 0.0), cx, cy, -depth)
        if rng.random() < 0.5:
            c = rng.normal(0, 1, 6) * s * rng.uniform(0, 1)
            x[j] += (c[0] + c[1] * xx + c[2] * yy + c[3] * xx * xx + c[4] * yy * yy + c[5] * xx * yy).astype(np.float32)
        if rng.random() < 0.4:
            m = rng.random((TILE, TILE)) < rng.uniform(0.001, 0.01)
            x[j][m] += (3 * s * rng.standard_t(2, int(m.sum()))).astype(np.float32)
        if rng.random() < 0.2:
            if rng.random() < 0.5:
                x[j][:, int(rng.integers(0, TILE))] = np.nan
            else:
                cy, cx = rng.integers(0, TILE, 2)
                x[j][max(0, cy - 2):cy + 3, max(0, cx - 2):cx + 3] = np.nan
        if rng.random() < 0.3:
            x[j] += (rng.standard_normal((TILE, TILE)) * s * rng.uniform(0, 0.5)).astype(np.float32)
