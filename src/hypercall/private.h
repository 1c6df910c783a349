/* SPDX-License-Identifier: MIT */
/*
 * src/hypercall/ internals: issuing one hypercall through the platform, and
 * the checks every wrapper shares.  Include "hypercall/xen-abi.h" first.
 */
#ifndef PVABI_HYPERCALL_PRIVATE_H
#define PVABI_HYPERCALL_PRIVATE_H

#include "platform/platform.h"
#include "pvabi-internal.h"

/* Issues @hc under the context's lock; *result (may be NULL) gets the
 * hypercall's non-negative value.  Returns 0 or -errno, logged at @level
 * with @what (a refusal such as -EPERM is an answer, not a fault: the
 * wrappers log those at debug). */
int pvabi__hcall(pvabi_ctx *ctx, struct pvabi__hypercall *hc, int64_t *result, const char *what);

/* A domid argument: a real domain id, or PVABI_DOMID_SELF resolved to the
 * context's own.  Returns 0, or -EINVAL (logged) for anything else. */
int pvabi__hcall_domid(pvabi_ctx *ctx, pvabi_domid in, pvabi_domid *out, const char *what);

/* Fills @out->name from /local/domain/<domid>/name; "" when there is none.
 * Returns 0, or -errno when the store itself failed (not for a missing or
 * unreadable node), so that a list stops asking a store that is not there. */
int pvabi__hcall_domain_name(pvabi_ctx *ctx, struct pvabi_domain_info *out);

#endif
