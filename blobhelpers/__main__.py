"""``python -m blobhelpers``: the same command-line interface as ``blobhelpers``."""

import sys

from .cli import main

sys.exit(main())
