#!/usr/bin/env bash
# Mutation checking: break the real code on purpose, one small change at a time, and check that
# the tests named for that behaviour fail. The list and its format: tests/mutations/mutations.txt.
#
#   tests/mutations/run.sh                 # every mutation        (make test-mutations)
#   tests/mutations/run.sh --fast          # those tagged fast     (make test-mutations-fast)
#   tests/mutations/run.sh M1 M2           # these ids; or MUTATIONS="M1 M2" in the environment
#   tests/mutations/run.sh --check         # only check that every snippet occurs exactly once
#   tests/mutations/run.sh --list          # ids, files and what each breaks
#
# The list may not shrink: tests/mutations/minimum holds the committed counts ("all N", "fast N");
# --check, --fast and a full run fail (exit 1) when the list holds fewer mutations, or fewer
# tagged fast, than that (raise the counts when adding mutations). A run ends with the kill rate
# by directory of the mutated files (model/, api/, server/, train/, common/).
#
# The tracked files of the working tree (uncommitted changes included, weights/context256 and
# weights/seed left out) are copied to a scratch directory under ${TMPDIR:-/tmp}, built once without sanitizers
# (make SAN=), and the tests a mutation names are first run on the unmutated copy (they must
# pass). Then, for each mutation: the snippet must occur exactly once in its file (else "DOES NOT
# APPLY", a fault of the list), it is replaced, only the targets its tests need are rebuilt, the
# tests run with a time limit, and the file is restored. KILLED: a test failed (or timed out).
# SURVIVED: every test passed; allowed only for mutations listed as equivalent, with the reason.
#
# Exit status: 0 when every mutation applied and was killed (or is a listed equivalent), 1 when
# one survived, did not apply or did not build, 2 on a usage error or when a test fails on the
# unmutated code.
#
# Environment: MUTATIONS (ids), MUTATION_LIST (another list file), MUT_JOBS (make -j, default 2),
# MUT_KEEP=1 (keep the scratch directory), GPTD_DATA (the text; default as the trainer finds it).
set -uo pipefail
shopt -u patsub_replacement 2>/dev/null || true # "&" in a replacement stays a literal "&"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
list="${MUTATION_LIST:-$here/mutations.txt}"
jobs="${MUT_JOBS:-2}"
default_timeout=300

usage() {
    awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"
    exit "${1:-2}"
}

mode=run
fast=0
wanted=()
for arg in "$@"; do
    case "$arg" in
        --fast) fast=1 ;;
        --check) mode=check ;;
        --list) mode=list ;;
        -h | --help) usage 0 ;;
        -*) echo "run.sh: unknown option $arg" >&2; usage ;;
        *) wanted+=("$arg") ;;
    esac
done
if [ ${#wanted[@]} -eq 0 ] && [ -n "${MUTATIONS:-}" ]; then
    read -r -a wanted <<<"$MUTATIONS"
fi

# ---- the list ----------------------------------------------------------------------------------
ids=() files=() whats=() tests=() tags=() equivs=() timeouts=() froms=() tos=()
die_list() {
    echo "run.sh: $list:$lineno: $*" >&2
    exit 2
}
parse_list() {
    local line state=none cur=-1 lineno=0 text n_from=0 n_to=0
    [ -r "$list" ] || { echo "run.sh: cannot read $list" >&2; exit 2; }
    while IFS= read -r line || [ -n "$line" ]; do
        lineno=$((lineno + 1))
        case "$state" in
            from | to)
                if [ "$line" = "--- to" ] && [ "$state" = from ]; then
                    state=to
                    continue
                fi
                if [ "$line" = "--- end" ] && [ "$state" = to ]; then
                    state=none
                    continue
                fi
                case "$line" in ---\ *) die_list "unexpected '$line' in a snippet" ;; esac
                # snippet lines are verbatim, joined by newlines (no newline after the last)
                if [ "$state" = from ]; then
                    [ "$n_from" -eq 0 ] && froms[cur]=$line || froms[cur]+=$'\n'"$line"
                    n_from=$((n_from + 1))
                else
                    [ "$n_to" -eq 0 ] && tos[cur]=$line || tos[cur]+=$'\n'"$line"
                    n_to=$((n_to + 1))
                fi
                continue
                ;;
        esac
        case "$line" in
            '' | '#'*) continue ;;
            '=== '*)
                [ "$state" = none ] || die_list "a new mutation before '--- end'"
                cur=$((cur + 1))
                read -r _ id file text <<<"$line"
                if [ -z "${id:-}" ] || [ -z "${file:-}" ] || [ -n "$text" ]; then
                    die_list "expected '=== ID FILE'"
                fi
                for other in "${ids[@]}"; do [ "$other" != "$id" ] || die_list "duplicate id $id"; done
                ids[cur]=$id files[cur]=$file whats[cur]="" tests[cur]="" tags[cur]=""
                equivs[cur]="" timeouts[cur]=$default_timeout froms[cur]="" tos[cur]=""
                ;;
            what:* | test:* | tags:* | equivalent:* | timeout:*)
                [ "$cur" -ge 0 ] || die_list "'${line%%:*}:' before the first '=== ID FILE'"
                text="${line#*:}"
                text="${text#"${text%%[![:space:]]*}"}"
                case "$line" in
                    what:*) whats[cur]=$text ;;
                    test:*) tests[cur]+="${tests[cur]:+$'\n'}$text" ;;
                    tags:*) tags[cur]=" $text " ;;
                    equivalent:*) equivs[cur]=$text ;;
                    timeout:*) timeouts[cur]=$text ;;
                esac
                ;;
            '--- from')
                [ "$cur" -ge 0 ] || die_list "'--- from' before the first '=== ID FILE'"
                state=from n_from=0 n_to=0
                ;;
            *) die_list "cannot read '$line'" ;;
        esac
    done <"$list"
    [ "$state" = none ] || die_list "the last snippet has no '--- end'"
    for i in "${!ids[@]}"; do
        [ -n "${whats[i]}" ] || { lineno="(${ids[i]})"; die_list "no 'what:'"; }
        [ -n "${tests[i]}" ] || { lineno="(${ids[i]})"; die_list "no 'test:'"; }
        [ -n "${froms[i]}" ] || { lineno="(${ids[i]})"; die_list "no '--- from' snippet"; }
        [ "${froms[i]}" != "${tos[i]}" ] || { lineno="(${ids[i]})"; die_list "replacement equals the original"; }
        if [[ "${tags[i]}" == *" fast "* ]] && grep -qv '^unit ' <<<"${tests[i]}"; then
            lineno="(${ids[i]})"
            die_list "tagged fast but not tested by unit tests alone"
        fi
    done
}
parse_list

# ---- the list may not shrink --------------------------------------------------------------------
minimum_file="$here/minimum"
check_minimum() {
    [ ${#wanted[@]} -eq 0 ] || return 0 # a chosen few say nothing of the list
    [ "$list" = "$here/mutations.txt" ] || return 0
    if [ ! -r "$minimum_file" ]; then
        echo "run.sh: $minimum_file is missing (the committed minimum counts)" >&2
        return 1
    fi
    local min_all min_fast n_all=${#ids[@]} n_fast=0
    min_all=$(awk '$1 == "all" { print $2 }' "$minimum_file")
    min_fast=$(awk '$1 == "fast" { print $2 }' "$minimum_file")
    for i in "${!ids[@]}"; do [[ "${tags[i]}" == *" fast "* ]] && n_fast=$((n_fast + 1)); done
    if [ -z "$min_all" ] || [ -z "$min_fast" ]; then
        echo "run.sh: $minimum_file must hold 'all N' and 'fast N'" >&2
        return 1
    fi
    if [ "$n_all" -lt "$min_all" ] || [ "$n_fast" -lt "$min_fast" ]; then
        echo "run.sh: the list shrank: $n_all mutations ($n_fast fast), the committed minimum is" \
            "$min_all ($min_fast fast) in $minimum_file" >&2
        return 1
    fi
    echo "run.sh: $n_all mutations ($n_fast fast), at least the committed $min_all ($min_fast fast)"
}

selected=()
if [ ${#wanted[@]} -gt 0 ]; then
    for w in "${wanted[@]}"; do
        found=
        for i in "${!ids[@]}"; do [ "${ids[i]}" = "$w" ] && found=$i; done
        [ -n "$found" ] || { echo "run.sh: no mutation $w in $list" >&2; exit 2; }
        selected+=("$found")
    done
else
    for i in "${!ids[@]}"; do
        if [ "$fast" = 0 ] || [[ "${tags[i]}" == *" fast "* ]]; then selected+=("$i"); fi
    done
fi

if [ "$mode" = list ]; then
    for i in "${selected[@]}"; do
        printf '%-5s %-24s %s%s\n' "${ids[i]}" "${files[i]}" "${whats[i]}" \
            "$([[ "${tags[i]}" == *" fast "* ]] && echo ' [fast]')"
    done
    exit 0
fi

# ---- applying a snippet ------------------------------------------------------------------------
# count_in TEXT SNIPPET: how many times SNIPPET occurs in TEXT (non-overlapping).
count_in() {
    local rest=$1 n=0
    while [[ "$rest" == *"$2"* ]]; do
        n=$((n + 1))
        rest=${rest#*"$2"}
    done
    echo "$n"
}

# read_file PATH: the whole file into $content, trailing newlines included.
read_file() {
    content=
    IFS= read -r -d '' content <"$1" || true
}

# ---- check mode: the list against the working tree, nothing built --------------------------------
if [ "$mode" = check ]; then
    bad=0
    check_minimum || bad=1
    for i in "${selected[@]}"; do
        f="$repo/${files[i]}"
        if [ ! -f "$f" ]; then
            echo "${ids[i]}: ${files[i]} does not exist"
            bad=1
            continue
        fi
        read_file "$f"
        n=$(count_in "$content" "${froms[i]}")
        if [ "$n" != 1 ]; then
            echo "${ids[i]}: DOES NOT APPLY: the snippet occurs $n times in ${files[i]}"
            bad=1
        fi
    done
    [ "$bad" = 0 ] && echo "run.sh --check: all ${#selected[@]} mutations apply"
    exit "$bad"
fi

# ---- the scratch copy ----------------------------------------------------------------------------
check_minimum || exit 1

if [ -z "${GPTD_DATA:-}" ]; then
    for d in "$repo/../shared/data/tinyshakespeare.txt" "$repo/data/tinyshakespeare.txt"; do
        if [ -r "$d" ]; then
            GPTD_DATA="$(cd "$(dirname "$d")" && pwd)/$(basename "$d")"
            export GPTD_DATA
            break
        fi
    done
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/gptd-mutations.XXXXXX")" || exit 2
cleanup() {
    if [ "${MUT_KEEP:-0}" = 1 ]; then
        echo "scratch directory kept: $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

(cd "$repo" && git ls-files -z --cached --others --exclude-standard) |
    while IFS= read -r -d '' f; do
        case "$f" in weights/context256/* | weights/seed/*) continue ;; esac
        [ -e "$repo/$f" ] && printf '%s\0' "$f"
    done | tar -C "$repo" --null -T - -cf - | tar -C "$work" -xf - || {
    echo "run.sh: copying the tree failed" >&2
    exit 2
}
if [ -d "$repo/tests/integration/node_modules/eventsource-parser" ] &&
    [ -d "$repo/tests/integration/node_modules/fast-check" ]; then
    ln -s "$repo/tests/integration/node_modules" "$work/tests/integration/node_modules"
elif grep -q '^node ' < <(for i in "${selected[@]}"; do echo "${tests[i]}"; done); then
    npm ci --prefix "$work/tests/integration" --no-audit --no-fund >/dev/null || exit 2
fi
mkdir -p "$work/.mutation-logs"
logs="$work/.mutation-logs"

# ---- tests ---------------------------------------------------------------------------------------
# targets_of TESTLINE: the make targets the test needs.
targets_of() {
    local kind arg1 rest
    read -r kind arg1 rest <<<"$1"
    case "$kind" in
        unit) echo "build/san/$arg1" ;;
        node) echo "bin/gptd bin/gpt-context-loss" ;; # logprobs.test.js scores against the tool
        cli) for a in $rest; do if [[ "$a" == bin/* ]]; then echo "$a"; fi; done ;;
        *) echo "run.sh: unknown test kind '$kind' in: $1" >&2; return 1 ;;
    esac
}

# run_test TESTLINE TIMEOUT LOG: runs one test command in the scratch copy; its status.
run_test() {
    local kind arg1 rest
    read -r kind arg1 rest <<<"$1"
    {
        echo "\$ $1"
        case "$kind" in
            unit)
                (cd "$work" && GPTD_TEST_FILTER="$rest" timeout -k 10 "$2" "build/san/$arg1")
                ;;
            node)
                local pattern=()
                [ -z "$rest" ] || pattern=("--test-name-pattern=$rest")
                (cd "$work" && GPTD_BIN=bin/gptd timeout -k 10 "$2" \
                    node --test "${pattern[@]}" "tests/integration/$arg1")
                ;;
            cli)
                # shellcheck disable=SC2086 # the arguments are words
                (cd "$work" && timeout -k 10 "$2" bash "tests/cli/$arg1" $rest)
                ;;
        esac
    } >>"$3" 2>&1
}

# build TARGET...: make in the scratch copy, without sanitizers (and without the variables of a
# make that may have started this script: its BUILD or SAN would move the targets named here).
build() {
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -C "$work" -j"$jobs" SAN= BUILD=build "$@"
}

# ---- build once, and the tests on the unmutated code ------------------------------------------------
all_targets=()
declare -A seen_test=()
baseline_tests=()
for i in "${selected[@]}"; do
    while IFS= read -r t; do
        tg=$(targets_of "$t") || exit 2
        for x in $tg; do all_targets+=("$x"); done
        if [ -z "${seen_test[$t]:-}" ]; then
            seen_test[$t]=${timeouts[i]}
            baseline_tests+=("$t")
        fi
    done <<<"${tests[i]}"
done
mapfile -t all_targets < <(printf '%s\n' "${all_targets[@]}" | sort -u)

t_start=$SECONDS
echo "== scratch copy: $work"
echo "== building ${all_targets[*]} (make SAN=, -j$jobs)"
if ! build "${all_targets[@]}" >"$logs/build.log" 2>&1; then
    tail -n 30 "$logs/build.log"
    echo "run.sh: the unmutated tree does not build" >&2
    exit 2
fi
echo "   built in $((SECONDS - t_start)) s"

t_base=$SECONDS
echo "== ${#baseline_tests[@]} test commands on the unmutated code"
for t in "${baseline_tests[@]}"; do
    if ! run_test "$t" "${seen_test[$t]}" "$logs/baseline.log"; then
        tail -n 30 "$logs/baseline.log"
        echo "run.sh: '$t' fails on the unmutated code: fix that first" >&2
        exit 2
    fi
done
echo "   passed in $((SECONDS - t_base)) s"

# ---- the mutations --------------------------------------------------------------------------------
results=() secs=()
killed=0 survived=0 equivalent=0 faults=0
for i in "${selected[@]}"; do
    id=${ids[i]} file=${files[i]}
    path="$work/$file"
    log="$logs/$id.log"
    t0=$SECONDS
    result=
    if [ ! -f "$path" ]; then
        result="DOES NOT APPLY (no such file)"
    else
        read_file "$path"
        original=$content
        n=$(count_in "$original" "${froms[i]}")
        if [ "$n" != 1 ]; then
            result="DOES NOT APPLY (found $n times)"
        fi
    fi
    if [ -z "$result" ]; then
        printf '%s' "${original/"${froms[i]}"/"${tos[i]}"}" >"$path"
        targets=()
        while IFS= read -r t; do
            for x in $(targets_of "$t"); do targets+=("$x"); done
        done <<<"${tests[i]}"
        if ! build "${targets[@]}" >"$log" 2>&1; then
            result="BUILD FAILED"
        else
            result=SURVIVED
            while IFS= read -r t; do
                run_test "$t" "${timeouts[i]}" "$log"
                status=$?
                if [ "$status" -ne 0 ]; then
                    result=KILLED
                    # timeout(1) says 124 (137 when it had to kill)
                    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
                        result="KILLED (timeout)"
                        echo "run.sh: timed out after ${timeouts[i]} s" >>"$log"
                    fi
                    break
                fi
            done <<<"${tests[i]}"
        fi
        printf '%s' "$original" >"$path"
        # objects built from the mutant must not outlive it, whatever the clock's resolution
        base=${file%.*}
        rm -f "$work/build/rel/$base.o" "$work/build/san/$base.o"
    fi
    case "$result" in
        KILLED*) killed=$((killed + 1)) ;;
        SURVIVED)
            if [ -n "${equivs[i]}" ]; then
                result="EQUIVALENT"
                equivalent=$((equivalent + 1))
            else
                survived=$((survived + 1))
            fi
            ;;
        *) faults=$((faults + 1)) ;;
    esac
    results[i]=$result
    secs[i]=$((SECONDS - t0))
    printf '%-5s %-24s %-30s %4ss  %s\n' "$id" "$file" "$result" "${secs[i]}" "${whats[i]}"
    if [ "$result" = SURVIVED ] || [ "$result" = "BUILD FAILED" ]; then
        tail -n 15 "$log" | sed 's/^/        /'
    fi
done

# ---- summary --------------------------------------------------------------------------------------
echo
printf '%-5s %-24s %-30s %s\n' id file result seconds
for i in "${selected[@]}"; do
    printf '%-5s %-24s %-30s %5s\n' "${ids[i]}" "${files[i]}" "${results[i]}" "${secs[i]}"
done
counted=$((killed + survived))
echo
if [ "$counted" -gt 0 ]; then
    echo "kill rate: $killed of $counted ($((100 * killed / counted))%)," \
        "$equivalent listed as equivalent, $faults did not apply or build;" \
        "$((SECONDS - t_start)) s in all"
else
    echo "kill rate: nothing counted; $faults did not apply or build"
fi
for i in "${selected[@]}"; do
    [ "${results[i]}" = EQUIVALENT ] && echo "  ${ids[i]} equivalent: ${equivs[i]}"
done
# the score by directory of the mutated file: killed of killed + survived
declare -A dir_killed=() dir_counted=()
for i in "${selected[@]}"; do
    d=${files[i]%/*}/
    case "${results[i]}" in
        KILLED*) dir_killed[$d]=$((${dir_killed[$d]:-0} + 1)) dir_counted[$d]=$((${dir_counted[$d]:-0} + 1)) ;;
        SURVIVED) dir_counted[$d]=$((${dir_counted[$d]:-0} + 1)) ;;
    esac
done
if [ ${#dir_counted[@]} -gt 0 ]; then
    echo "mutation score by directory:"
    for d in $(printf '%s\n' "${!dir_counted[@]}" | sort); do
        k=${dir_killed[$d]:-0} c=${dir_counted[$d]}
        printf '  %-10s %3d of %3d killed (%d%%)\n' "$d" "$k" "$c" "$((100 * k / c))"
    done
fi
[ "$survived" -eq 0 ] && [ "$faults" -eq 0 ]
