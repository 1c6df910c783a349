/* SPDX-License-Identifier: MIT */
/*
 * bf-sync.c - the synchronous helpers: one operation at a time (each split
 * into requests that are all in flight at once), byte ranges of any
 * alignment through read-modify-write of the edge sectors.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bf-private.h"

/* Largest operation a helper issues: a quarter of the pool, at most 1 MiB,
 * so that it always fits. */
static size_t chunk_max(const struct blkfront *bf)
{
    size_t pool = (size_t)bf->data.count * PVABI_PAGE_SIZE / 4;
    return pool < (1u << 20) ? pool : (1u << 20);
}

/* Submits one operation and waits for it; the device's timeout applies to
 * each wait without progress.  A timeout marks the device broken, so that
 * a late response never lands in a buffer the caller took back. */
static int sync_op(struct blkfront *bf, int kind, uint64_t offset, size_t len, void *buf)
{
    unsigned opi;
    int rc, timed_out = 0;

    if (bf->async_inflight)
        return -EBUSY;
    rc = bf_submit(bf, kind, offset, len, buf, 0, 1, &opi);
    if (rc < 0)
        return rc;
    while (!bf->ops[opi].done) {
        if (bf_pump(bf, bf->opts.timeout_ms) == 0 && !bf->ops[opi].done && !bf->dead) {
            timed_out = 1;
            bf_fail_all(bf, -EIO, "a synchronous request timed out");
        }
    }
    rc = bf->ops[opi].status;
    bf_op_release(bf, opi);
    return timed_out ? -ETIMEDOUT : rc;
}

static int check_range(const struct blkfront *bf, size_t len, uint64_t offset, const void *buf)
{
    uint64_t size = blkfront_size(bf);

    if (!buf || offset > size || len > size - offset)
        return -EINVAL;
    return bf->dead;
}

/* [*a, *b): the smallest sector-aligned range around [off, off + len). */
static void align_out(const struct blkfront *bf, uint64_t off, size_t len, uint64_t *a, uint64_t *b)
{
    uint64_t ss = bf->info.sector_size;
    *a = off / ss * ss;
    *b = (off + len + ss - 1) / ss * ss;
}

int blkfront_pread(struct blkfront *bf, void *buf, size_t len, uint64_t offset)
{
    int rc = bf ? check_range(bf, len, offset, buf) : -EINVAL;
    size_t done = 0, max = bf ? chunk_max(bf) : 0;
    uint8_t *bounce = NULL;

    while (rc == 0 && done < len) {
        uint64_t a, b, off = offset + done;
        size_t n = len - done < max ? len - done : max;
        align_out(bf, off, n, &a, &b);
        if (a == off && b == off + n) {
            rc = sync_op(bf, BLKFRONT_READ, off, n, (uint8_t *)buf + done);
        } else {
            /* Unaligned edge: whole sectors into a bounce buffer. */
            if (!bounce && !(bounce = malloc(max + 2 * bf->info.sector_size)))
                return -ENOMEM;
            rc = sync_op(bf, BLKFRONT_READ, a, b - a, bounce);
            if (rc == 0)
                memcpy((uint8_t *)buf + done, bounce + (off - a), n);
        }
        done += n;
    }
    free(bounce);
    return rc;
}

/* Writes [off, off + n) through @bounce: the edge sectors are read first. */
static int write_rmw(struct blkfront *bf, const uint8_t *src, size_t n, uint64_t off,
                     uint8_t *bounce)
{
    uint64_t a, b, ss = bf->info.sector_size;
    int rc = 0;

    align_out(bf, off, n, &a, &b);
    if (a != off)
        rc = sync_op(bf, BLKFRONT_READ, a, ss, bounce);
    if (rc == 0 && (off + n) % ss && (b - ss != a || a == off))
        rc = sync_op(bf, BLKFRONT_READ, b - ss, ss, bounce + (b - ss - a));
    if (rc == 0) {
        memcpy(bounce + (off - a), src, n);
        rc = sync_op(bf, BLKFRONT_WRITE, a, b - a, bounce);
    }
    return rc;
}

int blkfront_pwrite(struct blkfront *bf, const void *buf, size_t len, uint64_t offset)
{
    int rc = bf ? check_range(bf, len, offset, buf) : -EINVAL;
    size_t done = 0, max = bf ? chunk_max(bf) : 0;
    uint8_t *bounce = NULL;

    if (rc == 0 && bf->info.readonly)
        return -EROFS;
    while (rc == 0 && done < len) {
        uint64_t a, b, off = offset + done;
        size_t n = len - done < max ? len - done : max;
        align_out(bf, off, n, &a, &b);
        if (a == off && b == off + n) {
            /* WRITE copies the buffer into pool pages at submit. */
            rc = sync_op(bf, BLKFRONT_WRITE, off, n, (void *)((const uint8_t *)buf + done));
        } else {
            if (!bounce && !(bounce = malloc(max + 2 * bf->info.sector_size)))
                return -ENOMEM;
            rc = write_rmw(bf, (const uint8_t *)buf + done, n, off, bounce);
        }
        done += n;
    }
    free(bounce);
    return rc;
}

int blkfront_flush(struct blkfront *bf)
{
    return bf ? sync_op(bf, BLKFRONT_FLUSH, 0, 0, NULL) : -EINVAL;
}

int blkfront_discard(struct blkfront *bf, uint64_t offset, uint64_t len)
{
    if (!bf)
        return -EINVAL;
    if (len > SIZE_MAX)
        return -EINVAL;
    return sync_op(bf, BLKFRONT_DISCARD, offset, (size_t)len, NULL);
}
