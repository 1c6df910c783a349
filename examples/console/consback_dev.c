/* SPDX-License-Identifier: MIT */
/*
 * consback_dev.c - console devices: discovery and the xenbus handshake.
 *
 * Why not pvabi_xenbus_back_*: those handles read the frontend's port from
 * `event-channel` (blkif.h and most protocols), while console frontends
 * (Linux's hvc_xen) publish it as `port`, and they never wait for InitWait.
 * The console handshake is small, so it is done here with pvabi_store_*,
 * level-triggered: any watch event marks the daemon dirty, and each device
 * is then brought to the state its frontend's state calls for:
 *
 *   frontend state      backend does
 *   Initialising (1)    (after a failure: forget it) -> InitWait (2)
 *   Initialised (3) or  read ring-ref + port, map, bind -> Connected (4);
 *   Connected (4)       on any error -> Closing (5), until the frontend
 *                       starts over at Initialising
 *   Closing, Closed,    detach (drain, unmap, unbind) -> Closed (6)
 *   gone, other
 *
 * A bound port that reads CLOSED (the frontend's process died) detaches at
 * once as well.  Every value read from the frontend is checked; a bad one
 * closes that console only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consback.h"

static void on_watch(pvabi_ctx *ctx, const char *path, void *opaque)
{
    struct consback *cb = opaque;

    (void)ctx;
    (void)path;
    cb->dirty = 1;
}

int cb_dev_init(struct consback *cb)
{
    snprintf(cb->root, sizeof(cb->root), "/local/domain/%u/backend/%s",
             (unsigned)pvabi_own_domid(cb->ctx), cb->opts.type);
    cb->dirty = 1;
    return pvabi_store_watch(cb->ctx, cb->root, on_watch, cb, &cb->root_watch);
}

static int read_state(struct cb_con *c, const char *dir)
{
    char path[200];
    uint32_t v;

    snprintf(path, sizeof(path), "%s/state", dir);
    if (pvabi_store_read_u32(c->cb->ctx, PVABI_STORE_TXN_NONE, path, &v) < 0 || v > 8)
        return PVABI_XENBUS_STATE_UNKNOWN;
    return (int)v;
}

static void set_state(struct cb_con *c, int state, int force)
{
    char path[128];
    int rc;

    if (!force && read_state(c, c->bpath) == state)
        return;
    snprintf(path, sizeof(path), "%s/state", c->bpath);
    rc = pvabi_store_printf(c->cb->ctx, PVABI_STORE_TXN_NONE, path, "%d", state);
    if (rc < 0)
        cb_log(c, "writing state %s: %s", pvabi_xenbus_state_name(state), strerror(-rc));
    else if (c->cb->opts.verbose)
        cb_log(c, "state %s", pvabi_xenbus_state_name(state));
}

/* Stop using the page and the port; output already consumed stays in the
 * hold buffer and still reaches the sink. */
static void detach(struct cb_con *c)
{
    if (!c->map)
        return;
    cb_io_drain(c);
    pvabi_flexring_close(c->out);
    pvabi_flexring_close(c->in);
    c->out = c->in = NULL;
    pvabi_evtchn_unbind(c->cb->ctx, c->port);
    pvabi_grant_unmap(c->map);
    c->map = NULL;
    c->port = 0;
}

void cb_dev_fail(struct cb_con *c, const char *why)
{
    cb_log(c, "%s: disconnecting this console", why);
    detach(c);
    c->failed = 1;
    set_state(c, PVABI_XENBUS_STATE_CLOSING, 0);
}

static int fe_u32(struct cb_con *c, const char *key, uint32_t *v)
{
    char path[200];
    int rc;

    snprintf(path, sizeof(path), "%s/%s", c->fpath, key);
    rc = pvabi_store_read_u32(c->cb->ctx, PVABI_STORE_TXN_NONE, path, v);
    if (rc < 0)
        cb_log(c, "frontend's %s: %s", key,
               rc == -ENOENT   ? "missing"
               : rc == -EINVAL ? "not a decimal number"
                               : strerror(-rc));
    return rc;
}

static int map_and_bind(struct cb_con *c, uint32_t ref, uint32_t port)
{
    int st = 0, rc = pvabi_grant_map(c->cb->ctx, c->fe, &ref, 1, 0, &st, &c->map);

    if (rc < 0) {
        cb_log(c, "mapping ring-ref %u: %s", ref, strerror(-rc));
        return rc;
    }
    rc = pvabi_evtchn_bind(c->cb->ctx, c->fe, port, &c->port);
    if (rc < 0) {
        cb_log(c, "binding port %u: %s", port, strerror(-rc));
        pvabi_grant_unmap(c->map);
        c->map = NULL;
        c->port = 0;
    }
    return rc;
}

/* The indices are not reset: a console re-attached after a restart of
 * this daemon continues where the page says. */
static int open_rings(struct cb_con *c)
{
    struct pvabi_console_intf *intf = pvabi_map_addr(c->map);
    int rc = pvabi_flexring_open(&c->out, intf->out, sizeof(intf->out), &intf->out_prod,
                                 &intf->out_cons, PVABI_FLEXRING_READER);

    if (rc == 0)
        rc = pvabi_flexring_open(&c->in, intf->in, sizeof(intf->in), &intf->in_prod, &intf->in_cons,
                                 PVABI_FLEXRING_WRITER);
    if (rc < 0)
        cb_log(c, "the page's indices are inconsistent: %s", strerror(-rc));
    return rc;
}

static void attach(struct cb_con *c)
{
    uint32_t ref, port;

    if (fe_u32(c, "ring-ref", &ref) < 0) {
        cb_dev_fail(c, "no usable ring-ref");
        return;
    }
    /* `port` is the console key; `event-channel` is accepted from
     * frontends that follow the generic xenbus convention only. */
    if (fe_u32(c, "port", &port) < 0 && fe_u32(c, "event-channel", &port) < 0) {
        cb_dev_fail(c, "no usable port");
        return;
    }
    if (map_and_bind(c, ref, port) < 0) {
        cb_dev_fail(c, "cannot attach");
        return;
    }
    if (open_rings(c) < 0) {
        cb_dev_fail(c, "broken ring");
        return;
    }
    set_state(c, PVABI_XENBUS_STATE_CONNECTED, 1); /* rewritten even if it says so */
    cb_log(c, "Connected (ring-ref %u, port %u)%s%s", ref, port, c->pty[0] ? ", pty " : "", c->pty);
    /* Linux's hvc_xen lets the guest write as soon as it has published the
     * page, before we are bound: the ring may already be full, and its
     * events went nowhere.  Drain it now instead of waiting for an event
     * that a writer blocked on a full ring will not send; the notify then
     * tells it there is room (and that input may be waiting). */
    if (cb_io_pump(c) == 0)
        pvabi_evtchn_notify(c->cb->ctx, c->port);
}

static int online(struct cb_con *c)
{
    char path[128];
    uint32_t v;

    snprintf(path, sizeof(path), "%s/online", c->bpath);
    return pvabi_store_read_u32(c->cb->ctx, PVABI_STORE_TXN_NONE, path, &v) < 0 || v != 0;
}

static void reconcile(struct cb_con *c)
{
    int fs = read_state(c, c->fpath), on = online(c);
    int wants_ring = fs == PVABI_XENBUS_STATE_INITIALISED || fs == PVABI_XENBUS_STATE_CONNECTED;

    if (c->map) {
        if (on && wants_ring)
            return;
        cb_log(c, "frontend %s: disconnected", pvabi_xenbus_state_name(fs));
        detach(c);
    }
    if (!on)
        set_state(c, PVABI_XENBUS_STATE_CLOSED, 0);
    else if (fs == PVABI_XENBUS_STATE_INITIALISING) {
        c->failed = 0; /* a frontend starting over gets a fresh chance */
        set_state(c, PVABI_XENBUS_STATE_INITWAIT, 0);
    } else if (wants_ring && !c->failed)
        attach(c);
    else if (!wants_ring)
        set_state(c, PVABI_XENBUS_STATE_CLOSED, 0);
}

/* `frontend` and `frontend-id` as the toolstack wrote them; checked. */
static int read_frontend(struct cb_con *c)
{
    char path[128], *v = NULL;
    uint32_t id;
    int len;

    snprintf(path, sizeof(path), "%s/frontend-id", c->bpath);
    if (pvabi_store_read_u32(c->cb->ctx, PVABI_STORE_TXN_NONE, path, &id) < 0 || id != c->fe)
        return -EPROTO;
    snprintf(path, sizeof(path), "%s/frontend", c->bpath);
    len = pvabi_store_read(c->cb->ctx, PVABI_STORE_TXN_NONE, path, &v);
    if (len <= 0 || (size_t)len >= sizeof(c->fpath) || strlen(v) != (size_t)len ||
        strncmp(v, "/local/domain/", 14) != 0) {
        free(v);
        return -EPROTO;
    }
    memcpy(c->fpath, v, (size_t)len + 1);
    free(v);
    return 0;
}

/* On Xen, libxl creates console devices for other servers: devid 0 (the
 * primary console: xenconsoled, whose ring-ref may be a frame number, not a
 * grant) and `type` = "ioemu" ones (QEMU).  Taking them would fight those
 * servers, so only devices without a `type`, or of type "consback", are ours. */
static int ours(struct cb_con *c)
{
    char path[128], *type = NULL;
    int len, mine;

    if (c->devid == 0) {
        cb_log(c, "the primary console: left to xenconsoled");
        return 0;
    }
    snprintf(path, sizeof(path), "%s/type", c->bpath);
    len = pvabi_store_read(c->cb->ctx, PVABI_STORE_TXN_NONE, path, &type);
    mine = len < 0 || strcmp(type, "consback") == 0;
    if (!mine)
        cb_log(c, "type \"%.32s\": left to its own backend", type);
    free(type);
    return mine;
}

static struct cb_con *con_new(struct consback *cb, pvabi_domid fe, unsigned devid)
{
    struct cb_con *c = calloc(1, sizeof(*c));
    char path[200];

    if (!c)
        return NULL;
    c->cb = cb;
    c->fe = fe;
    c->devid = devid;
    c->out_fd = c->in_fd = c->slave_fd = -1;
    snprintf(c->bpath, sizeof(c->bpath), "%s/%u/%u", cb->root, (unsigned)fe, devid);
    if (!ours(c)) {
        c->failed = 2; /* kept so that the scan leaves it alone quietly */
        return c;
    }
    if (read_frontend(c) < 0) {
        cb_log(c, "frontend or frontend-id missing or malformed: not served");
        c->failed = 2; /* never attached; kept so that this is logged once */
        return c;
    }
    snprintf(path, sizeof(path), "%s/state", c->fpath);
    if (pvabi_store_watch(cb->ctx, path, on_watch, cb, &c->fe_watch) < 0 || cb_io_open(c) < 0)
        c->failed = 2;
    return c;
}

static void con_free(struct cb_con *c)
{
    detach(c);
    pvabi_store_unwatch(c->fe_watch);
    cb_io_close(c);
    free(c);
}

static struct cb_con *con_find(struct consback *cb, pvabi_domid fe, unsigned devid)
{
    for (struct cb_con *c = cb->cons; c; c = c->next)
        if (c->fe == fe && c->devid == devid)
            return c;
    return NULL;
}

static int parse_id(const char *s, unsigned long max, unsigned long *v)
{
    char *end;

    if (*s < '0' || *s > '9')
        return -1;
    *v = strtoul(s, &end, 10);
    return *end || *v > max ? -1 : 0;
}

static void scan_fe(struct consback *cb, pvabi_domid fe)
{
    char path[96], **ids = NULL;
    unsigned long devid;
    int n;

    snprintf(path, sizeof(path), "%s/%u", cb->root, (unsigned)fe);
    n = pvabi_store_list(cb->ctx, PVABI_STORE_TXN_NONE, path, &ids);
    for (int i = 0; i < n; i++) {
        if (parse_id(ids[i], 0xffffffffu, &devid) < 0 ||
            (cb->opts.devid >= 0 && devid != (unsigned long)cb->opts.devid))
            continue;
        struct cb_con *c = con_find(cb, fe, (unsigned)devid);
        if (!c && (c = con_new(cb, fe, (unsigned)devid)) != NULL) {
            c->next = cb->cons;
            cb->cons = c;
        }
        if (c)
            c->seen = 1;
    }
    free(ids);
}

static void sweep(struct consback *cb)
{
    for (struct cb_con **pp = &cb->cons; *pp;) {
        struct cb_con *c = *pp;
        if (c->seen) {
            pp = &c->next;
            continue;
        }
        cb_log(c, "device removed");
        *pp = c->next;
        con_free(c);
    }
}

int cb_dev_scan(struct consback *cb)
{
    char **fes = NULL;
    unsigned long fe;
    int n;

    cb->dirty = 0;
    for (struct cb_con *c = cb->cons; c; c = c->next)
        c->seen = 0;
    n = pvabi_store_list(cb->ctx, PVABI_STORE_TXN_NONE, cb->root, &fes);
    if (n < 0 && n != -ENOENT)
        return n;
    for (int i = 0; i < n; i++)
        if (parse_id(fes[i], 32751, &fe) == 0 &&
            (cb->opts.frontend < 0 || fe == (unsigned long)cb->opts.frontend))
            scan_fe(cb, (pvabi_domid)fe);
    free(fes);
    sweep(cb);
    for (struct cb_con *c = cb->cons; c; c = c->next)
        if (c->failed != 2)
            reconcile(c);
    return 0;
}

/* An event on @port: whose it is, and whether its frontend died. */
void cb_dev_event(struct consback *cb, pvabi_port port)
{
    pvabi_evtchn_unmask(cb->ctx, port);
    for (struct cb_con *c = cb->cons; c; c = c->next) {
        if (!c->map || c->port != port)
            continue;
        if (pvabi_evtchn_state(cb->ctx, port) == PVABI_EVTCHN_CLOSED) {
            cb_log(c, "the frontend's port closed (it died): disconnected");
            detach(c);
            set_state(c, PVABI_XENBUS_STATE_CLOSED, 0);
        }
        return;
    }
}

void cb_dev_free_all(struct consback *cb)
{
    while (cb->cons) {
        struct cb_con *c = cb->cons;
        cb->cons = c->next;
        con_free(c);
    }
    pvabi_store_unwatch(cb->root_watch);
}
