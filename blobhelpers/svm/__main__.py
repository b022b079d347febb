"""``python -m blobhelpers.svm prep|train|predict``: the ``blobhelpers svm`` command on its own."""

import sys

from blobhelpers.svm.commands import main

if __name__ == "__main__":
    sys.exit(main())
