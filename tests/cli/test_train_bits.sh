#!/usr/bin/env bash
# gpt-train writes the same checkpoint bytes however the work is split (train/shard_sum.h): a
# tiny model trained for 6 steps gives a byte-identical .state
#   - at --threads 1, 2 and 3, and on every kernel path the CPU has (GPTD_KERNELS);
#   - untied and --tied-head, with dropout 0.1 (per-sequence streams);
#   - under mpirun with 2 and 4 ranks of gpt-train-mpi as in one process;
#   - resumed at step 3 with another rank count (1 -> 2, 2 -> 1, 4 -> 2) as in a straight run
#     (all but the recorded command, which names --resume).
# And data-parallel runs fail cleanly, with a message and a non-zero exit, writing nothing: 3 ranks
# (not a power of two), --batch-size 6 over 4 ranks, the plain gpt-train under mpirun -np 2; rank 0
# unable to save stops every rank; a rank killed with SIGKILL ends the whole run within seconds,
# and the last checkpoint still loads.
#
# usage: bash tests/cli/test_train_bits.sh bin/gpt-train [bin/gpt-train-mpi]
# Without the second argument, or without mpirun, the data-parallel checks are skipped (said so).
# GPTD_DATA overrides the text used (default ../shared/data/tinyshakespeare.txt).
set -u

[ -x "${1-}" ] || { echo "usage: $0 path/to/gpt-train [path/to/gpt-train-mpi]" >&2; exit 1; }
BIN=$(realpath "$1")
MPI_BIN=${2-}
if [ -n "$MPI_BIN" ]; then
    [ -x "$MPI_BIN" ] || { echo "test_train_bits: $MPI_BIN is not an executable" >&2; exit 1; }
    MPI_BIN=$(realpath "$MPI_BIN")
fi
SRC=${GPTD_DATA:-../shared/data/tinyshakespeare.txt}
TMP=$(mktemp -d /tmp/gptd_bits.XXXXXX) || exit 1
BG_PID=
cleanup() {
    if [ -n "$BG_PID" ]; then
        pkill -KILL -P "$BG_PID" 2>/dev/null
        kill -KILL "$BG_PID" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
source "$(dirname "$0")/lib.sh"

if [ -r "$SRC" ]; then
    DATA=$(realpath "$SRC")
else
    echo "note: $SRC not found, using generated text"
    DATA=$TMP/data.txt
    for i in $(seq 1 400); do
        echo "Line $i: the quick brown fox jumps over the lazy dog, again and again."
    done >"$DATA"
fi

# Width 64: the MLP's weights (64 x 256) are long enough for shard_sum to spread their sums over
# the pool. Every run writes the same relative --out in the same directory, so the recorded
# command (which leaves out --threads and names the program "gpt-train") is the same for all.
mkdir "$TMP/run" && cd "$TMP/run" || exit 1
OUT=m.safetensors
STATE=$OUT.state
COMMON=(--data "$DATA" --out "$OUT" --eval-interval 3 --eval-iters 2 --log-interval 0)
TINY=("${COMMON[@]}" --n-layer 2 --n-head 2 --n-embd 64 --block-size 32 --batch-size 8
    --dropout 0.1)
MPIRUN=(mpirun --allow-run-as-root --oversubscribe)

# train [VAR=VALUE...] [-np N] FLAGS...: one run, from a directory without checkpoints: gpt-train,
# or with -np gpt-train-mpi under mpirun. Output in $TMP/out and $TMP/err, exit code in RC.
train() {
    local envs=() np=0
    while [ $# -gt 0 ] && [[ $1 == [A-Z]*=* ]]; do
        envs+=("$1")
        shift
    done
    if [ "${1-}" = -np ]; then
        np=$2
        shift 2
    fi
    rm -f "$OUT" "$STATE"
    if [ "$np" -gt 0 ]; then
        timeout 60 env "${envs[@]}" "${MPIRUN[@]}" -np "$np" "$MPI_BIN" "$@" >"$TMP/out" 2>"$TMP/err"
    else
        timeout 60 env "${envs[@]}" "$BIN" "$@" >"$TMP/out" 2>"$TMP/err"
    fi
    RC=$?
}

trained() {
    train "$@"
    [ "$RC" -eq 0 ] || { echo "       exit code $RC, expected 0"; return 1; }
    [ -s "$STATE" ] || { echo "       no $STATE written"; return 1; }
}

# reference NAME ARGS...: a run as train; its .state is kept as $TMP/NAME.state.
reference() {
    local name=$1
    shift
    trained "$@" && cp "$STATE" "$TMP/$name.state"
}

same_bytes() {
    cmp -s "$1" "$2" || { echo "       $1 and $2 differ ($(cmp "$1" "$2" 2>&1 | head -n 1))"; return 1; }
}

# trains_like NAME ARGS...: a run as train, whose .state is byte for byte $TMP/NAME.state.
trains_like() {
    local name=$1
    shift
    trained "$@" && same_bytes "$STATE" "$TMP/$name.state"
}

differs_from() {
    local name=$1
    shift
    trained "$@" || return 1
    ! cmp -s "$STATE" "$TMP/$name.state" || { echo "       the same bytes as $name"; return 1; }
}

# header FILE: a safetensors file's JSON header without "train.command"; data FILE: its tensors.
header() {
    local n
    n=$(od -An -t u8 -N 8 "$1" | tr -d ' ')
    head -c $((n + 8)) "$1" | tail -c +9 | sed -E 's/"train\.command":"([^"\\]|\\.)*",?//; s/ +$//'
}
data() {
    local n
    n=$(od -An -t u8 -N 8 "$1" | tr -d ' ')
    tail -c +$((n + 9)) "$1"
}

# resumes_like NAME ARGS...: a resumed run (as train) whose .state is $TMP/NAME.state but for the
# command it records; the header must still name --resume (so the comparison leaves out that much).
resumes_like() {
    local name=$1
    shift
    trained "$@" || return 1
    grep -qaF -- "--resume" "$STATE" || { echo "       $STATE does not record --resume"; return 1; }
    cmp -s <(header "$STATE") <(header "$TMP/$name.state") ||
        { echo "       the headers (but the command) differ from $name"; return 1; }
    [ "$(data "$STATE" | wc -c)" -gt 100000 ] || { echo "       $STATE has too little data"; return 1; }
    cmp -s <(data "$STATE") <(data "$TMP/$name.state") ||
        { echo "       the tensors differ from $name"; return 1; }
}

# fails_with TEXT ARGS...: a run (as train) that exits non-zero, says TEXT on stderr and writes no
# checkpoint.
fails_with() {
    local want=$1
    shift
    train "$@"
    [ "$RC" -ne 0 ] && [ "$RC" -ne 124 ] || { echo "       exit code $RC, expected an error"; return 1; }
    grep -qF -- "$want" "$TMP/err" || { echo "       stderr does not contain: $want"; return 1; }
    [ ! -e "$OUT" ] && [ ! -e "$STATE" ] || { echo "       a checkpoint was written"; return 1; }
}

# ---- one process: threads and kernel paths ----------------------------------------------------
train GPTD_KERNELS=bogus "${TINY[@]}" --max-iters 6 --threads 1
KERNELS=$(sed -nE "s/.*kernels 'bogus' are not available on this CPU \(it has: (.*)\)$/\1/p" "$TMP/err")
has_kernel_list() {
    [ "$RC" -ne 0 ] && [[ " $KERNELS " == *" portable "* ]] ||
        { echo "       exit code $RC, stderr: $(head -c 300 "$TMP/err")"; return 1; }
}
check "GPTD_KERNELS=bogus is refused and lists the kernel paths: ${KERNELS:-none}" has_kernel_list

for tie in untied tied; do
    flags=("${TINY[@]}")
    [ $tie = tied ] && flags+=(--tied-head)
    check "$tie: reference, 6 steps on one thread, dropout 0.1" \
        reference $tie "${flags[@]}" --max-iters 6 --threads 1
    for t in 2 3; do
        check "$tie: --threads $t writes the same .state bytes" \
            trains_like $tie "${flags[@]}" --max-iters 6 --threads $t
    done
    for k in $KERNELS; do
        for t in 1 2; do
            check "$tie: GPTD_KERNELS=$k --threads $t writes the same bytes" \
                trains_like $tie GPTD_KERNELS="$k" "${flags[@]}" --max-iters 6 --threads $t
        done
    done
done
check "tied and untied differ (the comparisons can fail)" \
    differs_from untied "${TINY[@]}" --max-iters 6 --threads 1 --tied-head
check "another --seed differs" differs_from untied "${TINY[@]}" --max-iters 6 --threads 1 --seed 7

# ---- data-parallel ----------------------------------------------------------------------------
if [ -z "$MPI_BIN" ] || ! command -v mpirun >/dev/null; then
    echo "skipped: no mpirun (or no gpt-train-mpi given): the data-parallel checks did not run"
    echo "test_train_bits: $PASSES passed, $FAILS failed in $((SECONDS - START)) s"
    [ "$FAILS" -eq 0 ]
    exit
fi

for tie in untied tied; do
    flags=("${TINY[@]}")
    [ $tie = tied ] && flags+=(--tied-head)
    for np in 2 4; do
        check "$tie: mpirun -np $np gpt-train-mpi writes the bytes of one process" \
            trains_like $tie -np $np "${flags[@]}" --max-iters 6 --threads 1
    done
done
check "untied: mpirun -np 2 at --threads 2 a rank, the same bytes" \
    trains_like untied -np 2 "${TINY[@]}" --max-iters 6 --threads 2
check "untied: reference, 20 steps on one thread" \
    reference untied20 "${TINY[@]}" --max-iters 20 --threads 1
check "untied: 20 steps of mpirun -np 2 write the bytes of one process" \
    trains_like untied20 -np 2 "${TINY[@]}" --max-iters 20 --threads 1

# Resumed at step 3 with another rank count. The lr is constant, so a 3-step run's .state is the
# straight run's state at step 3; --resume skips the eval at the step it starts from and saves at 6.
RESUME=("${COMMON[@]}" --resume s3.state --max-iters 6 --threads 1)
# resumed FROM [-np N]: resumes $TMP/FROM.state (as s3.state, so every resume records the same
# command) to step 6; the state must be the straight 6-step run's.
resumed() {
    local from=$1
    shift
    cp "$TMP/$from.state" s3.state && resumes_like untied "$@" "${RESUME[@]}"
}
check "one process to step 3" reference s3_one "${TINY[@]}" --max-iters 3 --threads 1
check "  resumed with mpirun -np 2 to step 6: the straight one-process run's state" \
    resumed s3_one -np 2
cp "$STATE" "$TMP/resumed_np2.state" 2>/dev/null
check "mpirun -np 2 to step 3" \
    reference s3_np2 -np 2 "${TINY[@]}" --max-iters 3 --threads 1
check "  the same bytes as one process to step 3" same_bytes "$TMP/s3_np2.state" "$TMP/s3_one.state"
check "  resumed by one process to step 6: the straight run's state" resumed s3_np2
check "  and the very bytes of the resume on 2 ranks" same_bytes "$STATE" "$TMP/resumed_np2.state"
check "mpirun -np 4 to step 3" reference s3_np4 -np 4 "${TINY[@]}" --max-iters 3 --threads 1
check "  resumed with mpirun -np 2 to step 6: the straight run's state" resumed s3_np4 -np 2

# ---- data-parallel errors ---------------------------------------------------------------------
check "mpirun -np 3 is refused: not a power of two" \
    fails_with "3 ranks: data-parallel training needs a power of two" \
    -np 3 "${TINY[@]}" --max-iters 6 --threads 1
check "--batch-size 6 over mpirun -np 4 is refused" \
    fails_with "--batch-size 6 does not divide over 4 ranks" \
    -np 4 "${TINY[@]}" --max-iters 6 --threads 1 --batch-size 6
# Only rank 0 writes checkpoints: when it cannot, every rank stops (not waits) and the run fails.
save_fails() {
    local want=$1
    shift
    timeout 60 "${MPIRUN[@]}" -np 2 "$MPI_BIN" "$@" >"$TMP/out" 2>"$TMP/err"
    RC=$?
    [ "$RC" -ne 0 ] && [ "$RC" -ne 124 ] || { echo "       exit code $RC, expected an error"; return 1; }
    grep -qF -- "$want" "$TMP/err" || { echo "       stderr does not contain: $want"; return 1; }
}
check "rank 0 cannot save (no such directory): both ranks stop, non-zero exit" \
    save_fails "$TMP/none/m.safetensors" "${TINY[@]}" --out "$TMP/none/m.safetensors" \
    --max-iters 6 --threads 1
plain_under_mpirun() {
    rm -f "$OUT" "$STATE"
    timeout 60 "${MPIRUN[@]}" -np 2 "$BIN" "${TINY[@]}" --max-iters 6 --threads 1 \
        >"$TMP/out" 2>"$TMP/err"
    RC=$?
    [ "$RC" -ne 0 ] && [ "$RC" -ne 124 ] || { echo "       exit code $RC, expected an error"; return 1; }
    grep -qF "Build bin/gpt-train-mpi" "$TMP/err" || { echo "       stderr does not name gpt-train-mpi"; return 1; }
    [ ! -e "$OUT" ] && [ ! -e "$STATE" ] || { echo "       a checkpoint was written"; return 1; }
}
check "plain gpt-train under mpirun -np 2 refuses and names gpt-train-mpi" plain_under_mpirun

# A rank killed with SIGKILL mid-run (at a random moment after the first checkpoint, so sometimes
# while rank 0 writes one): mpirun ends every rank and exits non-zero within seconds, and the
# checkpoint on disk loads (written atomically).
killed_rank() {
    local victim=$1 pid mp all ranks=() t0 waited
    rm -f "$OUT" "$STATE"
    "${MPIRUN[@]}" -np 2 "$MPI_BIN" "${COMMON[@]}" --n-layer 2 --n-head 4 --n-embd 64 --block-size 64 \
        --batch-size 8 --eval-interval 2 --eval-iters 1 --max-iters 100000 --threads 1 \
        >"$TMP/out" 2>"$TMP/err" &
    BG_PID=$!
    mp=$BG_PID
    for _ in $(seq 1 300); do # up to 30 s for the first checkpoint
        [ -s "$STATE" ] && break
        kill -0 "$mp" 2>/dev/null || break
        sleep 0.1
    done
    [ -s "$STATE" ] || { echo "       no checkpoint appeared"; return 1; }
    sleep "0.$((RANDOM % 500 + 100))"
    all=$(pgrep -P "$mp")
    for pid in $all; do
        tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$victim" &&
            ranks+=("$pid")
    done
    [ ${#ranks[@]} -eq 1 ] || { echo "       found ${#ranks[@]} processes of rank $victim"; return 1; }
    kill -KILL "${ranks[0]}"
    t0=$(date +%s%N)
    for _ in $(seq 1 100); do # up to 10 s for mpirun to end
        kill -0 "$mp" 2>/dev/null || break
        sleep 0.1
    done
    waited=$((($(date +%s%N) - t0) / 1000000))
    if kill -0 "$mp" 2>/dev/null; then
        echo "       mpirun still runs ${waited} ms after rank $victim was killed"
        return 1
    fi
    wait "$mp"
    RC=$?
    BG_PID=
    [ "$RC" -ne 0 ] || { echo "       mpirun exited 0"; return 1; }
    echo "       (mpirun exited $RC, ${waited} ms after the kill)"
    for pid in $all; do # gone, or a zombie waiting for init to reap it
        case $(ps -o stat= -p "$pid") in
        '' | Z*) ;;
        *) echo "       rank process $pid still runs"; return 1 ;;
        esac
    done
    timeout 60 "$BIN" --eval-only --data "$DATA" --resume "$STATE" --eval-iters 1 >"$TMP/out" 2>"$TMP/err" ||
        { echo "       --eval-only --resume $STATE fails: $(head -c 300 "$TMP/err")"; return 1; }
    grep -qE '^step: [0-9]+, train loss' "$TMP/out" || { echo "       no loss line from --eval-only"; return 1; }
    timeout 60 "$BIN" --eval-only --data "$DATA" --resume "$OUT" --eval-iters 1 >"$TMP/out" 2>"$TMP/err" ||
        { echo "       --eval-only --resume $OUT fails: $(head -c 300 "$TMP/err")"; return 1; }
}
RANDOM=11 # the same moments every run
check "rank 1 killed: mpirun exits non-zero within 10 s, the checkpoint loads" killed_rank 1
check "rank 0 killed: mpirun exits non-zero within 10 s, the checkpoint loads" killed_rank 0

echo "test_train_bits: $PASSES passed, $FAILS failed in $((SECONDS - START)) s"
[ "$FAILS" -eq 0 ]
