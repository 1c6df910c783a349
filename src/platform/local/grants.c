/* SPDX-License-Identifier: MIT */
/*
 * Grants on the local platform.  A share is a sealed memfd of its own, handed
 * to the daemon, which passes it only to the grantee (read-only grants as a
 * read-only descriptor); a mapping maps the descriptors the daemon hands
 * back.  Unmap-notify actions are registered with the daemon, which performs
 * them when this process dies, and kept here too, because on a clean revoke
 * or unmap it is this process that performs them, as Xen's gntalloc and
 * gntdev do.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "platform/local/local.h"

_Static_assert(PVABI_GRANT_BATCH_MAX <= HV_REFS_MAX, "a batch fits one request");
_Static_assert(PVABI_PAGE_SIZE == HV_PAGE_SIZE, "one page size");
_Static_assert(sizeof(struct hv_grant_refs_req) == 4 * sizeof(uint32_t), "refs follow 4 words");

/* A GRANT_REVOKE / GRANT_MAP / GRANT_UNMAP request. */
struct lc_refs_buf {
    uint32_t w[4 + HV_REFS_MAX];
};

static size_t bytes(unsigned pages)
{
    return (size_t)pages * HV_PAGE_SIZE;
}

static struct lc_pages *pages_new(pvabi_ctx *ctx, unsigned count, pvabi_domid domid, int readonly)
{
    struct lc_pages *p = calloc(1, sizeof(*p) + count * sizeof(p->page[0]));

    if (!p) {
        pvabi__err(ctx, "local platform: no memory for a grant record of %u pages", count);
        return NULL;
    }
    p->count = count;
    p->domid = domid;
    p->readonly = readonly;
    for (unsigned i = 0; i < count; i++)
        p->page[i].offset = HV_PAGE_SIZE; /* no unmap-notify yet */
    return p;
}

static void list_add(struct lc_pages **head, struct lc_pages *p)
{
    p->next = *head;
    if (p->next)
        p->next->pprev = &p->next;
    p->pprev = head;
    *head = p;
}

static void pages_free(struct lc_pages *p)
{
    *p->pprev = p->next;
    if (p->next)
        p->next->pprev = p->pprev;
    free(p);
}

/* Builds a refs request for @count refs; the caller fills w[4 + i]. */
static size_t refs_req(struct lc_refs_buf *b, uint32_t domid, int readonly, unsigned count)
{
    struct hv_grant_refs_req h = { .domid = domid, .count = count, .readonly = !!readonly };

    memcpy(b->w, &h, sizeof(h));
    return sizeof(h) + count * sizeof(uint32_t);
}

/* A refs request for every page of @p. */
static size_t refs_req_pages(struct lc_refs_buf *b, int readonly, const struct lc_pages *p)
{
    for (unsigned i = 0; i < p->count; i++)
        b->w[4 + i] = p->page[i].ref;
    return refs_req(b, p->domid, readonly, p->count);
}

/* Clears the registered unmap-notify bytes through our mapping of @p. */
static void notify_bytes(struct lc_pages *p)
{
    for (unsigned i = 0; i < p->count; i++) {
        if (p->page[i].offset >= HV_PAGE_SIZE)
            continue;
        _Atomic uint8_t *b = (_Atomic uint8_t *)((uint8_t *)p->addr + bytes(i) + p->page[i].offset);
        /* Release: our earlier writes to the page are visible before the
         * cleared byte that tells the peer we are gone (the peer reads it
         * after the event that notify_ports sends, a syscall, so later). */
        atomic_store_explicit(b, 0, memory_order_release);
    }
}

/* Sends the registered unmap-notify events of @p. */
static void notify_ports(pvabi_ctx *ctx, struct lc *lc, struct lc_pages *p)
{
    for (unsigned i = 0; i < p->count; i++) {
        if (p->page[i].port == 0)
            continue;
        int rc = pvabi__lc_notify_locked(ctx, lc, p->page[i].port);
        if (rc < 0) /* the port was unbound or closed: nobody to tell */
            pvabi__debug(ctx, "unmap-notify of ref %u: port %u: %s", p->page[i].ref,
                         p->page[i].port, strerror(-rc));
    }
}

/* A request that carries nothing back but a status. */
static int call_plain(pvabi_ctx *ctx, struct lc *lc, uint16_t op, const void *req, size_t len)
{
    struct lc_msg *m;
    int rc = pvabi__lc_call(ctx, lc, op, req, len, NULL, 0, &m);

    if (rc == 0 && !pvabi__lc_reply_ok(ctx, lc, m, 0, 0))
        rc = -EPROTO;
    return rc;
}

/* ---- sharing side ------------------------------------------------------- */

/* Makes the memfd of a new share and maps it for us.  Sealed so that nobody
 * can resize it under a mapper (a shrink would turn the mapper's accesses
 * into SIGBUS); a read-only share also against any new writable mapping or
 * write(), after ours: else a mapper could reopen its read-only descriptor
 * read-write through /proc and write all the same. */
static int share_memfd(pvabi_ctx *ctx, unsigned count, int readonly, int *fd, void **addr)
{
    int seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL | (readonly ? F_SEAL_FUTURE_WRITE : 0);
    const char *what = "memfd_create";
    int rc;

    *addr = MAP_FAILED;
    *fd = memfd_create("pvabi-grant", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (*fd < 0)
        goto fail;
    what = "ftruncate";
    if (ftruncate(*fd, (off_t)bytes(count)) < 0)
        goto fail;
    what = "mmap";
    *addr = mmap(NULL, bytes(count), PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
    if (*addr == MAP_FAILED)
        goto fail;
    what = "sealing";
    if (fcntl(*fd, F_ADD_SEALS, seals) == 0)
        return 0;
fail:
    rc = -errno;
    pvabi__err(ctx, "grant share of %u pages: %s: %s", count, what, strerror(errno));
    if (*addr != MAP_FAILED)
        munmap(*addr, bytes(count));
    if (*fd >= 0)
        close(*fd);
    return rc;
}

/* Takes the refs from a GRANT_SHARE reply. */
static int share_refs(pvabi_ctx *ctx, struct lc *lc, struct lc_msg *m, struct lc_pages *s,
                      pvabi_gref *refs)
{
    struct hv_grant_share_rsp rsp;

    if (!pvabi__lc_reply_ok(ctx, lc, m, sizeof(rsp) + s->count * sizeof(uint32_t), 0))
        return -EPROTO;
    memcpy(&rsp, m->payload, sizeof(rsp));
    if (rsp.count != s->count)
        return pvabi__lc_bad_reply(ctx, lc, m, "a ref count other than the one asked for");
    memcpy(refs, m->payload + sizeof(rsp), s->count * sizeof(uint32_t));
    for (unsigned i = 0; i < s->count; i++)
        s->page[i].ref = refs[i];
    return 0;
}

int pvabi__lc_grant_share(pvabi_ctx *ctx, void *plat, pvabi_domid domid, unsigned count,
                          int readonly, pvabi_gref *refs, void **addr, void **handle)
{
    struct lc *lc = plat;
    struct hv_grant_share_req req = { .domid = domid, .count = count, .readonly = !!readonly };
    struct lc_pages *s = pages_new(ctx, count, domid, readonly);
    struct lc_msg *m;
    int fd, rc;

    if (!s)
        return -ENOMEM;
    rc = share_memfd(ctx, count, readonly, &fd, &s->addr);
    if (rc < 0) {
        free(s);
        return rc;
    }
    rc = pvabi__lc_call(ctx, lc, HV_OP_GRANT_SHARE, &req, sizeof(req), &fd, 1, &m);
    close(fd); /* our mapping keeps the memory; the daemon has its own fd */
    if (rc == 0)
        rc = share_refs(ctx, lc, m, s, refs);
    if (rc < 0) {
        pvabi__err(ctx, "grant share of %u pages to domain %u: %s", count, domid, strerror(-rc));
        munmap(s->addr, bytes(count));
        free(s);
        return rc;
    }
    list_add(&lc->shares, s);
    *addr = s->addr;
    *handle = s;
    return 0;
}

int pvabi__lc_grant_revoke(pvabi_ctx *ctx, void *plat, void *handle)
{
    struct lc *lc = plat;
    struct lc_pages *s = handle;
    struct lc_refs_buf b;
    int rc = call_plain(ctx, lc, HV_OP_GRANT_REVOKE, b.w, refs_req_pages(&b, 0, s));

    if (rc == -EBUSY) {
        pvabi__debug(ctx, "grant revoke of refs %u..: domain %u still maps a page", s->page[0].ref,
                     s->domid);
        return rc;
    }
    if (rc < 0)
        pvabi__err(ctx, "grant revoke of refs %u..: %s (the pages are freed here all the same)",
                   s->page[0].ref, strerror(-rc));
    notify_bytes(s);
    notify_ports(ctx, lc, s);
    munmap(s->addr, bytes(s->count));
    pages_free(s);
    return rc;
}

/* Registers an unmap-notify action with the daemon, then here. */
static int set_notify(pvabi_ctx *ctx, struct lc *lc, struct lc_pages *p, uint32_t domid,
                      unsigned page, unsigned offset, pvabi_port port)
{
    struct hv_unmap_notify_req req = {
        .domid = domid, .ref = p->page[page].ref, .offset = offset, .port = port
    };
    int rc = call_plain(ctx, lc, HV_OP_UNMAP_NOTIFY, &req, sizeof(req));

    if (rc < 0) {
        pvabi__err(ctx, "unmap-notify for ref %u of domain %u (byte %u, port %u): %s", req.ref,
                   domid, offset, port, strerror(-rc));
        return rc;
    }
    p->page[page].offset = offset;
    p->page[page].port = port;
    return 0;
}

int pvabi__lc_grant_notify(pvabi_ctx *ctx, void *plat, void *handle, unsigned page, unsigned offset,
                           pvabi_port port)
{
    struct lc *lc = plat;
    return set_notify(ctx, lc, handle, lc->domid, page, offset, port);
}

/* ---- mapping side ------------------------------------------------------- */

/* The end of the run of pages from @i on that are consecutive in one fd. */
static unsigned run_end(const struct hv_grant_map_slot *slot, unsigned count, unsigned i)
{
    unsigned j = i + 1;

    while (j < count && slot[j].fd_index == slot[i].fd_index &&
           (uint64_t)slot[j].page == (uint64_t)slot[i].page + (j - i))
        j++;
    return j;
}

/* Maps @n pages from @s on: at *@at inside a reservation, or (*@at NULL)
 * wherever the kernel puts them, *@at then set.  The fd must hold the pages
 * and be sealed against shrinking: else a sharer could truncate it and turn
 * our accesses into SIGBUS.  The daemon checks this; a daemon bug must not
 * crash us. */
static int map_run(pvabi_ctx *ctx, uint8_t **at, const struct hv_grant_map_slot *s, unsigned n,
                   const int *fds, unsigned nfds, int prot)
{
    uint64_t end = ((uint64_t)s->page + n) * HV_PAGE_SIZE;
    struct stat st;
    void *p;
    int fd, seals;

    if (s->fd_index >= nfds) {
        pvabi__err(ctx, "pvabi-hv: GRANT_MAP reply names fd %u of %u", s->fd_index, nfds);
        return -EPROTO;
    }
    fd = fds[s->fd_index];
    seals = fcntl(fd, F_GET_SEALS);
    if (fstat(fd, &st) < 0 || (uint64_t)st.st_size < end || seals < 0 || !(seals & F_SEAL_SHRINK)) {
        pvabi__err(ctx,
                   "pvabi-hv: GRANT_MAP gave a memory fd that does not hold pages %u..%u or "
                   "is not sealed against shrinking",
                   s->page, s->page + n - 1);
        return -EPROTO;
    }
    p = mmap(*at, bytes(n), prot, MAP_SHARED | (*at ? MAP_FIXED : 0), fd,
             (off_t)s->page * HV_PAGE_SIZE);
    if (p == MAP_FAILED) {
        int rc = -errno;
        pvabi__err(ctx, "grant map: mmap of %u pages: %s", n, strerror(errno));
        return rc;
    }
    *at = p;
    return 0;
}

/* Maps the pages a GRANT_MAP reply describes, contiguously; all or nothing. */
static int map_slots(pvabi_ctx *ctx, struct lc_pages *mp, const struct hv_grant_map_slot *slot,
                     const int *fds, unsigned nfds)
{
    int prot = PROT_READ | (mp->readonly ? 0 : PROT_WRITE);
    uint8_t *base = NULL;

    /* The common case, a batch shared at once: one run of one memfd, one
     * mmap wherever the kernel likes. */
    if (run_end(slot, mp->count, 0) == mp->count) {
        int rc = map_run(ctx, &base, slot, mp->count, fds, nfds, prot);
        mp->addr = base;
        return rc;
    }
    /* Else reserve the whole range first so the runs land contiguously. */
    base =
        mmap(NULL, bytes(mp->count), PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) {
        int rc = -errno;
        pvabi__err(ctx, "grant map: reserving %u pages: %s", mp->count, strerror(errno));
        return rc;
    }
    for (unsigned i = 0, j; i < mp->count; i = j) {
        j = run_end(slot, mp->count, i);
        uint8_t *at = base + bytes(i);
        int rc = map_run(ctx, &at, &slot[i], j - i, fds, nfds, prot);
        if (rc < 0) {
            munmap(base, bytes(mp->count));
            return rc;
        }
    }
    mp->addr = base;
    return 0;
}

/* GRANT_UNMAP without waiting for the reply: the daemon handles our requests
 * in order, so our next one (a map of the same refs, say) comes after it; and
 * it handles what we sent before it refuses a revoke with -EBUSY, so a sharer
 * we tell afterwards, by any means, can revoke at once.  A refusal (a daemon
 * that disagrees about what we map) is only in the daemon's log. */
static int unmap_at_daemon(pvabi_ctx *ctx, struct lc *lc, const struct lc_pages *mp)
{
    struct lc_refs_buf b;
    return pvabi__lc_send(ctx, lc, HV_OP_GRANT_UNMAP, b.w, refs_req_pages(&b, 0, mp));
}

static void status_fill(int *status, unsigned count, int rc)
{
    for (unsigned i = 0; i < count; i++)
        status[i] = rc;
}

/* Takes a GRANT_MAP reply of status @rc: the statuses, and on success the
 * mapping (the daemon's record is undone if we cannot map). */
static int map_reply(pvabi_ctx *ctx, struct lc *lc, struct lc_msg *m, struct lc_pages *mp,
                     int *status, int rc)
{
    struct hv_grant_map_slot slot[HV_REFS_MAX];
    struct hv_grant_map_rsp rsp;

    const char *fault = NULL;

    status_fill(status, mp->count, -EPROTO);
    if (m->hdr.len != sizeof(rsp) + mp->count * sizeof(slot[0]))
        return pvabi__lc_bad_reply(ctx, lc, m, "a length that does not fit the refs asked for");
    memcpy(&rsp, m->payload, sizeof(rsp));
    memcpy(slot, m->payload + sizeof(rsp), mp->count * sizeof(slot[0]));
    if (rsp.count != mp->count || rsp.nfds != m->nfds || (rc == 0) != (m->nfds > 0))
        fault = "counts that do not fit the refs asked for";
    for (unsigned i = 0; i < mp->count && !fault; i++)
        if (slot[i].status > 0 || (rc == 0 && slot[i].status != 0))
            fault = "ref statuses that disagree with the reply's status";
    if (fault)
        return pvabi__lc_bad_reply(ctx, lc, m, fault);
    for (unsigned i = 0; i < mp->count; i++)
        status[i] = slot[i].status;
    if (rc < 0)
        return rc;
    rc = map_slots(ctx, mp, slot, m->fds, m->nfds);
    pvabi__lc_close_fds(m->fds, m->nfds); /* the mappings keep the memory */
    m->nfds = 0;
    if (rc < 0) {
        status_fill(status, mp->count, rc);
        unmap_at_daemon(ctx, lc, mp);
    }
    return rc;
}

int pvabi__lc_grant_map(pvabi_ctx *ctx, void *plat, pvabi_domid domid, const pvabi_gref *refs,
                        unsigned count, int readonly, int *status, void **addr, void **handle)
{
    struct lc *lc = plat;
    struct lc_pages *mp = pages_new(ctx, count, domid, readonly);
    struct lc_refs_buf b;
    struct lc_msg *m;
    int rc;

    if (!mp) {
        status_fill(status, count, -ENOMEM);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < count; i++)
        mp->page[i].ref = refs[i];
    rc = pvabi__lc_call(ctx, lc, HV_OP_GRANT_MAP, b.w, refs_req_pages(&b, readonly, mp), NULL, 0,
                        &m);
    if (m)
        rc = map_reply(ctx, lc, m, mp, status, rc);
    else
        status_fill(status, count, rc);
    if (rc < 0) {
        pvabi__err(ctx, "grant map of %u refs (%u..) of domain %u: %s", count, refs[0], domid,
                   strerror(-rc));
        free(mp);
        return rc;
    }
    list_add(&lc->maps, mp);
    *addr = mp->addr;
    *handle = mp;
    return 0;
}

int pvabi__lc_map_notify(pvabi_ctx *ctx, void *plat, void *handle, unsigned page, unsigned offset,
                         pvabi_port port)
{
    struct lc_pages *mp = handle;

    if (offset < HV_PAGE_SIZE && mp->readonly) {
        /* as Xen's gntdev: the byte would be cleared through this mapping */
        pvabi__err(ctx, "unmap-notify: cannot clear a byte of a read-only mapping");
        return -EINVAL;
    }
    return set_notify(ctx, plat, mp, mp->domid, page, offset, port);
}

int pvabi__lc_grant_unmap(pvabi_ctx *ctx, void *plat, void *handle)
{
    struct lc *lc = plat;
    struct lc_pages *mp = handle;
    int rc;

    notify_bytes(mp);
    munmap(mp->addr, bytes(mp->count));
    rc = unmap_at_daemon(ctx, lc, mp);
    if (rc < 0)
        pvabi__err(ctx, "grant unmap of refs %u.. of domain %u: %s (unmapped here all the same)",
                   mp->page[0].ref, mp->domid, strerror(-rc));
    /* After GRANT_UNMAP is on the socket: a sharer woken by this event can
     * revoke at once (the daemon reads our socket before saying -EBUSY). */
    notify_ports(ctx, lc, mp);
    pages_free(mp);
    return rc;
}

/* ---- copy ------------------------------------------------------------------ */

/* Copies one segment through the descriptor of its page, never mapping it. */
static int copy_io(pvabi_ctx *ctx, struct pvabi_grant_copy_seg *seg, int fd, uint32_t page)
{
    off_t off = (off_t)page * HV_PAGE_SIZE + seg->offset;
    ssize_t n = seg->to_foreign ? pwrite(fd, seg->local, seg->len, off)
                                : pread(fd, seg->local, seg->len, off);
    int rc;

    if (n == seg->len)
        return 0;
    rc = n < 0 ? -errno : -EIO;
    pvabi__err(ctx, "grant copy %s ref %u of domain %u: %s", seg->to_foreign ? "to" : "from",
               seg->ref, seg->domid, strerror(-rc));
    return rc;
}

static int copy_seg(pvabi_ctx *ctx, struct lc *lc, struct pvabi_grant_copy_seg *seg)
{
    struct hv_grant_map_slot slot;
    struct lc_refs_buf b;
    struct lc_msg *m;
    size_t len = refs_req(&b, seg->domid, !seg->to_foreign, 1);
    int rc, fd;

    b.w[4] = seg->ref;
    rc = pvabi__lc_call(ctx, lc, HV_OP_GRANT_MAP, b.w, len, NULL, 0, &m);
    if (!m)
        return rc;
    if (!pvabi__lc_reply_ok(ctx, lc, m, sizeof(struct hv_grant_map_rsp) + sizeof(slot), !rc))
        return -EPROTO;
    memcpy(&slot, m->payload + sizeof(struct hv_grant_map_rsp), sizeof(slot));
    if (rc < 0)
        return slot.status < 0 ? slot.status : rc;
    fd = m->fds[0];
    m->nfds = 0;
    rc = copy_io(ctx, seg, fd, slot.page);
    close(fd);
    b.w[2] = 0; /* GRANT_UNMAP: readonly is not used */
    pvabi__lc_send(ctx, lc, HV_OP_GRANT_UNMAP, b.w, len);
    return rc;
}

/*
 * A copy call is planned in groups: the segments of one granting domain and
 * direction (foreign-to-local maps read-only, so that read-only grants can be
 * copied from; local-to-foreign read-write), each group's distinct refs
 * mapped with one GRANT_MAP.  All groups are mapped first, then the segments
 * are copied in the caller's order (a read after a write of the same bytes
 * sees the write, as when each segment was copied alone, and as Xen works
 * through a GNTTABOP_copy), then every fd is closed and each group unmapped
 * with one GRANT_UNMAP.  One round trip per group instead of one per segment:
 * the per-segment path is only the fallback.  The plan is ~5 KiB of stack.
 */
enum copy_how {
    COPY_MAPPED,   /* the group's refs of status 0 are mapped: fds[] */
    COPY_FALLBACK, /* the group map failed as a whole: segment by segment */
};

struct copy_group {
    unsigned seg0;        /* its first segment: the domain and direction */
    unsigned first, nent; /* its entries: ref[] / slot[] first .. first + nent - 1 */
    enum copy_how how;
};

struct copy_plan {
    unsigned nent, ngroups, nfds;
    unsigned ent_of[PVABI_GRANT_BATCH_MAX]; /* per segment: its entry */
    uint32_t ref[PVABI_GRANT_BATCH_MAX];    /* per entry: a distinct ref of its group */
    /* Per entry, from the daemon: status (< 0: final for its segments), and
     * for a mapped one its page and its fd, fd_index made an index of fds[]. */
    struct hv_grant_map_slot slot[PVABI_GRANT_BATCH_MAX];
    struct copy_group group[PVABI_GRANT_BATCH_MAX];
    /* At most one fd per entry: a reply with more fds than refs is refused. */
    int fds[PVABI_GRANT_BATCH_MAX];
};

static int same_group(const struct pvabi_grant_copy_seg *a, const struct pvabi_grant_copy_seg *b)
{
    return a->domid == b->domid && !a->to_foreign == !b->to_foreign;
}

/* Gives every segment of group @g its entry, one per distinct ref. */
static void plan_entries(struct copy_plan *p, struct copy_group *g,
                         const struct pvabi_grant_copy_seg *segs, unsigned count)
{
    g->first = p->nent;
    for (unsigned i = g->seg0; i < count; i++) {
        unsigned e = g->first;
        if (!same_group(&segs[i], &segs[g->seg0]))
            continue;
        while (e < p->nent && p->ref[e] != segs[i].ref)
            e++;
        if (e == p->nent) {
            p->ref[e] = segs[i].ref;
            p->slot[e] = (struct hv_grant_map_slot){ 0 };
            p->nent++;
        }
        p->ent_of[i] = e;
    }
    g->nent = p->nent - g->first;
}

/* Groups the segments, in order of first appearance; O(count^2) compares,
 * nothing next to the round trips saved. */
static void plan_groups(struct copy_plan *p, const struct pvabi_grant_copy_seg *segs,
                        unsigned count)
{
    p->nent = p->ngroups = p->nfds = 0;
    for (unsigned i = 0; i < count; i++) {
        unsigned k = 0;
        while (k < p->ngroups && !same_group(&segs[i], &segs[p->group[k].seg0]))
            k++;
        if (k < p->ngroups)
            continue;
        p->group[k] = (struct copy_group){ .seg0 = i, .how = COPY_FALLBACK };
        p->ngroups++;
        plan_entries(p, &p->group[k], segs, count);
    }
}

/* The entries of @g still to map (status 0), as indexes into @idx. */
static unsigned group_pending(const struct copy_plan *p, const struct copy_group *g, unsigned *idx)
{
    unsigned n = 0;

    for (unsigned e = g->first; e < g->first + g->nent; e++)
        if (p->slot[e].status == 0)
            idx[n++] = e;
    return n;
}

/* Checks a GRANT_MAP reply of status @rc for the @n refs asked for, as the
 * single map does, plus each fd index and no more fds than refs (the plan
 * has room for one per entry).  Returns 1, or 0 after ending the
 * connection. */
static int group_reply_ok(pvabi_ctx *ctx, struct lc *lc, struct lc_msg *m, unsigned n, int rc,
                          struct hv_grant_map_slot *slot)
{
    struct hv_grant_map_rsp rsp;
    const char *fault = NULL;

    if (m->hdr.len != sizeof(rsp) + n * sizeof(slot[0])) {
        pvabi__lc_bad_reply(ctx, lc, m, "a length that does not fit the refs asked for");
        return 0;
    }
    memcpy(&rsp, m->payload, sizeof(rsp));
    memcpy(slot, m->payload + sizeof(rsp), n * sizeof(slot[0]));
    if (rsp.count != n || rsp.nfds != m->nfds || (rc == 0) != (m->nfds > 0) || m->nfds > n)
        fault = "counts that do not fit the refs asked for";
    for (unsigned i = 0; i < n && !fault; i++) {
        if (slot[i].status > 0 || slot[i].status < -4095 || (rc == 0 && slot[i].status != 0))
            fault = "ref statuses that disagree with the reply's status";
        else if (rc == 0 && slot[i].fd_index >= m->nfds)
            fault = "a ref in an fd it did not send";
    }
    if (fault)
        pvabi__lc_bad_reply(ctx, lc, m, fault);
    return !fault;
}

/* One GRANT_MAP of the @n entries @idx of the group of @seg0.  Returns 0 (mapped, the
 * fds taken into the plan), 1 (refused, with a status for at least one ref:
 * recorded, the others may be asked again), or a negative errno (the map
 * failed as a whole). */
static int group_map_once(pvabi_ctx *ctx, struct lc *lc, struct copy_plan *p,
                          const struct pvabi_grant_copy_seg *seg0, const unsigned *idx, unsigned n)
{
    struct hv_grant_map_slot slot[PVABI_GRANT_BATCH_MAX];
    struct lc_refs_buf b;
    struct lc_msg *m;
    size_t len = refs_req(&b, seg0->domid, !seg0->to_foreign, n);
    int rc, refused = 0;

    for (unsigned i = 0; i < n; i++)
        b.w[4 + i] = p->ref[idx[i]];
    rc = pvabi__lc_call(ctx, lc, HV_OP_GRANT_MAP, b.w, len, NULL, 0, &m);
    if (!m)
        return rc;
    if (!group_reply_ok(ctx, lc, m, n, rc, slot))
        return -EPROTO;
    for (unsigned i = 0; i < n; i++) {
        refused |= slot[i].status < 0;
        p->slot[idx[i]].status = slot[i].status;
        p->slot[idx[i]].page = slot[i].page;
        p->slot[idx[i]].fd_index = (uint16_t)(p->nfds + slot[i].fd_index);
    }
    if (rc == 0) {
        memcpy(&p->fds[p->nfds], m->fds, m->nfds * sizeof(int));
        p->nfds += m->nfds;
        m->nfds = 0;
        return 0;
    }
    return refused ? 1 : rc;
}

/* Maps group @g: the refs the daemon refuses get their status and the rest
 * are asked again (the daemon maps all or nothing), a few times at most, as
 * a sharer may revoke meanwhile.  A failure that names no ref leaves the
 * group to the per-segment path. */
static void group_map(pvabi_ctx *ctx, struct lc *lc, struct copy_plan *p, struct copy_group *g,
                      const struct pvabi_grant_copy_seg *segs)
{
    unsigned idx[PVABI_GRANT_BATCH_MAX];

    for (int attempt = 0; attempt < 3; attempt++) {
        unsigned n = group_pending(p, g, idx);
        int rc = n ? group_map_once(ctx, lc, p, &segs[g->seg0], idx, n) : 0;
        if (rc == 0) {
            g->how = COPY_MAPPED;
            return;
        }
        if (rc < 0) {
            pvabi__debug(ctx,
                         "grant copy: map of %u refs of domain %u failed (%s): segment by "
                         "segment",
                         n, segs[g->seg0].domid, strerror(-rc));
            return;
        }
    }
}

/* GRANT_UNMAP of what group @g mapped, without waiting (as pvabi__lc_grant_unmap). */
static void group_unmap(pvabi_ctx *ctx, struct lc *lc, const struct copy_plan *p,
                        const struct copy_group *g, const struct pvabi_grant_copy_seg *seg0)
{
    unsigned idx[PVABI_GRANT_BATCH_MAX];
    unsigned n = group_pending(p, g, idx);
    struct lc_refs_buf b;

    if (g->how != COPY_MAPPED || n == 0 || lc->sock < 0)
        return; /* nothing mapped, or the daemon is gone and forgot it all */
    for (unsigned i = 0; i < n; i++)
        b.w[4 + i] = p->ref[idx[i]];
    pvabi__lc_send(ctx, lc, HV_OP_GRANT_UNMAP, b.w, refs_req(&b, seg0->domid, 0, n));
}

/* Segment @i's copy, through its group's mapping or alone. */
static int copy_one(pvabi_ctx *ctx, struct lc *lc, const struct copy_plan *p,
                    const struct copy_group *g, struct pvabi_grant_copy_seg *seg, unsigned i)
{
    const struct hv_grant_map_slot *s = &p->slot[p->ent_of[i]];

    if (s->status < 0)
        return s->status; /* the daemon refused this ref */
    if (g->how == COPY_MAPPED)
        return copy_io(ctx, seg, p->fds[s->fd_index], s->page);
    return lc->sock < 0 ? -ENOTCONN : copy_seg(ctx, lc, seg);
}

static const struct copy_group *group_of(const struct copy_plan *p, unsigned ent)
{
    unsigned k = 0;

    while (ent >= p->group[k].first + p->group[k].nent)
        k++;
    return &p->group[k];
}

int pvabi__lc_grant_copy(pvabi_ctx *ctx, void *plat, struct pvabi_grant_copy_seg *segs,
                         unsigned count)
{
    struct lc *lc = plat;
    struct copy_plan p;
    int failed = 0;

    plan_groups(&p, segs, count);
    for (unsigned k = 0; k < p.ngroups && lc->sock >= 0; k++)
        group_map(ctx, lc, &p, &p.group[k], segs);
    for (unsigned i = 0; i < count; i++) {
        segs[i].status = copy_one(ctx, lc, &p, group_of(&p, p.ent_of[i]), &segs[i], i);
        failed += segs[i].status < 0;
    }
    pvabi__lc_close_fds(p.fds, p.nfds);
    for (unsigned k = 0; k < p.ngroups; k++)
        group_unmap(ctx, lc, &p, &p.group[k], &segs[p.group[k].seg0]);
    return lc->sock < 0 ? -ENOTCONN : failed;
}

void pvabi__lc_grants_free(struct lc *lc)
{
    /* The daemon performs the unmap-notify actions of what is left, as on a
     * death: the socket is closed already. */
    while (lc->shares) {
        munmap(lc->shares->addr, bytes(lc->shares->count));
        pages_free(lc->shares);
    }
    while (lc->maps) {
        munmap(lc->maps->addr, bytes(lc->maps->count));
        pages_free(lc->maps);
    }
}
