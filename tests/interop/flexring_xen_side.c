/* SPDX-License-Identifier: MIT */
/*
 * Xen-style console daemon ring handling, over xen/io/console.h's flex-ring
 * functions.  The peer here is trusted (it is the reference), so the indices
 * are used as read, the way a daemon does it.
 */
#include "flexring_xen_side.h"

#include <stdint.h>
#include <string.h>

/* The daemon side is a tools program: it gets the current interface. */
#define __XEN_TOOLS__
#define xen_mb()  __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define xen_rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define xen_wmb() __atomic_thread_fence(__ATOMIC_RELEASE)
#define XEN_WANT_FLEX_CONSOLE_RING
#include <xen/io/console.h>

/*
 * This file is built without TSan instrumentation, so TSan does not see its
 * plain index accesses or fences; these annotations tell it about the
 * happens-before edges they create.  An acquire goes after the index read it
 * stands for, a release before the index write, so TSan never sees the
 * peer's synchronising access before the edge exists.
 */
#ifdef FLEXRING_XEN_SIDE_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define tsan_acquire(addr) __tsan_acquire((void *)(addr))
#define tsan_release(addr) __tsan_release((void *)(addr))
#else
#define tsan_acquire(addr) ((void)(addr))
#define tsan_release(addr) ((void)(addr))
#endif

size_t xen_side_read_out(struct xencons_interface *intf, void *buf, size_t len)
{
    XENCONS_RING_IDX cons = intf->out_cons, prod = intf->out_prod;
    XENCONS_RING_IDX size = sizeof(intf->out), mcons;
    size_t n;

    /* prod before the data reads; pairs with the guest's release of out_prod. */
    xen_rmb();
    tsan_acquire(&intf->out_prod);
    n = xencons_queued(prod, cons, size);
    if (n > len)
        n = len;
    if (n == 0)
        return 0;
    mcons = xencons_mask(cons, size);
    xencons_read_packet(buf, (const unsigned char *)intf->out, n, xencons_mask(prod, size), &mcons,
                        size);
    /* Data reads before out_cons; pairs with the guest's acquire of out_cons. */
    xen_mb();
    tsan_release(&intf->out_cons);
    intf->out_cons = cons + (XENCONS_RING_IDX)n;
    return n;
}

size_t xen_side_write_in(struct xencons_interface *intf, const void *buf, size_t len)
{
    XENCONS_RING_IDX cons = intf->in_cons, prod = intf->in_prod;
    XENCONS_RING_IDX size = sizeof(intf->in), mprod;
    size_t n;

    /* in_cons before overwriting the bytes it frees; pairs with the guest's
     * release of in_cons. */
    xen_mb();
    tsan_acquire(&intf->in_cons);
    n = size - xencons_queued(prod, cons, size);
    if (n > len)
        n = len;
    if (n == 0)
        return 0;
    mprod = xencons_mask(prod, size);
    xencons_write_packet((unsigned char *)intf->in, buf, n, &mprod, xencons_mask(cons, size), size);
    /* Data writes before in_prod; pairs with the guest's acquire of in_prod. */
    xen_wmb();
    tsan_release(&intf->in_prod);
    intf->in_prod = prod + (XENCONS_RING_IDX)n;
    return n;
}
