#!/usr/bin/env bash
# The leave-rooms-out experiment at a larger size on one GPU (issue 16).
#
#   OUT=/path/to/out bash benches/gpu_unseen_rooms.sh
#
# Needs a built abi3 wheel at dist/*.whl (maturin build --release) and torch
# already installed; installs the wheel without dependencies (the machine may
# be offline), simulates the protocol's data with every core, trains the most
# promising configurations found on the small CPU runs (docs/generalisation.md)
# with --device cuda, and prints the table. Budget: under 8 minutes in total
# (each stage has its own timeout); everything is written under $OUT.
set -euo pipefail
OUT=${OUT:-runs/gpu-unseen}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
start=$(date +%s)
elapsed() { echo "[$(( $(date +%s) - start )) s] $*"; }

pip install --no-deps --force-reinstall --quiet dist/*.whl
python - <<'EOF'
import importlib
missing = [m for m in ("numpy", "torch", "safetensors", "scipy", "matplotlib", "tqdm")
           if importlib.util.find_spec(m) is None]
if missing:
    raise SystemExit(f"missing Python packages: {missing} (pip install them, then rerun)")
import torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
EOF
elapsed "installed"

CORES=$(nproc)
export RAYON_NUM_THREADS=$CORES
# Training throughput: the built-in model, CPU (all cores) and GPU side by side.
timeout 120 python benches/bench_train.py --device cpu,cuda --steps 40 \
    "data.cache_dir=\"$OUT/cache\"" "train.threads=$CORES" 2>&1 | tee "$OUT/bench_train.md" || true
elapsed "bench_train done"

# Pose: a quarter-size WiFlow on 14 rooms (9 training, 1 validation, 4 unseen), more
# people and frames than the CPU run; today's inputs against the CPU run's best.
timeout 210 python benches/unseen_rooms.py --root "$OUT/unseen" --device cuda --threads "$CORES" \
    --only pose --environments 14 --subjects 5 --frames 24 --epochs 20 --batch-size 128 \
    --pose-model wiflow-quarter --model-options "" \
    --variants "baseline (today's inputs)" "domain-randomised rooms" \
    "domain-randomised + static_removal + augment" 2>&1 | tee "$OUT/pose.log" || true
elapsed "pose done"

# Counting: CountNet on the same protocol, more scenes per room.
timeout 110 python benches/unseen_rooms.py --root "$OUT/unseen" --device cuda --threads "$CORES" \
    --only count --environments 14 --count-subjects 6 --count-sequences 4 --count-frames 100 \
    --count-epochs 30 \
    --variants "baseline (today's inputs)" "capture_norm" "domain-randomised + capture_norm" \
    2>&1 | tee "$OUT/count.log" || true
elapsed "count done"
cat "$OUT"/unseen/results-*.md 2>/dev/null || true
