/* SPDX-License-Identifier: MIT */
/*
 * Event channels on the local platform.  Each port has an eventfd we read
 * (in the context's epoll set, edge-triggered) and, once connected, the
 * remote's eventfd we write to notify it: a notify is one write(), never a
 * round trip through the daemon.  Masking is ours to do, as Xen's delivery
 * model asks: a reported port stays masked until unmasked, and an event that
 * arrives meanwhile is remembered and raised again on unmask.
 *
 * Events found but not yet collected wait in a queue; while it is not empty
 * the wake eventfd keeps the context fd readable, so nothing is lost when
 * the caller collects fewer events than there are, or when a notice arrives
 * while a request waits for its reply.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "platform/local/local.h"

static struct lc_port *port_at(struct lc *lc, pvabi_port port)
{
    return port > 0 && port < HV_PORTS_MAX ? &lc->ports[port] : NULL;
}

/* Relaxed loads of state are for the lock holder, the only writer. */
static int state_of(struct lc_port *p)
{
    return atomic_load_explicit(&p->state, memory_order_relaxed);
}

/* The port's slot if it is allocated or bound (maybe CLOSED), else NULL. */
static struct lc_port *live(struct lc *lc, pvabi_port port)
{
    struct lc_port *p = port_at(lc, port);
    return p && state_of(p) != LC_PORT_FREE ? p : NULL;
}

/* ---- the queue of events not yet collected ------------------------------ */

/* Keeps the wake eventfd readable exactly while the queue holds events
 * (outside the calls that defer it, see queue_push). */
static void wake_update(pvabi_ctx *ctx, struct lc *lc)
{
    uint64_t v = 1;

    if (lc->queue.len > 0 && !lc->wake_armed) {
        if (write(lc->wake_fd, &v, sizeof(v)) == sizeof(v))
            lc->wake_armed = 1;
        else
            pvabi__err(ctx, "local platform: writing the wake eventfd: %s", strerror(errno));
    } else if (lc->queue.len == 0 && lc->wake_armed) {
        if (read(lc->wake_fd, &v, sizeof(v)) == sizeof(v))
            lc->wake_armed = 0;
        else
            pvabi__err(ctx, "local platform: reading the wake eventfd: %s", strerror(errno));
    }
}

static void queue_push(pvabi_ctx *ctx, struct lc *lc, pvabi_port port, int spurious, int closed)
{
    struct lc_queue *q = &lc->queue;

    if (q->len == LC_QUEUE_CAP) {
        /* cannot happen: see LC_QUEUE_CAP */
        pvabi__err(ctx, "local platform: event queue full: event of port %u lost", port);
        return;
    }
    if (spurious && q->len >= LC_QUEUE_CAP - HV_PORTS_MAX) {
        /* Keeps the room that real events may need (see LC_QUEUE_CAP); a
         * spurious one carries nothing but a count. */
        pvabi__debug(ctx, "port %u: spurious wake-up not counted: %u events queued", port, q->len);
        return;
    }
    q->ev[(q->head + q->len) % LC_QUEUE_CAP] =
        (struct pvabi__event){ .port = port, .spurious = !!spurious, .closed = !!closed };
    q->len++;
    /* pending() defers the wake fd to its end: an event it queues and
     * collects itself must not cost a write() and a read() of it. */
    if (!lc->wake_deferred)
        wake_update(ctx, lc);
}

static unsigned queue_pop(struct lc *lc, struct pvabi__event *ev, unsigned max)
{
    struct lc_queue *q = &lc->queue;
    unsigned n = 0;

    for (; n < max && q->len > 0; n++, q->len--) {
        ev[n] = q->ev[q->head];
        q->head = (q->head + 1) % LC_QUEUE_CAP;
    }
    return n;
}

/* Drops the queued events of @port: it is being unbound, and its number may
 * come back for a new port that must not inherit them. */
static void queue_forget(struct lc *lc, pvabi_port port)
{
    struct lc_queue *q = &lc->queue;
    unsigned kept = 0;

    for (unsigned i = 0; i < q->len; i++) {
        struct pvabi__event e = q->ev[(q->head + i) % LC_QUEUE_CAP];
        if (e.port != port)
            q->ev[(q->head + kept++) % LC_QUEUE_CAP] = e;
    }
    q->len = kept;
}

/* ---- ports ---------------------------------------------------------------- */

/* The daemon's eventfds must never block us: a read of an empty one is how
 * a spurious wake-up shows.  O_NONBLOCK is shared by every holder of the
 * eventfd, which is what they want too. */
static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    if (fl < 0)
        return -errno;
    if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

static int close_at_daemon(pvabi_ctx *ctx, struct lc *lc, pvabi_port port)
{
    struct hv_evtchn_close_req req = { .port = port };
    struct lc_msg *m;
    int rc = pvabi__lc_call(ctx, lc, HV_OP_EVTCHN_CLOSE, &req, sizeof(req), NULL, 0, &m);

    if (rc == 0 && !pvabi__lc_reply_ok(ctx, lc, m, 0, 0))
        rc = -EPROTO;
    return rc;
}

/* Fills a free slot with a port the daemon just gave us and its eventfds
 * (@peer_fd -1 while unbound).  On failure closes the fds, and the port at
 * the daemon too. */
static int port_adopt(pvabi_ctx *ctx, struct lc *lc, uint32_t port, int recv_fd, int peer_fd,
                      pvabi_port *out)
{
    struct lc_port *p = port_at(lc, port);
    struct epoll_event e = { .events = EPOLLIN | EPOLLET, .data.u32 = port };
    int rc = 0;

    if (!p || state_of(p) != LC_PORT_FREE) {
        pvabi__lc_lost(ctx, lc, -EPROTO,
                       p ? "pvabi-hv gave a port that is in use"
                         : "pvabi-hv gave a port out of range");
        rc = -EPROTO;
    } else if ((rc = set_nonblock(recv_fd)) < 0 || (peer_fd >= 0 && (rc = set_nonblock(peer_fd)))) {
        pvabi__err(ctx, "port %u: making its eventfds non-blocking: %s", port, strerror(-rc));
    } else if (epoll_ctl(lc->epfd, EPOLL_CTL_ADD, recv_fd, &e) < 0) {
        rc = -errno;
        pvabi__err(ctx, "port %u: adding its eventfd to the epoll set: %s", port, strerror(errno));
    }
    if (rc < 0) {
        close(recv_fd);
        if (peer_fd >= 0)
            close(peer_fd);
        if (rc != -EPROTO)
            close_at_daemon(ctx, lc, port);
        return rc;
    }
    p->recv_fd = recv_fd;
    p->masked = p->pending_while_masked = p->closed_pending = 0;
    atomic_store_explicit(&p->peer_fd, peer_fd, memory_order_relaxed);
    /* Release: peer_fd is stored before the state that lets notify use it
     * (pairs with the acquire in notify_fast). */
    atomic_store_explicit(&p->state, peer_fd >= 0 ? PVABI_EVTCHN_INTERDOMAIN : PVABI_EVTCHN_UNBOUND,
                          memory_order_release);
    *out = port;
    return 0;
}

/* Empties a slot: the port was unbound. */
static void port_release(pvabi_ctx *ctx, struct lc *lc, struct lc_port *p, pvabi_port port)
{
    int peer = atomic_load_explicit(&p->peer_fd, memory_order_relaxed);

    epoll_ctl(lc->epfd, EPOLL_CTL_DEL, p->recv_fd, NULL);
    close(p->recv_fd);
    /* No notify of this port runs now (the API forbids notify concurrent with
     * unbind of the same port), so its peer fd can go. */
    if (peer >= 0)
        close(peer);
    atomic_store_explicit(&p->peer_fd, -1, memory_order_relaxed);
    atomic_store_explicit(&p->state, LC_PORT_FREE, memory_order_relaxed);
    queue_forget(lc, port);
    wake_update(ctx, lc);
}

int pvabi__lc_evtchn_alloc(pvabi_ctx *ctx, void *plat, pvabi_domid remote, pvabi_port *port)
{
    struct lc *lc = plat;
    struct hv_evtchn_alloc_req req = { .remote_domid = remote };
    struct hv_evtchn_alloc_rsp rsp;
    struct lc_msg *m;
    int rc = pvabi__lc_call(ctx, lc, HV_OP_EVTCHN_ALLOC, &req, sizeof(req), NULL, 0, &m);

    if (rc < 0) {
        pvabi__err(ctx, "event channel alloc for domain %u: %s", remote, strerror(-rc));
        return rc;
    }
    if (!pvabi__lc_reply_ok(ctx, lc, m, sizeof(rsp), 1))
        return -EPROTO;
    memcpy(&rsp, m->payload, sizeof(rsp));
    return port_adopt(ctx, lc, rsp.port, m->fds[0], -1, port);
}

int pvabi__lc_evtchn_bind(pvabi_ctx *ctx, void *plat, pvabi_domid remote, pvabi_port remote_port,
                          pvabi_port *port)
{
    struct lc *lc = plat;
    struct hv_evtchn_bind_req req = { .remote_domid = remote, .remote_port = remote_port };
    struct hv_evtchn_bind_rsp rsp;
    struct lc_msg *m;
    int rc = pvabi__lc_call(ctx, lc, HV_OP_EVTCHN_BIND, &req, sizeof(req), NULL, 0, &m);

    if (rc < 0) {
        pvabi__err(ctx, "event channel bind to port %u of domain %u: %s", remote_port, remote,
                   strerror(-rc));
        return rc;
    }
    if (!pvabi__lc_reply_ok(ctx, lc, m, sizeof(rsp), 2))
        return -EPROTO;
    memcpy(&rsp, m->payload, sizeof(rsp));
    return port_adopt(ctx, lc, rsp.port, m->fds[0], m->fds[1], port);
}

int pvabi__lc_evtchn_unbind(pvabi_ctx *ctx, void *plat, pvabi_port port)
{
    struct lc *lc = plat;
    struct lc_port *p = live(lc, port);
    int rc;

    if (!p)
        return -EBADF;
    /* The port goes here whatever the daemon says: the core has already
     * forgotten it, and a dead daemon has closed it anyway. */
    if (lc->sock >= 0 && (rc = close_at_daemon(ctx, lc, port)) < 0 && rc != -ENOTCONN)
        pvabi__warn(ctx, "event channel unbind of port %u: pvabi-hv: %s (closed here all the same)",
                    port, strerror(-rc));
    port_release(ctx, lc, p, port);
    return 0;
}

/* The lock-free part of notify: 1 when the port has no peer fd yet (the
 * caller may look for its PORT_CONNECTED notice), else 0 or -errno. */
static int notify_fast(pvabi_ctx *ctx, struct lc_port *p, pvabi_port port)
{
    uint64_t one = 1;
    int state, fd;

    if (!p)
        return -EBADF;
    /* Acquire: peer_fd is read after the state that published it (pairs with
     * the release in port_adopt and peer_connected). */
    state = atomic_load_explicit(&p->state, memory_order_acquire);
    if (state == LC_PORT_FREE)
        return -EBADF;
    if (state == PVABI_EVTCHN_UNBOUND)
        return 1;
    fd = atomic_load_explicit(&p->peer_fd, memory_order_relaxed);
    if (state == PVABI_EVTCHN_CLOSED || fd < 0) {
        pvabi__debug(ctx, "notify port %u: the peer closed or died", port);
        return -ENOTCONN;
    }
    /* EAGAIN: the counter is at its maximum, so the peer has an event
     * pending already, which is all a notify promises. */
    if (write(fd, &one, sizeof(one)) == sizeof(one) || errno == EAGAIN)
        return 0;
    int rc = -errno;
    pvabi__err(ctx, "notify port %u: writing the peer's eventfd: %s", port, strerror(errno));
    return rc;
}

/* An unbound port may be bound already: the daemon sends PORT_CONNECTED
 * before it answers the binder, so by the time anyone can know of the bind,
 * the notice waits on our socket.  Apply it, then try once more. */
static int notify_unbound(pvabi_ctx *ctx, struct lc *lc, pvabi_port port)
{
    int rc;

    if (lc->sock >= 0)
        pvabi__lc_drain_notices(ctx, lc);
    rc = notify_fast(ctx, port_at(lc, port), port);
    if (rc == 1) {
        pvabi__debug(ctx, "notify port %u: not bound yet", port);
        rc = -ENOTCONN;
    }
    return rc;
}

int pvabi__lc_evtchn_notify(pvabi_ctx *ctx, void *plat, pvabi_port port)
{
    struct lc *lc = plat;
    int rc = notify_fast(ctx, port_at(lc, port), port);

    if (rc != 1)
        return rc;
    /* Slow path, only until the PORT_CONNECTED notice is applied: the
     * socket is read under the context lock, which notify does not hold. */
    pthread_mutex_lock(&ctx->lock);
    rc = notify_unbound(ctx, lc, port);
    pthread_mutex_unlock(&ctx->lock);
    return rc;
}

int pvabi__lc_notify_locked(pvabi_ctx *ctx, struct lc *lc, pvabi_port port)
{
    int rc = notify_fast(ctx, port_at(lc, port), port);
    return rc == 1 ? notify_unbound(ctx, lc, port) : rc;
}

/* A port's eventfd was readable: collect its event, if it has one. */
static void port_event(pvabi_ctx *ctx, struct lc *lc, pvabi_port port)
{
    struct lc_port *p = live(lc, port);
    uint64_t count;
    ssize_t n;

    if (!p)
        return;
    n = read(p->recv_fd, &count, sizeof(count));
    if (state_of(p) == PVABI_EVTCHN_CLOSED)
        return; /* its `closed` event says everything */
    if (n < 0 && errno == EAGAIN) {
        queue_push(ctx, lc, port, 1, 0);
    } else if (n != sizeof(count)) {
        pvabi__err(ctx, "port %u: reading its eventfd: %s", port,
                   n < 0 ? strerror(errno) : "short");
    } else if (p->masked) {
        p->pending_while_masked = 1;
    } else {
        p->masked = 1;
        queue_push(ctx, lc, port, 0, 0);
    }
}

/* Moves what epoll_wait reported (@e, @n entries) into the queue. */
static void absorb(pvabi_ctx *ctx, struct lc *lc, const struct epoll_event *e, int n)
{
    int sock = 0;

    for (int i = 0; i < n; i++)
        sock |= e[i].data.u32 == LC_EP_SOCKET;
    /* Notices first: the daemon sends PORT_CLOSED before it wakes the
     * port, so the port then reads as closed, not as an ordinary event.  A
     * full batch may have left the socket out: look at it anyway. */
    if ((sock || n == (int)LC_HARVEST_MAX) && lc->sock >= 0)
        pvabi__lc_drain_notices(ctx, lc);
    for (int i = 0; i < n; i++)
        if (e[i].data.u32 != LC_EP_SOCKET && e[i].data.u32 != LC_EP_WAKE)
            port_event(ctx, lc, e[i].data.u32);
}

/* Moves whatever the epoll set reports now into the queue. */
static void harvest(pvabi_ctx *ctx, struct lc *lc)
{
    struct epoll_event e[LC_HARVEST_MAX];
    int n = epoll_wait(lc->epfd, e, LC_HARVEST_MAX, 0);

    if (n < 0) {
        if (errno != EINTR)
            pvabi__err(ctx, "local platform: epoll_wait: %s", strerror(errno));
        return;
    }
    absorb(ctx, lc, e, n);
}

int pvabi__lc_evtchn_pending(pvabi_ctx *ctx, void *plat, struct pvabi__event *ev, unsigned max)
{
    struct lc *lc = plat;
    unsigned n;

    lc->wake_deferred = 1;
    /* Harvesting only into an empty queue keeps it small (LC_QUEUE_CAP). */
    if (lc->queue.len == 0)
        harvest(ctx, lc);
    n = queue_pop(lc, ev, max);
    lc->wake_deferred = 0;
    wake_update(ctx, lc);
    if (n == 0 && lc->sock < 0)
        return -ENOTCONN; /* after every port was reported closed */
    return (int)n;
}

/* What a waiter must not sleep on: 1 when events wait in the queue already,
 * -ENOTCONN when the daemon is gone and nothing is left, else 0. */
static int wait_needless(pvabi_ctx *ctx, struct lc *lc)
{
    int rc;

    pthread_mutex_lock(&ctx->lock);
    rc = lc->queue.len > 0 ? 1 : lc->sock < 0 ? -ENOTCONN : 0;
    pthread_mutex_unlock(&ctx->lock);
    return rc;
}

/*
 * Sleeps in the epoll set itself rather than in poll() on it: what wakes
 * us is then the events themselves, and pending() needs no epoll_wait of
 * its own.  A wake-up is epoll_wait, then read() of the port's eventfd:
 * with the caller's notify, the three system calls of a raw eventfd
 * ping-pong.  The events are queued with the wake fd left alone: the core
 * calls pending() next, which collects them and settles the wake fd.
 */
int pvabi__lc_evtchn_wait(pvabi_ctx *ctx, void *plat, int timeout_ms)
{
    struct lc *lc = plat;
    struct epoll_event e[LC_HARVEST_MAX];
    int n = wait_needless(ctx, lc);

    if (n != 0)
        return n;
    /* The epoll fd lives as long as the context: no lock to sleep on it. */
    n = epoll_wait(lc->epfd, e, LC_HARVEST_MAX, timeout_ms);
    if (n < 0) {
        n = -errno;
        if (n != -EINTR)
            pvabi__err(ctx, "local platform: epoll_wait: %s", strerror(-n));
        return n;
    }
    if (n == 0)
        return 0;
    pthread_mutex_lock(&ctx->lock);
    lc->wake_deferred = 1;
    absorb(ctx, lc, e, n);
    lc->wake_deferred = 0;
    pthread_mutex_unlock(&ctx->lock);
    return 1;
}

int pvabi__lc_evtchn_unmask(pvabi_ctx *ctx, void *plat, pvabi_port port)
{
    struct lc *lc = plat;
    struct lc_port *p = live(lc, port);
    uint64_t one = 1;

    if (!p)
        return -EBADF;
    p->masked = 0;
    if (p->closed_pending) {
        /* the peer closed while the port was masked: report that now */
        p->closed_pending = p->pending_while_masked = 0;
        p->masked = 1;
        queue_push(ctx, lc, port, 0, 1);
        return 0;
    }
    if (!p->pending_while_masked)
        return 0;
    p->pending_while_masked = 0;
    /* Xen raises a port again when it is unmasked with an event pending: so
     * do we, through our own eventfd, for the next pending() to report. */
    if (write(p->recv_fd, &one, sizeof(one)) == sizeof(one) || errno == EAGAIN)
        return 0;
    int rc = -errno;
    pvabi__err(ctx, "unmask port %u: raising its pending event again: %s", port, strerror(errno));
    return rc;
}

int pvabi__lc_evtchn_state(pvabi_ctx *ctx, void *plat, pvabi_port port)
{
    struct lc *lc = plat;
    struct lc_port *p;

    /* A bind or a close by the peer may wait on the socket as a notice. */
    if (lc->sock >= 0)
        pvabi__lc_drain_notices(ctx, lc);
    p = live(lc, port);
    return p ? state_of(p) : -EBADF;
}

/* ---- notices and death ---------------------------------------------------- */

/* Takes the peer's eventfd for a port bound (again) by a remote. */
static void peer_fd_adopt(pvabi_ctx *ctx, struct lc_port *p, pvabi_port port, int fd)
{
    int old = atomic_load_explicit(&p->peer_fd, memory_order_relaxed);
    int rc = set_nonblock(fd);

    if (rc < 0)
        pvabi__warn(ctx, "port %u: making the peer's eventfd non-blocking: %s", port,
                    strerror(-rc));
    if (old < 0) {
        atomic_store_explicit(&p->peer_fd, fd, memory_order_relaxed);
        return;
    }
    /* A rebind after the peer left: a notify running now may hold the old
     * number, so the new eventfd takes that number atomically instead of the
     * old one being closed under it (either write is harmless). */
    if (dup3(fd, old, O_CLOEXEC) < 0)
        pvabi__err(ctx, "port %u: taking the new peer's eventfd: %s", port, strerror(errno));
    close(fd);
}

/* PORT_CONNECTED: a remote bound our unbound port, or bound again a port
 * whose peer had left (Xen's rebind: the same domid, a restarted backend). */
static void peer_connected(pvabi_ctx *ctx, struct lc *lc, const struct hv_port_notice *n,
                           struct lc_msg *m)
{
    struct lc_port *p = live(lc, n->port);
    int state = p ? state_of(p) : LC_PORT_FREE;

    if (m->nfds != 1 || (state != PVABI_EVTCHN_UNBOUND && state != PVABI_EVTCHN_CLOSED)) {
        pvabi__warn(ctx,
                    "pvabi-hv: PORT_CONNECTED for port %u (%u fds), which is neither unbound "
                    "nor closed here: ignored",
                    n->port, m->nfds);
        return;
    }
    peer_fd_adopt(ctx, p, n->port, m->fds[0]);
    m->fds[0] = -1;
    if (p->closed_pending) {
        /* The close was never reported (the port was masked): report the
         * rebind as an event instead, so the owner looks at the port. */
        p->closed_pending = 0;
        p->pending_while_masked = 1;
    }
    /* Release: peer_fd is stored before the state that lets notify use it
     * (pairs with the acquire in notify_fast). */
    atomic_store_explicit(&p->state, PVABI_EVTCHN_INTERDOMAIN, memory_order_release);
    pvabi__debug(ctx, "port %u: %sbound by port %u of domain %u", n->port,
                 state == PVABI_EVTCHN_CLOSED ? "re" : "", n->remote_port, n->remote_domid);
}

/* Marks a port CLOSED and reports it once: now, or after the unmask if it
 * is masked (the `closed` event is an event like any other).  Its peer fd
 * stays open until unbind: a notify running now may still hold its number,
 * which must not be reused under it. */
static void port_closed(pvabi_ctx *ctx, struct lc *lc, pvabi_port port)
{
    struct lc_port *p = live(lc, port);

    if (!p || state_of(p) == PVABI_EVTCHN_CLOSED)
        return;
    pvabi__debug(ctx, "port %u: its peer closed or died", port);
    /* Release: pairs with notify's acquire; nothing else is published here,
     * but notify must see CLOSED rather than a torn state. */
    atomic_store_explicit(&p->state, PVABI_EVTCHN_CLOSED, memory_order_release);
    if (p->masked) {
        p->closed_pending = 1;
        return;
    }
    p->masked = 1;
    queue_push(ctx, lc, port, 0, 1);
}

void pvabi__lc_apply_notice(pvabi_ctx *ctx, struct lc *lc, struct lc_msg *m)
{
    struct hv_port_notice n;

    memcpy(&n, m->payload, sizeof(n));
    if (m->hdr.len != sizeof(n))
        pvabi__warn(ctx, "pvabi-hv: notice %u of %u bytes: ignored", m->hdr.op, m->hdr.len);
    else if (m->hdr.op == HV_NOTICE_PORT_CONNECTED)
        peer_connected(ctx, lc, &n, m);
    else if (m->hdr.op == HV_NOTICE_PORT_CLOSED)
        port_closed(ctx, lc, n.port);
    else
        pvabi__warn(ctx, "pvabi-hv: unknown notice %u: ignored", m->hdr.op);
    pvabi__lc_close_fds(m->fds, m->nfds); /* those not taken */
    m->nfds = 0;
}

void pvabi__lc_ports_close_all(pvabi_ctx *ctx, struct lc *lc)
{
    for (pvabi_port port = 1; port < HV_PORTS_MAX; port++)
        port_closed(ctx, lc, port);
}

void pvabi__lc_ports_free(struct lc *lc)
{
    for (pvabi_port port = 1; port < HV_PORTS_MAX; port++) {
        struct lc_port *p = live(lc, port);
        int peer;

        if (!p)
            continue;
        close(p->recv_fd);
        peer = atomic_load_explicit(&p->peer_fd, memory_order_relaxed);
        if (peer >= 0)
            close(peer);
        atomic_store_explicit(&p->state, LC_PORT_FREE, memory_order_relaxed);
    }
}
