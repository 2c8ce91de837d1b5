#!/usr/bin/env bash
# The functions docs/server.md names in its walk through one request exist in the code: a
# function renamed or removed without the walk being updated fails here. A name is anything in
# backticks that looks like a C function (lower case with an underscore, or MHD_...), and it must
# be defined or called somewhere under server/, api/, model/ or common/.
#   bash tests/cli/test_docs_names.sh [docs/server.md]
set -euo pipefail
cd "$(dirname "$0")/../.."
doc=${1:-docs/server.md}
names=$(grep -o '`[A-Za-z_][A-Za-z0-9_]*`' "$doc" | tr -d '`' | sort -u |
        grep -E '^([a-z][a-z0-9]*_[a-z0-9_]+|MHD_[a-z_]+)$' || true)
[ -n "$names" ] || { echo "FAIL: no function names found in $doc"; exit 1; }
missing=0
count=0
for name in $names; do
    count=$((count + 1))
    if ! grep -rqE "\b$name *\(" server api model common; then
        echo "FAIL: $doc names $name, which no file under server/ api/ model/ common/ calls or defines"
        missing=$((missing + 1))
    fi
done
if [ "$missing" -gt 0 ]; then exit 1; fi
echo "ok: all $count functions $doc names exist"
