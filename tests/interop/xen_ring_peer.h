/* SPDX-License-Identifier: MIT */
/*
 * The reference peer of test_ring_interop_xen: a blkif frontend and backend
 * written only with Xen's RING_* macros, the way Linux's blkfront and blkback
 * drive a ring, in a translation unit of their own (xen_ring_peer.c).  That
 * file is built without ThreadSanitizer: Xen's macros order plain accesses
 * with fences, which TSan does not model, so the peer tells TSan about the
 * happens-before its fences give with explicit annotations instead.
 *
 * Also here: the payload rules both ends check (every field of request k and
 * of its response is derived from k, so a lost, repeated, reordered or torn
 * slot shows up at once) and the wait helpers both ends share (a no-progress
 * deadline on every wait, so a lost wake-up fails the test instead of hanging).
 */
#ifndef PVABI_TEST_XEN_RING_PEER_H
#define PVABI_TEST_XEN_RING_PEER_H

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/*
 * A guest that names no interface version gets the legacy one, whose ring.h
 * calls the includer's mb()/rmb()/wmb(); from 0x00030208 on it calls
 * xen_mb()/xen_rmb()/xen_wmb(), which must then be defined here.  No other
 * definition the tests use depends on the version.
 */
#ifndef __XEN_INTERFACE_VERSION__
#define __XEN_INTERFACE_VERSION__ 0x00030208
#endif
/*
 * Xen's ring.h leaves its barriers to the includer outside the kernel.  mb()
 * must order stores before loads: a full fence.  rmb() and wmb() only need
 * load-load and store-store order, which the acquire and release fences give
 * (they are stronger than needed, never weaker).
 */
#define xen_mb()  __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define xen_rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define xen_wmb() __atomic_thread_fence(__ATOMIC_RELEASE)
#include <xen/io/blkif.h>

/** Bytes of a ring of 1 << order pages: Xen's rings use 4 KiB pages everywhere. */
#define PEER_RING_BYTES(order) ((size_t)4096 << (order))

/** How long a side may see no progress before the test fails (a hang detector). */
#define PEER_STALL_SECONDS 30

/* Request ids start high so that their upper bytes are exercised as well. */
#define PEER_ID_BASE 0x5eed000000000000ull

/**
 * struct peer_run - one end of one ring exchange, filled in by the test.
 * @shared: the ring pages; the header is written before either end attaches.
 * @order: the ring's page order.
 * @start: the index both ends attach at (req_prod == rsp_prod == start).
 * @count: requests to exchange.
 * @kick_fd: eventfd the other end waits on, or -1 in polling mode.
 * @wait_fd: eventfd this end waits on, or -1 in polling mode.
 * @stop: shared by both ends; set by whichever fails first, so the other
 *   stops waiting at once instead of running into its deadline.
 * @kicks: notifications this end sent (the protocol said so).
 * @waits: times this end went idle (polling mode: yields; else sleeps).
 * @err: why this end failed; empty on success.
 */
struct peer_run {
    void *shared;
    unsigned order;
    uint32_t start;
    uint64_t count;
    int kick_fd;
    int wait_fd;
    int *stop;
    uint64_t kicks;
    uint64_t waits;
    char err[256];
};

/* The Xen-macro ends, in xen_ring_peer.c.  Each returns 0, or -1 with r->err. */
int peer_xen_backend(struct peer_run *r);
int peer_xen_frontend(struct peer_run *r);

/* ---- payload rules ----------------------------------------------------- */

static inline void peer_fill_req(blkif_request_t *req, uint64_t k)
{
    uint64_t id = PEER_ID_BASE + k;

    req->operation = (k & 1) ? BLKIF_OP_WRITE : BLKIF_OP_READ;
    req->nr_segments = (uint8_t)(1 + k % BLKIF_MAX_SEGMENTS_PER_REQUEST);
    req->handle = (blkif_vdev_t)(k * 7 + 1);
    req->id = id;
    req->sector_number = (id * 8) ^ 0x0123456789abcdefull;
    /* Every segment, not only nr_segments: a torn slot may hit any of them. */
    for (unsigned i = 0; i < BLKIF_MAX_SEGMENTS_PER_REQUEST; i++) {
        req->seg[i].gref = (grant_ref_t)(k * 11 + i);
        req->seg[i].first_sect = (uint8_t)((k + i) & 7);
        req->seg[i].last_sect = (uint8_t)((k >> 3) + i);
    }
}

/* Returns NULL when @got is request @k, else the name of a wrong field. */
static inline const char *peer_req_mismatch(const blkif_request_t *got, uint64_t k)
{
    blkif_request_t want;

    peer_fill_req(&want, k);
    if (got->id != want.id)
        return "id";
    if (got->operation != want.operation)
        return "operation";
    if (got->nr_segments != want.nr_segments)
        return "nr_segments";
    if (got->handle != want.handle)
        return "handle";
    if (got->sector_number != want.sector_number)
        return "sector_number";
    for (unsigned i = 0; i < BLKIF_MAX_SEGMENTS_PER_REQUEST; i++) {
        if (got->seg[i].gref != want.seg[i].gref ||
            got->seg[i].first_sect != want.seg[i].first_sect ||
            got->seg[i].last_sect != want.seg[i].last_sect)
            return "seg[]";
    }
    return NULL;
}

static inline int16_t peer_status_of(const blkif_request_t *req)
{
    /* BLKIF_RSP_EOPNOTSUPP .. 2: the known codes and a couple of others. */
    return (int16_t)((int)(req->sector_number % 5) - 2);
}

static inline void peer_fill_rsp(blkif_response_t *rsp, const blkif_request_t *req)
{
    rsp->id = req->id;
    rsp->operation = req->operation;
    rsp->status = peer_status_of(req);
}

/* Returns NULL when @got answers request @k, else the name of a wrong field. */
static inline const char *peer_rsp_mismatch(const blkif_response_t *got, uint64_t k)
{
    blkif_request_t req;

    peer_fill_req(&req, k);
    if (got->id != req.id)
        return "id";
    if (got->operation != req.operation)
        return "operation";
    if (got->status != peer_status_of(&req))
        return "status";
    return NULL;
}

/* ---- failing, notifying and waiting ------------------------------------ */

__attribute__((format(printf, 2, 3))) static inline int peer_fail(struct peer_run *r,
                                                                  const char *fmt, ...)
{
    va_list ap;
    uint64_t one = 1;

    va_start(ap, fmt);
    vsnprintf(r->err, sizeof(r->err), fmt, ap);
    va_end(ap);
    __atomic_store_n(r->stop, 1, __ATOMIC_SEQ_CST);
    /* Wake the other end so that it sees stop now, not after its deadline. */
    if (r->kick_fd >= 0 && write(r->kick_fd, &one, sizeof(one)) < 0)
        return -1;
    return -1;
}

/* Notifies the other end: the protocol said it is (or may be) asleep. */
static inline int peer_kick(struct peer_run *r)
{
    uint64_t one = 1;

    r->kicks++;
    if (r->kick_fd >= 0 && write(r->kick_fd, &one, sizeof(one)) != (ssize_t)sizeof(one))
        return peer_fail(r, "eventfd write: %s", strerror(errno));
    return 0;
}

static inline int64_t peer_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/**
 * peer_wait() - this end is idle: yield (polling mode) or sleep on its eventfd
 * until kicked (notifying mode).
 * @r: this end.
 * @idle_since: 0 after progress; set here to when the idle stretch began.
 * @what: what this end is waiting for, for the failure message.
 * @done: how many requests this end has finished, for the failure message.
 *
 * Fails (-1) when the other end failed, or when there was no progress for
 * PEER_STALL_SECONDS.  In notifying mode the sleep itself runs into that
 * deadline, so a lost wake-up fails instead of being hidden by a re-poll.
 */
static inline int peer_wait(struct peer_run *r, int64_t *idle_since, const char *what,
                            uint64_t done)
{
    int64_t now = peer_now_ms();

    if (__atomic_load_n(r->stop, __ATOMIC_SEQ_CST))
        return -1; /* the other end failed and said why */
    if (*idle_since == 0)
        *idle_since = now;
    int64_t left = *idle_since + PEER_STALL_SECONDS * 1000 - now;
    if (left <= 0)
        goto stalled;
    r->waits++;
    if (r->wait_fd < 0) {
        sched_yield();
        return 0;
    }
    struct pollfd pfd = { .fd = r->wait_fd, .events = POLLIN };
    int n = poll(&pfd, 1, (int)left);
    if (n < 0 && errno != EINTR)
        return peer_fail(r, "poll: %s", strerror(errno));
    if (n == 0)
        goto stalled;
    uint64_t val;
    if (n > 0 && read(r->wait_fd, &val, sizeof(val)) < 0 && errno != EAGAIN)
        return peer_fail(r, "eventfd read: %s", strerror(errno));
    return 0;
stalled:
    return peer_fail(r, "no progress for %d s waiting for %s after %llu of %llu requests%s",
                     PEER_STALL_SECONDS, what, (unsigned long long)done,
                     (unsigned long long)r->count, r->wait_fd >= 0 ? " (lost wake-up?)" : "");
}

#endif /* PVABI_TEST_XEN_RING_PEER_H */
