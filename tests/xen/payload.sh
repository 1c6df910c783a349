# SPDX-License-Identifier: MIT
# Sourced by run-suite.sh and shell.sh: assembles the payload a boot
# carries into dom0, in $work/payload:
#   bin/       the programs ($bins), lib/ the libraries they load beyond
#              glibc (dom0 runs the same Debian release as this host)
#   domu/      Debian's kernel and an initramfs for test domUs: busybox,
#              Xen's device modules, the programs with all their libraries
#   run.sh     what dom0 runs (dom0-run-tests); domu-run; tests.list
# Needs: $work, $bins (an array of program paths), $tests_list (a file as
# tests.list).

# Copies the shared libraries a program loads (ldd's view), ld.so included,
# into $2; with $3 = noglibc, leaves out the C library that dom0 has (the
# same Debian release as this host).
copy_lib_closure() {
    local prog=$1 dest=$2 lib
    for lib in $(ldd "$prog" | awk '/=> \//{print $3} /^\t\/.*ld-linux/{print $1}'); do
        case "${3:-}:$(basename "$lib")" in
        noglibc:libc.so.* | noglibc:ld-linux* | noglibc:libm.so.* | noglibc:libpthread.so.*) continue ;;
        esac
        cp -L "$lib" "$dest/$(basename "$lib")"
    done
}

# The domU's initramfs: busybox, Xen's device, network and block frontend
# modules (hvc_xen, the console, is built into Debian's kernel), the
# payload's programs with every library they load.
make_domu_initrd() {
    local img=$1 dir=$work/domu-root b
    mkdir -p "$dir/bin" "$dir/usr/local/bin" "$dir/usr/local/lib" "$dir/lib64" "$dir/proc" \
        "$dir/sys" "$dir/dev"
    cp "$img/busybox" "$dir/bin/busybox"
    cp "$XEN_SCRIPTS/domu-init" "$dir/init"
    xen_copy_modules "$img" "$dir" xen_evtchn xen_gntdev xen_gntalloc xen_privcmd xen_netfront \
        xen_blkfront
    for b in "${bins[@]}"; do
        cp "$b" "$dir/usr/local/bin/"
        copy_lib_closure "$b" "$dir/usr/local/lib"
    done
    # glibc dlopen()s libgcc_s for pthread_cancel (libxenstore's xs_close
    # cancels its reader thread): without it the process aborts.  ldd does
    # not list it.
    cp -L "$(gcc -print-file-name=libgcc_s.so.1)" "$dir/usr/local/lib/"
    mv "$dir"/usr/local/lib/ld-linux-x86-64.so.2 "$dir/lib64/"
    mkdir -p "$work/payload/domu"
    xen_cpio "$dir" "$work/payload/domu/initrd.cpio"
    cp "$img/vmlinuz" "$work/payload/domu/vmlinuz"
}

make_payload() {
    local img=$1 p=$work/payload t
    mkdir -p "$p/bin" "$p/lib"
    for t in "${bins[@]}"; do
        cp "$t" "$p/bin/"
        copy_lib_closure "$t" "$p/lib" noglibc
    done
    cp "$XEN_SCRIPTS/dom0-run-tests" "$p/run.sh"
    cp "$XEN_SCRIPTS/domu-run" "$p/domu-run"
    grep -v '^#' "$tests_list" >"$p/tests.list"
    make_domu_initrd "$img"
}

