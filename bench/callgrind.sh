#!/bin/sh
# SPDX-License-Identifier: MIT
#
# callgrind.sh RING_BENCH [REQUESTS]
#
# Instructions per request of pvabi's rings and of Xen's RING_* macros, from
# one single-threaded run of `RING_BENCH --single=REQUESTS` under callgrind.
# Instruction counts do not depend on the machine's load, so unlike the
# threaded modes these figures are reproducible.  The inclusive cost of
# single_pvabi() and single_macros() is each implementation's whole loop
# (frontend fill + publish, backend copy + check + answer + publish,
# frontend copy-out + check); single_floor() does the same work on plain
# memory with no ring, and subtracting it leaves what each ring itself costs.
# Exit 77 (skip) when valgrind is missing.
set -eu

bench=${1:?usage: callgrind.sh RING_BENCH [REQUESTS]}
n=${2:-200000}

if ! command -v valgrind >/dev/null 2>&1 || ! command -v callgrind_annotate >/dev/null 2>&1; then
    echo "callgrind.sh: valgrind/callgrind_annotate not installed, skipping"
    exit 77
fi

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT INT TERM

if ! valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.out" \
        "$bench" --single="$n" >"$dir/log" 2>&1; then
    cat "$dir/log" >&2
    echo "callgrind.sh: $bench --single=$n failed" >&2
    exit 1
fi
callgrind_annotate --inclusive=yes "$dir/callgrind.out" >"$dir/annotate"

# Lines look like "12,345,678 (45.67%)  /path/ring_bench.c:single_pvabi [/path/ring_bench]"
# (file "???" without debug info).
inclusive() {
    awk -v fn="$1" '$0 ~ ":" fn " " { gsub(",", "", $1); print $1; exit }' "$dir/annotate"
}
pv=$(inclusive single_pvabi)
mac=$(inclusive single_macros)
floor=$(inclusive single_floor)
if [ -z "$pv" ] || [ -z "$mac" ] || [ -z "$floor" ]; then
    cat "$dir/annotate" >&2
    echo "callgrind.sh: single_pvabi/single_macros/single_floor not in the profile" >&2
    exit 1
fi

grep -h "single-thread" "$dir/log" | sed 's/;.*//'
awk -v pv="$pv" -v mac="$mac" -v floor="$floor" -v n="$n" 'BEGIN {
    printf "callgrind instructions/request: pvabi %.1f  macros %.1f  ratio pvabi/macros %.2f\n",
           pv / n, mac / n, pv / mac
    printf "  of which the ring itself (minus %.1f for the same work without a ring):" \
           " pvabi %.1f  macros %.1f\n", floor / n, (pv - floor) / n, (mac - floor) / n
}'
