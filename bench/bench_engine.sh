#!/usr/bin/env bash
# make bench-engine: the engine (bin/bench-engine) and the PyTorch reference
# (bench/engine_reference.py: the same checkpoint, a KV cache, 2 threads, GOMP_SPINCOUNT=0)
# side by side in one run, with the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-weights/shakespeare-char.safetensors}
THREADS=${THREADS:-2}
NEW=${NEW_TOKENS:-100}
out=$(./bin/bench-engine --model "$MODEL" --threads "$THREADS" --new-tokens "$NEW")
echo "$out"
rate() { echo "$out" | awk -F'|' -v r="$1" '$2 ~ r { gsub(/ /, "", $3); print $3 }'; }
torch() {
  GOMP_SPINCOUNT=0 /usr/bin/python3 bench/engine_reference.py --model "$MODEL" --threads "$THREADS" "$@" |
    sed -n 's/.*tokens_per_s=\([0-9.]*\).*/\1/p'
}
t1=$(torch --batch 1 --new-tokens "$NEW")
t64=$(torch --batch 64 --new-tokens "$NEW")
tp=$(torch --mode prefill --batch 1 --prompt-len 128)
echo
echo "| run | gptd engine tokens/s | PyTorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)') tokens/s | ratio |"
echo "|---|---:|---:|---:|"
for row in "decode, batch 1|$(rate 'decode, batch 1 ')|$t1" "decode, batch 64|$(rate 'decode, batch 64')|$t64" \
           "prefill, 128 tokens|$(rate 'prefill')|$tp"; do
  IFS='|' read -r name c t <<<"$row"
  awk -v n="$name" -v c="$c" -v t="$t" 'BEGIN { printf "| %s | %.0f | %.0f | %.2fx |\n", n, c, t, c / t }'
done
