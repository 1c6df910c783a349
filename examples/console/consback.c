/* SPDX-License-Identifier: MIT */
/*
 * consback - a console backend daemon (xen/io/console.h over xenbus).
 *
 *   consback [--platform SPEC] [--type TYPE] [--frontend DOMID] [--devid N]
 *            (--log PATH | --pty | --stdio) [--once] [--verbose]
 *
 * Serves the console devices under /local/domain/<own>/backend/console
 * (devices added or removed while running are picked up or dropped) and
 * relays each one's output to its sink.  See docs/console.md.
 * Exit 0 clean (SIGTERM/SIGINT, or --once done), 1 error, 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "consback.h"

static int sig_pipe[2] = { -1, -1 };

static void on_signal(int sig)
{
    int saved = errno;
    char b = (char)sig;

    if (write(sig_pipe[1], &b, 1) < 0) {
        /* the pipe is full: a stop is already pending */
    }
    errno = saved;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: consback [--platform SPEC] [--type TYPE] [--frontend DOMID] [--devid N]\n"
               "                (--log PATH | --pty | --stdio) [--once] [--verbose]\n"
               "  --log PATH   append each console's output to PATH (a directory:\n"
               "               one file console-FE-DEVID.log per console)\n"
               "  --pty        one pty per console, both ways; its path is printed and\n"
               "               written to the backend node `tty`\n"
               "  --stdio      output to stdout, stdin to the first connected console\n"
               "  --frontend DOMID, --devid N   serve only these\n"
               "  --type TYPE  the device type to serve (default console)\n"
               "  --once       exit when no console is connected any more (after one was)\n");
}

static int parse_num(const char *s, long max, long *v)
{
    char *end;

    errno = 0;
    *v = strtol(s, &end, 10);
    return errno || !*s || *end || *v < 0 || *v > max ? -1 : 0;
}

static int set_mode(struct cb_opts *o, enum cb_mode m)
{
    if (o->mode && o->mode != m)
        return -1; /* one sink per daemon */
    o->mode = m;
    return 0;
}

static int parse_opt(struct cb_opts *o, int opt, const char **platform)
{
    long v;

    switch (opt) {
    case 'p':
        *platform = optarg;
        return 0;
    case 'f':
        if (parse_num(optarg, 32751, &v) < 0)
            return -1;
        o->frontend = (int)v;
        return 0;
    case 'd':
        return parse_num(optarg, 0xffffffffl, &o->devid);
    case 'l':
        o->log_path = optarg;
        return set_mode(o, CB_LOG);
    case 't':
        return set_mode(o, CB_PTY);
    case 's':
        return set_mode(o, CB_STDIO);
    case 'o':
        o->once = 1;
        return 0;
    case 'T':
        o->type = optarg;
        return strlen(optarg) < 24 && !strchr(optarg, '/') ? 0 : -1;
    case 'v':
        o->verbose = 1;
        return 0;
    }
    return -1;
}

static int parse(int argc, char **argv, struct cb_opts *o, const char **platform)
{
    static const struct option opts[] = { { "platform", required_argument, NULL, 'p' },
                                          { "frontend", required_argument, NULL, 'f' },
                                          { "devid", required_argument, NULL, 'd' },
                                          { "log", required_argument, NULL, 'l' },
                                          { "pty", no_argument, NULL, 't' },
                                          { "stdio", no_argument, NULL, 's' },
                                          { "once", no_argument, NULL, 'o' },
                                          { "verbose", no_argument, NULL, 'v' },
                                          { "type", required_argument, NULL, 'T' },
                                          { "help", no_argument, NULL, 'h' },
                                          { NULL, 0, NULL, 0 } };
    int opt;

    while ((opt = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
        if (opt == 'h') {
            usage(stdout);
            exit(0);
        }
        if (parse_opt(o, opt, platform) < 0)
            return -1;
    }
    return optind == argc && o->mode ? 0 : -1;
}

static int open_sinks(struct consback *cb)
{
    struct stat st;

    cb->shared_fd = -1;
    if (cb->opts.mode == CB_STDIO)
        return fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK) < 0 ||
                       fcntl(1, F_SETFL, fcntl(1, F_GETFL) | O_NONBLOCK) < 0
                   ? -1
                   : 0;
    if (cb->opts.mode != CB_LOG)
        return 0;
    cb->opts.log_is_dir = stat(cb->opts.log_path, &st) == 0 && S_ISDIR(st.st_mode);
    if (cb->opts.log_is_dir)
        return 0;
    cb->shared_fd = open(cb->opts.log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (cb->shared_fd < 0)
        fprintf(stderr, "consback: %s: %s\n", cb->opts.log_path, strerror(errno));
    return cb->shared_fd < 0 ? -1 : 0;
}

static unsigned count_cons(const struct consback *cb)
{
    unsigned n = 0;

    for (const struct cb_con *c = cb->cons; c; c = c->next)
        n++;
    return n;
}

/* pfd[0] the context, pfd[1] signals, then the sinks that need watching. */
static nfds_t fill_pollfds(struct consback *cb, struct pollfd *pfd)
{
    nfds_t n = 2;

    pfd[0] = (struct pollfd){ .fd = pvabi_fd(cb->ctx), .events = POLLIN };
    pfd[1] = (struct pollfd){ .fd = sig_pipe[0], .events = POLLIN };
    for (struct cb_con *c = cb->cons; c; c = c->next) {
        if (cb_io_wants_out(c))
            pfd[n++] = (struct pollfd){ .fd = c->out_fd, .events = POLLOUT };
        if (cb_io_wants_in(c))
            pfd[n++] = (struct pollfd){ .fd = c->in_fd, .events = POLLIN };
    }
    return n;
}

static int handle_events(struct consback *cb)
{
    pvabi_port ports[64];
    int n, rc = pvabi_store_process(cb->ctx);

    if (rc < 0)
        return rc;
    if (cb->dirty && (rc = cb_dev_scan(cb)) < 0)
        return rc;
    while ((n = pvabi_evtchn_pending(cb->ctx, ports, 64)) > 0)
        for (int i = 0; i < n; i++)
            cb_dev_event(cb, ports[i]);
    if (n < 0)
        return n;
    for (struct cb_con *c = cb->cons; c; c = c->next)
        cb_io_pump(c);
    return 0;
}

static int once_done(struct consback *cb)
{
    static int connected_once;

    for (const struct cb_con *c = cb->cons; c; c = c->next) {
        if (c->map)
            connected_once = 1;
        if (c->map || cb_io_wants_out(c))
            return 0;
    }
    return cb->opts.once && connected_once;
}

static int any_busy(const struct consback *cb)
{
    for (const struct cb_con *c = cb->cons; c; c = c->next)
        if (c->busy)
            return 1;
    return 0;
}

/* Room for fill_pollfds(): the array grows with the number of devices. */
static struct pollfd *pollfds(struct consback *cb)
{
    size_t need = 2 + 2 * (size_t)count_cons(cb);

    if (need > cb->pfd_room) {
        struct pollfd *p = realloc(cb->pfd, need * sizeof(*p));
        if (!p)
            return NULL;
        cb->pfd = p;
        cb->pfd_room = need;
    }
    return cb->pfd;
}

static int run(struct consback *cb)
{
    for (;;) {
        struct pollfd *pfd = pollfds(cb);
        if (!pfd) {
            fprintf(stderr, "consback: out of memory\n");
            return 1;
        }
        nfds_t n = fill_pollfds(cb, pfd);
        if (poll(pfd, n, any_busy(cb) ? 0 : -1) < 0 && errno != EINTR) {
            fprintf(stderr, "consback: poll: %s\n", strerror(errno));
            return 1;
        }
        if (pfd[1].revents & POLLIN)
            return 0;
        int rc = handle_events(cb);
        if (rc < 0) {
            fprintf(stderr, "consback: %s\n", strerror(-rc));
            return 1;
        }
        if (once_done(cb))
            return 0;
    }
}

static void report(struct consback *cb)
{
    for (const struct cb_con *c = cb->cons; c; c = c->next)
        cb_log(c, "%llu bytes out, %llu bytes in", c->bytes_out, c->bytes_in);
}

static int serve(struct consback *cb)
{
    int rc = cb_dev_init(cb);

    if (rc < 0) {
        fprintf(stderr, "consback: watching %s: %s\n", cb->root, strerror(-rc));
        return 1;
    }
    fprintf(stderr, "consback: serving %s\n", cb->root);
    rc = handle_events(cb) < 0 ? 1 : run(cb);
    report(cb);
    cb_dev_free_all(cb);
    return rc;
}

int main(int argc, char **argv)
{
    struct consback cb = { .opts = { .frontend = -1, .devid = -1, .type = "console" } };
    struct sigaction sa = { .sa_handler = on_signal };
    const char *platform = NULL;

    if (parse(argc, argv, &cb.opts, &platform) < 0) {
        usage(stderr);
        return 2;
    }
    if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0 || open_sinks(&cb) < 0)
        return 1;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN); /* a reader of the pty or stdout that leaves */
    int rc = pvabi_open(&cb.ctx, platform);
    if (rc < 0) {
        fprintf(stderr, "consback: pvabi_open: %s\n", strerror(-rc));
        return 1;
    }
    rc = serve(&cb);
    pvabi_close(cb.ctx);
    free(cb.pfd);
    if (cb.shared_fd >= 0)
        close(cb.shared_fd);
    return rc;
}
