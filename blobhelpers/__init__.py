"""blobhelpers: WFC3/IR blob and HST SVM alignment data-quality machine learning.

The package holds all the logic of the project; the notebooks under ``notebooks/`` and the
command-line interface (``blobhelpers <command>`` or ``python -m blobhelpers``) are thin
callers of the same functions.
"""

__all__ = ["__version__", "BlobhelpersError", "InputError"]

__version__ = "0.1.0"

from .errors import BlobhelpersError, InputError  # noqa: E402
