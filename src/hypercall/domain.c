/* SPDX-License-Identifier: MIT */
/*
 * The host and its domains: sysctl physinfo and getdomaininfolist, domctl
 * getdomaininfo.  These are the toolstack's unstable interface: the
 * interface_version pvabi was built with must be the hypervisor's.
 */
#include "hypercall/xen-abi.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "hypercall/private.h"

/* Domains asked for per getdomaininfolist: one local reply holds them. */
#define LIST_CHUNK 32u
/* pvabi_domain_list()'s @max, at most. */
#define LIST_MAX 4096u

/* @sub_len: in, the room at @sub (NULL: no sub buffer); out, the bytes
 * written, where the platform can tell. */
static int sysctl(pvabi_ctx *ctx, struct xen_sysctl *op, void *sub, uint32_t *sub_len,
                  uint32_t sub_off, const char *what)
{
    struct pvabi__hypercall hc = {
        .nr = __HYPERVISOR_sysctl,
        .arg = op,
        .len = sizeof(*op),
        .sub = sub,
        .sub_len = sub_len ? *sub_len : 0,
        .sub_off = sub_off,
    };
    int rc;

    op->interface_version = XEN_SYSCTL_INTERFACE_VERSION;
    rc = pvabi__hcall(ctx, &hc, NULL, what);
    if (sub_len)
        *sub_len = hc.sub_len;
    return rc;
}

static void physinfo_copy(struct pvabi_physinfo *out, const struct xen_sysctl_physinfo *pi)
{
    out->nr_cpus = pi->nr_cpus;
    out->max_cpu_id = pi->max_cpu_id;
    out->nr_nodes = pi->nr_nodes;
    out->max_node_id = pi->max_node_id;
    out->threads_per_core = pi->threads_per_core;
    out->cores_per_socket = pi->cores_per_socket;
    out->cpu_khz = pi->cpu_khz;
    out->capabilities = pi->capabilities;
    out->total_pages = pi->total_pages;
    out->free_pages = pi->free_pages;
    out->scrub_pages = pi->scrub_pages;
    out->outstanding_pages = pi->outstanding_pages;
    memcpy(out->hw_cap, pi->hw_cap, sizeof(out->hw_cap));
    out->page_size = PVABI_PAGE_SIZE; /* Xen counts x86 pages */
}

PVABI_EXPORT int pvabi_physinfo_read(pvabi_ctx *ctx, struct pvabi_physinfo *out)
{
    struct xen_sysctl op = { .cmd = XEN_SYSCTL_physinfo };
    int rc;

    if (!ctx || !out)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    rc = sysctl(ctx, &op, NULL, NULL, 0, "sysctl physinfo");
    if (rc < 0)
        return rc;
    physinfo_copy(out, &op.u.physinfo);
    return 0;
}

static void info_copy(struct pvabi_domain_info *out, const struct xen_domctl_getdomaininfo *di)
{
    memset(out, 0, sizeof(*out));
    out->domid = di->domain;
    out->flags = di->flags & ~(XEN_DOMINF_shutdownmask << XEN_DOMINF_shutdownshift);
    out->shutdown_reason = (di->flags >> XEN_DOMINF_shutdownshift) & XEN_DOMINF_shutdownmask;
    out->tot_pages = di->tot_pages;
    out->max_pages = di->max_pages;
    out->outstanding_pages = di->outstanding_pages;
    out->shr_pages = di->shr_pages;
    out->cpu_time_ns = di->cpu_time;
    out->nr_online_vcpus = di->nr_online_vcpus;
    out->max_vcpu_id = di->max_vcpu_id;
    out->ssidref = di->ssidref;
    out->cpupool = di->cpupool;
    memcpy(out->handle, di->handle, sizeof(out->handle));
}

PVABI_EXPORT int pvabi_domain_read(pvabi_ctx *ctx, pvabi_domid domid, struct pvabi_domain_info *out)
{
    struct xen_domctl op = {
        .cmd = XEN_DOMCTL_getdomaininfo,
        .interface_version = XEN_DOMCTL_INTERFACE_VERSION,
    };
    struct pvabi__hypercall hc = { .nr = __HYPERVISOR_domctl, .arg = &op, .len = sizeof(op) };
    int rc;

    if (!ctx || !out)
        return -EINVAL;
    rc = pvabi__hcall_domid(ctx, domid, &domid, "domctl getdomaininfo");
    if (rc < 0)
        return rc;
    op.domain = domid;
    rc = pvabi__hcall(ctx, &hc, NULL, "domctl getdomaininfo");
    /* Xen before 4.18 answers with the next domain when there is none. */
    if (rc == 0 && op.u.getdomaininfo.domain != domid)
        rc = -ESRCH;
    if (rc < 0)
        return rc;
    info_copy(out, &op.u.getdomaininfo);
    pvabi__hcall_domain_name(ctx, out);
    return 0;
}

/* One getdomaininfolist from @first into @out (at most @max <= LIST_CHUNK).
 * Returns how many, or -errno. */
static int list_chunk(pvabi_ctx *ctx, pvabi_domid first, struct pvabi_domain_info *out,
                      unsigned max)
{
    xen_domctl_getdomaininfo_t buf[LIST_CHUNK];
    struct xen_sysctl op = { .cmd = XEN_SYSCTL_getdomaininfolist };
    uint32_t written = (uint32_t)(max * sizeof(buf[0]));
    unsigned n;
    int rc;

    memset(buf, 0, sizeof(buf));
    op.u.getdomaininfolist.first_domain = first;
    op.u.getdomaininfolist.max_domains = max;
    rc = sysctl(ctx, &op, buf, &written, offsetof(struct xen_sysctl, u.getdomaininfolist.buffer),
                "sysctl getdomaininfolist");
    if (rc < 0)
        return rc;
    n = op.u.getdomaininfolist.num_domains;
    if (n > max || n * sizeof(buf[0]) > written) {
        pvabi__err(ctx,
                   "sysctl getdomaininfolist: %u domains in a buffer for %u (%u bytes written)", n,
                   max, written);
        return -EPROTO;
    }
    for (unsigned i = 0; i < n; i++)
        info_copy(&out[i], &buf[i]);
    return (int)n;
}

/* Real domain ids, ascending from @first: anything else would make the
 * next page repeat or skip domains. */
static bool list_ordered(pvabi_ctx *ctx, const struct pvabi_domain_info *d, unsigned n,
                         pvabi_domid first)
{
    for (unsigned i = 0; i < n; i++)
        if (d[i].domid < first || d[i].domid >= DOMID_FIRST_RESERVED ||
            (i > 0 && d[i].domid <= d[i - 1].domid)) {
            pvabi__err(ctx, "sysctl getdomaininfolist: domain %u out of order, or no domain id",
                       (unsigned)d[i].domid);
            return false;
        }
    return true;
}

/* Names for @n domains; stops asking once the store itself fails. */
static void list_names(pvabi_ctx *ctx, struct pvabi_domain_info *out, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (pvabi__hcall_domain_name(ctx, &out[i]) < 0)
            break;
}

PVABI_EXPORT int pvabi_domain_list(pvabi_ctx *ctx, pvabi_domid first, struct pvabi_domain_info *out,
                                   unsigned max)
{
    unsigned got = 0;

    if (!ctx || !out || max == 0 || max > LIST_MAX)
        return -EINVAL;
    while (got < max && first < DOMID_FIRST_RESERVED) {
        unsigned want = max - got < LIST_CHUNK ? max - got : LIST_CHUNK;
        int n = list_chunk(ctx, first, out + got, want);
        if (n < 0)
            return n;
        if (n == 0)
            break;
        if (!list_ordered(ctx, out + got, (unsigned)n, first))
            return -EPROTO;
        first = (pvabi_domid)(out[got + n - 1].domid + 1);
        got += (unsigned)n;
        if ((unsigned)n < want)
            break;
    }
    list_names(ctx, out, got);
    return (int)got;
}
