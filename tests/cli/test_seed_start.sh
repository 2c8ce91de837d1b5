#!/usr/bin/env bash
# With the lecture's hyperparameters, gpt-train's defaults (6 layers, 6 heads, 384 wide, context
# 256, batch 64), the step-0 evaluation must print losses near ln(65) = 4.17: between 4.17 and 4.40
# (the lecture's script printed 4.2849 / 4.2823). Two eval batches keep it quick; the bound is
# wide enough for that.
set -u
bin=${1:-bin/gpt-train}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
out=$("$bin" --max-iters 0 --eval-iters 2 --out "$dir/seed.safetensors" 2>"$dir/err")
rc=$?
echo "$out"
if [ $rc -ne 0 ]; then echo "FAIL: gpt-train exited $rc"; cat "$dir/err"; exit 1; fi
echo "$out" | awk '
  /^step: 0, train loss: [0-9.]+, valid loss: [0-9.]+$/ {
    gsub(",", ""); train = $5; valid = $8; seen = 1
    ok = train >= 4.17 && train <= 4.40 && valid >= 4.17 && valid <= 4.40
    print (ok ? "ok" : "FAIL") ": step-0 losses " train " / " valid " (want 4.17..4.40)"
    exit !ok
  }
  END { if (!seen) { print "FAIL: no step-0 log line"; exit 1 } }'
