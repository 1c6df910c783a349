#!/bin/bash
# SPDX-License-Identifier: MIT
# `pvabi list` and `pvabi info` checked against `xl list` and `xl info`, for
# the Xen suite (dom0; with a domU running when PVABI_TEST_REMOTE is set, as in
# the suite's cross-domain run).  Prints TAP; exit 0 when all pass.
#
# usage: check-xl.sh      (environment: PVABI, the pvabi binary, default the
#        one on PATH or next to this script; XL, default xl; PVABI_PLATFORM_SPEC,
#        default xen)
#
# Compared exactly: list's Name, ID, Mem, VCPUs and the state letters that do
# not flicker (p, s, the shutdown reason, d: r and b change from one instant
# to the next, and Time moves); info's keys whose meaning is the same in both
# (free_memory moves: only checked to be <= total_memory; pvabi's virt_caps
# words must all be among xl's, which has some pvabi does not decode).
set -u
here=$(cd "$(dirname "$0")" && pwd)
pvabi=${PVABI:-$(command -v pvabi || echo "$here/pvabi")}
xl=${XL:-xl}
spec=${PVABI_PLATFORM_SPEC:-xen}
# The suite's cross-domain run (PVABI_TEST_REMOTE set) has a domU up: a list
# without it would be a failure to see it.
min=1
[ -n "${PVABI_TEST_REMOTE:-}" ] && min=2
n=0 failed=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ok() {
    n=$((n + 1))
    echo "ok $n - $1"
}

not_ok() {
    n=$((n + 1))
    failed=1
    echo "not ok $n - $1"
    sed 's/^/# /' "$2"
}

# Runs "$@" into $tmp/$name; a failure is a test failure.
capture() {
    local name=$1
    shift
    if ! "$@" >"$tmp/$name" 2>"$tmp/$name.err"; then
        cat "$tmp/$name.err" >>"$tmp/$name"
        not_ok "$* succeeds" "$tmp/$name"
        return 1
    fi
}

# xl list's rows as "name|id|mem|vcpus|psrd", sorted.
list_rows() {
    awk 'NR > 1 {
        name = substr($0, 1, 40); sub(/ +$/, "", name)
        split(substr($0, 41), f, " ")
        print name "|" f[1] "|" f[2] "|" f[3] "|" substr(f[4], 3, 4)
    }' "$1" | sort
}

# xl info's "key : value" lines as "key|value".
info_rows() {
    awk '{ key = substr($0, 1, 23); sub(/ +$/, "", key); print key "|" substr($0, 26) }' "$1"
}

info_value() {
    awk -F'|' -v k="$2" '$1 == k { print substr($0, length(k) + 2) }' "$1"
}

check_list() {
    capture xl-list "$xl" list && capture pvabi-list "$pvabi" --platform "$spec" list || return
    if [ "$(head -n1 "$tmp/xl-list")" = "$(head -n1 "$tmp/pvabi-list")" ]; then
        ok "list: the header is xl's"
    else
        not_ok "list: the header is xl's" "$tmp/pvabi-list"
    fi
    list_rows "$tmp/xl-list" >"$tmp/xl-rows"
    list_rows "$tmp/pvabi-list" >"$tmp/pvabi-rows"
    if [ "$(wc -l <"$tmp/xl-rows")" -ge "$min" ] && diff "$tmp/xl-rows" "$tmp/pvabi-rows" >"$tmp/diff"; then
        ok "list: names, ids, memory, vcpus and states match xl's ($(wc -l <"$tmp/xl-rows") domains)"
    else
        echo "(fewer than $min domains, or they differ: - xl, + pvabi)" >>"$tmp/diff"
        not_ok "list: names, ids, memory, vcpus and states match xl's" "$tmp/diff"
    fi
}

check_info_keys() {
    local key x p
    for key in host release version machine nr_cpus max_cpu_id nr_nodes cores_per_socket \
        threads_per_core cpu_mhz hw_caps total_memory xen_major xen_minor xen_extra \
        xen_version xen_caps xen_pagesize xen_changeset; do
        x=$(info_value "$tmp/xl-kv" "$key")
        p=$(info_value "$tmp/pvabi-kv" "$key")
        if grep -q "^$key|" "$tmp/xl-kv" && grep -q "^$key|" "$tmp/pvabi-kv" && [ "$x" = "$p" ]; then
            ok "info: $key = $x"
        else
            printf 'xl:    %s\npvabi: %s\n' "$x" "$p" >"$tmp/diff"
            not_ok "info: $key as xl's" "$tmp/diff"
        fi
    done
}

check_info_rest() {
    local word xcaps free total
    xcaps=" $(info_value "$tmp/xl-kv" virt_caps) "
    for word in $(info_value "$tmp/pvabi-kv" virt_caps); do
        case $xcaps in
        *" $word "*) ;;
        *)
            echo "virt_caps: '$word' is not among xl's:$xcaps" >"$tmp/diff"
            not_ok "info: virt_caps words are xl's" "$tmp/diff"
            return
            ;;
        esac
    done
    ok "info: virt_caps words are xl's"
    free=$(info_value "$tmp/pvabi-kv" free_memory)
    total=$(info_value "$tmp/pvabi-kv" total_memory)
    if [ -n "$free" ] && [ "$free" -le "$total" ]; then
        ok "info: free_memory $free <= total_memory $total"
    else
        echo "free_memory '$free', total_memory '$total'" >"$tmp/diff"
        not_ok "info: free_memory <= total_memory" "$tmp/diff"
    fi
}

check_info() {
    capture xl-info "$xl" info && capture pvabi-info "$pvabi" --platform "$spec" info || return
    info_rows "$tmp/xl-info" >"$tmp/xl-kv"
    info_rows "$tmp/pvabi-info" >"$tmp/pvabi-kv"
    check_info_keys
    check_info_rest
}

check_list
check_info
echo "1..$n"
exit $failed
