/* SPDX-License-Identifier: MIT */
/*
 * Grants: a share is one sealed memfd whose pages each get a ref; a map
 * hands the grantee that memfd (a read-only reopening of it for read-only
 * maps), never anything else.  Batches are all-or-nothing: every ref is
 * checked before any state changes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hv.h"

/* Far below UINT32_MAX, so a count never wraps whatever a client repeats. */
#define MAPS_PER_REF_MAX (1u << 30)

static const struct hv_notify notify_none = { HV_PAGE_SIZE, 0 };

/* ---- refs: fresh ones first, then freed ones oldest first --------------- */

static uint32_t refs_free(const struct hv_dom *d)
{
    return HV_GRANTS_MAX - d->fresh_ref + d->fq_len;
}

static uint16_t ref_take(struct hv_dom *d)
{
    uint16_t ref;

    if (d->fresh_ref < HV_GRANTS_MAX)
        return (uint16_t)d->fresh_ref++;
    ref = d->freeq[d->fq_head];
    d->fq_head = (d->fq_head + 1) % HV_GRANTS_MAX;
    d->fq_len--;
    return ref;
}

static void ref_put(struct hv_dom *d, uint16_t ref)
{
    d->freeq[(d->fq_head + d->fq_len) % HV_GRANTS_MAX] = ref;
    d->fq_len++;
}

/* Room for @count more refs, so handing them out cannot fail half-way. */
static int tables_reserve(struct hv_dom *d, uint32_t count)
{
    uint32_t need = d->fresh_ref + count;
    uint32_t n = d->ngnt ? d->ngnt : 64;

    if (!d->freeq) {
        d->freeq = malloc(HV_GRANTS_MAX * sizeof(*d->freeq));
        if (!d->freeq)
            return -ENOMEM;
    }
    if (need > HV_GRANTS_MAX)
        need = HV_GRANTS_MAX;
    while (n < need)
        n *= 2;
    if (n > HV_GRANTS_MAX)
        n = HV_GRANTS_MAX;
    if (n == d->ngnt)
        return 0;
    struct hv_grant **t = realloc(d->gnt, n * sizeof(*t));
    if (!t)
        return -ENOMEM;
    memset(t + d->ngnt, 0, (n - d->ngnt) * sizeof(*t));
    d->gnt = t;
    d->ngnt = n;
    return 0;
}

void hv_grant_free_tables(struct hv_dom *d)
{
    free(d->gnt);
    free(d->freeq);
    d->gnt = NULL;
    d->freeq = NULL;
    d->ngnt = 0;
}

struct hv_grant *hv_grant_get(struct hv_dom *sharer, uint32_t ref)
{
    if (ref < HV_FIRST_GREF || ref >= sharer->ngnt)
        return NULL;
    return sharer->gnt[ref];
}

/* ---- memfds ------------------------------------------------------------- */

static void mem_free(struct hv_mem *m)
{
    close(m->fd);
    if (m->ro_fd >= 0)
        close(m->ro_fd);
    free(m);
}

/* A read-only descriptor of the same memory: a fresh open file description,
 * which mmap() refuses PROT_WRITE with MAP_SHARED. */
static int mem_ro_fd(struct hv_mem *m)
{
    char path[40];

    if (m->ro_fd >= 0)
        return m->ro_fd;
    snprintf(path, sizeof(path), "/proc/self/fd/%d", m->fd);
    m->ro_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (m->ro_fd < 0) {
        int err = errno;
        hv_warn("read-only reopening of a memfd through %s: %s", path, strerror(err));
        return -err;
    }
    return m->ro_fd;
}

/* Why @fd cannot back a share of @count pages, or NULL. */
static const char *memfd_unfit(int fd, uint32_t count, bool readonly, bool *write_sealed)
{
    const int need = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
    struct stat st;
    int seals, fl;

    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        return "not a memfd";
    seals = fcntl(fd, F_GET_SEALS);
    if (seals < 0)
        return "not a memfd (it has no seals)";
    if ((seals & need) != need)
        return "not sealed F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_SEAL";
    if ((uint64_t)st.st_size != (uint64_t)count * HV_PAGE_SIZE)
        return "its size is not count pages";
    fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (fl & O_ACCMODE) != O_RDWR)
        return "not opened read-write";
    *write_sealed = (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) != 0;
    if (*write_sealed && !readonly)
        return "write-sealed, so it cannot be granted writable";
    /* Without the seal, a mapper could reopen its read-only descriptor
     * read-write through /proc/PID/fd. */
    if (!*write_sealed && readonly)
        return "granted read-only but not sealed F_SEAL_FUTURE_WRITE";
    return NULL;
}

static int32_t mem_new(struct hv_dom *d, int fd, const struct hv_grant_share_req *req,
                       struct hv_mem **out)
{
    bool write_sealed = false;
    const char *why = memfd_unfit(fd, req->count, req->readonly != 0, &write_sealed);
    struct hv_mem *m;

    if (why) {
        hv_info("%s: GRANT_SHARE of %u pages: the fd is %s", hv_who(d), req->count, why);
        return -EINVAL;
    }
    m = calloc(1, sizeof(*m) + req->count * sizeof(m->g[0]));
    if (!m)
        return -ENOMEM;
    m->fd = fd;
    m->ro_fd = -1;
    m->readonly = req->readonly != 0;
    m->write_sealed = write_sealed;
    m->count = req->count;
    /* Made now for a read-only grant: its RW fd must never be handed out. */
    if (m->readonly && mem_ro_fd(m) < 0) {
        int32_t err = -errno;
        free(m);
        return err;
    }
    *out = m;
    return 0;
}

void hv_grant_free(struct hv_grant *g)
{
    struct hv_dom *s = g->sharer;
    struct hv_mem *m = g->mem;

    s->gnt[g->ref] = NULL;
    ref_put(s, g->ref);
    s->grants_live--;
    g->ref = 0;
    /* g lives in m: touch nothing after this. */
    if (--m->live == 0)
        mem_free(m);
}

/* ---- GRANT_SHARE / GRANT_REVOKE ----------------------------------------- */

static void share_fill(struct hv_dom *d, struct hv_mem *m, uint32_t grantee, uint32_t *refs)
{
    for (uint32_t i = 0; i < m->count; i++) {
        struct hv_grant *g = &m->g[i];
        *g = (struct hv_grant){ .mem = m, .sharer = d, .page = i, .grantee = (uint16_t)grantee };
        g->ref = ref_take(d);
        g->on_unmap = notify_none;
        g->on_end = notify_none;
        d->gnt[g->ref] = g;
        refs[i] = g->ref;
    }
    m->live = m->count;
    d->grants_live += m->count;
}

int32_t hv_op_grant_share(struct hv_dom *d, struct hv_req *rq, struct hv_rsp *rs)
{
    struct hv_grant_share_req req;
    struct hv_grant_share_rsp out;
    uint32_t refs[HV_REFS_MAX];
    struct hv_mem *m = NULL;
    int32_t status;

    memcpy(&req, rq->payload, sizeof(req));
    if (req.domid >= HV_DOMID_LIMIT || req.count == 0 || req.count > HV_REFS_MAX) {
        hv_info("%s: GRANT_SHARE: bad domid %u or count %u", hv_who(d), req.domid, req.count);
        return -EINVAL;
    }
    if (refs_free(d) < req.count) {
        hv_info("%s: GRANT_SHARE: %u refs asked, %u free", hv_who(d), req.count, refs_free(d));
        return -ENOSPC;
    }
    status = tables_reserve(d, req.count);
    if (status == 0)
        status = mem_new(d, rq->fds[0], &req, &m);
    if (status)
        return status;
    rq->fds[0] = -1; /* kept by m */
    share_fill(d, m, req.domid, refs);
    out.count = req.count;
    memcpy(rs->payload, &out, sizeof(out));
    memcpy(rs->payload + sizeof(out), refs, req.count * sizeof(refs[0]));
    rs->len = (uint32_t)(sizeof(out) + req.count * sizeof(refs[0]));
    hv_debug("%s: %u pages shared %s with dom %u, refs %u..", hv_who(d), req.count,
             m->readonly ? "read-only" : "read-write", req.domid, refs[0]);
    return 0;
}

/* The header and refs of a request whose length conn.c checked. */
static void refs_read(const struct hv_req *rq, struct hv_grant_refs_req *req, uint32_t *refs)
{
    memcpy(req, rq->payload, sizeof(*req));
    memcpy(refs, rq->payload + sizeof(*req), req->count * sizeof(refs[0]));
}

static void tally_clear(struct hv_grant **g, uint32_t count)
{
    for (uint32_t i = 0; i < count; i++)
        if (g[i])
            g[i]->tally = 0;
}

/* Looks up the refs to revoke: 0, -EINVAL (not a live grant of ours, or
 * named twice) or -EBUSY (one is mapped). */
static int32_t revoke_check(struct hv_dom *d, const struct hv_grant_refs_req *req,
                            const uint32_t *refs, struct hv_grant **g)
{
    int32_t status = 0;

    for (uint32_t i = 0; i < req->count; i++) {
        g[i] = hv_grant_get(d, refs[i]);
        /* tally marks a ref already named: revoking it twice is an error. */
        if (!g[i] || g[i]->tally)
            status = -EINVAL, g[i] = NULL;
        else if (g[i]->maps && status == 0)
            status = -EBUSY;
        if (g[i])
            g[i]->tally = 1;
    }
    tally_clear(g, req->count);
    return status;
}

int32_t hv_op_grant_revoke(struct hv_dom *d, struct hv_req *rq, struct hv_rsp *rs)
{
    struct hv_grant_refs_req req;
    uint32_t refs[HV_REFS_MAX];
    struct hv_grant *g[HV_REFS_MAX];
    int32_t status;

    (void)rs;
    refs_read(rq, &req, refs);
    status = revoke_check(d, &req, refs, g);
    if (status == -EBUSY) {
        /* A mapper may have unmapped without waiting (HV_F_NOREPLY), or
         * died, and then told us: what it sent waits on its socket. */
        hv_grant_drain_mappers(d, refs, req.count);
        status = revoke_check(d, &req, refs, g);
    }
    if (status) {
        hv_info("%s: GRANT_REVOKE of %u refs: %s", hv_who(d), req.count,
                status == -EBUSY ? "one is still mapped" : "one is not a live grant of ours");
        return status;
    }
    /* Each grant once, so a memfd is freed only with the last of them. */
    for (uint32_t i = 0; i < req.count; i++)
        hv_grant_free(g[i]);
    return 0;
}

/* ---- draining the mappers ------------------------------------------------ */

#define MAPPERS_PER_PASS 16

/* Up to @max live domains not stamped @stamp yet that map one of @refs of
 * @s (any grant of @s when @refs is NULL), stamped now. */
static unsigned mappers_find(struct hv_dom *s, const uint32_t *refs, uint32_t count, uint32_t stamp,
                             struct hv_dom **out, unsigned max)
{
    uint32_t n = refs ? count : s->ngnt;
    unsigned k = 0;

    for (uint32_t i = 0; i < n && k < max; i++) {
        struct hv_grant *g = hv_grant_get(s, refs ? refs[i] : i);
        struct hv_dom *m = g && g->maps ? hv_dom_live(g->grantee) : NULL;

        if (m && m->drain_stamp != stamp) {
            m->drain_stamp = stamp;
            out[k++] = m;
        }
    }
    return k;
}

void hv_grant_drain_mappers(struct hv_dom *s, const uint32_t *refs, uint32_t count)
{
    struct hv_dom *m[MAPPERS_PER_PASS];
    uint32_t stamp = ++hv.drain_stamp;
    unsigned n;

    if (stamp == 0)
        stamp = hv.drain_stamp = 1; /* 0 is every new domain's */
    /* Collected before draining: a drained request can free grants of @s
     * (a zombie's, when unmapped), and even @s's tables; the stamps make
     * each pass find new domains only. */
    do {
        n = mappers_find(s, refs, count, stamp, m, MAPPERS_PER_PASS);
        for (unsigned i = 0; i < n; i++)
            hv_conn_drain(m[i]);
        hv_reap();
    } while (n == MAPPERS_PER_PASS);
}

/* ---- GRANT_MAP / GRANT_UNMAP -------------------------------------------- */

static int32_t map_check(struct hv_dom *d, struct hv_dom *s, uint32_t ref, bool ro,
                         struct hv_grant **out)
{
    struct hv_grant *g = s ? hv_grant_get(s, ref) : NULL;

    *out = g;
    if (!s)
        return -ESRCH;
    if (!g)
        return -ENOENT;
    if (g->grantee != d->domid || (g->mem->readonly && !ro))
        return -EPERM;
    return g->maps < MAPS_PER_REF_MAX ? 0 : -ENOSPC;
}

/* The distinct memfds behind @g[], as rs->fds, and each slot's place. */
static int32_t map_fds(struct hv_grant **g, uint32_t count, bool ro, struct hv_rsp *rs,
                       struct hv_grant_map_slot *slot)
{
    struct hv_mem *mems[HV_REFS_MAX];
    unsigned nmem = 0, j;

    for (uint32_t i = 0; i < count; i++) {
        struct hv_mem *m = g[i]->mem;
        for (j = 0; j < nmem && mems[j] != m; j++)
            ;
        if (j == nmem) {
            int fd = ro ? mem_ro_fd(m) : m->fd;
            if (fd < 0)
                return fd;
            mems[nmem++] = m;
            rs->fds[j] = fd;
        }
        slot[i].fd_index = (uint16_t)j;
        slot[i].page = g[i]->page;
    }
    rs->nfds = nmem;
    return 0;
}

static void map_take(struct hv_dom *d, struct hv_grant *g)
{
    if (g->maps++)
        return;
    g->mprev = NULL;
    g->mnext = d->mapped;
    if (d->mapped)
        d->mapped->mprev = g;
    d->mapped = g;
}

void hv_grant_unlink_mapper(struct hv_dom *mapper, struct hv_grant *g)
{
    if (g->mprev)
        g->mprev->mnext = g->mnext;
    else
        mapper->mapped = g->mnext;
    if (g->mnext)
        g->mnext->mprev = g->mprev;
    g->mprev = g->mnext = NULL;
}

int32_t hv_op_grant_map(struct hv_dom *d, struct hv_req *rq, struct hv_rsp *rs)
{
    struct hv_grant_refs_req req;
    uint32_t refs[HV_REFS_MAX];
    struct hv_grant *g[HV_REFS_MAX];
    struct hv_grant_map_rsp out;
    struct hv_grant_map_slot slot[HV_REFS_MAX];
    int32_t status = 0;
    bool ro;

    refs_read(rq, &req, refs);
    ro = req.readonly != 0;
    memset(slot, 0, req.count * sizeof(slot[0]));
    struct hv_dom *s = hv_dom_live(req.domid);
    if (s && hv_dom_gone(s))
        s = NULL;
    for (uint32_t i = 0; i < req.count; i++) {
        slot[i].status = map_check(d, s, refs[i], ro, &g[i]);
        if (slot[i].status && !status) {
            status = slot[i].status;
            hv_info("%s: GRANT_MAP of ref %u of dom %u%s: %s", hv_who(d), refs[i], req.domid,
                    ro ? " read-only" : "", hv_errname(status));
        }
    }
    if (status == 0)
        status = map_fds(g, req.count, ro, rs, slot);
    if (status == 0)
        for (uint32_t i = 0; i < req.count; i++)
            map_take(d, g[i]);
    out.count = req.count;
    out.nfds = status ? 0 : rs->nfds;
    memcpy(rs->payload, &out, sizeof(out));
    memcpy(rs->payload + sizeof(out), slot, req.count * sizeof(slot[0]));
    rs->len = (uint32_t)(sizeof(out) + req.count * sizeof(slot[0]));
    return status;
}

static void unmap_one(struct hv_dom *d, struct hv_grant *g)
{
    struct hv_dom *s = g->sharer;

    if (--g->maps)
        return;
    hv_grant_unlink_mapper(d, g);
    /* The library did its own notify for an explicit unmap. */
    g->on_unmap = notify_none;
    if (s->state == DOM_ZOMBIE) {
        hv_grant_free(g);
        hv_dom_release_if_done(s);
    }
}

int32_t hv_op_grant_unmap(struct hv_dom *d, struct hv_req *rq, struct hv_rsp *rs)
{
    struct hv_grant_refs_req req;
    uint32_t refs[HV_REFS_MAX];
    struct hv_grant *g[HV_REFS_MAX] = { NULL };
    struct hv_dom *s;
    uint32_t i;

    (void)rs;
    refs_read(rq, &req, refs);
    /* A dead sharer's grants stay unmappable-by-us until we let go. */
    s = req.domid < HV_DOMID_LIMIT ? hv.doms[req.domid] : NULL;
    for (i = 0; i < req.count; i++) {
        g[i] = s ? hv_grant_get(s, refs[i]) : NULL;
        /* tally counts repeats of a ref within this request. */
        if (!g[i] || g[i]->grantee != d->domid || g[i]->tally >= g[i]->maps)
            break;
        g[i]->tally++;
    }
    tally_clear(g, req.count);
    if (i < req.count) {
        hv_info("%s: GRANT_UNMAP: ref %u of dom %u is not mapped by us", hv_who(d), refs[i],
                req.domid);
        return -EINVAL;
    }
    for (i = 0; i < req.count; i++)
        unmap_one(d, g[i]);
    return 0;
}
