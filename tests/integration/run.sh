#!/usr/bin/env bash
# Black-box integration tests of gptd (Node's test runner against the real binary).
#   tests/integration/run.sh                  # bin/gptd
#   tests/integration/run.sh bin/gptd-san     # the ASan/UBSan build
# Needs bin/gpt-context-loss (logprobs.test.js scores text against it; make test-integration builds it).
# Env: GPTD_TEST_MODEL (default weights/shakespeare-char.safetensors; copied, never served in place),
# GPTD_SOAK=1 adds the 2,000-request memory test. Installs the npm packages from
# package-lock.json into tests/integration/node_modules when missing.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"
bin="${1:-bin/gptd}"
if [ ! -x "$bin" ]; then
    echo "run.sh: $bin is missing: build it first (make $bin)" >&2
    exit 2
fi
if [ ! -d "$here/node_modules/openai" ] || [ ! -d "$here/node_modules/eventsource-parser" ] ||
    [ ! -d "$here/node_modules/fast-check" ]; then
    npm ci --prefix tests/integration --no-audit --no-fund
fi
GPTD_BIN="$bin" exec node --test tests/integration/
