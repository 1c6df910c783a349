/* SPDX-License-Identifier: MIT */
/*
 * The Xen-macro side of test_ring_interop_xen: blkif ends written only with
 * xen/io/ring.h's RING_* macros, in the shape of Linux's xen-blkback
 * (__do_block_io_op, make_response, do_block_io_op) and xen-blkfront
 * (blkif_queue_request, flush_requests, blkif_interrupt).  These are the
 * reference pvabi's rings must interoperate with, so nothing here uses pvabi.
 *
 * Under ThreadSanitizer this file is built uninstrumented (see meson.build):
 * the macros publish indices with plain accesses ordered by fences, which
 * TSan cannot see.  PEER_TSAN_RELEASE/ACQUIRE state the happens-before those
 * fences give, on the index's address, which pvabi's atomic accesses to the
 * same index synchronise with; PEER_TSAN_READ/WRITE report the slot accesses
 * themselves, so that TSan checks pvabi's side of that ordering.
 */
#include "xen_ring_peer.h"

#ifdef PVABI_TEST_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
void __tsan_read_range(void *addr, unsigned long size);
void __tsan_write_range(void *addr, unsigned long size);
#define PEER_TSAN_ACQUIRE(p) __tsan_acquire((void *)(p))
#define PEER_TSAN_RELEASE(p) __tsan_release((void *)(p))
/* The slot accesses, reported by hand: with them TSan checks that pvabi's
 * slot accesses are ordered against ours by its acquire/release on the
 * indices alone (a relaxed publish in pvabi shows up as a race here). */
#define PEER_TSAN_READ(p, n)  __tsan_read_range((void *)(p), (n))
#define PEER_TSAN_WRITE(p, n) __tsan_write_range((void *)(p), (n))
#else
#define PEER_TSAN_ACQUIRE(p)  ((void)(p))
#define PEER_TSAN_RELEASE(p)  ((void)(p))
#define PEER_TSAN_READ(p, n)  ((void)(p), (void)(n))
#define PEER_TSAN_WRITE(p, n) ((void)(p), (void)(n))
#endif

/* blkback's make_response(): one response, pushed at once, notify if asked. */
static int back_respond(struct peer_run *r, blkif_back_ring_t *ring, const blkif_request_t *req)
{
    blkif_response_t *rsp = RING_GET_RESPONSE(ring, ring->rsp_prod_pvt);
    int notify;

    peer_fill_rsp(rsp, req);
    PEER_TSAN_WRITE(rsp, sizeof(*rsp));
    ring->rsp_prod_pvt++;
    /* The response slot is written before rsp_prod (the macro's wmb). */
    PEER_TSAN_RELEASE(&ring->sring->rsp_prod);
    RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(ring, notify);
    return notify ? peer_kick(r) : 0;
}

/* blkback's __do_block_io_op(): the requests published so far; count or -1. */
static int back_serve(struct peer_run *r, blkif_back_ring_t *ring, uint64_t *next)
{
    RING_IDX rc = ring->req_cons;
    RING_IDX rp = ring->sring->req_prod;
    int served = 0;

    xen_rmb(); /* Ensure we see queued requests up to 'rp'. */
    PEER_TSAN_ACQUIRE(&ring->sring->req_prod);
    if (RING_REQUEST_PROD_OVERFLOW(ring, rp))
        return peer_fail(r, "xen back: frontend provided bogus ring requests (%u - %u = %u)", rp,
                         ring->rsp_prod_pvt, rp - ring->rsp_prod_pvt);
    while (rc != rp) {
        blkif_request_t req;
        const char *bad;

        if (RING_REQUEST_CONS_OVERFLOW(ring, rc))
            break;
        RING_COPY_REQUEST(ring, rc, &req);
        PEER_TSAN_READ(RING_GET_REQUEST(ring, rc), sizeof(req));
        ring->req_cons = ++rc; /* before make_response() */
        if ((bad = peer_req_mismatch(&req, *next)) != NULL)
            return peer_fail(r, "xen back: request %llu (index %u): wrong %s",
                             (unsigned long long)*next, rc - 1, bad);
        (*next)++;
        if (back_respond(r, ring, &req) < 0)
            return -1;
        served++;
    }
    return served;
}

int peer_xen_backend(struct peer_run *r)
{
    blkif_back_ring_t ring;
    uint64_t next = 0;
    int64_t idle_since = 0;

    BACK_RING_ATTACH(&ring, (blkif_sring_t *)r->shared, r->start, PEER_RING_BYTES(r->order));
    while (next < r->count) {
        int more = back_serve(r, &ring, &next);

        if (more < 0)
            return -1;
        if (more > 0) {
            idle_since = 0;
            continue;
        }
        /* do_block_io_op(): re-arm req_event, then look once more. */
        RING_FINAL_CHECK_FOR_REQUESTS(&ring, more);
        if (more)
            continue;
        if (peer_wait(r, &idle_since, "requests (xen back)", next) < 0)
            return -1;
    }
    return 0;
}

/* blkfront's blkif_queue_request() + flush_requests(): fill what fits, push. */
static int front_queue(struct peer_run *r, blkif_front_ring_t *ring, uint64_t *sent)
{
    int queued = 0, notify;

    while (*sent < r->count && !RING_FULL(ring)) {
        blkif_request_t *req = RING_GET_REQUEST(ring, ring->req_prod_pvt);

        peer_fill_req(req, (*sent)++);
        PEER_TSAN_WRITE(req, sizeof(*req));
        ring->req_prod_pvt++;
        queued++;
    }
    if (queued == 0)
        return 0;
    /* The request slots are written before req_prod (the macro's wmb). */
    PEER_TSAN_RELEASE(&ring->sring->req_prod);
    RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(ring, notify);
    if (notify && peer_kick(r) < 0)
        return -1;
    return queued;
}

/* blkfront's blkif_interrupt(): every response published; count or -1. */
static int front_reap(struct peer_run *r, blkif_front_ring_t *ring, uint64_t *done)
{
    RING_IDX avail;
    int got = 0;

    while ((avail = RING_HAS_UNCONSUMED_RESPONSES(ring)) != 0) {
        xen_rmb(); /* Ensure we see queued responses up to rsp_cons + avail. */
        PEER_TSAN_ACQUIRE(&ring->sring->rsp_prod);
        if (RING_RESPONSE_PROD_OVERFLOW(ring, ring->rsp_cons + avail) ||
            avail > ring->req_prod_pvt - ring->rsp_cons)
            return peer_fail(r, "xen front: backend provided bogus responses (%u ahead)", avail);
        for (; avail > 0; avail--) {
            blkif_response_t rsp;
            const char *bad;

            RING_COPY_RESPONSE(ring, ring->rsp_cons, &rsp);
            PEER_TSAN_READ(RING_GET_RESPONSE(ring, ring->rsp_cons), sizeof(rsp));
            ring->rsp_cons++;
            if ((bad = peer_rsp_mismatch(&rsp, *done)) != NULL)
                return peer_fail(r, "xen front: response %llu (index %u): wrong %s",
                                 (unsigned long long)*done, ring->rsp_cons - 1, bad);
            (*done)++;
            got++;
        }
    }
    return got;
}

int peer_xen_frontend(struct peer_run *r)
{
    blkif_front_ring_t ring;
    uint64_t sent = 0, done = 0;
    int64_t idle_since = 0;

    FRONT_RING_ATTACH(&ring, (blkif_sring_t *)r->shared, r->start, PEER_RING_BYTES(r->order));
    while (done < r->count) {
        int queued = front_queue(r, &ring, &sent);
        int reaped = queued < 0 ? -1 : front_reap(r, &ring, &done);
        int more;

        if (reaped < 0)
            return -1;
        if (queued > 0 || reaped > 0) {
            idle_since = 0;
            continue;
        }
        /* Ring full or everything sent: re-arm rsp_event, look once more. */
        RING_FINAL_CHECK_FOR_RESPONSES(&ring, more);
        if (more)
            continue;
        if (peer_wait(r, &idle_since, "responses (xen front)", done) < 0)
            return -1;
    }
    return 0;
}
