/* SPDX-License-Identifier: MIT */
/*
 * A hostile peer writes whatever it likes into the shared page.  The end
 * under attack must report -EPROTO, stay broken, never read outside the ring
 * (the ring sits between PROT_NONE guard pages) and never loop.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <pvabi/ring.h>

#include "../common/guarded.h"

struct hreq {
    uint32_t id;
    uint32_t len;     /* bytes of data used; must be <= sizeof(data) */
    uint32_t check;   /* id ^ len ^ MAGIC: detects a torn copy */
    uint8_t data[44]; /* 56 bytes in all: 64 slots in one page */
};

struct hrsp {
    uint32_t id;
    int32_t status;
};

#define MAGIC 0x5a5a1234u

PVABI_RING_DEFINE(h, struct hreq, struct hrsp);

struct victim {
    struct guarded mem;
    struct h_shared *sh;
    struct h_front f;
    struct h_back b;
    uint32_t nr;
};

static void victim_open(struct victim *v, unsigned order)
{
    v->sh = guarded_alloc(&v->mem, (size_t)PVABI_RING_PAGE_SIZE << order);
    assert_non_null(v->sh);
    assert_int_equal(h_front_init(&v->f, v->sh, order), 0);
    assert_int_equal(h_back_attach(&v->b, v->sh, order), 0);
    v->nr = h_ring_nr_ents(order);
}

/* Every entry point of a broken backend fails fast, and keeps failing. */
static void assert_back_broken(struct victim *v)
{
    struct hreq req;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(h_back_broken(&v->b), -EPROTO);
        assert_int_equal(h_back_unconsumed(&v->b), -EPROTO);
        assert_int_equal(h_back_copy_req(&v->b, &req), -EPROTO);
        assert_int_equal(h_back_copy_reqs(&v->b, &req, 1), -EPROTO);
        assert_int_equal(h_back_final_check(&v->b), -EPROTO);
        assert_null(h_back_next_rsp(&v->b));
        assert_int_equal(h_back_owed(&v->b), -EPROTO);
        assert_int_equal(h_back_publish(&v->b), -EPROTO);
    }
}

static void assert_front_broken(struct victim *v)
{
    struct hrsp rsp;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(h_front_broken(&v->f), -EPROTO);
        assert_int_equal(h_front_unconsumed(&v->f), -EPROTO);
        assert_int_equal(h_front_copy_rsp(&v->f, &rsp), -EPROTO);
        assert_int_equal(h_front_final_check(&v->f), -EPROTO);
        assert_null(h_front_next_req(&v->f));
        assert_int_equal(h_front_free(&v->f), -EPROTO);
        assert_int_equal(h_front_publish(&v->f), -EPROTO);
    }
}

static void test_ring_hostile_prod_ahead(void **state)
{
    (void)state;
    static const uint32_t jumps[] = { 65, 66, 1000, 0x7fffffff, 0x80000000 };
    for (size_t j = 0; j < sizeof(jumps) / sizeof(jumps[0]); j++) {
        struct victim v;
        victim_open(&v, 0);
        assert_int_equal(v.nr, 64);
        /* Exactly a full ring is legal ... */
        v.sh->req_prod = 64;
        assert_int_equal(h_back_unconsumed(&v.b), 64);
        /* ... one more than the ring can hold is not. */
        v.sh->req_prod = jumps[j];
        assert_int_equal(h_back_unconsumed(&v.b), -EPROTO);
        assert_back_broken(&v);
        guarded_free(&v.mem);
    }
}

static void test_ring_hostile_prod_ahead_of_owed_responses(void **state)
{
    (void)state;
    struct victim v;
    struct hreq req;
    victim_open(&v, 0);
    v.sh->req_prod = 10;
    for (int i = 0; i < 10; i++)
        assert_int_equal(h_back_copy_req(&v.b, &req), 1);
    /* Ten requests are consumed but unanswered: only 54 more fit. */
    v.sh->req_prod = 10 + 54;
    assert_int_equal(h_back_unconsumed(&v.b), 54);
    v.sh->req_prod = 10 + 55;
    assert_int_equal(h_back_unconsumed(&v.b), -EPROTO);
    assert_back_broken(&v);
    guarded_free(&v.mem);
}

static void test_ring_hostile_prod_backwards(void **state)
{
    (void)state;
    struct victim v;
    struct hreq req;
    victim_open(&v, 0);
    v.sh->req_prod = 5;
    assert_int_equal(h_back_copy_req(&v.b, &req), 1);
    /* Still ahead of what was consumed, but behind what was published. */
    v.sh->req_prod = 3;
    assert_int_equal(h_back_unconsumed(&v.b), -EPROTO);
    assert_back_broken(&v);
    guarded_free(&v.mem);

    victim_open(&v, 0);
    v.sh->req_prod = 2;
    assert_int_equal(h_back_copy_reqs(&v.b, &req, 1), 1);
    v.sh->req_prod = 0; /* behind the consumer: reads as 2^32 - 1 ahead */
    assert_int_equal(h_back_copy_req(&v.b, &req), 1);
    assert_int_equal(h_back_copy_req(&v.b, &req), -EPROTO);
    guarded_free(&v.mem);
}

static void test_ring_hostile_responses_to_unpublished_requests(void **state)
{
    (void)state;
    struct victim v;
    victim_open(&v, 0);
    for (int i = 0; i < 3; i++)
        h_front_next_req(&v.f)->id = (uint32_t)i;
    /* Reserved but not published: the backend cannot have answered them. */
    v.sh->rsp_prod = 1;
    assert_int_equal(h_front_unconsumed(&v.f), -EPROTO);
    assert_front_broken(&v);
    guarded_free(&v.mem);

    victim_open(&v, 0);
    for (int i = 0; i < 3; i++)
        h_front_next_req(&v.f)->id = (uint32_t)i;
    h_front_publish(&v.f);
    v.sh->rsp_prod = 3;
    assert_int_equal(h_front_unconsumed(&v.f), 3);
    v.sh->rsp_prod = 2; /* backwards */
    assert_int_equal(h_front_final_check(&v.f), -EPROTO);
    assert_front_broken(&v);
    guarded_free(&v.mem);
}

static void test_ring_hostile_scribbled_own_index_is_ignored(void **state)
{
    (void)state;
    struct victim v;
    victim_open(&v, 0);
    h_front_next_req(&v.f)->id = 1;
    h_front_publish(&v.f);
    /* The peer overwrites our producer index: we neither trust nor reread it. */
    v.sh->req_prod = 0xffff0000;
    assert_int_equal(h_front_free(&v.f), 63);
    h_front_next_req(&v.f)->id = 2;
    h_front_publish(&v.f);
    assert_int_equal(v.sh->req_prod, 2);
    assert_int_equal(h_front_broken(&v.f), 0);
    guarded_free(&v.mem);
}

static void test_ring_hostile_event_index_only_changes_notify(void **state)
{
    (void)state;
    struct victim v;
    victim_open(&v, 0);
    srand(1);
    for (int i = 0; i < 100000; i++) {
        v.sh->req_event = (uint32_t)rand() * 2654435761u;
        h_front_next_req(&v.f)->id = (uint32_t)i;
        int n = h_front_publish(&v.f);
        assert_true(n == 0 || n == 1);
        /* Keep the ring from filling: pretend every request was answered. */
        v.sh->rsp_prod = v.sh->req_prod;
        assert_int_equal(h_front_unconsumed(&v.f), 1);
        struct hrsp rsp;
        assert_int_equal(h_front_copy_rsp(&v.f, &rsp), 1);
    }
    assert_int_equal(h_front_broken(&v.f), 0);
    guarded_free(&v.mem);
}

static void test_ring_hostile_attach_to_inconsistent_ring(void **state)
{
    (void)state;
    struct victim v;
    victim_open(&v, 0);
    v.sh->req_prod = 100; /* 100 requests cannot be outstanding in 64 slots */
    struct h_back b;
    assert_int_equal(h_back_attach(&b, v.sh, 0), -EPROTO);
    assert_int_equal(h_back_broken(&b), -EPROTO);
    struct h_front f;
    assert_int_equal(h_front_attach(&f, v.sh, 0), -EPROTO);
    guarded_free(&v.mem);
}

/* Random index writes, single thread: the state stays within the ring. */
static void test_ring_hostile_random_indices(void **state)
{
    (void)state;
    srand(42);
    for (int trial = 0; trial < 2000; trial++) {
        struct victim v;
        struct hreq reqs[70];
        victim_open(&v, (unsigned)trial % 5);
        uint32_t base = (uint32_t)rand() * 7919u;
        v.sh->req_prod = v.sh->rsp_prod = base;
        assert_int_equal(h_back_attach(&v.b, v.sh, (unsigned)trial % 5), 0);
        int broke = 0;
        for (int step = 0; step < 50 && !broke; step++) {
            uint32_t delta = (rand() % 4 == 0) ? (uint32_t)rand() : (uint32_t)(rand() % 80);
            v.sh->req_prod = base + delta;
            int n = h_back_copy_reqs(&v.b, reqs, 70);
            if (n < 0) {
                assert_int_equal(n, -EPROTO);
                broke = 1;
                assert_back_broken(&v);
                break;
            }
            assert_true((uint32_t)n <= v.nr);
            for (int i = 0; i < n; i++) {
                struct hrsp *r = h_back_next_rsp(&v.b);
                assert_non_null(r);
            }
            assert_true(h_back_publish(&v.b) >= 0);
            base = v.sh->req_prod;
        }
        guarded_free(&v.mem);
    }
}

/* ---- slot contents and indices changing while the consumer works -------- */

struct flipper {
    struct h_shared *sh;
    uint32_t nr;
    atomic_int stop;
    int scribble_index; /* also write random producer indices */
};

static void make_req(struct hreq *r, uint32_t id, uint32_t len)
{
    r->id = id;
    r->len = len;
    r->check = id ^ len ^ MAGIC;
    memset(r->data, (int)id, sizeof(r->data));
}

/* Rewrites every slot between two valid requests, one field at a time, so
 * that a consumer copying concurrently may see any mix of the two.  This is
 * a deliberate data race (it is the attack), so this test is not in the
 * ThreadSanitizer suite. */
static void *flip(void *arg)
{
    struct flipper *fl = arg;
    uint32_t x = 1;
    while (!atomic_load_explicit(&fl->stop, memory_order_relaxed)) {
        for (uint32_t i = 0; i < fl->nr; i++) {
            volatile struct hreq *slot = (volatile struct hreq *)&fl->sh->ring[i].req;
            x = x * 1103515245u + 12345u;
            slot->id = x & 1 ? 1u : 2u;
            slot->len = x & 2 ? 8u : 4000000u; /* the second is an attack */
            slot->check = (x & 4) ? (1u ^ 8u ^ MAGIC) : (2u ^ 4000000u ^ MAGIC);
        }
        if (fl->scribble_index)
            ((volatile struct h_shared *)fl->sh)->req_prod += (x >> 8) % 3;
    }
    return NULL;
}

/* What a careful backend does with a request: validate the copy, then use
 * only the copy (len indexes a local buffer). */
static int process(const struct hreq *req, uint8_t *sink)
{
    if (req->check != (req->id ^ req->len ^ MAGIC) || req->len > sizeof(req->data))
        return -1;
    memcpy(sink, req->data, req->len);
    return 0;
}

static void consume_under_attack(int scribble_index)
{
    struct victim v;
    struct flipper fl = { 0 };
    pthread_t t;
    uint8_t sink[sizeof(((struct hreq *)0)->data)];
    long good = 0, rejected = 0, copies = 0;

    victim_open(&v, 0);
    for (uint32_t i = 0; i < v.nr; i++)
        make_req(&v.sh->ring[i].req, 1, 8);
    fl.sh = v.sh;
    fl.nr = v.nr;
    fl.scribble_index = scribble_index;
    assert_int_equal(pthread_create(&t, NULL, flip, &fl), 0);
    for (int round = 0; round < 20000; round++) {
        struct hreq reqs[64];
        if (!scribble_index)
            pvabi_store_release_u32(&v.sh->req_prod, v.b.end.cons + 64);
        int n = h_back_copy_reqs(&v.b, reqs, 64);
        if (n < 0) {
            assert_int_equal(n, -EPROTO);
            assert_true(scribble_index);
            break;
        }
        copies += n;
        for (int i = 0; i < n; i++) {
            if (process(&reqs[i], sink) == 0)
                good++;
            else
                rejected++;
            struct hrsp *rsp = h_back_next_rsp(&v.b);
            assert_non_null(rsp);
        }
        assert_true(h_back_publish(&v.b) >= 0);
    }
    atomic_store(&fl.stop, 1);
    pthread_join(t, NULL);
    /* Every copy was either valid or rejected as torn/over-long; none read
     * outside the ring or the request. */
    assert_int_equal(good + rejected, copies);
    if (!scribble_index)
        assert_true(copies > 0);
    guarded_free(&v.mem);
}

static void test_ring_hostile_slots_change_during_copy(void **state)
{
    (void)state;
    consume_under_attack(0);
}

static void test_ring_hostile_indices_change_during_copy(void **state)
{
    (void)state;
    consume_under_attack(1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_hostile_prod_ahead),
        cmocka_unit_test(test_ring_hostile_prod_ahead_of_owed_responses),
        cmocka_unit_test(test_ring_hostile_prod_backwards),
        cmocka_unit_test(test_ring_hostile_responses_to_unpublished_requests),
        cmocka_unit_test(test_ring_hostile_scribbled_own_index_is_ignored),
        cmocka_unit_test(test_ring_hostile_event_index_only_changes_notify),
        cmocka_unit_test(test_ring_hostile_attach_to_inconsistent_ring),
        cmocka_unit_test(test_ring_hostile_random_indices),
        cmocka_unit_test(test_ring_hostile_slots_change_during_copy),
        cmocka_unit_test(test_ring_hostile_indices_change_during_copy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
