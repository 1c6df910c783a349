#!/bin/sh
# The library exports exactly the symbols its version script lists, under the
# script's version node, and its SONAME carries the ABI major version.
# usage: check-symbols.sh LIBRARY MAPFILE SONAME
set -eu
lib=$1 map=$2 soname=$3
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
got_soname=$(objdump -p "$lib" | awk '$1 == "SONAME" { print $2 }')
if [ "$got_soname" != "$soname" ]; then
    echo "FAIL: SONAME is '$got_soname', expected '$soname'"; exit 1
fi
# Exported = defined, dynamic, not the version node's own marker symbol.
nm -D --defined-only "$lib" | awk '{ print $3 }' | grep -v '^PVABI_' | sed 's/@.*//' | sort -u > "$tmp/exported"
sed -n '/global:/,/local:/p' "$map" | grep -E '^[[:space:]]+[a-z_0-9]+;' | tr -d ' \t;' | sort -u > "$tmp/listed"
if ! diff -u "$tmp/listed" "$tmp/exported"; then
    echo "FAIL: exported symbols (+) differ from $map (-)"; exit 1
fi
bad=$(grep -v '^pvabi_' "$tmp/exported" || true)
if [ -n "$bad" ]; then echo "FAIL: exports outside the pvabi_ namespace: $bad"; exit 1; fi
unversioned=$(nm -D --defined-only "$lib" | awk '$3 ~ /^pvabi_/ && $3 !~ /@@PVABI_/' || true)
if [ -n "$unversioned" ]; then echo "FAIL: symbols without a version node: $unversioned"; exit 1; fi
echo "ok: $(wc -l < "$tmp/exported") symbols, SONAME $soname"
