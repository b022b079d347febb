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
# # Stage 10 — SVM alignment data: prep, encodings and what real misalignments look like
#
# * **Prep, step by step.** The one visit for which spacekit published every intermediate table
#   (`hst_12286_38_wfc3_ir_total_ibl738`) is written back in drizzlepac's quality-analysis format
#   (JSON + total detection FITS) and run through `blobhelpers.svm.prep` (the same code as
#   `blobhelpers svm prep`): each table is compared with spacekit's.
# * **Encodings.** The raw (string) table of Nov 2021 is encoded with spacekit's current table and
#   with the 2021 one; the 2021 encoding is checked against the 2021 feature files.
# * **The labelled data.** Real aligned, real misaligned and synthetic misaligned visits: the real
#   failures are "few matches / zero rms", the synthetic ones "large rms".

# %% tags=["parameters"]
from blobhelpers.core.config import stage_params

# The params.yaml sections this stage reads: `dvc repro` injects them, a run by hand reads them from
# params.yaml, so both see the same values. Only the pipeline writes the stage's outputs (a run by hand
# writes them under scratch/, see blobhelpers.core.scratch).
_p = stage_params("base", "svm")
base = _p["base"]
svm = _p["svm"]
pipeline_run = False  # True when the pipeline runner executes this notebook

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from blobhelpers.core.config import ProjectPaths
from blobhelpers.core.paths import write_text
from blobhelpers.core.plotting import save_figure
from blobhelpers.core.report import show_header, show_verdict, write_metrics
from blobhelpers.svm.evaluate import rate
from blobhelpers.svm.features import encode_raw, read_features, sample_kind
from blobhelpers.svm.prep import prep, write_visit
from blobhelpers.svm.stages.prep import CARD

paths = ProjectPaths.for_stage("10_svm_prep", pipeline_run)
DATA = paths.root / "data" / "svm"
OUT = paths.root / "build" / "svm" / "prep"
PLOTS = paths.plots / "10_svm_prep"
PLOTS.mkdir(parents=True, exist_ok=True)
show_header("Stage 10 — SVM prep", {"base": base, "svm": svm}, ["base", "svm"])
metrics = {}

# %% [markdown]
# ## Prep of the sample visit, every step against spacekit's tables

# %%
sv = DATA / "sample_visit_ibl738"
s = pd.read_csv(sv / "scraped_fits.csv").iloc[0]
visits = OUT / "sample_visits"
write_visit(visits / s["dataset"], s["index"], targname=s["targname"], ra_targ=s["ra_targ"], dec_targ=s["dec_targ"],
            numexp=int(s["numexp"]), point=int(s["point"]), segment=int(s["segment"]), gaia=int(s["gaia"]),
            rms_ra=s["rms_ra"], rms_dec=s["rms_dec"], nmatches=int(s["nmatches"]))
res = prep(visits, OUT / "sample_prep", progress=False)
steps = {"JSON scrape (single_scrub)": (OUT / "sample_prep" / "scraped_json.csv", sv / "single_scrub.6e163fa.csv"),
         "+ FITS header + category (scraped_mast)": (OUT / "sample_prep" / "raw_svm_data.csv", sv / "scraped_mast.csv")}
rows = []
for name, (ours, theirs) in steps.items():
    same = ours.read_text() == theirs.read_text()
    rows.append({"step": name, "identical to spacekit's file": same})
    metrics[f"sample_visit_{'json' if 'JSON' in name else 'raw'}_identical"] = bool(same)
feat = res.features.iloc[0]
reg = pd.read_csv(sv / "single_reg.csv").iloc[0]
rows.append({"step": "encoded features (single_reg)",
             "identical to spacekit's file": f"numeric columns equal; det {feat['det']} vs {reg['det']}, cat {feat['cat']} vs {reg['cat']}"})
display(pd.DataFrame(rows))
display(Markdown("spacekit's `single_reg.csv` was encoded by a `LabelEncoder` fitted on that single row, so "
                 "every categorical became 0; the fixed tables give `det` 1 (ir) and `cat` 3 (UNIDENTIFIED, current "
                 "spacekit) — the 2021 files would have 6."))

# %% [markdown]
# ## Encodings: the Nov 2021 raw table against the 2021 feature files

# %%
raw = pd.read_csv(DATA / "raw_svm_data_2021-11-02.csv")
enc21 = encode_raw(raw, "spacekit-2021").set_index("index")
enc = encode_raw(raw, "spacekit").set_index("index")
write_text(OUT / "raw_2021-11-02_features.csv", enc.reset_index().to_csv(index=False))
rows = []
for name in ("svm_unlabeled_2021-10-06.csv", "svm_labeled_2021-07-28_dev.csv"):
    ref = pd.read_csv(DATA / name).set_index("index")
    common = enc21.index.intersection(ref.index)
    for c in ("det", "wcs", "cat"):
        agree = int((enc21.loc[common, c] == ref.loc[common, c]).sum())
        rows.append({"file": name, "column": c, "shared visits": len(common), "equal (2021 encoding)": agree,
                     "equal (current spacekit)": int((enc.loc[common, c] == ref.loc[common, c]).sum())})
        metrics[f"enc2021_{name.split('_')[1]}_{c}_equal"] = agree
        metrics[f"enc2021_{name.split('_')[1]}_shared"] = int(len(common))
display(pd.DataFrame(rows))
display(Markdown("`det` and `wcs` agree everywhere; `wcs` of the July file differs for visits reprocessed since "
                 "(their rms differ too). `cat` agrees only with the 2021 encoding, which is therefore how the "
                 "2021 files (and so the released model's training data) must be read."))

# %% [markdown]
# ## The labelled data: real versus synthetic misalignments

# %%
lab = read_features(paths.root / svm["labelled"], svm["labelled_cat_encoding"], require_label=True)
unl = read_features(paths.root / svm["unlabelled"], svm["labelled_cat_encoding"])
kind = sample_kind(lab)
names = {0: "real aligned", 1: "real misaligned", 2: "synthetic misaligned"}
rows = []
for k, nm in names.items():
    d = lab[kind == k]
    r0 = rate(((d.rms_ra == 0) & (d.rms_dec == 0)).sum(), len(d))
    r4 = rate((d.nmatches < 4).sum(), len(d))
    rows.append({"kind": nm, "rows": len(d), "median rms_ra": round(d.rms_ra.median(), 1),
                 "median rms_dec": round(d.rms_dec.median(), 1), "median nmatches": d.nmatches.median(),
                 "rms == 0": f"{r0['rate']:.3f} [{r0['lo']:.3f}, {r0['hi']:.3f}]",
                 "nmatches < 4": f"{r4['rate']:.3f} [{r4['lo']:.3f}, {r4['hi']:.3f}]"})
    metrics[f"n_{nm.replace(' ', '_')}"] = int(len(d))
    metrics[f"frac_rms0_{nm.replace(' ', '_')}"] = r0["rate"]
    metrics[f"frac_nmatches_lt4_{nm.replace(' ', '_')}"] = r4["rate"]
metrics["n_unlabelled"] = int(len(unl))
display(pd.DataFrame(rows))

fig, axs = plt.subplots(1, 3, figsize=(15, 4))
for k, nm in names.items():
    d = lab[kind == k]
    axs[0].hist(np.log10(np.clip(d.rms_ra, 0, None) + 1), bins=30, histtype="step", density=True, label=nm)
    axs[1].hist(np.log10(d.nmatches + 1), bins=30, histtype="step", density=True, label=nm)
    axs[2].scatter(np.log10(d.nmatches + 1), np.log10(np.clip(d.rms_ra, 0, None) + 1), s=6 if k != 1 else 25,
                   alpha=0.5 if k != 1 else 1, label=nm)
axs[0].set_xlabel("log10(rms_ra + 1) [mas]")
axs[1].set_xlabel("log10(nmatches + 1)")
axs[2].set_xlabel("log10(nmatches + 1)")
axs[2].set_ylabel("log10(rms_ra + 1)")
for a in axs:
    a.legend(fontsize=8)
fig.suptitle("Real misalignments (few matches, rms 0) do not look like the synthetic ones (large rms)")
save_figure(fig, PLOTS / "real_vs_synthetic.png")
plt.show()

# %%
write_metrics(CARD, metrics)
display(Markdown(f"Metrics written to `metrics/10_svm_prep.json` ({len(metrics)} values)."))

# %%
show_verdict(CARD)  # the verdict box, read back from the metrics files (the HTML report shows it first)
