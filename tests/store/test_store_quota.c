/* SPDX-License-Identifier: MIT */
/*
 * Per-domain quotas with Xen 4.17 xenstored's errors, on a daemon started
 * with small ones (--store-quota NAME=N).  What Xen 4.17 does exactly:
 * - nodes: a domain owning quota nodes or more creates no more: ENOSPC;
 * - value size: a node record (header, permissions, value, children names)
 *   of quota bytes or more is refused: ENOSPC (so a value somewhat shorter
 *   than the quota may already fail; well shorter passes);
 * - watches: a WATCH while the domain has more than quota watches: E2BIG
 *   (the check is `watches > quota`: quota + 1 watches fit);
 * - transactions: a TRANSACTION_START while more than quota are open:
 *   ENOSPC (`started > quota`: quota + 1 fit);
 * - permissions per node: more than 5 entries in SET_PERMS: ENOSPC;
 * - the privileged domain is exempt from all of them.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fixture.h"

#define Q_NODES        20
#define Q_VALUE        256
#define Q_WATCHES      8
#define Q_TRANSACTIONS 4

static const char *const quota_args[] = {
    "--store-quota",  "nodes=20",       "--store-quota",
    "value-size=256", "--store-quota",  "watches=8",
    "--store-quota",  "transactions=4", NULL,
};

static struct xs_handle *h;

static int setup(void **state)
{
    fx_default_args = quota_args;
    fx_setup(state);
    h = fx_xs_open();
    return 0;
}

static int teardown(void **state)
{
    xs_close(h);
    h = NULL;
    return fx_teardown(state);
}

/* Writes <prefix><i> until one fails; returns how many were created and
 * the error in *err. */
static unsigned fill_nodes(struct fx_dom *d, const char *prefix, int *err)
{
    char p[128];
    unsigned n = 0;

    for (;;) {
        snprintf(p, sizeof(p), "%s%u", prefix, n);
        *err = fx_dom_write(d, p, "x");
        if (*err || n > 10 * Q_NODES)
            return n;
        n++;
    }
}

static void test_node_quota_is_enospc_at_limit(void **state)
{
    struct fx_dom a;
    char prefix[96], p[128];
    unsigned owned, made;
    int err;

    (void)state;
    fx_dom_spawn(&a, -1, 1);
    owned = fx_count_owned(h, a.domid);
    assert_true(owned >= 1 && owned < Q_NODES);
    snprintf(prefix, sizeof(prefix), "%s/n", a.home);
    made = fill_nodes(&a, prefix, &err);
    if (err != ENOSPC)
        fail_msg("node %u past the quota: %s, expected ENOSPC", made, strerror(err));
    if (owned + made != Q_NODES)
        fail_msg("domain owned %u nodes and created %u more: %u, quota is %d", owned, made,
                 owned + made, Q_NODES);
    assert_int_equal(fx_count_owned(h, a.domid), Q_NODES);
    snprintf(p, sizeof(p), "%s/dir", a.home);
    assert_int_equal(fx_dom_mkdir(&a, p), ENOSPC);
    fx_expect_enoent(h, p);

    /* Removing one makes room for one. */
    snprintf(p, sizeof(p), "%s/n0", a.home);
    assert_int_equal(fx_dom_rm(&a, p), 0);
    snprintf(p, sizeof(p), "%s/again", a.home);
    assert_int_equal(fx_dom_write(&a, p, "y"), 0);
    snprintf(p, sizeof(p), "%s/again2", a.home);
    assert_int_equal(fx_dom_write(&a, p, "y"), ENOSPC);
}

/* Each domain has its own count. */
static void test_node_quota_is_per_domain(void **state)
{
    struct fx_dom a, b;
    char prefix[96];
    int err;

    (void)state;
    fx_dom_spawn(&a, -1, 1);
    fx_dom_spawn(&b, -1, 1);
    snprintf(prefix, sizeof(prefix), "%s/n", a.home);
    fill_nodes(&a, prefix, &err);
    assert_int_equal(err, ENOSPC);
    snprintf(prefix, sizeof(prefix), "%s/n", b.home);
    assert_true(fill_nodes(&b, prefix, &err) >= Q_NODES - 5);
    assert_int_equal(err, ENOSPC);
}

/* The quota is the longest value, in bytes (Xen counts its whole node
 * record, header and child names included, which makes the limit depend on
 * the node: docs/xenstore.md). */
static void test_value_size_quota_is_enospc(void **state)
{
    char big[Q_VALUE + 2], ok[Q_VALUE + 1], p[128], out[Q_VALUE * 2];
    struct fx_dom a;

    (void)state;
    memset(big, 'B', Q_VALUE + 1);
    big[Q_VALUE + 1] = 0;
    memset(ok, 'o', sizeof(ok) - 1);
    ok[sizeof(ok) - 1] = 0;
    fx_dom_spawn(&a, -1, 1);
    snprintf(p, sizeof(p), "%s/v", a.home);

    assert_int_equal(fx_dom_write(&a, p, big), ENOSPC);
    fx_expect_enoent(h, p);
    assert_int_equal(fx_dom_write(&a, p, ok), 0);
    assert_int_equal(fx_dom_write(&a, p, big), ENOSPC);
    assert_int_equal(fx_dom_read(&a, p, out, sizeof(out)), 0);
    assert_string_equal(out, ok);
}

static void test_watch_quota_is_e2big(void **state)
{
    struct fx_dom a;
    char p[128], t[16];
    int n = 0, err = 0;

    (void)state;
    fx_dom_spawn(&a, -1, 1);
    for (; n <= 4 * Q_WATCHES; n++) {
        snprintf(p, sizeof(p), "%s/w%d", a.home, n);
        snprintf(t, sizeof(t), "t%d", n);
        err = fx_dom_watch(&a, p, t);
        if (err)
            break;
    }
    if (err != E2BIG)
        fail_msg("watch %d: %s, expected E2BIG", n, err ? strerror(err) : "success");
    /* Exactly the quota (Xen 4.17's check, watches > quota, fits one more). */
    if (n != Q_WATCHES)
        fail_msg("%d watches fit under a quota of %d", n, Q_WATCHES);

    snprintf(p, sizeof(p), "%s/w0", a.home);
    assert_int_equal(fx_dom_unwatch(&a, p, "t0"), 0);
    snprintf(p, sizeof(p), "%s/w-again", a.home);
    assert_int_equal(fx_dom_watch(&a, p, "again"), 0);
    assert_int_equal(fx_dom_watch(&a, p, "again-2"), E2BIG);
}

static void test_transaction_quota_is_enospc(void **state)
{
    uint32_t tx[4 * Q_TRANSACTIONS + 2];
    struct fx_dom a;
    int n = 0, err = 0;

    (void)state;
    fx_dom_spawn(&a, -1, 1);
    for (; n <= 4 * Q_TRANSACTIONS; n++) {
        err = fx_dom_tx_start(&a, &tx[n]);
        if (err)
            break;
    }
    if (err != ENOSPC)
        fail_msg("transaction %d: %s, expected ENOSPC", n, err ? strerror(err) : "success");
    /* Exactly the quota (Xen 4.17's check fits one more). */
    if (n != Q_TRANSACTIONS)
        fail_msg("%d transactions fit under a quota of %d", n, Q_TRANSACTIONS);
    assert_int_equal(fx_dom_tx_end(&a, tx[0], true), 0);
    assert_int_equal(fx_dom_tx_start(&a, &tx[0]), 0);
    assert_int_equal(fx_dom_tx_start(&a, &tx[n]), ENOSPC);
}

/* Xen's quota_nb_perms_per_node: at most 5 entries for an unprivileged
 * domain's SET_PERMS. */
static void test_more_than_five_permission_entries_is_enospc(void **state)
{
    struct fx_dom a;
    char p[128], perms[128];

    (void)state;
    fx_dom_spawn(&a, -1, 1);
    snprintf(p, sizeof(p), "%s/p", a.home);
    assert_int_equal(fx_dom_write(&a, p, ""), 0);
    snprintf(perms, sizeof(perms), "n%u r1 r2 r3 r4", a.domid);
    assert_int_equal(fx_dom_setperms(&a, p, perms), 0);
    snprintf(perms, sizeof(perms), "n%u r1 r2 r3 r4 r5", a.domid);
    assert_int_equal(fx_dom_setperms(&a, p, perms), ENOSPC);
    /* Not for the privileged domain. */
    assert_int_equal(fx_perms_set(h, p, "n0 r1 r2 r3 r4 r5 r6 r7"), 0);
}

static void test_privileged_domain_exempt_from_quotas(void **state)
{
    xs_transaction_t t[Q_TRANSACTIONS + 4];
    char p[64], v[Q_VALUE * 4];

    (void)state;
    for (int i = 0; i < Q_NODES + 10; i++) {
        snprintf(p, sizeof(p), "/tsq/n%d", i);
        fx_write(h, p, "x");
    }
    memset(v, 'v', sizeof(v) - 1);
    v[sizeof(v) - 1] = 0;
    fx_write(h, "/tsq/big", v);
    for (int i = 0; i < Q_WATCHES + 10; i++) {
        snprintf(p, sizeof(p), "/tsq/w%d", i);
        assert_true(xs_watch(h, p, "t"));
    }
    for (int i = 0; i < Q_TRANSACTIONS + 4; i++) {
        t[i] = xs_transaction_start(h);
        assert_int_not_equal(t[i], XBT_NULL);
    }
    for (int i = 0; i < Q_TRANSACTIONS + 4; i++)
        assert_true(xs_transaction_end(h, t[i], true));
}

/* A dead domain's nodes no longer count: a new domain with its domid gets
 * the whole quota. */
static void test_nodes_of_dead_domain_no_longer_count(void **state)
{
    struct fx_dom a, a2;
    char perms[64], prefix[96];
    unsigned domid, owned;
    int err;

    (void)state;
    fx_dom_spawn(&a, -1, 1);
    domid = a.domid;
    owned = fx_count_owned(h, domid);
    fx_write(h, "/shared", "");
    snprintf(perms, sizeof(perms), "n0 b%u", domid);
    assert_int_equal(fx_perms_set(h, "/shared", perms), 0);
    fill_nodes(&a, "/shared/k", &err);
    assert_int_equal(err, ENOSPC);

    assert_true(xs_watch(h, "@releaseDomain", "rel"));
    fx_expect_event(h, "@releaseDomain", "rel");
    fx_dom_kill(&a);
    for (;;) {
        char *p, *t;
        bool rel;

        assert_int_equal(fx_next_event(h, FX_WAIT_MS, &p, &t), 0);
        rel = strcmp(p, "@releaseDomain") == 0;
        free(p);
        free(t);
        if (rel)
            break;
    }

    err = fx_dom_try_spawn(&a2, (int)domid, 1);
    if (err)
        fail_msg("could not get domid %u again: %s", domid, strerror(err));
    snprintf(prefix, sizeof(prefix), "%s/n", a2.home);
    assert_int_equal(fill_nodes(&a2, prefix, &err), Q_NODES - owned);
    assert_int_equal(err, ENOSPC);
}

int main(int argc, char **argv)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_node_quota_is_enospc_at_limit),
        T(test_node_quota_is_per_domain),
        T(test_value_size_quota_is_enospc),
        T(test_watch_quota_is_e2big),
        T(test_transaction_quota_is_enospc),
        T(test_more_than_five_permission_entries_is_enospc),
        T(test_privileged_domain_exempt_from_quotas),
        T(test_nodes_of_dead_domain_no_longer_count),
    };
#undef T
    int rc = fx_agent_main(argc, argv);

    if (rc >= 0)
        return rc;
    rc = fx_require_hv();
    if (rc)
        return rc;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
