/* SPDX-License-Identifier: MIT */
/*
 * Introspection: who may ask about which domain (Xen's default XSM policy:
 * a domain about itself, the privileged domain and toolstacks about
 * anyone), and GRANT_LIST, a domain's grant table, which Xen has no
 * hypercall for but `pvabi grants` needs.  The hypercalls are in hcall.c.
 */
#include <errno.h>
#include <string.h>

#include "hv.h"

/* Xen's DOMID_SELF. */
#define HV_DOMID_SELF 0x7FF0u

bool hv_dom_dying(const struct hv_dom *d)
{
    return d->state == DOM_ZOMBIE || d->state == DOM_DOOMED;
}

static struct hv_dom *dom_find(uint32_t domid)
{
    struct hv_dom *d = domid < HV_DOMID_LIMIT ? hv.doms[domid] : NULL;

    /* hv.doms holds live, doomed and zombie domains; nothing else. */
    return d && d->state != DOM_NEW ? d : NULL;
}

struct hv_dom *hv_dom_settled(const struct hv_dom *asker, uint32_t domid)
{
    struct hv_dom *d = dom_find(domid);

    /* A caller that saw the process exit (waitpid) must find the domain
     * dead, though its hang-up may wait in this epoll batch: handle what it
     * sent before, then its death (as HELLO does for a held domid).  The
     * asker itself is in the middle of this request: never drained. */
    if (d && d != asker && d->state == DOM_LIVE)
        hv_dom_gone(d);
    else if (d && d->state == DOM_DOOMED)
        hv_reap(); /* its hang-up was read earlier in this batch */
    return dom_find(domid);
}

struct hv_dom *hv_dom_lookup(const struct hv_dom *asker, uint32_t domid)
{
    if (domid == HV_DOMID_SELF)
        domid = asker->toolstack ? hv.priv_domid : asker->domid;
    return hv_dom_settled(asker, domid);
}

bool hv_may_inspect(const struct hv_dom *asker, const struct hv_dom *target)
{
    return asker->privileged || asker == target;
}

/* ---- GRANT_LIST ---------------------------------------------------------- */

static void list_fill(const struct hv_dom *g, uint32_t first, uint32_t max, struct hv_rsp *rs)
{
    struct hv_grant_list_rsp out = { 0 };
    uint8_t *at = rs->payload + sizeof(out);

    for (uint32_t ref = first < HV_FIRST_GREF ? HV_FIRST_GREF : first;
         ref < g->ngnt && out.count < max; ref++) {
        const struct hv_grant *gr = g->gnt[ref];
        if (!gr)
            continue;
        struct hv_grant_list_entry e = { .granter = (uint16_t)g->domid,
                                         .grantee = gr->grantee,
                                         .ref = ref,
                                         .flags = gr->mem->readonly ? 1u : 0u,
                                         .maps = gr->maps,
                                         .dying = hv_dom_dying(g) };
        memcpy(at, &e, sizeof(e));
        at += sizeof(e);
        out.count++;
    }
    memcpy(rs->payload, &out, sizeof(out));
    rs->len = (uint32_t)(at - rs->payload);
}

int32_t hv_op_grant_list(struct hv_dom *d, struct hv_req *rq, struct hv_rsp *rs)
{
    struct hv_grant_list_req req;
    struct hv_dom *g;

    _Static_assert(sizeof(struct hv_grant_list_rsp) +
                           HV_GRANT_LIST_MAX * sizeof(struct hv_grant_list_entry) <=
                       sizeof(rs->payload),
                   "a full GRANT_LIST reply fits in one packet");
    memcpy(&req, rq->payload, sizeof(req));
    if (req.max == 0 || req.max > HV_GRANT_LIST_MAX) {
        hv_info("%s: GRANT_LIST: max %u, not 1..%u", hv_who(d), req.max, HV_GRANT_LIST_MAX);
        return -EINVAL;
    }
    /* Xen's order for questions about a domain: existence, then privilege. */
    g = hv_dom_lookup(d, req.granter);
    if (!g) {
        hv_debug("%s: GRANT_LIST of dom %u: no such domain", hv_who(d), req.granter);
        return -ESRCH;
    }
    if (!hv_may_inspect(d, g)) {
        hv_info("%s: GRANT_LIST of dom %u: another domain's, without privilege", hv_who(d),
                g->domid);
        return -EPERM;
    }
    list_fill(g, req.first, req.max, rs);
    return 0;
}
