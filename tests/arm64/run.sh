#!/usr/bin/env bash
# make test-arm64: gptd's engine on arm64, under Debian's qemu-user, against x86-64.
# Cross-compiles with gcc-aarch64-linux-gnu against the arm64 multiarch -dev packages (make
# deps-arm64) into build/arm64 (bin/ is untouched), then:
#   - runs the kernel, sampler and engine unit tests on arm64 (NEON and portable paths, compared
#     bit for bit with each other), without sanitizers (they do not run under qemu-user);
#   - requires a seeded gpt-sample of the shipped model, 300 tokens (past its context of 256), to
#     print the same text on arm64 NEON and portable as on every path of this x86-64 CPU;
#   - requires gpt-train, 6 steps of a tiny model (untied and --tied-head, dropout 0.1), to write
#     the same .state bytes on arm64 NEON and portable as on x86-64.
set -euo pipefail
cd "$(dirname "$0")/../.."
CROSS=aarch64-linux-gnu-gcc
for tool in "$CROSS" qemu-aarch64; do
  command -v "$tool" >/dev/null || { echo "test-arm64: $tool missing (make deps-arm64)" >&2; exit 1; }
done
export OPENBLAS_NUM_THREADS=1 # OpenBLAS's threads crawl under emulation
OUT=build/arm64
mkdir -p "$OUT"

make -s CC="$CROSS" BUILD="$OUT" SAN= "$OUT/san/test_kernels" "$OUT/san/test_sampler" \
  "$OUT/san/test_engine"
# shellcheck disable=SC2046
"$CROSS" -O2 -std=gnu11 -Wall -Wextra -Werror -pthread -ffp-contract=off \
  $(make -s print-INFER_SRC) tools/gpt_sample.c -lcjson -lpcre2-8 -lm -o "$OUT/gpt-sample"
file "$OUT/gpt-sample" | grep -q 'ARM aarch64' || { echo "test-arm64: not an arm64 binary" >&2; exit 1; }

qemu-aarch64 "$OUT/san/test_kernels"
qemu-aarch64 "$OUT/san/test_sampler"
# The engine tests that fit emulation: the logits against the forward pass (random weights; the
# shipped model's check takes minutes here), the windows past the context, and every path against
# the others. Batch invariance with 63 sequences is left to x86-64.
for filter in 'logits_match_forward_r*' 'logits_match_forward_n*' 'float16_panels_same_bits' \
              'windows_past_the_context' 'paths_same_bits'; do
  GPTD_TEST_FILTER="$filter" qemu-aarch64 "$OUT/san/test_engine"
done

make -s bin/gpt-sample
ARGS=(--seed 7 --max-tokens 300 --prompt "ROMEO:")
want=$(./bin/gpt-sample "${ARGS[@]}")
x86=""
for path in avx512 avx2 portable; do
  got=$(GPTD_KERNELS=$path ./bin/gpt-sample "${ARGS[@]}" 2>/dev/null) || continue
  [ "$got" = "$want" ] || { echo "test-arm64: x86-64 $path prints other text" >&2; exit 1; }
  x86="$x86 $path"
done
for path in neon portable; do
  got=$(GPTD_KERNELS=$path qemu-aarch64 "$OUT/gpt-sample" "${ARGS[@]}")
  if [ "$got" != "$want" ]; then
    echo "test-arm64: arm64 $path prints other text than x86-64:" >&2
    diff <(echo "$want") <(echo "$got") >&2 || true
    exit 1
  fi
  echo "arm64 $path: the same ${#want} characters as x86-64 (${x86# })"
done
# Training: the gradients' sums have one order on every path (train/shard_sum.h), so the .state of
# a short run is the same file on both arm64 paths and on x86-64. All runs write the same relative
# --out in one directory (the checkpoint records the command, not the program's path).
# shellcheck disable=SC2046
"$CROSS" -O2 -std=gnu11 -Wall -Wextra -Werror -pthread -ffp-contract=off \
  $(make -s print-INFER_SRC) $(make -s print-TRAIN_SRC) tools/gpt_train.c -lcjson -lpcre2-8 -lm \
  -o "$OUT/gpt-train"
file "$OUT/gpt-train" | grep -q 'ARM aarch64' || { echo "test-arm64: not an arm64 binary" >&2; exit 1; }
make -s bin/gpt-train
DATA=$(realpath "${GPTD_DATA:-../shared/data/tinyshakespeare.txt}")
ARM_TRAIN=$(realpath "$OUT/gpt-train")
X86_TRAIN=$(realpath bin/gpt-train)
RUN_DIR=$OUT/train
rm -rf "$RUN_DIR" && mkdir -p "$RUN_DIR"
TRAIN=(--data "$DATA" --out m.safetensors --n-layer 2 --n-head 2 --n-embd 32 --block-size 32
       --batch-size 8 --dropout 0.1 --max-iters 6 --eval-interval 3 --eval-iters 2 --log-interval 0
       --threads 1)
# train_state NAME COMMAND...: runs COMMAND in $RUN_DIR and keeps its .state as NAME.state.
train_state() {
  local name=$1
  shift
  (cd "$RUN_DIR" && "$@" >/dev/null 2>err && mv m.safetensors.state "$name.state") ||
    { echo "test-arm64: $* failed:" >&2; cat "$RUN_DIR/err" >&2; exit 1; }
}
for model in untied tied; do
  flags=("${TRAIN[@]}")
  [ $model = untied ] || flags+=(--tied-head)
  train_state x86 "$X86_TRAIN" "${flags[@]}"
  train_state neon env GPTD_KERNELS=neon qemu-aarch64 "$ARM_TRAIN" "${flags[@]}"
  train_state portable env GPTD_KERNELS=portable qemu-aarch64 "$ARM_TRAIN" "${flags[@]}"
  cmp "$RUN_DIR/neon.state" "$RUN_DIR/portable.state" ||
    { echo "test-arm64: gpt-train $model: arm64 neon and portable write other bytes" >&2; exit 1; }
  cmp "$RUN_DIR/neon.state" "$RUN_DIR/x86.state" ||
    { echo "test-arm64: gpt-train $model: arm64 writes other bytes than x86-64" >&2; exit 1; }
  echo "arm64 gpt-train, $model head: the same .state ($(wc -c <"$RUN_DIR/x86.state") bytes)" \
    "on neon and portable as on x86-64"
done
echo "test-arm64: passed"
