/* SPDX-License-Identifier: MIT */
/*
 * Stream setup and teardown: the server shares the pages and publishes the
 * nodes, the client reads them and maps (libxenvchan's layout and protocol,
 * see docs/stream.md).  The data path is in io.c.
 *
 * Everything the client reads from the server's page to set itself up (the
 * orders and the grant list) is read once into locals and checked before it
 * is used; the server never reads back what it wrote there.
 */
#include "stream/private.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pvabi/barrier.h>

#define PAGE_SHIFT 12u
/* Where the in-page rings of orders 10 and 11 live. */
#define SMALL_OFFSET 1024u
#define LARGE_OFFSET 2048u

pvabi_stream *pvabi__stream_new(pvabi_ctx *ctx, bool server, pvabi_domid peer)
{
    STREAM_KEEP_ERRNO;
    pvabi_stream *s = calloc(1, sizeof(*s));

    if (!s)
        return NULL;
    s->ctx = ctx;
    s->server = server;
    s->peer = peer;
    s->state = server ? PVABI_STREAM_WAITING : PVABI_STREAM_OPEN;
    return s;
}

void pvabi__stream_bind_bytes(pvabi_stream *s)
{
    struct pvabi_stream_intf *i = s->intf;

    /* Each end tests-and-clears its own notify byte, and sets bits in the
     * peer's: srv_notify holds what the client asked of the server. */
    s->own_live = s->server ? &i->srv_live : &i->cli_live;
    s->peer_live = s->server ? &i->cli_live : &i->srv_live;
    s->own_notify = s->server ? &i->srv_notify : &i->cli_notify;
    s->peer_notify = s->server ? &i->cli_notify : &i->srv_notify;
}

/* Pages a ring of @order takes outside the interface page. */
static unsigned ring_pages(unsigned order)
{
    return order >= PAGE_SHIFT ? 1u << (order - PAGE_SHIFT) : 0;
}

/* The smallest order >= 12 whose ring holds @size bytes. */
static unsigned page_order(size_t size)
{
    unsigned order = PAGE_SHIFT;

    while (((size_t)1 << order) < size)
        order++;
    return order;
}

/*
 * libxenvchan's choice, so that the same sizes give the same layout: both
 * rings in the page when one fits in 1024 bytes and the other in 2048;
 * otherwise a ring of at most 2048 still takes the page's 2048, and the
 * other gets pages.
 */
static void choose_orders(size_t left, size_t right, unsigned *lo, unsigned *ro)
{
    *lo = page_order(left);
    *ro = page_order(right);
    if (left <= 1024 && right <= 2048) {
        *lo = 10;
        *ro = 11;
    } else if (left <= 2048 && right <= 1024) {
        *lo = 11;
        *ro = 10;
    } else if (left <= 2048) {
        *lo = 11;
    } else if (right <= 2048) {
        *ro = 11;
    }
}

/* The ring buffer of @order: in the page, or the separate pages @pages. */
static void *ring_buffer(struct pvabi_stream_intf *intf, unsigned order, void *pages)
{
    if (order == 10)
        return (unsigned char *)intf + SMALL_OFFSET;
    if (order == 11)
        return (unsigned char *)intf + LARGE_OFFSET;
    return pages;
}

static int resolve_path(pvabi_stream *s, const char *path, pvabi_domid server, pvabi_domid client)
{
    int n;

    if (path)
        n = snprintf(s->path, sizeof(s->path), "%s", path);
    else
        n = snprintf(s->path, sizeof(s->path), STREAM_DEFAULT_PATH, server, client);
    if (n <= 0 || n > STREAM_PATH_MAX) {
        pvabi__err(s->ctx, "stream: store path %s", n <= 0 ? "empty" : "too long");
        return -EINVAL;
    }
    return 0;
}

/* Opens the two flex rings over the buffers; the server reads left. */
static int open_rings(pvabi_stream *s, unsigned lo, void *left, unsigned ro, void *right)
{
    struct pvabi_stream_intf *i = s->intf;
    void *rd = s->server ? left : right, *wr = s->server ? right : left;
    unsigned rdo = s->server ? lo : ro, wro = s->server ? ro : lo;
    struct pvabi_stream_ring *rdr = s->server ? &i->left : &i->right;
    struct pvabi_stream_ring *wrr = s->server ? &i->right : &i->left;
    int rc;

    rc = pvabi_flexring_open(&s->rd, rd, (size_t)1 << rdo, &rdr->prod, &rdr->cons,
                             PVABI_FLEXRING_READER);
    if (rc == 0)
        rc = pvabi_flexring_open(&s->wr, wr, (size_t)1 << wro, &wrr->prod, &wrr->cons,
                                 PVABI_FLEXRING_WRITER);
    if (rc == -EPROTO) {
        pvabi__err(s->ctx, "stream %s: the peer's ring indices are inconsistent", s->path);
        s->broken = true;
    }
    return rc;
}

/* ---- server ---------------------------------------------------------- */

/* Shares @pages pages for a ring and lists their refs at @refs. */
static int share_ring(pvabi_stream *s, unsigned pages, uint32_t *refs, pvabi_grant **out)
{
    int rc;

    if (pages == 0)
        return 0;
    rc = pvabi_grant_share(s->ctx, s->peer, pages, 0, out);
    if (rc < 0) {
        pvabi__err(s->ctx, "stream %s: sharing %u ring pages: %s", s->path, pages, strerror(-rc));
        return rc;
    }
    for (unsigned p = 0; p < pages; p++)
        refs[p] = pvabi_grant_ref(*out, p);
    return 0;
}

static int server_share(pvabi_stream *s, unsigned lo, unsigned ro)
{
    struct pvabi_stream_intf *i;
    int rc = pvabi_grant_share(s->ctx, s->peer, 1, 0, &s->g_intf);

    if (rc < 0) {
        pvabi__err(s->ctx, "stream %s: sharing the interface page: %s", s->path, strerror(-rc));
        return rc;
    }
    i = s->intf = pvabi_grant_addr(s->g_intf);
    /* Our death must look like a close to the client (libxenvchan shares
     * the page with this notify).  Xen's libxengnttab cannot add it later. */
    rc = pvabi_grant_notify(s->g_intf, 0, offsetof(struct pvabi_stream_intf, srv_live), s->port);
    if (rc == -ENOTSUP)
        pvabi__debug(s->ctx,
                     "stream %s: no unmap-notify on this platform: the client sees "
                     "our death only through the port's state",
                     s->path);
    else if (rc < 0)
        return rc;
    rc = share_ring(s, ring_pages(lo), i->grants, &s->g_left);
    if (rc == 0)
        rc = share_ring(s, ring_pages(ro), i->grants + ring_pages(lo), &s->g_right);
    if (rc < 0)
        return rc;
    /* The page is fresh (zeroed) and unpublished: plain stores, ordered
     * before the client sees anything by the store transaction. */
    i->left_order = (uint16_t)lo;
    i->right_order = (uint16_t)ro;
    i->cli_live = PVABI_STREAM_LIVE_WAITING;
    i->srv_live = PVABI_STREAM_LIVE_OPEN;
    s->live = true;
    /* We want to hear of the client's writes from the start. */
    i->cli_notify = PVABI_STREAM_NOTIFY_WRITE;
    pvabi__stream_bind_bytes(s);
    return open_rings(s, lo, ring_buffer(i, lo, s->g_left ? pvabi_grant_addr(s->g_left) : NULL), ro,
                      ring_buffer(i, ro, s->g_right ? pvabi_grant_addr(s->g_right) : NULL));
}

/* The nodes' transaction body: both nodes, each readable by the client. */
static int publish_txn(pvabi_ctx *ctx, pvabi_store_txn txn, void *opaque)
{
    const pvabi_stream *s = opaque;
    static const char *const names[] = { "ring-ref", "event-channel" };
    uint32_t values[] = { pvabi_grant_ref(s->g_intf, 0), s->port };
    char node[STREAM_PATH_MAX + 32], perms[32];
    int rc = 0;

    snprintf(perms, sizeof(perms), "n%u r%u", pvabi_own_domid(ctx), s->peer);
    for (unsigned k = 0; k < 2 && rc == 0; k++) {
        snprintf(node, sizeof(node), "%s/%s", s->path, names[k]);
        rc = pvabi_store_printf(ctx, txn, node, "%u", values[k]);
        if (rc == 0)
            rc = pvabi_store_set_perms(ctx, txn, node, perms);
    }
    return rc;
}

static int server_publish(pvabi_stream *s)
{
    int rc = pvabi_store_txn_run(s->ctx, publish_txn, s, 16);

    if (rc < 0) {
        pvabi__err(s->ctx, "stream %s: writing ring-ref and event-channel: %s", s->path,
                   strerror(-rc));
        return rc;
    }
    s->published = true;
    return 0;
}

PVABI_EXPORT int pvabi_stream_server_open(pvabi_ctx *ctx, pvabi_domid client, const char *path,
                                          size_t read_size, size_t write_size, pvabi_stream **out)
{
    STREAM_KEEP_ERRNO;
    pvabi_stream *s;
    unsigned lo, ro;
    int rc;

    if (!ctx || !out)
        return -EINVAL;
    pvabi__stream_retry_revokes(ctx);
    if (read_size == 0 || write_size == 0 || read_size > PVABI_STREAM_SIZE_MAX ||
        write_size > PVABI_STREAM_SIZE_MAX) {
        pvabi__err(ctx, "stream: ring sizes %zu and %zu: each must be 1..%u", read_size, write_size,
                   PVABI_STREAM_SIZE_MAX);
        return -EINVAL;
    }
    s = pvabi__stream_new(ctx, true, client);
    if (!s)
        return -ENOMEM;
    rc = resolve_path(s, path, pvabi_own_domid(ctx), client);
    if (rc == 0) {
        rc = pvabi_evtchn_alloc(ctx, client, &s->port);
        s->has_port = rc == 0;
        if (rc < 0)
            pvabi__err(ctx, "stream %s: allocating a port for domain %u: %s", s->path, client,
                       strerror(-rc));
    }
    if (rc == 0) {
        choose_orders(read_size, write_size, &lo, &ro);
        rc = server_share(s, lo, ro);
    }
    if (rc == 0)
        rc = server_publish(s);
    if (rc < 0) {
        pvabi_stream_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* ---- client ----------------------------------------------------------- */

static void node_changed(pvabi_ctx *ctx, const char *path, void *opaque)
{
    (void)ctx;
    (void)path;
    (void)opaque;
}

/* Reads <path>/ring-ref and <path>/event-channel: 0, -ENOENT (not yet), or
 * an error.  Zero is no valid ref or port (libxenvchan refuses it too). */
static int read_nodes(pvabi_stream *s, uint32_t *ref, uint32_t *port)
{
    char node[STREAM_PATH_MAX + 32];
    int rc;

    snprintf(node, sizeof(node), "%s/ring-ref", s->path);
    rc = pvabi_store_read_u32(s->ctx, PVABI_STORE_TXN_NONE, node, ref);
    if (rc == 0) {
        snprintf(node, sizeof(node), "%s/event-channel", s->path);
        rc = pvabi_store_read_u32(s->ctx, PVABI_STORE_TXN_NONE, node, port);
    }
    if (rc == -EINVAL || rc == -ERANGE || (rc == 0 && (*ref == 0 || *port == 0))) {
        pvabi__err(s->ctx, "stream %s: the server's ring-ref or event-channel is not valid",
                   s->path);
        return -EPROTO;
    }
    return rc;
}

/* Waits up to @timeout_ms for the server's nodes (a watch on the directory
 * wakes us when they are written). */
static int await_nodes(pvabi_stream *s, int timeout_ms, uint32_t *ref, uint32_t *port)
{
    pvabi_watch *w = NULL;
    int64_t deadline = pvabi__now_ms() + timeout_ms;
    int rc = read_nodes(s, ref, port);

    if ((rc != -ENOENT && rc != -EACCES) || timeout_ms == 0)
        goto out;
    rc = pvabi_store_watch(s->ctx, s->path, node_changed, NULL, &w);
    while (rc == 0) {
        int left;
        rc = read_nodes(s, ref, port);
        /* A node not there yet reads as -EACCES when its parent is the
         * server's and not readable by us (Xen's rule): not yet, too. */
        if (rc != -ENOENT && rc != -EACCES)
            break;
        left = pvabi__ms_left(deadline);
        if (left == 0) {
            rc = -ETIMEDOUT;
            break;
        }
        /* Events or not, look again: the loop ends at the deadline. */
        rc = pvabi_store_wait(s->ctx, left);
        if (rc > 0)
            rc = 0;
    }
    pvabi_store_unwatch(w);
out:
    if (rc == -ENOENT || rc == -EACCES || rc == -ETIMEDOUT) {
        pvabi__err(s->ctx, "stream %s: no server nodes we may read within %d ms", s->path,
                   timeout_ms);
        rc = -ETIMEDOUT;
    } else if (rc < 0 && rc != -EPROTO) {
        pvabi__err(s->ctx, "stream %s: reading the server's nodes: %s", s->path, strerror(-rc));
    }
    return rc;
}

/* Checks the orders the server wrote; 0, -EPROTO or -ENOTSUP. */
static int check_orders(pvabi_stream *s, unsigned lo, unsigned ro)
{
    unsigned limit = PVABI_PAGE_SIZE, grants = ring_pages(lo) + ring_pages(ro);

    if (lo < PVABI_STREAM_ORDER_MIN || ro < PVABI_STREAM_ORDER_MIN || lo > 20 || ro > 20 ||
        (lo == ro && lo < PAGE_SHIFT)) {
        pvabi__err(s->ctx, "stream %s: impossible ring orders %u and %u", s->path, lo, ro);
        return -EPROTO;
    }
    /* The grant list must end before the first in-page ring. */
    if (lo == 10 || ro == 10)
        limit = SMALL_OFFSET;
    else if (lo == 11 || ro == 11)
        limit = LARGE_OFFSET;
    if (sizeof(struct pvabi_stream_intf) + grants * sizeof(uint32_t) > limit) {
        pvabi__err(s->ctx, "stream %s: %u grant refs do not fit in the page", s->path, grants);
        return -EPROTO;
    }
    if (lo > PVABI_STREAM_ORDER_MAX || ro > PVABI_STREAM_ORDER_MAX) {
        pvabi__err(s->ctx, "stream %s: ring orders %u and %u: pvabi maps at most order %u", s->path,
                   lo, ro, PVABI_STREAM_ORDER_MAX);
        return -ENOTSUP;
    }
    return 0;
}

/* Maps one ring's pages, their refs copied once out of the shared list. */
static int map_ring(pvabi_stream *s, const uint32_t *shared, unsigned pages, unsigned flags,
                    pvabi_map **out)
{
    pvabi_gref refs[PVABI_GRANT_BATCH_MAX];
    int rc;

    if (pages == 0)
        return 0;
    for (unsigned p = 0; p < pages; p++)
        refs[p] = pvabi_load_relaxed_u32(&shared[p]);
    /* The copies are what we map: no later use may re-read the list. */
    pvabi_compiler_barrier();
    rc = pvabi_grant_map(s->ctx, s->peer, refs, pages, flags, NULL, out);
    if (rc < 0)
        pvabi__err(s->ctx, "stream %s: mapping %u ring pages: %s", s->path, pages, strerror(-rc));
    return rc;
}

static int client_map(pvabi_stream *s, pvabi_gref ref)
{
    struct pvabi_stream_intf *i;
    unsigned lo, ro;
    int rc = pvabi_grant_map(s->ctx, s->peer, &ref, 1, 0, NULL, &s->m_intf);

    if (rc < 0) {
        pvabi__err(s->ctx, "stream %s: mapping ring-ref %u: %s", s->path, ref, strerror(-rc));
        return rc;
    }
    i = s->intf = pvabi_map_addr(s->m_intf);
    /* No unmap-notify yet: if a check or a map below fails, our unmap must
     * leave cli_live "waiting", or the server would take us for a client
     * that connected and left (CLOSED for good).  client_connect() sets it. */
    /* Each order read once; the checks and the mapping use the copies. */
    lo = *(volatile uint16_t *)&i->left_order;
    ro = *(volatile uint16_t *)&i->right_order;
    rc = check_orders(s, lo, ro);
    /* We write left (read-write), read right (read-only: we never store there). */
    if (rc == 0)
        rc = map_ring(s, i->grants, ring_pages(lo), 0, &s->m_left);
    if (rc == 0)
        rc = map_ring(s, i->grants + ring_pages(lo), ring_pages(ro), PVABI_GRANT_RO, &s->m_right);
    if (rc < 0)
        return rc;
    pvabi__stream_bind_bytes(s);
    return open_rings(s, lo, ring_buffer(i, lo, s->m_left ? pvabi_map_addr(s->m_left) : NULL), ro,
                      ring_buffer(i, ro, s->m_right ? pvabi_map_addr(s->m_right) : NULL));
}

/* Marks us live and wakes the server, as libxenvchan's client does. */
static int client_connect(pvabi_stream *s)
{
    uint8_t srv = stream_load_acquire_u8(s->peer_live);
    int rc;

    if (srv != PVABI_STREAM_LIVE_OPEN) {
        pvabi__err(s->ctx, "stream %s: the server %s", s->path,
                   srv == 0 ? "has closed" : "wrote an impossible live byte");
        return srv == 0 ? -ECONNRESET : -EPROTO;
    }
    /* From here on our death must look like a close to the server: the
     * unmap-notify is set only now, just before we connect (see client_map). */
    rc = pvabi_map_notify(s->m_intf, 0, offsetof(struct pvabi_stream_intf, cli_live), s->port);
    if (rc < 0) {
        pvabi__err(s->ctx, "stream %s: setting the unmap-notify on the interface page: %s", s->path,
                   strerror(-rc));
        return rc;
    }
    /* We want to hear of the server's writes. */
    stream_fetch_set_u8(s->peer_notify, PVABI_STREAM_NOTIFY_WRITE);
    /* Release: our setup (and the request above) before cli_live = 1; pairs
     * with the server's acquire load of cli_live. */
    stream_store_release_u8(s->own_live, PVABI_STREAM_LIVE_OPEN);
    s->live = true;
    pvabi_evtchn_notify(s->ctx, s->port);
    return 0;
}

PVABI_EXPORT int pvabi_stream_client_open(pvabi_ctx *ctx, pvabi_domid server, const char *path,
                                          int timeout_ms, pvabi_stream **out)
{
    STREAM_KEEP_ERRNO;
    pvabi_stream *s;
    uint32_t ref = 0, port = 0;
    int rc;

    if (!ctx || !out || timeout_ms < 0)
        return -EINVAL;
    pvabi__stream_retry_revokes(ctx);
    s = pvabi__stream_new(ctx, false, server);
    if (!s)
        return -ENOMEM;
    rc = resolve_path(s, path, server, pvabi_own_domid(ctx));
    if (rc == 0)
        rc = await_nodes(s, timeout_ms, &ref, &port);
    if (rc == 0) {
        rc = pvabi_evtchn_bind(ctx, server, port, &s->port);
        s->has_port = rc == 0;
        if (rc < 0)
            pvabi__err(ctx, "stream %s: binding port %u of domain %u: %s", s->path, port, server,
                       strerror(-rc));
    }
    if (rc == 0)
        rc = client_map(s, ref);
    if (rc == 0)
        rc = client_connect(s);
    if (rc < 0) {
        pvabi_stream_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* ---- deferred revokes --------------------------------------------------- */

/*
 * A server that closes while its client still maps the pages cannot revoke
 * them yet (pvabi_grant_revoke() says -EBUSY; the pages must not be reused
 * under the client).  Such shares are kept here, per context, and revoked
 * as soon as the client has unmapped: every later pvabi_stream_server_open(),
 * pvabi_stream_client_open() and pvabi_stream_close() on the same context
 * retries them first, so across open/close rounds at most the last round's
 * shares wait.  pvabi_close() frees what is left (through the grant layer;
 * pvabi__stream_release() forgets the records first).  On Xen revoke never
 * says -EBUSY (the kernel defers the free), so nothing waits here.
 *
 * The list is process-wide (the context has no slot for it), guarded by a
 * mutex; the count lets the common case (nothing deferred) skip the lock.
 */
struct deferred {
    struct deferred *next;
    pvabi_ctx *ctx;
    pvabi_grant *g[3]; /* left ring, right ring, interface page (last) */
};

static pthread_mutex_t deferred_lock = PTHREAD_MUTEX_INITIALIZER;
static struct deferred *deferred_list;
static atomic_uint deferred_count;

/* Takes @ctx's records off the list (with the lock). */
static struct deferred *deferred_take(pvabi_ctx *ctx)
{
    struct deferred *mine = NULL, **pp = &deferred_list;

    while (*pp) {
        struct deferred *d = *pp;
        if (d->ctx == ctx) {
            *pp = d->next;
            d->next = mine;
            mine = d;
            atomic_fetch_sub(&deferred_count, 1);
        } else {
            pp = &d->next;
        }
    }
    return mine;
}

static void deferred_put(struct deferred *d)
{
    pthread_mutex_lock(&deferred_lock);
    d->next = deferred_list;
    deferred_list = d;
    atomic_fetch_add(&deferred_count, 1);
    pthread_mutex_unlock(&deferred_lock);
}

/* Revokes what it can of @g[], in order; whether all are gone. */
static bool revoke_all(pvabi_grant **g)
{
    for (unsigned k = 0; k < 3; k++) {
        int rc = g[k] ? pvabi_grant_revoke(g[k]) : 0;
        if (rc == -EBUSY)
            return false;
        /* 0 or -ENOTCONN: either way @g[k] is freed. */
        g[k] = NULL;
    }
    return true;
}

void pvabi__stream_retry_revokes(pvabi_ctx *ctx)
{
    struct deferred *mine;

    /* Relaxed is enough: the count only skips the lock; a record another
     * thread is adding right now is merely retried at a later call (the
     * list itself is read under the lock). */
    if (atomic_load_explicit(&deferred_count, memory_order_relaxed) == 0)
        return;
    pthread_mutex_lock(&deferred_lock);
    mine = deferred_take(ctx);
    pthread_mutex_unlock(&deferred_lock);
    /* The revokes (round trips) run without the lock. */
    while (mine) {
        struct deferred *d = mine;
        mine = d->next;
        if (revoke_all(d->g))
            free(d);
        else
            deferred_put(d);
    }
}

void pvabi__stream_release(pvabi_ctx *ctx)
{
    struct deferred *mine;

    pthread_mutex_lock(&deferred_lock);
    mine = deferred_take(ctx);
    pthread_mutex_unlock(&deferred_lock);
    while (mine) {
        struct deferred *d = mine;
        mine = d->next;
        free(d);
    }
}

/* ---- close --------------------------------------------------------------- */

/* Removes <path>/ring-ref and <path>/event-channel, then <path> itself if
 * nothing else is left in it (other programs' nodes there stay). */
static int unpublish_txn(pvabi_ctx *ctx, pvabi_store_txn txn, void *opaque)
{
    const pvabi_stream *s = opaque;
    static const char *const names[] = { "ring-ref", "event-channel" };
    char node[STREAM_PATH_MAX + 32], **left = NULL;
    int rc = 0;

    for (unsigned k = 0; k < 2 && rc == 0; k++) {
        snprintf(node, sizeof(node), "%s/%s", s->path, names[k]);
        rc = pvabi_store_rm(ctx, txn, node);
    }
    if (rc == 0)
        rc = pvabi_store_list(ctx, txn, s->path, &left);
    free(left);
    if (rc == 0)
        rc = pvabi_store_rm(ctx, txn, s->path);
    return rc > 0 || rc == -ENOENT ? 0 : rc;
}

/* Ends the shares; those the client still maps wait in the deferred list
 * with their unmap-notify port cleared, since ours is unbound next and the
 * number may be reused (the byte stays: it is srv_live, already 0). */
static void server_revoke(pvabi_stream *s)
{
    struct deferred *d;
    pvabi_grant *g[3] = { s->g_left, s->g_right, s->g_intf };
    int rc;

    if (revoke_all(g))
        return;
    if (g[2]) {
        rc = pvabi_grant_notify(g[2], 0, offsetof(struct pvabi_stream_intf, srv_live), 0);
        if (rc < 0 && rc != -ENOTSUP)
            pvabi__warn(s->ctx, "stream %s: clearing the page's unmap-notify port: %s", s->path,
                        strerror(-rc));
    }
    d = calloc(1, sizeof(*d));
    if (!d) {
        pvabi__warn(s->ctx,
                    "stream %s: out of memory: the shares the client still maps stay "
                    "with the context until pvabi_close()",
                    s->path);
        return;
    }
    pvabi__debug(s->ctx, "stream %s: the client still maps our pages: revoked later", s->path);
    d->ctx = s->ctx;
    memcpy(d->g, g, sizeof(g));
    deferred_put(d);
}

static void server_teardown(pvabi_stream *s)
{
    if (s->published) {
        int rc = pvabi_store_txn_run(s->ctx, unpublish_txn, s, 16);
        if (rc < 0)
            pvabi__warn(s->ctx, "stream %s: removing the nodes: %s", s->path, strerror(-rc));
    }
    server_revoke(s);
}

static void client_teardown(pvabi_stream *s)
{
    pvabi_grant_unmap(s->m_left);
    pvabi_grant_unmap(s->m_right);
    /* The page last: its unmap runs the unmap-notify (byte and event). */
    pvabi_grant_unmap(s->m_intf);
}

PVABI_EXPORT void pvabi_stream_close(pvabi_stream *s)
{
    STREAM_KEEP_ERRNO;

    if (!s)
        return;
    /* Earlier streams' shares first, so ours are not retried at once. */
    pvabi__stream_retry_revokes(s->ctx);
    /* A client that never connected leaves cli_live "waiting": the server
     * may still get a client. */
    if (s->live) {
        /* Release: every byte we published (prod) is visible to a peer that
         * sees our live byte cleared (its acquire in peer_state). */
        stream_store_release_u8(s->own_live, PVABI_STREAM_LIVE_CLOSED);
        /* Unconditionally, as libxenvchan: a sleeping peer must see it. */
        pvabi_evtchn_notify(s->ctx, s->port);
    }
    if (s->server)
        server_teardown(s);
    else
        client_teardown(s);
    if (s->has_port)
        pvabi_evtchn_unbind(s->ctx, s->port);
    pvabi_flexring_close(s->rd);
    pvabi_flexring_close(s->wr);
    free(s);
}

PVABI_EXPORT pvabi_port pvabi_stream_port(const pvabi_stream *s)
{
    return s ? s->port : 0;
}

PVABI_EXPORT const char *pvabi_stream_path(const pvabi_stream *s)
{
    return s ? s->path : NULL;
}
