/* SPDX-License-Identifier: MIT */
/*
 * blkback - the example block backend daemon: serves every vbd under
 * /local/domain/<own domid>/backend/vbd from the image files named by their
 * `params` nodes.  See docs/blkback.md.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pvabi/pvabi.h>

#include "blkback.h"

static struct blkback *g_b;
static volatile sig_atomic_t g_term, g_usr1;

static void on_signal(int sig)
{
    if (sig == SIGUSR1)
        g_usr1 = 1;
    else
        g_term = 1;
    if (g_b)
        blkback_stop(g_b);
}

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: blkback [--platform SPEC] [--type TYPE] [--max-ring-order N (0..4)]\n"
        "               [--max-indirect N (0..4096, 0 = none)] [--no-persistent]\n"
        "               [--grants copy|map] [--io uring|sync] [--spin-us N (0..1000, default 50)]\n"
        "               [--verbose|-v] [--once] [--help]\n"
        "Serves every device under /local/domain/<own domid>/backend/TYPE/*/*\n"
        "(default TYPE vbd) from the image file in its `params` node.\n"
        "SIGTERM/SIGINT: exit (no close handshake: a restarted blkback re-attaches);\n"
        "SIGUSR1: print per-device counters.  Exit 0 clean, 1 error, 2 usage.\n");
}

static int parse_uint(const char *s, unsigned max, unsigned *out)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 10);
    if (!*s || *end || errno || v > max || s[0] == '-')
        return -1;
    *out = (unsigned)v;
    return 0;
}

struct cli {
    struct blkback_opts o;
    const char *platform;
    int once;
};

enum {
    OPT_PLATFORM = 256,
    OPT_TYPE,
    OPT_ORDER,
    OPT_INDIRECT,
    OPT_NOPERS,
    OPT_GRANTS,
    OPT_IO,
    OPT_SPIN,
    OPT_ONCE
};

static int parse_one(struct cli *c, int opt, const char *arg)
{
    switch (opt) {
    case OPT_PLATFORM:
        c->platform = arg;
        return 0;
    case OPT_TYPE:
        c->o.type = arg;
        return 0;
    case OPT_ORDER:
        return parse_uint(arg, PVABI_XENBUS_RING_ORDER_MAX, &c->o.max_ring_order);
    case OPT_INDIRECT:
        return parse_uint(arg, BLKBACK_MAX_INDIRECT, &c->o.max_indirect);
    case OPT_NOPERS:
        c->o.persistent = 0;
        return 0;
    case OPT_GRANTS:
        if (strcmp(arg, "copy") && strcmp(arg, "map"))
            return -1;
        c->o.grants = strcmp(arg, "map") == 0 ? BLKBACK_GRANTS_MAP : BLKBACK_GRANTS_COPY;
        return 0;
    case OPT_IO:
        if (strcmp(arg, "uring") && strcmp(arg, "sync"))
            return -1;
        c->o.io = strcmp(arg, "sync") == 0 ? BLKBACK_IO_SYNC : BLKBACK_IO_URING;
        return 0;
    case OPT_SPIN:
        return parse_uint(arg, BLKBACK_MAX_SPIN_US, &c->o.spin_us);
    case 'v':
        c->o.verbose = 1;
        return 0;
    case OPT_ONCE:
        c->once = 1;
        return 0;
    default:
        return -1;
    }
}

/* 0 to run, 1 for --help, -1 usage error. */
static int parse_args(struct cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        { "platform", required_argument, NULL, OPT_PLATFORM },
        { "type", required_argument, NULL, OPT_TYPE },
        { "max-ring-order", required_argument, NULL, OPT_ORDER },
        { "max-indirect", required_argument, NULL, OPT_INDIRECT },
        { "no-persistent", no_argument, NULL, OPT_NOPERS },
        { "grants", required_argument, NULL, OPT_GRANTS },
        { "io", required_argument, NULL, OPT_IO },
        { "spin-us", required_argument, NULL, OPT_SPIN },
        { "verbose", no_argument, NULL, 'v' },
        { "once", no_argument, NULL, OPT_ONCE },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int opt;

    blkback_opts_default(&c->o);
    while ((opt = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
        if (opt == 'h')
            return 1;
        if (opt == '?' || parse_one(c, opt, optarg) < 0) {
            if (opt != '?')
                fprintf(stderr, "blkback: bad value for option: %s\n", optarg);
            return -1;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "blkback: unexpected argument: %s\n", argv[optind]);
        return -1;
    }
    return 0;
}

static void pvabi_log(void *opaque, int level, const char *msg)
{
    (void)opaque;
    fprintf(stderr, "blkback: pvabi: %s%s\n", level <= PVABI_LOG_ERR ? "error: " : "", msg);
}

static void set_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

/* Runs until a signal ends it; SIGUSR1 only prints the counters. */
static int serve(struct blkback *b)
{
    for (;;) {
        int rc = blkback_run(b, -1);
        if (rc < 0)
            return 1;
        if (g_usr1) {
            g_usr1 = 0;
            blkback_log_stats(b);
            if (!g_term)
                continue;
        }
        return 0;
    }
}

int main(int argc, char **argv)
{
    struct cli c = { 0 };
    pvabi_ctx *ctx;
    int rc = parse_args(&c, argc, argv);

    if (rc != 0) {
        usage(rc > 0 ? stdout : stderr);
        return rc > 0 ? 0 : 2;
    }
    pvabi_log_set(NULL, pvabi_log, NULL, c.o.verbose ? PVABI_LOG_INFO : PVABI_LOG_WARN);
    rc = pvabi_open(&ctx, c.platform);
    if (rc < 0) {
        fprintf(stderr, "blkback: cannot open platform %s: %s\n",
                c.platform ? c.platform : "(default)", strerror(-rc));
        return 1;
    }
    set_signals();
    rc = blkback_create(ctx, &c.o, &g_b);
    if (rc < 0) {
        pvabi_close(ctx);
        return 1;
    }
    blkback_set_once(g_b, c.once);
    fprintf(stderr, "blkback: domain %u serving /local/domain/%u/backend/%s\n",
            pvabi_own_domid(ctx), pvabi_own_domid(ctx), c.o.type);
    rc = serve(g_b);
    blkback_log_stats(g_b);
    blkback_destroy(g_b);
    g_b = NULL;
    pvabi_close(ctx);
    return rc;
}
