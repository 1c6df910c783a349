/* SPDX-License-Identifier: MIT */
/*
 * Domains in the embedded store: each agent is a process with its own pvabi
 * context (a domain) and its own libxenstore connection; the test process,
 * which holds no context, is the privileged toolstack.  Permissions follow
 * Xen's model (owner; then the first entry naming the domain; else the
 * owner entry's flags for everybody else; the privileged domain bypasses
 * all), and a domain's life shows as Xen shows it: its home, the special
 * watches @introduceDomain / @releaseDomain, and what its death removes.
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

static struct xs_handle *h;

static int setup(void **state)
{
    fx_setup(state);
    h = fx_xs_open();
    return 0;
}

/* A daemon that allows no toolstack: only some other uid may be one. */
static int setup_no_toolstack(void **state)
{
    static const char *const args[] = { "--allow-uid", "4000000", NULL };

    fx_default_args = args;
    fx_setup(state);
    fx_default_args = NULL;
    return 0;
}

static int teardown_no_toolstack(void **state)
{
    return fx_teardown(state);
}

static int teardown(void **state)
{
    xs_close(h);
    h = NULL;
    return fx_teardown(state);
}

static char *path_of(char *buf, size_t cap, const struct fx_dom *d, const char *rel)
{
    snprintf(buf, cap, "%s/%s", d->home, rel);
    return buf;
}

static void expect_perms(const char *path, const char *want)
{
    char perms[256];
    int err = fx_perms_get(h, path, perms, sizeof(perms));

    if (err)
        fail_msg("permissions of %s: %s (expected %s)", path, strerror(err), want);
    if (strcmp(perms, want) != 0)
        fail_msg("permissions of %s: \"%s\", expected \"%s\"", path, perms, want);
}

static void expect_dom_err(int got, int want, const char *what)
{
    if (got != want)
        fail_msg("%s: %s, expected %s", what, got ? strerror(got) : "success",
                 want ? strerror(want) : "success");
}

/* Waits for @releaseDomain on @h (watched with token "rel"), keeping the
 * events seen before it. */
static int wait_release(struct fx_event *ev, int max)
{
    int n = 0;

    for (;;) {
        char *p, *t;
        int err = fx_next_event(h, FX_WAIT_MS, &p, &t);

        if (err)
            fail_msg("waiting for @releaseDomain: %s", strerror(err));
        if (strcmp(p, "@releaseDomain") == 0 && strcmp(t, "rel") == 0) {
            free(p);
            free(t);
            return n;
        }
        if (n < max) {
            snprintf(ev[n].path, sizeof(ev[n].path), "%s", p);
            snprintf(ev[n].token, sizeof(ev[n].token), "%s", t);
            n++;
        }
        free(p);
        free(t);
    }
}

static void watch_release(void)
{
    assert_true(xs_watch(h, "@releaseDomain", "rel"));
    fx_expect_event(h, "@releaseDomain", "rel");
}

/* /local/domain/<id> exists once the domain has connected, owned by it and
 * closed to everybody else ("n<id>"), with domid and name under it. */
static void test_domain_home_exists_after_connect_owned_by_it(void **state)
{
    struct fx_dom a;
    char p[128], want[32], comm[64] = "", out[256];
    FILE *f;

    (void)state;
    fx_dom_spawn(&a, -1, 1);
    snprintf(want, sizeof(want), "n%u", a.domid);
    expect_perms(a.home, want);
    snprintf(want, sizeof(want), "%u", a.domid);
    fx_expect_value(h, path_of(p, sizeof(p), &a, "domid"), want);

    snprintf(p, sizeof(p), "/proc/%d/comm", (int)a.pid);
    f = fopen(p, "r");
    assert_non_null(f);
    assert_non_null(fgets(comm, sizeof(comm), f));
    fclose(f);
    comm[strcspn(comm, "\n")] = 0;
    fx_expect_value(h, path_of(p, sizeof(p), &a, "name"), comm);

    /* The domain sees it too, relative to its home. */
    expect_dom_err(fx_dom_read(&a, "domid", out, sizeof(out)), 0, "domain reads \"domid\"");
    assert_string_equal(out, want);
    expect_dom_err(fx_dom_op(&a, FX_OP_DOMAIN_PATH, 0, want, NULL, 0, out, sizeof(out), NULL), 0,
                   "domain asks its own domain path");
    assert_string_equal(out, a.home);
}

/* An unprivileged domain has no access to another domain's nodes: EACCES,
 * also for a node that does not exist there (the error must not tell). */
static void test_unprivileged_domain_cannot_access_another_domains_nodes(void **state)
{
    struct fx_dom a, b;
    char p[128], out[256];

    (void)state;
    fx_dom_spawn(&a, -1, 1);
    fx_dom_spawn(&b, -1, 1);
    expect_dom_err(fx_dom_write(&a, path_of(p, sizeof(p), &a, "mine"), "a"), 0, "a writes home");

    expect_dom_err(fx_dom_read(&b, path_of(p, sizeof(p), &a, "mine"), out, sizeof(out)), EACCES,
                   "b reads a's node");
    expect_dom_err(fx_dom_read(&b, path_of(p, sizeof(p), &a, "domid"), out, sizeof(out)), EACCES,
                   "b reads a's domid");
    expect_dom_err(fx_dom_read(&b, path_of(p, sizeof(p), &a, "missing"), out, sizeof(out)), EACCES,
                   "b reads a missing node in a's home");
    expect_dom_err(fx_dom_write(&b, path_of(p, sizeof(p), &a, "mine"), "b"), EACCES,
                   "b overwrites a's node");
    expect_dom_err(fx_dom_write(&b, path_of(p, sizeof(p), &a, "new"), "b"), EACCES,
                   "b creates a node in a's home");
    expect_dom_err(fx_dom_mkdir(&b, path_of(p, sizeof(p), &a, "dir")), EACCES,
                   "b mkdirs in a's home");
    expect_dom_err(fx_dom_rm(&b, path_of(p, sizeof(p), &a, "mine")), EACCES, "b removes a's node");
    expect_dom_err(fx_dom_dir(&b, a.home, out, sizeof(out)), EACCES, "b lists a's home");
    expect_dom_err(fx_dom_getperms(&b, a.home, out, sizeof(out)), EACCES,
                   "b reads a's home's permissions");
    snprintf(out, sizeof(out), "b%u", b.domid);
    expect_dom_err(fx_dom_setperms(&b, path_of(p, sizeof(p), &a, "mine"), out), EACCES,
                   "b sets permissions on a's node");

    fx_expect_value(h, path_of(p, sizeof(p), &a, "mine"), "a");
    fx_expect_enoent(h, path_of(p, sizeof(p), &a, "new"));
    fx_expect_enoent(h, path_of(p, sizeof(p), &a, "dir"));
}

/* r, w and b entries give another domain read, write or both on a node,
 * even when it cannot reach the node's parent. */
static void test_permissions_grant_read_write_both(void **state)
{
    struct fx_dom a, b;
    char p[128], perms[64], out[256];

    (void)state;
    fx_dom_spawn(&a, -1, 1);
    fx_dom_spawn(&b, -1, 1);
    path_of(p, sizeof(p), &a, "shared");
    expect_dom_err(fx_dom_write(&a, p, "v1"), 0, "a writes");

    snprintf(perms, sizeof(perms), "n%u r%u", a.domid, b.domid);
    expect_dom_err(fx_dom_setperms(&a, p, perms), 0, "a grants b read");
    expect_dom_err(fx_dom_read(&b, p, out, sizeof(out)), 0, "b reads (r)");
    assert_string_equal(out, "v1");
    expect_dom_err(fx_dom_write(&b, p, "b1"), EACCES, "b writes (r)");

    snprintf(perms, sizeof(perms), "n%u w%u", a.domid, b.domid);
    expect_dom_err(fx_dom_setperms(&a, p, perms), 0, "a grants b write");
    expect_dom_err(fx_dom_write(&b, p, "b2"), 0, "b writes (w)");
    expect_dom_err(fx_dom_read(&b, p, out, sizeof(out)), EACCES, "b reads (w)");
    fx_expect_value(h, p, "b2");

    snprintf(perms, sizeof(perms), "n%u b%u", a.domid, b.domid);
    expect_dom_err(fx_dom_setperms(&a, p, perms), 0, "a grants b both");
    expect_dom_err(fx_dom_write(&b, p, "b3"), 0, "b writes (b)");
    expect_dom_err(fx_dom_read(&b, p, out, sizeof(out)), 0, "b reads (b)");
    assert_string_equal(out, "b3");
    /* Writing somebody else's node does not make it yours. */
    expect_perms(p, perms);

    /* Still nothing on the parent. */
    expect_dom_err(fx_dom_read(&b, a.home, out, sizeof(out)), EACCES, "b reads a's home");
}

/* The first entry is the owner's, whose flags are what every domain not
 * named in a later entry gets; the owner itself always has everything. */
static void test_permissions_owner_and_others(void **state)
{
    struct fx_dom a, b;
    char p[128], perms[64], out[256];

    (void)state;
    fx_dom_spawn(&a, -1, 1);
    fx_dom_spawn(&b, -1, 1);
    path_of(p, sizeof(p), &a, "o");
    expect_dom_err(fx_dom_write(&a, p, "v"), 0, "a writes");

    snprintf(perms, sizeof(perms), "r%u", a.domid); /* others may read */
    expect_dom_err(fx_dom_setperms(&a, p, perms), 0, "others: r");
    expect_dom_err(fx_dom_read(&b, p, out, sizeof(out)), 0, "b reads (others r)");
    expect_dom_err(fx_dom_write(&b, p, "x"), EACCES, "b writes (others r)");

    snprintf(perms, sizeof(perms), "b%u", a.domid);
    expect_dom_err(fx_dom_setperms(&a, p, perms), 0, "others: b");
    expect_dom_err(fx_dom_write(&b, p, "by-b"), 0, "b writes (others b)");

    /* An entry naming b wins over the others' flags. */
    snprintf(perms, sizeof(perms), "b%u n%u", a.domid, b.domid);
    expect_dom_err(fx_dom_setperms(&a, p, perms), 0, "others: b, b: n");
    expect_dom_err(fx_dom_read(&b, p, out, sizeof(out)), EACCES, "b reads (named n)");
    expect_dom_err(fx_dom_write(&b, p, "x"), EACCES, "b writes (named n)");

    /* The owner keeps read and write whatever the flags say. */
    snprintf(perms, sizeof(perms), "n%u", a.domid);
    expect_dom_err(fx_dom_setperms(&a, p, perms), 0, "others: n");
    expect_dom_err(fx_dom_write(&a, p, "owner"), 0, "owner writes (n)");
    expect_dom_err(fx_dom_read(&a, p, out, sizeof(out)), 0, "owner reads (n)");
    assert_string_equal(out, "owner");
}

/* SET_PERMS needs write permission and ownership (EACCES), and an
 * unprivileged owner may not give the node away (EPERM). */
static void test_domain_cannot_set_permissions_of_node_it_does_not_own(void **state)
{
    struct fx_dom a, b;
    char p[128], perms[64];

    (void)state;
    fx_dom_spawn(&a, -1, 1);
    fx_dom_spawn(&b, -1, 1);
    path_of(p, sizeof(p), &a, "s");
    expect_dom_err(fx_dom_write(&a, p, "v"), 0, "a writes");
    snprintf(perms, sizeof(perms), "n%u b%u", a.domid, b.domid);
    expect_dom_err(fx_dom_setperms(&a, p, perms), 0, "a grants b both");

    snprintf(perms, sizeof(perms), "b%u", a.domid);
    expect_dom_err(fx_dom_setperms(&b, p, perms), EACCES, "b (may write, not owner) sets perms");
    snprintf(perms, sizeof(perms), "n%u b%u", b.domid, b.domid);
    expect_dom_err(fx_dom_setperms(&b, p, perms), EACCES, "b takes ownership");
    snprintf(perms, sizeof(perms), "n%u", b.domid);
    expect_dom_err(fx_dom_setperms(&a, p, perms), EPERM, "a gives the node to b");

    snprintf(perms, sizeof(perms), "n%u b%u", a.domid, b.domid);
    expect_perms(p, perms);
}

/* The privileged toolstack bypasses every permission. */
static void test_privileged_toolstack_sees_all(void **state)
{
    struct fx_dom a;
    char p[128], perms[64];
    unsigned n;
    char **e;

    (void)state;
    fx_dom_spawn(&a, -1, 1);
    path_of(p, sizeof(p), &a, "secret");
    expect_dom_err(fx_dom_write(&a, p, "s"), 0, "a writes");
    snprintf(perms, sizeof(perms), "n%u", a.domid);
    expect_dom_err(fx_dom_setperms(&a, p, perms), 0, "a closes it");

    fx_expect_value(h, p, "s");
    fx_write(h, p, "by-toolstack");
    fx_expect_value(h, p, "by-toolstack");
    e = xs_directory(h, XBT_NULL, a.home, &n);
    assert_non_null(e);
    assert_true(n >= 1);
    free(e);
    expect_perms(p, perms);
    snprintf(perms, sizeof(perms), "n0 r%u", a.domid);
    assert_int_equal(fx_perms_set(h, p, perms), 0);
    expect_perms(p, perms);
    assert_true(xs_rm(h, XBT_NULL, p));
    fx_expect_enoent(h, p);
}

/* A node created by an unprivileged domain is owned by it; the rest of the
 * permissions come from the parent. */
static void test_nodes_created_by_unprivileged_domain_are_owned_by_it(void **state)
{
    struct fx_dom a;
    char perms[64], want[64], p[128];

    (void)state;
    fx_dom_spawn(&a, -1, 1);
    fx_write(h, "/shared", "");
    snprintf(perms, sizeof(perms), "n0 b%u", a.domid);
    assert_int_equal(fx_perms_set(h, "/shared", perms), 0);

    expect_dom_err(fx_dom_write(&a, "/shared/x", "1"), 0, "a writes /shared/x");
    snprintf(want, sizeof(want), "n%u b%u", a.domid, a.domid);
    expect_perms("/shared/x", want);
    expect_dom_err(fx_dom_mkdir(&a, "/shared/d/e"), 0, "a mkdirs /shared/d/e");
    expect_perms("/shared/d", want);
    expect_perms("/shared/d/e", want);

    expect_dom_err(fx_dom_mkdir(&a, path_of(p, sizeof(p), &a, "sub")), 0, "a mkdirs home/sub");
    snprintf(want, sizeof(want), "n%u", a.domid);
    expect_perms(p, want);
}

/* A node the privileged toolstack creates in a domain's home inherits the
 * home's owner: the domain (what the toolstack relies on when it makes a
 * frontend's device directory). */
static void test_node_created_by_toolstack_in_domain_home_is_owned_by_domain(void **state)
{
    struct fx_dom a;
    char p[128], want[32], out[64];

    (void)state;
    fx_dom_spawn(&a, -1, 1);
    fx_write(h, path_of(p, sizeof(p), &a, "device/vif/0/state"), "1");
    snprintf(want, sizeof(want), "n%u", a.domid);
    expect_perms(path_of(p, sizeof(p), &a, "device"), want);
    expect_perms(path_of(p, sizeof(p), &a, "device/vif/0/state"), want);
    expect_dom_err(fx_dom_write(&a, "device/vif/0/state", "4"), 0, "the domain writes it");
    expect_dom_err(fx_dom_read(&a, "device/vif/0/state", out, sizeof(out)), 0, "and reads it");
    assert_string_equal(out, "4");
}

/* MKDIR needs write permission even on a node that exists (xenstored looks
 * the node up for writing first). */
static void test_mkdir_of_existing_read_only_node_is_eacces(void **state)
{
    struct fx_dom a;
    char perms[64];

    (void)state;
    fx_dom_spawn(&a, -1, 1);
    fx_write(h, "/ro", "v");
    snprintf(perms, sizeof(perms), "n0 r%u", a.domid);
    assert_int_equal(fx_perms_set(h, "/ro", perms), 0);
    expect_dom_err(fx_dom_mkdir(&a, "/ro"), EACCES, "mkdir of an existing read-only node");
    expect_dom_err(fx_dom_write(&a, "/ro/child", "c"), EACCES, "create below a read-only node");
}

/* Write permission on a node is enough to remove it with its whole subtree
 * (children are not checked), and a readable node lists children the
 * reader cannot read. */
static void test_rm_and_directory_do_not_check_children_permissions(void **state)
{
    struct fx_dom a;
    char perms[64], out[256];

    (void)state;
    fx_dom_spawn(&a, -1, 1);
    fx_write(h, "/rmt/closed/deeper", "x");
    snprintf(perms, sizeof(perms), "n0 b%u", a.domid);
    assert_int_equal(fx_perms_set(h, "/rmt", perms), 0);
    assert_int_equal(fx_perms_set(h, "/rmt/closed", "n0"), 0);
    assert_int_equal(fx_perms_set(h, "/rmt/closed/deeper", "n0"), 0);

    expect_dom_err(fx_dom_read(&a, "/rmt/closed", out, sizeof(out)), EACCES, "read closed child");
    expect_dom_err(fx_dom_dir(&a, "/rmt", out, sizeof(out)), 0, "list /rmt");
    assert_string_equal(out, "closed");
    expect_dom_err(fx_dom_rm(&a, "/rmt"), 0, "rm /rmt with a closed subtree");
    fx_expect_enoent(h, "/rmt/closed/deeper");
    fx_expect_enoent(h, "/rmt");
}

/* XS_CONTROL "pvabi-domid" <N>: allowed only for a live domain of the
 * connection's own process. */
static void test_select_refused_for_another_process_domain(void **state)
{
    struct fx_dom a, b;
    char num[16], out[64], p[128];

    (void)state;
    fx_dom_spawn(&a, -1, 1);
    fx_dom_spawn(&b, -1, 1);
    snprintf(num, sizeof(num), "%u", a.domid);

    errno = 0;
    assert_null(xs_control_command(h, "pvabi-domid", num, (unsigned)strlen(num) + 1));
    assert_int_equal(errno, EACCES);
    fx_write(h, "/after-refused-select", "still privileged");
    fx_expect_value(h, "/after-refused-select", "still privileged");

    expect_dom_err(fx_dom_control(&b, "pvabi-domid", num, out, sizeof(out)), EACCES,
                   "b selects a's domid");
    expect_dom_err(fx_dom_control(&b, "pvabi-domid", "31999", out, sizeof(out)), EACCES,
                   "b selects a domid nobody has");
    snprintf(num, sizeof(num), "%u", b.domid);
    expect_dom_err(fx_dom_control(&b, "pvabi-domid", num, out, sizeof(out)), 0,
                   "b selects its own domid");
    assert_string_equal(out, "OK");
    expect_dom_err(fx_dom_write(&b, path_of(p, sizeof(p), &b, "x"), "1"), 0, "b writes home");
    expect_dom_err(fx_dom_read(&b, path_of(p, sizeof(p), &a, "domid"), out, sizeof(out)), EACCES,
                   "b (still b) reads a's home");
}

/* A process with two domains: its connection has no identity (EACCES on
 * everything) until it selects one; then it speaks as that one. */
static void test_connection_of_process_with_two_domains_needs_select(void **state)
{
    struct fx_dom d;
    char p1[128], p2[128], num[16], out[256], want[32];

    (void)state;
    fx_dom_spawn(&d, -1, 2);
    snprintf(p1, sizeof(p1), "/local/domain/%u/domid", d.domid);
    snprintf(p2, sizeof(p2), "/local/domain/%u/domid", d.domid2);

    expect_dom_err(fx_dom_read(&d, p1, out, sizeof(out)), EACCES, "read before select");
    expect_dom_err(fx_dom_write(&d, "/local/domain/0/x", "1"), EACCES, "write before select");
    expect_dom_err(fx_dom_op(&d, FX_OP_TX_START, 0, NULL, NULL, 0, out, sizeof(out), NULL), EACCES,
                   "transaction before select");

    snprintf(num, sizeof(num), "%u", d.domid);
    expect_dom_err(fx_dom_control(&d, "pvabi-domid", num, out, sizeof(out)), 0, "select first");
    assert_string_equal(out, "OK");
    expect_dom_err(fx_dom_read(&d, p1, out, sizeof(out)), 0, "first reads its domid");
    snprintf(want, sizeof(want), "%u", d.domid);
    assert_string_equal(out, want);
    expect_dom_err(fx_dom_read(&d, p2, out, sizeof(out)), EACCES, "first reads second's home");
    snprintf(p1, sizeof(p1), "/local/domain/%u/made-by", d.domid);
    expect_dom_err(fx_dom_write(&d, p1, "first"), 0, "first writes home");
    snprintf(want, sizeof(want), "n%u", d.domid);
    expect_perms(p1, want);

    snprintf(num, sizeof(num), "%u", d.domid2);
    expect_dom_err(fx_dom_control(&d, "pvabi-domid", num, out, sizeof(out)), 0, "select second");
    expect_dom_err(fx_dom_read(&d, p2, out, sizeof(out)), 0, "second reads its domid");
    expect_dom_err(fx_dom_read(&d, p1, out, sizeof(out)), EACCES, "second reads first's home");
}

static void test_introduce_domain_fires_when_a_domain_connects(void **state)
{
    struct fx_dom a;

    (void)state;
    assert_true(xs_watch(h, "@introduceDomain", "intro"));
    fx_expect_event(h, "@introduceDomain", "intro");
    fx_expect_quiet(h);
    fx_dom_spawn(&a, -1, 1);
    fx_expect_event(h, "@introduceDomain", "intro");
}

/* A domain that ends (its context closed) while its process lives on is
 * released too, and its store connections are closed with it. */
static void test_domain_end_closes_its_store_connection(void **state)
{
    struct fx_event ev[8];
    struct fx_dom a;
    char out[64];

    (void)state;
    fx_dom_spawn(&a, -1, 1);
    expect_dom_err(fx_dom_read(&a, "domid", out, sizeof(out)), 0, "read before the end");
    watch_release();
    expect_dom_err(fx_dom_op(&a, FX_OP_PVABI_CLOSE, 0, "0", NULL, 0, NULL, 0, NULL), 0,
                   "pvabi_close");
    wait_release(ev, 8);
    fx_expect_enoent(h, a.home);
    if (fx_dom_read(&a, "domid", out, sizeof(out)) == 0)
        fail_msg("the store connection of a released domain still works (read \"%s\")", out);
}

/* A domain whose process is SIGKILLed is released: watches on its home see
 * it removed, then @releaseDomain fires; it is no longer introduced. */
static void test_release_domain_fires_when_domain_process_is_killed(void **state)
{
    struct fx_event ev[16];
    struct fx_dom a;
    char home[64];
    int n;

    (void)state;
    fx_dom_spawn(&a, -1, 1);
    snprintf(home, sizeof(home), "%s", a.home);
    assert_true(xs_is_domain_introduced(h, a.domid));
    watch_release();
    assert_true(xs_watch(h, home, "home"));
    fx_expect_event(h, home, "home");

    fx_dom_kill(&a);
    n = wait_release(ev, 16);
    if (!fx_has_event(ev, n, home, "home"))
        fail_msg("no watch event for the removal of %s before @releaseDomain", home);
    fx_expect_enoent(h, home);
    assert_false(xs_is_domain_introduced(h, a.domid));
}

/* Xen 4.17: @introduceDomain and @releaseDomain have permissions of their
 * own ("n0" at start); a watch on them always fires once when set, but
 * later events reach only connections that may read the special node. */
static void test_special_watch_events_need_permission_for_unprivileged(void **state)
{
    struct fx_dom b, c, d;
    char out[256], perms[32];

    (void)state;
    assert_true(xs_watch(h, "@introduceDomain", "intro"));
    fx_expect_event(h, "@introduceDomain", "intro");
    fx_dom_spawn(&b, -1, 1);
    fx_expect_event(h, "@introduceDomain", "intro");
    expect_dom_err(fx_dom_watch(&b, "@introduceDomain", "bi"), 0, "b watches @introduceDomain");
    expect_dom_err(fx_dom_next_event(&b, FX_WAIT_MS, out, sizeof(out)), 0, "b's initial event");
    assert_string_equal(out, "@introduceDomain bi");

    fx_dom_spawn(&c, -1, 1);
    fx_expect_event(h, "@introduceDomain", "intro");
    if (fx_dom_quiet(&b, out, sizeof(out)) != 0)
        fail_msg("unprivileged b got \"%s\" without read permission on @introduceDomain", out);

    snprintf(perms, sizeof(perms), "n%u", b.domid);
    expect_dom_err(fx_dom_setperms(&b, "@introduceDomain", perms), EACCES,
                   "b sets @introduceDomain's permissions");
    snprintf(perms, sizeof(perms), "n0 r%u", b.domid);
    assert_int_equal(fx_perms_set(h, "@introduceDomain", perms), 0);
    fx_dom_spawn(&d, -1, 1);
    fx_expect_event(h, "@introduceDomain", "intro");
    expect_dom_err(fx_dom_next_event(&b, FX_WAIT_MS, out, sizeof(out)), 0,
                   "b's event once it may read @introduceDomain");
    assert_string_equal(out, "@introduceDomain bi");
}

/* The privileged domain stands for dom0, which never dies: its home (and
 * the backend directories in it) survive the death of the process that was
 * it, so a restarted backend finds them. */
static void test_privileged_domain_home_survives_its_process_death(void **state)
{
    struct fx_dom p, p2;
    char out[256];
    int err;

    (void)state;
    fx_dom_spawn(&p, 0, 1);
    assert_int_equal(p.domid, 0);
    expect_dom_err(fx_dom_write(&p, "/local/domain/0/backend/vbd/5/0/state", "4"), 0,
                   "dom0 writes its backend");
    expect_dom_err(fx_dom_write(&p, "backend/vbd/5/0/relative", "yes"), 0,
                   "dom0 writes relative to its home");
    fx_dom_kill(&p);

    /* Claiming domid 0 again succeeds only once the death was handled. */
    err = fx_dom_try_spawn(&p2, 0, 1);
    if (err)
        fail_msg("a new process could not become domain 0 again: %s", strerror(err));
    fx_expect_value(h, "/local/domain/0/backend/vbd/5/0/state", "4");
    fx_expect_value(h, "/local/domain/0/backend/vbd/5/0/relative", "yes");
    expect_dom_err(fx_dom_read(&p2, "/local/domain/0/backend/vbd/5/0/state", out, sizeof(out)), 0,
                   "restarted dom0 reads its backend");
    assert_string_equal(out, "4");
}

/* A domain's relative paths are relative to its home. */
static void test_relative_paths_resolve_to_domain_home(void **state)
{
    struct fx_dom a;
    char p[128], out[256], want[16];

    (void)state;
    fx_dom_spawn(&a, -1, 1);
    expect_dom_err(fx_dom_write(&a, "rel/x", "1"), 0, "write rel/x");
    fx_expect_value(h, path_of(p, sizeof(p), &a, "rel/x"), "1");
    expect_dom_err(fx_dom_read(&a, "rel/x", out, sizeof(out)), 0, "read rel/x");
    assert_string_equal(out, "1");
    expect_dom_err(fx_dom_dir(&a, "rel", out, sizeof(out)), 0, "directory rel");
    assert_string_equal(out, "x");
    snprintf(want, sizeof(want), "n%u", a.domid);
    expect_dom_err(fx_dom_getperms(&a, "rel/x", out, sizeof(out)), 0, "get_perms rel/x");
    assert_string_equal(out, want);
    expect_dom_err(fx_dom_rm(&a, "rel"), 0, "rm rel");
    fx_expect_enoent(h, path_of(p, sizeof(p), &a, "rel"));
}

/* IS_DOMAIN_INTRODUCED and CONTROL are the privileged domain's. */
static void test_unprivileged_domain_may_not_use_privileged_requests(void **state)
{
    struct fx_dom a;
    char num[16], out[64];

    (void)state;
    fx_dom_spawn(&a, -1, 1);
    snprintf(num, sizeof(num), "%u", a.domid);
    expect_dom_err(fx_dom_op(&a, FX_OP_INTRODUCED, 0, num, NULL, 0, out, sizeof(out), NULL), EACCES,
                   "unprivileged IS_DOMAIN_INTRODUCED");
    expect_dom_err(fx_dom_control(&a, "fx-no-such-command", NULL, out, sizeof(out)), EACCES,
                   "unprivileged CONTROL (not pvabi-domid)");
    /* GET_DOMAIN_PATH is for everybody. */
    expect_dom_err(fx_dom_op(&a, FX_OP_DOMAIN_PATH, 0, "3", NULL, 0, out, sizeof(out), NULL), 0,
                   "unprivileged GET_DOMAIN_PATH");
    assert_string_equal(out, "/local/domain/3");
}

/* Xen 4.17 (XSA-322): nodes a dead domain owned are deleted (or, with
 * --keep-orphans, given to the privileged domain); they never stay owned by
 * a domid a new domain may get. */
static void test_nodes_of_dead_domain_are_not_left_to_its_domid(void **state)
{
    static const char *const nodes[] = { "/shared/a-node", "/shared/a-dir", "/shared/a-dir/sub" };
    struct fx_event ev[8];
    struct fx_dom a;
    char perms[64];

    (void)state;
    fx_dom_spawn(&a, -1, 1);
    fx_write(h, "/shared", "");
    snprintf(perms, sizeof(perms), "n0 b%u", a.domid);
    assert_int_equal(fx_perms_set(h, "/shared", perms), 0);
    expect_dom_err(fx_dom_write(&a, "/shared/a-node", "x"), 0, "a writes /shared/a-node");
    expect_dom_err(fx_dom_mkdir(&a, "/shared/a-dir/sub"), 0, "a mkdirs /shared/a-dir/sub");
    watch_release();
    fx_dom_kill(&a);
    wait_release(ev, 8);

    for (int i = 0; i < 3; i++) {
        struct xs_permissions p[8];
        int err = fx_perms_get(h, nodes[i], perms, sizeof(perms));

        if (err == ENOENT)
            continue;
        assert_int_equal(err, 0);
        assert_true(fx_perms_parse(perms, p, 8) >= 1);
        if (p[0].id != 0)
            fail_msg("%s of dead domain %u is still owned by it: \"%s\" (Xen deletes it, or "
                     "with -K gives it to dom0)",
                     nodes[i], a.domid, perms);
    }
}

/* Xen 4.17 (XSA-322): a permission entry naming a dead domain does not pass
 * to a new domain that gets the same domid. */
static void test_permissions_of_dead_domain_not_inherited_by_domid_reuse(void **state)
{
    struct fx_event ev[8];
    struct fx_dom a, a2;
    char perms[64], out[256];
    unsigned domid;
    int err;

    (void)state;
    fx_dom_spawn(&a, -1, 1);
    domid = a.domid;
    fx_write(h, "/grant", "secret");
    snprintf(perms, sizeof(perms), "n0 r%u", domid);
    assert_int_equal(fx_perms_set(h, "/grant", perms), 0);
    expect_dom_err(fx_dom_read(&a, "/grant", out, sizeof(out)), 0, "a reads its grant");
    watch_release();
    fx_dom_kill(&a);
    wait_release(ev, 8);

    err = fx_dom_try_spawn(&a2, (int)domid, 1);
    if (err)
        fail_msg("could not get domid %u again: %s", domid, strerror(err));
    assert_int_equal(a2.domid, domid);
    expect_dom_err(fx_dom_read(&a2, "/grant", out, sizeof(out)), EACCES,
                   "a new domain with a dead one's domid reads its grant");
}

/* Regression: a transaction open while a domain is released held copies of
 * nodes naming it; committing them would have handed its access to the
 * next domain with its domid.  The release makes such commits retry. */
static void test_release_makes_open_transactions_retry(void **state)
{
    struct fx_event ev[8];
    struct fx_dom a, b;
    char p[128], perms[64];
    uint32_t tx;

    (void)state;
    fx_dom_spawn(&a, -1, 1);
    fx_dom_spawn(&b, -1, 1);
    snprintf(p, sizeof(p), "%s/secret", a.home);
    assert_int_equal(fx_dom_tx_start(&a, &tx), 0);
    assert_int_equal(fx_dom_op(&a, FX_OP_WRITE, tx, p, "s", 1, NULL, 0, NULL), 0);
    snprintf(perms, sizeof(perms), "n%u r%u", a.domid, b.domid);
    assert_int_equal(fx_dom_op(&a, FX_OP_SETPERMS, tx, p, perms, strlen(perms), NULL, 0, NULL), 0);
    watch_release();
    fx_dom_kill(&b);
    wait_release(ev, 8);
    assert_int_equal(fx_dom_tx_end(&a, tx, false), EAGAIN);
    fx_expect_enoent(h, p);
}

/* Regression: a domain the toolstack made owner of "/" took the whole store
 * with it when released.  The skeleton stays, given to the privileged
 * domain. */
static void test_release_of_root_owner_keeps_skeleton(void **state)
{
    struct fx_event ev[8];
    struct fx_dom a;
    char perms[32], got[64];

    (void)state;
    fx_dom_spawn(&a, -1, 1);
    snprintf(perms, sizeof(perms), "n%u", a.domid);
    assert_int_equal(fx_perms_set(h, "/", perms), 0);
    assert_int_equal(fx_perms_set(h, "/local", perms), 0);
    watch_release();
    fx_dom_kill(&a);
    wait_release(ev, 8);
    assert_int_equal(fx_perms_get(h, "/", got, sizeof(got)), 0);
    assert_string_equal(got, "n0");
    fx_write(h, "/after", "1");
    fx_expect_value(h, "/after", "1");
    fx_expect_value(h, "/local/domain", "");
}

/* A connection from a process that is no domain speaks as the privileged
 * domain only if its uid is allowed (--allow-uid); otherwise the daemon
 * closes it.  Domains of that uid are still served. */
static void test_toolstack_connection_from_disallowed_uid_is_closed(void **state)
{
    struct fx_dom a;
    char p[128];
    int s;

    (void)state;
    s = fx_raw_connect();
    fx_raw_send(s, XS_READ, 1, 0, "/", 2);
    if (!fx_raw_wait_closed(s, FX_WAIT_MS))
        fail_msg("a connection of a uid not in --allow-uid stayed open");
    close(s);
    fx_dom_spawn(&a, -1, 1);
    expect_dom_err(fx_dom_write(&a, path_of(p, sizeof(p), &a, "x"), "1"), 0,
                   "a domain of that uid writes its home");
}

/* XS_CONTROL "pvabi-toolstack" (a PVABI_OPEN_TOOLSTACK context): the
 * connection speaks as the toolstack, the privileged domain, even from a
 * process that holds a domain, if its uid is allowed. */
static void test_toolstack_select_from_a_domain_process(void **state)
{
    struct fx_dom a, b;
    char p[128], out[256], want[16];
    char *help;

    (void)state;
    fx_dom_spawn(&a, -1, 1);
    fx_dom_spawn(&b, -1, 1);
    expect_dom_err(fx_dom_read(&a, path_of(p, sizeof(p), &b, "domid"), out, sizeof(out)), EACCES,
                   "a reads b's home as a");
    expect_dom_err(fx_dom_control(&a, "pvabi-toolstack", NULL, out, sizeof(out)), 0,
                   "a selects the toolstack");
    assert_string_equal(out, "OK");
    expect_dom_err(fx_dom_read(&a, path_of(p, sizeof(p), &b, "domid"), out, sizeof(out)), 0,
                   "a reads b's home as the toolstack");
    snprintf(want, sizeof(want), "%u", b.domid);
    assert_string_equal(out, want);
    expect_dom_err(fx_dom_write(&a, "/by-toolstack", "1"), 0, "the toolstack writes /");
    expect_perms("/by-toolstack", "n0");
    /* Privileged requests too. */
    expect_dom_err(fx_dom_op(&a, FX_OP_INTRODUCED, 0, want, NULL, 0, out, sizeof(out), NULL), 0,
                   "privileged IS_DOMAIN_INTRODUCED");
    help = xs_control_command(h, "help", NULL, 0);
    assert_non_null(help);
    assert_non_null(strstr(help, "pvabi-toolstack\n"));
    free(help);
}

static void test_toolstack_select_refused_for_disallowed_uid(void **state)
{
    struct fx_dom a;
    char p[128], out[64];

    (void)state;
    fx_dom_spawn(&a, -1, 1);
    expect_dom_err(fx_dom_control(&a, "pvabi-toolstack", NULL, out, sizeof(out)), EACCES,
                   "a uid not in --allow-uid selects the toolstack");
    /* The connection still speaks as its domain. */
    expect_dom_err(fx_dom_write(&a, path_of(p, sizeof(p), &a, "x"), "1"), 0, "a writes its home");
    expect_dom_err(fx_dom_write(&a, "/not-a-toolstack", "1"), EACCES, "a writes /");
}

int main(int argc, char **argv)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_domain_home_exists_after_connect_owned_by_it),
        T(test_unprivileged_domain_cannot_access_another_domains_nodes),
        T(test_permissions_grant_read_write_both),
        T(test_permissions_owner_and_others),
        T(test_domain_cannot_set_permissions_of_node_it_does_not_own),
        T(test_privileged_toolstack_sees_all),
        T(test_nodes_created_by_unprivileged_domain_are_owned_by_it),
        T(test_node_created_by_toolstack_in_domain_home_is_owned_by_domain),
        T(test_mkdir_of_existing_read_only_node_is_eacces),
        T(test_rm_and_directory_do_not_check_children_permissions),
        T(test_select_refused_for_another_process_domain),
        T(test_connection_of_process_with_two_domains_needs_select),
        T(test_introduce_domain_fires_when_a_domain_connects),
        T(test_release_domain_fires_when_domain_process_is_killed),
        T(test_domain_end_closes_its_store_connection),
        T(test_special_watch_events_need_permission_for_unprivileged),
        T(test_privileged_domain_home_survives_its_process_death),
        T(test_relative_paths_resolve_to_domain_home),
        T(test_unprivileged_domain_may_not_use_privileged_requests),
        T(test_nodes_of_dead_domain_are_not_left_to_its_domid),
        T(test_permissions_of_dead_domain_not_inherited_by_domid_reuse),
        T(test_release_makes_open_transactions_retry),
        T(test_release_of_root_owner_keeps_skeleton),
        cmocka_unit_test_setup_teardown(test_toolstack_connection_from_disallowed_uid_is_closed,
                                        setup_no_toolstack, teardown_no_toolstack),
        T(test_toolstack_select_from_a_domain_process),
        cmocka_unit_test_setup_teardown(test_toolstack_select_refused_for_disallowed_uid,
                                        setup_no_toolstack, teardown_no_toolstack),
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
