"""The blob wing: WFC3/IR blob detection, from CSM-monitor frames to daily verdicts.

Modules, in the order data flows through them
---------------------------------------------
fitsio, wfc3
    FITS in (RAW/IMA/FLT/plain, DQ masks, native float32, clear errors) and out (atomic).
sections
    typed params.yaml sections (difference, dataset, train, evaluate, crosssim, monitor sub-sections).
campaign, shapes
    the project's simulated CSM-monitor campaign with ground truth; blob profiles.
difference
    illumination normalisation, median stack, registration, dips.
scaling
    the ISR's zscale clip and z-score, border handling, tiles.
injection, augment, dataset, datastage
    blob stamps injected into difference images, augmentation, split recipes, the data stage.
cnn, training, scoring
    model factories (isr2021, deepwfc3, blobnet, tiny), training recipes, evaluation
    (rates with intervals, strata, saliency).
detection, classify, monitor, regression
    candidate detection and measurement; whole-image classification; the daily monitor
    (a sub-package: config, catalog, records, daily, render, tuning); the monitor over a
    simulated campaign scored against the truth.
review, figures
    ginga / static review figures; report figures.
crosssim, crosseval
    an independently written simulator, used only for evaluation, and the scoring against it.
"""
