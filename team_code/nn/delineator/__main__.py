"""``python -m team_code.nn.delineator``: the delineator's command line."""

import sys

from team_code.nn.delineator.post import main

sys.exit(main())
