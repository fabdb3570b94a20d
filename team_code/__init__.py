"""ECG classification kit for the PhysioNet/CinC Challenge 2020 scored diagnoses.

Subpackages: ``data`` (records, labels, outputs, synthetic data), ``dsp`` (numpy/scipy signal
processing), ``classifiers`` (the registry and the classifier families), ``nn`` (torch
building blocks and training core), ``beats`` (beat-level networks). ``harness`` is the only
module that walks folders. Importing the package does nothing else.
"""

__version__ = "0.1.0"
