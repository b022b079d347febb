# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: blobhelpers
#     language: python
#     name: blobhelpers
# ---

# %% [markdown]
# # Stage 01 — from CSM-monitor frames to training subframes
#
# This stage reproduces the data preparation of WFC3 ISR 2021-08 (Dauphin, Medina, McCullough):
#
# 1. a campaign of daily CSM-monitor blob frames: by default a physically grounded **simulation**
#    with ground truth (`blobhelpers.blob.sim.campaign`), or your own FITS frames (`simulate.source`);
# 2. for every frame with enough history, the **blob difference image**: median of the previous 30
#    frames minus the frame (blobs positive), each frame first divided by its smooth illumination,
#    with an optional sub-pixel registration that removes most of the mis-registration dips;
# 3. the ISR **preprocessing**: clip at 0.5 x zscale limits, z-score, NaN and border to the median;
# 4. **subframes** (256x256): training from the left 75 % and validation from the right 25 % of the
#    training days, a held-out test set from later days; blobs from 15 real cutouts and from
#    parametric disc/ring profiles are **added in difference-image units before the scaling**
#    (5 other real cutouts are reserved for the test set).
#
# Figures follow the ISR's Figures 2-6, plus a real-vs-simulated gallery and dip examples so the
# simulator's realism can be judged. All logic is in the `blobhelpers` package; this notebook calls it.

# %% tags=["parameters"]
from blobhelpers.core.config import stage_params

# The params.yaml sections this stage reads: `dvc repro` injects them, a run by hand reads them from
# params.yaml, so both see the same values. Only the pipeline writes the stage's outputs (a run by hand
# writes them under scratch/, see blobhelpers.core.scratch).
_p = stage_params("base", "simulate", "difference", "dataset")
base = _p["base"]
simulate = _p["simulate"]
difference = _p["difference"]
dataset = _p["dataset"]
pipeline_run = False  # True when the pipeline runner executes this notebook

# %%
# %matplotlib inline
import time

import matplotlib.pyplot as plt
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from IPython.display import Markdown, display  # noqa: E402

from blobhelpers.blob.data.datastage import (diff_infos, dip_statistics, load_dataset, read_diff_table,  # noqa: E402
                                             run_data_stage)
from blobhelpers.blob.evaluate import figures as plotting  # noqa: E402
from blobhelpers.blob.io.fitsio import read_frame  # noqa: E402
from blobhelpers.blob.preprocess.difference import blob_difference, normalize  # noqa: E402
from blobhelpers.blob.preprocess.scaling import apply_scaling, fill_bad  # noqa: E402
from blobhelpers.blob.sections import DatasetConfig, DifferenceConfig  # noqa: E402
from blobhelpers.blob.stages.data_prep import CARD
from blobhelpers.core.config import ProjectPaths  # noqa: E402
from blobhelpers.core.report import metrics_link, show_header, show_verdict, timing, write_metrics

params = {"base": base, "simulate": simulate, "difference": difference, "dataset": dataset}
paths = ProjectPaths.for_stage("01_data_prep", pipeline_run)
PLOTS = paths.plots / "01_data_prep"
show_header("Stage 01 — data preparation", params, ["base", "simulate", "difference", "dataset"])

# %% [markdown]
# ## Run the stage
# The same function runs behind `blobhelpers prepare` on the command line.

# %%
t0 = time.perf_counter()
result = run_data_stage(params)
wall_stage = time.perf_counter() - t0
table = read_diff_table(paths.diffs)
simulated = result["source"] == "simulated"
history = DifferenceConfig.from_dict(difference).history
display(Markdown(
    f"Source: **{result['source']}**; {result['n_diffs']} difference images "
    f"({(table['split'] == 'train').sum()} train days, {(table['split'] == 'test').sum()} test days)."))
for part in ("campaign", "differences", "datasets"):
    timing(f"data stage: {part}", result["seconds"][part])
display(table[["file", "date_obs", "split", "shift_x", "shift_y", "true_dx", "true_dy", "resid_shift",
               "n_natural", "lo", "hi", "std"]])

# %% [markdown]
# ## The campaign
# Sky level, blob-pattern shift (truth, and as measured by the registration), the new blobs by day
# and depth, and the existing population.

# %%
if simulated:
    catalog = pd.read_csv(paths.campaign / "catalog.csv", keep_default_na=False)
    frames_truth = pd.read_csv(paths.campaign / "frames.csv")
    fig = plotting.campaign_overview(frames_truth, catalog, table)
    plotting.save_figure(fig, PLOTS / "campaign.png")
    plt.show()
    new = catalog[catalog["appear_index"] >= 0]
    display(Markdown(f"{(catalog['appear_index'] < 0).sum()} existing blobs; {len(new)} new blobs "
                     f"({', '.join(f'{k}: {v}' for k, v in new['category'].value_counts().items())}). "
                     f"Rings: {(catalog['profile'] == 'ring').mean():.0%}. Median depth "
                     f"{catalog['depth'].median():.3f}, max {catalog['depth'].max():.3f}."))
else:
    display(Markdown("Real frames: no ground truth to show."))

# %% [markdown]
# ## ISR Figure 2: a frame and its blob difference image
# Left: the newest frame of the chosen day divided by its smooth illumination, existing blobs circled (cyan). Right: its
# difference image (median of the previous frames minus this frame, blobs positive) with the new
# blobs visible in it circled in green; existing blobs dotted.

# %%
infos = diff_infos(paths.diffs, paths.campaign if simulated else None, None, history)
pick = int(np.argmax([len(d.natural) for d in infos])) if simulated else len(infos) - 1
info = infos[pick]
row = table.iloc[pick]
diff = read_frame(info.path).data
cur_path = (paths.campaign / "frames" if simulated else None)
frame_file = read_frame(info.path).header.get("CURFILE", "")
frame = read_frame(cur_path / frame_file).data if simulated else None
blob_map = normalize(frame) if frame is not None else diff
fig = plotting.frame_and_difference(blob_map, diff, info.existing, info.natural,
                                    f"frame {frame_file} / its illumination (blob map)", f"difference {row['file']}")
plotting.save_figure(fig, PLOTS / "fig2_frame_difference.png")
plt.show()

# %% [markdown]
# ## ISR Figures 3-4: pixel distribution, clip thresholds, and after scaling

# %%
sp = info.scale
scaled = apply_scaling(fill_bad(diff, DifferenceConfig.from_dict(difference).border_rule)[0], sp)
fig = plotting.pixel_distributions(diff, sp, scaled)
plotting.save_figure(fig, PLOTS / "fig3_4_pixel_distributions.png")
plt.show()
z_lo = np.array([(s.lo - s.mean) / s.std for s in (d.scale for d in infos)])
z_hi = np.array([(s.hi - s.mean) / s.std for s in (d.scale for d in infos)])
display(Markdown(
    f"Clip limits in z units over all difference images: low median {np.median(z_lo):.2f} "
    f"(range {z_lo.min():.2f}..{z_lo.max():.2f}), high median {np.median(z_hi):.2f} "
    f"(range {z_hi.min():.2f}..{z_hi.max():.2f}). The released real cutouts saturate at -3.04 / +2.96: "
    "a Gaussian background would clip near +-1.9, so the heavy tails of the simulation matter."))

# %% [markdown]
# ## ISR Figures 5-6: subframes before and after blob injection
# Training subframes (no augmentation shown). Injected blobs circled; the scale is -3..3 z units.

# %%
cache = {}
train = load_dataset("train", paths.datasets, paths.diffs, paths.cutouts, DatasetConfig.from_dict(dataset).noise_sigma, cache)
val = load_dataset("val", paths.datasets, paths.diffs, paths.cutouts, DatasetConfig.from_dict(dataset).noise_sigma, cache)
test = load_dataset("test", paths.datasets, paths.diffs, paths.cutouts, DatasetConfig.from_dict(dataset).noise_sigma, cache)
inj_crops = np.unique(train.recipe.inj["crop"])[:4]
after, _ = train.batch(inj_crops)
before = np.stack([apply_scaling(train.images[train.recipe.crops["diff_index"][i]][
    train.recipe.crops["y0"][i]:train.recipe.crops["y0"][i] + 256,
    train.recipe.crops["x0"][i]:train.recipe.crops["x0"][i] + 256], train.recipe.scales[train.recipe.crops["diff_index"][i]])
    for i in inj_crops])
inj_list = [np.c_[train.recipe.inj["x"][train.injections_of(i)], train.recipe.inj["y"][train.injections_of(i)],
                  train.recipe.inj["radius"][train.injections_of(i)]] for i in inj_crops]
fig = plotting.injection_before_after(before, after, inj_list)
plotting.save_figure(fig, PLOTS / "fig5_6_injection.png")
plt.show()

# %% [markdown]
# ## Real and simulated blobs side by side
# Top: the 20 real cutouts shipped with the project (ISR processing). Bottom: new blobs of the
# simulated campaign cut from the scaled difference images, and parametric and real injections as
# the training set makes them. Same display scale.

# %%
stamps_raw = {}
with np.load(paths.cutouts, allow_pickle=False) as z:
    for k in z.files:
        stamps_raw[k] = z[k]
sim_gallery = []
for d in infos:
    if not len(d.natural):
        continue
    img = apply_scaling(fill_bad(read_frame(d.path).data)[0], d.scale)
    for x, y, r, depth, *_ in sorted(d.natural.tolist(), key=lambda b: -b[3]):
        ix, iy = int(round(x)), int(round(y))
        if 12 <= ix < 1012 and 12 <= iy < 1012:
            sim_gallery.append((img[iy - 12:iy + 13, ix - 12:ix + 13], f"sim d={depth:.3f} r={r:.1f}"))
    if len(sim_gallery) >= 10:
        break
for i in np.unique(train.recipe.inj["crop"])[4:]:
    k = train.injections_of(i)[0]
    x, y = train.recipe.inj["x"][k], train.recipe.inj["y"][k]
    if not (12 <= x < 243 and 12 <= y < 243):
        continue
    img, _ = train.batch([i])
    src = "real" if train.recipe.inj["source"][k] else "param"
    sim_gallery.append((img[0][int(y) - 12:int(y) + 13, int(x) - 12:int(x) + 13],
                        f"inj {src} d={train.recipe.inj['depth'][k]:.3f}"))
    if len(sim_gallery) >= 20:
        break
fig = plotting.real_vs_simulated_gallery(stamps_raw, sim_gallery[:20])
plotting.save_figure(fig, PLOTS / "gallery_real_vs_simulated.png")
plt.show()

# %% [markdown]
# ## Dips: mis-registration residuals and the registration
# For the difference image with the largest true mis-registration, the unregistered and registered
# differences around the strongest existing blobs. The dipole amplitude at the blob rims compares them.

# %%
dip_stats = {}
if simulated and "raw_shift" in table and (table["raw_shift"] != "").any():
    k = int(np.argmax(table["raw_shift"].replace("", np.nan).astype(float)))
    d = infos[k]
    fi = int(table.iloc[k]["frame_index"])
    files = sorted((paths.campaign / "frames").glob("*.fits"))
    frames_all = [read_frame(f) for f in files]
    frames_all.sort(key=lambda f: f.time)
    hist = [f.data for f in frames_all[max(0, fi - history):fi]]
    raw = blob_difference(hist, frames_all[fi].data, register=False)
    reg = read_frame(d.path).data
    dip_stats = dip_statistics(raw.data, reg, d.existing)
    dip_stats.update(true_shift_px=float(table.iloc[k]["raw_shift"]), residual_shift_px=float(table.iloc[k]["resid_shift"]))
    strongest = d.existing[np.argsort(d.existing[:, 2])[::-1][:6]]
    pairs, titles = [], []
    for x, y, depth, r in strongest:
        ix, iy = int(round(x)), int(round(y))
        if not (20 <= ix < 1004 and 20 <= iy < 1004):
            continue
        cut = (slice(iy - 20, iy + 21), slice(ix - 20, ix + 21))
        pairs.append((apply_scaling(raw.data[cut], d.scale), apply_scaling(reg[cut], d.scale)))
        titles.append(f"depth {depth:.2f}, r {r:.1f}")
    fig = plotting.dip_examples(pairs, titles)
    plotting.save_figure(fig, PLOTS / "dips.png")
    plt.show()
    display(Markdown(
        f"True shift of that day relative to the stack: {dip_stats['true_shift_px']:.3f} px; left after "
        f"registration: {dip_stats['residual_shift_px']:.3f} px. Median dipole amplitude at the rims of the "
        f"{dip_stats['n_blobs']} blobs deeper than 5 %: **{dip_stats['dipole_unregistered']:.4f}** unregistered, "
        f"**{dip_stats['dipole_registered']:.4f}** registered; the same fit where there is no blob gives "
        f"{dip_stats['dipole_noise_floor']:.4f} (noise floor). Units: fraction of the sky."))
    resid = table["resid_shift"].replace("", np.nan).astype(float)
    rawsh = table["raw_shift"].replace("", np.nan).astype(float)
    display(Markdown(f"Over all {len(table)} difference images: median true shift {rawsh.median():.3f} px, "
                     f"median residual after registration {resid.median():.3f} px (max {resid.max():.3f})."))

# %% [markdown]
# ## No shortcuts: brightest pixels of positive and negative subframes
# Injected blobs are added before the clip, so they saturate where the background's outliers do.
# If the injection pasted peaks above the clip, the brightest pixel alone would separate the
# classes (AUC ~ 1).

# %%
from sklearn.metrics import roc_auc_score  # noqa: E402

Xv, yv = val.arrays()
mx = Xv.reshape(len(Xv), -1).max(axis=1)
auc_max = float(roc_auc_score(yv, mx)) if 0 < yv.sum() < len(yv) else float("nan")
fig = plotting.max_pixel_overlap(mx[yv == 1], mx[yv == 0])
plotting.save_figure(fig, PLOTS / "max_pixel_overlap.png")
plt.show()
display(Markdown(f"Brightest-pixel AUC on the validation set: **{auc_max:.3f}** (0.5 = no information)."))

# %% [markdown]
# ## The datasets

# %%
def summary(ds):
    c = ds.recipe.crops
    lab = c["label"].astype(bool)
    return {"subframes": len(ds), "positive": int(lab.sum()), "positive_fraction": round(float(lab.mean()), 3),
            "with_natural_new_blob": int((c["n_natural"] > 0).sum()), "injected_blobs": int(c["n_injected"].sum()),
            "edge_cases": int(c["edge"].sum()), "days": len(ds.recipe.diff_files),
            "real_cutouts_used": len(set(ds.recipe.inj["cutout"][ds.recipe.inj["source"] == 1].tolist()))}


summ = {name: summary(ds) for name, ds in (("train", train), ("val", val), ("test", test))}
display(pd.DataFrame(summ).T.rename_axis("split"))

rng = np.random.default_rng(0)
n_rate = min(len(train), 512)
train.batch(np.arange(n_rate), rng)  # warm up
t = time.perf_counter()
train.batch(np.arange(n_rate), rng)
rate = n_rate / (time.perf_counter() - t)
timing(f"materialising {n_rate} augmented training subframes ({rate:.0f} per second; "
       "benchmarks/bench_subframes.py gives medians)", n_rate / rate)

# %%
metrics = {
    "source": result["source"],
    "n_difference_images": int(result["n_diffs"]),
    "n_train": summ["train"]["subframes"], "n_val": summ["val"]["subframes"], "n_test": summ["test"]["subframes"],
    "positive_fraction_train": summ["train"]["positive_fraction"],
    "positive_fraction_test": summ["test"]["positive_fraction"],
    "clip_z_low_median": float(np.median(z_lo)), "clip_z_high_median": float(np.median(z_hi)),
    "max_pixel_auc_val": auc_max,
    "subframes_per_s_notebook": float(rate),
    "stage_seconds": float(wall_stage),
    **{f"dip_{k}": v for k, v in dip_stats.items()},
}
write_metrics(CARD, metrics)
metrics_link("01_data_prep")

# %%
show_verdict(CARD)  # the verdict box, read back from the metrics files (the HTML report shows it first)
