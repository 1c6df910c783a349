/* SPDX-License-Identifier: MIT */
/*
 * Debian's xenstore-utils against the embedded store, as a user runs them
 * (XENSTORED_PATH pointing at the daemon's store socket): exact output,
 * exit status and messages.  The tools run most commands inside a
 * transaction (rm, chmod, exists, list, and read/write of several keys), so
 * this also exercises transactions the way a real client does.
 * Skips (77) when xenstore-utils are not installed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fixture.h"

extern char **environ;

static struct xs_handle *h;

static int setup(void **state)
{
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

struct run {
    int status; /* exit status, or 128 + signal */
    char out[16384];
    char err[4096];
};

static long long ms_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static pid_t spawn_tool(const char *const argv[], int *out_fd, int *err_fd)
{
    posix_spawn_file_actions_t fa;
    int o[2], e[2];
    pid_t pid;

    assert_int_equal(pipe2(o, O_CLOEXEC), 0);
    assert_int_equal(pipe2(e, O_CLOEXEC), 0);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, o[1], 1);
    posix_spawn_file_actions_adddup2(&fa, e[1], 2);
    assert_int_equal(posix_spawnp(&pid, argv[0], &fa, NULL, (char **)argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(o[1]);
    close(e[1]);
    *out_fd = o[0];
    *err_fd = e[0];
    return pid;
}

static int reap(pid_t pid)
{
    int st;

    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Runs a tool to its end (killed after FX_WAIT_MS), capturing its output. */
static void run_tool(struct run *r, const char *const argv[])
{
    long long deadline = ms_now() + FX_WAIT_MS;
    size_t no = 0, ne = 0;
    int fo, fe, open_fds = 2;
    pid_t pid = spawn_tool(argv, &fo, &fe);

    memset(r, 0, sizeof(*r));
    while (open_fds) {
        struct pollfd p[2] = { { .fd = fo, .events = POLLIN }, { .fd = fe, .events = POLLIN } };
        long long left = deadline - ms_now();

        if (left <= 0 || poll(p, 2, (int)left) == 0) {
            kill(pid, SIGKILL);
            reap(pid);
            fail_msg("%s did not finish within %d ms", argv[0], FX_WAIT_MS);
        }
        for (int i = 0; i < 2; i++) {
            char *buf = i ? r->err : r->out;
            size_t *n = i ? &ne : &no, cap = i ? sizeof(r->err) : sizeof(r->out);
            ssize_t got;

            if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP)))
                continue;
            got = read(p[i].fd, buf + *n, cap - 1 - *n);
            if (got <= 0) {
                close(p[i].fd);
                if (i)
                    fe = -1;
                else
                    fo = -1;
                open_fds--;
                continue;
            }
            *n += (size_t)got;
        }
        /* A closed fd is skipped by poll() when negative. */
    }
    r->status = reap(pid);
}

#define RUN(r, ...)                                                                                \
    do {                                                                                           \
        const char *const argv_[] = { __VA_ARGS__, NULL };                                         \
        run_tool(r, argv_);                                                                        \
    } while (0)

static void expect_run(const struct run *r, int status, const char *out, const char *err)
{
    if (r->status != status || strcmp(r->out, out) != 0 || (err && strcmp(r->err, err) != 0))
        fail_msg("exit %d, stdout \"%s\", stderr \"%s\"; expected exit %d, stdout \"%s\", stderr "
                 "\"%s\"",
                 r->status, r->out, r->err, status, out, err ? err : "(any)");
}

static void test_write_and_read_print_values(void **state)
{
    static struct run r;

    (void)state;
    RUN(&r, "xenstore-write", "/u/a", "hello", "/u/b", "two words");
    expect_run(&r, 0, "", "");
    fx_expect_value(h, "/u/a", "hello");
    fx_expect_value(h, "/u/b", "two words");
    RUN(&r, "xenstore-write", "/u/a", "again");
    expect_run(&r, 0, "", "");

    RUN(&r, "xenstore-read", "/u/a");
    expect_run(&r, 0, "again\n", "");
    RUN(&r, "xenstore-read", "/u/a", "/u/b");
    expect_run(&r, 0, "again\ntwo words\n", "");
    RUN(&r, "xenstore-read", "-p", "/u/b");
    expect_run(&r, 0, "/u/b: two words\n", "");
}

/* The tools quote what is not printable and unquote what they write. */
static void test_write_unescapes_and_read_escapes(void **state)
{
    static struct run r;
    unsigned len;
    char *v;

    (void)state;
    RUN(&r, "xenstore-write", "/u/t", "a\\tb\\\\c\\x41");
    expect_run(&r, 0, "", "");
    v = xs_read(h, XBT_NULL, "/u/t", &len);
    assert_non_null(v);
    assert_int_equal(len, 6);
    assert_memory_equal(v, "a\tb\\cA", 6);
    free(v);

    assert_true(xs_write(h, XBT_NULL, "/u/nul", "x\0y", 3));
    RUN(&r, "xenstore-read", "/u/nul");
    expect_run(&r, 0, "x\\000y\n", "");
}

static void make_tree(void)
{
    fx_write(h, "/u/a", "hello");
    fx_write(h, "/u/b", "");
    fx_write(h, "/u/b/c", "x");
    fx_write(h, "/u/d", "last one");
}

static void test_ls_prints_tree_with_values(void **state)
{
    static struct run r;

    (void)state;
    make_tree();
    RUN(&r, "xenstore-ls", "/u");
    expect_run(&r, 0, "a = \"hello\"\nb = \"\"\n c = \"x\"\nd = \"last one\"\n", "");
    RUN(&r, "xenstore-ls", "-f", "/u");
    expect_run(&r, 0, "/u/a = \"hello\"\n/u/b = \"\"\n/u/b/c = \"x\"\n/u/d = \"last one\"\n", "");
}

/* xenstore-ls -p: after the value, dots to column 60 (on a non-terminal the
 * width is 80), then the permissions "(n0,r5)". */
static void ls_p_line(char *buf, size_t cap, int depth, const char *name, const char *value,
                      const char *perms)
{
    int linewid = depth + (int)strlen(name) + 5 + (int)strlen(value);
    size_t off = (size_t)snprintf(buf, cap, "%*s%s = \"%s\" ", depth, "", name, value);

    for (linewid++; linewid < 60; linewid++)
        buf[off++] = (linewid & 1) ? '.' : ' ';
    snprintf(buf + off, cap - off, "  (%s)\n", perms);
}

static void test_ls_p_prints_permissions_column(void **state)
{
    static struct run r;
    char want[2048], line[256];

    (void)state;
    make_tree();
    assert_int_equal(fx_perms_set(h, "/u/a", "n0 r5"), 0);
    assert_int_equal(fx_perms_set(h, "/u/b/c", "b3 w4"), 0);
    want[0] = 0;
    ls_p_line(line, sizeof(line), 0, "a", "hello", "n0,r5");
    strcat(want, line);
    ls_p_line(line, sizeof(line), 0, "b", "", "n0");
    strcat(want, line);
    ls_p_line(line, sizeof(line), 1, "c", "x", "b3,w4");
    strcat(want, line);
    ls_p_line(line, sizeof(line), 0, "d", "last one", "n0");
    strcat(want, line);
    RUN(&r, "xenstore-ls", "-p", "/u");
    expect_run(&r, 0, want, "");
}

static void test_list_prints_children(void **state)
{
    static struct run r;

    (void)state;
    make_tree();
    RUN(&r, "xenstore-list", "/u");
    expect_run(&r, 0, "a\nb\nd\n", "");
    RUN(&r, "xenstore-list", "-p", "/u/b");
    expect_run(&r, 0, "/u/b/c\n", "");
    RUN(&r, "xenstore-list", "/u/a");
    expect_run(&r, 0, "", "");
}

static void test_exists_reports_through_exit_status(void **state)
{
    static struct run r;

    (void)state;
    make_tree();
    RUN(&r, "xenstore-exists", "/u/a");
    expect_run(&r, 0, "", "");
    RUN(&r, "xenstore-exists", "/u/b/c");
    expect_run(&r, 0, "", "");
    RUN(&r, "xenstore-exists", "/u/nope");
    expect_run(&r, 1, "", "");
}

static void test_rm_removes_subtree_and_fails_on_missing_parent(void **state)
{
    static struct run r;

    (void)state;
    make_tree();
    RUN(&r, "xenstore-rm", "/u/b");
    expect_run(&r, 0, "", "");
    fx_expect_enoent(h, "/u/b/c");
    fx_expect_enoent(h, "/u/b");
    RUN(&r, "xenstore-rm", "/u/b");
    expect_run(&r, 0, "", ""); /* missing node, existing parent: fine */
    RUN(&r, "xenstore-rm", "/nope/deeper");
    expect_run(&r, 1, "", "xenstore-rm: could not remove path /nope/deeper\n");
    fx_expect_value(h, "/u/a", "hello");
}

static void test_chmod_sets_permissions(void **state)
{
    static struct run r;
    char perms[128];

    (void)state;
    make_tree();
    RUN(&r, "xenstore-chmod", "/u/a", "n0", "r5", "b7");
    expect_run(&r, 0, "", "");
    assert_int_equal(fx_perms_get(h, "/u/a", perms, sizeof(perms)), 0);
    assert_string_equal(perms, "n0 r5 b7");

    RUN(&r, "xenstore-chmod", "-r", "/u/b", "w3");
    expect_run(&r, 0, "", "");
    assert_int_equal(fx_perms_get(h, "/u/b", perms, sizeof(perms)), 0);
    assert_string_equal(perms, "w3");
    assert_int_equal(fx_perms_get(h, "/u/b/c", perms, sizeof(perms)), 0);
    assert_string_equal(perms, "w3");

    RUN(&r, "xenstore-chmod", "/u/none", "n0");
    if (r.status != 1 || !strstr(r.err, "Error occurred setting permissions on '/u/none'"))
        fail_msg("chmod of a missing node: exit %d, stderr \"%s\"", r.status, r.err);
}

/* Reads one line from @fd before @deadline (ms_now() based). */
static void read_line(int fd, char *buf, size_t cap, long long deadline)
{
    size_t n = 0;

    while (n < cap - 1) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        long long left = deadline - ms_now();

        if (left <= 0 || poll(&p, 1, (int)left) == 0)
            fail_msg("no line from xenstore-watch (got \"%.*s\")", (int)n, buf);
        if (read(fd, buf + n, 1) != 1)
            fail_msg("xenstore-watch closed its output (got \"%.*s\")", (int)n, buf);
        if (buf[n++] == '\n')
            break;
    }
    buf[n] = 0;
}

/* xenstore-watch -n 2 prints the initial event, then the path of a write
 * made after it, and exits. */
static void test_watch_sees_a_later_write(void **state)
{
    const char *const argv[] = { "xenstore-watch", "-n", "2", "/u/w", NULL };
    long long deadline = ms_now() + FX_WAIT_MS;
    char line[256];
    int fo, fe, status;
    pid_t pid;

    (void)state;
    pid = spawn_tool(argv, &fo, &fe);
    read_line(fo, line, sizeof(line), deadline);
    assert_string_equal(line, "/u/w\n");
    fx_write(h, "/u/w/x", "1");
    read_line(fo, line, sizeof(line), deadline);
    assert_string_equal(line, "/u/w/x\n");
    close(fo);
    close(fe);
    status = reap(pid);
    assert_int_equal(status, 0);
}

static void test_read_of_missing_node_fails_with_message(void **state)
{
    static struct run r;

    (void)state;
    RUN(&r, "xenstore-read", "/u/nope");
    expect_run(&r, 1, "", "xenstore-read: couldn't read path /u/nope\n");
    RUN(&r, "xenstore-read", "/u/bad.path");
    expect_run(&r, 1, "", "xenstore-read: couldn't read path /u/bad.path\n");
}

static bool in_path(const char *prog)
{
    const char *path = getenv("PATH");
    char dir[4096];

    while (path && *path) {
        size_t l = strcspn(path, ":");

        snprintf(dir, sizeof(dir), "%.*s/%s", (int)l, path, prog);
        if (access(dir, X_OK) == 0)
            return true;
        path += l + (path[l] == ':');
    }
    return false;
}

int main(int argc, char **argv)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_write_and_read_print_values),
        T(test_write_unescapes_and_read_escapes),
        T(test_ls_prints_tree_with_values),
        T(test_ls_p_prints_permissions_column),
        T(test_list_prints_children),
        T(test_exists_reports_through_exit_status),
        T(test_rm_removes_subtree_and_fails_on_missing_parent),
        T(test_chmod_sets_permissions),
        T(test_watch_sees_a_later_write),
        T(test_read_of_missing_node_fails_with_message),
    };
#undef T
    static const char *const tools[] = { "xenstore-read",   "xenstore-write", "xenstore-ls",
                                         "xenstore-list",   "xenstore-rm",    "xenstore-chmod",
                                         "xenstore-exists", "xenstore-watch" };
    int rc = fx_agent_main(argc, argv);

    if (rc >= 0)
        return rc;
    for (size_t i = 0; i < sizeof(tools) / sizeof(tools[0]); i++) {
        if (!in_path(tools[i])) {
            printf("SKIP: %s not found: apt-get install xenstore-utils\n", tools[i]);
            return 77;
        }
    }
    rc = fx_require_hv();
    if (rc)
        return rc;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
