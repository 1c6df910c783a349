/* SPDX-License-Identifier: MIT */
/*
 * The agent server (remote agents, remote.c) against a broken or hostile
 * peer on raw TCP: a bad magic, an unknown kind, a huge length, a MSG of the
 * wrong length, a truncated frame, KILL before START, a frame only the
 * server may send.  Each such connection is closed, and the server keeps
 * serving: a good connection afterwards runs an agent to its clean exit.
 * The server runs against a private pvabi-hv, on the local platform.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itest.h"

static struct it_agent_server server;

static int setup(void **state)
{
    *state = &server;
    it_daemon_start(it_current_daemon());
    it_agent_server_start(&server);
    return 0;
}

static int teardown(void **state)
{
    char why[256];
    int failed;

    (void)state;
    failed = it_agent_server_stop(&server, why, sizeof(why)) < 0;
    it_daemon_stop(it_current_daemon());
    if (failed)
        it_fail("%s", why);
    return 0;
}

static int connect_server(void)
{
    int fd = it_tcp_connect(server.addr, IT_TIMEOUT_MS);

    if (fd < 0)
        it_fail("connect to %s: %s", server.addr, strerror(-fd));
    return fd;
}

static void send_bytes(int fd, const void *buf, size_t len)
{
    assert_int_equal(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

static void send_header(int fd, uint32_t magic, uint32_t kind, uint32_t len)
{
    struct it_frame_hdr h = { htonl(magic), htonl(kind), htonl(len) };

    send_bytes(fd, &h, sizeof(h));
}

static void send_start(int fd, const char *name)
{
    assert_int_equal(it_frame_send(fd, IT_FRAME_START, name, (uint32_t)strlen(name), IT_TIMEOUT_MS),
                     0);
}

/* The server closes the connection within the deadline (EOF, or a reset
 * when our bytes were left unread); what it sent first (an agent's HELLO)
 * is skipped. */
static void assert_closed_by_server(int fd)
{
    char buf[4096];
    size_t total = 0;

    for (;;) {
        if (it_wait_readable(fd, -1, IT_TIMEOUT_MS) == 0)
            it_fail("the server kept the connection open for %d ms", IT_TIMEOUT_MS);
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            break;
        assert_true(n > 0);
        total += (size_t)n;
        assert_true(total < 64 * 1024);
    }
    close(fd);
}

/* Receives the next frame, which must be of @kind. */
static void expect_frame(int fd, uint32_t kind, void *payload, uint32_t len)
{
    struct it_frame_hdr h;

    assert_int_equal(it_frame_recv(fd, &h, payload, len, IT_TIMEOUT_MS), 1);
    assert_int_equal(h.kind, kind);
    assert_int_equal(h.len, len);
}

static void expect_hello(int fd)
{
    struct it_msg m;

    expect_frame(fd, IT_FRAME_MSG, &m, sizeof(m));
    assert_int_equal(m.op, IT_OP_HELLO);
    assert_int_equal(m.status, 0);
    assert_true(m.a[0] > 0); /* an unprivileged domid */
}

static int expect_exited(int fd)
{
    uint32_t be;

    expect_frame(fd, IT_FRAME_EXITED, &be, sizeof(be));
    return (int)(int32_t)ntohl(be);
}

/* A well-behaved peer: START, the agent's HELLO, EXIT (closing the
 * context), then EXITED with exit status 0, then the end. */
static void assert_serves_agent(void)
{
    struct it_msg m;
    int fd = connect_server(), st;

    send_start(fd, "frontend");
    expect_hello(fd);
    memset(&m, 0, sizeof(m));
    m.op = IT_OP_EXIT;
    m.a[0] = 1;
    assert_int_equal(it_frame_send(fd, IT_FRAME_MSG, &m, sizeof(m), IT_TIMEOUT_MS), 0);
    st = expect_exited(fd);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_closed_by_server(fd);
}

static void test_remote_good_connection(void **state)
{
    (void)state;
    assert_serves_agent();
    assert_serves_agent();
}

static void test_remote_bad_magic(void **state)
{
    int fd = connect_server();

    (void)state;
    send_header(fd, 0xdeadbeef, IT_FRAME_START, 8);
    send_bytes(fd, "frontend", 8);
    assert_closed_by_server(fd);
    assert_serves_agent();
}

static void test_remote_unknown_kind(void **state)
{
    int fd = connect_server();

    (void)state;
    send_header(fd, IT_FRAME_MAGIC, 99, 0);
    assert_closed_by_server(fd);
    assert_serves_agent();
}

/* Lengths far beyond any buffer, announced but never sent: refused on the
 * header alone. */
static void test_remote_huge_len(void **state)
{
    int fd;

    (void)state;
    fd = connect_server();
    send_header(fd, IT_FRAME_MAGIC, IT_FRAME_START, 0x7fffffff);
    assert_closed_by_server(fd);
    fd = connect_server();
    send_header(fd, IT_FRAME_MAGIC, IT_FRAME_START, 0xffffffff);
    assert_closed_by_server(fd);
    fd = connect_server();
    send_start(fd, "frontend");
    expect_hello(fd);
    send_header(fd, IT_FRAME_MAGIC, IT_FRAME_MSG, 1u << 30);
    assert_closed_by_server(fd);
    assert_serves_agent();
}

static void test_remote_msg_wrong_length(void **state)
{
    struct it_msg m;
    int fd;

    (void)state;
    memset(&m, 0, sizeof(m));
    /* Before START... */
    fd = connect_server();
    send_header(fd, IT_FRAME_MAGIC, IT_FRAME_MSG, sizeof(m) - 1);
    send_bytes(fd, &m, sizeof(m) - 1);
    assert_closed_by_server(fd);
    /* ...and to a running agent, one byte short and one byte long. */
    for (int extra = -1; extra <= 1; extra += 2) {
        fd = connect_server();
        send_start(fd, "frontend");
        expect_hello(fd);
        send_header(fd, IT_FRAME_MAGIC, IT_FRAME_MSG, (uint32_t)((int)sizeof(m) + extra));
        assert_closed_by_server(fd);
    }
    assert_serves_agent();
}

/* A frame cut short by the peer's close: before START, and in a MSG. */
static void test_remote_truncated_frame(void **state)
{
    struct it_msg m;
    int fd;

    (void)state;
    fd = connect_server();
    send_header(fd, IT_FRAME_MAGIC, IT_FRAME_START, 8);
    send_bytes(fd, "fro", 3);
    shutdown(fd, SHUT_WR);
    assert_closed_by_server(fd);

    fd = connect_server();
    send_bytes(fd, "PV", 2); /* half a header */
    shutdown(fd, SHUT_WR);
    assert_closed_by_server(fd);

    memset(&m, 0, sizeof(m));
    fd = connect_server();
    send_start(fd, "frontend");
    expect_hello(fd);
    send_header(fd, IT_FRAME_MAGIC, IT_FRAME_MSG, sizeof(m));
    send_bytes(fd, &m, 100);
    shutdown(fd, SHUT_WR);
    assert_closed_by_server(fd);
    assert_serves_agent();
}

static void test_remote_kill_before_start(void **state)
{
    int fd = connect_server();

    (void)state;
    send_header(fd, IT_FRAME_MAGIC, IT_FRAME_KILL, 0);
    assert_closed_by_server(fd);
    assert_serves_agent();
}

/* EXITED and a second START are the server's to send, or not at all. */
static void test_remote_unexpected_frames(void **state)
{
    uint32_t st = 0;
    int fd;

    (void)state;
    fd = connect_server();
    send_start(fd, "frontend");
    expect_hello(fd);
    assert_int_equal(it_frame_send(fd, IT_FRAME_EXITED, &st, sizeof(st), IT_TIMEOUT_MS), 0);
    assert_closed_by_server(fd);

    fd = connect_server();
    send_start(fd, "frontend");
    expect_hello(fd);
    send_start(fd, "backend");
    assert_closed_by_server(fd);

    fd = connect_server();
    send_header(fd, IT_FRAME_MAGIC, IT_FRAME_START, 3);
    send_bytes(fd, "a\0b", 3); /* a NUL in the name */
    assert_closed_by_server(fd);
    assert_serves_agent();
}

/* KILL to a running agent: EXITED says SIGKILL. */
static void test_remote_kill_running_agent(void **state)
{
    int fd = connect_server(), st;

    (void)state;
    send_start(fd, "frontend");
    expect_hello(fd);
    assert_int_equal(it_frame_send(fd, IT_FRAME_KILL, NULL, 0, IT_TIMEOUT_MS), 0);
    st = expect_exited(fd);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGKILL);
    assert_closed_by_server(fd);
    assert_serves_agent();
}

/* Broken connections left open while a good one is served; the server's
 * stop (teardown) then ends them too and still exits 0. */
static void test_remote_garbage_alongside(void **state)
{
    int idle = connect_server(), running = connect_server();

    (void)state;
    send_header(idle, IT_FRAME_MAGIC, IT_FRAME_START, 8); /* no name yet */
    send_start(running, "frontend");
    expect_hello(running);
    assert_serves_agent();
    close(idle);
    close(running);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_remote_good_connection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remote_bad_magic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remote_unknown_kind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remote_huge_len, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remote_msg_wrong_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remote_truncated_frame, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remote_kill_before_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remote_unexpected_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remote_kill_running_agent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remote_garbage_alongside, setup, teardown),
    };
    return it_run_tests("integration-remote-frames", tests);
}
