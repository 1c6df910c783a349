/* SPDX-License-Identifier: MIT */
/*
 * grants.c - how a batch reaches the frontend's granted pages:
 * - persistent (both ends feature-persistent=1): each new gref is mapped
 *   read-write once and kept, by gref, up to max_persistent pages per
 *   device; beyond that (or when the read-write map is refused) the segment
 *   falls back to grant copy.  All unmapped when the device detaches.
 * - copy (the default otherwise): each segment has a private page-sized
 *   slot in d->buf; pvabi_grant_copy moves exactly the segment's sectors
 *   (offset first_sect * 512, length its sectors), in calls of up to
 *   PVABI_GRANT_BATCH_MAX segments for the whole batch.
 * - map (--grants map): each request's grefs are mapped around its I/O
 *   (read-only for a write: we only read the frontend's data).
 * A copy or map that fails makes that request an ERROR; nothing else of it
 * runs (a write writes nothing, a read's data is not reported OKAY).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bb.h"

static unsigned pow2_at_least(unsigned n)
{
    unsigned c = 16;

    while (c < n)
        c <<= 1;
    return c;
}

int bb_grants_init(struct bb_dev *d)
{
    const struct blkback_opts *o = &d->b->o;
    unsigned segs = o->max_indirect > BB_BATCH_SEGS_MIN ? o->max_indirect : BB_BATCH_SEGS_MIN;

    d->batch_segs = segs;
    d->segs = calloc(segs, sizeof(*d->segs));
    d->buf = aligned_alloc(PVABI_PAGE_SIZE, (size_t)segs * PVABI_PAGE_SIZE);
    d->ind = calloc(BLKBACK_MAX_INDIRECT, sizeof(*d->ind));
    d->maps = calloc(segs / PVABI_GRANT_BATCH_MAX + BB_BATCH_REQS + 1, sizeof(*d->maps));
    d->copies = calloc(BB_COPY_MAX, sizeof(*d->copies));
    d->iov = calloc(segs, sizeof(*d->iov));
    d->pg_cap = pow2_at_least(2 * o->max_persistent);
    d->pg = calloc(d->pg_cap, sizeof(*d->pg));
    if (!d->segs || !d->buf || !d->ind || !d->maps || !d->copies || !d->iov || !d->pg)
        return -ENOMEM;
    return 0;
}

void bb_grants_free(struct bb_dev *d)
{
    bb_grants_drop(d);
    free(d->segs);
    free(d->buf);
    free(d->ind);
    free(d->maps);
    free(d->copies);
    free(d->iov);
    free(d->pg);
}

/* ---- persistent cache ---------------------------------------------------- */

static struct bb_pgrant *pg_slot(struct bb_dev *d, pvabi_gref gref)
{
    unsigned i = (gref * 2654435761u) & (d->pg_cap - 1);

    while (d->pg[i].used && d->pg[i].gref != gref)
        i = (i + 1) & (d->pg_cap - 1);
    return &d->pg[i];
}

/* The persistently mapped page of @gref, mapping it if there is room; NULL: copy it. */
static uint8_t *pg_get(struct bb_dev *d, pvabi_gref gref)
{
    struct bb_pgrant *p;
    pvabi_map *m;

    if (!d->persistent || !d->pg)
        return NULL;
    p = pg_slot(d, gref);
    if (p->used)
        return pvabi_map_addr(p->map);
    if (d->pg_count >= d->b->o.max_persistent)
        return NULL;
    if (pvabi_grant_map(d->b->ctx, d->fe, &gref, 1, 0, NULL, &m) < 0)
        return NULL; /* e.g. granted read-only: the copy path decides */
    *p = (struct bb_pgrant){ .gref = gref, .used = 1, .map = m };
    d->pg_count++;
    d->st.persistent_maps_made++;
    if (d->pg_count > d->st.persistent_maps_peak)
        d->st.persistent_maps_peak = d->pg_count;
    return pvabi_map_addr(m);
}

void bb_grants_drop(struct bb_dev *d)
{
    for (unsigned i = 0; d->pg && i < d->pg_cap; i++) {
        if (d->pg[i].used)
            pvabi_grant_unmap(d->pg[i].map);
        d->pg[i].used = 0;
    }
    d->pg_count = 0;
    for (unsigned i = 0; d->maps && i < d->nmaps; i++)
        pvabi_grant_unmap(d->maps[i]);
    d->nmaps = 0;
}

/* ---- grant copy, batched -------------------------------------------------- */

struct copier {
    struct bb_dev *d;
    unsigned n;
    struct bb_req *owner[BB_COPY_MAX];
};

/* Runs the queued copies; a failed segment fails its request. */
static void copier_flush(struct copier *c)
{
    struct bb_dev *d = c->d;
    int rc;

    if (c->n == 0)
        return;
    rc = pvabi_grant_copy(d->b->ctx, d->copies, c->n);
    for (unsigned i = 0; i < c->n; i++)
        if (rc < 0 || d->copies[i].status != 0)
            c->owner[i]->status = PVBLK_RSP_ERROR;
    c->n = 0;
}

static void copier_add(struct copier *c, struct bb_req *r, const struct bb_seg *s, int to_foreign)
{
    struct bb_dev *d = c->d;

    if (c->n == BB_COPY_MAX)
        copier_flush(c);
    d->copies[c->n] = (struct pvabi_grant_copy_seg){
        .local = s->addr,
        .ref = s->gref,
        .domid = d->fe,
        .offset = s->off,
        .len = s->len,
        .to_foreign = (uint8_t)to_foreign,
    };
    c->owner[c->n++] = r;
}

int bb_grants_fetch(struct bb_dev *d, pvabi_gref gref, void *dst, uint16_t len)
{
    uint8_t *page = pg_get(d, gref);
    struct pvabi_grant_copy_seg s = {
        .local = dst, .ref = gref, .domid = d->fe, .offset = 0, .len = len, .to_foreign = 0
    };

    if (page) {
        memcpy(dst, page, len);
        return 0;
    }
    int rc = pvabi_grant_copy(d->b->ctx, &s, 1);
    return rc < 0 ? rc : rc > 0 ? s.status : 0;
}

/* ---- map mode --------------------------------------------------------- */

/* Maps every segment of @r (in chunks of PVABI_GRANT_BATCH_MAX pages). */
static int map_request(struct bb_dev *d, struct bb_req *r)
{
    pvabi_gref refs[PVABI_GRANT_BATCH_MAX];
    unsigned flags = r->op == PVBLK_OP_READ ? 0 : PVABI_GRANT_RO;

    for (unsigned s0 = 0; s0 < r->nseg; s0 += PVABI_GRANT_BATCH_MAX) {
        unsigned cnt = r->nseg - s0 < PVABI_GRANT_BATCH_MAX ? r->nseg - s0 : PVABI_GRANT_BATCH_MAX;
        struct bb_seg *sg = &d->segs[r->seg0 + s0];
        pvabi_map *m;
        for (unsigned k = 0; k < cnt; k++)
            refs[k] = sg[k].gref;
        if (pvabi_grant_map(d->b->ctx, d->fe, refs, cnt, flags, NULL, &m) < 0)
            return -EFAULT;
        d->maps[d->nmaps++] = m;
        for (unsigned k = 0; k < cnt; k++)
            sg[k].addr = (uint8_t *)pvabi_map_addr(m) + (size_t)k * PVABI_PAGE_SIZE + sg[k].off;
    }
    return 0;
}

/* Persistent page, else (copy mode) the private slot; queues the copy-in of a write. */
static void place_segs(struct copier *c, struct bb_req *r)
{
    struct bb_dev *d = c->d;

    for (unsigned s = 0; s < r->nseg; s++) {
        struct bb_seg *sg = &d->segs[r->seg0 + s];
        uint8_t *page = pg_get(d, sg->gref);
        if (page) {
            sg->addr = page + sg->off;
            continue;
        }
        sg->addr = d->buf + (size_t)(r->seg0 + s) * PVABI_PAGE_SIZE + sg->off;
        sg->via_copy = 1;
        if (r->op != PVBLK_OP_READ)
            copier_add(c, r, sg, 0);
    }
}

void bb_grants_acquire(struct bb_dev *d, unsigned nreq)
{
    struct copier c = { .d = d };

    d->nmaps = 0;
    for (unsigned i = 0; i < nreq; i++) {
        struct bb_req *r = &d->reqs[i];
        if (r->status != PVBLK_RSP_OKAY || r->nseg == 0)
            continue;
        if (d->b->o.grants == BLKBACK_GRANTS_MAP && !d->persistent) {
            if (map_request(d, r) < 0)
                r->status = PVBLK_RSP_ERROR;
            continue;
        }
        place_segs(&c, r);
    }
    copier_flush(&c);
}

void bb_grants_release(struct bb_dev *d, unsigned nreq)
{
    struct copier c = { .d = d };

    for (unsigned i = 0; i < nreq; i++) {
        struct bb_req *r = &d->reqs[i];
        if (r->status != PVBLK_RSP_OKAY || r->op != PVBLK_OP_READ)
            continue;
        for (unsigned s = 0; s < r->nseg; s++)
            if (d->segs[r->seg0 + s].via_copy)
                copier_add(&c, r, &d->segs[r->seg0 + s], 1);
    }
    copier_flush(&c);
    for (unsigned i = 0; i < d->nmaps; i++)
        pvabi_grant_unmap(d->maps[i]);
    d->nmaps = 0;
}
