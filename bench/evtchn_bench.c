/* SPDX-License-Identifier: MIT */
/*
 * evtchn_bench - notify round trip between two processes through pvabi event
 * channels, against a raw eventfd ping-pong between the same two processes,
 * in one run.
 *
 *   evtchn_bench [--rounds=R] [--trips=N]
 *
 * Two agents of the integration harness (tests/integration/harness.h), each
 * its own domain, on a private pvabi-hv daemon (PVABI_HV; or real Xen with
 * PVABI_TEST_PLATFORM=xen).  A round is N round trips; rounds alternate
 * pvabi, eventfd, pvabi, eventfd...  Per round trip, each side does what a
 * driver does:
 *   pvabi:   poll(pvabi_fd), pvabi_evtchn_pending(), pvabi_evtchn_unmask(),
 *            then (responder) pvabi_evtchn_notify() back;
 *   eventfd: poll(eventfd), read(), then (responder) write() to the other.
 * The initiator times each round trip; each round yields the median, and the
 * figure printed per implementation is the median of its rounds' medians.
 * Goal: pvabi / eventfd <= 1.3.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>

#include "harness.h"

#define GOAL 1.3

struct trip_result {
    double median_ns, mean_ns, min_ns;
};

static void bench_fail(const char *file, int line, const char *msg)
{
    fprintf(stderr, "evtchn_bench: %s:%d: %s\n", file, line, msg);
    exit(1);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, unsigned n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

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

static struct trip_result pvabi_round(struct it_agent *fe, struct it_agent *be, pvabi_port pf,
                                      pvabi_port pb, uint64_t trips)
{
    struct it_msg mi = { .op = IT_OP_PINGPONG, .a = { pf, (int64_t)trips, 1 } };
    struct it_msg mr = { .op = IT_OP_PINGPONG, .a = { pb, (int64_t)trips, 0 } };

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

static void report(unsigned rounds, double (*res)[2])
{
    double med[2], v[rounds];

    for (int k = 0; k < 2; k++) {
        for (unsigned i = 0; i < rounds; i++)
            v[i] = res[i][k];
        med[k] = median(v, rounds);
    }
    printf("median round trip: pvabi %.0f ns, eventfd %.0f ns\n", med[0], med[1]);
    printf("ratio pvabi/eventfd (medians) %.2f  goal <= %.1f: %s\n", med[0] / med[1], GOAL,
           med[0] / med[1] <= GOAL ? "met" : "NOT met");
}

static int run(unsigned rounds, uint64_t trips)
{
    struct it_daemon d;
    struct it_agent fe, be;
    pvabi_port pf, pb;
    double(*res)[2] = calloc(rounds, sizeof(*res));
    int efd[2] = { eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC) };

    if (!res || efd[0] < 0 || efd[1] < 0)
        it_fail("setup: %s", strerror(errno));
    it_daemon_start(&d); /* before the agents: they inherit the eventfds */
    it_agent_start(&fe, "ping");
    it_agent_start(&be, "pong");
    it_connect(&fe, &be, &pf, &pb);
    printf("evtchn_bench on %s: %u rounds of %llu round trips, two processes\n", it_platform(),
           rounds, (unsigned long long)trips);
    pvabi_round(&fe, &be, pf, pb, trips / 10 + 1); /* warm-up, not counted */
    efd_round(&fe, &be, efd, trips / 10 + 1);
    printf("round  pvabi median/mean/min ns   eventfd median/mean/min ns\n");
    for (unsigned i = 0; i < rounds; i++) {
        struct trip_result p = pvabi_round(&fe, &be, pf, pb, trips);
        struct trip_result e = efd_round(&fe, &be, efd, trips);
        res[i][0] = p.median_ns;
        res[i][1] = e.median_ns;
        printf("%5u  %8.0f %8.0f %7.0f   %8.0f %8.0f %7.0f\n", i + 1, p.median_ns, p.mean_ns,
               p.min_ns, e.median_ns, e.mean_ns, e.min_ns);
    }
    report(rounds, res);
    it_agent_stop(&fe, 1);
    it_agent_stop(&be, 1);
    it_daemon_stop(&d);
    free(res);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "rounds", required_argument, NULL, 'r' },
        { "trips", required_argument, NULL, 'n' },
        { NULL, 0, NULL, 0 },
    };
    unsigned long long rounds = 9, trips = 20000;
    int c;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'r')
            rounds = strtoull(optarg, NULL, 10);
        else if (c == 'n')
            trips = strtoull(optarg, NULL, 10);
        else
            return fprintf(stderr, "usage: evtchn_bench [--rounds=R] [--trips=N]\n"), 2;
    }
    if (rounds == 0 || rounds > 1000 || trips == 0 || trips > 4000000)
        return fprintf(stderr, "evtchn_bench: --rounds 1..1000, --trips 1..4000000\n"), 2;
    it_set_fail_hook(bench_fail);
    it_require_platform("evtchn_bench");
    return run((unsigned)rounds, trips);
}
