#!/usr/bin/env bash
# The kit end to end on its embedded default: generate synthetic 12-lead records with known
# labels, train the hybrid, classify records the model never saw, and score them.
#   bash scripts/demo.sh [N_TRAIN] [N_TEST]
# The deep engines get CPU-sized settings here (DEMO_OPTIONS); on a GPU, or for real data,
# train with their defaults (the papers' settings) instead.
source "$(dirname "$0")/env.sh" requirements.txt
N_TRAIN="${1:-240}"
N_TEST="${2:-120}"
DEMO="${DEMO_DIR:-demo}"
DEMO_OPTIONS="${DEMO_OPTIONS:---set hybrid.n_folds=3
  --set parallel_cnn.fs_hz=250 --set parallel_cnn.length=2500 --set parallel_cnn.filters=16
  --set parallel_cnn.epochs=6 --set parallel_cnn.lr=0.001 --set parallel_cnn.progress=false
  --set cwt_googlenet.image_size=64 --set cwt_googlenet.epochs=3 --set cwt_googlenet.lr=0.001
  --set cwt_googlenet.batch_size=16 --set cwt_googlenet.n_max=100
  --set cwt_googlenet.max_copies=2}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
python -m team_code.data.synth "$DEMO/train" --n "$N_TRAIN" --seed 1 --prefix SYN
python -m team_code.data.synth "$DEMO/test" --n "$N_TEST" --seed 2 --prefix TST
# shellcheck disable=SC2086
python train_model.py "$DEMO/train" "$DEMO/model" $DEMO_OPTIONS
python run_model.py "$DEMO/model" "$DEMO/test" "$DEMO/outputs" --no-progress
python evaluation/evaluate.py "$DEMO/test" "$DEMO/outputs" "$DEMO/scores.csv" "$DEMO/class_scores.csv"
