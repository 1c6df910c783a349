#!/bin/bash
# SPDX-License-Identifier: MIT
# An interactive dom0 with the current build inside:
#
#   tests/xen/shell.sh [BUILD_DIR]        (default: build)
#
# Compiles BUILD_DIR, boots Xen + dom0 under QEMU with this terminal as the
# console, and drops into a root shell in /payload: bin/ holds the test
# programs, examples, pvabi and pvabi-hv, lib/ their libraries; `./run.sh /tmp/out`
# runs the Xen suite's programs by hand, `./domu-run -- PROG ARGS` runs a
# program in a PV domU.  `busybox poweroff -f` (or Ctrl-a x) ends QEMU.
set -euo pipefail
. "$(dirname "$0")/common.sh"
. "$(dirname "$0")/payload.sh"

build=${1:-build}
[ -f "$build/build.ninja" ] || xdie "$build is not a meson build directory (meson setup $build)"
meson compile -C "$build" >&2
img=$("$XEN_SCRIPTS/build-image.sh" | tail -n 1)
work=$(mktemp -d "${TMPDIR:-/tmp}/pvabi-xen-shell-XXXXXX")
trap 'rm -rf "${work:-}"' EXIT
tests_list=$XEN_SCRIPTS/tests.list
mapfile -t bins < <({
    find "$build/tests/integration" "$build/bench" "$build/tools/pvabi-hv" "$build/tools/pvabi" \
        -maxdepth 1 -type f -executable ! -name '*.so*'
    find "$build/examples" "$build/tests/stream" -maxdepth 2 -type f -executable ! -name '*.so*' \
        ! -name '*.a'
    echo "$XEN_SCRIPTS/xen-drivers.sh"
    echo "$XEN_SCRIPTS/domu-blk"
    echo "$XEN_SCRIPTS/domu-console"
} | sort)
make_payload "$img"
cat >"$work/payload/README" <<'TXT'
/payload: the build this boot was made from.
  export LD_LIBRARY_PATH=/payload/lib PVABI_PLATFORM=xen PVABI_TEST_PLATFORM=xen
  bin/            test programs, examples, benchmarks, pvabi-hv, pvabi,
                  xen-drivers.sh (e.g. bin/xen-drivers.sh blkback-linux)
  ./run.sh OUT    the Xen suite's programs, results in OUT (see tests.list)
  ./domu-run [--ip 10.0.0.2] -- PROG ARGS   PROG in a new PV domU (bin/ is in its PATH)
  xl list, xl dmesg, xenstore-ls            Xen's own tools
TXT
"$XEN_SCRIPTS/boot.sh" --shell --payload "$work/payload"
