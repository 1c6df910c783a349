/* SPDX-License-Identifier: MIT */
/*
 * Grants over libxengnttab: sharing through xengntshr (Linux's gntalloc),
 * mapping and copying through xengnttab (gntdev).
 *
 * Where Xen and Linux say less than pvabi promises, this file asks again:
 * gntdev refuses a whole batch with EINVAL, so a failed map is probed one ref
 * at a time, and a one-byte grant copy fetches Xen's own GNTST_* status.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include "private.h"

/* After private.h: it needs <stdint.h> and Xen's types first. */
#include <xen/sys/gntdev.h>

struct xen_share {
    void *addr;
    unsigned count;
};

struct xen_map {
    void *addr;
    unsigned count;
    int readonly;
};

/* ---- Xen's grant statuses ---------------------------------------------- */

int pvabi__xen_gntst_errno(int16_t status)
{
    switch (status) {
    case GNTST_okay:
        return 0;
    case GNTST_bad_domain:
        return -ESRCH;
    case GNTST_bad_gntref:
        return -ENOENT;
    case GNTST_permission_denied:
        return -EPERM;
    case GNTST_bad_handle:
    case GNTST_bad_page:
    case GNTST_bad_copy_arg:
        return -EINVAL;
    case GNTST_bad_virt_addr:
    case GNTST_bad_dev_addr:
        return -EFAULT;
    case GNTST_no_device_space:
    case GNTST_no_space:
        return -ENOSPC;
    case GNTST_address_too_big:
        return -ERANGE;
    case GNTST_eagain:
        return -EAGAIN;
    default: /* GNTST_general_error: not granted to us, revoked, or r/o */
        return -EIO;
    }
}

const char *pvabi__xen_gntst_name(int16_t status)
{
    static const char *const names[] = {
        "GNTST_okay",         "GNTST_general_error",   "GNTST_bad_domain",
        "GNTST_bad_gntref",   "GNTST_bad_handle",      "GNTST_bad_virt_addr",
        "GNTST_bad_dev_addr", "GNTST_no_device_space", "GNTST_permission_denied",
        "GNTST_bad_page",     "GNTST_bad_copy_arg",    "GNTST_address_too_big",
        "GNTST_eagain",       "GNTST_no_space"
    };

    if (status > 0 || -status >= (int)(sizeof(names) / sizeof(names[0])))
        return "an unknown GNTST status";
    return names[-status];
}

/* ---- sharing ----------------------------------------------------------- */

int pvabi__xen_grant_share(pvabi_ctx *ctx, void *plat, pvabi_domid domid, unsigned count,
                           int readonly, pvabi_gref *refs, void **addr, void **handle)
{
    int keep PVABI__XEN_KEEP_ERRNO = errno;
    struct pvabi__xen *x = plat;
    struct xen_share *s;
    int rc;

    (void)ctx;
    if (!x->xgs)
        return pvabi__xen_missing(x, "grant share", "/dev/xen/gntalloc", x->xgs_errno,
                                  "xen-gntalloc");
    s = malloc(sizeof(*s));
    if (!s)
        return -ENOMEM;
    /* gntalloc allocates the pages zeroed (__GFP_ZERO), as share promises. */
    s->addr = xengntshr_share_pages(x->xgs, domid, (int)count, refs, !readonly);
    if (!s->addr) {
        rc = pvabi__xen_fail(x, PVABI_LOG_ERR, NULL,
                             "xengntshr_share_pages(domain %u, %u pages, %s)", (unsigned)domid,
                             count, readonly ? "read-only" : "writable");
        free(s);
        return rc;
    }
    s->count = count;
    *addr = s->addr;
    *handle = s;
    return 0;
}

/* Never -EBUSY: gntalloc ends the grant on unmap and, if the peer still maps
 * a page, the kernel keeps that page until the peer lets go. */
int pvabi__xen_grant_revoke(pvabi_ctx *ctx, void *plat, void *handle)
{
    int keep PVABI__XEN_KEEP_ERRNO = errno;
    struct pvabi__xen *x = plat;
    struct xen_share *s = handle;
    int rc = 0;

    (void)ctx;
    if (xengntshr_unshare(x->xgs, s->addr, s->count) < 0)
        rc = pvabi__xen_fail(x, PVABI_LOG_ERR, NULL, "xengntshr_unshare(%u pages at %p)", s->count,
                             s->addr);
    free(s);
    return rc;
}

/* libxengnttab sets a share's unmap-notify only inside
 * xengntshr_share_page_notify() (one page, at share time) and drops the
 * gntalloc index right after mapping, so gntalloc can no longer find the
 * share to add one later. */
int pvabi__xen_grant_notify(pvabi_ctx *ctx, void *plat, void *handle, unsigned page,
                            unsigned offset, pvabi_port port)
{
    struct pvabi__xen *x = plat;

    (void)ctx;
    (void)handle;
    pvabi__err(x->ctx,
               "platform xen: grant notify (page %u, offset %u, port %u): not supported: "
               "libxengnttab sets a share's unmap-notify only when sharing one page, not later",
               page, offset, port);
    return -ENOTSUP;
}

/* ---- mapping ----------------------------------------------------------- */

/*
 * gntdev turns any refusal of a map into EINVAL.  A one-byte grant copy from
 * the same ref gets Xen's own status; reading leaves the peer's page as it
 * was.  If the copy works but a writable map did not, the grant is read-only.
 */
static int classify_ref(struct pvabi__xen *x, pvabi_domid domid, pvabi_gref ref, int prot)
{
    uint8_t byte;
    xengnttab_grant_copy_segment_t seg = {
        .source.foreign = { .ref = ref, .offset = 0, .domid = domid },
        .dest.virt = &byte,
        .len = 1,
        .flags = GNTCOPY_source_gref,
    };

    if (xengnttab_grant_copy(x->xgt, 1, &seg) < 0) {
        pvabi__xen_fail(x, PVABI_LOG_DEBUG, NULL, "xengnttab_grant_copy (probing ref %u)", ref);
        return -EINVAL;
    }
    if (seg.status != GNTST_okay)
        return pvabi__xen_gntst_errno(seg.status);
    return (prot & PROT_WRITE) ? -EPERM : -EINVAL;
}

/* Maps @ref alone and unmaps it again: 0, or why it cannot be mapped. */
static int probe_ref(struct pvabi__xen *x, pvabi_domid domid, pvabi_gref ref, int prot)
{
    void *a = xengnttab_map_grant_ref(x->xgt, domid, ref, prot);
    int rc;

    if (a) {
        if (xengnttab_unmap(x->xgt, a, 1) < 0)
            pvabi__xen_fail(x, PVABI_LOG_WARN, NULL, "xengnttab_unmap (probe of ref %u)", ref);
        return 0;
    }
    rc = pvabi__xen_errno();
    if (rc == -EINVAL)
        rc = classify_ref(x, domid, ref, prot);
    return pvabi__xen_report(x, PVABI_LOG_ERR, rc, NULL, "grant map: ref %u of domain %u", ref,
                             (unsigned)domid);
}

/* The batch failed and nothing is mapped: find which refs fail, and why.
 * Returns the first failing ref's status, else the batch's error. */
static int probe_refs(struct pvabi__xen *x, pvabi_domid domid, const pvabi_gref *refs,
                      unsigned count, int prot, int *status, int batch_rc)
{
    int first = 0;

    x->logger.demote++; /* libxengnttab logs every failed probe as an error */
    for (unsigned i = 0; i < count; i++) {
        status[i] = probe_ref(x, domid, refs[i], prot);
        if (status[i] < 0 && first == 0)
            first = status[i];
    }
    x->logger.demote--;
    return first ? first : batch_rc;
}

int pvabi__xen_grant_map(pvabi_ctx *ctx, void *plat, pvabi_domid domid, const pvabi_gref *refs,
                         unsigned count, int readonly, int *status, void **addr, void **handle)
{
    int keep PVABI__XEN_KEEP_ERRNO = errno;
    struct pvabi__xen *x = plat;
    int prot = readonly ? PROT_READ : PROT_READ | PROT_WRITE;
    uint32_t r[PVABI_GRANT_BATCH_MAX];
    struct xen_map *m;
    int rc;

    (void)ctx;
    if (!x->xgt)
        return pvabi__xen_missing(x, "grant map", "/dev/xen/gntdev", x->xgt_errno, "xen-gntdev");
    m = malloc(sizeof(*m));
    if (!m)
        return -ENOMEM;
    memcpy(r, refs, count * sizeof(r[0])); /* the library's refs are not const */
    m->addr = xengnttab_map_domain_grant_refs(x->xgt, count, domid, r, prot);
    if (!m->addr) {
        rc = pvabi__xen_fail(x, PVABI_LOG_ERR, NULL,
                             "xengnttab_map_domain_grant_refs(%u refs of domain %u, %s)", count,
                             (unsigned)domid, readonly ? "read-only" : "read-write");
        free(m);
        return probe_refs(x, domid, refs, count, prot, status, rc);
    }
    memset(status, 0, count * sizeof(*status));
    m->count = count;
    m->readonly = readonly;
    *addr = m->addr;
    *handle = m;
    return 0;
}

int pvabi__xen_grant_unmap(pvabi_ctx *ctx, void *plat, void *handle)
{
    int keep PVABI__XEN_KEEP_ERRNO = errno;
    struct pvabi__xen *x = plat;
    struct xen_map *m = handle;
    int rc = 0;

    (void)ctx;
    if (xengnttab_unmap(x->xgt, m->addr, m->count) < 0)
        rc = pvabi__xen_fail(x, PVABI_LOG_ERR, NULL, "xengnttab_unmap(%u pages at %p)", m->count,
                             m->addr);
    free(m);
    return rc;
}

/*
 * libxengnttab sets unmap-notify only while mapping a single ref, but gntdev
 * accepts it on any live mapping: ask it directly, finding the mapping's
 * offset in the gntdev file as libxengnttab's own unmap does.  gntdev keeps
 * one notify per mapping, so a later call replaces it even for another page.
 */
int pvabi__xen_map_notify(pvabi_ctx *ctx, void *plat, void *handle, unsigned page, unsigned offset,
                          pvabi_port port)
{
    int keep PVABI__XEN_KEEP_ERRNO = errno;
    struct pvabi__xen *x = plat;
    struct xen_map *m = handle;
    struct ioctl_gntdev_get_offset_for_vaddr where = { .vaddr = (uintptr_t)m->addr };
    struct ioctl_gntdev_unmap_notify n = { .event_channel_port = port };
    int clear = offset < PVABI_PAGE_SIZE, fd = xengnttab_fd(x->xgt);

    (void)ctx;
    if (clear && m->readonly) {
        pvabi__err(x->ctx, "platform xen: map notify: cannot clear a byte of a read-only mapping");
        return -EINVAL;
    }
    if (ioctl(fd, IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR, &where) < 0)
        return pvabi__xen_fail(x, PVABI_LOG_ERR, NULL,
                               "ioctl(IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR, %p)", m->addr);
    n.index = where.offset + (uint64_t)page * PVABI_PAGE_SIZE + (clear ? offset : 0);
    n.action = (clear ? UNMAP_NOTIFY_CLEAR_BYTE : 0) | (port ? UNMAP_NOTIFY_SEND_EVENT : 0);
    if (ioctl(fd, IOCTL_GNTDEV_SET_UNMAP_NOTIFY, &n) < 0)
        return pvabi__xen_fail(x, PVABI_LOG_ERR, NULL,
                               "ioctl(IOCTL_GNTDEV_SET_UNMAP_NOTIFY, page %u, offset %u, port %u)",
                               page, offset, port);
    return 0;
}

/* ---- copying ----------------------------------------------------------- */

static void copy_seg_to_xen(const struct pvabi_grant_copy_seg *s, xengnttab_grant_copy_segment_t *o)
{
    union xengnttab_copy_ptr foreign = {
        .foreign = { .ref = s->ref, .offset = s->offset, .domid = s->domid },
    };

    memset(o, 0, sizeof(*o));
    o->len = s->len;
    if (s->to_foreign) {
        o->source.virt = s->local;
        o->dest = foreign;
        o->flags = GNTCOPY_dest_gref;
    } else {
        o->source = foreign;
        o->dest.virt = s->local;
        o->flags = GNTCOPY_source_gref;
    }
}

/* Xen refuses a copy into a read-only grant with GNTST_general_error, as it
 * does a revoked one; a one-byte copy from the same ref tells them apart
 * (it works only on the read-only one): -EPERM as on the local platform. */
static int copy_status(struct pvabi__xen *x, const struct pvabi_grant_copy_seg *s, int16_t status)
{
    if (status != GNTST_general_error || !s->to_foreign)
        return pvabi__xen_gntst_errno(status);
    return classify_ref(x, s->domid, s->ref, PROT_WRITE) == -EPERM ? -EPERM : -EIO;
}

/* Fills each segment's status from Xen's; returns how many failed. */
static int copy_statuses(struct pvabi__xen *x, struct pvabi_grant_copy_seg *segs,
                         const xengnttab_grant_copy_segment_t *o, unsigned count)
{
    int failed = 0;

    for (unsigned i = 0; i < count; i++) {
        segs[i].status = copy_status(x, &segs[i], o[i].status);
        if (segs[i].status == 0)
            continue;
        failed++;
        pvabi__err(x->ctx,
                   "platform xen: grant copy: segment %u (ref %u of domain %u): Xen says %s", i,
                   segs[i].ref, (unsigned)segs[i].domid, pvabi__xen_gntst_name(o[i].status));
    }
    return failed;
}

int pvabi__xen_grant_copy(pvabi_ctx *ctx, void *plat, struct pvabi_grant_copy_seg *segs,
                          unsigned count)
{
    int keep PVABI__XEN_KEEP_ERRNO = errno;
    struct pvabi__xen *x = plat;
    xengnttab_grant_copy_segment_t o[PVABI_GRANT_BATCH_MAX];
    int rc;

    (void)ctx;
    if (count == 0)
        return 0;
    if (!x->xgt)
        return pvabi__xen_missing(x, "grant copy", "/dev/xen/gntdev", x->xgt_errno, "xen-gntdev");
    for (unsigned i = 0; i < count; i++)
        copy_seg_to_xen(&segs[i], &o[i]);
    if (xengnttab_grant_copy(x->xgt, count, o) == 0)
        return copy_statuses(x, segs, o, count);
    /* The whole call failed (a bad local buffer, no memory): which segments
     * were done is unknown, so each is reported failed with that error. */
    rc = pvabi__xen_fail(x, PVABI_LOG_ERR, NULL, "xengnttab_grant_copy(%u segments)", count);
    for (unsigned i = 0; i < count; i++)
        segs[i].status = rc;
    return (int)count;
}
