#!/usr/bin/env bash
# The GPU path, ready to run: each deep engine (parallel_cnn, cwt_googlenet) trained a few
# epochs at its default sizes on the Challenge records with mixed precision (bf16 where the
# device supports it, else fp16 with a gradient scaler), first in one process, then under
# torchrun over every GPU; prints records/s and images/s and projects the time of a full
# 43,101-record training (benchmarks/gpu_check.py says what is measured and how).
# Without CUDA the same steps run at tiny sizes on the CPU, torchrun with two processes (gloo);
# the test suite rehearses it so (tests/test_gpu_check.py).
#
#   bash scripts/gpu_check.sh [DATA [OUT]]
#
# DATA: the records (default $ECG_KIT_DATA/challenge, else ../shared/data/challenge); OUT: where
# the figures go as JSON (default: a new temporary folder). It runs the Python of the current
# environment ($PYTHON names another): on a GPU machine, one with a CUDA build of torch.
# GPU_CHECK_OPTIONS adds options of benchmarks/gpu_check.py to both stages (e.g. "--records 24").
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
DATA="${1:-${ECG_KIT_DATA:-../shared/data}/challenge}"
OUT="${2:-$(mktemp -d -t gpu_check.XXXXXX)}"
read -r -a EXTRA <<< "${GPU_CHECK_OPTIONS:-}"
mkdir -p "$OUT"
start=$SECONDS
"$PYTHON" -c 'import torch; print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.device_count()} GPU(s)")'
GPUS="$("$PYTHON" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)')"
if [ "$GPUS" -gt 0 ]; then
    NPROC="$GPUS"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
else
    NPROC=2
    echo "no CUDA: tiny sizes on the CPU, torchrun with $NPROC processes"
fi

echo "== one process"
"$PYTHON" -m benchmarks.gpu_check --data "$DATA" --cache "$OUT/cache" --json "$OUT/single.json" \
    "${EXTRA[@]}"
echo "== torchrun, $NPROC process(es)"
"$PYTHON" -m torch.distributed.run --standalone --nproc_per_node="$NPROC" \
    -m benchmarks.gpu_check --data "$DATA" --cache "$OUT/cache" --baseline "$OUT/single.json" \
    --json "$OUT/torchrun.json" "${EXTRA[@]}"
rm -rf "$OUT/cache"
echo "gpu_check: done in $((SECONDS - start)) s; figures in $OUT/single.json, $OUT/torchrun.json"
