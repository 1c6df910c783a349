/* SPDX-License-Identifier: MIT */
/*
 * pvabi's ring layout against Xen's own DEFINE_RING_TYPES, byte for byte:
 * field offsets, slot size, slot count per page order (0..4) and the header
 * bytes an initialised ring starts with, for blkif, netif (tx, rx, ctrl) and
 * custom slot sizes from 1 to 5000 bytes; then rings set up by one
 * implementation and attached by the other, both ways, at indices that wrap.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

/* Xen's barriers (xen_mb, ...) and blkif, with the payload rules of the
 * interop test, reused here to fill and check slots. */
#include "xen_ring_peer.h"

#include <xen/io/netif.h>

#include "../common/guarded.h"

#include <pvabi/ring.h>

/* Custom shapes: odd sizes, 8-byte alignment, and one slot bigger than a page. */
struct s1 {
    uint8_t b[1];
};
struct s3 {
    uint8_t b[3];
};
struct s24 {
    uint64_t a, b, c;
};
struct s200 {
    uint8_t b[200];
};
struct s3000 {
    uint32_t w[750];
};
struct s5000 {
    uint8_t b[5000];
};

DEFINE_RING_TYPES(x1, struct s1, struct s1);
DEFINE_RING_TYPES(x3, struct s3, struct s1);
DEFINE_RING_TYPES(x24, struct s24, struct s3);
DEFINE_RING_TYPES(x200, struct s200, struct s24);
DEFINE_RING_TYPES(x3000, struct s3000, struct s200);
DEFINE_RING_TYPES(x5000, struct s5000, struct s1);

PVABI_RING_DEFINE(pblk, blkif_request_t, blkif_response_t);
PVABI_RING_DEFINE(ptx, struct netif_tx_request, struct netif_tx_response);
PVABI_RING_DEFINE(prx, struct netif_rx_request, struct netif_rx_response);
PVABI_RING_DEFINE(pctl, struct xen_netif_ctrl_request, struct xen_netif_ctrl_response);
PVABI_RING_DEFINE(p1, struct s1, struct s1);
PVABI_RING_DEFINE(p3, struct s3, struct s1);
PVABI_RING_DEFINE(p24, struct s24, struct s3);
PVABI_RING_DEFINE(p200, struct s200, struct s24);
PVABI_RING_DEFINE(p3000, struct s3000, struct s200);
PVABI_RING_DEFINE(p5000, struct s5000, struct s1);

#define NR_ORDERS (PVABI_RING_MAX_ORDER + 1)

/* One pvabi ring type next to the Xen ring type it must match. */
struct shape {
    const char *name;
    size_t x_off[6], p_off[6]; /* req_prod, req_event, rsp_prod, rsp_event, pvt, ring */
    size_t x_slot, p_slot;
    size_t x_sring, p_shared, x_align;
    uint32_t x_const[NR_ORDERS]; /* __CONST_RING_SIZE for each order */
    uint32_t (*p_nr)(unsigned order);
    int (*p_init)(void *shared, unsigned order);
    int (*p_front_attach)(void *shared, unsigned order);
    int (*p_back_attach)(void *shared, unsigned order);
    uint32_t (*x_init)(void *shared, unsigned order); /* XEN_FRONT_RING_INIT's nr_ents */
};

#define OFFSETS(type, ring)                                                                        \
    {                                                                                              \
        offsetof(type, req_prod), offsetof(type, req_event), offsetof(type, rsp_prod),             \
            offsetof(type, rsp_event), offsetof(type, pvt), offsetof(type, ring)                   \
    }

/* The glue for one shape: its functions through untyped pointers, and its row. */
#define SHAPE(x, p)                                                                                \
    static int p##_init_(void *s, unsigned o)                                                      \
    {                                                                                              \
        struct p##_front f;                                                                        \
        return p##_front_init(&f, s, o);                                                           \
    }                                                                                              \
    static int p##_front_attach_(void *s, unsigned o)                                              \
    {                                                                                              \
        struct p##_front f;                                                                        \
        return p##_front_attach(&f, s, o);                                                         \
    }                                                                                              \
    static int p##_back_attach_(void *s, unsigned o)                                               \
    {                                                                                              \
        struct p##_back b;                                                                         \
        return p##_back_attach(&b, s, o);                                                          \
    }                                                                                              \
    static uint32_t x##_init_(void *s, unsigned o)                                                 \
    {                                                                                              \
        struct x##_front_ring r;                                                                   \
        XEN_FRONT_RING_INIT(&r, (struct x##_sring *)s, PEER_RING_BYTES(o));                        \
        return r.nr_ents;                                                                          \
    }                                                                                              \
    static const struct shape shape_##p = {                                                        \
        .name = #x,                                                                                \
        .x_off = OFFSETS(struct x##_sring, ring),                                                  \
        .p_off = OFFSETS(struct p##_shared, ring),                                                 \
        .x_slot = sizeof(union x##_sring_entry),                                                   \
        .p_slot = sizeof(union p##_slot),                                                          \
        .x_sring = sizeof(struct x##_sring),                                                       \
        .p_shared = sizeof(struct p##_shared),                                                     \
        .x_align = _Alignof(struct x##_sring),                                                     \
        .x_const = { __CONST_RING_SIZE(x, PEER_RING_BYTES(0)),                                     \
                     __CONST_RING_SIZE(x, PEER_RING_BYTES(1)),                                     \
                     __CONST_RING_SIZE(x, PEER_RING_BYTES(2)),                                     \
                     __CONST_RING_SIZE(x, PEER_RING_BYTES(3)),                                     \
                     __CONST_RING_SIZE(x, PEER_RING_BYTES(4)) },                                   \
        .p_nr = p##_ring_nr_ents,                                                                  \
        .p_init = p##_init_,                                                                       \
        .p_front_attach = p##_front_attach_,                                                       \
        .p_back_attach = p##_back_attach_,                                                         \
        .x_init = x##_init_,                                                                       \
    }

SHAPE(blkif, pblk);
SHAPE(netif_tx, ptx);
SHAPE(netif_rx, prx);
SHAPE(xen_netif_ctrl, pctl);
SHAPE(x1, p1);
SHAPE(x3, p3);
SHAPE(x24, p24);
SHAPE(x200, p200);
SHAPE(x3000, p3000);
SHAPE(x5000, p5000);

static void check_struct_layout(const struct shape *s)
{
    static const char *const field[6] = {
        "req_prod", "req_event", "rsp_prod", "rsp_event", "pvt", "ring",
    };

    for (int i = 0; i < 6; i++) {
        if (s->x_off[i] != s->p_off[i])
            fail_msg("%s: offsetof(%s) is %zu in Xen, %zu in pvabi", s->name, field[i], s->x_off[i],
                     s->p_off[i]);
    }
    assert_int_equal(s->x_slot, s->p_slot);
    /* Xen declares ring[1], pvabi a flexible array: one slot apart, plus the
     * tail padding Xen's struct gets when a slot is not a multiple of its
     * alignment (1- and 3-byte slots). */
    size_t with_slot = s->p_shared + s->p_slot;
    assert_int_equal(s->x_sring, (with_slot + s->x_align - 1) / s->x_align * s->x_align);
    if (s->p_slot % s->x_align == 0)
        assert_int_equal(s->x_sring, with_slot);
}

static int all_bytes(const unsigned char *p, size_t n, unsigned char v)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != v)
            return 0;
    }
    return 1;
}

/* Both implementations start from the same garbage and must leave the same bytes. */
static void check_order(const struct shape *s, unsigned order)
{
    size_t bytes = PEER_RING_BYTES(order);
    struct guarded gx, gp;
    unsigned char *x = guarded_alloc(&gx, bytes), *p = guarded_alloc(&gp, bytes);
    uint32_t nr = s->p_nr(order);

    assert_true(x && p);
    memset(x, 0xA5, bytes);
    memset(p, 0xA5, bytes);
    if (nr != s->x_const[order])
        fail_msg("%s order %u: pvabi %u slots, __CONST_RING_SIZE %u", s->name, order, nr,
                 s->x_const[order]);
    if (nr == 0) {
        /* No slot fits: pvabi refuses, and touches nothing while refusing. */
        assert_int_equal(s->p_init(p, order), -EINVAL);
        assert_int_equal(s->p_front_attach(p, order), -EINVAL);
        assert_int_equal(s->p_back_attach(p, order), -EINVAL);
        assert_true(all_bytes(p, bytes, 0xA5));
    } else {
        assert_int_equal(s->p_init(p, order), 0);
        assert_int_equal(s->x_init(x, order), nr); /* FRONT_RING_INIT's nr_ents */
        if (memcmp(x, p, bytes) != 0) {
            size_t at = 0;
            while (x[at] == p[at])
                at++;
            fail_msg("%s order %u: byte %zu is %#x after Xen's init, %#x after pvabi's", s->name,
                     order, at, x[at], p[at]);
        }
        /* Only the 64-byte header was written; the slots are left alone. */
        assert_true(all_bytes(p + PVABI_RING_HEADER_SIZE, bytes - PVABI_RING_HEADER_SIZE, 0xA5));
    }
    guarded_free(&gx);
    guarded_free(&gp);
}

static void test_ring_layout_matches_xen(void **state)
{
    const struct shape *s = *state;

    check_struct_layout(s);
    for (unsigned order = 0; order < NR_ORDERS; order++)
        check_order(s, order);
    /* Order 5 is outside the ABI: no slots, and init refuses it untouched. */
    struct guarded g;
    unsigned char *p = guarded_alloc(&g, PEER_RING_BYTES(0));
    assert_non_null(p);
    memset(p, 0xA5, PEER_RING_BYTES(0));
    assert_int_equal(s->p_nr(PVABI_RING_MAX_ORDER + 1), 0);
    assert_int_equal(s->p_init(p, PVABI_RING_MAX_ORDER + 1), -EINVAL);
    assert_true(all_bytes(p, PEER_RING_BYTES(0), 0xA5));
    guarded_free(&g);
}

/* The counts this file relies on, spelled out once as a sanity anchor. */
static void test_ring_layout_blkif_known_sizes(void **state)
{
    (void)state;
    assert_int_equal(sizeof(union pblk_slot), 112);
    assert_int_equal(sizeof(struct pblk_shared) + sizeof(union pblk_slot),
                     sizeof(struct blkif_sring));
    assert_int_equal(pblk_ring_nr_ents(0), 32);
    assert_int_equal(pblk_ring_nr_ents(4), 512);
    assert_int_equal(p5000_ring_nr_ents(0), 0);
    assert_int_equal(p5000_ring_nr_ents(1), 1);
    assert_int_equal(p1_ring_nr_ents(4), 32768);
}

/* Leaves a fresh ring at index @start: SHARED_RING_INIT moved to @start. */
static void ring_at(blkif_sring_t *s, uint32_t start)
{
    SHARED_RING_INIT(s);
    s->req_prod = s->rsp_prod = start;
    s->req_event = s->rsp_event = start + 1;
}

/* Slots of the largest blkif ring (order 4); copies out take up to this many. */
#define BLKIF_MAX_SLOTS 512u

static const uint32_t starts[] = { 0, 0x7ffffff0u, 0xfffffffeu, 0xffffffe5u };

/* Xen sets the ring up and produces; pvabi attaches, consumes and answers. */
static void xen_init_pvabi_attach(unsigned order, uint32_t start)
{
    struct guarded g;
    blkif_sring_t *s = guarded_alloc(&g, PEER_RING_BYTES(order));
    blkif_front_ring_t xf;
    blkif_back_ring_t xb;
    struct pblk_front pf;
    struct pblk_back pb;
    blkif_request_t req[BLKIF_MAX_SLOTS];
    int notify;

    assert_non_null(s);
    memset(s, 0xA5, PEER_RING_BYTES(order));
    if (start == 0) {
        XEN_FRONT_RING_INIT(&xf, s, PEER_RING_BYTES(order));
    } else {
        ring_at(s, start);
        FRONT_RING_ATTACH(&xf, s, start, PEER_RING_BYTES(order));
    }
    uint32_t nr = RING_SIZE(&xf);
    assert_int_equal(pblk_ring_nr_ents(order), nr);
    assert_int_equal(pblk_front_attach(&pf, s, order), 0);
    assert_int_equal(pblk_front_free(&pf), RING_FREE_REQUESTS(&xf));

    /* All but one slot, so the index crosses 2^32 for the starts near it. */
    uint32_t k = nr - 1;
    for (uint32_t i = 0; i < k; i++) {
        peer_fill_req(RING_GET_REQUEST(&xf, xf.req_prod_pvt), i);
        xf.req_prod_pvt++;
    }
    RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&xf, notify);
    assert_true(notify); /* req_event was start + 1 */

    assert_int_equal(pblk_back_attach(&pb, s, order), 0);
    BACK_RING_ATTACH(&xb, s, start, PEER_RING_BYTES(order));
    assert_int_equal(pblk_back_unconsumed(&pb), k);
    assert_int_equal(RING_HAS_UNCONSUMED_REQUESTS(&xb), k);
    assert_int_equal(pblk_back_copy_reqs(&pb, req, BLKIF_MAX_SLOTS), k);
    for (uint32_t i = 0; i < k; i++) {
        assert_null(peer_req_mismatch(&req[i], i));
        peer_fill_rsp(pblk_back_next_rsp(&pb), &req[i]);
    }
    assert_null(pblk_back_next_rsp(&pb));        /* nothing more is owed */
    assert_int_equal(pblk_back_publish(&pb), 1); /* rsp_event was start + 1 */

    assert_int_equal(RING_HAS_UNCONSUMED_RESPONSES(&xf), k);
    for (uint32_t i = 0; i < k; i++) {
        blkif_response_t rsp;
        RING_COPY_RESPONSE(&xf, xf.rsp_cons, &rsp);
        xf.rsp_cons++;
        assert_null(peer_rsp_mismatch(&rsp, i));
    }
    assert_int_equal(s->req_prod, start + k);
    assert_int_equal(s->rsp_prod, start + k);
    assert_int_equal(RING_FREE_REQUESTS(&xf), nr);
    guarded_free(&g);
}

/* pvabi sets the ring up and fills it; Xen attaches, consumes and answers. */
static void pvabi_init_xen_attach(unsigned order, uint32_t start)
{
    struct guarded g;
    blkif_sring_t *s = guarded_alloc(&g, PEER_RING_BYTES(order));
    blkif_front_ring_t xf;
    blkif_back_ring_t xb;
    struct pblk_front pf;
    struct pblk_back pb;
    blkif_request_t *r;
    blkif_response_t rsp[BLKIF_MAX_SLOTS];
    int notify;

    assert_non_null(s);
    memset(s, 0xA5, PEER_RING_BYTES(order));
    if (start == 0) {
        assert_int_equal(pblk_front_init(&pf, s, order), 0);
    } else {
        ring_at(s, start);
        assert_int_equal(pblk_front_attach(&pf, s, order), 0);
    }
    uint32_t nr = pblk_ring_nr_ents(order);
    FRONT_RING_ATTACH(&xf, s, start, PEER_RING_BYTES(order));
    assert_int_equal(RING_SIZE(&xf), nr);
    assert_int_equal(pblk_front_free(&pf), RING_FREE_REQUESTS(&xf));

    /* The whole ring: the last slot reserved must be the last one there is. */
    for (uint32_t i = 0; i < nr; i++) {
        assert_non_null(r = pblk_front_next_req(&pf));
        assert_ptr_equal(r, RING_GET_REQUEST(&xf, start + i));
        peer_fill_req(r, i);
    }
    assert_null(pblk_front_next_req(&pf));
    assert_int_equal(pblk_front_publish(&pf), 1); /* req_event was start + 1 */

    BACK_RING_ATTACH(&xb, s, start, PEER_RING_BYTES(order));
    assert_int_equal(RING_HAS_UNCONSUMED_REQUESTS(&xb), nr);
    assert_int_equal(pblk_back_attach(&pb, s, order), 0);
    assert_int_equal(pblk_back_unconsumed(&pb), nr);
    for (uint32_t i = 0; i < nr; i++) {
        blkif_request_t req;
        RING_COPY_REQUEST(&xb, xb.req_cons, &req);
        xb.req_cons++;
        assert_null(peer_req_mismatch(&req, i));
        peer_fill_rsp(RING_GET_RESPONSE(&xb, xb.rsp_prod_pvt), &req);
        xb.rsp_prod_pvt++;
    }
    RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(&xb, notify);
    assert_true(notify); /* rsp_event was start + 1 */

    assert_int_equal(pblk_front_unconsumed(&pf), nr);
    assert_int_equal(pblk_front_copy_rsps(&pf, rsp, BLKIF_MAX_SLOTS), nr);
    for (uint32_t i = 0; i < nr; i++)
        assert_null(peer_rsp_mismatch(&rsp[i], i));
    assert_int_equal(pblk_front_free(&pf), nr);
    assert_int_equal(s->req_prod, start + nr);
    assert_int_equal(s->rsp_prod, start + nr);
    assert_int_equal(pblk_front_broken(&pf), 0);
    guarded_free(&g);
}

static void test_ring_layout_xen_init_pvabi_attach(void **state)
{
    (void)state;
    for (unsigned order = 0; order < NR_ORDERS; order += 2) {
        for (size_t i = 0; i < sizeof(starts) / sizeof(starts[0]); i++)
            xen_init_pvabi_attach(order, starts[i]);
    }
}

static void test_ring_layout_pvabi_init_xen_attach(void **state)
{
    (void)state;
    for (unsigned order = 0; order < NR_ORDERS; order += 2) {
        for (size_t i = 0; i < sizeof(starts) / sizeof(starts[0]); i++)
            pvabi_init_xen_attach(order, starts[i]);
    }
}

#define LAYOUT_TEST(p)                                                                             \
    {                                                                                              \
        "test_ring_layout_matches_xen_" #p, test_ring_layout_matches_xen, NULL, NULL,              \
            (void *)&shape_##p                                                                     \
    }

int main(void)
{
    const struct CMUnitTest tests[] = {
        LAYOUT_TEST(pblk),
        LAYOUT_TEST(ptx),
        LAYOUT_TEST(prx),
        LAYOUT_TEST(pctl),
        LAYOUT_TEST(p1),
        LAYOUT_TEST(p3),
        LAYOUT_TEST(p24),
        LAYOUT_TEST(p200),
        LAYOUT_TEST(p3000),
        LAYOUT_TEST(p5000),
        cmocka_unit_test(test_ring_layout_blkif_known_sizes),
        cmocka_unit_test(test_ring_layout_xen_init_pvabi_attach),
        cmocka_unit_test(test_ring_layout_pvabi_init_xen_attach),
    };

    return cmocka_run_group_tests_name("ring-layout", tests, NULL, NULL);
}
