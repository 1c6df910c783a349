/* SPDX-License-Identifier: MIT */
/*
 * consfront - a console frontend on the command line (see consfront.h).
 *
 *   consfront [--platform SPEC] [--type TYPE] [--devid N] [--timeout-ms N] write TEXT
 *   consfront [...] cat     stdin to the console, console input to stdout
 *   consfront [...] echo    console input written back to the console
 *
 * Exit 0 done, 1 error or timeout, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "consfront.h"

struct cli {
    const char *platform;
    const char *type;
    unsigned devid;
    int timeout_ms;
    const char *cmd;
    const char *text;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: consfront [--platform SPEC] [--type TYPE] [--devid N] [--timeout-ms N] "
               "write TEXT | cat | echo\n"
               "  write TEXT  write TEXT to the console (no newline added)\n"
               "  cat         stdin to the console, console input to stdout\n"
               "  echo        console input written back to the console\n"
               "  --devid N   console device id (>= 1, default 1)\n"
               "  --type TYPE device type (default console)\n"
               "  --timeout-ms N  handshake, and longest stall of a write (default 5000)\n");
}

static int parse_uint(const char *s, unsigned long max, unsigned long *v)
{
    char *end;

    errno = 0;
    *v = strtoul(s, &end, 10);
    return (errno || !*s || *end || *v > max || *s == '-') ? -1 : 0;
}

static int parse(int argc, char **argv, struct cli *c)
{
    static const struct option opts[] = { { "platform", required_argument, NULL, 'p' },
                                          { "devid", required_argument, NULL, 'd' },
                                          { "timeout-ms", required_argument, NULL, 't' },
                                          { "type", required_argument, NULL, 'T' },
                                          { "help", no_argument, NULL, 'h' },
                                          { NULL, 0, NULL, 0 } };
    unsigned long v;
    int o;

    while ((o = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        if (o == 'p')
            c->platform = optarg;
        else if (o == 'T')
            c->type = optarg;
        else if (o == 'd' && parse_uint(optarg, 65535, &v) == 0 && v > 0)
            c->devid = (unsigned)v;
        else if (o == 't' && parse_uint(optarg, 3600000, &v) == 0)
            c->timeout_ms = (int)v;
        else if (o == 'h') {
            usage(stdout);
            exit(0);
        } else
            return -1;
    }
    if (optind >= argc)
        return -1;
    c->cmd = argv[optind++];
    if (strcmp(c->cmd, "write") == 0 && optind < argc)
        c->text = argv[optind++];
    else if (strcmp(c->cmd, "cat") != 0 && strcmp(c->cmd, "echo") != 0)
        return -1;
    return optind == argc ? 0 : -1;
}

static int cmd_write(consfront *cf, const struct cli *c)
{
    size_t len = strlen(c->text);
    ssize_t n = consfront_write(cf, c->text, len, c->timeout_ms);

    if (n == (ssize_t)len)
        return 0;
    fprintf(stderr, "consfront: write: %s (%zd of %zu bytes written)\n",
            n < 0 ? strerror((int)-n) : "timed out", n < 0 ? 0 : n, len);
    return 1;
}

/* Console input to @fd, without waiting. */
static int drain_input(consfront *cf, int fd)
{
    char buf[1024];
    ssize_t n;

    while ((n = consfront_read(cf, buf, sizeof(buf), 0)) > 0)
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(fd, buf + off, (size_t)(n - off));
            if (w < 0 && errno != EINTR)
                return -errno;
            off += w > 0 ? w : 0;
        }
    return n == -ETIMEDOUT ? 0 : (int)n;
}

struct pending {
    char buf[4096];
    size_t off, len;
    int eof;
};

/* Move what fits now from stdin's buffer into the ring. */
static int push(consfront *cf, struct pending *p)
{
    ssize_t n = consfront_write(cf, p->buf + p->off, p->len - p->off, 0);

    if (n < 0 && n != -ETIMEDOUT)
        return (int)n;
    if (n > 0)
        p->off += (size_t)n;
    if (p->off == p->len)
        p->off = p->len = 0;
    return 0;
}

static int read_stdin(struct pending *p)
{
    ssize_t n = read(0, p->buf, sizeof(p->buf));

    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    if (n == 0)
        p->eof = 1;
    p->len = (size_t)n;
    return 0;
}

/* After poll: process events, forward input, push stdin's chunk.  stdin is
 * read again only once the previous chunk is in the ring, so back-pressure
 * reaches whoever writes our stdin. */
static int cat_step(consfront *cf, struct pending *p)
{
    int rc = consfront_wait(cf, 0);

    if (rc < 0 && rc != -ETIMEDOUT)
        return rc;
    if ((rc = drain_input(cf, 1)) < 0)
        return rc;
    return push(cf, p);
}

static int cmd_cat(consfront *cf, pvabi_ctx *ctx, const struct cli *c)
{
    struct pending p = { .len = 0 };
    int rc = 0;

    while (!stop && !(p.eof && p.len == 0)) {
        struct pollfd pf[2] = { { .fd = pvabi_fd(ctx), .events = POLLIN },
                                { .fd = (p.len || p.eof) ? -1 : 0, .events = POLLIN } };
        if (poll(pf, 2, c->timeout_ms) == 0 && p.len) {
            fprintf(stderr, "consfront: cat: the console did not take input for %d ms\n",
                    c->timeout_ms);
            return 1;
        }
        if ((pf[1].revents & (POLLIN | POLLHUP)) && (rc = read_stdin(&p)) < 0)
            break;
        if ((rc = cat_step(cf, &p)) < 0)
            break;
    }
    if (rc < 0)
        fprintf(stderr, "consfront: cat: %s\n", strerror(-rc));
    return rc < 0 ? 1 : 0;
}

static int cmd_echo(consfront *cf)
{
    char buf[1024];

    while (!stop) {
        ssize_t n = consfront_read(cf, buf, sizeof(buf), 1000);
        if (n == -ETIMEDOUT || n == -EINTR)
            continue;
        if (n == -ESHUTDOWN)
            return 0; /* the backend closed the console */
        if (n < 0) {
            fprintf(stderr, "consfront: echo: %s\n", strerror((int)-n));
            return 1;
        }
        /* A stalled backend blocks the echo: back-pressure, not loss. */
        while (!stop && consfront_write(cf, buf, (size_t)n, 1000) == -ETIMEDOUT)
            ;
    }
    return 0;
}

static int run(pvabi_ctx *ctx, const struct cli *c)
{
    consfront *cf;
    int rc = consfront_open(ctx, c->type, c->devid, c->timeout_ms, &cf);

    if (rc < 0) {
        fprintf(stderr, "consfront: console %u: %s\n", c->devid, strerror(-rc));
        return 1;
    }
    fprintf(stderr, "consfront: console %u connected\n", c->devid);
    if (strcmp(c->cmd, "write") == 0)
        rc = cmd_write(cf, c);
    else if (strcmp(c->cmd, "cat") == 0)
        rc = cmd_cat(cf, ctx, c);
    else
        rc = cmd_echo(cf);
    int crc = consfront_close(cf, c->timeout_ms);
    if (crc < 0 && crc != -ESHUTDOWN)
        fprintf(stderr, "consfront: close: %s\n", strerror(-crc));
    return rc;
}

int main(int argc, char **argv)
{
    struct cli c = { .devid = 1, .timeout_ms = 5000 };
    struct sigaction sa = { .sa_handler = on_signal };
    pvabi_ctx *ctx;

    if (parse(argc, argv, &c) < 0) {
        usage(stderr);
        return 2;
    }
    sigaction(SIGTERM, &sa, NULL); /* no SA_RESTART: waits end with EINTR */
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    int rc = pvabi_open(&ctx, c.platform);
    if (rc < 0) {
        fprintf(stderr, "consfront: pvabi_open: %s\n", strerror(-rc));
        return 1;
    }
    rc = run(ctx, &c);
    pvabi_close(ctx);
    return rc;
}
