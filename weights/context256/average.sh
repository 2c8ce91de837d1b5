#!/usr/bin/env bash
# The shipped weights: the mean of three checkpoints of the context-256 run, taken 125 steps apart
# at its final learning rate (1e-4). The run's state at step 4,000 (committed, from train.sh) goes
# on to step 4,250, its --out file copied after the evaluation at step 4,125; the float32 mean of
# steps 4,000, 4,125 and 4,250 is rounded to float16 as shakespeare-char.safetensors. About 8
# minutes of a quiet 2-core machine. Writes its scratch files under ${TMPDIR:-/tmp}.
set -euo pipefail
cd "$(dirname "$0")/../.."
make -s bin/gpt-train bin/gpt-convert
work=$(mktemp -d "${TMPDIR:-/tmp}/gptd-average.XXXXXX")
start=weights/context256/shakespeare-char-256.f32.safetensors.state
./bin/gpt-train --data "${GPTD_DATA:-../shared/data/tinyshakespeare.txt}" --resume "$start" \
  --out "$work/run.f32.safetensors" --max-iters 4250 --eval-interval 125 --eval-iters 40 \
  --threads 2 --log-interval 25 2>&1 | tee "$work/run.log" |
  while IFS= read -r line; do
    echo "$line"
    # The checkpoint of step 4,125 is overwritten at 4,250: keep a copy once it is saved.
    case $line in "eval at step 4125"*) cp "$work/run.f32.safetensors" "$work/step4125.f32.safetensors" ;; esac
  done
./bin/gpt-convert --model "$start" --average "$work/step4125.f32.safetensors" \
  --average "$work/run.f32.safetensors" --dtype f32 --out "$work/average.f32.safetensors"
./bin/gpt-convert --model "$work/average.f32.safetensors" --out weights/shakespeare-char.safetensors
echo "average.sh: wrote weights/shakespeare-char.safetensors (scratch files in $work)"
