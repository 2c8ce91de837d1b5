#!/usr/bin/env bash
# Runs each libFuzzer harness for N seconds from its committed seed corpus and reports what it
# did: executions, coverage (edges) and corpus growth. New inputs go to a scratch corpus, so the
# committed seeds stay small. A crash, leak or failed check stops with the reproducer kept in
# tests/fuzz/artifacts/ (turn it into a regression seed and fix the code).
#   bash tests/fuzz/run.sh SECONDS bin/fuzz_request [bin/fuzz_... ...]
set -euo pipefail
seconds="${1:?seconds}"
shift
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
scratch="$(mktemp -d "${TMPDIR:-/tmp}/gptd-fuzz.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$here/artifacts"
status=0
printf '%-18s %10s %8s %8s %8s  %s\n' harness executions exec/s edges corpus result
for bin in "$@"; do
    name="$(basename "$bin")"
    seeds="$here/corpus/${name#fuzz_}"
    work="$scratch/$name"
    mkdir -p "$work"
    log="$scratch/$name.log"
    # -max_len: checkpoints need room for a header, metadata and tensors; the rest stay small.
    max_len=4096
    [ "$name" = fuzz_checkpoint ] && max_len=65536
    # A harness may come with a libFuzzer dictionary beside it (tests/fuzz/NAME.dict).
    dict=()
    [ -f "$here/$name.dict" ] && dict=(-dict="$here/$name.dict")
    result=ok
    if ! ASAN_OPTIONS=detect_leaks=1 "$bin" -max_total_time="$seconds" -max_len="$max_len" \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "${dict[@]}" \
        -artifact_prefix="$here/artifacts/$name-" "$work" "$seeds" >"$log" 2>&1; then
        result=FAILED
        status=1
    fi
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    edges=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || echo 0)
    corpus=$(find "$work" -type f | wc -l)
    printf '%-18s %10s %8s %8s %8s  %s\n' "$name" "$execs" "$rate" "$edges" "$corpus" "$result"
    if [ "$result" != ok ]; then
        grep -E 'ERROR|SUMMARY|Assertion|runtime error|Test unit written|^fuzz_' "$log" | head -20 >&2
        # The reproducer itself, so a failure on a machine one cannot log into (CI) can be
        # replayed here: base64 -d > x && bin/fuzz_NAME x
        unit=$(grep -o 'Test unit written to [^ ]*' "$log" | head -1 | sed 's/^Test unit written to //')
        if [ -n "$unit" ] && [ -f "$unit" ] && [ "$(stat -c %s "$unit")" -le 65536 ]; then
            echo "reproducer (base64):" >&2
            base64 -w 0 "$unit" >&2
            echo >&2
        fi
    fi
done
exit $status
