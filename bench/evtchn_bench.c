/* SPDX-License-Identifier: MIT */
/*
 * evtchn_bench - notify round trip between two processes through pvabi event
 * channels, against a raw eventfd ping-pong between the same two processes,
 * in one run.
 *
 *   evtchn_bench [--rounds=R] [--trips=N] [--pin]
 *
 * Two agents of the integration harness (tests/integration/harness.h), each
 * its own domain, on a private pvabi-hv daemon (PVABI_HV; or real Xen with
 * PVABI_TEST_PLATFORM=xen).  A round is N round trips; rounds alternate
 * the three loops below, wait, poll, eventfd, wait, poll...  Per round
 * trip, each side does what a driver does:
 *   wait:    pvabi_evtchn_wait(), pvabi_evtchn_unmask(), then (responder)
 *            pvabi_evtchn_notify() back;
 *   poll:    the same with poll(pvabi_fd) + pvabi_evtchn_pending() in place
 *            of pvabi_evtchn_wait() (a driver in its own event loop);
 *   eventfd: poll(eventfd), read(), then (responder) write() to the other.
 * The initiator times each round trip; each round yields the median, and the
 * figure printed per loop is the median of its rounds' medians.
 * Goal: wait / eventfd <= 1.3; poll / eventfd is printed for reference.
 *
 * --pin puts the daemon and both agents on CPU 0: each wake-up is then a
 * context switch, and the figures measure the software path.  Unpinned on a
 * VM, a wake-up of an idle vCPU (tens of microseconds) dominates both sides.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>

#include "bench_common.h"

#define GOAL 1.3

/* The loops, in the order rounds run them. */
enum { L_WAIT, L_POLL, L_EFD, LOOPS };
static const char *const loop_name[LOOPS] = { "pvabi wait", "pvabi poll", "eventfd" };

struct trip_result {
    double median_ns, mean_ns, min_ns;
};

/* Runs one round: the responder first, so it is waiting when the first
 * event arrives; returns the initiator's timings. */
static struct trip_result run_round(struct it_agent *ini, struct it_agent *rsp, struct it_msg *mi,
                                    struct it_msg *mr)
{
    struct trip_result r;
    int ri, rr;

    it_agent_send(rsp, mr);
    it_agent_send(ini, mi);
    ri = it_agent_reply(ini, mi, 0);
    rr = it_agent_reply(rsp, mr, 0);
    /* Both answers, so that a failure says which side saw what. */
    if (ri < 0 || rr < 0)
        it_fail("round failed: initiator %s after %lld trips (port state %lld), responder %s "
                "after %lld trips (port state %lld)",
                strerror(-ri), (long long)mi->a[0], (long long)mi->a[5], strerror(-rr),
                (long long)mr->a[0], (long long)mr->a[5]);
    r.median_ns = (double)mi->a[1];
    r.mean_ns = (double)mi->a[2];
    r.min_ns = (double)mi->a[3];
    return r;
}

/* @use_wait: pvabi_evtchn_wait(), else poll(pvabi_fd) + pending(). */
static struct trip_result pvabi_round(struct it_agent *fe, struct it_agent *be, pvabi_port pf,
                                      pvabi_port pb, uint64_t trips, int use_wait)
{
    struct it_msg mi = { .op = IT_OP_PINGPONG, .a = { pf, (int64_t)trips, 1, 0, use_wait } };
    struct it_msg mr = { .op = IT_OP_PINGPONG, .a = { pb, (int64_t)trips, 0, 0, use_wait } };

    return run_round(fe, be, &mi, &mr);
}

/* efd[0] carries frontend -> backend, efd[1] backend -> frontend. */
static struct trip_result efd_round(struct it_agent *fe, struct it_agent *be, const int efd[2],
                                    uint64_t trips)
{
    struct it_msg mi = { .op = IT_OP_EFD_PINGPONG, .a = { efd[1], efd[0], (int64_t)trips, 1 } };
    struct it_msg mr = { .op = IT_OP_EFD_PINGPONG, .a = { efd[0], efd[1], (int64_t)trips, 0 } };

    return run_round(fe, be, &mi, &mr);
}

static void report(unsigned rounds, double (*res)[LOOPS])
{
    double med[LOOPS], v[rounds];

    for (int k = 0; k < LOOPS; k++) {
        for (unsigned i = 0; i < rounds; i++)
            v[i] = res[i][k];
        med[k] = bench_median(v, rounds);
    }
    printf("median round trip: pvabi wait %.0f ns, pvabi poll %.0f ns, eventfd %.0f ns\n",
           med[L_WAIT], med[L_POLL], med[L_EFD]);
    printf("ratio pvabi poll+pending/eventfd (medians) %.2f  (reference, no goal)\n",
           med[L_POLL] / med[L_EFD]);
    printf("ratio pvabi wait/eventfd (medians) %.2f  goal <= %.1f: %s\n", med[L_WAIT] / med[L_EFD],
           GOAL, med[L_WAIT] / med[L_EFD] <= GOAL ? "met" : "NOT met");
}

/* One round of loop @k. */
static struct trip_result round_of(int k, struct it_agent *fe, struct it_agent *be, pvabi_port pf,
                                   pvabi_port pb, const int efd[2], uint64_t trips)
{
    if (k == L_EFD)
        return efd_round(fe, be, efd, trips);
    return pvabi_round(fe, be, pf, pb, trips, k == L_WAIT);
}

static void print_round(unsigned i, const struct trip_result *r)
{
    printf("%5u", i);
    for (int k = 0; k < LOOPS; k++)
        printf("   %8.0f %8.0f %7.0f", r[k].median_ns, r[k].mean_ns, r[k].min_ns);
    printf("\n");
}

static int run(unsigned rounds, uint64_t trips)
{
    struct it_agent fe, be;
    pvabi_port pf, pb;
    double(*res)[LOOPS] = calloc(rounds, sizeof(*res));
    int efd[2] = { eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC) };

    if (!res || efd[0] < 0 || efd[1] < 0)
        it_fail("setup: %s", strerror(errno));
    it_daemon_start(&bench_daemon); /* before the agents: they inherit the eventfds */
    it_agent_start(&fe, "ping");
    it_agent_start(&be, "pong");
    it_connect(&fe, &be, &pf, &pb);
    printf("evtchn_bench on %s: %u rounds of %llu round trips, two processes\n", it_platform(),
           rounds, (unsigned long long)trips);
    for (int k = 0; k < LOOPS; k++) /* warm-up, not counted */
        round_of(k, &fe, &be, pf, pb, efd, trips / 10 + 1);
    printf("round  median/mean/min ns: %-26s %-26s %s\n", loop_name[L_WAIT], loop_name[L_POLL],
           loop_name[L_EFD]);
    for (unsigned i = 0; i < rounds; i++) {
        struct trip_result r[LOOPS];
        for (int k = 0; k < LOOPS; k++) {
            r[k] = round_of(k, &fe, &be, pf, pb, efd, trips);
            res[i][k] = r[k].median_ns;
        }
        print_round(i + 1, r);
    }
    report(rounds, res);
    it_agent_stop(&fe, 1);
    it_agent_stop(&be, 1);
    it_daemon_stop(&bench_daemon);
    free(res);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "rounds", required_argument, NULL, 'r' },
        { "trips", required_argument, NULL, 'n' },
        { "pin", no_argument, NULL, 'P' },
        { NULL, 0, NULL, 0 },
    };
    unsigned long long rounds = 9, trips = 20000;
    int c, pin = 0;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'P')
            pin = 1;
        else if (c == 'r')
            rounds = strtoull(optarg, NULL, 10);
        else if (c == 'n')
            trips = strtoull(optarg, NULL, 10);
        else
            return fprintf(stderr, "usage: evtchn_bench [--rounds=R] [--trips=N] [--pin]\n"), 2;
    }
    if (rounds == 0 || rounds > 1000 || trips == 0 || trips > 4000000)
        return fprintf(stderr, "evtchn_bench: --rounds 1..1000, --trips 1..4000000\n"), 2;
    bench_fail_stops_daemon("evtchn_bench");
    if (pin && it_pin_cpu(0) < 0)
        return fprintf(stderr, "%s: cannot pin to CPU 0\n", argv[0]), 1;
    it_require_platform("evtchn_bench");
    return run((unsigned)rounds, trips);
}
