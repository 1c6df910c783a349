/* SPDX-License-Identifier: MIT */
/*
 * pvabi/stream.h across processes: a server and a client, each a forked
 * child in its own domain on a private pvabi-hv (or on Xen).  Byte-exact
 * transfers both ways through every ring layout (in-page, page-granted,
 * mixed, the largest), timeouts, clean closes, a side killed with SIGKILL
 * (the survivor is woken by unmap-notify and reads what remains), and a
 * hostile peer built by hand on the shared page (libxenvchan's layout, from
 * the public struct) whose lies give -EPROTO, never a crash or a hang.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "itest.h"
#include "sides.h"

#define WAIT_MS IT_TIMEOUT_MS
/* The default store directory (pvabi/stream.h). */
#define STREAM_DIR_FMT "/local/domain/%u/data/pvabi-stream/%u"

struct xfer {
    size_t read_size, write_size; /* the server's */
    uint64_t total;               /* bytes each way */
};

enum { SEED_C2S = 11, SEED_S2C = 22 };

static size_t min_sz(size_t a, uint64_t b)
{
    return (uint64_t)a < b ? a : (size_t)b;
}

/* Sends @out_total bytes of @out_seed and receives @in_total of @in_seed,
 * interleaved, in chunks of changing odd sizes so that copies straddle the
 * ring's end; sleeps in pvabi_stream_wait() when neither moves. */
static int pump(pvabi_stream *s, uint64_t out_total, unsigned out_seed, uint64_t in_total,
                unsigned in_seed)
{
    static unsigned char buf[16384];
    uint64_t sent = 0, got = 0;

    while (sent < out_total || got < in_total) {
        int moved = 0;
        if (sent < out_total) {
            size_t n = min_sz(1 + (sent * 7919) % sizeof(buf), out_total - sent);
            for (size_t i = 0; i < n; i++)
                buf[i] = side_pattern(out_seed, sent + i);
            ssize_t w = pvabi_stream_write(s, buf, n);
            CHK(w == -EAGAIN || (w > 0 && (size_t)w <= n));
            sent += w > 0 ? (uint64_t)w : 0;
            moved |= w > 0;
        }
        if (got < in_total) {
            ssize_t r = pvabi_stream_read(s, buf, min_sz(sizeof(buf), in_total - got));
            CHK(r == -EAGAIN || r > 0);
            for (ssize_t i = 0; i < r; i++)
                CHK(buf[i] == side_pattern(in_seed, got + (uint64_t)i));
            got += r > 0 ? (uint64_t)r : 0;
            moved |= r > 0;
        }
        if (!moved) {
            unsigned ev = (sent < out_total ? PVABI_STREAM_OUT : 0u) |
                          (got < in_total ? PVABI_STREAM_IN : 0u);
            int rc = pvabi_stream_wait(s, ev, WAIT_MS);
            CHK(rc > 0 && !(rc & PVABI_STREAM_HUP));
        }
    }
    return 0;
}

static int xfer_server(struct side_env *e)
{
    const struct xfer *x = e->arg;
    pvabi_stream *s;

    CHK(pvabi_stream_server_open(e->ctx, e->other, NULL, x->read_size, x->write_size, &s) == 0);
    CHK(pvabi_stream_state(s) == PVABI_STREAM_WAITING ||
        pvabi_stream_state(s) == PVABI_STREAM_OPEN);
    CHK(side_send(e->peer, 1) == 0); /* the nodes are there */
    CHK(pvabi_stream_wait(s, PVABI_STREAM_CONN, WAIT_MS) == PVABI_STREAM_CONN);
    CHK(pump(s, x->total, SEED_S2C, x->total, SEED_C2S) == 0);
    /* Neither end closes before both are done (a close is a HUP). */
    CHK(side_expect(e->peer, 2) == 0);
    CHK(side_send(e->peer, 3) == 0);
    pvabi_stream_close(s);
    return 0;
}

static int xfer_client(struct side_env *e)
{
    const struct xfer *x = e->arg;
    pvabi_stream *s;
    char c;

    CHK(side_expect(e->peer, 1) == 0);
    CHK(pvabi_stream_client_open(e->ctx, e->other, NULL, WAIT_MS, &s) == 0);
    CHK(pvabi_stream_state(s) == PVABI_STREAM_OPEN);
    CHK(pump(s, x->total, SEED_C2S, x->total, SEED_S2C) == 0);
    /* Nothing more than was sent. */
    CHK(pvabi_stream_read(s, &c, 1) == -EAGAIN);
    CHK(pvabi_stream_ready(s) == 0);
    CHK(side_send(e->peer, 2) == 0);
    CHK(side_expect(e->peer, 3) == 0);
    pvabi_stream_close(s);
    return 0;
}

static void run_pair(side_fn *server, side_fn *client, const void *arg)
{
    struct side a, b;
    int sa, sb;

    sides_start(&a, server, &b, client, arg);
    sa = side_end(&a, "server");
    sb = side_end(&b, "client");
    assert_true(side_ok(sa));
    assert_true(side_ok(sb));
}

/* Orders 10 (left) and 11 (right): both rings inside the interface page. */
static void test_stream_inpage_rings_both_ways(void **state)
{
    const struct xfer x = { 1024, 2048, 4u << 20 };

    (void)state;
    run_pair(xfer_server, xfer_client, &x);
}

/* Orders 11 (left) and 10 (right): the other in-page arrangement. */
static void test_stream_inpage_rings_swapped(void **state)
{
    const struct xfer x = { 2000, 1000, 1u << 20 };

    (void)state;
    run_pair(xfer_server, xfer_client, &x);
}

/* 1 page (order 12) and 16 pages (order 16), granted separately. */
static void test_stream_page_rings(void **state)
{
    const struct xfer x = { 4096, 65536, 16u << 20 };

    (void)state;
    run_pair(xfer_server, xfer_client, &x);
}

/* Left in the page (2048), right 32 pages: the mixed layout. */
static void test_stream_mixed_rings(void **state)
{
    const struct xfer x = { 1500, 100000, 8u << 20 };

    (void)state;
    run_pair(xfer_server, xfer_client, &x);
}

/* The largest rings (order 19, 128 pages each way), 64 MiB each way. */
static void test_stream_largest_rings_many_mb(void **state)
{
    const struct xfer x = { PVABI_STREAM_SIZE_MAX, PVABI_STREAM_SIZE_MAX, 64u << 20 };

    (void)state;
    run_pair(xfer_server, xfer_client, &x);
}

/* ---- arguments and timeouts ------------------------------------------------ */

static int args_server(struct side_env *e)
{
    pvabi_stream *s = NULL;
    char path[128];

    CHK(pvabi_stream_server_open(e->ctx, e->other, NULL, 0, 1024, &s) == -EINVAL);
    CHK(pvabi_stream_server_open(e->ctx, e->other, NULL, 1024, PVABI_STREAM_SIZE_MAX + 1, &s) ==
        -EINVAL);
    CHK(pvabi_stream_server_open(e->ctx, e->other, "", 1024, 1024, &s) == -EINVAL);
    CHK(s == NULL);
    /* A path of our choosing, relative to our home. */
    CHK(pvabi_stream_server_open(e->ctx, e->other, "data/custom", 1024, 1024, &s) == 0);
    CHK(strcmp(pvabi_stream_path(s), "data/custom") == 0);
    snprintf(path, sizeof(path), "/local/domain/%u/data/custom/ring-ref", e->self);
    {
        char *perms = NULL;
        char want[32];
        CHK(pvabi_store_get_perms(e->ctx, PVABI_STORE_TXN_NONE, path, &perms) == 2);
        snprintf(want, sizeof(want), "n%u r%u", e->self, e->other);
        CHK(strcmp(perms, want) == 0);
        free(perms);
    }
    CHK(side_send(e->peer, 1) == 0);
    /* The client fills our read ring and times out; we read nothing until
     * it says so. */
    CHK(side_expect(e->peer, 2) == 0);
    {
        char buf[4096];
        CHK(pvabi_stream_read_all(s, buf, 1024, WAIT_MS) == 1024);
    }
    CHK(side_expect(e->peer, 3) == 0);
    pvabi_stream_close(s);
    /* Closing removes the nodes. */
    CHK(pvabi_store_read(e->ctx, PVABI_STORE_TXN_NONE, path, &(char *){ NULL }) == -ENOENT);
    return 0;
}

static int args_client(struct side_env *e)
{
    pvabi_stream *s = NULL;
    char path[128], buf[4096];
    uint64_t t0;

    /* No server at the default path: the wait ends at the timeout. */
    t0 = side_now_ms();
    CHK(pvabi_stream_client_open(e->ctx, e->other, NULL, 200, &s) == -ETIMEDOUT);
    CHK(side_now_ms() - t0 >= 200);
    CHK(pvabi_stream_client_open(e->ctx, e->other, NULL, 0, &s) == -ETIMEDOUT);
    CHK(pvabi_stream_client_open(e->ctx, e->other, NULL, -1, &s) == -EINVAL);
    CHK(s == NULL);
    CHK(side_expect(e->peer, 1) == 0);
    snprintf(path, sizeof(path), "/local/domain/%u/data/custom", e->other);
    CHK(pvabi_stream_client_open(e->ctx, e->other, path, 0, &s) == 0);
    /* Zero-length calls, NULL arguments. */
    CHK(pvabi_stream_read(s, NULL, 0) == 0);
    CHK(pvabi_stream_write(s, NULL, 0) == 0);
    CHK(pvabi_stream_read(s, NULL, 1) == -EINVAL);
    CHK(pvabi_stream_read(NULL, buf, 1) == -EINVAL);
    CHK(pvabi_stream_wait(s, 0x100, 0) == -EINVAL);
    CHK(pvabi_stream_wait(s, PVABI_STREAM_IN, -1) == -EINVAL);
    /* Nothing to read: a check, then timeouts that really wait. */
    CHK(pvabi_stream_wait(s, PVABI_STREAM_IN, 0) == 0);
    CHK(pvabi_stream_read(s, buf, sizeof(buf)) == -EAGAIN);
    t0 = side_now_ms();
    CHK(pvabi_stream_read_all(s, buf, 10, 150) == -ETIMEDOUT);
    CHK(side_now_ms() - t0 >= 150);
    CHK(pvabi_stream_wait(s, PVABI_STREAM_CONN | PVABI_STREAM_OUT, 0) ==
        (PVABI_STREAM_CONN | PVABI_STREAM_OUT));
    /* Our write ring (the server's read ring) holds 1024: a write_all of
     * more stops there at the timeout and says how much went. */
    memset(buf, 'x', sizeof(buf));
    CHK(pvabi_stream_space(s) == 1024);
    t0 = side_now_ms();
    CHK(pvabi_stream_write_all(s, buf, 3000, 150) == 1024);
    CHK(side_now_ms() - t0 >= 150);
    CHK(pvabi_stream_write(s, buf, 1) == -EAGAIN);
    CHK(pvabi_stream_write_all(s, buf, 1, 50) == -ETIMEDOUT);
    CHK(pvabi_stream_wait(s, PVABI_STREAM_OUT, 0) == 0);
    /* The server drains it: wait wakes on its notify (we asked: READ bit). */
    CHK(side_send(e->peer, 2) == 0);
    CHK(pvabi_stream_wait(s, PVABI_STREAM_OUT, WAIT_MS) == PVABI_STREAM_OUT);
    CHK(pvabi_stream_space(s) > 0);
    CHK(side_send(e->peer, 3) == 0);
    pvabi_stream_close(s);
    return 0;
}

static void test_stream_arguments_and_timeouts(void **state)
{
    (void)state;
    run_pair(args_server, args_client, NULL);
}

/* ---- closes and deaths ------------------------------------------------------ */

#define TAIL 5000u /* bytes left in the ring when a side goes */

static int write_tail(pvabi_stream *s, unsigned seed)
{
    unsigned char buf[TAIL];

    for (unsigned i = 0; i < TAIL; i++)
        buf[i] = side_pattern(seed, i);
    CHK(pvabi_stream_write_all(s, buf, TAIL, WAIT_MS) == TAIL);
    return 0;
}

/* The peer went: we see HUP, read the tail exactly, then the end. */
static int survivor_checks(pvabi_stream *s, unsigned seed)
{
    unsigned char buf[TAIL + 100];
    int rc;

    rc = pvabi_stream_wait(s, 0, WAIT_MS);
    CHK(rc == PVABI_STREAM_HUP);
    CHK(pvabi_stream_state(s) == PVABI_STREAM_CLOSED);
    CHK(pvabi_stream_wait(s, PVABI_STREAM_IN | PVABI_STREAM_OUT, 0) ==
        (PVABI_STREAM_HUP | PVABI_STREAM_IN | PVABI_STREAM_OUT));
    CHK(pvabi_stream_write(s, "x", 1) == -EPIPE);
    CHK(pvabi_stream_read_all(s, buf, sizeof(buf), WAIT_MS) == TAIL);
    for (unsigned i = 0; i < TAIL; i++)
        CHK(buf[i] == side_pattern(seed, i));
    CHK(pvabi_stream_read(s, buf, 1) == 0);
    CHK(pvabi_stream_read_all(s, buf, 1, WAIT_MS) == 0);
    CHK(pvabi_stream_write_all(s, buf, 1, WAIT_MS) == -EPIPE);
    return 0;
}

struct ending {
    int server_goes; /* 1: the server goes, 0: the client */
    int killed;      /* 1: SIGKILL by the coordinator, 0: pvabi_stream_close */
};

/* The side that goes: writes the tail, then closes or waits to be killed. */
static int goer(struct side_env *e, pvabi_stream *s)
{
    const struct ending *en = e->arg;

    CHK(write_tail(s, SEED_S2C) == 0);
    if (en->killed) {
        CHK(side_send(e->coord, 1) == 0);
        CHK(side_expect(e->coord, 99) == 0); /* never comes: killed first */
        return 1;
    }
    pvabi_stream_close(s);
    CHK(side_send(e->peer, 5) == 0);
    return 0;
}

/* The survivor: told by the coordinator (kill) or the peer (close). */
static int stayer(struct side_env *e, pvabi_stream *s)
{
    const struct ending *en = e->arg;
    uint64_t t0 = side_now_ms();

    if (en->killed) {
        /* Already asleep in wait() when the kill comes, most likely. */
        CHK(side_send(e->coord, 2) == 0);
        CHK(survivor_checks(s, SEED_S2C) == 0);
    } else {
        CHK(side_expect(e->peer, 5) == 0);
        CHK(survivor_checks(s, SEED_S2C) == 0);
    }
    /* Woken by the event, not by the timeout. */
    CHK(side_now_ms() - t0 < WAIT_MS / 2);
    pvabi_stream_close(s);
    return 0;
}

static int ending_server(struct side_env *e)
{
    const struct ending *en = e->arg;
    pvabi_stream *s;

    CHK(pvabi_stream_server_open(e->ctx, e->other, NULL, 65536, 65536, &s) == 0);
    CHK(side_send(e->peer, 1) == 0);
    /* (With HUP too when the client already came and went.) */
    CHK(pvabi_stream_wait(s, PVABI_STREAM_CONN, WAIT_MS) & PVABI_STREAM_CONN);
    return en->server_goes ? goer(e, s) : stayer(e, s);
}

static int ending_client(struct side_env *e)
{
    const struct ending *en = e->arg;
    pvabi_stream *s;

    CHK(side_expect(e->peer, 1) == 0);
    CHK(pvabi_stream_client_open(e->ctx, e->other, NULL, WAIT_MS, &s) == 0);
    return en->server_goes ? stayer(e, s) : goer(e, s);
}

static void run_ending(const struct ending *en)
{
    struct side srv, cli;
    struct side *goes, *stays;

    sides_start(&srv, ending_server, &cli, ending_client, en);
    goes = en->server_goes ? &srv : &cli;
    stays = en->server_goes ? &cli : &srv;
    if (en->killed) {
        int64_t v;
        assert_int_equal(side_recv(goes->coord, &v, WAIT_MS), 0);  /* tail written */
        assert_int_equal(side_recv(stays->coord, &v, WAIT_MS), 0); /* survivor waiting */
        side_kill(goes);
    } else {
        assert_true(side_ok(side_end(goes, "closing side")));
    }
    assert_true(side_ok(side_end(stays, "survivor")));
}

static void test_stream_server_closes_client_reads_rest(void **state)
{
    const struct ending en = { 1, 0 };

    (void)state;
    run_ending(&en);
}

static void test_stream_client_closes_server_reads_rest(void **state)
{
    const struct ending en = { 0, 0 };

    (void)state;
    run_ending(&en);
}

static void test_stream_server_killed_client_sees_closed(void **state)
{
    const struct ending en = { 1, 1 };

    (void)state;
    if (it_is_xen()) {
        /* On Xen a share's unmap-notify can be set only when sharing, which
         * the grant layer does not do yet: a killed server is seen through
         * the port's state only (docs/stream.md), not woken at once. */
        fprintf(stderr, "skipped on xen: no unmap-notify on a server's share there\n");
        skip();
    }
    run_ending(&en);
}

static void test_stream_client_killed_server_sees_closed(void **state)
{
    const struct ending en = { 0, 1 };

    (void)state;
    run_ending(&en);
}

/* ---- a hostile server, built by hand on libxenvchan's layout ------------------ */

enum attack {
    BAD_ORDER_LOW,   /* left_order 9 */
    BAD_ORDER_SAME,  /* both 10: the same half page */
    BAD_ORDER_HIGH,  /* 21 */
    BIG_ORDER,       /* 20: libxenvchan's largest, more than pvabi maps */
    GRANTS_OVERFLOW, /* 10 and 20: the list would run into the ring */
    BAD_REF_NODE,    /* ring-ref "12abc" */
    ZERO_REF_NODE,   /* ring-ref "0" */
    BAD_GRANT_REF,   /* a grant list entry that is no grant */
    SRV_LIVE_ZERO,   /* the server already gone */
    SRV_LIVE_BAD,    /* srv_live 9 at open */
    PROD_AHEAD,      /* after connect: right.prod a whole ring ahead and more */
    PROD_BACKWARDS,  /* after data: right.prod moves back */
    CONS_PAST_PROD,  /* after connect: left.cons beyond left.prod */
    LIVE_BAD_LATER,  /* after connect: srv_live 7 */
    ATTACK_OPEN_LAST = SRV_LIVE_BAD,
};

struct hostile {
    enum attack what;
    int open_rc; /* what client_open must return (0: then the later attack) */
};

struct raw_server {
    pvabi_grant *page, *ring;
    struct pvabi_stream_intf *intf;
    pvabi_port port;
};

static int raw_publish(struct side_env *e, const char *ref, pvabi_port port)
{
    char node[128];

    snprintf(node, sizeof(node), "data/pvabi-stream/%u/ring-ref", e->other);
    CHK(pvabi_store_write(e->ctx, PVABI_STORE_TXN_NONE, node, ref) == 0);
    snprintf(node, sizeof(node), "/local/domain/%u/data/pvabi-stream/%u/ring-ref", e->self,
             e->other);
    {
        char perms[32];
        snprintf(perms, sizeof(perms), "n%u r%u", e->self, e->other);
        CHK(pvabi_store_set_perms(e->ctx, PVABI_STORE_TXN_NONE, node, perms) == 0);
        snprintf(node, sizeof(node), "data/pvabi-stream/%u/event-channel", e->other);
        CHK(pvabi_store_printf(e->ctx, PVABI_STORE_TXN_NONE, node, "%u", port) == 0);
        snprintf(node, sizeof(node), "/local/domain/%u/data/pvabi-stream/%u/event-channel", e->self,
                 e->other);
        CHK(pvabi_store_set_perms(e->ctx, PVABI_STORE_TXN_NONE, node, perms) == 0);
    }
    return 0;
}

/* Sets up the page as libxenvchan's server would (orders 10/11 unless the
 * attack says otherwise), with the attack's lie in it. */
static int raw_setup(struct side_env *e, enum attack what, struct raw_server *r)
{
    char ref[32];
    unsigned lo = 10, ro = 11;

    CHK(pvabi_evtchn_alloc(e->ctx, e->other, &r->port) == 0);
    CHK(pvabi_grant_share(e->ctx, e->other, 1, 0, &r->page) == 0);
    CHK(pvabi_grant_share(e->ctx, e->other, 1, 0, &r->ring) == 0);
    r->intf = pvabi_grant_addr(r->page);
    if (what == BAD_ORDER_LOW)
        lo = 9;
    if (what == BAD_ORDER_SAME)
        ro = 10;
    if (what == BAD_ORDER_HIGH)
        ro = 21;
    if (what == BIG_ORDER)
        ro = 20, lo = 11;
    if (what == GRANTS_OVERFLOW)
        ro = 20;
    if (what == BAD_GRANT_REF) {
        ro = 12;
        r->intf->grants[0] = 999999;
    }
    r->intf->left_order = (uint16_t)lo;
    r->intf->right_order = (uint16_t)ro;
    r->intf->cli_live = PVABI_STREAM_LIVE_WAITING;
    r->intf->srv_live = what == SRV_LIVE_ZERO ? 0 : what == SRV_LIVE_BAD ? 9 : 1;
    r->intf->cli_notify = PVABI_STREAM_NOTIFY_WRITE;
    snprintf(ref, sizeof(ref), "%u", pvabi_grant_ref(r->page, 0));
    return raw_publish(e,
                       what == BAD_REF_NODE    ? "12abc"
                       : what == ZERO_REF_NODE ? "0"
                                               : ref,
                       r->port);
}

/* Waits for the client's connect notify (cli_live 1). */
static int raw_await_client(struct side_env *e, struct raw_server *r)
{
    pvabi_port p;
    uint64_t t0 = side_now_ms();

    while (__atomic_load_n(&r->intf->cli_live, __ATOMIC_ACQUIRE) != 1) {
        CHK(side_now_ms() - t0 < WAIT_MS);
        CHK(pvabi_evtchn_wait(e->ctx, &p, 1, WAIT_MS) >= 0);
        pvabi_evtchn_unmask(e->ctx, r->port);
    }
    return 0;
}

static int raw_attack(struct side_env *e, enum attack what, struct raw_server *r)
{
    struct pvabi_stream_intf *i = r->intf;
    unsigned char *right = (unsigned char *)i + 2048;

    switch (what) {
    case PROD_AHEAD:
        pvabi_store_release_u32(&i->right.prod, i->right.cons + 2048 + 1);
        break;
    case PROD_BACKWARDS:
        /* Publish 10 good bytes, let the client read 5, then go back. */
        for (unsigned k = 0; k < 10; k++)
            right[k] = side_pattern(SEED_S2C, k);
        pvabi_store_release_u32(&i->right.prod, 10);
        CHK(side_send(e->peer, 7) == 0);
        CHK(side_expect(e->peer, 8) == 0);
        pvabi_store_release_u32(&i->right.prod, 3);
        break;
    case CONS_PAST_PROD:
        pvabi_store_release_u32(&i->left.cons, i->left.prod + 100);
        break;
    case LIVE_BAD_LATER:
        __atomic_store_n(&i->srv_live, 7, __ATOMIC_RELEASE);
        break;
    default:
        break;
    }
    return 0;
}

static int hostile_server(struct side_env *e)
{
    const struct hostile *h = e->arg;
    struct raw_server r;

    CHK(raw_setup(e, h->what, &r) == 0);
    CHK(side_send(e->peer, 1) == 0);
    if (h->what > ATTACK_OPEN_LAST) {
        CHK(raw_await_client(e, &r) == 0);
        CHK(raw_attack(e, h->what, &r) == 0);
        CHK(side_send(e->peer, 2) == 0);
    }
    CHK(side_expect(e->peer, 3) == 0);
    /* A client whose open failed never connected: its unmap must leave
     * cli_live "waiting", not "closed" (which a server takes as final). */
    if (h->open_rc != 0)
        CHK(__atomic_load_n(&r.intf->cli_live, __ATOMIC_ACQUIRE) == PVABI_STREAM_LIVE_WAITING);
    /* The client has unmapped (or never mapped): the revokes go through. */
    CHK(pvabi_grant_revoke(r.ring) == 0);
    CHK(pvabi_grant_revoke(r.page) == 0);
    return 0;
}

/* After a lie every call fails fast with -EPROTO, and close still works. */
static int all_broken(pvabi_stream *s)
{
    char buf[16];

    CHK(pvabi_stream_read(s, buf, sizeof(buf)) == -EPROTO);
    CHK(pvabi_stream_write(s, buf, sizeof(buf)) == -EPROTO);
    CHK(pvabi_stream_wait(s, PVABI_STREAM_IN | PVABI_STREAM_OUT, WAIT_MS) == -EPROTO);
    CHK(pvabi_stream_read_all(s, buf, sizeof(buf), WAIT_MS) == -EPROTO);
    CHK(pvabi_stream_state(s) == -EPROTO);
    CHK(pvabi_stream_ready(s) == -EPROTO);
    CHK(pvabi_stream_space(s) == -EPROTO);
    return 0;
}

static int hostile_client(struct side_env *e)
{
    const struct hostile *h = e->arg;
    pvabi_stream *s = NULL;
    char buf[16];

    CHK(side_expect(e->peer, 1) == 0);
    CHK(pvabi_stream_client_open(e->ctx, e->other, NULL, WAIT_MS, &s) == h->open_rc);
    if (h->open_rc != 0) {
        CHK(s == NULL);
        CHK(side_send(e->peer, 3) == 0);
        return 0;
    }
    if (h->what == PROD_BACKWARDS) {
        CHK(side_expect(e->peer, 7) == 0);
        CHK(pvabi_stream_read_all(s, buf, 5, WAIT_MS) == 5);
        CHK(side_send(e->peer, 8) == 0);
    }
    CHK(side_expect(e->peer, 2) == 0);
    if (h->what == CONS_PAST_PROD)
        CHK(pvabi_stream_write(s, "abc", 3) == -EPROTO);
    else
        CHK(pvabi_stream_read(s, buf, sizeof(buf)) == -EPROTO);
    CHK(all_broken(s) == 0);
    pvabi_stream_close(s);
    CHK(side_send(e->peer, 3) == 0);
    return 0;
}

static void run_hostile(enum attack what, int open_rc)
{
    const struct hostile h = { what, open_rc };

    run_pair(hostile_server, hostile_client, &h);
}

static void test_stream_hostile_orders(void **state)
{
    (void)state;
    run_hostile(BAD_ORDER_LOW, -EPROTO);
    run_hostile(BAD_ORDER_SAME, -EPROTO);
    run_hostile(BAD_ORDER_HIGH, -EPROTO);
    run_hostile(GRANTS_OVERFLOW, -EPROTO);
    run_hostile(BIG_ORDER, -ENOTSUP);
}

static void test_stream_hostile_nodes_and_refs(void **state)
{
    (void)state;
    run_hostile(BAD_REF_NODE, -EPROTO);
    run_hostile(ZERO_REF_NODE, -EPROTO);
    /* Xen reports a ref that is no grant as GNTST_general_error: -EIO. */
    run_hostile(BAD_GRANT_REF, it_is_xen() ? -EIO : -ENOENT);
}

static void test_stream_hostile_live_byte(void **state)
{
    (void)state;
    run_hostile(SRV_LIVE_ZERO, -ECONNRESET);
    run_hostile(SRV_LIVE_BAD, -EPROTO);
    run_hostile(LIVE_BAD_LATER, 0);
}

static void test_stream_hostile_indices(void **state)
{
    (void)state;
    run_hostile(PROD_AHEAD, 0);
    run_hostile(PROD_BACKWARDS, 0);
    run_hostile(CONS_PAST_PROD, 0);
}

/* ---- a hostile client against pvabi's server -------------------------------- */

static int victim_server(struct side_env *e)
{
    pvabi_stream *s;
    char buf[64];

    CHK(pvabi_stream_server_open(e->ctx, e->other, NULL, 1024, 2048, &s) == 0);
    CHK(side_send(e->peer, 1) == 0);
    CHK(side_expect(e->peer, 2) == 0); /* the client lied */
    CHK(pvabi_stream_read(s, buf, sizeof(buf)) == -EPROTO);
    CHK(all_broken(s) == 0);
    pvabi_stream_close(s);
    CHK(side_send(e->peer, 3) == 0);
    return 0;
}

static int liar_client(struct side_env *e)
{
    char node[128];
    uint32_t ref, port;
    pvabi_map *m;
    pvabi_port lp;
    struct pvabi_stream_intf *i;

    CHK(side_expect(e->peer, 1) == 0);
    snprintf(node, sizeof(node), "/local/domain/%u/data/pvabi-stream/%u/ring-ref", e->other,
             e->self);
    CHK(pvabi_store_read_u32(e->ctx, PVABI_STORE_TXN_NONE, node, &ref) == 0);
    snprintf(node, sizeof(node), "/local/domain/%u/data/pvabi-stream/%u/event-channel", e->other,
             e->self);
    CHK(pvabi_store_read_u32(e->ctx, PVABI_STORE_TXN_NONE, node, &port) == 0);
    CHK(pvabi_evtchn_bind(e->ctx, e->other, port, &lp) == 0);
    CHK(pvabi_grant_map(e->ctx, e->other, &ref, 1, 0, NULL, &m) == 0);
    i = pvabi_map_addr(m);
    CHK(i->left_order == 10 && i->right_order == 11);
    __atomic_store_n(&i->cli_live, 1, __ATOMIC_RELEASE);
    /* left: we produce; claim far more than the ring holds. */
    pvabi_store_release_u32(&i->left.prod, 0x80000000u);
    CHK(side_send(e->peer, 2) == 0);
    CHK(side_expect(e->peer, 3) == 0);
    CHK(pvabi_grant_unmap(m) == 0);
    return 0;
}

static void test_stream_hostile_client_prod_ahead(void **state)
{
    (void)state;
    run_pair(victim_server, liar_client, NULL);
}

/* ---- a server that closes first, five times ------------------------------- */

/* The grants this domain still has, or -1 where the platform cannot list
 * them (Xen). */
static int grants_left(struct side_env *e)
{
    struct pvabi_grant_entry ent[256];
    int n = pvabi_grant_list(e->ctx, e->self, 0, ent, 256);

    return n == -EOPNOTSUPP ? -1 : n;
}

static int first_closer_server(struct side_env *e)
{
    /* 64 KiB each way: the page and 16 + 16 ring pages. */
    const int per_stream = 33;

    for (int round = 0; round < 5; round++) {
        pvabi_stream *s;
        int n;
        CHK(pvabi_stream_server_open(e->ctx, e->other, NULL, 65536, 65536, &s) == 0);
        CHK(side_send(e->peer, 1) == 0);
        CHK(pvabi_stream_wait(s, PVABI_STREAM_CONN, WAIT_MS) & PVABI_STREAM_CONN);
        pvabi_stream_close(s); /* the client still maps everything */
        CHK(side_send(e->peer, 2) == 0);
        CHK(side_expect(e->peer, 3) == 0); /* it closed: unmapped */
        n = grants_left(e);
        /* Earlier rounds' shares were revoked by this round's calls. */
        CHK(n <= per_stream);
    }
    /* A later stream call on the context revokes the last round's too. */
    {
        pvabi_stream *s;
        CHK(pvabi_stream_server_open(e->ctx, e->other, NULL, 1024, 2048, &s) == 0);
        pvabi_stream_close(s);
        CHK(grants_left(e) <= 0);
    }
    return 0;
}

static int first_closer_client(struct side_env *e)
{
    for (int round = 0; round < 5; round++) {
        pvabi_stream *s;
        char c;
        CHK(side_expect(e->peer, 1) == 0);
        CHK(pvabi_stream_client_open(e->ctx, e->other, NULL, WAIT_MS, &s) == 0);
        CHK(side_expect(e->peer, 2) == 0);
        CHK(pvabi_stream_read(s, &c, 1) == 0); /* the end of the stream */
        pvabi_stream_close(s);
        CHK(side_send(e->peer, 3) == 0);
    }
    return 0;
}

static void test_stream_server_closes_first_grants_bounded(void **state)
{
    (void)state;
    run_pair(first_closer_server, first_closer_client, NULL);
}

/* ---- a client that sets cli_live without an event ------------------------- */

static int conn_server(struct side_env *e)
{
    pvabi_stream *s;
    uint64_t t0;

    CHK(pvabi_stream_server_open(e->ctx, e->other, NULL, 1024, 2048, &s) == 0);
    CHK(side_send(e->peer, 1) == 0);
    t0 = side_now_ms();
    /* Asleep in here when the client connects, most likely: it maps first. */
    CHK(pvabi_stream_wait(s, PVABI_STREAM_CONN, WAIT_MS) == (int)PVABI_STREAM_CONN);
    /* Seen within a slice, not at the timeout. */
    CHK(side_now_ms() - t0 < WAIT_MS / 2);
    CHK(side_send(e->peer, 2) == 0);
    CHK(side_expect(e->peer, 3) == 0);
    pvabi_stream_close(s);
    return 0;
}

/* As an older libxenvchan client: maps, sets cli_live = 1, never notifies. */
static int silent_client(struct side_env *e)
{
    char node[128];
    uint32_t ref;
    pvabi_map *m;

    CHK(side_expect(e->peer, 1) == 0);
    snprintf(node, sizeof(node), "/local/domain/%u/data/pvabi-stream/%u/ring-ref", e->other,
             e->self);
    CHK(pvabi_store_read_u32(e->ctx, PVABI_STORE_TXN_NONE, node, &ref) == 0);
    CHK(pvabi_grant_map(e->ctx, e->other, &ref, 1, 0, NULL, &m) == 0);
    __atomic_store_n(&((struct pvabi_stream_intf *)pvabi_map_addr(m))->cli_live, 1,
                     __ATOMIC_RELEASE);
    CHK(side_expect(e->peer, 2) == 0);
    CHK(pvabi_grant_unmap(m) == 0);
    CHK(side_send(e->peer, 3) == 0);
    return 0;
}

static void test_stream_conn_without_event(void **state)
{
    (void)state;
    run_pair(conn_server, silent_client, NULL);
}

/* ---- *_all() against a peer that keeps up in small steps ---------------- */

/* 16 bytes per step: 4 Mi steps take far longer than the timeout even when
 * neither side sleeps (then every wait() finds room at once, and only the
 * deadline check after each step ends the call). */
#define TRICKLE_TOTAL (64u << 20)
#define TRICKLE_MS    50

/* arg: 1 = the server calls write_all (the client trickles reads), 0 = the
 * client trickles writes and the server calls read_all. */
static int trickle_server(struct side_env *e)
{
    const int *writes = e->arg;
    unsigned char *buf = calloc(1, TRICKLE_TOTAL);
    pvabi_stream *s;
    uint64_t t0;
    ssize_t n;

    CHK(buf != NULL);
    CHK(pvabi_stream_server_open(e->ctx, e->other, NULL, 1024, 2048, &s) == 0);
    CHK(side_send(e->peer, 1) == 0);
    CHK(pvabi_stream_wait(s, PVABI_STREAM_CONN, WAIT_MS) & PVABI_STREAM_CONN);
    t0 = side_now_ms();
    if (*writes)
        n = pvabi_stream_write_all(s, buf, TRICKLE_TOTAL, TRICKLE_MS);
    else
        n = pvabi_stream_read_all(s, buf, TRICKLE_TOTAL, TRICKLE_MS);
    /* Ended by the deadline, with some bytes moved, not all. */
    CHK(side_now_ms() - t0 < WAIT_MS / 4);
    CHK(n > 0 && (size_t)n < TRICKLE_TOTAL);
    pvabi_stream_close(s);
    free(buf);
    return 0;
}

static int trickle_client(struct side_env *e)
{
    const int *writes = e->arg;
    unsigned char buf[16] = { 1 };
    pvabi_stream *s;
    ssize_t n;

    CHK(side_expect(e->peer, 1) == 0);
    CHK(pvabi_stream_client_open(e->ctx, e->other, NULL, WAIT_MS, &s) == 0);
    /* 16 bytes at a time until the server closes. */
    for (;;) {
        n = *writes ? pvabi_stream_read(s, buf, sizeof(buf))
                    : pvabi_stream_write(s, buf, sizeof(buf));
        if (n == -EAGAIN)
            n = pvabi_stream_wait(s, *writes ? PVABI_STREAM_IN : PVABI_STREAM_OUT, WAIT_MS);
        if (n == 0 || n == -EPIPE)
            break;
        CHK(n > 0);
    }
    pvabi_stream_close(s);
    return 0;
}

static void test_stream_all_calls_keep_their_deadline(void **state)
{
    static const int writes = 1, reads = 0;

    (void)state;
    run_pair(trickle_server, trickle_client, &writes);
    run_pair(trickle_server, trickle_client, &reads);
}

/* ---- close removes only its nodes; errno is left alone ------------------- */

static int nodes_server(struct side_env *e)
{
    pvabi_stream *s;
    char *v = NULL, **names = NULL;
    char dflt[128];

    /* A directory shared with another node: only ours go. */
    CHK(pvabi_store_write(e->ctx, PVABI_STORE_TXN_NONE, "data/shared/keep", "1") == 0);
    errno = 4242;
    CHK(pvabi_stream_server_open(e->ctx, e->other, "data/shared", 1024, 2048, &s) == 0);
    CHK(errno == 4242);
    CHK(pvabi_store_list(e->ctx, PVABI_STORE_TXN_NONE, "data/shared", &names) == 3);
    free(names);
    CHK(side_send(e->peer, 1) == 0);
    CHK(pvabi_stream_wait(s, PVABI_STREAM_CONN, WAIT_MS) & PVABI_STREAM_CONN);
    CHK(pvabi_stream_write(s, "x", 1) == 1);
    CHK(errno == 4242);
    CHK(side_expect(e->peer, 2) == 0);
    pvabi_stream_close(s);
    CHK(errno == 4242);
    CHK(pvabi_store_read(e->ctx, PVABI_STORE_TXN_NONE, "data/shared/keep", &v) >= 0);
    free(v);
    CHK(pvabi_store_list(e->ctx, PVABI_STORE_TXN_NONE, "data/shared", &names) == 1);
    free(names);
    /* The default directory, empty once ours are gone, goes too. */
    CHK(pvabi_stream_server_open(e->ctx, e->other, NULL, 1024, 2048, &s) == 0);
    pvabi_stream_close(s);
    snprintf(dflt, sizeof(dflt), STREAM_DIR_FMT, e->self, e->other);
    CHK(pvabi_store_list(e->ctx, PVABI_STORE_TXN_NONE, dflt, &names) == -ENOENT);
    CHK(side_send(e->peer, 3) == 0);
    return 0;
}

static int nodes_client(struct side_env *e)
{
    pvabi_stream *s;
    char path[128], c;

    CHK(side_expect(e->peer, 1) == 0);
    snprintf(path, sizeof(path), "/local/domain/%u/data/shared", e->other);
    errno = 4242;
    CHK(pvabi_stream_client_open(e->ctx, e->other, path, WAIT_MS, &s) == 0);
    CHK(errno == 4242);
    CHK(pvabi_stream_read_all(s, &c, 1, WAIT_MS) == 1 && c == 'x');
    CHK(pvabi_stream_wait(s, PVABI_STREAM_OUT, 0) == (int)PVABI_STREAM_OUT);
    CHK(errno == 4242);
    pvabi_stream_close(s);
    CHK(errno == 4242);
    CHK(side_send(e->peer, 2) == 0);
    CHK(side_expect(e->peer, 3) == 0);
    return 0;
}

static void test_stream_close_leaves_other_nodes_and_errno(void **state)
{
    (void)state;
    run_pair(nodes_server, nodes_client, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(test_stream_inpage_rings_both_ways),
        IT_TEST(test_stream_inpage_rings_swapped),
        IT_TEST(test_stream_page_rings),
        IT_TEST(test_stream_mixed_rings),
        IT_TEST(test_stream_largest_rings_many_mb),
        IT_TEST(test_stream_arguments_and_timeouts),
        IT_TEST(test_stream_server_closes_client_reads_rest),
        IT_TEST(test_stream_client_closes_server_reads_rest),
        IT_TEST(test_stream_server_killed_client_sees_closed),
        IT_TEST(test_stream_client_killed_server_sees_closed),
        IT_TEST(test_stream_hostile_orders),
        IT_TEST(test_stream_hostile_nodes_and_refs),
        IT_TEST(test_stream_hostile_live_byte),
        IT_TEST(test_stream_hostile_indices),
        IT_TEST(test_stream_hostile_client_prod_ahead),
        IT_TEST(test_stream_server_closes_first_grants_bounded),
        IT_TEST(test_stream_conn_without_event),
        IT_TEST(test_stream_all_calls_keep_their_deadline),
        IT_TEST(test_stream_close_leaves_other_nodes_and_errno),
    };

    return it_run_tests("stream", tests);
}
