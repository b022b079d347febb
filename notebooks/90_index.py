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
# # WFC3 ISR 2021-08, rebuilt
#
# WFC3 ISR 2021-08 (Dauphin, Medina & McCullough 2021) trains a convolutional neural network to tell
# whether a WFC3/IR difference image holds a new "blob" (a small, shallow dip in the flat field from
# particles on the channel-select mechanism), reports validation rates of TPR 0.94 and TNR 0.88, and
# plans a daily check that flags new blobs with their pixel coordinates. This page rebuilds the
# report from this repository's pipeline: every figure below is remade from the pipeline's data and
# every number comes from a metrics file of the stage named under it, never typed. Beyond the report
# the repository tests the models on an independent simulator they were never built on, runs the
# daily monitor the report planned, adds an unsupervised baseline, and rebuilds spacekit's HST
# single-visit-mosaic alignment classifier on real data.
#
# **Data labels.** *own simulator (in-distribution)*: the project's simulated CSM-monitor campaign,
# which the models were built on (held-out days, but the same simulator); *independent
# cross-simulator*: images from a simulator written separately from a specification, never used
# for building or tuning; *real data*: the real SVM visits (and the real blob cutouts); *simulated
# SVM products*: the SVM image stage's simulated visits.

# %%
from IPython.display import HTML, display

from blobhelpers import search
from blobhelpers.article import CITATION, FIGURES, claims, claims_table_html, figure_html
from blobhelpers.blob.stages import crosssim, data_prep, evaluate, isr_recipe, monitor, train
from blobhelpers.core.index import collect, index_table
from blobhelpers.core.paths import project_root
from blobhelpers.core.report import show_header
from blobhelpers.svm.stages import images, models, prep, screen, simulate

root = project_root()
display(HTML(f'<p class="bh-src">Citation: {CITATION}.</p>'))

# %% [markdown]
# ## Claims: published beside rebuilt
#
# Status: *reproduced* = the published value lies inside the rebuilt 95 % Wilson interval;
# *exceeded* = the whole interval is better; *not met* = worse, or below the project's target;
# *measured* = the report gives no number, so the rebuilt one stands alone. Each row links the
# stage report that made its number.

# %%
rows = claims(root)
display(HTML(claims_table_html(rows, root)))

# %% [markdown]
# ## The report's figures, rebuilt
#
# In the ISR's order. Fig. 1 (the WFC3 optical path and the channel-select mechanism) is a diagram,
# not data. Fig. 7 (the CNN's architecture: two 5 x 5 convolutions with 8 and 16 filters, 4 x 4 max
# pooling, fully connected 128 and 2, about 0.53 M parameters) is rebuilt as the model `isr2021`;
# its parameter count is in the claims table. Each caption gives the rebuilt figure's facts, then
# the published caption's, then where the figure was made.

# %%
for fig in FIGURES:
    if not fig.number.startswith("Beyond"):
        display(HTML(figure_html(fig, root)))

# %% [markdown]
# ## Beyond the report
#
# What the ISR lists as deployment and future work, and what a reader needs to trust the numbers:
# the project's own model, the ISR recipe tested on data it never saw, the daily monitor, an
# independent simulator, and the SVM alignment classifier.

# %%
for fig in FIGURES:
    if fig.number.startswith("Beyond"):
        display(HTML(figure_html(fig, root)))

# %% [markdown]
# ## Every stage
#
# One row per stage: its report, its headline numbers (`metrics/NN_stage.json`; `dvc metrics show`
# prints them, `metrics/details/` holds the rest) and a one-line verdict. `bash tasks.sh plots`
# draws the stages' declared plots offline.

# %%
CARDS = [m.CARD for m in (data_prep, train, evaluate, monitor, crosssim, isr_recipe, search, prep, models, screen,
                          simulate, images)]
entries = collect(root / "reports", root / "metrics", CARDS)
display(HTML(index_table(entries)))

# %%
show_header("Article", {}, [])
