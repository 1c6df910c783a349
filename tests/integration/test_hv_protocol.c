/* SPDX-License-Identifier: MIT */
/*
 * pvabi-hv spoken to raw: each test starts a private daemon (the binary in
 * $PVABI_HV, or argv[1]) on a socket in a fresh mkdtemp directory, talks the
 * wire protocol of src/platform/local/proto.h over SOCK_SEQPACKET, and stops
 * it with SIGTERM at teardown, checking that it exits 0 (under ASan that
 * also means LeakSanitizer found nothing).
 *
 * Nothing sleeps: readiness comes through --ready-fd, a domain's death is
 * observed through a channel it had with a witness (PORT_CLOSED), and every
 * wait is a poll() whose long timeout only guards against a hang.
 */
#include "hypercall/xen-abi.h" /* first: it lifts __STRICT_ANSI__ for Xen's headers */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "platform/local/proto.h"
#include "pvabi-config.h"

/* A guard against hangs only; nothing waits for it to pass. */
#define WAIT_MS 30000
#define CLOSED  1 /* cl_call() result when the daemon hung up */
/* Xen's DOMID_FIRST_RESERVED: no domain has this domid or a higher one. */
#define DOMID_RESERVED 32752

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

static const char *hv_bin;

/* ---- a private daemon ------------------------------------------------------ */

struct hvd {
    pid_t pid;
    char dir[64];
    char sock[128];
};

static pid_t hvd_spawn(struct hvd *d, const char *const *extra, int ready_w)
{
    const char *argv[32] = { hv_bin, "--socket", d->sock };
    char fdarg[16];
    int n = 3;
    pid_t pid = fork();

    if (pid != 0)
        return pid;
    /* A test that dies (a sanitizer's abort) must not leave its daemon
     * holding meson's output pipe. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (ready_w >= 0) {
        int w = dup(ready_w); /* without O_CLOEXEC: it must survive exec */
        snprintf(fdarg, sizeof(fdarg), "%d", w);
        argv[n++] = "--ready-fd";
        argv[n++] = fdarg;
    }
    for (int i = 0; extra && extra[i] && n < 30; i++)
        argv[n++] = extra[i];
    execv(hv_bin, (char **)argv);
    _exit(127);
}

static void hvd_paths(struct hvd *d)
{
    strcpy(d->dir, "/tmp/pvabi-hv-test-XXXXXX");
    assert_non_null(mkdtemp(d->dir));
    /* "run" does not exist yet: the daemon makes it, mode 0700. */
    snprintf(d->sock, sizeof(d->sock), "%s/run/hv.sock", d->dir);
}

/* Returns 1 once the daemon wrote its ready byte, 0 if it exited first. */
static int hvd_start_with(struct hvd *d, const char *const *extra)
{
    int p[2];
    char c;
    struct pollfd pfd;

    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    d->pid = hvd_spawn(d, extra, p[1]);
    assert_true(d->pid > 0);
    close(p[1]);
    pfd = (struct pollfd){ .fd = p[0], .events = POLLIN };
    assert_int_equal(poll(&pfd, 1, WAIT_MS), 1);
    ssize_t n = read(p[0], &c, 1);
    close(p[0]);
    return n == 1;
}

static void hvd_start(struct hvd *d, const char *const *extra)
{
    hvd_paths(d);
    assert_int_equal(hvd_start_with(d, extra), 1);
}

static int hvd_wait(pid_t pid)
{
    int st;

    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void hvd_remove_dir(struct hvd *d)
{
    char p[192];

    snprintf(p, sizeof(p), "%s.lock", d->sock);
    unlink(p);
    unlink(d->sock);
    snprintf(p, sizeof(p), "%s/run", d->dir);
    rmdir(p);
    rmdir(d->dir);
}

/* SIGTERM: a clean exit (0) that removes the socket. */
static void hvd_stop(struct hvd *d)
{
    struct stat st;

    assert_int_equal(kill(d->pid, SIGTERM), 0);
    assert_int_equal(hvd_wait(d->pid), 0);
    assert_int_not_equal(stat(d->sock, &st), 0);
    hvd_remove_dir(d);
}

static int count_fds(pid_t pid)
{
    char p[64];
    DIR *dir;
    int n = 0;

    snprintf(p, sizeof(p), "/proc/%d/fd", (int)pid);
    dir = opendir(p);
    assert_non_null(dir);
    while (readdir(dir))
        n++;
    closedir(dir);
    return n - 2;
}

static long rss_kib(pid_t pid)
{
    char p[64], line[256];
    long kib = -1;
    FILE *f;

    snprintf(p, sizeof(p), "/proc/%d/status", (int)pid);
    f = fopen(p, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* ---- a raw client -------------------------------------------------------------- */

struct msg {
    struct hv_hdr h;
    uint8_t p[HV_MSG_MAX];
    int fds[HV_FDS_MAX];
    unsigned nfds;
};

struct notice {
    uint16_t op;
    struct hv_port_notice n;
    int fd;
};

struct cl {
    int s;
    uint32_t seq;
    uint32_t domid;
    struct notice q[HV_PORTS_MAX]; /* notices not yet waited for */
    unsigned nq;
};

static int sock_connect(const struct hvd *d)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

    assert_true(s >= 0);
    strcpy(sa.sun_path, d->sock);
    assert_int_equal(connect(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return s;
}

static void close_fds(const int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        close(fds[i]);
}

static ssize_t raw_send(int s, const void *buf, size_t len, const int *fds, unsigned nfds)
{
    union {
        struct cmsghdr c;
        char b[CMSG_SPACE(sizeof(int) * 256)];
    } ctl;
    struct iovec iov = { (void *)buf, len };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };

    if (nfds) {
        memset(&ctl, 0, sizeof(ctl));
        m.msg_control = ctl.b;
        m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    return sendmsg(s, &m, MSG_NOSIGNAL);
}

static void send_req(int s, uint16_t op, uint32_t seq, const void *p, uint32_t len, const int *fds,
                     unsigned nfds)
{
    uint8_t buf[HV_MSG_MAX];
    struct hv_hdr h = { HV_MAGIC, op, 0, seq, 0, len, nfds };

    assert_true(len <= sizeof(buf) - sizeof(h));
    memcpy(buf, &h, sizeof(h));
    if (len)
        memcpy(buf + sizeof(h), p, len);
    assert_int_equal(raw_send(s, buf, sizeof(h) + len, fds, nfds), (ssize_t)(sizeof(h) + len));
}

/* One packet; -1 when the daemon closed the connection. */
static int recv_msg(int s, struct msg *m)
{
    union {
        struct cmsghdr c;
        char b[CMSG_SPACE(sizeof(int) * HV_FDS_MAX)];
    } ctl;
    uint8_t buf[HV_MSG_MAX];
    struct iovec iov = { buf, sizeof(buf) };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b };
    struct pollfd pfd = { .fd = s, .events = POLLIN };
    ssize_t n;

    mh.msg_controllen = sizeof(ctl.b);
    assert_int_equal(poll(&pfd, 1, WAIT_MS), 1);
    n = recvmsg(s, &mh, MSG_CMSG_CLOEXEC);
    if (n <= 0)
        return -1;
    assert_true((size_t)n >= sizeof(m->h));
    memcpy(&m->h, buf, sizeof(m->h));
    memcpy(m->p, buf + sizeof(m->h), (size_t)n - sizeof(m->h));
    assert_int_equal(m->h.magic, HV_MAGIC);
    assert_int_equal(m->h.len, (size_t)n - sizeof(m->h));
    m->nfds = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        memcpy(m->fds + m->nfds, CMSG_DATA(c), k * sizeof(int));
        m->nfds += (unsigned)k;
    }
    assert_int_equal(m->h.nfds, m->nfds);
    return 0;
}

static void queue_notice(struct cl *c, const struct msg *m)
{
    struct notice *q = &c->q[c->nq++];

    assert_true(c->nq <= HV_PORTS_MAX);
    assert_int_equal(m->h.flags, HV_F_NOTICE);
    assert_int_equal(m->h.seq, 0);
    assert_int_equal(m->h.len, sizeof(q->n));
    q->op = m->h.op;
    memcpy(&q->n, m->p, sizeof(q->n));
    q->fd = m->nfds ? m->fds[0] : -1;
    assert_int_equal(m->nfds, m->h.op == HV_NOTICE_PORT_CONNECTED ? 1 : 0);
}

/* Receives the reply to request @seq, queueing notices that come first;
 * returns its status, or CLOSED if the daemon hung up instead. */
static int32_t cl_reply(struct cl *c, uint16_t op, uint32_t seq, struct msg *m)
{
    for (;;) {
        if (recv_msg(c->s, m) < 0)
            return CLOSED;
        if (m->h.flags & HV_F_NOTICE) {
            queue_notice(c, m);
            continue;
        }
        assert_int_equal(m->h.flags, HV_F_REPLY);
        assert_int_equal(m->h.seq, seq);
        assert_int_equal(m->h.op, op);
        if (m->h.status)
            assert_int_equal(m->nfds, 0);
        return m->h.status;
    }
}

/* Sends a request and returns the reply's status (see cl_reply()). */
static int32_t cl_call(struct cl *c, uint16_t op, const void *p, uint32_t len, const int *fds,
                       unsigned nfds, struct msg *m)
{
    uint32_t seq = ++c->seq;

    send_req(c->s, op, seq, p, len, fds, nfds);
    return cl_reply(c, op, seq, m);
}

static int32_t cl_hello(struct cl *c, int32_t want, uint32_t version, struct hv_hello_rsp *out)
{
    struct hv_hello_req req = { version, want };
    struct msg m;
    int32_t st = cl_call(c, HV_OP_HELLO, &req, sizeof(req), NULL, 0, &m);

    if (st == 0) {
        assert_int_equal(m.h.len, sizeof(*out));
        memcpy(out, m.p, sizeof(*out));
        c->domid = out->domid;
    }
    return st;
}

static void cl_open(struct cl *c, const struct hvd *d, int32_t want)
{
    struct hv_hello_rsp r;

    memset(c, 0, sizeof(*c));
    c->s = sock_connect(d);
    assert_int_equal(cl_hello(c, want, HV_PROTO_VERSION, &r), 0);
    assert_int_equal(r.version, HV_PROTO_VERSION);
}

/* The domain dies: the daemon sees its socket close. */
static void cl_die(struct cl *c)
{
    for (unsigned i = 0; i < c->nq; i++)
        if (c->q[i].fd >= 0)
            close(c->q[i].fd);
    close(c->s);
    c->s = -1;
}

static int32_t cl_ping(struct cl *c)
{
    struct msg m;

    return cl_call(c, HV_OP_PING, NULL, 0, NULL, 0, &m);
}

/* Waits for a notice about @port; returns its fd (or -1). */
static int cl_wait_notice(struct cl *c, uint16_t op, uint32_t port, struct hv_port_notice *out)
{
    struct msg m;

    for (;;) {
        for (unsigned i = 0; i < c->nq; i++) {
            if (c->q[i].op != op || c->q[i].n.port != port)
                continue;
            int fd = c->q[i].fd;
            if (out)
                *out = c->q[i].n;
            c->q[i] = c->q[--c->nq];
            return fd;
        }
        assert_int_equal(recv_msg(c->s, &m), 0);
        assert_true(m.h.flags & HV_F_NOTICE);
        queue_notice(c, &m);
    }
}

/* ---- event channels ---------------------------------------------------------- */

static int32_t cl_alloc(struct cl *c, uint32_t remote, uint32_t *port, int *efd)
{
    struct hv_evtchn_alloc_req req = { remote };
    struct msg m;
    int32_t st = cl_call(c, HV_OP_EVTCHN_ALLOC, &req, sizeof(req), NULL, 0, &m);

    if (st == 0) {
        assert_int_equal(m.nfds, 1);
        memcpy(port, m.p, sizeof(*port));
        *efd = m.fds[0];
    }
    return st;
}

static int32_t cl_bind(struct cl *c, uint32_t rdom, uint32_t rport, uint32_t *port, int *rx,
                       int *tx)
{
    struct hv_evtchn_bind_req req = { rdom, rport };
    struct msg m;
    int32_t st = cl_call(c, HV_OP_EVTCHN_BIND, &req, sizeof(req), NULL, 0, &m);

    if (st == 0) {
        assert_int_equal(m.nfds, 2);
        memcpy(port, m.p, sizeof(*port));
        *rx = m.fds[0];
        *tx = m.fds[1];
    }
    return st;
}

static int32_t cl_close_port(struct cl *c, uint32_t port)
{
    struct hv_evtchn_close_req req = { port };
    struct msg m;

    return cl_call(c, HV_OP_EVTCHN_CLOSE, &req, sizeof(req), NULL, 0, &m);
}

static int readable(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };

    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static int wait_readable(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };

    return poll(&p, 1, WAIT_MS) == 1 && (p.revents & POLLIN);
}

static uint64_t efd_read(int fd)
{
    uint64_t v = 0;

    assert_int_equal(read(fd, &v, sizeof(v)), sizeof(v));
    return v;
}

static void efd_kick(int fd)
{
    uint64_t one = 1;

    assert_int_equal(write(fd, &one, sizeof(one)), sizeof(one));
}

/* The eventfd's count once the daemon is done with a death whose
 * PORT_CLOSED @c just saw: the notice goes out before the wake-up, and a
 * round trip afterwards returns only once the whole death is handled. */
static uint64_t efd_settled(struct cl *c, int fd)
{
    assert_int_equal(cl_ping(c), 0);
    return readable(fd) ? efd_read(fd) : 0;
}

/* A channel from @v to @w, so @w sees @v's death as PORT_CLOSED. */
struct witness {
    uint32_t vport, wport;
    int vrx, wrx, wtx;
};

static void witness_arm(struct cl *v, struct cl *w, struct witness *x)
{
    assert_int_equal(cl_alloc(v, w->domid, &x->vport, &x->vrx), 0);
    assert_int_equal(cl_bind(w, v->domid, x->vport, &x->wport, &x->wrx, &x->wtx), 0);
    close(cl_wait_notice(v, HV_NOTICE_PORT_CONNECTED, x->vport, NULL));
}

/* Kills @v and returns once the daemon has finished with its death. */
static void witness_kill(struct cl *v, struct cl *w, struct witness *x)
{
    struct hv_port_notice n;

    close(x->vrx);
    cl_die(v);
    assert_int_equal(cl_wait_notice(w, HV_NOTICE_PORT_CLOSED, x->wport, &n), -1);
    assert_int_equal(n.remote_port, x->vport);
    assert_true(wait_readable(x->wrx));
    assert_int_equal(cl_close_port(w, x->wport), 0);
    close(x->wrx);
    close(x->wtx);
}

/* ---- grants ------------------------------------------------------------------ */

#define SEALS_OK (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

/* A memfd of @pages pages with @seals added. */
static int make_memfd(size_t pages, int seals)
{
    int fd = memfd_create("hvtest", MFD_CLOEXEC | MFD_ALLOW_SEALING);

    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)(pages * HV_PAGE_SIZE)), 0);
    if (seals)
        assert_int_equal(fcntl(fd, F_ADD_SEALS, seals), 0);
    return fd;
}

/* A memfd ready for a read-only grant: filled with @fill, then write-sealed. */
static int make_ro_memfd(size_t pages, const char *fill, size_t len)
{
    int fd = make_memfd(pages, F_SEAL_SHRINK | F_SEAL_GROW);

    assert_int_equal(pwrite(fd, fill, len, 0), (ssize_t)len);
    assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE | F_SEAL_SEAL), 0);
    return fd;
}

static int32_t cl_share(struct cl *c, uint32_t domid, int fd, uint32_t count, int ro,
                        uint32_t *refs)
{
    struct hv_grant_share_req req = { domid, count, (uint32_t)ro, 0 };
    struct hv_grant_share_rsp out;
    struct msg m;
    int32_t st = cl_call(c, HV_OP_GRANT_SHARE, &req, sizeof(req), &fd, fd >= 0 ? 1 : 0, &m);

    if (st == 0) {
        memcpy(&out, m.p, sizeof(out));
        assert_int_equal(out.count, count);
        assert_int_equal(m.h.len, sizeof(out) + count * sizeof(uint32_t));
        memcpy(refs, m.p + sizeof(out), count * sizeof(uint32_t));
        for (uint32_t i = 0; i < count; i++)
            assert_true(refs[i] >= HV_FIRST_GREF && refs[i] < HV_GRANTS_MAX);
    }
    return st;
}

static uint32_t share_one(struct cl *c, uint32_t domid, int ro)
{
    /* A read-only grant must be write-sealed, as the library does it. */
    int fd = make_memfd(1, SEALS_OK | (ro ? F_SEAL_FUTURE_WRITE : 0));
    uint32_t ref;

    assert_int_equal(cl_share(c, domid, fd, 1, ro, &ref), 0);
    close(fd);
    return ref;
}

static int32_t refs_call(struct cl *c, uint16_t op, uint32_t domid, const uint32_t *refs,
                         uint32_t count, int ro, struct msg *m)
{
    uint8_t buf[sizeof(struct hv_grant_refs_req) + HV_REFS_MAX * sizeof(uint32_t)];
    struct hv_grant_refs_req req = { domid, count, (uint32_t)ro, 0 };

    memcpy(buf, &req, sizeof(req));
    memcpy(buf + sizeof(req), refs, count * sizeof(uint32_t));
    return cl_call(c, op, buf, (uint32_t)(sizeof(req) + count * sizeof(uint32_t)), NULL, 0, m);
}

struct mapped {
    int32_t status[HV_REFS_MAX];
    struct hv_grant_map_slot slot[HV_REFS_MAX];
    int fds[HV_FDS_MAX];
    unsigned nfds;
};

static int32_t cl_map(struct cl *c, uint32_t domid, const uint32_t *refs, uint32_t count, int ro,
                      struct mapped *out)
{
    struct hv_grant_map_rsp rsp;
    struct msg m;
    int32_t st = refs_call(c, HV_OP_GRANT_MAP, domid, refs, count, ro, &m);

    assert_int_equal(m.h.len, sizeof(rsp) + count * sizeof(out->slot[0]));
    memcpy(&rsp, m.p, sizeof(rsp));
    assert_int_equal(rsp.count, count);
    assert_int_equal(rsp.nfds, m.nfds);
    memcpy(out->slot, m.p + sizeof(rsp), count * sizeof(out->slot[0]));
    for (uint32_t i = 0; i < count; i++)
        out->status[i] = out->slot[i].status;
    memcpy(out->fds, m.fds, m.nfds * sizeof(int));
    out->nfds = m.nfds;
    return st;
}

static int32_t cl_unmap(struct cl *c, uint32_t domid, const uint32_t *refs, uint32_t count)
{
    struct msg m;

    return refs_call(c, HV_OP_GRANT_UNMAP, domid, refs, count, 0, &m);
}

/* Sends a request flagged HV_F_NOREPLY: nothing comes back, whatever
 * happens (the next reply on @c must be that of a later request). */
static void cl_send_noreply(struct cl *c, uint16_t op, const void *p, uint32_t len)
{
    uint8_t buf[HV_MSG_MAX];
    struct hv_hdr h = { HV_MAGIC, op, HV_F_NOREPLY, ++c->seq, 0, len, 0 };

    memcpy(buf, &h, sizeof(h));
    if (len)
        memcpy(buf + sizeof(h), p, len);
    assert_int_equal(raw_send(c->s, buf, sizeof(h) + len, NULL, 0), (ssize_t)(sizeof(h) + len));
}

/* GRANT_UNMAP (or another refs op) without waiting for a reply. */
static void cl_refs_noreply(struct cl *c, uint16_t op, uint32_t domid, const uint32_t *refs,
                            uint32_t count)
{
    uint8_t buf[sizeof(struct hv_grant_refs_req) + HV_REFS_MAX * sizeof(uint32_t)];
    struct hv_grant_refs_req req = { domid, count, 0, 0 };

    memcpy(buf, &req, sizeof(req));
    memcpy(buf + sizeof(req), refs, count * sizeof(uint32_t));
    cl_send_noreply(c, op, buf, (uint32_t)(sizeof(req) + count * sizeof(uint32_t)));
}

static int32_t cl_revoke(struct cl *c, const uint32_t *refs, uint32_t count)
{
    struct msg m;

    return refs_call(c, HV_OP_GRANT_REVOKE, 0, refs, count, 0, &m);
}

static int32_t cl_notify(struct cl *c, uint32_t domid, uint32_t ref, uint32_t offset, uint32_t port)
{
    struct hv_unmap_notify_req req = { domid, ref, offset, port };
    struct msg m;

    return cl_call(c, HV_OP_UNMAP_NOTIFY, &req, sizeof(req), NULL, 0, &m);
}

static uint8_t *map_page(int fd, uint32_t page, int prot)
{
    void *p = mmap(NULL, HV_PAGE_SIZE, prot, MAP_SHARED, fd, (off_t)page * HV_PAGE_SIZE);

    assert_true(p != MAP_FAILED);
    return p;
}

/* ---- fixtures ------------------------------------------------------------- */

static int setup(void **state)
{
    struct hvd *d = calloc(1, sizeof(*d));

    hvd_start(d, NULL);
    *state = d;
    return 0;
}

static int teardown(void **state)
{
    struct hvd *d = *state;

    hvd_stop(d);
    free(d);
    return 0;
}

/* ---- HELLO and domids ------------------------------------------------------------- */

static void test_hv_hello_domids_increase(void **state)
{
    struct hvd *d = *state;
    struct cl a, b, c, w;
    struct witness x;

    cl_open(&w, d, -1);
    cl_open(&a, d, -1);
    cl_open(&b, d, -1);
    assert_int_equal(w.domid, 1);
    assert_int_equal(a.domid, 2);
    assert_int_equal(b.domid, 3);
    witness_arm(&a, &w, &x);
    witness_kill(&a, &w, &x);
    /* a's domid is free again, but a new domain gets the next one. */
    cl_open(&c, d, -1);
    assert_int_equal(c.domid, 4);
    cl_die(&c);
    cl_die(&b);
    cl_die(&w);
}

static void test_hv_hello_specific_domid(void **state)
{
    struct hvd *d = *state;
    struct cl a, b;
    struct hv_hello_rsp r;

    cl_open(&a, d, 77);
    assert_int_equal(a.domid, 77);
    memset(&b, 0, sizeof(b));
    b.s = sock_connect(d);
    assert_int_equal(cl_hello(&b, 77, HV_PROTO_VERSION, &r), -EADDRINUSE);
    assert_int_equal(cl_hello(&b, DOMID_RESERVED, HV_PROTO_VERSION, &r), -EINVAL);
    assert_int_equal(cl_hello(&b, -3, HV_PROTO_VERSION, &r), -EINVAL); /* -2: a toolstack */
    assert_int_equal(cl_hello(&b, -1, HV_PROTO_VERSION + 1, &r), -EPROTONOSUPPORT);
    /* A failed HELLO leaves the connection waiting for a good one. */
    assert_int_equal(cl_hello(&b, 78, HV_PROTO_VERSION, &r), 0);
    assert_int_equal(r.domid, 78);
    assert_int_equal(r.privileged, 0);
    cl_die(&a);
    cl_die(&b);
}

static void test_hv_hello_privileged_one_holder(void **state)
{
    struct hvd *d = *state;
    struct cl p, q, w;
    struct hv_hello_rsp r = { 0 };
    struct witness x;

    cl_open(&w, d, -1);
    memset(&p, 0, sizeof(p));
    p.s = sock_connect(d);
    assert_int_equal(cl_hello(&p, 0, HV_PROTO_VERSION, &r), 0);
    assert_int_equal(r.domid, 0);
    assert_int_equal(r.privileged, 1);
    memset(&q, 0, sizeof(q));
    q.s = sock_connect(d);
    assert_int_equal(cl_hello(&q, 0, HV_PROTO_VERSION, &r), -EADDRINUSE);
    witness_arm(&p, &w, &x);
    witness_kill(&p, &w, &x);
    assert_int_equal(cl_hello(&q, 0, HV_PROTO_VERSION, &r), 0);
    assert_int_equal(r.privileged, 1);
    cl_die(&q);
    cl_die(&w);
}

static void test_hv_hello_privileged_uid_refused(void **state)
{
    struct hvd d;
    char uid[16];
    const char *args[] = { "--allow-uid", uid, "--privileged-domid", "2", NULL };
    struct cl a, b;
    struct hv_hello_rsp r;

    (void)state;
    snprintf(uid, sizeof(uid), "%u", (unsigned)getuid() + 1);
    hvd_start(&d, args);
    memset(&a, 0, sizeof(a));
    a.s = sock_connect(&d);
    assert_int_equal(cl_hello(&a, 2, HV_PROTO_VERSION, &r), -EPERM);
    /* 0 is an ordinary domid when another one is privileged. */
    assert_int_equal(cl_hello(&a, 0, HV_PROTO_VERSION, &r), 0);
    assert_int_equal(r.privileged, 0);
    cl_open(&b, &d, -1);
    assert_int_equal(b.domid, 1);
    cl_die(&a);
    cl_die(&b);
    cl_open(&a, &d, -1);
    assert_int_equal(a.domid, 3); /* 2 is skipped: it is the privileged one */
    cl_die(&a);
    hvd_stop(&d);
}

static void test_hv_request_before_hello_closes(void **state)
{
    struct hvd *d = *state;
    struct cl a, b;

    memset(&a, 0, sizeof(a));
    a.s = sock_connect(d);
    assert_int_equal(cl_ping(&a), CLOSED);
    cl_die(&a);
    cl_open(&b, d, -1);
    assert_int_equal(cl_ping(&b), 0);
    cl_die(&b);
}

/* ---- event channels ---------------------------------------------------------------- */

static void test_hv_evtchn_connect_notify_close(void **state)
{
    struct hvd *d = *state;
    struct cl a, b;
    struct hv_port_notice n;
    uint32_t pa = 0, pb = 0, p2 = 0;
    int ra = -1, rb = -1, ta = -1, tb = -1, r2 = -1, t2 = -1;

    cl_open(&a, d, -1);
    cl_open(&b, d, -1);
    assert_int_equal(cl_alloc(&a, b.domid, &pa, &ra), 0);
    assert_int_equal(pa, 1);
    assert_int_equal(cl_bind(&b, a.domid, pa, &pb, &rb, &ta), 0);
    tb = cl_wait_notice(&a, HV_NOTICE_PORT_CONNECTED, pa, &n);
    assert_true(tb >= 0);
    assert_int_equal(n.remote_domid, b.domid);
    assert_int_equal(n.remote_port, pb);
    /* b -> a and a -> b through the eventfds alone. */
    efd_kick(ta);
    assert_true(readable(ra));
    assert_int_equal(efd_read(ra), 1);
    efd_kick(tb);
    assert_int_equal(efd_read(rb), 1);
    assert_false(readable(ra));
    /* b closes: a hears, and a sleeping a would wake. */
    assert_int_equal(cl_close_port(&b, pb), 0);
    assert_int_equal(cl_wait_notice(&a, HV_NOTICE_PORT_CLOSED, pa, &n), -1);
    assert_int_equal(n.remote_port, pb);
    assert_true(wait_readable(ra));
    assert_int_equal(cl_close_port(&b, pb), -EINVAL);
    /* Offered again to b's domid only. */
    struct cl c;
    int rc_ = -1, tc_ = -1;
    uint32_t pc_ = 0;
    cl_open(&c, d, -1);
    assert_int_equal(cl_bind(&c, a.domid, pa, &pc_, &rc_, &tc_), -EPERM);
    cl_die(&c);
    /* As in Xen, a's port is offered again to b's domid: b binds it again,
     * a hears, and the new channel carries events. */
    assert_int_equal(cl_bind(&b, a.domid, pa, &p2, &r2, &t2), 0);
    int t3 = cl_wait_notice(&a, HV_NOTICE_PORT_CONNECTED, pa, &n);
    assert_true(t3 >= 0);
    assert_int_equal(n.remote_port, p2);
    efd_kick(t2);
    assert_true(wait_readable(ra));
    assert_int_equal(cl_close_port(&a, pa), 0);
    assert_int_equal(cl_close_port(&a, pa), -EINVAL);
    assert_int_equal(cl_wait_notice(&b, HV_NOTICE_PORT_CLOSED, p2, &n), -1);
    close_fds((int[]){ ra, rb, ta, tb, r2, t2, t3 }, 7);
    cl_die(&a);
    cl_die(&b);
}

static void test_hv_evtchn_bind_refusals(void **state)
{
    struct hvd *d = *state;
    struct cl a, b, c;
    uint32_t pa = 0, p = 0;
    int ra = -1, r = -1, t = -1;

    cl_open(&a, d, -1);
    cl_open(&b, d, -1);
    cl_open(&c, d, -1);
    assert_int_equal(cl_alloc(&a, c.domid, &pa, &ra), 0);
    assert_int_equal(cl_bind(&b, a.domid, pa, &p, &r, &t), -EPERM);
    assert_int_equal(cl_bind(&b, a.domid, pa + 1, &p, &r, &t), -EINVAL);
    assert_int_equal(cl_bind(&b, a.domid, 0, &p, &r, &t), -EINVAL);
    assert_int_equal(cl_bind(&b, a.domid, HV_PORTS_MAX, &p, &r, &t), -EINVAL);
    assert_int_equal(cl_bind(&b, 999, 1, &p, &r, &t), -ESRCH);
    assert_int_equal(cl_bind(&b, 70000, 1, &p, &r, &t), -ESRCH);
    assert_int_equal(cl_alloc(&a, DOMID_RESERVED, &p, &r), -EINVAL);
    /* Once c bound it, the port is no longer unbound. */
    assert_int_equal(cl_bind(&c, a.domid, pa, &p, &r, &t), 0);
    close_fds((int[]){ r, t }, 2);
    assert_int_equal(cl_bind(&c, a.domid, pa, &p, &r, &t), -EINVAL);
    assert_int_equal(cl_close_port(&b, 1), -EINVAL);
    close(ra);
    cl_die(&a);
    cl_die(&b);
    cl_die(&c);
}

static void test_hv_evtchn_loopback(void **state)
{
    struct hvd *d = *state;
    struct cl a;
    uint32_t p1 = 0, p2 = 0;
    int r1 = -1, r2 = -1, t2 = -1, t1 = -1;

    cl_open(&a, d, -1);
    assert_int_equal(cl_alloc(&a, a.domid, &p1, &r1), 0);
    assert_int_equal(cl_bind(&a, a.domid, p1, &p2, &r2, &t2), 0);
    t1 = cl_wait_notice(&a, HV_NOTICE_PORT_CONNECTED, p1, NULL);
    efd_kick(t2);
    assert_int_equal(efd_read(r1), 1);
    efd_kick(t1);
    assert_int_equal(efd_read(r2), 1);
    assert_int_equal(cl_close_port(&a, p2), 0);
    assert_int_equal(cl_wait_notice(&a, HV_NOTICE_PORT_CLOSED, p1, NULL), -1);
    assert_true(wait_readable(r1));
    close_fds((int[]){ r1, r2, t1, t2 }, 4);
    cl_die(&a);
}

/* As in Xen, a port may be offered to a domid nobody holds yet. */
static void test_hv_evtchn_offer_to_future_domain(void **state)
{
    struct hvd *d = *state;
    struct cl a, b;
    uint32_t pa = 0, pb = 0;
    int ra = -1, rb = -1, ta = -1;

    cl_open(&a, d, -1);
    assert_int_equal(cl_alloc(&a, 999, &pa, &ra), 0);
    cl_open(&b, d, 999);
    assert_int_equal(cl_bind(&b, a.domid, pa, &pb, &rb, &ta), 0);
    close(cl_wait_notice(&a, HV_NOTICE_PORT_CONNECTED, pa, NULL));
    close_fds((int[]){ ra, rb, ta }, 3);
    cl_die(&a);
    cl_die(&b);
}

static void test_hv_evtchn_peer_death_wakes(void **state)
{
    struct hvd *d = *state;
    struct cl a, b;
    struct hv_port_notice n;
    uint32_t pa = 0, pb = 0;
    int ra = -1, rb = -1, ta = -1;

    cl_open(&a, d, -1);
    cl_open(&b, d, -1);
    assert_int_equal(cl_alloc(&a, b.domid, &pa, &ra), 0);
    assert_int_equal(cl_bind(&b, a.domid, pa, &pb, &rb, &ta), 0);
    close(cl_wait_notice(&a, HV_NOTICE_PORT_CONNECTED, pa, NULL));
    close_fds((int[]){ rb, ta }, 2);
    assert_false(readable(ra));
    cl_die(&b);
    assert_int_equal(cl_wait_notice(&a, HV_NOTICE_PORT_CLOSED, pa, &n), -1);
    assert_int_equal(n.remote_domid, b.domid);
    assert_int_equal(n.remote_port, pb);
    assert_int_equal(efd_settled(&a, ra), 1);
    close(ra);
    cl_die(&a);
}

/* ---- grants -------------------------------------------------------------------------- */

static void test_hv_grant_share_validation(void **state)
{
    struct hvd *d = *state;
    struct cl a;
    uint32_t refs[HV_REFS_MAX + 1]; /* room for the over-long share it must refuse */
    int p[2];
    int fd;

    cl_open(&a, d, -1);
    fd = make_memfd(1, 0); /* unsealed */
    assert_int_equal(cl_share(&a, 5, fd, 1, 0, refs), -EINVAL);
    close(fd);
    fd = make_memfd(2, SEALS_OK); /* two pages for a count of one */
    assert_int_equal(cl_share(&a, 5, fd, 1, 0, refs), -EINVAL);
    assert_int_equal(cl_share(&a, 5, fd, 3, 0, refs), -EINVAL);
    assert_int_equal(cl_share(&a, 5, fd, 2, 0, refs), 0);
    close(fd);
    fd = make_memfd(1, F_SEAL_SHRINK | F_SEAL_GROW); /* not F_SEAL_SEAL */
    assert_int_equal(cl_share(&a, 5, fd, 1, 0, refs), -EINVAL);
    close(fd);
    fd = make_memfd(1, SEALS_OK);
    assert_int_equal(cl_share(&a, 5, fd, 0, 0, refs), -EINVAL);
    assert_int_equal(cl_share(&a, 5, fd, HV_REFS_MAX + 1, 0, refs), -EINVAL);
    assert_int_equal(cl_share(&a, DOMID_RESERVED, fd, 1, 0, refs), -EINVAL);
    assert_int_equal(cl_share(&a, 5, -1, 1, 0, refs), -EINVAL); /* no fd */
    close(fd);
    assert_int_equal(pipe(p), 0); /* not a memfd */
    assert_int_equal(cl_share(&a, 5, p[0], 1, 0, refs), -EINVAL);
    close_fds(p, 2);
    /* A read-only grant that is not write-sealed: the mapper could reopen
     * its read-only descriptor read-write through /proc. */
    fd = make_memfd(1, SEALS_OK);
    assert_int_equal(cl_share(&a, 5, fd, 1, 1, refs), -EINVAL);
    close(fd);
    /* A write-sealed memfd can back a read-only grant only. */
    fd = make_memfd(1, SEALS_OK | F_SEAL_FUTURE_WRITE);
    assert_int_equal(cl_share(&a, 5, fd, 1, 0, refs), -EINVAL);
    assert_int_equal(cl_share(&a, 5, fd, 1, 1, refs), 0);
    close(fd);
    cl_die(&a);
}

static void test_hv_grant_refs_distinct_and_bounded(void **state)
{
    struct hvd *d = *state;
    struct cl a;
    uint32_t refs[HV_REFS_MAX];
    unsigned total = 0;
    int fd = make_memfd(HV_REFS_MAX, SEALS_OK);
    int32_t st;

    cl_open(&a, d, -1);
    /* refs 8..8191: 8184 of them, then -ENOSPC. */
    while ((st = cl_share(&a, 5, fd, HV_REFS_MAX, 0, refs)) == 0) {
        assert_int_equal(refs[0], HV_FIRST_GREF + total);
        total += HV_REFS_MAX;
    }
    assert_int_equal(st, -ENOSPC);
    assert_int_equal(total, (HV_GRANTS_MAX - HV_FIRST_GREF) / HV_REFS_MAX * HV_REFS_MAX);
    /* Freed refs come back, the longest-freed first. */
    for (uint32_t i = 0; i < HV_REFS_MAX; i++)
        refs[i] = HV_FIRST_GREF + i;
    assert_int_equal(cl_revoke(&a, refs, HV_REFS_MAX), 0);
    assert_int_equal(cl_share(&a, 5, fd, HV_REFS_MAX, 0, refs), 0);
    assert_int_equal(refs[0], HV_FIRST_GREF + total); /* the never-used tail first */
    close(fd);
    cl_die(&a);
}

static void test_hv_grant_map_refusals(void **state)
{
    struct hvd *d = *state;
    struct cl a, b, c;
    struct mapped m;
    uint32_t r, batch[2];

    cl_open(&a, d, -1);
    cl_open(&b, d, -1);
    cl_open(&c, d, -1);
    r = share_one(&a, b.domid, 0);
    assert_int_equal(cl_map(&c, a.domid, &r, 1, 0, &m), -EPERM);
    assert_int_equal(m.status[0], -EPERM);
    assert_int_equal(cl_map(&b, a.domid, (uint32_t[]){ 5000 }, 1, 0, &m), -ENOENT);
    assert_int_equal(cl_map(&b, a.domid, (uint32_t[]){ 3 }, 1, 0, &m), -ENOENT);
    assert_int_equal(cl_map(&b, a.domid, (uint32_t[]){ 100000 }, 1, 0, &m), -ENOENT);
    assert_int_equal(cl_map(&b, 999, &r, 1, 0, &m), -ESRCH);
    assert_int_equal(m.status[0], -ESRCH);
    /* All or nothing, with a status per ref. */
    batch[0] = r;
    batch[1] = r + 1;
    assert_int_equal(cl_map(&b, a.domid, batch, 2, 0, &m), -ENOENT);
    assert_int_equal(m.status[0], 0);
    assert_int_equal(m.status[1], -ENOENT);
    assert_int_equal(m.nfds, 0);
    assert_int_equal(cl_revoke(&a, &r, 1), 0); /* so r was not left mapped */
    assert_int_equal(cl_map(&b, a.domid, &r, 1, 0, &m), -ENOENT);
    cl_die(&a);
    cl_die(&b);
    cl_die(&c);
}

static void test_hv_grant_map_shares_memory(void **state)
{
    struct hvd *d = *state;
    struct cl a, b;
    struct mapped m;
    uint32_t refs[3], r2;
    int fd = make_memfd(2, SEALS_OK), fd2 = make_memfd(1, SEALS_OK);
    uint8_t *mine, *theirs;

    cl_open(&a, d, -1);
    cl_open(&b, d, -1);
    assert_int_equal(cl_share(&a, b.domid, fd, 2, 0, refs), 0);
    assert_int_equal(cl_share(&a, b.domid, fd2, 1, 0, &r2), 0);
    refs[2] = r2;
    mine = map_page(fd, 1, PROT_READ | PROT_WRITE);
    assert_int_equal(cl_map(&b, a.domid, (uint32_t[]){ refs[1], r2, refs[0] }, 3, 0, &m), 0);
    assert_int_equal(m.nfds, 2); /* the distinct memfds */
    assert_int_equal(m.slot[0].page, 1);
    assert_int_equal(m.slot[2].page, 0);
    assert_int_equal(m.slot[0].fd_index, m.slot[2].fd_index);
    assert_int_not_equal(m.slot[0].fd_index, m.slot[1].fd_index);
    theirs = map_page(m.fds[m.slot[0].fd_index], 1, PROT_READ | PROT_WRITE);
    theirs[10] = 0x5a;
    assert_int_equal(mine[10], 0x5a);
    munmap(theirs, HV_PAGE_SIZE);
    munmap(mine, HV_PAGE_SIZE);
    close_fds(m.fds, m.nfds);
    close_fds((int[]){ fd, fd2 }, 2);
    assert_int_equal(cl_unmap(&b, a.domid, refs, 3), 0);
    assert_int_equal(cl_revoke(&a, refs, 3), 0);
    cl_die(&a);
    cl_die(&b);
}

static void assert_read_only_fd(int fd)
{
    uint8_t *p;

    errno = 0;
    assert_true(mmap(NULL, HV_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED);
    assert_int_equal(errno, EACCES);
    p = map_page(fd, 0, PROT_READ);
    assert_int_equal(p[1], 0x77);
    assert_int_not_equal(mprotect(p, HV_PAGE_SIZE, PROT_READ | PROT_WRITE), 0);
    munmap(p, HV_PAGE_SIZE);
    assert_true(pwrite(fd, "x", 1, 0) < 0);
}

/* The attack on a read-only grant: reopen the descriptor read-write through
 * /proc.  The open itself may succeed; the write seal refuses every write. */
static void assert_no_write_through_reopen(int fd)
{
    char path[64];
    int rw;

    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    rw = open(path, O_RDWR | O_CLOEXEC);
    if (rw < 0)
        return; /* refused outright: even better */
    assert_true(mmap(NULL, HV_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, rw, 0) == MAP_FAILED);
    assert_true(pwrite(rw, "x", 1, 0) < 0);
    close(rw);
}

static void test_hv_grant_read_only_descriptor(void **state)
{
    struct hvd *d = *state;
    struct cl a, b;
    struct mapped m;
    uint32_t ro, rw;
    int fd = make_ro_memfd(1, "\x77\x77", 2), fd2 = make_memfd(1, SEALS_OK);

    cl_open(&a, d, -1);
    cl_open(&b, d, -1);
    assert_int_equal(pwrite(fd2, "\x77\x77", 2, 0), 2);
    assert_int_equal(cl_share(&a, b.domid, fd, 1, 1, &ro), 0);
    assert_int_equal(cl_share(&a, b.domid, fd2, 1, 0, &rw), 0);
    assert_int_equal(cl_map(&b, a.domid, &ro, 1, 0, &m), -EPERM);
    assert_int_equal(cl_map(&b, a.domid, &ro, 1, 1, &m), 0);
    assert_int_equal(m.nfds, 1);
    assert_read_only_fd(m.fds[0]);
    assert_no_write_through_reopen(m.fds[0]);
    close(m.fds[0]);
    /* A writable grant mapped read-only gets a read-only descriptor too. */
    assert_int_equal(cl_map(&b, a.domid, &rw, 1, 1, &m), 0);
    assert_read_only_fd(m.fds[0]);
    close(m.fds[0]);
    assert_int_equal(cl_unmap(&b, a.domid, (uint32_t[]){ ro, rw }, 2), 0);
    close_fds((int[]){ fd, fd2 }, 2);
    cl_die(&a);
    cl_die(&b);
}

static void test_hv_grant_revoke_busy_until_unmapped(void **state)
{
    struct hvd *d = *state;
    struct cl a, b;
    struct mapped m;
    uint32_t r, r2;

    cl_open(&a, d, -1);
    cl_open(&b, d, -1);
    r = share_one(&a, b.domid, 0);
    r2 = share_one(&a, b.domid, 0);
    assert_int_equal(cl_map(&b, a.domid, &r, 1, 0, &m), 0);
    close(m.fds[0]);
    assert_int_equal(cl_map(&b, a.domid, &r, 1, 1, &m), 0); /* a second mapping */
    close(m.fds[0]);
    /* All or nothing: r2 is not revoked either. */
    assert_int_equal(cl_revoke(&a, (uint32_t[]){ r2, r }, 2), -EBUSY);
    assert_int_equal(cl_unmap(&b, a.domid, &r, 1), 0);
    assert_int_equal(cl_revoke(&a, &r, 1), -EBUSY);
    assert_int_equal(cl_unmap(&b, a.domid, (uint32_t[]){ r, r }, 2), -EINVAL);
    assert_int_equal(cl_unmap(&b, a.domid, &r, 1), 0);
    assert_int_equal(cl_unmap(&b, a.domid, &r, 1), -EINVAL);
    assert_int_equal(cl_unmap(&b, a.domid, &r2, 1), -EINVAL);
    assert_int_equal(cl_revoke(&a, (uint32_t[]){ r, r }, 2), -EINVAL);
    assert_int_equal(cl_revoke(&a, (uint32_t[]){ r2, r }, 2), 0);
    assert_int_equal(cl_revoke(&a, &r, 1), -EINVAL);
    assert_int_equal(cl_revoke(&b, &r, 1), -EINVAL); /* not b's grant */
    cl_die(&a);
    cl_die(&b);
}

/* Stops the daemon (our child) until hvd_resume(), so that packets queue. */
static void hvd_pause(const struct hvd *d)
{
    int st;

    assert_int_equal(kill(d->pid, SIGSTOP), 0);
    assert_int_equal(waitpid(d->pid, &st, WUNTRACED), d->pid);
    assert_true(WIFSTOPPED(st));
}

static void hvd_resume(const struct hvd *d)
{
    assert_int_equal(kill(d->pid, SIGCONT), 0);
}

/* One round of the test below: @b maps a page of @a, unmaps it without
 * waiting, and @a revokes it at once.  @paused: with the daemon stopped
 * meanwhile and @a's socket made readable before @b's (epoll reports ready
 * sockets in that order), so that the daemon reads the revoke before the
 * unmap, unless it drains @b first. */
static void unmap_then_revoke(const struct hvd *d, struct cl *a, struct cl *b, bool paused)
{
    uint32_t r = share_one(a, b->domid, 0), ping, rv;
    uint8_t req[sizeof(struct hv_grant_refs_req) + sizeof(uint32_t)];
    struct mapped m;
    struct msg msg;

    assert_int_equal(cl_map(b, a->domid, &r, 1, 0, &m), 0);
    close(m.fds[0]);
    if (!paused) {
        cl_refs_noreply(b, HV_OP_GRANT_UNMAP, a->domid, &r, 1);
        assert_int_equal(cl_revoke(a, &r, 1), 0);
        return;
    }
    memcpy(req, &(struct hv_grant_refs_req){ 0, 1, 0, 0 }, sizeof(struct hv_grant_refs_req));
    memcpy(req + sizeof(struct hv_grant_refs_req), &r, sizeof(r));
    /* A round trip of @a's after @b's: @b's socket is no longer on the
     * daemon's ready list when it stops. */
    assert_int_equal(cl_ping(a), 0);
    hvd_pause(d);
    send_req(a->s, HV_OP_PING, ping = ++a->seq, NULL, 0, NULL, 0);
    cl_refs_noreply(b, HV_OP_GRANT_UNMAP, a->domid, &r, 1);
    send_req(a->s, HV_OP_GRANT_REVOKE, rv = ++a->seq, req, sizeof(req), NULL, 0);
    hvd_resume(d);
    assert_int_equal(cl_reply(a, HV_OP_PING, ping, &msg), 0);
    assert_int_equal(cl_reply(a, HV_OP_GRANT_REVOKE, rv, &msg), 0);
}

/* A GRANT_UNMAP sent without waiting, then at once a revoke from another
 * connection: the daemon handles the mapper's queued unmap before it would
 * answer -EBUSY, whichever socket it reads first.  Many times, half of them
 * with the revoke's socket first in the daemon's epoll batch. */
static void test_hv_noreply_unmap_then_revoke_elsewhere_succeeds(void **state)
{
    struct hvd *d = *state;
    struct cl a, b;

    cl_open(&a, d, -1);
    cl_open(&b, d, -1);
    for (int i = 0; i < 200; i++)
        unmap_then_revoke(d, &a, &b, i % 2);
    /* No reply came for any of the unmaps: the next is the ping's. */
    assert_int_equal(cl_ping(&b), 0);
    cl_die(&a);
    cl_die(&b);
}

/* Bad NOREPLY requests are refused without a reply and leave the
 * connection working; one that would hand out fds is not executed. */
static void test_hv_noreply_bad_request_no_reply_connection_works(void **state)
{
    struct hvd *d = *state;
    struct cl a, b;
    struct hv_grant_refs_req bad = { 1, 0, 0, 0 }; /* count 0 */
    uint32_t r;

    cl_open(&a, d, -1);
    cl_open(&b, d, -1);
    r = share_one(&a, b.domid, 0);
    cl_send_noreply(&b, HV_OP_GRANT_UNMAP, &bad, sizeof(bad)); /* bad payload */
    cl_send_noreply(&b, HV_OP_PING, "xxxx", 4);                /* PING takes none */
    cl_refs_noreply(&b, HV_OP_GRANT_UNMAP, a.domid, &r, 1);    /* not mapped */
    cl_refs_noreply(&b, HV_OP_GRANT_MAP, a.domid, &r, 1);      /* would hand out an fd */
    cl_send_noreply(&b, 77, NULL, 0);                          /* unknown op */
    assert_int_equal(cl_ping(&b), 0);
    assert_int_equal(b.nq, 0);
    /* The map was refused unexecuted: nothing maps r. */
    assert_int_equal(cl_revoke(&a, &r, 1), 0);
    cl_die(&a);
    cl_die(&b);
}

/* A dead sharer's domid is free as soon as its last mapper's unmap, sent
 * without waiting, is on the mapper's socket: even when the daemon reads the
 * HELLO claiming it first (the claimer's socket is first in the epoll batch:
 * it sent a refused HELLO just before, with the daemon stopped). */
static void test_hv_noreply_unmap_frees_dead_sharers_domid(void **state)
{
    struct hvd *d = *state;
    struct hv_hello_req early = { HV_PROTO_VERSION + 1, -1 }, claim = { HV_PROTO_VERSION, -1 };
    struct cl a, b, w;
    struct witness x;
    struct mapped m;
    struct hv_hello_rsp hr;
    struct msg msg;
    uint32_t r;

    cl_open(&w, d, -1);
    cl_open(&a, d, -1);
    cl_open(&b, d, -1);
    claim.want_domid = (int32_t)a.domid;
    r = share_one(&a, b.domid, 0);
    assert_int_equal(cl_map(&b, a.domid, &r, 1, 0, &m), 0);
    close(m.fds[0]);
    witness_arm(&a, &w, &x);
    witness_kill(&a, &w, &x);
    memset(&a, 0, sizeof(a));
    a.s = sock_connect(d);
    /* Accepted, and the last socket the daemon read (see unmap_then_revoke). */
    assert_int_equal(cl_hello(&a, -1, HV_PROTO_VERSION + 1, &hr), -EPROTONOSUPPORT);
    hvd_pause(d);
    send_req(a.s, HV_OP_HELLO, 2, &early, sizeof(early), NULL, 0);
    cl_refs_noreply(&b, HV_OP_GRANT_UNMAP, (uint32_t)claim.want_domid, &r, 1);
    send_req(a.s, HV_OP_HELLO, 3, &claim, sizeof(claim), NULL, 0);
    hvd_resume(d);
    assert_int_equal(cl_reply(&a, HV_OP_HELLO, 2, &msg), -EPROTONOSUPPORT);
    assert_int_equal(cl_reply(&a, HV_OP_HELLO, 3, &msg), 0);
    cl_die(&a);
    cl_die(&b);
    cl_die(&w);
}

/* ---- unmap-notify and death ---------------------------------------------------------- */

/* a shares a page to b, with a channel between them. */
struct pair {
    struct cl a, b;
    uint32_t ref, pa, pb;
    int fd, ra, rb, ta, tb;
    uint8_t *page; /* a's view */
};

static void pair_open(struct pair *p, const struct hvd *d)
{
    cl_open(&p->a, d, -1);
    cl_open(&p->b, d, -1);
    p->fd = make_memfd(1, SEALS_OK);
    assert_int_equal(cl_share(&p->a, p->b.domid, p->fd, 1, 0, &p->ref), 0);
    p->page = map_page(p->fd, 0, PROT_READ | PROT_WRITE);
    memset(p->page, 0xff, HV_PAGE_SIZE);
    assert_int_equal(cl_alloc(&p->a, p->b.domid, &p->pa, &p->ra), 0);
    assert_int_equal(cl_bind(&p->b, p->a.domid, p->pa, &p->pb, &p->rb, &p->ta), 0);
    p->tb = cl_wait_notice(&p->a, HV_NOTICE_PORT_CONNECTED, p->pa, NULL);
}

static void pair_close(struct pair *p)
{
    munmap(p->page, HV_PAGE_SIZE);
    close_fds((int[]){ p->fd, p->ra, p->rb, p->ta, p->tb }, 5);
    if (p->a.s >= 0)
        cl_die(&p->a);
    if (p->b.s >= 0)
        cl_die(&p->b);
}

static void test_hv_unmap_notify_on_mapper_death(void **state)
{
    struct hvd *d = *state;
    struct pair p;
    struct mapped m;

    pair_open(&p, d);
    assert_int_equal(cl_map(&p.b, p.a.domid, &p.ref, 1, 0, &m), 0);
    close(m.fds[0]);
    assert_int_equal(cl_notify(&p.b, p.a.domid, p.ref, 100, p.pb), 0);
    cl_die(&p.b);
    assert_int_equal(cl_wait_notice(&p.a, HV_NOTICE_PORT_CLOSED, p.pa, NULL), -1);
    /* The notice comes after the notify action: both are visible now. */
    assert_int_equal(p.page[100], 0);
    assert_int_equal(p.page[99], 0xff);
    assert_int_equal(efd_settled(&p.a, p.ra), 2); /* the notify's event + the close's */
    /* b's mapping is gone with it: the share can be revoked. */
    assert_int_equal(cl_revoke(&p.a, &p.ref, 1), 0);
    pair_close(&p);
}

static void test_hv_unmap_notify_forgotten_on_unmap(void **state)
{
    struct hvd *d = *state;
    struct pair p;
    struct mapped m;

    pair_open(&p, d);
    assert_int_equal(cl_map(&p.b, p.a.domid, &p.ref, 1, 0, &m), 0);
    close(m.fds[0]);
    assert_int_equal(cl_notify(&p.b, p.a.domid, p.ref, 100, p.pb), 0);
    assert_int_equal(cl_unmap(&p.b, p.a.domid, &p.ref, 1), 0);
    cl_die(&p.b);
    assert_int_equal(cl_wait_notice(&p.a, HV_NOTICE_PORT_CLOSED, p.pa, NULL), -1);
    assert_int_equal(p.page[100], 0xff);
    assert_int_equal(efd_settled(&p.a, p.ra), 1); /* the close's only */
    pair_close(&p);
}

static void test_hv_unmap_notify_on_sharer_death(void **state)
{
    struct hvd *d = *state;
    struct pair p;
    struct mapped m;
    uint8_t *theirs;

    pair_open(&p, d);
    assert_int_equal(cl_notify(&p.a, p.a.domid, p.ref, 7, p.pa), 0);
    assert_int_equal(cl_map(&p.b, p.a.domid, &p.ref, 1, 0, &m), 0);
    theirs = map_page(m.fds[0], m.slot[0].page, PROT_READ);
    close(m.fds[0]);
    cl_die(&p.a);
    assert_int_equal(cl_wait_notice(&p.b, HV_NOTICE_PORT_CLOSED, p.pb, NULL), -1);
    assert_int_equal(theirs[7], 0);
    assert_int_equal(theirs[8], 0xff);
    assert_int_equal(efd_settled(&p.b, p.rb), 2);
    munmap(theirs, HV_PAGE_SIZE);
    assert_int_equal(cl_unmap(&p.b, p.a.domid, &p.ref, 1), 0);
    pair_close(&p);
}

static void test_hv_unmap_notify_refusals(void **state)
{
    struct hvd *d = *state;
    struct pair p;
    struct mapped m;
    uint32_t ro;

    pair_open(&p, d);
    ro = share_one(&p.a, p.b.domid, 1);
    /* Not mapped yet: nothing to attach an action to. */
    assert_int_equal(cl_notify(&p.b, p.a.domid, p.ref, 0, 0), -EINVAL);
    assert_int_equal(cl_map(&p.b, p.a.domid, &p.ref, 1, 0, &m), 0);
    close(m.fds[0]);
    assert_int_equal(cl_map(&p.b, p.a.domid, &ro, 1, 1, &m), 0);
    close(m.fds[0]);
    assert_int_equal(cl_notify(&p.b, p.a.domid, p.ref, HV_PAGE_SIZE + 1, 0), -EINVAL);
    assert_int_equal(cl_notify(&p.b, p.a.domid, p.ref, 0, p.pb + 1), -EINVAL);
    assert_int_equal(cl_notify(&p.b, p.a.domid, p.ref + 100, 0, 0), -EINVAL);
    assert_int_equal(cl_notify(&p.b, 999, p.ref, 0, 0), -EINVAL);
    assert_int_equal(cl_notify(&p.b, p.a.domid, ro, 0, 0), -EPERM);
    assert_int_equal(cl_notify(&p.b, p.a.domid, ro, HV_PAGE_SIZE, p.pb), 0);
    assert_int_equal(cl_notify(&p.a, p.a.domid, p.ref + 100, 0, 0), -EINVAL);
    assert_int_equal(cl_notify(&p.a, p.a.domid, p.ref, HV_PAGE_SIZE, 0), 0);
    pair_close(&p);
}

static void test_hv_sharer_death_reclaims_grants(void **state)
{
    struct hvd *d = *state;
    struct cl a, b, w;
    struct witness x;
    struct mapped m;
    struct hv_hello_rsp r;
    uint32_t kept, lost;
    uint32_t adom;
    int base;

    cl_open(&w, d, -1);
    cl_open(&b, d, -1);
    base = count_fds(d->pid);
    cl_open(&a, d, -1);
    adom = a.domid;
    kept = share_one(&a, b.domid, 0);
    lost = share_one(&a, b.domid, 0);
    assert_int_equal(cl_map(&b, adom, &kept, 1, 0, &m), 0);
    witness_arm(&a, &w, &x);
    witness_kill(&a, &w, &x);
    /* Its unmapped grant went at once; the mapped one is b's until unmapped. */
    assert_int_equal(cl_map(&b, adom, &lost, 1, 0, &m), -ESRCH);
    assert_int_equal(count_fds(d->pid), base + 1);
    /* The domid stays taken while its grant is named by (domid, ref). */
    memset(&a, 0, sizeof(a));
    a.s = sock_connect(d);
    assert_int_equal(cl_hello(&a, (int32_t)adom, HV_PROTO_VERSION, &r), -EADDRINUSE);
    assert_int_equal(cl_unmap(&b, adom, &kept, 1), 0);
    assert_int_equal(count_fds(d->pid), base + 1); /* a's new connection */
    assert_int_equal(cl_hello(&a, (int32_t)adom, HV_PROTO_VERSION, &r), 0);
    close(m.fds[0]);
    cl_die(&a);
    cl_die(&b);
    cl_die(&w);
}

static void test_hv_mapper_death_releases_dead_sharer(void **state)
{
    struct hvd *d = *state;
    struct cl a, b, w;
    struct witness xa, xb;
    struct mapped m;
    uint32_t r;
    int base;

    cl_open(&w, d, -1);
    base = count_fds(d->pid);
    cl_open(&a, d, -1);
    cl_open(&b, d, -1);
    r = share_one(&a, b.domid, 0);
    assert_int_equal(cl_map(&b, a.domid, &r, 1, 0, &m), 0);
    close(m.fds[0]);
    witness_arm(&a, &w, &xa);
    witness_arm(&b, &w, &xb);
    witness_kill(&a, &w, &xa);
    witness_kill(&b, &w, &xb);
    assert_int_equal(count_fds(d->pid), base);
    cl_die(&w);
}

/* ---- hostile input ------------------------------------------------------------------ */

/* The daemon still serves: a new domain gets through a round trip. */
static void assert_daemon_serves(const struct hvd *d)
{
    struct cl c;

    cl_open(&c, d, -1);
    assert_int_equal(cl_ping(&c), 0);
    cl_die(&c);
}

/* Sends @len raw bytes on a fresh domain; returns the reply status, or CLOSED. */
static int32_t raw_exchange(const struct hvd *d, const void *buf, size_t len, const int *fds,
                            unsigned nfds)
{
    struct cl c;
    struct msg m;
    int32_t st = CLOSED;

    cl_open(&c, d, -1);
    assert_int_equal(raw_send(c.s, buf, len, fds, nfds), (ssize_t)len);
    if (recv_msg(c.s, &m) == 0) {
        assert_int_equal(m.h.flags, HV_F_REPLY);
        assert_int_equal(m.nfds, 0);
        st = m.h.status;
        /* An error reply leaves the connection usable. */
        assert_int_equal(cl_ping(&c), 0);
    }
    cl_die(&c);
    assert_daemon_serves(d);
    return st;
}

static size_t mkpkt(uint8_t *buf, uint16_t op, uint32_t len, uint32_t nfds, size_t payload)
{
    struct hv_hdr h = { HV_MAGIC, op, 0, 42, 0, len, nfds };

    memcpy(buf, &h, sizeof(h));
    memset(buf + sizeof(h), 0, payload);
    return sizeof(h) + payload;
}

static void test_hv_hostile_unparseable_closes(void **state)
{
    struct hvd *d = *state;
    static uint8_t buf[HV_MSG_MAX + 512];
    size_t n;

    n = mkpkt(buf, HV_OP_PING, 0, 0, 0);
    assert_int_equal(raw_exchange(d, buf, 10, NULL, 0), CLOSED); /* truncated header */
    buf[0] ^= 0xff;                                              /* bad magic */
    assert_int_equal(raw_exchange(d, buf, n, NULL, 0), CLOSED);
    n = mkpkt(buf, HV_OP_PING, HV_MSG_MAX + 100 - sizeof(struct hv_hdr), 0,
              HV_MSG_MAX + 100 - sizeof(struct hv_hdr));
    assert_int_equal(raw_exchange(d, buf, n, NULL, 0), CLOSED); /* oversized */
    srand(7);
    for (size_t i = 0; i < 100; i++)
        buf[i] = (uint8_t)rand();
    assert_int_equal(raw_exchange(d, buf, 100, NULL, 0), CLOSED); /* garbage */
}

static void test_hv_hostile_header_lies(void **state)
{
    struct hvd *d = *state;
    uint8_t buf[256];
    size_t n;
    int p[2];
    char c;

    n = mkpkt(buf, HV_OP_PING, 8, 0, 4); /* len says 8, 4 sent */
    assert_int_equal(raw_exchange(d, buf, n, NULL, 0), -EPROTO);
    n = mkpkt(buf, HV_OP_PING, 0, 1, 0); /* nfds says 1, none sent */
    assert_int_equal(raw_exchange(d, buf, n, NULL, 0), -EPROTO);
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    n = mkpkt(buf, HV_OP_PING, 0, 0, 0); /* nfds says 0, one sent */
    assert_int_equal(raw_exchange(d, buf, n, &p[1], 1), -EPROTO);
    n = mkpkt(buf, HV_OP_PING, 0, 1, 0); /* an fd PING does not take */
    assert_int_equal(raw_exchange(d, buf, n, &p[1], 1), -EINVAL);
    /* The daemon closed both copies of the write end: only EOF is left. */
    close(p[1]);
    assert_int_equal(read(p[0], &c, 1), 0);
    close(p[0]);
    n = mkpkt(buf, 77, 0, 0, 0);
    assert_int_equal(raw_exchange(d, buf, n, NULL, 0), -ENOSYS);
    n = mkpkt(buf, HV_NOTICE_PORT_CLOSED, 0, 0, 0); /* a notice is no request */
    assert_int_equal(raw_exchange(d, buf, n, NULL, 0), -ENOSYS);
    ((struct hv_hdr *)buf)->flags = HV_F_REPLY;
    n = mkpkt(buf, HV_OP_PING, 0, 0, 0);
    ((struct hv_hdr *)buf)->flags = HV_F_REPLY;
    assert_int_equal(raw_exchange(d, buf, n, NULL, 0), -EPROTO);
}

static void test_hv_hostile_payload_sizes(void **state)
{
    struct hvd *d = *state;
    uint8_t buf[1024];
    struct hv_grant_refs_req req = { 1, 0, 0, 0 };
    size_t n;

    n = mkpkt(buf, HV_OP_EVTCHN_ALLOC, 8, 0, 8); /* takes 4 bytes */
    assert_int_equal(raw_exchange(d, buf, n, NULL, 0), -EINVAL);
    n = mkpkt(buf, HV_OP_PING, 4, 0, 4); /* takes none */
    assert_int_equal(raw_exchange(d, buf, n, NULL, 0), -EINVAL);
    n = mkpkt(buf, HV_OP_GRANT_MAP, 4, 0, 4); /* shorter than its fixed part */
    assert_int_equal(raw_exchange(d, buf, n, NULL, 0), -EINVAL);
    n = mkpkt(buf, HV_OP_GRANT_MAP, sizeof(req), 0, sizeof(req)); /* count 0 */
    memcpy(buf + sizeof(struct hv_hdr), &req, sizeof(req));
    assert_int_equal(raw_exchange(d, buf, n, NULL, 0), -EINVAL);
    req.count = HV_REFS_MAX + 1; /* too many refs, all present */
    n = mkpkt(buf, HV_OP_GRANT_UNMAP, sizeof(req) + req.count * 4, 0, sizeof(req) + req.count * 4);
    memcpy(buf + sizeof(struct hv_hdr), &req, sizeof(req));
    assert_int_equal(raw_exchange(d, buf, n, NULL, 0), -EINVAL);
    req.count = 3; /* count says 3, 2 refs present */
    n = mkpkt(buf, HV_OP_GRANT_REVOKE, sizeof(req) + 8, 0, sizeof(req) + 8);
    memcpy(buf + sizeof(struct hv_hdr), &req, sizeof(req));
    assert_int_equal(raw_exchange(d, buf, n, NULL, 0), -EINVAL);
}

static void test_hv_hostile_hello_twice(void **state)
{
    struct hvd *d = *state;
    struct cl a;
    struct hv_hello_rsp r;

    cl_open(&a, d, -1);
    assert_int_equal(cl_hello(&a, -1, HV_PROTO_VERSION, &r), -EINVAL);
    assert_int_equal(cl_ping(&a), 0);
    cl_die(&a);
}

static void test_hv_hostile_too_many_fds_closes(void **state)
{
    struct hvd *d = *state;
    uint8_t buf[64];
    int fds[200];
    int p[2];
    char c;
    size_t n;

    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    for (int i = 0; i < 200; i++)
        fds[i] = p[1];
    n = mkpkt(buf, HV_OP_PING, 0, 200, 0);
    assert_int_equal(raw_exchange(d, buf, n, fds, 200), CLOSED);
    /* None of the fds that did arrive was kept. */
    close(p[1]);
    assert_int_equal(read(p[0], &c, 1), 0);
    close(p[0]);
}

/* a allocates every port it can, offered to b, and b binds them all. */
static unsigned bind_all_ports(struct cl *a, struct cl *b, uint32_t *pb)
{
    uint32_t pa, p;
    unsigned n = 0;
    int efd, rx, tx;

    while (cl_alloc(a, b->domid, &pa, &efd) == 0) {
        close(efd);
        assert_int_equal(pa, ++n);
    }
    assert_int_equal(n, HV_PORTS_MAX - 1); /* ports 1..4095, then -ENOSPC */
    for (p = 1; p <= n; p++) {
        assert_int_equal(cl_bind(b, a->domid, p, &pb[p], &rx, &tx), 0);
        close_fds((int[]){ rx, tx }, 2);
    }
    return n;
}

/* More notices at once than a socket holds (a peer with 4095 channels to us
 * died) are queued, not a reason to drop us. */
static void test_hv_notice_burst_is_queued(void **state)
{
    struct hvd *d = *state;
    static uint32_t pb[HV_PORTS_MAX];
    struct cl a, b;
    unsigned n;

    cl_open(&a, d, -1);
    cl_open(&b, d, -1);
    n = bind_all_ports(&a, &b, pb);
    for (uint32_t p = 1; p <= n; p++)
        close(cl_wait_notice(&a, HV_NOTICE_PORT_CONNECTED, p, NULL));
    cl_die(&b);
    for (uint32_t p = 1; p <= n; p++)
        assert_int_equal(cl_wait_notice(&a, HV_NOTICE_PORT_CLOSED, p, NULL), -1);
    assert_int_equal(cl_ping(&a), 0);
    cl_die(&a);
}

/* A domain that never reads is cut off once its backlog passes what any
 * burst needs; the others never wait for it. */
static void test_hv_stuck_client_dropped(void **state)
{
    struct hvd *d = *state;
    static uint32_t pb[HV_PORTS_MAX];
    struct cl a, b;
    unsigned n, got = 0;
    struct msg m;

    cl_open(&a, d, -1);
    cl_open(&b, d, -1);
    n = bind_all_ports(&a, &b, pb); /* 4095 notices to a, which reads none */
    for (uint32_t p = 1; p <= n; p++)
        assert_int_equal(cl_close_port(&b, pb[p]), 0); /* 4095 more */
    assert_int_equal(cl_ping(&b), 0);
    /* a gets what its socket held when it was cut off, then EOF. */
    while (recv_msg(a.s, &m) == 0) {
        close_fds(m.fds, m.nfds);
        got++;
    }
    assert_true(got > 0 && got < n);
    cl_die(&a);
    assert_int_equal(cl_ping(&b), 0);
    cl_die(&b);
}

/* ---- hypercalls (HYPERCALL) ------------------------------------------------------------ */

#define NO_DOMAIN 999u /* no test domain has this domid */
#define INFO_SIZE sizeof(xen_domctl_getdomaininfo_t)

/* One HYPERCALL: @arg (@len bytes) goes out and comes back as the daemon
 * left it, the sub buffer into @sub; checks the reply's sizes. */
static int32_t cl_hcall(struct cl *c, uint32_t nr, uint32_t cmd, uint32_t count, void *arg,
                        uint32_t len, void *sub, uint32_t sub_len, int64_t *result)
{
    struct hv_hypercall_req req = { nr, cmd, count, len, sub_len, 0 };
    struct hv_hypercall_rsp rsp;
    uint8_t buf[HV_MSG_MAX];
    struct msg m;
    int32_t st;

    memcpy(buf, &req, sizeof(req));
    if (len)
        memcpy(buf + sizeof(req), arg, len);
    st = cl_call(c, HV_OP_HYPERCALL, buf, (uint32_t)sizeof(req) + len, NULL, 0, &m);
    if (st) {
        assert_int_equal(m.h.len, 0); /* a failure carries no payload */
        return st;
    }
    memcpy(&rsp, m.p, sizeof(rsp));
    assert_int_equal(rsp.len, len);
    assert_true(rsp.sub_len <= sub_len);
    assert_true(rsp.result >= 0);
    assert_int_equal(m.h.len, sizeof(rsp) + len + rsp.sub_len);
    if (len)
        memcpy(arg, m.p + sizeof(rsp), len);
    if (rsp.sub_len)
        memcpy(sub, m.p + sizeof(rsp) + len, rsp.sub_len);
    if (result)
        *result = rsp.result;
    return 0;
}

static int32_t hc_version(struct cl *c, uint32_t cmd, void *arg, uint32_t len, int64_t *result)
{
    return cl_hcall(c, __HYPERVISOR_xen_version, cmd, 0, arg, len, NULL, 0, result);
}

static struct xen_sysctl sysctl_new(uint32_t cmd)
{
    struct xen_sysctl op;

    memset(&op, 0, sizeof(op));
    op.cmd = cmd;
    op.interface_version = XEN_SYSCTL_INTERFACE_VERSION;
    return op;
}

static int32_t hc_physinfo(struct cl *c, struct xen_sysctl_physinfo *out)
{
    struct xen_sysctl op = sysctl_new(XEN_SYSCTL_physinfo);
    int32_t st = cl_hcall(c, __HYPERVISOR_sysctl, 0, 0, &op, sizeof(op), NULL, 0, NULL);

    if (st == 0) {
        assert_int_equal(op.cmd, XEN_SYSCTL_physinfo);
        *out = op.u.physinfo;
    }
    return st;
}

/* getdomaininfolist from @first, at most @max, into @out (room for @room). */
static int32_t hc_domlist(struct cl *c, uint32_t first, uint32_t max, uint32_t room,
                          xen_domctl_getdomaininfo_t *out, uint32_t *num)
{
    struct xen_sysctl op = sysctl_new(XEN_SYSCTL_getdomaininfolist);
    int32_t st;

    op.u.getdomaininfolist.first_domain = (domid_t)first;
    op.u.getdomaininfolist.max_domains = max;
    memset(out, 0xa5, room * INFO_SIZE); /* what the daemon did not write stays */
    st = cl_hcall(c, __HYPERVISOR_sysctl, 0, 0, &op, sizeof(op), out, room * (uint32_t)INFO_SIZE,
                  NULL);
    if (st == 0)
        *num = op.u.getdomaininfolist.num_domains;
    return st;
}

static int32_t hc_dominfo(struct cl *c, uint32_t domid, xen_domctl_getdomaininfo_t *out)
{
    struct xen_domctl op;
    int32_t st;

    memset(&op, 0, sizeof(op));
    op.cmd = XEN_DOMCTL_getdomaininfo;
    op.interface_version = XEN_DOMCTL_INTERFACE_VERSION;
    op.domain = (domid_t)domid;
    st = cl_hcall(c, __HYPERVISOR_domctl, 0, 0, &op, sizeof(op), NULL, 0, NULL);
    if (st == 0) {
        assert_int_equal(op.domain, op.u.getdomaininfo.domain);
        *out = op.u.getdomaininfo;
    }
    return st;
}

static int32_t hc_port(struct cl *c, uint32_t dom, uint32_t port, evtchn_status_t *out)
{
    evtchn_status_t es = { .dom = (domid_t)dom, .port = port };
    int32_t st = cl_hcall(c, __HYPERVISOR_event_channel_op, EVTCHNOP_status, 0, &es, sizeof(es),
                          NULL, 0, NULL);

    if (st == 0)
        *out = es;
    return st;
}

/* query_size: the hypercall succeeds; returns Xen's GNTST_* status. */
static int16_t hc_gnt_size(struct cl *c, uint32_t dom, gnttab_query_size_t *out)
{
    gnttab_query_size_t q = { .dom = (domid_t)dom, .status = 99 };

    assert_int_equal(cl_hcall(c, __HYPERVISOR_grant_table_op, GNTTABOP_query_size, 1, &q, sizeof(q),
                              NULL, 0, NULL),
                     0);
    *out = q;
    return q.status;
}

static int32_t hc_mem(struct cl *c, uint32_t cmd, uint32_t dom, int64_t *pages)
{
    domid_t d = (domid_t)dom;

    return cl_hcall(c, __HYPERVISOR_memory_op, cmd, 0, &d, sizeof(d), NULL, 0, pages);
}

/* A private daemon's privileged domain (the daemon allows its own uid). */
static void cl_open_priv(struct cl *c, const struct hvd *d)
{
    cl_open(c, d, 0);
    assert_int_equal(c->domid, 0);
}

static void test_hv_hcall_xen_version(void **state)
{
    struct hvd *d = *state;
    unsigned major = 0, minor = 0;
    char extra[16], caps[1024], cs[64], want[1100];
    xen_feature_info_t fi = { 0, 0xdead };
    struct utsname u;
    int64_t r = -1;
    struct cl a;

    cl_open(&a, d, -1); /* every domain may ask */
    assert_int_equal(sscanf(PVABI_VERSION, "%u.%u", &major, &minor), 2);
    assert_int_equal(hc_version(&a, XENVER_version, NULL, 0, &r), 0);
    assert_int_equal(r, (int64_t)(major << 16 | minor));
    assert_int_equal(hc_version(&a, XENVER_extraversion, extra, sizeof(extra), NULL), 0);
    assert_string_equal(extra, "-pvabi");
    assert_int_equal(hc_version(&a, XENVER_capabilities, caps, sizeof(caps), NULL), 0);
    assert_int_equal(uname(&u), 0);
    snprintf(want, sizeof(want), "pvabi-local-1 %s", u.machine);
    assert_string_equal(caps, want);
    assert_int_equal(hc_version(&a, XENVER_changeset, cs, sizeof(cs), NULL), 0);
    assert_true(memchr(cs, 0, sizeof(cs)) && cs[0]);
    assert_int_equal(hc_version(&a, XENVER_get_features, &fi, sizeof(fi), NULL), 0);
    assert_int_equal(fi.submap, 0);
    fi.submap_idx = 1; /* Xen has one submap */
    assert_int_equal(hc_version(&a, XENVER_get_features, &fi, sizeof(fi), NULL), -EINVAL);
    assert_int_equal(hc_version(&a, XENVER_pagesize, NULL, 0, &r), 0);
    assert_int_equal(r, 4096);
    assert_int_equal(hc_version(&a, XENVER_compile_info, caps, 144, NULL), -ENOSYS);
    assert_int_equal(hc_version(&a, 1000, NULL, 0, NULL), -ENOSYS);
    assert_int_equal(hc_version(&a, XENVER_extraversion, extra, 8, NULL), -EINVAL);
    assert_int_equal(hc_version(&a, XENVER_version, extra, 4, NULL), -EINVAL);
    cl_die(&a);
}

static void test_hv_hcall_physinfo(void **state)
{
    struct hvd *d = *state;
    struct xen_sysctl_physinfo pi;
    struct xen_sysctl op = sysctl_new(XEN_SYSCTL_physinfo);
    uint8_t sub[INFO_SIZE];
    struct cl a, p;

    cl_open(&a, d, -1);
    assert_int_equal(hc_physinfo(&a, &pi), -EPERM); /* a sysctl */
    cl_open_priv(&p, d);
    assert_int_equal(hc_physinfo(&p, &pi), 0);
    assert_int_equal(pi.nr_cpus, sysconf(_SC_NPROCESSORS_ONLN));
    assert_int_equal(pi.max_cpu_id, sysconf(_SC_NPROCESSORS_CONF) - 1);
    assert_int_equal(pi.nr_nodes, 1);
    assert_int_equal(pi.max_node_id, 0);
    assert_int_equal(pi.capabilities, XEN_SYSCTL_PHYSCAP_gnttab_v1);
    assert_true(pi.total_pages > 0 && pi.free_pages <= pi.total_pages);
    assert_int_equal(pi.scrub_pages, 0);
    assert_int_equal(pi.outstanding_pages, 0);
    op.interface_version--; /* Xen: -EACCES, whoever asks */
    assert_int_equal(cl_hcall(&p, __HYPERVISOR_sysctl, 0, 0, &op, sizeof(op), NULL, 0, NULL),
                     -EACCES);
    assert_int_equal(cl_hcall(&a, __HYPERVISOR_sysctl, 0, 0, &op, sizeof(op), NULL, 0, NULL),
                     -EACCES);
    op = sysctl_new(XEN_SYSCTL_readconsole);
    assert_int_equal(cl_hcall(&p, __HYPERVISOR_sysctl, 0, 0, &op, sizeof(op), NULL, 0, NULL),
                     -ENOSYS);
    op = sysctl_new(XEN_SYSCTL_physinfo); /* no sub buffer, and the exact size */
    assert_int_equal(
        cl_hcall(&p, __HYPERVISOR_sysctl, 0, 0, &op, sizeof(op), sub, sizeof(sub), NULL), -EINVAL);
    assert_int_equal(cl_hcall(&p, __HYPERVISOR_sysctl, 0, 0, &op, sizeof(op) - 8, NULL, 0, NULL),
                     -EINVAL);
    cl_die(&a);
    cl_die(&p);
}

static void assert_live_info(const xen_domctl_getdomaininfo_t *i, uint32_t domid, uint64_t pages)
{
    assert_int_equal(i->domain, domid);
    /* The test process is the domain: running, or waiting for the reply. */
    assert_true(i->flags == XEN_DOMINF_running || i->flags == XEN_DOMINF_blocked);
    assert_int_equal(i->tot_pages, pages);
    assert_int_equal(i->max_pages, HV_GRANTS_MAX - HV_FIRST_GREF);
    assert_true(i->nr_online_vcpus >= 1);
    assert_int_equal(i->max_vcpu_id, i->nr_online_vcpus - 1);
    assert_int_equal(i->outstanding_pages, 0);
    assert_int_equal(i->shr_pages, 0);
    assert_int_equal(i->cpupool, 0);
    for (unsigned k = 0; k < sizeof(i->handle); k++)
        assert_int_equal(i->handle[k], 0);
}

static void assert_dying_info(const xen_domctl_getdomaininfo_t *i, uint32_t domid, uint64_t pages)
{
    assert_int_equal(i->domain, domid);
    assert_int_equal(i->flags, XEN_DOMINF_dying);
    assert_int_equal(i->tot_pages, pages);
    assert_int_equal(i->nr_online_vcpus, 0);
    assert_int_equal(i->max_vcpu_id, XEN_INVALID_MAX_VCPU_ID);
}

static void test_hv_hcall_domain_list(void **state)
{
    struct hvd *d = *state;
    static xen_domctl_getdomaininfo_t l[40];
    struct cl p, a, b, w;
    struct witness x;
    struct mapped m;
    uint32_t num, refs[3];
    int fd = make_memfd(3, SEALS_OK);

    cl_open_priv(&p, d);
    cl_open(&a, d, -1);
    cl_open(&b, d, -1);
    assert_int_equal(cl_share(&b, a.domid, fd, 3, 0, refs), 0);
    close(fd);
    assert_int_equal(hc_domlist(&p, 0, 32, 32, l, &num), 0);
    assert_int_equal(num, 3);
    assert_live_info(&l[0], 0, 0);
    assert_live_info(&l[1], a.domid, 0);
    assert_live_info(&l[2], b.domid, 3);
    assert_int_equal(l[3].domain, 0xa5a5); /* only num entries come back */
    /* Paging: from a domid on, and at most max_domains or the room. */
    assert_int_equal(hc_domlist(&p, a.domid + 1, 32, 32, l, &num), 0);
    assert_int_equal(num, 1);
    assert_int_equal(l[0].domain, b.domid);
    assert_int_equal(hc_domlist(&p, 0, 1, 32, l, &num), 0);
    assert_int_equal(num, 1);
    assert_int_equal(hc_domlist(&p, 0, 32, 2, l, &num), 0);
    assert_int_equal(num, 2);
    assert_int_equal(hc_domlist(&p, b.domid + 1, 32, 32, l, &num), 0);
    assert_int_equal(num, 0);
    assert_int_equal(hc_domlist(&a, 0, 32, 32, l, &num), -EPERM);
    /* A dying domain is listed while its grants are mapped. */
    assert_int_equal(cl_map(&a, b.domid, refs, 1, 0, &m), 0);
    close(m.fds[0]);
    cl_open(&w, d, -1);
    witness_arm(&b, &w, &x);
    witness_kill(&b, &w, &x);
    assert_int_equal(hc_domlist(&p, b.domid, 32, 32, l, &num), 0);
    assert_int_equal(num, 2); /* b, then w */
    assert_dying_info(&l[0], b.domid, 1);
    assert_int_equal(cl_unmap(&a, b.domid, refs, 1), 0);
    assert_int_equal(hc_domlist(&p, b.domid, 32, 32, l, &num), 0);
    assert_int_equal(num, 1);
    assert_int_equal(l[0].domain, w.domid);
    cl_die(&w);
    cl_die(&a);
    cl_die(&p);
}

static void test_hv_hcall_domctl_getdomaininfo(void **state)
{
    struct hvd *d = *state;
    xen_domctl_getdomaininfo_t i;
    struct xen_domctl op;
    struct cl p, a, b;

    cl_open_priv(&p, d);
    cl_open(&a, d, -1);
    cl_open(&b, d, -1);
    share_one(&a, b.domid, 0);
    assert_int_equal(hc_dominfo(&a, DOMID_SELF, &i), 0); /* itself: allowed */
    assert_live_info(&i, a.domid, 1);
    assert_int_equal(hc_dominfo(&a, a.domid, &i), 0);
    assert_live_info(&i, a.domid, 1);
    assert_int_equal(hc_dominfo(&b, a.domid, &i), -EPERM);
    assert_int_equal(hc_dominfo(&b, NO_DOMAIN, &i), -ESRCH); /* as Xen: before privilege */
    assert_int_equal(hc_dominfo(&p, a.domid, &i), 0);
    assert_live_info(&i, a.domid, 1);
    assert_int_equal(hc_dominfo(&p, NO_DOMAIN, &i), -ESRCH);
    assert_int_equal(hc_dominfo(&p, DOMID_IO, &i), -ESRCH); /* reserved, not SELF */
    memset(&op, 0, sizeof(op));
    op.cmd = XEN_DOMCTL_getdomaininfo;
    op.interface_version = XEN_DOMCTL_INTERFACE_VERSION + 1;
    op.domain = (domid_t)a.domid;
    assert_int_equal(cl_hcall(&a, __HYPERVISOR_domctl, 0, 0, &op, sizeof(op), NULL, 0, NULL),
                     -EACCES);
    op.interface_version = XEN_DOMCTL_INTERFACE_VERSION;
    op.cmd = XEN_DOMCTL_pausedomain;
    assert_int_equal(cl_hcall(&p, __HYPERVISOR_domctl, 0, 0, &op, sizeof(op), NULL, 0, NULL),
                     -ENOSYS);
    op.cmd = XEN_DOMCTL_getdomaininfo;
    assert_int_equal(cl_hcall(&a, __HYPERVISOR_domctl, 0, 0, &op, 16, NULL, 0, NULL), -EINVAL);
    cl_die(&a);
    cl_die(&b);
    cl_die(&p);
}

static void test_hv_hcall_evtchn_status(void **state)
{
    struct hvd *d = *state;
    evtchn_status_t es;
    struct cl p, a, b;
    struct hv_port_notice n;
    uint32_t pa, pb;
    int ea, rx, tx;

    cl_open_priv(&p, d);
    cl_open(&a, d, -1);
    cl_open(&b, d, -1);
    assert_int_equal(cl_alloc(&a, b.domid, &pa, &ea), 0);
    assert_int_equal(hc_port(&a, DOMID_SELF, pa, &es), 0);
    assert_int_equal(es.status, EVTCHNSTAT_unbound);
    assert_int_equal(es.u.unbound.dom, b.domid);
    assert_int_equal(es.vcpu, 0);
    assert_int_equal(hc_port(&a, a.domid, pa + 1, &es), 0); /* free, inside the table */
    assert_int_equal(es.status, EVTCHNSTAT_closed);
    assert_int_equal(cl_bind(&b, a.domid, pa, &pb, &rx, &tx), 0);
    close(cl_wait_notice(&a, HV_NOTICE_PORT_CONNECTED, pa, NULL));
    assert_int_equal(hc_port(&b, DOMID_SELF, pb, &es), 0);
    assert_int_equal(es.status, EVTCHNSTAT_interdomain);
    assert_int_equal(es.u.interdomain.dom, a.domid);
    assert_int_equal(es.u.interdomain.port, pa);
    assert_int_equal(hc_port(&p, a.domid, pa, &es), 0); /* privileged: anyone's */
    assert_int_equal(es.status, EVTCHNSTAT_interdomain);
    assert_int_equal(es.u.interdomain.dom, b.domid);
    assert_int_equal(es.u.interdomain.port, pb);
    assert_int_equal(hc_port(&b, a.domid, pa, &es), -EPERM);
    assert_int_equal(hc_port(&b, a.domid, HV_PORTS_MAX, &es), -EINVAL); /* Xen's order */
    es.status = 77;
    assert_int_equal(hc_port(&a, DOMID_SELF, 0, &es), 0); /* reserved, as on Xen */
    assert_int_equal(es.status, EVTCHNSTAT_closed);
    assert_int_equal(hc_port(&a, DOMID_SELF, HV_PORTS_MAX, &es), -EINVAL);
    assert_int_equal(hc_port(&p, NO_DOMAIN, 1, &es), -ESRCH);
    /* The peer goes: Xen offers the port to it again. */
    close_fds((int[]){ rx, tx }, 2);
    cl_die(&b);
    assert_int_equal(cl_wait_notice(&a, HV_NOTICE_PORT_CLOSED, pa, &n), -1);
    assert_int_equal(hc_port(&a, DOMID_SELF, pa, &es), 0);
    assert_int_equal(es.status, EVTCHNSTAT_unbound);
    assert_int_equal(es.u.unbound.dom, n.remote_domid);
    assert_int_equal(cl_hcall(&a, __HYPERVISOR_event_channel_op, EVTCHNOP_close, 0, &es, sizeof(es),
                              NULL, 0, NULL),
                     -ENOSYS);
    close(ea);
    cl_die(&a);
    cl_die(&p);
}

static void test_hv_hcall_gnttab_query_size(void **state)
{
    struct hvd *d = *state;
    gnttab_query_size_t q;
    uint32_t refs[HV_REFS_MAX];
    struct cl p, a, b;

    cl_open_priv(&p, d);
    cl_open(&a, d, -1);
    cl_open(&b, d, -1);
    assert_int_equal(hc_gnt_size(&a, DOMID_SELF, &q), GNTST_okay);
    assert_int_equal(q.nr_frames, 1);
    assert_int_equal(q.max_nr_frames, HV_GRANTS_MAX / 512);
    /* 4 x 128 refs from 8 on: the highest is 519, in the second frame. */
    for (int i = 0; i < 4; i++) {
        int fd = make_memfd(HV_REFS_MAX, SEALS_OK);
        assert_int_equal(cl_share(&a, b.domid, fd, HV_REFS_MAX, 0, refs), 0);
        close(fd);
    }
    assert_int_equal(hc_gnt_size(&a, a.domid, &q), GNTST_okay);
    assert_int_equal(q.nr_frames, 2);
    assert_int_equal(hc_gnt_size(&p, a.domid, &q), GNTST_okay);
    assert_int_equal(q.nr_frames, 2);
    assert_int_equal(hc_gnt_size(&b, a.domid, &q), GNTST_permission_denied);
    assert_int_equal(hc_gnt_size(&p, NO_DOMAIN, &q), GNTST_bad_domain);
    q = (gnttab_query_size_t){ .dom = DOMID_SELF };
    assert_int_equal(cl_hcall(&a, __HYPERVISOR_grant_table_op, GNTTABOP_query_size, 2, &q,
                              sizeof(q), NULL, 0, NULL),
                     -EINVAL);
    assert_int_equal(cl_hcall(&a, __HYPERVISOR_grant_table_op, GNTTABOP_setup_table, 1, &q,
                              sizeof(q), NULL, 0, NULL),
                     -ENOSYS);
    cl_die(&a);
    cl_die(&b);
    cl_die(&p);
}

static void test_hv_hcall_memory_reservation(void **state)
{
    struct hvd *d = *state;
    uint32_t refs[3];
    int fd = make_memfd(3, SEALS_OK);
    struct cl p, a, b;
    int64_t pages = -1;
    uint32_t four = 0;

    cl_open_priv(&p, d);
    cl_open(&a, d, -1);
    cl_open(&b, d, -1);
    assert_int_equal(hc_mem(&a, XENMEM_current_reservation, DOMID_SELF, &pages), 0);
    assert_int_equal(pages, 0);
    assert_int_equal(cl_share(&a, b.domid, fd, 3, 0, refs), 0);
    close(fd);
    assert_int_equal(hc_mem(&a, XENMEM_current_reservation, a.domid, &pages), 0);
    assert_int_equal(pages, 3);
    assert_int_equal(hc_mem(&p, XENMEM_current_reservation, a.domid, &pages), 0);
    assert_int_equal(pages, 3);
    assert_int_equal(hc_mem(&a, XENMEM_maximum_reservation, DOMID_SELF, &pages), 0);
    assert_int_equal(pages, HV_GRANTS_MAX - HV_FIRST_GREF);
    assert_int_equal(hc_mem(&b, XENMEM_current_reservation, a.domid, &pages), -EPERM);
    assert_int_equal(hc_mem(&b, XENMEM_current_reservation, NO_DOMAIN, &pages), -ESRCH);
    assert_int_equal(hc_mem(&a, XENMEM_increase_reservation, DOMID_SELF, &pages), -ENOSYS);
    assert_int_equal(cl_hcall(&a, __HYPERVISOR_memory_op, XENMEM_current_reservation, 0, &four,
                              sizeof(four), NULL, 0, NULL),
                     -EINVAL);
    cl_die(&a);
    cl_die(&b);
    cl_die(&p);
}

/* A domain whose connection is closed is seen dead by the next question
 * about it, though the daemon may not have read the hang-up yet: a caller
 * that saw the process exit must not find it alive. */
static void test_hv_hcall_sees_hangup_at_once(void **state)
{
    struct hvd *d = *state;
    static xen_domctl_getdomaininfo_t l[8];
    xen_domctl_getdomaininfo_t i;
    evtchn_status_t es;
    struct cl p, a, b, c;
    uint32_t pa, pb, num;
    int ea, rx, tx;
    int64_t pages;

    cl_open_priv(&p, d);
    cl_open(&a, d, -1);
    cl_open(&b, d, -1);
    cl_open(&c, d, -1);
    assert_int_equal(cl_alloc(&a, b.domid, &pa, &ea), 0);
    assert_int_equal(cl_bind(&b, a.domid, pa, &pb, &rx, &tx), 0);
    close_fds((int[]){ rx, tx }, 2);
    cl_die(&b); /* no waiting for the daemon to notice */
    assert_int_equal(hc_port(&p, a.domid, pa, &es), 0);
    assert_int_equal(es.status, EVTCHNSTAT_unbound);
    assert_int_equal(es.u.unbound.dom, b.domid);
    cl_die(&c);
    assert_int_equal(hc_dominfo(&p, c.domid, &i), -ESRCH);
    cl_open(&b, d, -1);
    cl_die(&b);
    assert_int_equal(hc_mem(&p, XENMEM_current_reservation, b.domid, &pages), -ESRCH);
    cl_open(&b, d, -1);
    cl_die(&b);
    assert_int_equal(hc_domlist(&p, a.domid, 8, 8, l, &num), 0);
    assert_int_equal(num, 1); /* a only */
    close(ea);
    cl_die(&a);
    cl_die(&p);
}

/* A HYPERCALL packet with @req and @len argument bytes, on a fresh domain. */
static int32_t hcall_raw(const struct hvd *d, const struct hv_hypercall_req *req, uint32_t len)
{
    static uint8_t buf[HV_MSG_MAX];
    size_t n = mkpkt(buf, HV_OP_HYPERCALL, (uint32_t)sizeof(*req) + len, 0, sizeof(*req) + len);

    memcpy(buf + sizeof(struct hv_hdr), req, sizeof(*req));
    return raw_exchange(d, buf, n, NULL, 0);
}

static void test_hv_hcall_hostile(void **state)
{
    struct hvd *d = *state;
    uint8_t buf[256];
    struct hv_hypercall_req r = { __HYPERVISOR_xen_version, XENVER_extraversion, 0, 16, 0, 0 };
    size_t n;

    n = mkpkt(buf, HV_OP_HYPERCALL, 8, 0, 8); /* shorter than its request header */
    assert_int_equal(raw_exchange(d, buf, n, NULL, 0), -EINVAL);
    assert_int_equal(hcall_raw(d, &r, 16), 0);
    assert_int_equal(hcall_raw(d, &r, 12), -EINVAL); /* len says 16, 12 sent */
    assert_int_equal(hcall_raw(d, &r, 20), -EINVAL); /* and 20 */
    r.len = UINT32_MAX;
    assert_int_equal(hcall_raw(d, &r, 16), -EINVAL);
    r.len = 16;
    r.sub_len = UINT32_MAX - 8; /* would wrap len + sub_len */
    assert_int_equal(hcall_raw(d, &r, 16), -EINVAL);
    r.sub_len = (uint32_t)INFO_SIZE; /* xen_version takes none */
    assert_int_equal(hcall_raw(d, &r, 16), -EINVAL);
    r = (struct hv_hypercall_req){
        __HYPERVISOR_sysctl, 0, 0, sizeof(struct xen_sysctl), HV_MSG_MAX, 0
    }; /* no room for the answer */
    assert_int_equal(hcall_raw(d, &r, sizeof(struct xen_sysctl)), -EINVAL);
    r = (struct hv_hypercall_req){ __HYPERVISOR_sched_op, 0, 0, 0, 0, 0 };
    assert_int_equal(hcall_raw(d, &r, 0), -ENOSYS);
    r.nr = UINT32_MAX;
    assert_int_equal(hcall_raw(d, &r, 0), -ENOSYS);
    r = (struct hv_hypercall_req){ __HYPERVISOR_event_channel_op, EVTCHNOP_status, 0, 0, 0, 0 };
    assert_int_equal(hcall_raw(d, &r, 0), -EINVAL); /* no argument */
    r = (struct hv_hypercall_req){ __HYPERVISOR_sysctl, 0, 0, 0, 0, 0 };
    assert_int_equal(hcall_raw(d, &r, 0), -EINVAL);
}

/* getdomaininfolist's sub buffer: whole entries, and room in the reply. */
static void test_hv_hcall_domain_list_sub_len(void **state)
{
    struct hvd *d = *state;
    struct xen_sysctl op = sysctl_new(XEN_SYSCTL_getdomaininfolist);
    static xen_domctl_getdomaininfo_t l[80];
    uint32_t room =
        (HV_MSG_MAX - sizeof(struct hv_hdr) - sizeof(struct hv_hypercall_rsp) - sizeof(op)) /
        (uint32_t)INFO_SIZE;
    uint32_t num;
    struct cl p;

    cl_open_priv(&p, d);
    op.u.getdomaininfolist.max_domains = 8;
    assert_int_equal(
        cl_hcall(&p, __HYPERVISOR_sysctl, 0, 0, &op, sizeof(op), l, (uint32_t)INFO_SIZE + 1, NULL),
        -EINVAL);
    assert_int_equal(hc_domlist(&p, 0, 1000, room, l, &num), 0); /* the most that fits */
    assert_int_equal(num, 1);
    assert_int_equal(hc_domlist(&p, 0, 1000, room + 1, l, &num), -EINVAL);
    assert_int_equal(hc_domlist(&p, 0, 0, 8, l, &num), 0);
    assert_int_equal(num, 0);
    cl_die(&p);
}

/* ---- GRANT_LIST ----------------------------------------------------------------------- */

static int32_t cl_glist(struct cl *c, uint32_t granter, uint32_t first, uint32_t max,
                        struct hv_grant_list_entry *out, uint32_t *count)
{
    struct hv_grant_list_req req = { granter, first, max, 0 };
    struct hv_grant_list_rsp rsp;
    struct msg m;
    int32_t st = cl_call(c, HV_OP_GRANT_LIST, &req, sizeof(req), NULL, 0, &m);

    if (st) {
        assert_int_equal(m.h.len, 0);
        return st;
    }
    memcpy(&rsp, m.p, sizeof(rsp));
    assert_true(rsp.count <= max);
    assert_int_equal(m.h.len, sizeof(rsp) + rsp.count * sizeof(*out));
    memcpy(out, m.p + sizeof(rsp), rsp.count * sizeof(*out));
    *count = rsp.count;
    return 0;
}

static void assert_entry(const struct hv_grant_list_entry *e, uint32_t granter, uint32_t grantee,
                         uint32_t ref, uint32_t flags, uint32_t maps, uint32_t dying)
{
    assert_int_equal(e->granter, granter);
    assert_int_equal(e->grantee, grantee);
    assert_int_equal(e->ref, ref);
    assert_int_equal(e->flags, flags);
    assert_int_equal(e->maps, maps);
    assert_int_equal(e->dying, dying);
}

static void test_hv_grant_list(void **state)
{
    struct hvd *d = *state;
    static struct hv_grant_list_entry e[HV_GRANT_LIST_MAX];
    struct cl p, a, b, w;
    struct witness x;
    struct mapped m;
    uint32_t rw, ro, other, n;

    cl_open_priv(&p, d);
    cl_open(&a, d, -1);
    cl_open(&b, d, -1);
    cl_open(&w, d, -1);
    rw = share_one(&a, b.domid, 0);
    ro = share_one(&a, b.domid, 1);
    other = share_one(&a, w.domid, 0);
    assert_int_equal(cl_map(&b, a.domid, &rw, 1, 0, &m), 0);
    close(m.fds[0]);
    assert_int_equal(cl_glist(&a, DOMID_SELF, 0, HV_GRANT_LIST_MAX, e, &n), 0);
    assert_int_equal(n, 3);
    assert_entry(&e[0], a.domid, b.domid, rw, 0, 1, 0);
    assert_entry(&e[1], a.domid, b.domid, ro, 1, 0, 0);
    assert_entry(&e[2], a.domid, w.domid, other, 0, 0, 0);
    assert_int_equal(cl_glist(&a, a.domid, ro, 1, e, &n), 0); /* paging */
    assert_int_equal(n, 1);
    assert_int_equal(e[0].ref, ro);
    assert_int_equal(cl_glist(&a, a.domid, other + 1, 8, e, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(cl_glist(&p, a.domid, 0, 8, e, &n), 0);
    assert_int_equal(n, 3);
    assert_int_equal(cl_glist(&b, a.domid, 0, 8, e, &n), -EPERM);
    assert_int_equal(cl_glist(&b, NO_DOMAIN, 0, 8, e, &n), -ESRCH);
    assert_int_equal(cl_glist(&a, a.domid, 0, 0, e, &n), -EINVAL);
    assert_int_equal(cl_glist(&a, a.domid, 0, HV_GRANT_LIST_MAX + 1, e, &n), -EINVAL);
    /* A dead granter's grants that are still mapped stay listed. */
    witness_arm(&a, &w, &x);
    witness_kill(&a, &w, &x);
    assert_int_equal(cl_glist(&p, a.domid, 0, 8, e, &n), 0);
    assert_int_equal(n, 1);
    assert_entry(&e[0], a.domid, b.domid, rw, 0, 1, 1);
    assert_int_equal(cl_unmap(&b, a.domid, &rw, 1), 0);
    assert_int_equal(cl_glist(&p, a.domid, 0, 8, e, &n), -ESRCH);
    cl_die(&b);
    cl_die(&w);
    cl_die(&p);
}

/* ---- toolstack connections ------------------------------------------------------------ */

static void test_hv_toolstack_connection(void **state)
{
    struct hvd *d = *state;
    static xen_domctl_getdomaininfo_t l[8];
    static struct hv_grant_list_entry e[8];
    struct hv_evtchn_alloc_req alloc = { 1 };
    struct hv_grant_share_req share = { 1, 1, 0, 0 };
    struct xen_sysctl_physinfo pi;
    xen_domctl_getdomaininfo_t i;
    struct hv_hello_rsp r;
    struct cl t, a, p;
    struct msg m;
    uint32_t num, ref;
    int fd = make_memfd(1, SEALS_OK);

    memset(&t, 0, sizeof(t));
    t.s = sock_connect(d);
    assert_int_equal(cl_hello(&t, HV_WANT_TOOLSTACK, HV_PROTO_VERSION, &r), 0);
    assert_int_equal(r.domid, 0); /* the privileged domain's, which it acts for */
    assert_int_equal(r.privileged, 1);
    cl_open(&a, d, -1);
    assert_int_equal(a.domid, 1); /* the toolstack used up no domid */
    ref = share_one(&a, 0, 0);
    /* Privileged for every question, but no domain: in no list. */
    assert_int_equal(hc_physinfo(&t, &pi), 0);
    assert_int_equal(hc_domlist(&t, 0, 8, 8, l, &num), 0);
    assert_int_equal(num, 1);
    assert_int_equal(l[0].domain, a.domid);
    assert_int_equal(hc_dominfo(&t, a.domid, &i), 0);
    assert_int_equal(hc_dominfo(&t, DOMID_SELF, &i), -ESRCH); /* no dom 0 yet */
    assert_int_equal(cl_glist(&t, a.domid, 0, 8, e, &num), 0);
    assert_int_equal(num, 1);
    assert_int_equal(e[0].ref, ref);
    assert_int_equal(cl_ping(&t), 0);
    /* It owns no ports and no grants, and says HELLO once. */
    assert_int_equal(cl_call(&t, HV_OP_EVTCHN_ALLOC, &alloc, sizeof(alloc), NULL, 0, &m), -EPERM);
    assert_int_equal(cl_call(&t, HV_OP_GRANT_SHARE, &share, sizeof(share), &fd, 1, &m), -EPERM);
    assert_int_equal(cl_hello(&t, -1, HV_PROTO_VERSION, &r), -EPERM);
    /* The privileged domain itself can still be claimed. */
    cl_open_priv(&p, d);
    assert_int_equal(hc_dominfo(&t, DOMID_SELF, &i), 0);
    assert_int_equal(i.domain, 0);
    assert_int_equal(hc_domlist(&t, 0, 8, 8, l, &num), 0);
    assert_int_equal(num, 2);
    assert_int_equal(cl_ping(&t), 0);
    close(fd);
    cl_die(&t);
    cl_die(&a);
    assert_int_equal(cl_ping(&p), 0);
    cl_die(&p);
    assert_daemon_serves(d);
}

static void test_hv_toolstack_uid_refused(void **state)
{
    struct hvd d;
    char uid[16];
    const char *args[] = { "--allow-uid", uid, NULL };
    struct hv_hello_rsp r;
    struct cl t;

    (void)state;
    snprintf(uid, sizeof(uid), "%u", (unsigned)getuid() + 1);
    hvd_start(&d, args);
    memset(&t, 0, sizeof(t));
    t.s = sock_connect(&d);
    assert_int_equal(cl_hello(&t, HV_WANT_TOOLSTACK, HV_PROTO_VERSION, &r), -EPERM);
    /* Refused, the connection may still become an ordinary domain. */
    assert_int_equal(cl_hello(&t, -1, HV_PROTO_VERSION, &r), 0);
    assert_int_equal(r.privileged, 0);
    cl_die(&t);
    hvd_stop(&d);
}

/* ---- resources ------------------------------------------------------------------------ */

/* One domain's life: channel, shares (one mapped by the witness, with an
 * unmap-notify), death, and the witness letting go of the mapping. */
static void life_cycle(const struct hvd *d, struct cl *w)
{
    struct cl v;
    struct witness x;
    struct mapped m;
    uint32_t mapped_ref, refs[2];
    int fd = make_ro_memfd(2, "", 0);

    cl_open(&v, d, -1);
    witness_arm(&v, w, &x);
    mapped_ref = share_one(&v, w->domid, 0);
    assert_int_equal(cl_share(&v, w->domid, fd, 2, 1, refs), 0);
    close(fd);
    assert_int_equal(cl_map(w, v.domid, &mapped_ref, 1, 0, &m), 0);
    close(m.fds[0]);
    assert_int_equal(cl_notify(&v, v.domid, mapped_ref, 0, x.vport), 0);
    assert_int_equal(cl_map(w, v.domid, refs, 2, 1, &m), 0);
    close(m.fds[0]);
    assert_int_equal(cl_unmap(w, v.domid, refs, 2), 0);
    witness_kill(&v, w, &x);
    assert_int_equal(cl_unmap(w, v.domid, &mapped_ref, 1), 0);
}

static void test_hv_no_leak_over_1000_lives(void **state)
{
    struct hvd *d = *state;
    struct cl w;
    int fds_warm;
    long rss_warm;

    cl_open(&w, d, -1);
    for (int i = 0; i < 100; i++)
        life_cycle(d, &w);
    fds_warm = count_fds(d->pid);
    rss_warm = rss_kib(d->pid);
    for (int i = 100; i < 1000; i++)
        life_cycle(d, &w);
    print_message("daemon after 100 lives: %d fds, %ld KiB; after 1000: %d fds, %ld KiB\n",
                  fds_warm, rss_warm, count_fds(d->pid), rss_kib(d->pid));
    assert_int_equal(count_fds(d->pid), fds_warm);
    /* ASan's quarantine holds freed memory on purpose; LeakSanitizer
     * checks the daemon's memory at its exit instead. */
    if (!UNDER_ASAN)
        assert_true(rss_kib(d->pid) - rss_warm < 2048);
    cl_die(&w);
}

/* ---- the daemon's life ---------------------------------------------------------------- */

static int run_daemon(const struct hvd *d, const char *const *extra)
{
    struct hvd tmp = *d;

    tmp.pid = hvd_spawn(&tmp, extra, -1);
    assert_true(tmp.pid > 0);
    return hvd_wait(tmp.pid);
}

static void test_hv_refuses_second_daemon(void **state)
{
    struct hvd *d = *state;

    /* HV_EXIT_TAKEN tells the library to wait for the daemon that owns it. */
    assert_int_equal(run_daemon(d, NULL), HV_EXIT_TAKEN);
    assert_daemon_serves(d);
}

static void test_hv_stale_socket_replaced(void **state)
{
    struct hvd d;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    char run[96];
    int s;

    (void)state;
    hvd_paths(&d);
    snprintf(run, sizeof(run), "%s/run", d.dir);
    assert_int_equal(mkdir(run, 0700), 0);
    /* A socket file nobody listens on: what a killed daemon leaves. */
    s = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    strcpy(sa.sun_path, d.sock);
    assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(s);
    assert_int_equal(hvd_start_with(&d, NULL), 1);
    assert_daemon_serves(&d);
    hvd_stop(&d);
    /* Something that is not a socket is never removed. */
    hvd_paths(&d);
    snprintf(run, sizeof(run), "%s/run", d.dir);
    assert_int_equal(mkdir(run, 0700), 0);
    s = open(d.sock, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    close(s);
    assert_int_equal(run_daemon(&d, NULL), 1);
    hvd_remove_dir(&d);
}

static void test_hv_makes_private_directory(void **state)
{
    struct hvd *d = *state;
    char run[96];
    struct stat st;

    snprintf(run, sizeof(run), "%s/run", d->dir);
    assert_int_equal(stat(run, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
}

static void test_hv_exit_when_idle(void **state)
{
    struct hvd d;
    const char *args[] = { "--exit-when-idle", "1", NULL };
    struct stat st;

    (void)state;
    hvd_start(&d, args);
    assert_daemon_serves(&d);
    /* Exits by itself, about a second after the last domain left. */
    assert_int_equal(hvd_wait(d.pid), 0);
    assert_int_not_equal(stat(d.sock, &st), 0);
    hvd_remove_dir(&d);
}

static void test_hv_daemon_mode(void **state)
{
    struct hvd d;
    const char *args[] = { "--daemon", NULL };
    struct ucred cred;
    socklen_t len = sizeof(cred);
    struct pollfd pfd;
    struct cl c;
    int pidfd;

    (void)state;
    hvd_paths(&d);
    assert_int_equal(hvd_start_with(&d, args), 1);
    assert_int_equal(hvd_wait(d.pid), 0); /* the first fork exits at once */
    cl_open(&c, &d, -1);
    assert_int_equal(getsockopt(c.s, SOL_SOCKET, SO_PEERCRED, &cred, &len), 0);
    assert_int_not_equal(cred.pid, d.pid);
    pidfd = (int)syscall(SYS_pidfd_open, cred.pid, 0);
    assert_true(pidfd >= 0);
    cl_die(&c);
    assert_int_equal(kill(cred.pid, SIGTERM), 0);
    pfd = (struct pollfd){ .fd = pidfd, .events = POLLIN };
    assert_int_equal(poll(&pfd, 1, WAIT_MS), 1); /* it exited */
    close(pidfd);
    hvd_remove_dir(&d);
}

int main(int argc, char **argv)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_hv_hello_domids_increase),
        T(test_hv_hello_specific_domid),
        T(test_hv_hello_privileged_one_holder),
        cmocka_unit_test(test_hv_hello_privileged_uid_refused),
        T(test_hv_request_before_hello_closes),
        T(test_hv_evtchn_connect_notify_close),
        T(test_hv_evtchn_bind_refusals),
        T(test_hv_evtchn_loopback),
        T(test_hv_evtchn_offer_to_future_domain),
        T(test_hv_evtchn_peer_death_wakes),
        T(test_hv_grant_share_validation),
        T(test_hv_grant_refs_distinct_and_bounded),
        T(test_hv_grant_map_refusals),
        T(test_hv_grant_map_shares_memory),
        T(test_hv_grant_read_only_descriptor),
        T(test_hv_grant_revoke_busy_until_unmapped),
        T(test_hv_noreply_unmap_then_revoke_elsewhere_succeeds),
        T(test_hv_noreply_bad_request_no_reply_connection_works),
        T(test_hv_noreply_unmap_frees_dead_sharers_domid),
        T(test_hv_unmap_notify_on_mapper_death),
        T(test_hv_unmap_notify_forgotten_on_unmap),
        T(test_hv_unmap_notify_on_sharer_death),
        T(test_hv_unmap_notify_refusals),
        T(test_hv_sharer_death_reclaims_grants),
        T(test_hv_mapper_death_releases_dead_sharer),
        T(test_hv_hostile_unparseable_closes),
        T(test_hv_hostile_header_lies),
        T(test_hv_hostile_payload_sizes),
        T(test_hv_hostile_hello_twice),
        T(test_hv_hostile_too_many_fds_closes),
        T(test_hv_hcall_xen_version),
        T(test_hv_hcall_physinfo),
        T(test_hv_hcall_domain_list),
        T(test_hv_hcall_domain_list_sub_len),
        T(test_hv_hcall_domctl_getdomaininfo),
        T(test_hv_hcall_evtchn_status),
        T(test_hv_hcall_gnttab_query_size),
        T(test_hv_hcall_memory_reservation),
        T(test_hv_hcall_hostile),
        T(test_hv_hcall_sees_hangup_at_once),
        T(test_hv_grant_list),
        T(test_hv_toolstack_connection),
        cmocka_unit_test(test_hv_toolstack_uid_refused),
        T(test_hv_notice_burst_is_queued),
        T(test_hv_stuck_client_dropped),
        T(test_hv_no_leak_over_1000_lives),
        T(test_hv_refuses_second_daemon),
        cmocka_unit_test(test_hv_stale_socket_replaced),
        T(test_hv_makes_private_directory),
        cmocka_unit_test(test_hv_exit_when_idle),
        cmocka_unit_test(test_hv_daemon_mode),
    };
#undef T

    hv_bin = getenv("PVABI_HV");
    if (!hv_bin && argc > 1)
        hv_bin = argv[1];
    if (!hv_bin || access(hv_bin, X_OK) != 0) {
        printf("SKIP: no pvabi-hv binary (set PVABI_HV or pass its path)\n");
        return 77;
    }
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
