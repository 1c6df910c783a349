#!/bin/bash
# SPDX-License-Identifier: MIT
# Builds (or finds in the cache) the pieces a Xen test boot needs:
#   xen           the hypervisor, uncompressed (QEMU's multiboot loader
#                 cannot read the .gz Debian ships)
#   vmlinuz       Debian's kernel, used for dom0 and for PV domUs
#   rootfs.ext4   dom0's root: debootstrap'd bookworm (minbase) with the
#                 Xen tools of the same version as the hypervisor, and the
#                 kernel's modules; always attached with snapshot=on
#   busybox       a static busybox, for the initramfs images
#   modules/VER/  the kernel's modules and modules.dep (initramfs images take
#                 from here)
# in $PVABI_XEN_CACHE/image-<key>, where <key> hashes this script and the
# versions of the packages; a new package version or a changed recipe makes
# a new image, an unchanged one is reused.  Prints the directory.
#
# Needs root (debootstrap and chroot), network access to a Debian mirror,
# and: debootstrap, mkfs.ext4 (e2fsprogs), apt-get, dpkg-deb.
# Exit 77 when those cannot be had; 1 on a real failure.
set -euo pipefail
. "$(dirname "$0")/common.sh"

image_key() {
    { sha256sum <"$XEN_SCRIPTS/build-image.sh"; xen_pkg_versions; } | sha256sum | cut -c1-16
}

# Downloads the hypervisor, kernel and busybox packages and unpacks them.
fetch_boot_pieces() {
    local work=$1 kernel
    kernel=$(xen_kernel_pkg)
    mkdir -p "$work/debs" "$work/x"
    (cd "$work/debs" && apt-get -q -o APT::Sandbox::User=root download \
        "$XEN_HV_PKG" "$kernel" busybox-static >&2)
    for d in "$work"/debs/*.deb; do dpkg-deb -x "$d" "$work/x"; done
    gunzip -c "$work"/x/boot/xen-4.17-amd64.gz >"$work/out/xen"
    cp "$work"/x/boot/vmlinuz-* "$work/out/vmlinuz"
    cp "$work/x/bin/busybox" "$work/out/busybox"
}

# The modules a dom0 or a test domU may want, without sound, graphics and
# other hardware an emulated PC with Xen never has (a smaller image).
copy_modules() {
    local from=$1 to=$2 ver
    ver=$(basename "$from")
    mkdir -p "$to"
    (cd "$(dirname "$from")" && tar -cf - \
        --exclude="$ver/kernel/sound" --exclude="$ver/kernel/drivers/gpu" \
        --exclude="$ver/kernel/drivers/media" --exclude="$ver/kernel/drivers/infiniband" \
        --exclude="$ver/kernel/drivers/net/wireless" --exclude="$ver/kernel/drivers/staging" \
        "$ver") | tar -xf - -C "$to"
}

# debootstrap, then the Xen tools from the same sources as the host's
# libxen-dev (bookworm-security carries newer ones than bookworm).
make_root() {
    local root=$1
    xlog "debootstrap $XEN_SUITE (minbase) from $XEN_MIRROR"
    debootstrap --variant=minbase "$XEN_SUITE" "$root" "$XEN_MIRROR" >&2
    rm -f "$root/etc/apt/sources.list"
    cp /etc/apt/sources.list.d/debian.sources "$root/etc/apt/sources.list.d/" 2>/dev/null ||
        cp /etc/apt/sources.list "$root/etc/apt/sources.list"
    chroot "$root" apt-get -q update >&2
    # no service may start inside the chroot (xen-utils' postinst tries)
    printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
    chmod +x "$root/usr/sbin/policy-rc.d"
    chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get -q install -y \
        --no-install-recommends $XEN_DOM0_PKGS >&2
    chroot "$root" apt-get clean
    rm -f "$root/usr/sbin/policy-rc.d"
    rm -rf "$root"/var/lib/apt/lists/*
    configure_root "$root"
}

configure_root() {
    local root=$1
    echo dom0 >"$root/etc/hostname"
    # xenconsoled logs every guest's console, which failures show.
    echo 'XENCONSOLED_ARGS="--log=guest --log-dir=/var/log/xen/console"' \
        >>"$root/etc/default/xen"
    mkdir -p "$root/var/log/xen/console"
    # the dom0 init comes with each boot (see boot.sh); this is its mount point
    mkdir -p "$root/payload" "$root/out"
}

make_rootfs_image() {
    local root=$1 img=$2 mib
    mib=$(($(du -sm "$root" | cut -f1) + 768))
    mkfs.ext4 -q -F -L pvabi-dom0 -d "$root" "$img" "${mib}M" >&2
}

main() {
    local missing key dir
    [ "$(uname -m)" = x86_64 ] || xskip "the Xen suite boots an x86_64 Xen; this is $(uname -m)"
    missing=$(xen_missing_cmds apt-get apt-cache dpkg-deb sha256sum)
    [ -z "$missing" ] || xskip "not a Debian host (missing: $missing)"
    xen_pkg_versions >/dev/null ||
        xskip "apt knows no $XEN_HV_PKG / $XEN_KERNEL_META (run apt-get update; Debian 12 needed)"
    key=$(image_key)
    dir="$XEN_CACHE/image-$key"
    if [ -f "$dir/complete" ]; then
        printf '%s\n' "$dir"
        return 0
    fi
    [ "$(id -u)" = 0 ] || xskip "no cached image in $XEN_CACHE and building one needs root (debootstrap); run once as root: sudo $0"
    missing=$(xen_missing_cmds debootstrap mkfs.ext4 chroot)
    [ -z "$missing" ] || xskip "missing $missing (apt-get install debootstrap e2fsprogs)"
    mkdir -p "$XEN_CACHE"
    work=$(mktemp -d "$XEN_CACHE/build-XXXXXX")
    trap 'rm -rf "${work:-}"' EXIT
    mkdir -p "$work/out"
    xlog "building the dom0 image in $dir (once per package version; about 2 minutes)"
    fetch_boot_pieces "$work"
    make_root "$work/root"
    copy_modules "$(echo "$work"/x/lib/modules/*)" "$work/root/lib/modules"
    chroot "$work/root" depmod -a "$(ls "$work/root/lib/modules")"
    cp -a "$work/root/lib/modules" "$work/out/modules"
    make_rootfs_image "$work/root" "$work/out/rootfs.ext4"
    xen_pkg_versions >"$work/out/packages"
    touch "$work/out/complete"
    rm -rf "$dir"
    mv "$work/out" "$dir"
    # older images are of no further use
    find "$XEN_CACHE" -maxdepth 1 -name 'image-*' ! -path "$dir" -exec rm -rf {} +
    printf '%s\n' "$dir"
}

main "$@"
