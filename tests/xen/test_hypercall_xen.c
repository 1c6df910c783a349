/* SPDX-License-Identifier: MIT */
/*
 * The typed hypercall wrappers on real Xen, each checked against what
 * libxenctrl says in the same moment (xc_version, xc_physinfo,
 * xc_domain_getinfolist, xc_evtchn_status, xc_gnttab_query_size).  Run by
 * the Xen suite (tests/xen/tests.list) in dom0, where everything may be
 * asked, with a PV domU up, and wholly inside a domU, where Xen refuses the
 * toolstack's questions (-EPERM) but answers a domain's about itself.
 */
/* xenctrl.h needs GNU C (see src/platform/xen/xc.c). */
#undef __STRICT_ANSI__
#define __XEN_TOOLS__ 1

#include <xenctrl.h>

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <pvabi/pvabi.h>

static pvabi_ctx *ctx;
static xc_interface *xch;
static int in_dom0;
/* Linux's privcmd in a domU that has no target domain blocks every
 * hypercall (EPERM) before Xen sees it: pvabi must then say -EPERM. */
static int privcmd_blocked;

/* In a domU whose privcmd blocks everything: the wrapper's answer must be
 * -EPERM, and the test is done. */
#define EXPECT_BLOCKED(call)                                                                       \
    do {                                                                                           \
        if (privcmd_blocked) {                                                                     \
            assert_int_equal((call), -EPERM);                                                      \
            return;                                                                                \
        }                                                                                          \
    } while (0)

/* Free memory moves a little between two questions (scrubbing, ballooning
 * of nobody here); everything else must be equal. */
#define FREE_PAGES_SLACK 4096u

static uint64_t absdiff(uint64_t a, uint64_t b)
{
    return a > b ? a - b : b - a;
}

static void test_version(void **state)
{
    struct pvabi_xen_version v;
    xen_extraversion_t extra;
    xen_capabilities_info_t caps;
    xen_changeset_info_t cset;
    xen_feature_info_t fi = { .submap_idx = 0 };
    int ver;

    (void)state;
    EXPECT_BLOCKED(pvabi_xen_version_read(ctx, &v));
    assert_int_equal(pvabi_xen_version_read(ctx, &v), 0);
    ver = xc_version(xch, XENVER_version, NULL);
    assert_int_equal(v.major, (uint32_t)ver >> 16);
    assert_int_equal(v.minor, (uint32_t)ver & 0xffff);
    assert_int_equal(xc_version(xch, XENVER_extraversion, extra), 0);
    assert_string_equal(v.extra, extra);
    assert_int_equal(xc_version(xch, XENVER_capabilities, caps), 0);
    assert_string_equal(v.capabilities, caps);
    assert_int_equal(xc_version(xch, XENVER_changeset, cset), 0);
    assert_string_equal(v.changeset, cset);
    assert_int_equal(xc_version(xch, XENVER_get_features, &fi), 0);
    assert_int_equal(v.features, fi.submap);
    assert_int_equal(v.pagesize, xc_version(xch, XENVER_pagesize, NULL));
    assert_int_equal(v.pagesize, 4096);
}

static void test_physinfo(void **state)
{
    struct pvabi_physinfo pi;
    xc_physinfo_t xi;

    (void)state;
    if (!in_dom0) {
        assert_int_equal(pvabi_physinfo_read(ctx, &pi), -EPERM);
        return;
    }
    assert_int_equal(pvabi_physinfo_read(ctx, &pi), 0);
    assert_int_equal(xc_physinfo(xch, &xi), 0);
    assert_int_equal(pi.nr_cpus, xi.nr_cpus);
    assert_int_equal(pi.max_cpu_id, xi.max_cpu_id);
    assert_int_equal(pi.nr_nodes, xi.nr_nodes);
    assert_int_equal(pi.max_node_id, xi.max_node_id);
    assert_int_equal(pi.threads_per_core, xi.threads_per_core);
    assert_int_equal(pi.cores_per_socket, xi.cores_per_socket);
    assert_int_equal(pi.cpu_khz, xi.cpu_khz);
    assert_int_equal(pi.capabilities, xi.capabilities);
    assert_int_equal(pi.total_pages, xi.total_pages);
    assert_true(absdiff(pi.free_pages, xi.free_pages) < FREE_PAGES_SLACK);
    assert_memory_equal(pi.hw_cap, xi.hw_cap, sizeof(pi.hw_cap));
    assert_int_equal(pi.page_size, 4096);
    assert_true(pi.capabilities & PVABI_PHYSCAP_PV);
}

/* The fields of a domain that do not move while nothing is created. */
static void expect_same_domain(const struct pvabi_domain_info *d, const xc_domaininfo_t *x)
{
    uint32_t stable = PVABI_DOMINF_DYING | PVABI_DOMINF_HVM | PVABI_DOMINF_SHUTDOWN |
                      PVABI_DOMINF_PAUSED | PVABI_DOMINF_HAP;

    assert_int_equal(d->domid, x->domain);
    assert_int_equal(d->flags & stable, x->flags & stable);
    assert_int_equal(d->tot_pages, x->tot_pages);
    assert_int_equal(d->max_pages, x->max_pages);
    assert_int_equal(d->nr_online_vcpus, x->nr_online_vcpus);
    assert_int_equal(d->max_vcpu_id, x->max_vcpu_id);
    assert_int_equal(d->cpupool, x->cpupool);
    assert_int_equal(d->ssidref, x->ssidref);
    assert_memory_equal(d->handle, x->handle, sizeof(d->handle));
}

/* The store's name of @domid, as xl shows it; "" if none. */
static void store_name(pvabi_domid domid, char *buf, size_t size)
{
    char path[48], *v = NULL;

    snprintf(path, sizeof(path), "/local/domain/%u/name", (unsigned)domid);
    buf[0] = '\0';
    if (pvabi_store_read(ctx, PVABI_STORE_TXN_NONE, path, &v) >= 0)
        snprintf(buf, size, "%s", v);
    free(v);
}

static void test_domain_list(void **state)
{
    struct pvabi_domain_info d[64];
    xc_domaininfo_t x[64];
    char name[64];
    int n, xn;

    (void)state;
    if (!in_dom0) {
        assert_int_equal(pvabi_domain_list(ctx, 0, d, 64), -EPERM);
        return;
    }
    xn = xc_domain_getinfolist(xch, 0, 64, x);
    n = pvabi_domain_list(ctx, 0, d, 64);
    assert_int_equal(n, xn);
    print_message("# %d domains\n", n);
    for (int i = 0; i < n; i++) {
        expect_same_domain(&d[i], &x[i]);
        /* cpu time only grows */
        assert_true(d[i].cpu_time_ns >= x[i].cpu_time);
        store_name(d[i].domid, name, sizeof(name));
        assert_string_equal(d[i].name, name);
    }
    assert_string_equal(d[0].name, "Domain-0");
}

static void test_domain_read(void **state)
{
    struct pvabi_domain_info d;
    xc_domaininfo_t x[64];
    int xn;

    (void)state;
    if (!in_dom0) {
        /* Xen's XSM lets only a privileged domain use getdomaininfo. */
        assert_int_equal(pvabi_domain_read(ctx, PVABI_DOMID_SELF, &d), -EPERM);
        assert_int_equal(pvabi_domain_read(ctx, 0, &d), -EPERM);
        return;
    }
    xn = xc_domain_getinfolist(xch, 0, 64, x);
    assert_true(xn >= 1);
    for (int i = 0; i < xn; i++) {
        assert_int_equal(pvabi_domain_read(ctx, x[i].domain, &d), 0);
        expect_same_domain(&d, &x[i]);
    }
    assert_int_equal(pvabi_domain_read(ctx, PVABI_DOMID_SELF, &d), 0);
    assert_int_equal(d.domid, 0);
    /* Xen 4.17 answers a missing domain with the next one: not believed. */
    assert_int_equal(pvabi_domain_read(ctx, (pvabi_domid)(x[xn - 1].domain + 1), &d), -ESRCH);
    assert_int_equal(pvabi_domain_read(ctx, 0x7FF5, &d), -EINVAL);
}

/* Every port of @dom, ours against xc_evtchn_status, up to the first
 * -EINVAL; returns how many were walked. */
static unsigned walk_ports(pvabi_domid dom)
{
    struct pvabi_evtchn_status st;
    unsigned port;

    for (port = 1;; port++) {
        xc_evtchn_status_t xs = { .dom = dom, .port = port };
        int rc = pvabi_evtchn_status_read(ctx, dom, port, &st);
        int xrc = xc_evtchn_status(xch, &xs);

        if (rc == -EINVAL) {
            assert_int_equal(xrc, -1);
            return port - 1;
        }
        assert_int_equal(rc, 0);
        assert_int_equal(xrc, 0);
        assert_int_equal(st.status, xs.status);
        assert_int_equal(st.vcpu, xs.vcpu);
        if (xs.status == EVTCHNSTAT_interdomain) {
            assert_int_equal(st.remote_dom, xs.u.interdomain.dom);
            assert_int_equal(st.remote_port, xs.u.interdomain.port);
        } else if (xs.status == EVTCHNSTAT_unbound) {
            assert_int_equal(st.remote_dom, xs.u.unbound.dom);
        } else if (xs.status == EVTCHNSTAT_virq) {
            assert_int_equal(st.virq, xs.u.virq);
        } else if (xs.status == EVTCHNSTAT_pirq) {
            assert_int_equal(st.pirq, xs.u.pirq);
        }
    }
}

static void test_evtchn_status(void **state)
{
    struct pvabi_evtchn_status st;
    pvabi_port port;

    (void)state;
    EXPECT_BLOCKED(pvabi_evtchn_status_read(ctx, PVABI_DOMID_SELF, 1, &st));
    assert_int_equal(pvabi_evtchn_alloc(ctx, 0, &port), 0);
    assert_int_equal(pvabi_evtchn_status_read(ctx, PVABI_DOMID_SELF, port, &st), 0);
    assert_int_equal(st.status, PVABI_EVTCHNSTAT_UNBOUND);
    assert_int_equal(st.remote_dom, 0);
    assert_int_equal(st.dom, pvabi_own_domid(ctx));
    if (in_dom0) {
        print_message("# dom0: %u ports walked\n", walk_ports(0));
        struct pvabi_domain_info d[64];
        int n = pvabi_domain_list(ctx, 0, d, 64);
        for (int i = 1; i < n; i++)
            print_message("# dom%u: %u ports walked\n", d[i].domid, walk_ports(d[i].domid));
    } else {
        assert_int_equal(pvabi_evtchn_status_read(ctx, 0, 1, &st), -EPERM);
    }
    assert_int_equal(pvabi_evtchn_unbind(ctx, port), 0);
}

static void test_gnttab_size(void **state)
{
    struct pvabi_gnttab_size gs;
    struct gnttab_query_size q = { .dom = DOMID_SELF };

    (void)state;
    EXPECT_BLOCKED(pvabi_gnttab_size_read(ctx, PVABI_DOMID_SELF, &gs));
    assert_int_equal(pvabi_gnttab_size_read(ctx, PVABI_DOMID_SELF, &gs), 0);
    assert_int_equal(xc_gnttab_query_size(xch, &q), 0);
    assert_int_equal(q.status, GNTST_okay);
    assert_int_equal(gs.nr_frames, q.nr_frames);
    assert_int_equal(gs.max_nr_frames, q.max_nr_frames);
    assert_true(gs.nr_frames >= 1 && gs.nr_frames <= gs.max_nr_frames);
    if (in_dom0)
        assert_int_equal(pvabi_gnttab_size_read(ctx, 30000, &gs), -ESRCH);
    else
        assert_int_equal(pvabi_gnttab_size_read(ctx, 0, &gs), -EPERM);
}

static void test_memory(void **state)
{
    struct pvabi_memory m;
    domid_t self = DOMID_SELF;

    (void)state;
    EXPECT_BLOCKED(pvabi_memory_read(ctx, PVABI_DOMID_SELF, &m));
    assert_int_equal(pvabi_memory_read(ctx, PVABI_DOMID_SELF, &m), 0);
    assert_int_equal(m.dom, pvabi_own_domid(ctx));
    assert_int_equal(m.current_pages,
                     (uint64_t)xc_memory_op(xch, XENMEM_current_reservation, &self, sizeof(self)));
    assert_int_equal(m.maximum_pages,
                     (uint64_t)xc_memory_op(xch, XENMEM_maximum_reservation, &self, sizeof(self)));
    assert_true(m.current_pages > 0 && m.current_pages <= m.maximum_pages);
    if (!in_dom0)
        assert_int_equal(pvabi_memory_read(ctx, 0, &m), -EPERM);
}

static void test_grant_list_not_on_xen(void **state)
{
    struct pvabi_grant_entry e[1];

    (void)state;
    assert_int_equal(pvabi_grant_list(ctx, 0, 0, e, 1), -EOPNOTSUPP);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version),       cmocka_unit_test(test_physinfo),
        cmocka_unit_test(test_domain_list),   cmocka_unit_test(test_domain_read),
        cmocka_unit_test(test_evtchn_status), cmocka_unit_test(test_gnttab_size),
        cmocka_unit_test(test_memory),        cmocka_unit_test(test_grant_list_not_on_xen),
    };
    int rc = pvabi_open_flags(&ctx, "xen", PVABI_OPEN_TOOLSTACK);

    if (rc < 0) {
        printf("SKIP: no Xen here (pvabi_open(\"xen\"): %s)\n", strerror(-rc));
        return 77;
    }
    xch = xc_interface_open(NULL, NULL, 0);
    if (!xch) {
        printf("SKIP: xc_interface_open: %s (needs /dev/xen/privcmd as root)\n", strerror(errno));
        return 77;
    }
    in_dom0 = pvabi_own_domid(ctx) == 0;
    privcmd_blocked = !in_dom0 && xc_version(xch, XENVER_version, NULL) < 0 && errno == EPERM;
    if (privcmd_blocked)
        printf("# this domU's privcmd blocks every hypercall (no target domain): "
               "each wrapper must answer -EPERM\n");
    rc = cmocka_run_group_tests_name(in_dom0 ? "xen-hypercall (dom0)" : "xen-hypercall (domU)",
                                     tests, NULL, NULL);
    xc_interface_close(xch);
    pvabi_close(ctx);
    return rc;
}
