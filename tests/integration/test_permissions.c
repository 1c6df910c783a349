/* SPDX-License-Identifier: MIT */
/*
 * What a domain must not get: memory nobody granted it, memory granted to
 * someone else, write access to a read-only grant, a port offered to another
 * domain.  Each refusal comes with a positive control where one makes sense,
 * so a test cannot pass because everything fails.
 */
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>

#include "itest.h"

#define PAGE PVABI_PAGE_SIZE

/* On Xen every process of the test is in the same domain: tests that need
 * three different domains cannot run there. */
static int distinct_domains(const struct it_agent *a, const struct it_agent *b)
{
    if (a->domid != b->domid)
        return 1;
    printf("SKIP: %s and %s are both domain %u (one Xen domain runs every agent)\n", a->name,
           b->name, a->domid);
    return 0;
}

/* An entry of the grant table that is not granted: -ENOENT; Xen says only
 * GNTST_general_error for it, -EIO (xen-platform.md).  A ref past the end
 * of the table is -ENOENT on both.  Across Xen domains no ref can be known
 * ungranted: the frontend's kernel grants its own pages to dom0 (netfront's
 * buffers come and go), so there only the ref past the end is tried. */
static void test_perm_map_ungranted_ref_refused(void **state)
{
    const int ungranted = it_is_xen() ? -EIO : -ENOENT;
    struct it_agent fe, be;
    pvabi_gref ref, bad;
    unsigned g, m;
    int st = 0;

    (void)state;
    it_pair_start(&fe, &be, NULL, NULL);
    assert_int_equal(it_share(&fe, be.domid, 1, 0, &g, &ref), 0);
    if (!it_is_xen() || fe.domid == be.domid) {
        bad = ref + 1;
        assert_int_equal(it_map(&be, fe.domid, &bad, 1, 0, &st, &m), ungranted);
        assert_int_equal(st, ungranted);
        assert_int_equal(it_map(&be, fe.domid, &bad, 1, PVABI_GRANT_RO, &st, &m), ungranted);
        /* A reserved ref (0..7 as in Xen) is never granted. */
        bad = 0;
        assert_int_equal(it_map(&be, fe.domid, &bad, 1, 0, &st, &m), ungranted);
    }
    bad = 0x7fffffff;
    assert_int_equal(it_map(&be, fe.domid, &bad, 1, 0, &st, &m), -ENOENT);
    assert_int_equal(it_revoke(&fe, g), 0);
    it_pair_stop(&fe, &be);
}

static void test_perm_map_from_nonexistent_domain_refused(void **state)
{
    struct it_agent fe, be;
    pvabi_gref ref;
    unsigned g, m;
    int st = 0;

    (void)state;
    it_pair_start(&fe, &be, NULL, NULL);
    assert_int_equal(it_share(&fe, be.domid, 1, 0, &g, &ref), 0);
    assert_int_equal(it_map(&be, 32000, &ref, 1, 0, &st, &m), -ESRCH);
    assert_int_equal(st, -ESRCH);
    assert_int_equal(it_revoke(&fe, g), 0);
    it_pair_stop(&fe, &be);
}

/* The frontend grants to a third domain; the backend may not map it (and may
 * not copy from it); the third domain may. */
/* -EPERM; Xen says GNTST_general_error for a grant to another domain, -EIO
 * (xen-platform.md). */
static void test_perm_map_grant_of_other_domain_refused(void **state)
{
    const int not_ours = it_is_xen() ? -EIO : -EPERM;
    struct it_agent fe, be, other;
    struct it_seg seg = { .len = 16 };
    pvabi_gref ref;
    unsigned g, m;
    uint64_t bad;
    int st = 0;

    (void)state;
    it_pair_start(&fe, &be, NULL, NULL);
    it_agent_start(&other, "other");
    if (!distinct_domains(&be, &other) || !distinct_domains(&fe, &be)) {
        it_agent_stop(&other, 1);
        it_pair_stop(&fe, &be);
        skip();
    }
    assert_int_equal(it_share(&fe, other.domid, 1, 0, &g, &ref), 0);
    assert_int_equal(it_fill(&fe, IT_KIND_GRANT, g, 0, PAGE, 9), 0);
    assert_int_equal(it_map(&be, fe.domid, &ref, 1, 0, &st, &m), not_ours);
    assert_int_equal(st, not_ours);
    assert_int_equal(it_map(&be, fe.domid, &ref, 1, PVABI_GRANT_RO, &st, &m), not_ours);
    seg.ref = ref;
    seg.domid = fe.domid;
    assert_int_equal(it_copy(&be, &seg, 1, &st, &bad), 1);
    assert_int_equal(st, not_ours);
    /* Control: the domain it was granted to maps it. */
    assert_int_equal(it_map(&other, fe.domid, &ref, 1, 0, &st, &m), 0);
    assert_int_equal(it_check(&other, IT_KIND_MAP, m, 0, PAGE, 9), 0);
    assert_int_equal(it_unmap(&other, m), 0);
    assert_int_equal(it_revoke(&fe, g), 0);
    it_agent_stop(&other, 1);
    it_pair_stop(&fe, &be);
}

static void test_perm_rw_map_of_ro_grant_refused(void **state)
{
    struct it_agent fe, be;
    pvabi_gref ref;
    unsigned g, m;
    int st = 0;

    (void)state;
    it_pair_start(&fe, &be, NULL, NULL);
    assert_int_equal(it_share(&fe, be.domid, 1, PVABI_GRANT_RO, &g, &ref), 0);
    assert_int_equal(it_map(&be, fe.domid, &ref, 1, 0, &st, &m), -EPERM);
    assert_int_equal(st, -EPERM);
    /* Control: read-only is allowed. */
    assert_int_equal(it_map(&be, fe.domid, &ref, 1, PVABI_GRANT_RO, &st, &m), 0);
    assert_int_equal(it_unmap(&be, m), 0);
    assert_int_equal(it_revoke(&fe, g), 0);
    it_pair_stop(&fe, &be);
}

/* A write through a read-only mapping faults in the writer, and the page
 * stays as the sharer wrote it. */
static void test_perm_write_through_ro_mapping_gets_sigsegv(void **state)
{
    struct it_agent fe, be;
    struct it_msg m = { .op = IT_OP_FILL };
    pvabi_port pf, pb;
    pvabi_gref ref;
    unsigned g, slot;
    int ws;

    (void)state;
    it_pair_start(&fe, &be, &pf, &pb);
    assert_int_equal(it_share(&fe, be.domid, 1, PVABI_GRANT_RO, &g, &ref), 0);
    assert_int_equal(it_fill(&fe, IT_KIND_GRANT, g, 0, PAGE, 4), 0);
    assert_int_equal(it_map(&be, fe.domid, &ref, 1, PVABI_GRANT_RO, NULL, &slot), 0);
    assert_int_equal(it_check(&be, IT_KIND_MAP, slot, 0, PAGE, 4), 0);
    m.a[0] = IT_KIND_MAP;
    m.a[1] = slot;
    m.a[2] = 0;
    m.a[3] = 16;
    m.a[4] = 5;
    m.a[5] = 1; /* expect the fault */
    ws = it_agent_call_dies(&be, &m);
    assert_true(WIFSIGNALED(ws));
    assert_int_equal(WTERMSIG(ws), SIGSEGV);
    assert_int_equal(it_check(&fe, IT_KIND_GRANT, g, 0, PAGE, 4), 0);
    /* The writer died holding the mapping; once the sharer has seen the
     * death (its port closed), the mapping no longer holds up the revoke. */
    if (it_peer_close_raises_event())
        assert_int_equal(it_wait(&fe, pf), 0);
    assert_int_equal(it_state(&fe, pf), it_closed_state(&fe));
    assert_int_equal(it_revoke(&fe, g), 0);
    it_agent_stop(&fe, 1);
    it_agent_release(&be);
}

/* A grant copy into a read-only grant is refused like a writable map. */
static void test_perm_copy_into_ro_grant_refused_page_unchanged(void **state)
{
    struct it_agent fe, be;
    pvabi_gref ref;
    uint64_t bad;
    unsigned g;
    int st[2];

    (void)state;
    it_pair_start(&fe, &be, NULL, NULL);
    assert_int_equal(it_share(&fe, be.domid, 1, PVABI_GRANT_RO, &g, &ref), 0);
    assert_int_equal(it_fill(&fe, IT_KIND_GRANT, g, 0, PAGE, 6), 0);
    struct it_seg segs[2] = {
        { .ref = ref, .domid = fe.domid, .offset = 0, .len = 64, .to_foreign = 1, .seed = 7 },
        /* control: reading a read-only grant is fine */
        { .ref = ref, .domid = fe.domid, .offset = 64, .len = 64, .seed = 6, .base = 64 },
    };
    assert_int_equal(it_copy(&be, segs, 2, st, &bad), 1);
    assert_int_equal(st[0], -EPERM);
    assert_int_equal(st[1], 0);
    assert_int_equal(bad, 0);
    assert_int_equal(it_check(&fe, IT_KIND_GRANT, g, 0, PAGE, 6), 0);
    assert_int_equal(it_revoke(&fe, g), 0);
    it_pair_stop(&fe, &be);
}

/* A port offered to the third domain cannot be bound by the backend; the
 * third domain binds it. */
static void test_perm_bind_port_offered_to_other_domain_refused(void **state)
{
    struct it_agent fe, be, other;
    pvabi_port pf, pb, po;

    (void)state;
    it_pair_start(&fe, &be, NULL, NULL);
    it_agent_start(&other, "other");
    if (!distinct_domains(&be, &other) || !distinct_domains(&fe, &be)) {
        it_agent_stop(&other, 1);
        it_pair_stop(&fe, &be);
        skip();
    }
    assert_int_equal(it_alloc(&fe, other.domid, &pf), 0);
    assert_int_equal(it_bind(&be, fe.domid, pf, &pb), -EPERM);
    assert_int_equal(it_state(&fe, pf), PVABI_EVTCHN_UNBOUND);
    assert_int_equal(it_bind(&other, fe.domid, pf, &po), 0);
    assert_int_equal(it_state(&fe, pf), it_bound_state(&fe));
    /* Once bound, it is no longer unbound for anyone (-EPERM or -EINVAL
     * both say no: evtchn.h allows either for this case). */
    int rc = it_bind(&be, fe.domid, pf, &pb);
    assert_true(rc == -EPERM || rc == -EINVAL);
    it_agent_stop(&other, 1);
    it_pair_stop(&fe, &be);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        IT_TEST(test_perm_map_ungranted_ref_refused),
        IT_TEST(test_perm_map_from_nonexistent_domain_refused),
        IT_TEST(test_perm_map_grant_of_other_domain_refused),
        IT_TEST(test_perm_rw_map_of_ro_grant_refused),
        IT_TEST(test_perm_write_through_ro_mapping_gets_sigsegv),
        IT_TEST(test_perm_copy_into_ro_grant_refused_page_unchanged),
        IT_TEST(test_perm_bind_port_offered_to_other_domain_refused),
    };
    return it_run_tests("integration-permissions", tests);
}
