#!/bin/sh
# Installs the library into a temporary destdir and builds an out-of-tree
# consumer against it with nothing but `pkg-config --cflags --libs pvabi`.
# usage: check-installed.sh BUILD_DIR PREFIX LIBDIR CONSUMER_SOURCE [EXTRA_CFLAGS]
set -eu
build=$1 prefix=$2 libdir=$3 src=$4 extra=${5:-}
: "${CC:?CC is not set}"
command -v pkg-config >/dev/null || { echo "SKIP: pkg-config is not installed"; exit 77; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
case $libdir in /*) ;; *) libdir=$prefix/$libdir ;; esac
meson install -C "$build" --no-rebuild --quiet --destdir "$tmp/root" >/dev/null
export PKG_CONFIG_PATH="$tmp/root$libdir/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$tmp/root"
export PKG_CONFIG_LIBDIR="$tmp/root$libdir/pkgconfig:/usr/lib/x86_64-linux-gnu/pkgconfig:/usr/share/pkgconfig:/usr/lib/pkgconfig"
flags=$(pkg-config --cflags --libs pvabi)
echo "pkg-config --cflags --libs pvabi: $flags"
for h in pvabi.h ring.h flexring.h barrier.h; do
    [ -f "$tmp/root$prefix/include/pvabi/$h" ] || { echo "FAIL: include/pvabi/$h not installed"; exit 1; }
done
# shellcheck disable=SC2086 # flags are a word list by design
$CC -std=c11 -Wall -Wextra -Werror $extra "$src" -o "$tmp/consumer" $flags
LD_LIBRARY_PATH="$tmp/root$libdir" "$tmp/consumer"
