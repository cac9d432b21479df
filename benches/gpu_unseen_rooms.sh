#!/usr/bin/env bash
# The leave-rooms-out experiment at a larger size on one GPU (issue 16).
#
#   OUT=/path/to/out bash benches/gpu_unseen_rooms.sh
#
# Needs a built abi3 wheel at dist/*.whl (maturin build --release) and torch
# already installed; installs the wheel without dependencies (the machine may
# be offline), simulates the protocol's four datasets in parallel, times a
# training step on CPU and GPU, trains the configurations the small CPU runs
# found most promising on the validation room (docs/generalisation.md) with
# --device cuda, and prints the tables. Budget: under 8 minutes in total (each
# stage has its own timeout); everything is written under $OUT.
set -uo pipefail
OUT=${OUT:-runs/gpu-unseen}
mkdir -p "$OUT"
cd "$(dirname "$0")/.."
start=$(date +%s)
elapsed() { echo "[$(( $(date +%s) - start )) s] $*"; }

pip install --no-deps --force-reinstall --quiet dist/*.whl || exit 1
python - <<'EOF' || exit 1
import importlib.util
missing = [m for m in ("numpy", "torch", "safetensors", "scipy", "matplotlib", "tqdm")
           if importlib.util.find_spec(m) is None]
if missing:
    raise SystemExit(f"missing Python packages: {missing} (pip install them, then rerun)")
import torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
EOF
elapsed "installed"

ROOT="$OUT/unseen"
POSE=(--environments 12 --subjects 4 --frames 16)
COUNT=(--environments 12 --count-subjects 6 --count-sequences 3 --count-frames 80)
# The four datasets at once, 4 threads each (deterministic in the seed whatever the threads).
for only in pose count; do
  for rooms in fixed per_sequence; do
    sizes=("${POSE[@]}"); [ "$only" = count ] && sizes=("${COUNT[@]}")
    RAYON_NUM_THREADS=4 timeout 200 python benches/unseen_rooms.py --root "$ROOT" --simulate-only \
        --only "$only" --rooms "$rooms" "${sizes[@]}" > "$OUT/sim-$only-$rooms.log" 2>&1 &
  done
done
wait
cat "$OUT"/sim-*.log
elapsed "simulated"

export RAYON_NUM_THREADS=$(nproc)
# Training throughput of the built-in model on the protocol's data: all CPU cores, then the GPU.
timeout 60 python benches/bench_train.py --device cpu,cuda --steps 30 'data.source="store"' \
    "data.store=\"$ROOT/pose-fixed-e12-s4-f16\"" data.split=rooms 'data.test_parts=["test","unseen"]' "train.threads=$(nproc)" \
    2>&1 | tee "$OUT/bench_train.md"
elapsed "bench_train done"

# Pose: a quarter-size WiFlow, 7 training rooms; today's inputs (chosen on the CPU runs'
# validation room) against domain-randomised rooms with static removal and augmentation.
timeout 170 python benches/unseen_rooms.py --root "$ROOT" --device cuda --threads "$(nproc)" \
    --only pose "${POSE[@]}" --epochs 20 --batch-size 128 \
    --pose-model wiflow-quarter --model-options "" \
    --variants "baseline (today's inputs)" "domain-randomised + static_removal + augment" \
    2>&1 | tee "$OUT/pose.log"
elapsed "pose done"

# Counting: today's inputs against static removal (chosen on the CPU runs' validation room).
timeout 70 python benches/unseen_rooms.py --root "$ROOT" --device cuda --threads "$(nproc)" \
    --only count "${COUNT[@]}" --count-epochs 30 \
    --variants "baseline (today's inputs)" "static_removal" "domain-randomised + static_removal" \
    2>&1 | tee "$OUT/count.log"
elapsed "count done"
cat "$ROOT"/results-*.md 2>/dev/null
