/* SPDX-License-Identifier: MIT */
/*
 * blkback.c - the struct blkback: options, the event loop (one epoll set
 * holding the context's pvabi_fd() and a stop eventfd), device discovery
 * through a store watch on /local/domain/<own>/backend/<type>, and the
 * counters.
 */
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "bb.h"

void blkback_opts_default(struct blkback_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->type = "vbd";
    o->max_ring_order = BLKBACK_DEFAULT_RING_ORDER;
    o->max_indirect = BLKBACK_DEFAULT_MAX_INDIRECT;
    o->persistent = 1;
    o->max_persistent = BLKBACK_DEFAULT_MAX_PERSISTENT;
    o->grants = BLKBACK_GRANTS_COPY;
    o->spin_us = BLKBACK_DEFAULT_SPIN_US;
}

void bb_log(struct blkback *b, int level, const char *fmt, ...)
{
    char msg[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (b->o.log_fn)
        b->o.log_fn(b->o.log_opaque, level, msg);
    else
        fprintf(b->o.log_file ? b->o.log_file : stderr, "blkback: %s\n", msg);
}

struct bb_dev *bb_dev_by_port(struct blkback *b, pvabi_port port)
{
    for (struct bb_dev *d = b->devs; d; d = d->next)
        if (d->connected && d->port == port)
            return d;
    return NULL;
}

static struct bb_dev *dev_find(struct blkback *b, pvabi_domid fe, unsigned devid)
{
    for (struct bb_dev *d = b->devs; d; d = d->next)
        if (d->fe == fe && d->devid == devid)
            return d;
    return NULL;
}

/* A store name that is a plain decimal number <= @max (a peer may write anything). */
static int parse_num(const char *s, unsigned long max, unsigned long *out)
{
    char *end;

    if (!s[0] || s[0] < '0' || s[0] > '9' || strlen(s) > 10)
        return -EINVAL;
    errno = 0;
    *out = strtoul(s, &end, 10);
    return *end || errno || *out > max ? -EINVAL : 0;
}

/*
 * online = "0" takes a device down (close handshake); another value brings a
 * device taken down that way back (opened again, InitWait); a missing node
 * or a failed read changes nothing.
 */
static void check_online(struct bb_dev *d)
{
    char path[160], *v = NULL;
    int rc, off;

    snprintf(path, sizeof(path), "%s/online", d->path);
    rc = pvabi_store_read(d->b->ctx, PVABI_STORE_TXN_NONE, path, &v);
    off = rc >= 0 && strcmp(v, "0") == 0;
    free(v);
    if (off && !d->offline)
        bb_dev_offline(d);
    else if (rc >= 0 && !off && d->offline)
        bb_dev_restart(d, "online again");
}

/* One device directory seen by a rescan: open it if new (or failed before). */
static void rescan_dev(struct blkback *b, pvabi_domid fe, const char *name)
{
    unsigned long devid;
    struct bb_dev *d;

    if (parse_num(name, UINT32_MAX, &devid) < 0)
        return;
    d = dev_find(b, fe, (unsigned)devid);
    if (!d) {
        d = bb_dev_new(b, fe, (unsigned)devid);
        if (!d)
            return;
        bb_dev_open(d);
    } else if (d->open_failed) {
        bb_dev_open(d);
    } else if (d->xb && bb_dev_recreated(d)) {
        bb_dev_restart(d, "directory re-created by the toolstack");
    }
    d->gone = 0;
    if (d->xb)
        check_online(d);
}

/*
 * A listing failed for another reason than the directory being absent: what
 * it would have listed is unknown, so devices are kept as they are (fe -1:
 * all of them) and the rescan is tried again a little later.
 */
static void rescan_failed(struct blkback *b, const char *path, int err, long fe)
{
    if (!b->list_failing)
        bb_log(b, PVABI_LOG_WARN, "cannot list %s: %s; devices kept, trying again", path,
               strerror(-err));
    b->list_failed = 1;
    for (struct bb_dev *d = b->devs; d; d = d->next)
        if (fe < 0 || d->fe == (pvabi_domid)fe)
            d->gone = 0;
    b->rescan = 1;
    b->rescan_at_us = bb_now_us() + BB_RESCAN_RETRY_US;
}

static void rescan_fe(struct blkback *b, const char *fe_name)
{
    char path[160], **names = NULL;
    unsigned long fe;
    int n;

    if (parse_num(fe_name, 32751, &fe) < 0)
        return;
    snprintf(path, sizeof(path), "%s/%s", b->base, fe_name);
    n = pvabi_store_list(b->ctx, PVABI_STORE_TXN_NONE, path, &names);
    if (n < 0 && n != -ENOENT)
        rescan_failed(b, path, n, (long)fe);
    for (int i = 0; i < n; i++)
        rescan_dev(b, (pvabi_domid)fe, names[i]);
    free(names);
}

/* Lists every device; those not listed any more are marked gone. */
static void rescan(struct blkback *b)
{
    char **names = NULL;
    int n;

    for (struct bb_dev *d = b->devs; d; d = d->next)
        d->gone = 1;
    b->list_failed = 0;
    n = pvabi_store_list(b->ctx, PVABI_STORE_TXN_NONE, b->base, &names);
    if (n < 0 && n != -ENOENT)
        rescan_failed(b, b->base, n, -1);
    for (int i = 0; i < n; i++)
        rescan_fe(b, names[i]);
    free(names);
    for (struct bb_dev *d = b->devs; d; d = d->next)
        if (d->gone)
            bb_log(b, PVABI_LOG_INFO, "%s: directory removed, device dropped", d->name);
    if (b->list_failing && !b->list_failed)
        bb_log(b, PVABI_LOG_INFO, "store listings work again");
    b->list_failing = b->list_failed;
}

/*
 * The watch fires for every node below the base, our own state and feature
 * writes included: only a change of a device directory itself (depth <= 2)
 * or of its `online`, `params` or `mode` node asks for a rescan.
 */
static void on_watch(pvabi_ctx *ctx, const char *path, void *opaque)
{
    struct blkback *b = opaque;
    size_t n = strlen(b->base);
    const char *rest, *key;

    (void)ctx;
    if (strncmp(path, b->base, n) != 0 || (path[n] && path[n] != '/')) {
        return;
    }
    rest = path[n] ? path + n + 1 : path + n;
    key = strchr(rest, '/');
    key = key ? strchr(key + 1, '/') : NULL;
    if (!key || !strcmp(key, "/online") || !strcmp(key, "/params") || !strcmp(key, "/mode"))
        b->rescan = 1;
}

static void free_gone(struct blkback *b)
{
    struct bb_dev **pp = &b->devs;

    while (*pp) {
        struct bb_dev *d = *pp;
        if (d->gone) {
            *pp = d->next;
            bb_dev_free(d);
        } else {
            pp = &d->next;
        }
    }
}

static int check_opts(const struct blkback_opts *o)
{
    if (o->max_ring_order > PVABI_XENBUS_RING_ORDER_MAX || o->max_indirect > BLKBACK_MAX_INDIRECT)
        return -EINVAL;
    /* Bounded so that the cache's table size (a power of two, twice this)
     * cannot overflow an unsigned. */
    if (o->max_persistent > BLKBACK_MAX_PERSISTENT || o->spin_us > BLKBACK_MAX_SPIN_US)
        return -EINVAL;
    if (o->grants != BLKBACK_GRANTS_COPY && o->grants != BLKBACK_GRANTS_MAP)
        return -EINVAL;
    if (o->io != BLKBACK_IO_URING && o->io != BLKBACK_IO_SYNC)
        return -EINVAL;
    if (o->type && (!o->type[0] || strlen(o->type) >= 32 || strchr(o->type, '/')))
        return -EINVAL;
    return 0;
}

static int add_fd(int epfd, int fd)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int blkback_create(pvabi_ctx *ctx, const struct blkback_opts *opts, struct blkback **out)
{
    struct blkback *b;
    int rc;

    *out = NULL;
    if (!ctx || !opts || check_opts(opts) < 0)
        return -EINVAL;
    b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    b->ctx = ctx;
    b->o = *opts;
    if (!b->o.max_persistent)
        b->o.max_persistent = BLKBACK_DEFAULT_MAX_PERSISTENT;
    snprintf(b->type, sizeof(b->type), "%s", opts->type ? opts->type : "vbd");
    snprintf(b->base, sizeof(b->base), "/local/domain/%u/backend/%s", pvabi_own_domid(ctx),
             b->type);
    b->epfd = epoll_create1(EPOLL_CLOEXEC);
    b->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    rc = b->epfd < 0 || b->stopfd < 0 ? -errno : 0;
    if (!rc)
        rc = add_fd(b->epfd, pvabi_fd(ctx));
    if (!rc)
        rc = add_fd(b->epfd, b->stopfd);
    if (!rc)
        rc = pvabi_store_watch(ctx, b->base, on_watch, b, &b->watch);
    if (rc < 0) {
        bb_log(b, PVABI_LOG_ERR, "cannot start: %s", strerror(-rc));
        blkback_destroy(b);
        return rc;
    }
    b->rescan = 1;
    *out = b;
    return 0;
}

void blkback_stop(struct blkback *b)
{
    uint64_t one = 1;

    b->stop_flag = 1;
    /* write(2) is async-signal-safe; the eventfd wakes a sleeping loop. */
    if (write(b->stopfd, &one, sizeof(one)) < 0) {
        /* Only EAGAIN (counter saturated) is possible: already woken. */
    }
}

void blkback_set_once(struct blkback *b, int on)
{
    b->once = on;
}

/* Collects event channel events; each port's device serves its ring. */
static int handle_ports(struct blkback *b)
{
    pvabi_port ports[64];
    int n;

    while ((n = pvabi_evtchn_pending(b->ctx, ports, 64)) > 0) {
        for (int i = 0; i < n; i++) {
            struct bb_dev *d = bb_dev_by_port(b, ports[i]);
            if (d)
                bb_dev_kick(d);
            else
                pvabi_evtchn_unmask(b->ctx, ports[i]);
        }
    }
    return n;
}

/* Devices that stopped early for fairness (or just connected) go again. */
static int serve_more(struct blkback *b)
{
    int again = 0;

    for (struct bb_dev *d = b->devs; d; d = d->next) {
        if (d->more && d->connected)
            bb_dev_kick(d);
        again |= d->more && d->connected;
    }
    return again;
}

static int once_done(struct blkback *b)
{
    if (!b->once || !b->had_connection)
        return 0;
    for (struct bb_dev *d = b->devs; d; d = d->next)
        if (d->connected || (d->xb && pvabi_xenbus_back_state(d->xb) == PVABI_XENBUS_STATE_CLOSING))
            return 0;
    return 1;
}

int64_t bb_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t now_ms(void)
{
    return bb_now_us() / 1000;
}

/* One round: store events, rescans, ports; < 0 fatal. */
static int one_round(struct blkback *b)
{
    int rc = pvabi_store_process(b->ctx);

    if (rc < 0)
        return rc;
    if (b->rescan && bb_now_us() >= b->rescan_at_us) {
        b->rescan = 0;
        rescan(b);
    }
    free_gone(b);
    rc = handle_ports(b);
    return rc < 0 ? rc : 0;
}

/* A connected device whose ring has requests (or lies): kicked; 1 if any. */
static int poll_rings(struct blkback *b)
{
    int found = 0;

    for (struct bb_dev *d = b->devs; d; d = d->next) {
        if (d->connected && pvblk_back_unconsumed(&d->ring) != 0) {
            bb_dev_kick(d);
            found = 1;
        }
    }
    return found;
}

/*
 * Before sleeping: if requests were answered in the last BB_SPIN_RECENT_US,
 * poll the rings for up to spin_us, since a busy frontend's next requests
 * usually follow within microseconds and serving them now saves the
 * notification's round trip through the hypervisor and our wake-up.  An idle
 * backend never spins: the window closes BB_SPIN_RECENT_US after the last
 * request.  sched_yield() lets a frontend on the same CPU run.  Returns 1
 * if requests were found (and served).
 */
static int spin(struct blkback *b)
{
    int64_t start = bb_now_us();

    if (b->o.spin_us == 0 || start - b->served_at_us > BB_SPIN_RECENT_US)
        return 0;
    for (unsigned i = 1; !b->stop_flag; i++) {
        if (poll_rings(b))
            return 1;
        if (i % BB_SPIN_YIELD_EVERY == 0) {
            sched_yield();
            if (bb_now_us() - start >= (int64_t)b->o.spin_us)
                return 0;
        }
    }
    return 0;
}

int blkback_run(struct blkback *b, int timeout_ms)
{
    int64_t end = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;

    for (;;) {
        struct epoll_event ev[4];
        int rc = one_round(b);
        if (rc < 0) {
            bb_log(b, PVABI_LOG_ERR, "event loop: %s", strerror(-rc));
            return rc;
        }
        int busy = serve_more(b);
        if (b->stop_flag || once_done(b))
            return 1;
        int wait = busy ? 0 : end < 0 ? 1000 : (int)(end - now_ms());
        if (b->rescan && wait > BB_RESCAN_RETRY_US / 1000)
            wait = BB_RESCAN_RETRY_US / 1000; /* a failed rescan is retried soon */
        if (wait < 0 || (end >= 0 && now_ms() >= end && !busy))
            return 0;
        if (wait > 0 && spin(b))
            continue;
        rc = epoll_wait(b->epfd, ev, 4, wait > 1000 ? 1000 : wait);
        if (rc < 0 && errno != EINTR)
            return -errno;
    }
}

void blkback_destroy(struct blkback *b)
{
    if (!b)
        return;
    while (b->devs) {
        struct bb_dev *d = b->devs;
        b->devs = d->next;
        bb_dev_free(d);
    }
    pvabi_store_unwatch(b->watch);
    if (b->epfd >= 0)
        close(b->epfd);
    if (b->stopfd >= 0)
        close(b->stopfd);
    free(b);
}

int blkback_stats(const struct blkback *b, struct blkback_dev_stats *out, unsigned max)
{
    int n = 0;

    for (const struct bb_dev *d = b->devs; d; d = d->next, n++) {
        if ((unsigned)n >= max)
            continue;
        out[n] = d->st;
        out[n].frontend = d->fe;
        out[n].devid = d->devid;
        out[n].state = d->xb ? pvabi_xenbus_back_state(d->xb) : PVABI_XENBUS_STATE_UNKNOWN;
        out[n].persistent_maps = d->pg_count;
    }
    return n;
}

void blkback_log_stats(struct blkback *b)
{
    for (struct bb_dev *d = b->devs; d; d = d->next) {
        const struct blkback_dev_stats *s = &d->st;
        bb_log(b, PVABI_LOG_INFO,
               "%s: reads %" PRIu64 " writes %" PRIu64 " barriers %" PRIu64 " flushes %" PRIu64
               " discards %" PRIu64 " indirect %" PRIu64 " errors %" PRIu64 " eopnotsupp %" PRIu64
               " bytes read %" PRIu64 " written %" PRIu64
               " persistent maps now %u peak %u made %" PRIu64,
               d->name, s->reads, s->writes, s->barriers, s->flushes, s->discards, s->indirect,
               s->errors, s->eopnotsupp, s->bytes_read, s->bytes_written, d->pg_count,
               s->persistent_maps_peak, s->persistent_maps_made);
    }
}
