/* SPDX-License-Identifier: MIT */
/*
 * blkfront.c - opening and closing a vbd: the xenbus handshake, the
 * backend's features, the ring, the event channel and the page pools
 * (bf-pool.c); the getters.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bf-private.h"

void bf_log(struct blkfront *bf, int level, const char *fmt, ...)
{
    va_list ap;

    if (level > PVABI_LOG_WARN && !bf->opts.verbose)
        return;
    fprintf(stderr, "blkfront %u: ", bf->info.devid);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void blkfront_opts_init(struct blkfront_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->ring_order = PVABI_RING_MAX_ORDER;
    o->max_indirect = 256;
    o->persistent = 1;
    o->pool_pages = 1024;
    o->timeout_ms = 10000;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int left_ms(int64_t deadline)
{
    int64_t l = deadline - now_ms();
    return l < 0 ? 0 : (int)l;
}

/* The xenbus callback only records what happened: the I/O path acts on it. */
static void bus_event(pvabi_xenbus_front *f, int event, int err, void *opaque)
{
    struct blkfront *bf = opaque;

    (void)f;
    if (event == PVABI_XENBUS_EV_PEER_LOST) {
        bf->lost = 1;
        bf_log(bf, PVABI_LOG_INFO, "backend lost: keeping the ring and %u operations",
               bf->info.ring_slots - bf->nfree_ops);
    } else if (event == PVABI_XENBUS_EV_CLOSING || event == PVABI_XENBUS_EV_CLOSED) {
        bf->closing = 1;
    } else if (event == PVABI_XENBUS_EV_ERROR) {
        bf_log(bf, PVABI_LOG_ERR, "xenbus error: %s", strerror(-err));
        bf->closing = 1;
    }
}

/* A backend node as an unsigned decimal, checked (a peer wrote it). */
static int read_u64(struct blkfront *bf, const char *key, uint64_t dflt, uint64_t *out)
{
    char path[512], *v = NULL, *end;

    snprintf(path, sizeof(path), "%s/%s", pvabi_xenbus_front_backend_path(bf->xb), key);
    int rc = pvabi_store_read(bf->ctx, PVABI_STORE_TXN_NONE, path, &v);
    if (rc == -ENOENT) {
        *out = dflt;
        return 0;
    }
    if (rc < 0)
        return rc;
    errno = 0;
    *out = strtoull(v, &end, 10);
    rc = (v[0] < '0' || v[0] > '9' || *end || errno) ? -EPROTO : 0;
    if (rc < 0)
        bf_log(bf, PVABI_LOG_ERR, "backend node %s = \"%s\" is not a number", key, v);
    free(v);
    return rc;
}

static int read_u32(struct blkfront *bf, const char *key, uint32_t dflt, unsigned *out)
{
    uint32_t v;
    int rc = pvabi_xenbus_front_feature(bf->xb, key, dflt, &v);

    if (rc == 0)
        *out = v;
    return rc;
}

static int read_mode_ro(struct blkfront *bf)
{
    char path[512], *v = NULL;

    snprintf(path, sizeof(path), "%s/mode", pvabi_xenbus_front_backend_path(bf->xb));
    if (pvabi_store_read(bf->ctx, PVABI_STORE_TXN_NONE, path, &v) < 0)
        return 0;
    int ro = strcmp(v, "r") == 0;
    free(v);
    return ro;
}

static int read_features(struct blkfront *bf, unsigned *max_order, unsigned *max_ind,
                         unsigned *persist)
{
    struct blkfront_info *in = &bf->info;
    unsigned flush = 0, barrier = 0, discard = 0;
    int rc = read_u64(bf, "sectors", UINT64_MAX, &in->sectors);

    if (rc == 0 && in->sectors == UINT64_MAX) {
        bf_log(bf, PVABI_LOG_ERR, "the backend advertises no `sectors`");
        return -EPROTO;
    }
    if (rc == 0)
        rc = read_u32(bf, "sector-size", 512, &in->sector_size);
    if (rc == 0)
        rc = read_u32(bf, "physical-sector-size", 0, &in->physical_sector_size);
    if (rc == 0)
        rc = read_u32(bf, "info", 0, &in->info);
    if (rc == 0)
        rc = read_u32(bf, "feature-flush-cache", 0, &flush);
    if (rc == 0)
        rc = read_u32(bf, "feature-barrier", 0, &barrier);
    if (rc == 0)
        rc = read_u32(bf, "feature-discard", 0, &discard);
    if (rc == 0)
        rc = read_u32(bf, "discard-granularity", 0, &in->discard_granularity);
    if (rc == 0)
        rc = read_u32(bf, "feature-max-indirect-segments", 0, max_ind);
    if (rc == 0)
        rc = read_u32(bf, "max-ring-page-order", 0, max_order);
    if (rc == 0)
        rc = read_u32(bf, "feature-persistent", 0, persist);
    in->flush = flush == 1;
    in->barrier = barrier == 1;
    in->discard = discard == 1;
    in->readonly = (in->info & PVBLK_VDISK_READONLY) || read_mode_ro(bf);
    return rc;
}

/* The sector size must be a power of two the 512-byte wire units divide. */
static int check_geometry(struct blkfront *bf)
{
    unsigned ss = bf->info.sector_size;

    if (ss < 512 || ss > PVABI_PAGE_SIZE || (ss & (ss - 1)) ||
        bf->info.sectors > (UINT64_MAX >> 9)) {
        bf_log(bf, PVABI_LOG_ERR, "unusable geometry: sector-size %u, sectors %" PRIu64, ss,
               bf->info.sectors);
        return -EPROTO;
    }
    return 0;
}

static unsigned min_u(unsigned a, unsigned b)
{
    return a < b ? a : b;
}

/* What both sides accept: ring size, segments per request, persistence. */
static void negotiate(struct blkfront *bf, unsigned max_order, unsigned max_ind, unsigned persist)
{
    struct blkfront_info *in = &bf->info;

    in->ring_order = min_u(bf->opts.ring_order, min_u(max_order, PVABI_RING_MAX_ORDER));
    in->ring_slots = pvblk_ring_nr_ents(in->ring_order);
    unsigned ind = min_u(min_u(bf->opts.max_indirect, max_ind), BF_MAX_INDIRECT);
    ind = min_u(ind, bf->opts.pool_pages);
    in->indirect = ind > BF_DIRECT_SEGS;
    in->max_segments = in->indirect ? ind : BF_DIRECT_SEGS;
    in->persistent = bf->opts.persistent && persist == 1;
    in->pool_pages = bf->opts.pool_pages;
}

static int setup_ring(struct blkfront *bf)
{
    unsigned pages = 1u << bf->info.ring_order;
    int rc = pvabi_grant_share(bf->ctx, bf->info.backend_id, pages, 0, &bf->ring_grant);

    if (rc < 0) {
        bf_log(bf, PVABI_LOG_ERR, "granting the ring: %s", strerror(-rc));
        return rc;
    }
    /* Initialised before it is published: the backend may map it at once. */
    rc = pvblk_front_init(&bf->ring, pvabi_grant_addr(bf->ring_grant), bf->info.ring_order);
    if (rc == 0)
        rc = pvabi_evtchn_alloc(bf->ctx, bf->info.backend_id, &bf->port);
    if (rc < 0)
        bf_log(bf, PVABI_LOG_ERR, "setting up the ring: %s", strerror(-rc));
    return rc;
}

static int setup_memory(struct blkfront *bf)
{
    /* Indirect requests carry more than 11 pages each (shorter ones go
     * direct), so the pool never has more than this many in flight. */
    unsigned nind = bf->info.indirect
                        ? min_u(bf->info.ring_slots, bf->opts.pool_pages / (BF_DIRECT_SEGS + 1) + 1)
                        : 0;
    int rc = bf_tables_alloc(bf);

    if (rc == 0)
        rc = bf_pages_alloc(bf, &bf->data, bf->opts.pool_pages);
    if (rc == 0)
        rc = bf_pages_alloc(bf, &bf->ind, nind);
    if (rc == -ENOMEM)
        bf_log(bf, PVABI_LOG_ERR, "out of memory for %u ring slots", bf->info.ring_slots);
    return rc;
}

static int bus_connect(struct blkfront *bf, int64_t deadline)
{
    const char *nodes[] = { "feature-persistent", "1", NULL };
    int rc = pvabi_xenbus_front_connect(bf->xb, bf->ring_grant, bf->port, NULL,
                                        bf->opts.persistent ? nodes : NULL);

    if (rc < 0) {
        bf_log(bf, PVABI_LOG_ERR, "publishing the ring: %s", strerror(-rc));
        return rc;
    }
    rc = pvabi_xenbus_front_wait(bf->xb, PVABI_XENBUS_EV_CONNECTED, left_ms(deadline));
    if (rc < 0)
        bf_log(bf, PVABI_LOG_ERR, "waiting for the backend to connect: %s", strerror(-rc));
    return rc;
}

static int check_opts(const struct blkfront_opts *o)
{
    if (o->ring_order > PVABI_RING_MAX_ORDER || o->pool_pages < 16 || o->pool_pages > 8000 ||
        o->timeout_ms < 0)
        return -EINVAL;
    return 0;
}

static int handshake(struct blkfront *bf, unsigned devid)
{
    int64_t deadline = now_ms() + bf->opts.timeout_ms;
    unsigned max_order = 0, max_ind = 0, persist = 0;
    int rc = pvabi_xenbus_front_open(bf->ctx, "vbd", devid, bus_event, bf, &bf->xb);

    if (rc < 0) {
        bf_log(bf, PVABI_LOG_ERR, "no vbd %u in this domain's store: %s", devid, strerror(-rc));
        return rc;
    }
    bf->info.backend_id = pvabi_xenbus_front_backend_id(bf->xb);
    rc = pvabi_xenbus_front_start(bf->xb);
    if (rc == 0)
        rc = pvabi_xenbus_front_wait(bf->xb, PVABI_XENBUS_EV_PEER_READY, left_ms(deadline));
    if (rc < 0) {
        bf_log(bf, PVABI_LOG_ERR, "waiting for backend %u: %s", bf->info.backend_id, strerror(-rc));
        return rc;
    }
    rc = read_features(bf, &max_order, &max_ind, &persist);
    if (rc == 0)
        rc = check_geometry(bf);
    if (rc < 0)
        return rc;
    negotiate(bf, max_order, max_ind, persist);
    rc = setup_ring(bf);
    if (rc == 0)
        rc = setup_memory(bf);
    if (rc == 0)
        rc = bus_connect(bf, deadline);
    return rc;
}

/* Frees everything; the grants only if the backend no longer maps them. */
static void release(struct blkfront *bf)
{
    bf_pages_free(bf, &bf->data);
    bf_pages_free(bf, &bf->ind);
    if (bf->ring_grant && pvabi_grant_revoke(bf->ring_grant) == -EBUSY)
        bf_log(bf, PVABI_LOG_WARN, "the ring is still mapped by the backend: left granted");
    if (bf->port)
        pvabi_evtchn_unbind(bf->ctx, bf->port);
    pvabi_xenbus_front_close(bf->xb);
    bf_tables_free(bf);
    free(bf);
}

int blkfront_open(pvabi_ctx *ctx, unsigned devid, const struct blkfront_opts *opts,
                  struct blkfront **out)
{
    struct blkfront *bf;
    int rc;

    if (!ctx || !out)
        return -EINVAL;
    *out = NULL;
    bf = calloc(1, sizeof(*bf));
    if (!bf)
        return -ENOMEM;
    bf->ctx = ctx;
    bf->info.devid = devid;
    if (opts)
        bf->opts = *opts;
    else
        blkfront_opts_init(&bf->opts);
    rc = check_opts(&bf->opts);
    if (rc == 0)
        rc = handshake(bf, devid);
    if (rc < 0) {
        if (bf->xb && pvabi_xenbus_front_state(bf->xb) >= PVABI_XENBUS_STATE_INITIALISED) {
            pvabi_xenbus_front_disconnect(bf->xb);
            pvabi_xenbus_front_wait(bf->xb, PVABI_XENBUS_EV_CLOSED, 1000);
        }
        release(bf);
        return rc;
    }
    bf_log(bf, PVABI_LOG_INFO,
           "connected to backend %u: %" PRIu64 " sectors, ring %u pages, %s, %u segments",
           bf->info.backend_id, bf->info.sectors, 1u << bf->info.ring_order,
           bf->info.persistent ? "persistent" : "grant copy", bf->info.max_segments);
    *out = bf;
    return 0;
}

/* Lets what is in flight finish, so that no request is cut off. */
static int drain(struct blkfront *bf)
{
    int64_t deadline = now_ms() + bf->opts.timeout_ms;

    while (bf->nfree_reqs < bf->info.ring_slots && !bf->dead) {
        int left = left_ms(deadline);
        if (left == 0)
            return -ETIMEDOUT;
        bf_pump(bf, left);
    }
    return bf->dead == -EIO ? -EIO : 0;
}

int blkfront_close(struct blkfront *bf)
{
    if (!bf)
        return 0;
    int rc = drain(bf);
    int rc2 = pvabi_xenbus_front_disconnect(bf->xb);
    if (rc2 == 0)
        rc2 = pvabi_xenbus_front_wait(bf->xb, PVABI_XENBUS_EV_CLOSED, bf->opts.timeout_ms);
    if (rc2 < 0)
        bf_log(bf, PVABI_LOG_WARN, "close handshake: %s", strerror(-rc2));
    release(bf);
    return rc < 0 ? rc : rc2 == -ETIMEDOUT ? rc2 : 0;
}

const struct blkfront_info *blkfront_info(const struct blkfront *bf)
{
    return &bf->info;
}

uint64_t blkfront_size(const struct blkfront *bf)
{
    return bf->info.sectors * PVBLK_SECTOR_SIZE;
}

unsigned blkfront_sector_size(const struct blkfront *bf)
{
    return bf->info.sector_size;
}

int blkfront_readonly(const struct blkfront *bf)
{
    return bf->info.readonly;
}

int blkfront_broken(const struct blkfront *bf)
{
    return bf->dead;
}

unsigned blkfront_inflight(const struct blkfront *bf)
{
    return bf->async_inflight;
}

void blkfront_stats(const struct blkfront *bf, struct blkfront_stats *out)
{
    *out = bf->stats;
}
