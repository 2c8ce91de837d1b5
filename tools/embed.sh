#!/bin/sh
# Turns a file into a C source holding it as a byte array: embed.sh NAME FILE > out.c
# (used to compile web/index.html into gptd, so the binary serves its page with no files).
set -eu
name=$1 file=$2
echo "/* generated from $file by tools/embed.sh; do not edit */"
echo "#include <stddef.h>"
echo "const unsigned char ${name}[] = {"
od -An -v -tx1 "$file" | sed 's/ \([0-9a-f][0-9a-f]\)/0x\1,/g'
echo "};"
echo "const size_t ${name}_len = sizeof ${name};"
