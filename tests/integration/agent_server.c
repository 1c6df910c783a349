/* SPDX-License-Identifier: MIT */
/*
 * it_agent_server: runs integration-test agents for a coordinator on another
 * machine or domain (see remote.c), e.g. in a Xen PV domU for a coordinator
 * in dom0.  A test binary, not installed.
 *
 *   it_agent_server --listen ADDR:PORT [--ready-fd N]
 *
 * Listens on an IPv4 address (port 0: any free one), prints
 * "it-agent-server listening on ADDR:PORT" and, with --ready-fd, writes the
 * port as a decimal line to fd N and closes it.  Each connection gets a
 * handler process (it_remote_serve()), which runs one agent with this
 * process's environment (PVABI_TEST_PLATFORM, PVABI_LOCAL_SOCKET, ...).
 *
 * SIGTERM (or SIGINT) stops it: every handler kills and reaps its agent,
 * and the server exits 0, or 1 if a handler ever ended abnormally (a crash,
 * a sanitizer report), so that whoever stops it learns about that.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define PROG         "it-agent-server"
#define MAX_HANDLERS 256

struct options {
    const char *listen;
    int ready_fd;
};

/* Live connection handlers, by pid (0: a free entry). */
static pid_t handlers[MAX_HANDLERS];
static int handler_failed;
static pid_t server_pid;

static int parse_options(int argc, char **argv, struct options *o)
{
    o->listen = NULL;
    o->ready_fd = -1;
    for (int i = 1; i < argc; i++) {
        char *end;
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
            o->listen = argv[++i];
        } else if (strcmp(argv[i], "--ready-fd") == 0 && i + 1 < argc) {
            long fd = strtol(argv[++i], &end, 10);
            if (*end || fd < 0 || fd > 65535)
                return -1;
            o->ready_fd = (int)fd;
        } else {
            return -1;
        }
    }
    return o->listen ? 0 : -1;
}

/* SIGTERM, SIGINT and SIGCHLD arrive through a signalfd, in the accept
 * loop: blocked from here on (the handlers unblock them). */
static int signals_fd(void)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

static int listen_on(const char *spec, struct sockaddr_in *bound)
{
    socklen_t len = sizeof(*bound);
    struct sockaddr_in sa;
    int fd, one = 1;

    if (it_tcp_parse(spec, &sa) < 0) {
        fprintf(stderr, PROG ": --listen %s: not an IPv4 ADDR:PORT\n", spec);
        return -1;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0 ||
        getsockname(fd, (struct sockaddr *)bound, &len) < 0) {
        fprintf(stderr, PROG ": listen on %s: %s\n", spec, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static void report_ready(const struct sockaddr_in *bound, int ready_fd)
{
    char ip[INET_ADDRSTRLEN];
    unsigned port = ntohs(bound->sin_port);

    inet_ntop(AF_INET, &bound->sin_addr, ip, sizeof(ip));
    printf(PROG " listening on %s:%u\n", ip, port);
    fflush(stdout);
    if (ready_fd >= 0) {
        dprintf(ready_fd, "%u\n", port);
        close(ready_fd);
    }
}

static void handler_ended(pid_t pid, int st)
{
    char how[64];

    for (unsigned i = 0; i < MAX_HANDLERS; i++)
        if (handlers[i] == pid)
            handlers[i] = 0;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return;
    it_describe_status(st, how, sizeof(how));
    fprintf(stderr, PROG ": connection handler %d ended with %s\n", (int)pid, how);
    handler_failed = 1;
}

static void reap_handlers(void)
{
    pid_t pid;
    int st;

    while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
        handler_ended(pid, st);
}

/* Reads what the signalfd holds; returns 1 when the server must stop. */
static int read_signals(int sfd)
{
    struct signalfd_siginfo si;
    int stop = 0;

    while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGCHLD)
            reap_handlers(); /* one SIGCHLD may stand for several */
        else
            stop = 1;
    }
    return stop;
}

static int free_handler_slot(void)
{
    for (int i = 0; i < MAX_HANDLERS; i++)
        if (handlers[i] == 0)
            return i;
    return -1;
}

/* In the forked handler: only the connection is ours. */
static __attribute__((noreturn)) void run_handler(int conn, int lfd, int sfd)
{
    close(lfd);
    close(sfd);
    /* A server that dies takes its handlers, and so their agents, along. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != server_pid)
        _exit(0);
    exit(it_remote_serve(conn));
}

static void accept_one(int lfd, int sfd)
{
    int conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC), slot;
    pid_t pid;

    if (conn < 0) {
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
            fprintf(stderr, PROG ": accept: %s\n", strerror(errno));
        return;
    }
    slot = free_handler_slot();
    if (slot < 0) {
        fprintf(stderr, PROG ": %d connections already: refusing one\n", MAX_HANDLERS);
        close(conn);
        return;
    }
    fflush(NULL);
    pid = fork();
    if (pid == 0)
        run_handler(conn, lfd, sfd);
    close(conn);
    if (pid < 0)
        fprintf(stderr, PROG ": fork: %s\n", strerror(errno));
    else
        handlers[slot] = pid;
}

/* SIGTERM each handler (it kills and reaps its agent, then exits 0) and
 * reaps them all. */
static int stop_handlers(void)
{
    for (unsigned i = 0; i < MAX_HANDLERS; i++)
        if (handlers[i] > 0)
            kill(handlers[i], SIGTERM);
    for (unsigned i = 0; i < MAX_HANDLERS; i++) {
        pid_t pid = handlers[i];
        int st;
        if (pid <= 0)
            continue;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        handler_ended(pid, st);
    }
    return handler_failed ? 1 : 0;
}

static int serve(int lfd, int sfd)
{
    struct pollfd p[2] = { { .fd = lfd, .events = POLLIN }, { .fd = sfd, .events = POLLIN } };

    for (;;) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, PROG ": poll: %s\n", strerror(errno));
            stop_handlers();
            return 1;
        }
        if (p[1].revents && read_signals(sfd))
            return stop_handlers();
        if (p[0].revents)
            accept_one(lfd, sfd);
    }
}

int main(int argc, char **argv)
{
    struct sockaddr_in bound;
    struct options o;
    int lfd, sfd, rc;

    if (parse_options(argc, argv, &o) < 0) {
        fprintf(stderr, "usage: %s --listen ADDR:PORT [--ready-fd N]\n", argv[0]);
        return 2;
    }
    server_pid = getpid();
    /* Before reporting ready: a SIGTERM right after must find it handled. */
    sfd = signals_fd();
    if (sfd < 0) {
        fprintf(stderr, PROG ": signalfd: %s\n", strerror(errno));
        return 1;
    }
    lfd = listen_on(o.listen, &bound);
    if (lfd < 0)
        return 1;
    report_ready(&bound, o.ready_fd);
    rc = serve(lfd, sfd);
    close(lfd);
    close(sfd);
    return rc;
}
