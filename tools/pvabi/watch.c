/* SPDX-License-Identifier: MIT */
/*
 * `pvabi store watch`: prints the store's watch events until a count, a
 * timeout or a signal.  The wait is one poll() on the context's fd and a
 * signalfd, so that SIGINT/SIGTERM end it cleanly (the --json document
 * gets closed) without a race between checking a flag and sleeping.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

struct watch_run {
    struct cli *cli;
    unsigned long count;  /* --count; 0: no limit */
    long long timeout_ms; /* --timeout; -1: none */
    unsigned long seen;
};

struct watch_one {
    struct watch_run *run;
    const char *token; /* the PATH as given */
    pvabi_watch *w;
};

static int on_opt(void *arg, int c, const char *val)
{
    struct watch_run *run = arg;
    char *end;

    if (c == 'c') {
        errno = 0;
        run->count = strtoul(val, &end, 10);
        return *val < '0' || *val > '9' || *end || errno || run->count == 0 ? -1 : 0;
    }
    double secs = strtod(val, &end);
    if (*end || end == val || !isfinite(secs) || secs < 0 || secs > 1e7)
        return -1;
    run->timeout_ms = llround(secs * 1000);
    return 0;
}

static void on_event(pvabi_ctx *ctx, const char *path, void *opaque)
{
    struct watch_one *one = opaque;
    struct watch_run *run = one->run;
    struct cli *cli = run->cli;

    (void)ctx;
    /* Several events may come in one batch: the count is exact. */
    if (run->count && run->seen >= run->count)
        return;
    run->seen++;
    if (cli->json) {
        json_obj(&cli->out);
        json_kstr(&cli->out, "path", path);
        json_kstr(&cli->out, "token", one->token);
        json_end(&cli->out);
    } else {
        printf("%s %s\n", path, one->token);
    }
    /* A reader of a pipe sees each event as it happens. */
    fflush(stdout);
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Until the count, the deadline or a signal.  Returns 0 done, 1 timed out,
 * -errno. */
static int wait_events(struct watch_run *run, int sigfd)
{
    long long deadline = run->timeout_ms >= 0 ? now_ms() + run->timeout_ms : -1;
    struct pollfd p[2] = { { .fd = pvabi_fd(run->cli->ctx), .events = POLLIN },
                           { .fd = sigfd, .events = POLLIN } };

    while (!run->count || run->seen < run->count) {
        long long left = deadline < 0 ? -1 : deadline - now_ms();
        if (deadline >= 0 && left <= 0)
            return 1;
        int rc = poll(p, 2, left < 0 ? -1 : left > INT_MAX ? INT_MAX : (int)left);
        if (rc < 0 && errno != EINTR)
            return -errno;
        if (rc > 0 && p[1].revents)
            return 0; /* SIGINT/SIGTERM: the user ended it */
        rc = pvabi_store_process(run->cli->ctx);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Sets the watches and waits.  Returns as wait_events(), or -errno with
 * *failed the path that could not be watched. */
static int watch_paths(struct watch_run *run, struct watch_one *ones, int n, int sigfd,
                       const char **failed)
{
    int rc = 0;

    for (int i = 0; i < n && rc == 0; i++) {
        rc = pvabi_store_watch(run->cli->ctx, ones[i].token, on_event, &ones[i], &ones[i].w);
        *failed = ones[i].token;
    }
    if (rc == 0)
        rc = wait_events(run, sigfd);
    for (int i = 0; i < n; i++)
        pvabi_store_unwatch(ones[i].w);
    return rc;
}

static void json_start(struct cli *cli, char **paths, int n)
{
    cli_json_begin(cli);
    if (!cli->json)
        return;
    json_obj(&cli->out);
    json_key(&cli->out, "watches");
    json_arr(&cli->out);
    for (int i = 0; i < n; i++)
        json_str(&cli->out, paths[i]);
    json_end(&cli->out);
    json_key(&cli->out, "events");
    json_arr(&cli->out);
    fflush(stdout);
}

static int report(struct watch_run *run, int rc, const char *failed)
{
    if (rc == 1 && run->count)
        return cli_fail_msg("store watch: timed out after %lu of %lu events", run->seen,
                            run->count);
    if (rc < 0)
        return cli_fail(rc, "store watch %s", failed);
    return CLI_OK;
}

static int run_watch(struct watch_run *run, char **paths, int n, int sigfd)
{
    struct watch_one *ones = cli_xmalloc((size_t)n * sizeof(*ones));
    const char *failed = "";
    int rc;

    for (int i = 0; i < n; i++)
        ones[i] = (struct watch_one){ .run = run, .token = paths[i] };
    json_start(run->cli, paths, n);
    rc = watch_paths(run, ones, n, sigfd, &failed);
    if (run->cli->json)
        json_finish(&run->cli->out);
    free(ones);
    return report(run, rc, failed);
}

int cli_store_watch(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
    static const struct cli_opt opts[] = {
        { "count", true, 'c' },
        { "timeout", true, 't' },
        { NULL, false, 0 },
    };
    struct watch_run run = { .cli = cli, .timeout_ms = -1 };
    int first = cli_parse(cli, cmd, argc, argv, opts, on_opt, &run, false), sigfd, rc;
    sigset_t sigs;

    if (first >= argc)
        cli_usage(cmd, "PATH missing");
    /* Blocked before the context exists, so that the library's threads
     * (libxenstore's reader) inherit the mask and the signalfd gets them. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigprocmask(SIG_BLOCK, &sigs, NULL);
    sigfd = signalfd(-1, &sigs, SFD_CLOEXEC);
    if (sigfd < 0)
        return cli_fail(errno, "store watch: signalfd");
    rc = cli_open(cli) == 0 ? run_watch(&run, argv + first, argc - first, sigfd) : CLI_FAIL;
    close(sigfd);
    return rc;
}
