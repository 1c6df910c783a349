/* SPDX-License-Identifier: MIT */
/* What the two-process benchmarks share: the private daemon and statistics. */
#ifndef PVABI_BENCH_COMMON_H
#define PVABI_BENCH_COMMON_H

#include "harness.h"

/* The benchmark's private pvabi-hv. */
extern struct it_daemon bench_daemon;

/* Makes a harness failure stop bench_daemon (saying whether it died, a
 * likely cause) and exit 1, with @prog in the message. */
void bench_fail_stops_daemon(const char *prog);

/* The median of @v (sorted in place). */
double bench_median(double *v, unsigned n);

#endif
