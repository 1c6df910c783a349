/* SPDX-License-Identifier: MIT */
/*
 * Grants across processes: a frontend agent shares, a backend agent maps or
 * copies, each in its own process and domain; the coordinator checks what
 * each side sees.
 */
#include <errno.h>

#include "itest.h"

#define SEED_A 1
#define SEED_B 2
#define SEED_C 3
#define PAGE   PVABI_PAGE_SIZE

/* Both directions of a read-write share, before and after the map. */
static void test_grant_rw_share_visible_both_ways_across_processes(void **state)
{
    struct it_agent fe, be;
    pvabi_gref refs[2];
    unsigned g, m;
    int st[2];

    (void)state;
    it_pair_start(&fe, &be, NULL, NULL);
    assert_int_equal(it_share(&fe, be.domid, 2, 0, &g, refs), 0);
    /* Written before the map: the backend must see it. */
    assert_int_equal(it_fill(&fe, IT_KIND_GRANT, g, 0, PAGE, SEED_A), 0);
    assert_int_equal(it_map(&be, fe.domid, refs, 2, 0, st, &m), 0);
    assert_int_equal(st[0], 0);
    assert_int_equal(st[1], 0);
    assert_int_equal(it_check(&be, IT_KIND_MAP, m, 0, PAGE, SEED_A), 0);
    /* Backend -> frontend. */
    assert_int_equal(it_fill(&be, IT_KIND_MAP, m, PAGE, PAGE, SEED_B), 0);
    assert_int_equal(it_check(&fe, IT_KIND_GRANT, g, PAGE, PAGE, SEED_B), 0);
    /* Written while mapped: the same memory, not a copy taken at map time. */
    assert_int_equal(it_fill(&fe, IT_KIND_GRANT, g, 0, PAGE, SEED_C), 0);
    assert_int_equal(it_check(&be, IT_KIND_MAP, m, 0, PAGE, SEED_C), 0);
    assert_int_equal(it_unmap(&be, m), 0);
    assert_int_equal(it_revoke(&fe, g), 0);
    it_pair_stop(&fe, &be);
}

/* A read-only share mapped read-only: the sharer's writes stay visible. */
static void test_grant_ro_share_sharer_writes_visible_to_ro_mapper(void **state)
{
    struct it_agent fe, be;
    pvabi_gref ref;
    unsigned g, m;

    (void)state;
    it_pair_start(&fe, &be, NULL, NULL);
    assert_int_equal(it_share(&fe, be.domid, 1, PVABI_GRANT_RO, &g, &ref), 0);
    assert_int_equal(it_fill(&fe, IT_KIND_GRANT, g, 0, PAGE, SEED_A), 0);
    assert_int_equal(it_map(&be, fe.domid, &ref, 1, PVABI_GRANT_RO, NULL, &m), 0);
    assert_int_equal(it_check(&be, IT_KIND_MAP, m, 0, PAGE, SEED_A), 0);
    assert_int_equal(it_fill(&fe, IT_KIND_GRANT, g, 100, 1000, SEED_B), 0);
    assert_int_equal(it_check(&be, IT_KIND_MAP, m, 100, 1000, SEED_B), 0);
    assert_int_equal(it_unmap(&be, m), 0);
    assert_int_equal(it_revoke(&fe, g), 0);
    it_pair_stop(&fe, &be);
}

/* One bad ref among good ones: the call fails with that ref's status, every
 * ref has its own status, and none of the good refs stays mapped (the share
 * revokes at once, where a left-over mapping would make it -EBUSY). */
static void test_grant_batch_map_one_bad_ref_maps_nothing(void **state)
{
    struct it_agent fe, be;
    pvabi_gref refs[4], ask[4];
    unsigned g, m;
    int st[4];

    (void)state;
    it_pair_start(&fe, &be, NULL, NULL);
    assert_int_equal(it_share(&fe, be.domid, 4, 0, &g, refs), 0);
    ask[0] = refs[0];
    ask[1] = refs[1];
    ask[2] = refs[3] + 1000; /* a ref this test never granted */
    ask[3] = refs[3];
    assert_int_equal(it_map(&be, fe.domid, ask, 4, 0, st, &m), -ENOENT);
    assert_int_equal(st[0], 0);
    assert_int_equal(st[1], 0);
    assert_int_equal(st[2], -ENOENT);
    assert_int_equal(st[3], 0);
    assert_int_equal(it_revoke(&fe, g), 0);
    it_pair_stop(&fe, &be);
}

/* The same batch with only good refs maps, as a control for the test above. */
static void test_grant_batch_map_all_good_refs_maps_all(void **state)
{
    struct it_agent fe, be;
    pvabi_gref refs[PVABI_GRANT_BATCH_MAX];
    unsigned g, m, n = PVABI_GRANT_BATCH_MAX;

    (void)state;
    it_pair_start(&fe, &be, NULL, NULL);
    assert_int_equal(it_share(&fe, be.domid, n, 0, &g, refs), 0);
    assert_int_equal(it_fill(&fe, IT_KIND_GRANT, g, 0, (size_t)n * PAGE, SEED_A), 0);
    assert_int_equal(it_map(&be, fe.domid, refs, n, 0, NULL, &m), 0);
    assert_int_equal(it_check(&be, IT_KIND_MAP, m, 0, (size_t)n * PAGE, SEED_A), 0);
    assert_int_equal(it_unmap(&be, m), 0);
    assert_int_equal(it_revoke(&fe, g), 0);
    it_pair_stop(&fe, &be);
}

/* Refs of two shares, out of order, in one map: each page lands where its
 * ref is in the batch (several runs of several memfds, one contiguous
 * mapping), and writes go to the right page. */
static void test_grant_map_refs_of_two_shares_out_of_order(void **state)
{
    struct it_agent fe, be;
    pvabi_gref a[2], b, ask[3];
    unsigned ga, gb, m;

    (void)state;
    it_pair_start(&fe, &be, NULL, NULL);
    assert_int_equal(it_share(&fe, be.domid, 2, 0, &ga, a), 0);
    assert_int_equal(it_share(&fe, be.domid, 1, 0, &gb, &b), 0);
    assert_int_equal(it_fill(&fe, IT_KIND_GRANT, ga, 0, 2 * PAGE, SEED_A), 0);
    assert_int_equal(it_fill(&fe, IT_KIND_GRANT, gb, 0, PAGE, SEED_B), 0);
    ask[0] = a[1];
    ask[1] = b;
    ask[2] = a[0];
    assert_int_equal(it_map(&be, fe.domid, ask, 3, 0, NULL, &m), 0);
    assert_int_equal(it_peek(&be, IT_KIND_MAP, m, 7), it_pattern(SEED_A, PAGE + 7));
    assert_int_equal(it_peek(&be, IT_KIND_MAP, m, PAGE + 8), it_pattern(SEED_B, 8));
    assert_int_equal(it_peek(&be, IT_KIND_MAP, m, 2 * PAGE + 9), it_pattern(SEED_A, 9));
    /* The pattern is indexed by offset in the area written: the mapping's. */
    assert_int_equal(it_fill(&be, IT_KIND_MAP, m, 2 * PAGE, PAGE, SEED_C), 0);
    assert_int_equal(it_peek(&fe, IT_KIND_GRANT, ga, 9), it_pattern(SEED_C, 2 * PAGE + 9));
    assert_int_equal(it_check(&fe, IT_KIND_GRANT, ga, PAGE, PAGE, SEED_A), 0);
    assert_int_equal(it_check(&fe, IT_KIND_GRANT, gb, 0, PAGE, SEED_B), 0);
    assert_int_equal(it_unmap(&be, m), 0);
    assert_int_equal(it_revoke(&fe, ga), 0);
    assert_int_equal(it_revoke(&fe, gb), 0);
    it_pair_stop(&fe, &be);
}

/* Copy without mapping, in both directions, with a bad segment in between
 * that fails alone. */
static void test_grant_copy_both_directions_per_segment_status(void **state)
{
    struct it_agent fe, be;
    pvabi_gref refs[2];
    uint64_t bad;
    unsigned g;
    int st[3];

    (void)state;
    it_pair_start(&fe, &be, NULL, NULL);
    assert_int_equal(it_share(&fe, be.domid, 2, 0, &g, refs), 0);
    assert_int_equal(it_fill(&fe, IT_KIND_GRANT, g, 0, 2 * PAGE, SEED_A), 0);
    struct it_seg segs[3] = {
        /* from page 0: bytes 10..109 of the frontend's pattern */
        { .ref = refs[0], .domid = fe.domid, .offset = 10, .len = 100, .seed = SEED_A, .base = 10 },
        /* a ref that was never granted */
        { .ref = refs[1] + 1000, .domid = fe.domid, .offset = 0, .len = 8, .seed = SEED_A },
        /* to page 1: 200 bytes at offset 50 */
        { .ref = refs[1],
          .domid = fe.domid,
          .offset = 50,
          .len = 200,
          .to_foreign = 1,
          .seed = SEED_B,
          .base = PAGE + 50 },
    };
    assert_int_equal(it_copy(&be, segs, 3, st, &bad), 1);
    assert_int_equal(st[0], 0);
    assert_int_equal(st[1], -ENOENT);
    assert_int_equal(st[2], 0);
    assert_int_equal(bad, 0); /* what came in is what the frontend wrote */
    /* What went out landed exactly there, and nothing around it moved. */
    assert_int_equal(it_check(&fe, IT_KIND_GRANT, g, PAGE + 50, 200, SEED_B), 0);
    assert_int_equal(it_check(&fe, IT_KIND_GRANT, g, PAGE, 50, SEED_A), 0);
    assert_int_equal(it_check(&fe, IT_KIND_GRANT, g, PAGE + 250, PAGE - 250, SEED_A), 0);
    assert_int_equal(it_check(&fe, IT_KIND_GRANT, g, 0, PAGE, SEED_A), 0);
    assert_int_equal(it_revoke(&fe, g), 0);
    it_pair_stop(&fe, &be);
}

/* Revoke refuses while the peer maps (nothing changes: the share still
 * works), succeeds after the unmap, and the revoked refs no longer map.
 * On Xen the kernel defers the free instead and revoke returns 0 at once
 * (grant.h, platform notes). */
static void test_grant_revoke_while_mapped_busy_until_unmap(void **state)
{
    struct it_agent fe, be;
    pvabi_gref refs[2];
    unsigned g, m;
    int st[2];

    (void)state;
    it_pair_start(&fe, &be, NULL, NULL);
    assert_int_equal(it_share(&fe, be.domid, 2, 0, &g, refs), 0);
    assert_int_equal(it_map(&be, fe.domid, refs, 2, 0, NULL, &m), 0);
    if (it_is_xen()) {
        assert_int_equal(it_revoke(&fe, g), 0);
        assert_int_equal(it_unmap(&be, m), 0);
        it_pair_stop(&fe, &be);
        return;
    }
    assert_int_equal(it_revoke(&fe, g), -EBUSY);
    assert_int_equal(it_fill(&fe, IT_KIND_GRANT, g, 0, 2 * PAGE, SEED_C), 0);
    assert_int_equal(it_check(&be, IT_KIND_MAP, m, 0, 2 * PAGE, SEED_C), 0);
    assert_int_equal(it_unmap(&be, m), 0);
    assert_int_equal(it_revoke(&fe, g), 0);
    assert_int_equal(it_map(&be, fe.domid, refs, 2, 0, st, &m), -ENOENT);
    assert_int_equal(st[0], -ENOENT);
    assert_int_equal(st[1], -ENOENT);
    it_pair_stop(&fe, &be);
}

/* Unmap does not wait for the hypervisor (local: GRANT_UNMAP flagged
 * no-reply), yet a revoke by the sharer right after it returns never sees
 * the page as still mapped.  Repeated, so that a race would show. */
static void test_grant_unmap_then_revoke_at_once_succeeds(void **state)
{
    struct it_agent fe, be;
    pvabi_gref refs[4];
    unsigned g, m;

    (void)state;
    it_pair_start(&fe, &be, NULL, NULL);
    for (int i = 0; i < 200; i++) {
        assert_int_equal(it_share(&fe, be.domid, 4, 0, &g, refs), 0);
        assert_int_equal(it_map(&be, fe.domid, refs, 4, 0, NULL, &m), 0);
        assert_int_equal(it_unmap(&be, m), 0);
        assert_int_equal(it_revoke(&fe, g), 0);
    }
    it_pair_stop(&fe, &be);
}

/* A clean unmap performs the map's unmap-notify: the byte is cleared in the
 * sharer's page and the sharer gets an event, with the channel still open. */
static void test_grant_unmap_performs_map_notify(void **state)
{
    struct it_agent fe, be;
    pvabi_port pf, pb;
    pvabi_gref ref;
    unsigned g, m;

    (void)state;
    it_pair_start(&fe, &be, &pf, &pb);
    assert_int_equal(it_share(&fe, be.domid, 1, 0, &g, &ref), 0);
    assert_int_equal(it_fill(&fe, IT_KIND_GRANT, g, 0, PAGE, SEED_A), 0);
    assert_int_equal(it_map(&be, fe.domid, &ref, 1, 0, NULL, &m), 0);
    assert_int_equal(it_map_notify(&be, m, 0, 200, pb), 0);
    assert_int_equal(it_unmap(&be, m), 0);
    assert_int_equal(it_wait(&fe, pf), 0);
    assert_int_equal(it_peek(&fe, IT_KIND_GRANT, g, 200), 0);
    assert_int_equal(it_check(&fe, IT_KIND_GRANT, g, 0, 200, SEED_A), 0);
    assert_int_equal(it_check(&fe, IT_KIND_GRANT, g, 201, PAGE - 201, SEED_A), 0);
    assert_int_equal(it_state(&fe, pf), PVABI_EVTCHN_INTERDOMAIN);
    assert_int_equal(it_revoke(&fe, g), 0);
    it_pair_stop(&fe, &be);
}

/* A revoke performs the share's unmap-notify event (as gntalloc does). */
static void test_grant_revoke_performs_grant_notify_event(void **state)
{
    struct it_agent fe, be;
    pvabi_port pf, pb;
    pvabi_gref ref;
    unsigned g;

    (void)state;
    it_pair_start(&fe, &be, &pf, &pb);
    assert_int_equal(it_share(&fe, be.domid, 1, 0, &g, &ref), 0);
    if (it_is_xen()) {
        /* libxengnttab cannot add a notify to a share (xen-platform.md) */
        assert_int_equal(it_grant_notify(&fe, g, 0, 300, pf), -ENOTSUP);
        assert_int_equal(it_revoke(&fe, g), 0);
        it_pair_stop(&fe, &be);
        skip();
    }
    assert_int_equal(it_grant_notify(&fe, g, 0, 300, pf), 0);
    assert_int_equal(it_revoke(&fe, g), 0);
    assert_int_equal(it_wait(&be, pb), 0);
    assert_int_equal(it_state(&be, pb), PVABI_EVTCHN_INTERDOMAIN);
    it_pair_stop(&fe, &be);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(test_grant_rw_share_visible_both_ways_across_processes),
        IT_TEST(test_grant_ro_share_sharer_writes_visible_to_ro_mapper),
        IT_TEST(test_grant_batch_map_one_bad_ref_maps_nothing),
        IT_TEST(test_grant_batch_map_all_good_refs_maps_all),
        IT_TEST(test_grant_map_refs_of_two_shares_out_of_order),
        IT_TEST(test_grant_copy_both_directions_per_segment_status),
        IT_TEST(test_grant_revoke_while_mapped_busy_until_unmap),
        IT_TEST(test_grant_unmap_then_revoke_at_once_succeeds),
        IT_TEST(test_grant_unmap_performs_map_notify),
        IT_TEST(test_grant_revoke_performs_grant_notify_event),
    };
    return it_run_tests("integration-grant", tests);
}
