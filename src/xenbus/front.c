/* SPDX-License-Identifier: MIT */
/*
 * The frontend end of a device: finds its backend, publishes the ring the
 * driver shares (ring-ref or ring-page-order + ring-refN, event-channel,
 * protocol) with its state in one transaction, and follows the backend
 * through the handshake.  The ring and the port stay the driver's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xenbus/private.h"

#define PROTOCOL_MAX 64

struct pvabi_xenbus_front {
    struct xb_dev dev; /* first: the shell's view */
    pvabi_xenbus_front_fn *fn;
    void *opaque;
    /* What connect publishes (kept for the duration of the call only). */
    const pvabi_grant *ring;
    unsigned order;
    pvabi_port port; /* the driver's port, once connected: a CLOSED port is a dead backend */
    const char *protocol;
    const char *const *nodes;
};

static pvabi_xenbus_front *front_of(struct xb_dev *d)
{
    return (pvabi_xenbus_front *)d;
}

/* ---- what the shell asks of a frontend ---------------------------------- */

/* Removes ring keys a previous connection left (ring-ref vs ring-refN). */
static int clear_old_keys(struct xb_dev *d, pvabi_store_txn txn)
{
    char **names, path[XB_PATH_MAX];
    int n = pvabi_store_list(d->ctx, txn, d->path, &names), rc = 0;

    if (n < 0)
        return n;
    for (int i = 0; i < n && rc == 0; i++) {
        if (strncmp(names[i], "ring-ref", 8) != 0 && strcmp(names[i], "ring-page-order") != 0)
            continue;
        rc = pvabi__xb_path(d->ctx, path, "%s/%s", d->path, names[i]);
        if (rc == 0)
            rc = pvabi_store_rm(d->ctx, txn, path);
    }
    free(names);
    return rc;
}

static int put(struct xb_dev *d, pvabi_store_txn txn, const char *key, const char *value)
{
    char path[XB_PATH_MAX];
    int rc = pvabi__xb_path(d->ctx, path, "%s/%s", d->path, key);

    return rc < 0 ? rc : pvabi_store_write(d->ctx, txn, path, value);
}

static int put_u32(struct xb_dev *d, pvabi_store_txn txn, const char *key, uint32_t v)
{
    char s[12];

    snprintf(s, sizeof(s), "%u", v);
    return put(d, txn, key, s);
}

static int front_publish(struct xb_dev *d, pvabi_store_txn txn)
{
    pvabi_xenbus_front *f = front_of(d);
    unsigned count = 1u << f->order;
    int rc = clear_old_keys(d, txn);

    if (rc == 0 && f->order == 0)
        rc = put_u32(d, txn, "ring-ref", pvabi_grant_ref(f->ring, 0));
    if (rc == 0 && f->order > 0)
        rc = put_u32(d, txn, "ring-page-order", f->order);
    for (unsigned i = 0; rc == 0 && f->order > 0 && i < count; i++) {
        char key[24];
        snprintf(key, sizeof(key), "ring-ref%u", i);
        rc = put_u32(d, txn, key, pvabi_grant_ref(f->ring, i));
    }
    if (rc == 0)
        rc = put_u32(d, txn, "event-channel", f->port);
    if (rc == 0 && f->protocol[0])
        rc = put(d, txn, "protocol", f->protocol);
    for (const char *const *n = f->nodes; rc == 0 && n && n[0]; n += 2)
        rc = put(d, txn, n[0], n[1]);
    return rc;
}

static int front_attach(struct xb_dev *d, int reattach)
{
    (void)d;
    (void)reattach;
    return -EINVAL; /* the machine never asks a frontend */
}

static void front_detach(struct xb_dev *d)
{
    (void)d;
}

static void front_report(struct xb_dev *d, int event, int err)
{
    pvabi_xenbus_front *f = front_of(d);

    pvabi__debug(d->ctx, "xenbus: %s: event %d%s%s", d->path, event, err ? ": " : "",
                 err ? strerror(-err) : "");
    if (f->fn)
        f->fn(f, event, err, f->opaque);
}

static pvabi_port front_port(struct xb_dev *d)
{
    return d->sm.attached ? front_of(d)->port : 0;
}

static const struct xb_dev_ops front_ops = {
    .publish = front_publish,
    .attach = front_attach,
    .detach = front_detach,
    .report = front_report,
    .port = front_port,
};

/* ---- opening -------------------------------------------------------------- */

/* Reads `backend` and `backend-id` and checks that they agree. */
static int read_backend(pvabi_xenbus_front *f)
{
    struct xb_dev *d = &f->dev;
    char path[XB_PATH_MAX], *be = NULL;
    uint32_t id;
    int rc = pvabi__xb_path(d->ctx, path, "%s/backend", d->path);

    if (rc == 0)
        rc = pvabi_store_read(d->ctx, PVABI_STORE_TXN_NONE, path, &be);
    if (rc == -ENOENT) {
        pvabi__err(d->ctx, "xenbus: no device %s (or no `backend` in it): run the toolstack step",
                   d->path);
        return rc;
    }
    if (rc < 0)
        return rc;
    if ((size_t)rc != strlen(be) || be[0] != '/' || (size_t)rc >= sizeof(d->peer_path))
        rc = -EPROTO;
    else
        memcpy(d->peer_path, be, (size_t)rc + 1);
    if (rc >= 0 && (rc = pvabi__xb_path(d->ctx, path, "%s/backend-id", d->path)) == 0)
        rc = pvabi_store_read_u32(d->ctx, PVABI_STORE_TXN_NONE, path, &id);
    if (rc == 0 && id > 32751)
        rc = -EINVAL;
    if (rc < 0) {
        pvabi__err(d->ctx,
                   "xenbus: %s: `backend` (\"%.64s\") or `backend-id` is missing or "
                   "malformed",
                   d->path, be ? be : "");
        rc = rc == -ENOENT || rc == -EINVAL || rc == -ERANGE ? -EPROTO : rc;
    }
    free(be);
    d->peer_domid = (pvabi_domid)(rc == 0 ? id : 0);
    return rc;
}

PVABI_EXPORT int pvabi_xenbus_front_open(pvabi_ctx *ctx, const char *type, unsigned devid,
                                         pvabi_xenbus_front_fn *fn, void *opaque,
                                         pvabi_xenbus_front **out)
{
    pvabi_xenbus_front *f;
    int rc;

    if (out)
        *out = NULL;
    if (!ctx || !out || !pvabi__xb_type_ok(ctx, type))
        return -EINVAL;
    f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    f->dev.ctx = ctx;
    f->dev.ops = &front_ops;
    f->fn = fn;
    f->opaque = opaque;
    pvabi__xb_init(&f->dev.sm, XB_FRONT);
    rc = pvabi__xb_path(ctx, f->dev.path, "/local/domain/%u/device/%s/%u",
                        (unsigned)pvabi_own_domid(ctx), type, devid);
    if (rc == 0)
        rc = read_backend(f);
    if (rc < 0) {
        free(f);
        return rc;
    }
    pvabi__xb_dev_link(&f->dev);
    *out = f;
    return 0;
}

PVABI_EXPORT int pvabi_xenbus_front_start(pvabi_xenbus_front *f)
{
    return f ? pvabi__xb_dev_start(&f->dev) : -EINVAL;
}

PVABI_EXPORT int pvabi_xenbus_front_feature(pvabi_xenbus_front *f, const char *key, uint32_t dflt,
                                            uint32_t *value)
{
    char path[XB_PATH_MAX];
    int rc;

    if (!f || !value || !pvabi__xb_key_ok(f->dev.ctx, key))
        return -EINVAL;
    rc = pvabi__xb_path(f->dev.ctx, path, "%s/%s", f->dev.peer_path, key);
    if (rc == 0)
        rc = pvabi_store_read_u32(f->dev.ctx, PVABI_STORE_TXN_NONE, path, value);
    if (rc == -ENOENT) {
        *value = dflt;
        return 0;
    }
    return rc == -EINVAL || rc == -ERANGE ? -EPROTO : rc;
}

/* ---- connecting -------------------------------------------------------------- */

/* The ring's page order, if the backend accepts it; logged if not. */
static int ring_order(pvabi_xenbus_front *f, const pvabi_grant *ring, unsigned *order)
{
    unsigned count = pvabi_grant_count(ring), o = 0;
    uint32_t max = 0;
    int rc;

    while ((1u << o) < count && o < 31)
        o++;
    if ((1u << o) != count || o > PVABI_XENBUS_RING_ORDER_MAX) {
        pvabi__err(f->dev.ctx, "xenbus: %s: a ring of %u pages: expected 1, 2, 4, 8 or 16",
                   f->dev.path, count);
        return -EINVAL;
    }
    rc = o ? pvabi_xenbus_front_feature(f, "max-ring-page-order", 0, &max) : 0;
    if (rc < 0)
        return rc;
    if (o > max || (o > 0 && f->dev.sm.peer != XB_IW && f->dev.sm.peer != XB_ID)) {
        pvabi__err(f->dev.ctx,
                   "xenbus: %s: a ring of %u pages needs a backend in InitWait advertising "
                   "max-ring-page-order >= %u (it is %s and says %u)",
                   f->dev.path, count, o, pvabi_xenbus_state_name(f->dev.sm.peer), max);
        return f->dev.sm.peer == XB_IW || f->dev.sm.peer == XB_ID ? -EINVAL : -EAGAIN;
    }
    *order = o;
    return 0;
}

static int nodes_ok(pvabi_ctx *ctx, const char *const *nodes)
{
    for (; nodes && nodes[0]; nodes += 2)
        if (!pvabi__xb_key_ok(ctx, nodes[0]) || !nodes[1])
            return 0;
    return 1;
}

PVABI_EXPORT int pvabi_xenbus_front_connect(pvabi_xenbus_front *f, const pvabi_grant *ring,
                                            pvabi_port port, const char *protocol,
                                            const char *const *nodes)
{
    struct xb_event ev = { .type = XB_EV_CONNECT };
    int rc;

    if (!f || !ring || port == 0 || !nodes_ok(f->dev.ctx, nodes) ||
        (protocol && strlen(protocol) >= PROTOCOL_MAX))
        return -EINVAL;
    if (!f->dev.started)
        return -EAGAIN;
    /* The machine decides first whether connecting is allowed now. */
    rc = pvabi__xb_can_connect(&f->dev.sm);
    if (rc < 0)
        return rc;
    rc = ring_order(f, ring, &f->order);
    if (rc < 0)
        return rc;
    f->ring = ring;
    f->port = port;
    f->protocol = protocol ? protocol : PVABI_XENBUS_PROTOCOL_NATIVE;
    f->nodes = nodes;
    rc = pvabi__xb_dev_run(&f->dev, &ev);
    f->ring = NULL;
    f->nodes = NULL;
    f->protocol = "";
    return rc;
}

PVABI_EXPORT int pvabi_xenbus_front_disconnect(pvabi_xenbus_front *f)
{
    struct xb_event ev = { .type = XB_EV_CLOSE };

    if (!f)
        return -EINVAL;
    if (!f->dev.started)
        return -EAGAIN;
    return pvabi__xb_dev_run(&f->dev, &ev);
}

PVABI_EXPORT int pvabi_xenbus_front_wait(pvabi_xenbus_front *f, int until, int timeout_ms)
{
    return f ? pvabi__xb_dev_wait(&f->dev, until, timeout_ms) : -EINVAL;
}

void pvabi__xb_front_free(struct xb_dev *d)
{
    pvabi__xb_dev_unlink(d);
    free(front_of(d));
}

PVABI_EXPORT void pvabi_xenbus_front_close(pvabi_xenbus_front *f)
{
    if (f)
        pvabi__xb_dev_close(&f->dev);
}

/* ---- getters -------------------------------------------------------------------- */

PVABI_EXPORT pvabi_domid pvabi_xenbus_front_backend_id(const pvabi_xenbus_front *f)
{
    return f->dev.peer_domid;
}

PVABI_EXPORT const char *pvabi_xenbus_front_path(const pvabi_xenbus_front *f)
{
    return f->dev.path;
}

PVABI_EXPORT const char *pvabi_xenbus_front_backend_path(const pvabi_xenbus_front *f)
{
    return f->dev.peer_path;
}

PVABI_EXPORT int pvabi_xenbus_front_state(const pvabi_xenbus_front *f)
{
    return f->dev.sm.own;
}

PVABI_EXPORT int pvabi_xenbus_front_peer_state(const pvabi_xenbus_front *f)
{
    return f->dev.sm.peer;
}
