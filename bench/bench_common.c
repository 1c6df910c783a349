/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>

#include "bench_common.h"

struct it_daemon bench_daemon;
static const char *bench_prog = "bench";

static void bench_fail(const char *file, int line, const char *msg)
{
    fprintf(stderr, "%s: %s:%d: %s\n", bench_prog, file, line, msg);
    /* Without the hook, a failure inside the stop prints and exits. */
    it_set_fail_hook(NULL);
    it_daemon_stop(&bench_daemon);
    exit(1);
}

void bench_fail_stops_daemon(const char *prog)
{
    bench_prog = prog;
    it_set_fail_hook(bench_fail);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *v, unsigned n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}
