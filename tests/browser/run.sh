#!/usr/bin/env bash
# Browser test of the page gptd serves at GET /: headless Debian Chromium driven by playwright-core
# against the real daemon. Builds nothing: GPTD_BIN (default bin/gptd) must exist.
#   tests/browser/run.sh                      # from anywhere
#   GPTD_BIN=bin/gptd-san tests/browser/run.sh
# Needs /usr/bin/chromium (apt-get install -y chromium) and node >= 18; installs playwright-core
# from package-lock.json into tests/browser/node_modules when missing. Screenshots and the
# daemons' logs land in tests/browser/artifacts/.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"
export GPTD_BIN="${GPTD_BIN:-$repo/bin/gptd}"
if [ ! -x "$GPTD_BIN" ]; then
    echo "run.sh: $GPTD_BIN is missing: build it first (make bin/gptd)" >&2
    exit 2
fi
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
    echo "run.sh: ${CHROMIUM:-/usr/bin/chromium} is missing: apt-get install -y chromium" >&2
    exit 2
fi
if [ ! -f "$here/node_modules/playwright-core/package.json" ] ||
   [ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]; then
    npm ci --prefix "$here" --no-audit --no-fund
fi
exec node --test "$here/page.test.mjs"
