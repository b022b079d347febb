"""``python -m blobhelpers``: the same command-line interface as ``blobhelpers``."""

import sys

from blobhelpers.cli import main

sys.exit(main())
