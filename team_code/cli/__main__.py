"""``python -m team_code.cli``: the ``ecg-kit`` command without installing the package."""

import sys

from team_code.cli import main

sys.exit(main())
