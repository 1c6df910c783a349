/* SPDX-License-Identifier: MIT */
/*
 * The example drivers' blkif definitions (examples/blkif/blkif-wire.h)
 * against Xen's xen/io/blkif.h, byte for byte: every field's offset and
 * size, the constants, the ring's slot size and slot count per order, and
 * requests written through one definition read back through the other.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <xen/io/blkif.h>

#include "blkif-wire.h"

#define SAME_FIELD(ours, xens, f)                                                                  \
    do {                                                                                           \
        assert_int_equal(offsetof(ours, f), offsetof(xens, f));                                    \
        assert_int_equal(sizeof(((ours *)0)->f), sizeof(((xens *)0)->f));                          \
    } while (0)

static void test_request_layout(void **state)
{
    (void)state;
    assert_int_equal(sizeof(struct pvblk_request), sizeof(struct blkif_request));
    SAME_FIELD(struct pvblk_request, struct blkif_request, operation);
    SAME_FIELD(struct pvblk_request, struct blkif_request, nr_segments);
    SAME_FIELD(struct pvblk_request, struct blkif_request, handle);
    SAME_FIELD(struct pvblk_request, struct blkif_request, id);
    SAME_FIELD(struct pvblk_request, struct blkif_request, sector_number);
    SAME_FIELD(struct pvblk_request, struct blkif_request, seg);
    assert_int_equal(sizeof(struct pvblk_segment), sizeof(struct blkif_request_segment));
    SAME_FIELD(struct pvblk_segment, struct blkif_request_segment, gref);
    SAME_FIELD(struct pvblk_segment, struct blkif_request_segment, first_sect);
    SAME_FIELD(struct pvblk_segment, struct blkif_request_segment, last_sect);
}

static void test_discard_indirect_layout(void **state)
{
    (void)state;
    SAME_FIELD(struct pvblk_request_discard, struct blkif_request_discard, operation);
    SAME_FIELD(struct pvblk_request_discard, struct blkif_request_discard, flag);
    SAME_FIELD(struct pvblk_request_discard, struct blkif_request_discard, handle);
    SAME_FIELD(struct pvblk_request_discard, struct blkif_request_discard, id);
    SAME_FIELD(struct pvblk_request_discard, struct blkif_request_discard, sector_number);
    SAME_FIELD(struct pvblk_request_discard, struct blkif_request_discard, nr_sectors);
    SAME_FIELD(struct pvblk_request_indirect, struct blkif_request_indirect, operation);
    SAME_FIELD(struct pvblk_request_indirect, struct blkif_request_indirect, indirect_op);
    SAME_FIELD(struct pvblk_request_indirect, struct blkif_request_indirect, nr_segments);
    SAME_FIELD(struct pvblk_request_indirect, struct blkif_request_indirect, id);
    SAME_FIELD(struct pvblk_request_indirect, struct blkif_request_indirect, sector_number);
    SAME_FIELD(struct pvblk_request_indirect, struct blkif_request_indirect, handle);
    SAME_FIELD(struct pvblk_request_indirect, struct blkif_request_indirect, indirect_grefs);
    assert_true(sizeof(struct pvblk_request_indirect) <= sizeof(struct blkif_request));
}

static void test_response_layout(void **state)
{
    (void)state;
    assert_int_equal(sizeof(struct pvblk_response), sizeof(struct blkif_response));
    SAME_FIELD(struct pvblk_response, struct blkif_response, id);
    SAME_FIELD(struct pvblk_response, struct blkif_response, operation);
    SAME_FIELD(struct pvblk_response, struct blkif_response, status);
}

static void test_constants(void **state)
{
    (void)state;
    assert_int_equal(PVBLK_OP_READ, BLKIF_OP_READ);
    assert_int_equal(PVBLK_OP_WRITE, BLKIF_OP_WRITE);
    assert_int_equal(PVBLK_OP_WRITE_BARRIER, BLKIF_OP_WRITE_BARRIER);
    assert_int_equal(PVBLK_OP_FLUSH_DISKCACHE, BLKIF_OP_FLUSH_DISKCACHE);
    assert_int_equal(PVBLK_OP_RESERVED_1, BLKIF_OP_RESERVED_1);
    assert_int_equal(PVBLK_OP_DISCARD, BLKIF_OP_DISCARD);
    assert_int_equal(PVBLK_OP_INDIRECT, BLKIF_OP_INDIRECT);
    assert_int_equal(PVBLK_RSP_OKAY, BLKIF_RSP_OKAY);
    assert_int_equal(PVBLK_RSP_ERROR, BLKIF_RSP_ERROR);
    assert_int_equal(PVBLK_RSP_EOPNOTSUPP, BLKIF_RSP_EOPNOTSUPP);
    assert_int_equal(PVBLK_MAX_SEGMENTS_PER_REQUEST, BLKIF_MAX_SEGMENTS_PER_REQUEST);
    assert_int_equal(PVBLK_MAX_INDIRECT_PAGES_PER_REQUEST, BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST);
    assert_int_equal(PVBLK_SEGS_PER_INDIRECT_FRAME, 4096 / sizeof(struct blkif_request_segment));
    assert_int_equal(PVBLK_DISCARD_SECURE, BLKIF_DISCARD_SECURE);
    assert_int_equal(PVBLK_VDISK_CDROM, VDISK_CDROM);
    assert_int_equal(PVBLK_VDISK_REMOVABLE, VDISK_REMOVABLE);
    assert_int_equal(PVBLK_VDISK_READONLY, VDISK_READONLY);
}

/* The slot count of our ring is Xen's __RING_SIZE for blkif_sring. */
static void test_ring_geometry(void **state)
{
    (void)state;
    assert_int_equal(sizeof(union pvblk_slot), sizeof(union blkif_sring_entry));
    assert_int_equal(offsetof(struct pvblk_shared, ring), offsetof(struct blkif_sring, ring));
    /* __RING_SIZE looks at the ring through a pointer: give it a real one. */
    static _Alignas(64) unsigned char page[4096];
    struct blkif_sring *s = (struct blkif_sring *)page;
    for (unsigned order = 0; order <= 4; order++) {
        size_t bytes = (size_t)4096 << order;
        assert_int_equal(pvblk_ring_nr_ents(order), __RING_SIZE(s, bytes));
    }
    assert_int_equal(pvblk_ring_nr_ents(0), 32);
}

/* A request written through Xen's struct reads the same through ours. */
static void test_values_cross(void **state)
{
    (void)state;
    struct blkif_request x;
    memset(&x, 0xa5, sizeof(x));
    x.operation = BLKIF_OP_WRITE;
    x.nr_segments = 11;
    x.handle = 51712;
    x.id = 0x0123456789abcdefull;
    x.sector_number = 0xfedcba9876543210ull;
    for (unsigned i = 0; i < 11; i++) {
        x.seg[i].gref = 1000 + i;
        x.seg[i].first_sect = (uint8_t)(i % 8);
        x.seg[i].last_sect = 7;
    }
    struct pvblk_request p;
    memcpy(&p, &x, sizeof(p));
    assert_int_equal(p.operation, PVBLK_OP_WRITE);
    assert_int_equal(p.nr_segments, 11);
    assert_int_equal(p.handle, 51712);
    assert_true(p.id == 0x0123456789abcdefull);
    assert_true(p.sector_number == 0xfedcba9876543210ull);
    for (unsigned i = 0; i < 11; i++) {
        assert_int_equal(p.seg[i].gref, 1000 + i);
        assert_int_equal(p.seg[i].first_sect, i % 8);
        assert_int_equal(p.seg[i].last_sect, 7);
    }
    struct blkif_response xr = { .id = 42, .operation = BLKIF_OP_READ, .status = BLKIF_RSP_ERROR };
    struct pvblk_response pr;
    memcpy(&pr, &xr, sizeof(pr));
    assert_true(pr.id == 42);
    assert_int_equal(pr.operation, PVBLK_OP_READ);
    assert_int_equal(pr.status, PVBLK_RSP_ERROR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_layout),  cmocka_unit_test(test_discard_indirect_layout),
        cmocka_unit_test(test_response_layout), cmocka_unit_test(test_constants),
        cmocka_unit_test(test_ring_geometry),   cmocka_unit_test(test_values_cross),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
