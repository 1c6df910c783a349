#!/bin/bash
# SPDX-License-Identifier: MIT
# The Xen suite (meson test --suite xen): boots Xen 4.17 with a Debian dom0
# under QEMU, runs the project's integration tests on the xen platform in
# dom0 and across domains (a PV domU), and reports each test in TAP.
#
#   run-suite.sh --bin FILE... [--tests FILE] [--timeout SECONDS] [--keep DIR]
#
#   --bin   a program for dom0 and the domU (the libraries it loads, libpvabi
#           and libcmocka among them, come along);
#   --tests what to run (default tests/xen/tests.list, which says how);
#   --keep  leaves everything dom0 returned (consoles, logs, each program's
#           output) in DIR; PVABI_XEN_KEEP=DIR does the same under meson.
#
# Missing QEMU, debootstrap or Debian's packages make the plan "1..0 # SKIP"
# with the reason (TAP's skip; meson shows SKIP).
set -uo pipefail
. "$(dirname "$0")/common.sh"
. "$(dirname "$0")/payload.sh"

bins=() tests_list=$XEN_SCRIPTS/tests.list timeout=2400 keep=${PVABI_XEN_KEEP:-}

parse_args() {
    while [ $# -gt 0 ]; do
        case "$1" in
        --bin) bins+=("$2"); shift 2 ;;
        --tests) tests_list=$2; shift 2 ;;
        --timeout) timeout=$2; shift 2 ;;
        --keep) keep=$2; shift 2 ;;
        *) xdie "unknown argument $1" ;;
        esac
    done
}

tap_skip() {
    echo "1..0 # SKIP $*"
    exit 0
}

n=0
failed=0

tap_line() {
    n=$((n + 1))
    echo "$1 $n - $2"
}

# A program's own TAP (cmocka's), renumbered under "GROUP/NAME/"; a program
# that skipped, crashed or never ran is one line of its own.
report_program() {
    local group=$1 name=$2 base=$out/$1/$2 rc line result rest
    if [ ! -f "$base.rc" ]; then
        tap_line "not ok" "$group/$name (did not run)"
        failed=1
        return
    fi
    rc=$(cat "$base.rc")
    if [ "$rc" = 77 ]; then
        tap_line ok "$group/$name # SKIP $(head -n 1 "$base.tap" | sed 's/^SKIP: //')"
        return
    fi
    local seen_fail=0
    while IFS= read -r line; do
        case "$line" in
        "ok "* | "not ok "*)
            result=${line%% [0-9]*}
            rest=$(sed -E 's/^(not )?ok [0-9]+ ?-? ?//' <<<"$line")
            case "$rest" in
            "# SKIP"*) tap_line ok "$group/$name/${rest#\# SKIP } # SKIP" ;;
            *)
                tap_line "$result" "$group/$name/$rest"
                [ "$result" = ok ] || seen_fail=1
                ;;
            esac
            ;;
        "#"*) echo "#   $line" ;; # cmocka's own diagnostics, kept as comments
        esac
    done <"$base.tap"
    if [ "$rc" != 0 ] && [ $seen_fail = 0 ]; then
        tap_line "not ok" "$group/$name (exit status $rc)"
        seen_fail=1
    fi
    if [ $seen_fail = 1 ]; then
        failed=1
        diagnose "$group" "$base"
    fi
}

# What a failure needs to be understood: the program's stderr, the
# domU's console and Xen's log.
diagnose() {
    local group=$1 base=$2 f
    echo "# ---- $base.err (last 40 lines)"
    tail -n 40 "$base.err" 2>/dev/null | sed 's/^/#   /'
    if [ "$group" != dom0 ]; then
        for f in "$out"/guest-*.log; do
            [ -f "$f" ] || continue
            echo "# ---- $(basename "$f") (last 30 lines)"
            tail -n 30 "$f" | tr -d '\r' | sed 's/^/#   /'
        done
    fi
    echo "# ---- xl dmesg (last 20 lines)"
    tail -n 20 "$out/xl-dmesg.txt" 2>/dev/null | sed 's/^/#   /'
}

report_all() {
    local name bin remote solo
    while read -r name bin remote solo; do
        report_program dom0 "$name"
    done <"$work/payload/tests.list"
    if [ -f "$out/domu/start.err" ] && [ ! -f "$out/domu/xl-list.txt" ]; then
        tap_line "not ok" "domu: start the agents' PV domU"
        sed 's/^/#   /' "$out/domu/start.err"
        failed=1
        return
    fi
    while read -r name bin remote solo; do
        [ "$remote" = - ] || report_program domu "$name"
    done <"$work/payload/tests.list"
    while read -r name bin remote solo; do
        [ "${solo:-}" != solo ] || report_program domu-solo "$name"
    done <"$work/payload/tests.list"
}

main() {
    local missing img rc
    parse_args "$@"
    missing=$(xen_missing_cmds qemu-system-x86_64 cpio ldd)
    [ -z "$missing" ] || tap_skip "missing $missing (apt-get install qemu-system-x86 cpio)"
    rc=0
    img=$("$XEN_SCRIPTS/build-image.sh" 2>"${TMPDIR:-/tmp}/pvabi-xen-image.$$.log") || rc=$?
    if [ $rc = 77 ]; then
        tap_skip "$(sed 's/^SKIP: //' <<<"$img")"
    elif [ $rc != 0 ]; then
        tail -n 30 "${TMPDIR:-/tmp}/pvabi-xen-image.$$.log" >&2
        xdie "building the dom0 image failed"
    fi
    rm -f "${TMPDIR:-/tmp}/pvabi-xen-image.$$.log"
    img=$(tail -n 1 <<<"$img")
    work=$(mktemp -d "${TMPDIR:-/tmp}/pvabi-xen-suite-XXXXXX")
    trap 'rm -rf "${work:-}"' EXIT
    out=$work/out
    make_payload "$img"
    rc=0
    "$XEN_SCRIPTS/boot.sh" --payload "$work/payload" --out "$out" --timeout "$timeout" >&2 || rc=$?
    [ -z "$keep" ] || { rm -rf "$keep"; cp -a "$out" "$keep"; }
    if [ ! -f "$out/xl-dmesg.txt" ]; then
        echo "not ok 1 - boot Xen and dom0, run the payload (boot.sh exit $rc)"
        tail -n 60 "$out/console.log" 2>/dev/null | sed 's/^/#   /'
        echo "1..1"
        return 0
    fi
    report_all
    echo "1..$n"
    return 0
}

main "$@"
