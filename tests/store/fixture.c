/* SPDX-License-Identifier: MIT */
/*
 * The embedded-xenstore tests' fixture: a private daemon per test, the
 * toolstack's libxenstore helpers, a raw wire client and domain agents.
 * See fixture.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <pvabi/pvabi.h>

#include "fixture.h"

extern char **environ;

struct fx *fx_cur;
const char *const *fx_default_args;

/* The fd number an agent finds its socketpair end at, and the daemon its
 * ready pipe at: high enough to be free in a fresh process. */
#define FX_CHILD_FD     200
#define FX_FRAME_MAX    (XENSTORE_PAYLOAD_MAX * 2 + 64)
#define FX_SPAWN_WAIT   20000 /* pvabi_open() may take 10 s to give up */
#define FX_MARKER_TOKEN "fx-marker"

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left until @deadline, at least 0. */
static int left_ms(long long deadline)
{
    long long l = deadline - now_ms();

    return l < 0 ? 0 : (int)l;
}

int fx_require_hv(void)
{
    const char *bin = getenv("PVABI_HV");

    signal(SIGPIPE, SIG_IGN);
    if (!bin || access(bin, X_OK) != 0) {
        printf("SKIP: no pvabi-hv binary (set PVABI_HV)\n");
        return 77;
    }
    return 0;
}

/* ---- the daemon ------------------------------------------------------------ */

void fx_start(struct fx *fx, const char *const *extra)
{
    const char *argv[40];
    char fdarg[16];
    int p[2], n = 0;
    posix_spawn_file_actions_t fa;
    struct pollfd pfd;
    struct stat st;
    char c;

    memset(fx, 0, sizeof(*fx));
    strcpy(fx->dir, "/tmp/pvabi-store-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->hv_sock, sizeof(fx->hv_sock), "%s/hv.sock", fx->dir);
    snprintf(fx->xs_sock, sizeof(fx->xs_sock), "%s.xenstore", fx->hv_sock);
    snprintf(fx->spec, sizeof(fx->spec), "local:%s", fx->hv_sock);

    snprintf(fdarg, sizeof(fdarg), "%d", FX_CHILD_FD);
    argv[n++] = getenv("PVABI_HV");
    argv[n++] = "--socket";
    argv[n++] = fx->hv_sock;
    argv[n++] = "--ready-fd";
    argv[n++] = fdarg;
    for (int i = 0; extra && extra[i] && n < 38; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;

    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], FX_CHILD_FD);
    assert_int_equal(posix_spawn(&fx->pid, argv[0], &fa, NULL, (char **)argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(p[1]);

    pfd = (struct pollfd){ .fd = p[0], .events = POLLIN };
    assert_int_equal(poll(&pfd, 1, FX_WAIT_MS), 1);
    if (read(p[0], &c, 1) != 1)
        fail_msg("pvabi-hv exited before it was ready (see its stderr)");
    close(p[0]);

    if (stat(fx->xs_sock, &st) != 0 || !S_ISSOCK(st.st_mode))
        fail_msg("pvabi-hv is ready but has no store socket at %s", fx->xs_sock);
    /* libxenstore's xs_open() tries XENSTORED_PATH first; agents inherit it. */
    setenv("XENSTORED_PATH", fx->xs_sock, 1);
    setenv("PVABI_LOCAL_SOCKET", fx->hv_sock, 1);
    setenv("PVABI_LOCAL_AUTOSTART", "0", 1);
    fx_cur = fx;
}

static void remove_dir(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    char p[PATH_MAX];

    if (!d)
        return;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(path);
}

void fx_stop(struct fx *fx)
{
    int st;

    for (unsigned i = 0; i < fx->ndoms; i++) {
        if (fx->doms[i] > 0) {
            kill(fx->doms[i], SIGKILL);
            waitpid(fx->doms[i], NULL, 0);
        }
    }
    fx->ndoms = 0;
    assert_int_equal(kill(fx->pid, SIGTERM), 0);
    assert_int_equal(waitpid(fx->pid, &st, 0), fx->pid);
    remove_dir(fx->dir);
    if (fx_cur == fx)
        fx_cur = NULL;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("pvabi-hv did not exit cleanly after SIGTERM: %s %d",
                 WIFEXITED(st) ? "status" : "signal",
                 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
}

int fx_setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));

    assert_non_null(fx);
    fx_start(fx, fx_default_args);
    *state = fx;
    return 0;
}

int fx_teardown(void **state)
{
    struct fx *fx = *state;

    fx_stop(fx);
    free(fx);
    return 0;
}

/* ---- libxenstore helpers ------------------------------------------------------ */

struct xs_handle *fx_xs_open(void)
{
    struct xs_handle *h = xs_open(0);

    if (!h)
        fail_msg("xs_open(0) on %s: %s", getenv("XENSTORED_PATH"), strerror(errno));
    return h;
}

void fx_write(struct xs_handle *h, const char *path, const char *value)
{
    if (!xs_write(h, XBT_NULL, path, value, (unsigned)strlen(value)))
        fail_msg("xs_write(%s, \"%s\"): %s", path, value, strerror(errno));
}

char *fx_read(struct xs_handle *h, xs_transaction_t t, const char *path)
{
    unsigned len;

    return xs_read(h, t, path, &len);
}

void fx_expect_value(struct xs_handle *h, const char *path, const char *value)
{
    char *v = fx_read(h, XBT_NULL, path);

    if (!v)
        fail_msg("read %s: %s (expected \"%s\")", path, strerror(errno), value);
    if (strcmp(v, value) != 0)
        fail_msg("read %s: \"%s\", expected \"%s\"", path, v, value);
    free(v);
}

void fx_expect_enoent(struct xs_handle *h, const char *path)
{
    char *v = fx_read(h, XBT_NULL, path);

    if (v)
        fail_msg("read %s: \"%s\", expected ENOENT", path, v);
    if (errno != ENOENT)
        fail_msg("read %s: %s, expected ENOENT", path, strerror(errno));
}

int fx_perms_format(const struct xs_permissions *p, unsigned n, char *buf, size_t cap)
{
    size_t off = 0;

    buf[0] = 0;
    for (unsigned i = 0; i < n; i++) {
        unsigned rw = p[i].perms & (XS_PERM_READ | XS_PERM_WRITE);
        char c = rw == (XS_PERM_READ | XS_PERM_WRITE) ? 'b'
                 : rw == XS_PERM_READ                 ? 'r'
                 : rw == XS_PERM_WRITE                ? 'w'
                                                      : 'n';
        int w = snprintf(buf + off, cap - off, "%s%c%u", i ? " " : "", c, p[i].id);

        if (w < 0 || (size_t)w >= cap - off)
            return -ENOSPC;
        off += (size_t)w;
    }
    return 0;
}

int fx_perms_parse(const char *s, struct xs_permissions *p, unsigned max)
{
    unsigned n = 0;

    while (*s) {
        char *end;

        while (*s == ' ')
            s++;
        if (!*s)
            break;
        if (n == max)
            return -ENOSPC;
        switch (*s) {
        case 'n':
            p[n].perms = XS_PERM_NONE;
            break;
        case 'r':
            p[n].perms = XS_PERM_READ;
            break;
        case 'w':
            p[n].perms = XS_PERM_WRITE;
            break;
        case 'b':
            p[n].perms = XS_PERM_READ | XS_PERM_WRITE;
            break;
        default:
            return -EINVAL;
        }
        p[n].id = (unsigned)strtoul(s + 1, &end, 10);
        if (end == s + 1)
            return -EINVAL;
        s = end;
        n++;
    }
    return (int)n;
}

int fx_perms_get(struct xs_handle *h, const char *path, char *buf, size_t cap)
{
    unsigned n;
    struct xs_permissions *p = xs_get_permissions(h, XBT_NULL, path, &n);

    if (!p)
        return errno;
    fx_perms_format(p, n, buf, cap);
    free(p);
    return 0;
}

int fx_perms_set(struct xs_handle *h, const char *path, const char *perms)
{
    struct xs_permissions p[16];
    int n = fx_perms_parse(perms, p, 16);

    assert_true(n > 0);
    return xs_set_permissions(h, XBT_NULL, path, p, (unsigned)n) ? 0 : errno;
}

int fx_next_event(struct xs_handle *h, int timeout_ms, char **path, char **token)
{
    long long deadline = now_ms() + timeout_ms;
    int fd = xs_fileno(h);

    for (;;) {
        char **v = xs_check_watch(h);
        struct pollfd pfd = { .fd = fd, .events = POLLIN };

        if (v) {
            *path = strdup(v[XS_WATCH_PATH]);
            *token = strdup(v[XS_WATCH_TOKEN]);
            free(v);
            return 0;
        }
        if (errno != EAGAIN)
            return errno ? errno : EIO;
        if (poll(&pfd, 1, left_ms(deadline)) == 0)
            return ETIMEDOUT;
    }
}

void fx_expect_event(struct xs_handle *h, const char *path, const char *token)
{
    char *p, *t;
    int err = fx_next_event(h, FX_WAIT_MS, &p, &t);

    if (err)
        fail_msg("waiting for watch event (%s, %s): %s", path, token, strerror(err));
    if (strcmp(p, path) != 0 || strcmp(t, token) != 0)
        fail_msg("watch event (%s, %s), expected (%s, %s)", p, t, path, token);
    free(p);
    free(t);
}

static unsigned marker_seq;

/* Sets a fresh marker watch; its initial event comes after every event
 * queued for @h before (one connection's messages keep their order). */
static void marker_set(struct xs_handle *h, char *path, size_t cap, char *token, size_t tcap)
{
    unsigned n = ++marker_seq;

    snprintf(path, cap, "/fx-marker/m%u", n);
    snprintf(token, tcap, "%s-%u", FX_MARKER_TOKEN, n);
    if (!xs_watch(h, path, token))
        fail_msg("marker watch %s: %s", path, strerror(errno));
}

int fx_collect(struct xs_handle *h, struct fx_event *ev, int max)
{
    char mpath[64], mtoken[64], *p, *t;
    int n = 0;

    marker_set(h, mpath, sizeof(mpath), mtoken, sizeof(mtoken));
    for (;;) {
        int err = fx_next_event(h, FX_WAIT_MS, &p, &t);

        if (err)
            fail_msg("waiting for the marker watch's event: %s", strerror(err));
        if (strcmp(p, mpath) == 0 && strcmp(t, mtoken) == 0) {
            free(p);
            free(t);
            break;
        }
        if (n < max) {
            snprintf(ev[n].path, sizeof(ev[n].path), "%s", p);
            snprintf(ev[n].token, sizeof(ev[n].token), "%s", t);
        }
        n++;
        free(p);
        free(t);
    }
    if (!xs_unwatch(h, mpath, mtoken))
        fail_msg("unwatch marker %s: %s", mpath, strerror(errno));
    return n < max ? n : max;
}

void fx_expect_quiet(struct xs_handle *h)
{
    struct fx_event ev[4];
    int n = fx_collect(h, ev, 4);

    if (n)
        fail_msg("unexpected watch event (%s, %s)%s", ev[0].path, ev[0].token,
                 n > 1 ? " and more" : "");
}

bool fx_has_event(const struct fx_event *ev, int n, const char *path, const char *token)
{
    for (int i = 0; i < n; i++)
        if (strcmp(ev[i].path, path) == 0 && strcmp(ev[i].token, token) == 0)
            return true;
    return false;
}

static unsigned count_owned(struct xs_handle *h, const char *path, unsigned domid)
{
    unsigned n = 0, num = 0, np;
    struct xs_permissions *p = xs_get_permissions(h, XBT_NULL, path, &np);
    char **e;

    if (p && np > 0 && p[0].id == domid)
        n++;
    free(p);
    e = xs_directory(h, XBT_NULL, path, &num);
    for (unsigned i = 0; e && i < num; i++) {
        char child[4096];

        snprintf(child, sizeof(child), "%s/%s", strcmp(path, "/") ? path : "", e[i]);
        n += count_owned(h, child, domid);
    }
    free(e);
    return n;
}

unsigned fx_count_owned(struct xs_handle *h, unsigned domid)
{
    return count_owned(h, "/", domid);
}

/* ---- raw wire --------------------------------------------------------------- */

int fx_raw_connect(void)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(s >= 0);
    assert_true(strlen(fx_cur->xs_sock) < sizeof(a.sun_path));
    memcpy(a.sun_path, fx_cur->xs_sock, strlen(fx_cur->xs_sock) + 1);
    if (connect(s, (struct sockaddr *)&a, sizeof(a)) != 0)
        fail_msg("connect %s: %s", a.sun_path, strerror(errno));
    return s;
}

static int write_all(int s, const void *p, size_t len)
{
    const char *c = p;

    while (len) {
        ssize_t w = send(s, c, len, MSG_NOSIGNAL);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        c += w;
        len -= (size_t)w;
    }
    return 0;
}

int fx_raw_send(int s, uint32_t type, uint32_t req_id, uint32_t tx_id, const void *payload,
                uint32_t len)
{
    struct xsd_sockmsg h = { .type = type, .req_id = req_id, .tx_id = tx_id, .len = len };
    int rc = write_all(s, &h, sizeof(h));

    return rc ? rc : write_all(s, payload, len);
}

/* Reads exactly @len bytes by @deadline: 0, -ETIMEDOUT, -EPIPE or -errno. */
static int read_exact(int s, void *p, size_t len, long long deadline)
{
    char *c = p;

    while (len) {
        struct pollfd pfd = { .fd = s, .events = POLLIN };
        ssize_t r;

        if (poll(&pfd, 1, left_ms(deadline)) == 0)
            return -ETIMEDOUT;
        r = read(s, c, len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return errno == ECONNRESET ? -EPIPE : -errno;
        if (r == 0)
            return -EPIPE;
        c += r;
        len -= (size_t)r;
    }
    return 0;
}

int fx_raw_recv(int s, struct xsd_sockmsg *hdr, char *buf, size_t cap, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    int rc = read_exact(s, hdr, sizeof(*hdr), deadline);
    char scratch[512];
    uint32_t left;

    if (rc)
        return rc;
    if (hdr->len <= cap) {
        rc = read_exact(s, buf, hdr->len, deadline);
        if (!rc && hdr->len < cap)
            buf[hdr->len] = 0;
        return rc;
    }
    for (left = hdr->len; left && !rc;) {
        uint32_t n = left < sizeof(scratch) ? left : (uint32_t)sizeof(scratch);

        rc = read_exact(s, scratch, n, deadline);
        left -= n;
    }
    return rc ? rc : -EMSGSIZE;
}

int fx_raw_call(int s, uint32_t type, uint32_t req_id, uint32_t tx_id, const void *payload,
                uint32_t len, struct xsd_sockmsg *hdr, char *buf, size_t cap)
{
    int rc = fx_raw_send(s, type, req_id, tx_id, payload, len);

    while (!rc) {
        rc = fx_raw_recv(s, hdr, buf, cap, FX_WAIT_MS);
        if (!rc && hdr->type != XS_WATCH_EVENT)
            break;
    }
    return rc;
}

bool fx_raw_wait_closed(int s, int timeout_ms)
{
    long long deadline = now_ms() + timeout_ms;
    char buf[65536];

    for (;;) {
        struct pollfd pfd = { .fd = s, .events = POLLIN };
        ssize_t r;

        if (poll(&pfd, 1, left_ms(deadline)) == 0)
            return false;
        r = read(s, buf, sizeof(buf));
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            return true;
        if (r < 0 && errno != EINTR && errno != EAGAIN)
            return true;
    }
}

const char *fx_errname(int err)
{
    for (size_t i = 0; i < sizeof(xsd_errors) / sizeof(xsd_errors[0]); i++)
        if (xsd_errors[i].errnum == err)
            return xsd_errors[i].errstring;
    return "E?";
}

/* ---- agents --------------------------------------------------------------------- */

struct frame_req {
    uint32_t op, tx, len0, len1;
};

struct frame_rsp {
    int32_t err;
    uint32_t len;
};

static int send_rsp(int fd, int err, const void *data, size_t len)
{
    char buf[FX_FRAME_MAX];
    struct frame_rsp r = { .err = err, .len = (uint32_t)len };

    if (len > sizeof(buf) - sizeof(r))
        len = sizeof(buf) - sizeof(r), r.len = (uint32_t)len;
    memcpy(buf, &r, sizeof(r));
    if (len)
        memcpy(buf + sizeof(r), data, len);
    return send(fd, buf, sizeof(r) + len, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

struct agent {
    int fd;
    struct xs_handle *h;
    pvabi_ctx *ctx[2];
    unsigned domid;
    char home[64];
};

/* The next event as "path token" in @out; 0 or an errno. */
static int agent_event(struct agent *a, int timeout_ms, char *out, size_t cap)
{
    char *p, *t;
    int err = fx_next_event(a->h, timeout_ms, &p, &t);

    if (err)
        return err;
    snprintf(out, cap, "%s %s", p, t);
    free(p);
    free(t);
    return 0;
}

static int agent_quiet(struct agent *a, char *out, size_t cap)
{
    char mpath[128], mtoken[64], want[256];
    int err;

    snprintf(mpath, sizeof(mpath), "%s/fx-marker-%u", a->home, ++marker_seq);
    snprintf(mtoken, sizeof(mtoken), "%s-%u", FX_MARKER_TOKEN, marker_seq);
    snprintf(want, sizeof(want), "%s %s", mpath, mtoken);
    if (!xs_watch(a->h, mpath, mtoken))
        return errno;
    err = agent_event(a, FX_WAIT_MS, out, cap);
    if (!err && strcmp(out, want) != 0) {
        /* Let the marker's own event go by before the next request. */
        char rest[256];

        while (agent_event(a, FX_WAIT_MS, rest, sizeof(rest)) == 0 && strcmp(rest, want) != 0)
            ;
        err = EPROTO;
    }
    xs_unwatch(a->h, mpath, mtoken);
    return err;
}

/* Does one request; the reply data goes to @out/@outlen. */
static int agent_do(struct agent *a, const struct frame_req *r, const char *a0, const char *a1,
                    char *out, size_t *outlen)
{
    size_t cap = FX_FRAME_MAX - 64;
    unsigned len = 0, n = 0;
    void *v = NULL;
    struct xs_permissions p[16];
    int np;

    *outlen = 0;
    errno = 0;
    switch (r->op) {
    case FX_OP_READ:
        v = xs_read(a->h, r->tx, a0, &len);
        if (!v)
            return errno;
        memcpy(out, v, len < cap ? len : cap);
        *outlen = len < cap ? len : cap;
        free(v);
        return 0;
    case FX_OP_WRITE:
        return xs_write(a->h, r->tx, a0, a1, r->len1) ? 0 : errno;
    case FX_OP_MKDIR:
        return xs_mkdir(a->h, r->tx, a0) ? 0 : errno;
    case FX_OP_RM:
        return xs_rm(a->h, r->tx, a0) ? 0 : errno;
    case FX_OP_DIR: {
        char **e = xs_directory(a->h, r->tx, a0, &n);
        size_t off = 0;

        if (!e)
            return errno;
        out[0] = 0;
        for (unsigned i = 0; i < n && off < cap; i++)
            off += (size_t)snprintf(out + off, cap - off, "%s%s", i ? " " : "", e[i]);
        *outlen = strlen(out);
        free(e);
        return 0;
    }
    case FX_OP_GETPERMS: {
        struct xs_permissions *gp = xs_get_permissions(a->h, r->tx, a0, &n);

        if (!gp)
            return errno;
        fx_perms_format(gp, n, out, cap);
        *outlen = strlen(out);
        free(gp);
        return 0;
    }
    case FX_OP_SETPERMS:
        np = fx_perms_parse(a1, p, 16);
        if (np <= 0)
            return EINVAL;
        return xs_set_permissions(a->h, r->tx, a0, p, (unsigned)np) ? 0 : errno;
    case FX_OP_WATCH:
        return xs_watch(a->h, a0, a1) ? 0 : errno;
    case FX_OP_UNWATCH:
        return xs_unwatch(a->h, a0, a1) ? 0 : errno;
    case FX_OP_NEXT_EVENT: {
        int err = agent_event(a, atoi(a0), out, cap);

        *outlen = err ? 0 : strlen(out);
        return err;
    }
    case FX_OP_QUIET: {
        int err = agent_quiet(a, out, cap);

        *outlen = err == EPROTO ? strlen(out) : 0;
        return err;
    }
    case FX_OP_TX_START: {
        xs_transaction_t t = xs_transaction_start(a->h);

        if (t == XBT_NULL)
            return errno ? errno : EIO;
        *outlen = (size_t)snprintf(out, cap, "%u", (unsigned)t);
        return 0;
    }
    case FX_OP_TX_END:
        return xs_transaction_end(a->h, r->tx, a0[0] == 'F') ? 0 : errno;
    case FX_OP_CONTROL: {
        char *rep = xs_control_command(a->h, a0, (void *)a1, r->len1);

        if (!rep)
            return errno;
        *outlen = (size_t)snprintf(out, cap, "%s", rep);
        free(rep);
        return 0;
    }
    case FX_OP_DOMAIN_PATH: {
        char *path = xs_get_domain_path(a->h, (unsigned)atoi(a0));

        if (!path)
            return errno;
        *outlen = (size_t)snprintf(out, cap, "%s", path);
        free(path);
        return 0;
    }
    case FX_OP_PVABI_CLOSE: {
        int i = atoi(a0) ? 1 : 0;

        pvabi_close(a->ctx[i]);
        a->ctx[i] = NULL;
        return 0;
    }
    case FX_OP_INTRODUCED: {
        bool yes = xs_is_domain_introduced(a->h, (unsigned)atoi(a0));

        if (!yes && errno)
            return errno;
        *outlen = (size_t)snprintf(out, cap, "%s", yes ? "T" : "F");
        return 0;
    }
    }
    return ENOSYS;
}

static int agent_loop(struct agent *a)
{
    static char in[FX_FRAME_MAX + 2], out[FX_FRAME_MAX];

    for (;;) {
        ssize_t r = recv(a->fd, in, FX_FRAME_MAX, 0);
        struct frame_req q;
        char *a0, *a1;
        size_t outlen;
        int err;

        if (r <= 0)
            return 0; /* the test is done with us */
        if ((size_t)r < sizeof(q))
            return 1;
        memcpy(&q, in, sizeof(q));
        if (sizeof(q) + q.len0 + q.len1 != (size_t)r)
            return 1;
        /* Both arguments get a NUL after them (a0 is sent with its own). */
        a0 = in + sizeof(q);
        a1 = a0 + q.len0;
        memmove(a1 + 1, a1, q.len1);
        a1++;
        a1[q.len1] = 0;
        a1[-1] = 0;
        err = agent_do(a, &q, q.len0 ? a0 : NULL, a1, out, &outlen);
        if (send_rsp(a->fd, err, out, outlen) < 0)
            return 1;
    }
}

int fx_agent_main(int argc, char **argv)
{
    struct agent a = { .fd = FX_CHILD_FD };
    pvabi_ctx **ctx = a.ctx;
    char hello[64], spec[200];
    int nctx, rc;

    if (argc < 3 || strcmp(argv[1], FX_AGENT_ARG) != 0)
        return -1;
    nctx = atoi(argv[2]);
    snprintf(spec, sizeof(spec), "local:%s", getenv("PVABI_LOCAL_SOCKET"));
    for (int i = 0; i < nctx && i < 2; i++) {
        rc = pvabi_open(&ctx[i], spec);
        if (rc < 0) {
            send_rsp(a.fd, -rc, "pvabi_open", 10);
            return 1;
        }
    }
    a.h = xs_open(0);
    if (!a.h) {
        send_rsp(a.fd, errno, "xs_open", 7);
        return 1;
    }
    a.domid = pvabi_own_domid(ctx[0]);
    snprintf(a.home, sizeof(a.home), "/local/domain/%u", a.domid);
    if (nctx > 1)
        snprintf(hello, sizeof(hello), "%u %u", a.domid, (unsigned)pvabi_own_domid(ctx[1]));
    else
        snprintf(hello, sizeof(hello), "%u", a.domid);
    if (send_rsp(a.fd, 0, hello, strlen(hello)) < 0)
        return 1;
    rc = agent_loop(&a);
    xs_close(a.h);
    for (int i = 0; i < 2; i++)
        pvabi_close(ctx[i]);
    return rc;
}

/* Receives one reply frame within @timeout_ms: the agent's error (>= 0) or
 * a negative errno of the transport. */
static int recv_rsp(int fd, int timeout_ms, char *out, size_t cap, size_t *outlen)
{
    static char buf[FX_FRAME_MAX];
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    struct frame_rsp r;
    ssize_t n;

    if (poll(&pfd, 1, timeout_ms) == 0)
        return -ETIMEDOUT;
    n = recv(fd, buf, sizeof(buf), 0);
    if (n < (ssize_t)sizeof(r))
        return -EPIPE;
    memcpy(&r, buf, sizeof(r));
    if (out && cap) {
        size_t l = r.len < cap - 1 ? r.len : cap - 1;

        memcpy(out, buf + sizeof(r), l);
        out[l] = 0;
        if (outlen)
            *outlen = l;
    }
    return r.err;
}

static char *self_exe(void)
{
    static char path[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);

    assert_true(n > 0);
    path[n] = 0;
    return path;
}

int fx_dom_try_spawn(struct fx_dom *d, int want_domid, int ncontexts)
{
    char fdarg[16], nctx[8], domenv[48], hello[64];
    const char *argv[] = { self_exe(), FX_AGENT_ARG, nctx, fdarg, NULL };
    char **envp;
    size_t ne = 0, k = 0;
    posix_spawn_file_actions_t fa;
    int sv[2], err;

    memset(d, 0, sizeof(*d));
    snprintf(fdarg, sizeof(fdarg), "%d", FX_CHILD_FD);
    snprintf(nctx, sizeof(nctx), "%d", ncontexts);
    while (environ[ne])
        ne++;
    envp = calloc(ne + 2, sizeof(*envp));
    assert_non_null(envp);
    for (size_t i = 0; i < ne; i++)
        if (strncmp(environ[i], "PVABI_LOCAL_DOMID=", 18) != 0)
            envp[k++] = environ[i];
    if (want_domid >= 0) {
        snprintf(domenv, sizeof(domenv), "PVABI_LOCAL_DOMID=%d", want_domid);
        envp[k++] = domenv;
    }

    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, sv[1], FX_CHILD_FD);
    assert_int_equal(posix_spawn(&d->pid, argv[0], &fa, NULL, (char **)argv, envp), 0);
    posix_spawn_file_actions_destroy(&fa);
    free(envp);
    close(sv[1]);
    d->fd = sv[0];
    assert_true(fx_cur->ndoms < FX_MAX_DOMS);
    fx_cur->doms[fx_cur->ndoms++] = d->pid;

    err = recv_rsp(d->fd, FX_SPAWN_WAIT, hello, sizeof(hello), NULL);
    if (err)
        return err < 0 ? -err : err;
    if (ncontexts > 1)
        assert_int_equal(sscanf(hello, "%u %u", &d->domid, &d->domid2), 2);
    else
        assert_int_equal(sscanf(hello, "%u", &d->domid), 1);
    snprintf(d->home, sizeof(d->home), "/local/domain/%u", d->domid);
    return 0;
}

void fx_dom_spawn(struct fx_dom *d, int want_domid, int ncontexts)
{
    int err = fx_dom_try_spawn(d, want_domid, ncontexts);

    if (err)
        fail_msg("agent (domid %d) did not come up: %s", want_domid, strerror(err));
}

void fx_dom_kill(struct fx_dom *d)
{
    if (d->pid <= 0)
        return;
    kill(d->pid, SIGKILL);
    assert_int_equal(waitpid(d->pid, NULL, 0), d->pid);
    for (unsigned i = 0; i < fx_cur->ndoms; i++)
        if (fx_cur->doms[i] == d->pid)
            fx_cur->doms[i] = 0;
    close(d->fd);
    d->pid = 0;
}

int fx_dom_op(struct fx_dom *d, enum fx_op op, uint32_t tx, const char *a0, const void *a1,
              size_t l1, char *out, size_t cap, size_t *outlen)
{
    static char buf[FX_FRAME_MAX];
    struct frame_req q = { .op = op, .tx = tx };
    int err;

    q.len0 = a0 ? (uint32_t)strlen(a0) + 1 : 0;
    q.len1 = (uint32_t)l1;
    assert_true(sizeof(q) + q.len0 + q.len1 <= sizeof(buf));
    memcpy(buf, &q, sizeof(q));
    if (q.len0)
        memcpy(buf + sizeof(q), a0, q.len0);
    if (l1)
        memcpy(buf + sizeof(q) + q.len0, a1, l1);
    assert_true(send(d->fd, buf, sizeof(q) + q.len0 + q.len1, MSG_NOSIGNAL) >= 0);
    err = recv_rsp(d->fd, FX_WAIT_MS * 2, out, cap, outlen);
    if (err < 0)
        fail_msg("agent of domain %u: no reply (%s)", d->domid, strerror(-err));
    return err;
}

int fx_dom_read(struct fx_dom *d, const char *path, char *out, size_t cap)
{
    return fx_dom_op(d, FX_OP_READ, 0, path, NULL, 0, out, cap, NULL);
}

int fx_dom_write(struct fx_dom *d, const char *path, const char *value)
{
    return fx_dom_op(d, FX_OP_WRITE, 0, path, value, strlen(value), NULL, 0, NULL);
}

int fx_dom_mkdir(struct fx_dom *d, const char *path)
{
    return fx_dom_op(d, FX_OP_MKDIR, 0, path, NULL, 0, NULL, 0, NULL);
}

int fx_dom_rm(struct fx_dom *d, const char *path)
{
    return fx_dom_op(d, FX_OP_RM, 0, path, NULL, 0, NULL, 0, NULL);
}

int fx_dom_dir(struct fx_dom *d, const char *path, char *out, size_t cap)
{
    return fx_dom_op(d, FX_OP_DIR, 0, path, NULL, 0, out, cap, NULL);
}

int fx_dom_getperms(struct fx_dom *d, const char *path, char *out, size_t cap)
{
    return fx_dom_op(d, FX_OP_GETPERMS, 0, path, NULL, 0, out, cap, NULL);
}

int fx_dom_setperms(struct fx_dom *d, const char *path, const char *perms)
{
    return fx_dom_op(d, FX_OP_SETPERMS, 0, path, perms, strlen(perms), NULL, 0, NULL);
}

int fx_dom_watch(struct fx_dom *d, const char *path, const char *token)
{
    return fx_dom_op(d, FX_OP_WATCH, 0, path, token, strlen(token), NULL, 0, NULL);
}

int fx_dom_unwatch(struct fx_dom *d, const char *path, const char *token)
{
    return fx_dom_op(d, FX_OP_UNWATCH, 0, path, token, strlen(token), NULL, 0, NULL);
}

int fx_dom_next_event(struct fx_dom *d, int timeout_ms, char *out, size_t cap)
{
    char t[16];

    snprintf(t, sizeof(t), "%d", timeout_ms);
    return fx_dom_op(d, FX_OP_NEXT_EVENT, 0, t, NULL, 0, out, cap, NULL);
}

int fx_dom_quiet(struct fx_dom *d, char *out, size_t cap)
{
    return fx_dom_op(d, FX_OP_QUIET, 0, NULL, NULL, 0, out, cap, NULL);
}

int fx_dom_tx_start(struct fx_dom *d, uint32_t *tx)
{
    char out[32];
    int err = fx_dom_op(d, FX_OP_TX_START, 0, NULL, NULL, 0, out, sizeof(out), NULL);

    if (!err)
        *tx = (uint32_t)strtoul(out, NULL, 10);
    return err;
}

int fx_dom_tx_end(struct fx_dom *d, uint32_t tx, bool abort)
{
    return fx_dom_op(d, FX_OP_TX_END, tx, abort ? "F" : "T", NULL, 0, NULL, 0, NULL);
}

int fx_dom_control(struct fx_dom *d, const char *cmd, const char *arg, char *out, size_t cap)
{
    return fx_dom_op(d, FX_OP_CONTROL, 0, cmd, arg, arg ? strlen(arg) + 1 : 0, out, cap, NULL);
}
