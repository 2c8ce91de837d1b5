#!/usr/bin/env bash
# The lecture's own configuration, gpt-train's defaults: 6 layers, 6 heads, width 384, context
# 256, batch 64, 5,000 steps, lr 3e-4, dropout 0.2, an evaluation every 500 steps over 200
# batches, here with seed 1337. Writes $OUT (default weights/seed/seed.safetensors) and $OUT.state
# at each evaluation; the log (the lecture's lines) goes to stdout, progress to stderr.
#   bash weights/seed/train.sh > train.log                     # from the start
#   bash weights/seed/train.sh --resume OUT.state >> train.log  # continue (Ctrl-C saves)
# Extra flags pass through (--threads N).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-weights/seed/seed.safetensors}
make -s bin/gpt-train
exec ./bin/gpt-train --out "$OUT" --seed 1337 "$@"
