/* SPDX-License-Identifier: MIT */
/*
 * 1000 short-lived domains against one long-lived peer: each opens, binds a
 * channel the peer offers, shares a page the peer maps, and goes (SIGKILL,
 * exit without close, or close then exit, in turn).  Afterwards the daemon
 * holds as many descriptors as before and its memory has not grown, and
 * neither the peer nor this process has gained a descriptor.  Local only:
 * on Xen there is no daemon to measure.
 */
#include <errno.h>
#include <stdlib.h>

#include "itest.h"

#define WARMUP 100
#define CYCLES 1000
/* Allowed VmRSS growth over the cycles: a leak of 1 KiB per domain would
 * exceed it, allocator noise does not. */
#define RSS_SLACK_KIB 512

/* One domain's life, seen from the peer @p. */
static void one_cycle(struct it_agent *p, unsigned i)
{
    struct it_agent c;
    pvabi_port pp, pc;
    pvabi_gref ref;
    unsigned g, m;

    it_agent_start(&c, "child");
    assert_int_equal(it_alloc(p, c.domid, &pp), 0);
    assert_int_equal(it_bind(&c, p->domid, pp, &pc), 0);
    assert_int_equal(it_share(&c, p->domid, 1, 0, &g, &ref), 0);
    assert_int_equal(it_map(p, c.domid, &ref, 1, 0, NULL, &m), 0);
    switch (i % 3) {
    case 0:
        it_agent_kill(&c);
        break;
    case 1:
        it_agent_stop(&c, 0); /* exit with everything still open */
        break;
    default:
        it_agent_stop(&c, 1);
        break;
    }
    it_agent_release(&c);
    /* The peer sees the end and cleans its side up. */
    assert_int_equal(it_wait(p, pp), 0);
    assert_int_equal(it_state(p, pp), PVABI_EVTCHN_CLOSED);
    assert_int_equal(it_unmap(p, m), 0);
    assert_int_equal(it_unbind(p, pp), 0);
}

struct usage {
    long daemon_fds, daemon_rss, self_fds, peer_fds;
};

static void measure(struct it_agent *p, struct usage *u)
{
    u->daemon_fds = it_daemon_fd_count(it_current_daemon());
    u->daemon_rss = it_daemon_rss_kib(it_current_daemon());
    u->self_fds = it_self_fd_count();
    u->peer_fds = it_agent_fd_count(p);
}

static int sanitized(void)
{
#if defined(__SANITIZE_ADDRESS__)
    return 1;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    return 1;
#else
    return 0;
#endif
#else
    return 0;
#endif
}

static void test_cycles_1000_domains_leave_no_fds_or_memory(void **state)
{
    struct usage before, after;
    struct it_agent p;

    (void)state;
    it_agent_start(&p, "peer");
    for (unsigned i = 0; i < WARMUP; i++)
        one_cycle(&p, i);
    measure(&p, &before);
    for (unsigned i = 0; i < CYCLES; i++)
        one_cycle(&p, i);
    measure(&p, &after);
    printf("after %u warm-up and %u measured domains: daemon fds %ld -> %ld, VmRSS %ld -> %ld "
           "KiB; test process fds %ld -> %ld; peer fds %ld -> %ld\n",
           WARMUP, CYCLES, before.daemon_fds, after.daemon_fds, before.daemon_rss, after.daemon_rss,
           before.self_fds, after.self_fds, before.peer_fds, after.peer_fds);
    assert_true(before.daemon_fds > 0);
    assert_int_equal(after.daemon_fds, before.daemon_fds);
    assert_int_equal(after.self_fds, before.self_fds);
    assert_int_equal(after.peer_fds, before.peer_fds);
    /* AddressSanitizer's quarantine keeps freed memory on purpose. */
    if (sanitized())
        printf("VmRSS not checked: AddressSanitizer build\n");
    else
        assert_true(after.daemon_rss <= before.daemon_rss + RSS_SLACK_KIB);
    it_agent_stop(&p, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(test_cycles_1000_domains_leave_no_fds_or_memory),
    };

    if (it_is_xen()) {
        printf("SKIP: the daemon's descriptors and memory exist only on the local platform\n");
        return 77;
    }
    return it_run_tests("integration-cycles", tests);
}
