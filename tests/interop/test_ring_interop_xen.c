/* SPDX-License-Identifier: MIT */
/*
 * pvabi's rings against Xen's RING_* macros, two threads on one ring:
 *  - a pvabi frontend with a blkback-shaped Xen-macro backend, and
 *  - a Xen-macro blkfront-shaped frontend with a pvabi backend,
 * each in polling mode (millions of requests, every payload checked, indices
 * starting just below 2^32 so they wrap) and in notifying mode (each end
 * sleeps on an eventfd when idle and is woken only when the other end's
 * publish/push says so: a lost wake-up on either side stalls the exchange and
 * fails it after PEER_STALL_SECONDS).
 *
 * PVABI_TEST_SCALE=N divides every request count (sanitizer runs in CI).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>

#include <cmocka.h>

#include "xen_ring_peer.h"

#include "../common/guarded.h"

#include <pvabi/ring.h>

PVABI_RING_DEFINE(pblk, blkif_request_t, blkif_response_t);

/* Responses or requests copied out per call: more than a ring holds. */
#define PV_BATCH 64u

/* Indices start here so that they wrap early in every run. */
#define START_NEAR_WRAP (UINT32_C(0xffffffff) - 4096 + 1)

/* The pvabi frontend: fill what fits, publish once, copy responses out. */
static int pv_frontend(struct peer_run *r)
{
    struct pblk_front f;
    blkif_response_t rsp[PV_BATCH];
    uint64_t sent = 0, done = 0;
    int64_t idle_since = 0;
    int n = pblk_front_attach(&f, r->shared, r->order);

    if (n != 0)
        return peer_fail(r, "pblk_front_attach: %d", n);
    while (done < r->count) {
        blkif_request_t *req;
        int progress = 0;

        /* The count is checked first: next_req reserves the slot it returns. */
        while (sent < r->count && (req = pblk_front_next_req(&f)) != NULL) {
            peer_fill_req(req, sent++);
            progress = 1;
        }
        if (progress && (n = pblk_front_publish(&f)) != 0) {
            if (n < 0)
                return peer_fail(r, "pblk_front_publish: %d", n);
            if (peer_kick(r) < 0)
                return -1;
        }
        while ((n = pblk_front_copy_rsps(&f, rsp, PV_BATCH)) > 0) {
            for (int i = 0; i < n; i++, done++) {
                const char *bad = peer_rsp_mismatch(&rsp[i], done);
                if (bad)
                    return peer_fail(r, "pvabi front: response %llu: wrong %s",
                                     (unsigned long long)done, bad);
            }
            progress = 1;
        }
        if (n < 0)
            return peer_fail(r, "pblk_front_copy_rsps: %d", n);
        if (progress) {
            idle_since = 0;
            continue;
        }
        if ((n = pblk_front_final_check(&f)) < 0)
            return peer_fail(r, "pblk_front_final_check: %d", n);
        if (n == 0 && peer_wait(r, &idle_since, "responses (pvabi front)", done) < 0)
            return -1;
    }
    if (pblk_front_free(&f) != (int)pblk_ring_nr_ents(r->order))
        return peer_fail(r, "pvabi front: %d free slots at the end", pblk_front_free(&f));
    return 0;
}

/* The pvabi backend: copy requests out, answer each, publish once per batch. */
static int pv_backend(struct peer_run *r)
{
    struct pblk_back b;
    blkif_request_t req[PV_BATCH];
    uint64_t next = 0;
    int64_t idle_since = 0;
    int n = pblk_back_attach(&b, r->shared, r->order);

    if (n != 0)
        return peer_fail(r, "pblk_back_attach: %d", n);
    while (next < r->count) {
        if ((n = pblk_back_copy_reqs(&b, req, PV_BATCH)) < 0)
            return peer_fail(r, "pblk_back_copy_reqs: %d", n);
        if (n == 0) {
            if ((n = pblk_back_final_check(&b)) < 0)
                return peer_fail(r, "pblk_back_final_check: %d", n);
            if (n == 0 && peer_wait(r, &idle_since, "requests (pvabi back)", next) < 0)
                return -1;
            continue;
        }
        idle_since = 0;
        for (int i = 0; i < n; i++, next++) {
            const char *bad = peer_req_mismatch(&req[i], next);
            blkif_response_t *rsp;

            if (bad)
                return peer_fail(r, "pvabi back: request %llu: wrong %s", (unsigned long long)next,
                                 bad);
            if ((rsp = pblk_back_next_rsp(&b)) == NULL)
                return peer_fail(r, "pblk_back_next_rsp: NULL with %d owed", pblk_back_owed(&b));
            peer_fill_rsp(rsp, &req[i]);
        }
        if ((n = pblk_back_publish(&b)) < 0)
            return peer_fail(r, "pblk_back_publish: %d", n);
        if (n > 0 && peer_kick(r) < 0)
            return -1;
    }
    if (pblk_back_owed(&b) != 0)
        return peer_fail(r, "pvabi back: %d responses owed at the end", pblk_back_owed(&b));
    return 0;
}

static void *run_pv_frontend(void *arg)
{
    pv_frontend(arg);
    return NULL;
}

static void *run_pv_backend(void *arg)
{
    pv_backend(arg);
    return NULL;
}

static void *run_xen_frontend(void *arg)
{
    peer_xen_frontend(arg);
    return NULL;
}

static void *run_xen_backend(void *arg)
{
    peer_xen_backend(arg);
    return NULL;
}

/* PVABI_TEST_SCALE divides @base; never below what still wraps the indices. */
static uint64_t scaled(uint64_t base)
{
    const char *s = getenv("PVABI_TEST_SCALE");
    unsigned long div = s ? strtoul(s, NULL, 10) : 1;
    uint64_t n = base / (div ? div : 1);

    return n < 20000 ? 20000 : n;
}

/* Polling: an idle end yields.  Notifying: it sleeps until the other end kicks. */
enum mode { POLLING, NOTIFYING };

typedef void *(*end_fn)(void *);

/* Runs one exchange of @count requests on a fresh ring whose indices both
 * start at @start. */
static void run_exchange(end_fn front_end, end_fn back_end, unsigned order, uint32_t start,
                         uint64_t count, enum mode mode)
{
    struct guarded g;
    struct pvabi_ring_header *h = guarded_alloc(&g, PEER_RING_BYTES(order));
    int stop = 0;
    int front_fd = -1, back_fd = -1;
    pthread_t ft, bt;

    assert_non_null(h);
    if (mode == NOTIFYING) {
        front_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        back_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        assert_true(front_fd >= 0 && back_fd >= 0);
    }
    /* As SHARED_RING_INIT would leave it, moved to start; written before
     * either thread exists, so both ends attach to the same indices. */
    h->req_prod = h->rsp_prod = start;
    h->req_event = h->rsp_event = start + 1;

    struct peer_run front = {
        .shared = h,
        .order = order,
        .start = start,
        .count = count,
        .kick_fd = back_fd,
        .wait_fd = front_fd,
        .stop = &stop,
    };
    struct peer_run back = front;
    back.kick_fd = front_fd;
    back.wait_fd = back_fd;

    assert_int_equal(pthread_create(&bt, NULL, back_end, &back), 0);
    assert_int_equal(pthread_create(&ft, NULL, front_end, &front), 0);
    assert_int_equal(pthread_join(ft, NULL), 0);
    assert_int_equal(pthread_join(bt, NULL), 0);

    print_message("order %u, %llu requests from %#x: front %llu kicks %llu waits, "
                  "back %llu kicks %llu waits\n",
                  order, (unsigned long long)count, start, (unsigned long long)front.kicks,
                  (unsigned long long)front.waits, (unsigned long long)back.kicks,
                  (unsigned long long)back.waits);
    if (front.err[0] || back.err[0] || stop)
        fail_msg("front: %s; back: %s", front.err[0] ? front.err : "no error of its own",
                 back.err[0] ? back.err : "no error of its own");
    /* Both producer indices went round past 2^32 and agree with the count. */
    assert_true((uint64_t)start + count > UINT32_MAX);
    assert_int_equal(h->req_prod, (uint32_t)(start + count));
    assert_int_equal(h->rsp_prod, (uint32_t)(start + count));
    if (mode == NOTIFYING) {
        /* The first publish of each end crosses the other's initial event
         * index (start + 1), so each end must have notified at least once. */
        assert_true(front.kicks > 0 && back.kicks > 0);
        close(front_fd);
        close(back_fd);
    }
    guarded_free(&g);
}

static void test_ring_interop_pvabi_front_xen_back(void **state)
{
    (void)state;
    run_exchange(run_pv_frontend, run_xen_backend, 0, START_NEAR_WRAP, scaled(10000000), POLLING);
}

static void test_ring_interop_xen_front_pvabi_back(void **state)
{
    (void)state;
    run_exchange(run_xen_frontend, run_pv_backend, 0, START_NEAR_WRAP, scaled(10000000), POLLING);
}

/* Multi-page: 128 slots; a start that is not a multiple of the ring size. */
static void test_ring_interop_pvabi_front_xen_back_order2(void **state)
{
    (void)state;
    run_exchange(run_pv_frontend, run_xen_backend, 2, START_NEAR_WRAP + 7, scaled(2000000),
                 POLLING);
}

static void test_ring_interop_xen_front_pvabi_back_order2(void **state)
{
    (void)state;
    run_exchange(run_xen_frontend, run_pv_backend, 2, START_NEAR_WRAP + 7, scaled(2000000),
                 POLLING);
}

static void test_ring_interop_pvabi_front_xen_back_notify(void **state)
{
    (void)state;
    run_exchange(run_pv_frontend, run_xen_backend, 0, START_NEAR_WRAP, scaled(500000), NOTIFYING);
}

static void test_ring_interop_xen_front_pvabi_back_notify(void **state)
{
    (void)state;
    run_exchange(run_xen_frontend, run_pv_backend, 0, START_NEAR_WRAP, scaled(500000), NOTIFYING);
}

static void test_ring_interop_notify_order2(void **state)
{
    (void)state;
    run_exchange(run_pv_frontend, run_xen_backend, 2, START_NEAR_WRAP + 7, scaled(200000),
                 NOTIFYING);
    run_exchange(run_xen_frontend, run_pv_backend, 2, START_NEAR_WRAP + 7, scaled(200000),
                 NOTIFYING);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_interop_pvabi_front_xen_back),
        cmocka_unit_test(test_ring_interop_xen_front_pvabi_back),
        cmocka_unit_test(test_ring_interop_pvabi_front_xen_back_order2),
        cmocka_unit_test(test_ring_interop_xen_front_pvabi_back_order2),
        cmocka_unit_test(test_ring_interop_pvabi_front_xen_back_notify),
        cmocka_unit_test(test_ring_interop_xen_front_pvabi_back_notify),
        cmocka_unit_test(test_ring_interop_notify_order2),
    };

    return cmocka_run_group_tests_name("ring-interop-xen", tests, NULL, NULL);
}
