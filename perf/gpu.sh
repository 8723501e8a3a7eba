#!/usr/bin/env bash
# GPU throughput check (not part of CI): xformers vs SDPA attention, bf16, torch.compile, for
# BERT-base seq 128/512 and GPT-2 124M seq 1024, against transformers; tokens/s and MFU.
#
#   bash perf/gpu.sh [RESULTS_DIR]       # default: $ZOO_PERF_OUT, else $OUT, else perf/results/gpu
#   bash perf/gpu.sh DIR --smoke         # tiny models on CPU, to check the script anywhere
#
# Extra arguments go to perf/gpu.py. Designed to finish in under 8 minutes: no configuration
# starts after 420 s and the whole run is stopped at 470 s (partial results are kept: gpu.json is
# rewritten after every configuration).
set -u
cd "$(dirname "$0")/.."
OUT_DIR="${1:-${ZOO_PERF_OUT:-${OUT:-perf/results/gpu}}}"
shift || true
PY="${PYTHON:-python3}"
mkdir -p "$OUT_DIR"
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 || echo "no nvidia-smi"
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"
} >"$OUT_DIR/environment.txt" 2>&1
# The registry finds built-in backbones and objectives through package metadata: install the
# checkout (no dependencies, no network) when this Python does not know it yet.
if ! "$PY" -c "import importlib.metadata as m; m.distribution('objective-zoo')" 2>/dev/null; then
  "$PY" -m pip install --quiet --no-deps --no-build-isolation --no-index -e . >>"$OUT_DIR/environment.txt" 2>&1 \
    || echo "could not install the checkout; configurations will report the registry error" >>"$OUT_DIR/environment.txt"
fi
timeout 470 "$PY" perf/gpu.py --out "$OUT_DIR" "$@" 2>&1 | tee "$OUT_DIR/gpu.log"
status=${PIPESTATUS[0]}
[ "$status" = 124 ] && echo "stopped at the 470 s limit; partial results in $OUT_DIR/gpu.json" | tee -a "$OUT_DIR/gpu.log"
exit "$status"
