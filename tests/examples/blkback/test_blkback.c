/* SPDX-License-Identifier: MIT */
/*
 * blkback's integration tests: the daemon ($BLKBACK) as domain 0 on a
 * private pvabi-hv per test, and raw frontends (tfront.c) in this process
 * that put exactly the requests a test wants on the ring, checked against
 * the image file read directly.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "blkback.h"
#include "fault_store.h"
#include "itest.h"
#include "tfront.h"

#define IMG_SECTORS 4096u /* 2 MiB */
#define IMG_BYTES   ((uint64_t)IMG_SECTORS * 512)
#define NF          3

static struct fixture {
    struct tf_back bk;
    struct tf f[NF];
    char img[NF][64];
} T;

static int setup(void **state)
{
    memset(&T, 0, sizeof(T));
    return it_setup(state);
}

static int teardown(void **state)
{
    int st = 0;

    if (T.bk.pid > 0)
        st = tf_back_stop(&T.bk, SIGTERM);
    for (int i = 0; i < NF; i++) {
        if (T.f[i].ctx)
            tf_close(&T.f[i]);
        if (T.img[i][0])
            unlink(T.img[i]);
    }
    tf_toolstack_close();
    it_teardown(state);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char how[64];
        it_describe_status(st, how, sizeof(how));
        fail_msg("blkback did not exit cleanly on SIGTERM: %s", how);
    }
    return 0;
}

#define BB_TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

/* Image i with a pattern, frontend i added on it, blkback running with @args. */
static struct tf *start_dev(int i, unsigned devid, const char *mode, unsigned order, int persistent)
{
    struct tf *f = &T.f[i];

    if (!T.img[i][0])
        tf_image(T.img[i], sizeof(T.img[i]), IMG_BYTES, 100 + (unsigned)i);
    tf_domain(f);
    tf_add(f, devid, T.img[i], mode);
    assert_int_equal(tf_connect(f, order, persistent), 0);
    return f;
}

static void start_back(const char *const *args)
{
    tf_back_start(&T.bk, args);
}

/* Reads @len bytes of image @i at @off. */
static void file_read(int i, uint64_t off, void *buf, size_t len)
{
    int fd = open(T.img[i], O_RDONLY);

    assert_true(fd >= 0);
    assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
    close(fd);
}

/* Fills pool page @p with seed @seed. */
static void fill_page(struct tf *f, unsigned p, unsigned seed)
{
    for (size_t i = 0; i < 4096; i++)
        tf_page(f, p)[i] = it_pattern(seed, i);
}

/* ---- data path ---------------------------------------------------------- */

/* Writes 11 segments of varying sector ranges, reads them back through the
 * ring, and compares with the file read directly. */
static void roundtrip(struct tf *f, int img)
{
    struct tf_seg segs[11];
    uint64_t sector = 123, nsect = 0;
    uint8_t file[11 * 4096];

    for (unsigned i = 0; i < 11; i++) {
        segs[i] = (struct tf_seg){ i, (uint8_t)(i % 3), (uint8_t)(7 - i % 2) };
        fill_page(f, i, 7 + i);
    }
    assert_int_equal(tf_rw(f, PVBLK_OP_WRITE, sector, segs, 11, 1), PVBLK_RSP_OKAY);
    file_read(img, sector * 512, file, sizeof(file));
    for (unsigned i = 0; i < 11; i++) {
        size_t n = (size_t)(segs[i].last - segs[i].first + 1) * 512;
        assert_memory_equal(file + nsect * 512, tf_page(f, i) + segs[i].first * 512, n);
        nsect += n / 512;
    }
    /* Read back into other pages; bytes outside the segments stay as they were. */
    for (unsigned i = 0; i < 11; i++) {
        memset(tf_page(f, 20 + i), 0xEE, 4096);
        segs[i].page = 20 + i;
    }
    assert_int_equal(tf_rw(f, PVBLK_OP_READ, sector, segs, 11, 2), PVBLK_RSP_OKAY);
    nsect = 0;
    for (unsigned i = 0; i < 11; i++) {
        uint8_t *p = tf_page(f, 20 + i);
        size_t a = segs[i].first * 512u, n = (size_t)(segs[i].last - segs[i].first + 1) * 512;
        assert_memory_equal(p + a, file + nsect * 512, n);
        for (size_t k = 0; k < 4096; k++)
            if (k < a || k >= a + n)
                assert_int_equal(p[k], 0xEE);
        nsect += n / 512;
    }
}

static void test_blkback_roundtrip_copy_one_page_ring(void **state)
{
    (void)state;
    start_back((const char *[]){ "--grants", "copy", NULL });
    roundtrip(start_dev(0, 51712, "w", 0, 0), 0);
}

static void test_blkback_roundtrip_map_sixteen_page_ring(void **state)
{
    (void)state;
    start_back((const char *[]){ "--grants", "map", NULL });
    struct tf *f = start_dev(0, 51712, "w", 4, 0);
    roundtrip(f, 0);
}

static void test_blkback_roundtrip_persistent(void **state)
{
    (void)state;
    start_back(NULL);
    roundtrip(start_dev(0, 51712, "w", 2, 1), 0);
}

/* Segments of one full page each, pool pages @p0.., in ring order. */
static void full_segs(struct tf_seg *segs, unsigned n, unsigned p0)
{
    for (unsigned i = 0; i < n; i++)
        segs[i] = (struct tf_seg){ p0 + i, 0, 7 };
}

/* An indirect WRITE of @n full pages at sector 8 (answered WRITE, checked by
 * tf_call), then an indirect READ of them back. */
static void indirect_roundtrip(struct tf *f, int img, unsigned n)
{
    uint8_t *file = malloc((size_t)n * 4096);
    struct pvblk_request r;
    struct pvblk_response rsp;

    assert_non_null(file);
    for (unsigned i = 0; i < n; i++)
        fill_page(f, i, 1000 + i);
    assert_int_equal(tf_indirect(f, PVBLK_OP_WRITE, 8, n, 77), PVBLK_RSP_OKAY);
    file_read(img, 8 * 512, file, (size_t)n * 4096);
    for (unsigned i = 0; i < n; i++)
        assert_memory_equal(file + (size_t)i * 4096, tf_page(f, i), 4096);
    for (unsigned i = 0; i < n; i++)
        memset(tf_page(f, i), 0, 4096);
    /* Answered with the inner operation, READ, not INDIRECT: Linux's
     * blkfront disables the disk on "response has wrong operation". */
    tf_build_indirect(f, &r, PVBLK_OP_READ, 8, n, 78);
    tf_push(f, &r);
    assert_int_equal(tf_pop(f, &rsp, TF_TIMEOUT_MS), 0);
    assert_int_equal(rsp.id, 78);
    assert_int_equal(rsp.operation, PVBLK_OP_READ);
    assert_int_equal(rsp.status, PVBLK_RSP_OKAY);
    for (unsigned i = 0; i < n; i++)
        assert_memory_equal(file + (size_t)i * 4096, tf_page(f, i), 4096);
    free(file);
}

static void test_blkback_indirect_256_segments_copy(void **state)
{
    (void)state;
    start_back((const char *[]){ "--grants", "copy", NULL });
    struct tf *f = start_dev(0, 51712, "w", 0, 0);
    assert_int_equal(tf_back_node(f, "feature-max-indirect-segments"), 256);
    indirect_roundtrip(f, 0, 256);
}

static void test_blkback_indirect_256_segments_persistent(void **state)
{
    (void)state;
    start_back(NULL);
    indirect_roundtrip(start_dev(0, 51712, "w", 4, 1), 0, 256);
}

static void test_blkback_indirect_256_segments_map(void **state)
{
    (void)state;
    start_back((const char *[]){ "--grants", "map", NULL });
    indirect_roundtrip(start_dev(0, 51712, "w", 1, 0), 0, 256);
}

/*
 * 4096 segments in one request (--max-indirect 4096): more than IOV_MAX
 * (1024) iovecs, which one preadv / pwritev refuses with EINVAL, so the
 * request used to get ERROR.  Pool pages repeat (segment i is page
 * i % TF_POOL): the write is checked in the file, segment by segment; the
 * read leaves in each page what its last segment read, which comes from the
 * last 1024-segment chunk, so a chunk at a wrong offset shows.
 */
static void indirect_4096(int persistent)
{
    const unsigned n = 4096;
    uint8_t *file = malloc((size_t)n * 4096 + 8 * 512);
    struct pvblk_request r;
    struct pvblk_response rsp;

    assert_non_null(file);
    start_back((const char *[]){ "--max-indirect", "4096", NULL });
    tf_image(T.img[0], sizeof(T.img[0]), (uint64_t)n * 4096 + 8 * 512, 100);
    struct tf *f = start_dev(0, 51712, "w", 0, persistent);
    assert_int_equal(tf_back_node(f, "feature-max-indirect-segments"), 4096);
    for (unsigned p = 0; p < TF_POOL; p++)
        fill_page(f, p, 3000 + p);
    assert_int_equal(tf_indirect(f, PVBLK_OP_WRITE, 8, n, 1), PVBLK_RSP_OKAY);
    file_read(0, 8 * 512, file, (size_t)n * 4096);
    for (unsigned i = 0; i < n; i++)
        assert_memory_equal(file + (size_t)i * 4096, tf_page(f, i % TF_POOL), 4096);
    /* The image ahead of the write is untouched. */
    for (unsigned p = 0; p < TF_POOL; p++)
        memset(tf_page(f, p), 0, 4096);
    file_read(0, 0, file, (size_t)n * 4096 + 8 * 512);
    for (size_t i = 0; i < 8 * 512; i++)
        assert_int_equal(file[i], it_pattern(100, i));
    tf_build_indirect(f, &r, PVBLK_OP_READ, 8, n, 2);
    tf_push(f, &r);
    assert_int_equal(tf_pop(f, &rsp, TF_TIMEOUT_MS), 0);
    assert_int_equal(rsp.operation, PVBLK_OP_READ);
    assert_int_equal(rsp.status, PVBLK_RSP_OKAY);
    for (unsigned i = n - TF_POOL; i < n; i++)
        assert_memory_equal(tf_page(f, i % TF_POOL), file + 8 * 512 + (size_t)i * 4096, 4096);
    free(file);
}

static void test_blkback_indirect_4096_segments_beyond_iov_max_copy(void **state)
{
    (void)state;
    indirect_4096(0);
}

static void test_blkback_indirect_4096_segments_beyond_iov_max_persistent(void **state)
{
    (void)state;
    indirect_4096(1);
}

static void test_blkback_features_advertised(void **state)
{
    (void)state;
    start_back((const char *[]){ "--max-ring-order", "2", "--max-indirect", "64", NULL });
    struct tf *f = start_dev(0, 51712, "w", 2, 1);
    assert_int_equal(tf_back_node(f, "sectors"), IMG_SECTORS);
    assert_int_equal(tf_back_node(f, "sector-size"), 512);
    assert_int_equal(tf_back_node(f, "info"), 0);
    assert_int_equal(tf_back_node(f, "max-ring-page-order"), 2);
    assert_int_equal(tf_back_node(f, "feature-max-indirect-segments"), 64);
    assert_int_equal(tf_back_node(f, "feature-persistent"), 1);
    assert_int_equal(tf_back_node(f, "feature-flush-cache"), 1);
    assert_int_equal(tf_back_node(f, "feature-barrier"), 1);
    assert_int_equal(tf_back_node(f, "feature-discard"), 1);
    assert_int_equal(tf_back_node(f, "discard-granularity"), 4096);
    /* 65 segments: above what was advertised. */
    assert_int_equal(tf_indirect(f, PVBLK_OP_READ, 0, 65, 5), PVBLK_RSP_ERROR);
    assert_int_equal(tf_indirect(f, PVBLK_OP_READ, 0, 64, 6), PVBLK_RSP_OKAY);
}

static void test_blkback_flush_and_barrier(void **state)
{
    struct tf_seg seg = { 3, 0, 7 };
    struct pvblk_request r;
    uint8_t file[4096];

    (void)state;
    start_back(NULL);
    struct tf *f = start_dev(0, 51712, "w", 0, 0);
    tf_build(f, &r, PVBLK_OP_FLUSH_DISKCACHE, 0, NULL, 0, 9);
    assert_int_equal(tf_call(f, &r, 9), PVBLK_RSP_OKAY);
    tf_build(f, &r, PVBLK_OP_WRITE_BARRIER, 0, NULL, 0, 10);
    assert_int_equal(tf_call(f, &r, 10), PVBLK_RSP_OKAY);
    fill_page(f, 3, 55);
    assert_int_equal(tf_rw(f, PVBLK_OP_WRITE_BARRIER, 40, &seg, 1, 11), PVBLK_RSP_OKAY);
    file_read(0, 40 * 512, file, 4096);
    assert_memory_equal(file, tf_page(f, 3), 4096);
}

/*
 * A flush or barrier without segments moves no data, so its sector_number
 * means nothing (Linux's blkfront may leave (sector_t)-1 there): OKAY
 * whatever it says, and so for a discard of 0 sectors.  It used to be
 * range-checked as [sector, sector + 0) and answered ERROR.
 */
static void test_blkback_empty_flush_any_sector(void **state)
{
    static const uint64_t sectors[] = { UINT64_MAX, IMG_SECTORS + 1, (uint64_t)1 << 63 };
    struct pvblk_request r;
    struct pvblk_request_discard *dr = (struct pvblk_request_discard *)(void *)&r;
    struct tf_seg seg = { 3, 0, 7 };
    uint64_t id = 1, h0, h1;

    (void)state;
    start_back(NULL);
    struct tf *f = start_dev(0, 51712, "w", 0, 1);
    h0 = tf_file_hash(T.img[0], NULL);
    for (size_t i = 0; i < sizeof(sectors) / sizeof(sectors[0]); i++, id += 3) {
        tf_build(f, &r, PVBLK_OP_FLUSH_DISKCACHE, sectors[i], NULL, 0, id);
        assert_int_equal(tf_call(f, &r, id), PVBLK_RSP_OKAY);
        tf_build(f, &r, PVBLK_OP_WRITE_BARRIER, sectors[i], NULL, 0, id + 1);
        assert_int_equal(tf_call(f, &r, id + 1), PVBLK_RSP_OKAY);
        memset(&r, 0, sizeof(r));
        dr->operation = PVBLK_OP_DISCARD;
        dr->id = id + 2;
        dr->sector_number = sectors[i];
        assert_int_equal(tf_call(f, &r, id + 2), PVBLK_RSP_OKAY);
    }
    h1 = tf_file_hash(T.img[0], NULL);
    assert_true(h0 == h1);
    /* With data, the range still counts. */
    assert_int_equal(tf_rw(f, PVBLK_OP_WRITE_BARRIER, UINT64_MAX, &seg, 1, 100), PVBLK_RSP_ERROR);
    assert_int_equal(tf_rw(f, PVBLK_OP_FLUSH_DISKCACHE, IMG_SECTORS, &seg, 1, 101),
                     PVBLK_RSP_ERROR);
}

static void test_blkback_discard_zeroes_range_only(void **state)
{
    struct pvblk_request r;
    struct pvblk_request_discard *dr = (struct pvblk_request_discard *)(void *)&r;
    uint8_t *before = malloc(IMG_BYTES), *after = malloc(IMG_BYTES);
    uint64_t size;

    (void)state;
    start_back(NULL);
    struct tf *f = start_dev(0, 51712, "w", 0, 0);
    file_read(0, 0, before, IMG_BYTES);
    memset(&r, 0, sizeof(r));
    dr->operation = PVBLK_OP_DISCARD;
    dr->id = 21;
    dr->sector_number = 16;
    dr->nr_sectors = 24;
    assert_int_equal(tf_call(f, &r, 21), PVBLK_RSP_OKAY);
    tf_file_hash(T.img[0], &size);
    assert_int_equal(size, IMG_BYTES);
    file_read(0, 0, after, IMG_BYTES);
    assert_memory_equal(after, before, 16 * 512);
    for (size_t i = 16 * 512; i < 40 * 512; i++)
        assert_int_equal(after[i], 0);
    assert_memory_equal(after + 40 * 512, before + 40 * 512, IMG_BYTES - 40 * 512);
    free(before);
    free(after);
}

/* Puts @n requests on the ring with one notification: one batch. */
static void push_batch(struct tf *f, const struct pvblk_request *reqs, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        *pvblk_front_next_req(&f->fr) = reqs[i];
    if (pvblk_front_publish(&f->fr) == 1)
        pvabi_evtchn_notify(f->ctx, f->port);
}

/*
 * One batch: WRITE 0..8, DISCARD 0..8, READ 0..8; WRITE 16..24, FLUSH,
 * READ 16..24.  blkif orders nothing between requests in flight together
 * except around flushes and barriers, and blkback also completes what came
 * before a DISCARD first: the discard must not be undone by the write
 * queued before it (with io_uring both writes and the reads go in one
 * submission), and the reads after them see their results.
 */
static void batch_ordered_around_discard_and_flush(const char *io)
{
    struct pvblk_request reqs[6];
    struct pvblk_request_discard *dr = (struct pvblk_request_discard *)(void *)&reqs[1];
    struct pvblk_response rsp;
    uint8_t file[4096];

    start_back((const char *[]){ "--io", io, NULL });
    struct tf *f = start_dev(0, 51712, "w", 2, 0);
    fill_page(f, 0, 31);
    fill_page(f, 1, 32);
    memset(tf_page(f, 2), 0xEE, 4096);
    memset(tf_page(f, 3), 0xEE, 4096);
    tf_build(f, &reqs[0], PVBLK_OP_WRITE, 0, &(struct tf_seg){ 0, 0, 7 }, 1, 0);
    memset(&reqs[1], 0, sizeof(reqs[1]));
    dr->operation = PVBLK_OP_DISCARD;
    dr->id = 1;
    dr->sector_number = 0;
    dr->nr_sectors = 8;
    tf_build(f, &reqs[2], PVBLK_OP_READ, 0, &(struct tf_seg){ 2, 0, 7 }, 1, 2);
    tf_build(f, &reqs[3], PVBLK_OP_WRITE, 16, &(struct tf_seg){ 1, 0, 7 }, 1, 3);
    tf_build(f, &reqs[4], PVBLK_OP_FLUSH_DISKCACHE, 0, NULL, 0, 4);
    tf_build(f, &reqs[5], PVBLK_OP_READ, 16, &(struct tf_seg){ 3, 0, 7 }, 1, 5);
    push_batch(f, reqs, 6);
    for (uint64_t id = 0; id < 6; id++) {
        assert_int_equal(tf_pop(f, &rsp, TF_TIMEOUT_MS), 0);
        assert_int_equal(rsp.id, id);
        assert_int_equal(rsp.status, PVBLK_RSP_OKAY);
    }
    for (size_t i = 0; i < 4096; i++)
        assert_int_equal(tf_page(f, 2)[i], 0);
    assert_memory_equal(tf_page(f, 3), tf_page(f, 1), 4096);
    file_read(0, 0, file, 4096);
    for (size_t i = 0; i < 4096; i++)
        assert_int_equal(file[i], 0);
    file_read(0, 16 * 512, file, 4096);
    assert_memory_equal(file, tf_page(f, 1), 4096);
}

static void check_serves(struct tf *f, int img, uint64_t id);

/* The image shrinks under a connected device (someone truncates it): a
 * read across or past the new end is short, and answered ERROR, in one
 * batch with a read before the end that still succeeds. */
static void image_shrunk(const char *io)
{
    struct pvblk_request reqs[3];
    struct pvblk_response rsp;
    const int16_t want[3] = { PVBLK_RSP_OKAY, PVBLK_RSP_ERROR, PVBLK_RSP_ERROR };

    start_back((const char *[]){ "--io", io, NULL });
    struct tf *f = start_dev(0, 51712, "w", 0, 0);
    assert_int_equal(truncate(T.img[0], 64 * 512 + 1024), 0);
    tf_build(f, &reqs[0], PVBLK_OP_READ, 0, &(struct tf_seg){ 0, 0, 7 }, 1, 0);
    tf_build(f, &reqs[1], PVBLK_OP_READ, 64, &(struct tf_seg){ 1, 0, 7 }, 1, 1);
    tf_build(f, &reqs[2], PVBLK_OP_READ, 200, &(struct tf_seg){ 2, 0, 7 }, 1, 2);
    push_batch(f, reqs, 3);
    for (uint64_t id = 0; id < 3; id++) {
        assert_int_equal(tf_pop(f, &rsp, TF_TIMEOUT_MS), 0);
        assert_int_equal(rsp.id, id);
        assert_int_equal(rsp.status, want[id]);
    }
    check_serves(f, 0, 5);
}

static void test_blkback_image_shrunk_io_uring(void **state)
{
    (void)state;
    image_shrunk("uring");
}

static void test_blkback_image_shrunk_io_sync(void **state)
{
    (void)state;
    image_shrunk("sync");
}

static void test_blkback_batch_ordered_io_uring(void **state)
{
    (void)state;
    batch_ordered_around_discard_and_flush("uring");
}

static void test_blkback_batch_ordered_io_sync(void **state)
{
    (void)state;
    batch_ordered_around_discard_and_flush("sync");
}

static void test_blkback_roundtrip_io_sync(void **state)
{
    (void)state;
    start_back((const char *[]){ "--io", "sync", NULL });
    roundtrip(start_dev(0, 51712, "w", 2, 1), 0);
}

static void test_blkback_readonly_refuses_writes(void **state)
{
    struct tf_seg seg = { 0, 0, 7 };
    struct pvblk_request r;
    struct pvblk_request_discard *dr = (struct pvblk_request_discard *)(void *)&r;
    uint64_t h0, h1, s0, s1;
    uint8_t file[4096];

    (void)state;
    start_back(NULL);
    tf_image(T.img[0], sizeof(T.img[0]), IMG_BYTES, 100);
    chmod(T.img[0], 0444);
    struct tf *f = start_dev(0, 51712, "r", 0, 1);
    h0 = tf_file_hash(T.img[0], &s0);
    assert_int_equal(tf_back_node(f, "info"), PVBLK_VDISK_READONLY);
    assert_int_equal(tf_back_node(f, "feature-discard"), -1);
    fill_page(f, 0, 3);
    assert_int_equal(tf_rw(f, PVBLK_OP_WRITE, 0, &seg, 1, 1), PVBLK_RSP_ERROR);
    assert_int_equal(tf_rw(f, PVBLK_OP_WRITE_BARRIER, 0, &seg, 1, 2), PVBLK_RSP_ERROR);
    assert_int_equal(tf_rw(f, PVBLK_OP_FLUSH_DISKCACHE, 0, &seg, 1, 2), PVBLK_RSP_ERROR);
    assert_int_equal(tf_indirect(f, PVBLK_OP_WRITE, 0, 4, 3), PVBLK_RSP_ERROR);
    /* Without data, a barrier is a flush: both allowed (the barrier used to
     * be refused as a write). */
    tf_build(f, &r, PVBLK_OP_FLUSH_DISKCACHE, 0, NULL, 0, 6);
    assert_int_equal(tf_call(f, &r, 6), PVBLK_RSP_OKAY);
    tf_build(f, &r, PVBLK_OP_WRITE_BARRIER, 0, NULL, 0, 7);
    assert_int_equal(tf_call(f, &r, 7), PVBLK_RSP_OKAY);
    memset(&r, 0, sizeof(r));
    dr->operation = PVBLK_OP_DISCARD;
    dr->id = 4;
    dr->nr_sectors = 8;
    assert_int_equal(tf_call(f, &r, 4), PVBLK_RSP_EOPNOTSUPP);
    h1 = tf_file_hash(T.img[0], &s1);
    assert_true(h0 == h1 && s0 == s1);
    assert_int_equal(tf_rw(f, PVBLK_OP_READ, 8, &seg, 1, 5), PVBLK_RSP_OKAY);
    file_read(0, 8 * 512, file, 4096);
    assert_memory_equal(file, tf_page(f, 0), 4096);
}

/* ---- hostile requests ------------------------------------------------------ */

enum { K_DIRECT, K_INDIRECT, K_DISCARD };

struct bad_case {
    const char *what;
    int kind;
    uint8_t op;          /* operation (direct), indirect_op, or unused */
    unsigned nseg;       /* nr_segments */
    uint64_t sector;     /* sector_number */
    uint64_t nr_sectors; /* discard */
    uint8_t first, last; /* every segment's (direct) / descriptor 1's (indirect) */
    int gref;            /* 0 pool page, 1 bogus gref, 2 read-only page, 3 bogus indirect page */
    int16_t status;
};

static const struct bad_case bad_cases[] = {
    { "unknown op 4", K_DIRECT, 4, 1, 0, 0, 0, 7, 0, PVBLK_RSP_EOPNOTSUPP },
    { "unknown op 200", K_DIRECT, 200, 1, 0, 0, 0, 7, 0, PVBLK_RSP_EOPNOTSUPP },
    { "read of 0 segments", K_DIRECT, PVBLK_OP_READ, 0, 0, 0, 0, 7, 0, PVBLK_RSP_ERROR },
    { "write of 0 segments", K_DIRECT, PVBLK_OP_WRITE, 0, 0, 0, 0, 7, 0, PVBLK_RSP_ERROR },
    { "write of 12 segments", K_DIRECT, PVBLK_OP_WRITE, 12, 0, 0, 0, 7, 0, PVBLK_RSP_ERROR },
    { "write of 255 segments", K_DIRECT, PVBLK_OP_WRITE, 255, 0, 0, 0, 7, 0, PVBLK_RSP_ERROR },
    { "write first > last", K_DIRECT, PVBLK_OP_WRITE, 2, 0, 0, 5, 4, 0, PVBLK_RSP_ERROR },
    { "write last > 7", K_DIRECT, PVBLK_OP_WRITE, 2, 0, 0, 0, 8, 0, PVBLK_RSP_ERROR },
    { "read last = 255", K_DIRECT, PVBLK_OP_READ, 1, 0, 0, 0, 255, 0, PVBLK_RSP_ERROR },
    { "write across the end", K_DIRECT, PVBLK_OP_WRITE, 1, IMG_SECTORS - 4, 0, 0, 7, 0,
      PVBLK_RSP_ERROR },
    { "write at the end", K_DIRECT, PVBLK_OP_WRITE, 1, IMG_SECTORS, 0, 0, 0, 0, PVBLK_RSP_ERROR },
    { "write sector + length overflows", K_DIRECT, PVBLK_OP_WRITE, 2, UINT64_MAX - 3, 0, 0, 7, 0,
      PVBLK_RSP_ERROR },
    { "barrier sector + length overflows", K_DIRECT, PVBLK_OP_WRITE_BARRIER, 1, UINT64_MAX, 0, 0, 7,
      0, PVBLK_RSP_ERROR },
    { "write of a bogus gref", K_DIRECT, PVBLK_OP_WRITE, 3, 0, 0, 0, 7, 1, PVBLK_RSP_ERROR },
    { "read into a bogus gref", K_DIRECT, PVBLK_OP_READ, 3, 0, 0, 0, 7, 1, PVBLK_RSP_ERROR },
    { "read into a read-only grant", K_DIRECT, PVBLK_OP_READ, 1, 0, 0, 0, 7, 2, PVBLK_RSP_ERROR },
    { "indirect of 0 segments", K_INDIRECT, PVBLK_OP_WRITE, 0, 0, 0, 0, 7, 0, PVBLK_RSP_ERROR },
    { "indirect above the maximum", K_INDIRECT, PVBLK_OP_WRITE, 257, 0, 0, 0, 7, 0,
      PVBLK_RSP_ERROR },
    { "indirect of 65535 segments", K_INDIRECT, PVBLK_OP_WRITE, 65535, 0, 0, 0, 7, 0,
      PVBLK_RSP_ERROR },
    { "indirect_op flush", K_INDIRECT, PVBLK_OP_FLUSH_DISKCACHE, 4, 0, 0, 0, 7, 0,
      PVBLK_RSP_EOPNOTSUPP },
    { "indirect_op indirect", K_INDIRECT, PVBLK_OP_INDIRECT, 4, 0, 0, 0, 7, 0,
      PVBLK_RSP_EOPNOTSUPP },
    { "indirect descriptor first > last", K_INDIRECT, PVBLK_OP_WRITE, 8, 0, 0, 6, 2, 0,
      PVBLK_RSP_ERROR },
    { "indirect descriptor last > 7", K_INDIRECT, PVBLK_OP_WRITE, 8, 0, 0, 0, 9, 0,
      PVBLK_RSP_ERROR },
    { "indirect across the end", K_INDIRECT, PVBLK_OP_WRITE, 8, IMG_SECTORS - 60, 0, 0, 7, 0,
      PVBLK_RSP_ERROR },
    { "indirect with a bogus descriptor page", K_INDIRECT, PVBLK_OP_WRITE, 8, 0, 0, 0, 7, 3,
      PVBLK_RSP_ERROR },
    { "indirect write of a bogus gref", K_INDIRECT, PVBLK_OP_WRITE, 8, 0, 0, 0, 7, 1,
      PVBLK_RSP_ERROR },
    { "discard across the end", K_DISCARD, 0, 0, IMG_SECTORS - 8, 9, 0, 0, 0, PVBLK_RSP_ERROR },
    { "discard overflowing", K_DISCARD, 0, 0, 8, UINT64_MAX - 2, 0, 0, 0, PVBLK_RSP_ERROR },
    { "discard past the end", K_DISCARD, 0, 0, UINT64_MAX, 1, 0, 0, 0, PVBLK_RSP_ERROR },
};

static pvabi_gref case_gref(struct tf *f, const struct bad_case *c, unsigned i)
{
    if (c->gref == 1)
        return 0x00fffff0u + i;
    if (c->gref == 2)
        return pvabi_grant_ref(f->ro, 0);
    return tf_gref(f, i % TF_POOL);
}

static void build_bad_indirect(struct tf *f, const struct bad_case *c, struct pvblk_request *r)
{
    struct pvblk_request_indirect *ir = (struct pvblk_request_indirect *)(void *)r;
    struct pvblk_segment *d = pvabi_grant_addr(f->ind);

    ir->operation = PVBLK_OP_INDIRECT;
    ir->indirect_op = c->op;
    ir->nr_segments = (uint16_t)c->nseg;
    ir->sector_number = c->sector;
    for (unsigned i = 0; i < 8 * 512; i++)
        d[i] = (struct pvblk_segment){ case_gref(f, c, i), 0, 7, { 0 } };
    d[1].first_sect = c->first;
    d[1].last_sect = c->last;
    for (unsigned p = 0; p < 8; p++)
        ir->indirect_grefs[p] = c->gref == 3 ? 0x00ffff00u + p : pvabi_grant_ref(f->ind, p);
}

static void build_bad(struct tf *f, const struct bad_case *c, struct pvblk_request *r, uint64_t id)
{
    memset(r, 0, sizeof(*r));
    if (c->kind == K_INDIRECT) {
        build_bad_indirect(f, c, r);
    } else if (c->kind == K_DISCARD) {
        struct pvblk_request_discard *dr = (struct pvblk_request_discard *)(void *)r;
        dr->operation = PVBLK_OP_DISCARD;
        dr->sector_number = c->sector;
        dr->nr_sectors = c->nr_sectors;
    } else {
        r->operation = c->op;
        r->nr_segments = (uint8_t)c->nseg;
        r->sector_number = c->sector;
        for (unsigned i = 0; i < PVBLK_MAX_SEGMENTS_PER_REQUEST; i++)
            r->seg[i] = (struct pvblk_segment){ case_gref(f, c, i), c->first, c->last, { 0 } };
    }
    r->id = id;
}

/* Every bad request gets its status; the image is byte for byte the same;
 * the device still serves afterwards. */
static void hostile(const char *const *args, int persistent)
{
    struct tf_seg seg = { 5, 0, 7 };
    uint64_t h0, h1, s0, s1;
    uint8_t file[4096];

    start_back(args);
    struct tf *f = start_dev(0, 51712, "w", 0, persistent);
    for (unsigned p = 0; p < TF_POOL; p++)
        memset(tf_page(f, p), 0xA5, 4096); /* not the image's pattern */
    h0 = tf_file_hash(T.img[0], &s0);
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        struct pvblk_request r;
        print_message("case: %s\n", bad_cases[i].what);
        build_bad(f, &bad_cases[i], &r, 1000 + i);
        assert_int_equal(tf_call(f, &r, 1000 + i), bad_cases[i].status);
        h1 = tf_file_hash(T.img[0], &s1);
        assert_true(h0 == h1);
        assert_int_equal(s0, s1);
    }
    assert_int_equal(tf_rw(f, PVBLK_OP_READ, 0, &seg, 1, 1), PVBLK_RSP_OKAY);
    file_read(0, 0, file, 4096);
    assert_memory_equal(file, tf_page(f, 5), 4096);
    assert_int_equal(tf_back_state(f), PVABI_XENBUS_STATE_CONNECTED);
}

static void test_blkback_hostile_requests_copy(void **state)
{
    (void)state;
    hostile((const char *[]){ "--grants", "copy", NULL }, 0);
}

static void test_blkback_hostile_requests_map(void **state)
{
    (void)state;
    hostile((const char *[]){ "--grants", "map", NULL }, 0);
}

static void test_blkback_hostile_requests_persistent(void **state)
{
    (void)state;
    hostile(NULL, 1);
}

static void test_blkback_hostile_requests_io_sync(void **state)
{
    (void)state;
    hostile((const char *[]){ "--io", "sync", NULL }, 1);
}

/* A second device of another frontend: keeps answering while @f misbehaves. */
static void check_serves(struct tf *f, int img, uint64_t id)
{
    struct tf_seg seg = { 9, 2, 5 };
    uint8_t file[2048];

    memset(tf_page(f, 9), 0, 4096);
    assert_int_equal(tf_rw(f, PVBLK_OP_READ, id % 1000, &seg, 1, id), PVBLK_RSP_OKAY);
    file_read(img, (id % 1000) * 512, file, sizeof(file));
    assert_memory_equal(file, tf_page(f, 9) + 1024, sizeof(file));
}

static void test_blkback_broken_ring_disconnects_that_device_only(void **state)
{
    (void)state;
    start_back(NULL);
    struct tf *f = start_dev(0, 51712, "w", 0, 0);
    struct tf *g = start_dev(1, 51728, "w", 1, 1);
    struct pvblk_shared *sh = pvabi_grant_addr(f->ring);

    check_serves(f, 0, 1);
    check_serves(g, 1, 2);
    /* The producer index jumps far beyond the ring: a lie. */
    __atomic_store_n(&sh->req_prod, sh->req_prod + 100000, __ATOMIC_RELEASE);
    pvabi_evtchn_notify(f->ctx, f->port);
    assert_int_equal(tf_wait_back_state(f, PVABI_XENBUS_STATE_CLOSED, TF_TIMEOUT_MS), 0);
    for (uint64_t id = 3; id < 20; id++)
        check_serves(g, 1, id);
    assert_true(tf_back_alive(&T.bk));
}

static void test_blkback_two_devices_concurrently(void **state)
{
    struct tf_seg segs[4];
    struct pvblk_request r;
    struct pvblk_response rsp;

    (void)state;
    start_back(NULL);
    struct tf *f[2] = { start_dev(0, 51712, "w", 2, 1), start_dev(1, 51712, "w", 0, 0) };
    for (unsigned round = 0; round < 20; round++) {
        for (unsigned k = 0; k < 2; k++) {
            for (unsigned q = 0; q < 8; q++) {
                full_segs(segs, 4, q * 4);
                for (unsigned s = 0; s < 4; s++)
                    fill_page(f[k], q * 4 + s, round * 100 + q * 4 + s + k);
                tf_build(f[k], &r, PVBLK_OP_WRITE, ((round % 4) * 8 + q) * 32, segs, 4, q);
                tf_push(f[k], &r);
            }
        }
        for (unsigned k = 0; k < 2; k++) {
            for (unsigned q = 0; q < 8; q++) {
                assert_int_equal(tf_pop(f[k], &rsp, TF_TIMEOUT_MS), 0);
                assert_int_equal(rsp.id, q);
                assert_int_equal(rsp.status, PVBLK_RSP_OKAY);
            }
        }
    }
    for (unsigned k = 0; k < 2; k++) {
        uint8_t file[4096];
        file_read((int)k, (3 * 8 + 7) * 32 * 512, file, 4096);
        assert_memory_equal(file, tf_page(f[k], 28), 4096);
    }
}

static void test_blkback_device_removed_while_running(void **state)
{
    (void)state;
    start_back(NULL);
    struct tf *f = start_dev(0, 51712, "w", 0, 0);
    struct tf *g = start_dev(1, 51712, "w", 0, 1);

    check_serves(f, 0, 1);
    assert_int_equal(pvabi_xenbus_device_remove(tf_toolstack(), "vbd", f->domid, 0, 51712), 0);
    check_serves(g, 1, 2);
    /* Added again, the same frontend is served again. */
    pvabi_xenbus_front_close(f->xf);
    f->xf = NULL;
    tf_add(f, 51712, T.img[0], "w");
    assert_int_equal(tf_connect(f, 0, 0), 0);
    check_serves(f, 0, 3);
    check_serves(g, 1, 4);
}

/* The toolstack step for @f's device again while blkback serves it (the
 * directories are removed and re-created in one transaction). */
static void readd(struct tf *f, int img)
{
    tf_add(f, f->devid, T.img[img], "w");
}

/* blkback has opened @f's device: its InitWait is in the store. */
static void wait_initwait(struct tf *f)
{
    assert_int_equal(tf_wait_back_state(f, PVABI_XENBUS_STATE_INITWAIT, TF_TIMEOUT_MS), 0);
}

/* The bug report: add, add (blkback already waits in InitWait on the first
 * directory), then the frontend: it must see InitWait and be served. */
static void test_blkback_readded_twice_before_frontend(void **state)
{
    (void)state;
    start_back(NULL);
    tf_image(T.img[0], sizeof(T.img[0]), IMG_BYTES, 100);
    struct tf *f = &T.f[0];
    tf_domain(f);
    tf_add(f, 51712, T.img[0], "w");
    wait_initwait(f);
    readd(f, 0);
    assert_int_equal(tf_connect(f, 0, 1), 0);
    check_serves(f, 0, 1);
}

/* add, add, add (each seen by blkback) and add, remove, add: served. */
static void test_blkback_readded_any_sequence_served(void **state)
{
    (void)state;
    start_back(NULL);
    tf_image(T.img[0], sizeof(T.img[0]), IMG_BYTES, 100);
    tf_image(T.img[1], sizeof(T.img[1]), IMG_BYTES, 101);
    struct tf *f = &T.f[0], *g = &T.f[1];
    tf_domain(f);
    tf_domain(g);
    tf_add(f, 51712, T.img[0], "w");
    for (int i = 0; i < 2; i++) {
        wait_initwait(f);
        readd(f, 0);
    }
    tf_add(g, 51728, T.img[1], "w");
    wait_initwait(g);
    assert_int_equal(pvabi_xenbus_device_remove(tf_toolstack(), "vbd", g->domid, 0, 51728), 0);
    readd(g, 1);
    assert_int_equal(tf_connect(f, 2, 0), 0);
    assert_int_equal(tf_connect(g, 0, 1), 0);
    check_serves(f, 0, 1);
    check_serves(g, 1, 2);
}

/* Re-added while a frontend is connected: a frontend that starts over is
 * served, from the image the new directory names. */
static void test_blkback_readded_while_connected(void **state)
{
    (void)state;
    start_back(NULL);
    tf_image(T.img[1], sizeof(T.img[1]), IMG_BYTES, 101);
    struct tf *f = start_dev(0, 51712, "w", 1, 1);
    check_serves(f, 0, 1);
    readd(f, 0);
    pvabi_xenbus_front_close(f->xf);
    f->xf = NULL;
    assert_int_equal(tf_connect(f, 0, 1), 0);
    check_serves(f, 0, 2);
    /* Again, now pointing at another image: that one is served. */
    readd(f, 1);
    pvabi_xenbus_front_close(f->xf);
    f->xf = NULL;
    assert_int_equal(tf_connect(f, 0, 0), 0);
    check_serves(f, 1, 3);
}

static void test_blkback_frontend_dies_mid_request(void **state)
{
    struct tf_seg seg = { 1, 0, 7 };
    struct pvblk_request r;
    char dom[16];

    (void)state;
    start_back(NULL);
    struct tf *f = start_dev(0, 51712, "w", 0, 1);
    struct tf *g = start_dev(1, 51712, "w", 0, 0);
    check_serves(f, 0, 1);
    /* Requests in flight, then the frontend's domain goes away. */
    for (uint64_t id = 0; id < 8; id++) {
        tf_build(f, &r, PVBLK_OP_WRITE, id * 8, &seg, 1, id);
        tf_push(f, &r);
    }
    pvabi_domid d = f->domid;
    tf_close(f);
    check_serves(g, 1, 2);
    /* It comes back as the same domain: served again. */
    snprintf(dom, sizeof(dom), "%u", d);
    setenv("PVABI_LOCAL_DOMID", dom, 1);
    tf_domain(f);
    unsetenv("PVABI_LOCAL_DOMID");
    assert_int_equal(f->domid, d);
    tf_add(f, 51712, T.img[0], "w");
    assert_int_equal(tf_connect(f, 1, 1), 0);
    check_serves(f, 0, 3);
    check_serves(g, 1, 4);
    assert_true(tf_back_alive(&T.bk));
}

/* SIGKILL with requests on the ring unanswered: the next blkback answers each once. */
static void test_blkback_killed_restarted_answers_once(void **state)
{
    struct tf_seg segs[2];
    struct pvblk_request r;
    struct pvblk_response rsp;
    uint8_t file[8192];

    (void)state;
    start_back(NULL);
    struct tf *f = start_dev(0, 51712, "w", 1, 1);
    check_serves(f, 0, 1);
    kill(T.bk.pid, SIGSTOP); /* it takes nothing more off the ring */
    for (uint64_t id = 10; id < 30; id++) {
        full_segs(segs, 2, (unsigned)(id * 2));
        fill_page(f, (unsigned)(id * 2), (unsigned)id);
        fill_page(f, (unsigned)(id * 2 + 1), (unsigned)id + 500);
        tf_build(f, &r, PVBLK_OP_WRITE, id * 16, segs, 2, id);
        tf_push(f, &r);
    }
    assert_true(WIFSIGNALED(tf_back_stop(&T.bk, SIGKILL)));
    start_back(NULL);
    for (uint64_t id = 10; id < 30; id++) {
        assert_int_equal(tf_pop(f, &rsp, TF_TIMEOUT_MS), 0);
        assert_int_equal(rsp.id, id);
        assert_int_equal(rsp.status, PVBLK_RSP_OKAY);
        file_read(0, id * 16 * 512, file, sizeof(file));
        assert_memory_equal(file, tf_page(f, (unsigned)(id * 2)), 8192);
    }
    /* Nothing answered twice: the next response is the next request's. */
    check_serves(f, 0, 31);
}

static void test_blkback_online_0_closes_device(void **state)
{
    char path[128];

    (void)state;
    start_back(NULL);
    struct tf *f = start_dev(0, 51712, "w", 0, 1);
    struct tf *g = start_dev(1, 51728, "w", 0, 0);
    check_serves(f, 0, 1);
    snprintf(path, sizeof(path), "/local/domain/0/backend/vbd/%u/51712/online", f->domid);
    assert_int_equal(pvabi_store_write(tf_toolstack(), PVABI_STORE_TXN_NONE, path, "0"), 0);
    assert_int_equal(tf_wait_back_state(f, PVABI_XENBUS_STATE_CLOSED, TF_TIMEOUT_MS), 0);
    check_serves(g, 1, 2);
}

/* online=0 closes the device; online=1 afterwards opens it again (InitWait):
 * a frontend that starts over is served.  It used to stay closed. */
static void test_blkback_online_1_after_0_reopens_device(void **state)
{
    char path[128];

    (void)state;
    start_back(NULL);
    struct tf *f = start_dev(0, 51712, "w", 0, 1);
    check_serves(f, 0, 1);
    snprintf(path, sizeof(path), "/local/domain/0/backend/vbd/%u/51712/online", f->domid);
    assert_int_equal(pvabi_store_write(tf_toolstack(), PVABI_STORE_TXN_NONE, path, "0"), 0);
    assert_int_equal(tf_wait_back_state(f, PVABI_XENBUS_STATE_CLOSED, TF_TIMEOUT_MS), 0);
    pvabi_xenbus_front_close(f->xf);
    f->xf = NULL;
    assert_int_equal(pvabi_store_write(tf_toolstack(), PVABI_STORE_TXN_NONE, path, "1"), 0);
    assert_int_equal(tf_wait_back_state(f, PVABI_XENBUS_STATE_INITWAIT, TF_TIMEOUT_MS), 0);
    assert_int_equal(tf_connect(f, 1, 0), 0);
    check_serves(f, 0, 2);
}

/*
 * max_persistent sizes the persistent cache's table (a power of two, twice
 * it): an unbounded value made that computation wrap and loop forever at
 * the first device.  Refused above BLKBACK_MAX_PERSISTENT, as is a spin
 * above BLKBACK_MAX_SPIN_US.
 */
static void test_blkback_options_bounded(void **state)
{
    struct blkback_opts o;
    struct blkback *b = NULL;

    (void)state;
    blkback_opts_default(&o);
    o.max_persistent = UINT32_MAX;
    assert_int_equal(blkback_create(tf_toolstack(), &o, &b), -EINVAL);
    assert_null(b);
    o.max_persistent = BLKBACK_MAX_PERSISTENT + 1;
    assert_int_equal(blkback_create(tf_toolstack(), &o, &b), -EINVAL);
    o.max_persistent = BLKBACK_MAX_PERSISTENT;
    assert_int_equal(blkback_create(tf_toolstack(), &o, &b), 0);
    blkback_destroy(b);
    b = NULL;
    o.spin_us = BLKBACK_MAX_SPIN_US + 1;
    assert_int_equal(blkback_create(tf_toolstack(), &o, &b), -EINVAL);
    o.spin_us = 0;
    assert_int_equal(blkback_create(tf_toolstack(), &o, &b), 0);
    blkback_destroy(b);
}

/* ---- a store listing that fails (blkback_faulty) --------------------------- */

static void on_node(pvabi_ctx *ctx, const char *path, void *opaque)
{
    (void)ctx, (void)path, (void)opaque;
}

/* Waits (on a watch, with the timeout) until blkback_faulty failed @n listings. */
static void wait_failures(uint32_t n)
{
    pvabi_ctx *ts = tf_toolstack();
    pvabi_watch *w;
    uint32_t v = 0;
    struct timespec t0, t;
    long waited = 0;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(pvabi_store_watch(ts, FAULT_COUNT, on_node, NULL, &w), 0);
    while ((pvabi_store_read_u32(ts, PVABI_STORE_TXN_NONE, FAULT_COUNT, &v) < 0 || v < n) &&
           waited < TF_TIMEOUT_MS) {
        pvabi_store_wait(ts, TF_TIMEOUT_MS - (int)waited);
        clock_gettime(CLOCK_MONOTONIC, &t);
        waited = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
    }
    pvabi_store_unwatch(w);
    assert_true(v >= n);
}

static void fail_listing(const char *path)
{
    pvabi_ctx *ts = tf_toolstack();

    if (path)
        assert_int_equal(pvabi_store_write(ts, PVABI_STORE_TXN_NONE, FAULT_PATH, path), 0);
    else
        assert_int_equal(pvabi_store_rm(ts, PVABI_STORE_TXN_NONE, FAULT_PATH), 0);
}

/*
 * A rescan whose listing fails (the store's error, not the directory being
 * absent) knows nothing about what exists: the devices are kept and the
 * rescan is tried again.  It used to drop every device (or every device of
 * the frontend whose listing failed) and not look again until the next
 * store event.
 */
static void test_blkback_failed_listing_keeps_devices(void **state)
{
    char path[96];

    (void)state;
    tf_back_start_env(&T.bk, "BLKBACK_FAULTY", NULL);
    struct tf *f = start_dev(0, 51712, "w", 0, 1);
    check_serves(f, 0, 1);
    /* The backend directory cannot be listed while a device is added. */
    fail_listing("/local/domain/0/backend/vbd");
    tf_image(T.img[1], sizeof(T.img[1]), IMG_BYTES, 101);
    struct tf *g = &T.f[1];
    tf_domain(g);
    tf_add(g, 51728, T.img[1], "w");
    wait_failures(1);
    check_serves(f, 0, 2);
    /* Listing works again: the retry finds the new device. */
    fail_listing(NULL);
    assert_int_equal(tf_connect(g, 0, 0), 0);
    check_serves(g, 1, 3);
    /* One frontend's directory cannot be listed while another device is added. */
    uint32_t before = 0;
    assert_int_equal(
        pvabi_store_read_u32(tf_toolstack(), PVABI_STORE_TXN_NONE, FAULT_COUNT, &before), 0);
    snprintf(path, sizeof(path), "/local/domain/0/backend/vbd/%u", g->domid);
    fail_listing(path);
    tf_image(T.img[2], sizeof(T.img[2]), IMG_BYTES, 102);
    struct tf *h = &T.f[2];
    tf_domain(h);
    tf_add(h, 51712, T.img[2], "w");
    wait_failures(before + 1);
    assert_int_equal(tf_connect(h, 0, 1), 0);
    check_serves(g, 1, 4);
    check_serves(f, 0, 5);
    check_serves(h, 2, 6);
    fail_listing(NULL);
    check_serves(g, 1, 7);
}

/* ---- killed while serving a long queue ------------------------------------ */

#define KQ_REQS 180u /* 11 one-sector segments each: 1980 distinct (page, sector) */

/* Unit u (segment j of request id: u = id * 11 + j) is sector u / TF_POOL of
 * pool page u % TF_POOL, written to disk sector u: every sector of the
 * queue carries different data. */
static const uint8_t *kq_data(struct tf *f, unsigned u)
{
    return tf_page(f, u % TF_POOL) + (u / TF_POOL) * 512;
}

static void kq_check(struct tf *f, uint64_t id)
{
    uint8_t file[11 * 512];

    file_read(0, id * 11 * 512, file, sizeof(file));
    for (unsigned j = 0; j < 11; j++)
        assert_memory_equal(file + j * 512, kq_data(f, (unsigned)id * 11 + j), 512);
}

/* Takes a response, checks it is the next id, OKAY, and in the image. */
static void kq_answer(struct tf *f, const struct pvblk_response *rsp, uint64_t *next)
{
    assert_int_equal(rsp->id, *next);
    assert_int_equal(rsp->operation, PVBLK_OP_WRITE);
    assert_int_equal(rsp->status, PVBLK_RSP_OKAY);
    kq_check(f, *next);
    (*next)++;
}

/*
 * SIGKILL while a long queue is being served (grant copy: tens of ms), after
 * the first response: requests consumed but not answered, written but not
 * published.  Every response seen before the kill is in the image already;
 * the next blkback answers the rest, each id exactly once, in order.
 */
static void test_blkback_killed_mid_queue_answers_each_once(void **state)
{
    struct tf_seg segs[11];
    struct pvblk_request r;
    struct pvblk_response rsp;
    uint64_t next = 0;

    (void)state;
    start_back(NULL);
    struct tf *f = start_dev(0, 51712, "w", 4, 0);
    for (unsigned p = 0; p < TF_POOL; p++)
        fill_page(f, p, 4000 + p);
    for (uint64_t id = 0; id < KQ_REQS; id++) {
        for (unsigned j = 0; j < 11; j++) {
            unsigned u = (unsigned)id * 11 + j;
            segs[j] =
                (struct tf_seg){ u % TF_POOL, (uint8_t)(u / TF_POOL), (uint8_t)(u / TF_POOL) };
        }
        tf_build(f, &r, PVBLK_OP_WRITE, id * 11, segs, 11, id);
        *pvblk_front_next_req(&f->fr) = r;
    }
    if (pvblk_front_publish(&f->fr) == 1)
        pvabi_evtchn_notify(f->ctx, f->port);
    assert_int_equal(tf_pop(f, &rsp, TF_TIMEOUT_MS), 0);
    assert_true(WIFSIGNALED(tf_back_stop(&T.bk, SIGKILL)));
    kq_answer(f, &rsp, &next);
    /* What was published before the kill (the dead never publishes again). */
    while (tf_pop(f, &rsp, 0) == 0)
        kq_answer(f, &rsp, &next);
    print_message("answered before the kill: %llu of %u\n", (unsigned long long)next, KQ_REQS);
    start_back(NULL);
    while (next < KQ_REQS) {
        assert_int_equal(tf_pop(f, &rsp, TF_TIMEOUT_MS), 0);
        kq_answer(f, &rsp, &next);
    }
    /* Nothing answered twice: the next response is the next request's. */
    check_serves(f, 0, 1000);
    assert_int_equal(tf_pop(f, &rsp, 0), -ETIMEDOUT);
}

/* --once: the frontend's close handshake of the last device ends the daemon (exit 0). */
static void test_blkback_once_exits_after_last_close(void **state)
{
    int st;

    (void)state;
    start_back((const char *[]){ "--once", NULL });
    struct tf *f = start_dev(0, 51712, "w", 0, 1);
    check_serves(f, 0, 1);
    assert_int_equal(pvabi_xenbus_front_disconnect(f->xf), 0);
    assert_int_equal(pvabi_xenbus_front_wait(f->xf, PVABI_XENBUS_EV_CLOSED, TF_TIMEOUT_MS), 0);
    /* The backend unmapped everything before Closed: the pool can be revoked. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pvabi_grant_revoke(f->pool[i]), 0);
        f->pool[i] = NULL;
    }
    st = it_reap(T.bk.pid, T.bk.pidfd, "blkback --once");
    T.bk.pid = 0;
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        BB_TEST(test_blkback_roundtrip_copy_one_page_ring),
        BB_TEST(test_blkback_roundtrip_map_sixteen_page_ring),
        BB_TEST(test_blkback_roundtrip_persistent),
        BB_TEST(test_blkback_indirect_256_segments_copy),
        BB_TEST(test_blkback_indirect_256_segments_persistent),
        BB_TEST(test_blkback_indirect_256_segments_map),
        BB_TEST(test_blkback_indirect_4096_segments_beyond_iov_max_copy),
        BB_TEST(test_blkback_indirect_4096_segments_beyond_iov_max_persistent),
        BB_TEST(test_blkback_features_advertised),
        BB_TEST(test_blkback_flush_and_barrier),
        BB_TEST(test_blkback_empty_flush_any_sector),
        BB_TEST(test_blkback_discard_zeroes_range_only),
        BB_TEST(test_blkback_batch_ordered_io_uring),
        BB_TEST(test_blkback_image_shrunk_io_uring),
        BB_TEST(test_blkback_image_shrunk_io_sync),
        BB_TEST(test_blkback_batch_ordered_io_sync),
        BB_TEST(test_blkback_roundtrip_io_sync),
        BB_TEST(test_blkback_readonly_refuses_writes),
        BB_TEST(test_blkback_hostile_requests_copy),
        BB_TEST(test_blkback_hostile_requests_map),
        BB_TEST(test_blkback_hostile_requests_persistent),
        BB_TEST(test_blkback_hostile_requests_io_sync),
        BB_TEST(test_blkback_broken_ring_disconnects_that_device_only),
        BB_TEST(test_blkback_two_devices_concurrently),
        BB_TEST(test_blkback_device_removed_while_running),
        BB_TEST(test_blkback_readded_twice_before_frontend),
        BB_TEST(test_blkback_readded_any_sequence_served),
        BB_TEST(test_blkback_readded_while_connected),
        BB_TEST(test_blkback_frontend_dies_mid_request),
        BB_TEST(test_blkback_killed_restarted_answers_once),
        BB_TEST(test_blkback_online_0_closes_device),
        BB_TEST(test_blkback_once_exits_after_last_close),
        BB_TEST(test_blkback_online_1_after_0_reopens_device),
        BB_TEST(test_blkback_options_bounded),
        BB_TEST(test_blkback_failed_listing_keeps_devices),
        BB_TEST(test_blkback_killed_mid_queue_answers_each_once),
    };
    return it_run_tests("examples-blkback", tests);
}
