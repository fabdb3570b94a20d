"""Signal processing on numpy arrays; every routine takes ``fs``. Never imports torch."""
