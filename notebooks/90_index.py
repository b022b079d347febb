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
# # blobhelpers — the reports of every stage
#
# One row per stage: its report (click the name), a few headline numbers from its
# `metrics/*.json` (`dvc metrics show` prints them; every other number of a stage is in `metrics/details/`) and a one-line verdict. Built by the last
# stage of the pipeline (`index`), so it always matches the reports beside it.

# %%
from IPython.display import HTML, Markdown, display

from blobhelpers.core.paths import project_root
from blobhelpers.core.index import collect, index_table
from blobhelpers.core.report import show_header

root = project_root()
entries = collect(root / "reports", root / "metrics")
display(HTML(index_table(entries)))
display(Markdown(f"{len(entries)} stage reports. Figures for `dvc plots show`: `plots/`; "
                 "offline page: `bash tasks.sh plots`."))

# %%
show_header("Index", {}, [])
