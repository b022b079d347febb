"""blobhelpers: WFC3/IR blob and HST SVM alignment data-quality machine learning.

One house with three wings:

``blobhelpers.core``
    shared infrastructure: errors and exit codes, project paths and atomic writes, params.yaml
    and profiles, notebook running and report headers, statistics (Wilson intervals, rates,
    the threshold convention), the Keras bootstrap and determinism, stage dependencies.
``blobhelpers.blob``
    WFC3/IR blob detection: FITS frames, the simulated campaign, difference images, data sets,
    CNNs, training, scoring, detection, ``classify``, the daily monitor, regression, review,
    and the independent cross-simulator used only for evaluation.
``blobhelpers.svm``
    HST single-visit-mosaic alignment classification (spacekit's ``skopes.hst.svm``).

``blobhelpers.cli`` is the command line (``blobhelpers <command>``); the notebooks under
``notebooks/`` and the command line are thin callers of the same functions. The wings import the
core, never each other's modules.
"""

__all__ = ["__version__", "BlobhelpersError", "InputError"]

__version__ = "0.1.0"

from blobhelpers.core.errors import BlobhelpersError, InputError  # noqa: E402
