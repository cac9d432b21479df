#!/usr/bin/env bash
# Issue 14: the built-in job's data and model (wiflow-quarter, 16 epochs, cosine), trained
# single-frame and with the causal sparse temporal head (model.temporal="sparse", T = 32),
# on one GPU, side by side; both evaluated on the protocol's test, unseen and val parts.
#   OUT=/path bash benches/gpu_temporal.sh   (from the repo root, csipose installed); writes $OUT/issue14/. Budget: <= 6 minutes
# (each training, with its evaluation, is cut at 250 s; a cut run is evaluated from its best
# checkpoint, 45 s at most, and the table gives the epochs it completed).
set -u
: "${OUT:?set OUT}"
R="$OUT/issue14"; W="${TMPDIR:-/tmp}/issue14-runs"
mkdir -p "$R" "$W"
exec > >(tee "$R/log.txt") 2>&1
date -u; nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python -c "import csipose, torch; print('csipose', csipose.__version__, 'torch', torch.__version__)"

# 1. The built-in dataset, simulated once (both trainings read the same cache).
t0=$(date +%s)
python - <<'PY'
from csipose.train import config
from csipose.train.data import dataset_path
print("store:", dataset_path(config.load(None)))
PY
echo "simulation: $(( $(date +%s) - t0 )) s"

# 2. Both trainings at once on the one GPU (each is bound by its Python loop, not the GPU).
common=(train.device="cuda" train.threads=4)
t1=$(date +%s)
timeout 250 csipose train "${common[@]}" train.run_dir="\"$W/single\"" > "$R/single.train.txt" 2>&1 &
p1=$!
timeout 250 csipose train "${common[@]}" model.temporal="sparse" train.run_dir="\"$W/temporal\"" \
  > "$R/temporal.train.txt" 2>&1 &
p2=$!
wait $p1; rc1=$?; wait $p2; rc2=$?
echo "training (both, in parallel): $(( $(date +%s) - t1 )) s; exit codes single $rc1, temporal $rc2 (124 = cut at 250 s)"

# 3. A cut run has no reports yet: evaluate its best checkpoint.
pids=()  # waited on by id: a bare `wait` would also wait for the tee above
for kind in single temporal; do
  for part in test unseen val; do
    if [ ! -f "$W/$kind/eval/$part/report.json" ] && [ -d "$W/$kind/checkpoints/best" ]; then
      (timeout 45 csipose eval "$W/$kind" --split "$part" --device cuda > "$R/$kind.$part.eval.txt" 2>&1 \
        || echo "eval $kind $part failed") &
      pids+=($!)
    fi
  done
done
for p in "${pids[@]}"; do wait "$p"; done
for kind in single temporal; do
  mkdir -p "$R/$kind"
  cp "$W/$kind/metrics.jsonl" "$W/$kind/config.toml" "$R/$kind/" 2>/dev/null
  cp "$W/$kind/checkpoints/best/model.safetensors" "$R/$kind/best.model.safetensors" 2>/dev/null
  for part in test unseen val; do
    mkdir -p "$R/$kind/eval/$part"
    cp "$W/$kind/eval/$part/report.json" "$W/$kind/eval/$part/report.md" "$R/$kind/eval/$part/" 2>/dev/null
  done
done

# 4. One table: MPJPE, torso-PCK@20 and the ratio to the mean-pose baseline, per part and model.
python - "$R" <<'PY' | tee "$R/summary.md"
import json, sys
from pathlib import Path
r = Path(sys.argv[1])
print("| model | part | epochs | samples | MPJPE (m) | baseline | ratio | torso-PCK@20 | baseline | ratio |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for kind in ("single", "temporal"):
    m = r / kind / "metrics.jsonl"
    epochs = len(m.read_text().splitlines()) if m.exists() else 0
    for part in ("test", "unseen", "val"):
        f = r / kind / "eval" / part / "report.json"
        if not f.exists():
            print(f"| {kind} | {part} | {epochs} | missing | | | | | | |")
            continue
        d = json.loads(f.read_text())
        mo, ba = d["model"], d["mean_pose_baseline"]
        cells = []
        for k in ("mpjpe", "pck@20"):
            a, b = mo[k]["value"], ba[k]["value"]
            cells += [f"{a:.4f}", f"{b:.4f}", f"{a / b:.3f}x"]
        print(f"| {kind} | {part} | {epochs} | {d['n_samples']} | " + " | ".join(cells) + " |")
print()
print("single = the built-in job (wiflow-quarter, one window -> its pose); temporal = the same")
print("frame model + causal sparse temporal attention over sequences of 32 windows")
print("(model.temporal=\"sparse\"). Same data, seed, epochs, optimiser and windows per step.")
PY
date -u
