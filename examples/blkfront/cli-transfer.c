/* SPDX-License-Identifier: MIT */
/*
 * cli-transfer.c - read / write / fill / verify for blkfront-cli.
 *
 * The sector-aligned middle of the range goes through the asynchronous API
 * with --depth operations of --chunk bytes in flight; slots are consumed in
 * offset order (so `read` writes stdout in order) and refilled.  Unaligned
 * edges go through the synchronous blkfront_pread/pwrite, which read,
 * modify and write back partial sectors.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bf-pattern.h"
#include "blkfront-cli.h"

enum { S_FREE, S_READY, S_BUSY, S_DONE };

struct slot {
    uint8_t *buf;
    uint64_t off;
    size_t len;
    int state, status;
};

struct xfer {
    struct cli *c;
    struct slot *s;
    unsigned n, head, count;
    uint64_t next, end; /* the aligned middle still to prepare: [next, end) */
    int eof;            /* write: stdin ended */
    uint8_t *rem;       /* write without LEN: the unaligned bytes after EOF */
    size_t remlen;
};

static int report_mismatch(uint64_t off, uint8_t got, uint64_t seed)
{
    fprintf(stderr,
            "blkfront-cli: verify: mismatch at offset %" PRIu64 ": got 0x%02x, expected 0x%02x\n",
            off, got, bf_pattern_byte(off, seed));
    return -EILSEQ;
}

/* The slot's data is in: deliver it (read), check it (verify). */
static int consume(struct xfer *x, struct slot *s)
{
    struct cli *c = x->c;

    if (s->status < 0) {
        fprintf(stderr, "blkfront-cli: %" PRIu64 "+%zu: %s\n", s->off, s->len,
                strerror(-s->status));
        return s->status;
    }
    if (c->cmd == CMD_READ && fwrite(s->buf, 1, s->len, stdout) != s->len)
        return -EPIPE;
    if (c->cmd == CMD_VERIFY) {
        long long bad = bf_pattern_check(s->buf, s->off, s->len, c->seed);
        if (bad >= 0)
            return report_mismatch(s->off + (uint64_t)bad, s->buf[bad], c->seed);
    }
    c->bytes += s->len;
    return 0;
}

/* Reads up to @len bytes of stdin; fewer only at EOF. */
static size_t read_stdin(uint8_t *buf, size_t len, int *eof)
{
    size_t got = fread(buf, 1, len, stdin);

    if (got < len)
        *eof = 1;
    return got;
}

/* Gives the next free slot its range (and data for a write); 0 when there
 * is nothing more to prepare. */
static int prepare(struct xfer *x, struct slot *s)
{
    struct cli *c = x->c;
    uint64_t ss = blkfront_sector_size(c->bf);

    if (x->next >= x->end || x->eof)
        return 0;
    size_t len = x->end - x->next < c->chunk ? (size_t)(x->end - x->next) : c->chunk;
    if (c->cmd == CMD_WRITE) {
        size_t got = read_stdin(s->buf, len, &x->eof);
        len = got / ss * ss;
        x->remlen = got - len;
        memcpy(x->rem, s->buf + len, x->remlen);
        if (len == 0)
            return 0;
    } else if (c->cmd == CMD_FILL) {
        bf_pattern_fill(s->buf, x->next, len, c->seed);
    }
    s->off = x->next;
    s->len = len;
    s->state = S_READY;
    x->next += len;
    return 1;
}

static int kind_of(int cmd)
{
    return cmd == CMD_READ || cmd == CMD_VERIFY ? BLKFRONT_READ : BLKFRONT_WRITE;
}

/* Submits the prepared slots in order until the device has no room. */
static int submit_ready(struct xfer *x)
{
    for (unsigned i = 0; i < x->count; i++) {
        unsigned k = (x->head + i) % x->n;
        struct slot *s = &x->s[k];
        if (s->state != S_READY)
            continue;
        int rc = blkfront_submit(x->c->bf, kind_of(x->c->cmd), s->off, s->len, s->buf, k);
        if (rc == -EAGAIN)
            return 0;
        if (rc < 0)
            return rc;
        s->state = S_BUSY;
    }
    return 0;
}

static int busy(const struct xfer *x)
{
    for (unsigned i = 0; i < x->n; i++)
        if (x->s[i].state == S_BUSY)
            return 1;
    return 0;
}

/* Waits for completions and marks their slots; -ETIMEDOUT if none came. */
static int collect(struct xfer *x)
{
    struct blkfront_done d[64];
    int n = blkfront_complete(x->c->bf, d, 64, x->c->opts.timeout_ms);

    if (n == 0)
        return -ETIMEDOUT;
    for (int i = 0; i < n; i++) {
        struct slot *s = &x->s[d[i].tag % x->n];
        s->state = S_DONE;
        s->status = d[i].status;
    }
    return 0;
}

static int step(struct xfer *x)
{
    while (x->count < x->n && prepare(x, &x->s[(x->head + x->count) % x->n]))
        x->count++;
    int rc = submit_ready(x);
    if (rc == 0 && busy(x))
        rc = collect(x);
    while (rc == 0 && x->count > 0 && x->s[x->head].state == S_DONE) {
        rc = consume(x, &x->s[x->head]);
        x->s[x->head].state = S_FREE;
        x->head = (x->head + 1) % x->n;
        x->count--;
    }
    return rc;
}

/* After an error: lets what is in flight land before the buffers go.
 * Returns 0 when nothing is left in flight. */
static int drain(struct xfer *x)
{
    while (busy(x))
        if (collect(x) < 0)
            return -ETIMEDOUT;
    return 0;
}

static int run_middle(struct cli *c, uint64_t a, uint64_t b, struct xfer *x)
{
    int rc = 0;

    x->c = c;
    x->n = c->depth;
    x->next = a;
    x->end = b;
    x->s = calloc(x->n, sizeof(*x->s));
    x->rem = malloc(c->chunk);
    for (unsigned i = 0; x->s && i < x->n && rc == 0; i++)
        if (!(x->s[i].buf = malloc(c->chunk)))
            rc = -ENOMEM;
    if (!x->s || !x->rem)
        rc = -ENOMEM;
    while (rc == 0 && (x->count > 0 || (x->next < x->end && !x->eof)))
        rc = step(x);
    if (x->s && drain(x) < 0)
        return rc ? rc : -ETIMEDOUT; /* buffers may still be written: kept */
    for (unsigned i = 0; x->s && i < x->n; i++)
        free(x->s[i].buf);
    free(x->s);
    x->s = NULL;
    return rc;
}

/* An unaligned edge [off, off + len), synchronously. */
static int edge(struct cli *c, uint64_t off, size_t len, int *eof)
{
    uint8_t buf[4096];
    int rc = 0;

    if (c->cmd == CMD_WRITE) {
        len = read_stdin(buf, len, eof);
        if (len == 0)
            return 0;
    } else if (c->cmd == CMD_FILL) {
        bf_pattern_fill(buf, off, len, c->seed);
    }
    if (c->cmd == CMD_READ || c->cmd == CMD_VERIFY)
        rc = blkfront_pread(c->bf, buf, len, off);
    else
        rc = blkfront_pwrite(c->bf, buf, len, off);
    if (rc == 0 && c->cmd == CMD_READ && fwrite(buf, 1, len, stdout) != len)
        rc = -EPIPE;
    if (rc == 0 && c->cmd == CMD_VERIFY) {
        long long bad = bf_pattern_check(buf, off, len, c->seed);
        if (bad >= 0)
            rc = report_mismatch(off + (uint64_t)bad, buf[bad], c->seed);
    }
    if (rc == 0)
        c->bytes += len;
    return rc;
}

/* Write without LEN: what follows the last whole sector of stdin. */
static int write_rest(struct cli *c, struct xfer *x, uint64_t off)
{
    int rc = 0;

    if (x->remlen)
        rc = blkfront_pwrite(c->bf, x->rem, x->remlen, off);
    if (rc == 0)
        c->bytes += x->remlen;
    if (rc == 0 && !c->has_len && !x->eof && fgetc(stdin) != EOF) {
        fprintf(stderr, "blkfront-cli: stdin is longer than the disk\n");
        rc = -ENOSPC;
    }
    return rc;
}

int cli_transfer(struct cli *c)
{
    uint64_t size = blkfront_size(c->bf), ss = blkfront_sector_size(c->bf);
    uint64_t end = c->has_len ? c->offset + c->len : size;
    struct xfer x;
    int eof = 0, rc = 0;

    memset(&x, 0, sizeof(x));
    if (c->offset > size || end > size || end < c->offset) {
        fprintf(stderr, "blkfront-cli: range past the end of the disk (%" PRIu64 " bytes)\n", size);
        return -EINVAL;
    }
    uint64_t a = (c->offset + ss - 1) / ss * ss, b = end / ss * ss;
    if (a > end)
        a = end;
    if (b < a)
        b = a;
    if (a > c->offset)
        rc = edge(c, c->offset, (size_t)(a - c->offset), &eof);
    if (rc == 0 && !eof && b > a)
        rc = run_middle(c, a, b, &x);
    if (rc == 0 && c->cmd == CMD_WRITE && (!c->has_len || x.eof))
        rc = write_rest(c, &x, c->offset + c->bytes);
    else if (rc == 0 && !eof && !x.eof && end > b)
        rc = edge(c, b, (size_t)(end - b), &eof);
    free(x.rem);
    if (rc == 0 && c->cmd == CMD_WRITE && c->has_len && c->bytes < c->len) {
        fprintf(stderr, "blkfront-cli: stdin ended after %" PRIu64 " bytes\n", c->bytes);
        rc = -EIO;
    }
    return rc;
}
