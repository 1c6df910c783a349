/* SPDX-License-Identifier: MIT */
/*
 * Glue between the integration harness and CMocka, for the test programs:
 * harness failures become CMocka failures of the running test, and each test
 * runs with its own private daemon (it_setup / it_teardown).
 */
#ifndef PVABI_ITEST_H
#define PVABI_ITEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "harness.h"

/* A test with its private daemon. */
#define IT_TEST(fn) cmocka_unit_test_setup_teardown(fn, it_setup, it_teardown)

static inline void itest_fail(const char *file, int line, const char *msg)
{
    print_error("%s\n", msg);
    _fail(file, line);
}

/* Runs @tests after checking the platform (exit 77 with a reason if absent). */
#define it_run_tests(name, tests)                                                                  \
    (it_set_fail_hook(itest_fail), it_require_platform(name),                                      \
     cmocka_run_group_tests_name(name, tests, NULL, NULL))

/* Starts a frontend and a backend agent and connects a channel between
 * them: the frontend allocates, the backend binds. */
static inline void it_pair_start(struct it_agent *fe, struct it_agent *be, pvabi_port *pf,
                                 pvabi_port *pb)
{
    it_agent_start(fe, "frontend");
    it_agent_start(be, "backend");
    if (pf)
        it_connect(fe, be, pf, pb);
}

static inline void it_pair_stop(struct it_agent *fe, struct it_agent *be)
{
    it_agent_stop(fe, 1);
    it_agent_stop(be, 1);
}

#endif
