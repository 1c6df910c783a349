#!/bin/bash
# SPDX-License-Identifier: MIT
# The example drivers on real Xen, from dom0 (the Xen suite; tests.list).
# Prints TAP; exit 0 when all pass, 77 (first line "SKIP: why") when a
# driver this needs was not built.
#
#   xen-drivers.sh blkback-linux     pvabi's blkback in dom0 serving a Linux
#       domU's kernel blkfront (vbd added by `pvabi block-attach` after the
#       domU booted), data read back by a second domU (a guest reboot) and
#       checked in the image file by dom0
#   xen-drivers.sh blkfront-kernel   pvabi's blkfront-cli in a domU (Linux's
#       xen-blkfront not loaded there) against dom0's kernel blkback on a
#       loop device (`xl block-attach ... phy:/dev/loopN`)
#   xen-drivers.sh console-relay     pvabi's consback in dom0 relaying a
#       domU's secondary consoles (Linux's hvc_xen): /dev/hvc1 to a log,
#       /dev/hvc2 both ways through a pty
#   xen-drivers.sh vchan-interop     pvabi's stream against libxenvchan
#       (tests/stream/vchan_interop): each as the server in dom0, the other
#       as the client in a domU
#
# Binaries come from this script's directory (the payload's bin/); domu-run
# and the guest side (domu-blk, domu-console) from the payload.
#   xen-drivers.sh blkback-kernel-linux  blkback-linux's steps against
#       Linux's own blkback (xl block-attach of a loop device): the test bed
#       checked on its own, to tell its problems from pvabi's blkback's
set -u
bin=$(cd "$(dirname "$0")" && pwd)
export PATH=$bin:$PATH
work=$(mktemp -d /tmp/xen-drivers-XXXXXX)
console_dir=/var/log/xen/console
n=0 failed=0
IMG_MIB=64
SIZE=$((IMG_MIB << 20))

cleanup() {
    local pid
    for pid in ${kill_pids:-}; do kill "$pid" 2>/dev/null; done
    rm -rf "$work"
}
trap cleanup EXIT

ok() {
    n=$((n + 1))
    echo "ok $n - $1"
}

# not_ok NAME [FILE...]: the files' tails as diagnostics.
not_ok() {
    local name=$1 f
    shift
    n=$((n + 1))
    failed=1
    echo "not ok $n - $name"
    for f in "$@"; do
        [ -f "$f" ] || continue
        echo "# ---- $f"
        tail -n 30 "$f" | tr -d '\r' | sed 's/^/#   /'
    done
}

# check NAME CMD...: a step that must succeed; its output goes to $work/last.
check() {
    local name=$1
    shift
    if "$@" >"$work/last" 2>&1; then
        ok "$name"
    else
        echo "exit status $? of: $*" >>"$work/last"
        not_ok "$name" "$work/last"
        return 1
    fi
}

skip_all() {
    echo "SKIP: $*"
    exit 77
}

# A value the guest printed as "BLK KEY VALUE" on domain $1's console.
blk_value() {
    sed -n "s/^BLK $2 \\([^ \\r]*\\).*/\\1/p" "$console_dir/guest-$1.log" | tr -d '\r' | head -n 1
}

# expect_value NAME GUEST KEY WANTED
expect_value() {
    local got
    got=$(blk_value "$2" "$3")
    if [ -n "$got" ] && [ "$got" = "$4" ]; then
        ok "$1"
    else
        echo "the guest printed '$3 $got', expected '$4'" >"$work/why"
        not_ok "$1" "$work/why" "$console_dir/guest-$2.log"
    fi
}

# guest_done NAME: waits for the guest's end, checks its exit status and
# destroys the domain (poweroff may still be under way).
guest_done() {
    local name=$1 timeout=${2:-300} rc
    domu-run --name "$name" --timeout "$timeout" --wait "PVABI-DOMU-EXIT" 2>"$work/wait.err"
    rc=$(sed -n 's/^PVABI-DOMU-EXIT \([0-9]*\).*/\1/p' "$console_dir/guest-$name.log" | tail -n 1)
    xl destroy "$name" 2>/dev/null
    if [ "$rc" = 0 ]; then
        ok "$name: the guest's steps succeeded"
    else
        echo "guest exit status '${rc:-none}'" >>"$work/wait.err"
        not_ok "$name: the guest's steps succeeded" "$work/wait.err" "$console_dir/guest-$name.log"
        return 1
    fi
}

sha_of() { dd if="$1" bs=1M skip="$2" count="$3" 2>/dev/null | sha256sum | cut -d' ' -f1; }

zeros() { [ "$(dd if="$1" bs=1M skip="$2" count="$3" 2>/dev/null | tr -d '\000' | wc -c)" = 0 ]; }

# ---- blkback-linux ----------------------------------------------------------------

# The backend: pvabi's blkback, or Linux's (blkback-kernel-linux).
backend=pvabi

start_backend() {
    if [ "$backend" = kernel ]; then
        modprobe xen-blkback
        return
    fi
    # dom0's kernel blkback watches backend/vbd too and would take the
    # device (it writes its own features and state): unloaded for the test.
    check "dom0's kernel blkback unloaded (it would claim backend/vbd)" modprobe -r xen-blkback
    blkback --platform xen -v >"$work/blkback.log" 2>&1 &
    blkback_pid=$!
    kill_pids="$blkback_pid"
}

stop_backend() {
    local rc=0
    if [ "$backend" = pvabi ]; then
        kill -TERM "$blkback_pid"
        wait "$blkback_pid" || rc=$?
        kill_pids=""
        if [ $rc = 0 ]; then
            ok "blkback: SIGTERM, exit 0"
        else
            echo "exit status $rc" >>"$work/blkback.log"
            not_ok "blkback: SIGTERM, exit 0" "$work/blkback.log"
        fi
        sed 's/^/# blkback: /' "$work/blkback.log" | tail -n 20
    fi
    modprobe xen-blkback
}

# attach DOMID IMAGE: the toolstack step, then the store is checked.
attach() {
    local domid=$1 img=$2 be=/local/domain/0/backend/vbd/$1/51728 fe=/local/domain/$1/device/vbd/51728
    if [ "$backend" = kernel ]; then
        loopdev=$(losetup -f --show "$img")
        check "xl block-attach $domid phy:$loopdev xvdb w" xl block-attach "$domid" "phy:$loopdev" xvdb w
        return
    fi
    check "pvabi block-attach $domid IMAGE --vdev xvdb" pvabi block-attach "$domid" "$img" --vdev xvdb &&
        cp "$work/last" "$work/attach.out" &&
        check "block-attach printed 'xvdb 51728'" grep -qx "xvdb 51728" "$work/attach.out"
    {
        xenstore-read "$be/params" "$be/mode" "$be/type" "$be/dev" "$be/frontend" "$be/online" \
            "$fe/virtual-device" "$fe/device-type" "$fe/backend" "$fe/backend-id"
    } >"$work/nodes" 2>&1
    printf '%s\n' "$img" w file xvdb "$fe" 1 51728 disk "$be" 0 >"$work/nodes.want"
    check "the vbd's store nodes (xenstore-read) are the spec's" diff "$work/nodes.want" "$work/nodes"
}

detach() {
    local domid=$1
    if [ "$backend" = kernel ]; then
        losetup -d "$loopdev"
        return
    fi
    check "pvabi block-detach $domid xvdb (domain gone: at once)" \
        pvabi block-detach "$domid" xvdb --timeout 30 &&
        check "the backend directory is gone" \
            sh -c "! xenstore-read /local/domain/0/backend/vbd/$domid/51728/state"
}

# First guest: boots without disks, the vbd is hot-added; writes, reads back,
# discards.
blk_first_guest() {
    local img=$1 domid pattern
    if ! check "blk-a: domU up, waiting for its disk" domu-run --name blk-a --timeout 120 \
        --detach "BLK waiting for" -- domu-blk write xvdb; then
        return 1
    fi
    domid=$(xl domid blk-a)
    attach "$domid" "$img"
    guest_done blk-a 150 || { detach "$domid"; return 1; }
    pattern=$(blk_value blk-a pattern)
    expect_value "blk-a: /dev/xvdb has the image's size" blk-a size "$SIZE"
    expect_value "blk-a: /dev/xvdb is writable" blk-a ro 0
    expect_value "blk-a: 4 MiB read back (page cache dropped) as written" blk-a readback "$pattern"
    if grep -q "^BLK discarded" "$console_dir/guest-blk-a.log"; then
        ok "blk-a: blkdiscard of 1 MiB succeeded (discard-max $(blk_value blk-a discard-max))"
        check "dom0: the discarded MiB reads zeros in the image" zeros "$img" 8 1
    else
        not_ok "blk-a: blkdiscard of 1 MiB succeeded" "$console_dir/guest-blk-a.log"
    fi
    if [ "$(sha_of "$img" 1 4)" = "$pattern" ]; then
        ok "dom0: the image file holds the guest's 4 MiB"
    else
        not_ok "dom0: the image file holds the guest's 4 MiB"
    fi
    detach "$domid"
    echo "$pattern" >"$work/pattern"
}

# Second guest (a reboot): the vbd is added while it is paused, before its
# kernel loads xen-blkfront.
blk_second_guest() {
    local img=$1 domid
    domid=$(domu-run --name blk-b --timeout 120 --paused -- domu-blk read xvdb) ||
        { not_ok "blk-b: created paused"; return 1; }
    ok "blk-b: created paused (domain $domid)"
    attach "$domid" "$img"
    check "blk-b: unpaused" xl unpause blk-b
    guest_done blk-b 150
    expect_value "blk-b (reboot): the 4 MiB read back as blk-a wrote them" blk-b reread \
        "$(cat "$work/pattern")"
    detach "$domid"
}

test_blkback_linux() {
    local img=$work/disk.img
    [ "$backend" = kernel ] || command -v blkback >/dev/null ||
        skip_all "pvabi's blkback (examples/blkback) was not built"
    truncate -s "$SIZE" "$img"
    start_backend
    blk_first_guest "$img" && blk_second_guest "$img"
    if [ "$backend" = pvabi ]; then
        if grep -q "Connected" "$work/blkback.log"; then
            ok "blkback logged the devices' connection"
        else
            not_ok "blkback logged the devices' connection" "$work/blkback.log"
        fi
    fi
    stop_backend
}

# ---- blkfront-kernel ----------------------------------------------------------------

test_blkfront_kernel() {
    local img=$work/loop.img loop domid after
    command -v blkfront-cli >/dev/null || skip_all "pvabi's blkfront-cli (examples/blkfront) was not built"
    truncate -s "$SIZE" "$img"
    modprobe xen-blkback
    loop=$(losetup -f --show "$img") || { not_ok "losetup"; return; }
    ok "dom0: $loop on a $IMG_MIB MiB file"
    domid=$(domu-run --name blkf --timeout 120 --paused --skip-modules xen_blkfront -- \
        domu-blk front 51728 7) || { not_ok "blkf: created paused"; return; }
    ok "blkf: created paused (domain $domid), without Linux's xen-blkfront"
    check "xl block-attach $domid phy:$loop xvdb w" xl block-attach "$domid" "phy:$loop" xvdb w
    check "blkf: unpaused" xl unpause blkf
    guest_done blkf 300
    for step in info-ok filled verified flushed discarded; do
        if grep -q "^BLK $step" "$console_dir/guest-blkf.log"; then
            ok "blkf: blkfront-cli $step"
        else
            not_ok "blkf: blkfront-cli $step" "$console_dir/guest-blkf.log"
        fi
    done
    losetup -d "$loop"
    after=$(blk_value blkf after)
    if [ -n "$after" ] && [ "$(sha_of "$img" 0 8)" = "$after" ]; then
        ok "dom0: the loop's file holds what blkfront-cli read back (8 MiB)"
    else
        not_ok "dom0: the loop's file holds what blkfront-cli read back (8 MiB)"
    fi
    if grep -q "^BLK discard-zero" "$console_dir/guest-blkf.log"; then
        check "dom0: the discarded MiB reads zeros in the file" zeros "$img" 4 1
    else
        ok "blkf: the discard left data (allowed: discard is a hint) # SKIP"
    fi
}

# ---- console-relay ---------------------------------------------------------------------

# wait_line FILE REGEX [SECONDS]: a line of FILE (as it grows) matches REGEX
# (grep -E).  The lines arrive through tail -F (inotify), not polling; see
# domu-run's wait_console for why not bash's read -t.
wait_line() {
    grep -q -m 1 -E -- "$2" < <(exec timeout "${3:-60}" tail -n +1 -F "$1" 2>/dev/null)
}

# The pty consback printed ("console FE/DEVID pty /dev/pts/N").
consback_pty() {
    wait_line "$1" " pty /dev/pts/" 60 &&
        sed -n 's/.* pty \(\/dev\/pts\/[0-9]*\).*/\1/p' "$1" | head -n 1
}

# consback_stop PID NAME LOG: SIGTERM must end it cleanly.
consback_stop() {
    local rc=0
    kill -TERM "$1" 2>/dev/null
    wait "$1" || rc=$?
    if [ $rc = 0 ]; then
        ok "consback ($2): SIGTERM, exit 0"
    else
        echo "exit status $rc" >>"$3"
        not_ok "consback ($2): SIGTERM, exit 0" "$3"
    fi
}

# hvc1: the domU writes, consback --log keeps it.
console_output() {
    local domid=$1 lines=$2
    consback --platform xen --frontend "$domid" --devid 1 --log "$work/hvc1.log" -v \
        2>"$work/consback1.err" &
    con1_pid=$!
    kill_pids="$kill_pids $con1_pid"
    if wait_line "$work/hvc1.log" "^pvabi console line $lines\$" 120; then
        ok "consback --log: the domU's /dev/hvc1 lines are in the log"
    else
        not_ok "consback --log: the domU's /dev/hvc1 lines are in the log" "$work/hvc1.log" \
            "$work/consback1.err" "$console_dir/guest-con.log"
        return 1
    fi
    seq -f "pvabi console line %g" 1 "$lines" >"$work/hvc1.want"
    check "consback --log: all $lines lines, in order, nothing else" \
        diff "$work/hvc1.want" "$work/hvc1.log"
}

# hvc2: consback --pty both ways.
console_input() {
    local domid=$1 pty
    consback --platform xen --frontend "$domid" --devid 2 --pty -v >"$work/consback2.out" \
        2>"$work/consback2.err" &
    con2_pid=$!
    kill_pids="$kill_pids $con2_pid"
    pty=$(consback_pty "$work/consback2.out") ||
        { not_ok "consback --pty: printed its pty" "$work/consback2.out" "$work/consback2.err"; return 1; }
    ok "consback --pty: $pty"
    check "consback --pty: the backend node tty is $pty" \
        test "$(xenstore-read "/local/domain/0/backend/console/$domid/2/tty")" = "$pty"
    stty -F "$pty" raw -echo
    exec 4<>"$pty"
    cat <&4 >"$work/pty.in" &
    kill_pids="$kill_pids $!"
    check "con: /dev/hvc2 ready in the domU" domu-run --name con --timeout 120 --wait "CON hvc2 ready"
    printf 'ping from dom0\n' >&4
    check "con: the domU read dom0's line from /dev/hvc2" \
        domu-run --name con --timeout 60 --wait "CON got ping from dom0"
    if wait_line "$work/pty.in" "pong from domU" 60; then
        ok "consback --pty: the domU's answer came out of the pty"
    else
        not_ok "consback --pty: the domU's answer came out of the pty" "$work/pty.in" "$work/consback2.err"
    fi
    exec 4>&-
}

test_console_relay() {
    local domid lines=100
    command -v consback >/dev/null || skip_all "pvabi's consback (examples/console) was not built"
    kill_pids=""
    check "con: domU up, waiting for /dev/hvc1" domu-run --name con --timeout 120 \
        --detach "CON waiting for /dev/hvc1" -- domu-console "$lines" || return
    domid=$(xl domid con)
    check "pvabi device add console $domid 1" pvabi device add console "$domid" 1
    check "pvabi device add console $domid 2" pvabi device add console "$domid" 2
    console_output "$domid" "$lines" && console_input "$domid"
    guest_done con 60
    consback_stop "$con1_pid" log "$work/consback1.err"
    [ -z "${con2_pid:-}" ] || consback_stop "$con2_pid" pty "$work/consback2.err"
    check "pvabi device rm console $domid 1 and 2" \
        sh -c "pvabi device rm console $domid 1 && pvabi device rm console $domid 2"
}

# ---- vchan-interop -------------------------------------------------------------------

# vchan_pair SERVER_IMPL CLIENT_IMPL: server in dom0, client in a domU.
vchan_pair() {
    local srv=$1 cli=$2 name=vchan-$1-$2 path=/local/domain/0/data/vchan-$1-$2 domid rc=0
    domid=$(domu-run --name "$name" --timeout 120 --paused -- vchan_interop client "$cli" 0 "$path") ||
        { not_ok "$name: created paused"; return; }
    vchan_interop server "$srv" "$domid" "$path" >"$work/$name.srv" 2>&1 &
    local pid=$!
    xl unpause "$name"
    guest_done "$name" 180
    wait "$pid" || rc=$?
    if [ $rc = 0 ]; then
        ok "$name: dom0's $srv server: 4 MiB each way byte-exact, end of stream seen"
    else
        echo "exit status $rc" >>"$work/$name.srv"
        not_ok "$name: dom0's $srv server: 4 MiB each way byte-exact, end of stream seen" \
            "$work/$name.srv" "$console_dir/guest-$name.log"
    fi
}

test_vchan_interop() {
    command -v vchan_interop >/dev/null || skip_all "tests/stream/vchan_interop was not built"
    vchan_pair pvabi xenvchan
    vchan_pair xenvchan pvabi
}

case "${1:-}" in
blkback-linux) test_blkback_linux ;;
blkback-kernel-linux)
    backend=kernel
    test_blkback_linux
    ;;
blkfront-kernel) test_blkfront_kernel ;;
console-relay) test_console_relay ;;
vchan-interop) test_vchan_interop ;;
*)
    echo "usage: $0 blkback-linux|blkback-kernel-linux|blkfront-kernel|console-relay|vchan-interop" >&2
    exit 2
    ;;
esac
echo "1..$n"
exit $failed
