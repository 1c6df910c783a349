/* SPDX-License-Identifier: MIT */
/*
 * split_demo - a frontend and a backend domain driving a block-like device
 * through grants, an event channel and a shared ring, on any platform.
 *
 * The parent process is the frontend domain, the child the backend domain;
 * each opens its own pvabi context (on the local platform each becomes a
 * domain of the embedded hypervisor, started on demand).  The frontend grants
 * the backend one ring page and DATA_PAGES data pages and allocates an event
 * channel for it; until xenstore arrives they exchange the numbers over a
 * pipe.  The backend maps the pages, binds the channel, and answers "read
 * sector S into data page P" requests by filling the granted page, which the
 * frontend checks.  Notifications follow the ring's *_event protocol.
 *
 * usage: split_demo [REQUESTS]
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pvabi/pvabi.h>

#define DATA_PAGES 16
#define WAIT_MS    10000 /* no progress for this long: the peer is gone */

struct blk_req {
    uint64_t id;
    uint64_t sector;
    uint32_t page; /* which data page to fill */
    uint32_t pad;
};

struct blk_rsp {
    uint64_t id;
    int32_t status;
    uint32_t pad;
};

PVABI_RING_DEFINE(blk, struct blk_req, struct blk_rsp);

/* What the frontend tells the backend (xenstore's job, from issue 5 on). */
struct connect_info {
    uint32_t fe_domid;
    uint32_t port;
    uint32_t ring_ref;
    uint32_t data_refs[DATA_PAGES];
};

static int die(const char *who, const char *what, int rc)
{
    fprintf(stderr, "split_demo %s: %s: %s\n", who, what, strerror(rc < 0 ? -rc : rc));
    return 1;
}

static int read_full(int fd, void *buf, size_t len)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    if (poll(&p, 1, WAIT_MS) != 1)
        return -ETIMEDOUT;
    return read(fd, buf, len) == (ssize_t)len ? 0 : -EPIPE;
}

/* The byte sector @s holds at @i: what the backend "reads from disk". */
static uint8_t sector_byte(uint64_t s, size_t i)
{
    return (uint8_t)(s * 131 + i * 7);
}

/* Waits for an event on @port; 0, or -ENOTCONN when the peer closed. */
static int wait_event(pvabi_ctx *ctx, pvabi_port port)
{
    struct pollfd p = { .fd = pvabi_fd(ctx), .events = POLLIN };
    pvabi_port got[8];
    int n;

    if (poll(&p, 1, WAIT_MS) != 1)
        return -ETIMEDOUT;
    while ((n = pvabi_evtchn_pending(ctx, got, 8)) > 0)
        for (int i = 0; i < n; i++)
            pvabi_evtchn_unmask(ctx, got[i]);
    if (n < 0)
        return n;
    return pvabi_evtchn_state(ctx, port) == PVABI_EVTCHN_CLOSED ? -ENOTCONN : 0;
}

/* ---- backend ----------------------------------------------------------- */

struct backend {
    pvabi_ctx *ctx;
    pvabi_map *ring_map, *data_map;
    struct blk_back ring;
    pvabi_port port;
    uint8_t *data;
    unsigned long served;
};

static int backend_connect(struct backend *be, const struct connect_info *ci)
{
    pvabi_gref ring_ref = ci->ring_ref;
    int rc =
        pvabi_grant_map(be->ctx, (pvabi_domid)ci->fe_domid, &ring_ref, 1, 0, NULL, &be->ring_map);
    if (rc == 0)
        rc = pvabi_grant_map(be->ctx, (pvabi_domid)ci->fe_domid, ci->data_refs, DATA_PAGES, 0, NULL,
                             &be->data_map);
    if (rc == 0)
        rc = pvabi_evtchn_bind(be->ctx, (pvabi_domid)ci->fe_domid, ci->port, &be->port);
    if (rc == 0)
        rc = blk_back_attach(&be->ring, pvabi_map_addr(be->ring_map), 0);
    be->data = rc == 0 ? pvabi_map_addr(be->data_map) : NULL;
    return rc;
}

/* Serves what is waiting; the count or a negative errno. */
static int backend_serve(struct backend *be)
{
    struct blk_req req[32];
    int n = blk_back_copy_reqs(&be->ring, req, 32);

    for (int i = 0; i < n; i++) {
        struct blk_rsp *rsp = blk_back_next_rsp(&be->ring);
        rsp->id = req[i].id;
        rsp->status = req[i].page < DATA_PAGES ? 0 : -EINVAL; /* check the copy, not the slot */
        if (rsp->status == 0)
            for (size_t b = 0; b < PVABI_PAGE_SIZE; b++)
                be->data[req[i].page * PVABI_PAGE_SIZE + b] = sector_byte(req[i].sector, b);
    }
    if (n > 0 && blk_back_publish(&be->ring) == 1)
        pvabi_evtchn_notify(be->ctx, be->port);
    be->served += n > 0 ? (unsigned long)n : 0;
    return n;
}

static int backend_loop(struct backend *be)
{
    for (;;) {
        int n = backend_serve(be);
        if (n < 0)
            return n;
        if (n > 0 || blk_back_final_check(&be->ring) != 0)
            continue;
        int rc = wait_event(be->ctx, be->port);
        if (rc == -ENOTCONN)
            return 0; /* the frontend closed the channel: done */
        if (rc < 0)
            return rc;
    }
}

static int backend_main(int to_fe, int from_fe)
{
    struct backend be = { 0 };
    struct connect_info ci;
    uint32_t me;
    int rc = pvabi_open(&be.ctx, NULL);

    if (rc < 0)
        return die("backend", "pvabi_open", rc);
    me = pvabi_own_domid(be.ctx);
    if (write(to_fe, &me, sizeof(me)) != sizeof(me) || read_full(from_fe, &ci, sizeof(ci)) < 0)
        return die("backend", "talking to the frontend", EPIPE);
    rc = backend_connect(&be, &ci);
    if (rc == 0)
        rc = backend_loop(&be);
    printf("backend:  domain %u served %lu requests\n", me, be.served);
    pvabi_grant_unmap(be.ring_map);
    pvabi_grant_unmap(be.data_map);
    pvabi_close(be.ctx);
    return rc < 0 ? die("backend", "serving", rc) : 0;
}

/* ---- frontend ---------------------------------------------------------- */

struct frontend {
    pvabi_ctx *ctx;
    pvabi_grant *ring_grant, *data_grant;
    struct blk_front ring;
    pvabi_port port;
    uint64_t sent, done, bad;
};

static int frontend_setup(struct frontend *fe, pvabi_domid be_domid, struct connect_info *ci)
{
    int rc = pvabi_grant_share(fe->ctx, be_domid, 1, 0, &fe->ring_grant);
    if (rc == 0)
        rc = pvabi_grant_share(fe->ctx, be_domid, DATA_PAGES, 0, &fe->data_grant);
    if (rc == 0)
        rc = pvabi_evtchn_alloc(fe->ctx, be_domid, &fe->port);
    if (rc == 0)
        rc = blk_front_init(&fe->ring, pvabi_grant_addr(fe->ring_grant), 0);
    if (rc < 0)
        return rc;
    ci->fe_domid = pvabi_own_domid(fe->ctx);
    ci->port = fe->port;
    ci->ring_ref = pvabi_grant_ref(fe->ring_grant, 0);
    for (unsigned i = 0; i < DATA_PAGES; i++)
        ci->data_refs[i] = pvabi_grant_ref(fe->data_grant, i);
    return 0;
}

/* One request per data page may be in flight: the page is its buffer. */
static void frontend_queue(struct frontend *fe, uint64_t total)
{
    struct blk_req *r;
    while (fe->sent < total && fe->sent - fe->done < DATA_PAGES &&
           (r = blk_front_next_req(&fe->ring)) != NULL) {
        *r = (struct blk_req){ .id = fe->sent,
                               .sector = fe->sent * 8,
                               .page = (uint32_t)(fe->sent % DATA_PAGES) };
        fe->sent++;
    }
    if (blk_front_publish(&fe->ring) == 1)
        pvabi_evtchn_notify(fe->ctx, fe->port);
}

static int frontend_collect(struct frontend *fe)
{
    struct blk_rsp rsp[32];
    const uint8_t *data = pvabi_grant_addr(fe->data_grant);
    int n = blk_front_copy_rsps(&fe->ring, rsp, 32);

    for (int i = 0; i < n; i++, fe->done++) {
        const uint8_t *page = data + (rsp[i].id % DATA_PAGES) * PVABI_PAGE_SIZE;
        int ok = rsp[i].id == fe->done && rsp[i].status == 0;
        for (size_t b = 0; ok && b < PVABI_PAGE_SIZE; b += 511)
            ok = page[b] == sector_byte(rsp[i].id * 8, b);
        fe->bad += !ok;
    }
    return n;
}

static int frontend_run(struct frontend *fe, uint64_t total)
{
    while (fe->done < total) {
        frontend_queue(fe, total);
        int n = frontend_collect(fe);
        if (n < 0)
            return n;
        if (n > 0 || blk_front_final_check(&fe->ring) != 0)
            continue;
        int rc = wait_event(fe->ctx, fe->port);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Closes the channel (the backend then unmaps and exits), waits for the
 * backend with a deadline, then revokes the grants it no longer maps. */
static int frontend_teardown(struct frontend *fe, pid_t backend)
{
    int pidfd = pidfd_open(backend, 0), status = 0;
    struct pollfd p = { .fd = pidfd, .events = POLLIN };

    pvabi_evtchn_unbind(fe->ctx, fe->port);
    if (pidfd < 0 || poll(&p, 1, WAIT_MS) != 1)
        kill(backend, SIGKILL);
    if (pidfd >= 0)
        close(pidfd);
    waitpid(backend, &status, 0);
    int rc = pvabi_grant_revoke(fe->ring_grant);
    if (rc == 0)
        rc = pvabi_grant_revoke(fe->data_grant);
    return rc < 0 ? rc : (WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -ECHILD);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int frontend_main(pid_t backend, int from_be, int to_be, uint64_t total)
{
    struct frontend fe = { 0 };
    struct connect_info ci;
    uint32_t be_domid;
    int rc = pvabi_open(&fe.ctx, NULL);

    if (rc < 0)
        return die("frontend", "pvabi_open", rc);
    if ((rc = read_full(from_be, &be_domid, sizeof(be_domid))) < 0 ||
        (rc = frontend_setup(&fe, (pvabi_domid)be_domid, &ci)) < 0 ||
        write(to_be, &ci, sizeof(ci)) != sizeof(ci))
        return die("frontend", "connecting", rc < 0 ? rc : -EPIPE);
    printf("frontend: domain %u on platform %s; backend domain %u; ring ref %u, port %u\n",
           ci.fe_domid, pvabi_platform(fe.ctx), be_domid, ci.ring_ref, ci.port);
    double t0 = now_s();
    rc = frontend_run(&fe, total);
    double dt = now_s() - t0;
    uint64_t kicks = 0;
    pvabi_evtchn_counter(fe.ctx, fe.port, PVABI_EVTCHN_SENT, &kicks);
    printf("frontend: %" PRIu64 " requests, %" PRIu64 " wrong, %.0f requests/s, "
           "%" PRIu64 " notifications sent\n",
           fe.done, fe.bad, (double)fe.done / dt, kicks);
    if (rc == 0)
        rc = frontend_teardown(&fe, backend);
    pvabi_close(fe.ctx);
    if (rc < 0)
        return die("frontend", "running", rc);
    return fe.bad == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    uint64_t total = argc > 1 ? strtoull(argv[1], NULL, 0) : 200000;
    int up[2], down[2]; /* backend -> frontend, frontend -> backend */

    if (total == 0 || pipe(up) || pipe(down)) {
        fprintf(stderr, "usage: split_demo [REQUESTS>0]\n");
        return 2;
    }
    fflush(stdout);
    pid_t child = fork();
    if (child < 0)
        return die("main", "fork", errno);
    if (child == 0) {
        close(up[0]);
        close(down[1]);
        _exit(backend_main(up[1], down[0]));
    }
    close(up[1]);
    close(down[0]);
    return frontend_main(child, up[0], down[1], total);
}
