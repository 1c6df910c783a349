/* SPDX-License-Identifier: MIT */
/*
 * Two domains for stream tests: forked children, each with its own context
 * (its own domain on the local platform), joined to each other by a
 * socketpair (to exchange domids and say "ready" / "done") and each to the
 * coordinator by another (so the coordinator can kill a side at a known
 * point).  Nothing sleeps to wait for another process: every wait is a
 * poll() with a deadline on a socket or a pidfd.
 *
 * A side function returns 0 for success; CHK() prints the failed condition
 * and returns 1 from it.
 */
#ifndef PVABI_TEST_STREAM_SIDES_H
#define PVABI_TEST_STREAM_SIDES_H

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pvabi/pvabi.h>

#include "harness.h"

#define CHK(c)                                                                                     \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "[pid %d] %s:%d: CHK(%s) failed\n", (int)getpid(), __FILE__, __LINE__, \
                    #c);                                                                           \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

/* What a side knows: its context, the other side's domid, its sockets. */
struct side_env {
    pvabi_ctx *ctx;
    pvabi_domid self, other;
    int peer;  /* socket to the other side */
    int coord; /* socket to the coordinator */
    const void *arg;
};

typedef int side_fn(struct side_env *env);

struct side {
    pid_t pid;
    int pidfd;
    int coord; /* coordinator's end */
};

/* Sends one value; returns 0 or -errno. */
static inline int side_send(int sock, int64_t v)
{
    return send(sock, &v, sizeof(v), MSG_NOSIGNAL) == (ssize_t)sizeof(v) ? 0 : -errno;
}

/* Waits up to @timeout_ms for one value; -ETIMEDOUT, -EPIPE (closed). */
static inline int side_recv(int sock, int64_t *v, int timeout_ms)
{
    struct pollfd p = { .fd = sock, .events = POLLIN };
    int rc = poll(&p, 1, timeout_ms);

    if (rc == 0)
        return -ETIMEDOUT;
    if (rc < 0)
        return -errno;
    rc = (int)recv(sock, v, sizeof(*v), 0);
    return rc == (int)sizeof(*v) ? 0 : rc == 0 ? -EPIPE : -EIO;
}

/* Receives a value and checks it is @want. */
static inline int side_expect(int sock, int64_t want)
{
    int64_t v = -1;

    return side_recv(sock, &v, IT_TIMEOUT_MS) == 0 && v == want ? 0 : -EPROTO;
}

static inline uint64_t side_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

__attribute__((noreturn)) static inline void side_child(side_fn *fn, const void *arg, int peer,
                                                        int coord)
{
    struct side_env env = { .peer = peer, .coord = coord, .arg = arg };
    int64_t other;
    int rc;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    rc = pvabi_open(&env.ctx, it_platform());
    if (rc < 0) {
        fprintf(stderr, "side: pvabi_open: %s\n", strerror(-rc));
        _exit(2);
    }
    env.self = pvabi_own_domid(env.ctx);
    if (side_send(peer, env.self) < 0 || side_recv(peer, &other, IT_TIMEOUT_MS) < 0) {
        fprintf(stderr, "side: no domid from the other side\n");
        _exit(2);
    }
    env.other = (pvabi_domid)other;
    rc = fn(&env);
    pvabi_close(env.ctx);
    _exit(rc == 0 ? 0 : 1);
}

/* Starts both sides; each runs its function in its own domain. */
static inline void sides_start(struct side *a, side_fn *fa, struct side *b, side_fn *fb,
                               const void *arg)
{
    int pp[2], ca[2], cb[2];
    struct side *s[2] = { a, b };
    side_fn *f[2] = { fa, fb };

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pp) < 0 ||
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ca) < 0 ||
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, cb) < 0)
        it_fail("socketpair: %s", strerror(errno));
    for (int k = 0; k < 2; k++) {
        int *c = k == 0 ? ca : cb;
        pid_t pid = fork();
        if (pid < 0)
            it_fail("fork: %s", strerror(errno));
        if (pid == 0) {
            close(pp[1 - k]);
            close(c[0]);
            side_child(f[k], arg, pp[k], c[1]);
        }
        s[k]->pid = pid;
        s[k]->pidfd = (int)pidfd_open(pid, 0);
        s[k]->coord = c[0];
        close(c[1]);
        if (s[k]->pidfd < 0)
            it_fail("pidfd_open: %s", strerror(errno));
    }
    close(pp[0]);
    close(pp[1]);
}

/* Waits for a side to exit; returns its wait status. */
static inline int side_end(struct side *s, const char *what)
{
    int st = it_reap(s->pid, s->pidfd, what);

    close(s->pidfd);
    close(s->coord);
    return st;
}

/* Kills a side (SIGKILL) and reaps it. */
static inline void side_kill(struct side *s)
{
    kill(s->pid, SIGKILL);
    (void)side_end(s, "killed side");
}

/* Whether a wait status is a clean exit 0. */
static inline int side_ok(int st)
{
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* The byte @i of stream @seed (never 0: a zeroed ring shows). */
static inline uint8_t side_pattern(unsigned seed, uint64_t i)
{
    return it_pattern(seed, (size_t)i);
}

#endif
