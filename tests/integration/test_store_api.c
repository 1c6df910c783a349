/* SPDX-License-Identifier: MIT */
/*
 * The store through pvabi's own API (pvabi_store_*), as a driver uses it:
 * values, numbers checked rather than trusted, directories, permissions,
 * transactions with their conflicts and automatic retry, and watches
 * delivered through the context's pollable fd.  The test process opens its
 * contexts itself (two contexts: two domains on the local platform, one
 * process).  Runs on the local platform (embedded store) and on Xen
 * (xenstored, in dom0 and in a domU: tests/xen).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itest.h"

struct two {
    pvabi_ctx *a, *b;
    char base[96]; /* a writable directory of a's */
};

static void open_two(struct two *t)
{
    assert_int_equal(pvabi_open(&t->a, it_platform()), 0);
    assert_int_equal(pvabi_open(&t->b, it_platform()), 0);
    /* data/ is where Xen lets a domain write in its home; on the local
     * platform the whole home is the domain's. */
    snprintf(t->base, sizeof(t->base), "/local/domain/%u/data/pvabi-test-%d", pvabi_own_domid(t->a),
             (int)getpid());
    pvabi_store_rm(t->a, PVABI_STORE_TXN_NONE, t->base);
    assert_int_equal(pvabi_store_mkdir(t->a, PVABI_STORE_TXN_NONE, t->base), 0);
}

static void close_two(struct two *t)
{
    pvabi_store_rm(t->a, PVABI_STORE_TXN_NONE, t->base);
    pvabi_close(t->b);
    pvabi_close(t->a);
}

static const char *at(const struct two *t, const char *key, char *buf, size_t size)
{
    snprintf(buf, size, "%s/%s", t->base, key);
    return buf;
}

/* Whether the two contexts are different, unprivileged domains. */
static int distinct_unprivileged(const struct two *t)
{
    return pvabi_own_domid(t->a) != pvabi_own_domid(t->b) && pvabi_own_domid(t->a) != 0 &&
           pvabi_own_domid(t->b) != 0;
}

/* ---- values -------------------------------------------------------------- */

static void test_store_write_read_printf_scanf(void **state)
{
    struct two t;
    char p[160], *v = NULL;
    unsigned x = 0, y = 0;
    uint32_t u;

    (void)state;
    open_two(&t);
    assert_int_equal(pvabi_store_write(t.a, 0, at(&t, "name", p, sizeof(p)), "disk one"), 0);
    assert_int_equal(pvabi_store_read(t.a, 0, p, &v), 8);
    assert_string_equal(v, "disk one");
    free(v);
    assert_int_equal(pvabi_store_printf(t.a, 0, at(&t, "geom", p, sizeof(p)), "%u:%u", 64u, 512u),
                     0);
    assert_int_equal(pvabi_store_scanf(t.a, 0, p, "%u:%u", &x, &y), 2);
    assert_int_equal(x, 64);
    assert_int_equal(y, 512);
    assert_int_equal(pvabi_store_scanf(t.a, 0, at(&t, "name", p, sizeof(p)), "%u", &x), -ERANGE);
    /* An empty value is a value. */
    assert_int_equal(pvabi_store_write(t.a, 0, at(&t, "empty", p, sizeof(p)), ""), 0);
    assert_int_equal(pvabi_store_read(t.a, 0, p, &v), 0);
    assert_string_equal(v, "");
    free(v);
    assert_int_equal(pvabi_store_read(t.a, 0, at(&t, "missing", p, sizeof(p)), &v), -ENOENT);
    assert_null(v);
    assert_int_equal(pvabi_store_read_u32(t.a, 0, at(&t, "geom", p, sizeof(p)), &u), -EINVAL);
    close_two(&t);
}

/* What a peer wrote is checked: only plain decimal digits that fit. */
static void test_store_read_u32_checks_peer_numbers(void **state)
{
    static const struct {
        const char *text;
        int rc;
        uint32_t value;
    } cases[] = {
        { "0", 0, 0 },
        { "4294967295", 0, UINT32_MAX },
        { "4294967296", -ERANGE, 0 },
        { "-1", -EINVAL, 0 },
        { " 7", -EINVAL, 0 },
        { "7 ", -EINVAL, 0 },
        { "0x10", -EINVAL, 0 },
        { "", -EINVAL, 0 },
        { "99999999999999", -ERANGE, 0 },
    };
    struct two t;
    char p[160];

    (void)state;
    open_two(&t);
    at(&t, "n", p, sizeof(p));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint32_t u = 12345;
        assert_int_equal(pvabi_store_write(t.a, 0, p, cases[i].text), 0);
        int rc = pvabi_store_read_u32(t.a, 0, p, &u);
        if (rc != cases[i].rc)
            fail_msg("\"%s\": %d, expected %d", cases[i].text, rc, cases[i].rc);
        if (rc == 0)
            assert_int_equal(u, cases[i].value);
    }
    close_two(&t);
}

static void test_store_mkdir_list_rm(void **state)
{
    struct two t;
    char p[160], **names = NULL;
    int n, seen = 0;

    (void)state;
    open_two(&t);
    assert_int_equal(pvabi_store_mkdir(t.a, 0, at(&t, "dir/x", p, sizeof(p))), 0);
    assert_int_equal(pvabi_store_write(t.a, 0, at(&t, "dir/y", p, sizeof(p)), "1"), 0);
    n = pvabi_store_list(t.a, 0, at(&t, "dir", p, sizeof(p)), &names);
    assert_int_equal(n, 2);
    for (int i = 0; i < n; i++)
        seen |= strcmp(names[i], "x") == 0 ? 1 : strcmp(names[i], "y") == 0 ? 2 : 4;
    assert_int_equal(seen, 3);
    free(names);
    assert_int_equal(pvabi_store_rm(t.a, 0, p), 0);
    assert_int_equal(pvabi_store_list(t.a, 0, p, &names), -ENOENT);
    assert_null(names);
    /* Removing what is not there, under a parent that is, succeeds. */
    assert_int_equal(pvabi_store_rm(t.a, 0, p), 0);
    assert_int_equal(pvabi_store_rm(t.a, 0, at(&t, "no/such", p, sizeof(p))), -ENOENT);
    assert_int_equal(pvabi_store_write(t.a, 0, "bad//path", "1"), -EINVAL);
    close_two(&t);
}

static void test_store_perms_between_domains(void **state)
{
    struct two t;
    char p[160], want[64], *perms = NULL, *v = NULL;

    (void)state;
    open_two(&t);
    assert_int_equal(pvabi_store_write(t.a, 0, at(&t, "secret", p, sizeof(p)), "42"), 0);
    assert_true(pvabi_store_get_perms(t.a, 0, p, &perms) >= 1);
    snprintf(want, sizeof(want), "n%u", pvabi_own_domid(t.a));
    assert_int_equal(strncmp(perms, want, strlen(want)), 0);
    free(perms);
    assert_int_equal(pvabi_store_set_perms(t.a, 0, p, "n5 x7"), -EINVAL);
    assert_int_equal(pvabi_store_set_perms(t.a, 0, p, ""), -EINVAL);
    if (!distinct_unprivileged(&t)) {
        close_two(&t);
        skip(); /* on Xen in dom0 both contexts are the privileged dom0 */
    }
    assert_int_equal(pvabi_store_read(t.b, 0, p, &v), -EACCES);
    assert_int_equal(pvabi_store_write(t.b, 0, p, "x"), -EACCES);
    snprintf(want, sizeof(want), "n%u r%u", pvabi_own_domid(t.a), pvabi_own_domid(t.b));
    assert_int_equal(pvabi_store_set_perms(t.a, 0, p, want), 0);
    assert_int_equal(pvabi_store_read(t.b, 0, p, &v), 2);
    free(v);
    assert_int_equal(pvabi_store_write(t.b, 0, p, "x"), -EACCES);
    /* Not the owner: b cannot give itself more. */
    snprintf(want, sizeof(want), "n%u b%u", pvabi_own_domid(t.a), pvabi_own_domid(t.b));
    assert_int_equal(pvabi_store_set_perms(t.b, 0, p, want), -EACCES);
    close_two(&t);
}

/* ---- transactions ------------------------------------------------------------ */

static void test_store_txn_isolated_until_commit(void **state)
{
    struct two t;
    pvabi_store_txn txn;
    char p[160], *v = NULL;

    (void)state;
    open_two(&t);
    at(&t, "tx", p, sizeof(p));
    assert_int_equal(pvabi_store_txn_start(t.a, &txn), 0);
    assert_int_equal(pvabi_store_write(t.a, txn, p, "in"), 0);
    assert_int_equal(pvabi_store_read(t.a, txn, p, &v), 2);
    free(v);
    assert_int_equal(pvabi_store_read(t.a, 0, p, &v), -ENOENT);
    assert_int_equal(pvabi_store_txn_end(t.a, txn, 1), 0); /* abort */
    assert_int_equal(pvabi_store_read(t.a, 0, p, &v), -ENOENT);
    assert_int_equal(pvabi_store_txn_start(t.a, &txn), 0);
    assert_int_equal(pvabi_store_write(t.a, txn, p, "in"), 0);
    assert_int_equal(pvabi_store_txn_end(t.a, txn, 0), 0);
    assert_int_equal(pvabi_store_read(t.a, 0, p, &v), 2);
    assert_string_equal(v, "in");
    free(v);
    close_two(&t);
}

static void test_store_txn_conflict_eagain(void **state)
{
    struct two t;
    pvabi_store_txn txn;
    char p[160], *v = NULL;

    (void)state;
    open_two(&t);
    at(&t, "c", p, sizeof(p));
    assert_int_equal(pvabi_store_write(t.a, 0, p, "0"), 0);
    assert_int_equal(pvabi_store_txn_start(t.a, &txn), 0);
    assert_int_equal(pvabi_store_read(t.a, txn, p, &v), 1);
    free(v);
    /* Another writer changes what the transaction read. */
    assert_int_equal(pvabi_store_write(t.a, 0, p, "other"), 0);
    assert_int_equal(pvabi_store_write(t.a, txn, p, "1"), 0);
    assert_int_equal(pvabi_store_txn_end(t.a, txn, 0), -EAGAIN);
    assert_int_equal(pvabi_store_read(t.a, 0, p, &v), 5);
    assert_string_equal(v, "other");
    free(v);
    close_two(&t);
}

struct counter_txn {
    const char *path;
    int runs;
    pvabi_ctx *meddler; /* writes the node during the first run */
};

/* Increments the counter; the first run meets a concurrent writer. */
static int increment(pvabi_ctx *ctx, pvabi_store_txn txn, void *opaque)
{
    struct counter_txn *c = opaque;
    uint32_t v;
    int rc = pvabi_store_read_u32(ctx, txn, c->path, &v);

    if (rc < 0)
        return rc;
    if (c->runs++ == 0)
        pvabi_store_write(c->meddler, 0, c->path, "10");
    rc = pvabi_store_printf(ctx, txn, c->path, "%u", v + 1);
    return rc < 0 ? rc : (int)(v + 1);
}

static void test_store_txn_run_retries_on_conflict(void **state)
{
    struct two t;
    char p[160];
    uint32_t v;

    (void)state;
    open_two(&t);
    struct counter_txn c = { at(&t, "counter", p, sizeof(p)), 0, t.a };
    assert_int_equal(pvabi_store_write(t.a, 0, p, "1"), 0);
    assert_int_equal(pvabi_store_txn_run(t.a, increment, &c, 5), 11);
    assert_int_equal(c.runs, 2);
    assert_int_equal(pvabi_store_read_u32(t.a, 0, p, &v), 0);
    assert_int_equal(v, 11);
    /* A conflict every time: bounded. */
    c.runs = 0;
    assert_int_equal(pvabi_store_txn_run(t.a, increment, &c, 1), -EAGAIN);
    assert_int_equal(c.runs, 1);
    close_two(&t);
}

/* ---- watches ---------------------------------------------------------------- */

struct seen {
    char paths[8][200];
    int n;
};

static void on_change(pvabi_ctx *ctx, const char *path, void *opaque)
{
    struct seen *s = opaque;

    (void)ctx;
    if (s->n < 8)
        snprintf(s->paths[s->n], sizeof(s->paths[0]), "%s", path);
    s->n++;
}

/* Polls pvabi_fd() and processes until @want events were seen (or 10 s). */
static void process_until(pvabi_ctx *ctx, struct seen *s, int want)
{
    struct pollfd pfd = { .fd = pvabi_fd(ctx), .events = POLLIN };
    uint64_t end = it_now_ns() + 10000000000ull;

    while (s->n < want && it_now_ns() < end) {
        poll(&pfd, 1, 100);
        assert_true(pvabi_store_process(ctx) >= 0);
    }
    assert_int_equal(s->n, want);
}

static void test_store_watch_through_context_fd(void **state)
{
    struct two t;
    struct seen s = { 0 };
    pvabi_watch *w;
    char p[160], child[200];

    (void)state;
    open_two(&t);
    at(&t, "w", p, sizeof(p));
    assert_int_equal(pvabi_store_watch(t.a, p, on_change, &s, &w), 0);
    process_until(t.a, &s, 1); /* fires once when registered */
    assert_string_equal(s.paths[0], p);
    snprintf(child, sizeof(child), "%s/deep/er", p);
    assert_int_equal(pvabi_store_write(t.a, 0, child, "v"), 0);
    process_until(t.a, &s, 2);
    assert_string_equal(s.paths[1], child);
    assert_int_equal(pvabi_store_unwatch(w), 0);
    assert_int_equal(pvabi_store_write(t.a, 0, child, "again"), 0);
    /* Nothing more, even once the fd has had time to wake. */
    struct pollfd pfd = { .fd = pvabi_fd(t.a), .events = POLLIN };
    poll(&pfd, 1, 200);
    assert_int_equal(pvabi_store_process(t.a), 0);
    assert_int_equal(s.n, 2);
    close_two(&t);
}

/* A domain that dies is released: @releaseDomain fires for the privileged
 * domain's watches (Xen 4.17 sends special watches to privileged domains
 * only, absent permissions on the special node). */
static void test_store_watch_release_domain_on_death(void **state)
{
    struct seen s = { 0 };
    struct it_agent victim;
    pvabi_watch *w;
    pvabi_ctx *dom0;

    (void)state;
    if (it_is_xen())
        skip(); /* on Xen a process's death releases no domain */
    setenv("PVABI_LOCAL_DOMID", "0", 1);
    int rc = pvabi_open(&dom0, it_platform());
    unsetenv("PVABI_LOCAL_DOMID");
    assert_int_equal(rc, 0);
    assert_int_equal(pvabi_store_watch(dom0, "@releaseDomain", on_change, &s, &w), 0);
    process_until(dom0, &s, 1);
    it_agent_start(&victim, "victim");
    it_agent_kill(&victim);
    it_agent_release(&victim);
    process_until(dom0, &s, 2);
    assert_string_equal(s.paths[1], "@releaseDomain");
    pvabi_store_unwatch(w);
    pvabi_close(dom0);
}

struct closer {
    pvabi_xenbus_front *f;
    int calls;
};

static void close_front(pvabi_ctx *ctx, const char *path, void *opaque)
{
    struct closer *c = opaque;

    (void)ctx, (void)path;
    if (c->calls++ == 1) /* not at registration: at the write */
        pvabi_xenbus_front_close(c->f);
}

/* Regression: a watch callback that closed a xenbus handle while a wait on
 * that handle ran made the wait use freed memory.  The wait now ends with
 * -ECANCELED, and the handle is freed once nothing uses it. */
static void test_store_handle_closed_by_callback_during_its_wait(void **state)
{
    struct closer c = { 0 };
    pvabi_ctx *dom0, *fe;
    pvabi_watch *w;
    char p[96];

    (void)state;
    setenv("PVABI_LOCAL_DOMID", "0", 1);
    int rc = pvabi_open(&dom0, it_platform());
    unsetenv("PVABI_LOCAL_DOMID");
    assert_int_equal(rc, 0);
    assert_int_equal(pvabi_open(&fe, it_platform()), 0);
    rc = pvabi_xenbus_device_add(dom0, "pvabi-test", pvabi_own_domid(fe), pvabi_own_domid(dom0), 9,
                                 NULL, NULL);
    if (rc == -EACCES) { /* a Xen domU: no toolstack here */
        pvabi_close(fe);
        pvabi_close(dom0);
        skip();
    }
    assert_int_equal(rc, 0);
    assert_int_equal(pvabi_xenbus_front_open(fe, "pvabi-test", 9, NULL, NULL, &c.f), 0);
    assert_int_equal(pvabi_xenbus_front_start(c.f), 0);
    snprintf(p, sizeof(p), "/local/domain/%u/data/pvabi-closer-%d", pvabi_own_domid(fe),
             (int)getpid());
    assert_int_equal(pvabi_store_watch(fe, p, close_front, &c, &w), 0);
    assert_int_equal(pvabi_store_write(fe, 0, p, "1"), 0);
    assert_int_equal(pvabi_xenbus_front_wait(c.f, PVABI_XENBUS_EV_PEER_READY, 10000), -ECANCELED);
    assert_int_equal(c.calls, 2);
    pvabi_store_unwatch(w);
    pvabi_store_rm(fe, 0, p);
    pvabi_xenbus_device_remove(dom0, "pvabi-test", pvabi_own_domid(fe), pvabi_own_domid(dom0), 9);
    pvabi_close(fe);
    pvabi_close(dom0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(test_store_write_read_printf_scanf),
        IT_TEST(test_store_read_u32_checks_peer_numbers),
        IT_TEST(test_store_mkdir_list_rm),
        IT_TEST(test_store_perms_between_domains),
        IT_TEST(test_store_txn_isolated_until_commit),
        IT_TEST(test_store_txn_conflict_eagain),
        IT_TEST(test_store_txn_run_retries_on_conflict),
        IT_TEST(test_store_watch_through_context_fd),
        IT_TEST(test_store_watch_release_domain_on_death),
        IT_TEST(test_store_handle_closed_by_callback_during_its_wait),
    };
    return it_run_tests("integration-store-api", tests);
}
