/* SPDX-License-Identifier: MIT */
/*
 * Watches, through libxenstore (the toolstack, and agents for what depends
 * on being a domain) and raw for XS_RESET_WATCHES, which libxenstore 4.17
 * does not offer.  Xen's rules (docs/misc/xenstore.txt, xenstored 4.17):
 * a watch fires once when set, with <path> = <wpath>; then for every change
 * of <wpath> or a node under it, with the changed path; removing a subtree
 * fires the watches on nodes in it with their own path; relative watches get
 * relative paths; a watcher gets no events for nodes it cannot read (nor
 * their parent).
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

static struct xs_handle *h, *w; /* a writer and a watcher */

static int setup(void **state)
{
    fx_setup(state);
    h = fx_xs_open();
    w = fx_xs_open();
    return 0;
}

static int teardown(void **state)
{
    xs_close(h);
    xs_close(w);
    h = w = NULL;
    return fx_teardown(state);
}

static void watch(struct xs_handle *x, const char *path, const char *token)
{
    if (!xs_watch(x, path, token))
        fail_msg("xs_watch(%s, %s): %s", path, token, strerror(errno));
}

/* It fires once straight away, with the watched path and the token, even
 * for a node that does not exist; then nothing until something changes. */
static void test_watch_fires_once_on_registration_with_token(void **state)
{
    (void)state;
    fx_write(h, "/w/exists", "1");
    watch(w, "/w/exists", "tok-1");
    fx_expect_event(w, "/w/exists", "tok-1");
    fx_expect_quiet(w);
    watch(w, "/w/not/there", "tok-2");
    fx_expect_event(w, "/w/not/there", "tok-2");
    fx_expect_quiet(w);
}

/* Creation, a change of value, mkdir and set_perms of the node or of a node
 * below it fire, with the changed path; siblings sharing a prefix do not. */
static void test_watch_fires_for_node_and_descendants_with_changed_path(void **state)
{
    struct xs_permissions p = { .id = 0, .perms = XS_PERM_READ };

    (void)state;
    watch(w, "/w/n", "n");
    fx_expect_event(w, "/w/n", "n");

    fx_write(h, "/w/n", "1");
    fx_expect_event(w, "/w/n", "n");
    fx_write(h, "/w/n/a/b", "2");
    fx_expect_event(w, "/w/n/a/b", "n");
    fx_write(h, "/w/n/a/b", "3");
    fx_expect_event(w, "/w/n/a/b", "n");
    assert_true(xs_mkdir(h, XBT_NULL, "/w/n/m"));
    fx_expect_event(w, "/w/n/m", "n");
    assert_true(xs_set_permissions(h, XBT_NULL, "/w/n/a", &p, 1));
    fx_expect_event(w, "/w/n/a", "n");
    fx_expect_quiet(w);

    fx_write(h, "/w/nx", "sibling with a common prefix");
    fx_write(h, "/w/other", "x");
    fx_write(h, "/w", "parent");
    fx_expect_quiet(w);
}

/* A watch on "/" sees every change (everything is below the root). */
static void test_watch_on_root_sees_every_change(void **state)
{
    (void)state;
    watch(w, "/", "root");
    fx_expect_event(w, "/", "root");
    fx_write(h, "/w/anywhere/deep", "1");
    fx_expect_event(w, "/w/anywhere/deep", "root");
    assert_true(xs_rm(h, XBT_NULL, "/w/anywhere"));
    fx_expect_event(w, "/w/anywhere", "root");
}

/* An mkdir of an existing node changes nothing and fires nothing. */
static void test_mkdir_of_existing_node_fires_nothing(void **state)
{
    (void)state;
    fx_write(h, "/w/e", "v");
    watch(w, "/w/e", "e");
    fx_expect_event(w, "/w/e", "e");
    assert_true(xs_mkdir(h, XBT_NULL, "/w/e"));
    fx_expect_quiet(w);
}

/* rm of a subtree: a watch on the removed node or on its parent fires with
 * the removed path; a watch on a node inside it fires with its own path. */
static void test_rm_of_subtree_fires_watches_of_descendants(void **state)
{
    struct fx_event ev[16];
    int n;

    (void)state;
    fx_write(h, "/w/r/a/b/c", "1");
    watch(w, "/w/r", "top");
    watch(w, "/w/r/a", "self");
    watch(w, "/w/r/a/b", "deep");
    watch(w, "/w/r/a/b/c", "leaf");
    n = fx_collect(w, ev, 16);
    assert_int_equal(n, 4); /* the initial ones */

    assert_true(xs_rm(h, XBT_NULL, "/w/r/a"));
    n = fx_collect(w, ev, 16);
    if (!fx_has_event(ev, n, "/w/r/a", "top"))
        fail_msg("no (/w/r/a, top) event for the rm");
    if (!fx_has_event(ev, n, "/w/r/a", "self"))
        fail_msg("no (/w/r/a, self) event for the rm");
    if (!fx_has_event(ev, n, "/w/r/a/b", "deep"))
        fail_msg("no (/w/r/a/b, deep) event for the rm");
    if (!fx_has_event(ev, n, "/w/r/a/b/c", "leaf"))
        fail_msg("no (/w/r/a/b/c, leaf) event for the rm");
    for (int i = 0; i < n; i++)
        if (strncmp(ev[i].path, "/w/r/a", 6) != 0)
            fail_msg("event (%s, %s) for the rm of /w/r/a", ev[i].path, ev[i].token);
}

/* A watch set with a relative path (by a domain) reports relative paths. */
static void test_relative_watch_gets_relative_event_paths(void **state)
{
    struct fx_dom a;
    char out[512], p[128], want[256];

    (void)state;
    fx_dom_spawn(&a, -1, 1);
    assert_int_equal(fx_dom_watch(&a, "rel", "r"), 0);
    assert_int_equal(fx_dom_next_event(&a, FX_WAIT_MS, out, sizeof(out)), 0);
    assert_string_equal(out, "rel r");

    snprintf(p, sizeof(p), "%s/rel/x", a.home);
    fx_write(h, p, "1"); /* the toolstack writes the absolute path */
    assert_int_equal(fx_dom_next_event(&a, FX_WAIT_MS, out, sizeof(out)), 0);
    assert_string_equal(out, "rel/x r");
    assert_int_equal(fx_dom_write(&a, "rel", "2"), 0);
    assert_int_equal(fx_dom_next_event(&a, FX_WAIT_MS, out, sizeof(out)), 0);
    assert_string_equal(out, "rel r");

    /* UNWATCH takes the relative path too. */
    assert_int_equal(fx_dom_unwatch(&a, "rel", "r"), 0);
    fx_write(h, p, "3");
    assert_int_equal(fx_dom_quiet(&a, out, sizeof(out)), 0);

    /* The same node watched absolutely gets absolute paths. */
    snprintf(p, sizeof(p), "%s/rel", a.home);
    assert_int_equal(fx_dom_watch(&a, p, "abs"), 0);
    snprintf(want, sizeof(want), "%s abs", p);
    assert_int_equal(fx_dom_next_event(&a, FX_WAIT_MS, out, sizeof(out)), 0);
    assert_string_equal(out, want);
}

/* Several watches on one path with different tokens: each fires with its
 * own token.  The same path and token twice: EEXIST. */
static void test_several_tokens_on_one_path_each_get_events(void **state)
{
    struct fx_event ev[8];
    int n;

    (void)state;
    watch(w, "/w/t", "tok-a");
    watch(w, "/w/t", "tok-b");
    n = fx_collect(w, ev, 8);
    assert_int_equal(n, 2);
    assert_true(fx_has_event(ev, n, "/w/t", "tok-a"));
    assert_true(fx_has_event(ev, n, "/w/t", "tok-b"));

    assert_false(xs_watch(w, "/w/t", "tok-a"));
    assert_int_equal(errno, EEXIST);

    fx_write(h, "/w/t/x", "1");
    n = fx_collect(w, ev, 8);
    assert_int_equal(n, 2);
    assert_true(fx_has_event(ev, n, "/w/t/x", "tok-a"));
    assert_true(fx_has_event(ev, n, "/w/t/x", "tok-b"));
}

/* Two connections watching the same path both get the event. */
static void test_watches_of_two_connections_both_fire(void **state)
{
    (void)state;
    watch(w, "/w/both", "w");
    watch(h, "/w/both", "h");
    fx_expect_event(w, "/w/both", "w");
    fx_expect_event(h, "/w/both", "h");
    fx_write(h, "/w/both", "1");
    fx_expect_event(w, "/w/both", "w");
    fx_expect_event(h, "/w/both", "h");
}

/* UNWATCH stops that watch's events, and only that watch's; an unknown
 * watch is ENOENT. */
static void test_unwatch_stops_events(void **state)
{
    struct fx_event ev[4];

    (void)state;
    watch(w, "/w/u", "one");
    watch(w, "/w/u", "two");
    assert_int_equal(fx_collect(w, ev, 4), 2);
    assert_true(xs_unwatch(w, "/w/u", "one"));
    fx_write(h, "/w/u", "1");
    fx_expect_event(w, "/w/u", "two");
    fx_expect_quiet(w);
    assert_true(xs_unwatch(w, "/w/u", "two"));
    fx_write(h, "/w/u", "2");
    fx_expect_quiet(w);

    assert_false(xs_unwatch(w, "/w/u", "two"));
    assert_int_equal(errno, ENOENT);
    assert_false(xs_unwatch(w, "/w/never", "x"));
    assert_int_equal(errno, ENOENT);
}

/* A domain watching a node it may not read (nor its parent) gets no events
 * for it; once granted read, it does. */
static void test_watch_on_unreadable_node_gets_no_events(void **state)
{
    struct fx_dom a, b;
    char p[128], perms[64], out[512], want[256];
    bool seen = false;

    (void)state;
    fx_dom_spawn(&a, -1, 1);
    fx_dom_spawn(&b, -1, 1);
    snprintf(p, sizeof(p), "%s/secret", a.home);
    assert_int_equal(fx_dom_write(&a, p, "s0"), 0);

    assert_int_equal(fx_dom_watch(&b, p, "spy"), 0);
    snprintf(want, sizeof(want), "%s spy", p);
    assert_int_equal(fx_dom_next_event(&b, FX_WAIT_MS, out, sizeof(out)), 0);
    assert_string_equal(out, want); /* the initial event, as in Xen */

    fx_write(h, p, "s1");
    assert_int_equal(fx_dom_write(&a, p, "s2"), 0);
    if (fx_dom_quiet(&b, out, sizeof(out)) != 0)
        fail_msg("b got \"%s\" for a node it cannot read", out);

    snprintf(perms, sizeof(perms), "n%u r%u", a.domid, b.domid);
    assert_int_equal(fx_dom_setperms(&a, p, perms), 0);
    assert_int_equal(fx_dom_write(&a, p, "s3"), 0);
    /* The permission change itself may show; the write must. */
    for (int i = 0; i < 3 && !seen; i++) {
        if (fx_dom_next_event(&b, FX_WAIT_MS, out, sizeof(out)) != 0)
            break;
        seen = strcmp(out, want) == 0;
    }
    if (!seen)
        fail_msg("b got no event for a node it may read now");
}

/* XS_RESET_WATCHES removes all of the caller's watches and transactions
 * (libxenstore 4.17 has no call for it: raw). */
static void test_reset_watches_removes_watches_and_transactions(void **state)
{
    char buf[512], id[32];
    struct xsd_sockmsg rh;
    uint32_t tx;
    int s;

    (void)state;
    s = fx_raw_connect();
    assert_int_equal(fx_raw_send(s, XS_WATCH, 1, 0, "/w/rs\0tok", 10), 0);
    assert_int_equal(fx_raw_recv(s, &rh, buf, sizeof(buf), FX_WAIT_MS), 0);
    assert_int_equal(rh.type, XS_WATCH);
    assert_int_equal(fx_raw_recv(s, &rh, buf, sizeof(buf), FX_WAIT_MS), 0);
    assert_int_equal(rh.type, XS_WATCH_EVENT);
    assert_int_equal(fx_raw_call(s, XS_TRANSACTION_START, 2, 0, "", 1, &rh, id, sizeof(id)), 0);
    assert_int_equal(rh.type, XS_TRANSACTION_START);
    tx = (uint32_t)strtoul(id, NULL, 10);

    assert_int_equal(fx_raw_call(s, XS_RESET_WATCHES, 3, 0, "", 1, &rh, buf, sizeof(buf)), 0);
    if (rh.type != XS_RESET_WATCHES)
        fail_msg("RESET_WATCHES: reply type %u \"%s\"", rh.type, buf);
    assert_string_equal(buf, "OK");

    fx_write(h, "/w/rs", "after reset");
    /* Barrier: a new watch's initial event must come first. */
    assert_int_equal(fx_raw_send(s, XS_WATCH, 4, 0, "/w/mark\0m", 10), 0);
    assert_int_equal(fx_raw_recv(s, &rh, buf, sizeof(buf), FX_WAIT_MS), 0);
    if (rh.type == XS_WATCH_EVENT)
        fail_msg("watch event \"%s\" after RESET_WATCHES", buf);
    assert_int_equal(rh.type, XS_WATCH);
    assert_int_equal(fx_raw_recv(s, &rh, buf, sizeof(buf), FX_WAIT_MS), 0);
    assert_int_equal(rh.type, XS_WATCH_EVENT);
    assert_string_equal(buf, "/w/mark");

    assert_int_equal(fx_raw_call(s, XS_TRANSACTION_END, 5, tx, "T", 2, &rh, buf, sizeof(buf)), 0);
    assert_int_equal(rh.type, XS_ERROR);
    assert_string_equal(buf, "ENOENT");
    close(s);
}

/* "The tx_id in a WATCH request is ignored." */
static void test_watch_ignores_tx_id(void **state)
{
    char buf[512];
    struct xsd_sockmsg rh;
    int s;

    (void)state;
    s = fx_raw_connect();
    assert_int_equal(fx_raw_call(s, XS_WATCH, 1, 777, "/w/tx\0t", 8, &rh, buf, sizeof(buf)), 0);
    if (rh.type != XS_WATCH)
        fail_msg("WATCH with tx_id 777: reply type %u \"%s\"", rh.type, buf);
    assert_int_equal(fx_raw_call(s, XS_UNWATCH, 2, 777, "/w/tx\0t", 8, &rh, buf, sizeof(buf)), 0);
    assert_int_equal(rh.type, XS_UNWATCH);
    close(s);
}

/* @<anything> is a valid watch path (it only matches special events);
 * a malformed ordinary path is EINVAL. */
static void test_watch_path_validation(void **state)
{
    (void)state;
    watch(w, "@anything-at-all", "s");
    fx_expect_event(w, "@anything-at-all", "s");
    assert_false(xs_watch(w, "/w/bad.path", "x"));
    assert_int_equal(errno, EINVAL);
    assert_false(xs_watch(w, "/w/trailing/", "x"));
    assert_int_equal(errno, EINVAL);
}

/* The watch quota is for unprivileged domains (see test_store_quota). */
static void test_privileged_toolstack_exempt_from_watch_quota(void **state)
{
    static struct fx_event ev[201];
    char p[64], t[16];

    (void)state;
    for (int i = 0; i < 200; i++) {
        snprintf(p, sizeof(p), "/w/many/%d", i);
        snprintf(t, sizeof(t), "t%d", i);
        watch(w, p, t);
    }
    assert_int_equal(fx_collect(w, ev, 201), 200);
}

int main(int argc, char **argv)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_watch_fires_once_on_registration_with_token),
        T(test_watch_fires_for_node_and_descendants_with_changed_path),
        T(test_watch_on_root_sees_every_change),
        T(test_mkdir_of_existing_node_fires_nothing),
        T(test_rm_of_subtree_fires_watches_of_descendants),
        T(test_relative_watch_gets_relative_event_paths),
        T(test_several_tokens_on_one_path_each_get_events),
        T(test_watches_of_two_connections_both_fire),
        T(test_unwatch_stops_events),
        T(test_watch_on_unreadable_node_gets_no_events),
        T(test_reset_watches_removes_watches_and_transactions),
        T(test_watch_ignores_tx_id),
        T(test_watch_path_validation),
        T(test_privileged_toolstack_exempt_from_watch_quota),
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
