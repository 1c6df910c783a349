/* SPDX-License-Identifier: MIT */
/*
 * pvabi_grant_copy() on the local platform, where a call is batched: one
 * GRANT_MAP per granting domain and direction for all the distinct refs of
 * the call, the segments copied in the caller's order, one GRANT_UNMAP per
 * batch.  What must not change: every segment has its own status, whatever
 * the others (a bad ref, a read-only grant written to, a ref granted to
 * another domain, a revoked ref, a dead domain), repeated refs are fine, and
 * nothing stays mapped after the call (the sharer's revoke succeeds at once),
 * nor does any fd stay open.
 *
 * Several contexts are opened in this process (several contexts: several
 * domains), on a private pvabi-hv per test (the harness's it_setup).  Local
 * only: 128 segments do not fit the agents' messages, and the statuses
 * asserted are the local platform's.  The last tests put a scripted daemon
 * behind the socket instead, which counts the requests (one GRANT_MAP per
 * batch), fails a batch as a whole (the per-segment fallback), or breaks the
 * protocol.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itest.h"
#include "platform/local/proto.h"

#define PAGE   PVABI_PAGE_SIZE
#define MAXSEG PVABI_GRANT_BATCH_MAX

static uint8_t pattern(unsigned seed, size_t i)
{
    return (uint8_t)(seed * 131u + i * 7u + (i >> 8));
}

static void fill(void *p, size_t len, unsigned seed, size_t base)
{
    for (size_t i = 0; i < len; i++)
        ((uint8_t *)p)[i] = pattern(seed, base + i);
}

/* 1 when @p holds pattern @seed from @base on. */
static int holds(const void *p, size_t len, unsigned seed, size_t base)
{
    for (size_t i = 0; i < len; i++)
        if (((const uint8_t *)p)[i] != pattern(seed, base + i))
            return 0;
    return 1;
}

static pvabi_ctx *open_domain(void)
{
    pvabi_ctx *ctx = NULL;

    assert_int_equal(pvabi_open(&ctx, "local"), 0);
    return ctx;
}

/* A share of @count pages from @fe to @be, filled with pattern @seed. */
static pvabi_grant *share(pvabi_ctx *fe, pvabi_ctx *be, unsigned count, unsigned flags,
                          unsigned seed)
{
    pvabi_grant *g = NULL;

    assert_int_equal(pvabi_grant_share(fe, pvabi_own_domid(be), count, flags, &g), 0);
    fill(pvabi_grant_addr(g), (size_t)count * PAGE, seed, 0);
    return g;
}

static struct pvabi_grant_copy_seg seg(void *local, pvabi_gref ref, pvabi_ctx *granter,
                                       unsigned offset, unsigned len, int to_foreign)
{
    return (struct pvabi_grant_copy_seg){ .local = local,
                                          .ref = ref,
                                          .domid = pvabi_own_domid(granter),
                                          .offset = (uint16_t)offset,
                                          .len = (uint16_t)len,
                                          .to_foreign = (uint8_t)to_foreign,
                                          .status = 1 };
}

/* Good and bad segments of every kind in one call, in both directions:
 * each bad one fails alone with the status a copy of it alone gives. */
static void test_copy_mixed_good_and_bad_segments_each_own_status(void **state)
{
    (void)state;
    long fds = it_self_fd_count();
    pvabi_ctx *fe = open_domain(), *be = open_domain(), *other = open_domain();
    pvabi_ctx *gone = open_domain();
    pvabi_grant *rw = share(fe, be, 3, 0, 1);
    pvabi_grant *ro = share(fe, be, 1, PVABI_GRANT_RO, 2);
    pvabi_grant *theirs = share(fe, other, 1, 0, 3);
    pvabi_grant *revoked = share(fe, be, 1, 0, 4);
    pvabi_grant *dead = share(gone, be, 1, 0, 5);
    pvabi_gref revoked_ref = pvabi_grant_ref(revoked, 0);
    pvabi_gref dead_ref = pvabi_grant_ref(dead, 0);
    pvabi_domid gone_id = pvabi_own_domid(gone);
    static uint8_t buf[12][PAGE];
    struct pvabi_grant_copy_seg s[12];
    uint8_t *rwp = pvabi_grant_addr(rw);

    assert_int_equal(pvabi_grant_revoke(revoked), 0);
    pvabi_close(gone); /* its share dies with it: the domain is gone */
    for (int i = 0; i < 12; i++)
        fill(buf[i], PAGE, 9, (size_t)i * PAGE);
    s[0] = seg(buf[0], pvabi_grant_ref(rw, 0), fe, 10, 100, 0);
    s[1] = seg(buf[1], pvabi_grant_ref(rw, 2) + 1000, fe, 0, 8, 0);     /* never granted */
    s[2] = seg(buf[2], pvabi_grant_ref(ro, 0), fe, 0, 16, 1);           /* write to RO */
    s[3] = seg(buf[3], pvabi_grant_ref(ro, 0), fe, 100, PAGE - 100, 0); /* read RO: fine */
    s[4] = seg(buf[4], pvabi_grant_ref(rw, 1), fe, 50, 200, 1);         /* write */
    s[5] = seg(buf[5], revoked_ref, fe, 0, PAGE, 0);                    /* revoked */
    s[6] = seg(buf[6], pvabi_grant_ref(theirs, 0), fe, 0, 64, 0);       /* not ours */
    s[7] = seg(buf[7], pvabi_grant_ref(theirs, 0), fe, 0, 64, 1);       /* not ours */
    s[8] = seg(buf[8], dead_ref, fe, 0, 32, 0);                         /* wrong domain */
    s[8].domid = gone_id;                                               /* domain gone */
    s[9] = seg(buf[9], pvabi_grant_ref(rw, 2), fe, 0, PAGE, 0);         /* whole page */
    s[10] = seg(buf[10], pvabi_grant_ref(rw, 2), fe, PAGE - 1, 1, 1);   /* last byte */
    s[11] = seg(buf[11], pvabi_grant_ref(rw, 0) + 5000, fe, 0, 8, 1);   /* never granted */
    assert_int_equal(pvabi_grant_copy(be, s, 12), 7);
    assert_int_equal(s[0].status, 0);
    assert_int_equal(s[1].status, -ENOENT);
    assert_int_equal(s[2].status, -EPERM);
    assert_int_equal(s[3].status, 0);
    assert_int_equal(s[4].status, 0);
    assert_int_equal(s[5].status, -ENOENT);
    assert_int_equal(s[6].status, -EPERM);
    assert_int_equal(s[7].status, -EPERM);
    assert_int_equal(s[8].status, -ESRCH);
    assert_int_equal(s[9].status, 0);
    assert_int_equal(s[10].status, 0);
    assert_int_equal(s[11].status, -ENOENT);
    /* What came in is the frontend's, what went out landed exactly there. */
    assert_true(holds(buf[0], 100, 1, 10));
    assert_true(holds(buf[3], PAGE - 100, 2, 100));
    assert_true(holds(buf[9], PAGE - 1, 1, 2 * PAGE));
    assert_true(holds(rwp + PAGE, 50, 1, PAGE));
    assert_true(holds(rwp + PAGE + 50, 200, 9, 4 * PAGE));
    assert_true(holds(rwp + PAGE + 250, PAGE - 250, 1, PAGE + 250));
    assert_int_equal(rwp[3 * PAGE - 1], pattern(9, 10 * PAGE));
    /* Failed reads left their buffers alone; the RO page is untouched. */
    assert_true(holds(buf[1], PAGE, 9, PAGE));
    assert_true(holds(buf[5], PAGE, 9, 5 * PAGE));
    assert_true(holds(pvabi_grant_addr(ro), PAGE, 2, 0));
    assert_true(holds(pvabi_grant_addr(theirs), PAGE, 3, 0));
    /* Nothing stays mapped: every revoke succeeds at once. */
    assert_int_equal(pvabi_grant_revoke(rw), 0);
    assert_int_equal(pvabi_grant_revoke(ro), 0);
    assert_int_equal(pvabi_grant_revoke(theirs), 0);
    pvabi_close(other);
    pvabi_close(be);
    pvabi_close(fe);
    assert_int_equal(it_self_fd_count(), fds);
}

/* A ref named many times in one call, read and written, is mapped and
 * unmapped in balance, and the segments act in the caller's order: a read
 * after a write of the same bytes sees the write. */
static void test_copy_repeated_refs_in_order_and_balanced(void **state)
{
    (void)state;
    pvabi_ctx *fe = open_domain(), *be = open_domain();
    pvabi_grant *g = share(fe, be, 2, 0, 1);
    pvabi_gref r0 = pvabi_grant_ref(g, 0), r1 = pvabi_grant_ref(g, 1);
    static uint8_t in[8][PAGE];
    static uint8_t out[PAGE];
    struct pvabi_grant_copy_seg s[8];
    uint8_t *page = pvabi_grant_addr(g);

    fill(out, PAGE, 7, 0);
    s[0] = seg(in[0], r0, fe, 0, 256, 0);   /* before the write: old data */
    s[1] = seg(out, r0, fe, 0, 256, 1);     /* write bytes 0..255 of page 0 */
    s[2] = seg(in[2], r0, fe, 0, 256, 0);   /* after: the new data */
    s[3] = seg(in[3], r1, fe, 4000, 96, 0); /* another ref, read twice */
    s[4] = seg(in[4], r1, fe, 4000, 96, 0);
    s[5] = seg(out + 256, r0, fe, 256, 256, 1);
    s[6] = seg(in[6], r0, fe, 128, 256, 0); /* straddles both writes */
    s[7] = seg(in[7], r0, fe, 512, 8, 0);   /* beyond them: old data */
    assert_int_equal(pvabi_grant_copy(be, s, 8), 0);
    for (int i = 0; i < 8; i++)
        assert_int_equal(s[i].status, 0);
    assert_true(holds(in[0], 256, 1, 0));
    assert_true(holds(in[2], 256, 7, 0));
    assert_true(holds(in[3], 96, 1, PAGE + 4000));
    assert_true(holds(in[4], 96, 1, PAGE + 4000));
    assert_true(holds(in[6], 256, 7, 128));
    assert_true(holds(in[7], 8, 1, 512));
    assert_true(holds(page, 512, 7, 0));
    assert_true(holds(page + 512, 2 * PAGE - 512, 1, 512));
    /* The same call again: still balanced (revoke would say -EBUSY). */
    assert_int_equal(pvabi_grant_copy(be, s, 8), 0);
    assert_int_equal(pvabi_grant_revoke(g), 0);
    pvabi_close(be);
    pvabi_close(fe);
}

#define NDOMS 8

/* Segments of many granting domains interleaved in one call: each goes to
 * its own domain's page. */
static void test_copy_many_domains_in_one_call(void **state)
{
    (void)state;
    pvabi_ctx *be = open_domain(), *fe[NDOMS];
    pvabi_grant *g[NDOMS];
    static uint8_t buf[4 * NDOMS][PAGE];
    struct pvabi_grant_copy_seg s[4 * NDOMS];
    unsigned n = 0;

    for (unsigned d = 0; d < NDOMS; d++) {
        fe[d] = open_domain();
        g[d] = share(fe[d], be, 2, d % 2 ? PVABI_GRANT_RO : 0, 10 + d);
    }
    /* Round robin over the domains: read page 0, read page 1, write page 1
     * (refused for the read-only shares), read page 0 again. */
    for (unsigned k = 0; k < 4; k++) {
        for (unsigned d = 0; d < NDOMS; d++, n++) {
            fill(buf[n], PAGE, 50 + n, 0);
            s[n] = seg(buf[n], pvabi_grant_ref(g[d], k == 1 || k == 2), fe[d], 0, PAGE, k == 2);
        }
    }
    assert_int_equal(pvabi_grant_copy(be, s, n), NDOMS / 2);
    for (unsigned k = 0, i = 0; k < 4; k++) {
        for (unsigned d = 0; d < NDOMS; d++, i++) {
            uint8_t *page = (uint8_t *)pvabi_grant_addr(g[d]) + PAGE;
            if (k == 2) {
                assert_int_equal(s[i].status, d % 2 ? -EPERM : 0);
                assert_true(holds(page, PAGE, d % 2 ? 10 + d : 50 + i, d % 2 ? PAGE : 0));
                continue;
            }
            assert_int_equal(s[i].status, 0);
            assert_true(holds(buf[i], PAGE, 10 + d, k == 1 ? PAGE : 0));
        }
    }
    for (unsigned d = 0; d < NDOMS; d++) {
        assert_int_equal(pvabi_grant_revoke(g[d]), 0);
        pvabi_close(fe[d]);
    }
    pvabi_close(be);
}

/* A full batch: 128 segments over 64 pages of two shares, half reads, half
 * writes; then 128 again with every tenth ref bad. */
static void test_copy_full_batch_of_128_segments(void **state)
{
    (void)state;
    long fds = it_self_fd_count();
    pvabi_ctx *fe = open_domain(), *be = open_domain();
    pvabi_grant *a = share(fe, be, 32, 0, 1), *b = share(fe, be, 32, 0, 2);
    static uint8_t buf[MAXSEG][PAGE];
    struct pvabi_grant_copy_seg s[MAXSEG];

    for (unsigned i = 0; i < MAXSEG; i++) {
        unsigned p = i % 64;
        pvabi_grant *g = p < 32 ? a : b;
        fill(buf[i], PAGE, 100 + i, 0);
        /* pages 0..63 read whole by segments 0..63, then their second
         * halves overwritten by segments 64..127 */
        s[i] = i < 64 ? seg(buf[i], pvabi_grant_ref(g, p % 32), fe, 0, PAGE, 0)
                      : seg(buf[i], pvabi_grant_ref(g, p % 32), fe, PAGE / 2, PAGE / 2, 1);
    }
    assert_int_equal(pvabi_grant_copy(be, s, MAXSEG), 0);
    for (unsigned i = 0; i < MAXSEG; i++) {
        unsigned p = i % 64;
        uint8_t *page = (uint8_t *)pvabi_grant_addr(p < 32 ? a : b) + (size_t)(p % 32) * PAGE;
        assert_int_equal(s[i].status, 0);
        if (i < 64)
            assert_true(holds(buf[i], PAGE, p < 32 ? 1 : 2, (size_t)(p % 32) * PAGE));
        else
            assert_true(holds(page + PAGE / 2, PAGE / 2, 100 + i, 0));
    }
    for (unsigned i = 0; i < MAXSEG; i++) {
        s[i].to_foreign = 0;
        s[i].offset = 0;
        s[i].len = PAGE;
        if (i % 10 == 3)
            s[i].ref += 20000;
    }
    assert_int_equal(pvabi_grant_copy(be, s, MAXSEG), 13);
    for (unsigned i = 0; i < MAXSEG; i++)
        assert_int_equal(s[i].status, i % 10 == 3 ? -ENOENT : 0);
    assert_true(holds(buf[64], PAGE / 2, 1, 0));
    assert_true(holds(buf[64] + PAGE / 2, PAGE / 2, 100 + 64, 0));
    assert_int_equal(pvabi_grant_revoke(a), 0);
    assert_int_equal(pvabi_grant_revoke(b), 0);
    pvabi_close(be);
    pvabi_close(fe);
    assert_int_equal(it_self_fd_count(), fds);
}

/* Every segment refused: no map at all, each its status, no fd left. */
static void test_copy_all_refused_and_empty_call(void **state)
{
    (void)state;
    pvabi_ctx *fe = open_domain(), *be = open_domain();
    pvabi_grant *ro = share(fe, be, 1, PVABI_GRANT_RO, 1);
    static uint8_t buf[3][PAGE];
    struct pvabi_grant_copy_seg s[3];

    s[0] = seg(buf[0], pvabi_grant_ref(ro, 0), fe, 0, 8, 1);
    s[1] = seg(buf[1], pvabi_grant_ref(ro, 0), fe, 8, 8, 1);
    s[2] = seg(buf[2], 7, fe, 0, 8, 0); /* refs below 8 are reserved */
    assert_int_equal(pvabi_grant_copy(be, s, 3), 3);
    assert_int_equal(s[0].status, -EPERM);
    assert_int_equal(s[1].status, -EPERM);
    assert_int_equal(s[2].status, -ENOENT);
    assert_int_equal(pvabi_grant_copy(be, s, 0), 0);
    assert_int_equal(pvabi_grant_revoke(ro), 0);
    pvabi_close(be);
    pvabi_close(fe);
}

/* ---- a scripted daemon --------------------------------------------------- */

enum fake_mode {
    FAKE_OK,           /* refs 8..15 are pages 0..7 of one memfd; others -ENOENT */
    FAKE_WHOLE_FAIL,   /* and a multi-ref map that would succeed fails, naming no ref */
    FAKE_BAD_FD_INDEX, /* a successful map names an fd it did not send */
    FAKE_EXTRA_FDS,    /* a successful map sends more fds than refs */
};

struct fake_counts {
    unsigned maps_multi, maps_single, unmaps, unmap_refs;
};

struct fake {
    char dir[32], sock[64];
    pid_t pid;
    int report, memfd;
    uint8_t *mem; /* the 8 pages, as the fake's "granter" shares them */
};

static void fake_send(int c, const struct hv_hdr *rq, int32_t status, const void *payload,
                      uint32_t len, const int *fds, unsigned nfds)
{
    union {
        struct cmsghdr align;
        char buf[CMSG_SPACE(sizeof(int) * (HV_REFS_MAX + 1))];
    } ctl;
    struct hv_hdr h = { .magic = HV_MAGIC,
                        .op = rq->op,
                        .flags = HV_F_REPLY,
                        .seq = rq->seq,
                        .status = status,
                        .len = len,
                        .nfds = nfds };
    struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)payload, len } };
    struct msghdr mh = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };

    if (nfds) {
        memset(ctl.buf, 0, sizeof(ctl.buf));
        mh.msg_control = ctl.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        CMSG_FIRSTHDR(&mh)->cmsg_level = SOL_SOCKET;
        CMSG_FIRSTHDR(&mh)->cmsg_type = SCM_RIGHTS;
        CMSG_FIRSTHDR(&mh)->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(CMSG_FIRSTHDR(&mh)), fds, sizeof(int) * nfds);
    }
    if (sendmsg(c, &mh, MSG_NOSIGNAL) < 0)
        _exit(1);
}

static void fake_map(int c, const struct hv_hdr *rq, const uint8_t *payload, int memfd,
                     enum fake_mode mode, struct fake_counts *n)
{
    struct hv_grant_refs_req req;
    uint32_t refs[HV_REFS_MAX];
    struct hv_grant_map_rsp rsp;
    struct hv_grant_map_slot slot[HV_REFS_MAX];
    uint8_t out[sizeof(rsp) + sizeof(slot)];
    int fds[HV_REFS_MAX + 1];
    unsigned nfds = 1;
    int32_t status = 0;

    memcpy(&req, payload, sizeof(req));
    memcpy(refs, payload + sizeof(req), req.count * sizeof(refs[0]));
    memset(slot, 0, sizeof(slot));
    *(req.count > 1 ? &n->maps_multi : &n->maps_single) += 1;
    for (uint32_t i = 0; i < req.count; i++) {
        slot[i].page = refs[i] - 8;
        if (refs[i] < 8 || refs[i] >= 16) {
            slot[i].status = -ENOENT;
            status = -ENOENT;
        }
    }
    if (status == 0 && mode == FAKE_WHOLE_FAIL && req.count > 1)
        status = -ENOMEM;
    if (status == 0 && mode == FAKE_BAD_FD_INDEX)
        slot[0].fd_index = 1;
    if (status == 0 && mode == FAKE_EXTRA_FDS)
        nfds = req.count + 1;
    if (status)
        nfds = 0;
    for (unsigned i = 0; i < nfds; i++)
        fds[i] = memfd;
    rsp = (struct hv_grant_map_rsp){ .count = req.count, .nfds = nfds };
    memcpy(out, &rsp, sizeof(rsp));
    memcpy(out + sizeof(rsp), slot, req.count * sizeof(slot[0]));
    fake_send(c, rq, status, out, (uint32_t)(sizeof(rsp) + req.count * sizeof(slot[0])), fds, nfds);
}

/* Serves one client until it hangs up, then writes what it counted to
 * @report. */
static void fake_serve(int lsock, int memfd, enum fake_mode mode, int report)
{
    union {
        struct hv_hdr h;
        uint8_t b[HV_MSG_MAX];
    } in;
    struct fake_counts n = { 0 };
    int c = accept(lsock, NULL, NULL);

    if (c < 0)
        _exit(1);
    while (recv(c, in.b, sizeof(in.b), 0) >= (ssize_t)sizeof(struct hv_hdr)) {
        const uint8_t *p = in.b + sizeof(struct hv_hdr);
        struct hv_grant_refs_req req;
        struct hv_hello_rsp hello = { .version = HV_PROTO_VERSION, .domid = 7 };
        switch (in.h.op) {
        case HV_OP_HELLO:
            fake_send(c, &in.h, 0, &hello, sizeof(hello), NULL, 0);
            break;
        case HV_OP_GRANT_MAP:
            fake_map(c, &in.h, p, memfd, mode, &n);
            break;
        case HV_OP_GRANT_UNMAP: /* sent without waiting for a reply */
            memcpy(&req, p, sizeof(req));
            n.unmaps++;
            n.unmap_refs += req.count;
            break;
        default:
            fake_send(c, &in.h, -ENOSYS, NULL, 0, NULL, 0);
        }
    }
    if (write(report, &n, sizeof(n)) != sizeof(n))
        _exit(1);
    _exit(0);
}

/* A scripted daemon on a fresh socket, its 8 pages filled with pattern 1. */
static void fake_start(struct fake *f, enum fake_mode mode)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int l = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0), p[2];

    snprintf(f->dir, sizeof(f->dir), "/tmp/pvabi-gc-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->sock, sizeof(f->sock), "%s/hv.sock", f->dir);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->sock);
    f->memfd = memfd_create("fake-granter", MFD_CLOEXEC);
    assert_true(f->memfd >= 0);
    assert_int_equal(ftruncate(f->memfd, 8 * PAGE), 0);
    f->mem = mmap(NULL, 8 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, f->memfd, 0);
    assert_true(f->mem != MAP_FAILED);
    fill(f->mem, 8 * PAGE, 1, 0);
    assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(l, 1), 0);
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    f->pid = fork();
    assert_true(f->pid >= 0);
    if (f->pid == 0)
        fake_serve(l, f->memfd, mode, p[1]);
    close(l);
    close(p[1]);
    f->report = p[0];
}

/* After the client's close: what the fake counted. */
static struct fake_counts fake_stop(struct fake *f)
{
    struct fake_counts n;
    int st;

    assert_int_equal(read(f->report, &n, sizeof(n)), sizeof(n));
    assert_int_equal(waitpid(f->pid, &st, 0), f->pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    close(f->report);
    close(f->memfd);
    munmap(f->mem, 8 * PAGE);
    unlink(f->sock);
    rmdir(f->dir);
    return n;
}

static pvabi_ctx *fake_open(const struct fake *f)
{
    char spec[160];
    pvabi_ctx *ctx = NULL;

    snprintf(spec, sizeof(spec), "local:%s", f->sock);
    assert_int_equal(pvabi_open(&ctx, spec), 0);
    return ctx;
}

/* Reads of refs 8, 9, 8 again and the bad 99; writes to 10 and 11. */
static unsigned fake_segs(struct pvabi_grant_copy_seg *s, uint8_t (*buf)[PAGE])
{
    static const struct {
        uint32_t ref;
        unsigned off, len, out;
    } t[] = { { 8, 0, PAGE, 0 }, { 9, 100, 50, 0 }, { 8, 4000, 96, 0 },
              { 99, 0, 8, 0 },   { 10, 8, 16, 1 },  { 11, 0, PAGE, 1 } };

    for (unsigned i = 0; i < 6; i++) {
        fill(buf[i], PAGE, 20 + i, 0);
        s[i] = (struct pvabi_grant_copy_seg){ .local = buf[i],
                                              .ref = t[i].ref,
                                              .domid = 5,
                                              .offset = (uint16_t)t[i].off,
                                              .len = (uint16_t)t[i].len,
                                              .to_foreign = (uint8_t)t[i].out,
                                              .status = 1 };
    }
    return 6;
}

static void fake_segs_check(const struct fake *f, const struct pvabi_grant_copy_seg *s,
                            uint8_t (*buf)[PAGE])
{
    for (unsigned i = 0; i < 6; i++)
        assert_int_equal(s[i].status, i == 3 ? -ENOENT : 0);
    assert_true(holds(buf[0], PAGE, 1, 0));
    assert_true(holds(buf[1], 50, 1, PAGE + 100));
    assert_true(holds(buf[2], 96, 1, 4000));
    assert_true(holds(buf[3], PAGE, 23, 0)); /* the failed read left it alone */
    assert_true(holds(f->mem + 2 * PAGE, 8, 1, 2 * PAGE));
    assert_true(holds(f->mem + 2 * PAGE + 8, 16, 24, 0));
    assert_true(holds(f->mem + 2 * PAGE + 24, PAGE - 24, 1, 2 * PAGE + 24));
    assert_true(holds(f->mem + 3 * PAGE, PAGE, 25, 0));
}

/* One call, two batches (reads, writes): one GRANT_MAP each, plus one more
 * for the reads without the refused ref; one GRANT_UNMAP each, repeated refs
 * mapped and unmapped once. */
static void test_copy_one_map_and_one_unmap_per_batch(void **state)
{
    static uint8_t buf[6][PAGE];
    struct pvabi_grant_copy_seg s[6];
    struct fake_counts n;
    struct fake f;
    long fds;
    pvabi_ctx *ctx;

    (void)state;
    fake_start(&f, FAKE_OK);
    fds = it_self_fd_count();
    ctx = fake_open(&f);
    assert_int_equal(pvabi_grant_copy(ctx, s, fake_segs(s, buf)), 1);
    fake_segs_check(&f, s, buf);
    pvabi_close(ctx);
    assert_int_equal(it_self_fd_count(), fds);
    n = fake_stop(&f);
    assert_int_equal(n.maps_multi, 3); /* reads {8, 9, 99}, reads {8, 9}, writes {10, 11} */
    assert_int_equal(n.maps_single, 0);
    assert_int_equal(n.unmaps, 2);
    assert_int_equal(n.unmap_refs, 4);
}

/* A batch that fails as a whole, naming no ref: segment by segment, with
 * the same results. */
static void test_copy_batch_failure_falls_back_per_segment(void **state)
{
    static uint8_t buf[6][PAGE];
    struct pvabi_grant_copy_seg s[6];
    struct fake_counts n;
    struct fake f;
    pvabi_ctx *ctx;

    (void)state;
    fake_start(&f, FAKE_WHOLE_FAIL);
    ctx = fake_open(&f);
    assert_int_equal(pvabi_grant_copy(ctx, s, fake_segs(s, buf)), 1);
    fake_segs_check(&f, s, buf);
    pvabi_close(ctx);
    n = fake_stop(&f);
    assert_int_equal(n.maps_multi, 3);
    assert_int_equal(n.maps_single, 5); /* 8, 9, 8 read; 10, 11 written */
    assert_int_equal(n.unmaps, 5);
    assert_int_equal(n.unmap_refs, 5);
}

/* A map reply that names an fd it did not send, or sends more fds than
 * refs: the protocol is broken, the connection ends, no fd is kept. */
static void test_copy_broken_map_reply_ends_connection(void **state)
{
    static const enum fake_mode modes[] = { FAKE_BAD_FD_INDEX, FAKE_EXTRA_FDS };
    static uint8_t buf[2][PAGE];

    (void)state;
    for (unsigned k = 0; k < 2; k++) {
        struct pvabi_grant_copy_seg s[2] = {
            { .local = buf[0], .ref = 8, .domid = 5, .len = 8 },
            { .local = buf[1], .ref = 9, .domid = 5, .len = 8 },
        };
        struct fake f;
        long fds;
        pvabi_ctx *ctx;

        fake_start(&f, modes[k]);
        fds = it_self_fd_count();
        ctx = fake_open(&f);
        assert_int_equal(pvabi_grant_copy(ctx, s, 2), -ENOTCONN);
        assert_int_equal(s[0].status, -ENOTCONN);
        assert_int_equal(s[1].status, -ENOTCONN);
        assert_int_equal(pvabi_grant_copy(ctx, s, 1), -ENOTCONN);
        pvabi_close(ctx);
        assert_int_equal(it_self_fd_count(), fds);
        fake_stop(&f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(test_copy_mixed_good_and_bad_segments_each_own_status),
        IT_TEST(test_copy_repeated_refs_in_order_and_balanced),
        IT_TEST(test_copy_many_domains_in_one_call),
        IT_TEST(test_copy_full_batch_of_128_segments),
        IT_TEST(test_copy_all_refused_and_empty_call),
        cmocka_unit_test(test_copy_one_map_and_one_unmap_per_batch),
        cmocka_unit_test(test_copy_batch_failure_falls_back_per_segment),
        cmocka_unit_test(test_copy_broken_map_reply_ends_connection),
    };

    if (it_is_xen()) {
        printf("integration-grant-copy: local platform only (batched copy, local statuses)\n");
        return 77;
    }
    return it_run_tests("integration-grant-copy", tests);
}
