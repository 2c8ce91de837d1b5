#!/usr/bin/env bash
# Reproduces weights/shakespeare-char.safetensors (the shipped model). About 1.5 hours on a
# 2-core machine. Resume an interrupted run with: bash weights/train.sh --resume weights/shakespeare-char.safetensors.state
set -euo pipefail
cd "$(dirname "$0")/.."
make -s bin/gpt-train
exec ./bin/gpt-train --data "${GPTD_DATA:-../shared/data/tinyshakespeare.txt}" \
  --out weights/shakespeare-char.safetensors \
  --n-layer 6 --n-head 8 --n-embd 256 --block-size 128 --batch-size 32 \
  --max-iters 4000 --lr 1e-3 --min-lr 1e-4 --warmup-iters 100 --dropout 0.1 \
  --eval-interval 500 --eval-iters 40 --seed 1337 --threads 2 --log-interval 25 "$@"
