"""The ISR 2021-08 training recipe, as the released reference code builds its subframes.

This is the recipe the published validation rates (TPR 0.94, TNR 0.88) were measured on
(docs/facts.md sections 3-4), rebuilt so that the published numbers can be reproduced and
compared with this project's own recipe (:mod:`blobhelpers.blob.data.dataset`):

* backgrounds are whole difference images in the ISR's units (NaN and border pixels set to
  the median, clipped at 0.5 x the zscale limits, z-scored: :func:`~blobhelpers.blob.preprocess.scaling.scale_image`);
* training crops (256 x 256) come from the left 75 % of a frame (x < 768), validation crops
  from the right 25 % -- which is exactly one crop wide, so every validation crop starts at
  x = 768 (the released code's validation crops share one x-centre, 896, for the same
  reason); the "ISR-style test" crops come from later days, anywhere in the frame;
* a positive crop gets 1-5 real cutouts (uniform count) PASTED over the background: the
  square cutout, multiplied by an intensity factor U(0.5, 1.5), replaces the pixels under
  it (fully inside the crop); the cutouts ship in processed units already (blobs positive,
  saturating at +2.96);
* every crop, positive or not, is then re-z-scored (its own mean and standard deviation).
  The released code re-z-scores the crop after pasting; doing it for the negatives too keeps
  "was this crop re-z-scored" from being a label;
* training augmentation: rotation by k x 90 degrees, random flips, + N(0, 0.75) noise
  (:func:`~blobhelpers.blob.preprocess.augment.augment`), fresh every epoch.

What a model can learn here instead of blobs (docs/facts.md section 4): the square edges of a
pasted patch, the different noise inside it, and pasted peaks up to ~4.4 (1.5 x 2.96) above a
background clipped near +-3. :func:`shortcut_probes` builds crops that have those features
and NO blob, so the stage can measure whether a model answers to them.

Crops that hold a natural new blob of the simulated campaign (residual depth >= the data
stage's ``AMBIGUOUS_DEPTH``) are not drawn, so a negative is blob-free.

:class:`IsrRecipeDataset` has the interface :func:`~blobhelpers.blob.learn.training.train_model`
expects (``batch``, ``arrays``, ``labels``, ``len``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from blobhelpers.blob.data.dataset import AMBIGUOUS_DEPTH, DiffInfo, Subframes
from blobhelpers.blob.preprocess.augment import augment
from blobhelpers.blob.preprocess.scaling import TILE, residual
from blobhelpers.blob.sections import TrainConfig
from blobhelpers.blob.sim.injection import read_cutouts
from blobhelpers.core.config import dataclass_from_params
from blobhelpers.core.errors import InputError

__all__ = ["IsrRecipeConfig", "IsrPlan", "plan_split", "IsrRecipeDataset", "load_raw_cutouts",
           "paste", "crop_zscore", "shortcut_probes", "INTENSITY", "N_BLOBS"]

#: The released code's ranges: 1-5 pasted cutouts per positive crop, intensity x U(0.5, 1.5).
N_BLOBS = (1, 5)
INTENSITY = (0.5, 1.5)


@dataclass
class IsrRecipeConfig:
    """The ``isr_recipe`` section of params.yaml (sizes; the ranges are the released code's)."""
    n_train: int = 2000
    n_val: int = 500
    n_test: int = 1000
    positive_fraction: float = 0.5
    min_blobs: int = N_BLOBS[0]
    max_blobs: int = N_BLOBS[1]
    intensity_min: float = INTENSITY[0]
    intensity_max: float = INTENSITY[1]
    noise_sigma: float = 0.75
    models: dict = field(default_factory=dict)  # name -> a train.models-style entry (TrainConfig)
    probes: int = 200  # blob-free crops per shortcut probe
    anomaly: dict = field(default_factory=dict)  # the unsupervised baseline's settings

    @classmethod
    def from_dict(cls, d: dict | None) -> "IsrRecipeConfig":
        cfg = dataclass_from_params(cls, d, "isr_recipe")
        for name, m in (cfg.models or {}).items():
            try:
                TrainConfig.from_dict(m)
            except InputError as exc:
                raise InputError(f"isr_recipe.models.{name}: {exc}") from exc
        if not 1 <= cfg.min_blobs <= cfg.max_blobs:
            raise InputError(f"isr_recipe: need 1 <= min_blobs <= max_blobs, got {cfg.min_blobs}, {cfg.max_blobs}")
        if not 0 < cfg.intensity_min <= cfg.intensity_max:
            raise InputError("isr_recipe: need 0 < intensity_min <= intensity_max")
        if not 0.0 <= cfg.positive_fraction <= 1.0:
            raise InputError("isr_recipe: positive_fraction must be in [0, 1]")
        return cfg


def load_raw_cutouts(path: str | Path) -> dict[str, np.ndarray]:
    """The real cutouts AS SHIPPED (processed units, blobs positive), by name, sorted
    (:func:`~blobhelpers.blob.sim.injection.read_cutouts`), each at most a crop on a side."""
    out = read_cutouts(path)
    for k, v in out.items():
        if max(v.shape) > TILE:
            raise InputError(f"{path}: cutout {k!r} must be at most {TILE} px on a side, got shape {v.shape}")
    return out


@dataclass
class IsrPlan:
    """Where each crop is and what is pasted into it (everything needed to rebuild a split).

    ``crops``: ``(n, 4)`` int64 rows (image index, y0, x0, label). ``pastes``: ``(m, 4)``
    float64 rows (crop index, cutout index, x0, y0) of each pasted square's lower-left corner
    (0-based, x = column) and ``intensity`` ``(m,)``.
    """

    split: str
    crops: np.ndarray
    pastes: np.ndarray
    intensity: np.ndarray
    cutout_names: list[str]

    def __len__(self) -> int:
        return len(self.crops)

    @property
    def labels(self) -> np.ndarray:
        return self.crops[:, 3].astype(np.int64)

    def pastes_of(self, i: int) -> np.ndarray:
        return np.nonzero(self.pastes[:, 0] == i)[0]


def _natural_boxes(info: DiffInfo) -> np.ndarray:
    """(k, 3) x, y, radius of natural new blobs in *info* deep enough to matter."""
    nat = np.asarray(info.natural, float).reshape(-1, 5)
    nat = nat[nat[:, 3] >= AMBIGUOUS_DEPTH]
    return nat[:, :3]


def plan_split(split: str, diffs: list[DiffInfo], n: int, seed: int, region: str, cutouts: dict[str, np.ndarray],
               allowed: list[str], cfg: IsrRecipeConfig, size: int = 1024, max_tries: int = 200) -> IsrPlan:
    """Draw *n* crops of *region* ("left", "right" or "all") from *diffs* and their pastes.

    *allowed*: the cutout names this split may paste (train/val share one set, the test set
    gets the reserved ones). Crops touching a natural new blob (truth of a simulated
    campaign) are redrawn.
    """
    if not diffs:
        raise InputError(f"{split}: no difference images to draw crops from")
    names = sorted(cutouts)
    missing = [a for a in allowed if a not in cutouts]
    if missing or not allowed:
        raise InputError(f"{split}: cutouts {missing or 'none'} are not available")
    allowed_idx = np.array([names.index(a) for a in allowed])
    rng = np.random.default_rng(np.random.SeedSequence([seed, sum(map(ord, split)), 14]))
    split_x = int(round(0.75 * size))
    boxes = [_natural_boxes(d) for d in diffs]
    crops, pastes, intensity = [], [], []
    n_pos = int(round(cfg.positive_fraction * n))
    labels = np.r_[np.ones(n_pos, np.int64), np.zeros(n - n_pos, np.int64)]
    rng.shuffle(labels)
    for i in range(n):
        for _ in range(max_tries):
            d = int(rng.integers(len(diffs)))
            y0 = int(rng.integers(0, size - TILE + 1))
            if region == "left":
                x0 = int(rng.integers(0, split_x - TILE + 1))
            elif region == "right":
                x0 = int(rng.integers(split_x, size - TILE + 1))
            elif region == "all":
                x0 = int(rng.integers(0, size - TILE + 1))
            else:
                raise ValueError(f"region must be 'left', 'right' or 'all', not {region!r}")
            b = boxes[d]
            if not len(b) or not np.any((b[:, 0] + b[:, 2] >= x0) & (b[:, 0] - b[:, 2] < x0 + TILE)
                                        & (b[:, 1] + b[:, 2] >= y0) & (b[:, 1] - b[:, 2] < y0 + TILE)):
                break
        else:
            raise InputError(f"{split}: no blob-free crop found in {max_tries} tries")
        crops.append((d, y0, x0, int(labels[i])))
        if labels[i]:
            for _ in range(int(rng.integers(cfg.min_blobs, cfg.max_blobs + 1))):
                c = int(allowed_idx[rng.integers(len(allowed_idx))])
                h, w = cutouts[names[c]].shape
                pastes.append((i, c, int(rng.integers(0, TILE - w + 1)), int(rng.integers(0, TILE - h + 1))))
                intensity.append(float(rng.uniform(cfg.intensity_min, cfg.intensity_max)))
    return IsrPlan(split, np.array(crops, np.int64).reshape(-1, 4), np.array(pastes, np.float64).reshape(-1, 4),
                   np.array(intensity, np.float64), names)


def paste(crop: np.ndarray, cutout: np.ndarray, x0: int, y0: int, intensity: float) -> None:
    """Replace the pixels of *crop* under the square *cutout* (lower-left at x0, y0) in place."""
    h, w = cutout.shape
    if x0 < 0 or y0 < 0 or x0 + w > crop.shape[1] or y0 + h > crop.shape[0]:
        raise ValueError(f"cutout {cutout.shape} at ({x0}, {y0}) does not fit in a {crop.shape} crop")
    crop[y0:y0 + h, x0:x0 + w] = cutout * np.float32(intensity)


def crop_zscore(x: np.ndarray) -> np.ndarray:
    """Re-z-score each crop of ``(n, H, W)`` (or one ``(H, W)``) with its own mean and std (float32)."""
    a = np.asarray(x, np.float32)
    axes = (-2, -1)
    m = a.mean(axis=axes, keepdims=True, dtype=np.float64)
    s = a.std(axis=axes, keepdims=True, dtype=np.float64)
    s = np.where(s > 0, s, 1.0)
    return ((a - m) / s).astype(np.float32)


class IsrRecipeDataset(Subframes):
    """Materialise an :class:`IsrPlan` on ISR-scaled images (``(1024, 1024)`` each, z units)."""

    def __init__(self, plan: IsrPlan, images: list[np.ndarray], cutouts: dict[str, np.ndarray],
                 noise_sigma: float = 0.75):
        if plan.cutout_names != sorted(cutouts):
            raise InputError(f"{plan.split}: the plan's cutouts differ from the ones given")
        if len(plan) and int(plan.crops[:, 0].max()) >= len(images):
            raise InputError(f"{plan.split}: the plan refers to {int(plan.crops[:, 0].max()) + 1} images, "
                             f"{len(images)} given")
        self.plan = plan
        self.images = images
        self.cutouts = [np.asarray(cutouts[n], np.float32) for n in plan.cutout_names]
        self.noise_sigma = float(noise_sigma)

    def __len__(self) -> int:
        return len(self.plan)

    @property
    def labels(self) -> np.ndarray:
        return self.plan.labels

    def raw(self, indices) -> np.ndarray:
        """Crops with the cutouts pasted, re-z-scored (no augmentation)."""
        indices = np.asarray(indices, np.int64)
        out = np.empty((indices.size, TILE, TILE), np.float32)
        for j, i in enumerate(indices):
            d, y0, x0, _ = (int(v) for v in self.plan.crops[i])
            out[j] = self.images[d][y0:y0 + TILE, x0:x0 + TILE]
            for k in self.plan.pastes_of(int(i)):
                _, c, px, py = (int(v) for v in self.plan.pastes[k])
                paste(out[j], self.cutouts[c], px, py, float(self.plan.intensity[k]))
        return crop_zscore(out)

    def batch(self, indices, augment_rng: np.random.Generator | None = None, hard_negatives: float = 0.0,
              noise_sigma: float | None = None, boost: float = 1.0, representation: str = "isr",
              nuisances: float = 0.0, crescents: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """Subframes and labels; the signature of :meth:`BlobDataset.batch`.

        The ISR recipe has no hard negatives, domain randomisation or curriculum: asking for
        them is an error rather than silently ignored. *representation* ``"isr"`` is the
        recipe's own (re-z-scored crop); ``"residual"`` feeds the same crop to a model that
        takes this project's residual input.
        """
        if hard_negatives or nuisances or crescents or boost != 1.0:
            raise InputError("the ISR recipe has no hard negatives, nuisances, crescents or curriculum "
                             "(set them to 0 / 1)")
        indices = np.asarray(indices, np.int64)
        x = self.raw(indices)
        if representation == "residual":
            x = residual(x)
        elif representation != "isr":
            raise InputError(f"unknown representation {representation!r} for the ISR recipe (isr, residual)")
        if augment_rng is not None:
            x = augment(x, augment_rng, self.noise_sigma if noise_sigma is None else noise_sigma)
        return x, self.labels[indices]



def shortcut_probes(dataset: IsrRecipeDataset, n: int, seed: int, patch: int = 15) -> dict[str, np.ndarray]:
    """Blob-free crops carrying one of the recipe's shortcuts, ``(n, 256, 256)`` each, re-z-scored.

    * ``"blank_square"``: 1-5 squares of *background* (pixels from elsewhere in the same
      image, scaled x U(0.5, 1.5) like a pasted cutout) pasted in: square edges and a
      different texture, no blob;
    * ``"hot_pixels"``: 1-5 3 x 3 groups of pixels set to 4.4 (= 1.5 x the cutouts' +2.96
      clip), above the background's clip: pasted-peak values, no blob shape;
    * ``"plain"``: the same crops untouched (the reference).

    The crops are the dataset's negatives (first *n*, or all if fewer).
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 41]))
    neg = np.nonzero(dataset.labels == 0)[0][:n]
    base = dataset.raw(neg)  # re-z-scored; un-z-score is not needed: probes are re-z-scored again
    plain = base.copy()
    blank = base.copy()
    hot = base.copy()
    for j, i in enumerate(neg):
        d = int(dataset.plan.crops[i, 0])
        img = dataset.images[d]
        for _ in range(int(rng.integers(1, 6))):
            sy, sx = (int(v) for v in rng.integers(0, img.shape[0] - patch + 1, 2))
            px, py = (int(v) for v in rng.integers(0, TILE - patch + 1, 2))
            paste(blank[j], img[sy:sy + patch, sx:sx + patch], px, py, float(rng.uniform(*INTENSITY)))
            hx, hy = (int(v) for v in rng.integers(0, TILE - 3 + 1, 2))
            hot[j, hy:hy + 3, hx:hx + 3] = 1.5 * 2.96
    return {"plain": crop_zscore(plain), "blank_square": crop_zscore(blank), "hot_pixels": crop_zscore(hot)}
