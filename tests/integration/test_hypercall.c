/* SPDX-License-Identifier: MIT */
/*
 * The typed hypercall wrappers (pvabi/hypercall.h) and pvabi_grant_list()
 * against a real pvabi-hv: what the daemon reports about its domains (agent
 * processes) must be what they are and do - the pages they share, their
 * ports, their cpu time in /proc - and who may ask what follows Xen's rules.
 * Local platform only: tests/xen/ checks the same wrappers against real Xen.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "itest.h"

static pvabi_ctx *toolstack(void)
{
    pvabi_ctx *ts = NULL;

    assert_int_equal(pvabi_open_flags(&ts, it_platform(), PVABI_OPEN_TOOLSTACK), 0);
    return ts;
}

/* /proc/PID/stat of @pid into @buf; returns the text after the command
 * name, which starts with " STATE ". */
static const char *proc_stat(pid_t pid, char *buf, size_t size)
{
    char path[64], *p;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(buf, (int)size, f));
    fclose(f);
    p = strrchr(buf, ')');
    assert_non_null(p);
    return p + 1;
}

/* utime + stime of @pid, in ns, from /proc. */
static uint64_t proc_cpu_ns(pid_t pid)
{
    char buf[1024];
    unsigned long ut = 0, st = 0;

    /* fields 14 and 15, counted from the state (field 3) after the name */
    assert_int_equal(sscanf(proc_stat(pid, buf, sizeof(buf)) + 1,
                            "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st),
                     2);
    return (uint64_t)(ut + st) * (1000000000ull / (uint64_t)sysconf(_SC_CLK_TCK));
}

/* The scheduler state letter of @pid (R, S, D, ...). */
static char proc_state(pid_t pid)
{
    char buf[1024];

    return proc_stat(pid, buf, sizeof(buf))[1];
}

/* The entry of @domid in a full list from @ts, or fails. */
static struct pvabi_domain_info find_domain(pvabi_ctx *ts, pvabi_domid domid, int *found)
{
    struct pvabi_domain_info all[64], none = { 0 };
    int n = pvabi_domain_list(ts, 0, all, 64);

    assert_true(n >= 0);
    for (int i = 0; i < n; i++)
        if (all[i].domid == domid) {
            *found = 1;
            return all[i];
        }
    *found = 0;
    return none;
}

/* ---- xen_version, physinfo ------------------------------------------------ */

static void test_version(void **state)
{
    struct pvabi_xen_version v;
    unsigned major, minor;
    pvabi_ctx *ctx;

    (void)state;
    assert_int_equal(pvabi_open(&ctx, it_platform()), 0);
    assert_int_equal(pvabi_xen_version_read(ctx, &v), 0);
    assert_int_equal(sscanf(pvabi_version(), "%u.%u", &major, &minor), 2);
    assert_int_equal(v.major, major);
    assert_int_equal(v.minor, minor);
    assert_string_equal(v.extra, "-pvabi");
    assert_int_equal(strncmp(v.capabilities, "pvabi-local-1 ", 14), 0);
    assert_int_equal(v.pagesize, 4096);
    assert_true(v.changeset[0] != '\0');
    assert_int_equal(pvabi_xen_version_read(ctx, NULL), -EINVAL);
    assert_int_equal(pvabi_xen_version_read(NULL, &v), -EINVAL);
    pvabi_close(ctx);
}

static void test_physinfo(void **state)
{
    struct pvabi_physinfo pi;
    struct sysinfo si;
    pvabi_ctx *ts = toolstack(), *dom;

    (void)state;
    assert_int_equal(pvabi_physinfo_read(ts, &pi), 0);
    assert_int_equal(sysinfo(&si), 0);
    assert_int_equal(pi.nr_cpus, sysconf(_SC_NPROCESSORS_ONLN));
    assert_int_equal(pi.max_cpu_id + 1, sysconf(_SC_NPROCESSORS_CONF));
    assert_int_equal(pi.total_pages, (uint64_t)si.totalram * si.mem_unit / 4096);
    assert_true(pi.free_pages > 0 && pi.free_pages <= pi.total_pages);
    assert_int_equal(pi.page_size, 4096);
    assert_int_equal(pi.nr_nodes, 1);
    /* A sysctl: an unprivileged domain may not ask. */
    assert_int_equal(pvabi_open(&dom, it_platform()), 0);
    assert_int_equal(pvabi_physinfo_read(dom, &pi), -EPERM);
    pvabi_close(dom);
    pvabi_close(ts);
}

/* ---- domains ------------------------------------------------------------------ */

static void test_domain_list_reports_agents(void **state)
{
    struct it_agent a, b;
    struct pvabi_domain_info di;
    unsigned slot;
    pvabi_gref refs[3];
    pvabi_ctx *ts = toolstack();
    int found;

    (void)state;
    it_agent_start(&a, "frontend");
    it_agent_start(&b, "backend");
    assert_int_equal(it_share(&a, b.domid, 3, 0, &slot, refs), 0);

    /* The agent has answered but may not be asleep yet: ask until the
     * kernel shows it sleeping before and after the daemon looked (each
     * try is a round trip to the daemon; at most 10 s of them). */
    uint64_t before, after;
    char st_before, st_after;
    uint64_t give_up = it_now_ns() + 10000000000ull;
    do {
        st_before = proc_state(a.pid);
        before = proc_cpu_ns(a.pid);
        di = find_domain(ts, a.domid, &found);
        after = proc_cpu_ns(a.pid);
        st_after = proc_state(a.pid);
    } while (!(st_before == 'S' && st_after == 'S') && it_now_ns() < give_up);
    assert_true(st_before == 'S' && st_after == 'S');
    assert_true(found);
    assert_int_equal(di.tot_pages, 3); /* the pages it shares */
    assert_int_equal(di.nr_online_vcpus, 1);
    assert_int_equal(di.max_vcpu_id, 0);
    assert_true(di.cpu_time_ns >= before && di.cpu_time_ns <= after);
    /* Waiting for its next command: blocked, not running, not dying. */
    assert_int_equal(di.flags & (PVABI_DOMINF_BLOCKED | PVABI_DOMINF_DYING | PVABI_DOMINF_HVM),
                     PVABI_DOMINF_BLOCKED);
    assert_true(di.name[0] != '\0'); /* the agent process's name, from the store */

    di = find_domain(ts, b.domid, &found);
    assert_true(found);
    assert_int_equal(di.tot_pages, 0);
    /* The toolstack is not a domain; the privileged domain is not running. */
    find_domain(ts, pvabi_own_domid(ts), &found);
    assert_false(found);

    it_agent_stop(&b, 1);
    it_agent_stop(&a, 1);
    pvabi_close(ts);
}

static void test_domain_list_pages(void **state)
{
    struct it_agent ag[3];
    struct pvabi_domain_info one[1], all[8];
    pvabi_ctx *ts = toolstack();
    int n, got = 0;

    (void)state;
    for (int i = 0; i < 3; i++)
        it_agent_start(&ag[i], "other");
    n = pvabi_domain_list(ts, 0, all, 8);
    assert_int_equal(n, 3);
    for (pvabi_domid first = 0; pvabi_domain_list(ts, first, one, 1) == 1; got++) {
        assert_int_equal(one[0].domid, all[got].domid);
        first = (pvabi_domid)(one[0].domid + 1);
    }
    assert_int_equal(got, 3);
    assert_int_equal(pvabi_domain_list(ts, (pvabi_domid)(all[2].domid + 1), one, 1), 0);
    assert_int_equal(pvabi_domain_list(ts, 0, all, 0), -EINVAL);
    assert_int_equal(pvabi_domain_list(ts, 0, NULL, 1), -EINVAL);
    for (int i = 0; i < 3; i++)
        it_agent_stop(&ag[i], 1);
    pvabi_close(ts);
}

static void test_domain_read_rules(void **state)
{
    struct pvabi_domain_info di;
    struct it_agent a;
    pvabi_ctx *dom, *ts = toolstack();

    (void)state;
    it_agent_start(&a, "other");
    assert_int_equal(pvabi_open(&dom, it_platform()), 0);
    /* A domain may ask about itself, by id or as PVABI_DOMID_SELF... */
    assert_int_equal(pvabi_domain_read(dom, PVABI_DOMID_SELF, &di), 0);
    assert_int_equal(di.domid, pvabi_own_domid(dom));
    assert_int_equal(pvabi_domain_read(dom, pvabi_own_domid(dom), &di), 0);
    /* ...not about another; the toolstack may. */
    assert_int_equal(pvabi_domain_read(dom, a.domid, &di), -EPERM);
    assert_int_equal(pvabi_domain_read(ts, a.domid, &di), 0);
    assert_int_equal(di.domid, a.domid);
    /* No such domain, and ids that are no domain at all. */
    assert_int_equal(pvabi_domain_read(ts, 30000, &di), -ESRCH);
    assert_int_equal(pvabi_domain_read(ts, 0x7FF5, &di), -EINVAL);
    assert_int_equal(pvabi_domain_read(ts, a.domid, NULL), -EINVAL);
    pvabi_close(dom);
    it_agent_stop(&a, 1);
    pvabi_close(ts);
}

/* A domain that died while another maps its pages lingers, dying, with the
 * grants still mapped; it goes when they are unmapped. */
static void test_dying_domain(void **state)
{
    struct it_agent a, b;
    struct pvabi_domain_info di;
    struct pvabi_grant_entry e[4];
    pvabi_gref refs[2];
    unsigned slot, mslot;
    int status[2], found;
    pvabi_ctx *ts = toolstack();

    (void)state;
    it_agent_start(&a, "frontend");
    it_agent_start(&b, "backend");
    assert_int_equal(it_share(&a, b.domid, 2, 0, &slot, refs), 0);
    assert_int_equal(it_map(&b, a.domid, refs, 2, 0, status, &mslot), 0);
    it_agent_kill(&a); /* reaped: its socket is closed before we ask */
    di = find_domain(ts, a.domid, &found);
    assert_true(found);
    assert_true(di.flags & PVABI_DOMINF_DYING);
    assert_int_equal(pvabi_grant_list(ts, a.domid, 0, e, 4), 2);
    assert_int_equal(e[0].dying, 1);
    assert_int_equal(e[0].maps, 1);
    assert_int_equal(it_unmap(&b, mslot), 0);
    /* The unmap goes unanswered (HV_F_NOREPLY); b's next call is answered
     * after it. */
    pvabi_port p;
    assert_int_equal(it_alloc(&b, 0, &p), 0);
    find_domain(ts, a.domid, &found);
    assert_false(found);
    assert_int_equal(pvabi_grant_list(ts, a.domid, 0, e, 4), -ESRCH);
    it_agent_stop(&b, 1);
    it_agent_release(&a);
    pvabi_close(ts);
}

/* ---- event channels -------------------------------------------------------------- */

static void expect_status(pvabi_ctx *ts, pvabi_domid dom, pvabi_port port, uint32_t status,
                          pvabi_domid rdom, pvabi_port rport)
{
    struct pvabi_evtchn_status st;

    assert_int_equal(pvabi_evtchn_status_read(ts, dom, port, &st), 0);
    assert_int_equal(st.dom, dom);
    assert_int_equal(st.port, port);
    assert_int_equal(st.status, status);
    assert_int_equal(st.remote_dom, rdom);
    assert_int_equal(st.remote_port, rport);
}

static void test_evtchn_status(void **state)
{
    struct it_agent fe, be;
    struct pvabi_evtchn_status st;
    pvabi_port pf, pb;
    pvabi_ctx *ts = toolstack();

    (void)state;
    it_agent_start(&fe, "frontend");
    it_agent_start(&be, "backend");
    assert_int_equal(it_alloc(&fe, be.domid, &pf), 0);
    expect_status(ts, fe.domid, pf, PVABI_EVTCHNSTAT_UNBOUND, be.domid, 0);
    assert_int_equal(it_bind(&be, fe.domid, pf, &pb), 0);
    expect_status(ts, fe.domid, pf, PVABI_EVTCHNSTAT_INTERDOMAIN, be.domid, pb);
    expect_status(ts, be.domid, pb, PVABI_EVTCHNSTAT_INTERDOMAIN, fe.domid, pf);
    /* Port 0 is reserved and closed, as on Xen; past the last one: -EINVAL
     * (the end of a walk). */
    assert_int_equal(pvabi_evtchn_status_read(ts, fe.domid, 0, &st), 0);
    assert_int_equal(st.status, PVABI_EVTCHNSTAT_CLOSED);
    assert_int_equal(pvabi_evtchn_status_read(ts, fe.domid, 4096, &st), -EINVAL);
    assert_int_equal(pvabi_evtchn_status_read(ts, 30000, 1, &st), -ESRCH);
    /* The backend dies: the port is offered to it again (Xen's rebind). */
    it_agent_kill(&be); /* reaped: the daemon handles its hang-up before answering */
    expect_status(ts, fe.domid, pf, PVABI_EVTCHNSTAT_UNBOUND, be.domid, 0);
    it_agent_stop(&fe, 1);
    it_agent_release(&be);
    pvabi_close(ts);
}

static void test_evtchn_status_rules(void **state)
{
    struct it_agent a;
    struct pvabi_evtchn_status st;
    pvabi_port p, own;
    pvabi_ctx *dom;

    (void)state;
    it_agent_start(&a, "other");
    assert_int_equal(pvabi_open(&dom, it_platform()), 0);
    assert_int_equal(it_alloc(&a, pvabi_own_domid(dom), &p), 0);
    assert_int_equal(pvabi_evtchn_alloc(dom, a.domid, &own), 0);
    assert_int_equal(pvabi_evtchn_status_read(dom, PVABI_DOMID_SELF, own, &st), 0);
    assert_int_equal(st.dom, pvabi_own_domid(dom));
    assert_int_equal(st.status, PVABI_EVTCHNSTAT_UNBOUND);
    assert_int_equal(st.remote_dom, a.domid);
    assert_int_equal(pvabi_evtchn_status_read(dom, a.domid, p, &st), -EPERM);
    /* Xen's order: no such port before no right to ask. */
    assert_int_equal(pvabi_evtchn_status_read(dom, a.domid, 4096, &st), -EINVAL);
    pvabi_close(dom);
    it_agent_stop(&a, 1);
}

/* ---- grant table and memory -------------------------------------------------------- */

static void test_gnttab_and_memory(void **state)
{
    struct it_agent a, b;
    struct pvabi_gnttab_size gs;
    struct pvabi_memory mem;
    pvabi_gref refs[5];
    unsigned slot;
    pvabi_ctx *dom, *ts = toolstack();

    (void)state;
    it_agent_start(&a, "frontend");
    it_agent_start(&b, "backend");
    assert_int_equal(it_share(&a, b.domid, 5, 0, &slot, refs), 0);
    assert_int_equal(pvabi_gnttab_size_read(ts, a.domid, &gs), 0);
    assert_int_equal(gs.dom, a.domid);
    assert_int_equal(gs.nr_frames, 1);
    assert_int_equal(gs.max_nr_frames, 16);
    assert_int_equal(pvabi_memory_read(ts, a.domid, &mem), 0);
    assert_int_equal(mem.current_pages, 5);
    assert_int_equal(mem.maximum_pages, 8192 - 8);
    assert_int_equal(pvabi_memory_read(ts, b.domid, &mem), 0);
    assert_int_equal(mem.current_pages, 0);
    assert_int_equal(pvabi_gnttab_size_read(ts, 30000, &gs), -ESRCH);
    assert_int_equal(pvabi_memory_read(ts, 30000, &mem), -ESRCH);

    assert_int_equal(pvabi_open(&dom, it_platform()), 0);
    assert_int_equal(pvabi_gnttab_size_read(dom, PVABI_DOMID_SELF, &gs), 0);
    assert_int_equal(gs.dom, pvabi_own_domid(dom));
    assert_int_equal(pvabi_memory_read(dom, PVABI_DOMID_SELF, &mem), 0);
    assert_int_equal(mem.current_pages, 0);
    assert_int_equal(pvabi_gnttab_size_read(dom, a.domid, &gs), -EPERM);
    assert_int_equal(pvabi_memory_read(dom, a.domid, &mem), -EPERM);
    pvabi_close(dom);
    it_agent_stop(&b, 1);
    it_agent_stop(&a, 1);
    pvabi_close(ts);
}

static void test_grant_list(void **state)
{
    struct it_agent a, b;
    struct pvabi_grant_entry e[8];
    pvabi_gref rw[2], ro[1];
    unsigned s1, s2, ms;
    int status[1];
    pvabi_ctx *dom, *ts = toolstack();

    (void)state;
    it_agent_start(&a, "frontend");
    it_agent_start(&b, "backend");
    assert_int_equal(it_share(&a, b.domid, 2, 0, &s1, rw), 0);
    assert_int_equal(it_share(&a, b.domid, 1, PVABI_GRANT_RO, &s2, ro), 0);
    assert_int_equal(it_map(&b, a.domid, ro, 1, PVABI_GRANT_RO, status, &ms), 0);
    assert_int_equal(pvabi_grant_list(ts, a.domid, 0, e, 8), 3);
    for (int i = 0; i < 3; i++) {
        pvabi_gref want = i < 2 ? rw[i] : ro[0];
        assert_int_equal(e[i].ref, want);
        assert_int_equal(e[i].granter, a.domid);
        assert_int_equal(e[i].grantee, b.domid);
        assert_int_equal(e[i].flags, i < 2 ? 0 : PVABI_GRANT_RO);
        assert_int_equal(e[i].maps, i < 2 ? 0 : 1);
        assert_int_equal(e[i].dying, 0);
    }
    /* Paging: from the second ref on; one at a time. */
    assert_int_equal(pvabi_grant_list(ts, a.domid, rw[0] + 1, e, 8), 2);
    assert_int_equal(e[0].ref, rw[1]);
    assert_int_equal(pvabi_grant_list(ts, a.domid, 0, e, 1), 1);
    assert_int_equal(pvabi_grant_list(ts, b.domid, 0, e, 8), 0);
    assert_int_equal(pvabi_grant_list(ts, 30000, 0, e, 8), -ESRCH);
    assert_int_equal(pvabi_grant_list(ts, a.domid, 0, e, 0), -EINVAL);
    /* Another domain's table needs privilege; its own does not. */
    assert_int_equal(pvabi_open(&dom, it_platform()), 0);
    assert_int_equal(pvabi_grant_list(dom, a.domid, 0, e, 8), -EPERM);
    assert_int_equal(pvabi_grant_list(dom, pvabi_own_domid(dom), 0, e, 8), 0);
    pvabi_close(dom);
    it_agent_stop(&b, 1);
    it_agent_stop(&a, 1);
    pvabi_close(ts);
}

/* ---- the toolstack context ------------------------------------------------------------ */

static void test_toolstack_owns_nothing(void **state)
{
    pvabi_ctx *ts = toolstack();
    pvabi_grant *g;
    pvabi_port p;
    char *v = NULL;

    (void)state;
    assert_int_equal(pvabi_own_domid(ts), 0);
    assert_int_equal(pvabi_evtchn_alloc(ts, 1, &p), -EPERM);
    assert_int_equal(pvabi_grant_share(ts, 1, 1, 0, &g), -EPERM);
    /* The store takes it for the toolstack: it may write anywhere. */
    assert_int_equal(pvabi_store_write(ts, PVABI_STORE_TXN_NONE, "/tool/pvabi-test", "x"), 0);
    assert_int_equal(pvabi_store_read(ts, PVABI_STORE_TXN_NONE, "/tool/pvabi-test", &v), 1);
    free(v);
    assert_int_equal(pvabi_store_rm(ts, PVABI_STORE_TXN_NONE, "/tool/pvabi-test"), 0);
    pvabi_close(ts);
    assert_int_equal(pvabi_open_flags(&ts, it_platform(), 0x80), -EINVAL);
    assert_null(ts);
}

/* A process that is a domain and a toolstack at once: each context speaks
 * to the store as what it is. */
static void test_toolstack_beside_domain(void **state)
{
    pvabi_ctx *dom, *ts;
    char path[64];

    (void)state;
    assert_int_equal(pvabi_open(&dom, it_platform()), 0);
    ts = toolstack();
    assert_int_equal(pvabi_store_write(ts, PVABI_STORE_TXN_NONE, "/tool/pvabi-test", "x"), 0);
    assert_int_equal(pvabi_store_write(dom, PVABI_STORE_TXN_NONE, "/tool/pvabi-test", "y"),
                     -EACCES);
    snprintf(path, sizeof(path), "/local/domain/%u/name", pvabi_own_domid(dom));
    struct pvabi_domain_info di;
    assert_int_equal(pvabi_domain_read(ts, pvabi_own_domid(dom), &di), 0);
    assert_true(di.name[0] != '\0');
    pvabi_close(ts);
    pvabi_close(dom);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(test_version),
        IT_TEST(test_physinfo),
        IT_TEST(test_domain_list_reports_agents),
        IT_TEST(test_domain_list_pages),
        IT_TEST(test_domain_read_rules),
        IT_TEST(test_dying_domain),
        IT_TEST(test_evtchn_status),
        IT_TEST(test_evtchn_status_rules),
        IT_TEST(test_gnttab_and_memory),
        IT_TEST(test_grant_list),
        IT_TEST(test_toolstack_owns_nothing),
        IT_TEST(test_toolstack_beside_domain),
    };
    if (it_is_xen()) {
        printf("SKIP: the local daemon's answers; tests/xen checks the wrappers on Xen\n");
        return 77;
    }
    return it_run_tests("integration-hypercall", tests);
}
