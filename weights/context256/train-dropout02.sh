#!/usr/bin/env bash
# The second context-256 run: the first (train.sh, dropout 0.1) overfit (train 1.13, validation
# 1.45), so this one doubles dropout to the lecture's 0.2 and runs 5,000 steps. One thread, so that
# it can run beside other work (about 2.2 s a step here, 3 hours); resumable across sessions with
#   bash weights/context256/train-dropout02.sh --resume weights/context256/shakespeare-char-256-d02.f32.safetensors.state
set -euo pipefail
cd "$(dirname "$0")/../.."
make -s bin/gpt-train
exec ./bin/gpt-train --data "${GPTD_DATA:-../shared/data/tinyshakespeare.txt}" \
  --out weights/context256/shakespeare-char-256-d02.f32.safetensors \
  --n-layer 6 --n-head 8 --n-embd 256 --block-size 256 --batch-size 16 \
  --max-iters 5000 --lr 1e-3 --min-lr 1e-4 --warmup-iters 100 --dropout 0.2 --weight-decay 0.1 \
  --eval-interval 250 --eval-iters 40 --seed 1337 --threads 1 --log-interval 25 "$@"
