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

/*
 * The backend's nodes.  blkif.h's start-up order, which Linux's blkback
 * follows: at InitWait only the transport parameters are there
 * (max-ring-page-order; since Linux 4.6 also feature-max-indirect-segments);
 * the device properties (sectors, info, sector-size, physical-sector-size,
 * feature-flush-cache, feature-barrier, the discard nodes,
 * feature-persistent and, before Linux 4.6, feature-max-indirect-segments)
 * are written in its connect(), just before it switches to Connected.  So
 * blkfront reads max-ring-page-order at InitWait and everything else after
 * the Connected wait.  Every value was written by a peer: each is checked,
 * and a malformed one fails the open with -EPROTO and a log line.
 */

/* A backend node as an unsigned decimal; *present = 0 when absent. */
static int read_u64(struct blkfront *bf, const char *key, int *present, uint64_t *out)
{
    char path[512], *v = NULL, *end;

    snprintf(path, sizeof(path), "%s/%s", pvabi_xenbus_front_backend_path(bf->xb), key);
    int rc = pvabi_store_read(bf->ctx, PVABI_STORE_TXN_NONE, path, &v);
    *present = rc >= 0; /* the value's length */
    if (rc == -ENOENT)
        return 0;
    if (rc < 0) {
        bf_log(bf, PVABI_LOG_ERR, "reading backend node %s: %s", key, strerror(-rc));
        return rc;
    }
    errno = 0;
    *out = strtoull(v, &end, 10);
    /* Digits only, all rc of them (a value may hold a NUL), no overflow. */
    rc = (v[0] < '0' || v[0] > '9' || end != v + rc || errno) ? -EPROTO : 0;
    if (rc < 0)
        bf_log(bf, PVABI_LOG_ERR, "backend node %s = \"%s\" is not a 64-bit decimal", key, v);
    free(v);
    return rc;
}

/* A backend node as a decimal u32, @dflt when absent. */
static int read_u32(struct blkfront *bf, const char *key, uint32_t dflt, unsigned *out)
{
    uint32_t v;
    int rc = pvabi_xenbus_front_feature(bf->xb, key, dflt, &v);

    if (rc == 0)
        *out = v;
    else if (rc == -EPROTO)
        bf_log(bf, PVABI_LOG_ERR, "backend node %s is not a 32-bit decimal", key);
    else
        bf_log(bf, PVABI_LOG_ERR, "reading backend node %s: %s", key, strerror(-rc));
    return rc;
}

/* A feature-* node: on when present and not 0 (as Linux's blkfront reads
 * them), off when absent. */
static int read_bool(struct blkfront *bf, const char *key, int *out)
{
    unsigned v = 0;
    int rc = read_u32(bf, key, 0, &v);

    *out = rc == 0 && v != 0;
    return rc;
}

/* `mode` is the toolstack's ("w", "r", "w!"): read-only unless it has a
 * 'w', as Linux's blkback reads it; absent, `info` alone decides. */
static int read_mode_ro(struct blkfront *bf, int *ro)
{
    char path[512], *v = NULL;

    snprintf(path, sizeof(path), "%s/mode", pvabi_xenbus_front_backend_path(bf->xb));
    int rc = pvabi_store_read(bf->ctx, PVABI_STORE_TXN_NONE, path, &v);
    *ro = 0;
    if (rc == -ENOENT)
        return 0;
    if (rc < 0) {
        bf_log(bf, PVABI_LOG_ERR, "reading backend node mode: %s", strerror(-rc));
        return rc;
    }
    *ro = strchr(v, 'w') == NULL;
    free(v);
    return 0;
}

/* The geometry, after Connected: sectors (required), sector-size,
 * physical-sector-size, info, mode.  Unknown info bits are ignored. */
static int read_geometry(struct blkfront *bf)
{
    struct blkfront_info *in = &bf->info;
    int present = 0, mode_ro = 0;
    int rc = read_u64(bf, "sectors", &present, &in->sectors);

    if (rc == 0 && !present) {
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
        rc = read_mode_ro(bf, &mode_ro);
    in->readonly = (in->info & PVBLK_VDISK_READONLY) || mode_ro;
    return rc;
}

/* The sector size must be a power of two the 512-byte wire units divide
 * (blkfront does not write feature-large-sector-size, so every sector
 * quantity on the wire and `sectors` are in 512-byte units, as in Linux);
 * the physical one, if given, a power of two multiple of it. */
static int check_geometry(struct blkfront *bf)
{
    unsigned ss = bf->info.sector_size, ps = bf->info.physical_sector_size;

    if (ss < 512 || ss > PVABI_PAGE_SIZE || (ss & (ss - 1)) ||
        bf->info.sectors > (UINT64_MAX >> 9)) {
        bf_log(bf, PVABI_LOG_ERR, "unusable geometry: sector-size %u, sectors %" PRIu64, ss,
               bf->info.sectors);
        return -EPROTO;
    }
    if (ps != 0 && (ps < ss || (ps & (ps - 1)))) {
        bf_log(bf, PVABI_LOG_ERR,
               "physical-sector-size %u is no power of two multiple of sector-size %u", ps, ss);
        return -EPROTO;
    }
    return 0;
}

/* Discard: discard-granularity defaults to the sector size (blkif.h); one
 * that is no multiple of it is unusable: discard is then left off (the
 * device stays usable).  Not looked at without feature-discard. */
static int read_discard(struct blkfront *bf)
{
    struct blkfront_info *in = &bf->info;
    int rc = read_bool(bf, "feature-discard", &in->discard);

    if (rc < 0 || !in->discard)
        return rc;
    rc = read_u32(bf, "discard-granularity", in->sector_size, &in->discard_granularity);
    if (rc == 0 && in->discard_granularity == 0)
        in->discard_granularity = in->sector_size;
    if (rc == 0 && in->discard_granularity % in->sector_size) {
        bf_log(bf, PVABI_LOG_WARN,
               "discard-granularity %u is no multiple of sector-size %u: "
               "not using discard",
               in->discard_granularity, in->sector_size);
        in->discard = 0;
        in->discard_granularity = 0;
    }
    return rc;
}

/* The features, after Connected. */
static int read_features(struct blkfront *bf, unsigned *max_ind, int *persist)
{
    struct blkfront_info *in = &bf->info;
    int rc = read_bool(bf, "feature-flush-cache", &in->flush);

    if (rc == 0)
        rc = read_bool(bf, "feature-barrier", &in->barrier);
    if (rc == 0)
        rc = read_discard(bf);
    if (rc == 0)
        rc = read_u32(bf, "feature-max-indirect-segments", 0, max_ind);
    if (rc == 0)
        rc = read_bool(bf, "feature-persistent", persist);
    return rc;
}

static unsigned min_u(unsigned a, unsigned b)
{
    return a < b ? a : b;
}

/* At InitWait: the ring, within the backend's max-ring-page-order. */
static int negotiate_ring(struct blkfront *bf)
{
    struct blkfront_info *in = &bf->info;
    unsigned max_order = 0;
    int rc = read_u32(bf, "max-ring-page-order", 0, &max_order);

    in->ring_order = min_u(bf->opts.ring_order, min_u(max_order, PVABI_RING_MAX_ORDER));
    in->ring_slots = pvblk_ring_nr_ents(in->ring_order);
    in->pool_pages = bf->opts.pool_pages;
    return rc;
}

/* After Connected: segments per request, and persistent grants, used only
 * when we asked for them (our feature-persistent = 1, written at connect)
 * and the backend shows feature-persistent once Connected, as Linux's
 * blkfront decides. */
static void negotiate_features(struct blkfront *bf, unsigned max_ind, int persist)
{
    struct blkfront_info *in = &bf->info;
    unsigned ind = min_u(min_u(bf->opts.max_indirect, max_ind), BF_MAX_INDIRECT);

    ind = min_u(ind, bf->opts.pool_pages + bf->opts.fixed_pages);
    in->indirect = ind > BF_DIRECT_SEGS;
    in->max_segments = in->indirect ? ind : BF_DIRECT_SEGS;
    in->persistent = bf->opts.persistent && persist;
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

/* Before connect: the data pool, which the features do not change. */
static int setup_pool(struct blkfront *bf)
{
    int rc = bf_pages_alloc(bf, &bf->data, bf->opts.pool_pages);

    if (rc == 0)
        rc = bf_pages_alloc(bf, &bf->fixed, bf->opts.fixed_pages);
    if (rc == -ENOMEM)
        bf_log(bf, PVABI_LOG_ERR, "out of memory for %u pool pages and %u fixed pages",
               bf->opts.pool_pages, bf->opts.fixed_pages);
    return rc;
}

/* After Connected, once the segments per request are known: the request
 * tables and the indirect pages (granted now: the backend sees them only
 * in requests). */
static int setup_tables(struct blkfront *bf)
{
    /* Indirect requests carry more than 11 pages each (shorter ones go
     * direct), so the pool and the fixed pages never have more than this
     * many in flight. */
    unsigned pages = bf->opts.pool_pages + bf->opts.fixed_pages;
    unsigned nind =
        bf->info.indirect ? min_u(bf->info.ring_slots, pages / (BF_DIRECT_SEGS + 1) + 1) : 0;
    int rc = bf_tables_alloc(bf);

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
        o->fixed_pages > 8000 || o->timeout_ms < 0)
        return -EINVAL;
    return 0;
}

/* Up to InitWait, then what connecting needs: the ring, the port, the
 * data pool; published with our feature-persistent; waits for Connected. */
static int handshake_connect(struct blkfront *bf, unsigned devid, int64_t deadline)
{
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
    rc = negotiate_ring(bf);
    if (rc == 0)
        rc = setup_ring(bf);
    if (rc == 0)
        rc = setup_pool(bf);
    if (rc == 0)
        rc = bus_connect(bf, deadline);
    return rc;
}

static int handshake(struct blkfront *bf, unsigned devid)
{
    int64_t deadline = now_ms() + bf->opts.timeout_ms;
    unsigned max_ind = 0;
    int persist = 0;
    int rc = handshake_connect(bf, devid, deadline);

    /* Connected: the device properties are all there now. */
    if (rc == 0)
        rc = read_geometry(bf);
    if (rc == 0)
        rc = check_geometry(bf);
    if (rc == 0)
        rc = read_features(bf, &max_ind, &persist);
    if (rc < 0)
        return rc;
    negotiate_features(bf, max_ind, persist);
    return setup_tables(bf);
}

/* Frees everything; the grants only if the backend no longer maps them. */
static void release(struct blkfront *bf)
{
    bf_pages_free(bf, &bf->data);
    bf_pages_free(bf, &bf->ind);
    bf_pages_free(bf, &bf->fixed);
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

void *blkfront_fixed_buffer(struct blkfront *bf, unsigned i, size_t *len)
{
    *len = 0;
    if (!bf || i >= bf->fixed.nshares)
        return NULL;
    unsigned first = i * BLKFRONT_FIXED_CHUNK_PAGES, left = bf->fixed.count - first;
    *len = (size_t)(left < BLKFRONT_FIXED_CHUNK_PAGES ? left : BLKFRONT_FIXED_CHUNK_PAGES) *
           PVABI_PAGE_SIZE;
    return bf->fixed.addr[first];
}
