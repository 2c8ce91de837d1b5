#!/usr/bin/env bash
# Trains the float32 weights of the shipped model (context 256, the lecture's): about 1.7 hours of a
# quiet 2-core machine, resumable across sessions with
#   bash weights/context256/train.sh --resume weights/context256/shakespeare-char-256.f32.safetensors.state
# (the .state, kept in git, holds the weights and AdamW moments at the shipped step 4000).
# weights/train.sh runs this and rounds the result to the shipped float16 file (gpt-convert).
set -euo pipefail
cd "$(dirname "$0")/../.."
make -s bin/gpt-train
exec ./bin/gpt-train --data "${GPTD_DATA:-../shared/data/tinyshakespeare.txt}" \
  --out weights/context256/shakespeare-char-256.f32.safetensors \
  --n-layer 6 --n-head 8 --n-embd 256 --block-size 256 --batch-size 16 \
  --max-iters 4000 --lr 1e-3 --min-lr 1e-4 --warmup-iters 100 --dropout 0.1 --weight-decay 0.1 \
  --eval-interval 250 --eval-iters 40 --seed 1337 --threads 2 --log-interval 25 "$@"
