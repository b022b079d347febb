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
# # Stage 12 — screening a new SVM run, and spacekit's released model side by side
#
# * **Screening**: the best model of stage 11 (`build/svm/model`, its threshold for a 5 %
#   false-alarm rate) on `svm_unlabeled_2021-10-06.csv`, the same kind of visits reprocessed with
#   a newer drizzlepac, through `blobhelpers svm predict`'s code (`predictions.csv`,
#   `clf_report.txt`, `compromised.txt` in `build/svm/screen/`). spacekit's model of that era
#   flagged 32 % of all visits of that run (29.5 % of the visits labelled aligned in July).
# * **The 12 real image samples**: spacekit's released ensemble (`svm_align.zip`, features +
#   3-frame images; loaded by Keras 3 in safe mode) and ours on the same visits. All 12 are rows of
#   the labelled file, so **every model trained on it has seen them: those columns are IN-SAMPLE**
#   (the released model was trained on a random split of the full labelled set). The only
#   out-of-sample view of ours is stage 11's held-out probability of each visit
#   (`build/svm/model/cv_oof.csv`, nested selection, flagged fraction over the fold seeds).
# * The `cat` encoding of each file is detected from its values and checked against
#   `svm.labelled_cat_encoding` (a contradiction stops the stage).

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
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from blobhelpers.core.config import ProjectPaths
from blobhelpers.core.report import show_header, show_verdict, write_metrics
from blobhelpers.core.stats import flag, format_rate, rate
from blobhelpers.svm.features import detector_name, read_features
from blobhelpers.svm.images import load_images, load_spacekit_model, spacekit_predict
from blobhelpers.svm.models import load_model
from blobhelpers.svm.predict import predict_file
from blobhelpers.svm.stages.screen import CARD

paths = ProjectPaths.for_stage("12_svm_screen", pipeline_run)
DATA = paths.root / "data" / "svm"
OUT = paths.root / "build" / "svm" / "screen"
show_header("Stage 12 — SVM screening", {"base": base, "svm": svm}, ["base", "svm"])
model = load_model(paths.root / "build" / "svm" / "model")
oos = model.info.get("out_of_sample", {})
display(Markdown(f"Model: `{model.name}` ({model.kind}), threshold {model.threshold:.4f} "
                 f"({model.info.get('threshold_rule', '')}); selected by {model.info.get('selection', '?')}. "
                 + (f"Out-of-sample (nested CV of the selection procedure): real recall {oos['real_recall']['rate']:.3f}, "
                    f"false alarms {oos['false_alarm']['rate']:.3f} on real aligned visits." if oos else "")))


fmt = format_rate


# %% [markdown]
# ## Fraction flagged on the October 2021 run, per detector

# %%
preds = predict_file(paths.root / svm["unlabelled"], OUT, model=paths.root / "build" / "svm" / "model",
                     cat_encoding=svm["labelled_cat_encoding"], group="SVM-2021-10-06")
metrics = {"model": model.name, "threshold": model.threshold, "n_screened": int(len(preds))}
rows = []
for det in sorted(preds["det"].unique()):
    s = preds["det"] == det
    r = rate(preds.loc[s, "y_pred"].sum(), s.sum())
    rows.append({"detector": detector_name(det), "flagged": fmt(r)})
    metrics[f"flagged_{detector_name(det)}"] = r["rate"]
allr = rate(preds["y_pred"].sum(), len(preds))
rows.append({"detector": "all", "flagged": fmt(allr)})
metrics["flagged_all"] = allr["rate"]
lab = read_features(paths.root / svm["labelled"], svm["labelled_cat_encoding"], require_label=True)
aligned_july = set(lab.loc[lab["label"] == 0, "index"])
s = preds["index"].isin(aligned_july)
ra = rate(preds.loc[s, "y_pred"].sum(), s.sum())
rows.append({"detector": "labelled aligned in July", "flagged": fmt(ra)})
metrics["flagged_aligned_in_july"] = ra["rate"]
display(pd.DataFrame(rows))
metrics["cat_encoding"] = (OUT / "clf_report.txt").read_text().split("cat encoding: ")[1].split("\n")[0]
display(Markdown(f"spacekit's model flagged 32 % of this run (29.5 % of July-aligned visits); ours flags "
                 f"**{allr['rate']:.1%}** ({ra['rate']:.1%} of July-aligned). Our operating point was set for a 5 % "
                 f"false-alarm rate on real aligned visits of the labelled (July) processing."))
print((OUT / "clf_report.txt").read_text())

# %% [markdown]
# ## The 12 real image samples: spacekit's released ensemble and ours on the same inputs
# In-sample columns are labelled so; `ours held out` is stage 11's out-of-sample view.

# %%
feats = read_features(DATA / "images" / "svm_images_12.csv", svm["labelled_cat_encoding"], require_label=True)
found, imgs = load_images(DATA / "images" / "svm_images_12.npz", feats["index"])
feats = feats.set_index("index").loc[found].reset_index()
ens = load_spacekit_model(DATA / "pretrained_spacekit" / "svm_align.zip")
p_sk = spacekit_predict(ens, feats, imgs)
p_ours = model.predict_proba(feats)
oof = pd.read_csv(paths.root / "build" / "svm" / "model" / "cv_oof.csv").set_index("index")
held = oof.reindex(feats["index"])
kind = np.where(feats["index"].str.split("_").str.len() > 7, "synthetic", np.where(feats["label"] == 1, "real", ""))
side = pd.DataFrame({"index": feats["index"], "label": feats["label"].astype(int), "kind": kind,
                     "nmatches": feats["nmatches"].astype(int), "rms_ra": feats["rms_ra"].round(2),
                     "spacekit P (in-sample)": p_sk.round(4), "spacekit flag (0.5, in-sample)": flag(p_sk, 0.5).astype(int),
                     f"{model.name} P (in-sample)": p_ours.round(4),
                     f"{model.name} flag (in-sample)": flag(p_ours, model.threshold).astype(int),
                     "ours held out: P": held["p_nested_selection"].round(4).to_numpy(),
                     "ours held out: flagged fraction of seeds": held["nested_flag_rate"].round(2).to_numpy()})
display(side)
metrics["samples12_note"] = "in-sample: every model was trained on these 12 visits; held_out = stage 11 nested CV"
metrics["samples12_spacekit_correct_in_sample"] = int((flag(p_sk, 0.5).astype(int) == feats["label"]).sum())
metrics["samples12_ours_correct_in_sample"] = int((flag(p_ours, model.threshold).astype(int) == feats["label"]).sum())
held_flag = (held["nested_flag_rate"].to_numpy() >= 0.5).astype(int)
metrics["samples12_ours_correct_held_out"] = int((held_flag == feats["label"].to_numpy()).sum())
real = kind == "real"
metrics["samples12_real_misaligned_spacekit_flagged_in_sample"] = int(flag(p_sk[real], 0.5).sum())
metrics["samples12_real_misaligned_ours_flagged_in_sample"] = int(flag(p_ours[real], model.threshold).sum())
metrics["samples12_real_misaligned_ours_flagged_held_out"] = int(held_flag[real].sum())
display(Markdown(
    f"**In-sample** (every model here was trained on these visits; not a test): correct of 12 spacekit "
    f"{metrics['samples12_spacekit_correct_in_sample']}, ours {metrics['samples12_ours_correct_in_sample']}; of the 3 "
    f"real misalignments spacekit flags {metrics['samples12_real_misaligned_spacekit_flagged_in_sample']}, ours "
    f"{metrics['samples12_real_misaligned_ours_flagged_in_sample']}. **Held out** (stage 11's nested CV, flagged in "
    f"at least half of the fold seeds): ours {metrics['samples12_ours_correct_held_out']} of 12 correct, "
    f"{metrics['samples12_real_misaligned_ours_flagged_held_out']} of the 3 real misalignments flagged. spacekit's "
    "released model has no held-out view on these visits."))
write_metrics(CARD, metrics)

# %%
show_verdict(CARD)  # the verdict box, read back from the metrics files (the HTML report shows it first)
