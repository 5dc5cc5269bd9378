"""python -m threadlog: the same as the `threadlog` command."""

import sys

from .cli import main

sys.exit(main())
