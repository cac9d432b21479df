#!/usr/bin/env bash
# Issue 16 on one GPU: the leave-rooms-out experiment at a larger size than 2 CPU cores allow.
#
#   OUT=/path/to/out bash benches/gpu_unseen_rooms.sh          # from the repo root; csipose already installed
#   ISSUE16_SMALL=1 OUT=/tmp/o bash benches/gpu_unseen_rooms.sh # the same logic at a toy size (CPU, ~minutes)
#
# Pose (MM-Fi profile, 12 rooms: 7 training, 1 validation, 4 unseen) and counting (ESP32
# profile, 12 rooms) are simulated on the CPU cores, fixed rooms and domain-randomised
# (per-sequence drawn) training rooms at once. Then the candidates the 2-core runs
# found promising (docs/generalisation.md) are trained on the GPU (bf16 autocast,
# batch x4 with the learning rate x4, a quarter-size WiFlow): each variant is scored on
# the validation room, the variant with the best validation number is chosen, and only
# that one is evaluated on the 4 unseen rooms, once (benches/unseen_rooms.py --unseen
# chosen). Pose runs stop early on held-out people of their training rooms (val_people).
# Budget: <= 6 minutes in all; every stage has its own timeout and the results written
# so far survive a stage that runs out. Results: $OUT/issue16/ (results-*.md / .json,
# per-room reports of the chosen runs, logs, timings.txt).
set -uo pipefail
OUT=${OUT:-runs/gpu-out}
R="$OUT/issue16"
mkdir -p "$R"
WORK=${ISSUE16_WORK:-/tmp/issue16-work}
mkdir -p "$WORK"
start=$(date +%s)
stamp() { echo "[$(( $(date +%s) - start )) s] $*" | tee -a "$R/timings.txt"; }
NPROC=$(nproc)

python - <<'PY' 2>&1 | tee "$R/env.txt"
import torch, csipose
print("csipose", csipose.__version__, "torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
PY
if python -c "import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  DEV=(--device cuda --amp bf16 --batch-scale 4 --threads "$NPROC")
else
  DEV=(--device cpu --threads 1)
fi

if [ "${ISSUE16_SMALL:-0}" = 1 ]; then
  POSE=(--environments 6 --subjects 3 --frames 4 --epochs 2 --pose-model wiflow-tiny)
  COUNT=(--environments 6 --count-subjects 2 --count-sequences 3 --count-frames 30 --count-epochs 2)
  SIM_T=300; POSE_T=400; COUNT_T=200
else
  POSE=(--environments 12 --subjects 5 --frames 16 --epochs 24 --pose-model wiflow-quarter --model-options "")
  COUNT=(--environments 12 --count-subjects 6 --count-sequences 4 --count-frames 60 --count-epochs 40)
  SIM_T=140; POSE_T=140; COUNT_T=60
fi

# 1. The four datasets at once on the CPU cores (deterministic in the seed whatever the threads).
export RAYON_NUM_THREADS=$(( NPROC / 4 > 0 ? NPROC / 4 : 1 ))
for only in pose count; do
  for rooms in fixed per_sequence; do
    sizes=("${POSE[@]}"); [ "$only" = count ] && sizes=("${COUNT[@]}")
    timeout "$SIM_T" python benches/unseen_rooms.py --root "$WORK" --simulate-only --only "$only" \
        --rooms "$rooms" "${sizes[@]}" > "$R/sim-$only-$rooms.log" 2>&1 &
  done
done
wait
stamp "simulated (logs: sim-*.log)"
export RAYON_NUM_THREADS=$NPROC

# 2. Pose on the GPU: chosen on the validation room, the unseen rooms once for the chosen one.
timeout "$POSE_T" python benches/unseen_rooms.py --root "$WORK" --only pose "${POSE[@]}" "${DEV[@]}" \
    --batch-size 64 --early-stop 8 --unseen chosen \
    --variants "baseline (today's inputs)" "domain-randomised rooms" \
               "domain-randomised + static_removal + augment" \
    > "$R/pose.log" 2>&1
echo "exit $?" >> "$R/pose.log"
stamp "pose done (pose.log)"

# 3. Counting on the GPU, the same rule (validation-room MAE chooses).
timeout "$COUNT_T" python benches/unseen_rooms.py --root "$WORK" --only count "${COUNT[@]}" "${DEV[@]}" \
    --unseen chosen \
    --variants "baseline (today's inputs)" "static_removal" "domain-randomised + static_removal" \
    > "$R/count.log" 2>&1
echo "exit $?" >> "$R/count.log"
stamp "count done (count.log)"

# 4. Results and the chosen runs' per-room reports (validation room, in-room test, unseen).
cp "$WORK"/results-*.md "$WORK"/results-*.json "$R"/ 2>/dev/null
for rep in "$WORK"/runs/*/eval/*/report.md "$WORK"/runs/*/count_eval/*/report.md; do
  [ -f "$rep" ] || continue
  run=$(basename "$(dirname "$(dirname "$(dirname "$rep")")")")
  part=$(basename "$(dirname "$rep")")
  cp "$rep" "$R/$run-$part.md"
  cp "$(dirname "$rep")/report.json" "$R/$run-$part.json" 2>/dev/null
done
grep -h '^{' "$R"/pose.log "$R"/count.log > "$R/rows.jsonl" 2>/dev/null
cat "$R"/results-*.md 2>/dev/null
stamp "done"
