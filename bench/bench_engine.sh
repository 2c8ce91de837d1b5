#!/usr/bin/env bash
# make bench-engine: the engine (bin/bench-engine) and the PyTorch reference
# (bench/engine_reference.py: the same checkpoint, a KV cache, GOMP_SPINCOUNT=0) side by side in
# one run, with the ratios. Both sides report the fastest of REPEATS timed repeats after a
# warm-up. PyTorch runs with 2 threads and, at batch 1, also with 1 (often faster for such
# small products); the faster of the two counts.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-weights/shakespeare-char.safetensors}
THREADS=${THREADS:-2}
NEW=${NEW_TOKENS:-100}
REPEATS=${REPEATS:-5}
PAST=${PAST_TOKENS:-1024}
KEEP=${CONTEXT_KEEP:-0} # tokens the keep rule keeps; 0: gptd's default, a quarter of the context
PREFILL=${PREFILL_TOKENS:-256} # the timed prefill's prompt (at most the context)
batch_flags=()
for b in ${BATCHES:-1 4 16 64}; do batch_flags+=(--batch "$b"); done
out=$(./bin/bench-engine --model "$MODEL" --threads "$THREADS" --new-tokens "$NEW" --repeats "$REPEATS" \
        --past-tokens "$PAST" --context-keep "$KEEP" --prefill-tokens "$PREFILL" "${batch_flags[@]}")
echo "$out"
rate() { echo "$out" | awk -F'|' -v r="$1" '$2 ~ r { gsub(/ /, "", $3); print $3 }'; }
# torch THREADS ARGS...: "best median" tokens/s
torch() {
  local t=$1
  shift
  GOMP_SPINCOUNT=0 /usr/bin/python3 bench/engine_reference.py --model "$MODEL" --threads "$t" \
    --repeats "$REPEATS" "$@" |
    sed -n 's/.*tokens_per_s=\([0-9.]*\).*median_tokens_per_s=\([0-9.]*\).*/\1 \2/p'
}
faster() { [ "$(echo "$1" | cut -d' ' -f1 | cut -d. -f1)" -ge "$(echo "$2" | cut -d' ' -f1 | cut -d. -f1)" ] && echo "$1" || echo "$2"; }
t1=$(faster "$(torch "$THREADS" --batch 1 --new-tokens "$NEW")" "$(torch 1 --batch 1 --new-tokens "$NEW")")
t64=$(torch "$THREADS" --batch 64 --new-tokens "$NEW")
# The context; past it, the same rules and token counts as bench-engine's rows (exact: one repeat, few
# tokens past the context, since each costs a whole window).
T=$(echo "$out" | sed -n 's/.*context \([0-9]*\),.*/\1/p' | head -1)
P=$((PREFILL < T ? PREFILL : T))
tp=$(torch "$THREADS" --mode prefill --batch 1 --prompt-len "$P") # the same prompt as bench-engine's
past_rows=()
if [ "$PAST" != 0 ]; then # PAST_TOKENS=0 skips the runs past the context, on both sides
  pk1=$(torch "$THREADS" --mode past --batch 1 --new-tokens "$PAST" --context-keep "$KEEP")
  pk64=$(torch "$THREADS" --mode past --batch 64 --new-tokens "$PAST" --context-keep "$KEEP")
  pe1=$(torch "$THREADS" --mode past --context-shift exact --batch 1 --new-tokens $((T + 128)) --repeats 1)
  pe64=$(torch "$THREADS" --mode past --context-shift exact --batch 64 --new-tokens $((T + 16)) --repeats 1)
  past_rows=("past the context, keep, batch 1|$(rate 'keep [0-9]*, batch 1 ')|$pk1"
             "past the context, keep, batch 64|$(rate 'keep [0-9]*, batch 64 ')|$pk64"
             "past the context, exact, batch 1|$(rate 'exact [0-9]*, batch 1 ')|$pe1"
             "past the context, exact, batch 64|$(rate 'exact [0-9]*, batch 64 ')|$pe64")
fi
echo
echo "| run | gptd engine tokens/s | PyTorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)') tokens/s (median) | ratio |"
echo "|---|---:|---:|---:|"
for row in "decode, batch 1|$(rate 'decode, batch 1 ')|$t1" "decode, batch 64|$(rate 'decode, batch 64')|$t64" \
           "prefill, $P tokens|$(rate 'prefill')|$tp" "${past_rows[@]}"; do
  IFS='|' read -r name c t <<<"$row"
  read -r best median <<<"$t"
  awk -v n="$name" -v c="$c" -v t="$best" -v m="$median" \
    'BEGIN { printf "| %s | %.0f | %.0f (%.0f) | %.2fx |\n", n, c, t, m, c / t }'
done
# Every kernel path this CPU has, side by side (model/kernels.h): the peak of its FMA loop, decode
# at batch 1 and 64, and prefill, each also as a share of that path's peak on THREADS threads, and
# the products alone at 64 rows (no attention, LayerNorm or hand-offs between them).
# KERNEL_PATHS limits the paths (portable is slow).
echo
echo "| kernels | peak FMA GFLOP/s, 1 / $THREADS threads | products alone, 64 rows, GFLOP/s (of peak) | decode batch 1 tokens/s | decode batch 64 tokens/s (of peak) | prefill tokens/s (of peak) |"
echo "|---|---:|---:|---:|---:|---:|"
for k in ${KERNEL_PATHS:-avx512 avx2 neon portable}; do
  one=$(GPTD_KERNELS=$k ./bin/bench-engine --model "$MODEL" --threads "$THREADS" --new-tokens "$NEW" \
          --repeats 3 --batch 1 --batch 64 --past-tokens 0 2>/dev/null) || continue
  peak=$(echo "$one" | sed -n 's/.*peak FMA \([0-9.]*\) GFLOP\/s on 1 thread, \([0-9.]*\) on.*/\1 \/ \2/p')
  products=$(echo "$one" | sed -n 's/.*products alone.*: \([0-9.]*\) GFLOP\/s with 64 rows (\([0-9]*%\) of peak).*/\1 (\2)/p')
  col() { echo "$one" | awk -F'|' -v r="$1" -v c="$2" '$2 ~ r { gsub(/ /, "", $c); print $c }'; }
  echo "| $k | $peak | $products | $(col 'decode, batch 1 ' 3) | $(col 'decode, batch 64' 3) ($(col 'decode, batch 64' 7)) | $(col 'prefill' 3) ($(col 'prefill' 7)) |"
done
# A shared CPU: the decode and prefill rows at 1 and 2 threads, idle and beside a busy process
# (`yes`, in a session of its own as another program would be, so the kernel shares the CPU
# between the two fairly), with PyTorch under the same neighbour; each as a ratio to the idle
# single-thread rate. SHARED=0 skips it; ROUNDS (2) sets how many turns of 1 and 2 threads.
if [ "${SHARED:-1}" != 0 ]; then
  rows() { # THREADS: "b1 b64 prefill" tokens/s
    local o
    o=$(./bin/bench-engine --model "$MODEL" --threads "$1" --new-tokens "$NEW" --repeats "$REPEATS" \
          --batch 1 --batch 64 --past-tokens 0)
    for r in 'decode, batch 1 ' 'decode, batch 64' 'prefill'; do
      echo "$o" | awk -F'|' -v r="$r" '$2 ~ r { gsub(/ /, "", $3); printf "%s ", $3 }'
    done
  }
  # 1 and 2 threads in turns, ROUNDS times, the fastest of each column: the machine's speed
  # drifts over minutes, and one run of each after the other would put the drift in the ratio.
  best() { # "a b c" "x y z": the larger of each pair
    paste <(tr ' ' '\n' <<<"$1") <(tr ' ' '\n' <<<"$2") |
      awk 'NF == 2 { printf "%s ", ($1 + 0 > $2 + 0 ? $1 : $2) } NF == 1 { printf "%s ", $1 }'
  }
  turns() { # "1-thread columns|2-thread columns", each the fastest of ROUNDS
    local one="" two=""
    for _ in $(seq 1 "${ROUNDS:-2}"); do
      one=$(best "$(rows 1)" "$one")
      two=$(best "$(rows 2)" "$two")
    done
    echo "$one|$two"
  }
  IFS='|' read -r idle1 idle2 <<<"$(turns)"
  read -r i1_1 i1_64 i1_p <<<"$idle1"
  read -r i2_1 i2_64 i2_p <<<"$idle2"
  setsid yes >/dev/null 2>&1 &
  busy=$!
  trap 'kill $busy 2>/dev/null' EXIT
  sleep 0.5
  IFS='|' read -r busy1 busy2 <<<"$(turns)"
  read -r b1_1 b1_64 b1_p <<<"$busy1"
  read -r b2_1 b2_64 b2_p <<<"$busy2"
  pb1=$(faster "$(torch 2 --batch 1 --new-tokens "$NEW")" "$(torch 1 --batch 1 --new-tokens "$NEW")")
  pb64=$(torch 2 --batch 64 --new-tokens "$NEW")
  pbp=$(torch 2 --mode prefill --batch 1 --prompt-len "$T")
  kill $busy 2>/dev/null
  trap - EXIT
  echo
  echo "| run (tokens/s; ratios to 1 thread idle) | 1 thread, idle | 1 thread, busy | 2 threads, idle | 2 threads, busy | PyTorch, busy | 2 threads busy / PyTorch busy |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  for row in "decode, batch 1|$i1_1|$b1_1|$i2_1|$b2_1|$pb1" "decode, batch 64|$i1_64|$b1_64|$i2_64|$b2_64|$pb64" \
             "prefill, $T tokens|$i1_p|$b1_p|$i2_p|$b2_p|$pbp"; do
    IFS='|' read -r name a b c d t <<<"$row"
    t=${t%% *}
    awk -v n="$name" -v a="$a" -v b="$b" -v c="$c" -v d="$d" -v t="$t" 'BEGIN {
      printf "| %s | %.0f | %.0f (%.2f) | %.0f (%.2f) | %.0f (%.2f) | %.0f (%.2f) | %.2fx |\n",
             n, a, b, b / a, c, c / a, d, d / a, t, t / a, d / t }'
  done
fi
