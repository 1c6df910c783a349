/* SPDX-License-Identifier: MIT */
/*
 * What only the `local` platform client does: finding the daemon's socket,
 * starting a daemon (or saying clearly why not), claiming a domid, living
 * through the daemon's death or misbehaviour, and leaving no fd behind.
 * The cross-platform behaviours (grants, event channels, peer death) are in
 * test_grant.c, test_evtchn.c, test_death.c.
 *
 * The contexts are opened in this process (several contexts: several
 * domains), against a private pvabi-hv per test (PVABI_HV, set by meson).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <pvabi/pvabi.h>

#include "platform/local/proto.h"

/* ---- helpers ------------------------------------------------------------ */

/* A private daemon, our child, in its own temporary directory. */
struct hv {
    char dir[64];
    char sock[128];
    pid_t pid;
};

static char logbuf[16384];

static void log_capture(void *opaque, int level, const char *msg)
{
    size_t used = strlen(logbuf);

    (void)opaque, (void)level;
    snprintf(logbuf + used, sizeof(logbuf) - used, "%s\n", msg);
}

static void make_dir(char *dir, size_t size)
{
    snprintf(dir, size, "/tmp/pvabi-lt-XXXXXX");
    assert_non_null(mkdtemp(dir));
}

/* Starts pvabi-hv on a fresh socket and waits for its ready byte. */
static void hv_start(struct hv *h, const char *extra)
{
    const char *bin = getenv("PVABI_HV");
    int p[2];
    char byte;

    make_dir(h->dir, sizeof(h->dir));
    snprintf(h->sock, sizeof(h->sock), "%s/hv.sock", h->dir);
    assert_int_equal(pipe(p), 0);
    h->pid = fork();
    assert_true(h->pid >= 0);
    if (h->pid == 0) {
        char *argv[] = { (char *)bin, "--socket", h->sock, "--ready-fd", "3", (char *)extra, NULL };
        close(p[0]);
        if (p[1] != 3 && (dup2(p[1], 3) < 0 || close(p[1]) < 0))
            _exit(127);
        execv(bin, argv);
        _exit(127);
    }
    close(p[1]);
    assert_int_equal(read(p[0], &byte, 1), 1);
    close(p[0]);
}

/* Removes the socket, the daemon's lock file next to it, and @dir. */
static void rm_socket_dir(const char *dir, const char *sock)
{
    char lock[160];

    snprintf(lock, sizeof(lock), "%s.lock", sock);
    unlink(sock);
    unlink(lock);
    rmdir(dir);
}

/* A hang detector for a process that should exit on its own: no timing limit. */
#define EXIT_WAIT_MS 30000

/* Reaps our child @pid, waiting at most EXIT_WAIT_MS for it to exit (then
 * SIGKILL and fail): a daemon bug must fail the test, not hang it. */
static int wait_exit(pid_t pid)
{
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0), status = 0;
    struct pollfd p = { .fd = pidfd, .events = POLLIN };
    int exited = pidfd >= 0 && poll(&p, 1, EXIT_WAIT_MS) == 1;

    if (pidfd >= 0)
        close(pidfd);
    if (!exited)
        kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!exited)
        fail_msg("pid %d did not exit within %d ms", (int)pid, EXIT_WAIT_MS);
    return status;
}

static void hv_stop(struct hv *h)
{
    if (h->pid > 0) {
        kill(h->pid, SIGTERM);
        wait_exit(h->pid);
    }
    h->pid = 0;
    rm_socket_dir(h->dir, h->sock);
}

static int fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    assert_non_null(d);
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own fd */
}

/* pvabi_open("local:PATH"). */
static int open_at(pvabi_ctx **ctx, const char *sock)
{
    char spec[256];

    snprintf(spec, sizeof(spec), "local:%s", sock);
    return pvabi_open(ctx, spec);
}

/* The pid of whoever listens on @sock (SO_PEERCRED), or -1. */
static pid_t listener_pid(const char *sock)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct ucred cred;
    socklen_t len = sizeof(cred);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    pid_t pid = -1;

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
        pid = cred.pid;
    close(fd);
    return pid;
}

/* Stops a process that is not our child and waits for its end (pidfd). */
static void stop_foreign(pid_t pid)
{
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    struct pollfd p = { .fd = pidfd, .events = POLLIN };

    assert_true(pidfd >= 0);
    assert_int_equal(kill(pid, SIGTERM), 0);
    if (poll(&p, 1, EXIT_WAIT_MS) != 1) {
        kill(pid, SIGKILL);
        fail_msg("pid %d did not exit within %d ms of SIGTERM", (int)pid, EXIT_WAIT_MS);
    }
    close(pidfd);
}

static void wait_readable(pvabi_ctx *ctx)
{
    struct pollfd p = { .fd = pvabi_fd(ctx), .events = POLLIN };
    assert_int_equal(poll(&p, 1, EXIT_WAIT_MS), 1); /* 0 here: the wake-up never came */
}

static int readable_now(pvabi_ctx *ctx)
{
    struct pollfd p = { .fd = pvabi_fd(ctx), .events = POLLIN };
    return poll(&p, 1, 0);
}

/* A loopback channel in one context: *a offered to ourselves, *b bound to it. */
static void loopback(pvabi_ctx *ctx, pvabi_port *a, pvabi_port *b)
{
    assert_int_equal(pvabi_evtchn_alloc(ctx, pvabi_own_domid(ctx), a), 0);
    assert_int_equal(pvabi_evtchn_bind(ctx, pvabi_own_domid(ctx), *a, b), 0);
}

static int setup(void **state)
{
    (void)state;
    unsetenv("PVABI_LOCAL_SOCKET");
    unsetenv("PVABI_LOCAL_AUTOSTART");
    unsetenv("PVABI_LOCAL_DOMID");
    unsetenv("PVABI_PLATFORM");
    logbuf[0] = '\0';
    pvabi_log_set(NULL, log_capture, NULL, PVABI_LOG_DEBUG);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (getenv("PVABI_TEST_SHOW_LOG")) /* to read what the library said */
        fputs(logbuf, stderr);
    pvabi_log_set(NULL, NULL, NULL, 0);
    return 0;
}

/* ---- socket paths --------------------------------------------------------- */

static void test_local_socket_from_env(void **state)
{
    struct hv h;
    pvabi_ctx *ctx;

    (void)state;
    hv_start(&h, NULL);
    setenv("PVABI_LOCAL_SOCKET", h.sock, 1);
    setenv("PVABI_LOCAL_AUTOSTART", "0", 1);
    assert_int_equal(pvabi_open(&ctx, "local"), 0);
    assert_string_equal(pvabi_platform(ctx), "local");
    assert_true(pvabi_own_domid(ctx) > 0); /* unprivileged unless asked */
    pvabi_close(ctx);
    /* PVABI_PLATFORM=local with a NULL spec gets there too */
    setenv("PVABI_PLATFORM", "local", 1);
    assert_int_equal(pvabi_open(&ctx, NULL), 0);
    pvabi_close(ctx);
    hv_stop(&h);
}

static void test_local_socket_from_spec_wins_over_env(void **state)
{
    struct hv h;
    pvabi_ctx *ctx;

    (void)state;
    hv_start(&h, NULL);
    setenv("PVABI_LOCAL_SOCKET", "/nonexistent/pvabi/hv.sock", 1);
    setenv("PVABI_LOCAL_AUTOSTART", "0", 1);
    assert_int_equal(open_at(&ctx, h.sock), 0);
    pvabi_close(ctx);
    hv_stop(&h);
}

static void test_local_socket_path_too_long_refused(void **state)
{
    char path[200];
    pvabi_ctx *ctx = (pvabi_ctx *)1;

    (void)state;
    memset(path, 'x', sizeof(path) - 1);
    path[0] = '/';
    path[sizeof(path) - 1] = '\0';
    assert_int_equal(open_at(&ctx, path), -ENAMETOOLONG);
    assert_null(ctx);
    assert_non_null(strstr(logbuf, "longer than a unix socket address"));
}

/* ---- autostart -------------------------------------------------------------- */

static void test_local_autostart_off_enoent_names_socket(void **state)
{
    char dir[64], sock[128];
    pvabi_ctx *ctx;

    (void)state;
    make_dir(dir, sizeof(dir));
    snprintf(sock, sizeof(sock), "%s/hv.sock", dir);
    setenv("PVABI_LOCAL_SOCKET", sock, 1);
    setenv("PVABI_LOCAL_AUTOSTART", "0", 1);
    assert_int_equal(pvabi_open(&ctx, "local"), -ENOENT);
    assert_non_null(strstr(logbuf, sock));
    assert_non_null(strstr(logbuf, "PVABI_LOCAL_AUTOSTART=0"));
    rm_socket_dir(dir, sock);
}

static void test_local_autostart_missing_binary_names_what_was_tried(void **state)
{
    char dir[64], sock[128], *hv = strdup(getenv("PVABI_HV"));
    pvabi_ctx *ctx;

    (void)state;
    make_dir(dir, sizeof(dir));
    snprintf(sock, sizeof(sock), "%s/hv.sock", dir);
    setenv("PVABI_HV", "/nonexistent/pvabi-hv", 1);
    assert_int_equal(open_at(&ctx, sock), -ENOENT);
    setenv("PVABI_HV", hv, 1);
    free(hv);
    assert_non_null(strstr(logbuf, sock));
    assert_non_null(strstr(logbuf, "/nonexistent/pvabi-hv"));
    rm_socket_dir(dir, sock);
}

static void test_local_autostart_failing_daemon_reported(void **state)
{
    char dir[64], sock[128], *hv = strdup(getenv("PVABI_HV"));
    pvabi_ctx *ctx;

    (void)state;
    make_dir(dir, sizeof(dir));
    snprintf(sock, sizeof(sock), "%s/hv.sock", dir);
    /* exits 1 at once: the ready pipe reaches EOF without its byte */
    setenv("PVABI_HV", "/bin/false", 1);
    assert_int_equal(open_at(&ctx, sock), -ENOENT);
    setenv("PVABI_HV", hv, 1);
    free(hv);
    assert_non_null(strstr(logbuf, "/bin/false"));
    assert_non_null(strstr(logbuf, "exited with status 1"));
    rm_socket_dir(dir, sock);
}

/* The first open starts a detached daemon; the second finds it running. */
static void test_local_autostart_starts_daemon_once(void **state)
{
    char dir[64], sub[96], sock[128];
    pvabi_ctx *a, *b;
    pid_t pid;

    (void)state;
    make_dir(dir, sizeof(dir));
    snprintf(sub, sizeof(sub), "%s/sub", dir); /* absent: made on the way */
    snprintf(sock, sizeof(sock), "%s/hv.sock", sub);
    setenv("PVABI_LOCAL_SOCKET", sock, 1);
    assert_int_equal(pvabi_open(&a, "local"), 0);
    pid = listener_pid(sock);
    assert_true(pid > 0);
    /* detached: not our child, so nothing of it is left for us to reap */
    assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);
    assert_int_equal(pvabi_open(&b, "local"), 0);
    assert_int_equal(listener_pid(sock), pid);
    assert_int_not_equal(pvabi_own_domid(a), pvabi_own_domid(b));
    pvabi_close(a);
    pvabi_close(b);
    stop_foreign(pid); /* else it exits after 30 s without domains */
    rm_socket_dir(sub, sock);
    rmdir(dir);
}

/* ---- domids ------------------------------------------------------------------ */

static void test_local_domid0_claim_then_second_claim_refused(void **state)
{
    struct hv h;
    pvabi_ctx *priv, *other;

    (void)state;
    hv_start(&h, NULL); /* allows our uid: its own */
    setenv("PVABI_LOCAL_DOMID", "0", 1);
    assert_int_equal(open_at(&priv, h.sock), 0);
    assert_int_equal(pvabi_own_domid(priv), 0);
    assert_int_equal(open_at(&other, h.sock), -EADDRINUSE);
    assert_null(other);
    assert_non_null(strstr(logbuf, "domain 0 is held by another"));
    setenv("PVABI_LOCAL_DOMID", "zero", 1);
    assert_int_equal(open_at(&other, h.sock), -EINVAL);
    assert_non_null(strstr(logbuf, "PVABI_LOCAL_DOMID=\"zero\""));
    pvabi_close(priv);
    hv_stop(&h);
}

/* ---- the daemon's death and misbehaviour --------------------------------- */

static void test_local_daemon_killed_ops_enotconn_ports_closed(void **state)
{
    struct hv h;
    pvabi_ctx *ctx;
    pvabi_port a, b, got[8];
    pvabi_grant *g, *g2;
    pvabi_map *m;
    pvabi_gref ref;
    uint8_t buf[16];
    struct pvabi_grant_copy_seg seg = { .local = buf, .len = sizeof(buf) };
    int status;

    (void)state;
    hv_start(&h, NULL);
    assert_int_equal(open_at(&ctx, h.sock), 0);
    loopback(ctx, &a, &b);
    assert_int_equal(pvabi_grant_share(ctx, pvabi_own_domid(ctx), 1, 0, &g), 0);
    ref = pvabi_grant_ref(g, 0);
    assert_int_equal(pvabi_grant_map(ctx, pvabi_own_domid(ctx), &ref, 1, 0, NULL, &m), 0);

    kill(h.pid, SIGKILL);
    assert_int_equal(waitpid(h.pid, &status, 0), h.pid);
    h.pid = 0;

    /* The death wakes the context fd; both ends are reported once, closed. */
    wait_readable(ctx);
    assert_int_equal(pvabi_evtchn_pending(ctx, got, 8), 2);
    assert_true((got[0] == a && got[1] == b) || (got[0] == b && got[1] == a));
    assert_int_equal(pvabi_evtchn_state(ctx, a), PVABI_EVTCHN_CLOSED);
    assert_int_equal(pvabi_evtchn_pending(ctx, got, 8), -ENOTCONN);
    assert_int_equal(pvabi_evtchn_notify(ctx, b), -ENOTCONN);
    assert_int_equal(pvabi_evtchn_alloc(ctx, 0, &a), -ENOTCONN);
    assert_int_equal(pvabi_grant_share(ctx, 0, 1, 0, &g2), -ENOTCONN);
    assert_int_equal(pvabi_grant_notify(g, 0, 0, 0), -ENOTCONN);
    seg.ref = ref;
    seg.domid = pvabi_own_domid(ctx);
    assert_int_equal(pvabi_grant_copy(ctx, &seg, 1), -ENOTCONN);
    assert_int_equal(seg.status, -ENOTCONN);
    assert_int_equal(pvabi_grant_unmap(m), -ENOTCONN);  /* unmapped all the same */
    assert_int_equal(pvabi_grant_revoke(g), -ENOTCONN); /* freed all the same */
    assert_int_equal(pvabi_evtchn_unbind(ctx, a), 0);
    pvabi_close(ctx);
    hv_stop(&h);
}

/* A pretend daemon: answers HELLO with @hello_fds extra fds attached, then
 * answers the next request with a reply whose length field lies. */
static void fake_daemon(int lsock, unsigned hello_fds)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * 2)];
    } ctl;
    struct {
        struct hv_hdr h;
        struct hv_hello_rsp r;
    } msg = { { 0 }, { 0 } };
    struct iovec iov = { &msg, sizeof(msg) };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    int c = accept(lsock, NULL, NULL), fds[2] = { 0, 1 };

    if (c < 0 || recv(c, &msg, sizeof(msg), 0) <= 0)
        _exit(1);
    msg.h.flags = HV_F_REPLY;
    msg.h.len = sizeof(msg.r);
    msg.h.nfds = hello_fds;
    msg.r = (struct hv_hello_rsp){ .version = HV_PROTO_VERSION, .domid = 7 };
    if (hello_fds) {
        mh.msg_control = ctl.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * hello_fds);
        CMSG_FIRSTHDR(&mh)->cmsg_level = SOL_SOCKET;
        CMSG_FIRSTHDR(&mh)->cmsg_type = SCM_RIGHTS;
        CMSG_FIRSTHDR(&mh)->cmsg_len = CMSG_LEN(sizeof(int) * hello_fds);
        memcpy(CMSG_DATA(CMSG_FIRSTHDR(&mh)), fds, sizeof(int) * hello_fds);
    }
    if (sendmsg(c, &mh, 0) < 0)
        _exit(1);
    if (recv(c, &msg, sizeof(msg), 0) > 0) {
        msg.h.flags = HV_F_REPLY;
        msg.h.len = 1000; /* the packet has 0 payload bytes */
        send(c, &msg.h, sizeof(msg.h), 0);
    }
    while (recv(c, &msg, sizeof(msg), 0) > 0) /* until the client hangs up */
        ;
    _exit(0);
}

/* Listens on a fresh socket and forks fake_daemon() behind it. */
static pid_t fake_start(char *dir, size_t dsize, char *sock, size_t ssize, unsigned hello_fds)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int l = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    pid_t pid;

    make_dir(dir, dsize);
    snprintf(sock, ssize, "%s/hv.sock", dir);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
    assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(l, 1), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        fake_daemon(l, hello_fds);
    close(l);
    return pid;
}

static void test_local_broken_daemon_reply_ends_connection(void **state)
{
    char dir[64], sock[128];
    int before = fd_count();
    pvabi_port port;
    pvabi_ctx *ctx;
    pid_t pid;

    (void)state;
    /* HELLO's reply with fds attached: refused, and the fds not kept */
    pid = fake_start(dir, sizeof(dir), sock, sizeof(sock), 2);
    assert_int_equal(open_at(&ctx, sock), -EPROTO);
    wait_exit(pid);
    assert_int_equal(fd_count(), before);
    rm_socket_dir(dir, sock);

    /* a reply whose length lies: -EPROTO, then the connection is over */
    pid = fake_start(dir, sizeof(dir), sock, sizeof(sock), 0);
    assert_int_equal(open_at(&ctx, sock), 0);
    assert_int_equal(pvabi_own_domid(ctx), 7);
    assert_int_equal(pvabi_evtchn_alloc(ctx, 0, &port), -EPROTO);
    assert_non_null(strstr(logbuf, "broke the protocol"));
    assert_int_equal(pvabi_evtchn_alloc(ctx, 0, &port), -ENOTCONN);
    assert_int_equal(pvabi_evtchn_pending(ctx, &port, 1), -ENOTCONN);
    pvabi_close(ctx);
    wait_exit(pid);
    assert_int_equal(fd_count(), before);
    rm_socket_dir(dir, sock);
}

/* ---- event delivery details of this client ------------------------------ */

/* Events beyond what the caller collects stay queued, and the fd readable. */
static void test_local_pending_keeps_events_beyond_max(void **state)
{
    enum { N = 8 };
    pvabi_port a[N], b[N], got;
    unsigned seen = 0;
    struct hv h;
    pvabi_ctx *ctx;

    (void)state;
    hv_start(&h, NULL);
    assert_int_equal(open_at(&ctx, h.sock), 0);
    for (int i = 0; i < N; i++)
        loopback(ctx, &a[i], &b[i]);
    assert_int_equal(readable_now(ctx), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(pvabi_evtchn_notify(ctx, b[i]), 0);
    for (int i = 0; i < N; i++) {
        wait_readable(ctx);
        assert_int_equal(pvabi_evtchn_pending(ctx, &got, 1), 1);
        for (int j = 0; j < N; j++)
            if (got == a[j])
                seen |= 1u << j;
    }
    assert_int_equal(seen, (1u << N) - 1);
    assert_int_equal(pvabi_evtchn_pending(ctx, &got, 1), 0);
    assert_int_equal(readable_now(ctx), 0);
    pvabi_close(ctx);
    hv_stop(&h);
}

/* A thread that notifies a port until told to stop. */
struct notifier {
    pvabi_ctx *ctx;
    pvabi_port port;
    int efd;         /* written once notify has said -ENOTCONN */
    atomic_int stop; /* set by the main thread */
    int bad;         /* a result other than 0 or -ENOTCONN */
};

static void *notifier_run(void *arg)
{
    struct notifier *n = arg;
    uint64_t one = 1;
    int told = 0;

    while (!atomic_load(&n->stop)) {
        int rc = pvabi_evtchn_notify(n->ctx, n->port);
        if (rc == -ENOTCONN && !told)
            told = write(n->efd, &one, sizeof(one)) == sizeof(one);
        else if (rc != 0 && rc != -ENOTCONN)
            n->bad = rc;
    }
    return NULL;
}

/* Notify from another thread while the port gets bound: the lock-free path,
 * and the path that looks for the PORT_CONNECTED notice under the lock. */
static void test_local_notify_from_thread_while_port_gets_bound(void **state)
{
    struct notifier n = { .efd = eventfd(0, EFD_CLOEXEC) };
    pvabi_port b, got[4];
    pthread_t thread;
    uint64_t v;
    struct hv h;
    int seen;

    (void)state;
    hv_start(&h, NULL);
    assert_int_equal(open_at(&n.ctx, h.sock), 0);
    for (int round = 0; round < 20; round++) {
        assert_int_equal(pvabi_evtchn_alloc(n.ctx, pvabi_own_domid(n.ctx), &n.port), 0);
        atomic_store(&n.stop, 0);
        assert_int_equal(pthread_create(&thread, NULL, notifier_run, &n), 0);
        assert_int_equal(read(n.efd, &v, sizeof(v)), sizeof(v)); /* it saw "unbound" */
        assert_int_equal(pvabi_evtchn_bind(n.ctx, pvabi_own_domid(n.ctx), n.port, &b), 0);
        for (seen = 0; !seen;) {
            wait_readable(n.ctx);
            int k = pvabi_evtchn_pending(n.ctx, got, 4);
            for (int i = 0; i < k; i++)
                seen |= got[i] == b;
        }
        atomic_store(&n.stop, 1);
        assert_int_equal(pthread_join(thread, NULL), 0);
        assert_int_equal(n.bad, 0);
        assert_int_equal(pvabi_evtchn_unbind(n.ctx, b), 0);
        assert_int_equal(pvabi_evtchn_unbind(n.ctx, n.port), 0);
    }
    pvabi_close(n.ctx);
    close(n.efd);
    hv_stop(&h);
}

/* ---- pvabi_evtchn_wait() --------------------------------------------- */

/* A thread sleeping in pvabi_evtchn_wait() on @ctx. */
struct waiter {
    pvabi_ctx *ctx;
    atomic_int tid;  /* the waiter's thread id, once it runs */
    atomic_int done; /* set once the wait returned */
    int rc;
    pvabi_port got[4];
};

static void *waiter_run(void *arg)
{
    struct waiter *w = arg;

    atomic_store(&w->tid, (int)syscall(SYS_gettid));
    w->rc = pvabi_evtchn_wait(w->ctx, w->got, 4, 30000);
    atomic_store(&w->done, 1);
    return NULL;
}

/* 1 while thread @tid is in an epoll_wait system call (/proc shows it),
 * or when /proc cannot tell (the test is then weaker, not wrong). */
static int in_epoll_wait(pid_t tid)
{
    char path[64], buf[64] = "";
    int fd;
    long nr;

    snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 1;
    if (read(fd, buf, sizeof(buf) - 1) < 0)
        buf[0] = '\0';
    close(fd);
    if (buf[0] < '0' || buf[0] > '9')
        return 0; /* "running" */
    nr = strtol(buf, NULL, 10);
#ifdef SYS_epoll_wait
    if (nr == SYS_epoll_wait)
        return 1;
#endif
#ifdef SYS_epoll_pwait2
    if (nr == SYS_epoll_pwait2)
        return 1;
#endif
    return nr == SYS_epoll_pwait;
}

/* A wait sleeps without the context lock: while it sleeps, another thread
 * binds, asks states, shares a page and notifies; that notify ends the
 * wait.  Were the lock held, the bind would block until the wait timed out
 * and the wait would return 0. */
static void test_local_wait_sleeps_without_the_lock(void **state)
{
    struct waiter w = { 0 };
    pvabi_port a, b;
    pvabi_grant *g;
    pthread_t thread;
    struct hv h;

    (void)state;
    hv_start(&h, NULL);
    assert_int_equal(open_at(&w.ctx, h.sock), 0);
    assert_int_equal(pthread_create(&thread, NULL, waiter_run, &w), 0);
    /* Until the waiter sleeps (or has returned, which fails below). */
    while (!atomic_load(&w.done) && !(atomic_load(&w.tid) && in_epoll_wait(atomic_load(&w.tid))))
        sched_yield();
    loopback(w.ctx, &a, &b);
    assert_int_equal(pvabi_evtchn_state(w.ctx, a), PVABI_EVTCHN_INTERDOMAIN);
    assert_int_equal(pvabi_grant_share(w.ctx, pvabi_own_domid(w.ctx), 1, 0, &g), 0);
    assert_int_equal(pvabi_evtchn_notify(w.ctx, b), 0);
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_int_equal(w.rc, 1);
    assert_int_equal(w.got[0], a);
    assert_int_equal(pvabi_grant_revoke(g), 0);
    pvabi_close(w.ctx);
    hv_stop(&h);
}

/* Waiters in two threads, events for many ports: each reported once. */
struct multi {
    pvabi_ctx *ctx;
    atomic_int reported[64]; /* by port */
    atomic_int total;
    int n, bad;
};

static void *multi_run(void *arg)
{
    struct multi *m = arg;
    pvabi_port got[4];

    while (atomic_load(&m->total) < m->n) {
        /* The timeout only lets the loop see the total reached. */
        int k = pvabi_evtchn_wait(m->ctx, got, 4, 100);
        if (k < 0)
            m->bad = k;
        for (int i = 0; i < k; i++) {
            atomic_fetch_add(&m->reported[got[i] % 64], 1);
            atomic_fetch_add(&m->total, 1);
        }
    }
    return NULL;
}

static void test_local_wait_in_two_threads_reports_each_event_once(void **state)
{
    enum { N = 16 };
    struct multi m = { .n = N };
    pvabi_port a[N], b[N];
    pthread_t t[2];
    struct hv h;

    (void)state;
    hv_start(&h, NULL);
    assert_int_equal(open_at(&m.ctx, h.sock), 0);
    for (int i = 0; i < N; i++)
        loopback(m.ctx, &a[i], &b[i]);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, multi_run, &m), 0);
    for (int i = 0; i < N; i++)
        assert_int_equal(pvabi_evtchn_notify(m.ctx, b[i]), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_int_equal(m.bad, 0);
    assert_int_equal(atomic_load(&m.total), N);
    for (int i = 0; i < N; i++)
        assert_int_equal(atomic_load(&m.reported[a[i] % 64]), 1);
    pvabi_close(m.ctx);
    hv_stop(&h);
}

/* Events beyond @max stay queued: the next waits return them at once. */
static void test_local_wait_returns_events_left_beyond_max(void **state)
{
    enum { N = 8 };
    pvabi_port a[N], b[N], got;
    unsigned seen = 0;
    struct hv h;
    pvabi_ctx *ctx;

    (void)state;
    hv_start(&h, NULL);
    assert_int_equal(open_at(&ctx, h.sock), 0);
    for (int i = 0; i < N; i++)
        loopback(ctx, &a[i], &b[i]);
    for (int i = 0; i < N; i++)
        assert_int_equal(pvabi_evtchn_notify(ctx, b[i]), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(pvabi_evtchn_wait(ctx, &got, 1, 30000), 1);
        for (int j = 0; j < N; j++)
            if (got == a[j])
                seen |= 1u << j;
    }
    assert_int_equal(seen, (1u << N) - 1);
    assert_int_equal(pvabi_evtchn_wait(ctx, &got, 1, 0), 0);
    assert_int_equal(readable_now(ctx), 0);
    pvabi_close(ctx);
    hv_stop(&h);
}

/* The daemon dies during a wait: both ends are reported closed, then the
 * next wait fails at once with -ENOTCONN. */
static void test_local_wait_daemon_killed_closed_then_enotconn(void **state)
{
    pvabi_port a, b, got[4];
    struct hv h;
    pvabi_ctx *ctx;
    int n = 0, status;

    (void)state;
    hv_start(&h, NULL);
    assert_int_equal(open_at(&ctx, h.sock), 0);
    loopback(ctx, &a, &b);
    kill(h.pid, SIGKILL);
    assert_int_equal(waitpid(h.pid, &status, 0), h.pid);
    h.pid = 0;
    while (n < 2) {
        int k = pvabi_evtchn_wait(ctx, got + n, 4 - (unsigned)n, 30000);
        assert_true(k > 0);
        n += k;
    }
    assert_true((got[0] == a && got[1] == b) || (got[0] == b && got[1] == a));
    assert_int_equal(pvabi_evtchn_state(ctx, a), PVABI_EVTCHN_CLOSED);
    assert_int_equal(pvabi_evtchn_wait(ctx, got, 4, 30000), -ENOTCONN);
    pvabi_close(ctx);
    hv_stop(&h);
}

/* As Xen's gntdev: a read-only mapping cannot clear a byte on unmap. */
static void test_local_map_notify_byte_on_ro_mapping_einval(void **state)
{
    struct hv h;
    pvabi_ctx *ctx;
    pvabi_grant *g;
    pvabi_map *m;
    pvabi_gref ref;
    pvabi_port a, b;

    (void)state;
    hv_start(&h, NULL);
    assert_int_equal(open_at(&ctx, h.sock), 0);
    loopback(ctx, &a, &b);
    assert_int_equal(pvabi_grant_share(ctx, pvabi_own_domid(ctx), 1, PVABI_GRANT_RO, &g), 0);
    ref = pvabi_grant_ref(g, 0);
    assert_int_equal(pvabi_grant_map(ctx, pvabi_own_domid(ctx), &ref, 1, PVABI_GRANT_RO, NULL, &m),
                     0);
    assert_int_equal(pvabi_map_notify(m, 0, 0, 0), -EINVAL);
    assert_int_equal(pvabi_map_notify(m, 0, PVABI_PAGE_SIZE, b), 0);
    assert_int_equal(pvabi_grant_unmap(m), 0);
    assert_int_equal(pvabi_grant_revoke(g), 0);
    pvabi_close(ctx);
    hv_stop(&h);
}

/* ---- fds ---------------------------------------------------------------------- */

/* One round of everything between two contexts; leaves a share and a
 * mapping (and a share the peer still maps) for pvabi_close() to release. */
static void one_cycle(const char *sock)
{
    pvabi_ctx *fe, *be;
    pvabi_port pf, pb, got;
    pvabi_grant *g, *kept;
    pvabi_map *m, *left;
    pvabi_gref refs[4];
    uint8_t buf[8] = "copy me";
    struct pvabi_grant_copy_seg seg = { .local = buf, .len = sizeof(buf), .to_foreign = 1 };

    assert_int_equal(open_at(&fe, sock), 0);
    assert_int_equal(open_at(&be, sock), 0);
    assert_int_equal(pvabi_evtchn_alloc(fe, pvabi_own_domid(be), &pf), 0);
    assert_int_equal(pvabi_evtchn_bind(be, pvabi_own_domid(fe), pf, &pb), 0);
    assert_int_equal(pvabi_evtchn_notify(be, pb), 0);
    wait_readable(fe);
    assert_int_equal(pvabi_evtchn_pending(fe, &got, 1), 1);
    assert_int_equal(pvabi_grant_share(fe, pvabi_own_domid(be), 4, 0, &g), 0);
    for (unsigned i = 0; i < 4; i++)
        refs[i] = pvabi_grant_ref(g, i);
    assert_int_equal(pvabi_grant_map(be, pvabi_own_domid(fe), refs, 4, 0, NULL, &m), 0);
    seg.ref = refs[1];
    seg.domid = pvabi_own_domid(fe);
    assert_int_equal(pvabi_grant_copy(be, &seg, 1), 0);
    assert_memory_equal((uint8_t *)pvabi_grant_addr(g) + PVABI_PAGE_SIZE, buf, sizeof(buf));
    assert_int_equal(pvabi_grant_unmap(m), 0);
    assert_int_equal(pvabi_grant_revoke(g), 0);
    /* left behind on purpose */
    assert_int_equal(pvabi_grant_share(fe, pvabi_own_domid(be), 2, 0, &kept), 0);
    refs[0] = pvabi_grant_ref(kept, 0);
    assert_int_equal(pvabi_grant_map(be, pvabi_own_domid(fe), refs, 1, PVABI_GRANT_RO, NULL, &left),
                     0);
    pvabi_close(fe); /* its share is still mapped by be */
    pvabi_close(be);
}

static void test_local_fd_count_restored_after_cycles(void **state)
{
    struct hv h;
    int before;

    (void)state;
    hv_start(&h, NULL);
    before = fd_count();
    for (int i = 0; i < 5; i++) {
        one_cycle(h.sock);
        assert_int_equal(fd_count(), before);
    }
    hv_stop(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_local_socket_from_env),
        T(test_local_socket_from_spec_wins_over_env),
        T(test_local_socket_path_too_long_refused),
        T(test_local_autostart_off_enoent_names_socket),
        T(test_local_autostart_missing_binary_names_what_was_tried),
        T(test_local_autostart_failing_daemon_reported),
        T(test_local_autostart_starts_daemon_once),
        T(test_local_domid0_claim_then_second_claim_refused),
        T(test_local_daemon_killed_ops_enotconn_ports_closed),
        T(test_local_broken_daemon_reply_ends_connection),
        T(test_local_pending_keeps_events_beyond_max),
        T(test_local_notify_from_thread_while_port_gets_bound),
        T(test_local_wait_sleeps_without_the_lock),
        T(test_local_wait_in_two_threads_reports_each_event_once),
        T(test_local_wait_returns_events_left_beyond_max),
        T(test_local_wait_daemon_killed_closed_then_enotconn),
        T(test_local_map_notify_byte_on_ro_mapping_einval),
        T(test_local_fd_count_restored_after_cycles),
#undef T
    };

    if (!getenv("PVABI_HV") || access(getenv("PVABI_HV"), X_OK) != 0) {
        printf("SKIP: PVABI_HV does not name the pvabi-hv binary\n");
        return 77;
    }
    /* SIGPIPE stays at its default: a dead daemon must never raise it. */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
