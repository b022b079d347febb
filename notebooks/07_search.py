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
# # Stage 07 — blobnet's hyperparameters, searched (the ISR's future work)
#
# The ISR names a grid or random search over the hyperparameters as future work. This stage shows
# one, run at the default scale: a **grid** of 3 learning rates x 2 widths x 3 augmentation-noise
# levels (18 experiments, `scripts/exp_grid.sh`) and a **random search** over the same space with the
# same budget (18 experiments, `scripts/exp_random.py`: learning rate log-uniform in [0.0005, 0.002],
# width 8 or 16, noise uniform in [0.1, 0.4]). Each experiment is stage `train` at the default
# profile, run as a DVC experiment; everything here is measured on the **validation** set of the
# project's own simulator (in-distribution), and the test set is never looked at by the search.
#
# The search is expensive (about two hours of CPU), so this stage does not rerun it: it reads the
# committed table `experiments/blobnet_search.csv` (`scripts/exp_table.py` exports it from
# `dvc exp show`) and the scores of the chosen setting and today's on the **independent
# cross-simulator** (`experiments/blobnet_search_crosssim.json`, `scripts/exp_crosssim.py`).
# How to rerun the search and what it costs: `docs/parameters.md`, "Hyperparameter search".

# %% tags=["parameters"]
from blobhelpers.core.config import stage_params

# The params.yaml sections this stage reads: `dvc repro` injects them, a run by hand reads them from
# params.yaml, so both see the same values. Only the pipeline writes the stage's outputs (a run by hand
# writes them under scratch/, see blobhelpers.core.scratch).
_p = stage_params("base", "train")
base = _p["base"]
train = _p["train"]
pipeline_run = False  # True when the pipeline runner executes this notebook

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from blobhelpers import search
from blobhelpers.blob.sections import TrainConfig
from blobhelpers.core.config import ProjectPaths
from blobhelpers.core.paths import write_text
from blobhelpers.core.plotting import save_figure
from blobhelpers.core.report import metrics_link, show_header, show_verdict, write_metrics
from blobhelpers.search import CARD

paths = ProjectPaths.for_stage("07_search", pipeline_run)
PLOTS = paths.plots / "07_search"
PLOTS.mkdir(parents=True, exist_ok=True)
show_header("Stage 07 — blobnet's hyperparameters, searched", {"base": base, "train": train}, ["base", "train"])

runs = search.read_search(paths.root / "experiments" / "blobnet_search.csv")
xsim = search.read_crosssim(paths.root / "experiments" / "blobnet_search_crosssim.json")
cfg = TrainConfig.from_dict(train["models"]["blobnet"])
today = {"learning_rate": cfg.learning_rate, "width": cfg.width or 16, "noise_sigma": cfg.noise_sigma}
with np.load(paths.datasets / "val.npz", allow_pickle=False) as z:
    y_val = z["crop_label"].astype(bool)
summary = search.summary(runs, today, xsim, int(y_val.sum()), int((~y_val).sum()))
best = search.choose(runs)
display(Markdown(
    f"{summary['n_runs']} experiments ({', '.join(f'{n} {s}' for s, n in summary['searches'].items())}); "
    f"validation set: {len(y_val)} subframes ({int(y_val.sum())} with a blob). Today's setting "
    f"(params.yaml): learning rate {today['learning_rate']:g}, width {today['width']}, noise "
    f"{today['noise_sigma']:g} = experiment `{summary.get('today', 'not run')}`."))

# %% [markdown]
# ## Every run
# Sorted by validation AUC. `train_wall_s` / `train_cpu_s`: the experiment's stage `train` (blobnet
# trained; the two ISR models resume from their finished checkpoints), on 2 cores shared with other work.

# %%
cols = ["experiment", "search", *search.PARAMS, "blobnet_val_auc", "blobnet_val_tpr_at_fpr0.03", "train_wall_s",
        "train_cpu_s", "commit"]
display(runs.sort_values("blobnet_val_auc", ascending=False, kind="mergesort")[cols])

# %% [markdown]
# ## Which settings matter
# Validation AUC against each parameter, every run shown (circles: grid, triangles: random); the star
# is today's setting, the ring the setting validation chooses. The table gives, on the grid (each
# level crossed with every level of the other two), the mean, spread (sd), min and max per level.

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
marks = {s: m for s, m in zip(sorted(runs.search.unique()), ("o", "^", "s", "D"))}
for ax, p in zip(axes, search.PARAMS):
    for s, g in runs.groupby("search"):
        ax.scatter(g[p], g.blobnet_val_auc, marker=marks[s], alpha=0.75, label=s)
    ax.scatter([today[p]], [summary.get("today_val_auc", np.nan)], marker="*", s=220, c="k", label="today")
    ax.scatter([best[p]], [best.blobnet_val_auc], s=260, facecolors="none", edgecolors="r", linewidths=2,
               label="chosen on validation")
    ax.set_xlabel(p.replace("_", " "))
    if p == "learning_rate":
        ax.set_xscale("log")
    ax.grid(alpha=0.3)
axes[0].set_ylabel("validation AUC")
axes[-1].legend(fontsize=8, loc="lower right")
fig.suptitle("blobnet: validation AUC against each hyperparameter (own simulator, in-distribution)")
fig.tight_layout()
save_figure(fig, PLOTS / "effects.png")
plt.show()

grid = runs[runs.search == runs.search.iloc[0]]
eff = pd.concat([search.effects(grid, p) for p in search.PARAMS], ignore_index=True)
display(eff)
write_text(PLOTS / "effects.csv", eff.to_csv(index=False, float_format="%.6g"))
spread = {p: float(e["mean"].max() - e["mean"].min()) for p, e in eff.groupby("parameter")}
strongest = max(spread, key=spread.get)
display(Markdown(
    f"On the grid, **{strongest.replace('_', ' ')}** moves the mean validation AUC most "
    f"({spread[strongest]:.4f} between its levels); the others: "
    + ", ".join(f"{p.replace('_', ' ')} {v:.4f}" for p, v in spread.items() if p != strongest)
    + f". For scale, one standard error of a validation AUC near {summary['best_val_auc']:.3f} on these "
    f"{len(y_val)} subframes is {summary['val_auc_se']:.4f} (Hanley & McNeil)."))

# %% [markdown]
# ## Grid or random search?
# The best validation AUC found after each run, in the order each search ran its points.

# %%
fig, ax = plt.subplots(figsize=(6.5, 3.6))
for s, g in runs.groupby("search"):
    curve = search.best_so_far(g)
    ax.step(np.arange(1, len(curve) + 1), curve, where="post", label=f"{s} ({len(g)} runs)")
ax.set_xlabel("runs")
ax.set_ylabel("best validation AUC so far")
ax.grid(alpha=0.3)
ax.legend()
fig.tight_layout()
save_figure(fig, PLOTS / "best_so_far.png")
plt.show()
display(Markdown(" · ".join(f"**{s}**: best {g.blobnet_val_auc.max():.4f}, median {g.blobnet_val_auc.median():.4f}"
                            for s, g in runs.groupby("search"))))

# %% [markdown]
# ## The chosen setting against today's, on data neither was chosen on
# Validation chooses; the independent cross-simulator (its difference images' grid tiles, tiles holding
# only a blob below S/N 3 left out) says whether the choice generalises. The rule for proposing a
# switch, fixed before looking: better on validation by more than one standard error AND no worse
# on the cross-simulator. Switching the deployed model stays a separate decision.

# %%
rows = [{"model": "chosen on validation", "experiment": summary["best"],
         **{p: summary["best_setting"][p] for p in search.PARAMS},
         "validation AUC (own simulator)": summary["best_val_auc"],
         "cross-simulator tile AUC (independent)": summary.get("best_xsim_auc", np.nan)},
        {"model": "today (params.yaml)", "experiment": summary.get("today", "not run"),
         **today, "validation AUC (own simulator)": summary.get("today_val_auc", np.nan),
         "cross-simulator tile AUC (independent)": summary.get("today_xsim_auc", np.nan)}]
display(pd.DataFrame(rows))
verdict = ("propose it" if summary["propose_switch"] else "keep today's setting")
display(Markdown(
    f"Cross-simulator: {xsim['n_tiles']} tiles ({xsim['n_pos']} with a blob of S/N >= 3) from "
    f"{xsim['n_images']} difference images. Decision rule applied: **{verdict}**."))

# %%
metrics = dict(summary)
write_metrics(CARD, metrics)
metrics_link("07_search")

# %%
show_verdict(CARD)  # the verdict box, read back from the metrics files (the HTML report shows it first)
