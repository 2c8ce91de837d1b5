#!/usr/bin/env bash
# make bench-attention: what "attention" costs. One gptd on loopback; the same seeded request
# (a 6-character prompt, NEW tokens, JSON and SSE) without attention and with each form, side by
# side, REPEATS times each in turn; the fastest of each counts (a shared VM). With BASELINE_BIN (a
# gptd built without the attention explorer, e.g. from git), requests without attention also run
# on it, alternating with this build, to show what the feature costs those that do not ask.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-weights/shakespeare-char.safetensors}
NEW=${NEW_TOKENS:-256}
REPEATS=${REPEATS:-7}
PORT=${PORT:-18791}
BASELINE_BIN=${BASELINE_BIN:-}
start() { # BIN PORT
  "$1" --model "$MODEL" --port "$2" --threads 2 --log-level warn &
  pids="${pids:-} $!"
  for _ in $(seq 1 100); do ./bin/gptd --healthcheck --port "$2" 2>/dev/null && return; sleep 0.1; done
  echo "bench-attention: $1 did not start" >&2
  exit 1
}
trap 'kill ${pids:-} 2>/dev/null; wait 2>/dev/null' EXIT
start ./bin/gptd "$PORT"
[ -n "$BASELINE_BIN" ] && start "$BASELINE_BIN" $((PORT + 1))
# seconds PORT STREAM ATTENTION-JSON: wall time of one request, body read to the end
seconds() {
  local body="{\"prompt\": \"ROMEO:\", \"max_tokens\": $NEW, \"seed\": 1, \"stream\": $2${3:+, \"attention\": $3}}"
  curl -s -o /dev/null -w '%{time_total}' "localhost:$1/generate" -d "$body"
}
forms=('' '{"layer": 5, "head": 0}' '{"layer": 5, "head": "mean"}' '{"layer": 5, "head": "all"}'
       '{"layer": 5, "head": 0, "top_k": 5}')
names=('none' 'one head' 'mean of heads' 'all heads' 'one head, top 5')
declare -A best
for stream in false true; do
  for _ in $(seq 1 "$REPEATS"); do
    for i in "${!forms[@]}"; do
      t=$(seconds "$PORT" "$stream" "${forms[$i]}")
      k="$stream/$i"
      if [ -z "${best[$k]:-}" ] || awk -v a="$t" -v b="${best[$k]}" 'BEGIN { exit !(a < b) }'; then best[$k]=$t; fi
    done
    if [ -n "$BASELINE_BIN" ]; then
      t=$(seconds $((PORT + 1)) "$stream" '')
      k="$stream/base"
      if [ -z "${best[$k]:-}" ] || awk -v a="$t" -v b="${best[$k]}" 'BEGIN { exit !(a < b) }'; then best[$k]=$t; fi
    fi
  done
done
echo "$NEW tokens a request, fastest of $REPEATS; tokens/s and the share of the rate without attention"
echo
echo "| attention | JSON tokens/s | of none | SSE tokens/s | of none |"
echo "|---|---:|---:|---:|---:|"
row() { # NAME KEY
  awk -v n="$1" -v j="${best[false/$2]}" -v s="${best[true/$2]}" -v j0="${best[false/0]}" \
      -v s0="${best[true/0]}" -v t="$NEW" \
      'BEGIN { printf "| %s | %.0f | %.0f%% | %.0f | %.0f%% |\n", n, t / j, 100 * j0 / j, t / s, 100 * s0 / s }'
}
for i in "${!forms[@]}"; do row "${names[$i]}" "$i"; done
[ -n "$BASELINE_BIN" ] && row "none, on $BASELINE_BIN" base
exit 0
