# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: blobhelpers (.venv)
#     language: python
#     name: blobhelpers
# ---

# %% [markdown]
# # Stage 05 — cross-simulator evaluation: does detection hold on data it was not built on?
#
# Every other blob number of this project is measured on data from the project's own simulator
# (an **in-distribution** result). This stage scores `classify` and the daily monitor on data
# written by `blobhelpers.blob.crosssim`, a simulator written independently from a physics
# specification (`docs/crosssim_spec.md`) by someone who had not read the project's simulator:
# another noise model (per-pixel read noise, correlated row noise, Student-t unstable pixels),
# other units (normalised, e-, e-/s, DN with a pedestal), residual sky gradients, sub-pixel
# mis-registration up to 0.6 px, persistence, cosmic rays, NaN patterns, 1014 and 1024 frames
# with a biased reference border, its own blob profiles, and the real cutout shapes reserved for
# the test set. **Nothing here is used for training, thresholds or model selection**: the
# thresholds are those chosen on the project's own validation set and development campaign.
#
# Beside every number: the **matched-filter baseline** (the same candidates and dipole /
# transient tests, no CNN). Then the **nuisance stress matrix**: one nuisance at a time, the
# blob-free false-positive rate and the detection rate of blobs of fixed S/N as it grows.

# %% tags=["parameters"]
from blobhelpers.core.config import stage_params

# The params.yaml sections this stage reads: `dvc repro` injects them, a run by hand reads them from
# params.yaml, so both see the same values. Only the pipeline writes the stage's outputs (a run by hand
# writes them under scratch/, see blobhelpers.core.scratch).
_p = stage_params("base", "crosssim", "monitor", "difference", "dataset")
base = _p["base"]
crosssim = _p["crosssim"]
monitor = _p["monitor"]
difference = _p["difference"]
dataset = _p["dataset"]
pipeline_run = False  # True when the pipeline runner executes this notebook

# %%
# %matplotlib inline
import dataclasses
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display
from tqdm.auto import tqdm

from blobhelpers.blob import crosssim as xsim
from blobhelpers.blob.data.dataset import AMBIGUOUS_DEPTH, VISIBLE_DEPTH, split_cutouts
from blobhelpers.blob.data.datastage import diff_infos
from blobhelpers.blob.detect.monitor import MonitorConfig, apply_tuned
from blobhelpers.blob.detect.monitor.tuning import tuned_thresholds_path
from blobhelpers.blob.evaluate import crosseval
from blobhelpers.blob.evaluate.figures import save_figure
from blobhelpers.blob.io.fitsio import read_frame
from blobhelpers.blob.learn.cnn import load_model, load_preprocessing
from blobhelpers.blob.learn.registry import deployed_info, deployed_path
from blobhelpers.blob.sections import CrossSimConfig, DatasetConfig, DifferenceConfig, StressConfig
from blobhelpers.blob.sim.injection import load_real_stamps
from blobhelpers.blob.stages.crosssim import CARD
from blobhelpers.core.config import ProjectPaths
from blobhelpers.core.parallel import ordered_map
from blobhelpers.core.paths import write_json, write_text
from blobhelpers.core.report import show_header, show_verdict, timing, write_metrics
from blobhelpers.core.stats import format_rate

params = {"base": base, "crosssim": crosssim, "monitor": monitor}
paths = ProjectPaths.for_stage("05_crosssim", pipeline_run)
PLOTS = paths.plots / "05_crosssim"
PLOTS.mkdir(parents=True, exist_ok=True)
show_header("Stage 05 — cross-simulator evaluation", params, ["base", "crosssim"])

MODEL = deployed_path(paths.root / "models")
best_info = deployed_info(paths.root / "models")
prep = load_preprocessing(MODEL)
cfg = MonitorConfig.from_dict(monitor)
cfg.threshold = float(best_info["val_threshold"])
applied = apply_tuned(cfg, tuned_thresholds_path(paths.root), MODEL)
det = cfg.detection()
model = load_model(MODEL)
display(Markdown(
    f"Model `{best_info['name']}` (input: **{prep['representation']}** representation). Operating point, "
    f"chosen on the project's own simulator only: CNN threshold {cfg.threshold:.3f}, matched-filter "
    f"significance >= {cfg.snr_min:g} sigma, bright-transient veto {cfg.neg_veto:g} sigma"
    + (f" (tuned on the development campaign: {', '.join(applied)})" if applied else " (untuned defaults)")
    + f"; dipole test: a negative lobe deeper than {det.dipole_ratio:g} x the peak and {det.dipole_min:g} sigma."))

# held-out real shapes: the cutouts the data stage reserved for the test set (never trained on)
stamps = load_real_stamps(paths.cutouts)
n_held = DatasetConfig.from_dict(dataset).test_cutouts
held_out = split_cutouts(stamps, n_held)[1]  # the data stage's rule
templates = [np.asarray(stamps[n], float) for n in held_out] or None
display(Markdown(f"Real cutout shapes used as templates of some cross-simulator blobs: {len(templates or [])} "
                 f"(the ones reserved for the test set: {', '.join(held_out) or 'none found'})."))

# %% [markdown]
# ## classify on cross-simulator difference images

# %%
xs = CrossSimConfig.from_dict(crosssim)
st = StressConfig.from_dict(xs.stress)
seed = xs.seed
XDIR = paths.root / "build" / "crosssim"
t0 = time.perf_counter()
truth = xsim.write_difference_set(XDIR, xs.n_quiet_diff, xs.n_new_diff, seed,
                                  templates=templates, n_history=xs.n_history)
t_gen = time.perf_counter() - t0
rows, tiles, blobs = [], [], []
t0 = time.perf_counter()


def score_case(c):
    img = read_frame(XDIR / "diff" / c["file"]).data
    return crosseval.score_difference(img, c["new_blobs"], model, cfg.threshold, prep, det,
                                      c["case"], c["nuisance_regime"])


# ordered_map: two images at a time in threads, results in the order of the loop (blobhelpers.core.parallel)
for c, (r, t, b) in zip(truth["cases"], tqdm(ordered_map(score_case, truth["cases"]), total=len(truth["cases"]),
                                             desc="classify cross-sim", mininterval=5)):
    rows.append({**r, "units": c["units"], "size": c["size"]})
    tiles += t
    blobs += b
t_cls = time.perf_counter() - t0
x_img, x_tiles, x_blobs = pd.DataFrame(rows), pd.DataFrame(tiles), pd.DataFrame(blobs)
write_text(PLOTS / "crosssim_images.csv", x_img.to_csv(index=False))
write_text(PLOTS / "crosssim_tiles.csv", x_tiles.to_csv(index=False))
write_text(PLOTS / "crosssim_blobs.csv", x_blobs.to_csv(index=False))
summary = crosseval.summarise_images(rows, tiles, blobs, "xsim")
display(Markdown(f"{len(rows)} images ({int((~x_img.has_any_blob).sum())} blob-free)."))
timing("cross-sim difference images generated", t_gen)
timing(f"cross-sim difference images classified ({len(rows)})", t_cls)

# %% [markdown]
# ## The same on the project's own test days (in-distribution)

# %%
infos = diff_infos(paths.diffs, paths.campaign, "test", DifferenceConfig.from_dict(difference).history)
first_test = min(d.frame_index for d in infos)
orows, otiles, oblobs = [], [], []


def score_own(kd):
    k, d = kd
    img = read_frame(d.path).data
    fin = img[np.isfinite(img)]
    noise = float(np.median(np.abs(fin - np.median(fin)))) * 1.4826
    # new blobs of the test days: targets when visible (residual depth >= VISIBLE_DEPTH, the project's positive);
    # blobs that appeared in the training days are neither targets nor errors (ambiguous tiles)
    new = [{"x": b[0], "y": b[1], "radius": b[2], "depth": b[3], "snr": b[3] / noise,
            "target": bool(b[4] >= first_test and b[3] >= VISIBLE_DEPTH)} for b in d.natural if b[3] >= AMBIGUOUS_DEPTH]
    return crosseval.score_difference(img, new, model, cfg.threshold, prep, det, f"own_{k:02d}", "own")


for r, t, b in tqdm(ordered_map(score_own, enumerate(infos)), total=len(infos), desc="classify own test days",
                    mininterval=5):
    orows.append(r)
    otiles += t
    oblobs += b
summary.update(crosseval.summarise_images(orows, otiles, oblobs, "own"))
o_img = pd.DataFrame(orows)
display(Markdown(f"{len(orows)} test-day difference images of the project's own campaign classified "
                 f"({len(otiles)} tiles, {sum(bool(b.get('target')) for b in oblobs)} visible new blobs as targets); "
                 "the side-by-side table below compares them with the cross-simulator's."))


# %% [markdown]
# ## How hard are the new blobs? S/N per pixel of the targets of both sets
# S/N = peak fractional depth / per-pixel noise of the difference image. The project's own campaign
# is dominated by faint new blobs (most below S/N 3 per pixel; their matched-filter significance
# comes from the many pixels they cover), the cross-simulator's by S/N 3-12 ones (its specification):
# read the two columns of the table below with that in mind.

# %%
o_blobs = pd.DataFrame(oblobs)
fig, ax = plt.subplots(figsize=(7, 3.5))
bins = np.linspace(0, 14, 29)
for df_, lab in ((o_blobs[o_blobs.target] if len(o_blobs) else o_blobs, "own test days (visible new blobs)"),
                 (x_blobs, "cross-simulator (all new blobs)")):
    if len(df_):
        ax.hist(np.clip(df_.snr, 0, 14), bins, histtype="step", lw=2, label=f"{lab}, n={len(df_)}")
ax.axvline(crosseval.SNR_TARGET, color="gray", ls=":")
ax.set(xlabel="S/N per pixel (peak depth / pixel noise)", ylabel="new blobs")
ax.legend(fontsize=8)
save_figure(fig, PLOTS / "snr_distribution.png")
plt.show()
summary["own_target_snr_median"] = float(o_blobs[o_blobs.target].snr.median()) if len(o_blobs) else float("nan")
summary["xsim_target_snr_median"] = float(x_blobs[x_blobs.target].snr.median()) if len(x_blobs) else float("nan")

# %% [markdown]
# ## Side by side: own test days vs cross-simulator, CNN vs matched filter
# Rates with 95 % Wilson intervals and counts. Targets of the robust-detection issue (on the
# cross-simulator set): tile TPR >= 0.95 at tile FPR <= 0.01; image false-positive rate <= 0.05;
# at least 95 % of new blobs with S/N >= 3 localised within max(6 px, 1.5 r).

# %%
fmt = format_rate


table = []
for ds, label in (("own", "own test days (in-distribution; targets: new blobs deeper than 1 %)"),
                  ("xsim", "cross-simulator (targets: S/N >= 3)")):
    for who, name in (("cnn", f"CNN ({best_info['name']}, {prep['representation']})"), ("mf", "matched filter")):
        table.append({"data": label, "detector": name,
                      "tile TPR": fmt(summary[f"{ds}_{who}_tile_tpr"]), "tile FPR": fmt(summary[f"{ds}_{who}_tile_fpr"]),
                      "image FPR (blob-free)": fmt(summary[f"{ds}_{who}_image_fpr"]),
                      "targets localised": fmt(summary[f"{ds}_{who}_localised"]),
                      "tile AUC": round(summary[f"{ds}_{who}_tile_auc"], 3)})
side = pd.DataFrame(table)
display(side)
write_text(PLOTS / "side_by_side.csv", side.to_csv(index=False))
display(Markdown(
    f"Shortcut AUCs (tile mean / brightest pixel alone, in robust-noise units): own "
    f"{summary['own_shortcut_auc_tile_mean']:.2f} / {summary['own_shortcut_auc_tile_max']:.2f}, cross-simulator "
    f"{summary['xsim_shortcut_auc_tile_mean']:.2f} / {summary['xsim_shortcut_auc_tile_max']:.2f}. The ISR-style tile "
    f"CNN (whole 256x256 tile through the same model) has tile AUC {summary['xsim_tile_cnn_auc']:.3f} on the "
    f"cross-simulator set against {summary['xsim_cnn_tile_auc']:.3f} for the candidate-centred verdict."))

# %%
fig, axs = plt.subplots(1, 2, figsize=(12, 4))
for ax, (df, title) in zip(axs, ((x_blobs, "cross-simulator new blobs"), (pd.DataFrame(oblobs), "own test-day new blobs"))):
    if len(df) and "snr" in df:
        d = df[df.snr > 0]
        bins = np.array([0, 1.5, 3, 4, 6, 8, 12, 50])
        idx = np.digitize(d.snr, bins) - 1
        cnn = [d.localised[idx == i].mean() if (idx == i).any() else np.nan for i in range(len(bins) - 1)]
        mf = [d.mf_localised[idx == i].mean() if (idx == i).any() else np.nan for i in range(len(bins) - 1)]
        x = np.arange(len(bins) - 1)
        ax.bar(x - 0.2, cnn, 0.4, label="CNN verdict")
        ax.bar(x + 0.2, mf, 0.4, label="matched filter")
        ax.set_xticks(x, [f"{a:g}-{b:g}" for a, b in zip(bins[:-1], bins[1:])])
        ax.set(xlabel="S/N (peak depth / pixel noise)", ylabel="fraction localised", ylim=(0, 1.05), title=title)
        ax.legend()
save_figure(fig, PLOTS / "localised_by_snr.png")
plt.show()

# %% [markdown]
# ## The daily monitor on cross-simulator 31-frame series
# Each series (30 history frames + the newest, DATE-OBS only, units and frame sizes mixed) is
# written to a temporary folder, the monitor runs on its newest frame with no known-blob
# catalog, and the frames are removed.

# %%
srows, sblobs = [], []
t0 = time.perf_counter()


def monitor_series(case, name="", regime=""):
    frames, headers, tr = case
    mcfg = dataclasses.replace(cfg, history=len(frames) - 1, min_history=min(cfg.min_history, len(frames) - 1),
                               saliency=False)
    return crosseval.score_series(frames, headers, tr, model, mcfg, name, regime, workdir=paths.root / "build",
                                  preprocessing=prep)


# the series are drawn one after the other in this thread (same random numbers as a plain loop) and
# monitored two at a time
for r, b in tqdm(ordered_map(lambda c: monitor_series(c[3:], c[0], c[2]),
                             xsim.iter_series_cases(xs.n_quiet_series, xs.n_new_series, seed,
                                                    templates=templates, n_history=xs.n_history)),
                 total=xs.n_quiet_series + xs.n_new_series, desc="monitor cross-sim", mininterval=5):
    srows.append(r)
    sblobs += b
t_mon = time.perf_counter() - t0
summary.update(crosseval.summarise_series(srows, sblobs, "xsim"))
s_df = pd.DataFrame(srows)
write_text(PLOTS / "crosssim_series.csv", s_df.to_csv(index=False))
write_text(PLOTS / "crosssim_series_blobs.csv", pd.DataFrame(sblobs).to_csv(index=False))
display(pd.DataFrame([
    {"detector": "monitor (CNN verified)", "new blobs S/N >= 3 found on day 1": fmt(summary["xsim_monitor_found"]),
     "blob-free series with an alert": fmt(summary["xsim_monitor_false_alarm_series"])},
    {"detector": "matched filter (same candidates and tests)", "new blobs S/N >= 3 found on day 1": fmt(summary["xsim_mf_found"]),
     "blob-free series with an alert": fmt(summary["xsim_mf_false_alarm_series"])}]))
timing(f"cross-sim series generated, written and monitored ({len(srows)})", t_mon)
display(Markdown(f"{len(srows)} series. Targets: >= 95 % "
                 "of new blobs with S/N >= 3 found on their first day; <= 2 false-alarm days per 100 quiet days."))
if len(s_df):
    display(s_df.groupby("units")[["alert", "mf_alert"]].mean().round(2))

# %% [markdown]
# ## The daily job over several days
# The independent cross-simulator's multi-day series: 30 history frames, then `n_days` monitored
# frames one day apart. A new blob appears on the first monitored day and stays. The monitor runs
# once per day, in date order, as the daily job does: a blob alerted once is not alerted again.
# It runs twice: with its day windows (it also searches the means of the last k one-day
# differences, k in `monitor.accumulate`) and, beside it, as the one-day detector
# (`accumulate = []`). Blob-free series count false-alarm days. The jittered series (every frame
# shifted 0.15-0.5 px, 3-5 existing blobs 25-30 % deep, no new blob) are counted apart: any alert
# there is a false alarm. Evaluation only: nothing is tuned on these numbers.

# %%
n_days = xs.n_days
mdays, mblobs = [], []
t0 = time.perf_counter()


def monitor_days(case):
    name, kind, regime, frames, headers, tr = case
    mcfg = dataclasses.replace(cfg, history=tr["n_history"], min_history=min(cfg.min_history, tr["n_history"]),
                               saliency=False)
    return crosseval.score_series_days(frames, headers, tr, model, mcfg, name, regime, kind,
                                       workdir=paths.root / "build", preprocessing=prep,
                                       classify=det if kind == "jitter_deep" else None)


n_multiday = xs.n_quiet_multiday + xs.n_new_multiday + xs.n_jitter_deep
for d_, b_ in tqdm(ordered_map(monitor_days, xsim.iter_series_cases(
        xs.n_quiet_multiday, xs.n_new_multiday, seed, templates=templates, weak_fraction=xs.weak_fraction_multiday,
        n_history=xs.n_history, n_days=n_days, n_jitter_deep=xs.n_jitter_deep, weak_snr=xs.weak_snr_multiday)),
        total=n_multiday, desc="daily job over several days", mininterval=5):
    mdays += d_
    mblobs += b_
t_days = time.perf_counter() - t0
md = crosseval.summarise_days(mdays, mblobs, n_days, "xsim")
summary.update(md)
md_days, md_blobs = pd.DataFrame(mdays), pd.DataFrame(mblobs)
if len(md_blobs):  # whole days (missing: never alerted)
    md_blobs = md_blobs.astype({"first_day": "Int64", "k": "Int64", "latency_days": "Int64"})
write_text(PLOTS / "multiday_days.csv", md_days.to_csv(index=False))
write_text(PLOTS / "multiday_blobs.csv", md_blobs.to_csv(index=False))


def per_100(q):
    r = md[f"{q}_fa_days"]
    if not r["n"]:
        return "-"
    return (f"{md[f'{q}_fa_days_per_100']:.1f} (95 % upper bound {md[f'{q}_fa_days_per_100_ub95']:.1f}; "
            f"{r['k']}/{r['n']} days)")


labels = {"windows": f"with day windows (k = {', '.join(map(str, cfg.accumulate)) or 'none'})",
          "one_day": "one-day detector"}
md_cols = {}
for who, sfx in (("windows", ""), ("one_day", "_oneday")):
    p, col = f"xsim_multiday{sfx}", {}
    for n in range(1, n_days + 1):
        col[f"new blobs alerted within {n} day{'s' if n > 1 else ''}"] = fmt(md[f"{p}_within_{n}"])
    for n in range(1, n_days + 1):
        col[f"... of them S/N >= 3, within {n} day{'s' if n > 1 else ''}"] = fmt(md[f"{p}_target_within_{n}"])
    lat = md[f"{p}_latency_mean_days"]
    col["mean latency of the alerted (days after appearance)"] = "-" if lat != lat else f"{lat:.2f}"
    col["false-alarm days per 100 blob-free days"] = per_100(p)
    col["jittered deep-blob series: false-alarm days per 100 days"] = per_100(f"xsim_jitter_deep{sfx}")
    md_cols[labels[who]] = col
md_table = pd.DataFrame(md_cols)
display(md_table)
if "xsim_jitter_deep_classify_flagged" in md:
    cf = md["xsim_jitter_deep_classify_flagged"]
    display(Markdown(
        f"`classify` on the jittered deep-blob series' one-day difference images (the monitor's, each judged "
        f"alone as a user's image would be: no history, no day windows): **{cf['k']}/{cf['n']} flagged = "
        f"{cf['rate']:.3f}** (95 % interval {cf['lo']:.3f}-{cf['hi']:.3f}; target <= 0.03)."))
write_text(PLOTS / "multiday_summary.csv", md_table.to_csv())
if len(md_blobs):
    first = md_blobs.assign(first=md_blobs.first_day.map(lambda v: "never" if pd.isna(v) else f"day {int(v)}"),
                            band=np.where(md_blobs.snr >= crosseval.SNR_TARGET, "S/N >= 3", "S/N < 3"))
    display(pd.crosstab([first.detector.map(labels), first.band], first.first, margins=True, margins_name="all")
            .rename_axis(index=["detector", "new blobs"], columns="first alerted"))
n_md_blobs = int((md_blobs.detector == "windows").sum()) if len(md_blobs) else 0
display(Markdown(
    f"{n_multiday} series of {xs.n_history} + {n_days} frames: {xs.n_quiet_multiday} blob-free, {xs.n_new_multiday} "
    f"with new blobs ({n_md_blobs} blobs, a share {xs.weak_fraction_multiday:g} drawn faint, at S/N "
    f"{xs.weak_snr_multiday[0]:g}-{xs.weak_snr_multiday[1]:g} per pixel, the others at 3-12), {xs.n_jitter_deep} jittered with deep existing blobs. The intervals are wide at these counts; the days of "
    "one series are not independent. Per-day and per-blob rows: `multiday_days.csv`, `multiday_blobs.csv`."))
timing(f"daily job over {n_days} days on {n_multiday} cross-sim series (both detectors)", t_days)

# %% [markdown]
# ## Nuisance stress matrix
# One nuisance at a time, everything else at the cross-simulator's typical defaults: the fraction
# of blob-free images with an alert, and the fraction of images holding one new blob of fixed
# S/N in which it is localised, for the CNN verdict and the matched filter.

# %%
levels = {k: list(v) for k, v in st.levels.items()}
srow = []
t0 = time.perf_counter()
n_cases = sum(len(v) for v in levels.values()) * 2 * st.n_per


def score_stress(case):
    name, level, has, img, tr = case
    return name, level, has, crosseval.score_difference(img, tr["new_blobs"], model, cfg.threshold, prep, det)


for name, level, has, (r, _, b) in tqdm(ordered_map(score_stress, crosseval.stress_cases(levels, st.n_per, st.snr,
                                                                                         seed, templates)),
                                        total=n_cases, desc="stress", mininterval=5):
    srow.append({"nuisance": name, "level": level, "has_blob": has, "cnn_alert": r["new_blob"], "mf_alert": r["mf_new_blob"],
                 "cnn_found": bool(b and b[0]["localised"]), "mf_found": bool(b and b[0]["mf_localised"])})
stress = pd.DataFrame(srow)
# the monitor under mis-registration (and others): series, fewer cases
mlevels = {k: list(v) for k, v in st.monitor_levels.items()}
mrow = []


def monitor_stress_cases():
    for name, lv in mlevels.items():
        for li, level in enumerate(lv):
            nu = xsim.Nuisance.named(name, level)
            for k in range(2 * st.monitor_n_per):
                has = k >= st.monitor_n_per
                rng = np.random.default_rng([seed, 7, li, k, sum(map(ord, name))])
                blobs_ = [xsim.sample_new_blob(rng, snr=st.snr, nuisance=nu, templates=templates)] if has else []
                yield name, level, has, xsim.make_series(rng, nu, blobs_, templates=templates, n_history=xs.n_history)


for name, level, has, (r, b) in ordered_map(lambda c: (*c[:3], monitor_series(c[3])), monitor_stress_cases()):
    mrow.append({"nuisance": name, "level": level, "has_blob": has, "monitor_alert": r["alert"],
                 "mf_alert": r["mf_alert"], "monitor_found": bool(b and b[0]["found"]),
                 "mf_found": bool(b and b[0]["mf_found"])})
t_stress = time.perf_counter() - t0
mstress = pd.DataFrame(mrow)
write_text(PLOTS / "stress_classify.csv", stress.to_csv(index=False))
write_text(PLOTS / "stress_monitor.csv", mstress.to_csv(index=False))

agg = []
for (name, level), g in stress.groupby(["nuisance", "level"], sort=False):
    free, wb = g[~g.has_blob], g[g.has_blob]
    agg.append({"nuisance": name, "level": level, "classify FP (blob-free)": free.cnn_alert.mean(),
                "MF FP": free.mf_alert.mean(), f"classify found (S/N {st.snr})": wb.cnn_found.mean(),
                "MF found": wb.mf_found.mean(), "n": len(free)})
agg = pd.DataFrame(agg)
shown = {"nan": "NaN pixels"}  # the nuisance named "nan" (a fraction of NaN pixels) is a word, not a missing value
display(agg.round(3).replace({"nuisance": shown}))
write_text(PLOTS / "stress_matrix.csv", agg.to_csv(index=False))
if len(mstress):
    display(mstress.replace({"nuisance": shown}).groupby(["nuisance", "level"], sort=False)[
        ["monitor_alert", "mf_alert", "monitor_found", "mf_found"]].mean().round(2))

names_ = list(levels)
if names_:
    fig, axs = plt.subplots(2, len(names_), figsize=(2.6 * len(names_), 5.5), squeeze=False, sharey="row")
    for j, name in enumerate(names_):
        g = agg[agg.nuisance == name]
        xs = np.arange(len(g))
        axs[0, j].plot(xs, g["classify FP (blob-free)"], "o-", label="classify")
        axs[0, j].plot(xs, g["MF FP"], "s--", label="matched filter")
        axs[1, j].plot(xs, g[f"classify found (S/N {st.snr})"], "o-", label="classify")
        axs[1, j].plot(xs, g["MF found"], "s--", label="matched filter")
        for ax in axs[:, j]:
            ax.set_xticks(xs, [str(v) for v in g.level])
            ax.set_ylim(-0.05, 1.05)
        axs[0, j].set_title(name, fontsize=9)
        axs[1, j].set_xlabel("level")
    axs[0, 0].set_ylabel("blob-free images flagged")
    axs[1, 0].set_ylabel(f"S/N {st.snr} blob localised")
    axs[0, 0].legend(fontsize=8)
    save_figure(fig, PLOTS / "stress_matrix.png")
    plt.show()
display(Markdown(f"Stress matrix: {len(stress)} images and {len(mstress)} series."))
timing("stress matrix", t_stress)

# %% [markdown]
# ## Offset and gradient invariance (blob-free images, project's own test days)
# Adding a constant or a plane of up to 0.3 noise sigma must not change what is flagged.

# %%
inv = []
for k, d in enumerate(infos[:6]):
    img = read_frame(d.path).data.astype(np.float32)
    fin = img[np.isfinite(img)]
    s = float(np.median(np.abs(fin - np.median(fin)))) * 1.4826
    yy, xx = np.mgrid[0:img.shape[0], 0:img.shape[1]].astype(np.float32)
    for label, extra in (("none", 0.0), ("+0.3 sigma", 0.3 * s), ("plane 0.3 sigma", 0.3 * s * (xx / img.shape[1] - 0.5) * 2)):
        r, t, _ = crosseval.score_difference(img + extra, [], model, cfg.threshold, prep, det)
        inv.append({"image": k, "added": label, "tiles_flagged": sum(x["alert"] for x in t)})
inv = pd.DataFrame(inv)
frac = inv.groupby("added", sort=False).tiles_flagged.sum() / (16 * len(infos[:6]))
display(frac.rename("fraction of tiles flagged").to_frame().round(4))
summary["offset_change_pp"] = round(100 * abs(float(frac.get("+0.3 sigma", 0) - frac.get("none", 0))), 3)
summary["plane_change_pp"] = round(100 * abs(float(frac.get("plane 0.3 sigma", 0) - frac.get("none", 0))), 3)

# %%
flat = {}
for k, v in summary.items():
    if isinstance(v, dict):
        flat[f"{k}"] = v["rate"]
        flat[f"{k}_n"] = v["n"]
    else:
        flat[k] = v
flat.update({"threshold": cfg.threshold, "snr_min": cfg.snr_min, "representation": prep["representation"],
             "n_diff_images": len(rows), "n_series": len(srows)})
write_metrics(CARD, flat, n_headline=len(CARD.headlines))
write_json(PLOTS / "details.json", summary)
display(Markdown("Metrics: `metrics/05_crosssim.json`; per-case tables in `plots/05_crosssim/`."))

# %%
show_verdict(CARD)  # the verdict box, read back from the metrics files (the HTML report shows it first)
