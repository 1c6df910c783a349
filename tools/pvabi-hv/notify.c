/* SPDX-License-Identifier: MIT */
/*
 * Unmap-notify and what a death does to grants.  An unmap-notify action
 * (Linux gntdev's UNMAP_NOTIFY_CLEAR_BYTE / _SEND_EVENT) is how the other
 * side of a ring learns that a peer died with the ring still mapped: the
 * daemon clears a byte in the shared page and/or signals a channel.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "hv.h"

static const struct hv_notify notify_none = { HV_PAGE_SIZE, 0 };

void hv_notify_run(struct hv_dom *owner, struct hv_grant *g, const struct hv_notify *n)
{
    off_t at = (off_t)g->page * HV_PAGE_SIZE + n->offset;

    /* Through the daemon's RW fd: the page stays alive whoever unmapped. */
    if (n->offset < HV_PAGE_SIZE && pwrite(g->mem->fd, "", 1, at) != 1)
        hv_warn("%s: unmap-notify: clearing byte %u of ref %u: %s", hv_who(owner), n->offset,
                g->ref, strerror(errno));
    if (n->port)
        hv_evtchn_wake_peer(owner, n->port);
}

/* The grant @req names for @d, and where its action is kept; NULL if @d
 * neither shares it nor maps it. */
static struct hv_notify *notify_slot(struct hv_dom *d, const struct hv_unmap_notify_req *req,
                                     struct hv_grant **out)
{
    struct hv_dom *s = req->domid < HV_DOMID_LIMIT ? hv.doms[req->domid] : NULL;
    struct hv_grant *g = s ? hv_grant_get(s, req->ref) : NULL;

    *out = g;
    if (!g)
        return NULL;
    /* domid is our own for a sharer; so a self-grant's mapper cannot
     * register (one action per grant and side is all Linux keeps). */
    if (s == d)
        return &g->on_end;
    return g->grantee == d->domid && g->maps ? &g->on_unmap : NULL;
}

int32_t hv_op_unmap_notify(struct hv_dom *d, struct hv_req *rq, struct hv_rsp *rs)
{
    struct hv_unmap_notify_req req;
    struct hv_notify *slot;
    struct hv_grant *g;
    const char *why = NULL;
    int32_t status = -EINVAL;

    (void)rs;
    memcpy(&req, rq->payload, sizeof(req));
    slot = notify_slot(d, &req, &g);
    if (!slot)
        why = "ref is neither shared nor mapped by us";
    else if (req.offset > HV_PAGE_SIZE)
        why = "offset beyond the page";
    else if (req.port && !hv_port_get(d, req.port))
        why = "port is not ours";
    else if (req.offset < HV_PAGE_SIZE &&
             (slot == &g->on_unmap ? g->mem->readonly : g->mem->write_sealed))
        why = "cannot clear a byte in read-only memory", status = -EPERM;
    if (why) {
        hv_info("%s: UNMAP_NOTIFY for ref %u of dom %u: %s", hv_who(d), req.ref, req.domid, why);
        return status;
    }
    *slot = (struct hv_notify){ req.offset, req.port };
    return 0;
}

void hv_grant_run_death_notifies(struct hv_dom *d)
{
    for (struct hv_grant *g = d->mapped; g; g = g->mnext) {
        hv_notify_run(d, g, &g->on_unmap);
        g->on_unmap = notify_none;
    }
    for (uint32_t ref = HV_FIRST_GREF; ref < d->ngnt; ref++) {
        struct hv_grant *g = d->gnt[ref];
        if (g) {
            hv_notify_run(d, g, &g->on_end);
            g->on_end = notify_none;
        }
    }
}

void hv_grant_drop_mappings(struct hv_dom *d)
{
    struct hv_grant *g;

    while ((g = d->mapped)) {
        struct hv_dom *s = g->sharer;
        hv_grant_unlink_mapper(d, g);
        g->maps = 0;
        /* A self-mapping (s == d) is freed by hv_grant_reclaim() next. */
        if (s->state == DOM_ZOMBIE) {
            hv_grant_free(g);
            hv_dom_release_if_done(s);
        }
    }
}

void hv_grant_reclaim(struct hv_dom *d)
{
    for (uint32_t ref = HV_FIRST_GREF; ref < d->ngnt; ref++) {
        struct hv_grant *g = d->gnt[ref];
        if (g && !g->maps)
            hv_grant_free(g);
    }
}
