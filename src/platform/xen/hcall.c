/* SPDX-License-Identifier: MIT */
/*
 * The `hypercall` op on Xen: one hypercall through libxencall
 * (/dev/xen/privcmd).  Xen reads and writes the argument struct in the
 * caller's memory while the kernel has it mapped, which only memory from
 * xencall_alloc_buffer is guaranteed to be (it is locked and never moved);
 * so the struct and the buffer it points to are copied through such
 * "bounce" buffers, never passed from the caller's stack.
 */
#include "hypercall/xen-abi.h"

#include <stdlib.h>
#include <string.h>

#include <xencall.h>

#include "private.h"

/* The bounce buffers of one call. */
struct bounce {
    void *arg;
    void *sub;
};

/* EPERM has two sources that look alike from here. */
static const struct pvabi__xen_hint hcall_hints[] = {
    { EPERM, "refused by Xen, or by Linux's privcmd, which blocks every hypercall in a domU "
             "that has no target domain" },
    { 0, NULL },
};

/* For messages: the hypercall's name, and its sub-op, which for sysctl and
 * domctl is the first field of the struct (their `cmd`), not an argument. */
static const char *nr_name(uint32_t nr)
{
    switch (nr) {
    case __HYPERVISOR_xen_version:
        return "xen_version";
    case __HYPERVISOR_sysctl:
        return "sysctl";
    case __HYPERVISOR_domctl:
        return "domctl";
    case __HYPERVISOR_event_channel_op:
        return "event_channel_op";
    case __HYPERVISOR_grant_table_op:
        return "grant_table_op";
    case __HYPERVISOR_memory_op:
        return "memory_op";
    }
    return "hypercall";
}

static uint32_t sub_op(const struct pvabi__hypercall *hc)
{
    uint32_t cmd = hc->cmd;

    if ((hc->nr == __HYPERVISOR_sysctl || hc->nr == __HYPERVISOR_domctl) && hc->arg &&
        hc->len >= sizeof(cmd))
        memcpy(&cmd, hc->arg, sizeof(cmd));
    return cmd;
}

/* src/hypercall/ builds @hc; a malformed one is a bug there, said loudly. */
static int check(const struct pvabi__xen *x, const struct pvabi__hypercall *hc)
{
    if ((hc->len && !hc->arg) ||
        (hc->sub && (hc->len < sizeof(uint64_t) || hc->sub_off > hc->len - sizeof(uint64_t)))) {
        pvabi__err(x->ctx,
                   "platform xen: %s (nr %u, cmd %u): malformed request (arg %s, len %u, sub "
                   "%s, sub_len %u, sub_off %u)",
                   nr_name(hc->nr), hc->nr, sub_op(hc), hc->arg ? "set" : "NULL", hc->len,
                   hc->sub ? "set" : "NULL", hc->sub_len, hc->sub_off);
        return -EINVAL;
    }
    return 0;
}

static void bounce_free(struct pvabi__xen *x, struct bounce *b)
{
    if (b->arg)
        xencall_free_buffer(x->xcall, b->arg);
    if (b->sub)
        xencall_free_buffer(x->xcall, b->sub);
}

/* Copies the struct in and points its guest handle at the sub bounce (which
 * is out only: zeroed, so Xen never sees stale heap bytes).  On failure
 * whatever was allocated is left in @b for bounce_free. */
static int bounce_in(struct pvabi__xen *x, const struct pvabi__hypercall *hc, struct bounce *b)
{
    uint64_t handle;

    if (hc->len) {
        b->arg = xencall_alloc_buffer(x->xcall, hc->len);
        if (!b->arg)
            return pvabi__xen_fail(x, PVABI_LOG_ERR, NULL, "xencall_alloc_buffer(%u) for %s",
                                   hc->len, nr_name(hc->nr));
        memcpy(b->arg, hc->arg, hc->len);
    }
    if (!hc->sub)
        return 0;
    if (hc->sub_len) {
        b->sub = xencall_alloc_buffer(x->xcall, hc->sub_len);
        if (!b->sub)
            return pvabi__xen_fail(x, PVABI_LOG_ERR, NULL, "xencall_alloc_buffer(%u) for %s",
                                   hc->sub_len, nr_name(hc->nr));
        memset(b->sub, 0, hc->sub_len);
    }
    handle = (uint64_t)(uintptr_t)b->sub;
    memcpy((char *)b->arg + hc->sub_off, &handle, sizeof(handle));
    return 0;
}

/* Copies the answer back; the struct's guest handle keeps the caller's own
 * bytes, since the bounce address is freed right after and means nothing to
 * the caller (the local platform likewise leaves it as sent). */
static void bounce_out(const struct pvabi__hypercall *hc, const struct bounce *b)
{
    uint64_t handle = 0;

    if (hc->sub)
        memcpy(&handle, (char *)hc->arg + hc->sub_off, sizeof(handle));
    if (hc->len)
        memcpy(hc->arg, b->arg, hc->len);
    if (hc->sub) {
        memcpy((char *)hc->arg + hc->sub_off, &handle, sizeof(handle));
        if (hc->sub_len)
            memcpy(hc->sub, b->sub, hc->sub_len);
    }
}

/* Xen's calling conventions: sysctl and domctl take the struct alone (the
 * command is inside it), grant_table_op a count after it, the other
 * multiplexed hypercalls (cmd, arg). */
static int issue(struct pvabi__xen *x, const struct pvabi__hypercall *hc, void *arg)
{
    uint64_t a = (uint64_t)(uintptr_t)arg;

    switch (hc->nr) {
    case __HYPERVISOR_sysctl:
    case __HYPERVISOR_domctl:
        return xencall1(x->xcall, hc->nr, a);
    case __HYPERVISOR_grant_table_op:
        return xencall3(x->xcall, hc->nr, hc->cmd, a, hc->count);
    default:
        return xencall2(x->xcall, hc->nr, hc->cmd, a);
    }
}

int pvabi__xen_hypercall(pvabi_ctx *ctx, void *plat, struct pvabi__hypercall *hc, int64_t *result)
{
    int keep PVABI__XEN_KEEP_ERRNO = errno;
    struct pvabi__xen *x = plat;
    struct bounce b = { NULL, NULL };
    int rc;

    (void)ctx;
    if (!x->xcall)
        return pvabi__xen_missing_privcmd(x, nr_name(hc->nr));
    rc = check(x, hc);
    if (rc == 0)
        rc = bounce_in(x, hc, &b);
    if (rc == 0) {
        rc = issue(x, hc, b.arg);
        /* A refusal is an answer (no privilege, no such domain): the
         * caller, which knows what it asked, decides whether to say more. */
        if (rc < 0)
            rc = pvabi__xen_fail(x, PVABI_LOG_DEBUG, hcall_hints, "%s (nr %u, cmd %u)",
                                 nr_name(hc->nr), hc->nr, sub_op(hc));
    }
    if (rc >= 0) {
        bounce_out(hc, &b);
        *result = rc;
        rc = 0;
    }
    bounce_free(x, &b);
    return rc;
}
