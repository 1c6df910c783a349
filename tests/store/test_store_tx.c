/* SPDX-License-Identifier: MIT */
/*
 * Transactions, through libxenstore as the toolstack with two connections.
 * The semantics are Xen 4.17's C xenstored: a transaction works on copies of
 * the nodes it touches, taken when it first touches them; at commit every
 * node it read must be unchanged (same generation), else EAGAIN and nothing
 * is applied; nodes it did not touch do not matter.  Watches fire at commit.
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

static struct xs_handle *h1, *h2;

static int setup(void **state)
{
    fx_setup(state);
    h1 = fx_xs_open();
    h2 = fx_xs_open();
    return 0;
}

static int teardown(void **state)
{
    xs_close(h1);
    xs_close(h2);
    h1 = h2 = NULL;
    return fx_teardown(state);
}

static xs_transaction_t start(struct xs_handle *h)
{
    xs_transaction_t t = xs_transaction_start(h);

    if (t == XBT_NULL)
        fail_msg("xs_transaction_start: %s", strerror(errno));
    return t;
}

static void commit_ok(struct xs_handle *h, xs_transaction_t t)
{
    if (!xs_transaction_end(h, t, false))
        fail_msg("commit of transaction %u: %s", t, strerror(errno));
}

static void commit_eagain(struct xs_handle *h, xs_transaction_t t)
{
    if (xs_transaction_end(h, t, false))
        fail_msg("commit of transaction %u succeeded, expected EAGAIN", t);
    if (errno != EAGAIN)
        fail_msg("commit of transaction %u: %s, expected EAGAIN", t, strerror(errno));
}

static void tx_write(struct xs_handle *h, xs_transaction_t t, const char *path, const char *v)
{
    if (!xs_write(h, t, path, v, (unsigned)strlen(v)))
        fail_msg("write %s in transaction %u: %s", path, t, strerror(errno));
}

static void tx_expect(struct xs_handle *h, xs_transaction_t t, const char *path, const char *v)
{
    char *r = fx_read(h, t, path);

    if (!r)
        fail_msg("read %s in transaction %u: %s (expected \"%s\")", path, t, strerror(errno), v);
    if (strcmp(r, v) != 0)
        fail_msg("read %s in transaction %u: \"%s\", expected \"%s\"", path, t, r, v);
    free(r);
}

/* A transaction sees its own writes; nobody else does until it commits. */
static void test_tx_sees_own_writes_others_only_after_commit(void **state)
{
    xs_transaction_t t;

    (void)state;
    fx_write(h1, "/tx/x", "old");
    t = start(h1);
    tx_write(h1, t, "/tx/x", "new");
    tx_write(h1, t, "/tx/created/deep", "c");
    tx_expect(h1, t, "/tx/x", "new");
    tx_expect(h1, t, "/tx/created/deep", "c");
    fx_expect_value(h2, "/tx/x", "old");
    fx_expect_value(h1, "/tx/x", "old"); /* same connection, outside it */
    fx_expect_enoent(h2, "/tx/created/deep");
    fx_expect_enoent(h2, "/tx/created");
    commit_ok(h1, t);
    fx_expect_value(h2, "/tx/x", "new");
    fx_expect_value(h2, "/tx/created/deep", "c");
    fx_expect_value(h2, "/tx/created", "");
}

/* A node the transaction read keeps its value inside it when somebody
 * changes it outside, and the commit then fails. */
static void test_tx_read_is_repeatable_and_outside_change_is_eagain(void **state)
{
    xs_transaction_t t;

    (void)state;
    fx_write(h1, "/tx/r", "a");
    t = start(h1);
    tx_expect(h1, t, "/tx/r", "a");
    fx_write(h2, "/tx/r", "b");
    tx_expect(h1, t, "/tx/r", "a");
    tx_write(h1, t, "/tx/other", "1");
    commit_eagain(h1, t);
    fx_expect_value(h2, "/tx/r", "b");
    fx_expect_enoent(h2, "/tx/other");
}

/* A node first read after an outside change: xenstored copies it then, so
 * the transaction sees the new value and may commit; an implementation
 * that snapshots at start would see the old one and must then fail.
 * Either way no update is lost. */
static void test_tx_first_read_after_outside_write_is_serializable(void **state)
{
    xs_transaction_t t;
    char *v;
    bool ok;

    (void)state;
    fx_write(h1, "/tx/s", "a");
    t = start(h1);
    fx_write(h2, "/tx/s", "b");
    v = fx_read(h1, t, "/tx/s");
    assert_non_null(v);
    tx_write(h1, t, "/tx/s-copy", v);
    ok = xs_transaction_end(h1, t, false);
    if (strcmp(v, "b") == 0) {
        if (!ok)
            fail_msg("a transaction that read the current value failed: %s", strerror(errno));
        fx_expect_value(h2, "/tx/s-copy", "b");
    } else {
        assert_string_equal(v, "a");
        if (ok)
            fail_msg("a transaction that read a stale value (\"a\") committed");
        assert_int_equal(errno, EAGAIN);
        fx_expect_enoent(h2, "/tx/s-copy");
    }
    free(v);
}

static void test_tx_abort_discards_everything(void **state)
{
    struct xs_permissions p = { .id = 0, .perms = XS_PERM_READ };
    xs_transaction_t t;
    char perms[64];

    (void)state;
    fx_write(h1, "/tx/keep", "k");
    fx_write(h1, "/tx/gone", "g");
    t = start(h1);
    tx_write(h1, t, "/tx/keep", "changed");
    tx_write(h1, t, "/tx/new/node", "n");
    assert_true(xs_rm(h1, t, "/tx/gone"));
    assert_true(xs_set_permissions(h1, t, "/tx/keep", &p, 1));
    assert_true(xs_transaction_end(h1, t, true));
    fx_expect_value(h2, "/tx/keep", "k");
    fx_expect_value(h2, "/tx/gone", "g");
    fx_expect_enoent(h2, "/tx/new");
    assert_int_equal(fx_perms_get(h2, "/tx/keep", perms, sizeof(perms)), 0);
    assert_string_equal(perms, "n0");
}

static void test_tx_commit_applies_every_operation(void **state)
{
    struct xs_permissions p[2] = { { .id = 0, .perms = XS_PERM_NONE },
                                   { .id = 4, .perms = XS_PERM_READ } };
    xs_transaction_t t;
    char perms[64];
    unsigned n;
    char **e;

    (void)state;
    fx_write(h1, "/tx/c/old", "o");
    fx_write(h1, "/tx/c/rm/sub", "s");
    t = start(h1);
    tx_write(h1, t, "/tx/c/old", "updated");
    tx_write(h1, t, "/tx/c/w", "w");
    assert_true(xs_mkdir(h1, t, "/tx/c/m/n"));
    assert_true(xs_rm(h1, t, "/tx/c/rm"));
    assert_true(xs_set_permissions(h1, t, "/tx/c/w", p, 2));
    e = xs_directory(h1, t, "/tx/c", &n);
    assert_non_null(e);
    assert_int_equal(n, 3); /* old, w, m */
    free(e);
    assert_null(fx_read(h1, t, "/tx/c/rm/sub"));
    assert_int_equal(errno, ENOENT);
    fx_expect_value(h2, "/tx/c/rm/sub", "s");
    fx_expect_enoent(h1, "/tx/c/w");
    commit_ok(h1, t);

    fx_expect_value(h2, "/tx/c/old", "updated");
    fx_expect_value(h2, "/tx/c/w", "w");
    fx_expect_value(h2, "/tx/c/m/n", "");
    fx_expect_enoent(h2, "/tx/c/rm/sub");
    fx_expect_enoent(h2, "/tx/c/rm");
    assert_int_equal(fx_perms_get(h2, "/tx/c/w", perms, sizeof(perms)), 0);
    assert_string_equal(perms, "n0 r4");
}

static void test_tx_read_then_outside_write_is_eagain(void **state)
{
    xs_transaction_t t;

    (void)state;
    fx_write(h1, "/tx/x", "1");
    t = start(h1);
    tx_expect(h1, t, "/tx/x", "1");
    fx_write(h2, "/tx/x", "2");
    tx_write(h1, t, "/tx/z", "z");
    commit_eagain(h1, t);
    fx_expect_enoent(h2, "/tx/z");
    fx_expect_value(h2, "/tx/x", "2");
}

static void test_tx_write_then_outside_write_is_eagain(void **state)
{
    xs_transaction_t t;

    (void)state;
    fx_write(h1, "/tx/ww", "0");
    t = start(h1);
    tx_write(h1, t, "/tx/ww", "mine");
    tx_write(h1, t, "/tx/ww2", "mine too");
    fx_write(h2, "/tx/ww", "theirs");
    commit_eagain(h1, t);
    fx_expect_value(h2, "/tx/ww", "theirs");
    fx_expect_enoent(h2, "/tx/ww2");
}

/* A listed directory is a read node: a child added outside conflicts. */
static void test_tx_directory_then_outside_new_child_is_eagain(void **state)
{
    xs_transaction_t t;
    unsigned n;
    char **e;

    (void)state;
    fx_write(h1, "/tx/d/one", "1");
    fx_write(h1, "/tx/elsewhere", "e");
    t = start(h1);
    e = xs_directory(h1, t, "/tx/d", &n);
    assert_non_null(e);
    assert_int_equal(n, 1);
    free(e);
    fx_write(h2, "/tx/d/two", "2");
    tx_write(h1, t, "/tx/elsewhere", "count=1");
    commit_eagain(h1, t);
    fx_expect_value(h2, "/tx/elsewhere", "e");
}

/* Removing a read node outside conflicts too. */
static void test_tx_read_then_outside_rm_is_eagain(void **state)
{
    xs_transaction_t t;

    (void)state;
    fx_write(h1, "/tx/del", "1");
    t = start(h1);
    tx_expect(h1, t, "/tx/del", "1");
    assert_true(xs_rm(h2, XBT_NULL, "/tx/del"));
    tx_write(h1, t, "/tx/after-del", "x");
    commit_eagain(h1, t);
    fx_expect_enoent(h2, "/tx/after-del");
}

/* A node read as missing and created outside conflicts. */
static void test_tx_read_missing_then_outside_create_is_eagain(void **state)
{
    xs_transaction_t t;

    (void)state;
    fx_write(h1, "/tx/m", "");
    t = start(h1);
    assert_null(fx_read(h1, t, "/tx/m/new"));
    assert_int_equal(errno, ENOENT);
    fx_write(h2, "/tx/m/new", "outside");
    tx_write(h1, t, "/tx/m-flag", "absent");
    commit_eagain(h1, t);
    fx_expect_enoent(h2, "/tx/m-flag");
}

/* Only nodes the transaction touched count (Xen 4.17: "only intervening
 * conflicting writes cause EAGAIN"): writes elsewhere, new nodes elsewhere
 * and other transactions' commits elsewhere do not. */
static void test_tx_unrelated_concurrent_writes_do_not_conflict(void **state)
{
    xs_transaction_t t, t2;

    (void)state;
    fx_write(h1, "/tx/a/x", "1");
    fx_write(h1, "/tx/b/y", "1");
    fx_write(h1, "/tx/c/z", "1");
    t = start(h1);
    tx_expect(h1, t, "/tx/a/x", "1");
    tx_write(h1, t, "/tx/a/x", "2");
    fx_write(h2, "/tx/b/y", "2");
    fx_write(h2, "/tx/c/new", "n");
    t2 = start(h2);
    tx_write(h2, t2, "/tx/c/z", "2");
    commit_ok(h2, t2);
    commit_ok(h1, t);
    fx_expect_value(h2, "/tx/a/x", "2");
    fx_expect_value(h2, "/tx/b/y", "2");
    fx_expect_value(h2, "/tx/c/z", "2");
}

/* Xen's example of two interfering transactions: TA1 reads A, TA2 reads B,
 * TA1 writes B, TA2 writes A; TA1 commits, TA2 then conflicts (B). */
static void test_two_interfering_transactions_second_commit_is_eagain(void **state)
{
    xs_transaction_t t1, t2;

    (void)state;
    fx_write(h1, "/tx/A", "a");
    fx_write(h1, "/tx/B", "b");
    t1 = start(h1);
    t2 = start(h2);
    tx_expect(h1, t1, "/tx/A", "a");
    tx_expect(h2, t2, "/tx/B", "b");
    tx_write(h1, t1, "/tx/B", "from-1");
    tx_write(h2, t2, "/tx/A", "from-2");
    commit_ok(h1, t1);
    commit_eagain(h2, t2);
    fx_expect_value(h2, "/tx/A", "a");
    fx_expect_value(h2, "/tx/B", "from-1");
}

/* A failed commit applies nothing. */
static void test_tx_conflict_applies_nothing(void **state)
{
    xs_transaction_t t;

    (void)state;
    fx_write(h1, "/tx/p/guard", "g");
    fx_write(h1, "/tx/p/one", "1");
    t = start(h1);
    tx_expect(h1, t, "/tx/p/guard", "g");
    tx_write(h1, t, "/tx/p/one", "changed");
    tx_write(h1, t, "/tx/p/two", "new");
    assert_true(xs_rm(h1, t, "/tx/p/one"));
    fx_write(h2, "/tx/p/guard", "moved");
    commit_eagain(h1, t);
    fx_expect_value(h2, "/tx/p/one", "1");
    fx_expect_enoent(h2, "/tx/p/two");
}

/* "Changes made in transactions cause an event only if and when
 * committed." */
static void test_tx_watches_fire_at_commit_not_before(void **state)
{
    struct fx_event ev[8];
    xs_transaction_t t;
    int n;

    (void)state;
    assert_true(xs_watch(h2, "/tx/w", "w"));
    fx_expect_event(h2, "/tx/w", "w");
    t = start(h1);
    tx_write(h1, t, "/tx/w/a", "1");
    fx_expect_quiet(h2);
    commit_ok(h1, t);
    n = fx_collect(h2, ev, 8);
    if (!fx_has_event(ev, n, "/tx/w/a", "w"))
        fail_msg("no watch event for /tx/w/a after the commit (%d other events)", n);
}

static void test_tx_aborted_or_failed_fires_no_watch(void **state)
{
    xs_transaction_t t;

    (void)state;
    fx_write(h1, "/tx/q/guard", "g");
    assert_true(xs_watch(h2, "/tx/q", "q"));
    fx_expect_event(h2, "/tx/q", "q");
    t = start(h1);
    tx_write(h1, t, "/tx/q/a", "1");
    assert_true(xs_transaction_end(h1, t, true));
    fx_expect_quiet(h2);

    t = start(h1);
    tx_expect(h1, t, "/tx/q/guard", "g");
    tx_write(h1, t, "/tx/q/b", "1");
    fx_write(h1, "/tx/q/guard", "moved"); /* outside: fires, and conflicts */
    fx_expect_event(h2, "/tx/q/guard", "q");
    commit_eagain(h1, t);
    fx_expect_quiet(h2);
}

/* A tx_id naming no transaction of this connection: ENOENT. */
static void test_unknown_transaction_id_is_enoent(void **state)
{
    (void)state;
    fx_write(h1, "/tx/u", "1");
    assert_null(fx_read(h1, 4242, "/tx/u"));
    assert_int_equal(errno, ENOENT);
    assert_false(xs_write(h1, 4242, "/tx/u", "2", 1));
    assert_int_equal(errno, ENOENT);
    assert_false(xs_transaction_end(h1, 4242, false));
    assert_int_equal(errno, ENOENT);
    fx_expect_value(h1, "/tx/u", "1");
}

/* Transaction ids belong to the connection that started them. */
static void test_transaction_of_another_connection_is_enoent(void **state)
{
    xs_transaction_t t;

    (void)state;
    fx_write(h1, "/tx/o", "1");
    t = start(h1);
    assert_null(fx_read(h2, t, "/tx/o"));
    assert_int_equal(errno, ENOENT);
    assert_false(xs_transaction_end(h2, t, false));
    assert_int_equal(errno, ENOENT);
    commit_ok(h1, t);
}

static void test_transaction_ids_are_nonzero_and_distinct(void **state)
{
    xs_transaction_t t[5];

    (void)state;
    for (int i = 0; i < 5; i++) {
        t[i] = start(h1);
        assert_int_not_equal(t[i], XBT_NULL);
        for (int j = 0; j < i; j++)
            assert_int_not_equal(t[i], t[j]);
    }
    for (int i = 0; i < 5; i++)
        assert_true(xs_transaction_end(h1, t[i], true));
}

/* TRANSACTION_END takes "T" or "F"; anything else is EINVAL (and leaves the
 * transaction open). */
static void test_transaction_end_argument_must_be_t_or_f(void **state)
{
    char id[32], buf[256];
    struct xsd_sockmsg rh;
    uint32_t tx;
    int s;

    (void)state;
    s = fx_raw_connect();
    assert_int_equal(fx_raw_call(s, XS_TRANSACTION_START, 1, 0, "", 1, &rh, id, sizeof(id)), 0);
    assert_int_equal(rh.type, XS_TRANSACTION_START);
    tx = (uint32_t)strtoul(id, NULL, 10);
    assert_int_not_equal(tx, 0);
    assert_int_equal(fx_raw_call(s, XS_TRANSACTION_END, 2, tx, "X", 2, &rh, buf, sizeof(buf)), 0);
    assert_int_equal(rh.type, XS_ERROR);
    assert_string_equal(buf, "EINVAL");
    assert_int_equal(fx_raw_call(s, XS_TRANSACTION_END, 3, tx, "TT", 3, &rh, buf, sizeof(buf)), 0);
    assert_int_equal(rh.type, XS_ERROR);
    assert_string_equal(buf, "EINVAL");
    assert_int_equal(fx_raw_call(s, XS_TRANSACTION_END, 4, tx, "F", 2, &rh, buf, sizeof(buf)), 0);
    assert_int_equal(rh.type, XS_TRANSACTION_END);
    assert_string_equal(buf, "OK");
    close(s);
}

/* No nested transactions: TRANSACTION_START sent with a transaction's id is
 * EBUSY; with an id naming nothing, ENOENT. */
static void test_transaction_start_inside_transaction_is_ebusy(void **state)
{
    char id[32], buf[256];
    struct xsd_sockmsg rh;
    uint32_t tx;
    int s;

    (void)state;
    s = fx_raw_connect();
    assert_int_equal(fx_raw_call(s, XS_TRANSACTION_START, 1, 0, "", 1, &rh, id, sizeof(id)), 0);
    tx = (uint32_t)strtoul(id, NULL, 10);
    assert_int_equal(fx_raw_call(s, XS_TRANSACTION_START, 2, tx, "", 1, &rh, buf, sizeof(buf)), 0);
    assert_int_equal(rh.type, XS_ERROR);
    assert_string_equal(buf, "EBUSY");
    assert_int_equal(
        fx_raw_call(s, XS_TRANSACTION_START, 3, tx + 1000, "", 1, &rh, buf, sizeof(buf)), 0);
    assert_int_equal(rh.type, XS_ERROR);
    assert_string_equal(buf, "ENOENT");
    close(s);
}

/* The transaction quota is for unprivileged domains. */
static void test_privileged_toolstack_exempt_from_transaction_quota(void **state)
{
    xs_transaction_t t[15];

    (void)state;
    for (int i = 0; i < 15; i++)
        t[i] = start(h1);
    for (int i = 0; i < 15; i++)
        assert_true(xs_transaction_end(h1, t[i], true));
}

int main(int argc, char **argv)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_tx_sees_own_writes_others_only_after_commit),
        T(test_tx_read_is_repeatable_and_outside_change_is_eagain),
        T(test_tx_first_read_after_outside_write_is_serializable),
        T(test_tx_abort_discards_everything),
        T(test_tx_commit_applies_every_operation),
        T(test_tx_read_then_outside_write_is_eagain),
        T(test_tx_write_then_outside_write_is_eagain),
        T(test_tx_directory_then_outside_new_child_is_eagain),
        T(test_tx_read_then_outside_rm_is_eagain),
        T(test_tx_read_missing_then_outside_create_is_eagain),
        T(test_tx_unrelated_concurrent_writes_do_not_conflict),
        T(test_two_interfering_transactions_second_commit_is_eagain),
        T(test_tx_conflict_applies_nothing),
        T(test_tx_watches_fire_at_commit_not_before),
        T(test_tx_aborted_or_failed_fires_no_watch),
        T(test_unknown_transaction_id_is_enoent),
        T(test_transaction_of_another_connection_is_enoent),
        T(test_transaction_ids_are_nonzero_and_distinct),
        T(test_transaction_end_argument_must_be_t_or_f),
        T(test_transaction_start_inside_transaction_is_ebusy),
        T(test_privileged_toolstack_exempt_from_transaction_quota),
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
