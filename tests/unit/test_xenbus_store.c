/* SPDX-License-Identifier: MIT */
/*
 * The store layer of src/xenbus/store.c, against a private pvabi-hv (one
 * per test program, started here): the context fd that learns of watch
 * events, the environment left as it was, the strict number parser, the
 * text form of permissions, the transaction helper's bounds, watches that
 * remove themselves, the toolstack step's nodes and permissions, and errno
 * left alone.  Skips (77) when the daemon was not built.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <pvabi/pvabi.h>

static char dir[64], sock[128];
static pid_t hv_pid;

/* ---- the private daemon ----------------------------------------------------- */

static int start_daemon(void)
{
    const char *hv = getenv("PVABI_HV");
    char fdarg[16], c;
    int p[2];

    if (!hv || access(hv, X_OK) != 0) {
        printf("SKIP: no pvabi-hv (PVABI_HV unset or not executable)\n");
        return 77;
    }
    snprintf(dir, sizeof(dir), "/tmp/pvabi-xbstore-XXXXXX");
    if (!mkdtemp(dir) || pipe(p) < 0)
        return 1;
    snprintf(sock, sizeof(sock), "%s/hv.sock", dir);
    hv_pid = fork();
    if (hv_pid == 0) {
        close(p[0]);
        snprintf(fdarg, sizeof(fdarg), "%d", p[1]);
        execl(hv, hv, "--socket", sock, "--ready-fd", fdarg, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    /* One byte once it listens; EOF if it failed. */
    if (hv_pid < 0 || read(p[0], &c, 1) != 1) {
        close(p[0]);
        return 1;
    }
    close(p[0]);
    setenv("PVABI_LOCAL_SOCKET", sock, 1);
    setenv("PVABI_LOCAL_AUTOSTART", "0", 1);
    unsetenv("PVABI_LOCAL_DOMID");
    return 0;
}

static void stop_daemon(void)
{
    char path[160];

    if (hv_pid > 0) {
        kill(hv_pid, SIGTERM);
        waitpid(hv_pid, NULL, 0);
    }
    snprintf(path, sizeof(path), "%s.lock", sock);
    unlink(path);
    rmdir(dir);
}

static pvabi_ctx *open_ctx(const char *domid)
{
    pvabi_ctx *ctx = NULL;

    if (domid)
        setenv("PVABI_LOCAL_DOMID", domid, 1);
    assert_int_equal(pvabi_open(&ctx, "local"), 0);
    unsetenv("PVABI_LOCAL_DOMID");
    return ctx;
}

/* A node under this domain's home, unique to the test. */
static const char *node(pvabi_ctx *ctx, const char *name, char *buf, size_t size)
{
    snprintf(buf, size, "/local/domain/%u/data/%s", (unsigned)pvabi_own_domid(ctx), name);
    return buf;
}

static int readable(int fd, int timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

/* ---- pvabi_fd and watches --------------------------------------------------- */

struct seen {
    int n;
    char last[200];
    pvabi_watch *self; /* unwatch from inside the callback when set */
};

static void on_change(pvabi_ctx *ctx, const char *path, void *opaque)
{
    struct seen *s = opaque;

    (void)ctx;
    s->n++;
    snprintf(s->last, sizeof(s->last), "%s", path);
    if (s->self) {
        assert_int_equal(pvabi_store_unwatch(s->self), 0);
        s->self = NULL;
    }
}

static void test_xenbus_store_context_fd_wakes_on_watch_events(void **state)
{
    pvabi_ctx *ctx = open_ctx(NULL);
    int fd = pvabi_fd(ctx);
    struct seen s = { 0 };
    pvabi_watch *w;
    char p[160];

    (void)state;
    assert_false(readable(fd, 0));
    assert_int_equal(pvabi_store_process(ctx), 0); /* no store yet: nothing */
    assert_int_equal(pvabi_store_watch(ctx, node(ctx, "w", p, sizeof(p)), on_change, &s, &w), 0);
    assert_int_equal(pvabi_fd(ctx), fd); /* the same fd, now with the store in it */
    /* A watch fires once when set. */
    assert_true(readable(fd, 5000));
    assert_int_equal(pvabi_store_process(ctx), 1);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.last, p);
    assert_false(readable(fd, 0));
    /* A change below the watched node. */
    char child[200];
    snprintf(child, sizeof(child), "%s/child", p);
    assert_int_equal(pvabi_store_write(ctx, PVABI_STORE_TXN_NONE, child, "x"), 0);
    assert_true(readable(fd, 5000));
    assert_int_equal(pvabi_store_process(ctx), 1);
    assert_string_equal(s.last, child);
    assert_int_equal(pvabi_store_process(ctx), 0); /* a spurious call is harmless */
    assert_int_equal(pvabi_store_unwatch(w), 0);
    pvabi_close(ctx);
}

static void test_xenbus_store_unwatch_inside_callback(void **state)
{
    pvabi_ctx *ctx = open_ctx(NULL);
    struct seen s = { 0 };
    char p[160];

    (void)state;
    node(ctx, "self", p, sizeof(p));
    assert_int_equal(pvabi_store_watch(ctx, p, on_change, &s, &s.self), 0);
    assert_int_equal(pvabi_store_wait(ctx, 5000), 1);
    assert_null(s.self);
    assert_int_equal(pvabi_store_write(ctx, PVABI_STORE_TXN_NONE, p, "1"), 0);
    assert_int_equal(pvabi_store_wait(ctx, 100), 0); /* nobody watches any more */
    assert_int_equal(s.n, 1);
    pvabi_close(ctx);
}

static void test_xenbus_store_wait_times_out(void **state)
{
    pvabi_ctx *ctx = open_ctx(NULL);
    struct timespec a, b;

    (void)state;
    clock_gettime(CLOCK_MONOTONIC, &a);
    assert_int_equal(pvabi_store_wait(ctx, 50), 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    assert_true((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 >= 49);
    assert_int_equal(pvabi_store_wait(ctx, -1), -EINVAL);
    pvabi_close(ctx);
}

/* Watches left at pvabi_close are freed with the context (valgrind/ASan). */
static void test_xenbus_store_close_frees_watches(void **state)
{
    pvabi_ctx *ctx = open_ctx(NULL);
    struct seen s = { 0 };
    pvabi_watch *w;
    char p[160];

    (void)state;
    assert_int_equal(pvabi_store_watch(ctx, node(ctx, "left", p, sizeof(p)), on_change, &s, &w), 0);
    pvabi_close(ctx);
}

/* ---- opening ------------------------------------------------------------------ */

static void test_xenbus_store_open_restores_environment(void **state)
{
    pvabi_ctx *ctx;
    char *v;

    (void)state;
    setenv("XENSTORED_PATH", "/nonexistent/sentinel", 1);
    ctx = open_ctx(NULL);
    assert_true(pvabi_store_read(ctx, PVABI_STORE_TXN_NONE, "domid", &v) >= 0);
    free(v);
    assert_string_equal(getenv("XENSTORED_PATH"), "/nonexistent/sentinel");
    pvabi_close(ctx);
    unsetenv("XENSTORED_PATH");
    ctx = open_ctx(NULL);
    assert_true(pvabi_store_read(ctx, PVABI_STORE_TXN_NONE, "domid", &v) >= 0);
    free(v);
    assert_null(getenv("XENSTORED_PATH"));
    pvabi_close(ctx);
}

/* Two contexts of one process are two domains: each connection selects its
 * own (pvabi-domid), so each reads its own home relative to itself. */
static void test_xenbus_store_two_contexts_speak_as_their_domains(void **state)
{
    pvabi_ctx *a = open_ctx(NULL), *b = open_ctx(NULL);
    uint32_t ida, idb;

    (void)state;
    assert_int_equal(pvabi_store_read_u32(a, PVABI_STORE_TXN_NONE, "domid", &ida), 0);
    assert_int_equal(pvabi_store_read_u32(b, PVABI_STORE_TXN_NONE, "domid", &idb), 0);
    assert_int_equal(ida, pvabi_own_domid(a));
    assert_int_equal(idb, pvabi_own_domid(b));
    assert_int_not_equal(ida, idb);
    pvabi_close(b);
    pvabi_close(a);
}

static void test_xenbus_store_errno_untouched(void **state)
{
    pvabi_ctx *ctx = open_ctx(NULL);
    char *v;

    (void)state;
    errno = 1234;
    assert_int_equal(pvabi_store_read(ctx, PVABI_STORE_TXN_NONE, "no/such/node", &v), -ENOENT);
    assert_null(v);
    assert_int_equal(errno, 1234);
    pvabi_close(ctx);
}

/* ---- values ---------------------------------------------------------------------- */

static void test_xenbus_store_read_u32_is_strict(void **state)
{
    static const struct {
        const char *value;
        int rc;
        uint32_t v;
    } cases[] = {
        { "0", 0, 0 },
        { "42", 0, 42 },
        { "4294967295", 0, UINT32_MAX },
        { "007", 0, 7 },
        { "4294967296", -ERANGE, 0 },
        { "12345678901", -ERANGE, 0 },
        { "-1", -EINVAL, 0 },
        { " 1", -EINVAL, 0 },
        { "1 ", -EINVAL, 0 },
        { "", -EINVAL, 0 },
        { "0x10", -EINVAL, 0 },
        { "+5", -EINVAL, 0 },
    };
    pvabi_ctx *ctx = open_ctx(NULL);
    char p[160];

    (void)state;
    node(ctx, "num", p, sizeof(p));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint32_t v = 0xdead;
        assert_int_equal(pvabi_store_write(ctx, PVABI_STORE_TXN_NONE, p, cases[i].value), 0);
        int rc = pvabi_store_read_u32(ctx, PVABI_STORE_TXN_NONE, p, &v);
        if (rc != cases[i].rc || (rc == 0 && v != cases[i].v))
            fail_msg("\"%s\": rc %d value %u", cases[i].value, rc, v);
    }
    pvabi_close(ctx);
}

static void test_xenbus_store_printf_scanf(void **state)
{
    pvabi_ctx *ctx = open_ctx(NULL);
    char p[160], word[16], big[5000];
    unsigned n = 0;

    (void)state;
    node(ctx, "fmt", p, sizeof(p));
    assert_int_equal(pvabi_store_printf(ctx, PVABI_STORE_TXN_NONE, p, "%u-%s", 17u, "abc"), 0);
    assert_int_equal(pvabi_store_scanf(ctx, PVABI_STORE_TXN_NONE, p, "%u-%15s", &n, word), 2);
    assert_int_equal(n, 17);
    assert_string_equal(word, "abc");
    assert_int_equal(pvabi_store_write(ctx, PVABI_STORE_TXN_NONE, p, "abc"), 0);
    assert_int_equal(pvabi_store_scanf(ctx, PVABI_STORE_TXN_NONE, p, "%u", &n), -ERANGE);
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(pvabi_store_printf(ctx, PVABI_STORE_TXN_NONE, p, "%s", big), -E2BIG);
    assert_int_equal(pvabi_store_write(ctx, PVABI_STORE_TXN_NONE, p, big), -E2BIG);
    pvabi_close(ctx);
}

static void test_xenbus_store_list_mkdir_rm(void **state)
{
    pvabi_ctx *ctx = open_ctx(NULL);
    char p[160], q[200];
    char **names;
    int n;

    (void)state;
    node(ctx, "dir", p, sizeof(p));
    assert_int_equal(pvabi_store_mkdir(ctx, PVABI_STORE_TXN_NONE, p), 0);
    assert_int_equal(pvabi_store_list(ctx, PVABI_STORE_TXN_NONE, p, &names), 0);
    assert_null(names);
    snprintf(q, sizeof(q), "%s/a", p);
    assert_int_equal(pvabi_store_write(ctx, PVABI_STORE_TXN_NONE, q, "1"), 0);
    snprintf(q, sizeof(q), "%s/b/c", p);
    assert_int_equal(pvabi_store_write(ctx, PVABI_STORE_TXN_NONE, q, "2"), 0);
    n = pvabi_store_list(ctx, PVABI_STORE_TXN_NONE, p, &names);
    assert_int_equal(n, 2);
    assert_true((!strcmp(names[0], "a") && !strcmp(names[1], "b")) ||
                (!strcmp(names[0], "b") && !strcmp(names[1], "a")));
    free(names); /* one block */
    assert_int_equal(pvabi_store_rm(ctx, PVABI_STORE_TXN_NONE, p), 0);
    assert_int_equal(pvabi_store_list(ctx, PVABI_STORE_TXN_NONE, p, &names), -ENOENT);
    pvabi_close(ctx);
}

static void test_xenbus_store_perms_text_form(void **state)
{
    pvabi_ctx *ctx = open_ctx(NULL);
    static const char *const bad[] = {
        "", "x1", "n", "n70000", "r1 q2", "n-1", "n1x", "1n", "nn1"
    };
    char p[160], want[64], *got;

    (void)state;
    node(ctx, "perm", p, sizeof(p));
    assert_int_equal(pvabi_store_write(ctx, PVABI_STORE_TXN_NONE, p, "v"), 0);
    snprintf(want, sizeof(want), "n%u r0 w3 b9", (unsigned)pvabi_own_domid(ctx));
    assert_int_equal(pvabi_store_set_perms(ctx, PVABI_STORE_TXN_NONE, p, want), 0);
    assert_int_equal(pvabi_store_get_perms(ctx, PVABI_STORE_TXN_NONE, p, &got), 4);
    assert_string_equal(got, want);
    free(got);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (pvabi_store_set_perms(ctx, PVABI_STORE_TXN_NONE, p, bad[i]) != -EINVAL)
            fail_msg("perms \"%s\" accepted", bad[i]);
    pvabi_close(ctx);
}

/* ---- transactions ----------------------------------------------------------------- */

struct body {
    const char *path;
    int ret, runs;
};

static int body_fn(pvabi_ctx *ctx, pvabi_store_txn txn, void *opaque)
{
    struct body *b = opaque;
    int rc = pvabi_store_printf(ctx, txn, b->path, "%d", ++b->runs);

    return rc < 0 ? rc : b->ret;
}

static void test_xenbus_store_txn_run_results_and_bounds(void **state)
{
    pvabi_ctx *ctx = open_ctx(NULL);
    struct body b;
    uint32_t v;
    char p[160];

    (void)state;
    node(ctx, "txn", p, sizeof(p));
    assert_int_equal(pvabi_store_write(ctx, PVABI_STORE_TXN_NONE, p, "0"), 0);
    b = (struct body){ p, 7, 0 };
    assert_int_equal(pvabi_store_txn_run(ctx, body_fn, &b, 3), 7); /* committed */
    assert_int_equal(pvabi_store_read_u32(ctx, PVABI_STORE_TXN_NONE, p, &v), 0);
    assert_int_equal(v, 1);
    b = (struct body){ p, -EAGAIN, 0 };
    assert_int_equal(pvabi_store_txn_run(ctx, body_fn, &b, 3), -EAGAIN); /* bounded */
    assert_int_equal(b.runs, 3);
    b = (struct body){ p, -EIO, 0 };
    assert_int_equal(pvabi_store_txn_run(ctx, body_fn, &b, 3), -EIO); /* abandoned */
    assert_int_equal(b.runs, 1);
    assert_int_equal(pvabi_store_read_u32(ctx, PVABI_STORE_TXN_NONE, p, &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(pvabi_store_txn_run(ctx, body_fn, &b, 0), -EINVAL);
    pvabi_close(ctx);
}

/* ---- the toolstack step ------------------------------------------------------------ */

static void expect(pvabi_ctx *ctx, const char *dir_, const char *key, const char *value)
{
    char p[256], *v;

    snprintf(p, sizeof(p), "%s/%s", dir_, key);
    assert_true(pvabi_store_read(ctx, PVABI_STORE_TXN_NONE, p, &v) >= 0);
    if (strcmp(v, value))
        fail_msg("%s = \"%s\", want \"%s\"", p, v, value);
    free(v);
}

static void test_xenbus_device_add_writes_both_directories(void **state)
{
    pvabi_ctx *ts = open_ctx("0");
    const char *bn[] = { "params", "/srv/disk", "mode", "w", NULL };
    const char *fn[] = { "virtual-device", "51712", NULL };
    const char *odd[] = { "params", NULL };
    const char *fe = "/local/domain/5/device/vbd/51712",
               *be = "/local/domain/0/backend/vbd/5/51712";
    char *perms, **names;

    (void)state;
    assert_int_equal(pvabi_xenbus_device_add(ts, "vbd", 5, 0, 51712, bn, fn), 0);
    expect(ts, fe, "backend", be);
    expect(ts, fe, "backend-id", "0");
    expect(ts, fe, "state", "1");
    expect(ts, fe, "virtual-device", "51712");
    expect(ts, be, "frontend", fe);
    expect(ts, be, "frontend-id", "5");
    expect(ts, be, "online", "1");
    expect(ts, be, "state", "1");
    expect(ts, be, "params", "/srv/disk");
    expect(ts, be, "mode", "w");
    assert_int_equal(pvabi_store_get_perms(ts, PVABI_STORE_TXN_NONE, fe, &perms), 2);
    assert_string_equal(perms, "n5 r0");
    free(perms);
    assert_int_equal(pvabi_store_get_perms(ts, PVABI_STORE_TXN_NONE, be, &perms), 2);
    assert_string_equal(perms, "n0 r5");
    free(perms);
    /* Again: from scratch (a node written meanwhile is gone). */
    char extra[200];
    snprintf(extra, sizeof(extra), "%s/ring-ref", fe);
    assert_int_equal(pvabi_store_write(ts, PVABI_STORE_TXN_NONE, extra, "8"), 0);
    assert_int_equal(pvabi_xenbus_device_add(ts, "vbd", 5, 0, 51712, NULL, NULL), 0);
    assert_int_equal(pvabi_store_list(ts, PVABI_STORE_TXN_NONE, fe, &names), 3);
    free(names);
    assert_int_equal(pvabi_xenbus_device_add(ts, "vbd", 5, 0, 51712, odd, NULL), -EINVAL);
    assert_int_equal(pvabi_xenbus_device_add(ts, "v/bd", 5, 0, 51712, NULL, NULL), -EINVAL);
    assert_int_equal(pvabi_xenbus_device_remove(ts, "vbd", 5, 0, 51712), 0);
    assert_int_equal(pvabi_store_list(ts, PVABI_STORE_TXN_NONE, fe, &names), -ENOENT);
    assert_int_equal(pvabi_xenbus_device_remove(ts, "vbd", 5, 0, 51712), 0); /* not there: fine */
    pvabi_close(ts);
}

static void test_xenbus_device_add_needs_privilege(void **state)
{
    pvabi_ctx *ctx = open_ctx(NULL);

    (void)state;
    assert_int_equal(pvabi_xenbus_device_add(ctx, "vbd", 5, 0, 1, NULL, NULL), -EACCES);
    pvabi_close(ctx);
}

/* A frontend handle without a device: -ENOENT, nothing changed. */
static void test_xenbus_front_open_without_device(void **state)
{
    pvabi_ctx *ctx = open_ctx(NULL);
    pvabi_xenbus_front *f = (pvabi_xenbus_front *)1;
    pvabi_xenbus_back *b = (pvabi_xenbus_back *)1;

    (void)state;
    assert_int_equal(pvabi_xenbus_front_open(ctx, "vbd", 99, NULL, NULL, &f), -ENOENT);
    assert_null(f);
    assert_int_equal(pvabi_xenbus_back_open(ctx, "vbd", 3, 99, NULL, NULL, &b), -ENOENT);
    assert_null(b);
    assert_int_equal(pvabi_xenbus_front_open(ctx, "", 99, NULL, NULL, &f), -EINVAL);
    pvabi_close(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xenbus_store_context_fd_wakes_on_watch_events),
        cmocka_unit_test(test_xenbus_store_unwatch_inside_callback),
        cmocka_unit_test(test_xenbus_store_wait_times_out),
        cmocka_unit_test(test_xenbus_store_close_frees_watches),
        cmocka_unit_test(test_xenbus_store_open_restores_environment),
        cmocka_unit_test(test_xenbus_store_two_contexts_speak_as_their_domains),
        cmocka_unit_test(test_xenbus_store_errno_untouched),
        cmocka_unit_test(test_xenbus_store_read_u32_is_strict),
        cmocka_unit_test(test_xenbus_store_printf_scanf),
        cmocka_unit_test(test_xenbus_store_list_mkdir_rm),
        cmocka_unit_test(test_xenbus_store_perms_text_form),
        cmocka_unit_test(test_xenbus_store_txn_run_results_and_bounds),
        cmocka_unit_test(test_xenbus_device_add_writes_both_directories),
        cmocka_unit_test(test_xenbus_device_add_needs_privilege),
        cmocka_unit_test(test_xenbus_front_open_without_device),
    };
    int rc = start_daemon();

    if (rc)
        return rc;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    stop_daemon();
    return rc;
}
