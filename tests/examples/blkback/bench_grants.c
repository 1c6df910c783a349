/* SPDX-License-Identifier: MIT */
/*
 * bench_grants - how blkback reaches the frontend's pages, measured: 4 KiB
 * random reads with 32 in flight through a raw frontend, for --grants copy,
 * --grants map (both without persistent grants) and persistent grants, next
 * to pread on the same image.  Numbers go to docs/blkback.md.
 *
 *   PVABI_HV=build/tools/pvabi-hv/pvabi-hv BLKBACK=build/examples/blkback/blkback \
 *       build/tests/examples/blkback/bench_grants [READS]
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "tfront.h"

#define IMG_BYTES (64ull << 20)
#define DEPTH     32u

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void push_read(struct tf *f, uint64_t *seed, uint64_t id)
{
    struct tf_seg seg = { (unsigned)(id % DEPTH), 0, 7 };
    struct pvblk_request r;

    tf_build(f, &r, PVBLK_OP_READ, (rnd(seed) % (IMG_BYTES / 4096)) * 8, &seg, 1, id);
    tf_push(f, &r);
}

/* Reads/s through blkback started with @args. */
static double run_mode(const char *img, const char *const *args, int persistent, unsigned n)
{
    struct tf_back bk;
    struct tf f;
    struct pvblk_response rsp;
    uint64_t seed = 88172645463325252ull, t0;

    tf_back_start(&bk, args);
    tf_domain(&f);
    tf_add(&f, 51712, img, "w");
    if (tf_connect(&f, 0, persistent) < 0)
        it_fail("connect failed");
    for (uint64_t id = 0; id < DEPTH; id++)
        push_read(&f, &seed, id);
    t0 = it_now_ns();
    for (uint64_t done = 0; done < n; done++) {
        if (tf_pop(&f, &rsp, TF_TIMEOUT_MS) < 0 || rsp.status != PVBLK_RSP_OKAY)
            it_fail("read %llu failed", (unsigned long long)done);
        if (done + DEPTH < n)
            push_read(&f, &seed, rsp.id);
    }
    double s = (double)(it_now_ns() - t0) / 1e9;
    tf_close(&f);
    tf_back_stop(&bk, SIGTERM);
    return n / s;
}

static double run_pread(const char *img, unsigned n)
{
    char buf[4096];
    uint64_t seed = 88172645463325252ull, t0 = it_now_ns();
    int fd = open(img, O_RDONLY);

    for (unsigned i = 0; i < n; i++)
        if (pread(fd, buf, 4096, (off_t)((rnd(&seed) % (IMG_BYTES / 4096)) * 4096)) != 4096)
            it_fail("pread");
    close(fd);
    return n / ((double)(it_now_ns() - t0) / 1e9);
}

int main(int argc, char **argv)
{
    unsigned n = argc > 1 ? (unsigned)atoi(argv[1]) : 50000;
    struct it_daemon d;
    char img[64];

    it_daemon_start(&d);
    tf_image(img, sizeof(img), IMG_BYTES, 1);
    printf("4 KiB random reads, %u in flight, %u reads, 64 MiB image (page cache)\n", DEPTH, n);
    for (int rep = 0; rep < 2; rep++) {
        printf("pread direct:         %9.0f reads/s\n", run_pread(img, n));
        printf(
            "grant copy:           %9.0f reads/s\n",
            run_mode(img, (const char *[]){ "--no-persistent", "--grants", "copy", NULL }, 0, n));
        printf("grant map:            %9.0f reads/s\n",
               run_mode(img, (const char *[]){ "--no-persistent", "--grants", "map", NULL }, 0, n));
        printf("persistent (mapped):  %9.0f reads/s\n", run_mode(img, NULL, 1, n));
    }
    unlink(img);
    tf_toolstack_close();
    it_daemon_stop(&d);
    return 0;
}
