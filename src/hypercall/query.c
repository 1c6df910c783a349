/* SPDX-License-Identifier: MIT */
/*
 * Questions any domain may ask about itself: EVTCHNOP_status,
 * GNTTABOP_query_size and the XENMEM reservation queries.  Asking about
 * another domain needs privilege; the hypervisor decides.
 */
#include "hypercall/xen-abi.h"

#include <errno.h>
#include <string.h>

#include "hypercall/private.h"

static void status_copy(struct pvabi_evtchn_status *out, const evtchn_status_t *st)
{
    out->status = st->status;
    out->vcpu = st->vcpu;
    switch (st->status) {
    case EVTCHNSTAT_unbound:
        out->remote_dom = st->u.unbound.dom;
        break;
    case EVTCHNSTAT_interdomain:
        out->remote_dom = st->u.interdomain.dom;
        out->remote_port = st->u.interdomain.port;
        break;
    case EVTCHNSTAT_pirq:
        out->pirq = st->u.pirq;
        break;
    case EVTCHNSTAT_virq:
        out->virq = st->u.virq;
        break;
    default:
        break;
    }
}

PVABI_EXPORT int pvabi_evtchn_status_read(pvabi_ctx *ctx, pvabi_domid dom, pvabi_port port,
                                          struct pvabi_evtchn_status *out)
{
    evtchn_status_t st = { .port = port };
    struct pvabi__hypercall hc = {
        .nr = __HYPERVISOR_event_channel_op, .cmd = EVTCHNOP_status, .arg = &st, .len = sizeof(st)
    };
    int rc;

    if (!ctx || !out)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    rc = pvabi__hcall_domid(ctx, dom, &st.dom, "EVTCHNOP_status");
    if (rc == 0)
        rc = pvabi__hcall(ctx, &hc, NULL, "EVTCHNOP_status");
    if (rc < 0)
        return rc;
    out->dom = st.dom;
    out->port = port;
    status_copy(out, &st);
    return 0;
}

/* Xen's GNTST_* status of a query, as -errno. */
static int gntst_errno(int16_t status)
{
    switch (status) {
    case GNTST_okay:
        return 0;
    case GNTST_bad_domain:
        return -ESRCH;
    case GNTST_permission_denied:
        return -EPERM;
    default:
        return -EINVAL;
    }
}

PVABI_EXPORT int pvabi_gnttab_size_read(pvabi_ctx *ctx, pvabi_domid dom,
                                        struct pvabi_gnttab_size *out)
{
    gnttab_query_size_t q = { .status = GNTST_general_error };
    struct pvabi__hypercall hc = {
        .nr = __HYPERVISOR_grant_table_op,
        .cmd = GNTTABOP_query_size,
        .count = 1,
        .arg = &q,
        .len = sizeof(q),
    };
    int rc;

    if (!ctx || !out)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    rc = pvabi__hcall_domid(ctx, dom, &q.dom, "GNTTABOP_query_size");
    if (rc == 0)
        rc = pvabi__hcall(ctx, &hc, NULL, "GNTTABOP_query_size");
    if (rc == 0)
        rc = gntst_errno(q.status);
    if (rc < 0)
        return rc;
    out->dom = q.dom;
    out->nr_frames = q.nr_frames;
    out->max_nr_frames = q.max_nr_frames;
    return 0;
}

/* A XENMEM query whose argument is a domid and whose answer is the
 * hypercall's value. */
static int memory_query(pvabi_ctx *ctx, uint32_t cmd, domid_t dom, uint64_t *pages)
{
    domid_t arg = dom;
    int64_t v = 0;
    struct pvabi__hypercall hc = {
        .nr = __HYPERVISOR_memory_op, .cmd = cmd, .arg = &arg, .len = sizeof(arg)
    };
    int rc = pvabi__hcall(ctx, &hc, &v,
                          cmd == XENMEM_current_reservation ? "XENMEM_current_reservation"
                                                            : "XENMEM_maximum_reservation");

    *pages = (uint64_t)v;
    return rc;
}

PVABI_EXPORT int pvabi_memory_read(pvabi_ctx *ctx, pvabi_domid dom, struct pvabi_memory *out)
{
    int rc;

    if (!ctx || !out)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    rc = pvabi__hcall_domid(ctx, dom, &out->dom, "XENMEM reservation");
    if (rc == 0)
        rc = memory_query(ctx, XENMEM_current_reservation, out->dom, &out->current_pages);
    if (rc == 0)
        rc = memory_query(ctx, XENMEM_maximum_reservation, out->dom, &out->maximum_pages);
    return rc;
}
