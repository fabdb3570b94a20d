#!/usr/bin/env python
"""Classify records: ``python run_model.py MODEL DATA OUTPUTS`` writes OUTPUTS/<record>.csv.

The same command as ``ecg-kit run`` (exit status 0, 1 when some records failed, 2 for a usage
error); its code is :mod:`team_code.cli.run`. Python puts this script's folder, the repository
root, on the import path, so it runs from any current folder with the package installed or not.
"""

import sys

from team_code.cli.run import get_parser, main

__all__ = ["get_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
