/* SPDX-License-Identifier: MIT */
/*
 * io.c - one batch of requests: take them off the ring (each copied once:
 * only the copy is read), validate every field, reach the granted pages
 * (grants.c), do the disk I/O in ring order (contiguous READs or WRITEs
 * merged into one preadv / pwritev), answer in ring order.
 *
 * Validation is against our copies only, so a frontend changing a slot or
 * an indirect page after we read it changes nothing (no double fetch).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "bb.h"

#define SECT PVBLK_SECTOR_SIZE

/* Validates one segment descriptor (from a private copy) into @s. */
static int parse_seg(const struct pvblk_segment *in, struct bb_seg *s, uint64_t *nsect)
{
    if (in->first_sect > in->last_sect || in->last_sect >= PVBLK_PAGE_SECTORS)
        return -EINVAL;
    s->gref = in->gref;
    s->off = (uint16_t)(in->first_sect * SECT);
    s->len = (uint16_t)((in->last_sect - in->first_sect + 1u) * SECT);
    s->addr = NULL;
    s->via_copy = 0;
    *nsect += (uint64_t)(in->last_sect - in->first_sect + 1u);
    return 0;
}

static int parse_segs(struct bb_dev *d, struct bb_req *r, const struct pvblk_segment *in)
{
    for (unsigned i = 0; i < r->nseg; i++)
        if (parse_seg(&in[i], &d->segs[r->seg0 + i], &r->nsect) < 0)
            return -EINVAL;
    return 0;
}

/* The range [sector, sector + nsect) lies in the disk; no overflow. */
static int in_disk(const struct bb_dev *d, uint64_t sector, uint64_t nsect)
{
    return sector <= d->sectors && nsect <= d->sectors - sector;
}

/* Fetches the indirect descriptors once into d->ind (private memory). */
static int fetch_indirect(struct bb_dev *d, const struct pvblk_request_indirect *ir, unsigned n)
{
    unsigned pages = (n + PVBLK_SEGS_PER_INDIRECT_FRAME - 1) / PVBLK_SEGS_PER_INDIRECT_FRAME;

    for (unsigned p = 0; p < pages; p++) {
        unsigned cnt = n - p * (unsigned)PVBLK_SEGS_PER_INDIRECT_FRAME;
        if (cnt > PVBLK_SEGS_PER_INDIRECT_FRAME)
            cnt = PVBLK_SEGS_PER_INDIRECT_FRAME;
        int rc =
            bb_grants_fetch(d, ir->indirect_grefs[p], d->ind + p * PVBLK_SEGS_PER_INDIRECT_FRAME,
                            (uint16_t)(cnt * sizeof(struct pvblk_segment)));
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int parse_indirect(struct bb_dev *d, struct bb_req *r)
{
    struct pvblk_request_indirect ir;

    memcpy(&ir, &r->raw, sizeof(ir));
    if (ir.indirect_op != PVBLK_OP_READ && ir.indirect_op != PVBLK_OP_WRITE)
        return -EOPNOTSUPP;
    if (ir.nr_segments == 0 || ir.nr_segments > d->b->o.max_indirect)
        return -EINVAL;
    r->op = ir.indirect_op;
    r->nseg = ir.nr_segments;
    r->sector = ir.sector_number;
    d->st.indirect++;
    if (fetch_indirect(d, &ir, r->nseg) < 0)
        return -EFAULT;
    return parse_segs(d, r, d->ind);
}

/* READ / WRITE need 1..11 segments; FLUSH and BARRIER 0..11. */
static int parse_direct(struct bb_dev *d, struct bb_req *r)
{
    unsigned n = r->raw.nr_segments;

    if (n > PVBLK_MAX_SEGMENTS_PER_REQUEST)
        return -EINVAL;
    if (n == 0 && (r->op == PVBLK_OP_READ || r->op == PVBLK_OP_WRITE))
        return -EINVAL;
    r->nseg = n;
    r->sector = r->raw.sector_number;
    return parse_segs(d, r, r->raw.seg);
}

static int parse_discard(struct bb_dev *d, struct bb_req *r)
{
    struct pvblk_request_discard dr;

    memcpy(&dr, &r->raw, sizeof(dr));
    if (d->ro)
        return -EOPNOTSUPP;
    r->sector = dr.sector_number;
    r->nsect = dr.nr_sectors;
    return 0;
}

/* Counts one request by kind. */
static void count_op(struct bb_dev *d, uint8_t op)
{
    struct blkback_dev_stats *s = &d->st;

    s->reads += op == PVBLK_OP_READ;
    s->writes += op == PVBLK_OP_WRITE;
    s->barriers += op == PVBLK_OP_WRITE_BARRIER;
    s->flushes += op == PVBLK_OP_FLUSH_DISKCACHE;
    s->discards += op == PVBLK_OP_DISCARD;
}

static int parse_op(struct bb_dev *d, struct bb_req *r)
{
    switch (r->raw.operation) {
    case PVBLK_OP_READ:
    case PVBLK_OP_WRITE:
    case PVBLK_OP_WRITE_BARRIER:
    case PVBLK_OP_FLUSH_DISKCACHE:
        r->op = r->raw.operation;
        return parse_direct(d, r);
    case PVBLK_OP_DISCARD:
        r->op = PVBLK_OP_DISCARD;
        return parse_discard(d, r);
    case PVBLK_OP_INDIRECT:
        if (d->b->o.max_indirect == 0)
            return -EOPNOTSUPP;
        return parse_indirect(d, r);
    default:
        return -EOPNOTSUPP;
    }
}

/* Fills r->status: OKAY if the request may run, else why not. */
static void parse(struct bb_dev *d, struct bb_req *r, unsigned seg0)
{
    int rc;

    r->op = 0xff;
    r->seg0 = seg0;
    r->nseg = r->nmap = 0;
    r->nsect = 0;
    rc = parse_op(d, r);
    /* A read-only device refuses data to write; a flush or barrier without
     * segments only syncs (discard was refused with EOPNOTSUPP already). */
    if (rc == 0 && d->ro && r->op != PVBLK_OP_READ && r->op != PVBLK_OP_DISCARD && r->nseg)
        rc = -EROFS;
    /* Only a range that moves data is checked, as Linux's blkback does: an
     * empty flush or barrier may carry any sector_number (Linux's blkfront
     * may leave (sector_t)-1 there) and a discard of 0 sectors does nothing. */
    if (rc == 0 && r->nsect && !in_disk(d, r->sector, r->nsect))
        rc = -ERANGE;
    count_op(d, r->op);
    r->status = rc == 0             ? PVBLK_RSP_OKAY
                : rc == -EOPNOTSUPP ? PVBLK_RSP_EOPNOTSUPP
                                    : PVBLK_RSP_ERROR;
    if (rc < 0) {
        r->nseg = 0; /* nothing of a refused request is touched */
        if (d->b->o.verbose)
            bb_log(d->b, PVABI_LOG_INFO, "%s: request id %llu op %u refused: %s", d->name,
                   (unsigned long long)r->raw.id, r->raw.operation, strerror(-rc));
    }
}

/* Segments a request may need in the batch (before parsing it). */
static unsigned segs_needed(const struct bb_dev *d, const struct pvblk_request *raw)
{
    if (raw->operation == PVBLK_OP_INDIRECT) {
        unsigned n = ((const struct pvblk_request_indirect *)(const void *)raw)->nr_segments;
        return n <= d->b->o.max_indirect ? n : 0;
    }
    return raw->nr_segments <= PVBLK_MAX_SEGMENTS_PER_REQUEST ? raw->nr_segments : 0;
}

/* Takes up to BB_BATCH_REQS requests; the count, or -EPROTO. */
static int take(struct bb_dev *d)
{
    unsigned n = 0, used = 0;

    while (n < BB_BATCH_REQS) {
        struct bb_req *r = &d->reqs[n];
        if (d->has_stash) {
            r->raw = d->stash;
            d->has_stash = 0;
        } else {
            int rc = pvblk_back_copy_req(&d->ring, &r->raw);
            if (rc <= 0)
                return rc < 0 ? rc : (int)n;
        }
        unsigned need = segs_needed(d, &r->raw);
        if (used + need > d->batch_segs) {
            d->stash = r->raw; /* consumed already: first of the next batch */
            d->has_stash = 1;
            break;
        }
        parse(d, r, used);
        used += r->nseg;
        n++;
    }
    return (int)n;
}

/* ---- disk ----------------------------------------------------------- */

/* Whether request @r continues @prev on disk, same direction (the iovec
 * holds every segment of a batch; rw_all() splits it by IOV_MAX). */
static int mergeable(const struct bb_req *prev, const struct bb_req *r)
{
    return r->status == PVBLK_RSP_OKAY && r->op == prev->op &&
           (r->op == PVBLK_OP_READ || r->op == PVBLK_OP_WRITE) &&
           r->sector == prev->sector + prev->nsect;
}

/*
 * Every byte of @iov by preadv / pwritev at @off.  A call takes at most
 * IOV_MAX iovecs (more is EINVAL: an indirect request may have 4096
 * segments), and a regular file may transfer less than asked, so the
 * offset and the iovec advance by what each call did.
 */
static int rw_all(int fd, int write, struct iovec *iov, int niov, off_t off)
{
    while (niov > 0) {
        int cnt = niov < IOV_MAX ? niov : IOV_MAX;
        ssize_t got = write ? pwritev(fd, iov, cnt, off) : preadv(fd, iov, cnt, off);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return got < 0 ? -errno : -EIO;
        off += got;
        while (niov > 0 && (size_t)got >= iov->iov_len) {
            got -= (ssize_t)iov->iov_len;
            iov++, niov--;
        }
        if (niov > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + got;
            iov->iov_len -= (size_t)got;
        }
    }
    return 0;
}

/* Records requests [i, j), one contiguous run of READs or WRITEs, with
 * its own part of the batch's iovec; the run's index. */
static unsigned add_run(struct bb_dev *d, unsigned i, unsigned j)
{
    struct bb_run *run = &d->runs[d->nruns];

    /* Barriers and flushes carrying data write it too. */
    *run = (struct bb_run){ .req0 = i,
                            .req1 = j,
                            .write = d->reqs[i].op != PVBLK_OP_READ,
                            .iov0 = d->iov_used,
                            .off = (off_t)(d->reqs[i].sector * SECT) };
    for (unsigned k = i; k < j; k++) {
        const struct bb_req *r = &d->reqs[k];
        for (unsigned s = 0; s < r->nseg; s++) {
            const struct bb_seg *sg = &d->segs[r->seg0 + s];
            d->iov[run->iov0 + run->niov++] = (struct iovec){ sg->addr, sg->len };
            run->len += sg->len;
        }
    }
    d->iov_used += run->niov;
    return d->nruns++;
}

void bb_run_finish(struct bb_dev *d, unsigned n, int err, size_t done)
{
    struct bb_run *run = &d->runs[n];

    if (err == 0 && done < run->len) {
        /* A short transfer: the rest synchronously, from where it stopped. */
        struct iovec *iov = &d->iov[run->iov0];
        int niov = run->niov;
        size_t skip = done;
        while (niov > 0 && skip >= iov->iov_len) {
            skip -= iov->iov_len;
            iov++, niov--;
        }
        iov->iov_base = (uint8_t *)iov->iov_base + skip;
        iov->iov_len -= skip;
        err = rw_all(d->fd, run->write, iov, niov, run->off + (off_t)done);
    }
    run->done = 1;
    for (unsigned k = run->req0; k < run->req1; k++)
        if (err < 0)
            d->reqs[k].status = PVBLK_RSP_ERROR;
    if (err == 0 && run->write)
        d->st.bytes_written += run->len;
    else if (err == 0)
        d->st.bytes_read += run->len;
}

void bb_run_sync(struct bb_dev *d, unsigned n)
{
    const struct bb_run *run = &d->runs[n];

    bb_run_finish(d, n, rw_all(d->fd, run->write, &d->iov[run->iov0], run->niov, run->off),
                  run->len);
}

/* Requests [i, j) to io_uring's queue, or done now. */
static void run_rw(struct bb_dev *d, unsigned i, unsigned j)
{
    unsigned n = add_run(d, i, j);

    if (!bb_aio_queue(d, n))
        bb_run_sync(d, n);
}

/* A barrier or flush: its data (if any) written, then fdatasync, after
 * everything before it in the batch completed. */
static void run_sync(struct bb_dev *d, unsigned i)
{
    struct bb_req *r = &d->reqs[i];

    if (r->nseg)
        run_rw(d, i, i + 1);
    bb_aio_wait(d);
    if (r->status == PVBLK_RSP_OKAY && fdatasync(d->fd) < 0)
        r->status = PVBLK_RSP_ERROR;
}

/* After everything before it in the batch: a read queued earlier must not
 * see the hole, nor a write queued earlier fill it again. */
static void run_discard(struct bb_dev *d, struct bb_req *r)
{
    if (r->nsect == 0)
        return;
    bb_aio_wait(d);
    if (fallocate(d->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(r->sector * SECT),
                  (off_t)(r->nsect * SECT)) < 0)
        r->status = errno == EOPNOTSUPP ? PVBLK_RSP_EOPNOTSUPP : PVBLK_RSP_ERROR;
}

/* Disk I/O of the batch, in ring order; READ and WRITE runs between two
 * flushes, barriers or discards may go to the disk together. */
static void run_disk(struct bb_dev *d, unsigned nreq)
{
    d->nruns = d->iov_used = 0;
    for (unsigned i = 0; i < nreq;) {
        struct bb_req *r = &d->reqs[i];
        unsigned j = i + 1;
        if (r->status != PVBLK_RSP_OKAY) {
            i++;
            continue;
        }
        if (r->op == PVBLK_OP_READ || r->op == PVBLK_OP_WRITE) {
            while (j < nreq && mergeable(&d->reqs[j - 1], &d->reqs[j]))
                j++;
            run_rw(d, i, j);
        } else if (r->op == PVBLK_OP_DISCARD) {
            run_discard(d, r);
        } else {
            run_sync(d, i);
        }
        i = j;
    }
    bb_aio_wait(d);
}

/* ---- responses ---------------------------------------------------------- */

/*
 * The response's operation: the request's, except that an INDIRECT request
 * is answered with its indirect_op (READ / WRITE), as Linux's blkback does
 * and Linux's blkfront (5.14 and later) requires: it compares the response
 * with the operation it recorded, the inner one, and disables the disk on a
 * mismatch.
 */
static uint8_t rsp_operation(const struct pvblk_request *raw)
{
    const struct pvblk_request_indirect *ir =
        (const struct pvblk_request_indirect *)(const void *)raw;

    return raw->operation == PVBLK_OP_INDIRECT ? ir->indirect_op : raw->operation;
}

static void respond(struct bb_dev *d, unsigned nreq)
{
    for (unsigned i = 0; i < nreq; i++) {
        const struct bb_req *r = &d->reqs[i];
        struct pvblk_response *rsp = pvblk_back_next_rsp(&d->ring);
        if (!rsp)
            return; /* broken meanwhile: the caller sees it */
        rsp->id = r->raw.id;
        rsp->operation = rsp_operation(&r->raw);
        rsp->status = r->status;
        d->st.errors += r->status == PVBLK_RSP_ERROR;
        d->st.eopnotsupp += r->status == PVBLK_RSP_EOPNOTSUPP;
    }
    if (pvblk_back_publish(&d->ring) == 1)
        pvabi_evtchn_notify(d->b->ctx, d->port);
}

int bb_io_batch(struct bb_dev *d)
{
    int n = take(d);

    if (n <= 0)
        return n;
    d->st.batches++;
    bb_grants_acquire(d, (unsigned)n);
    run_disk(d, (unsigned)n);
    bb_grants_release(d, (unsigned)n);
    respond(d, (unsigned)n);
    return pvblk_back_broken(&d->ring) ? -EPROTO : 1;
}
