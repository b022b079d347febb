"""The data stage, as functions: campaign -> difference images -> dataset recipes.

The notebook ``notebooks/01_data_prep.py`` and the CLI (``blobhelpers simulate``,
``blobhelpers difference``, ``blobhelpers prepare``) call these.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from blobhelpers.blob.data.dataset import (AMBIGUOUS_DEPTH, VISIBLE_DEPTH, BlobDataset, DiffInfo, Recipe, build_recipe,
                                           median_residual_fraction, split_cutouts)
from blobhelpers.blob.io.fitsio import expand_frame_paths, read_frame, to_full_frame, write_image
from blobhelpers.blob.preprocess.difference import difference_of_normalized, normalize, order_frames
from blobhelpers.blob.preprocess.scaling import ScaleParams, fill_bad, scaling_params
from blobhelpers.blob.sections import CampaignConfig, DatasetConfig, DifferenceConfig, InjectionConfig
from blobhelpers.blob.sim.campaign import simulate_campaign
from blobhelpers.blob.sim.injection import load_real_stamps
from blobhelpers.core.config import ProjectPaths
from blobhelpers.core.errors import InputError
from blobhelpers.core.paths import atomic_path

__all__ = ["run_data_stage", "dip_statistics", "build_differences", "read_diff_table", "diff_infos", "build_datasets", "load_dataset",
           "DIFF_COLUMNS"]

DIFF_COLUMNS = ["index", "file", "date_obs", "frame_index", "split", "shift_x", "shift_y", "true_dx", "true_dy",
                "resid_shift", "raw_shift", "n_natural", *ScaleParams.__dataclass_fields__]


def _truth_tables(campaign_dir: Path | None):
    if campaign_dir is None:
        return None, None
    import pandas as pd

    cat, fr = campaign_dir / "catalog.csv", campaign_dir / "frames.csv"
    if not (cat.exists() and fr.exists()):
        return None, None
    return pd.read_csv(cat, keep_default_na=False), pd.read_csv(fr)


def build_differences(frame_paths, outdir: str | Path, history: int = 30, register: bool = True,
                      min_history: int | None = None, clip_factor: float = 0.5, border_rule: str = "symmetric",
                      test_fraction: float = 0.3, campaign_dir: str | Path | None = None,
                      progress: bool = True) -> list[dict]:
    """Make the difference image of every frame that has enough history; write FITS + diffs.csv.

    Frames are ordered by DATE-OBS. For frame *i* the median of the previous
    ``min(history, i)`` frames is used, once at least *min_history* (default: *history*) are
    available. Each frame is read and normalised once. The last *test_fraction* of the
    difference images (by date) are marked ``split=test``, the rest ``train``.

    If *campaign_dir* holds a simulated campaign's ``catalog.csv`` and ``frames.csv`` the table
    also records the true mis-registration and the new blobs visible in each difference.

    Returns the table rows (also written to ``outdir/diffs.csv``).
    """
    from tqdm.auto import tqdm

    outdir = Path(outdir)
    paths = expand_frame_paths(frame_paths)
    if not paths:
        raise InputError(f"no frames found in {list(map(str, frame_paths))}")
    ordered = order_frames(paths)
    min_history = history if min_history is None else min_history
    if len(ordered) <= min_history:
        raise InputError(f"{len(ordered)} frames given; at least {min_history + 1} are needed for one difference "
                         f"image with {min_history} frames of history")
    catalog, frames_truth = _truth_tables(Path(campaign_dir) if campaign_dir else None)
    truth_by_file = {}
    if frames_truth is not None:
        truth_by_file = {Path(f).name: r for f, r in zip(frames_truth["file"], frames_truth.to_dict("records"))}
    normed: dict[int, np.ndarray] = {}
    rows = []
    targets = list(range(min_history, len(ordered)))
    n_test = int(round(test_fraction * len(targets)))
    test_from = len(targets) - n_test
    outdir.mkdir(parents=True, exist_ok=True)
    written = set()
    for t_i, i in enumerate(tqdm(targets, desc="difference images", disable=not progress)):
        lo = max(0, i - history)
        for j in list(normed):
            if j < lo:
                del normed[j]
        for j in range(lo, i + 1):
            if j not in normed:
                fr = read_frame(ordered[j][0])
                normed[j] = normalize(to_full_frame(fr.data))
        diff = difference_of_normalized([normed[j] for j in range(lo, i)], normed[i], register)
        shift = diff.shift
        sp = scaling_params(diff.data, clip_factor, border_rule)
        path_i, when = ordered[i]
        name = f"diff_{when:%Y%m%dT%H%M%S}.fits"
        row = {"index": t_i, "file": name, "date_obs": when.isoformat(timespec="seconds"), "frame_index": i,
               "split": "test" if t_i >= test_from else "train", "shift_x": round(shift[0], 5),
               "shift_y": round(shift[1], 5), "true_dx": "", "true_dy": "", "resid_shift": "", "raw_shift": "",
               "n_natural": "", **sp.to_dict()}
        truth = truth_by_file.get(path_i.name)
        if truth is not None and catalog is not None:
            hist_rows = [truth_by_file.get(ordered[j][0].name) for j in range(lo, i)]
            if all(h is not None for h in hist_rows):
                med = np.median([[h["shift_x"], h["shift_y"]] for h in hist_rows], axis=0)
                tdx, tdy = truth["shift_x"] - med[0], truth["shift_y"] - med[1]
                row.update(true_dx=round(tdx, 5), true_dy=round(tdy, 5),
                           raw_shift=round(float(np.hypot(tdx, tdy)), 5),
                           resid_shift=round(float(np.hypot(tdx - shift[0], tdy - shift[1])), 5))
                sigma = 1.0 / np.sqrt(np.mean([h["sky_e"] for h in hist_rows]))
                nat = _natural_new(catalog, truth, [h["index"] for h in hist_rows], sigma)
                row["n_natural"] = int(sum(n[3] >= VISIBLE_DEPTH for n in nat))
        hdr = {**diff.header(), "DATE-OBS": (row["date_obs"][:10], "of the current frame"),
               "TIME-OBS": (row["date_obs"][11:], ""),
               "CURFILE": (path_i.name[:68], "current frame"),
               "FIRSTHIS": (ordered[lo][0].name[:68], "first history frame"),
               "LASTHIS": (ordered[i - 1][0].name[:68], "last history frame"),
               "ZS_LO": (sp.lo, "clip low (0.5 x zscale z1)"), "ZS_HI": (sp.hi, "clip high"),
               "ZS_MEAN": (sp.mean, "mean after clipping"), "ZS_STD": (sp.std, "std after clipping")}
        write_image(outdir / name, diff.data, hdr)
        written.add(name)
        rows.append(row)
    for old in outdir.glob("diff_*.fits"):
        if old.name not in written:
            old.unlink()
    with atomic_path(outdir / "diffs.csv") as tmp:
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=DIFF_COLUMNS)
            w.writeheader()
            w.writerows(rows)
    return rows


def _natural_new(catalog, cur_truth: dict, hist_indices: list[int], sigma: float = 0.0) -> list[tuple]:
    """(x, y, radius, residual depth, id, category, appear_index) of new blobs left in a difference image.

    *sigma* is the per-pixel noise of a normalised frame (~1/sqrt(sky)); with it the residual
    follows :func:`~blobhelpers.blob.data.dataset.median_residual_fraction`, without it the noiseless step.
    """
    out = []
    i = int(cur_truth["index"])
    for r in catalog.itertuples():
        a = int(r.appear_index)
        if a < 0 or a > i:
            continue
        n_with = sum(h >= a for h in hist_indices)
        frac = median_residual_fraction(n_with, len(hist_indices), float(r.depth), sigma)
        if float(r.depth) * frac < AMBIGUOUS_DEPTH:
            continue
        out.append((float(r.x) + cur_truth["shift_x"], float(r.y) + cur_truth["shift_y"], float(r.radius),
                    float(r.depth) * frac, int(r.id), str(r.category), a))
    return out


def read_diff_table(diff_dir: str | Path):
    """Read ``diffs.csv`` of a difference-image folder as a DataFrame."""
    import pandas as pd

    p = Path(diff_dir) / "diffs.csv"
    if not p.exists():
        raise InputError(f"{p}: no difference-image table (run the data stage first)")
    return pd.read_csv(p, keep_default_na=False)


def diff_infos(diff_dir: str | Path, campaign_dir: str | Path | None = None, split: str | None = None,
               history: int = 30) -> list[DiffInfo]:
    """:class:`DiffInfo` for the difference images of *diff_dir* (optionally one split)."""
    diff_dir = Path(diff_dir)
    table = read_diff_table(diff_dir)
    catalog, frames_truth = _truth_tables(Path(campaign_dir) if campaign_dir else None)
    out = []
    for r in table.to_dict("records"):
        if split is not None and r["split"] != split:
            continue
        sp = ScaleParams.from_dict(r)
        natural = np.zeros((0, 5))
        existing = np.zeros((0, 4))
        resid = float(r["resid_shift"]) if r["resid_shift"] != "" else float("nan")
        if catalog is not None and frames_truth is not None and r["true_dx"] != "":
            i = int(r["frame_index"])
            ft = frames_truth.set_index("index")
            hist = list(range(max(0, i - history), i))
            cur = ft.loc[i].to_dict()
            cur["index"] = i
            sigma = 1.0 / np.sqrt(ft.loc[hist, "sky_e"].mean())
            nat = _natural_new(catalog, cur, hist, sigma)
            natural = np.array([(*n[:4], n[6]) for n in nat], float).reshape(-1, 5)
            med = np.median(ft.loc[hist, ["shift_x", "shift_y"]].to_numpy(), axis=0)
            olds = catalog[(catalog["appear_index"] < i)]
            keep = [median_residual_fraction(sum(h >= a for h in hist), len(hist), d, sigma) < 1
                    for a, d in zip(olds["appear_index"], olds["depth"])]
            olds = olds[np.array(keep, bool)] if len(olds) else olds
            existing = np.c_[olds["x"].to_numpy() + med[0], olds["y"].to_numpy() + med[1], olds["depth"].to_numpy(),
                             olds["radius"].to_numpy()]
        out.append(DiffInfo(str(diff_dir / r["file"]), sp, natural, existing, resid, str(r["date_obs"]),
                            int(r["frame_index"])))
    return out


def build_datasets(diff_dir: str | Path, cutouts_path: str | Path, outdir: str | Path, seed: int,
                   n_train: int, n_val: int, n_test: int, injection: InjectionConfig, test_cutouts: int = 5,
                   positive_fraction: float = 0.5, campaign_dir: str | Path | None = None,
                   history: int = 30, border_rule: str = "symmetric") -> dict[str, Recipe]:
    """Build and save the train/val/test recipes (``outdir/{train,val,test}.npz``).

    Real cutouts are split by name: the last *test_cutouts* (sorted) are reserved for the
    test set, the others are used by train and validation.
    """
    outdir = Path(outdir)
    stamps = load_real_stamps(cutouts_path)
    names = sorted(stamps)
    train_names, test_names = split_cutouts(names, test_cutouts, str(cutouts_path))
    train_days = diff_infos(diff_dir, campaign_dir, "train", history)
    test_days = diff_infos(diff_dir, campaign_dir, "test", history)
    if not test_days:
        raise InputError(f"{diff_dir}: no difference image is marked for the test split (raise test_fraction)")
    recipes = {
        "train": build_recipe("train", train_days, n_train, seed, "left", injection, names, train_names,
                              positive_fraction, augment=True, border_rule=border_rule),
        "val": build_recipe("val", train_days, n_val, seed, "right", injection, names, train_names,
                            positive_fraction, border_rule=border_rule),
        # Blobs that appeared during the training days linger in the first test days: they are
        # known by then, so test crops that hold one are not drawn (no blob is on both sides).
        "test": build_recipe("test", test_days, n_test, seed, "all", injection, names, test_names,
                             positive_fraction, border_rule=border_rule,
                             known_before=min(d.frame_index for d in test_days)),
    }
    for name, r in recipes.items():
        r.diff_files = [str(Path(f).relative_to(Path(diff_dir))) if Path(f).is_relative_to(Path(diff_dir)) else f
                        for f in r.diff_files]
        r.save(outdir / f"{name}.npz")
    return recipes


def load_dataset(split: str, datasets_dir: str | Path, diff_dir: str | Path, cutouts_path: str | Path,
                 noise_sigma: float = 0.75, _cache: dict | None = None) -> BlobDataset:
    """Load a split's recipe with its difference images and real stamps as a :class:`BlobDataset`."""
    recipe = Recipe.load(Path(datasets_dir) / f"{split}.npz")
    images = []
    cache = _cache if _cache is not None else {}
    for f in recipe.diff_files:
        p = Path(diff_dir) / f
        if (p, recipe.border_rule) not in cache:
            cache[(p, recipe.border_rule)] = fill_bad(read_frame(p).data, recipe.border_rule)[0]
        images.append(cache[(p, recipe.border_rule)])
    return BlobDataset(recipe, images, load_real_stamps(cutouts_path), noise_sigma)


def run_data_stage(params: dict, paths=None, progress: bool = True) -> dict:
    """Run the whole data stage from params.yaml sections; return a summary dict.

    1. the campaign: simulated (``simulate.source: simulated``) or the user's FITS frames
       (``simulate.source: <glob>``, e.g. ``data/frames/*.fits``);
    2. the difference image of every frame with enough history (``difference`` section);
    3. the train/val/test recipes (``dataset`` section).
    """
    import time

    paths = paths or ProjectPaths.default()
    seed = int(params.get("base", {}).get("seed", 0))
    sim = dict(params.get("simulate", {}))
    dif = DifferenceConfig.from_dict(params.get("difference"))
    dset = DatasetConfig.from_dict(params.get("dataset"))
    t0 = time.perf_counter()
    source = sim.pop("source", "simulated")
    campaign_dir = None
    if source == "simulated":
        simulate_campaign(paths.campaign, CampaignConfig.from_dict(sim), seed, progress=progress)
        frames = [paths.campaign / "frames"]
        campaign_dir = paths.campaign
    else:
        frames = expand_frame_paths([paths.root / source if not Path(source).is_absolute() else source])
        if not frames:
            raise InputError(f"simulate.source: no FITS frames match {source!r}")
    t1 = time.perf_counter()
    rows = build_differences(frames, paths.diffs, history=dif.history, register=dif.register,
                             min_history=dif.min_history, clip_factor=dif.clip_factor, border_rule=dif.border_rule,
                             test_fraction=dif.test_fraction, campaign_dir=campaign_dir, progress=progress)
    t2 = time.perf_counter()
    recipes = build_datasets(paths.diffs, paths.cutouts, paths.datasets, seed, dset.n_train, dset.n_val, dset.n_test,
                             InjectionConfig.from_dict(dset.injection), dset.test_cutouts, dset.positive_fraction,
                             campaign_dir, dif.history, dif.border_rule)
    t3 = time.perf_counter()
    return {"source": source, "n_diffs": len(rows), "rows": rows, "recipes": recipes,
            "seconds": {"campaign": t1 - t0, "differences": t2 - t1, "datasets": t3 - t2}}


def _dipole_amplitude(img: np.ndarray, x: float, y: float, r: float, width: float) -> float:
    """Amplitude of the cos/sin(theta) component of *img* in the ring |rho - r| <= width around (x, y)."""
    ny, nx = img.shape
    y0, y1 = int(max(0, y - r - width - 1)), int(min(ny, y + r + width + 2))
    x0, x1 = int(max(0, x - r - width - 1)), int(min(nx, x + r + width + 2))
    yy, xx = np.mgrid[y0:y1, x0:x1]
    rho = np.hypot(xx - x, yy - y)
    sel = (np.abs(rho - r) <= width) & np.isfinite(img[y0:y1, x0:x1])
    if sel.sum() < 12:
        return float("nan")
    th = np.arctan2(yy - y, xx - x)[sel]
    A = np.c_[np.cos(th), np.sin(th), np.ones_like(th)]
    coef, *_ = np.linalg.lstsq(A, img[y0:y1, x0:x1][sel].astype(np.float64), rcond=None)
    return float(np.hypot(coef[0], coef[1]))


def dip_statistics(diff_raw: np.ndarray, diff_reg: np.ndarray, existing: np.ndarray, min_depth: float = 0.05,
                   width: float = 2.0, seed: int = 0) -> dict:
    """How strong the dips are at existing blobs, without and with registration.

    A sub-pixel shift turns each blob's rim into a dipole: one side positive, the other
    negative. For every existing blob deeper than *min_depth*, the amplitude of the
    ``cos/sin(theta)`` component of the difference in a ring of half-width *width* px around its
    rim is fitted (signed sums over ~100 pixels, so noise largely cancels). The same fit at
    random blob-free places gives the noise floor. Units: the difference image's (sky fraction).
    """
    strong = existing[existing[:, 2] >= min_depth] if len(existing) else existing
    strong = strong[(strong[:, 0] > 30) & (strong[:, 0] < 994) & (strong[:, 1] > 30) & (strong[:, 1] < 994)]
    raw = [_dipole_amplitude(diff_raw, x, y, r, width) for x, y, d, r in strong]
    reg = [_dipole_amplitude(diff_reg, x, y, r, width) for x, y, d, r in strong]
    rng = np.random.default_rng(seed)
    floor = []
    for _ in range(max(20, len(strong))):
        x, y = rng.uniform(60, 964, 2)
        if len(existing) and np.min(np.hypot(existing[:, 0] - x, existing[:, 1] - y) - existing[:, 3]) < 15:
            continue
        floor.append(_dipole_amplitude(diff_reg, x, y, 6.0, width))
    return {"n_blobs": int(len(strong)),
            "dipole_unregistered": float(np.nanmedian(raw)) if raw else float("nan"),
            "dipole_registered": float(np.nanmedian(reg)) if reg else float("nan"),
            "dipole_noise_floor": float(np.nanmedian(floor)) if floor else float("nan")}
