#!/usr/bin/env bash
# Faults during training must never cost the last good checkpoint:
#   - gpt-train killed with SIGKILL at random moments while it writes a checkpoint every step:
#     whatever model and .state are on disk load, and --resume continues from the .state;
#   - the disk fills during a checkpoint write (a 160 KB tmpfs, so the first checkpoint fits and
#     the next one does not): the run fails with a message naming the file, and the checkpoint
#     already there still loads and resumes;
#   - a .state whose values are out of the flags' bounds (step -5, lr nan, batch size 2^32 + 1,
#     dropout 1, an all-zero RNG...) is refused by --resume, and a run whose loss or weights stop
#     being finite stops: exit 1, a message naming the field or the step, and the checkpoint at
#     --out unchanged.
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

# loads M: the model file gives text, its .state resumes for two more steps.
loads() {
    local m=$1
    timeout 60 "$SAMPLE" --model "$m" --max-tokens 5 --seed 1 >"$TMP/out" 2>"$TMP/err" || return 1
    local step
    step=$(timeout 60 "$BIN" --eval-only --data "$DATA" --resume "$m.state" 2>&1 |
        sed -nE 's/^step: ([0-9]+),.*/\1/p' | head -n 1)
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

# ---- a .state that lies, and a run that diverges ---------------------------------------------
# --resume holds the state's values to the flags' bounds (exit 1, the file and the field named);
# a loss or a weight that stops being finite stops the run (exit 1) before it saves. Neither may
# change the good checkpoint at --out (compared byte for byte with a copy).
G=$TMP/good.safetensors
timeout 60 "$BIN" --data "$DATA" --out "$G" "${TINY[@]}" --max-iters 4 --eval-interval 2 \
    >"$TMP/out" 2>"$TMP/err"
check "a good checkpoint at step 4 to resume from" test -s "$G" -a -s "$G.state"
cp "$G" "$TMP/good.copy" && cp "$G.state" "$TMP/good.state.copy"

# edit_state OUT EDIT...: the good .state with its header rewritten and tensor elements
# overwritten. EDIT is KEY=VALUE (a metadata string) or TENSOR[FIRST..LAST]=FLOAT (float32s).
edit_state() {
    perl -e '
        my ($in, $out, @edits) = @ARGV;
        open(my $f, "<:raw", $in) or die "$in: $!";
        my $b = do { local $/; <$f> };
        my $n = unpack("Q<", substr($b, 0, 8));
        my ($h, $data) = (substr($b, 8, $n), substr($b, 8 + $n));
        for (@edits) {
            if (/^(\S+)\[(\d+)\.\.(\d+)\]=(.*)$/) {
                my ($t, $first, $last, $v) = ($1, $2, $3, $4);
                $h =~ /"\Q$t\E":\{[^}]*"data_offsets":\[(\d+),/ or die "no tensor $t\n";
                my $at = $1;
                substr($data, $at + 4 * $_, 4) = pack("f<", $v) for $first .. $last;
            } elsif (/^([^=]+)=(.*)$/) {
                my ($k, $v) = ($1, $2);
                $h =~ s/"\Q$k\E":"[^"]*"/"$k":"$v"/ or die "no key $k\n";
            } else {
                die "bad edit $_\n";
            }
        }
        $h =~ s/ +$//;
        $h .= " " x ((8 - length($h) % 8) % 8); # the data stays 8-aligned
        open(my $o, ">:raw", $out) or die "$out: $!";
        print $o pack("Q<", length $h), $h, $data;
        close $o or die "$out: $!";
    ' "$TMP/good.state.copy" "$@"
}

# resume_bad EDIT... -- ARGS...: puts the good checkpoint back at $G, then resumes with --out $G
# from the edited state $TMP/bad.state (eval every step, so a run that goes on saves at once).
resume_bad() {
    local edits=()
    while [ "$1" != -- ]; do edits+=("$1") && shift; done
    shift
    cp "$TMP/good.copy" "$G" && cp "$TMP/good.state.copy" "$G.state" || return 1
    edit_state "$TMP/bad.state" "${edits[@]}" || return 1
    timeout 60 "$BIN" --data "$DATA" --out "$G" --resume "$TMP/bad.state" --threads 1 \
        --eval-iters 2 --eval-interval 1 "$@" >"$TMP/out" 2>"$TMP/err"
    RC=$?
}

good_unchanged() {
    cmp -s "$G" "$TMP/good.copy" && cmp -s "$G.state" "$TMP/good.state.copy" ||
        { echo "       $G or $G.state is not the good checkpoint any more"; return 1; }
}

# stops WANT: exit code 1, stderr has WANT, the good checkpoint is as it was.
stops() {
    [ "$RC" -eq 1 ] || { echo "       exit code $RC, expected 1"; return 1; }
    grep -qF -- "$1" "$TMP/err" || { echo "       stderr does not contain: $1"; return 1; }
    good_unchanged
}

# refuses_state KEY=VALUE... -- WANT: --resume from the good .state so edited is refused with
# WANT, after "gpt-train: <the file>: training state ", before anything is written.
refuses_state() {
    local edits=()
    while [ "$1" != -- ]; do edits+=("$1") && shift; done
    resume_bad "${edits[@]}" -- --max-iters 8 &&
        stops "gpt-train: $TMP/bad.state: training state $2" || return 1
    [ ! -s "$TMP/out" ] || { echo "       unexpected stdout: $(head -c 200 "$TMP/out")"; return 1; }
}

check "the unedited .state resumes (the edits below are what is refused)" \
    eval 'resume_bad train.step=4 -- --max-iters 5 && [ "$RC" -eq 0 ]'
check "train.step -5 is refused" \
    refuses_state train.step=-5 -- '"train.step" must be in [0, 1073741824], got -5'
check "train.lr nan is refused" \
    refuses_state train.lr=nan -- '"train.lr" must be in [1e-09, 10], got nan'
check "train.lr 1e300 (infinite as a float) is refused" \
    refuses_state train.lr=1e300 -- '"train.lr" must be in [1e-09, 10], got 1e300'
check "train.weight_decay inf is refused" \
    refuses_state train.weight_decay=inf -- '"train.weight_decay" must be in [0, 10], got inf'
check "train.batch_size 4294967297 is refused, not cut to 1" refuses_state \
    train.batch_size=4294967297 -- '"train.batch_size" must be in [1, 1048576], got 4294967297'
check "train.batch_size 1000000000 is refused before any allocation" refuses_state \
    train.batch_size=1000000000 -- '"train.batch_size" must be in [1, 1048576], got 1000000000'
check "train.batch_size 1e9 is refused" \
    refuses_state train.batch_size=1e9 -- '"train.batch_size" is not a whole number: '"'1e9'"
check "train.dropout 1 is refused" \
    refuses_state train.dropout=1 -- '"train.dropout" must be in [0, 0.95], got 1'
check "train.dropout -3 is refused" \
    refuses_state train.dropout=-3 -- '"train.dropout" must be in [0, 0.95], got -3'
check "train.seed -1 is refused, not wrapped" refuses_state train.seed=-1 -- \
    '"train.seed" must be in [0, 18446744073709551615], got -1'
check "an all-zero RNG state is refused" \
    refuses_state train.rng0=0 train.rng1=0 train.rng2=0 train.rng3=0 -- \
    '"train.rng0" to "train.rng3" are all 0'
check "--eval-only refuses train.step -5 too" eval \
    'edit_state "$TMP/bad.state" train.step=-5 && run --eval-only --data "$DATA" \
     --resume "$TMP/bad.state" --eval-iters 2 && [ "$RC" -eq 1 ] && grep -qF \
     "$TMP/bad.state: training state \"train.step\" must be in [0, 1073741824], got -5" "$TMP/err"'

# lr 10 and weight decay 10 are within the flags' bounds, but each step multiplies the weights
# by 1 - 10 * 10 = -99: the loss is NaN a few steps on.
check "a run whose training loss turns NaN stops (exit 1) before it saves" eval \
    'resume_bad train.lr=10 train.weight_decay=10 -- --max-iters 60 --eval-interval 1000 &&
     stops "the training loss at step"'
check "  it logged no line" test ! -s "$TMP/out"
# Evaluating every step, the NaN shows first in the evaluation. The checkpoints of the steps
# before, large but finite, are saved; the NaN one is not.
check "the same with an evaluation every step: the evaluation's loss stops it" eval \
    'resume_bad train.lr=10 train.weight_decay=10 -- --max-iters 60 && [ "$RC" -eq 1 ] &&
     grep -qE "gpt-train: the loss at step [0-9]+ is not finite" "$TMP/err"'
NAN_STEP=$(sed -nE 's/.*the loss at step ([0-9]+) is not finite.*/\1/p' "$TMP/err")
saved_step() { # the train.step in the header of a checkpoint
    head -c 20000 "$1" | LC_ALL=C grep -aoE '"train\.step":"[0-9]+"' | grep -oE '[0-9]+'
}
check "  the model and .state on disk are those of the step before (${NAN_STEP:-?} - 1)" \
    test "$(saved_step "$G")" = "$((${NAN_STEP:-0} - 1))" -a \
    "$(saved_step "$G.state")" = "$((${NAN_STEP:-0} - 1))"
# load_only M: the model file gives text and its .state loads (weights and moments, which the
# loader checks are finite) in a resume that trains no step, --max-iters being its step.
load_only() {
    timeout 60 "$SAMPLE" --model "$1" --max-tokens 5 --seed 1 >"$TMP/out" 2>"$TMP/err" &&
        timeout 60 "$BIN" --data "$DATA" --out "$TMP/resumed.safetensors" --resume "$1.state" \
            --max-iters "$(saved_step "$1.state")" >"$TMP/out" 2>"$TMP/err"
}
check "  and they are finite: the model samples, the .state loads" load_only "$G"

# A weight that becomes infinite while the loss stays finite: a huge (finite) AdamW moment on the
# embedding of '$' (token 3, once in the whole text, in no batch of these steps).
check "weights no longer finite with a finite loss are not saved" eval \
    'resume_bad "optimizer.m.transformer.wte.weight[48..63]=3e38" -- --max-iters 5 &&
     stops "gpt-train: not saving $G: parameter"'

echo "test_train_faults: $PASSES passed, $FAILS failed ($((SECONDS - START)) s)"
[ "$FAILS" -eq 0 ]
