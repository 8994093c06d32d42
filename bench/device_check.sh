#!/usr/bin/env bash
# The GPU check, as one script for a lent GPU machine (see bench/README.md, "On a GPU"):
#   1. every Lightning system at its small() config, bf16-mixed, timed (bench/gpu_smoke.py);
#   2. every chapter at `small` on the GPU as a script (bench/chapter_script.py), steps and sets
#      capped (a check that training and evaluation run on the GPU, with wall time and peak memory).
# Usage: bench/device_check.sh OUTDIR [CHAPTERS...]   (ESSER_LAB_MAX_STEPS/SAMPLES to change caps)
set -uo pipefail
out=${1:?usage: bench/device_check.sh OUTDIR [CHAPTERS...]}
shift
chapters=("$@")
[[ ${#chapters[@]} -gt 0 ]] || chapters=(01 02 03 04 05 06 07 08 09 10)
mkdir -p "$out/logs"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 MPLBACKEND=Agg
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
python3 -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__)" | tee -a "$out/gpu.txt"

if [[ ${SKIP_SYSTEMS:-0} != 1 ]]; then
  timeout "${SYSTEMS_TIMEOUT:-150}" python3 bench/gpu_smoke.py "$out/gpu_small_systems.csv" \
    --steps 20 >"$out/logs/gpu_smoke.log" 2>&1
  echo "gpu_smoke exit $?"; tail -n 3 "$out/logs/gpu_smoke.log"
fi

export ESSER_LAB_SCALE=small ESSER_LAB_PRETRAINED=stand-in
export ESSER_LAB_MAX_STEPS=${ESSER_LAB_MAX_STEPS:-200} ESSER_LAB_MAX_SAMPLES=${ESSER_LAB_MAX_SAMPLES:-4096}
export ESSER_LAB_CARDS=$out/cards ESSER_LAB_THREADS=${ESSER_LAB_THREADS:-3}
run() {
  timeout "${CHAPTER_TIMEOUT:-330}" python3 bench/chapter_script.py "$1" >"$out/logs/$1.log" 2>&1
  echo "chapter $1 exit $?"
}
# ${JOBS:-5} chapters at a time on the one GPU
for c in "${chapters[@]}"; do
  run "$c" &
  while [[ $(jobs -rp | wc -l) -ge ${JOBS:-5} ]]; do sleep 1; done
done
wait
grep -h '^RESULT ' "$out"/logs/*.log | sed 's/^RESULT //' >"$out/chapters_gpu.jsonl"
cat "$out/chapters_gpu.jsonl"
