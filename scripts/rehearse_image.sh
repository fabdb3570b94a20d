#!/usr/bin/env bash
# Rehearse the Docker image's install step where no Docker engine runs (CI): the Dockerfile's
# own `pip install` line, run in a fresh virtual environment, then the three CLIs end to end
# on generated records. (Where pip finds the CPU build of torch, as on CI, the rehearsal
# installs it; the image gets PyPI's CUDA 13.0 build, which runs on the CPU too. torchvision,
# which the image uses only at build time to fetch the ImageNet weights, is built against
# PyPI's torch: in the image it imports with or without a GPU, but beside the CPU build of
# torch it does not, so it is installed here and not imported. Fetching the weights needs the
# internet and is left to `docker build`.)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
VENV="${REHEARSAL_VENV:-.venv-image}"
install=$(grep -o 'pip install [^&\\]*' Dockerfile | head -n 1)
[ -n "$install" ] || { echo "no pip install line in the Dockerfile" >&2; exit 1; }
rm -rf "$VENV"
"${PYTHON:-python3}" -m venv "$VENV"
echo "rehearsing: $install"
# shellcheck disable=SC2086
"$VENV/bin/python" -m $install --quiet
work=$(mktemp -d)
trap 'rm -rf "$work" "$VENV"' EXIT
"$VENV/bin/python" -m team_code.data.synth "$work/train" --n 30 --seed 1
"$VENV/bin/python" -m team_code.data.synth "$work/test" --n 10 --seed 2 --prefix TST
"$VENV/bin/python" train_model.py "$work/train" "$work/model" --classifiers rules,prevalence \
    --set rules.tune=false
"$VENV/bin/python" run_model.py "$work/model" "$work/test" "$work/out" --no-progress
"$VENV/bin/python" evaluation/evaluate.py "$work/test" "$work/out" "$work/scores.csv"
test "$(find "$work/out" -name '*.csv' | wc -l)" -eq 10
echo "image install rehearsal passed"
