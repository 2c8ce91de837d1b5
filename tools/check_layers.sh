#!/usr/bin/env bash
# The layers' include rules (docs/engine.md, Layers), checked on every #include of the sources:
#   common/  includes nothing of the other layers
#   model/   common/                         (no HTTP, no sockets, no training code)
#   train/   model/, common/
#   api/     model/, common/                 (no sockets)
#   server/  api/, model/, common/           (no training code: the daemon links none)
# and no include cycle between folders (tools/ counted too). Only server/ may include
# libmicrohttpd or the socket headers. Prints each offending include as FILE:LINE and exits 1;
# exits 0 when all is well. Run by `make lint`.
set -euo pipefail
cd "$(dirname "$0")/.."

declare -A allowed=(
    [common]=""
    [model]="common"
    [train]="model common"
    [api]="model common"
    [server]="api model common"
)
graph_folders=(common model train api server tools)
net_headers='microhttpd\.h|sys/socket\.h|netinet/[a-z_]+\.h|arpa/inet\.h|netdb\.h'

bad=0
edges=$(mktemp)
trap 'rm -f "$edges"' EXIT

for folder in "${graph_folders[@]}"; do
    for file in "$folder"/*.[ch]; do
        [ -e "$file" ] || continue
        # FILE:LINE:the include line, for every #include (quoted or angled)
        while IFS=: read -r line text; do
            if [[ "$text" =~ \#[[:space:]]*include[[:space:]]*\"([^\"]+)\" ]]; then
                target=$(realpath -m --relative-to=. "$folder/${BASH_REMATCH[1]}")
                to=${target%%/*}
                [ "$to" != "$target" ] || continue # not in a folder of the tree
                [ "$to" != "$folder" ] || continue # the folder's own header
                echo "$folder $to $file:$line" >>"$edges"
                [ -n "${allowed[$folder]+set}" ] || continue # tools/: only the cycle check
                if [[ " ${allowed[$folder]} " != *" $to "* ]]; then
                    echo "$file:$line: $text: $folder/ may not include from $to/" \
                        "($folder/ may include: ${allowed[$folder]:-nothing of the other layers})"
                    bad=1
                fi
            elif [[ "$folder" != server && "$folder" != tools &&
                "$text" =~ \<($net_headers)\> ]]; then
                echo "$file:$line: $text: only server/ speaks HTTP and sockets"
                bad=1
            fi
        done < <(grep -n '^[[:space:]]*#[[:space:]]*include' "$file" || true)
    done
done

# A cycle between folders: tsort names the folders on it; one include is shown for each arrow
# between them (with how many more make the same arrow).
loop=$(awk '{print $1, $2}' "$edges" | sort -u | tsort 2>&1 >/dev/null |
    sed -n 's/^tsort: \([a-z_]*\)$/\1/p' | awk '!seen[$0]++' | tr '\n' ' ' || true)
if [ -n "$loop" ]; then
    echo "include cycle between folders: ${loop% }"
    awk -v loop=" $loop" '
        index(loop, " " $1 " ") && index(loop, " " $2 " ") {
            edge = $1 "/ -> " $2 "/"
            if (!(edge in first)) { first[edge] = $3; order[++n] = edge }
            count[edge]++
        }
        END {
            for (i = 1; i <= n; i++) {
                e = order[i]; more = count[e] - 1
                print "  " e ": " first[e] (more ? " (and " more " more)" : "")
            }
        }' "$edges"
    bad=1
fi

if [ "$bad" -ne 0 ]; then
    echo "check_layers: the layers point one way: common -> model -> api -> server, train beside" \
        "model (docs/engine.md)" >&2
    exit 1
fi
echo "ok   - includes follow the layers (common -> model -> api -> server, train beside model)"
