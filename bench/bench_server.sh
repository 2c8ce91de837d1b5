#!/usr/bin/env bash
# make bench-server: 1, 8, 32, 64 and 256 concurrent streaming clients against bin/gptd on
# loopback (bin/bench-server), as shares of the engine's own batch-64 decode rate (measured in
# turns with 64 clients), with the CPU the daemon's own threads (all but the engine's) take per token. Then 64
# x LONG tokens, the same 64 streams with 1,000 idle keep-alive and 500 slow-header connections
# held open (/health's latency, the daemon's RSS and threads), 256 clients in turns with 64, the
# time to first token of requests arriving beside 63 streams, a short request beside long ones,
# and three replicas behind nginx. Rates are the fastest of
# REPEATS runs (the machine is a shared VM).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-weights/shakespeare-char.safetensors}
THREADS=${THREADS:-2}
NEW=${NEW_TOKENS:-100}
PORT=${PORT:-18790}
REPEATS=${REPEATS:-3}
LONG=${LONG_TOKENS:-1024}
./bin/gptd --model "$MODEL" --port "$PORT" --threads "$THREADS" --log-level warn &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
for _ in $(seq 1 100); do ./bin/gptd --healthcheck --port "$PORT" 2>/dev/null && break; sleep 0.1; done
# The rate in one line of bench-server's output; the rate of 64 streaming clients on a port.
rate() { echo "$1" | sed -n 's/.*tokens_per_s=\([0-9]*\).*/\1/p'; }
rate64() { rate "$(./bin/bench-server --port "$1" --clients 64 --max-tokens "$NEW")"; }
# The engine's own batch-64 decode (bin/bench-engine, the daemon idle meanwhile), in turns with
# 64 clients of the daemon: the rate every row is a share of.
engine=0
turns64=0
for _ in $(seq 1 "$REPEATS"); do
  e=$(./bin/bench-engine --model "$MODEL" --threads "$THREADS" --new-tokens "$NEW" --batch 64 \
        --repeats 1 | awk -F'|' '$2 ~ /decode, batch 64/ { gsub(/ /, "", $3); printf "%d", $3 }')
  [ "${e:-0}" -gt "$engine" ] && engine=$e
  r=$(rate64 "$PORT")
  [ "${r:-0}" -gt "$turns64" ] && turns64=$r
done
echo "| clients | tokens/s | TTFT p50 ms | TTFT p99 ms | between tokens p50 ms | p99 ms | daemon µs/token | of engine batch-64 |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
for n in 1 8 32 64 256; do
  line=""
  for _ in $(seq 1 "$REPEATS"); do
    run=$(./bin/bench-server --port "$PORT" --clients "$n" --max-tokens "$NEW" --pid "$pid")
    if [ -z "$line" ] || [ "$(rate "$run")" -gt "$(rate "$line")" ]; then line=$run; fi
  done
  get() { echo "$line" | sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }
  awk -v n="$n" -v t="$(get tokens_per_s)" -v a="$(get ttft_p50_ms)" -v b="$(get ttft_p99_ms)" \
      -v c="$(get tbt_p50_ms)" -v d="$(get tbt_p99_ms)" -v u="$(get daemon_us_per_token)" -v e="$engine" \
      'BEGIN { printf "| %d | %.0f | %.1f | %.1f | %.2f | %.2f | %.1f | %s |\n", n, t, a, b, c, d, u,
               (n >= 64 ? sprintf("%.0f%%", 100 * t / e) : "") }'
done
# Long replies: 64 clients x LONG tokens (well past the context), every request must complete.
long=$(./bin/bench-server --port "$PORT" --clients 64 --max-tokens "$LONG" --pid "$pid") || true
get() { echo "$long" | sed -n "s/.*$1=\([0-9.]*\).*/\1/p" | head -1; }
awk -v n=64 -v t="$(get tokens_per_s)" -v a="$(get ttft_p50_ms)" -v b="$(get ttft_p99_ms)" \
    -v c="$(get tbt_p50_ms)" -v d="$(get tbt_p99_ms)" -v u="$(get daemon_us_per_token)" \
    -v ok="$(get ok)" -v L="$LONG" -v e="$engine" \
    'BEGIN { printf "| %d x %d tokens (%d completed) | %.0f | %.1f | %.1f | %.2f | %.2f | %.1f | %.0f%% |\n",
             n, L, ok, t, a, b, c, d, u, 100 * t / e }'
# The same 64 streams with 1,000 idle keep-alive connections and 500 slow-header ones held open,
# in turns with 64 streams alone (the rate they are compared with: see the replicas below).
held=""
plain=0
for _ in $(seq 1 "$REPEATS"); do
  r=$(rate64 "$PORT")
  [ "${r:-0}" -gt "$plain" ] && plain=$r
  run=$(./bin/bench-server --port "$PORT" --clients 64 --max-tokens "$NEW" --idle 1000 --slow 500 \
        --health --pid "$pid")
  if [ -z "$held" ] || [ "$(rate "$run")" -gt "$(rate "$held")" ]; then held=$run; fi
done
get() { echo "$held" | sed -n "s/.*$1=\([0-9.]*\).*/\1/p" | head -1; }
awk -v t="$(get tokens_per_s)" -v a="$(get ttft_p50_ms)" -v b="$(get ttft_p99_ms)" \
    -v c="$(get tbt_p50_ms)" -v d="$(get tbt_p99_ms)" -v u="$(get daemon_us_per_token)" \
    -v e="$engine" -v i="$(get held_idle)" -v s="$(get held_slow)" \
    'BEGIN { printf "| 64, beside %d idle + %d slow-header connections | %.0f | %.1f | %.1f | %.2f | %.2f | %.1f | %.0f%% |\n",
             i, s, t, a, b, c, d, u, 100 * t / e }'
echo
awk -v e="$engine" -v d="$turns64" 'BEGIN {
  printf "engine alone, decode at batch 64: %.0f tokens/s; 64 clients in turns with it: %.0f (%.0f%%)\n", e, d, 100 * d / e }'
awk -v h50="$(get health_p50_ms)" -v h99="$(get health_p99_ms)" -v hn="$(get health_n)" \
    -v r0="$(get rss_before_mb)" -v r1="$(get rss_during_mb)" -v th="$(get threads_during)" \
    -v t="$(get tokens_per_s)" -v o="$plain" 'BEGIN {
  printf "beside 1,000 idle + 500 slow-header connections: GET /health p50 %.2f ms, p99 %.2f ms (%d probes); ", h50, h99, hn
  printf "RSS %.0f -> %.0f MB (+%.0f); %d threads; the 64 streams at %.0f%% of their rate without them, in turns (%.0f)\n",
         r0, r1, r1 - r0, th, 100 * t / o, o }'
# 256 clients, a queue beyond the 64 slots, in turns with 64 clients: the total should not drop.
q64=0
q256=0
for _ in $(seq 1 "$REPEATS"); do
  r=$(rate64 "$PORT")
  [ "${r:-0}" -gt "$q64" ] && q64=$r
  r=$(rate "$(./bin/bench-server --port "$PORT" --clients 256 --max-tokens "$NEW")")
  [ "${r:-0}" -gt "$q256" ] && q256=$r
done
awk -v a="$q256" -v b="$q64" 'BEGIN {
  printf "256 clients (a queue beyond the 64 slots): %.0f tokens/s in all, %.0f%% of 64 clients in turns with them (%.0f)\n",
         a, 100 * a / b, b }'
# A request arriving at a busy server: 63 clients stream 250 tokens each while 60 one-token
# requests arrive one after another (the 64th slot); their time to first token. The table's TTFT
# is that of 64 clients starting at once, each a thread of bench-server on these same cores.
arr=$(./bin/bench-server --port "$PORT" --clients 63 --max-tokens 250 --arrivals 60) || true
get() { echo "$arr" | sed -n "s/.*$1=\([0-9.]*\).*/\1/p" | head -1; }
echo "a request arriving beside 63 streams (60 one after another): time to first token p50 $(get arrival_ttft_p50_ms) ms, p99 $(get arrival_ttft_p99_ms) ms"
# What a short request pays for its neighbours: one request of $NEW tokens, timed, sent while 8
# others stream, once beside 8 x $NEW tokens and once beside 8 x $LONG (fastest of REPEATS each).
probe() {
  local best=""
  for _ in $(seq 1 "$REPEATS"); do
    s=$(./bin/bench-server --port "$PORT" --clients 8 --max-tokens "$1" --probe "$NEW" |
        sed -n 's/.*probe_s=\([0-9.]*\).*/\1/p')
    if [ -z "$best" ] || awk -v a="$s" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$s; fi
  done
  echo "$best"
}
short=$(probe "$NEW")
longp=$(probe "$LONG")
awk -v n="$NEW" -v l="$LONG" -v s="$short" -v p="$longp" 'BEGIN {
  printf "a %d-token request beside 8 x %d tokens: %.3f s; beside 8 x %d tokens: %.3f s (%.2fx)\n",
         n, n, s, l, p, p / s }'
# Three replicas on this machine behind docker/nginx.conf, as compose runs them: each in a cgroup
# limited to one CPU (compose's `cpus: 1.0`), so each takes its default thread count from that
# quota (the upstreams pointed at loopback ports, as tests/lb does); 64 clients through nginx.
# Side by side, in turns: 64 clients straight to one gptd with the machine's default threads and
# no quota (one daemon on the whole machine) while the replicas idle. Turns, because this shared
# machine's speed drifts over the minutes between this row and the rows above. Needs nginx and a
# writable cgroup cpu controller (v2 or v1; as root); without one, the replicas run with
# --threads 1 and no quota, and the line says so. REPLICAS=0 skips it.
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
# Makes a cgroup limited to one CPU and prints its directory; prints nothing where it cannot.
one_cpu_cgroup() {
  local d
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then # v2: the root must delegate the cpu controller
    d=/sys/fs/cgroup/gptd-bench-$1
    echo +cpu > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
    mkdir -p "$d" 2>/dev/null && echo "100000 100000" > "$d/cpu.max" 2>/dev/null && echo "$d"
  elif [ -d /sys/fs/cgroup/cpu ]; then
    d=/sys/fs/cgroup/cpu/gptd-bench-$1
    mkdir -p "$d" 2>/dev/null && echo 100000 > "$d/cpu.cfs_period_us" 2>/dev/null &&
      echo 100000 > "$d/cpu.cfs_quota_us" 2>/dev/null && echo "$d"
  fi
  return 0
}
if [ "${REPLICAS:-1}" != 0 ] && [ -x "$NGINX" ]; then
  kill $pid 2>/dev/null; wait $pid 2>/dev/null || true
  dir=$(mktemp -d)
  pids=()
  cgroups=()
  trap 'kill ${pids[*]} 2>/dev/null; wait 2>/dev/null; for c in ${cgroups[*]}; do rmdir "$c"; done; rm -rf "$dir"' EXIT
  how="each in a one-CPU cgroup, default threads"
  for i in 1 2 3; do
    cg=$(one_cpu_cgroup "$i")
    if [ -n "$cg" ]; then
      cgroups+=("$cg")
      (echo "$BASHPID" > "$cg/cgroup.procs" &&
        exec ./bin/gptd --model "$MODEL" --port $((PORT + i)) --log-level warn) &
    else
      how="each --threads 1, no cgroup quota here"
      ./bin/gptd --model "$MODEL" --port $((PORT + i)) --threads 1 --log-level warn &
    fi
    pids+=($!)
  done
  ./bin/gptd --model "$MODEL" --port $((PORT + 4)) --log-level warn &
  pids+=($!)
  lb=$((PORT + 10))
  sed -e "s/server gptd1:8080/server 127.0.0.1:$((PORT + 1))/" -e "s/server gptd2:8080/server 127.0.0.1:$((PORT + 2))/" \
      -e "s/server gptd3:8080/server 127.0.0.1:$((PORT + 3))/" -e "s/listen 8080;/listen 127.0.0.1:$lb;/" \
      docker/nginx.conf > "$dir/site.conf"
  mkdir -p "$dir/body" "$dir/proxy" "$dir/fcgi" "$dir/uwsgi" "$dir/scgi"
  cat > "$dir/nginx.conf" <<NGINX
daemon off; worker_processes 1; pid $dir/nginx.pid; error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $dir/body; proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fcgi; uwsgi_temp_path $dir/uwsgi; scgi_temp_path $dir/scgi;
  include $dir/site.conf;
}
NGINX
  "$NGINX" -c "$dir/nginx.conf" -p "$dir" &
  pids+=($!)
  for i in 1 2 3 4; do
    for _ in $(seq 1 100); do ./bin/gptd --healthcheck --port $((PORT + i)) 2>/dev/null && break; sleep 0.1; done
  done
  threads=$(curl -s "http://127.0.0.1:$((PORT + 1))/info" | sed -n 's/.*"threads":\([0-9]*\).*/\1/p')
  sleep 0.5
  three=0 one=0
  for _ in $(seq 1 $((2 * REPEATS))); do
    r=$(rate64 "$lb"); [ "${r:-0}" -gt "$three" ] && three=$r
    r=$(rate64 $((PORT + 4))); [ "${r:-0}" -gt "$one" ] && one=$r
  done
  awk -v t="$three" -v o="$one" -v how="$how" -v th="${threads:-?}" 'BEGIN {
    printf "three replicas (%s: %s) behind nginx, 64 clients: %.0f tokens/s, %.0f%% of one gptd on the whole machine (default threads, in turns: %.0f)\n",
           how, th, t, 100 * t / o, o }'
fi
