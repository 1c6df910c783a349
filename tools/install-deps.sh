#!/bin/sh
# Installs what building and testing pvabi needs on Debian 12, with apt-get.
# Installs nothing when everything is already there; uses sudo when not root.
set -eu
# xenstore-utils are real clients of the embedded store (tests/store).  The Xen
# suite (tests/xen) adds QEMU, debootstrap and cpio: it boots a real Xen with a
# Debian dom0 built from Debian's packages.
pkgs="meson ninja-build gcc g++ clang pkg-config libcmocka-dev libxen-dev liburing-dev clang-format valgrind git
      xenstore-utils qemu-system-x86 debootstrap cpio e2fsprogs"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "install-deps: installing$missing"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086 # one word per package
$sudo apt-get install -y -qq --no-install-recommends $missing
