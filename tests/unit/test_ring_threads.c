/* SPDX-License-Identifier: MIT */
/*
 * A pvabi frontend and a pvabi backend in two threads.  Both sides are fully
 * instrumented, so under ThreadSanitizer this checks every ordering the ring
 * relies on; in every build it checks that no request is lost, duplicated or
 * reordered, in polling mode and with notifications (no lost wake-up).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include <pvabi/ring.h>

#include "../common/guarded.h"

struct wreq {
    uint64_t id;
    uint64_t arg;
};

struct wrsp {
    uint64_t id;
    uint64_t result;
};

PVABI_RING_DEFINE(w, struct wreq, struct wrsp);

/* A hang detector, not a timing limit: no progress at all for this long. */
#define STALL_MS 30000
#define POLL_MS  100

struct run {
    struct w_shared *sh;
    unsigned order;
    uint64_t total;
    int notifying;
    int kick_back, kick_front; /* eventfds */
    uint64_t notifications;    /* written by the frontend thread */
    uint64_t back_notifications;
    const char *back_error;
};

static uint64_t result_of(uint64_t arg)
{
    return arg * 0x9E3779B97F4A7C15ull + 1;
}

static void kick(int fd)
{
    uint64_t one = 1;
    ssize_t r = write(fd, &one, sizeof(one));
    (void)r; /* an eventfd write only fails on counter overflow */
}

/* Waits for a kick; returns 0 (kicked or a poll interval passed), or -1
 * after STALL_MS without one. */
static int wait_kick(int fd, int *idle_ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    uint64_t v;
    int r = poll(&p, 1, POLL_MS);
    if (r == 1 && read(fd, &v, sizeof(v)) == sizeof(v)) {
        *idle_ms = 0;
        return 0;
    }
    *idle_ms += POLL_MS;
    return *idle_ms >= STALL_MS ? -1 : 0;
}

/* Idle step of either side: spin (polling mode) or arm + sleep. */
static int idle_step(struct run *r, int (*final_check)(void *), void *end, int fd, int *idle)
{
    if (!r->notifying) {
        sched_yield();
        return (*idle += 1) > 50000000 ? -1 : 0;
    }
    int more = final_check(end);
    if (more < 0)
        return -1;
    return more > 0 ? 0 : wait_kick(fd, idle);
}

static int back_final(void *b)
{
    return w_back_final_check(b);
}

static int front_final(void *f)
{
    return w_front_final_check(f);
}

static void *backend(void *arg)
{
    struct run *r = arg;
    struct w_back b;
    struct wreq reqs[32];
    uint64_t expect = 0;
    int idle = 0;

    if (w_back_attach(&b, r->sh, r->order) != 0) {
        r->back_error = "attach failed";
        return NULL;
    }
    while (expect < r->total) {
        int n = w_back_copy_reqs(&b, reqs, 32);
        if (n < 0) {
            r->back_error = "backend saw -EPROTO";
            return NULL;
        }
        for (int i = 0; i < n; i++) {
            if (reqs[i].id != expect++) {
                r->back_error = "request out of order";
                return NULL;
            }
            struct wrsp *rsp = w_back_next_rsp(&b);
            rsp->id = reqs[i].id;
            rsp->result = result_of(reqs[i].arg);
        }
        if (n > 0) {
            idle = 0;
            if (w_back_publish(&b) == 1 && r->notifying) {
                kick(r->kick_front);
                r->back_notifications++;
            }
        } else if (idle_step(r, back_final, &b, r->kick_back, &idle) != 0) {
            r->back_error = "backend stalled";
            return NULL;
        }
    }
    return NULL;
}

static void front_queue(struct w_front *f, uint64_t *sent, uint64_t total)
{
    struct wreq *q;
    while (*sent < total && (q = w_front_next_req(f)) != NULL) {
        q->id = *sent;
        q->arg = *sent ^ 0xabcdef;
        (*sent)++;
    }
}

static void run_front(struct run *r)
{
    struct w_front f;
    struct wrsp rsp[32];
    uint64_t sent = 0, done = 0;
    int idle = 0;

    assert_int_equal(w_front_attach(&f, r->sh, r->order), 0);
    while (done < r->total) {
        front_queue(&f, &sent, r->total);
        int pub = w_front_publish(&f);
        assert_true(pub >= 0);
        if (pub == 1 && r->notifying) {
            kick(r->kick_back);
            r->notifications++;
        }
        int n = w_front_copy_rsps(&f, rsp, 32);
        assert_true(n >= 0);
        for (int i = 0; i < n; i++, done++) {
            assert_int_equal(rsp[i].id, done);
            assert_int_equal(rsp[i].result, result_of(done ^ 0xabcdef));
        }
        if (n > 0)
            idle = 0;
        else if (idle_step(r, front_final, &f, r->kick_front, &idle) != 0)
            fail_msg("frontend stalled at %llu of %llu", (unsigned long long)done,
                     (unsigned long long)r->total);
    }
}

static uint64_t scaled(uint64_t n)
{
    const char *s = getenv("PVABI_TEST_SCALE");
    uint64_t div = s ? strtoull(s, NULL, 10) : 1;
    return div > 1 ? n / div : n;
}

static void run_pair(unsigned order, int notifying, uint64_t total, uint32_t start)
{
    struct guarded g;
    struct run r = { .order = order, .total = total, .notifying = notifying };
    pthread_t t;

    r.sh = guarded_alloc(&g, (size_t)PVABI_RING_PAGE_SIZE << order);
    assert_non_null(r.sh);
    struct w_front init;
    assert_int_equal(w_front_init(&init, r.sh, order), 0);
    r.sh->req_prod = r.sh->rsp_prod = start;
    r.sh->req_event = r.sh->rsp_event = start + 1;
    r.kick_back = eventfd(0, EFD_CLOEXEC);
    r.kick_front = eventfd(0, EFD_CLOEXEC);
    assert_true(r.kick_back >= 0 && r.kick_front >= 0);
    assert_int_equal(pthread_create(&t, NULL, backend, &r), 0);
    run_front(&r);
    pthread_join(t, NULL);
    if (r.back_error)
        fail_msg("%s", r.back_error);
    if (notifying) /* batching keeps kicks far below one per request */
        assert_true(r.notifications + r.back_notifications < total);
    close(r.kick_back);
    close(r.kick_front);
    guarded_free(&g);
}

static void test_ring_threads_polling_wraps(void **state)
{
    (void)state;
    run_pair(0, 0, scaled(2000000), UINT32_MAX - 5000);
}

static void test_ring_threads_notifying_no_lost_wakeup(void **state)
{
    (void)state;
    run_pair(0, 1, scaled(500000), UINT32_MAX - 5000);
}

static void test_ring_threads_multipage(void **state)
{
    (void)state;
    run_pair(PVABI_RING_MAX_ORDER, 1, scaled(500000), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_threads_polling_wraps),
        cmocka_unit_test(test_ring_threads_notifying_no_lost_wakeup),
        cmocka_unit_test(test_ring_threads_multipage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
