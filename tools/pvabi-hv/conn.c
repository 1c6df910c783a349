/* SPDX-License-Identifier: MIT */
/*
 * Connections: accept, read one packet at a time, check it against the
 * protocol, dispatch it, reply.  Nothing here blocks: every socket is
 * non-blocking, and a peer the daemon cannot send to is doomed, never waited
 * for, so one stuck client cannot stall the others.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "platform/local/scm.h"
#include "hv.h"

/* Packets read per wake-up of one connection, so a flood yields to others. */
#define MSGS_PER_WAKE 32
/* Connections accepted per wake-up of the listening socket. */
#define ACCEPTS_PER_WAKE 64

union hv_cmsg_buf {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int) * HV_FDS_MAX)];
};

typedef int32_t hv_op_fn(struct hv_dom *d, struct hv_req *rq, struct hv_rsp *rs);

/* How an op's payload length is checked before its handler runs. */
enum hv_len_rule {
    LEN_EXACT, /* exactly len bytes */
    LEN_REFS,  /* len bytes, then `count` uint32_t refs (1..HV_REFS_MAX) */
    LEN_MIN,   /* at least len bytes: the handler checks the rest */
};

struct hv_op_desc {
    const char *name;
    hv_op_fn *fn;
    uint32_t len; /* see rule */
    enum hv_len_rule rule;
    unsigned nfds;  /* fds the op takes */
    bool noreply;   /* HV_F_NOREPLY allowed: the reply is only a status */
    bool toolstack; /* allowed on a toolstack connection, which is no domain */
};

static int32_t op_ping(struct hv_dom *d, struct hv_req *rq, struct hv_rsp *rs)
{
    (void)d, (void)rq, (void)rs;
    return 0;
}

/* [HV_OP_X] = { "X", ... }: the log name is the op without its prefix. */
#define OP(x, fn, len, rule, nfds, noreply, ts)                                                    \
    [HV_OP_##x] = { #x, fn, len, rule, nfds, noreply, ts }
static const struct hv_op_desc op_table[] = {
    OP(HELLO, hv_op_hello, sizeof(struct hv_hello_req), LEN_EXACT, 0, false, false),
    OP(EVTCHN_ALLOC, hv_op_evtchn_alloc, sizeof(struct hv_evtchn_alloc_req), LEN_EXACT, 0, false,
       false),
    OP(EVTCHN_BIND, hv_op_evtchn_bind, sizeof(struct hv_evtchn_bind_req), LEN_EXACT, 0, false,
       false),
    OP(EVTCHN_CLOSE, hv_op_evtchn_close, sizeof(struct hv_evtchn_close_req), LEN_EXACT, 0, true,
       false),
    OP(GRANT_SHARE, hv_op_grant_share, sizeof(struct hv_grant_share_req), LEN_EXACT, 1, false,
       false),
    OP(GRANT_REVOKE, hv_op_grant_revoke, sizeof(struct hv_grant_refs_req), LEN_REFS, 0, true,
       false),
    OP(GRANT_MAP, hv_op_grant_map, sizeof(struct hv_grant_refs_req), LEN_REFS, 0, false, false),
    OP(GRANT_UNMAP, hv_op_grant_unmap, sizeof(struct hv_grant_refs_req), LEN_REFS, 0, true, false),
    OP(UNMAP_NOTIFY, hv_op_unmap_notify, sizeof(struct hv_unmap_notify_req), LEN_EXACT, 0, true,
       false),
    OP(PING, op_ping, 0, LEN_EXACT, 0, true, true),
    OP(HYPERCALL, hv_op_hypercall, sizeof(struct hv_hypercall_req), LEN_MIN, 0, false, true),
    OP(GRANT_LIST, hv_op_grant_list, sizeof(struct hv_grant_list_req), LEN_EXACT, 0, false, true),
};
#undef OP

static const struct hv_op_desc *op_find(uint16_t op)
{
    if (op >= sizeof(op_table) / sizeof(op_table[0]) || !op_table[op].fn)
        return NULL;
    return &op_table[op];
}

const char *hv_op_name(uint16_t op)
{
    const struct hv_op_desc *desc = op_find(op);

    if (desc)
        return desc->name;
    if (op == HV_NOTICE_PORT_CONNECTED)
        return "PORT_CONNECTED";
    if (op == HV_NOTICE_PORT_CLOSED)
        return "PORT_CLOSED";
    return "unknown op";
}

const char *hv_who(const struct hv_dom *d)
{
    static char bufs[2][48];
    static unsigned next;
    char *b = bufs[next++ % 2];

    if (d->toolstack)
        snprintf(b, sizeof(bufs[0]), "toolstack pid %d", (int)d->pid);
    else if (d->domid == HV_DOMID_NONE)
        snprintf(b, sizeof(bufs[0]), "client pid %d", (int)d->pid);
    else
        snprintf(b, sizeof(bufs[0]), "dom %u (pid %d)", d->domid, (int)d->pid);
    return b;
}

/* ---- sending ------------------------------------------------------------ */

/* One packet the socket would not take yet; its fds are our duplicates, so
 * closing a port meanwhile cannot change what the packet carries. */
struct hv_out {
    struct hv_out *next;
    int *fds; /* nfds of them, after data */
    unsigned nfds;
    size_t len;
    uint8_t data[]; /* header and payload */
};

/* 0, -EAGAIN when the socket is full, or another negative errno. */
static int send_packet(int sock, const void *data, size_t len, const int *fds, unsigned nfds)
{
    struct iovec iov = { (void *)data, len };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
    union hv_cmsg_buf ctl;
    ssize_t n;

    if (nfds) {
        memset(&ctl, 0, sizeof(ctl));
        m.msg_control = ctl.buf;
        m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *c = &ctl.align; /* CMSG_FIRSTHDR(&m) */
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    do
        n = sendmsg(sock, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n >= 0)
        return 0;
    return errno == EWOULDBLOCK ? -EAGAIN : -errno;
}

static void out_free(struct hv_out *o)
{
    for (unsigned i = 0; i < o->nfds; i++)
        close(o->fds[i]);
    free(o);
}

/* While output waits, watch for room instead of for requests: a domain that
 * does not read its replies gets no new ones to not read. */
static void watch_for(struct hv_dom *d, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = &d->src };

    if (epoll_ctl(hv.epfd, EPOLL_CTL_MOD, d->sock, &ev) != 0)
        hv_warn("%s: epoll_ctl: %s", hv_who(d), strerror(errno));
}

static int out_queue(struct hv_dom *d, const void *data, size_t len, const int *fds, unsigned nfds)
{
    struct hv_out *o;

    size_t at = (len + sizeof(int) - 1) / sizeof(int) * sizeof(int);

    if (d->outq_len >= HV_OUTQ_MAX)
        return -ENOBUFS;
    o = malloc(sizeof(*o) + at + nfds * sizeof(int));
    if (!o)
        return -ENOMEM;
    o->next = NULL;
    o->fds = (int *)(o->data + at);
    o->len = len;
    memcpy(o->data, data, len);
    for (o->nfds = 0; o->nfds < nfds; o->nfds++) {
        o->fds[o->nfds] = fcntl(fds[o->nfds], F_DUPFD_CLOEXEC, 0);
        if (o->fds[o->nfds] < 0) {
            int err = -errno;
            out_free(o);
            return err;
        }
    }
    if (!d->outq)
        watch_for(d, EPOLLOUT);
    if (d->outq_tail)
        d->outq_tail->next = o;
    else
        d->outq = o;
    d->outq_tail = o;
    d->outq_len++;
    return 0;
}

static void conn_flush(struct hv_dom *d)
{
    struct hv_out *o;
    int r = 0;

    while ((o = d->outq) && (r = send_packet(d->sock, o->data, o->len, o->fds, o->nfds)) == 0) {
        d->outq = o->next;
        d->outq_len--;
        out_free(o);
    }
    if (r == -EAGAIN)
        return;
    if (r) {
        hv_info("%s: sending queued packets: %s", hv_who(d), strerror(-r));
        hv_dom_doom(d, "its connection failed");
        return;
    }
    d->outq_tail = NULL;
    watch_for(d, EPOLLIN);
}

int hv_send(struct hv_dom *d, const struct hv_hdr *h, const void *payload, const int *fds,
            unsigned nfds)
{
    uint8_t buf[HV_MSG_MAX];
    size_t len = sizeof(*h) + h->len;
    int r = -EAGAIN;

    if (d->state != DOM_NEW && d->state != DOM_LIVE)
        return -ENOTCONN;
    memcpy(buf, h, sizeof(*h));
    if (h->len)
        memcpy(buf + sizeof(*h), payload, h->len);
    /* Behind queued packets, or it would overtake them. */
    if (!d->outq)
        r = send_packet(d->sock, buf, len, fds, nfds);
    if (r == -EAGAIN)
        r = out_queue(d, buf, len, fds, nfds);
    if (r == 0)
        return 0;
    /* Waiting would let one client that stopped reading stall everyone. */
    hv_info("%s: cannot send %s: %s", hv_who(d), hv_op_name(h->op), strerror(-r));
    hv_dom_doom(d, r == -ENOBUFS ? "does not read its socket" : "its connection failed");
    return r;
}

void hv_conn_free_queue(struct hv_dom *d)
{
    while (d->outq) {
        struct hv_out *o = d->outq;
        d->outq = o->next;
        out_free(o);
    }
    d->outq_tail = NULL;
    d->outq_len = 0;
}

int hv_send_notice(struct hv_dom *d, uint16_t op, const void *payload, uint32_t len, int fd)
{
    struct hv_hdr h = { .magic = HV_MAGIC, .op = op, .flags = HV_F_NOTICE, .len = len };

    h.nfds = fd >= 0 ? 1 : 0;
    return hv_send(d, &h, payload, &fd, h.nfds);
}

static void reply(struct hv_dom *d, const struct hv_req *rq, int32_t status, struct hv_rsp *rs)
{
    struct hv_hdr h = { .magic = HV_MAGIC,
                        .op = rq->h.op,
                        .flags = HV_F_REPLY,
                        .seq = rq->h.seq,
                        .status = status,
                        .len = rs->len };

    /* A failed request hands out nothing, whatever its handler left. */
    h.nfds = status == 0 ? rs->nfds : 0;
    hv_send(d, &h, rs->payload, rs->fds, h.nfds);
}

/* ---- receiving ---------------------------------------------------------- */

static void close_fds(int *fds, unsigned nfds)
{
    for (unsigned i = 0; i < nfds; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

/* Takes every fd the kernel installed, so none leaks whatever the packet
 * was.  Returns false if there were more than fit (all closed then). */
static bool collect_fds(struct msghdr *m, struct hv_req *rq)
{
    bool overflow;

    rq->nfds = hv_take_fds(m, rq->fds, HV_FDS_MAX, &overflow);
    if (overflow)
        close_fds(rq->fds, rq->nfds), rq->nfds = 0;
    return !overflow;
}

static int32_t check_refs_len(const struct hv_req *rq)
{
    struct hv_grant_refs_req req;

    if (rq->h.len < sizeof(req))
        return -EINVAL;
    memcpy(&req, rq->payload, sizeof(req));
    if (req.count == 0 || req.count > HV_REFS_MAX)
        return -EINVAL;
    return rq->h.len == sizeof(req) + req.count * sizeof(uint32_t) ? 0 : -EINVAL;
}

static bool len_ok(const struct hv_req *rq, const struct hv_op_desc *op)
{
    switch (op->rule) {
    case LEN_REFS:
        return check_refs_len(rq) == 0;
    case LEN_MIN:
        return rq->h.len >= op->len;
    default:
        return rq->h.len == op->len;
    }
}

/* The checks every request passes before its handler sees it. */
static int32_t check_request(const struct hv_dom *d, const struct hv_req *rq, uint32_t got,
                             const struct hv_op_desc *op)
{
    const char *what = NULL;
    int32_t status = -EPROTO;

    if ((rq->h.flags & ~HV_F_NOREPLY) || rq->h.status != 0)
        what = "flags other than HV_F_NOREPLY, or a status, set in a request";
    else if (rq->h.len != got)
        what = "header len differs from the payload received";
    else if (rq->h.nfds != rq->nfds)
        what = "header nfds differs from the fds received";
    else if (!op)
        what = "unknown op", status = -ENOSYS;
    else if ((rq->h.flags & HV_F_NOREPLY) && !op->noreply)
        what = "HV_F_NOREPLY on an op that hands out more than a status", status = -EINVAL;
    else if (rq->nfds != op->nfds)
        what = "wrong number of fds for this op", status = -EINVAL;
    else if (!len_ok(rq, op))
        what = "wrong payload length or count", status = -EINVAL;
    else if (d->toolstack && !op->toolstack)
        what = "a toolstack connection is no domain: it has no ports or grants", status = -EPERM;
    if (!what)
        return 0;
    hv_warn("%s: %s (op %u, seq %u, len %u/%u, fds %u/%u): %s", hv_who(d), hv_op_name(rq->h.op),
            rq->h.op, rq->h.seq, rq->h.len, got, rq->h.nfds, rq->nfds, what);
    return status;
}

/* Says how a handled request went: under HV_F_NOREPLY the log is the only
 * place a failure shows. */
static void log_outcome(const struct hv_dom *d, const struct hv_req *rq,
                        const struct hv_op_desc *op, int32_t status)
{
    if (status == 0)
        hv_debug("%s: %s seq %u: OK", hv_who(d), op->name, rq->h.seq);
    else if (rq->h.flags & HV_F_NOREPLY)
        hv_warn("%s: %s seq %u (no reply asked for) failed: %s", hv_who(d), op->name, rq->h.seq,
                hv_errname(status));
}

static void dispatch(struct hv_dom *d, struct hv_req *rq, uint32_t got)
{
    struct hv_rsp rs; /* 8 KiB, on the stack: a drain nests a request (hv_conn_drain) */
    const struct hv_op_desc *op = op_find(rq->h.op);
    int32_t status;

    if (d->state == DOM_NEW && rq->h.op != HV_OP_HELLO) {
        hv_warn("%s: op %u before HELLO", hv_who(d), rq->h.op);
        hv_dom_doom(d, "spoke before HELLO");
        return;
    }
    rs.len = 0;
    rs.nfds = 0;
    status = check_request(d, rq, got, op);
    if (status == 0) {
        status = op->fn(d, rq, &rs);
        log_outcome(d, rq, op, status);
    }
    if (!(rq->h.flags & HV_F_NOREPLY))
        reply(d, rq, status, &rs);
}

/* Why a packet cannot even be parsed, or NULL; such a peer is cut off. */
static const char *unparseable(const struct msghdr *m, ssize_t n, const struct hv_hdr *h)
{
    if (m->msg_flags & MSG_TRUNC)
        return "packet larger than HV_MSG_MAX";
    if (m->msg_flags & MSG_CTRUNC)
        return "too many fds on one packet";
    if ((size_t)n < sizeof(*h))
        return "packet shorter than a header";
    if (h->magic != HV_MAGIC)
        return "bad magic";
    return NULL;
}

/* Reads and handles one packet.  Returns 1 if there may be more, 0 when
 * the socket is drained, -1 when @d is doomed. */
static int conn_recv_one(struct hv_dom *d)
{
    uint64_t buf[HV_MSG_MAX / sizeof(uint64_t)]; /* on the stack, as dispatch()'s reply */
    union hv_cmsg_buf ctl;
    struct iovec iov = { buf, sizeof(buf) };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
    struct hv_req rq = { .payload = (const uint8_t *)buf + sizeof(struct hv_hdr) };
    const char *bad;
    ssize_t n;

    m.msg_control = ctl.buf;
    m.msg_controllen = sizeof(ctl.buf);
    do
        n = recvmsg(d->sock, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    if (n <= 0) {
        hv_dom_doom(d, n == 0 ? "closed its connection" : strerror(errno));
        return -1;
    }
    if (!collect_fds(&m, &rq))
        m.msg_flags |= MSG_CTRUNC;
    memcpy(&rq.h, buf, (size_t)n < sizeof(rq.h) ? (size_t)n : sizeof(rq.h));
    bad = unparseable(&m, n, &rq.h);
    if (bad) {
        hv_warn("%s: %s (%zd bytes, %u fds)", hv_who(d), bad, n, rq.nfds);
        close_fds(rq.fds, rq.nfds);
        hv_dom_doom(d, "sent an unparseable packet");
        return -1;
    }
    d->in_request = true;
    dispatch(d, &rq, (uint32_t)((size_t)n - sizeof(rq.h)));
    d->in_request = false;
    close_fds(rq.fds, rq.nfds);
    return d->state == DOM_NEW || d->state == DOM_LIVE ? 1 : -1;
}

void hv_conn_event(struct hv_dom *d, uint32_t events)
{
    if (d->state != DOM_NEW && d->state != DOM_LIVE)
        return; /* doomed earlier in this epoll batch */
    if (d->outq && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
        conn_flush(d);
    /* Requests wait while replies do; a hang-up still shows as EOF. */
    for (int i = 0; i < MSGS_PER_WAKE && !d->outq; i++)
        if (conn_recv_one(d) <= 0)
            return;
}

bool hv_conn_drain(struct hv_dom *d)
{
    /* @d's later requests must not overtake the one being handled, and a
     * chain of drains must not grow the stack without bound. */
    if (d->in_request || hv.drain_depth >= HV_DRAIN_DEPTH)
        return false;
    hv.drain_depth++;
    /* Unlike hv_conn_event(), read even while replies wait in the output
     * queue: a library client has at most one request with a reply in
     * flight, so this adds at most that reply to the queue. */
    for (int i = 0; i < HV_DRAIN_MAX && (d->state == DOM_NEW || d->state == DOM_LIVE); i++)
        if (conn_recv_one(d) <= 0)
            break;
    hv.drain_depth--;
    return true;
}

/* ---- accepting and closing ---------------------------------------------- */

/* At EMFILE the pending connection would keep the listening socket readable
 * forever: give up the spare fd to accept it, and close it at once. */
static void refuse_one(void)
{
    int fd;

    hv_warn("accept: out of file descriptors; refusing a client");
    if (hv.reserve_fd >= 0)
        close(hv.reserve_fd);
    fd = accept4(hv.lsock, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0)
        close(fd);
    hv.reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void conn_new(int fd)
{
    struct ucred cred;
    socklen_t clen = sizeof(cred);
    struct hv_dom *d;

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0) {
        hv_warn("accept: SO_PEERCRED: %s; dropping the client", strerror(errno));
        close(fd);
        return;
    }
    d = hv_dom_new(fd, cred.pid, cred.uid);
    if (!d) {
        hv_warn("accept: out of memory; dropping client pid %d", (int)cred.pid);
        close(fd);
        return;
    }
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &d->src };
    if (epoll_ctl(hv.epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        hv_warn("accept: epoll_ctl: %s; dropping client pid %d", strerror(errno), (int)cred.pid);
        hv_dom_doom(d, "could not be watched");
        return;
    }
    hv.nconns++;
    hv_idle_update();
    hv_debug("client pid %d uid %u connected", (int)cred.pid, (unsigned)cred.uid);
}

void hv_conn_accept(void)
{
    for (int i = 0; i < ACCEPTS_PER_WAKE; i++) {
        int fd = accept4(hv.lsock, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            conn_new(fd);
            continue;
        }
        if (errno == EMFILE || errno == ENFILE)
            refuse_one();
        else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
            hv_warn("accept: %s", strerror(errno));
        return;
    }
}

void hv_conn_close(struct hv_dom *d)
{
    if (d->sock < 0)
        return;
    /* Registered only once counted, see conn_new(). */
    if (epoll_ctl(hv.epfd, EPOLL_CTL_DEL, d->sock, NULL) == 0) {
        hv.nconns--;
        hv_idle_update();
    }
    close(d->sock);
    d->sock = -1;
}
