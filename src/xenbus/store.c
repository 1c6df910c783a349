/* SPDX-License-Identifier: MIT */
/*
 * The store: the one file that includes <xenstore.h>.  Every request goes
 * through Debian's libxenstore, to Xen's xenstored or to pvabi-hv's
 * embedded store alike (docs/decisions.md says why).  The connection is
 * opened at the first request of a context; watch events are queued by
 * libxenstore's reader thread, which makes xs_fileno() readable, and that
 * fd sits in the context's epoll set (pvabi_fd()).
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

#include <xenstore.h>

#include "platform/platform.h"
#include "xenbus/private.h"

/* Events one pvabi_store_process() dispatches at most: a callback that
 * writes a node it watches must not keep it in the loop forever.  What is
 * left keeps pvabi_fd() readable. */
#define STORE_PROCESS_MAX 1024
/* Longest value a request carries (XENSTORE_PAYLOAD_MAX). */
#define STORE_VALUE_MAX 4096
#define PERMS_MAX       64

struct pvabi_watch {
    pvabi_ctx *ctx;
    pvabi_watch_fn *fn;
    void *opaque;
    char token[32];
    struct pvabi_watch *next, **pprev;
    char path[];
};

struct pvabi__store {
    struct xs_handle *xsh;
    int fd; /* xs_fileno(): readable while watch events are queued */
    uint64_t tokens;
    struct pvabi_watch *watches;
};

/* XENSTORED_PATH is process-wide: contexts opening their stores at once
 * take turns setting it. */
static pthread_mutex_t env_lock = PTHREAD_MUTEX_INITIALIZER;

/* pvabi leaves errno alone: every entry point restores it on the way out. */
static void keep_errno(const int *saved)
{
    errno = *saved;
}
#define KEEP_ERRNO __attribute__((cleanup(keep_errno), unused)) = errno

/* -errno after a failed libxenstore call.  libxenstore closes its socket
 * when the store hangs up and then fails with EBADF (or EINVAL from its
 * reader): EBADF means the connection is gone. */
static int xs_errno(void)
{
    int err = errno;

    if (err == EBADF || err == EPIPE || err == ECONNRESET)
        return -ENOTCONN;
    return err > 0 ? -err : -EIO;
}

/* Logs a failed request; routine outcomes at debug level. */
static int fail(pvabi_ctx *ctx, int rc, const char *what, const char *path)
{
    int level = rc == -ENOENT || rc == -EAGAIN || rc == -EEXIST ? PVABI_LOG_DEBUG : PVABI_LOG_ERR;

    pvabi__log(ctx, level, "store: %s %s: %s", what, path ? path : "", strerror(-rc));
    return rc;
}

/* ---- opening --------------------------------------------------------- */

/* xs_open() with XENSTORED_PATH=@path for the duration of the call. */
static struct xs_handle *open_at(const char *path)
{
    struct xs_handle *xsh;
    char *old;
    int err;

    pthread_mutex_lock(&env_lock);
    old = getenv("XENSTORED_PATH");
    old = old ? strdup(old) : NULL;
    if (!old && getenv("XENSTORED_PATH")) {
        /* Without a copy the caller's value could not be put back. */
        pthread_mutex_unlock(&env_lock);
        errno = ENOMEM;
        return NULL;
    }
    setenv("XENSTORED_PATH", path, 1);
    xsh = xs_open(0);
    err = errno;
    if (old)
        setenv("XENSTORED_PATH", old, 1);
    else
        unsetenv("XENSTORED_PATH");
    pthread_mutex_unlock(&env_lock);
    free(old);
    errno = err;
    return xsh;
}

/* xs_open(0) reads XENSTORED_PATH too: not while a local context's
 * open_at() has it set to a pvabi-hv store. */
static struct xs_handle *open_default(void)
{
    struct xs_handle *xsh;
    int err;

    pthread_mutex_lock(&env_lock);
    xsh = xs_open(0);
    err = errno;
    pthread_mutex_unlock(&env_lock);
    errno = err;
    return xsh;
}

/* Tells the local store which domain this connection speaks for. */
static int select_domid(pvabi_ctx *ctx, struct xs_handle *xsh, const char *where)
{
    char id[8];
    char *reply;

    snprintf(id, sizeof(id), "%u", (unsigned)ctx->domid);
    /* The payload is "pvabi-domid\0<id>\0": the id with its NUL. */
    reply = xs_control_command(xsh, "pvabi-domid", id, (unsigned)strlen(id) + 1);
    if (reply) {
        free(reply);
        return 0;
    }
    int rc = xs_errno();
    pvabi__err(ctx, "store: %s refused to let this connection speak as domain %s: %s", where, id,
               strerror(-rc));
    return rc;
}

/* Tells the local store this connection speaks as the toolstack
 * (PVABI_OPEN_TOOLSTACK), whatever domains its process holds. */
static int select_toolstack(pvabi_ctx *ctx, struct xs_handle *xsh, const char *where)
{
    /* The payload is "pvabi-toolstack\0": the command alone. */
    char *reply = xs_control_command(xsh, "pvabi-toolstack", "", 0);

    if (reply) {
        free(reply);
        return 0;
    }
    int rc = xs_errno();
    pvabi__err(ctx, "store: %s refused to let this connection speak as the toolstack: %s", where,
               strerror(-rc));
    return rc;
}

static int open_store(pvabi_ctx *ctx, struct pvabi__store *st)
{
    struct pvabi__store_where w = { .path = "" };
    struct epoll_event e = { .events = EPOLLIN };
    int rc = ctx->ops->store_where(ctx, ctx->plat, &w);

    if (rc < 0)
        return rc;
    st->xsh = w.path[0] ? open_at(w.path) : open_default();
    if (!st->xsh) {
        rc = xs_errno();
        if (rc == -ECONNREFUSED)
            rc = -ENOENT;
        pvabi__err(ctx, "store: cannot connect to %s: %s%s", w.path[0] ? w.path : "xenstored",
                   strerror(-rc),
                   w.path[0] ? " (does this pvabi-hv serve a store?)"
                             : " (is xenstored running, /dev/xen/xenbus there?)");
        return rc;
    }
    if (w.select_domid && (rc = select_domid(ctx, st->xsh, w.path)) < 0)
        return rc;
    if (w.toolstack && (rc = select_toolstack(ctx, st->xsh, w.path)) < 0)
        return rc;
    st->fd = xs_fileno(st->xsh);
    if (st->fd < 0 || epoll_ctl(ctx->epfd, EPOLL_CTL_ADD, st->fd, &e) < 0) {
        rc = st->fd < 0 ? -EMFILE : -errno;
        pvabi__err(ctx, "store: adding its watch fd to the context's epoll set: %s", strerror(-rc));
        return rc;
    }
    pvabi__debug(ctx, "store: connected to %s as domain %u", w.path[0] ? w.path : "xenstored",
                 (unsigned)ctx->domid);
    return 0;
}

/* The context's store, opened at first use. */
static int store_get(pvabi_ctx *ctx, struct pvabi__store **out)
{
    struct pvabi__store *st;
    int rc = 0;

    if (!ctx)
        return -EINVAL;
    pthread_mutex_lock(&ctx->store_lock);
    st = ctx->store;
    if (!st) {
        st = calloc(1, sizeof(*st));
        rc = st ? open_store(ctx, st) : -ENOMEM;
        if (rc == 0) {
            ctx->store = st;
        } else if (st) {
            if (st->xsh)
                xs_close(st->xsh);
            free(st);
            st = NULL;
        }
    }
    pthread_mutex_unlock(&ctx->store_lock);
    *out = st;
    return rc;
}

/* ---- requests -------------------------------------------------------- */

static int read_node(pvabi_ctx *ctx, pvabi_store_txn txn, const char *path, char **value, int quiet)
{
    int keep KEEP_ERRNO;
    struct pvabi__store *st;
    unsigned len = 0;
    int rc;

    if (value)
        *value = NULL;
    if (!path || !value)
        return -EINVAL;
    if ((rc = store_get(ctx, &st)) < 0)
        return rc;
    *value = xs_read(st->xsh, txn, path, &len);
    if (*value)
        return (int)len;
    rc = xs_errno();
    if (quiet && (rc == -ENOENT || rc == -EACCES))
        return rc;
    return fail(ctx, rc, "read", path);
}

PVABI_EXPORT int pvabi_store_read(pvabi_ctx *ctx, pvabi_store_txn txn, const char *path,
                                  char **value)
{
    return read_node(ctx, txn, path, value, 0);
}

int pvabi__store_read_quiet(pvabi_ctx *ctx, const char *path, char **value)
{
    return read_node(ctx, PVABI_STORE_TXN_NONE, path, value, 1);
}

/* @len decimal digits at @s, nothing else, at most UINT32_MAX. */
static int parse_u32_n(const char *s, size_t len, uint32_t *out)
{
    uint64_t v = 0;

    if (len == 0)
        return -EINVAL;
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
    if (len > 10)
        return -ERANGE;
    for (size_t i = 0; i < len; i++)
        v = v * 10 + (uint64_t)(s[i] - '0');
    if (v > UINT32_MAX)
        return -ERANGE;
    *out = (uint32_t)v;
    return 0;
}

int pvabi__xb_parse_u32(const char *s, uint32_t *out)
{
    return parse_u32_n(s, strlen(s), out);
}

PVABI_EXPORT int pvabi_store_read_u32(pvabi_ctx *ctx, pvabi_store_txn txn, const char *path,
                                      uint32_t *value)
{
    char *s;
    int rc;

    if (!value)
        return -EINVAL;
    rc = pvabi_store_read(ctx, txn, path, &s);
    if (rc < 0)
        return rc;
    /* A NUL inside the value makes it no number either. */
    rc = (size_t)rc == strlen(s) ? pvabi__xb_parse_u32(s, value) : -EINVAL;
    if (rc < 0)
        pvabi__err(ctx, "store: %s holds \"%.32s\", not a decimal number%s", path, s,
                   rc == -ERANGE ? " below 2^32" : "");
    free(s);
    return rc;
}

PVABI_EXPORT int pvabi_store_scanf(pvabi_ctx *ctx, pvabi_store_txn txn, const char *path,
                                   const char *fmt, ...)
{
    int keep KEEP_ERRNO;
    va_list ap;
    char *s;
    int rc;

    if (!fmt)
        return -EINVAL;
    rc = pvabi_store_read(ctx, txn, path, &s);
    if (rc < 0)
        return rc;
    va_start(ap, fmt);
    rc = vsscanf(s, fmt, ap);
    va_end(ap);
    if (rc <= 0) {
        pvabi__debug(ctx, "store: %s holds \"%.32s\", which does not match \"%s\"", path, s, fmt);
        rc = -ERANGE;
    }
    free(s);
    return rc;
}

PVABI_EXPORT int pvabi_store_write(pvabi_ctx *ctx, pvabi_store_txn txn, const char *path,
                                   const char *value)
{
    int keep KEEP_ERRNO;
    struct pvabi__store *st;
    size_t len;
    int rc;

    if (!path || !value)
        return -EINVAL;
    if ((len = strlen(value)) > STORE_VALUE_MAX)
        return fail(ctx, -E2BIG, "write", path);
    if ((rc = store_get(ctx, &st)) < 0)
        return rc;
    if (!xs_write(st->xsh, txn, path, value, (unsigned)len))
        return fail(ctx, xs_errno(), "write", path);
    return 0;
}

PVABI_EXPORT int pvabi_store_printf(pvabi_ctx *ctx, pvabi_store_txn txn, const char *path,
                                    const char *fmt, ...)
{
    char buf[STORE_VALUE_MAX + 1];
    va_list ap;
    int n;

    if (!fmt)
        return -EINVAL;
    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0 || n > STORE_VALUE_MAX)
        return fail(ctx, -E2BIG, "printf", path);
    return pvabi_store_write(ctx, txn, path, buf);
}

/* A request on one path that answers nothing but success (mkdir, rm). */
static int path_op(pvabi_ctx *ctx, pvabi_store_txn txn, const char *path,
                   bool (*op)(struct xs_handle *, xs_transaction_t, const char *), const char *what)
{
    int keep KEEP_ERRNO;
    struct pvabi__store *st;
    int rc;

    if (!path)
        return -EINVAL;
    if ((rc = store_get(ctx, &st)) < 0)
        return rc;
    if (!op(st->xsh, txn, path))
        return fail(ctx, xs_errno(), what, path);
    return 0;
}

PVABI_EXPORT int pvabi_store_mkdir(pvabi_ctx *ctx, pvabi_store_txn txn, const char *path)
{
    return path_op(ctx, txn, path, xs_mkdir, "mkdir");
}

PVABI_EXPORT int pvabi_store_rm(pvabi_ctx *ctx, pvabi_store_txn txn, const char *path)
{
    return path_op(ctx, txn, path, xs_rm, "rm");
}

PVABI_EXPORT int pvabi_store_list(pvabi_ctx *ctx, pvabi_store_txn txn, const char *path,
                                  char ***names)
{
    int keep KEEP_ERRNO;
    struct pvabi__store *st;
    unsigned num = 0;
    char **list;
    int rc;

    if (names)
        *names = NULL;
    if (!path || !names)
        return -EINVAL;
    if ((rc = store_get(ctx, &st)) < 0)
        return rc;
    /* libxenstore returns the array and the strings in one allocation. */
    list = xs_directory(st->xsh, txn, path, &num);
    if (!list)
        return fail(ctx, xs_errno(), "directory", path);
    if (num == 0)
        free(list);
    else
        *names = list;
    return (int)num;
}

/* ---- permissions ----------------------------------------------------- */

static const char perm_letters[4] = { 'n', 'r', 'w', 'b' };

PVABI_EXPORT int pvabi_store_get_perms(pvabi_ctx *ctx, pvabi_store_txn txn, const char *path,
                                       char **perms)
{
    int keep KEEP_ERRNO;
    struct pvabi__store *st;
    struct xs_permissions *p;
    unsigned num = 0;
    size_t used = 0;
    char *s;
    int rc;

    if (perms)
        *perms = NULL;
    if (!path || !perms)
        return -EINVAL;
    if ((rc = store_get(ctx, &st)) < 0)
        return rc;
    p = xs_get_permissions(st->xsh, txn, path, &num);
    if (!p)
        return fail(ctx, xs_errno(), "get-perms", path);
    s = malloc(num * 13 + 1); /* "b4294967295 " per entry */
    if (!s) {
        free(p);
        return -ENOMEM;
    }
    s[0] = '\0';
    for (unsigned i = 0; i < num; i++)
        used += (size_t)sprintf(s + used, "%s%c%u", i ? " " : "",
                                perm_letters[p[i].perms & (XS_PERM_READ | XS_PERM_WRITE)], p[i].id);
    free(p);
    *perms = s;
    return (int)num;
}

/* Parses "n5 r0 ..." into @p; returns the count or -EINVAL. */
static int parse_perms(const char *s, struct xs_permissions *p)
{
    unsigned n = 0;

    while (*s) {
        const char *letter = memchr(perm_letters, *s, sizeof(perm_letters));
        size_t len;
        uint32_t id;

        if (*s == ' ') {
            s++;
            continue;
        }
        len = strcspn(s + 1, " ");
        if (!letter || n == PERMS_MAX || parse_u32_n(s + 1, len, &id) < 0 || id > 65535)
            return -EINVAL;
        p[n].id = id;
        p[n++].perms = (unsigned)(letter - perm_letters);
        s += 1 + len;
    }
    return n ? (int)n : -EINVAL;
}

PVABI_EXPORT int pvabi_store_set_perms(pvabi_ctx *ctx, pvabi_store_txn txn, const char *path,
                                       const char *perms)
{
    int keep KEEP_ERRNO;
    struct xs_permissions p[PERMS_MAX];
    struct pvabi__store *st;
    int n, rc;

    if (!path || !perms)
        return -EINVAL;
    n = parse_perms(perms, p);
    if (n < 0) {
        pvabi__err(ctx,
                   "store: set-perms %s: \"%.80s\" is not a permission list (\"n5 r0\": "
                   "letters n r w b, domain ids, at most %d entries)",
                   path, perms, PERMS_MAX);
        return n;
    }
    if ((rc = store_get(ctx, &st)) < 0)
        return rc;
    if (!xs_set_permissions(st->xsh, txn, path, p, (unsigned)n))
        return fail(ctx, xs_errno(), "set-perms", path);
    return 0;
}

/* ---- transactions ----------------------------------------------------- */

PVABI_EXPORT int pvabi_store_txn_start(pvabi_ctx *ctx, pvabi_store_txn *txn)
{
    int keep KEEP_ERRNO;
    struct pvabi__store *st;
    int rc;

    if (!txn)
        return -EINVAL;
    if ((rc = store_get(ctx, &st)) < 0)
        return rc;
    *txn = xs_transaction_start(st->xsh);
    if (*txn == XBT_NULL)
        return fail(ctx, xs_errno(), "transaction start", NULL);
    return 0;
}

PVABI_EXPORT int pvabi_store_txn_end(pvabi_ctx *ctx, pvabi_store_txn txn, int abort)
{
    int keep KEEP_ERRNO;
    struct pvabi__store *st;
    int rc;

    if ((rc = store_get(ctx, &st)) < 0)
        return rc;
    if (!xs_transaction_end(st->xsh, txn, abort != 0))
        return fail(ctx, xs_errno(), abort ? "transaction abort" : "transaction commit", NULL);
    return 0;
}

PVABI_EXPORT int pvabi_store_txn_run(pvabi_ctx *ctx, pvabi_store_txn_fn *fn, void *opaque,
                                     unsigned max_tries)
{
    pvabi_store_txn txn;
    int rc;

    if (!ctx || !fn || max_tries == 0)
        return -EINVAL;
    for (unsigned i = 0; i < max_tries; i++) {
        if ((rc = pvabi_store_txn_start(ctx, &txn)) < 0)
            return rc;
        rc = fn(ctx, txn, opaque);
        if (rc < 0) {
            pvabi_store_txn_end(ctx, txn, 1);
            if (rc == -EAGAIN)
                continue;
            return rc;
        }
        int end = pvabi_store_txn_end(ctx, txn, 0);
        if (end == 0)
            return rc;
        if (end != -EAGAIN)
            return end;
    }
    pvabi__err(ctx, "store: transaction still conflicting after %u tries", max_tries);
    return -EAGAIN;
}

/* ---- watches --------------------------------------------------------- */

PVABI_EXPORT int pvabi_store_watch(pvabi_ctx *ctx, const char *path, pvabi_watch_fn *fn,
                                   void *opaque, pvabi_watch **out)
{
    int keep KEEP_ERRNO;
    struct pvabi__store *st;
    pvabi_watch *w;
    int rc;

    if (out)
        *out = NULL;
    if (!path || !fn || !out)
        return -EINVAL;
    if ((rc = store_get(ctx, &st)) < 0)
        return rc;
    w = calloc(1, sizeof(*w) + strlen(path) + 1);
    if (!w)
        return -ENOMEM;
    *w = (pvabi_watch){ .ctx = ctx, .fn = fn, .opaque = opaque };
    strcpy(w->path, path);
    /* Linked before the request: the first event may come at once. */
    pthread_mutex_lock(&ctx->store_lock);
    snprintf(w->token, sizeof(w->token), "pvabi/%llu", (unsigned long long)++st->tokens);
    w->next = st->watches;
    if (w->next)
        w->next->pprev = &w->next;
    w->pprev = &st->watches;
    st->watches = w;
    pthread_mutex_unlock(&ctx->store_lock);
    if (xs_watch(st->xsh, path, w->token)) {
        *out = w;
        return 0;
    }
    rc = fail(ctx, xs_errno(), "watch", path);
    pthread_mutex_lock(&ctx->store_lock);
    *w->pprev = w->next;
    if (w->next)
        w->next->pprev = w->pprev;
    pthread_mutex_unlock(&ctx->store_lock);
    free(w);
    return rc;
}

PVABI_EXPORT int pvabi_store_unwatch(pvabi_watch *w)
{
    int keep KEEP_ERRNO;
    pvabi_ctx *ctx;
    int rc = 0;

    if (!w)
        return 0;
    ctx = w->ctx;
    /* Unlinked first: from now on its queued events find no watch. */
    pthread_mutex_lock(&ctx->store_lock);
    *w->pprev = w->next;
    if (w->next)
        w->next->pprev = w->pprev;
    pthread_mutex_unlock(&ctx->store_lock);
    if (!xs_unwatch(ctx->store->xsh, w->path, w->token))
        rc = fail(ctx, xs_errno(), "unwatch", w->path);
    free(w);
    return rc == -ENOTCONN ? rc : 0;
}

/* Dispatches one event; 1 if it found its watch. */
static int dispatch(pvabi_ctx *ctx, struct pvabi__store *st, char **ev)
{
    pvabi_watch_fn *fn = NULL;
    void *opaque = NULL;

    pthread_mutex_lock(&ctx->store_lock);
    for (pvabi_watch *w = st->watches; w; w = w->next) {
        if (strcmp(w->token, ev[XS_WATCH_TOKEN]) == 0) {
            fn = w->fn;
            opaque = w->opaque;
            break;
        }
    }
    pthread_mutex_unlock(&ctx->store_lock);
    /* Called unlocked: the callback may watch, unwatch and make requests. */
    if (fn)
        fn(ctx, ev[XS_WATCH_PATH], opaque);
    return fn != NULL;
}

PVABI_EXPORT int pvabi_store_process(pvabi_ctx *ctx)
{
    int keep KEEP_ERRNO;
    struct pvabi__store *st;
    int n = 0;

    if (!ctx)
        return -EINVAL;
    pthread_mutex_lock(&ctx->store_lock);
    st = ctx->store;
    pthread_mutex_unlock(&ctx->store_lock);
    if (!st)
        return 0;
    while (n < STORE_PROCESS_MAX) {
        char **ev = xs_check_watch(st->xsh);
        if (!ev) {
            if (errno == EAGAIN)
                break;
            /* libxenstore's reader has lost the connection. */
            if (n == 0) {
                pvabi__err(ctx, "store: the connection is gone (%s)", strerror(errno));
                return -ENOTCONN;
            }
            break;
        }
        n += dispatch(ctx, st, ev);
        free(ev);
    }
    return n;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

PVABI_EXPORT int pvabi_store_wait(pvabi_ctx *ctx, int timeout_ms)
{
    int keep KEEP_ERRNO;
    struct pvabi__store *st;
    int64_t deadline;
    int rc;

    if (timeout_ms < 0)
        return -EINVAL;
    if ((rc = store_get(ctx, &st)) < 0)
        return rc;
    deadline = now_ms() + timeout_ms;
    for (;;) {
        struct pollfd p = { .fd = st->fd, .events = POLLIN };
        int64_t left = deadline - now_ms();

        if (left < 0)
            left = 0;
        rc = poll(&p, 1, (int)left);
        if (rc < 0)
            return errno == EINTR ? -EINTR : -errno;
        rc = pvabi_store_process(ctx);
        /* Woken for nothing (another thread took the events, or only
         * events of watches removed meanwhile): sleep again. */
        if (rc != 0 || left == 0)
            return rc;
    }
}

/* ---- closing ---------------------------------------------------------- */

void pvabi__store_release(pvabi_ctx *ctx)
{
    struct pvabi__store *st = ctx->store;
    int keep KEEP_ERRNO;

    if (!st)
        return;
    pvabi__xb_devs_release(ctx);
    /* The store drops a connection's watches with it. */
    while (st->watches) {
        pvabi_watch *w = st->watches;
        st->watches = w->next;
        free(w);
    }
    epoll_ctl(ctx->epfd, EPOLL_CTL_DEL, st->fd, NULL);
    xs_close(st->xsh);
    free(st);
    ctx->store = NULL;
}
