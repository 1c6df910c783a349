/* SPDX-License-Identifier: MIT */
/*
 * The xenbus handshake across processes: a frontend and a backend, each its
 * own domain, find each other through the store (the toolstack step made by
 * the privileged backend), connect a ring of one or several pages and an
 * event channel, exchange requests, and close.  Either side is killed at
 * each state and restarted: a restarted frontend (same domain) reconnects
 * to the same backend process; a restarted backend re-attaches to the ring
 * the frontend still uses, and answers the requests left unanswered.  A
 * peer that never comes times out; a hostile frontend's nodes get an error,
 * not a crash.  Runs on the local platform and on Xen (tests/xen).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "itest.h"

/* Not "vbd": on Xen, dom0's blkback and a domU's blkfront would take it. */
#define TYPE  "pvabi-test"
#define DEVID 7
/* Long enough for anything that must happen (Xen under QEMU is slow); the
 * waits that must time out use SHORT_MS. */
#define T_MS     20000
#define SHORT_MS 300

struct xscene {
    struct it_agent fe, be;
    uint64_t sent;
};

static char *fe_node(const struct xscene *s, const char *key, char *buf, size_t size)
{
    snprintf(buf, size, "/local/domain/%u/device/%s/%u/%s", s->fe.domid, TYPE, DEVID, key);
    return buf;
}

/* Whether a dead frontend process releases its domain (the local platform),
 * which the backend sees at once; on Xen the domain stays, and the backend
 * learns of the new frontend when it resets its state node. */
static int death_releases_domain(void)
{
    return !it_is_xen();
}

/* The backend is the privileged domain: it also makes the toolstack step. */
static void agents_start(struct xscene *s)
{
    memset(s, 0, sizeof(*s));
    it_agent_start(&s->fe, "frontend");
    it_agent_start_as(&s->be, "backend", 0);
    assert_int_equal(it_xb_device_add(&s->be, TYPE, s->fe.domid, s->be.domid, DEVID), 0);
}

static void backend_up(struct xscene *s, unsigned max_order)
{
    assert_int_equal(it_xb_back_start(&s->be, TYPE, s->fe.domid, DEVID, max_order), 0);
}

/* The frontend connects while the backend waits for it.  The frontend
 * starts first: a restarted one resets its state to Initialising, which the
 * backend then sees rather than what a dead predecessor left. */
static void connect_pair(struct xscene *s, unsigned pages)
{
    struct it_msg r;

    assert_int_equal(it_xb_front_start(&s->fe, TYPE, DEVID), 0);
    it_xb_wait_send(&s->be, IT_XB_BACK, PVABI_XENBUS_EV_CONNECTED, T_MS);
    assert_int_equal(it_xb_front_connect(&s->fe, pages, T_MS, 1), 0);
    assert_int_equal(it_agent_reply(&s->be, &r, 0), 0);
    s->sent = 0;
}

static void scene_up(struct xscene *s, unsigned pages, unsigned max_order)
{
    agents_start(s);
    backend_up(s, max_order);
    connect_pair(s, pages);
}

/* @n more requests, answered while the frontend waits. */
static void exchange(struct xscene *s, unsigned n)
{
    struct it_msg r;
    uint64_t answered;

    it_xb_back_serve_send(&s->be, n, T_MS);
    assert_int_equal(it_xb_front_send(&s->fe, n), 0);
    s->sent += n;
    assert_int_equal(it_xb_front_recv(&s->fe, s->sent, T_MS, &answered), 0);
    assert_int_equal(answered, s->sent);
    assert_int_equal(it_agent_reply(&s->be, &r, 0), 0);
    assert_int_equal(r.a[0], n);
}

static void assert_states(struct it_agent *a, int side, int state, int peer)
{
    struct it_xb_state st;

    assert_int_equal(it_xb_state(a, side, &st), 0);
    assert_int_equal(st.state, state);
    assert_int_equal(st.peer, peer);
}

static void assert_own_state(struct it_agent *a, int side, int state)
{
    struct it_xb_state st;

    assert_int_equal(it_xb_state(a, side, &st), 0);
    assert_int_equal(st.state, state);
    assert_true(st.peer == PVABI_XENBUS_STATE_CLOSING || st.peer == PVABI_XENBUS_STATE_CLOSED);
}

static int saw_event(struct it_agent *a, int side, int event)
{
    int ev[64];
    unsigned n = it_xb_events(a, side, ev, 64);

    for (unsigned i = 0; i < n; i++)
        if (ev[i] == event)
            return 1;
    return 0;
}

static void scene_down(struct xscene *s)
{
    it_pair_stop(&s->fe, &s->be);
}

/* ---- connection ---------------------------------------------------------- */

static void test_xenbus_one_page_ring_exchanges_requests(void **state)
{
    struct xscene s;
    struct it_xb_state st;
    char path[128], v[64];

    (void)state;
    scene_up(&s, 1, 0);
    assert_states(&s.fe, IT_XB_FRONT, PVABI_XENBUS_STATE_CONNECTED, PVABI_XENBUS_STATE_CONNECTED);
    assert_int_equal(it_xb_state(&s.be, IT_XB_BACK, &st), 0);
    assert_int_equal(st.state, PVABI_XENBUS_STATE_CONNECTED);
    assert_int_equal(st.order, 0);
    assert_int_equal(st.reattached, 0);
    /* What a Linux backend would read: a 1-page ring as `ring-ref`. */
    assert_true(it_xb_read(&s.be, fe_node(&s, "ring-ref", path, sizeof(path)), v, sizeof(v)) > 0);
    assert_true(it_xb_read(&s.be, fe_node(&s, "event-channel", path, sizeof(path)), v, sizeof(v)) >
                0);
    assert_int_equal(
        it_xb_read(&s.be, fe_node(&s, "ring-page-order", path, sizeof(path)), v, sizeof(v)),
        -ENOENT);
    assert_true(saw_event(&s.fe, IT_XB_FRONT, PVABI_XENBUS_EV_CONNECTED));
    for (int i = 0; i < 3; i++)
        exchange(&s, 100);
    scene_down(&s);
}

/* 400 requests in flight only fit in a ring of 4 pages (128 slots a page). */
static void test_xenbus_multi_page_ring_holds_more_than_a_page(void **state)
{
    struct xscene s;
    struct it_xb_state st;
    char path[128], v[64];

    (void)state;
    scene_up(&s, 4, 2);
    assert_int_equal(it_xb_state(&s.be, IT_XB_BACK, &st), 0);
    assert_int_equal(st.order, 2);
    assert_int_equal(
        it_xb_read(&s.be, fe_node(&s, "ring-page-order", path, sizeof(path)), v, sizeof(v)), 1);
    assert_string_equal(v, "2");
    assert_true(it_xb_read(&s.be, fe_node(&s, "ring-ref3", path, sizeof(path)), v, sizeof(v)) > 0);
    exchange(&s, 400);
    exchange(&s, 400);
    scene_down(&s);
}

static void test_xenbus_ring_above_backend_max_refused(void **state)
{
    struct xscene s;
    struct it_msg r;

    (void)state;
    agents_start(&s);
    backend_up(&s, 1);
    assert_int_equal(it_xb_front_start(&s.fe, TYPE, DEVID), 0);
    assert_int_equal(it_xb_front_connect(&s.fe, 4, T_MS, 0), -EINVAL);
    assert_states(&s.fe, IT_XB_FRONT, PVABI_XENBUS_STATE_INITIALISING, PVABI_XENBUS_STATE_INITWAIT);
    it_xb_wait_send(&s.be, IT_XB_BACK, PVABI_XENBUS_EV_CONNECTED, T_MS);
    assert_int_equal(it_xb_front_connect(&s.fe, 2, T_MS, 1), 0);
    assert_int_equal(it_agent_reply(&s.be, &r, 0), 0);
    exchange(&s, 200);
    scene_down(&s);
}

/* ---- close handshake -------------------------------------------------------- */

static void close_handshake(struct it_agent *initiator, int side, struct xscene *s)
{
    struct it_agent *other = initiator == &s->fe ? &s->be : &s->fe;
    struct it_msg r;

    assert_int_equal(it_xb_disconnect(initiator, side), 0);
    it_xb_wait_send(other, !side, PVABI_XENBUS_EV_CLOSED, T_MS);
    assert_int_equal(it_xb_wait(initiator, side, PVABI_XENBUS_EV_CLOSED, T_MS), 0);
    assert_int_equal(it_agent_reply(other, &r, 0), 0);
    /* The peer's state is as last seen: the end that finished first may not
     * have looked at the other's final Closed. */
    assert_own_state(&s->fe, IT_XB_FRONT, PVABI_XENBUS_STATE_CLOSED);
    assert_own_state(&s->be, IT_XB_BACK, PVABI_XENBUS_STATE_CLOSED);
    /* CLOSED means the backend no longer maps the ring: the revoke works. */
    assert_int_equal(it_xb_close(&s->fe, IT_XB_FRONT, 1), 0);
}

static void test_xenbus_close_frontend_initiates(void **state)
{
    struct xscene s;

    (void)state;
    scene_up(&s, 2, 1);
    exchange(&s, 50);
    close_handshake(&s.fe, IT_XB_FRONT, &s);
    scene_down(&s);
}

static void test_xenbus_close_backend_initiates(void **state)
{
    struct xscene s;

    (void)state;
    scene_up(&s, 1, 0);
    exchange(&s, 50);
    close_handshake(&s.be, IT_XB_BACK, &s);
    assert_true(saw_event(&s.fe, IT_XB_FRONT, PVABI_XENBUS_EV_CLOSING));
    scene_down(&s);
}

/* ---- peers that never come ------------------------------------------------ */

static void test_xenbus_backend_never_appears_times_out(void **state)
{
    struct xscene s;

    (void)state;
    agents_start(&s);
    assert_int_equal(it_xb_front_start(&s.fe, TYPE, DEVID), 0);
    assert_int_equal(it_xb_wait(&s.fe, IT_XB_FRONT, PVABI_XENBUS_EV_PEER_READY, SHORT_MS),
                     -ETIMEDOUT);
    assert_int_equal(it_xb_wait(&s.fe, IT_XB_FRONT, PVABI_XENBUS_EV_CONNECTED, SHORT_MS),
                     -ETIMEDOUT);
    /* A 1-page ring may be published before the backend shows up (blkif.h's
     * defaults); it still does not connect alone. */
    assert_int_equal(it_xb_front_connect(&s.fe, 1, SHORT_MS, 1), -ETIMEDOUT);
    scene_down(&s);
}

static void test_xenbus_frontend_never_connects_times_out(void **state)
{
    struct xscene s;

    (void)state;
    agents_start(&s);
    backend_up(&s, 0);
    assert_int_equal(it_xb_wait(&s.be, IT_XB_BACK, PVABI_XENBUS_EV_CONNECTED, SHORT_MS),
                     -ETIMEDOUT);
    assert_int_equal(it_xb_front_start(&s.fe, TYPE, DEVID), 0);
    assert_int_equal(it_xb_wait(&s.be, IT_XB_BACK, PVABI_XENBUS_EV_CONNECTED, SHORT_MS),
                     -ETIMEDOUT);
    assert_states(&s.be, IT_XB_BACK, PVABI_XENBUS_STATE_INITWAIT, PVABI_XENBUS_STATE_INITIALISING);
    scene_down(&s);
}

/* ---- the frontend dies and comes back --------------------------------------- */

enum fe_point { FE_INITIALISING, FE_INITIALISED, FE_CONNECTED };

static void frontend_dies_at(struct xscene *s, enum fe_point at)
{
    if (at == FE_CONNECTED) {
        connect_pair(s, 1);
        exchange(s, 30);
        /* Requests in flight when it dies. */
        assert_int_equal(it_xb_front_send(&s->fe, 20), 0);
    } else {
        assert_int_equal(it_xb_front_start(&s->fe, TYPE, DEVID), 0);
        if (at == FE_INITIALISED)
            assert_int_equal(it_xb_front_connect(&s->fe, 1, T_MS, 0), 0);
    }
    int ws = it_agent_kill(&s->fe);
    assert_true(WIFSIGNALED(ws));
    it_agent_release(&s->fe);
}

static void frontend_restarts(enum fe_point at)
{
    struct xscene s;
    pvabi_domid fe_domid;

    agents_start(&s);
    backend_up(&s, 0);
    frontend_dies_at(&s, at);
    fe_domid = s.fe.domid;
    /* The backend hears when the domain's death took its store home (local)
     * or, once connected, when the port closes (everywhere); it detaches and
     * is Closed, ready for the frontend to come back.  On Xen nothing tells
     * it of a frontend process that died before connecting: the new one's
     * Initialising does. */
    if (death_releases_domain() || at == FE_CONNECTED) {
        assert_int_equal(it_xb_wait(&s.be, IT_XB_BACK, PVABI_XENBUS_EV_CLOSED, T_MS), 0);
        assert_true(saw_event(&s.be, IT_XB_BACK, PVABI_XENBUS_EV_PEER_LOST));
        struct it_xb_state st;
        assert_int_equal(it_xb_state(&s.be, IT_XB_BACK, &st), 0);
        assert_int_equal(st.port, 0); /* detached */
    }
    it_agent_start_as(&s.fe, "frontend", fe_domid);
    /* The toolstack adds the device again where the domain's death took its
     * directory; on Xen it stays, and the new frontend resets its state. */
    if (death_releases_domain())
        assert_int_equal(it_xb_device_add(&s.be, TYPE, s.fe.domid, s.be.domid, DEVID), 0);
    connect_pair(&s, 1);
    exchange(&s, 100);
    struct it_xb_state st;
    assert_int_equal(it_xb_state(&s.be, IT_XB_BACK, &st), 0);
    assert_int_equal(st.reattached, 0);
    scene_down(&s);
}

static void test_xenbus_frontend_killed_initialising_reconnects(void **state)
{
    (void)state;
    frontend_restarts(FE_INITIALISING);
}

static void test_xenbus_frontend_killed_initialised_reconnects(void **state)
{
    (void)state;
    frontend_restarts(FE_INITIALISED);
}

static void test_xenbus_frontend_killed_connected_reconnects(void **state)
{
    (void)state;
    frontend_restarts(FE_CONNECTED);
}

/* ---- the backend dies and comes back ----------------------------------------- */

static void backend_killed(struct xscene *s)
{
    int ws = it_agent_kill(&s->be);
    assert_true(WIFSIGNALED(ws));
    it_agent_release(&s->be);
    it_agent_start_as(&s->be, "backend", 0);
}

static void test_xenbus_backend_killed_initwait_restarts(void **state)
{
    struct xscene s;

    (void)state;
    agents_start(&s);
    backend_up(&s, 0);
    backend_killed(&s);
    backend_up(&s, 0);
    connect_pair(&s, 1);
    exchange(&s, 100);
    scene_down(&s);
}

/* The frontend published while no backend ran: the new one attaches. */
static void test_xenbus_backend_killed_frontend_initialised_attaches(void **state)
{
    struct xscene s;
    struct it_xb_state st;
    struct it_msg r;

    (void)state;
    agents_start(&s);
    backend_up(&s, 1);
    assert_int_equal(it_xb_front_start(&s.fe, TYPE, DEVID), 0);
    assert_int_equal(it_xb_front_connect(&s.fe, 2, T_MS, 0), 0);
    backend_killed(&s);
    it_xb_wait_send(&s.fe, IT_XB_FRONT, PVABI_XENBUS_EV_CONNECTED, T_MS);
    backend_up(&s, 1);
    assert_int_equal(it_xb_wait(&s.be, IT_XB_BACK, PVABI_XENBUS_EV_CONNECTED, T_MS), 0);
    assert_int_equal(it_agent_reply(&s.fe, &r, 0), 0);
    assert_int_equal(it_xb_state(&s.be, IT_XB_BACK, &st), 0);
    assert_int_equal(st.reattached, 0);
    assert_int_equal(st.order, 1);
    exchange(&s, 100);
    scene_down(&s);
}

/* The backend dies with requests consumed-and-answered and others waiting:
 * its successor re-attaches to the same ring and port, and answers exactly
 * the unanswered ones, in order. */
static void test_xenbus_backend_killed_connected_reattaches(void **state)
{
    struct xscene s;
    struct it_xb_state before, after;
    unsigned served;
    uint64_t answered;

    (void)state;
    scene_up(&s, 2, 1);
    exchange(&s, 50);
    assert_int_equal(it_xb_state(&s.be, IT_XB_BACK, &before), 0);
    assert_int_equal(it_xb_front_send(&s.fe, 100), 0);
    s.sent += 100;
    assert_int_equal(it_xb_back_serve(&s.be, 40, T_MS, &served), 0);
    assert_int_equal(served, 40);
    backend_killed(&s);
    if (death_releases_domain())
        assert_int_equal(it_xb_wait(&s.fe, IT_XB_FRONT, PVABI_XENBUS_EV_CONNECTED, T_MS),
                         -ENOTCONN);
    backend_up(&s, 1);
    assert_int_equal(it_xb_wait(&s.be, IT_XB_BACK, PVABI_XENBUS_EV_CONNECTED, T_MS), 0);
    assert_int_equal(it_xb_state(&s.be, IT_XB_BACK, &after), 0);
    assert_int_equal(after.reattached, 1);
    assert_int_equal(after.order, before.order);
    assert_int_equal(it_xb_back_serve(&s.be, 60, T_MS, &served), 0);
    assert_int_equal(it_xb_front_recv(&s.fe, s.sent, T_MS, &answered), 0);
    assert_int_equal(answered, s.sent);
    assert_int_equal(it_xb_wait(&s.fe, IT_XB_FRONT, PVABI_XENBUS_EV_CONNECTED, T_MS), 0);
    exchange(&s, 100);
    scene_down(&s);
}

/* ---- a hostile frontend ------------------------------------------------------ */

struct bad_nodes {
    const char *what;
    const char *kv[6]; /* key, value pairs written before state = 3 */
};

static const struct bad_nodes bad_cases[] = {
    { "ring-ref not a number", { "ring-ref", "abc", "event-channel", "1" } },
    { "ring-ref out of range", { "ring-ref", "99999999999", "event-channel", "1" } },
    { "ring-ref never granted", { "ring-ref", "4000", "event-channel", "1" } },
    { "no event-channel", { "ring-ref", "8" } },
    { "event-channel not a number", { "ring-ref", "8", "event-channel", "-1" } },
    { "ring-page-order above the maximum",
      { "ring-page-order", "9", "ring-ref0", "8", "event-channel", "1" } },
    { "ring-page-order without ring-refN", { "ring-page-order", "1", "event-channel", "1" } },
};

static void hostile_frontend(const struct bad_nodes *c)
{
    struct xscene s;
    struct it_xb_state st;
    char path[128];
    int rc;

    agents_start(&s);
    backend_up(&s, 1);
    for (unsigned i = 0; i < 6 && c->kv[i]; i += 2)
        assert_int_equal(
            it_xb_write(&s.fe, fe_node(&s, c->kv[i], path, sizeof(path)), c->kv[i + 1]), 0);
    assert_int_equal(it_xb_write(&s.fe, fe_node(&s, "state", path, sizeof(path)), "3"), 0);
    rc = it_xb_wait(&s.be, IT_XB_BACK, PVABI_XENBUS_EV_CONNECTED, T_MS);
    if (rc != -EPROTO && rc != -EINVAL && rc != -EIO && rc != -ENOENT && rc != -EPERM)
        fail_msg("%s: the backend's wait gave %d (%s)", c->what, rc, strerror(-rc));
    assert_int_equal(it_xb_state(&s.be, IT_XB_BACK, &st), 0);
    assert_true(st.state == PVABI_XENBUS_STATE_CLOSING || st.state == PVABI_XENBUS_STATE_CLOSED);
    assert_int_equal(st.port, 0);
    assert_true(saw_event(&s.be, IT_XB_BACK, PVABI_XENBUS_EV_ERROR));
    scene_down(&s);
}

static void test_xenbus_hostile_frontend_nodes_refused(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        print_message("case: %s\n", bad_cases[i].what);
        hostile_frontend(&bad_cases[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(test_xenbus_one_page_ring_exchanges_requests),
        IT_TEST(test_xenbus_multi_page_ring_holds_more_than_a_page),
        IT_TEST(test_xenbus_ring_above_backend_max_refused),
        IT_TEST(test_xenbus_close_frontend_initiates),
        IT_TEST(test_xenbus_close_backend_initiates),
        IT_TEST(test_xenbus_backend_never_appears_times_out),
        IT_TEST(test_xenbus_frontend_never_connects_times_out),
        IT_TEST(test_xenbus_frontend_killed_initialising_reconnects),
        IT_TEST(test_xenbus_frontend_killed_initialised_reconnects),
        IT_TEST(test_xenbus_frontend_killed_connected_reconnects),
        IT_TEST(test_xenbus_backend_killed_initwait_restarts),
        IT_TEST(test_xenbus_backend_killed_frontend_initialised_attaches),
        IT_TEST(test_xenbus_backend_killed_connected_reattaches),
        IT_TEST(test_xenbus_hostile_frontend_nodes_refused),
    };
    return it_run_tests("integration-xenbus", tests);
}
