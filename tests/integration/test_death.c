/* SPDX-License-Identifier: MIT */
/*
 * Peer death and close are not hangs: when the frontend or the backend is
 * killed (SIGKILL) or closes its context at some point of its life, the
 * survivor is woken through pvabi_fd (on the local platform; Xen raises no
 * event, a driver asks the state when idle), sees its port CLOSED, and
 * the grants are reclaimed: a dead sharer's pages stay readable for a mapper
 * that still maps them but can no longer be mapped; a dead mapper's mapping
 * no longer holds up the sharer's revoke.  Unmap-notify fires on death.
 */
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>

#include "itest.h"

#define PAGE PVABI_PAGE_SIZE
#define SEED 7

/* How far the pair got before one side goes; each point includes the ones
 * before it. */
enum point { AFTER_BIND, AFTER_SHARE, WHILE_MAPPED, MID_PINGPONG };
enum how { KILLED, CLOSED };

struct scene {
    struct it_agent fe, be;
    pvabi_port pf, pb;
    pvabi_gref refs[2];
    unsigned g, m;
    enum point at;
};

static void scene_build(struct scene *s, enum point at)
{
    s->at = at;
    it_pair_start(&s->fe, &s->be, &s->pf, &s->pb);
    if (at >= AFTER_SHARE) {
        assert_int_equal(it_share(&s->fe, s->be.domid, 2, 0, &s->g, s->refs), 0);
        assert_int_equal(it_fill(&s->fe, IT_KIND_GRANT, s->g, 0, 2 * PAGE, SEED), 0);
    }
    if (at >= WHILE_MAPPED)
        assert_int_equal(it_map(&s->be, s->fe.domid, s->refs, 2, 0, NULL, &s->m), 0);
}

/* Starts an endless ping-pong (frontend initiates) and returns once it is
 * under way. */
static void pingpong_start(struct scene *s)
{
    struct it_msg ini = { .op = IT_OP_PINGPONG }, rsp = { .op = IT_OP_PINGPONG };

    rsp.a[0] = s->pb;
    rsp.a[1] = INT64_MAX;
    ini.a[0] = s->pf;
    ini.a[1] = INT64_MAX;
    ini.a[2] = 1;
    ini.a[3] = 200; /* report progress after 200 round trips */
    it_agent_send(&s->be, &rsp);
    it_agent_send(&s->fe, &ini);
    it_agent_reply(&s->fe, &ini, 1);
    assert_int_equal(ini.op, IT_OP_PROGRESS);
}

static void victim_goes(struct it_agent *v, enum how how)
{
    if (how == KILLED) {
        int ws = it_agent_kill(v);
        assert_true(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
    } else {
        assert_int_equal(it_close_ctx(v), 0);
    }
}

/* The survivor learns through its port: reported after a pvabi_fd wake-up
 * where the platform raises one (mid ping-pong, its loop ends on it), CLOSED,
 * notify refused (dropped on Xen). */
static void survivor_sees_closed(struct scene *s, struct it_agent *sv, pvabi_port port)
{
    if (s->at == MID_PINGPONG) {
        struct it_msg r;
        assert_int_equal(it_agent_reply(sv, &r, 0), -ENOTCONN);
        assert_int_equal(r.op, IT_OP_PINGPONG);
        assert_int_equal(r.a[5], PVABI_EVTCHN_CLOSED);
    } else if (it_peer_close_raises_event()) {
        assert_int_equal(it_wait(sv, port), 0);
    }
    assert_int_equal(it_state(sv, port), it_closed_state(sv));
    assert_int_equal(it_notify(sv, port), it_notify_unconnected_rc());
    assert_int_equal(it_unbind(sv, port), 0);
}

/* The sharer is gone: what the backend maps stays readable, nothing new
 * maps.  On Xen, the refs of pages still mapped stay granted until the last
 * unmap (Linux's gntalloc defers ending access), so they map again; the
 * others are ended, which Xen reports as GNTST_general_error (-EIO). */
static void backend_after_frontend(struct scene *s)
{
    int st[2];
    unsigned m2;

    if (s->at < AFTER_SHARE)
        return;
    if (s->at >= WHILE_MAPPED)
        assert_int_equal(it_check(&s->be, IT_KIND_MAP, s->m, 0, 2 * PAGE, SEED), 0);
    int rc = it_map(&s->be, s->fe.domid, s->refs, 2, 0, st, &m2);
    if (it_is_xen() && s->at >= WHILE_MAPPED) {
        assert_int_equal(rc, 0);
        assert_int_equal(it_check(&s->be, IT_KIND_MAP, m2, 0, 2 * PAGE, SEED), 0);
        assert_int_equal(it_unmap(&s->be, m2), 0);
    } else if (it_is_xen()) {
        assert_int_equal(rc, -EIO);
        assert_int_equal(st[0], -EIO);
    } else {
        /* Either the refs are gone (-ENOENT) or the whole domain is (-ESRCH). */
        assert_true(rc == -ENOENT || rc == -ESRCH);
        assert_int_equal(st[0], rc);
    }
    if (s->at >= WHILE_MAPPED)
        assert_int_equal(it_unmap(&s->be, s->m), 0);
}

/* The mapper is gone: its mapping no longer holds the share. */
static void frontend_after_backend(struct scene *s)
{
    if (s->at >= AFTER_SHARE)
        assert_int_equal(it_revoke(&s->fe, s->g), 0);
}

static void frontend_goes(enum point at, enum how how)
{
    struct scene s;

    scene_build(&s, at);
    if (at == MID_PINGPONG)
        pingpong_start(&s);
    victim_goes(&s.fe, how);
    survivor_sees_closed(&s, &s.be, s.pb);
    backend_after_frontend(&s);
    it_agent_stop(&s.be, 1);
    if (how == CLOSED)
        it_agent_stop(&s.fe, 0);
    it_agent_release(&s.fe);
}

static void backend_goes(enum point at, enum how how)
{
    struct scene s;

    scene_build(&s, at);
    if (at == MID_PINGPONG && !it_asks_port_state(&s.fe)) {
        /* Nothing in the frontend's domU tells it the backend is gone: a
         * Xen driver learns that from xenstore, not from the channel. */
        it_pair_stop(&s.fe, &s.be);
        skip();
    }
    if (at == MID_PINGPONG)
        pingpong_start(&s);
    victim_goes(&s.be, how);
    survivor_sees_closed(&s, &s.fe, s.pf);
    frontend_after_backend(&s);
    it_agent_stop(&s.fe, 1);
    if (how == CLOSED)
        it_agent_stop(&s.be, 0);
    it_agent_release(&s.be);
}

static void test_death_frontend_killed_after_bind(void **state)
{
    (void)state;
    frontend_goes(AFTER_BIND, KILLED);
}

static void test_death_frontend_killed_after_share(void **state)
{
    (void)state;
    frontend_goes(AFTER_SHARE, KILLED);
}

static void test_death_frontend_killed_while_mapped(void **state)
{
    (void)state;
    frontend_goes(WHILE_MAPPED, KILLED);
}

static void test_death_frontend_killed_mid_pingpong(void **state)
{
    (void)state;
    frontend_goes(MID_PINGPONG, KILLED);
}

static void test_death_backend_killed_after_bind(void **state)
{
    (void)state;
    backend_goes(AFTER_BIND, KILLED);
}

static void test_death_backend_killed_after_share(void **state)
{
    (void)state;
    backend_goes(AFTER_SHARE, KILLED);
}

static void test_death_backend_killed_while_mapped(void **state)
{
    (void)state;
    backend_goes(WHILE_MAPPED, KILLED);
}

static void test_death_backend_killed_mid_pingpong(void **state)
{
    (void)state;
    backend_goes(MID_PINGPONG, KILLED);
}

static void test_death_frontend_closes_after_bind(void **state)
{
    (void)state;
    frontend_goes(AFTER_BIND, CLOSED);
}

static void test_death_frontend_closes_while_mapped(void **state)
{
    (void)state;
    frontend_goes(WHILE_MAPPED, CLOSED);
}

static void test_death_backend_closes_after_bind(void **state)
{
    (void)state;
    backend_goes(AFTER_BIND, CLOSED);
}

static void test_death_backend_closes_while_mapped(void **state)
{
    (void)state;
    backend_goes(WHILE_MAPPED, CLOSED);
}

/* A sharer killed with an unmap-notify registered: the daemon/kernel clears
 * the byte in the page the backend still maps and sends the event (which
 * arrives together with the port's closing: both make the port pending). */
static void test_death_sharer_killed_fires_grant_notify(void **state)
{
    struct scene s;

    (void)state;
    scene_build(&s, WHILE_MAPPED);
    assert_int_not_equal(it_peek(&s.be, IT_KIND_MAP, s.m, 100), 0);
    if (it_is_xen()) {
        /* libxengnttab cannot add a notify to a share (xen-platform.md) */
        assert_int_equal(it_grant_notify(&s.fe, s.g, 0, 100, s.pf), -ENOTSUP);
        it_pair_stop(&s.fe, &s.be);
        skip();
    }
    assert_int_equal(it_grant_notify(&s.fe, s.g, 0, 100, s.pf), 0);
    it_agent_kill(&s.fe);
    assert_int_equal(it_wait(&s.be, s.pb), 0);
    assert_int_equal(it_peek(&s.be, IT_KIND_MAP, s.m, 100), 0);
    /* Only that byte. */
    assert_int_equal(it_check(&s.be, IT_KIND_MAP, s.m, 0, 100, SEED), 0);
    assert_int_equal(it_check(&s.be, IT_KIND_MAP, s.m, 101, 2 * PAGE - 101, SEED), 0);
    it_agent_stop(&s.be, 1);
    it_agent_release(&s.fe);
}

/* A mapper killed with an unmap-notify registered: the sharer's byte is
 * cleared and it gets the event. */
static void test_death_mapper_killed_fires_map_notify(void **state)
{
    struct scene s;

    (void)state;
    scene_build(&s, WHILE_MAPPED);
    assert_int_equal(it_map_notify(&s.be, s.m, 1, 200, s.pb), 0);
    it_agent_kill(&s.be);
    assert_int_equal(it_wait(&s.fe, s.pf), 0);
    assert_int_equal(it_peek(&s.fe, IT_KIND_GRANT, s.g, PAGE + 200), 0);
    assert_int_equal(it_check(&s.fe, IT_KIND_GRANT, s.g, 0, PAGE + 200, SEED), 0);
    assert_int_equal(it_check(&s.fe, IT_KIND_GRANT, s.g, PAGE + 201, PAGE - 201, SEED), 0);
    assert_int_equal(it_revoke(&s.fe, s.g), 0);
    it_agent_stop(&s.fe, 1);
    it_agent_release(&s.be);
}

/* A mapper whose clean unmap already performed its unmap-notify leaves
 * nothing behind that could fire again when it dies later. */
static void test_death_after_clean_unmap_no_stale_notify(void **state)
{
    struct scene s;
    pvabi_port got[8];

    (void)state;
    scene_build(&s, WHILE_MAPPED);
    assert_int_equal(it_map_notify(&s.be, s.m, 0, 10, s.pb), 0);
    assert_int_equal(it_unmap(&s.be, s.m), 0);
    assert_int_equal(it_wait(&s.fe, s.pf), 0);
    assert_int_equal(it_unmask(&s.fe, s.pf), 0);
    assert_int_equal(it_pending(&s.fe, got, 8), 0);
    assert_int_equal(it_fill(&s.fe, IT_KIND_GRANT, s.g, 0, 2 * PAGE, SEED), 0);
    /* The backend now dies: the port closes, but the byte stays. */
    it_agent_kill(&s.be);
    if (it_peer_close_raises_event())
        assert_int_equal(it_wait(&s.fe, s.pf), 0);
    assert_int_equal(it_state(&s.fe, s.pf), it_closed_state(&s.fe));
    assert_int_equal(it_check(&s.fe, IT_KIND_GRANT, s.g, 0, 2 * PAGE, SEED), 0);
    assert_int_equal(it_revoke(&s.fe, s.g), 0);
    it_agent_stop(&s.fe, 1);
    it_agent_release(&s.be);
}

/* Xen's rebind: the survivor's port is offered again to the domain that
 * left, so a backend restarted in that domain binds the same port and the
 * channel works again both ways, with no new port for the frontend. */
static void backend_restarts(enum how how)
{
    struct scene s;
    struct it_agent be2;
    pvabi_port pb2;

    scene_build(&s, AFTER_BIND);
    victim_goes(&s.be, how);
    if (it_peer_close_raises_event()) {
        assert_int_equal(it_wait(&s.fe, s.pf), 0);
        assert_int_equal(it_unmask(&s.fe, s.pf), 0);
    }
    assert_int_equal(it_state(&s.fe, s.pf), it_closed_state(&s.fe));
    if (how == CLOSED)
        it_agent_stop(&s.be, 0);
    it_agent_release(&s.be);
    it_agent_start_as(&be2, "backend", s.be.domid);
    assert_int_equal(it_bind(&be2, s.fe.domid, s.pf, &pb2), 0);
    assert_int_equal(it_state(&s.fe, s.pf), PVABI_EVTCHN_INTERDOMAIN);
    if (it_bind_raises_event()) {
        assert_int_equal(it_wait(&be2, pb2), 0);
        assert_int_equal(it_unmask(&be2, pb2), 0);
    }
    assert_int_equal(it_notify(&be2, pb2), 0);
    assert_int_equal(it_wait(&s.fe, s.pf), 0);
    assert_int_equal(it_unmask(&s.fe, s.pf), 0);
    assert_int_equal(it_notify(&s.fe, s.pf), 0);
    assert_int_equal(it_wait(&be2, pb2), 0);
    it_pair_stop(&s.fe, &be2);
}

static void test_death_backend_killed_restarted_binds_same_port(void **state)
{
    (void)state;
    backend_restarts(KILLED);
}

static void test_death_backend_closed_restarted_binds_same_port(void **state)
{
    (void)state;
    backend_restarts(CLOSED);
}

/* The port is offered again to the domain that left, and to no other. */
static void test_death_closed_port_refuses_other_domain(void **state)
{
    struct scene s;
    struct it_agent other;
    pvabi_port po;

    (void)state;
    scene_build(&s, AFTER_BIND);
    it_agent_start(&other, "other");
    if (other.domid == s.be.domid) {
        /* On Xen every local agent is dom0: no third domain here. */
        it_agent_stop(&other, 1);
        it_pair_stop(&s.fe, &s.be);
        skip();
    }
    it_agent_kill(&s.be);
    if (it_peer_close_raises_event())
        assert_int_equal(it_wait(&s.fe, s.pf), 0);
    assert_int_equal(it_bind(&other, s.fe.domid, s.pf, &po), -EPERM);
    assert_int_equal(it_state(&s.fe, s.pf), it_closed_state(&s.fe));
    it_agent_stop(&other, 1);
    it_agent_stop(&s.fe, 1);
    it_agent_release(&s.be);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(test_death_frontend_killed_after_bind),
        IT_TEST(test_death_frontend_killed_after_share),
        IT_TEST(test_death_frontend_killed_while_mapped),
        IT_TEST(test_death_frontend_killed_mid_pingpong),
        IT_TEST(test_death_backend_killed_after_bind),
        IT_TEST(test_death_backend_killed_after_share),
        IT_TEST(test_death_backend_killed_while_mapped),
        IT_TEST(test_death_backend_killed_mid_pingpong),
        IT_TEST(test_death_frontend_closes_after_bind),
        IT_TEST(test_death_frontend_closes_while_mapped),
        IT_TEST(test_death_backend_closes_after_bind),
        IT_TEST(test_death_backend_closes_while_mapped),
        IT_TEST(test_death_sharer_killed_fires_grant_notify),
        IT_TEST(test_death_mapper_killed_fires_map_notify),
        IT_TEST(test_death_after_clean_unmap_no_stale_notify),
        IT_TEST(test_death_backend_killed_restarted_binds_same_port),
        IT_TEST(test_death_backend_closed_restarted_binds_same_port),
        IT_TEST(test_death_closed_port_refuses_other_domain),
    };
    return it_run_tests("integration-death", tests);
}
