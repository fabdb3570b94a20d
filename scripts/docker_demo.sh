#!/usr/bin/env bash
# For machines with Docker: build the image, then train on generated demo data, classify
# held-out generated records and score them, all inside the container.
#   bash scripts/docker_demo.sh [--gpus all]
# The container runs as the calling user (--user "$(id -u):$(id -g)"), so that it can write
# into demo-docker/, which that user owns, under root or rootless Docker and on CI runners.
set -euo pipefail
cd "$(dirname "$0")/.."
docker build -t ecg-kit .
mkdir -p demo-docker
docker run --rm --user "$(id -u):$(id -g)" "$@" -v "$PWD/demo-docker:/work" ecg-kit bash -c '
  set -e
  python -m team_code.data.synth /work/train --n 240 --seed 1 --prefix SYN
  python -m team_code.data.synth /work/test --n 120 --seed 2 --prefix TST
  python train_model.py /work/train /work/model
  python run_model.py /work/model /work/test /work/outputs --no-progress
  python evaluation/evaluate.py /work/test /work/outputs /work/scores.csv'
