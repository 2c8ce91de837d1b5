# Helpers shared by the command-line tests. The sourcing script sets BIN (the binary under
# test) and TMP (a scratch directory); results are counted in PASSES and FAILS.

FAILS=0
PASSES=0
START=$SECONDS

# check DESCRIPTION COMMAND...: runs the command (a test), counts and reports the outcome.
check() {
    local desc=$1
    shift
    if "$@"; then
        PASSES=$((PASSES + 1))
        echo "ok   - $desc"
    else
        FAILS=$((FAILS + 1))
        echo "FAIL - $desc"
        if [ -s "$TMP/err" ]; then
            echo "       stderr:"
            head -n 15 "$TMP/err" | sed 's/^/         /'
        fi
    fi
}

# run ARGS...: runs $BIN with a time limit; stdout in $TMP/out, stderr in $TMP/err,
# exit code in RC.
run() {
    timeout 60 "$BIN" "$@" >"$TMP/out" 2>"$TMP/err"
    RC=$?
}

no_sanitizer_report() {
    ! grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: ' "$TMP/err"
}

# A refused run: exit code 1 or 2 (a crash or signal is >= 128, ASan's leak report 23),
# stderr names the problem, nothing on stdout, no sanitizer report.
refused() {
    local want=$1
    shift
    run "$@"
    if [ "$RC" -ne 1 ] && [ "$RC" -ne 2 ]; then
        echo "       exit code $RC, expected 1 or 2"
        return 1
    fi
    if ! grep -qF -- "$want" "$TMP/err"; then
        echo "       stderr does not contain: $want"
        return 1
    fi
    if [ -s "$TMP/out" ]; then
        echo "       unexpected stdout: $(head -c 200 "$TMP/out")"
        return 1
    fi
    no_sanitizer_report
}

succeeded() {
    run "$@"
    if [ "$RC" -ne 0 ]; then
        echo "       exit code $RC, expected 0"
        return 1
    fi
    no_sanitizer_report
}

