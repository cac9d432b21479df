#!/usr/bin/env bash
# Train the ADR-175 model (WiFlow-STD half on the simulated WiFlow profile) and
# quantize it with every method; prints the compression report (docs/quantize.md),
# which says which of the README's int8 targets are met.
#
#   benches/quantize_targets.sh [THREADS]      (default: all cores)
#
# Runs `csipose train configs/wiflow-half.toml` (20 epochs; CSIPOSE_DEVICE=cuda trains on a
# GPU), then `csipose quantize` into runs/wiflow-half.quantized.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS="${1:-$(nproc)}"
DEVICE="${CSIPOSE_DEVICE:-cpu}"
RUN=runs/wiflow-half
echo "== $(date -u +%FT%TZ) $(uname -m), $(nproc) cores, ${THREADS} threads; $(python -c 'import torch, torchao, onnxruntime; print("torch", torch.__version__, "torchao", torchao.__version__, "onnxruntime", onnxruntime.__version__)')"
grep -m1 "model name" /proc/cpuinfo || true
csipose train configs/wiflow-half.toml "train.threads=${THREADS}" --device "${DEVICE}"
csipose quantize "${RUN}" --method all --calibration 256 --qat-epochs 3 --threads "${THREADS}" \
    --out "${RUN}.quantized"
