#!/bin/bash
# SPDX-License-Identifier: MIT
# Boots Xen with a Debian dom0 under QEMU's software emulation and runs a
# payload in dom0, or gives an interactive dom0 shell.
#
#   boot.sh --payload DIR --out DIR [--timeout SECONDS] [--console FILE]
#       DIR/run.sh runs in dom0 as root with /out as its argument (the
#       payload is unpacked to /payload); what it leaves in /out comes back
#       in the --out DIR.  Exit status: run.sh's, or 1 when the boot failed
#       (the console's tail is printed), or 124 on timeout.
#   boot.sh --shell [--payload DIR]
#       dom0's console on this terminal, the payload in /payload.
#
# The image comes from build-image.sh (cached).  QEMU: 2 vCPUs, 3 GiB, dom0
# 1 GiB; the rest is for guests.
set -euo pipefail
. "$(dirname "$0")/common.sh"

payload="" out="" timeout=1800 console="" mode=run

parse_args() {
    while [ $# -gt 0 ]; do
        case "$1" in
        --payload) payload=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --timeout) timeout=$2; shift 2 ;;
        --console) console=$2; shift 2 ;;
        --shell) mode=shell; shift ;;
        *) xdie "unknown argument $1 (see the head of $0)" ;;
        esac
    done
    if [ "$mode" = run ] && { [ -z "$payload" ] || [ -z "$out" ]; }; then
        xdie "--payload DIR and --out DIR are needed (or --shell)"
    fi
}

# Stage 1: busybox and the modules that reach an ext4 root on virtio.
make_stage1() {
    local img=$1 dir=$2
    mkdir -p "$dir/bin" "$dir/proc" "$dir/sys" "$dir/dev"
    cp "$img/busybox" "$dir/bin/busybox"
    cp "$XEN_SCRIPTS/initrd-init" "$dir/init"
    cp "$XEN_SCRIPTS/dom0-init" "$dir/pvabi-init"
    xen_copy_modules "$img" "$dir" virtio_pci virtio_blk crc32c_generic ext4
}

# Sets qemu_cmd to the QEMU command line.
qemu_command() {
    local img=$1 work=$2 serial=$3
    local append="console=com1 com1=115200 dom0_mem=1024M,max:1024M smap=0 smep=0 loglvl=all guest_loglvl=all ${PVABI_XEN_CMDLINE_EXTRA:-}"
    local drives=(-drive "file=$img/rootfs.ext4,if=virtio,format=raw,snapshot=on")
    [ -f "$work/payload.tar" ] && drives+=(-drive "file=$work/payload.tar,if=virtio,format=raw,readonly=on")
    [ -f "$work/out.img" ] && drives+=(-drive "file=$work/out.img,if=virtio,format=raw")
    qemu_cmd=(qemu-system-x86_64 -accel "${PVABI_XEN_ACCEL:-tcg,thread=multi}" -cpu "${PVABI_XEN_CPU:-max}" -smp 2 -m 3072 -no-reboot \
        -display none -nodefaults -net none -serial "$serial" \
        -kernel "$img/xen" -append "$append" \
        -initrd "$img/vmlinuz console=hvc0 earlyprintk=xen pvabi.mode=$mode,$work/stage1.cpio" \
        "${drives[@]}")
}

boot_failed() {
    local log=$1 why=$2
    echo "[xen] $why; the last 60 lines of the console ($log):"
    tail -n 60 "$log" | sed 's/^/  | /'
}

main() {
    local img missing log rc
    parse_args "$@"
    missing=$(xen_missing_cmds qemu-system-x86_64 cpio tar)
    [ -z "$missing" ] || xskip "missing $missing (apt-get install qemu-system-x86 cpio tar)"
    img=$("$XEN_SCRIPTS/build-image.sh" | tail -n 1)
    work=$(mktemp -d "${TMPDIR:-/tmp}/pvabi-xen-XXXXXX")
    trap 'rm -rf "${work:-}"' EXIT
    make_stage1 "$img" "$work/s1"
    xen_cpio "$work/s1" "$work/stage1.cpio"
    if [ -n "$payload" ]; then
        tar -cf "$work/payload.tar" -C "$payload" .
    fi
    if [ "$mode" = shell ]; then
        qemu_command "$img" "$work" mon:stdio
        "${qemu_cmd[@]}"
        return 0
    fi
    truncate -s 512M "$work/out.img"
    log=${console:-$work/console.log}
    xlog "booting Xen + dom0 under QEMU (TCG); console: $log"
    rc=0
    qemu_command "$img" "$work" "file:$log"
    timeout -k 10 "$timeout" "${qemu_cmd[@]}" </dev/null || rc=$?
    mkdir -p "$out"
    tar -xf "$work/out.img" -C "$out" 2>/dev/null || true
    [ -z "$console" ] && cp "$log" "$out/console.log"
    if [ $rc = 124 ]; then
        boot_failed "$log" "QEMU did not finish within $timeout s"
        return 124
    fi
    if ! grep -q '^PVABI-DOM0-READY' "$log"; then
        boot_failed "$log" "dom0 did not come up (QEMU exit $rc)"
        return 1
    fi
    rc=$(sed -n 's/^PVABI-PAYLOAD-EXIT \([0-9]*\).*/\1/p' "$log" | tail -n 1)
    if [ -z "$rc" ]; then
        boot_failed "$log" "the payload did not finish"
        return 1
    fi
    return "$rc"
}

main "$@"
