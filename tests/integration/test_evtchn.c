/* SPDX-License-Identifier: MIT */
/*
 * Event channels across processes: states, ping-pong, Xen's delivery model
 * (reported once, masked until unmask, an event while masked delivered after
 * unmask) and unbind seen by the peer; the same through pvabi_evtchn_wait().
 */
#include <errno.h>

#include "itest.h"

#define PINGPONG_ROUNDS 1000

static void test_evtchn_states_unbound_then_interdomain(void **state)
{
    struct it_agent fe, be;
    pvabi_port pf, pb;

    (void)state;
    it_pair_start(&fe, &be, NULL, NULL);
    assert_int_equal(it_alloc(&fe, be.domid, &pf), 0);
    assert_int_equal(it_state(&fe, pf), PVABI_EVTCHN_UNBOUND);
    /* Nobody on the other end yet. */
    assert_int_equal(it_notify(&fe, pf), it_notify_unconnected_rc());
    assert_int_equal(it_bind(&be, fe.domid, pf, &pb), 0);
    assert_int_equal(it_state(&be, pb), PVABI_EVTCHN_INTERDOMAIN);
    assert_int_equal(it_state(&fe, pf), it_bound_state(&fe));
    /* Binding the same port twice is refused: it is no longer unbound. */
    pvabi_port again;
    assert_int_equal(it_bind(&be, fe.domid, pf, &again), -EINVAL);
    /* Ports of another context are not ours. */
    assert_int_equal(it_notify(&fe, pf + 100), -EBADF);
    it_pair_stop(&fe, &be);
}

/* N round trips, each side waiting on pvabi_fd: both counters agree. */
static void test_evtchn_pingpong_counters_match(void **state)
{
    struct it_msg ini = { .op = IT_OP_PINGPONG }, rsp = { .op = IT_OP_PINGPONG };
    struct it_agent fe, be;
    pvabi_port pf, pb;
    uint64_t cf[3], cb[3];

    (void)state;
    it_pair_start(&fe, &be, &pf, &pb);
    rsp.a[0] = pb;
    rsp.a[1] = PINGPONG_ROUNDS;
    ini.a[0] = pf;
    ini.a[1] = PINGPONG_ROUNDS;
    ini.a[2] = 1;
    it_agent_send(&be, &rsp);
    it_agent_send(&fe, &ini);
    assert_int_equal(it_agent_reply(&fe, &ini, 0), 0);
    assert_int_equal(it_agent_reply(&be, &rsp, 0), 0);
    assert_int_equal(ini.a[0], PINGPONG_ROUNDS);
    assert_int_equal(rsp.a[0], PINGPONG_ROUNDS);
    assert_int_equal(it_counters(&fe, pf, cf), 0);
    assert_int_equal(it_counters(&be, pb, cb), 0);
    assert_int_equal(cf[0], PINGPONG_ROUNDS); /* sent */
    assert_int_equal(cb[1], PINGPONG_ROUNDS); /* received */
    assert_int_equal(cb[0], PINGPONG_ROUNDS);
    assert_int_equal(cf[1], PINGPONG_ROUNDS);
    printf("ping-pong: %d rounds, spurious frontend %llu backend %llu, empty wake-ups %lld/%lld\n",
           PINGPONG_ROUNDS, (unsigned long long)cf[2], (unsigned long long)cb[2],
           (long long)ini.a[4], (long long)rsp.a[4]);
    it_pair_stop(&fe, &be);
}

/* A reported port stays masked: more events are remembered, not reported,
 * until unmask; then the next pending() reports it once. */
static void test_evtchn_masked_port_reports_once_then_after_unmask(void **state)
{
    struct it_agent fe, be;
    pvabi_port pf, pb, got[8];
    uint64_t c[3];

    (void)state;
    it_pair_start(&fe, &be, &pf, &pb);
    assert_int_equal(it_notify(&fe, pf), 0);
    assert_int_equal(it_wait(&be, pb), 0);
    /* Masked now: three more events are not reported... */
    for (int i = 0; i < 3; i++)
        assert_int_equal(it_notify(&fe, pf), 0);
    assert_int_equal(it_pending(&be, got, 8), 0);
    assert_int_equal(it_pending(&be, got, 8), 0);
    /* ...but delivered (coalesced into one) by the first pending() after
     * the unmask, without another notify. */
    assert_int_equal(it_unmask(&be, pb), 0);
    assert_int_equal(it_pending(&be, got, 8), 1);
    assert_int_equal(got[0], pb);
    assert_int_equal(it_unmask(&be, pb), 0);
    assert_int_equal(it_pending(&be, got, 8), 0);
    assert_int_equal(it_counters(&be, pb, c), 0);
    assert_int_equal(c[1], 2); /* received: reported twice in all */
    assert_int_equal(it_counters(&fe, pf, c), 0);
    assert_int_equal(c[0], 4); /* sent */
    it_pair_stop(&fe, &be);
}

/* An unmask with nothing pending reports nothing, and a later event wakes
 * pvabi_fd as usual. */
static void test_evtchn_unmask_without_event_reports_nothing(void **state)
{
    struct it_agent fe, be;
    pvabi_port pf, pb, got[8];
    uint64_t c[3];

    (void)state;
    it_pair_start(&fe, &be, &pf, &pb);
    assert_int_equal(it_notify(&fe, pf), 0);
    assert_int_equal(it_wait(&be, pb), 0);
    assert_int_equal(it_unmask(&be, pb), 0);
    assert_int_equal(it_pending(&be, got, 8), 0);
    assert_int_equal(it_unmask(&be, pb), 0); /* unmasking twice is harmless */
    assert_int_equal(it_pending(&be, got, 8), 0);
    assert_int_equal(it_notify(&fe, pf), 0);
    assert_int_equal(it_wait(&be, pb), 0);
    assert_int_equal(it_counters(&be, pb, c), 0);
    assert_int_equal(c[1], 2);
    it_pair_stop(&fe, &be);
}

/* Two channels between the same pair are independent: an event on one is
 * reported for that port only, and masking one does not hold the other. */
static void test_evtchn_two_channels_independent(void **state)
{
    struct it_agent fe, be;
    pvabi_port pf1, pb1, pf2, pb2, got[8];

    (void)state;
    it_pair_start(&fe, &be, &pf1, &pb1);
    it_connect(&fe, &be, &pf2, &pb2);
    assert_int_not_equal(pb1, pb2);
    assert_int_equal(it_notify(&fe, pf1), 0);
    assert_int_equal(it_wait(&be, pb1), 0); /* pb1 now masked */
    assert_int_equal(it_notify(&fe, pf2), 0);
    assert_int_equal(it_wait(&be, pb2), 0);
    assert_int_equal(it_pending(&be, got, 8), 0);
    /* And backwards. */
    assert_int_equal(it_notify(&be, pb2), 0);
    assert_int_equal(it_wait(&fe, pf2), 0);
    assert_int_equal(it_pending(&fe, got, 8), 0);
    it_pair_stop(&fe, &be);
}

/* Unbind on one side: the other sees its port in state CLOSED (reported
 * as an event first where the platform raises one), and notify fails with
 * -ENOTCONN (is dropped on Xen); a second unbind is -EBADF. */
static void unbind_seen_by_peer(int frontend_unbinds)
{
    struct it_agent fe, be;
    pvabi_port pf, pb;

    it_pair_start(&fe, &be, &pf, &pb);
    struct it_agent *closer = frontend_unbinds ? &fe : &be, *peer = frontend_unbinds ? &be : &fe;
    pvabi_port cport = frontend_unbinds ? pf : pb, pport = frontend_unbinds ? pb : pf;

    assert_int_equal(it_unbind(closer, cport), 0);
    if (it_peer_close_raises_event())
        assert_int_equal(it_wait(peer, pport), 0);
    assert_int_equal(it_state(peer, pport), it_closed_state(peer));
    assert_int_equal(it_notify(peer, pport), it_notify_unconnected_rc());
    assert_int_equal(it_unbind(closer, cport), -EBADF);
    assert_int_equal(it_state(closer, cport), -EBADF);
    assert_int_equal(it_unbind(peer, pport), 0);
    it_pair_stop(&fe, &be);
}

static void test_evtchn_unbind_by_frontend_backend_sees_closed(void **state)
{
    (void)state;
    unbind_seen_by_peer(1);
}

static void test_evtchn_unbind_by_backend_frontend_sees_closed(void **state)
{
    (void)state;
    unbind_seen_by_peer(0);
}

/* Unbinding a port that was never bound tells nobody and frees it. */
static void test_evtchn_unbind_unbound_port(void **state)
{
    struct it_agent fe, be;
    pvabi_port pf, pb;

    (void)state;
    it_pair_start(&fe, &be, NULL, NULL);
    assert_int_equal(it_alloc(&fe, be.domid, &pf), 0);
    assert_int_equal(it_unbind(&fe, pf), 0);
    assert_int_equal(it_bind(&be, fe.domid, pf, &pb), -EINVAL);
    it_pair_stop(&fe, &be);
}

/* ---- pvabi_evtchn_wait() --------------------------------------------- */

/* Short: long enough to be a real sleep, never a timing assertion. */
#define SHORT_MS 50

/* A notify that came first is returned at once; a waiter already asleep
 * is woken by the next one.  Each is counted as pending() counts it. */
static void test_evtchn_wait_returns_port_when_peer_notifies(void **state)
{
    struct it_msg m = { .op = IT_OP_EVTCHN_WAIT, .a = { 8, IT_TIMEOUT_MS } };
    struct it_agent fe, be;
    pvabi_port pf, pb, got[8];
    uint64_t c[3];

    (void)state;
    it_pair_start(&fe, &be, &pf, &pb);
    assert_int_equal(it_notify(&fe, pf), 0);
    assert_int_equal(it_evtchn_wait(&be, got, 8, IT_TIMEOUT_MS), 1);
    assert_int_equal(got[0], pb);
    assert_int_equal(it_unmask(&be, pb), 0);
    /* Whether the backend sleeps before the notify or not, it gets it. */
    it_agent_send(&be, &m);
    assert_int_equal(it_notify(&fe, pf), 0);
    assert_int_equal(it_agent_reply(&be, &m, 0), 1);
    assert_int_equal(m.v[0], pb);
    assert_int_equal(it_counters(&be, pb, c), 0);
    assert_int_equal(c[1], 2); /* received */
    assert_int_equal(c[2], 0); /* spurious */
    it_pair_stop(&fe, &be);
}

static void test_evtchn_wait_times_out_with_zero(void **state)
{
    struct it_agent fe, be;
    pvabi_port pf, pb, got[8];

    (void)state;
    it_pair_start(&fe, &be, &pf, &pb);
    assert_int_equal(it_evtchn_wait(&be, got, 8, SHORT_MS), 0);
    assert_int_equal(it_evtchn_wait(&be, got, 8, 0), 0);
    /* Nothing was lost or invented: the next notify is reported once. */
    assert_int_equal(it_notify(&fe, pf), 0);
    assert_int_equal(it_evtchn_wait(&be, got, 8, IT_TIMEOUT_MS), 1);
    assert_int_equal(got[0], pb);
    it_pair_stop(&fe, &be);
}

static void test_evtchn_wait_bad_arguments_einval(void **state)
{
    struct it_agent fe, be;
    pvabi_port pf, pb, got[8];

    (void)state;
    it_pair_start(&fe, &be, &pf, &pb);
    assert_int_equal(it_notify(&fe, pf), 0);
    /* There is no "forever", and no wait that could report nothing. */
    assert_int_equal(it_evtchn_wait(&be, got, 8, -1), -EINVAL);
    assert_int_equal(it_evtchn_wait(&be, got, 0, SHORT_MS), -EINVAL);
    /* The event is still there for a valid call. */
    assert_int_equal(it_evtchn_wait(&be, got, 8, IT_TIMEOUT_MS), 1);
    assert_int_equal(got[0], pb);
    it_pair_stop(&fe, &be);
}

/* A reported port is masked: more events do not end a wait until the port
 * is unmasked, and then it is reported once for all of them. */
static void test_evtchn_wait_masked_port_reported_after_unmask(void **state)
{
    struct it_agent fe, be;
    pvabi_port pf, pb, got[8];
    uint64_t c[3];

    (void)state;
    it_pair_start(&fe, &be, &pf, &pb);
    assert_int_equal(it_notify(&fe, pf), 0);
    assert_int_equal(it_evtchn_wait(&be, got, 8, IT_TIMEOUT_MS), 1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(it_notify(&fe, pf), 0);
    assert_int_equal(it_evtchn_wait(&be, got, 8, SHORT_MS), 0);
    assert_int_equal(it_unmask(&be, pb), 0);
    assert_int_equal(it_evtchn_wait(&be, got, 8, IT_TIMEOUT_MS), 1);
    assert_int_equal(got[0], pb);
    assert_int_equal(it_unmask(&be, pb), 0);
    assert_int_equal(it_evtchn_wait(&be, got, 8, 0), 0);
    assert_int_equal(it_counters(&be, pb, c), 0);
    assert_int_equal(c[1], 2);
    it_pair_stop(&fe, &be);
}

/* The peer dies while we sleep: the wait ends with the port, now CLOSED.
 * On Xen a death raises no event: the wait times out, the state says it. */
static void test_evtchn_wait_woken_by_peer_death(void **state)
{
    int timeout = it_peer_close_raises_event() ? IT_TIMEOUT_MS : SHORT_MS;
    struct it_msg m = { .op = IT_OP_EVTCHN_WAIT, .a = { 8, timeout } };
    struct it_agent fe, be;
    pvabi_port pf, pb;

    (void)state;
    it_pair_start(&fe, &be, &pf, &pb);
    it_agent_send(&be, &m);
    it_agent_kill(&fe);
    if (it_peer_close_raises_event()) {
        assert_int_equal(it_agent_reply(&be, &m, 0), 1);
        assert_int_equal(m.v[0], pb);
    } else {
        assert_int_equal(it_agent_reply(&be, &m, 0), 0);
    }
    assert_int_equal(it_state(&be, pb), it_closed_state(&be));
    assert_int_equal(it_notify(&be, pb), it_notify_unconnected_rc());
    it_agent_stop(&be, 1);
    it_agent_release(&fe);
}

/* Xen makes the binder's port pending at bind, so that an event sent
 * before the bind completed is not missed; the local platform raises none.
 * (it_connect takes that event; this test binds by hand.) */
static void test_evtchn_bind_raises_event_only_on_xen(void **state)
{
    struct it_agent fe, be;
    pvabi_port pf, pb, got[8];

    (void)state;
    it_pair_start(&fe, &be, NULL, NULL);
    assert_int_equal(it_alloc(&fe, be.domid, &pf), 0);
    assert_int_equal(it_bind(&be, fe.domid, pf, &pb), 0);
    if (it_bind_raises_event()) {
        assert_int_equal(it_evtchn_wait(&be, got, 8, IT_TIMEOUT_MS), 1);
        assert_int_equal(got[0], pb);
        assert_int_equal(it_unmask(&be, pb), 0);
    }
    assert_int_equal(it_evtchn_wait(&be, got, 8, SHORT_MS), 0);
    /* The allocating side got nothing either way. */
    assert_int_equal(it_evtchn_wait(&fe, got, 8, SHORT_MS), 0);
    it_pair_stop(&fe, &be);
}

/* A ping-pong on pvabi_evtchn_wait(): counters as with pending(). */
static void test_evtchn_wait_pingpong_counters_match(void **state)
{
    struct it_msg ini = { .op = IT_OP_PINGPONG }, rsp = { .op = IT_OP_PINGPONG };
    struct it_agent fe, be;
    pvabi_port pf, pb;
    uint64_t cf[3], cb[3];

    (void)state;
    it_pair_start(&fe, &be, &pf, &pb);
    rsp.a[0] = pb;
    rsp.a[1] = PINGPONG_ROUNDS;
    rsp.a[4] = 1; /* pvabi_evtchn_wait */
    ini.a[0] = pf;
    ini.a[1] = PINGPONG_ROUNDS;
    ini.a[2] = 1;
    ini.a[4] = 1;
    it_agent_send(&be, &rsp);
    it_agent_send(&fe, &ini);
    assert_int_equal(it_agent_reply(&fe, &ini, 0), 0);
    assert_int_equal(it_agent_reply(&be, &rsp, 0), 0);
    assert_int_equal(it_counters(&fe, pf, cf), 0);
    assert_int_equal(it_counters(&be, pb, cb), 0);
    assert_int_equal(cf[0], PINGPONG_ROUNDS);
    assert_int_equal(cf[1], PINGPONG_ROUNDS);
    assert_int_equal(cb[0], PINGPONG_ROUNDS);
    assert_int_equal(cb[1], PINGPONG_ROUNDS);
    it_pair_stop(&fe, &be);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(test_evtchn_states_unbound_then_interdomain),
        IT_TEST(test_evtchn_pingpong_counters_match),
        IT_TEST(test_evtchn_masked_port_reports_once_then_after_unmask),
        IT_TEST(test_evtchn_unmask_without_event_reports_nothing),
        IT_TEST(test_evtchn_two_channels_independent),
        IT_TEST(test_evtchn_unbind_by_frontend_backend_sees_closed),
        IT_TEST(test_evtchn_unbind_by_backend_frontend_sees_closed),
        IT_TEST(test_evtchn_unbind_unbound_port),
        IT_TEST(test_evtchn_wait_returns_port_when_peer_notifies),
        IT_TEST(test_evtchn_wait_times_out_with_zero),
        IT_TEST(test_evtchn_wait_bad_arguments_einval),
        IT_TEST(test_evtchn_wait_masked_port_reported_after_unmask),
        IT_TEST(test_evtchn_wait_woken_by_peer_death),
        IT_TEST(test_evtchn_bind_raises_event_only_on_xen),
        IT_TEST(test_evtchn_wait_pingpong_counters_match),
    };
    return it_run_tests("integration-evtchn", tests);
}
