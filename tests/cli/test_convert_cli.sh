#!/usr/bin/env bash
# gpt-convert end to end: bad arguments and files are refused with exit code 1 or 2 and a
# message naming the problem; the shipped float16 checkpoint converted to float32 and back is the
# same file byte for byte, and both generate the same text.
#
# usage: bash tests/cli/test_convert_cli.sh bin/gpt-convert-san bin/gpt-sample
set -u

BIN=${1:?usage: $0 path/to/gpt-convert path/to/gpt-sample}
SAMPLE=${2:?usage: $0 path/to/gpt-convert path/to/gpt-sample}
SHIPPED=weights/shakespeare-char.safetensors
[ -x "$BIN" ] || { echo "test_convert_cli: $BIN is not an executable" >&2; exit 1; }
TMP=$(mktemp -d /tmp/gptd_convert_test.XXXXXX) || exit 1
trap 'rm -rf "$TMP"' EXIT
source "$(dirname "$0")/lib.sh"

check "no arguments: both files are asked for" refused "--model and --out are required"
check "an unknown dtype is named" refused "--dtype must be f16 or f32, got 'f8'" \
    --model "$SHIPPED" --out "$TMP/x.st" --dtype f8
check "a missing checkpoint is named" refused "$TMP/none.st" --model "$TMP/none.st" --out "$TMP/x.st"
head -c 1000 "$SHIPPED" >"$TMP/cut.st"
check "a truncated checkpoint is refused" refused "past the end" --model "$TMP/cut.st" \
    --out "$TMP/x.st"
check "an unwritable output is named" refused "$TMP/no/dir/x.st" --model "$SHIPPED" \
    --out "$TMP/no/dir/x.st"

check "float16 -> float32" succeeded --model "$SHIPPED" --out "$TMP/f32.st" --dtype f32
size_of() { stat -c %s "$1"; }
check "the float32 file is about twice the size" \
    test "$(size_of "$TMP/f32.st")" -gt $(($(size_of "$SHIPPED") * 19 / 10))
check "float32 -> float16" succeeded --model "$TMP/f32.st" --out "$TMP/f16.st"
check "it reports that rounding changed nothing" grep -q "0 changed by rounding" "$TMP/out"
check "float16 -> float32 -> float16 is the shipped file, byte for byte" cmp -s "$SHIPPED" "$TMP/f16.st"

same_text() {
    local a b
    a=$("$SAMPLE" --model "$SHIPPED" --seed 7 --max-tokens 60) || return 1
    b=$("$SAMPLE" --model "$TMP/f32.st" --seed 7 --max-tokens 60) || return 1
    [ "$a" = "$b" ] || { echo "       texts differ"; return 1; }
}
check "the float16 and float32 files generate the same text" same_text

# --average: the mean of checkpoints of one configuration.
check "a checkpoint averaged with itself is itself, byte for byte" succeeded --model "$SHIPPED" \
    --average "$SHIPPED" --out "$TMP/avg_self.st"
check "  (the file)" cmp -s "$SHIPPED" "$TMP/avg_self.st"
check "averaged with its float32 copy, three times over, it is itself again" succeeded \
    --model "$SHIPPED" --average "$TMP/f32.st" --average "$TMP/f32.st" --out "$TMP/avg3.st"
check "  (the file)" cmp -s "$SHIPPED" "$TMP/avg3.st"
# 4 heads instead of 8: the same tensors and shapes, another model (the header's text, same length).
LC_ALL=C sed 's/"n_head":"8"/"n_head":"4"/' "$SHIPPED" >"$TMP/heads4.st"
check "another configuration is refused, naming the file" refused \
    "heads4.st: another configuration" --model "$SHIPPED" --average "$TMP/heads4.st" \
    --out "$TMP/x.st"

echo "test_convert_cli: $PASSES passed, $FAILS failed in $((SECONDS - START)) s"
[ "$FAILS" -eq 0 ] || exit 1
exit 0
