/* SPDX-License-Identifier: MIT */
/*
 * Reaching the daemon: which socket, connecting (starting a daemon when none
 * answers and autostart is allowed), and the HELLO that makes this
 * connection a domain.
 */
#include <libgen.h>
#include <poll.h>
#include <sys/inotify.h>
#include <time.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "platform/local/local.h"

/* Domain ids a domain may have: below Xen's DOMID_FIRST_RESERVED. */
#define LC_DOMID_MAX 32751

/* secure_getenv: a set-id program must not let its caller choose which
 * daemon it starts or which socket it trusts. */
static const char *env(const char *name)
{
    const char *v = secure_getenv(name);
    return v && *v ? v : NULL;
}

/* The socket for "local[:@arg]": @arg, else $PVABI_LOCAL_SOCKET, else
 * $XDG_RUNTIME_DIR/pvabi/hv.sock, else /tmp/pvabi-UID/hv.sock.  Sets
 * *@shared_tmp for the last, whose directory anyone could have made. */
static int socket_path(pvabi_ctx *ctx, const char *arg, struct sockaddr_un *sa, int *shared_tmp)
{
    const char *sock = arg ? arg : env("PVABI_LOCAL_SOCKET"), *xdg = env("XDG_RUNTIME_DIR");
    int n;

    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    *shared_tmp = !sock && !xdg;
    if (sock)
        n = snprintf(sa->sun_path, sizeof(sa->sun_path), "%s", sock);
    else if (xdg)
        n = snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/pvabi/hv.sock", xdg);
    else
        n = snprintf(sa->sun_path, sizeof(sa->sun_path), "/tmp/pvabi-%u/hv.sock",
                     (unsigned)getuid());
    if (n >= 0 && (size_t)n < sizeof(sa->sun_path))
        return 0;
    pvabi__err(ctx,
               "local platform: socket path \"%s%s\" is longer than a unix socket address "
               "holds (%zu bytes)",
               sock ? sock : xdg, sock ? "" : "/pvabi/hv.sock", sizeof(sa->sun_path) - 1);
    return -ENAMETOOLONG;
}

/* /tmp/pvabi-UID must be ours and closed to others: a daemon there gets the
 * memory we grant.  Absent is fine (the daemon we start makes it). */
static int check_tmp_dir(pvabi_ctx *ctx, const char *path)
{
    char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
    struct stat st;

    snprintf(dir, sizeof(dir), "%s", path);
    *strrchr(dir, '/') = '\0';
    if (lstat(dir, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (S_ISDIR(st.st_mode) && st.st_uid == getuid() && !(st.st_mode & 022))
        return 0;
    pvabi__err(ctx,
               "local platform: %s is not a directory of this user (uid %u) closed to "
               "others: refusing to use it; set PVABI_LOCAL_SOCKET or XDG_RUNTIME_DIR",
               dir, (unsigned)getuid());
    return -EPERM;
}

/* One connect attempt: the socket, or -errno (the caller decides whether
 * that is a failure worth a log). */
static int try_connect(const struct sockaddr_un *sa)
{
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), rc;

    if (fd < 0)
        return -errno;
    /* A unix connect completes at once (or fails EAGAIN on a full backlog):
     * non-blocking, it cannot hang on a stuck daemon. */
    if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0)
        return fd;
    rc = -errno;
    close(fd);
    return rc;
}

static int autostart_off(void)
{
    const char *v = env("PVABI_LOCAL_AUTOSTART");
    return v && strcmp(v, "0") == 0;
}

/* The connected socket, or -errno after a log saying what is missing. */
static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Connects once the socket appears, watching its directory with inotify;
 * -ETIMEDOUT after LC_TIMEOUT_MS. */
static int wait_for_daemon(pvabi_ctx *ctx, const struct sockaddr_un *sa)
{
    char dir[sizeof(sa->sun_path)], buf[4096];
    int64_t deadline = now_ms() + LC_TIMEOUT_MS;
    int in = inotify_init1(IN_CLOEXEC | IN_NONBLOCK), fd;

    snprintf(dir, sizeof(dir), "%s", sa->sun_path);
    if (in < 0 || inotify_add_watch(in, dirname(dir), IN_MOVED_TO | IN_CREATE) < 0) {
        fd = -errno;
        pvabi__err(ctx, "local platform: watching %s for pvabi-hv: %s", dir, strerror(-fd));
        goto out;
    }
    /* Watch first, then look: a rename between the two is not missed. */
    while ((fd = try_connect(sa)) == -ENOENT || fd == -ECONNREFUSED) {
        struct pollfd p = { .fd = in, .events = POLLIN };
        int64_t left = deadline - now_ms();
        if (left <= 0 || poll(&p, 1, (int)left) == 0) {
            fd = -ETIMEDOUT;
            pvabi__err(ctx,
                       "local platform: pvabi-hv started by another process did not "
                       "appear at %s within %d ms",
                       sa->sun_path, LC_TIMEOUT_MS);
            break;
        }
        while (read(in, buf, sizeof(buf)) > 0)
            ;
    }
out:
    if (in >= 0)
        close(in);
    return fd;
}

static int connect_or_start(pvabi_ctx *ctx, struct lc *lc, const struct sockaddr_un *sa)
{
    const char *path = sa->sun_path;
    int fd = try_connect(sa), rc;

    if (fd >= 0 || (fd != -ENOENT && fd != -ECONNREFUSED)) {
        if (fd < 0)
            pvabi__err(ctx, "local platform: connecting to pvabi-hv at %s: %s", path,
                       strerror(-fd));
        return fd;
    }
    if (autostart_off()) {
        pvabi__err(ctx,
                   "local platform: no pvabi-hv daemon at %s (%s) and "
                   "PVABI_LOCAL_AUTOSTART=0: start one with `pvabi-hv --socket %s`",
                   path, strerror(-fd), path);
        return -ENOENT;
    }
    rc = pvabi__lc_autostart(ctx, lc, path);
    /* Ours lost the race to a daemon another process is starting: it
     * becomes visible (renamed into place) only once it listens. */
    if (rc == -EALREADY)
        return wait_for_daemon(ctx, sa);
    fd = try_connect(sa);
    if (fd >= 0)
        return fd;
    if (rc < 0)
        return rc; /* logged: what was tried and why it failed */
    pvabi__err(ctx, "local platform: pvabi-hv started, but connecting to %s failed: %s", path,
               strerror(-fd));
    return fd == -ECONNREFUSED ? -ENOENT : fd;
}

/* The domain HELLO asks for: none for a toolstack context, else
 * $PVABI_LOCAL_DOMID, else -1 (any). */
static int want_domid(pvabi_ctx *ctx, int32_t *want)
{
    const char *s = env("PVABI_LOCAL_DOMID");
    char *end;
    long v;

    *want = -1;
    if (ctx->open_flags & PVABI_OPEN_TOOLSTACK)
        *want = HV_WANT_TOOLSTACK;
    if (!s || *want == HV_WANT_TOOLSTACK)
        return 0;
    v = strtol(s, &end, 10);
    if (*end || v < 0 || v > LC_DOMID_MAX) {
        pvabi__err(ctx, "PVABI_LOCAL_DOMID=\"%s\": expected a domain id 0..%d", s, LC_DOMID_MAX);
        return -EINVAL;
    }
    *want = (int32_t)v;
    return 0;
}

static void hello_failed(pvabi_ctx *ctx, int rc, int32_t want)
{
    if (rc == -EPERM && want == HV_WANT_TOOLSTACK)
        pvabi__err(ctx,
                   "pvabi-hv refuses a toolstack connection to this user (uid %u): start it "
                   "with --allow-uid %u",
                   (unsigned)getuid(), (unsigned)getuid());
    else if (rc == -EPERM)
        pvabi__err(ctx, "pvabi-hv refuses domain %d to this user (uid %u)", want,
                   (unsigned)getuid());
    else if (rc == -EADDRINUSE)
        pvabi__err(ctx, "pvabi-hv: domain %d is held by another live process", want);
    else if (rc == -EPROTONOSUPPORT)
        pvabi__err(ctx, "pvabi-hv does not speak protocol version %u: install a matching one",
                   HV_PROTO_VERSION);
    else
        pvabi__err(ctx, "pvabi-hv: HELLO: %s", strerror(-rc));
}

static int hello(pvabi_ctx *ctx, struct lc *lc)
{
    struct hv_hello_req req = { .version = HV_PROTO_VERSION };
    struct hv_hello_rsp rsp;
    struct lc_msg *m;
    int rc = want_domid(ctx, &req.want_domid);

    if (rc < 0)
        return rc;
    rc = pvabi__lc_call(ctx, lc, HV_OP_HELLO, &req, sizeof(req), NULL, 0, &m);
    if (rc < 0) {
        hello_failed(ctx, rc, req.want_domid);
        return rc;
    }
    if (!pvabi__lc_reply_ok(ctx, lc, m, sizeof(rsp), 0))
        return -EPROTO;
    memcpy(&rsp, m->payload, sizeof(rsp));
    if (rsp.domid > LC_DOMID_MAX || (req.want_domid >= 0 && rsp.domid != (uint32_t)req.want_domid))
        return pvabi__lc_bad_reply(ctx, lc, m, "a domain id other than the one asked for");
    if (req.want_domid == HV_WANT_TOOLSTACK && !rsp.privileged)
        return pvabi__lc_bad_reply(ctx, lc, m, "an unprivileged toolstack connection");
    lc->domid = (pvabi_domid)rsp.domid;
    lc->toolstack = req.want_domid == HV_WANT_TOOLSTACK;
    if (lc->toolstack)
        pvabi__debug(ctx, "pvabi-hv: a toolstack connection, acting for domain %u", rsp.domid);
    else
        pvabi__debug(ctx, "pvabi-hv: this process is domain %u%s", rsp.domid,
                     rsp.privileged ? " (privileged)" : "");
    return 0;
}

/* Remembers the socket's absolute path: the store socket is found next to
 * it, possibly after the process changed its working directory. */
static void remember_path(struct lc *lc, const char *path)
{
    char cwd[sizeof(lc->sock_path)];
    int n = -1;

    if (path[0] == '/')
        n = snprintf(lc->sock_path, sizeof(lc->sock_path), "%s", path);
    else if (getcwd(cwd, sizeof(cwd)))
        n = snprintf(lc->sock_path, sizeof(lc->sock_path), "%s/%s", cwd, path);
    if (n < 0 || (size_t)n >= sizeof(lc->sock_path))
        snprintf(lc->sock_path, sizeof(lc->sock_path), "%s", path); /* relative, as given */
}

int pvabi__lc_store_where(pvabi_ctx *ctx, void *plat, struct pvabi__store_where *w)
{
    struct lc *lc = plat;
    int n = snprintf(w->path, sizeof(w->path), "%s.xenstore", lc->sock_path);

    w->select_domid = !lc->toolstack;
    w->toolstack = lc->toolstack;
    if (n >= 0 && (size_t)n < sizeof(w->path))
        return 0;
    pvabi__err(ctx,
               "local platform: the store socket \"%s.xenstore\" is longer than a unix "
               "socket address holds (%zu bytes): use a shorter PVABI_LOCAL_SOCKET",
               lc->sock_path, sizeof(w->path) - 1);
    w->path[0] = '\0';
    return -ENAMETOOLONG;
}

int pvabi__lc_connect(pvabi_ctx *ctx, struct lc *lc, const char *arg)
{
    struct sockaddr_un sa;
    int shared_tmp, rc = socket_path(ctx, arg, &sa, &shared_tmp);

    if (rc == 0 && shared_tmp)
        rc = check_tmp_dir(ctx, sa.sun_path);
    if (rc < 0)
        return rc;
    rc = connect_or_start(ctx, lc, &sa);
    if (rc < 0)
        return rc;
    lc->sock = rc;
    remember_path(lc, sa.sun_path);
    rc = pvabi__lc_wire_setup(ctx, lc);
    return rc < 0 ? rc : hello(ctx, lc);
}
