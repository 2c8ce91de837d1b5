#!/usr/bin/env bash
# Reproduces weights/shakespeare-char.safetensors (the shipped model, context 256): trains the
# float32 model in weights/context256/ (about 1.7 hours on a quiet 2-core machine; resumable,
# see context256/train.sh), then rounds it to the shipped float16 file.
#   bash weights/train.sh                     # from scratch
#   bash weights/train.sh --resume weights/context256/shakespeare-char-256.f32.safetensors.state
set -euo pipefail
cd "$(dirname "$0")/.."
bash weights/context256/train.sh "$@"
make -s bin/gpt-convert
./bin/gpt-convert --model weights/context256/shakespeare-char-256.f32.safetensors \
  --out weights/shakespeare-char.safetensors
