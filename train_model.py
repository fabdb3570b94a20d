#!/usr/bin/env python
"""Train classifiers on a folder of Challenge records: ``python train_model.py DATA MODEL``.

The same command as ``ecg-kit train``; its code is :mod:`team_code.cli.train`. Python puts this
script's folder, the repository root, on the import path, so it runs from any current folder
with the package installed or not.
"""

import sys

from team_code.cli.train import get_parser, main

__all__ = ["get_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
