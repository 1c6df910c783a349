/* SPDX-License-Identifier: MIT */
/*
 * blk_bench - the example block drivers end to end: reads through
 * examples/blkfront -> the blkif ring -> examples/blkback -> the image file,
 * against the same reads done directly with pread() on the same image, in
 * one run.
 *
 *   blk_bench [--rounds=R] [--ops=N] [--mib=M] [--depth=D] [--no-persistent]
 *             [--io=uring|sync]
 *
 * Two workloads over an M MiB image (default 64, written once so that it is
 * in the page cache for both sides, as a disk a guest just used):
 *  - rand4k: N 4 KiB reads at random page-aligned offsets (xorshift, the same
 *    sequence for both sides), D in flight through blkfront (default 32);
 *    pread() does them one after the other;
 *  - rand4k-fixed: the same through blkfront's fixed buffers (pages granted
 *    at open and read into in place: blkfront_fixed_buffer), no copy out of
 *    the pool;
 *  - seq1m:  the whole image in 1 MiB reads, 4 in flight through blkfront.
 * Rounds alternate which side goes first; each figure is the median of its
 * rounds and the ratio is blkfront / pread.  Goal: rand4k >= 0.8.
 *
 * The backend is a child process (domain 0) running blkback's serving
 * core; the frontend is this process (an unprivileged domain) on a private
 * pvabi-hv.  --no-persistent makes the frontend refuse persistent grants,
 * so that the backend grant-copies every segment.  --io=sync makes the
 * backend use preadv/pwritev instead of io_uring.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"
#include "blkback.h"
#include "blkfront.h"

#define DEVID     51712
#define SEQ_CHUNK (1u << 20)
#define SEQ_DEPTH 4u
#define MAX_DEPTH 128u
#define WAIT_MS   10000
#define GOAL      0.8
_Static_assert(MAX_DEPTH * 4096 <= SEQ_DEPTH * SEQ_CHUNK, "the read buffers fit");

struct bench {
    char dir[64], image[96];
    uint64_t bytes;
    unsigned ops, depth;
    pid_t backend;
    pvabi_ctx *ctx, *toolstack;
    struct blkfront *bf;
    int fd; /* the image, for pread */
    uint8_t *bufs;
    uint8_t *fixed; /* MAX_DEPTH pages of blkfront's fixed buffers */
};

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

/* ---- the backend domain ----------------------------------------------------- */

static struct blkback *backend_core;
static int backend_io = BLKBACK_IO_URING;

static void on_term(int sig)
{
    (void)sig;
    if (backend_core)
        blkback_stop(backend_core);
}

static void backend_main(void)
{
    pvabi_ctx *ctx;
    struct blkback_opts o;
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed benchmark */
    setenv("PVABI_LOCAL_DOMID", "0", 1);
    int rc = pvabi_open(&ctx, "local");
    if (rc < 0) {
        fprintf(stderr, "blk_bench backend: pvabi_open as domain 0: %s\n", strerror(-rc));
        _exit(1);
    }
    blkback_opts_default(&o);
    o.io = backend_io;
    if ((rc = blkback_create(ctx, &o, &backend_core)) < 0) {
        fprintf(stderr, "blk_bench backend: blkback_create: %s\n", strerror(-rc));
        _exit(1);
    }
    signal(SIGTERM, on_term);
    rc = blkback_run(backend_core, -1);
    blkback_destroy(backend_core);
    pvabi_close(ctx);
    _exit(rc < 0);
}

/* ---- set-up ----------------------------------------------------------------- */

static void make_image(struct bench *b)
{
    snprintf(b->dir, sizeof(b->dir), "/tmp/blk_bench-XXXXXX");
    if (!mkdtemp(b->dir))
        it_fail("mkdtemp: %s", strerror(errno));
    snprintf(b->image, sizeof(b->image), "%s/disk.img", b->dir);
    b->fd = open(b->image, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (b->fd < 0)
        it_fail("%s: %s", b->image, strerror(errno));
    uint8_t *chunk = malloc(SEQ_CHUNK);
    if (!chunk)
        it_fail("no memory");
    for (uint64_t off = 0; off < b->bytes; off += SEQ_CHUNK) {
        memset(chunk, (int)(off >> 20) + 1, SEQ_CHUNK);
        if (pwrite(b->fd, chunk, SEQ_CHUNK, (off_t)off) != SEQ_CHUNK)
            it_fail("writing the image: %s", strerror(errno));
    }
    free(chunk);
}

static void connect_device(struct bench *b, int persistent)
{
    int rc;
    if ((rc = pvabi_open(&b->ctx, "local")) < 0 ||
        (rc = pvabi_open_flags(&b->toolstack, "local", PVABI_OPEN_TOOLSTACK)) < 0)
        it_fail("pvabi_open: %s", strerror(-rc));
    const char *back[] = { "params", b->image, "mode", "r", "type", "file", NULL };
    const char *front[] = { "virtual-device", "51712", "device-type", "disk", NULL };
    rc = pvabi_xenbus_device_add(b->toolstack, "vbd", pvabi_own_domid(b->ctx), 0, DEVID, back,
                                 front);
    if (rc < 0)
        it_fail("toolstack step: %s", strerror(-rc));
    struct blkfront_opts o;
    blkfront_opts_init(&o);
    o.persistent = persistent;
    o.fixed_pages = MAX_DEPTH;
    if ((rc = blkfront_open(b->ctx, DEVID, &o, &b->bf)) < 0)
        it_fail("blkfront_open: %s", strerror(-rc));
    size_t len;
    b->fixed = blkfront_fixed_buffer(b->bf, 0, &len);
    if (!b->fixed || len < (size_t)MAX_DEPTH * 4096)
        it_fail("blkfront_fixed_buffer: %zu bytes", len);
}

static void setup(struct bench *b, int persistent)
{
    make_image(b);
    it_daemon_start(&bench_daemon);
    fflush(NULL);
    b->backend = fork();
    if (b->backend < 0)
        it_fail("fork: %s", strerror(errno));
    if (b->backend == 0)
        backend_main();
    connect_device(b, persistent);
    b->bufs = malloc((size_t)SEQ_DEPTH * SEQ_CHUNK); /* also holds MAX_DEPTH pages */
    if (!b->bufs)
        it_fail("no memory");
}

static void teardown(struct bench *b)
{
    int st;
    blkfront_close(b->bf);
    kill(b->backend, SIGTERM);
    waitpid(b->backend, &st, 0);
    pvabi_close(b->ctx);
    pvabi_close(b->toolstack);
    it_daemon_stop(&bench_daemon);
    close(b->fd);
    unlink(b->image);
    rmdir(b->dir);
    free(b->bufs);
}

/* ---- the two sides ---------------------------------------------------------- */

/* Keeps @depth reads of @len in flight; @next_off gives each offset. */
static double through_blkfront(struct bench *b, uint8_t *bufs, unsigned ops, size_t len,
                               unsigned depth, uint64_t (*next_off)(struct bench *, uint64_t *),
                               uint64_t seed)
{
    unsigned free_slots[MAX_DEPTH], nfree = depth, sent = 0, done = 0;
    for (unsigned i = 0; i < depth; i++)
        free_slots[i] = i;
    double t = now_s();
    while (done < ops) {
        while (sent < ops && nfree > 0) {
            unsigned slot = free_slots[nfree - 1];
            int rc = blkfront_submit(b->bf, BLKFRONT_READ, next_off(b, &seed), len,
                                     bufs + (size_t)slot * len, slot);
            if (rc < 0)
                it_fail("blkfront_submit: %s", strerror(-rc));
            nfree--, sent++;
        }
        struct blkfront_done c[MAX_DEPTH];
        int n = blkfront_complete(b->bf, c, MAX_DEPTH, WAIT_MS);
        if (n <= 0)
            it_fail("blkfront_complete: %s", n ? strerror(-n) : "timed out");
        for (int i = 0; i < n; i++) {
            if (c[i].status != 0)
                it_fail("read failed: %s", strerror(-c[i].status));
            free_slots[nfree++] = (unsigned)c[i].tag;
        }
        done += (unsigned)n;
    }
    return now_s() - t;
}

static double through_pread(struct bench *b, unsigned ops, size_t len,
                            uint64_t (*next_off)(struct bench *, uint64_t *), uint64_t seed)
{
    double t = now_s();
    for (unsigned i = 0; i < ops; i++)
        if (pread(b->fd, b->bufs, len, (off_t)next_off(b, &seed)) != (ssize_t)len)
            it_fail("pread: %s", strerror(errno));
    return now_s() - t;
}

static uint64_t random_page(struct bench *b, uint64_t *seed)
{
    return next_rand(seed) % (b->bytes / 4096) * 4096;
}

/* The sequence 0, 1 MiB, 2 MiB, ...: the "seed" counts the chunks. */
static uint64_t next_chunk(struct bench *b, uint64_t *seed)
{
    return (*seed)++ * SEQ_CHUNK % b->bytes;
}

/* ---- rounds ----------------------------------------------------------------- */

enum { RAND_PV, RAND_FIXED, RAND_RAW, SEQ_PV, SEQ_RAW, NFIG };

static void one_round(struct bench *b, unsigned r, double fig[NFIG])
{
    unsigned seq_ops = (unsigned)(b->bytes / SEQ_CHUNK);
    uint64_t seed = 0x9e3779b97f4a7c15ull + r;
    for (int pass = 0; pass < 2; pass++) {
        int pv = (pass + (int)r) % 2 == 0; /* alternate which side goes first */
        if (pv) {
            fig[RAND_PV] =
                b->ops / through_blkfront(b, b->bufs, b->ops, 4096, b->depth, random_page, seed);
            fig[RAND_FIXED] =
                b->ops / through_blkfront(b, b->fixed, b->ops, 4096, b->depth, random_page, seed);
            fig[SEQ_PV] =
                (double)b->bytes / 1e6 /
                through_blkfront(b, b->bufs, seq_ops, SEQ_CHUNK, SEQ_DEPTH, next_chunk, 0);
        } else {
            fig[RAND_RAW] = b->ops / through_pread(b, b->ops, 4096, random_page, seed);
            fig[SEQ_RAW] =
                (double)b->bytes / 1e6 / through_pread(b, seq_ops, SEQ_CHUNK, next_chunk, 0);
        }
    }
}

static double median_of(double (*res)[NFIG], unsigned rounds, int which)
{
    double v[rounds];
    for (unsigned r = 0; r < rounds; r++)
        v[r] = res[r][which];
    return bench_median(v, rounds);
}

static int report(double (*res)[NFIG], unsigned rounds, unsigned depth)
{
    double m[NFIG];
    for (int i = 0; i < NFIG; i++)
        m[i] = median_of(res, rounds, i);
    printf("%-34s %12s %12s %7s\n", "workload", "blkfront", "pread", "ratio");
    printf("rand4k, %3u in flight (IOPS)       %12.0f %12.0f %7.2f  (goal >= %.1f)\n", depth,
           m[RAND_PV], m[RAND_RAW], m[RAND_PV] / m[RAND_RAW], GOAL);
    printf("rand4k, %3u in flight, fixed bufs   %12.0f %12.0f %7.2f  (goal >= %.1f)\n", depth,
           m[RAND_FIXED], m[RAND_RAW], m[RAND_FIXED] / m[RAND_RAW], GOAL);
    printf("seq1m, %u in flight (MB/s)          %12.0f %12.0f %7.2f\n", SEQ_DEPTH, m[SEQ_PV],
           m[SEQ_RAW], m[SEQ_PV] / m[SEQ_RAW]);
    return 0;
}

static int run(unsigned rounds, unsigned ops, unsigned mib, unsigned depth, int persistent)
{
    struct bench b = { .bytes = (uint64_t)mib << 20, .ops = ops, .depth = depth };
    double(*res)[NFIG] = calloc(rounds, sizeof(*res));
    if (!res)
        it_fail("no memory");
    setup(&b, persistent);
    const struct blkfront_info *i = blkfront_info(b.bf);
    printf("blk_bench on %s: %u rounds, %u MiB image, ring %u pages, %s grants, "
           "%u segments per request\n",
           it_platform(), rounds, mib, 1u << i->ring_order, i->persistent ? "persistent" : "copied",
           i->max_segments);
    for (unsigned r = 0; r < rounds; r++)
        one_round(&b, r, res[r]);
    report(res, rounds, depth);
    teardown(&b);
    free(res);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "rounds", required_argument, NULL, 'r' },
        { "ops", required_argument, NULL, 'n' },
        { "mib", required_argument, NULL, 'm' },
        { "depth", required_argument, NULL, 'd' },
        { "no-persistent", no_argument, NULL, 'P' },
        { "io", required_argument, NULL, 'i' },
        { NULL, 0, NULL, 0 },
    };
    unsigned long rounds = 7, ops = 50000, mib = 64, depth = 32;
    int c, persistent = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'r')
            rounds = strtoul(optarg, NULL, 10);
        else if (c == 'n')
            ops = strtoul(optarg, NULL, 10);
        else if (c == 'm')
            mib = strtoul(optarg, NULL, 10);
        else if (c == 'd')
            depth = strtoul(optarg, NULL, 10);
        else if (c == 'P')
            persistent = 0;
        else if (c == 'i' && (!strcmp(optarg, "uring") || !strcmp(optarg, "sync")))
            backend_io = strcmp(optarg, "sync") == 0 ? BLKBACK_IO_SYNC : BLKBACK_IO_URING;
        else
            return fprintf(stderr, "usage: blk_bench [--rounds=R] [--ops=N] [--mib=M] "
                                   "[--depth=D] [--no-persistent] [--io=uring|sync]\n"),
                   2;
    }
    if (rounds < 1 || rounds > 100 || ops < 1 || ops > 10000000 || mib < 4 || mib > 4096 ||
        depth < 1 || depth > 128)
        return fprintf(stderr, "blk_bench: --rounds 1..100, --ops 1..10000000, --mib 4..4096, "
                               "--depth 1..128\n"),
               2;
    bench_fail_stops_daemon("blk_bench");
    it_require_platform("blk_bench");
    return run((unsigned)rounds, (unsigned)ops, (unsigned)mib, (unsigned)depth, persistent);
}
