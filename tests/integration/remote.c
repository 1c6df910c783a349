/* SPDX-License-Identifier: MIT */
/*
 * Remote agents: integration-test agents that run on another machine or
 * domain than the coordinator, e.g. in a Xen PV domU while the coordinator
 * runs in dom0, with the test bodies unchanged.
 *
 * Configuration (coordinator's environment):
 *   PVABI_TEST_REMOTE=ADDR:PORT     an it_agent_server listening there (IPv4)
 *   PVABI_TEST_REMOTE=spawn         it_setup() starts a private server on
 *                                   127.0.0.1 ($PVABI_IT_AGENT_SERVER), after
 *                                   the private daemon, so its agents use it:
 *                                   the whole path, testable on any Linux box
 *   PVABI_TEST_REMOTE_AGENTS=a,b    the agent names that run remotely; the
 *                                   others run here as before
 * A remote agent's context is opened with the server's environment
 * (PVABI_TEST_PLATFORM, PVABI_LOCAL_SOCKET, ...), and its HELLO carries the
 * domid it got there.
 *
 * The pieces:
 *  - the proxy: it_agent_start() still forks a child per agent, with the
 *    same pid, pidfd and socketpair; for a remote agent that child connects
 *    to the server, sends START (the name) and relays struct it_msg both ways
 *    as MSG frames.  It ends as the remote agent ended (EXITED carries the
 *    wait status: it exits with the same code or raises the same signal), so
 *    the coordinator reaping the proxy sees what the agent did.  IT_OP_KILL
 *    from the coordinator (it_agent_kill) is not forwarded: the proxy sends
 *    KILL and waits for EXITED, so the agent is dead and reaped by the time
 *    it_agent_kill() returns, as a local agent would be.
 *  - the server (agent_server.c) forks a handler per connection, which runs
 *    it_remote_serve() here: it reads START, forks the agent
 *    (it_agent_main() on a socketpair) and relays the same way.  The agent's
 *    socket at EOF: reap it, send EXITED, close.  KILL: SIGKILL, then the
 *    same.  The peer gone or a malformed frame: SIGKILL, reap, close.
 *  - the frames (harness.h): a 12-byte header {magic, kind, len},
 *    big-endian, then len bytes; every length is checked against the kind
 *    before anything is read into a buffer.
 *
 * Both relays are non-blocking in both directions with bounded buffers: a
 * side that does not read (a coordinator ignoring an agent's progress
 * messages) holds back only its own direction, as a full socket would, and
 * never keeps a KILL from getting through the other one.
 *
 * Not supported remotely: IT_OP_EFD_PINGPONG (its eventfds are inherited
 * from the coordinator).  Both ends must be the same build: messages travel
 * as raw struct it_msg.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define HDR         sizeof(struct it_frame_hdr)
#define FRAME_MAX   (HDR + sizeof(struct it_msg))
#define CONTROL_MAX (HDR + sizeof(int32_t)) /* KILL or EXITED */
#define NO_DEADLINE UINT64_MAX
/* How a proxy ends when it cannot mirror the agent (no server, bad frames). */
#define PROXY_FAILED 125

/* ---- deadlines and whole-buffer I/O ---------------------------------------- */

static uint64_t deadline_in(int timeout_ms)
{
    return timeout_ms < 0 ? NO_DEADLINE : it_now_ns() + (uint64_t)timeout_ms * 1000000u;
}

static int ms_until(uint64_t end)
{
    uint64_t now = it_now_ns();

    if (end == NO_DEADLINE)
        return -1;
    return now >= end ? 0 : (int)((end - now) / 1000000u) + 1;
}

/* Waits for @events on @fd until @end: 1, 0 on timeout, or -errno. */
static int poll_until(int fd, short events, uint64_t end)
{
    struct pollfd p = { .fd = fd, .events = events };

    for (;;) {
        int n = poll(&p, 1, ms_until(end));
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return -errno;
    }
}

/* Sends all @len bytes by @end: 0 or -errno. */
static int send_all(int fd, const void *buf, size_t len, uint64_t end)
{
    const uint8_t *p = buf;

    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return -errno;
        int r = poll_until(fd, POLLOUT, end);
        if (r <= 0)
            return r == 0 ? -ETIMEDOUT : r;
    }
    return 0;
}

/* Receives @len bytes by @end: how many arrived (fewer only at EOF), or
 * -errno. */
static ssize_t recv_all(int fd, void *buf, size_t len, uint64_t end)
{
    uint8_t *p = buf;
    size_t got = 0;

    while (got < len) {
        ssize_t n = recv(fd, p + got, len - got, MSG_DONTWAIT);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        if (n == 0)
            break;
        if (errno != EAGAIN && errno != EINTR)
            return -errno;
        int r = poll_until(fd, POLLIN, end);
        if (r <= 0)
            return r == 0 ? -ETIMEDOUT : r;
    }
    return (ssize_t)got;
}

/* ---- frames ------------------------------------------------------------------ */

static void hdr_encode(void *wire, uint32_t kind, uint32_t len)
{
    struct it_frame_hdr h = { htonl(IT_FRAME_MAGIC), htonl(kind), htonl(len) };

    memcpy(wire, &h, sizeof(h));
}

static struct it_frame_hdr hdr_decode(const void *wire)
{
    struct it_frame_hdr h;

    memcpy(&h, wire, sizeof(h));
    h.magic = ntohl(h.magic);
    h.kind = ntohl(h.kind);
    h.len = ntohl(h.len);
    return h;
}

int it_frame_check(const struct it_frame_hdr *h, const char **why)
{
    uint32_t min, max;

    if (h->magic != IT_FRAME_MAGIC) {
        *why = "bad magic";
        return -EPROTO;
    }
    switch (h->kind) {
    case IT_FRAME_START:
        min = 1, max = IT_NAME_MAX;
        break;
    case IT_FRAME_MSG:
        min = max = sizeof(struct it_msg);
        break;
    case IT_FRAME_KILL:
        min = max = 0;
        break;
    case IT_FRAME_EXITED:
        min = max = sizeof(int32_t);
        break;
    default:
        *why = "unknown frame kind";
        return -EPROTO;
    }
    if (h->len < min || h->len > max) {
        *why = "wrong length for the frame's kind";
        return -EPROTO;
    }
    return 0;
}

int it_frame_send(int fd, uint32_t kind, const void *payload, uint32_t len, int timeout_ms)
{
    uint8_t buf[FRAME_MAX];

    if (len > sizeof(buf) - HDR)
        return -EMSGSIZE;
    hdr_encode(buf, kind, len);
    if (len)
        memcpy(buf + HDR, payload, len);
    return send_all(fd, buf, HDR + len, deadline_in(timeout_ms));
}

/* it_frame_recv(), saying why a header was refused. */
static int frame_recv(int fd, struct it_frame_hdr *h, void *payload, uint32_t cap, int timeout_ms,
                      const char **why)
{
    uint64_t end = deadline_in(timeout_ms);
    uint8_t wire[HDR];
    ssize_t n = recv_all(fd, wire, HDR, end);

    *why = "";
    if (n <= 0)
        return (int)n;
    if (n < (ssize_t)HDR) {
        *why = "connection closed in the middle of a header";
        return -ECONNABORTED;
    }
    *h = hdr_decode(wire);
    if (it_frame_check(h, why) < 0)
        return -EPROTO;
    if (h->len > cap) {
        *why = "frame longer than expected here";
        return -EMSGSIZE;
    }
    n = recv_all(fd, payload, h->len, end);
    if (n < 0)
        return (int)n;
    if (n < (ssize_t)h->len) {
        *why = "connection closed in the middle of a frame";
        return -ECONNABORTED;
    }
    return 1;
}

int it_frame_recv(int fd, struct it_frame_hdr *h, void *payload, uint32_t cap, int timeout_ms)
{
    const char *why;

    return frame_recv(fd, h, payload, cap, timeout_ms, &why);
}

/* ---- TCP ------------------------------------------------------------------------ */

int it_tcp_parse(const char *addr, struct sockaddr_in *sa)
{
    const char *colon = strrchr(addr, ':');
    char host[INET_ADDRSTRLEN], *end;
    unsigned long port;

    if (!colon || (size_t)(colon - addr) >= sizeof(host) || colon[1] < '0' || colon[1] > '9')
        return -EINVAL;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    errno = 0;
    port = strtoul(colon + 1, &end, 10);
    if (errno || *end || port > 65535)
        return -EINVAL;
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -EINVAL;
}

static void set_nodelay(int fd)
{
    int one = 1;

    /* Every frame is a request or a reply somebody waits for. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Connects the non-blocking @fd by @end: 0 or -errno. */
static int connect_by(int fd, const struct sockaddr_in *sa, uint64_t end)
{
    socklen_t len = sizeof(int);
    int err = 0, r;

    if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0)
        return 0;
    if (errno != EINPROGRESS && errno != EINTR)
        return -errno;
    r = poll_until(fd, POLLOUT, end);
    if (r <= 0)
        return r == 0 ? -ETIMEDOUT : r;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return -errno;
    return -err;
}

int it_tcp_connect(const char *addr, int timeout_ms)
{
    struct sockaddr_in sa;
    int fd, rc = it_tcp_parse(addr, &sa);

    if (rc < 0)
        return rc;
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    rc = connect_by(fd, &sa, deadline_in(timeout_ms));
    /* Blocking again for callers that use it plainly; the relay's own I/O
     * is MSG_DONTWAIT. */
    if (rc == 0 && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
        rc = -errno;
    if (rc < 0) {
        close(fd);
        return rc;
    }
    set_nodelay(fd);
    return fd;
}

/* ---- the relay: struct it_msg on a socketpair <-> frames on TCP --------------- */

#define RELAY_QUEUE 16
#define RELAY_OUT   (16 * FRAME_MAX)

struct relay {
    int local;          /* SOCK_SEQPACKET of struct it_msg */
    int tcp;            /* frames */
    int local_eof;      /* no more reading from local */
    int local_deaf;     /* no more delivering to local: frames for it are dropped */
    int intercept_kill; /* IT_OP_KILL from local is an event, not a message */
    int finishing;      /* return RELAY_FLUSHED once everything is sent */
    uint32_t accept;    /* the non-MSG frame kinds the peer may send, a bit each */
    /* MSG frames from TCP that local has not taken yet */
    struct it_msg queue[RELAY_QUEUE];
    unsigned qhead, qlen;
    /* frames for TCP, not yet sent, from out + outoff */
    uint8_t out[RELAY_OUT];
    size_t outoff, outlen;
    /* the frame being received; cur is its header once complete */
    uint8_t in[FRAME_MAX];
    size_t inlen;
    struct it_frame_hdr cur;
    /* the last non-MSG frame (RELAY_FRAME); the longest is a START */
    struct it_frame_hdr frame;
    uint8_t payload[IT_NAME_MAX];
    char error[160];
};

enum relay_event {
    RELAY_NONE,
    RELAY_LOCAL_EOF,  /* local closed; all it sent is framed */
    RELAY_LOCAL_KILL, /* local sent IT_OP_KILL */
    RELAY_FRAME,      /* a non-MSG frame: r->frame, r->payload */
    RELAY_PEER_EOF,   /* the TCP peer closed or reset */
    RELAY_FLUSHED,    /* finishing, and everything is sent */
    RELAY_BROKEN,     /* a malformed frame or an I/O error: r->error */
};

static void relay_init(struct relay *r, int local, int tcp, uint32_t accept, int intercept_kill)
{
    memset(r, 0, sizeof(*r));
    r->local = local;
    r->tcp = tcp;
    r->accept = accept;
    r->intercept_kill = intercept_kill;
}

static __attribute__((format(printf, 2, 3))) int broken(struct relay *r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(r->error, sizeof(r->error), fmt, ap);
    va_end(ap);
    return RELAY_BROKEN;
}

/* Stops both directions on the local side: what it sent is framed already,
 * what comes for it from now on is dropped. */
static void relay_stop_local(struct relay *r)
{
    r->local_eof = r->local_deaf = 1;
    r->qlen = 0;
}

/* Appends a frame for TCP.  Local is read only while a whole MSG frame and
 * a control frame fit, so the one KILL or EXITED a side appends always
 * does. */
static int out_frame(struct relay *r, uint32_t kind, const void *payload, uint32_t len)
{
    if (r->outlen + HDR + len > RELAY_OUT)
        return broken(r, "relay buffer full");
    if (r->outoff) {
        memmove(r->out, r->out + r->outoff, r->outlen);
        r->outoff = 0;
    }
    hdr_encode(r->out + r->outlen, kind, len);
    if (len)
        memcpy(r->out + r->outlen + HDR, payload, len);
    r->outlen += HDR + len;
    return RELAY_NONE;
}

static void relay_poll_set(const struct relay *r, struct pollfd p[2])
{
    short lev = 0, tev = 0;

    if (!r->local_eof && RELAY_OUT - r->outlen >= FRAME_MAX + CONTROL_MAX)
        lev |= POLLIN;
    if (!r->local_deaf && r->qlen > 0)
        lev |= POLLOUT;
    if (r->qlen < RELAY_QUEUE)
        tev |= POLLIN;
    if (r->outlen > 0)
        tev |= POLLOUT;
    /* An fd with nothing asked of it is left out, or its POLLHUP would spin. */
    p[0] = (struct pollfd){ .fd = lev ? r->local : -1, .events = lev };
    p[1] = (struct pollfd){ .fd = tev ? r->tcp : -1, .events = tev };
}

static int tcp_write(struct relay *r)
{
    ssize_t n = send(r->tcp, r->out + r->outoff, r->outlen, MSG_NOSIGNAL | MSG_DONTWAIT);

    if (n > 0) {
        r->outoff += (size_t)n;
        r->outlen -= (size_t)n;
        if (r->outlen == 0)
            r->outoff = 0;
        return RELAY_NONE;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return RELAY_NONE;
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
        return RELAY_PEER_EOF;
    return broken(r, "send on TCP: %s", strerror(errno));
}

static int local_write(struct relay *r)
{
    ssize_t n =
        send(r->local, &r->queue[r->qhead], sizeof(struct it_msg), MSG_NOSIGNAL | MSG_DONTWAIT);

    if (n == (ssize_t)sizeof(struct it_msg)) {
        r->qhead = (r->qhead + 1) % RELAY_QUEUE;
        r->qlen--;
        return RELAY_NONE;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return RELAY_NONE;
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
        /* Gone; its last messages may still be queued for us to read, and
         * its EOF follows them. */
        r->local_deaf = 1;
        r->qlen = 0;
        return RELAY_NONE;
    }
    return broken(r, "send on the socketpair: %s", n < 0 ? strerror(errno) : "short send");
}

static int local_read(struct relay *r)
{
    union {
        struct it_msg m;
        char longer[sizeof(struct it_msg) + 1]; /* shows an oversized message */
    } u;
    ssize_t n = recv(r->local, &u, sizeof(u), MSG_DONTWAIT);

    if (n == (ssize_t)sizeof(u.m)) {
        if (r->intercept_kill && u.m.op == IT_OP_KILL)
            return RELAY_LOCAL_KILL;
        return out_frame(r, IT_FRAME_MSG, &u.m, sizeof(u.m));
    }
    if (n == 0 || (n < 0 && errno == ECONNRESET)) {
        r->local_eof = 1;
        return RELAY_LOCAL_EOF;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return RELAY_NONE;
    if (n < 0)
        return broken(r, "receive on the socketpair: %s", strerror(errno));
    return broken(r, "a %zd-byte message on the socketpair, not %zu", n, sizeof(u.m));
}

/* A whole frame is in r->in. */
static int frame_done(struct relay *r)
{
    r->inlen = 0;
    if (r->cur.kind != IT_FRAME_MSG) {
        r->frame = r->cur;
        memcpy(r->payload, r->in + HDR, r->cur.len);
        return RELAY_FRAME;
    }
    if (!r->local_deaf) {
        memcpy(&r->queue[(r->qhead + r->qlen) % RELAY_QUEUE], r->in + HDR, sizeof(struct it_msg));
        r->qlen++;
    }
    return RELAY_NONE;
}

/* The header is complete: check it before reading its payload. */
static int header_done(struct relay *r)
{
    const char *why;

    r->cur = hdr_decode(r->in);
    if (it_frame_check(&r->cur, &why) < 0)
        return broken(r, "%s (magic %#x, kind %u, length %u)", why, r->cur.magic, r->cur.kind,
                      r->cur.len);
    if (r->cur.kind != IT_FRAME_MSG && !(r->accept & (1u << r->cur.kind)))
        return broken(r, "unexpected frame of kind %u here", r->cur.kind);
    return RELAY_NONE;
}

static int tcp_read(struct relay *r)
{
    size_t want = r->inlen < HDR ? HDR : HDR + r->cur.len;
    ssize_t n = recv(r->tcp, r->in + r->inlen, want - r->inlen, MSG_DONTWAIT);
    int ev;

    if (n == 0 || (n < 0 && errno == ECONNRESET)) {
        if (r->inlen)
            snprintf(r->error, sizeof(r->error), "closed in the middle of a frame");
        return RELAY_PEER_EOF;
    }
    if (n < 0)
        return errno == EAGAIN || errno == EINTR ? RELAY_NONE
                                                 : broken(r, "receive on TCP: %s", strerror(errno));
    r->inlen += (size_t)n;
    if (r->inlen == HDR && (ev = header_done(r)) != RELAY_NONE)
        return ev;
    if (r->inlen >= HDR && r->inlen == HDR + r->cur.len)
        return frame_done(r);
    return RELAY_NONE;
}

static int relay_step(struct relay *r, const struct pollfd p[2])
{
    const short out = POLLOUT | POLLERR | POLLHUP, in = POLLIN | POLLERR | POLLHUP;
    short lrev = p[0].fd >= 0 ? p[0].revents : 0, trev = p[1].fd >= 0 ? p[1].revents : 0;
    int ev = RELAY_NONE;

    if ((trev & out) && (p[1].events & POLLOUT))
        ev = tcp_write(r);
    if (ev == RELAY_NONE && (lrev & out) && (p[0].events & POLLOUT))
        ev = local_write(r);
    if (ev == RELAY_NONE && (lrev & in) && (p[0].events & POLLIN))
        ev = local_read(r);
    if (ev == RELAY_NONE && (trev & in) && (p[1].events & POLLIN))
        ev = tcp_read(r);
    return ev;
}

/* Relays until something needs the caller.  No deadline: an agent may run
 * a command for as long as the coordinator lets it. */
static int relay_run(struct relay *r)
{
    struct pollfd p[2];

    for (;;) {
        if (r->finishing && r->outlen == 0)
            return RELAY_FLUSHED;
        relay_poll_set(r, p);
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return broken(r, "poll: %s", strerror(errno));
        }
        int ev = relay_step(r, p);
        if (ev != RELAY_NONE)
            return ev;
    }
}

/* ---- the proxy (a child of the coordinator) ---------------------------------- */

static __attribute__((noreturn, format(printf, 3, 4))) void proxy_fail(int sock, const char *name,
                                                                       const char *fmt, ...)
{
    struct it_msg m;
    va_list ap;

    memset(&m, 0, sizeof(m));
    m.op = IT_OP_FAILED;
    m.status = -EPROTO;
    va_start(ap, fmt);
    vsnprintf(m.text, sizeof(m.text), fmt, ap);
    va_end(ap);
    fprintf(stderr, "agent %s (remote proxy): %s\n", name, m.text);
    /* The coordinator, if it is waiting for a reply, fails with this text. */
    send(sock, &m, sizeof(m), MSG_NOSIGNAL | MSG_DONTWAIT);
    _exit(PROXY_FAILED);
}

/* Ends this process as the remote agent ended. */
static __attribute__((noreturn)) void mimic(int st)
{
    if (WIFSIGNALED(st)) {
        struct rlimit no_core = { 0, 0 };
        sigset_t sig;

        /* The agent's core, if any, is the server's; none here. */
        setrlimit(RLIMIT_CORE, &no_core);
        prctl(PR_SET_DUMPABLE, 0);
        signal(WTERMSIG(st), SIG_DFL);
        sigemptyset(&sig);
        sigaddset(&sig, WTERMSIG(st));
        sigprocmask(SIG_UNBLOCK, &sig, NULL);
        raise(WTERMSIG(st));
    }
    _exit(WIFEXITED(st) ? WEXITSTATUS(st) : PROXY_FAILED);
}

static int exited_status(const struct relay *r)
{
    uint32_t be;

    memcpy(&be, r->payload, sizeof(be));
    return (int)(int32_t)ntohl(be);
}

/* Hands what the agent sent before it ended to the coordinator, as its
 * socket would have held it; bounded, since nobody may be reading. */
static void proxy_deliver(struct relay *r)
{
    uint64_t end = deadline_in(IT_TIMEOUT_MS);

    while (r->qlen > 0 && !r->local_deaf) {
        if (send_all(r->local, &r->queue[r->qhead], sizeof(struct it_msg), end) < 0)
            return;
        r->qhead = (r->qhead + 1) % RELAY_QUEUE;
        r->qlen--;
    }
}

/* The agent goes now: KILL, then what it sent meanwhile is dropped (a
 * SIGKILL would drop it too) until EXITED. */
static __attribute__((noreturn)) void proxy_kill(struct relay *r, const char *name,
                                                 const char *addr)
{
    relay_stop_local(r);
    out_frame(r, IT_FRAME_KILL, NULL, 0);
    for (;;) {
        switch (relay_run(r)) {
        case RELAY_FRAME:
            mimic(exited_status(r));
        case RELAY_PEER_EOF:
            proxy_fail(r->local, name, "%s closed the connection before the agent's EXITED", addr);
        case RELAY_BROKEN:
            proxy_fail(r->local, name, "connection to %s: %s", addr, r->error);
        default:
            break;
        }
    }
}

void it_remote_proxy_main(int sock, const char *name, const char *addr)
{
    static struct relay r; /* static: the buffers are large */
    int fd = it_tcp_connect(addr, IT_TIMEOUT_MS), rc;

    if (fd < 0)
        proxy_fail(sock, name, "cannot connect to the agent server at %s: %s", addr, strerror(-fd));
    rc = it_frame_send(fd, IT_FRAME_START, name, (uint32_t)strlen(name), IT_TIMEOUT_MS);
    if (rc < 0)
        proxy_fail(sock, name, "send START to %s: %s", addr, strerror(-rc));
    relay_init(&r, sock, fd, 1u << IT_FRAME_EXITED, 1);
    for (;;) {
        switch (relay_run(&r)) {
        case RELAY_LOCAL_EOF:  /* the coordinator let go: nobody will kill it */
        case RELAY_LOCAL_KILL: /* it_agent_kill() */
            proxy_kill(&r, name, addr);
        case RELAY_FRAME:
            proxy_deliver(&r);
            mimic(exited_status(&r));
        case RELAY_PEER_EOF:
            proxy_fail(sock, name, "%s closed the connection before the agent's EXITED", addr);
        case RELAY_BROKEN:
            proxy_fail(sock, name, "connection to %s: %s", addr, r.error);
        default:
            break;
        }
    }
}

/* ---- the server's connection handler ------------------------------------------ */

/* The agent of this handler; the SIGTERM handler kills and reaps it. */
static volatile sig_atomic_t serving_agent;

static __attribute__((format(printf, 1, 2))) void serve_log(const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "it-agent-server[%d]: %s\n", (int)getpid(), msg);
}

/* The server stops: the agent must not outlive its handler. */
static void on_term(int sig)
{
    pid_t pid = serving_agent;

    (void)sig;
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    _exit(0);
}

static void serve_signals(void)
{
    struct sigaction sa;
    sigset_t none;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

static void block_term(sigset_t *old)
{
    sigset_t term;

    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigaddset(&term, SIGINT);
    sigprocmask(SIG_BLOCK, &term, old);
}

static void agent_kill(void)
{
    if (serving_agent > 0)
        kill((pid_t)serving_agent, SIGKILL);
}

/* Reaps the agent, which has closed its socket or been killed. */
static int agent_reap(void)
{
    pid_t pid = (pid_t)serving_agent;
    sigset_t old;
    int st = 0;

    if (pid <= 0)
        return 0;
    block_term(&old); /* so that on_term never waits for a pid reaped here */
    while (waitpid(pid, &st, 0) < 0) {
        if (errno != EINTR) {
            serve_log("waitpid(agent %d): %s", (int)pid, strerror(errno));
            st = PROXY_FAILED << 8; /* "exit 125" */
            break;
        }
    }
    serving_agent = 0;
    sigprocmask(SIG_SETMASK, &old, NULL);
    return st;
}

/* Forks the agent on sv[1]; returns its pid or -1. */
static pid_t agent_fork(int conn, int sv[2], const char *name)
{
    pid_t handler = getpid(), pid;
    sigset_t old;

    block_term(&old);
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        sigprocmask(SIG_SETMASK, &old, NULL);
        close(conn);
        close(sv[0]);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != handler)
            _exit(PROXY_FAILED);
        it_agent_main(sv[1], name);
    }
    if (pid > 0)
        serving_agent = pid;
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(sv[1]);
    if (pid < 0)
        serve_log("fork: %s", strerror(errno));
    return pid;
}

/* Tells a peer that may still listen how the agent ended, if the stream is
 * at a frame boundary; best effort. */
static void exited_if_possible(struct relay *r, int st)
{
    uint32_t be = htonl((uint32_t)st);

    if (r->outlen == 0)
        it_frame_send(r->tcp, IT_FRAME_EXITED, &be, sizeof(be), 0);
}

static int serve_agent(int conn, const char *name)
{
    static struct relay r;
    int sv[2], st;
    uint32_t be;

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        serve_log("socketpair: %s", strerror(errno));
        return 1;
    }
    if (agent_fork(conn, sv, name) < 0)
        return 1;
    relay_init(&r, sv[0], conn, 1u << IT_FRAME_KILL, 0);
    for (;;) {
        switch (relay_run(&r)) {
        case RELAY_LOCAL_EOF: /* its last message is framed: EXITED follows it */
            be = htonl((uint32_t)agent_reap());
            relay_stop_local(&r);
            out_frame(&r, IT_FRAME_EXITED, &be, sizeof(be));
            r.finishing = 1;
            break;
        case RELAY_FRAME: /* KILL: its socket's EOF follows its death */
            agent_kill();
            break;
        case RELAY_FLUSHED:
            return 0;
        case RELAY_PEER_EOF:
            if (r.error[0])
                serve_log("agent %s: %s", name, r.error);
            agent_kill();
            st = agent_reap();
            if (!r.finishing) /* else EXITED is out or on its way already */
                exited_if_possible(&r, st);
            return 0;
        case RELAY_BROKEN:
            serve_log("agent %s: %s: closing the connection", name, r.error);
            agent_kill();
            agent_reap();
            return 0;
        default:
            break;
        }
    }
}

/* Reads START and runs the agent it names. */
static int serve_connection(int conn)
{
    char name[IT_NAME_MAX + 1];
    struct it_frame_hdr h;
    const char *why;
    int rc = frame_recv(conn, &h, name, IT_NAME_MAX, IT_TIMEOUT_MS, &why);

    if (rc <= 0) {
        if (rc == 0)
            serve_log("connection closed before START");
        else
            serve_log("first frame refused: %s: closing the connection",
                      *why ? why : strerror(-rc));
        return 0;
    }
    if (h.kind != IT_FRAME_START) {
        serve_log("expected START, got a frame of kind %u: closing the connection", h.kind);
        return 0;
    }
    name[h.len] = '\0';
    if (strlen(name) != h.len) {
        serve_log("an agent name with a NUL byte: closing the connection");
        return 0;
    }
    return serve_agent(conn, name);
}

int it_remote_serve(int conn)
{
    int rc;

    serve_signals();
    set_nodelay(conn);
    rc = serve_connection(conn);
    /* The agent is reaped: a SIGTERM now must let the caller's exit() run
     * to its end (LeakSanitizer's check runs a tracer task that an _exit()
     * in on_term would orphan). */
    block_term(NULL);
    return rc;
}

/* ---- a private server, and the coordinator's configuration ----------------------- */

static __attribute__((noreturn)) void exec_server(const char *bin, int ready)
{
    char fdarg[16];

    snprintf(fdarg, sizeof(fdarg), "%d", ready);
    execl(bin, bin, "--listen", "127.0.0.1:0", "--ready-fd", fdarg, (char *)NULL);
    fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
    _exit(127);
}

static __attribute__((noreturn)) void server_failed_to_start(struct it_agent_server *s,
                                                             const char *what)
{
    char how[64];

    /* Silent but alive (a bad port line): stop it to say how it ended. */
    if (it_wait_readable(s->pidfd, -1, 0) == 0)
        pidfd_send_signal(s->pidfd, SIGKILL, NULL, 0);
    it_describe_status(it_reap(s->pid, s->pidfd, "it_agent_server"), how, sizeof(how));
    close(s->pidfd);
    s->pid = 0;
    s->pidfd = -1;
    it_fail("it_agent_server %s: %s", what, how);
}

/* Reads the port the server reports on its ready pipe. */
static unsigned await_port(struct it_agent_server *s, int rfd)
{
    uint64_t end = deadline_in(IT_TIMEOUT_MS);
    char line[16];
    size_t got = 0;

    for (;;) {
        int r = it_wait_readable(rfd, s->pidfd, ms_until(end));
        if (r == 0)
            it_fail("it_agent_server did not report its port within %d ms", IT_TIMEOUT_MS);
        if (r == 2)
            server_failed_to_start(s, "exited before it reported its port");
        ssize_t n = read(rfd, line + got, sizeof(line) - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            server_failed_to_start(s, "closed its ready pipe without a port");
        got += (size_t)n;
        line[got] = '\0';
        char *nl = strchr(line, '\n');
        if (nl) {
            unsigned long port = strtoul(line, NULL, 10);
            if (port == 0 || port > 65535)
                server_failed_to_start(s, "reported a bad port");
            return (unsigned)port;
        }
        if (got == sizeof(line) - 1)
            server_failed_to_start(s, "reported a bad port");
    }
}

void it_agent_server_start(struct it_agent_server *s)
{
    const char *bin = getenv("PVABI_IT_AGENT_SERVER");
    int p[2];

    memset(s, 0, sizeof(*s));
    s->pidfd = -1;
    if (!bin || !*bin)
        it_fail("PVABI_IT_AGENT_SERVER is not set: the path of it_agent_server");
    if (pipe2(p, O_CLOEXEC) < 0)
        it_fail("pipe: %s", strerror(errno));
    fflush(NULL);
    s->pid = fork();
    if (s->pid < 0)
        it_fail("fork: %s", strerror(errno));
    if (s->pid == 0) {
        int w = fcntl(p[1], F_DUPFD, 3); /* a copy without O_CLOEXEC */
        /* A coordinator that crashes must not leave its server behind. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        exec_server(bin, w);
    }
    close(p[1]);
    s->pidfd = pidfd_open(s->pid, 0);
    if (s->pidfd < 0)
        it_fail("pidfd_open: %s", strerror(errno));
    unsigned port = await_port(s, p[0]);
    close(p[0]);
    snprintf(s->addr, sizeof(s->addr), "127.0.0.1:%u", port);
}

int it_agent_server_stop(struct it_agent_server *s, char *why, size_t len)
{
    char how[64];
    int st, died;

    if (s->pid <= 0)
        return 0;
    /* Died during the test?  That is a server crash, whatever the test said. */
    died = it_wait_readable(s->pidfd, -1, 0) == 1;
    if (!died)
        pidfd_send_signal(s->pidfd, SIGTERM, NULL, 0);
    st = it_reap(s->pid, s->pidfd, "it_agent_server");
    close(s->pidfd);
    s->pid = 0;
    s->pidfd = -1;
    if (!died && WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    it_describe_status(st, how, sizeof(how));
    snprintf(why, len, "it_agent_server %s: %s",
             died ? "died during the test" : "did not stop cleanly on SIGTERM", how);
    return -1;
}

static struct it_agent_server spawned;

static int remote_is_spawn(void)
{
    const char *r = getenv("PVABI_TEST_REMOTE");

    return r && strcmp(r, "spawn") == 0;
}

void it_remote_setup(void)
{
    if (remote_is_spawn())
        it_agent_server_start(&spawned);
}

int it_remote_teardown(char *why, size_t len)
{
    return it_agent_server_stop(&spawned, why, len);
}

void it_remote_close_inherited(void)
{
    /* The address stays: a proxy forked now still needs it. */
    if (spawned.pid > 0) {
        close(spawned.pidfd);
        spawned.pid = 0;
        spawned.pidfd = -1;
    }
}

/* Whether @name is an entry of the comma-separated @list. */
static int name_listed(const char *name, const char *list)
{
    size_t n = strlen(name);

    while (list && *list) {
        const char *comma = strchr(list, ',');
        size_t len = comma ? (size_t)(comma - list) : strlen(list);
        if (len == n && strncmp(list, name, n) == 0)
            return 1;
        list = comma ? comma + 1 : NULL;
    }
    return 0;
}

const char *it_remote_addr_for(const char *name)
{
    const char *remote = getenv("PVABI_TEST_REMOTE");
    struct sockaddr_in sa;

    if (!remote || !*remote || !name_listed(name, getenv("PVABI_TEST_REMOTE_AGENTS")))
        return NULL;
    if (strcmp(remote, "spawn") == 0) {
        if (spawned.pid <= 0)
            it_fail("agent %s: PVABI_TEST_REMOTE=spawn but no agent server runs (it_setup() "
                    "starts one)",
                    name);
        return spawned.addr;
    }
    if (it_tcp_parse(remote, &sa) < 0)
        it_fail("PVABI_TEST_REMOTE=%s: neither \"spawn\" nor an IPv4 ADDR:PORT", remote);
    return remote;
}
