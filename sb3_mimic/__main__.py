"""``python -m sb3_mimic``: the ``sb3-mimic`` command line."""

import sys

from sb3_mimic.cli import main

sys.exit(main())
