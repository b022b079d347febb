"""Shared core of both wings (blob and svm): nothing here knows about blobs or visits.

Modules
-------
errors
    :class:`InputError` and friends, exit codes, :func:`run_guarded` (every command's error path).
paths
    the project root, atomic writes (``atomic_path``, ``write_text``, ``write_json``).
config
    params.yaml, profiles, typo-rejecting dataclasses built from parameter sections.
report
    a stage notebook built, executed and rendered to HTML; report headers; package versions.
stats
    Wilson intervals, the one rate shape, the one threshold convention (``p >= t``), shared bins.
deeplearning
    the lazy Keras bootstrap and determinism.
deps
    the import closure of a notebook (what ``dvc.yaml`` must list as a stage's code).
plotting
    figures saved atomically.
headlines
    which numbers of each stage are its headline (``metrics/<stage>.json``).
index
    ``reports/index.html``: every stage's headline numbers and verdict.
"""

__all__ = ["errors", "paths", "config", "report", "stats", "deeplearning", "deps", "plotting", "headlines", "index"]
