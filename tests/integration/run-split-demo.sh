#!/bin/sh
# Runs the main demo the way a user does (the library starts pvabi-hv on
# demand), on a private socket, then stops the daemon it started.
# usage: run-split-demo.sh SPLIT_DEMO PVABI_HV [REQUESTS]
set -eu
demo=$1 hv=$2 n=${3:-50000}
dir=$(mktemp -d)
cleanup() {
    pkill -TERM -f -- "--socket $dir/hv.sock" 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
PVABI_LOCAL_SOCKET=$dir/hv.sock PVABI_HV=$hv "$demo" "$n"
