/* SPDX-License-Identifier: MIT */
/*
 * Domains: HELLO and domid allocation, and death.  A death is two steps:
 * hv_dom_doom() marks the domain (safe anywhere, even while another domain's
 * request is half done), hv_reap() later tears it down in an order that lets
 * survivors see a consistent picture when they wake.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hv.h"
#include "xs.h"

struct hv_dom *hv_dom_new(int sock, pid_t pid, uid_t uid)
{
    struct hv_dom *d = calloc(1, sizeof(*d));

    if (!d)
        return NULL;
    d->src.kind = SRC_CONN;
    d->state = DOM_NEW;
    d->sock = sock;
    d->domid = HV_DOMID_NONE;
    d->pid = pid;
    d->uid = uid;
    d->fresh_ref = HV_FIRST_GREF;
    d->next = hv.all;
    if (hv.all)
        hv.all->prev = d;
    hv.all = d;
    return d;
}

struct hv_dom *hv_dom_live(uint32_t domid)
{
    struct hv_dom *d = domid < HV_DOMID_LIMIT ? hv.doms[domid] : NULL;

    return d && d->state == DOM_LIVE ? d : NULL;
}

bool hv_uid_allowed(uid_t uid)
{
    for (unsigned i = 0; i < hv.nallow; i++)
        if (hv.allow_uid[i] == uid)
            return true;
    return false;
}

/* The next free unprivileged domid after the last one handed out, so a
 * domid is reused as late as possible (a survivor may still name it). */
static int32_t domid_alloc(uint32_t *domid)
{
    uint32_t id = hv.next_domid;

    for (uint32_t tries = 0; tries < HV_DOMID_LIMIT; tries++, id++) {
        if (id == 0 || id >= HV_DOMID_LIMIT)
            id = 1;
        if (id != hv.priv_domid && !hv.doms[id]) {
            *domid = id;
            hv.next_domid = id + 1;
            return 0;
        }
    }
    return -ENOSPC;
}

/* True if the domain holding @domid lets it go once what it (live: its
 * hang-up) or the domains mapping its grants (a zombie: their unmaps) have
 * already sent is handled: a process that saw the death or the unmaps can
 * claim the domid at once. */
static bool holder_gone(uint32_t domid)
{
    struct hv_dom *h = hv.doms[domid];

    if (h->state == DOM_LIVE)
        hv_dom_gone(h);
    else if (h->state == DOM_DOOMED)
        hv_reap();
    /* Dead now, perhaps: then its grants hold the domid until unmapped. */
    h = hv.doms[domid];
    if (h && h->state == DOM_ZOMBIE)
        hv_grant_drain_mappers(h, NULL, 0);
    return !hv.doms[domid];
}

static int32_t domid_pick(const struct hv_dom *d, int32_t want, uint32_t *domid)
{
    if (want == -1)
        return domid_alloc(domid);
    if (want < 0 || (uint32_t)want >= HV_DOMID_LIMIT)
        return -EINVAL;
    if ((uint32_t)want == hv.priv_domid && !hv_uid_allowed(d->uid))
        return -EPERM;
    /* A zombie still holds its domid: its grants are named by it. */
    if (hv.doms[want] && !holder_gone((uint32_t)want))
        return -EADDRINUSE;
    *domid = (uint32_t)want;
    return 0;
}

/* A toolstack is not a domain: it takes no domid (so it is in no list and
 * no domid is used up) and is never introduced to the store; it answers as
 * the privileged domain, the one a toolstack acts for. */
static int32_t hello_toolstack(struct hv_dom *d, struct hv_rsp *rs)
{
    struct hv_hello_rsp out = { .version = HV_PROTO_VERSION, .privileged = 1 };

    if (!hv_uid_allowed(d->uid)) {
        hv_info("%s (uid %u): HELLO as the toolstack: uid not allowed (--allow-uid)", hv_who(d),
                (unsigned)d->uid);
        return -EPERM;
    }
    d->toolstack = true;
    d->privileged = true;
    d->state = DOM_LIVE;
    out.domid = hv.priv_domid;
    memcpy(rs->payload, &out, sizeof(out));
    rs->len = sizeof(out);
    hv_info("%s: connected (uid %u)", hv_who(d), (unsigned)d->uid);
    return 0;
}

int32_t hv_op_hello(struct hv_dom *d, struct hv_req *rq, struct hv_rsp *rs)
{
    struct hv_hello_req req;
    struct hv_hello_rsp out = { .version = HV_PROTO_VERSION };
    int32_t status;
    uint32_t domid;

    memcpy(&req, rq->payload, sizeof(req));
    if (d->state != DOM_NEW) {
        hv_info("%s: HELLO: already dom %u", hv_who(d), d->domid);
        return -EINVAL;
    }
    if (req.version != HV_PROTO_VERSION) {
        hv_info("%s: HELLO: protocol version %u, this daemon speaks %u", hv_who(d), req.version,
                HV_PROTO_VERSION);
        return -EPROTONOSUPPORT;
    }
    if (req.want_domid == HV_WANT_TOOLSTACK)
        return hello_toolstack(d, rs);
    status = domid_pick(d, req.want_domid, &domid);
    if (status) {
        hv_info("%s (uid %u): HELLO for domid %d: %s", hv_who(d), (unsigned)d->uid, req.want_domid,
                hv_errname(status));
        return status;
    }
    d->domid = domid;
    d->privileged = domid == hv.priv_domid;
    d->state = DOM_LIVE;
    hv.doms[domid] = d;
    out.domid = domid;
    out.privileged = d->privileged;
    memcpy(rs->payload, &out, sizeof(out));
    rs->len = sizeof(out);
    hv_info("%s: connected (uid %u)%s", hv_who(d), (unsigned)d->uid,
            d->privileged ? ", privileged" : "");
    /* Its home exists, and @introduceDomain has fired, before it hears back. */
    xs_introduce(d);
    return 0;
}

void hv_dom_doom(struct hv_dom *d, const char *why)
{
    if (d->state != DOM_NEW && d->state != DOM_LIVE)
        return;
    hv_info("%s: %s; it is gone", hv_who(d), why);
    d->state = DOM_DOOMED;
    d->doom_next = hv.doomed;
    hv.doomed = d;
}

void hv_dom_release_if_done(struct hv_dom *d)
{
    if (d->state != DOM_ZOMBIE || d->grants_live)
        return;
    if (d->domid < HV_DOMID_LIMIT && hv.doms[d->domid] == d)
        hv.doms[d->domid] = NULL;
    if (d->prev)
        d->prev->next = d->next;
    else
        hv.all = d->next;
    if (d->next)
        d->next->prev = d->prev;
    hv_grant_free_tables(d);
    d->doom_next = hv.released;
    hv.released = d;
}

void hv_free_released(void)
{
    while (hv.released) {
        struct hv_dom *d = hv.released;
        hv.released = d->doom_next;
        free(d);
    }
}

bool hv_dom_gone(struct hv_dom *d)
{
    /* Reading the socket, rather than polling it for a hang-up, handles
     * what @d sent before it hung up first, as the loop would have. */
    hv_conn_drain(d);
    if (d->state == DOM_DOOMED)
        hv_reap();
    return d->state != DOM_NEW && d->state != DOM_LIVE;
}

static void dom_kill(struct hv_dom *d)
{
    hv_conn_close(d);
    hv_conn_free_queue(d);
    /* Notify actions first: they clear bytes a survivor looks at when it
     * wakes, and they signal through d's ports, which close next. */
    hv_grant_run_death_notifies(d);
    hv_evtchn_close_all(d);
    hv_evtchn_free(d);
    hv_grant_drop_mappings(d);
    hv_grant_reclaim(d);
    d->state = DOM_ZOMBIE;
    /* The store last: whoever @releaseDomain or its home's removal wakes
     * finds the channels closed (their notices queued before) and the grants
     * reclaimed.  All in this batch, before any other request is read. */
    xs_release(d);
    if (d->grants_live)
        hv_info("%s: %u grants still mapped; reclaimed when unmapped", hv_who(d), d->grants_live);
    hv_dom_release_if_done(d);
}

void hv_reap(void)
{
    /* A death can doom others (a notice that cannot be sent): loop. */
    while (hv.doomed) {
        struct hv_dom *d = hv.doomed;
        hv.doomed = d->doom_next;
        dom_kill(d);
    }
}

void hv_dom_kill_all(void)
{
    for (struct hv_dom *d = hv.all; d; d = d->next)
        hv_dom_doom(d, "the daemon is stopping");
    /* Zombies go as the domains mapping their grants die. */
    hv_reap();
    hv_free_released();
    if (hv.all)
        hv_warn("internal: domains left after stopping");
}
