"""The independent cross-simulator: evaluation data the project's models and thresholds never saw.

Modules
-------
simulator
    WFC3/IR-like frame series and difference images written from a separate specification
    (``docs/crosssim_spec.md``): its own noise model, units, gradients, mis-registration, heavy
    tails, blob profiles and held-out real cutout shapes. Command line:
    ``python -m blobhelpers.blob.crosssim OUTDIR --seed N ...``.

Only evaluation code imports this package (:mod:`blobhelpers.blob.evaluate`; the layer test in
``tests/test_layers.py`` enforces it), so nothing the project trains or tunes can depend on it,
and editing it reruns only the stages that evaluate on it.
"""

from blobhelpers.blob.crosssim.simulator import (BLOB_KINDS, DIFFERENCE_UNITS, NUISANCE_NAMES, UNITS, BlobSpec,
                                                 Nuisance, blob_profile, expected_noise_frac, iter_series_cases, main,
                                                 make_difference, make_series, sample_new_blob, write_difference_set,
                                                 write_series_set)

__all__ = ["UNITS", "DIFFERENCE_UNITS", "BLOB_KINDS", "NUISANCE_NAMES", "Nuisance", "BlobSpec", "iter_series_cases",
           "expected_noise_frac", "blob_profile", "sample_new_blob", "make_series", "make_difference",
           "write_series_set", "write_difference_set", "main", "simulator"]
