/* SPDX-License-Identifier: MIT */
/*
 * blkfront-cli - reads, writes, fills and verifies byte ranges of a vbd
 * through the blkfront library, with --depth operations in flight.
 * docs/blkfront.md has the usage; `blkfront-cli --help` the summary.
 * Exit status: 0 done; 1 an error or a verify mismatch; 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blkfront-cli.h"

static const char usage_text[] =
    "usage: blkfront-cli [OPTIONS] COMMAND [ARGS]\n"
    "Commands (sizes and offsets in bytes, K/M/G suffixes allowed):\n"
    "  info                      the device's parameters\n"
    "  read OFFSET LEN           write the range to stdout\n"
    "  write OFFSET [LEN]        write stdin (LEN bytes, or until EOF) at OFFSET\n"
    "  fill OFFSET LEN SEED      write the deterministic pattern of SEED\n"
    "  verify OFFSET LEN SEED    check the pattern; exit 1 at the first bad byte\n"
    "  flush                     flush the backend's disk cache\n"
    "  discard OFFSET LEN        discard (reads back zeros on pvabi's blkback)\n"
    "Options:\n"
    "  --platform SPEC     xen, local, local:SOCKET (default: $PVABI_PLATFORM, auto)\n"
    "  --devid N           virtual-device number (default 51712, xvda)\n"
    "  --ring-order N      ring of 2^N pages, 0..4 (default 4)\n"
    "  --max-indirect N    segments per indirect request, 0 = none (default 256)\n"
    "  --no-persistent     do not ask for persistent grants\n"
    "  --pool-pages N      granted data pages (default 1024)\n"
    "  --depth N           operations in flight (default 16)\n"
    "  --chunk SIZE        bytes per operation (default 64K)\n"
    "  --timeout-ms N      handshake and I/O timeout (default 10000)\n"
    "  -v, --verbose       connection events on stderr\n"
    "  -q, --quiet         no summary\n";

static int usage(const char *why)
{
    if (why)
        fprintf(stderr, "blkfront-cli: %s\n", why);
    fputs(usage_text, stderr);
    return 2;
}

int cli_parse_size(const char *s, uint64_t *out)
{
    char *end;
    unsigned shift = 0;

    if (!s || *s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    uint64_t v = strtoull(s, &end, 0);
    if (errno)
        return -EINVAL;
    if (*end == 'K' || *end == 'k')
        shift = 10;
    else if (*end == 'M' || *end == 'm')
        shift = 20;
    else if (*end == 'G' || *end == 'g')
        shift = 30;
    else if (*end)
        return -EINVAL;
    if (shift && end[1])
        return -EINVAL;
    if (v > (UINT64_MAX >> shift))
        return -ERANGE;
    *out = v << shift;
    return 0;
}

static int parse_uint(const char *s, unsigned max, unsigned *out)
{
    uint64_t v;

    if (cli_parse_size(s, &v) < 0 || v > max)
        return -EINVAL;
    *out = (unsigned)v;
    return 0;
}

enum {
    OPT_PLATFORM = 256,
    OPT_DEVID,
    OPT_RING,
    OPT_IND,
    OPT_NOPERS,
    OPT_POOL,
    OPT_DEPTH,
    OPT_CHUNK,
    OPT_TIMEOUT
};

static const struct option long_opts[] = {
    { "platform", required_argument, NULL, OPT_PLATFORM },
    { "devid", required_argument, NULL, OPT_DEVID },
    { "ring-order", required_argument, NULL, OPT_RING },
    { "max-indirect", required_argument, NULL, OPT_IND },
    { "no-persistent", no_argument, NULL, OPT_NOPERS },
    { "pool-pages", required_argument, NULL, OPT_POOL },
    { "depth", required_argument, NULL, OPT_DEPTH },
    { "chunk", required_argument, NULL, OPT_CHUNK },
    { "timeout-ms", required_argument, NULL, OPT_TIMEOUT },
    { "verbose", no_argument, NULL, 'v' },
    { "quiet", no_argument, NULL, 'q' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

static int parse_opt(struct cli *c, int o, const char *arg)
{
    uint64_t v;
    unsigned u;

    switch (o) {
    case OPT_PLATFORM:
        c->platform = arg;
        return 0;
    case OPT_DEVID:
        return parse_uint(arg, 0xffffffu, &c->devid);
    case OPT_RING:
        return parse_uint(arg, 4, &c->opts.ring_order);
    case OPT_IND:
        return parse_uint(arg, 4096, &c->opts.max_indirect);
    case OPT_NOPERS:
        c->opts.persistent = 0;
        return 0;
    case OPT_POOL:
        return parse_uint(arg, 8000, &c->opts.pool_pages);
    case OPT_DEPTH:
        return parse_uint(arg, 4096, &c->depth) < 0 || c->depth == 0 ? -EINVAL : 0;
    case OPT_CHUNK:
        if (cli_parse_size(arg, &v) < 0 || v == 0 || v % 512 || v > (64u << 20))
            return -EINVAL;
        c->chunk = (size_t)v;
        return 0;
    case OPT_TIMEOUT:
        if (parse_uint(arg, 3600000, &u) < 0)
            return -EINVAL;
        c->opts.timeout_ms = (int)u;
        return 0;
    case 'v':
        c->opts.verbose = 1;
        return 0;
    case 'q':
        c->quiet = 1;
        return 0;
    default:
        return -EINVAL;
    }
}

/* The command's positional arguments: how many, and which are sizes. */
static int parse_command(struct cli *c, int argc, char **argv)
{
    static const struct {
        const char *name;
        int cmd, min, max;
    } cmds[] = {
        { "info", CMD_INFO, 0, 0 },       { "read", CMD_READ, 2, 2 },
        { "write", CMD_WRITE, 1, 2 },     { "fill", CMD_FILL, 3, 3 },
        { "verify", CMD_VERIFY, 3, 3 },   { "flush", CMD_FLUSH, 0, 0 },
        { "discard", CMD_DISCARD, 2, 2 },
    };
    uint64_t *dst[] = { &c->offset, &c->len, &c->seed };

    if (argc < 1)
        return usage("no command");
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        if (strcmp(argv[0], cmds[i].name) != 0)
            continue;
        if (argc - 1 < cmds[i].min || argc - 1 > cmds[i].max)
            return usage("wrong number of arguments");
        c->cmd = cmds[i].cmd;
        c->has_len = argc - 1 >= 2;
        for (int a = 1; a < argc; a++)
            if (cli_parse_size(argv[a], dst[a - 1]) < 0)
                return usage("bad number");
        return 0;
    }
    return usage("unknown command");
}

static int parse_args(struct cli *c, int argc, char **argv)
{
    int o;

    blkfront_opts_init(&c->opts);
    c->devid = 51712;
    c->depth = 16;
    c->chunk = 64 * 1024;
    opterr = 0;
    while ((o = getopt_long(argc, argv, "vqh", long_opts, NULL)) != -1) {
        if (o == 'h') {
            fputs(usage_text, stdout);
            exit(0);
        }
        if (o == '?' || parse_opt(c, o, optarg) < 0)
            return usage(o == '?' ? "unknown option" : "bad option value");
    }
    return parse_command(c, argc - optind, argv + optind);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void summary(const struct cli *c, double secs)
{
    struct blkfront_stats st;
    static const char *names[] = { "info", "read", "write", "fill", "verify", "flush", "discard" };

    if (c->quiet || !c->bf)
        return;
    blkfront_stats(c->bf, &st);
    double mbs = secs > 0 ? (double)c->bytes / secs / 1e6 : 0;
    fprintf(stderr,
            "blkfront-cli: %s: %" PRIu64 " bytes, %" PRIu64 " operations, %" PRIu64
            " requests (%" PRIu64 " indirect), %.3f s, %.1f MB/s\n",
            names[c->cmd], c->bytes, st.ops, st.requests, st.indirect, secs, mbs);
}

static void print_info(const struct blkfront *bf)
{
    const struct blkfront_info *in = blkfront_info(bf);

    printf("devid: %u\nbackend-id: %u\nsize: %" PRIu64 "\nsectors: %" PRIu64 "\n", in->devid,
           (unsigned)in->backend_id, blkfront_size(bf), in->sectors);
    printf("sector-size: %u\nphysical-sector-size: %u\nreadonly: %d\n", in->sector_size,
           in->physical_sector_size, in->readonly);
    printf("flush: %d\nbarrier: %d\ndiscard: %d\ndiscard-granularity: %u\n", in->flush, in->barrier,
           in->discard, in->discard_granularity);
    printf("ring-pages: %u\nring-slots: %u\nmax-segments: %u\nindirect: %d\npersistent: %d\n",
           1u << in->ring_order, in->ring_slots, in->max_segments, in->indirect, in->persistent);
    printf("pool-pages: %u\n", in->pool_pages);
}

static int run(struct cli *c)
{
    switch (c->cmd) {
    case CMD_INFO:
        print_info(c->bf);
        return 0;
    case CMD_FLUSH:
        return blkfront_flush(c->bf);
    case CMD_DISCARD:
        c->bytes = c->len;
        return blkfront_discard(c->bf, c->offset, c->len);
    default:
        return cli_transfer(c);
    }
}

int main(int argc, char **argv)
{
    struct cli c;
    pvabi_ctx *ctx;
    int rc;

    memset(&c, 0, sizeof(c));
    rc = parse_args(&c, argc, argv);
    if (rc)
        return rc;
    rc = pvabi_open(&ctx, c.platform);
    if (rc < 0) {
        fprintf(stderr, "blkfront-cli: cannot open the platform: %s\n", strerror(-rc));
        return 1;
    }
    rc = blkfront_open(ctx, c.devid, &c.opts, &c.bf);
    if (rc < 0) {
        fprintf(stderr, "blkfront-cli: cannot connect to vbd %u: %s\n", c.devid, strerror(-rc));
        pvabi_close(ctx);
        return 1;
    }
    double t0 = now_s();
    rc = run(&c);
    double secs = now_s() - t0;
    if (rc < 0 && rc != -EILSEQ)
        fprintf(stderr, "blkfront-cli: %s\n", strerror(-rc));
    summary(&c, secs);
    int rc2 = blkfront_close(c.bf);
    if (rc2 < 0)
        fprintf(stderr, "blkfront-cli: close: %s\n", strerror(-rc2));
    pvabi_close(ctx);
    return rc < 0 || rc2 < 0 ? 1 : 0;
}
