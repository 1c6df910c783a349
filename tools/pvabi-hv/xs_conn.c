/* SPDX-License-Identifier: MIT */
/*
 * Store connections: accept, who is speaking (SO_PEERCRED), reading
 * messages off a byte stream, and the output queue.
 *
 * Nothing blocks: a message arrives in as many pieces as the client likes
 * (a client that sends half a header and stalls holds only its own 4 KiB
 * buffer), and what the socket does not take is queued.  While output is
 * queued the connection's requests are not read, so a client that does not
 * read its replies stops being served; watch events still queue up, and past
 * XS_OUTQ_MAX bytes the connection is closed.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "xs.h"

#define ACCEPTS_PER_WAKE 64

struct xs_state xs;

/* What the socket has not taken yet of one message. */
struct xs_out {
    struct xs_out *next;
    uint32_t len, off;
    char data[];
};

/* ---- identity ---------------------------------------------------------------- */

struct xs_who xs_conn_who(const struct xs_conn *c)
{
    const struct xs_domain *dom = xs_dom(c->domid);
    struct xs_who who = { c->domid, dom ? dom->target : XS_NOBODY, c->domid == hv.priv_domid };

    return who;
}

const char *xs_conn_name(const struct xs_conn *c)
{
    static char bufs[2][80];
    static unsigned next;
    char *b = bufs[next++ % 2];

    if (c->domid == XS_NOBODY)
        snprintf(b, sizeof(bufs[0]), "store#%u pid %d (no domain selected)", c->serial,
                 (int)c->pid);
    else if (!c->bound)
        snprintf(b, sizeof(bufs[0]), "store#%u toolstack pid %d (as dom %u)", c->serial,
                 (int)c->pid, c->domid);
    else
        snprintf(b, sizeof(bufs[0]), "store#%u dom %u (pid %d)", c->serial, c->domid, (int)c->pid);
    return b;
}

/* The process's one live domain; the toolstack (the privileged domain, as
 * Xen's dom0 socket) for an allowed uid with none; nobody yet with several
 * (XS_CONTROL pvabi-domid picks).  NULL, or why the client is refused. */
static const char *identify(struct xs_conn *c)
{
    struct hv_dom *match = NULL;
    unsigned n = 0;

    for (struct hv_dom *d = hv.all; d; d = d->next)
        if (d->state == DOM_LIVE && !d->toolstack && d->pid == c->pid)
            match = d, n++;
    c->domid = XS_NOBODY;
    if (n > 1)
        return NULL;
    if (n == 1 && !xs.dom[match->domid].introduced)
        return "its domain was released from the store (XS_RELEASE)";
    if (n == 1) {
        c->domid = match->domid;
        c->bound = true;
        return NULL;
    }
    if (!hv_uid_allowed(c->uid))
        return "no domain of its process, and its uid may not speak as the toolstack "
               "(--allow-uid)";
    c->domid = hv.priv_domid;
    return NULL;
}

void xs_conn_set_domid(struct xs_conn *c, uint32_t domid, bool bound)
{
    struct xs_domain *from = xs_dom(c->domid), *to = xs_dom(domid);

    /* Its watches and transactions count for the domain it now speaks for. */
    if (from) {
        from->watches -= c->nwatches;
        from->txs -= c->ntxs;
    }
    if (to) {
        to->watches += c->nwatches;
        to->txs += c->ntxs;
    }
    c->domid = domid;
    c->bound = bound;
}

/* ---- output ---------------------------------------------------------------------- */

static void watch_for(struct xs_conn *c, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = &c->src };

    if (epoll_ctl(hv.epfd, EPOLL_CTL_MOD, c->fd, &ev) != 0)
        hv_warn("store: %s: epoll_ctl: %s", xs_conn_name(c), strerror(errno));
}

/* Bytes the socket took (0 if full), or -1 with errno for a dead peer. */
static ssize_t send_some(int fd, const struct iovec *iov, int n)
{
    struct msghdr m = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n };
    ssize_t r;

    do
        r = sendmsg(fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    return r;
}

/* Why a send failed, for the log: mostly a client that went away. */
static const char *send_error(void)
{
    return errno == EPIPE || errno == ECONNRESET ? "closed its connection" : strerror(errno);
}

static void out_free_all(struct xs_conn *c)
{
    while (c->outq) {
        struct xs_out *o = c->outq;
        c->outq = o->next;
        free(o);
    }
    c->outq_tail = NULL;
    c->outq_bytes = 0;
}

/* Sends queued output; false if @c was closed. */
static bool flush(struct xs_conn *c)
{
    while (c->outq) {
        struct xs_out *o = c->outq;
        struct iovec iov = { o->data + o->off, o->len - o->off };
        ssize_t n = send_some(c->fd, &iov, 1);
        if (n < 0) {
            xs_conn_close(c, send_error());
            return false;
        }
        if (n == 0)
            return true;
        o->off += (uint32_t)n;
        if (o->off < o->len)
            return true;
        c->outq = o->next;
        c->outq_bytes -= o->len;
        free(o);
    }
    c->outq_tail = NULL;
    watch_for(c, EPOLLIN);
    return true;
}

/* Queues the @sent-th byte on of @h + @payload. */
static void enqueue(struct xs_conn *c, const struct xsd_sockmsg *h, const void *payload,
                    uint32_t len, size_t sent)
{
    uint32_t total = (uint32_t)sizeof(*h) + len;
    struct xs_out *o;

    if (c->outq_bytes + total > XS_OUTQ_MAX) {
        xs_conn_close(c, "does not read its socket (output queue full)");
        return;
    }
    o = malloc(sizeof(*o) + total);
    if (!o) {
        xs_conn_close(c, "out of memory for its output");
        return;
    }
    memcpy(o->data, h, sizeof(*h));
    if (len)
        memcpy(o->data + sizeof(*h), payload, len);
    o->len = total;
    o->off = (uint32_t)sent;
    o->next = NULL;
    if (!c->outq)
        watch_for(c, EPOLLOUT); /* and stop reading requests meanwhile */
    if (c->outq_tail)
        c->outq_tail->next = o;
    else
        c->outq = o;
    c->outq_tail = o;
    c->outq_bytes += total;
}

void xs_send(struct xs_conn *c, uint32_t type, uint32_t req_id, uint32_t tx_id, const void *payload,
             uint32_t len)
{
    struct xsd_sockmsg h = { type, req_id, tx_id, len };
    struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)payload, len } };
    ssize_t sent = 0;

    if (c->closed)
        return;
    /* Behind queued output, or it would overtake it. */
    if (!c->outq)
        sent = send_some(c->fd, iov, len ? 2 : 1);
    if (sent < 0)
        xs_conn_close(c, send_error());
    else if ((size_t)sent < sizeof(h) + len)
        enqueue(c, &h, payload, len, (size_t)sent);
}

/* ---- input ------------------------------------------------------------------------- */

enum { RD_DONE, RD_WAIT, RD_CLOSED };

/* Reads what has arrived of the current message. */
static int read_message(struct xs_conn *c)
{
    const uint32_t hl = sizeof(c->hdr);

    while (c->got < hl || c->got < hl + c->hdr.len) {
        bool in_hdr = c->got < hl;
        char *dst = in_hdr ? (char *)&c->hdr + c->got : c->in + (c->got - hl);
        size_t want = in_hdr ? hl - c->got : hl + c->hdr.len - c->got;
        ssize_t n = recv(c->fd, dst, want, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return RD_WAIT;
        if (n <= 0) {
            xs_conn_close(c, n == 0 ? "closed its connection" : strerror(errno));
            return RD_CLOSED;
        }
        c->got += (uint32_t)n;
        /* Xen kills such a connection: there is no resynchronising. */
        if (c->got == hl && c->hdr.len > XENSTORE_PAYLOAD_MAX) {
            hv_warn("store: %s: message of %u bytes (the limit is %u)", xs_conn_name(c), c->hdr.len,
                    XENSTORE_PAYLOAD_MAX);
            xs_conn_close(c, "sent an oversized message");
            return RD_CLOSED;
        }
    }
    return RD_DONE;
}

void xs_conn_event(struct xs_conn *c, uint32_t events)
{
    if (c->closed)
        return;
    if (c->outq && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && !flush(c))
        return;
    /* Requests wait while output does: a client that does not read its
     * replies gets no new ones. */
    for (int i = 0; i < XS_MSGS_PER_WAKE && !c->closed && !c->outq; i++) {
        if (read_message(c) != RD_DONE)
            return;
        c->in[c->hdr.len] = '\0'; /* strings are then always terminated */
        c->got = 0;
        xs_handle(c);
    }
}

/* ---- accepting, closing ------------------------------------------------------------ */

/* At EMFILE a pending client would keep the listening socket readable
 * forever: give up the spare fd to accept it, and close it at once. */
static void refuse_one(void)
{
    int fd;

    hv_warn("store: accept: out of file descriptors; refusing a client");
    if (hv.reserve_fd >= 0)
        close(hv.reserve_fd);
    fd = accept4(xs.lsock, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0)
        close(fd);
    hv.reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static struct xs_conn *conn_alloc(int fd, const struct ucred *cred)
{
    struct xs_conn *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    c->in = malloc(XENSTORE_PAYLOAD_MAX + 1);
    if (!c->in) {
        free(c);
        return NULL;
    }
    c->src.kind = SRC_STORE_CONN;
    c->fd = fd;
    c->pid = cred->pid;
    c->uid = cred->uid;
    c->serial = ++xs.serial;
    c->next_txid = 1;
    return c;
}

static void conn_discard(struct xs_conn *c)
{
    close(c->fd);
    free(c->in);
    free(c);
}

static void conn_new(int fd)
{
    struct ucred cred;
    socklen_t clen = sizeof(cred);
    struct epoll_event ev = { .events = EPOLLIN };
    struct xs_conn *c;
    const char *why;

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0 ||
        !(c = conn_alloc(fd, &cred))) {
        hv_warn("store: accept: %s; dropping a client", strerror(errno));
        close(fd);
        return;
    }
    why = identify(c);
    ev.data.ptr = &c->src;
    if (!why && epoll_ctl(hv.epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
        why = strerror(errno);
    if (why) {
        hv_info("store: refusing pid %d uid %u: %s", (int)cred.pid, (unsigned)cred.uid, why);
        conn_discard(c);
        return;
    }
    c->next = xs.conns;
    xs.conns = c;
    /* A store client keeps the daemon from exiting when idle, as a domain. */
    hv.nconns++;
    hv_idle_update();
    hv_info("store: %s connected (uid %u)", xs_conn_name(c), (unsigned)c->uid);
}

void xs_accept(void)
{
    for (int i = 0; i < ACCEPTS_PER_WAKE; i++) {
        int fd = accept4(xs.lsock, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            conn_new(fd);
            continue;
        }
        if (errno == EMFILE || errno == ENFILE)
            refuse_one();
        else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
            hv_warn("store: accept: %s", strerror(errno));
        return;
    }
}

void xs_conn_close(struct xs_conn *c, const char *why)
{
    struct xs_domain *dom = xs_dom(c->domid);

    if (c->closed)
        return;
    c->closed = true;
    hv_info("store: %s: closing: %s", xs_conn_name(c), why);
    epoll_ctl(hv.epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    out_free_all(c);
    /* Its quota counts go now; its memory at the end of the batch. */
    if (dom) {
        dom->watches -= c->nwatches;
        dom->txs -= c->ntxs;
    }
    c->nwatches = c->ntxs = 0;
    hv.nconns--;
    hv_idle_update();
}

void xs_free_closed(void)
{
    struct xs_conn **p = &xs.conns;

    while (*p) {
        struct xs_conn *c = *p;
        if (!c->closed) {
            p = &c->next;
            continue;
        }
        *p = c->next;
        xs_watch_drop_all(c);
        xs_tx_drop_all(c);
        free(c->in);
        free(c);
    }
}

/* ---- start and stop ---------------------------------------------------------------- */

static int special_init(void)
{
    for (int i = 0; i < 2; i++) {
        xs.special[i].p = calloc(1, sizeof(*xs.special[i].p));
        if (!xs.special[i].p)
            return ENOMEM;
        xs.special[i].n = 1;
        xs.special[i].p[0].id = hv.priv_domid; /* "n<priv>": the privileged domain only */
    }
    return 0;
}

int xs_init(int lsock)
{
    xs.lsock = lsock;
    xs.listen_src.kind = SRC_STORE_LISTEN;
    for (uint32_t i = 0; i < HV_DOMID_LIMIT; i++)
        xs.dom[i].target = XS_NOBODY;
    /* Xen's dom0 is introduced for as long as xenstored runs. */
    xs.dom[hv.priv_domid].introduced = true;
    xs.dom[hv.priv_domid].incarnation = ++xs.incarnations;
    return special_init() || xs_tree_init() ? -1 : 0;
}

void xs_close_all(void)
{
    for (struct xs_conn *c = xs.conns; c; c = c->next)
        xs_conn_close(c, "the daemon is stopping");
    xs_free_closed();
}

void xs_teardown(void)
{
    xs_close_all();
    xs_tree_free();
    for (int i = 0; i < 2; i++)
        xs_perms_free(&xs.special[i]);
    if (xs.lsock >= 0)
        close(xs.lsock);
    xs.lsock = -1;
}
