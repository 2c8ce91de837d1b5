#!/usr/bin/env bash
# The image really builds and runs (podman, no Docker engine needed): build docker/Dockerfile,
# run it on a loopback port, wait for /health, run the HEALTHCHECK, POST /generate, stop it with
# SIGTERM and check a clean exit; print the image size.
set -u
cd "$(dirname "$0")/../.."
PORT=${PORT:-18481}
IMAGE=gptd:test
NAME=gptd-test-$$
fails=0
# check NAME CONDITION: prints ok/FAIL, counts failures, and returns the condition's status.
check() {
  if eval "$2"; then echo "ok   - $1"; return 0; fi
  echo "FAIL - $1"
  fails=$((fails + 1))
  return 1
}

bash ../shared/tools/container-env.sh >/dev/null || { echo "FAIL - container-env.sh"; exit 1; }
podman build --pull=never --format docker -f docker/Dockerfile -t "$IMAGE" . >/tmp/gptd-build.log 2>&1
built=$?
check "image builds" '[ $built -eq 0 ]' || { tail -30 /tmp/gptd-build.log; exit 1; }

podman run -d --name "$NAME" -p "127.0.0.1:$PORT:8080" "$IMAGE" >/dev/null
trap 'podman rm -f "$NAME" >/dev/null 2>&1' EXIT
healthy=0
for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$PORT/health" 2>/dev/null | grep -q '"ok"'; then healthy=1; break; fi
  sleep 0.2
done
check "/health answers 200 ok" '[ $healthy -eq 1 ]'
check "podman healthcheck run (gptd --healthcheck inside)" 'podman healthcheck run "$NAME" >/dev/null'
reply=$(curl -fsS -X POST "http://127.0.0.1:$PORT/generate" -d '{"prompt":"ROMEO:","max_tokens":40,"seed":7}')
check "POST /generate replies with 40 tokens" \
  'echo "$reply" | python3 -c "import json,sys; r=json.load(sys.stdin); assert r[\"usage\"][\"completion_tokens\"]==40 and r[\"finish_reason\"]==\"length\" and len(r[\"text\"])==40"'
uid=$(podman exec "$NAME" id -u) || uid=""
check "runs as a non-root user (uid $uid)" '[ -n "$uid" ] && [ "$uid" != 0 ]'
podman stop -t 40 "$NAME" >/dev/null
code=$(podman inspect "$NAME" --format '{{.State.ExitCode}}')
check "SIGTERM (podman stop) exits 0 (got $code)" '[ "$code" = 0 ]'
check "gptd logged the drain" 'podman logs "$NAME" 2>&1 | grep -q "SIGTERM: draining"'
# A container limited to one CPU: gptd takes one thread from the cgroup quota, and says so.
podman run -d --name "$NAME-cpu1" --cpus 1 -p "127.0.0.1:$((PORT + 1)):8080" "$IMAGE" >/dev/null
trap 'podman rm -f "$NAME" "$NAME-cpu1" >/dev/null 2>&1' EXIT
info=""
for _ in $(seq 1 100); do
  info=$(curl -fsS "http://127.0.0.1:$((PORT + 1))/info" 2>/dev/null) && echo "$info" | grep -q '"ok"\|"config"' && break
  sleep 0.2
done
check "--cpus 1: one thread, from the cgroup quota ($(echo "$info" | python3 -c 'import json,sys; l=json.load(sys.stdin)["limits"]; print(l["threads"], l.get("threads_source"))' 2>/dev/null))" \
  'echo "$info" | python3 -c "import json,sys; l=json.load(sys.stdin)[\"limits\"]; assert l[\"threads\"]==1 and \"quota\" in l[\"threads_source\"]"'
podman rm -f "$NAME-cpu1" >/dev/null 2>&1
size=$(podman image inspect "$IMAGE" --format '{{.Size}}')
echo "image size: $((size / 1000000)) MB"
check "image under 200 MB" '[ "$size" -lt 200000000 ]'
[ $fails -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "test_docker: all passed"
