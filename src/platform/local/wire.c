/* SPDX-License-Identifier: MIT */
/*
 * Messages to and from the pvabi-hv daemon (proto.h).  One request at a time
 * (the core holds ctx->lock), its reply matched by seq, notices applied while
 * waiting.  Nothing the daemon sends is trusted: magic, lengths and fd counts
 * are checked, and a packet that breaks the protocol ends the connection
 * (as a daemon death would) instead of crashing or confusing the client.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "platform/local/scm.h"
#include "platform/local/local.h"

/* Notices applied per pvabi_evtchn_pending() at most, so that a flood cannot
 * hold the caller; the rest keep the socket readable for the next call. */
#define LC_DRAIN_MAX 256

union lc_cmsg {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int) * HV_FDS_MAX)];
};

void pvabi__lc_close_fds(int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
        fds[i] = -1;
    }
}

static const char *op_name(unsigned op)
{
    static const char *const names[] = {
        [HV_OP_HELLO] = "HELLO",
        [HV_OP_EVTCHN_ALLOC] = "EVTCHN_ALLOC",
        [HV_OP_EVTCHN_BIND] = "EVTCHN_BIND",
        [HV_OP_EVTCHN_CLOSE] = "EVTCHN_CLOSE",
        [HV_OP_GRANT_SHARE] = "GRANT_SHARE",
        [HV_OP_GRANT_REVOKE] = "GRANT_REVOKE",
        [HV_OP_GRANT_MAP] = "GRANT_MAP",
        [HV_OP_GRANT_UNMAP] = "GRANT_UNMAP",
        [HV_OP_UNMAP_NOTIFY] = "UNMAP_NOTIFY",
        [HV_OP_PING] = "PING",
        [HV_OP_HYPERCALL] = "HYPERCALL",
        [HV_OP_GRANT_LIST] = "GRANT_LIST",
    };
    return op < sizeof(names) / sizeof(names[0]) && names[op] ? names[op] : "unknown op";
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until @fd has one of @events or @deadline passes: the events seen,
 * -ETIMEDOUT, or -errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        struct pollfd p = { .fd = fd, .events = events };
        int64_t left = deadline - now_ms();
        int n = poll(&p, 1, left > 0 ? (int)left : 0);

        if (n > 0)
            return p.revents;
        if (n == 0)
            return -ETIMEDOUT;
        if (errno != EINTR)
            return -errno;
    }
}

/* Sets the socket's receive timeout, the bound of every blocking recvmsg. */
static int rcvtimeo_set(struct lc *lc, int64_t ms)
{
    struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

    if (setsockopt(lc->sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
        return -errno;
    lc->rcvtimeo_ms = ms;
    return 0;
}

/* Fits the receive timeout to what is left until @deadline.  It stays at
 * LC_TIMEOUT_MS while replies come at once, so this costs a system call only
 * after a notice, a signal or a long send ate into the wait (and on the next
 * call, to restore it). */
static int rcvtimeo_fit(struct lc *lc, int64_t deadline)
{
    int64_t left = deadline - now_ms();

    if (left <= 0)
        return -ETIMEDOUT;
    if (lc->rcvtimeo_ms <= left + LC_RCVTIMEO_SLACK_MS && lc->rcvtimeo_ms >= left)
        return 0;
    return rcvtimeo_set(lc, left);
}

int pvabi__lc_wire_setup(pvabi_ctx *ctx, struct lc *lc)
{
    int fl = fcntl(lc->sock, F_GETFL), rc = 0;

    /* Blocking, so that a reply is one recvmsg; every wait is still bounded
     * by SO_RCVTIMEO, and sends and notice drains pass MSG_DONTWAIT. */
    if (fl < 0 || fcntl(lc->sock, F_SETFL, fl & ~O_NONBLOCK) < 0)
        rc = -errno;
    if (rc == 0)
        rc = rcvtimeo_set(lc, LC_TIMEOUT_MS);
    if (rc < 0)
        pvabi__err(ctx, "local platform: setting up the pvabi-hv socket: %s", strerror(-rc));
    return rc;
}

void pvabi__lc_lost(pvabi_ctx *ctx, struct lc *lc, int why, const char *what)
{
    if (lc->sock < 0)
        return;
    pvabi__err(ctx, "local platform: %s (%s): disconnected from pvabi-hv; every port is closed now",
               what, strerror(-why));
    epoll_ctl(lc->epfd, EPOLL_CTL_DEL, lc->sock, NULL);
    close(lc->sock);
    lc->sock = -1;
    pvabi__lc_ports_close_all(ctx, lc);
}

int pvabi__lc_bad_reply(pvabi_ctx *ctx, struct lc *lc, struct lc_msg *m, const char *what)
{
    char why[160];

    snprintf(why, sizeof(why), "pvabi-hv broke the protocol: %s reply: %s", op_name(m->hdr.op),
             what);
    pvabi__lc_close_fds(m->fds, m->nfds);
    m->nfds = 0;
    pvabi__lc_lost(ctx, lc, -EPROTO, why);
    return -EPROTO;
}

int pvabi__lc_reply_ok(pvabi_ctx *ctx, struct lc *lc, struct lc_msg *m, size_t len, unsigned nfds)
{
    char what[96];

    if (m->hdr.len == len && m->nfds == nfds)
        return 1;
    snprintf(what, sizeof(what), "%u bytes and %u fds where %zu and %u were due", m->hdr.len,
             m->nfds, len, nfds);
    pvabi__lc_bad_reply(ctx, lc, m, what);
    return 0;
}

static int send_msg(pvabi_ctx *ctx, struct lc *lc, const struct hv_hdr *h, const void *payload,
                    const int *fds, int64_t deadline)
{
    struct iovec iov[2] = { { .iov_base = (void *)h, .iov_len = sizeof(*h) },
                            { .iov_base = (void *)payload, .iov_len = h->len } };
    struct msghdr mh = { .msg_iov = iov, .msg_iovlen = h->len ? 2 : 1 };
    union lc_cmsg ctl;

    if (h->nfds) {
        struct cmsghdr *c;
        memset(ctl.buf, 0, sizeof(ctl.buf)); /* no uninitialised padding on the wire */
        mh.msg_control = ctl.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * h->nfds);
        c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * h->nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * h->nfds);
    }
    for (;;) {
        /* MSG_NOSIGNAL: a dead daemon is EPIPE here, never a SIGPIPE that
         * kills the caller's process. */
        if (sendmsg(lc->sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) >= 0)
            return 0; /* a SEQPACKET packet goes whole or not at all */
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -errno;
        /* Full: the daemon reads no more requests of ours while it has
         * packets queued for us, so read its notices while waiting (no
         * reply is outstanding: one request at a time, and none for a
         * no-reply request). */
        int rc = wait_fd(lc->sock, POLLOUT | POLLIN, deadline);
        if (rc < 0)
            return rc;
        if (rc & POLLIN)
            pvabi__lc_drain_notices(ctx, lc);
        if (lc->sock < 0)
            return -ENOTCONN;
    }
}

/* Collects the SCM_RIGHTS fds of a received packet into m->fds. */
static void take_fds(struct msghdr *mh, struct lc_msg *m)
{
    bool overflow; /* cannot happen: the control buffer holds HV_FDS_MAX */

    m->nfds = hv_take_fds(mh, m->fds, HV_FDS_MAX, &overflow);
}

/* What is wrong with a received packet of @n bytes, or NULL. */
static const char *packet_fault(const struct msghdr *mh, const struct lc_msg *m, ssize_t n)
{
    if (mh->msg_flags & MSG_TRUNC)
        return "a packet larger than HV_MSG_MAX";
    if (mh->msg_flags & MSG_CTRUNC)
        return "a packet with more than HV_FDS_MAX fds";
    if ((size_t)n < sizeof(m->hdr))
        return "a packet shorter than its header";
    if (m->hdr.magic != HV_MAGIC)
        return "a packet with a bad magic number";
    if (m->hdr.len != (size_t)n - sizeof(m->hdr))
        return "a packet whose length field disagrees with its size";
    if (m->hdr.nfds != m->nfds)
        return "a packet whose nfds field disagrees with the fds attached";
    return NULL;
}

/* Receives one packet into lc->msg: @flags MSG_DONTWAIT for what is waiting,
 * 0 to block until SO_RCVTIMEO.  Returns 1 (a valid packet), 0 (none waiting,
 * the timeout passed, or a signal came), or -ENOTCONN / -EPROTO (connection
 * ended). */
static int recv_msg(pvabi_ctx *ctx, struct lc *lc, int flags)
{
    struct lc_msg *m = &lc->msg;
    struct iovec iov[2] = { { .iov_base = &m->hdr, .iov_len = sizeof(m->hdr) },
                            { .iov_base = m->payload, .iov_len = sizeof(m->payload) } };
    union lc_cmsg ctl;
    struct msghdr mh = {
        .msg_iov = iov, .msg_iovlen = 2, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf)
    };
    const char *fault;
    char why[128];
    ssize_t n = recvmsg(lc->sock, &mh, flags | MSG_CMSG_CLOEXEC);

    /* A timed-out or interrupted wait is the caller's to judge: with
     * SO_RCVTIMEO set, the kernel does not restart it after a signal. */
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n <= 0) {
        /* 0: end of file, the daemon exited or was killed */
        pvabi__lc_lost(ctx, lc, n < 0 ? -errno : -ECONNRESET, "receiving from pvabi-hv");
        return -ENOTCONN;
    }
    take_fds(&mh, m);
    fault = packet_fault(&mh, m, n);
    if (!fault)
        return 1;
    snprintf(why, sizeof(why), "pvabi-hv broke the protocol: %s", fault);
    pvabi__lc_close_fds(m->fds, m->nfds);
    m->nfds = 0;
    pvabi__lc_lost(ctx, lc, -EPROTO, why);
    return -EPROTO;
}

/* Receives until the reply to request @h arrives, applying notices: one
 * blocking recvmsg when the reply is the next packet. */
static int await_reply(pvabi_ctx *ctx, struct lc *lc, const struct hv_hdr *h, int64_t deadline)
{
    for (;;) {
        int rc = rcvtimeo_fit(lc, deadline);
        const struct hv_hdr *r = &lc->msg.hdr;

        if (rc < 0) {
            /* The daemon's state is unknown from here: a late reply could
             * not be matched to anything, so end the connection and let
             * the daemon clean up as after a death. */
            pvabi__lc_lost(ctx, lc, rc,
                           rc == -ETIMEDOUT ? "waiting for a reply" : "setting a receive timeout");
            return rc;
        }
        rc = recv_msg(ctx, lc, 0);
        if (rc < 0)
            return rc;
        if (rc == 0)
            continue; /* timed out or interrupted: the deadline decides */
        if (r->flags & HV_F_NOTICE) {
            pvabi__lc_apply_notice(ctx, lc, &lc->msg);
            continue;
        }
        if (!(r->flags & HV_F_REPLY) || r->seq != h->seq || r->op != h->op)
            return pvabi__lc_bad_reply(ctx, lc, &lc->msg, "not the reply to the request sent");
        return 0;
    }
}

/* Numbers and sends request @h; the transport errors of pvabi__lc_call(). */
static int send_request(pvabi_ctx *ctx, struct lc *lc, struct hv_hdr *h, const void *req,
                        const int *fds, int64_t deadline)
{
    int rc;

    if (lc->sock < 0) {
        pvabi__err(ctx, "%s: not connected to pvabi-hv (it exited or was killed)", op_name(h->op));
        return -ENOTCONN;
    }
    if (++lc->seq == 0)
        lc->seq = 1; /* seq 0 is a notice's */
    h->seq = lc->seq;
    rc = send_msg(ctx, lc, h, req, fds, deadline);
    if (rc == -EPIPE || rc == -ECONNRESET || rc == -ENOTCONN || rc == -ETIMEDOUT) {
        pvabi__lc_lost(ctx, lc, rc, "sending a request");
        return rc == -ETIMEDOUT ? rc : -ENOTCONN;
    }
    if (rc < 0)
        pvabi__err(ctx, "%s: sending to pvabi-hv: %s", op_name(h->op), strerror(-rc));
    return rc;
}

int pvabi__lc_call(pvabi_ctx *ctx, struct lc *lc, uint16_t op, const void *req, size_t len,
                   const int *fds, unsigned nfds, struct lc_msg **rsp)
{
    struct hv_hdr h = { .magic = HV_MAGIC, .op = op, .len = (uint32_t)len, .nfds = nfds };
    int64_t deadline = now_ms() + LC_TIMEOUT_MS;
    struct lc_msg *m = &lc->msg;
    int rc;

    *rsp = NULL;
    rc = send_request(ctx, lc, &h, req, fds, deadline);
    if (rc == 0)
        rc = await_reply(ctx, lc, &h, deadline);
    if (rc < 0)
        return rc;
    if (m->hdr.status > 0 || m->hdr.status < -4095)
        return pvabi__lc_bad_reply(ctx, lc, m, "a status that is not 0 or a negative errno");
    if (m->hdr.status < 0) {
        /* no op sends fds with a failure */
        pvabi__lc_close_fds(m->fds, m->nfds);
        m->nfds = 0;
    }
    *rsp = m;
    return m->hdr.status;
}

int pvabi__lc_send(pvabi_ctx *ctx, struct lc *lc, uint16_t op, const void *req, size_t len)
{
    struct hv_hdr h = { .magic = HV_MAGIC, .op = op, .flags = HV_F_NOREPLY, .len = (uint32_t)len };

    return send_request(ctx, lc, &h, req, NULL, now_ms() + LC_TIMEOUT_MS);
}

void pvabi__lc_drain_notices(pvabi_ctx *ctx, struct lc *lc)
{
    for (int i = 0; i < LC_DRAIN_MAX && lc->sock >= 0; i++) {
        if (recv_msg(ctx, lc, MSG_DONTWAIT) <= 0)
            return;
        if (!(lc->msg.hdr.flags & HV_F_NOTICE)) {
            pvabi__lc_bad_reply(ctx, lc, &lc->msg, "a reply with no request outstanding");
            return;
        }
        pvabi__lc_apply_notice(ctx, lc, &lc->msg);
    }
}
