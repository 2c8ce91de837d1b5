#!/usr/bin/env bash
# Training speed, side by side in one run: bin/gpt-train and the PyTorch reference
# (bench/train_reference.py, Debian's python3-torch at its best: 2 threads, GOMP_SPINCOUNT=0)
# on the same config, data and thread count. Prints tokens/s of each and the ratio.
# Config defaults to the shipped model's; override with the environment variables below.
set -euo pipefail
cd "$(dirname "$0")/.."
L=${L:-6} NH=${NH:-8} C=${C:-256} T=${T:-128} B=${B:-32} ACT=${ACT:-relu} DROPOUT=${DROPOUT:-0.1}
STEPS=${STEPS:-20} THREADS=${THREADS:-2}
DATA=${GPTD_DATA:-../shared/data/tinyshakespeare.txt}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "config: L=$L NH=$NH C=$C T=$T B=$B act=$ACT dropout=$DROPOUT threads=$THREADS steps=$STEPS"

# gpt-train: 3 untimed warm-up steps, then STEPS timed (its own "train speed" line).
./bin/gpt-train --data "$DATA" --out "$tmp/bench.safetensors" --n-layer "$L" --n-head "$NH" \
  --n-embd "$C" --block-size "$T" --batch-size "$B" --activation "$ACT" --dropout "$DROPOUT" \
  --max-iters $((STEPS + 3)) --eval-interval 1000000 --eval-iters 1 --threads "$THREADS" \
  --log-interval 0 >/dev/null 2>"$tmp/c.err"
c_tps=$(sed -n 's/^train speed: .*ms\/step, \([0-9.]*\) tokens\/s.*/\1/p' "$tmp/c.err")
[ -n "$c_tps" ] || { cat "$tmp/c.err"; exit 1; }

torch_line=$(GOMP_SPINCOUNT=0 OMP_NUM_THREADS="$THREADS" /usr/bin/python3 bench/train_reference.py \
  --data "$DATA" --n-layer "$L" --n-head "$NH" --n-embd "$C" --block-size "$T" --batch-size "$B" \
  --activation "$ACT" --dropout "$DROPOUT" --steps "$STEPS" --warmup 3 --threads "$THREADS")
t_tps=$(echo "$torch_line" | sed -n 's/.*tokens_per_s=\([0-9.]*\).*/\1/p')

printf '%-22s %12s\n' "trainer" "tokens/s"
printf '%-22s %12.0f\n' "gpt-train (C)" "$c_tps" "PyTorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)')" "$t_tps"
awk -v c="$c_tps" -v t="$t_tps" 'BEGIN { printf "ratio C / PyTorch: %.2fx\n", c / t }'
