#!/usr/bin/env bash
# The kit end to end on its embedded default: generate synthetic 12-lead records with known
# labels, train the hybrid, classify records the model never saw, and score them.
#   bash scripts/demo.sh [N_TRAIN] [N_TEST]
# The deep engines train with the CPU preset (`--preset cpu`, sized for a 2-core machine); on a
# GPU, or for real data, train with the default preset (the papers' settings) instead.
# The default hybrid considers every engine (rules, parallel_cnn, cwt_googlenet) and keeps, for
# each class, what its out-of-fold evidence on the training records supports (docs/hybrid.md);
# the training log says which engine serves each class.
# DEMO_OPTIONS adds options (e.g. "--set parallel_cnn.epochs=3 --threads 1").
source "$(dirname "$0")/env.sh" requirements.txt
N_TRAIN="${1:-240}"
N_TEST="${2:-120}"
DEMO="${DEMO_DIR:-demo}"
DEMO_OPTIONS="${DEMO_OPTIONS:-}"
python -m team_code.data.synth "$DEMO/train" --n "$N_TRAIN" --seed 1 --prefix SYN
python -m team_code.data.synth "$DEMO/test" --n "$N_TEST" --seed 2 --prefix TST
# shellcheck disable=SC2086
python train_model.py "$DEMO/train" "$DEMO/model" --preset cpu $DEMO_OPTIONS
python run_model.py "$DEMO/model" "$DEMO/test" "$DEMO/outputs" --no-progress
python evaluation/evaluate.py "$DEMO/test" "$DEMO/outputs" "$DEMO/scores.csv" "$DEMO/class_scores.csv"
