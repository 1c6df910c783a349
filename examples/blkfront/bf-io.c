/* SPDX-License-Identifier: MIT */
/*
 * bf-io.c - the I/O path: an operation is split into ring requests built in
 * place in the shared ring and published in one batch; responses are copied
 * out once (pvblk_front_copy_rsps), checked against what we have in flight
 * and completed exactly once; waits follow the event channel and, now and
 * then, the xenbus handle (backend lost, back again, closing).
 */
#include <errno.h>
#include <sched.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "bf-private.h"

/* ---- resources ------------------------------------------------------------ */

/* How many requests, data pages and indirect pages a read or write of @len
 * bytes takes: requests of max_segments pages, indirect only for those of
 * more than 11 pages (a short tail goes direct). */
struct bf_plan {
    unsigned reqs, pages, ind;
};

/* The fixed page at @addr, or -1: not page-aligned, or not in a chunk. */
static int fixed_page(const struct blkfront *bf, const uint8_t *addr)
{
    if ((uintptr_t)addr % PVABI_PAGE_SIZE)
        return -1;
    for (unsigned c = 0; c < bf->fixed.nshares; c++) {
        unsigned first = c * BLKFRONT_FIXED_CHUNK_PAGES;
        const uint8_t *base = bf->fixed.addr[first];
        if (addr >= base) {
            size_t page = (size_t)(addr - base) / PVABI_PAGE_SIZE;
            if (page < BLKFRONT_FIXED_CHUNK_PAGES && first + page < bf->fixed.count)
                return (int)(first + page);
        }
    }
    return -1;
}

/* Pool pages an operation on @buf takes: those not used in place. */
static unsigned pool_pages_needed(const struct blkfront *bf, const uint8_t *buf, size_t len)
{
    unsigned n = 0;

    for (size_t off = 0; off < len; off += PVABI_PAGE_SIZE)
        n += !bf->fixed.count || fixed_page(bf, buf + off) < 0;
    return n;
}

static void plan_rw(const struct blkfront *bf, size_t len, const uint8_t *buf, struct bf_plan *p)
{
    size_t left = (len + PVABI_PAGE_SIZE - 1) / PVABI_PAGE_SIZE;

    p->reqs = p->ind = 0;
    p->pages = pool_pages_needed(bf, buf, len);
    while (left > 0) {
        size_t n = left < bf->info.max_segments ? left : bf->info.max_segments;
        p->reqs++;
        p->ind += n > BF_DIRECT_SEGS;
        left -= n;
    }
}

/* -E2BIG when the operation can never fit, -EAGAIN when it does not fit now. */
static int plan_fits(struct blkfront *bf, const struct bf_plan *p)
{
    if (p->reqs > bf->info.ring_slots || p->pages > bf->data.count || p->ind > bf->ind.count)
        return -E2BIG;
    if (p->reqs > bf->nfree_reqs || bf->nfree_ops == 0 || p->pages > bf->data.nfree ||
        p->ind > bf->ind.nfree || (int)p->reqs > pvblk_front_free(&bf->ring))
        return -EAGAIN;
    return 0;
}

static unsigned pop_op(struct blkfront *bf, int kind, void *buf, size_t len, uint64_t tag, int sync)
{
    unsigned i = bf->free_ops[--bf->nfree_ops];
    struct bf_op *op = &bf->ops[i];

    *op = (struct bf_op){
        .in_use = 1, .sync = sync, .kind = kind, .tag = tag, .buf = buf, .len = len
    };
    return i;
}

void bf_op_release(struct blkfront *bf, unsigned op)
{
    bf->ops[op].in_use = 0;
    bf->free_ops[bf->nfree_ops++] = op;
}

static struct bf_req *pop_req(struct blkfront *bf, unsigned op, uint64_t *id)
{
    unsigned i = bf->free_reqs[--bf->nfree_reqs];
    struct bf_req *r = &bf->reqs[i];

    r->in_use = 1;
    r->gen++;
    r->op = (uint16_t)op;
    r->nsegs = 0;
    r->ind_page = -1;
    r->len = 0;
    r->buf_off = 0;
    bf->ops[op].pending++;
    *id = ((uint64_t)r->gen << BF_ID_SLOT_BITS) | i;
    return r;
}

/* ---- building requests ---------------------------------------------------- */

/* The grant of segment @s of @r: a fixed page of the caller's buffer in
 * place, or a pool page (filled for a write). */
static pvabi_gref segment_page(struct blkfront *bf, struct bf_req *r, uint32_t s, size_t n)
{
    uint8_t *user = bf->ops[r->op].buf + r->buf_off + (size_t)s * PVABI_PAGE_SIZE;
    int fx = bf->fixed.count ? fixed_page(bf, user) : -1;

    if (fx >= 0) {
        r->pages[s] = BF_FIXED | (uint32_t)fx;
        return bf->fixed.gref[fx];
    }
    uint32_t pg = bf->data.free[--bf->data.nfree];
    r->pages[s] = pg;
    if (r->data_op == PVBLK_OP_WRITE)
        memcpy(bf->data.addr[pg], user, n);
    return bf->data.gref[pg];
}

/* Takes the request's pages and describes them. */
static void fill_segments(struct blkfront *bf, struct bf_req *r, struct pvblk_segment *seg)
{
    size_t left = r->len;

    for (uint32_t s = 0; s < r->nsegs; s++) {
        size_t n = left < PVABI_PAGE_SIZE ? left : PVABI_PAGE_SIZE;
        seg[s] = (struct pvblk_segment){ .gref = segment_page(bf, r, s, n),
                                         .first_sect = 0,
                                         .last_sect = (uint8_t)(n / PVBLK_SECTOR_SIZE - 1) };
        left -= n;
    }
}

static void put_direct(struct blkfront *bf, struct bf_req *r, uint64_t id, uint64_t sector)
{
    struct pvblk_request q = { .operation = r->data_op,
                               .nr_segments = (uint8_t)r->nsegs,
                               .handle = (uint16_t)bf->info.devid,
                               .id = id,
                               .sector_number = sector };

    fill_segments(bf, r, q.seg);
    r->wire_op = r->data_op;
    /* Built privately and copied in whole: the backend may be reading the
     * ring already, and sees the slot only after publish's release. */
    memcpy(pvblk_front_next_req(&bf->ring), &q, sizeof(q));
}

static void put_indirect(struct blkfront *bf, struct bf_req *r, uint64_t id, uint64_t sector)
{
    uint32_t ip = bf->ind.free[--bf->ind.nfree];
    struct pvblk_request_indirect q = { .operation = PVBLK_OP_INDIRECT,
                                        .indirect_op = r->data_op,
                                        .nr_segments = (uint16_t)r->nsegs,
                                        .id = id,
                                        .sector_number = sector,
                                        .handle = (uint16_t)bf->info.devid };
    union pvblk_slot slot;

    r->ind_page = (int)ip;
    fill_segments(bf, r, (struct pvblk_segment *)(void *)bf->ind.addr[ip]);
    q.indirect_grefs[0] = bf->ind.gref[ip];
    r->wire_op = PVBLK_OP_INDIRECT;
    memset(&slot, 0, sizeof(slot));
    memcpy(&slot, &q, sizeof(q));
    memcpy(pvblk_front_next_req(&bf->ring), &slot.req, sizeof(slot.req));
    bf->stats.indirect++;
}

static void build_rw(struct blkfront *bf, unsigned opi, uint64_t offset)
{
    struct bf_op *op = &bf->ops[opi];
    size_t done = 0;

    while (done < op->len) {
        size_t max = (size_t)bf->info.max_segments * PVABI_PAGE_SIZE;
        size_t n = op->len - done < max ? op->len - done : max;
        uint64_t id;
        struct bf_req *r = pop_req(bf, opi, &id);
        r->data_op = op->kind == BLKFRONT_WRITE ? PVBLK_OP_WRITE : PVBLK_OP_READ;
        r->buf_off = done;
        r->len = n;
        r->nsegs = (uint32_t)((n + PVABI_PAGE_SIZE - 1) / PVABI_PAGE_SIZE);
        uint64_t sector = (offset + done) >> PVBLK_SECTOR_SHIFT;
        if (r->nsegs > BF_DIRECT_SEGS)
            put_indirect(bf, r, id, sector);
        else
            put_direct(bf, r, id, sector);
        done += n;
    }
}

static void build_other(struct blkfront *bf, unsigned opi, uint64_t offset, size_t len)
{
    uint64_t id;
    struct bf_req *r = pop_req(bf, opi, &id);
    union pvblk_slot slot;

    memset(&slot, 0, sizeof(slot));
    if (bf->ops[opi].kind == BLKFRONT_DISCARD) {
        struct pvblk_request_discard d = { .operation = PVBLK_OP_DISCARD,
                                           .handle = (uint16_t)bf->info.devid,
                                           .id = id,
                                           .sector_number = offset >> PVBLK_SECTOR_SHIFT,
                                           .nr_sectors = len >> PVBLK_SECTOR_SHIFT };
        memcpy(&slot, &d, sizeof(d));
    } else {
        /* A flush without data: FLUSH_DISKCACHE, or a barrier, which also
         * orders (blkif.h allows both with no segment). */
        slot.req = (struct pvblk_request){ .operation = bf->info.flush ? PVBLK_OP_FLUSH_DISKCACHE
                                                                       : PVBLK_OP_WRITE_BARRIER,
                                           .handle = (uint16_t)bf->info.devid,
                                           .id = id };
    }
    r->data_op = r->wire_op = slot.req.operation;
    memcpy(pvblk_front_next_req(&bf->ring), &slot.req, sizeof(slot.req));
}

static void notify(struct blkfront *bf)
{
    /* -ENOTCONN: the backend is gone; its successor is notified when it is
     * back (bf_bus_check), and finds the requests at req_prod anyway. */
    if (pvabi_evtchn_notify(bf->ctx, bf->port) == 0)
        bf->stats.notifies++;
}

static void publish(struct blkfront *bf, unsigned reqs)
{
    int rc = pvblk_front_publish(&bf->ring);

    bf->stats.requests += reqs;
    if (rc > 0)
        notify(bf);
    else if (rc < 0)
        bf_fail_all(bf, -EIO, "the ring is broken");
}

/* ---- submit ------------------------------------------------------------------ */

static int check_submit(struct blkfront *bf, int kind, uint64_t offset, size_t len, void *buf)
{
    uint64_t size = bf->info.sectors * PVBLK_SECTOR_SIZE;
    uint64_t ss = bf->info.sector_size;

    if (bf->dead)
        return bf->dead;
    if (kind < BLKFRONT_READ || kind > BLKFRONT_DISCARD)
        return -EINVAL;
    if ((kind == BLKFRONT_WRITE || kind == BLKFRONT_DISCARD) && bf->info.readonly)
        return -EROFS;
    if ((kind == BLKFRONT_FLUSH && !bf->info.flush && !bf->info.barrier) ||
        (kind == BLKFRONT_DISCARD && !bf->info.discard))
        return -EOPNOTSUPP;
    if (kind == BLKFRONT_FLUSH)
        return 0;
    if (len == 0 || offset % ss || len % ss || offset > size || len > size - offset)
        return -EINVAL;
    if (kind != BLKFRONT_DISCARD && !buf)
        return -EINVAL;
    return 0;
}

int bf_submit(struct blkfront *bf, int kind, uint64_t offset, size_t len, void *buf, uint64_t tag,
              int sync, unsigned *op_out)
{
    struct bf_plan p = { 1, 0, 0 };
    int rc = check_submit(bf, kind, offset, len, buf);

    if (rc < 0)
        return rc;
    if (kind == BLKFRONT_READ || kind == BLKFRONT_WRITE)
        plan_rw(bf, len, buf, &p);
    rc = plan_fits(bf, &p);
    if (rc < 0)
        return rc;
    unsigned opi = pop_op(bf, kind, buf, len, tag, sync);
    if (kind == BLKFRONT_READ || kind == BLKFRONT_WRITE)
        build_rw(bf, opi, offset);
    else
        build_other(bf, opi, offset, len);
    if (!sync)
        bf->async_inflight++;
    if (op_out)
        *op_out = opi;
    publish(bf, p.reqs);
    return 0;
}

int blkfront_submit(struct blkfront *bf, int op, uint64_t offset, size_t len, void *buf,
                    uint64_t tag)
{
    if (!bf)
        return -EINVAL;
    return bf_submit(bf, op, offset, len, buf, tag, 0, NULL);
}

/* ---- completion ---------------------------------------------------------------- */

static void finish_op(struct blkfront *bf, unsigned opi)
{
    struct bf_op *op = &bf->ops[opi];

    bf->stats.ops++;
    if (op->status == 0 && op->kind == BLKFRONT_READ)
        bf->stats.bytes_read += op->len;
    if (op->status == 0 && op->kind == BLKFRONT_WRITE)
        bf->stats.bytes_written += op->len;
    if (op->sync) {
        op->done = 1; /* the helper releases it */
        return;
    }
    unsigned tail = (bf->done_head + bf->done_count) % bf->info.ring_slots;
    bf->doneq[tail] = (struct blkfront_done){ .tag = op->tag, .status = op->status };
    bf->done_count++;
    bf_op_release(bf, opi);
}

/* Completes request @slot with @status (0 or -errno): exactly once, since
 * it leaves in_use and a later response for it fails validation. */
static void finish_req(struct blkfront *bf, unsigned slot, int status)
{
    struct bf_req *r = &bf->reqs[slot];
    struct bf_op *op = &bf->ops[r->op];

    for (uint32_t s = 0; s < r->nsegs; s++) {
        uint32_t pg = r->pages[s];
        if (pg & BF_FIXED)
            continue; /* the data is in place already */
        if (status == 0 && r->data_op == PVBLK_OP_READ) {
            size_t off = (size_t)s * PVABI_PAGE_SIZE;
            size_t n = r->len - off < PVABI_PAGE_SIZE ? r->len - off : PVABI_PAGE_SIZE;
            memcpy(op->buf + r->buf_off + off, bf->data.addr[pg], n);
        }
        bf->data.free[bf->data.nfree++] = pg;
    }
    if (r->ind_page >= 0)
        bf->ind.free[bf->ind.nfree++] = (uint32_t)r->ind_page;
    r->in_use = 0;
    r->nsegs = 0;
    r->ind_page = -1;
    bf->free_reqs[bf->nfree_reqs++] = slot;
    if (status < 0 && op->status == 0)
        op->status = status;
    if (--op->pending == 0)
        finish_op(bf, r->op);
}

void bf_fail_all(struct blkfront *bf, int err, const char *why)
{
    if (bf->dead)
        return;
    bf->dead = err;
    bf_log(bf, err == -EIO ? PVABI_LOG_ERR : PVABI_LOG_INFO, "%s: failing %u requests (%s)", why,
           bf->info.ring_slots - bf->nfree_reqs, strerror(-err));
    /* The pages stay out of use: nothing is submitted on a dead device. */
    for (unsigned i = 0; i < bf->info.ring_slots; i++)
        if (bf->reqs[i].in_use)
            finish_req(bf, i, err);
}

static int op_matches(const struct bf_req *r, uint8_t operation)
{
    /* An indirect request is answered with its indirect_op by Linux's
     * blkback (and Linux's blkfront >= 5.14 insists on it); INDIRECT, which
     * older pvabi blkbacks echoed, is accepted too: the id and generation
     * already name the request, the operation is only a sanity check, and
     * either value names the same request.  Anything else is a violation. */
    return operation == r->wire_op || (r->wire_op == PVBLK_OP_INDIRECT && operation == r->data_op);
}

static int rsp_status(int16_t status)
{
    if (status == PVBLK_RSP_OKAY)
        return 0;
    return status == PVBLK_RSP_EOPNOTSUPP ? -EOPNOTSUPP : -EIO;
}

static void on_response(struct blkfront *bf, const struct pvblk_response *rsp)
{
    uint64_t slot = rsp->id & BF_ID_SLOT_MASK;
    const struct bf_req *r = slot < bf->info.ring_slots ? &bf->reqs[slot] : NULL;

    if (!r || !r->in_use || (rsp->id >> BF_ID_SLOT_BITS) != r->gen) {
        bf_log(bf, PVABI_LOG_ERR, "response id %#" PRIx64 " is no request in flight", rsp->id);
        bf_fail_all(bf, -EIO, "protocol violation");
        return;
    }
    if (!op_matches(r, rsp->operation)) {
        bf_log(bf, PVABI_LOG_ERR, "response id %#" PRIx64 ": operation %u, sent %u", rsp->id,
               rsp->operation, r->wire_op);
        bf_fail_all(bf, -EIO, "protocol violation");
        return;
    }
    finish_req(bf, (unsigned)slot, rsp_status(rsp->status));
}

/* Consumes every response available; returns how many. */
static int reap(struct blkfront *bf)
{
    struct pvblk_response rsp[32];
    int total = 0, n;

    while (!bf->dead && (n = pvblk_front_copy_rsps(&bf->ring, rsp, 32)) > 0) {
        for (int i = 0; i < n && !bf->dead; i++)
            on_response(bf, &rsp[i]);
        total += n;
    }
    if (!bf->dead && pvblk_front_broken(&bf->ring))
        bf_fail_all(bf, -EIO, "the backend broke the ring (rsp_prod)");
    return total;
}

/* ---- waiting ------------------------------------------------------------------- */

/* The slow path, when a wait slice passed or our port fired with nothing on
 * the ring: store events (the callback notes closing), and whether the
 * backend is gone or back. */
void bf_bus_check(struct blkfront *bf)
{
    pvabi_store_process(bf->ctx);
    int rc = pvabi_xenbus_front_wait(bf->xb, PVABI_XENBUS_EV_CONNECTED, 0);
    if (rc == 0 && bf->lost) {
        bf->lost = 0;
        bf->stats.reconnects++;
        bf_log(bf, PVABI_LOG_INFO, "backend back: %u requests to answer",
               bf->info.ring_slots - bf->nfree_reqs);
    } else if (rc == -ENOTCONN || (rc == -ETIMEDOUT && !bf->closing)) {
        bf->lost = 1;
    } else if (rc == -ECONNRESET || rc == -ESHUTDOWN) {
        bf->closing = 1;
    }
    /* Requests waiting and nothing arrived for a while: a backend that
     * restarted unseen, or one that lost an event, gets a kick.  A spurious
     * notification costs nothing. */
    if (!bf->lost && bf->nfree_reqs < bf->info.ring_slots)
        notify(bf);
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleeps until our port fires or @slice_ms passes. */
static void wait_event(struct blkfront *bf, int slice_ms)
{
    pvabi_port ports[8];
    int n = pvabi_evtchn_wait(bf->ctx, ports, 8, slice_ms);
    int ours = 0;

    for (int i = 0; i < n; i++) {
        /* Unmasked before the ring is looked at again: an event after
         * this is reported by the next wait. */
        pvabi_evtchn_unmask(bf->ctx, ports[i]);
        ours |= ports[i] == bf->port;
    }
    if (n <= 0 || bf->lost)
        bf_bus_check(bf);
    else if (ours && pvblk_front_unconsumed(&bf->ring) == 0)
        bf_bus_check(bf); /* an event with nothing on the ring: maybe a death */
}

/* Polls the ring for responses for up to BF_SPIN_NS before the caller
 * sleeps: with requests in flight the backend usually answers within a few
 * microseconds, and an event channel wake-up (eventfd write, scheduler,
 * epoll) costs more than that on both sides.  Yields the CPU now and then
 * so that a backend sharing it can run.  1 if responses arrived. */
static int spin_for_responses(struct blkfront *bf)
{
    struct timespec start, t;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (unsigned i = 1;; i++) {
        if (pvblk_front_unconsumed(&bf->ring) != 0)
            return 1;
        if (i % 64 == 0) {
            sched_yield();
            clock_gettime(CLOCK_MONOTONIC, &t);
            if ((t.tv_sec - start.tv_sec) * 1000000000L + (t.tv_nsec - start.tv_nsec) > BF_SPIN_NS)
                return 0;
        }
    }
}

/* Makes progress for up to @timeout_ms: returns the responses processed
 * (> 0), or 0 when none came (timeout, nothing in flight, dead). */
int bf_pump(struct blkfront *bf, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;

    for (;;) {
        int n = reap(bf);
        if (n > 0 || bf->dead)
            return n;
        if (bf->closing) {
            bf_fail_all(bf, -ESHUTDOWN, "the backend is closing the device");
            return 0;
        }
        if (bf->nfree_reqs == bf->info.ring_slots)
            return 0;
        if (spin_for_responses(bf))
            continue;
        /* Re-arm rsp_event, then look once more: a response published
         * meanwhile is seen here or notified. */
        n = pvblk_front_final_check(&bf->ring);
        if (n != 0)
            continue; /* responses, or broken: reap() handles both */
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return 0;
        wait_event(bf, left < BF_CHECK_MS ? (int)left : BF_CHECK_MS);
    }
}

int blkfront_complete(struct blkfront *bf, struct blkfront_done *out, unsigned max, int timeout_ms)
{
    if (!bf || !out || max == 0 || timeout_ms < 0)
        return -EINVAL;
    int64_t deadline = now_ms() + timeout_ms;
    for (int first = 1;; first = 0) {
        if (bf->done_count > 0) {
            unsigned n = 0;
            for (; n < max && bf->done_count > 0; n++) {
                out[n] = bf->doneq[bf->done_head];
                bf->done_head = (bf->done_head + 1) % bf->info.ring_slots;
                bf->done_count--;
                bf->async_inflight--;
            }
            return (int)n;
        }
        int64_t left = deadline - now_ms();
        if (bf->async_inflight == 0 || (!first && left <= 0))
            return 0;
        bf_pump(bf, left > 0 ? (int)left : 0);
    }
}
