#!/usr/bin/env bash
# Faults during training must never cost the last good checkpoint:
#   - gpt-train killed with SIGKILL at random moments while it writes a checkpoint every step:
#     whatever model and .state are on disk load, and --resume continues from the .state;
#   - the disk fills during a checkpoint write (a 160 KB tmpfs, so the first checkpoint fits and
#     the next one does not): the run fails with a message naming the file, and the checkpoint
#     already there still loads and resumes.
# Needs root for the tmpfs (CI runs as root); without it that part fails loudly.
#
# usage: bash tests/cli/test_train_faults.sh bin/gpt-train bin/gpt-sample
set -u
BIN=${1:?usage: $0 path/to/gpt-train path/to/gpt-sample}
SAMPLE=${2:?usage: $0 path/to/gpt-train path/to/gpt-sample}
TMP=$(mktemp -d /tmp/gptd_faults.XXXXXX) || exit 1
MNT=$TMP/full
cleanup() {
    mountpoint -q "$MNT" 2>/dev/null && umount "$MNT"
    rm -rf "$TMP"
}
trap cleanup EXIT
source "$(dirname "$0")/lib.sh"
DATA=${GPTD_DATA:-../shared/data/tinyshakespeare.txt}
TINY=(--n-layer 1 --n-embd 16 --n-head 2 --block-size 16 --batch-size 2 --threads 1 --eval-iters 2)

# loads M: the model file gives text, its .state resumes for one more step.
loads() {
    local m=$1
    timeout 60 "$SAMPLE" --model "$m" --max-tokens 5 --seed 1 >"$TMP/out" 2>"$TMP/err" || return 1
    local step
    step=$(timeout 60 "$BIN" --eval-only --data "$DATA" --resume "$m.state" 2>&1 |
        sed -nE 's/.*step ([0-9]+).*/\1/p' | head -n 1)
    timeout 120 "$BIN" --data "$DATA" --out "$TMP/resumed.safetensors" --resume "$m.state" \
        --max-iters $((${step:-0} + 2)) --eval-interval 1000 >"$TMP/out" 2>"$TMP/err"
}

# ---- SIGKILL at random moments -----------------------------------------------------------------
RANDOM=7 # the same moments every run
for round in 1 2 3 4 5 6; do
    K=$TMP/kill$round.safetensors
    "$BIN" --data "$DATA" --out "$K" "${TINY[@]}" --max-iters 100000 --eval-interval 1 \
        --log-interval 1 >/dev/null 2>"$TMP/kill.err" &
    pid=$!
    for _ in $(seq 1 300); do # until the first checkpoint is on disk
        [ -s "$K.state" ] && break
        sleep 0.05
    done
    sleep "0.$((RANDOM % 900 + 50))"
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null
    check "SIGKILL round $round: the model and .state on disk load, and the run resumes" loads "$K"
done

# ---- the disk fills during a checkpoint write ------------------------------------------------
mkdir -p "$MNT"
if ! mount -t tmpfs -o size=160k tmpfs "$MNT" 2>"$TMP/err"; then
    check "a 160 KB tmpfs for the disk-full test (needs root)" false
else
    F=$MNT/m.safetensors
    timeout 120 "$BIN" --data "$DATA" --out "$F" "${TINY[@]}" --max-iters 50 --eval-interval 1 \
        --log-interval 1 >"$TMP/out" 2>"$TMP/err"
    RC=$?
    check "disk full: the run fails (exit $RC) instead of going on without checkpoints" \
        test "$RC" -ne 0 -a "$RC" -lt 128
    check "  the message names the file and the cause" grep -qE "m\.safetensors.*(No space left|space)" "$TMP/err"
    cp "$F" "$F.state" "$TMP/" 2>/dev/null
    check "  the checkpoint written before still loads and resumes" loads "$TMP/m.safetensors"
    check "  no temporary file is left behind" test -z "$(ls "$MNT" | grep -v '^m\.safetensors\(\.state\)\?$')"
fi

echo "test_train_faults: $PASSES passed, $FAILS failed ($((SECONDS - START)) s)"
[ "$FAILS" -eq 0 ]
