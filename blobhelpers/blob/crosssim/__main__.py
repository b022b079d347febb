"""``python -m blobhelpers.blob.crosssim``: write a cross-simulator evaluation set (see ``--help``)."""

import sys

from blobhelpers.blob.crosssim.simulator import main

if __name__ == "__main__":
    sys.exit(main())
