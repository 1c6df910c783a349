/* SPDX-License-Identifier: MIT */
/*
 * The I/O shell around the XenbusState machine, shared by both ends: it
 * turns watch events into machine events, carries out the machine's
 * actions through the store, and implements the waits.  What differs
 * between the ends (what to publish, attach, detach) is in front.c and
 * back.c behind struct xb_dev_ops.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xenbus/private.h"

/* Conflicts a handshake transaction rides out before giving up. */
#define XB_TXN_TRIES 16
/* How often a wait looks at the port bound to the peer (its death). */
#define XB_PORT_CHECK_MS 100

/* ---- small helpers ------------------------------------------------------ */

int pvabi__xb_path(pvabi_ctx *ctx, char *buf, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, XB_PATH_MAX, fmt, ap);
    va_end(ap);
    if (n >= 0 && n < XB_PATH_MAX)
        return 0;
    pvabi__err(ctx, "xenbus: a path longer than %d bytes (starting \"%.40s\")", XB_PATH_MAX - 1,
               buf);
    return -ENAMETOOLONG;
}

int pvabi__xb_type_ok(pvabi_ctx *ctx, const char *type)
{
    size_t n = type ? strspn(type, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                   "0123456789-_")
                    : 0;

    if (type && n > 0 && n < XB_TYPE_MAX && type[n] == '\0')
        return 1;
    pvabi__err(ctx, "xenbus: device type \"%.40s\": expected 1..%d letters, digits, '-', '_'",
               type ? type : "(null)", XB_TYPE_MAX - 1);
    return 0;
}

int pvabi__xb_key_ok(pvabi_ctx *ctx, const char *key)
{
    if (key && key[0] && !strchr(key, '/') && strlen(key) < 128)
        return 1;
    pvabi__err(ctx, "xenbus: node name \"%.40s\": expected 1..127 bytes without '/'",
               key ? key : "(null)");
    return 0;
}

int pvabi__xb_read_state(pvabi_ctx *ctx, const char *dir)
{
    char path[XB_PATH_MAX], *v;
    int rc = pvabi__xb_path(ctx, path, "%s/state", dir), state;

    if (rc < 0)
        return rc;
    rc = pvabi__store_read_quiet(ctx, path, &v);
    if (rc == -ENOENT || rc == -EACCES)
        return XB_UNK; /* gone, or no longer ours to read: the same for a peer */
    if (rc < 0)
        return rc;
    state = pvabi__xb_parse_state(v, rc);
    if (state == XB_UNK)
        pvabi__warn(ctx, "xenbus: %s holds \"%.16s\", not a XenbusState: read as Unknown", path, v);
    free(v);
    return state;
}

/* ---- carrying out actions ------------------------------------------------ */

struct publish_args {
    struct xb_dev *d;
    int state;
};

/* The role's nodes and our new state, in one transaction. */
static int publish_txn(pvabi_ctx *ctx, pvabi_store_txn txn, void *opaque)
{
    struct publish_args *a = opaque;
    char path[XB_PATH_MAX];
    int rc = a->d->ops->publish(a->d, txn);

    if (rc == 0)
        rc = pvabi__xb_path(ctx, path, "%s/state", a->d->path);
    if (rc == 0)
        rc = pvabi_store_printf(ctx, txn, path, "%d", a->state);
    return rc;
}

static int switch_state(struct xb_dev *d, int state, int publish)
{
    struct publish_args a = { d, state };
    char path[XB_PATH_MAX];
    int rc;

    if (publish) {
        rc = pvabi_store_txn_run(d->ctx, publish_txn, &a, XB_TXN_TRIES);
    } else {
        rc = pvabi__xb_path(d->ctx, path, "%s/state", d->path);
        if (rc == 0)
            rc = pvabi_store_printf(d->ctx, PVABI_STORE_TXN_NONE, path, "%d", state);
    }
    if (rc < 0)
        pvabi__err(d->ctx, "xenbus: %s: switching to %s: %s", d->path,
                   pvabi_xenbus_state_name(state), strerror(-rc));
    else
        pvabi__debug(d->ctx, "xenbus: %s: %s%s", d->path, pvabi_xenbus_state_name(state),
                     publish ? " (published)" : "");
    return rc;
}

/* A wait in progress learns of events that end it otherwise than by its
 * condition. */
static void note_for_wait(struct xb_dev *d, int event, int err)
{
    int rc = 0;

    if (!d->wait_until || d->wait_rc)
        return;
    if (event == PVABI_XENBUS_EV_ERROR)
        rc = err < 0 ? err : -EIO;
    else if (d->wait_until == PVABI_XENBUS_EV_CLOSED)
        return;
    else if (event == PVABI_XENBUS_EV_PEER_LOST)
        rc = -ENOTCONN;
    else if (event == PVABI_XENBUS_EV_CLOSING || event == PVABI_XENBUS_EV_CLOSED)
        rc = -ECONNRESET;
    d->wait_rc = rc;
}

static int execute(struct xb_dev *d, const struct xb_out *out, int failing)
{
    for (unsigned i = 0; i < out->n; i++) {
        const struct xb_action *a = &out->act[i];
        int rc = 0;

        switch (a->type) {
        case XB_ACT_PUBLISH:
            /* The machine always follows PUBLISH with the SWITCH it goes with. */
            rc = switch_state(d, out->act[i + 1].arg, 1);
            i++;
            break;
        case XB_ACT_SWITCH:
            rc = switch_state(d, a->arg, 0);
            break;
        case XB_ACT_ATTACH: {
            struct xb_event ev = { .type = XB_EV_ATTACHED, .err = d->ops->attach(d, a->arg) };
            /* Keys missing because the frontend died meanwhile are its
             * death, not its error. */
            if (ev.err < 0 && pvabi__xb_read_state(d->ctx, d->peer_path) == XB_UNK) {
                pvabi__warn(d->ctx, "xenbus: %s: the frontend vanished while we attached", d->path);
                ev = (struct xb_event){ .type = XB_EV_PEER_STATE, .peer = XB_UNK };
            }
            rc = pvabi__xb_dev_run(d, &ev);
            break;
        }
        case XB_ACT_DETACH:
            d->ops->detach(d);
            break;
        case XB_ACT_REPORT:
            note_for_wait(d, a->arg, out->err);
            if (d->ops->report)
                d->ops->report(d, a->arg, a->arg == PVABI_XENBUS_EV_ERROR ? out->err : 0);
            break;
        }
        if (rc < 0 && a->type != XB_ACT_ATTACH) {
            /* A store write failed: say so and close, unless this is the
             * closing after a failure already. */
            if (!failing) {
                struct xb_event ev = { .type = XB_EV_FAILED, .err = rc };
                struct xb_out o2;
                pvabi__xb_step(&d->sm, &ev, &o2);
                execute(d, &o2, 1);
            }
            return rc;
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

static const char *const ev_names[8] = {
    "start", "peer", "peer gone", "connect", "close", "timeout", "attached", "failed",
};

int pvabi__xb_dev_run(struct xb_dev *d, const struct xb_event *ev)
{
    int own = d->sm.own, peer = d->sm.peer;
    struct xb_out out;

    pvabi__xb_step(&d->sm, ev, &out);
    pvabi__debug(d->ctx, "xenbus: %s: %s%s%s in %s: %u actions", d->path,
                 ev_names[ev->type < 8 ? ev->type : 0], ev->type == XB_EV_PEER_STATE ? " " : "",
                 ev->type == XB_EV_PEER_STATE ? pvabi_xenbus_state_name(ev->peer) : "",
                 pvabi_xenbus_state_name(own), out.n);
    if (out.rc < 0)
        return out.rc;
    if (out.ignored)
        pvabi__warn(d->ctx,
                    "xenbus: %s: the peer went from %s to %s while we are %s: not a transition "
                    "the protocol allows; ignored",
                    d->path, pvabi_xenbus_state_name(peer), pvabi_xenbus_state_name(ev->peer),
                    pvabi_xenbus_state_name(own));
    return execute(d, &out, ev->type == XB_EV_FAILED);
}

/* ---- watches ------------------------------------------------------------- */

/* The peer died if the port bound to it reads CLOSED: its process (or the
 * hypervisor) closed it.  Checked at each store event of the handle and by
 * the waits, since an unprivileged domain gets no @releaseDomain (Xen 4.17
 * lets only the privileged domain read it by default) and a privileged
 * peer's store entries outlive it. */
static void check_port(struct xb_dev *d)
{
    pvabi_port port = d->ops->port(d);
    struct xb_event ev = { .type = XB_EV_PEER_GONE };

    if (!port || d->sm.lost || pvabi_evtchn_state(d->ctx, port) != PVABI_EVTCHN_CLOSED)
        return;
    pvabi__debug(d->ctx, "xenbus: %s: port %u is closed: domain %u unbound it or died", d->path,
                 port, (unsigned)d->peer_domid);
    pvabi__xb_dev_run(d, &ev);
}

static void feed_peer_state(struct xb_dev *d)
{
    int state = pvabi__xb_read_state(d->ctx, d->peer_path);
    struct xb_event ev = { .type = XB_EV_PEER_STATE, .peer = (uint8_t)state };

    if (state < 0)
        return; /* logged; the store is in trouble */
    /* A frontend that saw its backend die waits for it to re-attach, which
     * the backend signals by rewriting Connected after binding our port:
     * believe it only once the port is connected again. */
    if (d->sm.role == XB_FRONT && d->sm.lost && state == XB_CON && d->ops->port(d) &&
        pvabi_evtchn_state(d->ctx, d->ops->port(d)) == PVABI_EVTCHN_CLOSED)
        return;
    pvabi__xb_dev_run(d, &ev);
}

static void dev_free(struct xb_dev *d);

/* Runs @fn on @d as a wait does: a callback that closes @d (directly, or
 * in a wait it starts) only dooms it, and it is freed here afterwards. */
static void guarded(struct xb_dev *d, void (*fn)(struct xb_dev *))
{
    d->waiting++;
    check_port(d);
    if (!d->doomed)
        fn(d);
    if (--d->waiting == 0 && d->doomed)
        dev_free(d);
}

static void feed_if_back(struct xb_dev *d)
{
    if (d->sm.role == XB_BACK)
        feed_peer_state(d);
}

static void on_peer_state(pvabi_ctx *ctx, const char *path, void *opaque)
{
    (void)ctx;
    (void)path;
    guarded(opaque, feed_peer_state);
}

/* A domain died: ours, if the port bound to it is CLOSED.  Its state node
 * may also have gone (an unprivileged domain's home is removed with it) or
 * been rewritten by a successor: the backend reads it again; the frontend
 * waits for the backend's rewrite instead. */
static void on_release(pvabi_ctx *ctx, const char *path, void *opaque)
{
    (void)ctx;
    (void)path;
    guarded(opaque, feed_if_back);
}

int pvabi__xb_dev_start(struct xb_dev *d)
{
    char path[XB_PATH_MAX];
    struct xb_event ev = { .type = XB_EV_START };
    int rc, own = 0, peer = 0;

    if (d->started)
        return -EALREADY;
    /* Watches first: a change after the reads below is then an event. */
    rc = pvabi__xb_path(d->ctx, path, "%s/state", d->peer_path);
    if (rc == 0)
        rc = pvabi_store_watch(d->ctx, path, on_peer_state, d, &d->w_state);
    if (rc == 0)
        rc = pvabi_store_watch(d->ctx, "@releaseDomain", on_release, d, &d->w_release);
    if (rc == 0 && (own = pvabi__xb_read_state(d->ctx, d->path)) < 0)
        rc = own;
    if (rc == 0 && (peer = pvabi__xb_read_state(d->ctx, d->peer_path)) < 0)
        rc = peer;
    if (rc < 0) {
        pvabi_store_unwatch(d->w_state);
        pvabi_store_unwatch(d->w_release);
        d->w_state = d->w_release = NULL;
        return rc;
    }
    d->started = 1;
    ev.own = (uint8_t)own;
    ev.peer = (uint8_t)peer;
    pvabi__debug(d->ctx, "xenbus: %s: starting as %s, peer %s", d->path,
                 pvabi_xenbus_state_name(own), pvabi_xenbus_state_name(peer));
    /* A failed attach is reported as an event (and returns 0 here); a
     * store write that failed is returned. */
    return pvabi__xb_dev_run(d, &ev);
}

/* ---- waiting -------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int dev_wait(struct xb_dev *d, int until, int timeout_ms);

int pvabi__xb_dev_wait(struct xb_dev *d, int until, int timeout_ms)
{
    int rc;

    if (timeout_ms < 0 || pvabi__xb_reached(&d->sm, until) < 0 || !d->started)
        return -EINVAL;
    d->waiting++;
    rc = dev_wait(d, until, timeout_ms);
    if (--d->waiting == 0 && d->doomed) {
        dev_free(d);
        return -ECANCELED;
    }
    return d->doomed ? -ECANCELED : rc;
}

static int dev_wait(struct xb_dev *d, int until, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    int outer_until = d->wait_until, outer_rc = d->wait_rc, rc;

    d->wait_until = until;
    d->wait_rc = 0;
    for (;;) {
        int64_t left;

        check_port(d);
        if ((rc = pvabi__xb_reached(&d->sm, until)) > 0) {
            rc = 0;
            break;
        }
        if ((rc = d->wait_rc) < 0)
            break;
        left = deadline - now_ms();
        if (left <= 0) {
            rc = -ETIMEDOUT;
            break;
        }
        /* A port closing raises no store event: look at it now and then. */
        if (d->ops->port(d) && !d->sm.lost && left > XB_PORT_CHECK_MS)
            left = XB_PORT_CHECK_MS;
        rc = pvabi_store_wait(d->ctx, (int)left);
        if (d->doomed)
            rc = -ECANCELED; /* closed by a callback: touch nothing more */
        if (rc < 0)
            break;
    }
    d->wait_until = outer_until;
    d->wait_rc = outer_rc;
    if (rc == -ETIMEDOUT && !d->doomed) {
        pvabi__debug(d->ctx, "xenbus: %s: no %d within %d ms (we are %s, the peer %s)", d->path,
                     until, timeout_ms, pvabi_xenbus_state_name(d->sm.own),
                     pvabi_xenbus_state_name(d->sm.peer));
        if (until == PVABI_XENBUS_EV_CLOSED) {
            struct xb_event ev = { .type = XB_EV_TIMEOUT };
            pvabi__warn(d->ctx, "xenbus: %s: the peer did not finish the close handshake: closed",
                        d->path);
            pvabi__xb_dev_run(d, &ev);
        }
    }
    return rc;
}

/* ---- the context's list ---------------------------------------------------- */

void pvabi__xb_dev_link(struct xb_dev *d)
{
    pvabi_ctx *ctx = d->ctx;

    pthread_mutex_lock(&ctx->store_lock);
    d->next = ctx->xb_devs;
    if (d->next)
        d->next->pprev = &d->next;
    d->pprev = &ctx->xb_devs;
    ctx->xb_devs = d;
    pthread_mutex_unlock(&ctx->store_lock);
}

void pvabi__xb_dev_unlink(struct xb_dev *d)
{
    pvabi_ctx *ctx = d->ctx;

    pvabi_store_unwatch(d->w_state);
    pvabi_store_unwatch(d->w_release);
    d->w_state = d->w_release = NULL;
    pthread_mutex_lock(&ctx->store_lock);
    *d->pprev = d->next;
    if (d->next)
        d->next->pprev = d->pprev;
    pthread_mutex_unlock(&ctx->store_lock);
}

static void dev_free(struct xb_dev *d)
{
    if (d->sm.role == XB_FRONT)
        pvabi__xb_front_free(d);
    else
        pvabi__xb_back_free(d);
}

void pvabi__xb_dev_close(struct xb_dev *d)
{
    if (d->waiting)
        d->doomed = 1;
    else
        dev_free(d);
}

void pvabi__xb_devs_release(pvabi_ctx *ctx)
{
    while (ctx->xb_devs)
        dev_free(ctx->xb_devs);
}
