/* SPDX-License-Identifier: MIT */
/*
 * Event channels over libxenevtchn (Linux's /dev/xen/evtchn).
 *
 * Delivery is the kernel's: a port that fires is masked and queued on the
 * fd; xenevtchn_pending() reads one port, xenevtchn_unmask() writes it back.
 * The kernel delivers only ports bound through our handle, but the core
 * copes with any port it is given.  Port states are tracked here (Xen has
 * no event for a peer's close) and refined by EVTCHNOP_status when
 * libxenctrl is available (xc.c).
 */
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "private.h"

/* After private.h: it uses domid_t from xenevtchn.h's includes. */
#include <xen/sys/evtchn.h>

/* As the core's port table: Xen's FIFO ABI has 2^17 ports. */
#define PORTS_MAX (PVABI__PORT_CHUNK * PVABI__PORT_CHUNKS)

/* ---- the port table ---------------------------------------------------- */

static int port_known(const struct pvabi__xen *x, pvabi_port port)
{
    return port < x->nports ? x->ports[port] : 0;
}

static int port_set(struct pvabi__xen *x, pvabi_port port, uint8_t state)
{
    size_t n = x->nports ? x->nports : 64;
    uint8_t *p;

    if (port < x->nports) {
        x->ports[port] = state;
        return 0;
    }
    if (port >= PORTS_MAX)
        return -ERANGE;
    while (n <= port)
        n *= 2;
    p = realloc(x->ports, n);
    if (!p)
        return -ENOMEM;
    memset(p + x->nports, 0, n - x->nports);
    x->ports = p;
    x->nports = n;
    p[port] = state;
    return 0;
}

void pvabi__xen_ports_free(struct pvabi__xen *x)
{
    free(x->ports);
    x->ports = NULL;
    x->nports = 0;
}

/* Records a port Xen just gave us; gives it back if we cannot. */
static int adopt(struct pvabi__xen *x, int p, uint8_t state, pvabi_port *port)
{
    int rc = port_set(x, (pvabi_port)p, state);

    if (rc < 0) {
        pvabi__err(x->ctx, "platform xen: port %d: cannot record it (%s)", p,
                   rc == -ERANGE ? "beyond Xen's FIFO ABI range" : "out of memory");
        xenevtchn_unbind(x->xce, (evtchn_port_t)p);
        return rc;
    }
    *port = (pvabi_port)p;
    return 0;
}

/* ---- alloc / bind / unbind --------------------------------------------- */

int pvabi__xen_evtchn_alloc(pvabi_ctx *ctx, void *plat, pvabi_domid remote, pvabi_port *port)
{
    int keep PVABI__XEN_KEEP_ERRNO = errno;
    struct pvabi__xen *x = plat;
    int p = xenevtchn_bind_unbound_port(x->xce, remote);

    (void)ctx;
    if (p < 0)
        return pvabi__xen_fail(x, PVABI_LOG_ERR, NULL,
                               "xenevtchn_bind_unbound_port(remote domain %u)", (unsigned)remote);
    return adopt(x, p, PVABI_EVTCHN_UNBOUND, port);
}

/*
 * Xen answers EINVAL both for "no such port, or not unbound" and for "offered
 * to another domain".  EVTCHNOP_status on the remote's port tells them apart,
 * but only for a caller with privilege over that domain (dom0, or a driver
 * domain given it); others get -EINVAL for both.
 */
static int refine_bind_einval(struct pvabi__xen *x, pvabi_domid remote, pvabi_port remote_port)
{
    uint32_t status;
    pvabi_domid to;

    if (pvabi__xen_port_status(x, remote, remote_port, &status, &to) < 0 ||
        status != EVTCHNSTAT_unbound || to == x->domid)
        return -EINVAL;
    pvabi__err(x->ctx,
               "platform xen: port %u of domain %u is offered to domain %u, not to us "
               "(domain %u)",
               remote_port, (unsigned)remote, (unsigned)to, (unsigned)x->domid);
    return -EPERM;
}

int pvabi__xen_evtchn_bind(pvabi_ctx *ctx, void *plat, pvabi_domid remote, pvabi_port remote_port,
                           pvabi_port *port)
{
    int keep PVABI__XEN_KEEP_ERRNO = errno;
    struct pvabi__xen *x = plat;
    int p = xenevtchn_bind_interdomain(x->xce, remote, remote_port);
    int rc;

    (void)ctx;
    if (p >= 0)
        return adopt(x, p, PVABI_EVTCHN_INTERDOMAIN, port);
    rc = pvabi__xen_fail(x, PVABI_LOG_ERR, NULL, "xenevtchn_bind_interdomain(domain %u, port %u)",
                         (unsigned)remote, remote_port);
    if (rc == -EINVAL)
        return refine_bind_einval(x, remote, remote_port);
    /* EACCES: XSM policy or a restricted handle refused it. */
    return rc == -EACCES ? -EPERM : rc;
}

int pvabi__xen_evtchn_unbind(pvabi_ctx *ctx, void *plat, pvabi_port port)
{
    int keep PVABI__XEN_KEEP_ERRNO = errno;
    struct pvabi__xen *x = plat;
    int rc = 0;

    (void)ctx;
    if (xenevtchn_unbind(x->xce, port) < 0)
        rc = pvabi__xen_fail(x, PVABI_LOG_ERR, NULL, "xenevtchn_unbind(port %u)", port);
    if (port < x->nports)
        x->ports[port] = 0;
    /* ENOTCONN: the driver does not know the port as ours. */
    return rc == -ENOTCONN ? -EBADF : rc;
}

/* ---- notify / pending / unmask ----------------------------------------- */

/* Lock-free: one ioctl on the handle, which is stable while the context
 * lives.  Xen silently drops a notify on a port whose peer is gone or that
 * is still unbound, so this cannot report -ENOTCONN for those. */
int pvabi__xen_evtchn_notify(pvabi_ctx *ctx, void *plat, pvabi_port port)
{
    int keep PVABI__XEN_KEEP_ERRNO = errno;
    struct pvabi__xen *x = plat;

    (void)ctx;
    if (xenevtchn_notify(x->xce, port) < 0)
        return pvabi__xen_fail(x, PVABI_LOG_ERR, NULL, "xenevtchn_notify(port %u)", port);
    return 0;
}

/* Hands out the ports of an overflow replay (see overflow()). */
static unsigned replay(struct pvabi__xen *x, struct pvabi__event *ev, unsigned max)
{
    unsigned n = 0;

    for (; x->replay && x->replay < x->nports && n < max; x->replay++)
        if (x->ports[x->replay])
            ev[n++] = (struct pvabi__event){ .port = (pvabi_port)x->replay };
    if (x->replay >= x->nports)
        x->replay = 0;
    return n;
}

/*
 * The driver's queue overflowed (EFBIG): which ports fired is lost, and every
 * read fails until the queue is reset.  Reset it and report every port we
 * hold once (through x->replay, across calls if need be): a port without an
 * event is a spurious wake-up, which drivers tolerate by design, and a port
 * whose event was lost is masked until the driver unmasks it.
 */
static int overflow(struct pvabi__xen *x)
{
    pvabi__warn(x->ctx, "platform xen: the evtchn driver's event queue overflowed; "
                        "reporting every port once");
    if (ioctl(x->fd, IOCTL_EVTCHN_RESET, 0) < 0)
        return pvabi__xen_fail(x, PVABI_LOG_ERR, NULL, "ioctl(IOCTL_EVTCHN_RESET)");
    x->replay = 1;
    return 0;
}

/* An event on a port we allocated comes from a peer that bound it: from now
 * on "unbound" in Xen means the peer closed (see state()).  Xen raises no
 * event on an unbound port, so this is never a false "connected". */
static void seen_connected(struct pvabi__xen *x, pvabi_port port)
{
    if (port < x->nports && x->ports[port] == PVABI_EVTCHN_UNBOUND)
        x->ports[port] = PVABI_EVTCHN_INTERDOMAIN;
}

/* Reads ports until the fd is empty, @max is reached, or an error (logged). */
static int read_ports(struct pvabi__xen *x, struct pvabi__event *ev, unsigned max, unsigned *n)
{
    int reset = 0, p, rc;

    for (;;) {
        *n += replay(x, ev + *n, max - *n);
        if (*n >= max)
            return 0;
        p = xenevtchn_pending(x->xce);
        if (p >= 0) {
            seen_connected(x, (pvabi_port)p);
            ev[(*n)++] = (struct pvabi__event){ .port = (pvabi_port)p };
            continue;
        }
        rc = pvabi__xen_errno();
        if (rc == -EAGAIN)
            return 0; /* drained */
        if (rc == -EINTR)
            continue;
        if (rc != -EFBIG || reset++)
            return pvabi__xen_report(x, PVABI_LOG_ERR, rc, NULL, "xenevtchn_pending");
        rc = overflow(x);
        if (rc < 0)
            return rc;
    }
}

int pvabi__xen_evtchn_pending(pvabi_ctx *ctx, void *plat, struct pvabi__event *ev, unsigned max)
{
    int keep PVABI__XEN_KEEP_ERRNO = errno;
    unsigned n = 0;
    int rc = read_ports(plat, ev, max, &n);

    (void)ctx;
    /* Events read before an error are not lost: report them; it recurs. */
    return rc == 0 || n > 0 ? (int)n : rc;
}

/* Ports of an overflow replay are in memory, not on the fd: a waiter must
 * not sleep while some are left (x->replay belongs to the lock holder). */
static int replay_left(pvabi_ctx *ctx, const struct pvabi__xen *x)
{
    int left;

    pthread_mutex_lock(&ctx->lock);
    left = x->replay != 0;
    pthread_mutex_unlock(&ctx->lock);
    return left;
}

/* Sleeps in poll() on the driver's fd, which is readable while it has
 * ports queued; pending() then reads them (the core calls it next). */
int pvabi__xen_evtchn_wait(pvabi_ctx *ctx, void *plat, int timeout_ms)
{
    int keep PVABI__XEN_KEEP_ERRNO = errno;
    struct pvabi__xen *x = plat;
    struct pollfd p = { .fd = x->fd, .events = POLLIN };
    int n;

    if (replay_left(ctx, x))
        return 1;
    /* x->fd is set at open and closed at close: no lock to sleep on it. */
    n = poll(&p, 1, timeout_ms);
    if (n >= 0)
        return n > 0;
    n = pvabi__xen_errno();
    if (n == -EINTR)
        return n;
    return pvabi__xen_report(x, PVABI_LOG_ERR, n, NULL, "poll(evtchn fd %d)", x->fd);
}

int pvabi__xen_evtchn_unmask(pvabi_ctx *ctx, void *plat, pvabi_port port)
{
    int keep PVABI__XEN_KEEP_ERRNO = errno;
    struct pvabi__xen *x = plat;

    (void)ctx;
    if (xenevtchn_unmask(x->xce, port) < 0)
        return pvabi__xen_fail(x, PVABI_LOG_ERR, NULL, "xenevtchn_unmask(port %u)", port);
    return 0;
}

/* ---- state ------------------------------------------------------------- */

/*
 * What we saw (UNBOUND after alloc, INTERDOMAIN after bind), refined by Xen
 * when it can be asked: an interdomain port whose peer closed goes back to
 * unbound in Xen, so "unbound" after we saw it connected means CLOSED.
 */
int pvabi__xen_evtchn_state(pvabi_ctx *ctx, void *plat, pvabi_port port)
{
    int keep PVABI__XEN_KEEP_ERRNO = errno;
    struct pvabi__xen *x = plat;
    int seen = port_known(x, port);
    uint32_t status;
    pvabi_domid to;

    (void)ctx;
    if (!seen)
        return -EBADF;
    if (pvabi__xen_port_status(x, DOMID_SELF, port, &status, &to) < 0)
        return seen;
    switch (status) {
    case EVTCHNSTAT_interdomain:
        x->ports[port] = PVABI_EVTCHN_INTERDOMAIN;
        return PVABI_EVTCHN_INTERDOMAIN;
    case EVTCHNSTAT_unbound:
        return seen == PVABI_EVTCHN_INTERDOMAIN ? PVABI_EVTCHN_CLOSED : PVABI_EVTCHN_UNBOUND;
    default:
        return PVABI_EVTCHN_CLOSED;
    }
}
