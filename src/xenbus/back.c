/* SPDX-License-Identifier: MIT */
/*
 * The backend end of a device: advertises its features with InitWait,
 * reads what the frontend published (checking every value: a frontend may
 * write anything), maps the ring and binds the event channel, and detaches
 * when the frontend closes, dies or restarts.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xenbus/private.h"

#define PROTOCOL_MAX 64
#define FEATURES_MAX 64

struct feature {
    char *key, *value;
};

struct pvabi_xenbus_back {
    struct xb_dev dev; /* first: the shell's view */
    pvabi_xenbus_back_fn *fn;
    void *opaque;
    struct feature features[FEATURES_MAX];
    unsigned nfeatures;
    unsigned max_order; /* from max-ring-page-order */
    /* The attachment. */
    pvabi_map *map;
    unsigned order;
    pvabi_port port;
    int reattached;
    char protocol[PROTOCOL_MAX];
};

static pvabi_xenbus_back *back_of(struct xb_dev *d)
{
    return (pvabi_xenbus_back *)d;
}

/* ---- reading what the frontend published --------------------------------- */

/* Reads frontend node @key as a u32; a missing or malformed one is the
 * frontend's fault (-EPROTO), with a log naming it. */
static int fe_u32(struct xb_dev *d, const char *key, uint32_t *v, int optional)
{
    char path[XB_PATH_MAX];
    int rc = pvabi__xb_path(d->ctx, path, "%s/%s", d->peer_path, key);

    if (rc == 0)
        rc = pvabi_store_read_u32(d->ctx, PVABI_STORE_TXN_NONE, path, v);
    if (rc == -ENOENT && optional)
        return rc;
    if (rc == -ENOENT || rc == -EINVAL || rc == -ERANGE) {
        pvabi__err(d->ctx, "xenbus: %s: the frontend's `%s` is %s", d->path, key,
                   rc == -ENOENT ? "missing" : "not a decimal u32");
        return -EPROTO;
    }
    return rc;
}

static int fe_protocol(pvabi_xenbus_back *b)
{
    struct xb_dev *d = &b->dev;
    char path[XB_PATH_MAX], *v;
    int rc = pvabi__xb_path(d->ctx, path, "%s/protocol", d->peer_path);

    if (rc == 0)
        rc = pvabi_store_read(d->ctx, PVABI_STORE_TXN_NONE, path, &v);
    if (rc == -ENOENT) {
        snprintf(b->protocol, sizeof(b->protocol), "%s", PVABI_XENBUS_PROTOCOL_NATIVE);
        return 0;
    }
    if (rc < 0)
        return rc;
    for (int i = 0; i < rc; i++)
        if (v[i] <= ' ' || v[i] > '~')
            rc = -EPROTO;
    if (rc >= PROTOCOL_MAX || rc == 0)
        rc = -EPROTO;
    if (rc < 0)
        pvabi__err(d->ctx, "xenbus: %s: the frontend's `protocol` is not a short printable word",
                   d->path);
    else
        memcpy(b->protocol, v, (size_t)rc + 1);
    free(v);
    return rc < 0 ? rc : 0;
}

/* ring-page-order and the refs, checked. */
static int fe_ring(pvabi_xenbus_back *b, pvabi_gref *refs, unsigned *order)
{
    struct xb_dev *d = &b->dev;
    uint32_t o = 0;
    int rc = fe_u32(d, "ring-page-order", &o, 1);

    if (rc == -ENOENT) { /* one page: `ring-ref` */
        rc = fe_u32(d, "ring-ref", &refs[0], 0);
        *order = 0;
        return rc;
    }
    if (rc < 0)
        return rc;
    if (o > b->max_order) {
        pvabi__err(d->ctx, "xenbus: %s: the frontend asks for ring-page-order %u; we allow %u",
                   d->path, o, b->max_order);
        return -EINVAL;
    }
    for (unsigned i = 0; i < (1u << o); i++) {
        char key[24];
        snprintf(key, sizeof(key), "ring-ref%u", i);
        if ((rc = fe_u32(d, key, &refs[i], 0)) < 0)
            return rc;
    }
    *order = o;
    return 0;
}

/* Maps the ring (all or nothing) and binds the frontend's port. */
static int map_and_bind(pvabi_xenbus_back *b, const pvabi_gref *refs, unsigned order,
                        uint32_t remote_port)
{
    struct xb_dev *d = &b->dev;
    int status[1u << PVABI_XENBUS_RING_ORDER_MAX] = { 0 }; /* unset if the map fails early */
    pvabi_map *map;
    pvabi_port port;
    int rc = pvabi_grant_map(d->ctx, d->peer_domid, refs, 1u << order, 0, status, &map);

    if (rc < 0) {
        unsigned i = 0;
        while (i + 1 < (1u << order) && status[i] == 0)
            i++;
        pvabi__err(d->ctx, "xenbus: %s: mapping the frontend's ring (ref %u of %u pages): %s",
                   d->path, refs[i], 1u << order, strerror(-rc));
        return rc;
    }
    rc = pvabi_evtchn_bind(d->ctx, d->peer_domid, remote_port, &port);
    if (rc < 0) {
        pvabi__err(d->ctx, "xenbus: %s: binding the frontend's event-channel %u: %s", d->path,
                   remote_port, strerror(-rc));
        pvabi_grant_unmap(map);
        return rc;
    }
    b->map = map;
    b->order = order;
    b->port = port;
    return 0;
}

/* ---- what the shell asks of a backend -------------------------------------- */

static int back_attach(struct xb_dev *d, int reattach)
{
    pvabi_xenbus_back *b = back_of(d);
    pvabi_gref refs[1u << PVABI_XENBUS_RING_ORDER_MAX];
    unsigned order = 0;
    uint32_t port = 0;
    int rc = fe_ring(b, refs, &order);

    if (rc == 0)
        rc = fe_u32(d, "event-channel", &port, 0);
    if (rc == 0 && port == 0) {
        pvabi__err(d->ctx, "xenbus: %s: the frontend's event-channel is 0", d->path);
        rc = -EINVAL;
    }
    if (rc == 0)
        rc = fe_protocol(b);
    if (rc == 0)
        rc = map_and_bind(b, refs, order, port);
    if (rc < 0) {
        b->protocol[0] = '\0'; /* "" while not attached */
        return rc;
    }
    b->reattached = reattach;
    pvabi__debug(d->ctx, "xenbus: %s: %sattached: %u-page ring, port %u (frontend's %u), %s",
                 d->path, reattach ? "re-" : "", 1u << order, b->port, port, b->protocol);
    return 0;
}

static void back_detach(struct xb_dev *d)
{
    pvabi_xenbus_back *b = back_of(d);

    /* Unmap first: once the frontend sees the port close, the unmap has been
     * sent, and the hypervisor handles it before refusing a revoke. */
    if (b->map)
        pvabi_grant_unmap(b->map);
    if (b->port)
        pvabi_evtchn_unbind(d->ctx, b->port);
    b->map = NULL;
    b->port = 0;
    b->order = 0;
    b->reattached = 0;
    b->protocol[0] = '\0';
    pvabi__debug(d->ctx, "xenbus: %s: detached", d->path);
}

static int back_publish(struct xb_dev *d, pvabi_store_txn txn)
{
    pvabi_xenbus_back *b = back_of(d);
    char path[XB_PATH_MAX];
    int rc = 0;

    for (unsigned i = 0; rc == 0 && i < b->nfeatures; i++) {
        rc = pvabi__xb_path(d->ctx, path, "%s/%s", d->path, b->features[i].key);
        if (rc == 0)
            rc = pvabi_store_write(d->ctx, txn, path, b->features[i].value);
    }
    return rc;
}

static void back_report(struct xb_dev *d, int event, int err)
{
    pvabi_xenbus_back *b = back_of(d);

    pvabi__debug(d->ctx, "xenbus: %s: event %d%s%s", d->path, event, err ? ": " : "",
                 err ? strerror(-err) : "");
    if (b->fn)
        b->fn(b, event, err, b->opaque);
}

static pvabi_port back_port(struct xb_dev *d)
{
    return back_of(d)->port;
}

static const struct xb_dev_ops back_ops = {
    .publish = back_publish,
    .attach = back_attach,
    .detach = back_detach,
    .report = back_report,
    .port = back_port,
};

/* ---- opening -------------------------------------------------------------- */

/* Reads `frontend` and `frontend-id`; the id must be the one asked for. */
static int read_frontend(pvabi_xenbus_back *b, pvabi_domid frontend)
{
    struct xb_dev *d = &b->dev;
    char path[XB_PATH_MAX], *fe = NULL;
    uint32_t id = 0;
    int rc = pvabi__xb_path(d->ctx, path, "%s/frontend", d->path);

    if (rc == 0)
        rc = pvabi_store_read(d->ctx, PVABI_STORE_TXN_NONE, path, &fe);
    if (rc == -ENOENT) {
        pvabi__err(d->ctx, "xenbus: no device %s (or no `frontend` in it): run the toolstack step",
                   d->path);
        return rc;
    }
    if (rc < 0)
        return rc;
    if ((size_t)rc != strlen(fe) || fe[0] != '/' || (size_t)rc >= sizeof(d->peer_path))
        rc = -EPROTO;
    else
        memcpy(d->peer_path, fe, (size_t)rc + 1);
    if (rc >= 0 && (rc = pvabi__xb_path(d->ctx, path, "%s/frontend-id", d->path)) == 0)
        rc = pvabi_store_read_u32(d->ctx, PVABI_STORE_TXN_NONE, path, &id);
    if (rc == 0 && id != frontend)
        rc = -EINVAL;
    if (rc < 0) {
        pvabi__err(d->ctx,
                   "xenbus: %s: `frontend` (\"%.64s\") or `frontend-id` (%u) is missing, "
                   "malformed or not domain %u",
                   d->path, fe ? fe : "", id, (unsigned)frontend);
        rc = rc == -ENOENT || rc == -EINVAL || rc == -ERANGE ? -EPROTO : rc;
    }
    free(fe);
    d->peer_domid = frontend;
    return rc;
}

PVABI_EXPORT int pvabi_xenbus_back_open(pvabi_ctx *ctx, const char *type, pvabi_domid frontend,
                                        unsigned devid, pvabi_xenbus_back_fn *fn, void *opaque,
                                        pvabi_xenbus_back **out)
{
    pvabi_xenbus_back *b;
    int rc;

    if (out)
        *out = NULL;
    if (!ctx || !out || !pvabi__xb_type_ok(ctx, type))
        return -EINVAL;
    b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    b->dev.ctx = ctx;
    b->dev.ops = &back_ops;
    b->fn = fn;
    b->opaque = opaque;
    pvabi__xb_init(&b->dev.sm, XB_BACK);
    rc = pvabi__xb_path(ctx, b->dev.path, "/local/domain/%u/backend/%s/%u/%u",
                        (unsigned)pvabi_own_domid(ctx), type, (unsigned)frontend, devid);
    if (rc == 0)
        rc = read_frontend(b, frontend);
    if (rc < 0) {
        free(b);
        return rc;
    }
    pvabi__xb_dev_link(&b->dev);
    *out = b;
    return 0;
}

PVABI_EXPORT int pvabi_xenbus_back_set_feature(pvabi_xenbus_back *b, const char *key,
                                               const char *value)
{
    struct feature *f = NULL;
    uint32_t order = 0;
    char *k, *v;

    if (!b || !value || !pvabi__xb_key_ok(b->dev.ctx, key))
        return -EINVAL;
    if (strcmp(key, "max-ring-page-order") == 0 &&
        (pvabi__xb_parse_u32(value, &order) < 0 || order > PVABI_XENBUS_RING_ORDER_MAX)) {
        pvabi__err(b->dev.ctx, "xenbus: max-ring-page-order \"%.16s\": expected 0..%u", value,
                   PVABI_XENBUS_RING_ORDER_MAX);
        return -EINVAL;
    }
    for (unsigned i = 0; i < b->nfeatures && !f; i++)
        if (strcmp(b->features[i].key, key) == 0)
            f = &b->features[i];
    if (!f && b->nfeatures == FEATURES_MAX)
        return -ENOMEM;
    k = strdup(key);
    v = strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return -ENOMEM;
    }
    if (!f)
        f = &b->features[b->nfeatures++];
    free(f->key);
    free(f->value);
    f->key = k;
    f->value = v;
    if (strcmp(key, "max-ring-page-order") == 0)
        b->max_order = order;
    return 0;
}

PVABI_EXPORT int pvabi_xenbus_back_start(pvabi_xenbus_back *b)
{
    return b ? pvabi__xb_dev_start(&b->dev) : -EINVAL;
}

PVABI_EXPORT int pvabi_xenbus_back_disconnect(pvabi_xenbus_back *b)
{
    struct xb_event ev = { .type = XB_EV_CLOSE };

    if (!b)
        return -EINVAL;
    if (!b->dev.started)
        return -EAGAIN;
    return pvabi__xb_dev_run(&b->dev, &ev);
}

PVABI_EXPORT int pvabi_xenbus_back_wait(pvabi_xenbus_back *b, int until, int timeout_ms)
{
    return b ? pvabi__xb_dev_wait(&b->dev, until, timeout_ms) : -EINVAL;
}

void pvabi__xb_back_free(struct xb_dev *d)
{
    pvabi_xenbus_back *b = back_of(d);

    pvabi__xb_dev_unlink(d);
    back_detach(d);
    for (unsigned i = 0; i < b->nfeatures; i++) {
        free(b->features[i].key);
        free(b->features[i].value);
    }
    free(b);
}

PVABI_EXPORT void pvabi_xenbus_back_close(pvabi_xenbus_back *b)
{
    if (b)
        pvabi__xb_dev_close(&b->dev);
}

/* ---- getters ---------------------------------------------------------------- */

PVABI_EXPORT void *pvabi_xenbus_back_ring(const pvabi_xenbus_back *b)
{
    return b->map ? pvabi_map_addr(b->map) : NULL;
}

PVABI_EXPORT unsigned pvabi_xenbus_back_ring_order(const pvabi_xenbus_back *b)
{
    return b->order;
}

PVABI_EXPORT pvabi_port pvabi_xenbus_back_port(const pvabi_xenbus_back *b)
{
    return b->port;
}

PVABI_EXPORT const char *pvabi_xenbus_back_protocol(const pvabi_xenbus_back *b)
{
    return b->protocol;
}

PVABI_EXPORT int pvabi_xenbus_back_reattached(const pvabi_xenbus_back *b)
{
    return b->reattached;
}

PVABI_EXPORT pvabi_domid pvabi_xenbus_back_frontend_id(const pvabi_xenbus_back *b)
{
    return b->dev.peer_domid;
}

PVABI_EXPORT const char *pvabi_xenbus_back_path(const pvabi_xenbus_back *b)
{
    return b->dev.path;
}

PVABI_EXPORT const char *pvabi_xenbus_back_frontend_path(const pvabi_xenbus_back *b)
{
    return b->dev.peer_path;
}

PVABI_EXPORT int pvabi_xenbus_back_state(const pvabi_xenbus_back *b)
{
    return b->dev.sm.own;
}

PVABI_EXPORT int pvabi_xenbus_back_peer_state(const pvabi_xenbus_back *b)
{
    return b->dev.sm.peer;
}
