/* SPDX-License-Identifier: MIT */
/*
 * consback_io.c - sinks, and moving bytes between them and the rings.
 *
 * Back-pressure: output is read from the `out` ring only into an empty hold
 * buffer, and the hold buffer is written to the (non-blocking) sink; while
 * the sink refuses bytes, the ring is not read, fills up, and the frontend's
 * writes wait.  Input is read from the pty or stdin only as much as the
 * `in` ring has room for, so a guest that does not read its input stops the
 * reader of the pty instead of losing keystrokes.
 */
/* ptsname_r and cfmakeraw need _GNU_SOURCE, which the build defines. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "consback.h"

static int stdin_eof;

void cb_log(const struct cb_con *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "consback: console %u/%u: %s\n", (unsigned)c->fe, c->devid, msg);
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ? -errno : 0;
}

/* A pty in raw mode (bytes pass unchanged, no echo).  We keep the slave
 * open ourselves: the master then never reads as hung up while no user is
 * attached, and output waits in the tty's buffer (then back-pressure). */
static int open_pty(struct cb_con *c)
{
    struct termios t;
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);

    if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0 || ptsname_r(m, c->pty, sizeof(c->pty)))
        goto fail;
    c->slave_fd = open(c->pty, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (c->slave_fd < 0 || tcgetattr(c->slave_fd, &t) < 0)
        goto fail;
    cfmakeraw(&t);
    if (tcsetattr(c->slave_fd, TCSANOW, &t) < 0 || set_nonblock(m) < 0)
        goto fail;
    c->out_fd = c->in_fd = m;
    c->owns_fds = 1;
    return 0;
fail:
    cb_log(c, "creating a pty: %s", strerror(errno));
    if (m >= 0)
        close(m);
    if (c->slave_fd >= 0)
        close(c->slave_fd);
    c->slave_fd = -1;
    c->pty[0] = '\0';
    return -1;
}

/* Where xenconsoled publishes it, so tools find the pty the same way. */
static void publish_pty(struct cb_con *c)
{
    char path[128];
    int rc;

    snprintf(path, sizeof(path), "%s/tty", c->bpath);
    rc = pvabi_store_write(c->cb->ctx, PVABI_STORE_TXN_NONE, path, c->pty);
    if (rc < 0)
        cb_log(c, "writing tty: %s", strerror(-rc));
    printf("console %u/%u pty %s\n", (unsigned)c->fe, c->devid, c->pty);
    fflush(stdout);
}

static int open_log(struct cb_con *c)
{
    char path[4096];
    const struct cb_opts *o = &c->cb->opts;

    if (!o->log_is_dir) {
        c->out_fd = c->cb->shared_fd;
        return 0;
    }
    snprintf(path, sizeof(path), "%s/console-%u-%u.log", o->log_path, (unsigned)c->fe, c->devid);
    c->out_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (c->out_fd < 0) {
        cb_log(c, "opening %s: %s", path, strerror(errno));
        return -1;
    }
    c->owns_fds = 1;
    return 0;
}

int cb_io_open(struct cb_con *c)
{
    switch (c->cb->opts.mode) {
    case CB_LOG:
        return open_log(c);
    case CB_PTY:
        if (open_pty(c) < 0)
            return -1;
        publish_pty(c);
        return 0;
    case CB_STDIO:
        c->out_fd = 1;
        c->in_fd = 0;
        return 0;
    }
    return -1;
}

void cb_io_close(struct cb_con *c)
{
    if (c->owns_fds && c->out_fd >= 0)
        close(c->out_fd);
    if (c->slave_fd >= 0)
        close(c->slave_fd);
    c->out_fd = c->in_fd = c->slave_fd = -1;
}

/* Write what the hold buffer has; returns 1 when it is empty. */
static int flush(struct cb_con *c)
{
    while (c->hold_off < c->hold_len && c->out_fd >= 0) {
        ssize_t w = write(c->out_fd, c->hold + c->hold_off, c->hold_len - c->hold_off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            return 0;
        if (w < 0) {
            cb_log(c, "writing the output: %s; output dropped from now on", strerror(errno));
            c->out_fd = -1;
            break;
        }
        c->hold_off += (size_t)w;
    }
    c->hold_off = c->hold_len = 0;
    return 1;
}

/* The guest's output: ring -> hold -> sink, while the sink takes it.  At
 * most 16 rings per call, for fairness between consoles; c->busy then says
 * to come back at once, as no event will (the frontend notified already). */
static int pump_out(struct cb_con *c)
{
    c->busy = 0;
    for (int round = 0; flush(c); round++) {
        if (round == 16) {
            c->busy = 1;
            break;
        }
        ssize_t n = pvabi_flexring_read(c->out, c->hold, CB_OUT_RING);
        if (n < 0)
            return (int)n;
        if (n == 0)
            break;
        c->hold_len = (size_t)n;
        c->bytes_out += (unsigned long long)n;
        /* The flex ring published out_cons (release); tell the frontend
         * there is room, as the console protocol expects. */
        pvabi_evtchn_notify(c->cb->ctx, c->port);
    }
    return 0;
}

static int input_allowed(const struct cb_con *c)
{
    if (c->in_fd < 0)
        return 0;
    return c->cb->opts.mode != CB_STDIO || (!stdin_eof && cb_io_stdin_owner(c->cb) == c);
}

/* Input: only what the `in` ring has room for is read from the source. */
static int pump_in(struct cb_con *c)
{
    char buf[1024];
    ssize_t space = pvabi_flexring_space(c->in), r;

    if (space <= 0 || !input_allowed(c))
        return space < 0 ? (int)space : 0;
    r = read(c->in_fd, buf, (size_t)space < sizeof(buf) ? (size_t)space : sizeof(buf));
    if (r == 0 && c->cb->opts.mode == CB_STDIO)
        stdin_eof = 1;
    if (r <= 0)
        return 0; /* EAGAIN; EIO from a pty without a user */
    ssize_t w = pvabi_flexring_write(c->in, buf, (size_t)r);
    if (w < 0)
        return (int)w;
    c->bytes_in += (unsigned long long)w;
    pvabi_evtchn_notify(c->cb->ctx, c->port);
    return 0;
}

int cb_io_pump(struct cb_con *c)
{
    if (!c->map) {
        c->busy = 0;
        flush(c);
        return 0;
    }
    if (pump_out(c) < 0) {
        cb_dev_fail(c, "the frontend broke the out ring's indices");
        return -EPROTO;
    }
    if (pump_in(c) < 0) {
        cb_dev_fail(c, "the frontend broke the in ring's indices");
        return -EPROTO;
    }
    return 0;
}

/* Before unmapping: take everything left in the ring (room for a whole
 * ring is always there once the hold buffer is compacted), so a frontend
 * that writes and closes loses nothing. */
void cb_io_drain(struct cb_con *c)
{
    ssize_t n;

    flush(c);
    memmove(c->hold, c->hold + c->hold_off, c->hold_len - c->hold_off);
    c->hold_len -= c->hold_off;
    c->hold_off = 0;
    n = pvabi_flexring_read(c->out, c->hold + c->hold_len, sizeof(c->hold) - c->hold_len);
    if (n > 0) {
        c->hold_len += (size_t)n;
        c->bytes_out += (unsigned long long)n;
    }
    flush(c);
}

int cb_io_wants_out(const struct cb_con *c)
{
    return c->out_fd >= 0 && c->hold_off < c->hold_len;
}

int cb_io_wants_in(const struct cb_con *c)
{
    return c->map && input_allowed(c) && pvabi_flexring_space(c->in) > 0;
}

struct cb_con *cb_io_stdin_owner(struct consback *cb)
{
    for (struct cb_con *c = cb->cons; c; c = c->next)
        if (c->map)
            return c;
    return NULL;
}
