"""Benchmarks: scripts that measure the kit's accuracy and speed and print their tables.

Run one from the repository root as ``python -m benchmarks.NAME [options]`` (``python -m
benchmarks.qrs --help``), or, with the kit installed (``pip install .``), as ``python
benchmarks/NAME.py`` from anywhere. Most read real data from ``../shared/data`` or
``$ECG_KIT_DATA``; ``docs/results.md`` gives each table with its command.
"""
