/* SPDX-License-Identifier: MIT */
/* The ring protocol between a well-behaved frontend and backend, one thread. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <pvabi/ring.h>

#include "../common/guarded.h"

struct treq {
    uint64_t id;
    uint32_t op;
    uint32_t check;
    uint8_t payload[40];
};

struct trsp {
    uint64_t id;
    int32_t status;
    uint32_t pad;
};

PVABI_RING_DEFINE(t, struct treq, struct trsp);

struct pair {
    struct guarded mem;
    struct t_shared *sh;
    struct t_front f;
    struct t_back b;
    uint32_t nr;
};

static void pair_open(struct pair *p, unsigned order)
{
    memset(p, 0, sizeof(*p));
    p->sh = guarded_alloc(&p->mem, (size_t)PVABI_RING_PAGE_SIZE << order);
    assert_non_null(p->sh);
    assert_int_equal(t_front_init(&p->f, p->sh, order), 0);
    assert_int_equal(t_back_attach(&p->b, p->sh, order), 0);
    p->nr = t_ring_nr_ents(order);
}

/* Moves both ends' indices (and the armed events) to `start`, as a ring that
 * has been running for a long time would have them. */
static void pair_open_at(struct pair *p, unsigned order, uint32_t start)
{
    pair_open(p, order);
    p->sh->req_prod = p->sh->rsp_prod = start;
    p->sh->req_event = p->sh->rsp_event = start + 1;
    assert_int_equal(t_front_attach(&p->f, p->sh, order), 0);
    assert_int_equal(t_back_attach(&p->b, p->sh, order), 0);
}

static void pair_close(struct pair *p)
{
    guarded_free(&p->mem);
}

static void fill_req(struct treq *r, uint64_t id)
{
    memset(r, 0, sizeof(*r));
    r->id = id;
    r->op = (uint32_t)(id % 7);
    r->check = (uint32_t)(id * 2654435761u);
    for (size_t i = 0; i < sizeof(r->payload); i++)
        r->payload[i] = (uint8_t)(id + i);
}

/* Reserves the next request slot and fills it; fails the test when full. */
static void queue_req(struct t_front *f, uint64_t id)
{
    struct treq *r = t_front_next_req(f);
    if (r == NULL) {
        fail_msg("no free request slot for id %llu", (unsigned long long)id);
        return;
    }
    fill_req(r, id);
}

static void check_req(const struct treq *r, uint64_t id)
{
    struct treq want;
    fill_req(&want, id);
    assert_memory_equal(r, &want, sizeof(want));
}

/* Frontend queues n requests numbered from *next_id and publishes them. */
static int front_send(struct pair *p, unsigned n, uint64_t *next_id)
{
    for (unsigned i = 0; i < n; i++)
        queue_req(&p->f, (*next_id)++);
    return t_front_publish(&p->f);
}

/* Backend answers everything waiting; returns how many it answered. */
static int back_serve(struct pair *p, uint64_t *expect_id)
{
    struct treq req;
    int served = 0;

    while (t_back_copy_req(&p->b, &req) == 1) {
        check_req(&req, (*expect_id)++);
        struct trsp *rsp = t_back_next_rsp(&p->b);
        assert_non_null(rsp);
        rsp->id = req.id;
        rsp->status = (int32_t)req.op;
        served++;
    }
    assert_true(t_back_publish(&p->b) >= 0);
    return served;
}

static void test_ring_init_rejects_bad_args(void **state)
{
    (void)state;
    struct guarded g;
    struct t_front f;
    unsigned char *mem = guarded_alloc(&g, 2 * PVABI_RING_PAGE_SIZE);

    /* A failed init must not have written the shared page. */
    memset(mem, 0xA5, 64);
    assert_int_equal(t_front_init(NULL, mem, 0), -EINVAL);
    for (int i = 0; i < 64; i++)
        assert_int_equal(mem[i], 0xA5);
    assert_int_equal(t_front_init(&f, NULL, 0), -EINVAL);
    assert_int_equal(t_front_init(&f, mem + 8, 0), -EINVAL);
    assert_int_equal(t_front_init(&f, mem, PVABI_RING_MAX_ORDER + 1), -EINVAL);
    assert_int_equal(t_ring_nr_ents(PVABI_RING_MAX_ORDER + 1), 0);
    guarded_free(&g);
}

static void test_ring_init_writes_xen_initial_header(void **state)
{
    (void)state;
    struct pair p;
    pair_open(&p, 0);
    assert_int_equal(p.sh->req_prod, 0);
    assert_int_equal(p.sh->rsp_prod, 0);
    assert_int_equal(p.sh->req_event, 1);
    assert_int_equal(p.sh->rsp_event, 1);
    /* 4096 - 64 header bytes hold 70 slots of 56: rounded down to 64. */
    assert_int_equal(p.nr, 64);
    assert_int_equal(t_front_free(&p.f), 64);
    pair_close(&p);
}

static void test_ring_nothing_visible_before_publish(void **state)
{
    (void)state;
    struct pair p;
    pair_open(&p, 0);
    for (int i = 0; i < 5; i++)
        queue_req(&p.f, (uint64_t)i);
    assert_int_equal(p.sh->req_prod, 0);
    assert_int_equal(t_back_unconsumed(&p.b), 0);
    /* One index update publishes the whole batch; the backend armed
     * req_event = 1, so it asked to be notified. */
    assert_int_equal(t_front_publish(&p.f), 1);
    assert_int_equal(p.sh->req_prod, 5);
    assert_int_equal(t_back_unconsumed(&p.b), 5);
    pair_close(&p);
}

static void test_ring_full_ring_refuses_slots(void **state)
{
    (void)state;
    for (unsigned order = 0; order <= PVABI_RING_MAX_ORDER; order++) {
        struct pair p;
        uint64_t id = 0, expect = 0;
        pair_open(&p, order);
        assert_int_equal(p.nr, 64u << order);
        front_send(&p, p.nr, &id);
        assert_int_equal(t_front_free(&p.f), 0);
        assert_null(t_front_next_req(&p.f));
        assert_int_equal(back_serve(&p, &expect), (int)p.nr);
        /* Slots come back only when the frontend consumes the responses. */
        assert_int_equal(t_front_free(&p.f), 0);
        struct trsp rsp[8];
        assert_int_equal(t_front_copy_rsps(&p.f, rsp, 8), 8);
        assert_int_equal(t_front_free(&p.f), 8);
        pair_close(&p);
    }
}

static void test_ring_back_answers_only_consumed_requests(void **state)
{
    (void)state;
    struct pair p;
    uint64_t id = 0;
    struct treq req;
    pair_open(&p, 0);
    assert_null(t_back_next_rsp(&p.b));
    front_send(&p, 2, &id);
    assert_null(t_back_next_rsp(&p.b));
    assert_int_equal(t_back_copy_req(&p.b, &req), 1);
    assert_int_equal(t_back_owed(&p.b), 1);
    assert_non_null(t_back_next_rsp(&p.b));
    assert_null(t_back_next_rsp(&p.b));
    assert_int_equal(t_back_owed(&p.b), 0);
    pair_close(&p);
}

static void test_ring_notify_only_when_peer_armed_event(void **state)
{
    (void)state;
    struct pair p;
    uint64_t id = 0, expect = 0;
    pair_open(&p, 0);
    assert_int_equal(front_send(&p, 1, &id), 1);
    /* The backend has not re-armed req_event: a busy backend needs no kick. */
    assert_int_equal(front_send(&p, 3, &id), 0);
    assert_int_equal(back_serve(&p, &expect), 4);
    /* Idle: final_check arms req_event = req_cons + 1 and finds nothing. */
    assert_int_equal(t_back_final_check(&p.b), 0);
    assert_int_equal(p.sh->req_event, 5);
    assert_int_equal(front_send(&p, 2, &id), 1);
    /* A publish that does not cross req_event again stays quiet. */
    assert_int_equal(front_send(&p, 1, &id), 0);
    pair_close(&p);
}

static void test_ring_final_check_sees_late_entries(void **state)
{
    (void)state;
    struct pair p;
    uint64_t id = 0, expect = 0;
    pair_open(&p, 0);
    front_send(&p, 3, &id);
    /* Work is waiting: final_check reports it and does not arm. */
    assert_int_equal(t_back_final_check(&p.b), 3);
    assert_int_equal(p.sh->req_event, 1);
    back_serve(&p, &expect);
    assert_int_equal(t_front_final_check(&p.f), 3);
    struct trsp rsp[3];
    assert_int_equal(t_front_copy_rsps(&p.f, rsp, 3), 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(rsp[i].id, (uint64_t)i);
        assert_int_equal(rsp[i].status, i % 7);
    }
    assert_int_equal(t_front_final_check(&p.f), 0);
    assert_int_equal(p.sh->rsp_event, 4);
    pair_close(&p);
}

static void test_ring_copy_is_private(void **state)
{
    (void)state;
    struct pair p;
    uint64_t id = 7;
    struct treq req;
    pair_open(&p, 0);
    front_send(&p, 1, &id);
    assert_int_equal(t_back_copy_req(&p.b, &req), 1);
    /* The peer rewrites the slot after the copy: the copy does not change. */
    memset(&p.sh->ring[0], 0xEE, sizeof(p.sh->ring[0]));
    check_req(&req, 7);
    pair_close(&p);
}

static void test_ring_batch_reads_peer_index_once(void **state)
{
    (void)state;
    struct pair p;
    uint64_t id = 0;
    struct treq reqs[16];
    pair_open(&p, 0);
    front_send(&p, 10, &id);
    assert_int_equal(t_back_copy_reqs(&p.b, reqs, 4), 4);
    /* Entries already validated are consumed without rereading req_prod, so
     * a peer that corrupts it only breaks the ring at the next read of it. */
    p.sh->req_prod = 0xdeadbeef;
    assert_int_equal(t_back_copy_reqs(&p.b, reqs, 16), 6);
    for (int i = 0; i < 6; i++)
        check_req(&reqs[i], (uint64_t)(i + 4));
    assert_int_equal(t_back_copy_reqs(&p.b, reqs, 16), -EPROTO);
    pair_close(&p);
}

static void test_ring_round_trips_wrap_u32(void **state)
{
    (void)state;
    struct pair p;
    uint64_t id = 0, expect = 0, got = 0;
    struct trsp rsp[64];
    pair_open_at(&p, 0, UINT32_MAX - 100);
    for (unsigned round = 0; round < 1000; round++) {
        unsigned n = 1 + round % (unsigned)t_front_free(&p.f);
        assert_true(front_send(&p, n, &id) >= 0);
        back_serve(&p, &expect);
        int k;
        while ((k = t_front_copy_rsps(&p.f, rsp, 64)) > 0)
            for (int i = 0; i < k; i++, got++)
                assert_int_equal(rsp[i].id, got);
        assert_int_equal(k, 0);
    }
    assert_int_equal(got, id);
    /* The indices wrapped past 2^32 and nothing broke. */
    assert_true(p.sh->req_prod < 100000);
    assert_int_equal(t_front_broken(&p.f), 0);
    assert_int_equal(t_back_broken(&p.b), 0);
    pair_close(&p);
}

static void test_ring_back_reattach_resumes_at_first_unanswered(void **state)
{
    (void)state;
    struct pair p;
    uint64_t id = 0;
    struct treq req;
    pair_open_at(&p, 1, UINT32_MAX - 1);
    front_send(&p, 5, &id);
    for (int i = 0; i < 3; i++)
        assert_int_equal(t_back_copy_req(&p.b, &req), 1);
    for (int i = 0; i < 2; i++)
        t_back_next_rsp(&p.b)->id = (uint64_t)i;
    t_back_publish(&p.b);
    /* A restarted backend: requests 2..4 are still unanswered. */
    struct t_back again;
    assert_int_equal(t_back_attach(&again, p.sh, 1), 0);
    assert_int_equal(t_back_unconsumed(&again), 3);
    assert_int_equal(t_back_copy_req(&again, &req), 1);
    check_req(&req, 2);
    /* A re-attached frontend keeps producing after what it published. */
    struct t_front fagain;
    assert_int_equal(t_front_attach(&fagain, p.sh, 1), 0);
    assert_int_equal(t_front_free(&fagain), (int)p.nr - 3);
    queue_req(&fagain, 5);
    t_front_publish(&fagain);
    assert_int_equal(p.sh->req_prod, (uint32_t)(UINT32_MAX - 1 + 6));
    pair_close(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_init_rejects_bad_args),
        cmocka_unit_test(test_ring_init_writes_xen_initial_header),
        cmocka_unit_test(test_ring_nothing_visible_before_publish),
        cmocka_unit_test(test_ring_full_ring_refuses_slots),
        cmocka_unit_test(test_ring_back_answers_only_consumed_requests),
        cmocka_unit_test(test_ring_notify_only_when_peer_armed_event),
        cmocka_unit_test(test_ring_final_check_sees_late_entries),
        cmocka_unit_test(test_ring_copy_is_private),
        cmocka_unit_test(test_ring_batch_reads_peer_index_once),
        cmocka_unit_test(test_ring_round_trips_wrap_u32),
        cmocka_unit_test(test_ring_back_reattach_resumes_at_first_unanswered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
