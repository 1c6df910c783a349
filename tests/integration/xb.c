/* SPDX-License-Identifier: MIT */
/*
 * The xenbus commands of the integration harness: the agent's side (one
 * frontend and one backend handle per agent, a test ring of (id, value)
 * requests) and the coordinator's typed wrappers.  The backend answers each
 * request with value * 3 + 1, so the frontend can tell every response is
 * the answer to its own request.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

struct xbt_req {
    uint64_t id;
    uint64_t val;
};
struct xbt_rsp {
    uint64_t id;
    uint64_t val;
};
PVABI_RING_DEFINE(xbt, struct xbt_req, struct xbt_rsp);

#define EVENTS_MAX 64

struct xb_side {
    int events[EVENTS_MAX]; /* what the handle's callback reported, in order */
    unsigned nevents;
};

static struct xb_agent {
    pvabi_xenbus_front *front;
    pvabi_xenbus_back *back;
    struct xb_side fs, bs;
    /* frontend */
    pvabi_grant *ring;
    pvabi_port fport;
    struct xbt_front rf;
    uint64_t sent, answered; /* requests published, responses checked */
    /* backend */
    struct xbt_back rb;
    int rb_attached; /* 0 after each CONNECTED: attach at the next SERVE */
} xa;

static void log_event(struct xb_side *s, int event)
{
    if (s->nevents < EVENTS_MAX)
        s->events[s->nevents++] = event;
}

static void front_cb(pvabi_xenbus_front *f, int event, int err, void *opaque)
{
    (void)f, (void)err, (void)opaque;
    log_event(&xa.fs, event);
}

static void back_cb(pvabi_xenbus_back *b, int event, int err, void *opaque)
{
    (void)b, (void)err, (void)opaque;
    if (event == PVABI_XENBUS_EV_CONNECTED || event == PVABI_XENBUS_EV_PEER_LOST ||
        event == PVABI_XENBUS_EV_CLOSED)
        xa.rb_attached = 0;
    log_event(&xa.bs, event);
}

static int64_t now_ms(void)
{
    return (int64_t)(it_now_ns() / 1000000u);
}

/* ---- agent side: the frontend ------------------------------------------- */

static int front_start(pvabi_ctx *ctx, struct it_msg *m)
{
    int rc;

    if (xa.front)
        return -EALREADY;
    rc = pvabi_xenbus_front_open(ctx, m->text, (unsigned)m->a[0], front_cb, NULL, &xa.front);
    if (rc == 0)
        rc = pvabi_xenbus_front_start(xa.front);
    return rc;
}

/* Shares and initialises a ring of @pages pages, allocates the port. */
static int front_ring_make(pvabi_ctx *ctx, unsigned pages)
{
    pvabi_domid be = pvabi_xenbus_front_backend_id(xa.front);
    unsigned order = 0;
    int rc;

    while ((1u << order) < pages)
        order++;
    rc = pvabi_grant_share(ctx, be, pages, 0, &xa.ring);
    if (rc < 0)
        return rc;
    rc = xbt_front_init(&xa.rf, pvabi_grant_addr(xa.ring), order);
    if (rc == 0)
        rc = pvabi_evtchn_alloc(ctx, be, &xa.fport);
    xa.sent = xa.answered = 0;
    return rc;
}

/* A refused connect leaves nothing behind: the next may use another size. */
static void front_ring_drop(pvabi_ctx *ctx)
{
    if (pvabi_grant_revoke(xa.ring) == 0)
        xa.ring = NULL;
    if (xa.fport)
        pvabi_evtchn_unbind(ctx, xa.fport);
    xa.fport = 0;
}

/* a: pages, timeout, wait for CONNECTED -> a[0] the port. */
static int front_connect(pvabi_ctx *ctx, struct it_msg *m)
{
    int timeout = (int)m->a[1];
    int rc;

    if (!xa.front)
        return -EBADF;
    rc = pvabi_xenbus_front_wait(xa.front, PVABI_XENBUS_EV_PEER_READY, timeout);
    if (rc == 0 && !xa.ring)
        rc = front_ring_make(ctx, (unsigned)m->a[0]);
    if (rc == 0)
        rc = pvabi_xenbus_front_connect(xa.front, xa.ring, xa.fport, NULL, NULL);
    if (rc < 0 && rc != -EAGAIN && xa.ring)
        front_ring_drop(ctx);
    if (rc == 0 && m->a[2])
        rc = pvabi_xenbus_front_wait(xa.front, PVABI_XENBUS_EV_CONNECTED, timeout);
    m->a[0] = xa.fport;
    return rc;
}

/* a: count: publishes requests sent+1 .. sent+count. */
static int front_send(pvabi_ctx *ctx, struct it_msg *m)
{
    for (int64_t i = 0; i < m->a[0]; i++) {
        struct xbt_req *r = xbt_front_next_req(&xa.rf);
        if (!r)
            return -ENOSPC;
        xa.sent++;
        r->id = xa.sent;
        r->val = xa.sent * 7;
    }
    int rc = xbt_front_publish(&xa.rf);
    return rc > 0 ? pvabi_evtchn_notify(ctx, xa.fport) : rc;
}

static int check_rsp(const struct xbt_rsp *r)
{
    uint64_t want = xa.answered + 1;

    if (r->id != want || r->val != want * 7 * 3 + 1)
        return -EILSEQ;
    xa.answered = want;
    return 0;
}

/* Sleeps on the context until an event or a store change, up to @ms. */
static int wait_some(pvabi_ctx *ctx, int ms)
{
    pvabi_port ports[8];
    int n = pvabi_evtchn_wait(ctx, ports, 8, ms > 50 ? 50 : ms);

    for (int i = 0; i < n; i++)
        pvabi_evtchn_unmask(ctx, ports[i]);
    if (n < 0 && n != -EINTR)
        return n;
    return pvabi_store_process(ctx) < 0 ? -ENOTCONN : 0;
}

/* a: until (all answered up to this many), timeout -> a[0] answered. */
static int front_recv(pvabi_ctx *ctx, struct it_msg *m)
{
    int64_t deadline = now_ms() + m->a[1];
    struct xbt_rsp r[16];
    int n, rc = 0;

    while (xa.answered < (uint64_t)m->a[0] && rc == 0) {
        n = xbt_front_copy_rsps(&xa.rf, r, 16);
        for (int i = 0; i < n && rc == 0; i++)
            rc = check_rsp(&r[i]);
        if (n < 0)
            rc = n;
        if (n != 0 || rc)
            continue;
        if (xbt_front_final_check(&xa.rf) != 0)
            continue;
        if (now_ms() >= deadline)
            rc = -ETIMEDOUT;
        else
            rc = wait_some(ctx, (int)(deadline - now_ms()));
    }
    m->a[0] = (int64_t)xa.answered;
    return rc;
}

/* a: revoke and unbind as well. */
static int front_close(pvabi_ctx *ctx, struct it_msg *m)
{
    int rc = 0;

    pvabi_xenbus_front_close(xa.front);
    xa.front = NULL;
    if (m->a[1] && xa.ring) {
        rc = pvabi_grant_revoke(xa.ring);
        if (rc != -EBUSY)
            xa.ring = NULL;
        if (rc == 0)
            rc = pvabi_evtchn_unbind(ctx, xa.fport);
    }
    return rc;
}

/* ---- agent side: the backend -------------------------------------------- */

/* a: frontend, devid, max ring order; text: type. */
static int back_start(pvabi_ctx *ctx, struct it_msg *m)
{
    char order[16];
    int rc;

    if (xa.back)
        return -EALREADY;
    rc = pvabi_xenbus_back_open(ctx, m->text, (pvabi_domid)m->a[0], (unsigned)m->a[1], back_cb,
                                NULL, &xa.back);
    snprintf(order, sizeof(order), "%u", (unsigned)m->a[2]);
    if (rc == 0)
        rc = pvabi_xenbus_back_set_feature(xa.back, "max-ring-page-order", order);
    if (rc == 0)
        rc = pvabi_xenbus_back_set_feature(xa.back, "feature-test", "1");
    if (rc == 0)
        rc = pvabi_xenbus_back_start(xa.back);
    xa.rb_attached = 0;
    return rc;
}

static int back_attach_ring(void)
{
    void *ring = pvabi_xenbus_back_ring(xa.back);

    if (!ring)
        return -ENOTCONN;
    if (xa.rb_attached)
        return 0;
    int rc = xbt_back_attach(&xa.rb, ring, pvabi_xenbus_back_ring_order(xa.back));
    xa.rb_attached = rc == 0;
    return rc;
}

/* Answers up to @max requests waiting; the count answered, or -errno. */
static int back_answer(pvabi_ctx *ctx, int64_t max)
{
    struct xbt_req q[16];
    int n = xbt_back_copy_reqs(&xa.rb, q, max < 16 ? (unsigned)max : 16);

    for (int i = 0; i < n; i++) {
        struct xbt_rsp *r = xbt_back_next_rsp(&xa.rb);
        r->id = q[i].id;
        r->val = q[i].val * 3 + 1;
    }
    if (n > 0 && xbt_back_publish(&xa.rb) > 0)
        pvabi_evtchn_notify(ctx, pvabi_xenbus_back_port(xa.back));
    return n;
}

/* a: count, timeout -> a[0] answered.  Answers exactly @count requests
 * (consuming no more: the rest wait in the ring, unanswered). */
static int back_serve(pvabi_ctx *ctx, struct it_msg *m)
{
    int64_t deadline = now_ms() + m->a[1], done = 0;
    int n, rc = xa.back ? back_attach_ring() : -EBADF;

    while (rc == 0 && done < m->a[0]) {
        n = back_answer(ctx, m->a[0] - done);
        if (n < 0)
            rc = n;
        done += n > 0 ? n : 0;
        if (n != 0 || rc || xbt_back_final_check(&xa.rb) != 0)
            continue;
        rc = now_ms() >= deadline ? -ETIMEDOUT : wait_some(ctx, (int)(deadline - now_ms()));
    }
    m->a[0] = done;
    return rc;
}

/* ---- agent side: both --------------------------------------------------- */

static int side_wait(struct it_msg *m)
{
    if (m->a[0] == 0)
        return xa.front ? pvabi_xenbus_front_wait(xa.front, (int)m->a[1], (int)m->a[2]) : -EBADF;
    return xa.back ? pvabi_xenbus_back_wait(xa.back, (int)m->a[1], (int)m->a[2]) : -EBADF;
}

static int side_state(struct it_msg *m)
{
    if (m->a[0] == 0 && xa.front) {
        m->a[0] = pvabi_xenbus_front_state(xa.front);
        m->a[1] = pvabi_xenbus_front_peer_state(xa.front);
        return 0;
    }
    if (m->a[0] == 1 && xa.back) {
        m->a[0] = pvabi_xenbus_back_state(xa.back);
        m->a[1] = pvabi_xenbus_back_peer_state(xa.back);
        m->a[2] = pvabi_xenbus_back_reattached(xa.back);
        m->a[3] = pvabi_xenbus_back_ring_order(xa.back);
        m->a[4] = pvabi_xenbus_back_port(xa.back);
        return 0;
    }
    return -EBADF;
}

static int side_events(struct it_msg *m)
{
    struct xb_side *s = m->a[0] == 0 ? &xa.fs : &xa.bs;

    m->n = s->nevents;
    for (unsigned i = 0; i < s->nevents; i++)
        m->v[i] = s->events[i];
    s->nevents = 0;
    return 0;
}

static int side_disconnect(struct it_msg *m)
{
    if (m->a[0] == 0)
        return xa.front ? pvabi_xenbus_front_disconnect(xa.front) : -EBADF;
    return xa.back ? pvabi_xenbus_back_disconnect(xa.back) : -EBADF;
}

static int side_close(pvabi_ctx *ctx, struct it_msg *m)
{
    if (m->a[0] == 0)
        return front_close(ctx, m);
    pvabi_xenbus_back_close(xa.back);
    xa.back = NULL;
    xa.rb_attached = 0;
    return 0;
}

/* ---- agent side: the store ---------------------------------------------- */

static int store_op(pvabi_ctx *ctx, struct it_msg *m)
{
    char *eq, *value = NULL;
    int rc;

    m->text[sizeof(m->text) - 1] = '\0';
    switch (m->op) {
    case IT_OP_XB_READ:
        rc = pvabi_store_read(ctx, PVABI_STORE_TXN_NONE, m->text, &value);
        snprintf(m->text, sizeof(m->text), "%s", value ? value : "");
        free(value);
        return rc;
    case IT_OP_XB_WRITE:
        eq = strchr(m->text, '=');
        if (!eq)
            return -EINVAL;
        *eq = '\0';
        return pvabi_store_write(ctx, PVABI_STORE_TXN_NONE, m->text, eq + 1);
    case IT_OP_XB_RM:
        return pvabi_store_rm(ctx, PVABI_STORE_TXN_NONE, m->text);
    case IT_OP_XB_ADD:
        return pvabi_xenbus_device_add(ctx, m->text, (pvabi_domid)m->a[0], (pvabi_domid)m->a[1],
                                       (unsigned)m->a[2], NULL, NULL);
    default:
        return pvabi_xenbus_device_remove(ctx, m->text, (pvabi_domid)m->a[0], (pvabi_domid)m->a[1],
                                          (unsigned)m->a[2]);
    }
}

int it_xb_dispatch(pvabi_ctx *ctx, struct it_msg *m)
{
    switch (m->op) {
    case IT_OP_XB_FRONT_START:
        return front_start(ctx, m);
    case IT_OP_XB_FRONT_CONNECT:
        return front_connect(ctx, m);
    case IT_OP_XB_FRONT_SEND:
        return front_send(ctx, m);
    case IT_OP_XB_FRONT_RECV:
        return front_recv(ctx, m);
    case IT_OP_XB_BACK_START:
        return back_start(ctx, m);
    case IT_OP_XB_BACK_SERVE:
        return back_serve(ctx, m);
    case IT_OP_XB_WAIT:
        return side_wait(m);
    case IT_OP_XB_STATE:
        return side_state(m);
    case IT_OP_XB_EVENTS:
        return side_events(m);
    case IT_OP_XB_DISCONNECT:
        return side_disconnect(m);
    case IT_OP_XB_CLOSE:
        return side_close(ctx, m);
    default:
        return store_op(ctx, m);
    }
}

void it_xb_forget(void)
{
    /* The context is about to close: it frees what the handles hold. */
    pvabi_xenbus_front_close(xa.front);
    pvabi_xenbus_back_close(xa.back);
    memset(&xa, 0, sizeof(xa));
}

/* ---- coordinator side ----------------------------------------------------- */

static struct it_msg xb_cmd(uint32_t op, const char *text, int64_t a0, int64_t a1, int64_t a2)
{
    struct it_msg m;

    memset(&m, 0, sizeof(m));
    m.op = op;
    m.a[0] = a0;
    m.a[1] = a1;
    m.a[2] = a2;
    if (text)
        snprintf(m.text, sizeof(m.text), "%s", text);
    return m;
}

int it_xb_device_add(struct it_agent *ts, const char *type, pvabi_domid fe, pvabi_domid be,
                     unsigned devid)
{
    struct it_msg m = xb_cmd(IT_OP_XB_ADD, type, fe, be, devid);
    return it_agent_call(ts, &m);
}

int it_xb_device_remove(struct it_agent *ts, const char *type, pvabi_domid fe, pvabi_domid be,
                        unsigned devid)
{
    struct it_msg m = xb_cmd(IT_OP_XB_REMOVE, type, fe, be, devid);
    return it_agent_call(ts, &m);
}

int it_xb_read(struct it_agent *a, const char *path, char *value, size_t size)
{
    struct it_msg m = xb_cmd(IT_OP_XB_READ, path, 0, 0, 0);
    int rc = it_agent_call(a, &m);

    snprintf(value, size, "%s", m.text);
    return rc;
}

int it_xb_write(struct it_agent *a, const char *path, const char *value)
{
    char kv[256];
    struct it_msg m;

    snprintf(kv, sizeof(kv), "%s=%s", path, value);
    m = xb_cmd(IT_OP_XB_WRITE, kv, 0, 0, 0);
    return it_agent_call(a, &m);
}

int it_xb_rm(struct it_agent *a, const char *path)
{
    struct it_msg m = xb_cmd(IT_OP_XB_RM, path, 0, 0, 0);
    return it_agent_call(a, &m);
}

int it_xb_front_start(struct it_agent *fe, const char *type, unsigned devid)
{
    struct it_msg m = xb_cmd(IT_OP_XB_FRONT_START, type, devid, 0, 0);
    return it_agent_call(fe, &m);
}

void it_xb_front_connect_send(struct it_agent *fe, unsigned pages, int timeout_ms, int wait)
{
    struct it_msg m = xb_cmd(IT_OP_XB_FRONT_CONNECT, NULL, pages, timeout_ms, wait);
    it_agent_send(fe, &m);
}

int it_xb_front_connect(struct it_agent *fe, unsigned pages, int timeout_ms, int wait)
{
    struct it_msg m = xb_cmd(IT_OP_XB_FRONT_CONNECT, NULL, pages, timeout_ms, wait);
    return it_agent_call(fe, &m);
}

int it_xb_front_send(struct it_agent *fe, unsigned count)
{
    struct it_msg m = xb_cmd(IT_OP_XB_FRONT_SEND, NULL, count, 0, 0);
    return it_agent_call(fe, &m);
}

int it_xb_front_recv(struct it_agent *fe, uint64_t until, int timeout_ms, uint64_t *answered)
{
    struct it_msg m = xb_cmd(IT_OP_XB_FRONT_RECV, NULL, (int64_t)until, timeout_ms, 0);
    int rc = it_agent_call(fe, &m);

    if (answered)
        *answered = (uint64_t)m.a[0];
    return rc;
}

int it_xb_back_start(struct it_agent *be, const char *type, pvabi_domid fe, unsigned devid,
                     unsigned max_order)
{
    struct it_msg m = xb_cmd(IT_OP_XB_BACK_START, type, fe, devid, max_order);
    return it_agent_call(be, &m);
}

void it_xb_back_serve_send(struct it_agent *be, unsigned count, int timeout_ms)
{
    struct it_msg m = xb_cmd(IT_OP_XB_BACK_SERVE, NULL, count, timeout_ms, 0);
    it_agent_send(be, &m);
}

int it_xb_back_serve(struct it_agent *be, unsigned count, int timeout_ms, unsigned *served)
{
    struct it_msg m = xb_cmd(IT_OP_XB_BACK_SERVE, NULL, count, timeout_ms, 0);
    int rc = it_agent_call(be, &m);

    if (served)
        *served = (unsigned)m.a[0];
    return rc;
}

void it_xb_wait_send(struct it_agent *a, int side, int until, int timeout_ms)
{
    struct it_msg m = xb_cmd(IT_OP_XB_WAIT, NULL, side, until, timeout_ms);
    it_agent_send(a, &m);
}

int it_xb_wait(struct it_agent *a, int side, int until, int timeout_ms)
{
    struct it_msg m = xb_cmd(IT_OP_XB_WAIT, NULL, side, until, timeout_ms);
    return it_agent_call(a, &m);
}

int it_xb_state(struct it_agent *a, int side, struct it_xb_state *st)
{
    struct it_msg m = xb_cmd(IT_OP_XB_STATE, NULL, side, 0, 0);
    int rc = it_agent_call(a, &m);

    st->state = (int)m.a[0];
    st->peer = (int)m.a[1];
    st->reattached = (int)m.a[2];
    st->order = (unsigned)m.a[3];
    st->port = (pvabi_port)m.a[4];
    return rc;
}

unsigned it_xb_events(struct it_agent *a, int side, int *events, unsigned max)
{
    struct it_msg m = xb_cmd(IT_OP_XB_EVENTS, NULL, side, 0, 0);
    unsigned n = 0;

    it_agent_call(a, &m);
    for (; n < m.n && n < max; n++)
        events[n] = (int)m.v[n];
    return n;
}

int it_xb_disconnect(struct it_agent *a, int side)
{
    struct it_msg m = xb_cmd(IT_OP_XB_DISCONNECT, NULL, side, 0, 0);
    return it_agent_call(a, &m);
}

int it_xb_close(struct it_agent *a, int side, int release_ring)
{
    struct it_msg m = xb_cmd(IT_OP_XB_CLOSE, NULL, side, release_ring, 0);
    return it_agent_call(a, &m);
}
