"""``python -m gazal`` is the ``gazal`` command."""

import sys

from gazal.cli import main

sys.exit(main())
