/* SPDX-License-Identifier: MIT */
/*
 * pvabi/types.h - the small types every layer shares.  Included by pvabi.h.
 */
#ifndef PVABI_TYPES_H
#define PVABI_TYPES_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A connection to a hypervisor (opaque); see pvabi_open(). */
typedef struct pvabi_ctx pvabi_ctx;

/** A domain id, as Xen's domid_t. */
typedef uint16_t pvabi_domid;

/** An event channel port, local to one context, as Xen's evtchn_port_t. */
typedef uint32_t pvabi_port;

/** A grant reference, as Xen's grant_ref_t. */
typedef uint32_t pvabi_gref;

/** Bytes in a grant page, fixed by the Xen ABI. */
#define PVABI_PAGE_SIZE 4096u

#ifdef __cplusplus
}
#endif

#endif /* PVABI_TYPES_H */
