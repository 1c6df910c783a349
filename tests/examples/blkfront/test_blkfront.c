/* SPDX-License-Identifier: MIT */
/*
 * test_blkfront.c - the blkfront library against H1's blkback ($BLKBACK),
 * each test on its own pvabi-hv with a scratch image: round trips checked
 * in the image file itself, many requests in flight, indirect requests,
 * persistent grants on and off, unaligned byte ranges, flush, discard, a
 * read-only device, and data safety across a backend killed with SIGKILL
 * in the middle of a stream of writes and restarted.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bf-pattern.h"
#include "bft.h"
#include "itest.h"

#define MIB (1024u * 1024u)

static struct bft T;

static int setup(void **state)
{
    (void)state;
    bft_setup(&T, 16 * MIB);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    bft_teardown(&T);
    return 0;
}

/* Device, backend, frontend: the usual start of a test. */
static struct blkfront *start(const char *mode, const char *const *bb_args,
                              const struct blkfront_opts *opts)
{
    bft_add_device(&T, pvabi_own_domid(T.fe), mode);
    bft_blkback_start(&T, bb_args);
    return bft_open(&T, opts);
}

static void pattern_write(struct blkfront *bf, uint64_t off, size_t len, uint64_t seed)
{
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    bf_pattern_fill(buf, off, len, seed);
    assert_int_equal(blkfront_pwrite(bf, buf, len, off), 0);
    free(buf);
}

static void pattern_read_check(struct blkfront *bf, uint64_t off, size_t len, uint64_t seed)
{
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    memset(buf, 0xee, len);
    assert_int_equal(blkfront_pread(bf, buf, len, off), 0);
    assert_int_equal(bf_pattern_check(buf, off, len, seed), -1);
    free(buf);
}

static void test_blkfront_roundtrip_in_image(void **state)
{
    (void)state;
    struct blkfront *bf = start("w", NULL, NULL);
    const struct blkfront_info *in = blkfront_info(bf);

    assert_int_equal(blkfront_size(bf), 16 * MIB);
    assert_int_equal(in->sector_size, 512);
    assert_false(in->readonly);
    assert_true(in->flush);
    assert_true(in->persistent);
    assert_int_equal(in->ring_order, 4);
    pattern_write(bf, 3 * MIB, MIB, 7);
    pattern_read_check(bf, 3 * MIB, MIB, 7);
    assert_int_equal(bft_image_check(&T, 3 * MIB, MIB, 7), -1);
    assert_int_equal(blkfront_close(bf), 0);
}

/* 128 operations submitted before any completion: all in flight at once
 * on a 16-page ring; each completes exactly once. */
static void test_blkfront_many_in_flight(void **state)
{
    (void)state;
    enum { N = 128, LEN = 8192 };
    struct blkfront *bf = start("w", NULL, NULL);
    static uint8_t bufs[N][LEN];
    int seen[N] = { 0 };
    struct blkfront_done d[N];

    for (unsigned i = 0; i < N; i++) {
        uint64_t off = (uint64_t)((i * 37) % N) * 3 * LEN; /* scattered, distinct */
        bf_pattern_fill(bufs[i], off, LEN, 11);
        assert_int_equal(blkfront_submit(bf, BLKFRONT_WRITE, off, LEN, bufs[i], i), 0);
    }
    assert_int_equal(blkfront_inflight(bf), N);
    for (unsigned got = 0; got < N;) {
        int n = blkfront_complete(bf, d, N, 10000);
        assert_true(n > 0);
        for (int k = 0; k < n; k++) {
            assert_true(d[k].tag < N);
            assert_int_equal(d[k].status, 0);
            assert_int_equal(seen[d[k].tag]++, 0);
        }
        got += (unsigned)n;
    }
    assert_int_equal(blkfront_inflight(bf), 0);
    assert_int_equal(blkfront_complete(bf, d, N, 0), 0);
    for (unsigned i = 0; i < N; i++) {
        uint64_t off = (uint64_t)((i * 37) % N) * 3 * LEN;
        assert_int_equal(bft_image_check(&T, off, LEN, 11), -1);
    }
    /* Reads in flight the same way, into separate buffers. */
    memset(bufs, 0, sizeof(bufs));
    for (unsigned i = 0; i < N; i++) {
        uint64_t off = (uint64_t)((i * 37) % N) * 3 * LEN;
        assert_int_equal(blkfront_submit(bf, BLKFRONT_READ, off, LEN, bufs[i], i), 0);
    }
    for (unsigned got = 0; got < N;) {
        int n = blkfront_complete(bf, d, N, 10000);
        assert_true(n > 0);
        for (int k = 0; k < n; k++)
            assert_int_equal(d[k].status, 0);
        got += (unsigned)n;
    }
    for (unsigned i = 0; i < N; i++) {
        uint64_t off = (uint64_t)((i * 37) % N) * 3 * LEN;
        assert_int_equal(bf_pattern_check(bufs[i], off, LEN, 11), -1);
    }
    assert_int_equal(blkfront_close(bf), 0);
}

/* One async operation of @len bytes at @off on @buf; its status. */
static int one_op(struct blkfront *bf, int op, uint64_t off, size_t len, void *buf)
{
    struct blkfront_done d;

    int rc = blkfront_submit(bf, op, off, len, buf, 77);
    if (rc < 0)
        return rc;
    assert_int_equal(blkfront_complete(bf, &d, 1, 10000), 1);
    assert_int_equal(d.tag, 77);
    return d.status;
}

/*
 * Fixed buffers: 200 pages in two chunks (128 + 72), a 16-page pool.  A
 * 256 KiB operation in a chunk needs no pool page (it would be -E2BIG
 * through the pool), writes land in the image and reads in place; an
 * unaligned one goes wholly through the pool; and the chunks are what
 * blkfront_fixed_buffer() says.
 */
static void test_blkfront_fixed_buffers_in_place(void **state)
{
    (void)state;
    struct blkfront_opts o;
    size_t len0, len1, len2;

    blkfront_opts_init(&o);
    o.pool_pages = 16;
    o.fixed_pages = 200;
    struct blkfront *bf = start("w", NULL, &o);
    uint8_t *c0 = blkfront_fixed_buffer(bf, 0, &len0), *c1 = blkfront_fixed_buffer(bf, 1, &len1);
    assert_non_null(c0);
    assert_non_null(c1);
    assert_int_equal(len0, 128 * 4096);
    assert_int_equal(len1, 72 * 4096);
    assert_null(blkfront_fixed_buffer(bf, 2, &len2));
    assert_int_equal(len2, 0);

    bf_pattern_fill(c0, MIB, 64 * 4096, 21);
    assert_int_equal(one_op(bf, BLKFRONT_WRITE, MIB, 64 * 4096, c0), 0);
    assert_int_equal(bft_image_check(&T, MIB, 64 * 4096, 21), -1);
    memset(c1, 0, len1);
    assert_int_equal(one_op(bf, BLKFRONT_READ, MIB, 64 * 4096, c1), 0);
    assert_int_equal(bf_pattern_check(c1, MIB, 64 * 4096, 21), -1);
    /* Through the pool, the same size can never fit. */
    uint8_t *heap = malloc(64 * 4096);
    assert_non_null(heap);
    assert_int_equal(blkfront_submit(bf, BLKFRONT_READ, MIB, 64 * 4096, heap, 1), -E2BIG);
    free(heap);
    /* An unaligned buffer inside a chunk: copied through the pool, still right. */
    bft_image_fill(&T, 3 * MIB, 8 * 4096, 23);
    memset(c1, 0, len1);
    assert_int_equal(one_op(bf, BLKFRONT_READ, 3 * MIB, 8 * 4096, c1 + 512), 0);
    assert_int_equal(bf_pattern_check(c1 + 512, 3 * MIB, 8 * 4096, 23), -1);
    struct blkfront_stats st;
    blkfront_stats(bf, &st);
    assert_int_equal(st.bytes_read, 64 * 4096 + 8 * 4096);
    assert_int_equal(blkfront_close(bf), 0);
}

/* 1 MiB (256 pages) in one operation: one indirect request of 256
 * segments; without indirect, 24 requests of at most 11. */
static void io_requests(struct blkfront *bf, uint64_t *requests, uint64_t *indirect)
{
    struct blkfront_stats a, b;
    blkfront_stats(bf, &a);
    pattern_write(bf, 5 * MIB, MIB, 3);
    blkfront_stats(bf, &b);
    *requests = b.requests - a.requests;
    *indirect = b.indirect - a.indirect;
    pattern_read_check(bf, 5 * MIB, MIB, 3);
    assert_int_equal(bft_image_check(&T, 5 * MIB, MIB, 3), -1);
}

static void test_blkfront_indirect_big_requests(void **state)
{
    (void)state;
    uint64_t req, ind;
    struct blkfront *bf = start("w", NULL, NULL);

    assert_true(blkfront_info(bf)->indirect);
    assert_int_equal(blkfront_info(bf)->max_segments, 256);
    io_requests(bf, &req, &ind);
    assert_int_equal(req, 1);
    assert_int_equal(ind, 1);
    /* 1 MiB + 12 KiB async: 256 segments indirect, the 3-page tail direct. */
    enum { LEN = 1024 * 1024 + 12288 };
    uint8_t *buf = malloc(LEN);
    struct blkfront_stats a, b;
    struct blkfront_done d;
    bf_pattern_fill(buf, 8 * MIB, LEN, 12);
    blkfront_stats(bf, &a);
    assert_int_equal(blkfront_submit(bf, BLKFRONT_WRITE, 8 * MIB, LEN, buf, 5), 0);
    assert_int_equal(blkfront_complete(bf, &d, 1, 10000), 1);
    assert_int_equal(d.status, 0);
    blkfront_stats(bf, &b);
    assert_int_equal(b.requests - a.requests, 2);
    assert_int_equal(b.indirect - a.indirect, 1);
    assert_int_equal(bft_image_check(&T, 8 * MIB, LEN, 12), -1);
    free(buf);
    assert_int_equal(blkfront_close(bf), 0);
}

static void test_blkfront_no_indirect(void **state)
{
    (void)state;
    uint64_t req, ind;
    struct blkfront_opts o;
    blkfront_opts_init(&o);
    o.max_indirect = 0;
    struct blkfront *bf = start("w", NULL, &o);

    assert_false(blkfront_info(bf)->indirect);
    io_requests(bf, &req, &ind);
    assert_int_equal(req, 24);
    assert_int_equal(ind, 0);
    assert_int_equal(blkfront_close(bf), 0);
}

static void test_blkfront_persistent_off_by_frontend(void **state)
{
    (void)state;
    uint64_t req, ind;
    struct blkfront_opts o;
    blkfront_opts_init(&o);
    o.persistent = 0;
    o.ring_order = 0;
    struct blkfront *bf = start("w", NULL, &o);

    assert_false(blkfront_info(bf)->persistent);
    assert_int_equal(blkfront_info(bf)->ring_order, 0);
    io_requests(bf, &req, &ind);
    assert_int_equal(blkfront_close(bf), 0);
}

static void test_blkfront_persistent_off_by_backend(void **state)
{
    (void)state;
    uint64_t req, ind;
    const char *args[] = { "--no-persistent", "--max-ring-order", "1", NULL };
    struct blkfront *bf = start("w", args, NULL);

    assert_false(blkfront_info(bf)->persistent);
    assert_int_equal(blkfront_info(bf)->ring_order, 1);
    io_requests(bf, &req, &ind);
    assert_int_equal(blkfront_close(bf), 0);
}

/* Byte ranges of every alignment, against a model of the disk. */
static void test_blkfront_unaligned_pread_pwrite(void **state)
{
    (void)state;
    static const struct {
        uint64_t off;
        size_t len;
    } w[] = { { 1000, 3000 },  { 4095, 2 },     { 511, 1 },
              { 8191, 70000 }, { 100000, 512 }, { 300001, 4096 * 3 + 5 } };
    enum { AREA = 512 * 1024 };
    uint8_t *model = malloc(AREA), *got = malloc(AREA);
    struct blkfront *bf = start("w", NULL, NULL);

    bft_image_fill(&T, 0, AREA, 5);
    bf_pattern_fill(model, 0, AREA, 5);
    for (unsigned i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
        uint8_t *src = malloc(w[i].len);
        bf_pattern_fill(src, w[i].off, w[i].len, 100 + i);
        assert_int_equal(blkfront_pwrite(bf, src, w[i].len, w[i].off), 0);
        memcpy(model + w[i].off, src, w[i].len);
        free(src);
        /* An unaligned read of the same range, and one a byte wider. */
        uint8_t *back = malloc(w[i].len + 2);
        assert_int_equal(blkfront_pread(bf, back, w[i].len, w[i].off), 0);
        assert_memory_equal(back, model + w[i].off, w[i].len);
        assert_int_equal(blkfront_pread(bf, back, w[i].len + 2, w[i].off - 1), 0);
        assert_memory_equal(back, model + w[i].off - 1, w[i].len + 2);
        free(back);
    }
    assert_int_equal(pread(T.img_fd, got, AREA, 0), AREA);
    assert_memory_equal(got, model, AREA);
    /* The last byte of the disk, and past it. */
    assert_int_equal(blkfront_pwrite(bf, "z", 1, 16 * MIB - 1), 0);
    assert_int_equal(blkfront_pwrite(bf, "zz", 2, 16 * MIB - 1), -EINVAL);
    assert_int_equal(blkfront_pread(bf, got, 1, 16 * MIB), -EINVAL);
    /* The async API insists on sector alignment. */
    assert_int_equal(blkfront_submit(bf, BLKFRONT_READ, 1, 512, got, 0), -EINVAL);
    assert_int_equal(blkfront_submit(bf, BLKFRONT_READ, 512, 100, got, 0), -EINVAL);
    assert_int_equal(blkfront_close(bf), 0);
    free(model);
    free(got);
}

static void test_blkfront_flush_and_discard_reads_zeros(void **state)
{
    (void)state;
    struct blkfront *bf = start("w", NULL, NULL);
    uint8_t *buf = malloc(256 * 1024);

    assert_true(blkfront_info(bf)->discard);
    pattern_write(bf, MIB, 256 * 1024, 9);
    assert_int_equal(blkfront_flush(bf), 0);
    assert_int_equal(bft_image_check(&T, MIB, 256 * 1024, 9), -1);
    assert_int_equal(blkfront_discard(bf, MIB + 64 * 1024, 128 * 1024), 0);
    assert_int_equal(blkfront_pread(bf, buf, 256 * 1024, MIB), 0);
    assert_int_equal(bf_pattern_check(buf, MIB, 64 * 1024, 9), -1);
    for (unsigned i = 64 * 1024; i < 192 * 1024; i++)
        assert_int_equal(buf[i], 0);
    assert_int_equal(bf_pattern_check(buf + 192 * 1024, MIB + 192 * 1024, 64 * 1024, 9), -1);
    /* The image keeps its size. */
    struct stat st;
    assert_int_equal(fstat(T.img_fd, &st), 0);
    assert_int_equal(st.st_size, 16 * MIB);
    /* An async flush completes like any other operation. */
    struct blkfront_done d;
    assert_int_equal(blkfront_submit(bf, BLKFRONT_FLUSH, 0, 0, NULL, 77), 0);
    assert_int_equal(blkfront_complete(bf, &d, 1, 10000), 1);
    assert_int_equal(d.tag, 77);
    assert_int_equal(d.status, 0);
    assert_int_equal(blkfront_close(bf), 0);
    free(buf);
}

static void test_blkfront_readonly_refuses_writes(void **state)
{
    (void)state;
    uint8_t buf[4096];
    bft_image_fill(&T, 0, 64 * 1024, 4);
    struct blkfront *bf = start("r", NULL, NULL);
    struct blkfront_stats a, b;

    assert_true(blkfront_readonly(bf));
    blkfront_stats(bf, &a);
    assert_int_equal(blkfront_pwrite(bf, buf, sizeof(buf), 0), -EROFS);
    assert_int_equal(blkfront_submit(bf, BLKFRONT_WRITE, 0, sizeof(buf), buf, 1), -EROFS);
    assert_int_equal(blkfront_discard(bf, 0, 4096), -EROFS);
    blkfront_stats(bf, &b);
    assert_int_equal(a.requests, b.requests); /* nothing reached the ring */
    pattern_read_check(bf, 0, 64 * 1024, 4);
    assert_int_equal(blkfront_close(bf), 0);
}

/* ---- data safety across a backend killed mid-stream ------------------------ */

#define STREAM_OPS   400
#define STREAM_DEPTH 48
#define STREAM_LEN   (16 * 1024)

struct stream {
    struct blkfront *bf;
    uint8_t *bufs;
    int done[STREAM_OPS];
    unsigned submitted, completed, inflight;
};

static uint64_t stream_off(unsigned i)
{
    return (uint64_t)i * STREAM_LEN; /* 400 * 16 KiB = 6.25 MiB */
}

static void stream_submit(struct stream *s)
{
    while (s->submitted < STREAM_OPS && s->inflight < STREAM_DEPTH) {
        unsigned i = s->submitted;
        uint8_t *b = s->bufs + (size_t)i * STREAM_LEN;
        bf_pattern_fill(b, stream_off(i), STREAM_LEN, 21);
        int rc = blkfront_submit(s->bf, BLKFRONT_WRITE, stream_off(i), STREAM_LEN, b, i);
        if (rc == -EAGAIN)
            return;
        assert_int_equal(rc, 0);
        s->submitted++;
        s->inflight++;
    }
}

/* Completes what arrives within @ms; checks each once and OKAY. */
static unsigned stream_collect(struct stream *s, int ms)
{
    struct blkfront_done d[64];
    int n = blkfront_complete(s->bf, d, 64, ms);

    assert_true(n >= 0);
    for (int k = 0; k < n; k++) {
        assert_true(d[k].tag < STREAM_OPS);
        assert_int_equal(d[k].status, 0);
        assert_int_equal(s->done[d[k].tag]++, 0); /* never twice */
        /* Acknowledged: it must be in the image file right now. */
        assert_int_equal(bft_image_check(&T, stream_off(d[k].tag), STREAM_LEN, 21), -1);
    }
    s->completed += (unsigned)n;
    s->inflight -= (unsigned)n;
    return (unsigned)n;
}

static void test_blkfront_backend_killed_mid_stream_loses_nothing(void **state)
{
    (void)state;
    struct stream s = { 0 };
    s.bufs = malloc((size_t)STREAM_OPS * STREAM_LEN);
    s.bf = start("w", NULL, NULL);

    /* Kill twice, each time with requests in flight. */
    for (int round = 0; round < 2; round++) {
        unsigned target = (round + 1) * STREAM_OPS / 3;
        while (s.completed < target) {
            stream_submit(&s);
            assert_true(stream_collect(&s, 10000) > 0);
        }
        stream_submit(&s);
        assert_true(s.inflight > 0);
        int st = bft_backend_stop(&T, SIGKILL);
        assert_true(WIFSIGNALED(st));
        /* Every write acknowledged so far is in the file. */
        for (unsigned i = 0; i < STREAM_OPS; i++)
            if (s.done[i])
                assert_int_equal(bft_image_check(&T, stream_off(i), STREAM_LEN, 21), -1);
        /* While it is gone: what it did not answer stays pending, and
         * submitting more is fine. */
        stream_collect(&s, 200);
        stream_submit(&s);
        bft_blkback_start(&T, NULL);
    }
    while (s.completed < STREAM_OPS) {
        stream_submit(&s);
        assert_true(stream_collect(&s, 15000) > 0);
    }
    struct blkfront_stats st;
    blkfront_stats(s.bf, &st);
    assert_true(st.reconnects >= 1);
    assert_int_equal(bft_image_check(&T, 0, (uint64_t)STREAM_OPS * STREAM_LEN, 21), -1);
    assert_int_equal(blkfront_close(s.bf), 0);
    free(s.bufs);
}

/* A frontend that closed comes back in the same domain. */
static void test_blkfront_close_and_reopen(void **state)
{
    (void)state;
    struct blkfront *bf = start("w", NULL, NULL);
    pattern_write(bf, 0, 8192, 1);
    assert_int_equal(blkfront_close(bf), 0);
    bft_add_device(&T, pvabi_own_domid(T.fe), "w");
    bf = bft_open(&T, NULL);
    pattern_read_check(bf, 0, 8192, 1);
    assert_int_equal(blkfront_close(bf), 0);
}

#define BF_TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        BF_TEST(test_blkfront_roundtrip_in_image),
        BF_TEST(test_blkfront_many_in_flight),
        BF_TEST(test_blkfront_fixed_buffers_in_place),
        BF_TEST(test_blkfront_indirect_big_requests),
        BF_TEST(test_blkfront_no_indirect),
        BF_TEST(test_blkfront_persistent_off_by_frontend),
        BF_TEST(test_blkfront_persistent_off_by_backend),
        BF_TEST(test_blkfront_unaligned_pread_pwrite),
        BF_TEST(test_blkfront_flush_and_discard_reads_zeros),
        BF_TEST(test_blkfront_readonly_refuses_writes),
        BF_TEST(test_blkfront_backend_killed_mid_stream_loses_nothing),
        BF_TEST(test_blkfront_close_and_reopen),
    };

    if (!bft_blkback_path()) {
        fprintf(stderr, "SKIP: $BLKBACK (the blkback daemon) is not set\n");
        return 77;
    }
    return it_run_tests("blkfront", tests);
}
