#!/usr/bin/env bash
# Training speed, side by side in one run, on the same config, data and machine:
#   - bin/gpt-train on 1 thread and on THREADS threads, with the rate of its matrix products
#     against the FMA peak of its kernel path on the same threads;
#   - the PyTorch reference (bench/train_reference.py, Debian's python3-torch at its best:
#     THREADS threads, GOMP_SPINCOUNT=0);
#   - data-parallel: `mpirun -np 2` of bin/gpt-train-mpi with 1 thread a rank, against one
#     process on 1 thread (skipped when Open MPI or bin/gpt-train-mpi is missing).
# Config defaults to the shipped model's (weights/README.md); override with the variables below.
set -euo pipefail
cd "$(dirname "$0")/.."
L=${L:-6} NH=${NH:-8} C=${C:-256} T=${T:-256} B=${B:-16} ACT=${ACT:-relu} DROPOUT=${DROPOUT:-0.1}
STEPS=${STEPS:-20} THREADS=${THREADS:-2}
DATA=${GPTD_DATA:-../shared/data/tinyshakespeare.txt}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "config: L=$L NH=$NH C=$C T=$T B=$B act=$ACT dropout=$DROPOUT steps=$STEPS (after 3 warm-up)"
echo "load before the run: $(cut -d' ' -f1-3 /proc/loadavg) (the benchmark wants an idle machine)"

FLAGS=(--data "$DATA" --n-layer "$L" --n-head "$NH" --n-embd "$C" --block-size "$T"
       --batch-size "$B" --activation "$ACT" --dropout "$DROPOUT" --max-iters $((STEPS + 3))
       --eval-interval 1000000 --eval-iters 1 --log-interval 0 --measure-peak)

# Runs gpt-train (or the command given before its flags), sets tps (tokens/s), gflops and peak.
run_c() {
  local out="$tmp/run.err"
  "$@" "${FLAGS[@]}" --out "$tmp/bench.safetensors" >/dev/null 2>"$out" || { cat "$out"; exit 1; }
  tps=$(sed -n 's/^train speed: .*ms\/step, \([0-9.]*\) tokens\/s.*/\1/p' "$out")
  gflops=$(sed -n 's/^products: \([0-9.]*\) GFLOP\/s.*/\1/p' "$out")
  peak=$(sed -n 's/^products: .*FMA peak \([0-9.]*\) GFLOP\/s.*/\1/p' "$out")
  share=$(sed -n 's/^products: [0-9.]* GFLOP\/s, \([0-9]*\)% of the step time.*/\1/p' "$out")
  [ -n "$tps" ] || { cat "$out"; exit 1; }
}

run_c ./bin/gpt-train --threads 1
c1=$tps g1=$gflops p1=$peak s1=$share
run_c ./bin/gpt-train --threads "$THREADS"
cn=$tps gn=$gflops pn=$peak sn=$share

torch_line=$(GOMP_SPINCOUNT=0 OMP_NUM_THREADS="$THREADS" /usr/bin/python3 bench/train_reference.py \
  --data "$DATA" --n-layer "$L" --n-head "$NH" --n-embd "$C" --block-size "$T" --batch-size "$B" \
  --activation "$ACT" --dropout "$DROPOUT" --steps "$STEPS" --warmup 3 --threads "$THREADS")
t_tps=$(echo "$torch_line" | sed -n 's/.*tokens_per_s=\([0-9.]*\).*/\1/p')
torch_version=$(/usr/bin/python3 -c 'import torch; print(torch.__version__)')

mpi_tps=""
if command -v mpirun >/dev/null && [ -x bin/gpt-train-mpi ]; then
  run_c mpirun --allow-run-as-root --oversubscribe -np 2 ./bin/gpt-train-mpi --threads 1
  mpi_tps=$tps
fi

printf '\n| trainer | threads | tokens/s | vs PyTorch | products GFLOP/s | of FMA peak | products share of step |\n'
printf '|---|---:|---:|---:|---:|---:|---:|\n'
awk -v c1="$c1" -v cn="$cn" -v t="$t_tps" -v n="$THREADS" -v g1="$g1" -v p1="$p1" -v gn="$gn" \
    -v pn="$pn" -v s1="$s1" -v sn="$sn" -v tv="$torch_version" 'BEGIN {
  printf "| gpt-train | 1 | %.0f | %.2fx | %.1f | %.0f%% of %.1f | %s%% |\n", c1, c1 / t, g1, 100 * g1 / p1, p1, s1
  printf "| gpt-train | %d | %.0f | %.2fx | %.1f | %.0f%% of %.1f | %s%% |\n", n, cn, cn / t, gn, 100 * gn / pn, pn, sn
  printf "| PyTorch %s | %d | %.0f | 1.00x | | | |\n", tv, n, t
  printf "\ngpt-train on %d threads against 1: %.2fx\n", n, cn / c1
}'
if [ -n "$mpi_tps" ]; then
  awk -v m="$mpi_tps" -v c1="$c1" 'BEGIN {
    printf "mpirun -np 2, 1 thread a rank: %.0f tokens/s, %.2fx one process on 1 thread\n", m, m / c1 }'
else
  echo "mpirun -np 2: skipped (needs Open MPI and make gpt-train-mpi)"
fi
