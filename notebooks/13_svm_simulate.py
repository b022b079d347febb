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
# # Stage 13 — Simulated SVM visits and realistic, measured corruption
#
# * **Simulation.** Single-visit mosaics for the five detectors (WFC3 IR/UVIS, ACS WFC/HRC/SBC):
#   exposures with a priori WCS errors, relative + absolute (Gaia-like) alignment with drizzlepac's
#   failure modes, the real `drizzle` package, photutils catalogs, drizzlepac's QA JSON layout
#   (`blobhelpers.svm.simulate`, the same code as `blobhelpers svm simulate`).
# * **Corruption.** spacekit's modes (stat/stoc x all/sub), but rigid (all chips), with cos(Dec),
#   re-processed (the pipeline may realign) and labelled by the misalignment *measured* in the
#   product (`blobhelpers.svm.corrupt`).
# * **Comparison.** `svm prep` on the simulated visits; label rate vs shift; feature medians
#   against the real labelled data; spacekit's released model on the simulated renderings.

# %% tags=["parameters"]
from blobhelpers.core.config import stage_params

# The params.yaml sections this stage reads: `dvc repro` injects them, a run by hand reads them from
# params.yaml, so both see the same values. Only the pipeline writes the stage's outputs (a run by hand
# writes them under scratch/, see blobhelpers.core.scratch).
_p = stage_params("base", "svm", "svm_sim")
base = _p["base"]
svm = _p["svm"]
svm_sim = _p["svm_sim"]
pipeline_run = False  # True when the pipeline runner executes this notebook

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from blobhelpers.core.config import ProjectPaths
from blobhelpers.core.paths import write_text
from blobhelpers.core.plotting import save_figure
from blobhelpers.core.report import show_header, show_verdict, write_metrics
from blobhelpers.svm.corrupt import corrupt
from blobhelpers.svm.features import read_features, sample_kind
from blobhelpers.svm.images import load_images, load_spacekit_model, spacekit_predict
from blobhelpers.svm.prep import prep
from blobhelpers.svm.render import render
from blobhelpers.svm.sections import SvmSimSection
from blobhelpers.svm.simulate import DETECTOR_SPECS, SimConfig, simulate
from blobhelpers.svm.stages.simulate import CARD

paths = ProjectPaths.for_stage("13_svm_simulate", pipeline_run)
OUT = paths.root / "build" / "svm" / "sim"
PLOTS = paths.plots / "13_svm_simulate"
PLOTS.mkdir(parents=True, exist_ok=True)
show_header("Stage 13 — SVM simulation", {"base": base, "svm_sim": svm_sim}, ["base", "svm_sim"])
sim_p = SvmSimSection.from_dict(svm_sim)
cfg = SimConfig(size=sim_p.size, threshold_px=sim_p.threshold_px, min_matches=sim_p.min_matches)
metrics = {}

# %% [markdown]
# ## Simulate, corrupt, prep

# %%
rows = simulate(OUT / "visits", n_visits=sim_p.n_visits, seed=base["seed"], detectors=sim_p.detectors,
                size=sim_p.size, config=cfg)
cor = pd.DataFrame(corrupt([r[1] for r in rows], OUT / "corrupted", modes=sim_p.modes, expos=sim_p.expos,
                           shift_range=(0.0, sim_p.shift_max), rot_max=sim_p.rot_max, seed=base["seed"],
                           config=cfg, write_exposures=False))
res = prep(OUT, OUT / "prep", missing_gaia="zero", progress=False)
assert not res.errors, res.errors
labels = {i: lab for i, _, lab in rows} | dict(zip(cor["index"], cor["label"]))
feat = res.features.assign(label=lambda d: d["index"].map(labels))
feat["kind"] = ["synthetic" if len(i.split("_")) > 7 else "base" for i in feat["index"]]
write_text(OUT / "sim_labelled.csv", feat.to_csv(index=False))
metrics.update(n_visits=len(rows), n_corrupted=len(cor), frac_base_misaligned=float(pd.Series([r[2] for r in rows]).mean()),
               frac_corrupted_labelled_1=float(cor["label"].mean()))
display(Markdown(f"{len(rows)} visits ({sum(r[2] for r in rows)} misaligned as simulated), {len(cor)} corruptions, "
                 f"{cor['label'].mean():.0%} of them labelled misaligned (spacekit: 100 %)."))

# %% [markdown]
# ## Label rate vs applied shift (native pixels)

# %%
cor["shift_px"] = cor["applied_max_arcsec"] / cor["detector"].map({k: v.scale for k, v in DETECTOR_SPECS.items()})
cor["bin"] = pd.cut(cor["shift_px"], [0, 1, 2, 5, 10, 20, 40, 1e9], right=False)
rate = cor.groupby("bin", observed=True)["label"].agg(["size", "mean"])
shift_label = [f"{b.left:g}-{b.right:g}" if b.right < 1e6 else f">= {b.left:g}" for b in rate.index]
display(pd.DataFrame({"largest applied shift (px)": shift_label, "corruptions": rate["size"].to_numpy(),
                      "fraction labelled 1": rate["mean"].round(2).to_numpy()}))
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(range(len(rate)), rate["mean"], "o-")
ax.set_xticks(range(len(rate)), shift_label)
ax.set_ylabel("fraction labelled 1")
ax.set_xlabel("largest applied shift (native pixels)")
fig.tight_layout()
save_figure(fig, PLOTS / "label_rate_vs_shift.png")
for b, r in rate.iterrows():
    metrics[f"frac_1_shift_{b.left:g}_{b.right:g}px"] = float(r["mean"])

# %% [markdown]
# ## Features: simulated vs real (medians; rms in mas)

# %%
real = read_features(paths.root / svm["labelled"], "spacekit-2021", require_label=True)
real["kind"] = sample_kind(real)  # 0 real aligned, 1 real misaligned, 2 synthetic
cols = ["numexp", "rms_ra", "rms_dec", "nmatches", "point", "segment", "gaia"]
groups = {"real aligned": real[real.kind == 0], "real misaligned": real[real.kind == 1],
          "spacekit synthetic": real[real.kind == 2],
          "sim aligned": feat[feat.label == 0], "sim misaligned": feat[feat.label == 1]}
med = pd.DataFrame({k: {**g[cols].median().to_dict(), "n": len(g), "rms0": float((g.rms_ra == 0).mean()),
                        "a_posteriori": float((g.wcs == 0).mean())} for k, g in groups.items()}).T
display(med.round(2))
for k, r in med.iterrows():
    for c in ("rms_ra", "nmatches", "rms0"):
        metrics[f"median_{c}_{k.replace(' ', '_')}" if c != "rms0" else f"frac_rms0_{k.replace(' ', '_')}"] = float(r[c])

# %% [markdown]
# ## spacekit's released model on the simulated renderings

# %%
render(OUT, OUT / "png")
found, imgs = load_images(OUT / "png", feat["index"])
ff = feat.set_index("index").loc[found].reset_index()
model = load_spacekit_model(paths.root / "data" / "svm" / "pretrained_spacekit" / "svm_align.zip")
ff["p_spacekit"] = spacekit_predict(model, ff, imgs)
tab = ff.groupby("label")["p_spacekit"].agg(n="size", median="median", flagged=lambda s: float((s >= 0.5).mean()))
display(tab.round(3))
for lab, r in tab.iterrows():
    metrics[f"spacekit_flagged_label{int(lab)}"] = float(r["flagged"])

# %%
write_metrics(CARD, metrics)

# %%
show_verdict(CARD)  # the verdict box, read back from the metrics files (the HTML report shows it first)
