"""Records, labels, output files and synthetic data."""
