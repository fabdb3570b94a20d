"""``python -m team_code.nn.delineator train|folds``: :func:`team_code.nn.delineator.cli.main`."""

import sys

from team_code.nn.delineator.cli import main

sys.exit(main())
