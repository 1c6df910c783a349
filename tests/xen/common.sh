# SPDX-License-Identifier: MIT
# Sourced by the tests/xen scripts: where the image cache lives, the
# packages the image is made of, logging and dependency checks.
#
# Environment a developer may set:
#   PVABI_XEN_CACHE  the image cache (default $XDG_CACHE_HOME/pvabi-xen, or
#                    ~/.cache/pvabi-xen); images are reused across builds and
#                    rebuilt when their inputs change.
#   PVABI_XEN_MIRROR the Debian mirror debootstrap uses (default
#                    http://deb.debian.org/debian).
#   PVABI_XEN_ACCEL  QEMU's -accel (default tcg,thread=multi), PVABI_XEN_CPU
#                    its -cpu (default max), PVABI_XEN_CMDLINE_EXTRA added to
#                    Xen's command line: for chasing emulation problems.

XEN_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
XEN_CACHE=${PVABI_XEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pvabi-xen}
XEN_MIRROR=${PVABI_XEN_MIRROR:-http://deb.debian.org/debian}
XEN_SUITE=bookworm

# What dom0 is made of.  The hypervisor and the dom0 tools must be the same
# Xen release as the host's libxen-dev, so all three come from the same
# apt sources (including bookworm-security) as the host's.
XEN_HV_PKG=xen-hypervisor-4.17-amd64
XEN_UTILS_PKG=xen-utils-4.17
XEN_KERNEL_META=linux-image-amd64
XEN_DOM0_PKGS="$XEN_UTILS_PKG xenstore-utils iproute2 kmod"

xlog() { printf '[xen] %s\n' "$*" >&2; }
xdie() {
    printf '[xen] error: %s\n' "$*" >&2
    exit 1
}
# Exit 77 (meson's SKIP) with the reason, for what cannot be had here.
xskip() {
    printf 'SKIP: %s\n' "$*"
    exit 77
}

# The package a metapackage (linux-image-amd64) points at today.
xen_kernel_pkg() {
    apt-cache depends "$XEN_KERNEL_META" 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}'
}

# "pkg=version" for every package the image is built from; empty output
# means apt does not know them (no package lists, not Debian).
xen_pkg_versions() {
    local p v kernel
    kernel=$(xen_kernel_pkg)
    [ -n "$kernel" ] || return 1
    for p in $XEN_HV_PKG $kernel busybox-static $XEN_DOM0_PKGS; do
        v=$(apt-cache policy "$p" 2>/dev/null | awk '/Candidate:/{print $2; exit}')
        [ -n "$v" ] && [ "$v" != "(none)" ] || return 1
        printf '%s=%s\n' "$p" "$v"
    done
}

# Missing host commands, as a space-separated list.
xen_missing_cmds() {
    local c missing=""
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || missing="$missing $c"
    done
    printf '%s' "${missing# }"
}

# Prints, in insmod order, the .ko paths (relative to the modules dir) that
# loading modules "$@" needs, from modules.dep: a module's line lists all it
# depends on, the last to be loaded first.
xen_module_closure() {
    local moddir=$1
    shift
    awk -v want="$*" '
        function norm(s) { gsub(/-/, "_", s); return s }
        function base(p,   n) { n = split(p, a, "/"); p = a[n]; sub(/\.ko.*$/, "", p); return norm(p) }
        BEGIN { n = split(want, w, " "); for (i = 1; i <= n; i++) wanted[norm(w[i])] = 1 }
        {
            path = $1; sub(/:$/, "", path)
            name = base(path)
            if (!(name in wanted)) next
            found[name] = 1
            for (i = NF; i >= 2; i--) if (!($i in seen)) { seen[$i] = 1; print $i }
            if (!(path in seen)) { seen[path] = 1; print path }
        }
        END { for (m in wanted) if (!(m in found)) { print "no module " m > "/dev/stderr"; exit 1 } }
    ' "$moddir/modules.dep"
}

# Copies into initramfs tree $2 the modules of image $1 that loading
# modules $3... needs, and lists them in load order in $2/modules.order.
xen_copy_modules() {
    local img=$1 dir=$2 ver m mods
    shift 2
    ver=$(ls "$img/modules")
    mods=$(xen_module_closure "$img/modules/$ver" "$@") || xdie "kernel $ver lacks modules of: $*"
    : >"$dir/modules.order"
    for m in $mods; do
        mkdir -p "$dir/lib/modules/$(dirname "$m")"
        cp "$img/modules/$ver/$m" "$dir/lib/modules/$m"
        echo "/lib/modules/$m" >>"$dir/modules.order"
    done
}

# Writes a newc cpio of directory $1 to $2 (the kernel unpacks uncompressed
# archives, and concatenated ones: a base image plus a payload).
xen_cpio() {
    (cd "$1" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet -R 0:0) >"$2"
}
