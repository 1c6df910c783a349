/* SPDX-License-Identifier: MIT */
/*
 * grant_bench - map + unmap of 64 granted pages per call through pvabi,
 * against mmap + munmap of a 64-page memfd, in one run.
 *
 *   grant_bench [--rounds=R] [--calls=N] [--pages=P] [--pin]
 *
 * A frontend agent shares P pages (default 64) with a backend agent and
 * writes them all once (so every page exists, as on a live driver).  The
 * backend times calls of pvabi_grant_map() + pvabi_grant_unmap() of those P
 * refs, and of mmap(MAP_SHARED) + munmap() of a memfd of P pages it made and
 * wrote the same way, each in two variants: without touching the pages, and
 * reading one byte of each page (one page fault per page).  Rounds of N calls
 * alternate the four; each round yields the median time per call and each
 * figure is the median of its rounds.  Goal: pvabi / raw <= 2 in both
 * variants.  --pin: every process on CPU 0, as evtchn_bench --pin.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"

#define GOAL 2.0

struct setup {
    struct it_agent fe, be;
    pvabi_gref refs[PVABI_GRANT_BATCH_MAX];
    unsigned pages, slot;
};

/* One round of @calls calls in the backend; returns the median ns per call. */
static double round_of(struct setup *s, uint64_t calls, int touch, int raw, double *mean,
                       double *faults)
{
    struct it_msg m = { .op = IT_OP_MAP_BENCH };
    int rc;

    m.a[0] = s->fe.domid;
    m.a[1] = s->pages;
    m.a[2] = (int64_t)calls;
    m.a[3] = touch;
    m.a[4] = raw;
    for (unsigned i = 0; i < s->pages; i++)
        m.v[i] = s->refs[i];
    m.n = s->pages;
    if ((rc = it_agent_call(&s->be, &m)) < 0)
        it_fail("%s round failed: %s", raw ? "raw" : "pvabi", strerror(-rc));
    *mean = (double)m.a[2];
    *faults = (double)m.a[4] / 100;
    return (double)m.a[1];
}

static const char *const variant[4] = { "pvabi", "raw mmap", "pvabi+touch", "raw+touch" };

static void report(unsigned rounds, double (*res)[4])
{
    double med[4], v[rounds];

    for (int k = 0; k < 4; k++) {
        for (unsigned i = 0; i < rounds; i++)
            v[i] = res[i][k];
        med[k] = bench_median(v, rounds);
    }
    for (int t = 0; t < 2; t++) {
        double ratio = med[2 * t] / med[2 * t + 1];
        printf("%-13s median %8.0f ns/call, %-9s %8.0f ns/call: ratio %.2f  goal <= %.1f: %s\n",
               variant[2 * t], med[2 * t], variant[2 * t + 1], med[2 * t + 1], ratio, GOAL,
               ratio <= GOAL ? "met" : "NOT met");
    }
}

static void rounds_run(struct setup *s, unsigned rounds, uint64_t calls, double (*res)[4])
{
    double mean[4], flt[4];

    round_of(s, calls / 10 + 1, 1, 0, &mean[0], &flt[0]); /* warm-up, not counted */
    round_of(s, calls / 10 + 1, 1, 1, &mean[0], &flt[0]);
    printf("round  median (mean) ns per call [page faults per call]:\n"
           "       %-23s | %-23s | %-23s | %-23s\n",
           variant[0], variant[1], variant[2], variant[3]);
    for (unsigned i = 0; i < rounds; i++) {
        printf("%5u ", i + 1);
        for (int k = 0; k < 4; k++) {
            res[i][k] = round_of(s, calls, k >= 2, k % 2, &mean[k], &flt[k]);
            printf(" %7.0f (%7.0f) [%4.1f]%s", res[i][k], mean[k], flt[k], k < 3 ? " |" : "\n");
        }
    }
}

static int run(unsigned rounds, uint64_t calls, unsigned pages)
{
    double(*res)[4] = calloc(rounds, sizeof(*res));
    struct setup s = { .pages = pages };
    int rc;

    if (!res)
        it_fail("no memory");
    it_daemon_start(&bench_daemon);
    it_agent_start(&s.fe, "sharer");
    it_agent_start(&s.be, "mapper");
    if ((rc = it_share(&s.fe, s.be.domid, pages, 0, &s.slot, s.refs)) < 0)
        it_fail("share %u pages: %s", pages, strerror(-rc));
    it_fill(&s.fe, IT_KIND_GRANT, s.slot, 0, (size_t)pages * PVABI_PAGE_SIZE, 1);
    printf("grant_bench on %s: %u rounds of %llu calls, %u pages per call\n", it_platform(), rounds,
           (unsigned long long)calls, pages);
    rounds_run(&s, rounds, calls, res);
    report(rounds, res);
    it_revoke(&s.fe, s.slot);
    it_agent_stop(&s.fe, 1);
    it_agent_stop(&s.be, 1);
    it_daemon_stop(&bench_daemon);
    free(res);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "rounds", required_argument, NULL, 'r' },
        { "calls", required_argument, NULL, 'n' },
        { "pages", required_argument, NULL, 'p' },
        { "pin", no_argument, NULL, 'P' },
        { NULL, 0, NULL, 0 },
    };
    unsigned long long rounds = 9, calls = 2000, pages = 64;
    int c, pin = 0;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'P')
            pin = 1;
        else if (c == 'r')
            rounds = strtoull(optarg, NULL, 10);
        else if (c == 'n')
            calls = strtoull(optarg, NULL, 10);
        else if (c == 'p')
            pages = strtoull(optarg, NULL, 10);
        else
            return fprintf(stderr,
                           "usage: grant_bench [--rounds=R] [--calls=N] [--pages=P] [--pin]\n"),
                   2;
    }
    if (rounds == 0 || rounds > 1000 || calls == 0 || calls > 4000000 || pages == 0 ||
        pages > PVABI_GRANT_BATCH_MAX)
        return fprintf(stderr, "grant_bench: --rounds 1..1000, --calls 1..4000000, --pages "
                               "1..128\n"),
               2;
    bench_fail_stops_daemon("grant_bench");
    if (pin && it_pin_cpu(0) < 0)
        return fprintf(stderr, "%s: cannot pin to CPU 0\n", argv[0]), 1;
    it_require_platform("grant_bench");
    return run((unsigned)rounds, calls, (unsigned)pages);
}
