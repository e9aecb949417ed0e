#!/usr/bin/env bash
# GPU benchmark (issue 10): netfloc run vs the bare GPU forward pass, whole processes, A/B alternated twice,
# same data loading (decoding workers, pinned memory). Prints both times, the ratio (target <= 1.5x including
# decoding) and images/s. Needs a CUDA GPU, netfloc installed in the active Python, and the fLoc images in
# ../shared/stimuli/floc (864 images of the study's six categories are built once). Under 5 minutes on one GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU here')"
MODEL=${MODEL:-torchvision:resnet50:random}
WORKERS=${WORKERS:-8}
CACHE=${CACHE:-/tmp/netfloc-gpu-bench}
STIMULI="$CACHE/paper-144"
if [ ! -f "$STIMULI/manifest.csv" ]; then
  netfloc stimuli build paper --floc ../shared/stimuli/floc --out "$STIMULI" --per-category 144 --force >/dev/null
fi
N=$(find "$STIMULI" -name '*.png' | wc -l)
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
seconds() { /usr/bin/time -f "%e" -o "$CACHE/time" "$@" >/dev/null 2>"$CACHE/log" || { cat "$CACHE/log"; exit 1; }; cat "$CACHE/time"; }
best_bare=999999; best_run=999999
for repeat in 1 2; do
  # the bare forward gets the process settings of the netfloc script: its garbage-collection pause
  # (netfloc.cli.common.pause_garbage_collection) and its memory format
  bare=$(seconds python benchmarks/bare_forward.py --model "$MODEL" --stimuli "$STIMULI" \
         --device cuda --workers "$WORKERS" --pause-gc --memory-format auto)
  run=$(seconds netfloc run --model "$MODEL" --stimuli "$STIMULI" --layers stages --device cuda --workers "$WORKERS" \
        --out "$CACHE/run" --force --no-report)
  echo "repeat $repeat: bare forward ${bare}s, netfloc run ${run}s"
  best_bare=$(python -c "print(min($best_bare, $bare))"); best_run=$(python -c "print(min($best_run, $run))")
done
python - "$best_bare" "$best_run" "$N" "$CACHE/run/run.json" <<'PY'
import json, sys
bare, run, n, info = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), json.load(open(sys.argv[4]))
timings = info["models"][0]["timings_s"]
print(f"device: {info['device']}")
print(f"bare forward {bare:.1f}s ({n / bare:.0f} images/s), netfloc run {run:.1f}s ({n / run:.0f} images/s)")
print(f"ratio run / bare forward: {run / bare:.2f} (target <= 1.5)")
print(f"inside the run: record {timings['record']:.1f}s, statistics {timings['statistics']:.1f}s")
PY
