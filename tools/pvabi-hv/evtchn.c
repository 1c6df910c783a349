/* SPDX-License-Identifier: MIT */
/*
 * Event channels: Xen's port model.  Each end of a channel has an eventfd
 * made here; its owner reads it, the peer writes it, and the daemon keeps a
 * copy of every one so it can wake an end whose peer closed or died.  A
 * notify never passes through the daemon.
 *
 * Invariant: a PORT_INTERDOMAIN port's peer is an allocated PORT_INTERDOMAIN
 * port naming it back, of a domain not yet freed (a domain closes all its
 * ports before it becomes a zombie).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "hv.h"

static void eventfd_wake(int efd)
{
    uint64_t one = 1;

    /* Only fails when the counter is saturated: the end is awake anyway. */
    if (write(efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        hv_warn("eventfd write: %s", strerror(errno));
}

struct hv_port *hv_port_get(struct hv_dom *d, uint32_t port)
{
    if (port == 0 || port >= d->nports || d->ports[port].state == PORT_FREE)
        return NULL;
    return &d->ports[port];
}

static int port_table_grow(struct hv_dom *d)
{
    uint32_t n = d->nports ? d->nports * 2 : 32;
    struct hv_port *p;

    if (n > HV_PORTS_MAX)
        n = HV_PORTS_MAX;
    p = realloc(d->ports, n * sizeof(*p));
    if (!p)
        return -ENOMEM;
    memset(p + d->nports, 0, (n - d->nports) * sizeof(*p));
    d->ports = p;
    d->nports = n;
    return 0;
}

/* The lowest free port, as Xen picks; it may move d->ports. */
static int32_t port_alloc(struct hv_dom *d, uint32_t *port)
{
    uint32_t p = 1;
    int efd;

    while (p < d->nports && d->ports[p].state != PORT_FREE)
        p++;
    if (p >= HV_PORTS_MAX)
        return -ENOSPC;
    if (p >= d->nports && port_table_grow(d) != 0)
        return -ENOMEM;
    efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0) {
        int err = errno;
        hv_warn("%s: eventfd: %s", hv_who(d), strerror(err));
        return -err;
    }
    d->ports[p] = (struct hv_port){ .state = PORT_UNBOUND, .efd = efd };
    *port = p;
    return 0;
}

int32_t hv_op_evtchn_alloc(struct hv_dom *d, struct hv_req *rq, struct hv_rsp *rs)
{
    struct hv_evtchn_alloc_req req;
    struct hv_evtchn_alloc_rsp out;
    int32_t status;

    memcpy(&req, rq->payload, sizeof(req));
    /* As in Xen, the remote need not exist yet. */
    if (req.remote_domid >= HV_DOMID_LIMIT) {
        hv_info("%s: EVTCHN_ALLOC: remote domid %u is reserved", hv_who(d), req.remote_domid);
        return -EINVAL;
    }
    status = port_alloc(d, &out.port);
    if (status) {
        hv_info("%s: EVTCHN_ALLOC: %s", hv_who(d), hv_errname(status));
        return status;
    }
    d->ports[out.port].remote_domid = (uint16_t)req.remote_domid;
    memcpy(rs->payload, &out, sizeof(out));
    rs->len = sizeof(out);
    rs->fds[rs->nfds++] = d->ports[out.port].efd;
    hv_debug("%s: port %u offered to dom %u", hv_who(d), out.port, req.remote_domid);
    return 0;
}

/* Whether @d may bind the port @req names: 0 or why not. */
static int32_t bind_check(struct hv_dom *d, const struct hv_evtchn_bind_req *req)
{
    struct hv_dom *r = hv_dom_live(req->remote_domid);
    struct hv_port *rp = r ? hv_port_get(r, req->remote_port) : NULL;
    const char *why;
    int32_t status;

    if (!r)
        why = "no such domain", status = -ESRCH;
    else if (!rp || (rp->state != PORT_UNBOUND && rp->state != PORT_CLOSED))
        why = "no such unbound port", status = -EINVAL;
    else if (rp->remote_domid != d->domid)
        why = "offered to another domain", status = -EPERM;
    else
        return 0;
    hv_info("%s: EVTCHN_BIND to port %u of dom %u: %s", hv_who(d), req->remote_port,
            req->remote_domid, why);
    return status;
}

int32_t hv_op_evtchn_bind(struct hv_dom *d, struct hv_req *rq, struct hv_rsp *rs)
{
    struct hv_evtchn_bind_req req;
    struct hv_evtchn_bind_rsp out;
    struct hv_port_notice n;
    struct hv_port *p, *rp;
    struct hv_dom *r;
    int32_t status;

    memcpy(&req, rq->payload, sizeof(req));
    status = bind_check(d, &req);
    if (status == 0)
        status = port_alloc(d, &out.port);
    if (status)
        return status;
    /* Looked up after port_alloc(): a loopback bind's table may have moved. */
    r = hv.doms[req.remote_domid];
    p = &d->ports[out.port];
    rp = &r->ports[req.remote_port];
    p->state = PORT_INTERDOMAIN;
    p->remote_domid = (uint16_t)r->domid;
    p->remote_port = (uint16_t)req.remote_port;
    rp->state = PORT_INTERDOMAIN;
    rp->remote_domid = (uint16_t)d->domid;
    rp->remote_port = (uint16_t)out.port;
    /* The allocator hears first, so its notify fd is on its way before the
     * binder can send it an event. */
    n = (struct hv_port_notice){ req.remote_port, d->domid, out.port, 0 };
    hv_send_notice(r, HV_NOTICE_PORT_CONNECTED, &n, sizeof(n), p->efd);
    memcpy(rs->payload, &out, sizeof(out));
    rs->len = sizeof(out);
    rs->fds[rs->nfds++] = p->efd;
    rs->fds[rs->nfds++] = rp->efd;
    hv_debug("%s: port %u bound to port %u of dom %u", hv_who(d), out.port, req.remote_port,
             r->domid);
    return 0;
}

/* The other end of a channel went away: its owner hears, then wakes. */
static void peer_gone(const struct hv_port *gone, uint32_t gone_domid, uint32_t gone_port)
{
    struct hv_dom *r = hv.doms[gone->remote_domid];
    struct hv_port *rp = r ? hv_port_get(r, gone->remote_port) : NULL;
    struct hv_port_notice n = { gone->remote_port, gone_domid, gone_port, 0 };

    if (!rp || rp->state != PORT_INTERDOMAIN) {
        hv_warn("internal: dom %u port %u has no peer", gone_domid, gone_port);
        return;
    }
    /* As in Xen, the survivor's port is offered again to the domid that
     * left (remote_domid is unchanged): a backend restarted under the same
     * domid binds it again.  Until then the library reports it CLOSED. */
    rp->state = PORT_CLOSED;
    /* Notice before wake-up: a domain that wakes on the eventfd finds the
     * notice already queued, so it reports the port closed, not an event. */
    hv_send_notice(r, HV_NOTICE_PORT_CLOSED, &n, sizeof(n), -1);
    eventfd_wake(rp->efd);
}

static void port_close(struct hv_dom *d, uint32_t port)
{
    struct hv_port *p = &d->ports[port];

    if (p->state == PORT_INTERDOMAIN)
        peer_gone(p, d->domid, port);
    close(p->efd);
    *p = (struct hv_port){ .state = PORT_FREE, .efd = -1 };
}

int32_t hv_op_evtchn_close(struct hv_dom *d, struct hv_req *rq, struct hv_rsp *rs)
{
    struct hv_evtchn_close_req req;

    (void)rs;
    memcpy(&req, rq->payload, sizeof(req));
    if (!hv_port_get(d, req.port)) {
        hv_info("%s: EVTCHN_CLOSE: port %u is not allocated", hv_who(d), req.port);
        return -EINVAL;
    }
    port_close(d, req.port);
    return 0;
}

void hv_evtchn_wake_peer(struct hv_dom *d, uint32_t port)
{
    struct hv_port *p = hv_port_get(d, port);
    struct hv_dom *r;

    if (!p || p->state != PORT_INTERDOMAIN)
        return;
    r = hv.doms[p->remote_domid];
    if (r && p->remote_port < r->nports)
        eventfd_wake(r->ports[p->remote_port].efd);
}

void hv_evtchn_close_all(struct hv_dom *d)
{
    for (uint32_t port = 1; port < d->nports; port++)
        if (d->ports[port].state != PORT_FREE)
            port_close(d, port);
}

void hv_evtchn_free(struct hv_dom *d)
{
    free(d->ports);
    d->ports = NULL;
    d->nports = 0;
}
