/* SPDX-License-Identifier: MIT */
/*
 * consfront.c - the console frontend library (see consfront.h).
 *
 * The handshake is pvabi_xenbus_front_*; the only console-specific part is
 * the extra `port` node, the key Linux's hvc_xen writes and console
 * backends (QEMU's, ours) read.  Data moves through two pvabi flex rings
 * laid over the page: we write `out` and read `in`.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "consfront.h"

struct consfront {
    pvabi_ctx *ctx;
    pvabi_xenbus_front *xf;
    pvabi_grant *page;
    pvabi_port port;
    pvabi_flexring *out; /* we write: the guest's output */
    pvabi_flexring *in;  /* we read: input to the guest */
    int err;             /* sticky: 0 while usable */
};

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining(long long deadline)
{
    long long left = deadline - now_ms();

    return left < 0 ? 0 : (int)left;
}

/* The handshake's verdicts: a backend that closes ends the console; one
 * that died (PEER_LOST) does not, as a successor may re-attach. */
static void on_event(pvabi_xenbus_front *xf, int event, int err, void *opaque)
{
    consfront *cf = opaque;

    (void)xf;
    if ((event == PVABI_XENBUS_EV_CLOSING || event == PVABI_XENBUS_EV_CLOSED) && !cf->err)
        cf->err = -ESHUTDOWN;
    if (event == PVABI_XENBUS_EV_ERROR && !cf->err)
        cf->err = err;
}

/* Collect our port's events (re-arming it) and the store's watch events;
 * returns how many there were. */
static int process(consfront *cf)
{
    pvabi_port ports[8];
    int n, rc = pvabi_store_process(cf->ctx), seen = rc;

    if (rc < 0)
        return rc;
    while ((n = pvabi_evtchn_pending(cf->ctx, ports, 8)) > 0) {
        seen += n;
        for (int i = 0; i < n; i++)
            pvabi_evtchn_unmask(cf->ctx, ports[i]);
    }
    return n < 0 ? n : seen;
}

int consfront_wait(consfront *cf, int timeout_ms)
{
    struct pollfd p = { .fd = pvabi_fd(cf->ctx), .events = POLLIN };
    int rc = poll(&p, 1, timeout_ms);

    if (rc < 0)
        return errno == EINTR ? -EINTR : -errno;
    /* An event collected here after poll() said nothing is an event too:
     * reporting a timeout would lose it (the caller would not look at the
     * ring again, and the port would not wake its next poll). */
    int prc = process(cf);
    if (prc < 0)
        return prc;
    if (cf->err)
        return cf->err;
    return rc == 0 && prc == 0 ? -ETIMEDOUT : 0;
}

static int share_page(consfront *cf)
{
    pvabi_domid be = pvabi_xenbus_front_backend_id(cf->xf);
    struct pvabi_console_intf *intf;
    int rc = pvabi_grant_share(cf->ctx, be, 1, 0, &cf->page);

    if (rc < 0)
        return rc;
    intf = pvabi_grant_addr(cf->page); /* zeroed: all four indices 0 */
    rc = pvabi_flexring_open(&cf->out, intf->out, sizeof(intf->out), &intf->out_prod,
                             &intf->out_cons, PVABI_FLEXRING_WRITER);
    if (rc == 0)
        rc = pvabi_flexring_open(&cf->in, intf->in, sizeof(intf->in), &intf->in_prod,
                                 &intf->in_cons, PVABI_FLEXRING_READER);
    if (rc == 0)
        rc = pvabi_evtchn_alloc(cf->ctx, be, &cf->port);
    return rc;
}

/* hvc_xen publishes without waiting for InitWait; so do we, and fall back
 * to waiting only for a backend that is not ready for a 1-page ring. */
static int publish(consfront *cf, long long deadline)
{
    char port[16];
    const char *nodes[] = { "port", port, NULL };
    int rc;

    snprintf(port, sizeof(port), "%u", (unsigned)cf->port);
    rc = pvabi_xenbus_front_connect(cf->xf, cf->page, cf->port, "", nodes);
    if (rc == -EAGAIN) {
        rc = pvabi_xenbus_front_wait(cf->xf, PVABI_XENBUS_EV_PEER_READY, remaining(deadline));
        if (rc == 0)
            rc = pvabi_xenbus_front_connect(cf->xf, cf->page, cf->port, "", nodes);
    }
    return rc;
}

/* Returns the revoke's error: -EBUSY when the backend still maps the page
 * (it then stays shared until pvabi_close()). */
static int release(consfront *cf)
{
    int rc = 0;

    pvabi_flexring_close(cf->out);
    pvabi_flexring_close(cf->in);
    if (cf->page)
        rc = pvabi_grant_revoke(cf->page);
    if (cf->port)
        pvabi_evtchn_unbind(cf->ctx, cf->port);
    pvabi_xenbus_front_close(cf->xf);
    free(cf);
    return rc;
}

int consfront_open(pvabi_ctx *ctx, const char *type, unsigned devid, int timeout_ms,
                   consfront **out)
{
    long long deadline = now_ms() + timeout_ms;
    consfront *cf;
    int rc;

    if (!ctx || !out || devid == 0 || timeout_ms < 0)
        return -EINVAL;
    cf = calloc(1, sizeof(*cf));
    if (!cf)
        return -ENOMEM;
    cf->ctx = ctx;
    rc = pvabi_xenbus_front_open(ctx, type ? type : "console", devid, on_event, cf, &cf->xf);
    if (rc == 0)
        rc = pvabi_xenbus_front_start(cf->xf);
    if (rc == 0)
        rc = share_page(cf);
    if (rc == 0)
        rc = publish(cf, deadline);
    if (rc == 0)
        rc = pvabi_xenbus_front_wait(cf->xf, PVABI_XENBUS_EV_CONNECTED, remaining(deadline));
    if (rc < 0) {
        if (cf->xf && pvabi_xenbus_front_state(cf->xf) >= PVABI_XENBUS_STATE_INITIALISED) {
            pvabi_xenbus_front_disconnect(cf->xf);
            pvabi_xenbus_front_wait(cf->xf, PVABI_XENBUS_EV_CLOSED, 1000);
        }
        release(cf);
        return rc;
    }
    /* The backend may have missed output written before it attached. */
    consfront_notify(cf);
    *out = cf;
    return 0;
}

int consfront_notify(consfront *cf)
{
    int rc = pvabi_evtchn_notify(cf->ctx, cf->port);

    /* A backend that died cannot be told; its successor looks at the
     * indices when it re-attaches. */
    return rc == -ENOTCONN ? 0 : rc;
}

ssize_t consfront_write(consfront *cf, const void *buf, size_t len, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    size_t done = 0;
    int rc = 0;

    if (!cf || (!buf && len) || timeout_ms < 0)
        return -EINVAL;
    while (done < len) {
        ssize_t n =
            cf->err ? cf->err : pvabi_flexring_write(cf->out, (const char *)buf + done, len - done);
        if (n < 0) {
            rc = cf->err = (int)n;
            break;
        }
        if (n > 0) {
            done += (size_t)n;
            consfront_notify(cf); /* the flex ring published prod (release) */
            continue;
        }
        /* Full: the backend's event says it consumed something. */
        rc = consfront_wait(cf, remaining(deadline));
        if (rc == -ETIMEDOUT && remaining(deadline) == 0)
            break;
        if (rc < 0 && rc != -ETIMEDOUT && rc != -EINTR)
            break;
    }
    return done || len == 0 ? (ssize_t)done : rc;
}

ssize_t consfront_read(consfront *cf, void *buf, size_t len, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;

    if (!cf || !buf || len == 0 || timeout_ms < 0)
        return -EINVAL;
    for (;;) {
        ssize_t n = pvabi_flexring_read(cf->in, buf, len);
        if (n > 0) {
            consfront_notify(cf); /* room in `in`: the backend may write more */
            return n;
        }
        if (n < 0)
            return cf->err = (int)n;
        if (cf->err)
            return cf->err;
        int rc = consfront_wait(cf, remaining(deadline));
        if (rc == -ETIMEDOUT && remaining(deadline) == 0)
            return rc;
        if (rc < 0 && rc != -ETIMEDOUT && rc != -EINTR)
            return rc;
    }
}

int consfront_error(const consfront *cf)
{
    return cf->err;
}

struct pvabi_console_intf *consfront_intf(consfront *cf)
{
    return pvabi_grant_addr(cf->page);
}

int consfront_close(consfront *cf, int timeout_ms)
{
    int rc;

    if (!cf)
        return 0;
    rc = pvabi_xenbus_front_disconnect(cf->xf);
    if (rc == 0)
        rc = pvabi_xenbus_front_wait(cf->xf, PVABI_XENBUS_EV_CLOSED, timeout_ms);
    int rrc = release(cf);
    return rc < 0 ? rc : rrc;
}
