#!/usr/bin/env bash
# Install the dev requirements into ./.venv, lint, and run the default test suite.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -m slow`).
source "$(dirname "$0")/env.sh" requirements-dev.txt
ecg-kit --version  # the install step above ran (tests/test_install.py checks pip install . itself)
ruff check .
hadolint Dockerfile
ruff format --check .
python -m pytest "$@"
