/* SPDX-License-Identifier: MIT */
/*
 * Xen's public hypercall argument structs, for the two ends that marshal
 * them: src/hypercall/ (the caller) and tools/pvabi-hv/hcall.c (the local
 * hypervisor that answers).  Include this instead of the xen/ headers.
 *
 * sysctl.h and domctl.h are the toolstack's interface, shown only with
 * __XEN_TOOLS__, and they pull in xen/hvm/save.h, which refuses strict ISO
 * mode (anonymous unions); pvabi builds with -std=c11, so the flag is lifted
 * before the first include (as src/platform/xen/xc.c does for xenctrl.h).
 * Include this first, before any system header.
 */
#ifndef PVABI_XEN_ABI_H
#define PVABI_XEN_ABI_H

#undef __STRICT_ANSI__
#ifndef __XEN_TOOLS__
#define __XEN_TOOLS__ 1
#endif

#include <stddef.h>
#include <stdint.h>

#include <xen/xen.h>

#include <xen/domctl.h>
#include <xen/event_channel.h>
#include <xen/grant_table.h>
#include <xen/memory.h>
#include <xen/sysctl.h>
#include <xen/version.h>

/* The wire carries these structs byte for byte between the library and the
 * daemon (both built from these headers) and to Xen itself: a layout change
 * must be seen at build time, not as garbage at run time. */
_Static_assert(offsetof(struct xen_sysctl, u) == 8, "xen_sysctl header");
_Static_assert(offsetof(struct xen_domctl, u) == 16, "xen_domctl header");
_Static_assert(sizeof(struct evtchn_status) == 24, "evtchn_status");
_Static_assert(sizeof(struct gnttab_query_size) == 16, "gnttab_query_size");

#endif /* PVABI_XEN_ABI_H */
