/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the flex byte ring: both ends in one thread, the shared
 * memory under the test's control so it can play a hostile peer.
 *
 * The data buffer ends exactly where a PROT_NONE guard page starts, so a read
 * or write one byte past the ring faults even without AddressSanitizer.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include <pvabi/flexring.h>

/* Shared memory of one ring: indices, and a buffer that ends at a guard page. */
struct shm {
    void *map;
    size_t map_len;
    unsigned char *data;
    size_t size;
    uint32_t *prod;
    uint32_t *cons;
};

static void shm_map(struct shm *shm, size_t size, uint32_t start)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t body = (size + 2 * sizeof(uint32_t) + page - 1) / page * page;

    shm->map_len = body + page;
    shm->map = mmap(NULL, shm->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(shm->map != MAP_FAILED);
    assert_int_equal(mprotect((unsigned char *)shm->map + body, page, PROT_NONE), 0);
    shm->size = size;
    shm->data = (unsigned char *)shm->map + body - size;
    shm->prod = shm->map;
    shm->cons = shm->prod + 1;
    *shm->prod = start;
    *shm->cons = start;
}

static void shm_unmap(struct shm *shm)
{
    assert_int_equal(munmap(shm->map, shm->map_len), 0);
}

/* Both ends of one ring over @shm. */
struct pair {
    struct shm shm;
    pvabi_flexring *w;
    pvabi_flexring *r;
};

static void pair_open(struct pair *p, size_t size, uint32_t start)
{
    shm_map(&p->shm, size, start);
    assert_int_equal(pvabi_flexring_open(&p->w, p->shm.data, size, p->shm.prod, p->shm.cons,
                                         PVABI_FLEXRING_WRITER),
                     0);
    assert_int_equal(pvabi_flexring_open(&p->r, p->shm.data, size, p->shm.prod, p->shm.cons,
                                         PVABI_FLEXRING_READER),
                     0);
}

static void pair_close(struct pair *p)
{
    pvabi_flexring_close(p->w);
    pvabi_flexring_close(p->r);
    shm_unmap(&p->shm);
}

/* A byte stream whose every position is known: byte i of the stream. */
static unsigned char stream_byte(uint64_t i)
{
    return (unsigned char)((i * 2654435761u) >> 13);
}

static void stream_fill(unsigned char *buf, size_t len, uint64_t from)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = stream_byte(from + i);
}

static void stream_check(const unsigned char *buf, size_t len, uint64_t from)
{
    for (size_t i = 0; i < len; i++)
        assert_int_equal(buf[i], stream_byte(from + i));
}

static void test_flexring_roundtrip(void **state)
{
    struct pair p;
    char out[6] = { 0 };

    (void)state;
    pair_open(&p, 16, 0);
    assert_int_equal(pvabi_flexring_write(p.w, "hello", 5), 5);
    assert_int_equal(*p.shm.prod, 5);
    assert_int_equal(pvabi_flexring_read(p.r, out, sizeof(out)), 5);
    assert_string_equal(out, "hello");
    assert_int_equal(*p.shm.cons, 5);
    assert_int_equal(pvabi_flexring_read(p.r, out, sizeof(out)), 0);
    pair_close(&p);
}

/* Chunks of awkward lengths through a small ring whose indices cross 2^32. */
static void test_flexring_wraps_across_u32(void **state)
{
    static const size_t lens[] = { 1, 7, 63, 64, 13, 5, 32, 50 };
    unsigned char in[64], out[64];
    uint64_t wpos = 0, rpos = 0;
    struct pair p;

    (void)state;
    pair_open(&p, 64, UINT32_MAX - 100);
    for (int round = 0; round < 40; round++) {
        size_t len = lens[round % 8];
        ssize_t n;

        stream_fill(in, len, wpos);
        n = pvabi_flexring_write(p.w, in, len);
        assert_true(n >= 0);
        wpos += (size_t)n;
        n = pvabi_flexring_read(p.r, out, lens[(round + 3) % 8]);
        assert_true(n >= 0);
        stream_check(out, (size_t)n, rpos);
        rpos += (size_t)n;
    }
    assert_true(rpos > 200);
    assert_int_equal(*p.shm.prod, (uint32_t)(UINT32_MAX - 100 + wpos));
    assert_int_equal(*p.shm.cons, (uint32_t)(UINT32_MAX - 100 + rpos));
    pair_close(&p);
}

static void test_flexring_partial_write_when_full(void **state)
{
    unsigned char in[32], out[32];
    struct pair p;

    (void)state;
    pair_open(&p, 16, 3);
    stream_fill(in, sizeof(in), 0);
    assert_int_equal(pvabi_flexring_write(p.w, in, 20), 16);
    assert_int_equal(pvabi_flexring_write(p.w, in + 16, 4), 0);
    assert_int_equal(pvabi_flexring_read(p.r, out, 5), 5);
    assert_int_equal(pvabi_flexring_write(p.w, in + 16, 10), 5);
    assert_int_equal(pvabi_flexring_read(p.r, out + 5, sizeof(out)), 16);
    stream_check(out, 21, 0);
    pair_close(&p);
}

/* A full ring read in one call touches the last byte before the guard page. */
static void test_flexring_full_ring_stays_in_bounds(void **state)
{
    unsigned char in[4096], out[4096];
    struct pair p;

    (void)state;
    pair_open(&p, 4096, 4000);
    stream_fill(in, sizeof(in), 0);
    assert_int_equal(pvabi_flexring_write(p.w, in, sizeof(in)), 4096);
    assert_int_equal(pvabi_flexring_read(p.r, out, sizeof(out)), 4096);
    stream_check(out, sizeof(out), 0);
    pair_close(&p);
}

static void test_flexring_size_one(void **state)
{
    struct pair p;
    char c = 0;

    (void)state;
    pair_open(&p, 1, UINT32_MAX);
    assert_int_equal(pvabi_flexring_write(p.w, "ab", 2), 1);
    assert_int_equal(pvabi_flexring_read(p.r, &c, 1), 1);
    assert_int_equal(c, 'a');
    assert_int_equal(pvabi_flexring_write(p.w, "b", 1), 1);
    assert_int_equal(pvabi_flexring_read(p.r, &c, 1), 1);
    assert_int_equal(c, 'b');
    assert_int_equal(*p.shm.prod, 1);
    pair_close(&p);
}

static void test_flexring_counts(void **state)
{
    struct pair p;
    char buf[8];

    (void)state;
    pair_open(&p, 32, UINT32_MAX - 2);
    assert_int_equal(pvabi_flexring_used(p.r), 0);
    assert_int_equal(pvabi_flexring_space(p.w), 32);
    assert_int_equal(pvabi_flexring_write(p.w, "12345678", 8), 8);
    assert_int_equal(pvabi_flexring_used(p.w), 8);
    assert_int_equal(pvabi_flexring_used(p.r), 8);
    assert_int_equal(pvabi_flexring_space(p.w), 24);
    assert_int_equal(pvabi_flexring_space(p.r), 24);
    assert_int_equal(pvabi_flexring_read(p.r, buf, 3), 3);
    assert_int_equal(pvabi_flexring_used(p.r), 5);
    assert_int_equal(pvabi_flexring_space(p.w), 27);
    assert_int_equal(pvabi_flexring_broken(p.w), 0);
    assert_int_equal(pvabi_flexring_broken(p.r), 0);
    pair_close(&p);
}

/* Opening an existing ring keeps what is already in it. */
static void test_flexring_open_continues_from_indices(void **state)
{
    struct pair p;
    pvabi_flexring *r2;
    char out[4] = { 0 };

    (void)state;
    pair_open(&p, 16, 100);
    assert_int_equal(pvabi_flexring_write(p.w, "xyz", 3), 3);
    assert_int_equal(
        pvabi_flexring_open(&r2, p.shm.data, 16, p.shm.prod, p.shm.cons, PVABI_FLEXRING_READER), 0);
    assert_int_equal(pvabi_flexring_used(r2), 3);
    assert_int_equal(pvabi_flexring_read(r2, out, 3), 3);
    assert_string_equal(out, "xyz");
    pvabi_flexring_close(r2);
    pair_close(&p);
}

static void test_flexring_open_inconsistent_is_broken(void **state)
{
    struct shm shm;
    pvabi_flexring *r = NULL, *w = NULL;

    (void)state;
    shm_map(&shm, 16, 50);
    *shm.prod = 50 + 17;
    assert_int_equal(
        pvabi_flexring_open(&r, shm.data, 16, shm.prod, shm.cons, PVABI_FLEXRING_READER), -EPROTO);
    assert_non_null(r);
    assert_int_equal(pvabi_flexring_broken(r), -EPROTO);
    *shm.prod = 49;
    assert_int_equal(
        pvabi_flexring_open(&w, shm.data, 16, shm.prod, shm.cons, PVABI_FLEXRING_WRITER), -EPROTO);
    assert_int_equal(pvabi_flexring_write(w, "a", 1), -EPROTO);
    pvabi_flexring_close(r);
    pvabi_flexring_close(w);
    shm_unmap(&shm);
}

/* A reader's prod more than a ring ahead of cons: no read past the data. */
static void test_flexring_hostile_prod_ahead(void **state)
{
    struct pair p;
    char buf[64];

    (void)state;
    pair_open(&p, 16, UINT32_MAX - 4);
    *p.shm.prod = UINT32_MAX - 4 + 16; /* exactly full is legal */
    assert_int_equal(pvabi_flexring_used(p.r), 16);
    *p.shm.prod += 1;
    assert_int_equal(pvabi_flexring_read(p.r, buf, sizeof(buf)), -EPROTO);
    assert_int_equal(pvabi_flexring_broken(p.r), -EPROTO);
    assert_int_equal(pvabi_flexring_broken(p.w), 0);
    pair_close(&p);
}

static void test_flexring_hostile_prod_backwards(void **state)
{
    struct pair p;
    char buf[16];

    (void)state;
    pair_open(&p, 16, 2);
    assert_int_equal(pvabi_flexring_write(p.w, "abcdefgh", 8), 8);
    assert_int_equal(pvabi_flexring_read(p.r, buf, 2), 2);
    assert_int_equal(pvabi_flexring_used(p.r), 6);
    /* Still ahead of cons, but behind a prod the reader already saw. */
    *p.shm.prod -= 3;
    assert_int_equal(pvabi_flexring_read(p.r, buf, sizeof(buf)), -EPROTO);
    pair_close(&p);
}

/* A prod behind cons would otherwise look like almost 4 GiB of data. */
static void test_flexring_hostile_prod_behind_cons(void **state)
{
    struct pair p;

    (void)state;
    pair_open(&p, 16, 0);
    *p.shm.prod = UINT32_MAX;
    assert_int_equal(pvabi_flexring_used(p.r), -EPROTO);
    pair_close(&p);
}

static void test_flexring_hostile_cons_past_prod(void **state)
{
    struct pair p;

    (void)state;
    pair_open(&p, 16, UINT32_MAX);
    assert_int_equal(pvabi_flexring_write(p.w, "abcd", 4), 4);
    *p.shm.cons = UINT32_MAX + 5u;
    assert_int_equal(pvabi_flexring_space(p.w), -EPROTO);
    assert_int_equal(pvabi_flexring_write(p.w, "e", 1), -EPROTO);
    pair_close(&p);
}

static void test_flexring_hostile_cons_backwards(void **state)
{
    struct pair p;
    char buf[4];

    (void)state;
    pair_open(&p, 16, 7);
    assert_int_equal(pvabi_flexring_write(p.w, "abcd", 4), 4);
    assert_int_equal(pvabi_flexring_read(p.r, buf, 3), 3);
    assert_int_equal(pvabi_flexring_space(p.w), 15);
    *p.shm.cons -= 2;
    assert_int_equal(pvabi_flexring_write(p.w, "e", 1), -EPROTO);
    pair_close(&p);
}

/* Once broken, a ring stays broken even when the peer puts sane indices back. */
static void test_flexring_broken_is_sticky(void **state)
{
    struct pair p;
    char buf[4];

    (void)state;
    pair_open(&p, 16, 0);
    *p.shm.prod = 1000;
    assert_int_equal(pvabi_flexring_read(p.r, buf, sizeof(buf)), -EPROTO);
    *p.shm.prod = 0;
    assert_int_equal(pvabi_flexring_read(p.r, buf, sizeof(buf)), -EPROTO);
    assert_int_equal(pvabi_flexring_read(p.r, buf, 0), -EPROTO);
    assert_int_equal(pvabi_flexring_used(p.r), -EPROTO);
    assert_int_equal(pvabi_flexring_space(p.r), -EPROTO);
    assert_int_equal(pvabi_flexring_broken(p.r), -EPROTO);
    assert_int_equal(*p.shm.cons, 0);
    pair_close(&p);
}

/* The peer scribbling on our own index does not move where we read or write. */
static void test_flexring_ignores_scribbled_own_index(void **state)
{
    struct pair p;
    char buf[8] = { 0 };

    (void)state;
    pair_open(&p, 16, 0);
    assert_int_equal(pvabi_flexring_write(p.w, "abcdef", 6), 6);
    assert_int_equal(pvabi_flexring_read(p.r, buf, 2), 2);
    *p.shm.cons = 5000; /* the writer scribbles on the reader's index */
    assert_int_equal(pvabi_flexring_read(p.r, buf, 4), 4);
    assert_memory_equal(buf, "cdef", 4);
    assert_int_equal(*p.shm.cons, 6);
    *p.shm.prod = 9000; /* the reader scribbles on the writer's index */
    assert_int_equal(pvabi_flexring_write(p.w, "g", 1), 1);
    assert_int_equal(*p.shm.prod, 7);
    pair_close(&p);
}

static void test_flexring_rejects_bad_args(void **state)
{
    struct pair p;
    pvabi_flexring *h = NULL;
    unsigned char *d;
    uint32_t *pr, *co;
    char buf[4];

    (void)state;
    pair_open(&p, 16, 0);
    d = p.shm.data, pr = p.shm.prod, co = p.shm.cons;
    assert_int_equal(pvabi_flexring_open(&h, d, 12, pr, co, PVABI_FLEXRING_READER), -EINVAL);
    assert_int_equal(pvabi_flexring_open(&h, d, 0, pr, co, PVABI_FLEXRING_READER), -EINVAL);
#if SIZE_MAX > UINT32_MAX
    /* A full ring of 2^32 bytes would look empty to u32 indices. */
    assert_int_equal(
        pvabi_flexring_open(&h, d, (size_t)UINT32_MAX + 1, pr, co, PVABI_FLEXRING_READER), -EINVAL);
#endif
    assert_int_equal(pvabi_flexring_open(NULL, d, 16, pr, co, PVABI_FLEXRING_READER), -EINVAL);
    assert_int_equal(pvabi_flexring_open(&h, NULL, 16, pr, co, PVABI_FLEXRING_READER), -EINVAL);
    assert_int_equal(pvabi_flexring_open(&h, d, 16, NULL, co, PVABI_FLEXRING_READER), -EINVAL);
    assert_int_equal(pvabi_flexring_open(&h, d, 16, pr, NULL, PVABI_FLEXRING_READER), -EINVAL);
    assert_int_equal(pvabi_flexring_open(&h, d, 16, pr, co, 0), -EINVAL);
    assert_int_equal(pvabi_flexring_open(&h, d, 16, pr, co, 3), -EINVAL);
    assert_null(h);
    assert_int_equal(pvabi_flexring_read(p.w, buf, 1), -EINVAL);
    assert_int_equal(pvabi_flexring_write(p.r, "a", 1), -EINVAL);
    assert_int_equal(pvabi_flexring_write(p.w, NULL, 1), -EINVAL);
    assert_int_equal(pvabi_flexring_read(p.r, NULL, 1), -EINVAL);
    assert_int_equal(pvabi_flexring_write(p.w, NULL, 0), 0);
    assert_int_equal(pvabi_flexring_read(p.r, NULL, 0), 0);
    assert_int_equal(pvabi_flexring_write(NULL, "a", 1), -EINVAL);
    assert_int_equal(pvabi_flexring_read(NULL, buf, 1), -EINVAL);
    assert_int_equal(pvabi_flexring_used(NULL), -EINVAL);
    assert_int_equal(pvabi_flexring_space(NULL), -EINVAL);
    assert_int_equal(pvabi_flexring_broken(NULL), -EINVAL);
    pvabi_flexring_close(NULL);
    /* Bad arguments are the caller's mistake, not the peer's: the ring still works. */
    assert_int_equal(pvabi_flexring_broken(p.r), 0);
    assert_int_equal(pvabi_flexring_write(p.w, "a", 1), 1);
    pair_close(&p);
}

/* errno belongs to the caller: no call sets it, success or failure. */
static void test_flexring_leaves_errno_alone(void **state)
{
    struct pair p;
    pvabi_flexring *h = NULL;
    char buf[4];

    (void)state;
    pair_open(&p, 16, 0);
    errno = 12345;
    assert_int_equal(pvabi_flexring_open(&h, p.shm.data, 3, p.shm.prod, p.shm.cons, 1), -EINVAL);
    assert_int_equal(pvabi_flexring_write(p.w, "ab", 2), 2);
    assert_int_equal(pvabi_flexring_read(p.r, buf, 4), 2);
    *p.shm.prod = 77;
    assert_int_equal(pvabi_flexring_read(p.r, buf, 4), -EPROTO);
    assert_int_equal(errno, 12345);
    pair_close(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flexring_roundtrip),
        cmocka_unit_test(test_flexring_wraps_across_u32),
        cmocka_unit_test(test_flexring_partial_write_when_full),
        cmocka_unit_test(test_flexring_full_ring_stays_in_bounds),
        cmocka_unit_test(test_flexring_size_one),
        cmocka_unit_test(test_flexring_counts),
        cmocka_unit_test(test_flexring_open_continues_from_indices),
        cmocka_unit_test(test_flexring_open_inconsistent_is_broken),
        cmocka_unit_test(test_flexring_hostile_prod_ahead),
        cmocka_unit_test(test_flexring_hostile_prod_backwards),
        cmocka_unit_test(test_flexring_hostile_prod_behind_cons),
        cmocka_unit_test(test_flexring_hostile_cons_past_prod),
        cmocka_unit_test(test_flexring_hostile_cons_backwards),
        cmocka_unit_test(test_flexring_broken_is_sticky),
        cmocka_unit_test(test_flexring_ignores_scribbled_own_index),
        cmocka_unit_test(test_flexring_rejects_bad_args),
        cmocka_unit_test(test_flexring_leaves_errno_alone),
    };

    return cmocka_run_group_tests_name("flexring", tests, NULL, NULL);
}
