/* SPDX-License-Identifier: MIT */
/*
 * pvabi-hv: the embedded hypervisor of pvabi's `local` platform.  Each
 * process that connects to its socket is a domain; see docs/hv.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hv.h"
#include "xs.h"

static void usage(FILE *f)
{
    fputs("usage: pvabi-hv --socket PATH [--daemon] [--ready-fd N] [--exit-when-idle SECONDS]\n"
          "                [--privileged-domid N] [--allow-uid UID]... "
          "[--log-level warn|info|debug]\n"
          "                [--store-quota NAME=N]...\n"
          "  --socket PATH          listen there (its directory is made with mode 0700); the\n"
          "                         embedded xenstore listens on PATH.xenstore\n"
          "  --daemon               detach: double fork, new session, stdio to /dev/null\n"
          "  --ready-fd N           write one byte to fd N and close it once listening\n"
          "  --exit-when-idle SECS  exit after SECS seconds without any connection\n"
          "  --privileged-domid N   the domid of the privileged domain (default 0)\n"
          "  --allow-uid UID        a uid that may claim the privileged domid or connect as\n"
          "                         a toolstack (repeatable; default: the daemon's own uid)\n"
          "  --log-level LEVEL      what goes to stderr: warn (default), info or debug\n"
          "  --store-quota NAME=N   a store quota for each unprivileged domain (repeatable):\n"
          "                         nodes (1000), value-size (2048), watches (128),\n"
          "                         transactions (10), perms (5), transaction-nodes (1024),\n"
          "                         path-max (2048, at most 2048)\n",
          f);
}

/* A whole decimal number in [0, max], or -1. */
static long long parse_num(const char *s, long long max)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < 0 || v > max)
        return -1;
    return v;
}

static int parse_level(const char *s)
{
    static const char *const names[] = { "warn", "info", "debug" };

    for (int i = 0; i < 3; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

/* The socket path, made absolute: --daemon changes directory to /. */
static const char *absolute(const char *path, char *buf, size_t size)
{
    char cwd[PATH_MAX];

    if (path[0] == '/')
        return path;
    if (!getcwd(cwd, sizeof(cwd)) || snprintf(buf, size, "%s/%s", cwd, path) >= (int)size)
        return NULL;
    return buf;
}

static int parse_opt(int c, const char *arg, struct hv_config *cfg)
{
    long long v = 0;

    switch (c) {
    case 's':
        cfg->socket = arg;
        return 0;
    case 'd':
        cfg->daemon = true;
        return 0;
    case 'r':
        v = parse_num(arg, INT_MAX);
        cfg->ready_fd = (int)v;
        return v < 0 || fcntl(cfg->ready_fd, F_GETFD) < 0 ? -1 : 0;
    case 'i':
        v = parse_num(arg, 365LL * 24 * 3600);
        cfg->idle_secs = (unsigned)v;
        return v <= 0 ? -1 : 0;
    case 'p':
        v = parse_num(arg, HV_DOMID_LIMIT - 1);
        cfg->priv_domid = (uint32_t)v;
        return v < 0 ? -1 : 0;
    case 'u':
        v = parse_num(arg, UINT32_MAX - 1);
        if (v < 0 || cfg->nallow >= HV_ALLOW_MAX)
            return -1;
        cfg->allow_uid[cfg->nallow++] = (uid_t)v;
        return 0;
    case 'l':
        hv_log_level = parse_level(arg);
        return hv_log_level < 0 ? -1 : 0;
    case 'q':
        return xs_quota_parse(arg);
    }
    return -1;
}

static int parse_args(int argc, char **argv, struct hv_config *cfg)
{
    static const struct option opts[] = {
        { "socket", required_argument, NULL, 's' },
        { "daemon", no_argument, NULL, 'd' },
        { "ready-fd", required_argument, NULL, 'r' },
        { "exit-when-idle", required_argument, NULL, 'i' },
        { "privileged-domid", required_argument, NULL, 'p' },
        { "allow-uid", required_argument, NULL, 'u' },
        { "log-level", required_argument, NULL, 'l' },
        { "store-quota", required_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int c, idx;

    while ((c = getopt_long(argc, argv, "", opts, &idx)) != -1) {
        if (c == 'h')
            usage(stdout), exit(0);
        if (c == '?' || parse_opt(c, optarg, cfg) < 0) {
            if (c != '?')
                fprintf(stderr, "pvabi-hv: bad value for --%s: %s\n", opts[idx].name, optarg);
            return -1;
        }
    }
    if (optind < argc)
        return fprintf(stderr, "pvabi-hv: unexpected argument: %s\n", argv[optind]), -1;
    if (!cfg->socket)
        return fprintf(stderr, "pvabi-hv: --socket PATH is required\n"), -1;
    return 0;
}

int main(int argc, char **argv)
{
    struct hv_config cfg = { .ready_fd = -1 };
    char path[PATH_MAX];

    if (parse_args(argc, argv, &cfg) < 0) {
        usage(stderr);
        return 2;
    }
    cfg.socket = absolute(cfg.socket, path, sizeof(path));
    if (!cfg.socket) {
        fprintf(stderr, "pvabi-hv: cannot make the socket path absolute\n");
        return 1;
    }
    if (cfg.nallow == 0)
        cfg.allow_uid[cfg.nallow++] = getuid();
    /* The ready fd must not leak into anything we might exec. */
    if (cfg.ready_fd >= 0)
        fcntl(cfg.ready_fd, F_SETFD, FD_CLOEXEC);
    return hv_server_run(&cfg);
}
