"""Shared core of both wings (blob and svm): nothing here knows about blobs or visits.

Modules
-------
errors
    :class:`InputError` and friends, exit codes, :func:`run_guarded` (every command's error path).
paths
    the project root, atomic writes (``atomic_path``, ``write_text``, ``write_json``), file hashes.
config
    params.yaml, profiles, dataclasses built from parameter sections that reject typos and wrong types.
scratch
    a stage notebook run by hand writes under ``scratch/<stage>/``, never the pipeline's outputs.
report
    a stage notebook built, executed and rendered to HTML; report headers; package versions.
stagecard
    the shape of a stage's card (headline metrics, checks, verdict); each stage declares its own.
headlines
    picking a stage's headline numbers (``metrics/<stage>.json``) with its card's patterns.
verdicts
    the verdict box at the top of every stage report, read from its metrics files.
index
    ``reports/index.html``: every stage's headline numbers and verdict.
stats
    Wilson intervals, the one rate shape, the one threshold convention (``p >= t``), shared bins.
tables
    tables as a reader should see them; durations.
page
    the page every report is: a small stylesheet, the navigation bar.
reportlint
    lints the HTML reports for what a reader should never see.
parallel
    both cores for independent items, with results independent of the worker count.
deeplearning
    the one lazy place: the Keras/TensorFlow bootstrap and determinism.
deps
    the import closure of a notebook (what ``dvc.yaml`` must list as a stage's code).
plotting
    figures saved atomically.
"""

__all__ = ["errors", "paths", "config", "scratch", "report", "stagecard", "headlines", "verdicts", "index", "stats",
           "tables", "page", "reportlint", "parallel", "deeplearning", "deps", "plotting"]
