"""The blob wing: WFC3/IR blob detection, from CSM-monitor frames to daily verdicts.

Modules
-------
sections
    typed params.yaml sections of the wing (campaign, injection, train, difference, dataset, ...).
io
    FITS in and out: frames (the shared basics), wfc3 (product layouts), fitsio (the reader).
sim
    the project's own simulator: shapes, campaign, injection.
preprocess
    difference images, the ISR's scaling and the residual representation, augmentation.
data
    the project's subframe recipes, the ISR's recipe, the data stage.
learn
    models, training, inference and saliency, the deployed-model registry, an unsupervised score.
detect
    the detection core, classify, products, alert figures, review, the daily monitor.
evaluate
    scoring, report figures, the monitor's regression, the cross-simulator scores, the ISR recipe's.
crosssim
    the independently written simulator, imported by evaluation code only.
commands
    the wing's command-line commands (``blobhelpers simulate|difference|classify|monitor|...``).
stages
    one card per pipeline stage of the wing (headline metrics, checks, verdict).

Each layer imports only the layers above it in this list (``tests/test_layers.py``).
"""

__all__ = ["sections", "io", "sim", "preprocess", "data", "learn", "detect", "evaluate", "crosssim", "commands",
           "stages"]
