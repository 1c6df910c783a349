/* SPDX-License-Identifier: MIT */
/*
 * The coordinator's side of the integration harness: the private daemon,
 * forking agents, and waiting for them with deadlines (see harness.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include "harness.h"

static it_fail_fn *fail_hook;

void it_set_fail_hook(it_fail_fn *fn)
{
    fail_hook = fn;
}

void it_fail_at(const char *file, int line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (fail_hook)
        fail_hook(file, line, msg);
    fprintf(stderr, "%s:%d: %s\n", file, line, msg);
    exit(1);
}

uint64_t it_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int it_pin_cpu(int cpu)
{
    cpu_set_t set;

    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof(set), &set) == 0 ? 0 : -errno;
}

int it_is_xen(void)
{
    const char *p = getenv("PVABI_TEST_PLATFORM");
    return p && strcmp(p, "xen") == 0;
}

const char *it_platform(void)
{
    return it_is_xen() ? "xen" : "local";
}

void it_require_platform(const char *prog)
{
    pvabi_ctx *ctx;
    int rc;

    if (!it_is_xen())
        return;
    /* The coordinator opens Xen once only to learn whether it is here; on
     * Xen this does not make it a new domain, unlike on local. */
    rc = pvabi_open(&ctx, "xen");
    if (rc == -ENOENT || rc == -ENOTSUP) {
        printf("SKIP: %s: PVABI_TEST_PLATFORM=xen but %s\n", prog,
               rc == -ENOENT ? "no Xen here (/dev/xen/privcmd does not open)"
                             : "libpvabi was built without the xen platform");
        exit(77);
    }
    if (rc < 0) {
        fprintf(stderr, "%s: pvabi_open(\"xen\"): %s\n", prog, strerror(-rc));
        exit(1);
    }
    pvabi_close(ctx);
}

/* ---- waiting ------------------------------------------------------------- */

int it_wait_readable(int fd, int pidfd, int timeout_ms)
{
    struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = pidfd, .events = POLLIN } };
    uint64_t end = it_now_ns() + (uint64_t)timeout_ms * 1000000u;

    for (;;) {
        uint64_t now = it_now_ns();
        int left = now >= end ? 0 : (int)((end - now) / 1000000u) + 1;
        int n = poll(p, pidfd >= 0 ? 2 : 1, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            it_fail("poll: %s", strerror(errno));
        if (n == 0)
            return 0;
        if (p[0].revents)
            return 1;
        return 2;
    }
}

int it_reap(pid_t pid, int pidfd, const char *what)
{
    int st;

    if (it_wait_readable(pidfd, -1, IT_TIMEOUT_MS) == 0)
        it_fail("%s (pid %d) did not exit within %d ms", what, (int)pid, IT_TIMEOUT_MS);
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR)
            it_fail("waitpid(%s): %s", what, strerror(errno));
    }
    return st;
}

void it_describe_status(int st, char *buf, size_t len)
{
    if (WIFEXITED(st))
        snprintf(buf, len, "exit %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, len, "signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else
        snprintf(buf, len, "status %#x", st);
}

/* ---- the daemon ------------------------------------------------------------ */

static long count_dir(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    long n = 0;

    if (!d)
        return -1;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

long it_self_fd_count(void)
{
    /* opendir's own descriptor is in the listing: leave it out. */
    return count_dir("/proc/self/fd") - 1;
}

long it_daemon_fd_count(const struct it_daemon *d)
{
    char path[64];

    if (d->pid <= 0)
        return -1;
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)d->pid);
    return count_dir(path);
}

long it_daemon_rss_kib(const struct it_daemon *d)
{
    char path[64], line[256];
    long kib = -1;
    FILE *f;

    if (d->pid <= 0)
        return -1;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)d->pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* In the forked child: become the daemon. */
static __attribute__((noreturn)) void exec_daemon(const char *hv, const char *sock, int ready)
{
    char fdarg[16];

    snprintf(fdarg, sizeof(fdarg), "%d", ready);
    execl(hv, hv, "--socket", sock, "--ready-fd", fdarg, (char *)NULL);
    fprintf(stderr, "exec %s: %s\n", hv, strerror(errno));
    _exit(127);
}

/* Waits for the daemon's ready byte; fails if it dies or stays silent. */
static void await_ready(struct it_daemon *d, int rfd)
{
    char b;
    int r = it_wait_readable(rfd, d->pidfd, IT_TIMEOUT_MS);

    if (r == 0)
        it_fail("pvabi-hv did not report ready within %d ms", IT_TIMEOUT_MS);
    if (r == 1 && read(rfd, &b, 1) == 1)
        return;
    /* EOF without a byte, or death: show how it ended. */
    char how[64];
    it_describe_status(it_reap(d->pid, d->pidfd, "pvabi-hv"), how, sizeof(how));
    d->pid = 0;
    it_fail("pvabi-hv exited before it was ready: %s", how);
}

int it_daemon_start(struct it_daemon *d)
{
    const char *hv = getenv("PVABI_HV");
    int p[2];

    memset(d, 0, sizeof(*d));
    d->pidfd = -1;
    if (it_is_xen())
        return 0;
    if (!hv || !*hv)
        it_fail("PVABI_HV is not set: the path of the pvabi-hv daemon to test against");
    snprintf(d->dir, sizeof(d->dir), "/tmp/pvabi-it-XXXXXX");
    if (!mkdtemp(d->dir))
        it_fail("mkdtemp: %s", strerror(errno));
    snprintf(d->sock, sizeof(d->sock), "%s/hv.sock", d->dir);
    if (pipe2(p, O_CLOEXEC) < 0)
        it_fail("pipe: %s", strerror(errno));
    fflush(NULL);
    d->pid = fork();
    if (d->pid < 0)
        it_fail("fork: %s", strerror(errno));
    if (d->pid == 0) {
        int w = fcntl(p[1], F_DUPFD, 3); /* a copy without O_CLOEXEC */
        /* A coordinator that crashes must not leave its daemon behind. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        exec_daemon(hv, d->sock, w);
    }
    close(p[1]);
    d->pidfd = pidfd_open(d->pid, 0);
    if (d->pidfd < 0)
        it_fail("pidfd_open: %s", strerror(errno));
    await_ready(d, p[0]);
    close(p[0]);
    /* Agents forked from now on find this daemon and only this one. */
    setenv("PVABI_LOCAL_SOCKET", d->sock, 1);
    setenv("PVABI_LOCAL_AUTOSTART", "0", 1);
    return 0;
}

static void remove_dir(struct it_daemon *d)
{
    if (!d->dir[0])
        return;
    char lock[sizeof(d->sock) + 8];

    /* The daemon may have removed the socket already; it leaves its lock
     * file on purpose (taking a lock is what makes a start race-free). */
    unlink(d->sock);
    snprintf(lock, sizeof(lock), "%s.lock", d->sock);
    unlink(lock);
    if (rmdir(d->dir) < 0)
        fprintf(stderr, "harness: rmdir %s: %s\n", d->dir, strerror(errno));
    d->dir[0] = '\0';
}

void it_daemon_stop(struct it_daemon *d)
{
    char how[64];
    int st;

    if (d->pid <= 0) {
        remove_dir(d);
        return;
    }
    /* Died during the test?  That is a daemon crash, whatever the test said. */
    if (it_wait_readable(d->pidfd, -1, 0) == 1) {
        it_describe_status(it_reap(d->pid, d->pidfd, "pvabi-hv"), how, sizeof(how));
        d->pid = 0;
        close(d->pidfd);
        remove_dir(d);
        it_fail("pvabi-hv died during the test: %s", how);
    }
    pidfd_send_signal(d->pidfd, SIGTERM, NULL, 0);
    st = it_reap(d->pid, d->pidfd, "pvabi-hv");
    d->pid = 0;
    close(d->pidfd);
    remove_dir(d);
    unsetenv("PVABI_LOCAL_SOCKET");
    if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0) && !(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM)) {
        it_describe_status(st, how, sizeof(how));
        it_fail("pvabi-hv did not stop cleanly on SIGTERM: %s", how);
    }
}

static struct it_daemon current_daemon;
static void live_kill_all(void);

struct it_daemon *it_current_daemon(void)
{
    return &current_daemon;
}

int it_setup(void **state)
{
    int rc;

    *state = &current_daemon;
    rc = it_daemon_start(&current_daemon);
    if (rc < 0)
        return rc;
    /* After the daemon: a spawned agent server must inherit its socket. */
    it_remote_setup();
    return 0;
}

int it_teardown(void **state)
{
    char why[256];
    int remote_failed;

    (void)state;
    live_kill_all();
    /* Agents first (a remote one dies with its server's handler), the
     * daemon last, even when the server did not stop cleanly. */
    remote_failed = it_remote_teardown(why, sizeof(why)) < 0;
    it_daemon_stop(&current_daemon);
    if (remote_failed)
        it_fail("%s", why);
    return 0;
}

/* ---- agents ------------------------------------------------------------------ */

/* Every agent not yet released, by value: a failed test leaves the test
 * function by longjmp, and teardown must still find and kill its agents. */
#define IT_MAX_AGENTS 64
static struct live {
    pid_t pid;
    int pidfd, sock;
} live[IT_MAX_AGENTS];

static void live_add(const struct it_agent *a)
{
    for (unsigned i = 0; i < IT_MAX_AGENTS; i++) {
        if (live[i].pid == 0) {
            live[i] = (struct live){ a->pid, a->pidfd, a->sock };
            return;
        }
    }
    it_fail("more than %d agents at once", IT_MAX_AGENTS);
}

static void live_del(pid_t pid)
{
    for (unsigned i = 0; i < IT_MAX_AGENTS; i++)
        if (live[i].pid == pid)
            live[i].pid = 0;
}

/* In a new agent: drop the other agents' channels, so that an agent's death
 * or the coordinator's closing a channel is seen at once by the other end. */
static void live_close_inherited(void)
{
    for (unsigned i = 0; i < IT_MAX_AGENTS; i++) {
        if (live[i].pid) {
            close(live[i].sock);
            close(live[i].pidfd);
            live[i].pid = 0;
        }
    }
    if (current_daemon.pid > 0)
        close(current_daemon.pidfd);
    it_remote_close_inherited();
}

/* Kills and reaps whatever a failed test left running. */
static void live_kill_all(void)
{
    for (unsigned i = 0; i < IT_MAX_AGENTS; i++) {
        if (live[i].pid == 0)
            continue;
        pidfd_send_signal(live[i].pidfd, SIGKILL, NULL, 0);
        waitpid(live[i].pid, NULL, 0);
        close(live[i].sock);
        close(live[i].pidfd);
        live[i].pid = 0;
    }
}

/* In the agent's child, before it opens its context: the domid it claims. */
static void claim_domid(int want_domid)
{
    char v[16];

    if (want_domid < 0 || it_is_xen())
        return;
    snprintf(v, sizeof(v), "%d", want_domid);
    setenv("PVABI_LOCAL_DOMID", v, 1);
}

static void agent_start(struct it_agent *a, const char *name, int want_domid)
{
    struct it_msg m;
    int sv[2];

    memset(a, 0, sizeof(*a));
    snprintf(a->name, sizeof(a->name), "%s", name);
    a->sock = a->pidfd = -1;
    const char *remote = it_remote_addr_for(a->name);
    a->remote = remote != NULL;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        it_fail("socketpair: %s", strerror(errno));
    fflush(NULL); /* or the child would print our buffered output again */
    a->pid = fork();
    if (a->pid < 0)
        it_fail("fork: %s", strerror(errno));
    if (a->pid == 0) {
        close(sv[0]);
        live_close_inherited();
        /* An agent must not outlive a coordinator that crashed. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (remote)
            it_remote_proxy_main(sv[1], a->name, remote);
        claim_domid(want_domid);
        it_agent_main(sv[1], a->name);
    }
    close(sv[1]);
    a->sock = sv[0];
    a->pidfd = pidfd_open(a->pid, 0);
    if (a->pidfd < 0)
        it_fail("pidfd_open: %s", strerror(errno));
    live_add(a);
    memset(&m, 0, sizeof(m));
    if (it_agent_reply(a, &m, 0) < 0)
        it_fail("agent %s: pvabi_open(\"%s\") = %s", a->name, it_platform(), strerror(-m.status));
    a->domid = (pvabi_domid)m.a[0];
    if (want_domid >= 0 && a->domid != (pvabi_domid)want_domid)
        it_fail("agent %s: is domain %u, not %d as it should be", a->name, a->domid, want_domid);
}

void it_agent_start(struct it_agent *a, const char *name)
{
    agent_start(a, name, -1);
}

void it_agent_start_as(struct it_agent *a, const char *name, pvabi_domid domid)
{
    /* A remote agent is in the server's domain: on Xen, a domU that stays
     * when the agent dies, so a new agent there is that domain again. */
    if (it_remote_addr_for(name) && !it_is_xen())
        it_fail("agent %s: a remote agent on the local platform cannot claim a domid", name);
    agent_start(a, name, domid);
}

void it_agent_send(struct it_agent *a, const struct it_msg *m)
{
    if (a->reaped)
        it_fail("agent %s: command %u to an agent already dead", a->name, m->op);
    if (send(a->sock, m, sizeof(*m), MSG_NOSIGNAL) != (ssize_t)sizeof(*m))
        it_fail("agent %s: send command %u: %s", a->name, m->op, strerror(errno));
}

/* Reaps @a after its socket closed; returns the wait status. */
static int agent_reap(struct it_agent *a)
{
    if (!a->reaped) {
        a->wstatus = it_reap(a->pid, a->pidfd, a->name);
        a->reaped = 1;
    }
    return a->wstatus;
}

/* Receives one message; returns 1, or 0 when the agent went away. */
static int agent_recv(struct it_agent *a, struct it_msg *m)
{
    ssize_t n;

    if (it_wait_readable(a->sock, -1, IT_TIMEOUT_MS) == 0)
        it_fail("agent %s: no answer within %d ms", a->name, IT_TIMEOUT_MS);
    n = recv(a->sock, m, sizeof(*m), 0);
    if (n == 0 || (n < 0 && errno == ECONNRESET))
        return 0;
    if (n != (ssize_t)sizeof(*m))
        it_fail("agent %s: short message (%zd bytes): %s", a->name, n, strerror(errno));
    return 1;
}

int it_agent_reply(struct it_agent *a, struct it_msg *m, int want_progress)
{
    for (;;) {
        if (!agent_recv(a, m)) {
            char how[64];
            it_describe_status(agent_reap(a), how, sizeof(how));
            it_fail("agent %s died unexpectedly: %s", a->name, how);
        }
        if (m->op == IT_OP_FAILED)
            it_fail("agent %s: %s", a->name, m->text);
        if (m->op != IT_OP_PROGRESS || want_progress)
            return m->status;
    }
}

int it_agent_call(struct it_agent *a, struct it_msg *m)
{
    uint32_t op = m->op;

    it_agent_send(a, m);
    it_agent_reply(a, m, 0);
    if (m->op != op)
        it_fail("agent %s: answer %u to command %u", a->name, m->op, op);
    return m->status;
}

int it_agent_call_dies(struct it_agent *a, struct it_msg *m)
{
    it_agent_send(a, m);
    if (agent_recv(a, m))
        it_fail("agent %s: survived command %u (status %d), expected to die", a->name, m->op,
                m->status);
    return agent_reap(a);
}

/* Asks a remote agent's proxy to have the agent killed and reaped, then
 * to end as it did; 0 when the request went out. */
static int remote_kill_request(struct it_agent *a)
{
    struct it_msg m;

    memset(&m, 0, sizeof(m));
    m.op = IT_OP_KILL;
    /* Never block: a proxy that does not read is killed instead. */
    if (send(a->sock, &m, sizeof(m), MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)sizeof(m))
        return -1;
    return 0;
}

int it_agent_kill(struct it_agent *a)
{
    if (a->reaped)
        return a->wstatus;
    /* Killing the proxy itself would leave the remote agent to die some
     * time later: tests look at what the peer sees after a kill. */
    if (a->remote && remote_kill_request(a) == 0)
        return agent_reap(a);
    if (pidfd_send_signal(a->pidfd, SIGKILL, NULL, 0) < 0 && errno != ESRCH)
        it_fail("kill agent %s: %s", a->name, strerror(errno));
    return agent_reap(a);
}

void it_agent_stop(struct it_agent *a, int close_ctx)
{
    struct it_msg m = { .op = IT_OP_EXIT, .a = { close_ctx } };
    char how[64];
    int st;

    it_agent_send(a, &m);
    st = agent_reap(a);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        it_describe_status(st, how, sizeof(how));
        it_fail("agent %s: did not exit cleanly: %s", a->name, how);
    }
    it_agent_release(a);
}

void it_agent_release(struct it_agent *a)
{
    if (a->pid > 0 && !a->reaped)
        it_agent_kill(a);
    live_del(a->pid);
    if (a->sock >= 0)
        close(a->sock);
    if (a->pidfd >= 0)
        close(a->pidfd);
    a->sock = a->pidfd = -1;
    a->pid = 0;
}
