"""HST single-visit-mosaic (SVM) alignment classification, compatible with spacekit's ``skopes.hst.svm``.

Modules
-------
sections
    typed params.yaml sections of the wing (``svm``, ``svm_sim``, ``svm_images``).
features
    spacekit's 10-feature schema, the category/detector/WCS-type encodings (current spacekit and
    the 2021 training files), validation of feature CSVs, engineered features, visit keys.
prep
    drizzlepac SVM quality-analysis JSON + total detection FITS header -> raw table -> features.
folds
    stratified folds grouped by visit (every cross-validation of the wing takes its folds here).
models
    spacekit's MLP (faithful baseline), logistic regression, gradient boosting, random forest,
    extra trees and a calibrated stack; trees saved as node arrays, no pickle.
evaluate
    repeated nested grouped (by visit) cross-validation: a pre-declared selection criterion
    applied inside the loop, thresholds for a stated false-alarm rate measured out of sample,
    rates with Wilson intervals split by real/synthetic and detector, calibration, importance.
images
    spacekit's 3-frame PNG layout -> ``(n, 3, 128, 128, 3)`` arrays; spacekit's released model.
predict
    ``predictions.csv``, ``clf_report.txt`` and ``compromised.txt`` (spacekit's outputs); the
    ``cat`` encoding detected or refused; which model decides which row (``decided_by``).
simulate
    simulated visits for the five detectors: exposures with a priori WCS errors, relative and
    Gaia-like absolute alignment with drizzlepac's failure modes, the real ``drizzle`` package,
    photutils catalogs, drizzlepac's QA JSON layout and a ``truth.json`` per visit.
corrupt
    spacekit's corruption modes (stat/stoc x all/sub), rigid with cos(Dec), re-processed and
    labelled by the misalignment measured in the combined product.
render
    spacekit's 3 PNG renderings (plain, point/segment overlay, Gaia overlay) of total products.
ensemble
    image models: spacekit's ensemble architecture, ``cnn2d`` and the ``stacked`` model.
commands
    ``blobhelpers svm prep|train|predict|simulate|corrupt|render``.
stages
    one card per pipeline stage of the wing (headline metrics, checks, verdict).

The svm wing uses the shared core (:mod:`blobhelpers.core`: errors, paths, config, statistics,
the Keras bootstrap) and nothing of the blob wing.
"""

__all__ = ["sections", "features", "prep", "folds", "models", "evaluate", "images", "predict", "simulate", "corrupt",
           "render", "ensemble", "commands", "stages"]
