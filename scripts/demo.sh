#!/usr/bin/env bash
# The kit end to end on its embedded default: generate synthetic 12-lead records with known
# labels, train, classify records the model never saw, and score them.
#   bash scripts/demo.sh [N_TRAIN] [N_TEST]
source "$(dirname "$0")/env.sh" requirements.txt
N_TRAIN="${1:-240}"
N_TEST="${2:-120}"
DEMO="${DEMO_DIR:-demo}"
python -m team_code.data.synth "$DEMO/train" --n "$N_TRAIN" --seed 1 --prefix SYN
python -m team_code.data.synth "$DEMO/test" --n "$N_TEST" --seed 2 --prefix TST
python train_model.py "$DEMO/train" "$DEMO/model" ${DEMO_CLASSIFIERS:+--classifiers "$DEMO_CLASSIFIERS"}
python run_model.py "$DEMO/model" "$DEMO/test" "$DEMO/outputs" --no-progress
python evaluation/evaluate.py "$DEMO/test" "$DEMO/outputs" "$DEMO/scores.csv" "$DEMO/class_scores.csv"
