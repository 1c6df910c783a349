/* SPDX-License-Identifier: MIT */
/*
 * The `local` platform's hypercalls and grant listing: the argument struct
 * travels to pvabi-hv as it is (HV_OP_HYPERCALL, proto.h) and comes back as
 * the daemon left it.  The reply is checked before anything is copied: a
 * daemon that answers with other sizes is broken, not believed.
 */
#include <errno.h>
#include <string.h>

#include "platform/local/local.h"

/* The request: the header, then the argument struct. */
static int hcall_request(pvabi_ctx *ctx, const struct pvabi__hypercall *hc, uint8_t *buf,
                         size_t *len)
{
    struct hv_hypercall_req req = {
        .nr = hc->nr, .cmd = hc->cmd, .count = hc->count, .len = hc->len, .sub_len = hc->sub_len
    };
    size_t room = HV_MSG_MAX - sizeof(struct hv_hdr) - sizeof(req);

    if (hc->len > room || hc->sub_len > room - hc->len) {
        pvabi__err(ctx,
                   "local platform: hypercall %u/%u: %u + %u argument bytes do not fit "
                   "one message",
                   hc->nr, hc->cmd, hc->len, hc->sub_len);
        return -EINVAL;
    }
    memcpy(buf, &req, sizeof(req));
    if (hc->len)
        memcpy(buf + sizeof(req), hc->arg, hc->len);
    *len = sizeof(req) + hc->len;
    return 0;
}

static int hcall_reply(pvabi_ctx *ctx, struct lc *lc, struct lc_msg *m, struct pvabi__hypercall *hc,
                       int64_t *result)
{
    struct hv_hypercall_rsp rsp;
    size_t want = sizeof(rsp) + hc->len;

    if (m->hdr.len < sizeof(rsp))
        return pvabi__lc_bad_reply(ctx, lc, m, "a hypercall reply without its header");
    memcpy(&rsp, m->payload, sizeof(rsp));
    if (rsp.len != hc->len || rsp.sub_len > hc->sub_len || rsp.result < 0 ||
        !pvabi__lc_reply_ok(ctx, lc, m, want + rsp.sub_len, 0))
        return pvabi__lc_bad_reply(ctx, lc, m, "a hypercall reply of other sizes than asked");
    if (hc->len)
        memcpy(hc->arg, m->payload + sizeof(rsp), hc->len);
    if (rsp.sub_len)
        memcpy(hc->sub, m->payload + want, rsp.sub_len);
    hc->sub_len = rsp.sub_len; /* what the hypercall wrote, for the caller to check */
    *result = rsp.result;
    return 0;
}

int pvabi__lc_hypercall(pvabi_ctx *ctx, void *plat, struct pvabi__hypercall *hc, int64_t *result)
{
    _Alignas(8) uint8_t buf[HV_MSG_MAX - sizeof(struct hv_hdr)];
    struct lc *lc = plat;
    struct lc_msg *m;
    size_t len;
    int rc = hcall_request(ctx, hc, buf, &len);

    *result = 0;
    if (rc < 0)
        return rc;
    rc = pvabi__lc_call(ctx, lc, HV_OP_HYPERCALL, buf, len, NULL, 0, &m);
    if (rc < 0)
        return rc; /* the hypercall's answer, or the transport's */
    return hcall_reply(ctx, lc, m, hc, result);
}

static void entry_copy(struct pvabi_grant_entry *out, const struct hv_grant_list_entry *e)
{
    out->granter = e->granter;
    out->grantee = e->grantee;
    out->ref = e->ref;
    out->flags = e->flags & 1u ? PVABI_GRANT_RO : 0;
    out->maps = e->maps;
    out->dying = e->dying ? 1 : 0;
}

int pvabi__lc_grant_list(pvabi_ctx *ctx, void *plat, pvabi_domid granter, pvabi_gref first,
                         struct pvabi_grant_entry *out, unsigned max)
{
    struct hv_grant_list_req req = { .granter = granter, .first = first, .max = max };
    struct hv_grant_list_rsp rsp;
    struct hv_grant_list_entry e;
    struct lc *lc = plat;
    struct lc_msg *m;
    int rc;

    /* The core asks for at most one reply's worth. */
    _Static_assert(PVABI__GRANT_LIST_CHUNK == HV_GRANT_LIST_MAX, "one GRANT_LIST per chunk");
    rc = pvabi__lc_call(ctx, lc, HV_OP_GRANT_LIST, &req, sizeof(req), NULL, 0, &m);
    if (rc < 0)
        return rc;
    if (m->hdr.len < sizeof(rsp))
        return pvabi__lc_bad_reply(ctx, lc, m, "a grant list without its count");
    memcpy(&rsp, m->payload, sizeof(rsp));
    if (rsp.count > max || !pvabi__lc_reply_ok(ctx, lc, m, sizeof(rsp) + rsp.count * sizeof(e), 0))
        return pvabi__lc_bad_reply(ctx, lc, m, "a grant list of another size than announced");
    for (uint32_t i = 0; i < rsp.count; i++) {
        memcpy(&e, m->payload + sizeof(rsp) + i * sizeof(e), sizeof(e));
        if (e.ref < first || (i > 0 && e.ref <= out[i - 1].ref))
            return pvabi__lc_bad_reply(ctx, lc, m, "a grant list out of order");
        entry_copy(&out[i], &e);
    }
    return (int)rsp.count;
}
