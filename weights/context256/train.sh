#!/usr/bin/env bash
# Trains the context-256 model meant to replace weights/shakespeare-char.safetensors (the seed's
# context; issue: validation loss <= 1.45 over 200 batches). About 1.5 hours of a quiet 2-core
# machine. It runs in the background across sessions; resume it with
#   bash weights/context256/train.sh --resume weights/context256/shakespeare-char-256.f32.safetensors.state
# Float32 output (what --resume needs); the shipped file is its float16 conversion (gpt-convert).
set -euo pipefail
cd "$(dirname "$0")/../.."
make -s bin/gpt-train
exec ./bin/gpt-train --data "${GPTD_DATA:-../shared/data/tinyshakespeare.txt}" \
  --out weights/context256/shakespeare-char-256.f32.safetensors \
  --n-layer 6 --n-head 8 --n-embd 256 --block-size 256 --batch-size 16 \
  --max-iters 4000 --lr 1e-3 --min-lr 1e-4 --warmup-iters 100 --dropout 0.1 --weight-decay 0.1 \
  --eval-interval 250 --eval-iters 40 --seed 1337 --threads 2 --log-interval 25 "$@"
