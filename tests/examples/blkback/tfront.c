/* SPDX-License-Identifier: MIT */
/*
 * tfront.c - the raw test frontend, the toolstack step and the blkback
 * child for blkback's tests (see tfront.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "tfront.h"

static pvabi_ctx *g_ts;

static void check(int rc, const char *what)
{
    if (rc < 0)
        it_fail("%s: %s", what, strerror(-rc));
}

pvabi_ctx *tf_toolstack(void)
{
    if (!g_ts)
        check(pvabi_open_flags(&g_ts, "local", PVABI_OPEN_TOOLSTACK), "toolstack context");
    return g_ts;
}

void tf_toolstack_close(void)
{
    pvabi_close(g_ts);
    g_ts = NULL;
}

/* ---- the daemon ------------------------------------------------------------ */

void tf_back_start(struct tf_back *b, const char *const *args)
{
    tf_back_start_env(b, "BLKBACK", args);
}

void tf_back_start_env(struct tf_back *b, const char *var, const char *const *args)
{
    const char *exe = getenv(var);
    const char *argv[16] = { exe, "--platform", "local" };
    unsigned n = 3;

    if (!exe || !*exe)
        it_fail("%s is not set: the path of the blkback daemon under test", var);
    for (; args && *args && n < 15; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    fflush(NULL);
    b->pid = fork();
    if (b->pid < 0)
        it_fail("fork: %s", strerror(errno));
    if (b->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        setenv("PVABI_LOCAL_DOMID", "0", 1);
        execv(exe, (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", exe, strerror(errno));
        _exit(127);
    }
    b->pidfd = (int)syscall(SYS_pidfd_open, b->pid, 0);
    if (b->pidfd < 0)
        it_fail("pidfd_open: %s", strerror(errno));
}

int tf_back_alive(struct tf_back *b)
{
    struct pollfd p = { .fd = b->pidfd, .events = POLLIN };

    return b->pid > 0 && poll(&p, 1, 0) == 0;
}

int tf_back_stop(struct tf_back *b, int sig)
{
    int st = 0;

    if (b->pid <= 0)
        return 0;
    kill(b->pid, sig);
    st = it_reap(b->pid, b->pidfd, "blkback");
    b->pid = 0;
    return st;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- frontend ------------------------------------------------------------ */

static void on_release(pvabi_ctx *ctx, const char *path, void *opaque)
{
    (void)ctx, (void)path, (void)opaque;
}

/* A domid claimed again right after its domain closed may still be taken
 * (-EADDRINUSE) until the daemon has released it: retry at each
 * @releaseDomain, within the timeout. */
static int open_retrying(pvabi_ctx **ctx)
{
    pvabi_watch *w = NULL;
    int64_t end = now_ms() + TF_TIMEOUT_MS;
    int rc;

    check(pvabi_store_watch(tf_toolstack(), "@releaseDomain", on_release, NULL, &w), "watch");
    while ((rc = pvabi_open(ctx, "local")) == -EADDRINUSE && now_ms() < end)
        pvabi_store_wait(tf_toolstack(), 200);
    pvabi_store_unwatch(w);
    return rc;
}

void tf_domain(struct tf *f)
{
    memset(f, 0, sizeof(*f));
    check(getenv("PVABI_LOCAL_DOMID") ? open_retrying(&f->ctx) : pvabi_open(&f->ctx, "local"),
          "frontend context");
    f->domid = pvabi_own_domid(f->ctx);
}

void tf_add(struct tf *f, unsigned devid, const char *path, const char *mode)
{
    char vdev[16];
    const char *bn[] = { "params", path,        "mode", mode,       "type", "file", "dev",
                         "xvdb",   "removable", "0",    "bootable", "1",    NULL };
    const char *fn[] = { "virtual-device", vdev, "device-type", "disk", NULL };

    snprintf(vdev, sizeof(vdev), "%u", devid);
    f->devid = devid;
    check(pvabi_xenbus_device_add(tf_toolstack(), "vbd", f->domid, 0, devid, bn, fn), "device add");
}

static void share_pools(struct tf *f)
{
    for (unsigned i = 0, left = TF_POOL; left; i++) {
        unsigned n = left > 128 ? 128 : left;
        check(pvabi_grant_share(f->ctx, 0, n, 0, &f->pool[i]), "share pool");
        left -= n;
    }
    check(pvabi_grant_share(f->ctx, 0, 1, PVABI_GRANT_RO, &f->ro), "share ro page");
    check(pvabi_grant_share(f->ctx, 0, 8, 0, &f->ind), "share indirect pages");
}

int tf_connect(struct tf *f, unsigned order, int persistent)
{
    const char *nodes[] = { "feature-persistent", "1", NULL };
    int rc;

    check(pvabi_xenbus_front_open(f->ctx, "vbd", f->devid, NULL, NULL, &f->xf), "front open");
    check(pvabi_xenbus_front_start(f->xf), "front start");
    rc = pvabi_xenbus_front_wait(f->xf, PVABI_XENBUS_EV_PEER_READY, TF_TIMEOUT_MS);
    if (rc < 0)
        return rc;
    if (!f->pool[0])
        share_pools(f);
    check(pvabi_grant_share(f->ctx, 0, 1u << order, 0, &f->ring), "share ring");
    check(pvblk_front_init(&f->fr, pvabi_grant_addr(f->ring), order), "ring init");
    check(pvabi_evtchn_alloc(f->ctx, 0, &f->port), "evtchn alloc");
    rc = pvabi_xenbus_front_connect(f->xf, f->ring, f->port, NULL, persistent ? nodes : NULL);
    if (rc < 0)
        return rc;
    return pvabi_xenbus_front_wait(f->xf, PVABI_XENBUS_EV_CONNECTED, TF_TIMEOUT_MS);
}

void tf_close(struct tf *f)
{
    pvabi_xenbus_front_close(f->xf);
    pvabi_close(f->ctx);
    memset(f, 0, sizeof(*f));
}

long tf_back_node(struct tf *f, const char *key)
{
    char path[160];
    uint32_t v;

    snprintf(path, sizeof(path), "/local/domain/0/backend/vbd/%u/%u/%s", f->domid, f->devid, key);
    return pvabi_store_read_u32(f->ctx, PVABI_STORE_TXN_NONE, path, &v) < 0 ? -1 : (long)v;
}

int tf_back_state(struct tf *f)
{
    long v = tf_back_node(f, "state");
    return v < 0 ? 0 : (int)v;
}

static void on_watch(pvabi_ctx *ctx, const char *path, void *opaque)
{
    (void)ctx, (void)path, (void)opaque;
}

int tf_wait_back_state(struct tf *f, int state, int timeout_ms)
{
    char path[160];
    pvabi_watch *w;
    int64_t end = now_ms() + timeout_ms;
    int rc = 0;

    snprintf(path, sizeof(path), "/local/domain/0/backend/vbd/%u/%u/state", f->domid, f->devid);
    check(pvabi_store_watch(f->ctx, path, on_watch, NULL, &w), "watch");
    while (tf_back_state(f) != state) {
        int64_t left = end - now_ms();
        if (left <= 0) {
            rc = -ETIMEDOUT;
            break;
        }
        pvabi_store_wait(f->ctx, (int)left);
    }
    pvabi_store_unwatch(w);
    return rc;
}

uint8_t *tf_page(struct tf *f, unsigned page)
{
    return (uint8_t *)pvabi_grant_addr(f->pool[page / 128]) + (size_t)(page % 128) * 4096;
}

pvabi_gref tf_gref(struct tf *f, unsigned page)
{
    return pvabi_grant_ref(f->pool[page / 128], page % 128);
}

void tf_push(struct tf *f, const struct pvblk_request *req)
{
    struct pvblk_request *slot = pvblk_front_next_req(&f->fr);

    if (!slot)
        it_fail("ring full or broken");
    *slot = *req;
    if (pvblk_front_publish(&f->fr) == 1)
        pvabi_evtchn_notify(f->ctx, f->port);
}

int tf_pop(struct tf *f, struct pvblk_response *rsp, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;

    for (;;) {
        pvabi_port ports[8];
        int n = pvblk_front_copy_rsp(&f->fr, rsp);
        if (n != 0)
            return n < 0 ? n : 0;
        n = pvblk_front_final_check(&f->fr);
        if (n != 0) {
            if (n < 0)
                return n;
            continue;
        }
        int64_t left = end - now_ms();
        if (left <= 0)
            return -ETIMEDOUT;
        n = pvabi_evtchn_wait(f->ctx, ports, 8, (int)left);
        for (int i = 0; i < n; i++)
            pvabi_evtchn_unmask(f->ctx, ports[i]);
    }
}

void tf_build(struct tf *f, struct pvblk_request *r, uint8_t op, uint64_t sector,
              const struct tf_seg *segs, unsigned n, uint64_t id)
{
    memset(r, 0, sizeof(*r));
    r->operation = op;
    r->nr_segments = (uint8_t)n;
    r->handle = (uint16_t)f->devid;
    r->id = id;
    r->sector_number = sector;
    for (unsigned i = 0; i < n && i < PVBLK_MAX_SEGMENTS_PER_REQUEST; i++)
        r->seg[i] =
            (struct pvblk_segment){ tf_gref(f, segs[i].page), segs[i].first, segs[i].last, { 0 } };
}

uint8_t tf_rsp_operation(const struct pvblk_request *req)
{
    struct pvblk_request_indirect ir;

    memcpy(&ir, req, sizeof(ir));
    return req->operation == PVBLK_OP_INDIRECT ? ir.indirect_op : req->operation;
}

int tf_call(struct tf *f, const struct pvblk_request *req, uint64_t id)
{
    struct pvblk_response rsp;
    int rc;

    tf_push(f, req);
    rc = tf_pop(f, &rsp, TF_TIMEOUT_MS);
    if (rc < 0)
        it_fail("no response to request %llu: %s", (unsigned long long)id, strerror(-rc));
    if (rsp.id != id || rsp.operation != tf_rsp_operation(req))
        it_fail("response id %llu op %u for request %llu op %u (expected op %u)",
                (unsigned long long)rsp.id, rsp.operation, (unsigned long long)id, req->operation,
                tf_rsp_operation(req));
    return rsp.status;
}

int tf_rw(struct tf *f, uint8_t op, uint64_t sector, const struct tf_seg *segs, unsigned n,
          uint64_t id)
{
    struct pvblk_request r;

    tf_build(f, &r, op, sector, segs, n, id);
    return tf_call(f, &r, id);
}

void tf_build_indirect(struct tf *f, struct pvblk_request *r, uint8_t op, uint64_t sector,
                       unsigned n, uint64_t id)
{
    struct pvblk_request_indirect *ir = (struct pvblk_request_indirect *)(void *)r;
    struct pvblk_segment *d = pvabi_grant_addr(f->ind);

    memset(r, 0, sizeof(*r));
    ir->operation = PVBLK_OP_INDIRECT;
    ir->indirect_op = op;
    ir->nr_segments = (uint16_t)n;
    ir->id = id;
    ir->sector_number = sector;
    ir->handle = (uint16_t)f->devid;
    for (unsigned i = 0; i < n && i < 8 * 512; i++)
        d[i] = (struct pvblk_segment){ tf_gref(f, i % TF_POOL), 0, 7, { 0 } };
    for (unsigned p = 0; p < 8; p++)
        ir->indirect_grefs[p] = pvabi_grant_ref(f->ind, p);
}

int tf_indirect(struct tf *f, uint8_t op, uint64_t sector, unsigned n, uint64_t id)
{
    struct pvblk_request r;

    tf_build_indirect(f, &r, op, sector, n, id);
    return tf_call(f, &r, id);
}

/* ---- files ------------------------------------------------------------- */

void tf_image(char *path, size_t size, uint64_t bytes, unsigned seed)
{
    uint8_t buf[65536];
    int fd;

    snprintf(path, size, "/tmp/blkback-test-XXXXXX");
    fd = mkstemp(path);
    if (fd < 0)
        it_fail("mkstemp: %s", strerror(errno));
    for (uint64_t off = 0; off < bytes; off += sizeof(buf)) {
        size_t n = bytes - off < sizeof(buf) ? (size_t)(bytes - off) : sizeof(buf);
        for (size_t i = 0; i < n; i++)
            buf[i] = it_pattern(seed, (size_t)(off + i));
        if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n)
            it_fail("write image: %s", strerror(errno));
    }
    close(fd);
}

uint64_t tf_file_hash(const char *path, uint64_t *size)
{
    uint8_t buf[65536];
    uint64_t h = 1469598103934665603ull, total = 0;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        it_fail("open %s: %s", path, strerror(errno));
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        for (ssize_t i = 0; i < n; i++)
            h = (h ^ buf[i]) * 1099511628211ull;
        total += (uint64_t)n;
    }
    close(fd);
    if (size)
        *size = total;
    return h;
}
