/* SPDX-License-Identifier: MIT */
/*
 * The `xen` platform without Xen: every libxen* function it calls (and the
 * ioctls and poll() it makes on their fds) is linked as __wrap_<name> (-Wl,--wrap, see
 * meson.build), so these tests drive the public API through the core, the
 * seam and src/platform/xen/, and check what reaches libxen*, how each errno
 * is mapped, and that the log names the failing call.
 */

/* xenctrl.h needs GNU C (see src/platform/xen/xc.c). */
#undef __STRICT_ANSI__
#define __XEN_TOOLS__ 1

#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include <xenctrl.h>
#include <xenevtchn.h>
#include <xengnttab.h>
#include <xenstore.h>
#include <xentoollog.h>
#include <xen/sys/evtchn.h>
#include <xen/sys/gntdev.h>

#include <pvabi/pvabi.h>

/* The platform's hidden test hook (src/platform/xen/domid.c). */
extern const char *pvabi__xen_caps_path;

/* Handles are opaque to the platform; these addresses stand for them. */
static char fake_xce_obj, fake_xgt_obj, fake_xgs_obj, fake_xch_obj, fake_xsh_obj;
#define FAKE_XCE ((xenevtchn_handle *)&fake_xce_obj)
#define FAKE_XGT ((xengnttab_handle *)&fake_xgt_obj)
#define FAKE_XGS ((xengntshr_handle *)&fake_xgs_obj)
#define FAKE_XCH ((xc_interface *)&fake_xch_obj)
#define FAKE_XSH ((struct xs_handle *)&fake_xsh_obj)

#define GNTDEV_FD 1000 /* xengnttab_fd(): only ever passed to the mocked ioctl */

static uint8_t pages[8][4096] __attribute__((aligned(4096)));

/* What the mocks saw. */
static struct {
    xentoollog_logger *loggers[5]; /* evtchn, gnttab, gntshr, xc, xc dombuild */
    xengnttab_grant_copy_segment_t copy[PVABI_GRANT_BATCH_MAX];
    unsigned copy_count;
    struct ioctl_gntdev_unmap_notify notify;
} seen;

/* ---- the log ----------------------------------------------------------- */

static char logbuf[16384];

static void capture(void *opaque, int level, const char *msg)
{
    size_t used = strlen(logbuf);

    (void)opaque;
    snprintf(logbuf + used, sizeof(logbuf) - used, "%d|%s\n", level, msg);
}

/* 1 if a message at @level contains @needle. */
static int logged_at(int level, const char *needle)
{
    char prefix[8];
    const char *line = logbuf;

    snprintf(prefix, sizeof(prefix), "%d|", level);
    for (; *line; line = strchr(line, '\n') + 1) {
        const char *end = strchr(line, '\n');
        const char *hit = strstr(line, needle);
        if (strncmp(line, prefix, strlen(prefix)) == 0 && hit && hit < end)
            return 1;
    }
    return 0;
}

static void assert_logged(int level, const char *needle)
{
    if (!logged_at(level, needle))
        fail_msg("no level-%d message with \"%s\" in:\n%s", level, needle, logbuf);
}

/* ---- mocks: libxenevtchn ----------------------------------------------- */

/*
 * Conventions: a mock returning a pointer takes it from will_return() and,
 * when it is NULL, a second will_return() with the errno to set; a mock
 * returning an int likewise takes an errno when the value is negative.
 */

/* Speaks through a libxen* logger as the libraries do. */
static void say(xentoollog_logger *l, xentoollog_level level, int err, const char *context,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void say(xentoollog_logger *l, xentoollog_level level, int err, const char *context,
                const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    l->vmessage(l, level, err, context, fmt, ap);
    va_end(ap);
}

xenevtchn_handle *__wrap_xenevtchn_open(struct xentoollog_logger *logger, unsigned flags)
{
    (void)flags;
    seen.loggers[0] = logger;
    xenevtchn_handle *p = mock_ptr_type(xenevtchn_handle *);

    if (!p)
        errno = mock_type(int);
    return p;
}

int __wrap_xenevtchn_close(xenevtchn_handle *xce)
{
    assert_ptr_equal(xce, FAKE_XCE);
    function_called();
    return 0;
}

int __wrap_xenevtchn_fd(xenevtchn_handle *xce)
{
    assert_ptr_equal(xce, FAKE_XCE);
    return mock_type(int);
}

int __wrap_xenevtchn_notify(xenevtchn_handle *xce, evtchn_port_t port)
{
    (void)xce;
    check_expected(port);
    int r = mock_type(int);

    if (r < 0)
        errno = mock_type(int);
    return r;
}

xenevtchn_port_or_error_t __wrap_xenevtchn_bind_unbound_port(xenevtchn_handle *xce, uint32_t domid)
{
    (void)xce;
    check_expected(domid);
    int r = mock_type(int);

    if (r < 0)
        errno = mock_type(int);
    return r;
}

xenevtchn_port_or_error_t __wrap_xenevtchn_bind_interdomain(xenevtchn_handle *xce, uint32_t domid,
                                                            evtchn_port_t remote_port)
{
    (void)xce;
    check_expected(domid);
    check_expected(remote_port);
    int r = mock_type(int);

    if (r < 0)
        errno = mock_type(int);
    return r;
}

int __wrap_xenevtchn_unbind(xenevtchn_handle *xce, evtchn_port_t port)
{
    (void)xce;
    check_expected(port);
    int r = mock_type(int);

    if (r < 0)
        errno = mock_type(int);
    return r;
}

xenevtchn_port_or_error_t __wrap_xenevtchn_pending(xenevtchn_handle *xce)
{
    (void)xce;
    int r = mock_type(int);

    if (r < 0)
        errno = mock_type(int);
    return r;
}

int __wrap_xenevtchn_unmask(xenevtchn_handle *xce, evtchn_port_t port)
{
    (void)xce;
    check_expected(port);
    int r = mock_type(int);

    if (r < 0)
        errno = mock_type(int);
    return r;
}

/* ---- mocks: libxengnttab ----------------------------------------------- */

xengnttab_handle *__wrap_xengnttab_open(struct xentoollog_logger *logger, unsigned flags)
{
    (void)flags;
    seen.loggers[1] = logger;
    xengnttab_handle *p = mock_ptr_type(xengnttab_handle *);

    if (!p)
        errno = mock_type(int);
    return p;
}

int __wrap_xengnttab_close(xengnttab_handle *xgt)
{
    assert_ptr_equal(xgt, FAKE_XGT);
    function_called();
    return 0;
}

int __wrap_xengnttab_fd(xengnttab_handle *xgt)
{
    assert_ptr_equal(xgt, FAKE_XGT);
    return GNTDEV_FD;
}

void *__wrap_xengnttab_map_domain_grant_refs(xengnttab_handle *xgt, uint32_t count, uint32_t domid,
                                             uint32_t *refs, int prot)
{
    (void)xgt;
    check_expected(count);
    check_expected(domid);
    check_expected(refs);
    check_expected(prot);
    void *p = mock_ptr_type(void *);

    if (!p)
        errno = mock_type(int);
    return p;
}

/* Also speaks through the logger, as libxengnttab does when a map fails. */
void *__wrap_xengnttab_map_grant_ref(xengnttab_handle *xgt, uint32_t domid, uint32_t ref, int prot)
{
    void *p;

    (void)xgt;
    check_expected(domid);
    check_expected(ref);
    check_expected(prot);
    p = mock_ptr_type(void *);
    if (!p) {
        errno = mock_type(int);
        say(seen.loggers[1], XTL_ERROR, errno, "gnttab", "mmap failed");
    }
    return p;
}

int __wrap_xengnttab_unmap(xengnttab_handle *xgt, void *start_address, uint32_t count)
{
    (void)xgt;
    check_expected(start_address);
    check_expected(count);
    int r = mock_type(int);

    if (r < 0)
        errno = mock_type(int);
    return r;
}

/* Records the segments; on success applies the queued GNTST statuses. */
int __wrap_xengnttab_grant_copy(xengnttab_handle *xgt, uint32_t count,
                                xengnttab_grant_copy_segment_t *segs)
{
    int r = mock_type(int);

    (void)xgt;
    assert_true(count <= PVABI_GRANT_BATCH_MAX);
    memcpy(seen.copy, segs, count * sizeof(*segs));
    seen.copy_count = count;
    if (r < 0) {
        errno = mock_type(int);
        return r;
    }
    const int16_t *st = mock_ptr_type(const int16_t *);
    for (uint32_t i = 0; i < count; i++)
        segs[i].status = st[i];
    return r;
}

xengntshr_handle *__wrap_xengntshr_open(struct xentoollog_logger *logger, unsigned flags)
{
    (void)flags;
    seen.loggers[2] = logger;
    xengntshr_handle *p = mock_ptr_type(xengntshr_handle *);

    if (!p)
        errno = mock_type(int);
    return p;
}

int __wrap_xengntshr_close(xengntshr_handle *xgs)
{
    assert_ptr_equal(xgs, FAKE_XGS);
    function_called();
    return 0;
}

/* Gives refs 100, 101, ... to the pages. */
void *__wrap_xengntshr_share_pages(xengntshr_handle *xgs, uint32_t domid, int count, uint32_t *refs,
                                   int writable)
{
    void *p;

    (void)xgs;
    check_expected(domid);
    check_expected(count);
    check_expected(writable);
    p = mock_ptr_type(void *);
    if (!p) {
        errno = mock_type(int);
        return NULL;
    }
    for (int i = 0; i < count; i++)
        refs[i] = 100u + (uint32_t)i;
    return p;
}

int __wrap_xengntshr_unshare(xengntshr_handle *xgs, void *start_address, uint32_t count)
{
    (void)xgs;
    check_expected(start_address);
    check_expected(count);
    int r = mock_type(int);

    if (r < 0)
        errno = mock_type(int);
    return r;
}

/* ---- mocks: libxenctrl, libxenstore, ioctl ----------------------------- */

/* On failure it logs as libxenctrl does, to check that this is demoted. */
xc_interface *__wrap_xc_interface_open(xentoollog_logger *logger, xentoollog_logger *dombuild,
                                       unsigned flags)
{
    xc_interface *p = mock_ptr_type(xc_interface *);

    (void)flags;
    seen.loggers[3] = logger;
    seen.loggers[4] = dombuild;
    if (!p) {
        errno = mock_type(int);
        say(logger, XTL_ERROR, errno, "xc",
            "Could not obtain handle on privileged command "
            "interface");
    }
    return p;
}

int __wrap_xc_interface_close(xc_interface *xch)
{
    assert_ptr_equal(xch, FAKE_XCH);
    function_called();
    return 0;
}

/* Answers with a queued struct evtchn_status, or -1 and a queued errno. */
int __wrap_xc_evtchn_status(xc_interface *xch, xc_evtchn_status_t *status)
{
    const xc_evtchn_status_t *answer;
    int r = mock_type(int);
    domid_t dom = status->dom;
    evtchn_port_t port = status->port;

    (void)xch;
    check_expected(dom);
    check_expected(port);
    if (r < 0) {
        errno = mock_type(int);
        return r;
    }
    answer = mock_ptr_type(const xc_evtchn_status_t *);
    status->status = answer->status;
    status->u = answer->u;
    return 0;
}

struct xs_handle *__wrap_xs_open(unsigned long flags)
{
    (void)flags;
    struct xs_handle *p = mock_ptr_type(struct xs_handle *);

    if (!p)
        errno = mock_type(int);
    return p;
}

void __wrap_xs_close(struct xs_handle *xsh)
{
    assert_ptr_equal(xsh, FAKE_XSH);
    function_called();
}

void *__wrap_xs_read(struct xs_handle *h, xs_transaction_t t, const char *path, unsigned int *len)
{
    const char *v = mock_ptr_type(const char *);

    assert_ptr_equal(h, FAKE_XSH);
    assert_int_equal(t, XBT_NULL);
    assert_string_equal(path, "domid");
    if (!v) {
        errno = mock_type(int);
        return NULL;
    }
    *len = (unsigned int)strlen(v);
    return strdup(v);
}

int __real_ioctl(int fd, unsigned long request, ...);

/* The platform's own ioctls on libxen* fds are mocked; others pass. */
int __wrap_ioctl(int fd, unsigned long request, ...)
{
    va_list ap;
    void *arg;

    va_start(ap, request);
    arg = va_arg(ap, void *);
    va_end(ap);
    if (request == IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR) {
        struct ioctl_gntdev_get_offset_for_vaddr *w = arg;
        assert_int_equal(fd, GNTDEV_FD);
        check_expected(request);
        w->offset = mock_type(uint64_t);
    } else if (request == IOCTL_GNTDEV_SET_UNMAP_NOTIFY) {
        assert_int_equal(fd, GNTDEV_FD);
        check_expected(request);
        seen.notify = *(struct ioctl_gntdev_unmap_notify *)arg;
    } else if (request == IOCTL_EVTCHN_RESET) {
        check_expected(request);
    } else {
        return __real_ioctl(fd, request, arg);
    }
    int r = mock_type(int);

    if (r < 0)
        errno = mock_type(int);
    return r;
}

/* ---- opening and closing ----------------------------------------------- */

struct open_opts {
    int no_gnttab, no_gntshr, no_xc; /* that open fails with ENOENT */
    const char *domid;               /* xenstore's answer; NULL: ENOENT */
};

static int evtchn_fd = -1;

/* ---- mock: poll() of the evtchn fd ------------------------------------- */

int __real_poll(struct pollfd *fds, nfds_t nfds, int timeout);

/* The platform's poll() of the evtchn fd (pvabi_evtchn_wait): checks the
 * timeout, takes the result from will_return() (and an errno when it is
 * negative).  Any other poll() is the real one. */
int __wrap_poll(struct pollfd *fds, nfds_t nfds, int timeout)
{
    if (evtchn_fd < 0 || nfds != 1 || fds[0].fd != evtchn_fd)
        return __real_poll(fds, nfds, timeout);
    check_expected(timeout);
    int r = mock_type(int);

    if (r < 0)
        errno = mock_type(int);
    fds[0].revents = r > 0 ? POLLIN : 0;
    return r;
}

/* Expects one poll() of the evtchn fd with a timeout in [@lo, @hi]. */
static void expect_poll(int lo, int hi, int result, int err)
{
    expect_in_range(__wrap_poll, timeout, lo, hi);
    will_return(__wrap_poll, result);
    if (result < 0)
        will_return(__wrap_poll, err);
}

/* Queues the mock answers of a successful pvabi_open("xen"). */
static void queue_open(const struct open_opts *o)
{
    evtchn_fd = eventfd(0, EFD_CLOEXEC);
    assert_true(evtchn_fd >= 0);
    will_return(__wrap_xenevtchn_open, FAKE_XCE);
    will_return(__wrap_xenevtchn_fd, evtchn_fd);
    will_return(__wrap_xengnttab_open, o->no_gnttab ? NULL : FAKE_XGT);
    if (o->no_gnttab)
        will_return(__wrap_xengnttab_open, ENOENT);
    will_return(__wrap_xengntshr_open, o->no_gntshr ? NULL : FAKE_XGS);
    if (o->no_gntshr)
        will_return(__wrap_xengntshr_open, ENOENT);
    will_return(__wrap_xc_interface_open, o->no_xc ? NULL : FAKE_XCH);
    if (o->no_xc)
        will_return(__wrap_xc_interface_open, EACCES);
    will_return(__wrap_xs_open, FAKE_XSH);
    will_return(__wrap_xs_read, o->domid);
    if (!o->domid)
        will_return(__wrap_xs_read, ENOENT);
    expect_function_call(__wrap_xs_close);
}

static void expect_close(const struct open_opts *o)
{
    if (!o->no_xc)
        expect_function_call(__wrap_xc_interface_close);
    if (!o->no_gntshr)
        expect_function_call(__wrap_xengntshr_close);
    if (!o->no_gnttab)
        expect_function_call(__wrap_xengnttab_close);
    expect_function_call(__wrap_xenevtchn_close);
}

static pvabi_ctx *open_with(const struct open_opts *o)
{
    pvabi_ctx *ctx = NULL;

    queue_open(o);
    assert_int_equal(pvabi_open(&ctx, "xen"), 0);
    assert_non_null(ctx);
    return ctx;
}

static pvabi_ctx *open_default(void)
{
    static const struct open_opts o = { .domid = "7" };
    return open_with(&o);
}

static void close_with(pvabi_ctx *ctx, const struct open_opts *o)
{
    expect_close(o);
    pvabi_close(ctx);
    close(evtchn_fd);
    evtchn_fd = -1;
}

static void close_default(pvabi_ctx *ctx)
{
    static const struct open_opts o = { .domid = "7" };
    close_with(ctx, &o);
}

static char caps_file[64];

static void write_caps(const char *text)
{
    FILE *f;

    snprintf(caps_file, sizeof(caps_file), "/tmp/pvabi-xen-caps-%d", (int)getpid());
    f = fopen(caps_file, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    pvabi__xen_caps_path = caps_file;
}

static int setup(void **state)
{
    (void)state;
    logbuf[0] = '\0';
    memset(&seen, 0, sizeof(seen));
    pvabi__xen_caps_path = "/nonexistent/pvabi-test/capabilities";
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (caps_file[0])
        unlink(caps_file);
    caps_file[0] = '\0';
    return 0;
}

/* ---- open -------------------------------------------------------------- */

static void test_open_reads_domid_and_makes_fd_nonblocking(void **state)
{
    pvabi_ctx *ctx;

    (void)state;
    ctx = open_default();
    assert_string_equal(pvabi_platform(ctx), "xen");
    assert_int_equal(pvabi_own_domid(ctx), 7);
    /* pvabi_fd() is the context's epoll set, which holds the evtchn fd. */
    struct epoll_event ev = { .events = EPOLLIN };
    assert_int_not_equal(pvabi_fd(ctx), evtchn_fd);
    assert_int_equal(epoll_ctl(pvabi_fd(ctx), EPOLL_CTL_ADD, evtchn_fd, &ev), -1);
    assert_int_equal(errno, EEXIST);
    assert_true(fcntl(evtchn_fd, F_GETFL) & O_NONBLOCK);
    close_default(ctx);
}

static void test_open_null_spec_follows_pvabi_platform(void **state)
{
    pvabi_ctx *ctx = NULL;
    static const struct open_opts o = { .domid = "3" };

    (void)state;
    setenv("PVABI_PLATFORM", "xen", 1);
    queue_open(&o);
    assert_int_equal(pvabi_open(&ctx, NULL), 0);
    unsetenv("PVABI_PLATFORM");
    assert_int_equal(pvabi_own_domid(ctx), 3);
    close_with(ctx, &o);
}

static void test_open_no_xen_here_is_enoent_with_hint(void **state)
{
    pvabi_ctx *ctx = (pvabi_ctx *)1;

    (void)state;
    will_return(__wrap_xenevtchn_open, NULL);
    will_return(__wrap_xenevtchn_open, ENOENT);
    assert_int_equal(pvabi_open(&ctx, "xen"), -ENOENT);
    assert_null(ctx);
    assert_logged(PVABI_LOG_ERR, "platform xen: xenevtchn_open: /dev/xen/evtchn: No such file or "
                                 "directory (is this a Xen domain with the xen-evtchn module "
                                 "loaded?)");
}

static void test_open_evtchn_permission_denied_names_device(void **state)
{
    pvabi_ctx *ctx;

    (void)state;
    will_return(__wrap_xenevtchn_open, NULL);
    will_return(__wrap_xenevtchn_open, EACCES);
    assert_int_equal(pvabi_open(&ctx, "xen"), -EACCES);
    assert_logged(PVABI_LOG_ERR, "/dev/xen/evtchn: Permission denied (run as root");
}

static void test_open_fcntl_failure_releases_evtchn(void **state)
{
    pvabi_ctx *ctx;

    (void)state;
    will_return(__wrap_xenevtchn_open, FAKE_XCE);
    will_return(__wrap_xenevtchn_fd, -1);
    expect_function_call(__wrap_xenevtchn_close);
    assert_int_equal(pvabi_open(&ctx, "xen"), -EBADF);
    assert_logged(PVABI_LOG_ERR, "fcntl(O_NONBLOCK) on the evtchn fd -1: Bad file descriptor");
}

static void test_open_without_domid_is_dom0_when_control_d(void **state)
{
    static const struct open_opts o = { .domid = NULL };
    pvabi_ctx *ctx;

    (void)state;
    write_caps("control_d\n");
    ctx = open_with(&o);
    assert_int_equal(pvabi_own_domid(ctx), 0);
    assert_logged(PVABI_LOG_DEBUG, "xs_read(\"domid\"): No such file or directory");
    close_with(ctx, &o);
}

static void test_open_xenstore_unreachable_is_dom0_when_control_d(void **state)
{
    pvabi_ctx *ctx;

    (void)state;
    write_caps("control_d\n");
    evtchn_fd = eventfd(0, EFD_CLOEXEC);
    will_return(__wrap_xenevtchn_open, FAKE_XCE);
    will_return(__wrap_xenevtchn_fd, evtchn_fd);
    will_return(__wrap_xengnttab_open, FAKE_XGT);
    will_return(__wrap_xengntshr_open, FAKE_XGS);
    will_return(__wrap_xc_interface_open, FAKE_XCH);
    will_return(__wrap_xs_open, NULL);
    will_return(__wrap_xs_open, ENOENT);
    assert_int_equal(pvabi_open(&ctx, "xen"), 0);
    assert_int_equal(pvabi_own_domid(ctx), 0);
    close_default(ctx);
}

static void test_open_without_domid_in_domu_fails_and_releases(void **state)
{
    static const struct open_opts o = { .domid = NULL };
    pvabi_ctx *ctx;

    (void)state;
    write_caps(""); /* a domU's capabilities file is empty */
    queue_open(&o);
    expect_close(&o);
    assert_int_equal(pvabi_open(&ctx, "xen"), -ENOENT);
    assert_null(ctx);
    assert_logged(PVABI_LOG_ERR, "cannot tell our domain id: xs_read(\"domid\") failed");
    close(evtchn_fd);
}

static void test_open_rejects_a_domid_that_is_not_one(void **state)
{
    static const char *const bad[] = { "", "abc", "7x", "32752", "99999999999" };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct open_opts o = { .domid = bad[i] };
        pvabi_ctx *ctx;
        queue_open(&o);
        expect_close(&o);
        assert_int_equal(pvabi_open(&ctx, "xen"), -EINVAL);
        assert_logged(PVABI_LOG_ERR, "xenstore key \"domid\" holds");
        close(evtchn_fd);
    }
}

static void test_open_hands_one_logger_to_libxen_and_routes_it(void **state)
{
    pvabi_ctx *ctx;

    (void)state;
    ctx = open_default();
    assert_non_null(seen.loggers[0]);
    for (int i = 1; i < 5; i++)
        assert_ptr_equal(seen.loggers[i], seen.loggers[0]);
    say(seen.loggers[0], XTL_ERROR, EIO, "evtchn", "boom %d", 42);
    assert_logged(PVABI_LOG_ERR, "libxen evtchn: boom 42: Input/output error");
    say(seen.loggers[0], XTL_WARN, -1, "evtchn", "careful");
    assert_logged(PVABI_LOG_WARN, "libxen evtchn: careful");
    say(seen.loggers[0], XTL_DETAIL, -1, "evtchn", "chatter");
    assert_logged(PVABI_LOG_DEBUG, "libxen evtchn: chatter");
    close_default(ctx);
}

static void test_open_without_privcmd_still_opens(void **state)
{
    static const struct open_opts o = { .domid = "7", .no_xc = 1 };
    pvabi_ctx *ctx;

    (void)state;
    ctx = open_with(&o);
    /* libxenctrl's own complaint is expected here: debug, not error. */
    assert_logged(PVABI_LOG_DEBUG, "libxen xc: Could not obtain handle");
    assert_false(logged_at(PVABI_LOG_ERR, "Could not obtain handle"));
    assert_logged(PVABI_LOG_DEBUG, "xc_interface_open: /dev/xen/privcmd");
    close_with(ctx, &o);
}

static void test_open_without_gntalloc_share_is_enotsup(void **state)
{
    static const struct open_opts o = { .domid = "7", .no_gntshr = 1 };
    pvabi_ctx *ctx;
    pvabi_grant *g;

    (void)state;
    ctx = open_with(&o);
    assert_int_equal(pvabi_grant_share(ctx, 0, 1, 0, &g), -ENOTSUP);
    assert_null(g);
    assert_logged(PVABI_LOG_ERR, "grant share: not available: /dev/xen/gntalloc could not be "
                                 "opened (No such file or directory); load the xen-gntalloc");
    close_with(ctx, &o);
}

static void test_open_without_gntdev_map_and_copy_are_enotsup(void **state)
{
    static const struct open_opts o = { .domid = "7", .no_gnttab = 1 };
    pvabi_gref ref = 8;
    uint8_t buf[4];
    struct pvabi_grant_copy_seg seg = { .local = buf, .ref = 8, .len = 4 };
    pvabi_ctx *ctx;
    pvabi_map *m;

    (void)state;
    ctx = open_with(&o);
    assert_int_equal(pvabi_grant_map(ctx, 0, &ref, 1, 0, NULL, &m), -ENOTSUP);
    assert_logged(PVABI_LOG_ERR, "grant map: not available: /dev/xen/gntdev");
    assert_int_equal(pvabi_grant_copy(ctx, &seg, 1), -ENOTSUP);
    assert_logged(PVABI_LOG_ERR, "grant copy: not available: /dev/xen/gntdev");
    close_with(ctx, &o);
}

/* ---- event channels ---------------------------------------------------- */

static void expect_alloc(pvabi_domid remote, int port)
{
    expect_value(__wrap_xenevtchn_bind_unbound_port, domid, remote);
    will_return(__wrap_xenevtchn_bind_unbound_port, port);
}

static void expect_bind(pvabi_domid remote, pvabi_port remote_port, int port, int err)
{
    expect_value(__wrap_xenevtchn_bind_interdomain, domid, remote);
    expect_value(__wrap_xenevtchn_bind_interdomain, remote_port, remote_port);
    will_return(__wrap_xenevtchn_bind_interdomain, port);
    if (port < 0)
        will_return(__wrap_xenevtchn_bind_interdomain, err);
}

static void expect_unbind(pvabi_port port, int rc, int err)
{
    expect_value(__wrap_xenevtchn_unbind, port, port);
    will_return(__wrap_xenevtchn_unbind, rc);
    if (rc < 0)
        will_return(__wrap_xenevtchn_unbind, err);
}

static void test_evtchn_alloc_bind_unbind_reach_libxenevtchn(void **state)
{
    pvabi_ctx *ctx = open_default();
    pvabi_port a, b;

    (void)state;
    expect_alloc(3, 11);
    assert_int_equal(pvabi_evtchn_alloc(ctx, 3, &a), 0);
    assert_int_equal(a, 11);
    expect_bind(4, 9, 12, 0);
    assert_int_equal(pvabi_evtchn_bind(ctx, 4, 9, &b), 0);
    assert_int_equal(b, 12);
    expect_unbind(11, 0, 0);
    assert_int_equal(pvabi_evtchn_unbind(ctx, 11), 0);
    assert_int_equal(pvabi_evtchn_unbind(ctx, 11), -EBADF); /* the core knows it is gone */
    close_default(ctx);
}

static void test_evtchn_alloc_error_is_mapped_and_logged(void **state)
{
    pvabi_ctx *ctx = open_default();
    pvabi_port p;

    (void)state;
    expect_alloc(3, -1);
    will_return(__wrap_xenevtchn_bind_unbound_port, ENOSPC);
    assert_int_equal(pvabi_evtchn_alloc(ctx, 3, &p), -ENOSPC);
    assert_logged(PVABI_LOG_ERR, "xenevtchn_bind_unbound_port(remote domain 3): No space left");
    close_default(ctx);
}

static void test_evtchn_alloc_port_out_of_range_is_given_back(void **state)
{
    pvabi_ctx *ctx = open_default();
    pvabi_port p;

    (void)state;
    expect_alloc(3, 1 << 20);
    expect_unbind(1u << 20, 0, 0);
    assert_int_equal(pvabi_evtchn_alloc(ctx, 3, &p), -ERANGE);
    assert_logged(PVABI_LOG_ERR, "port 1048576: cannot record it");
    close_default(ctx);
}

static void test_evtchn_bind_errors_are_mapped(void **state)
{
    static const struct open_opts o = { .domid = "7", .no_xc = 1 };
    static const struct {
        int err, want;
    } cases[] = {
        { ESRCH, -ESRCH }, { ENOSPC, -ENOSPC }, { EACCES, -EPERM },
        { EPERM, -EPERM }, { EINVAL, -EINVAL }, { ENOMEM, -ENOMEM },
    };
    pvabi_ctx *ctx = open_with(&o);
    pvabi_port p;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        expect_bind(5, 20, -1, cases[i].err);
        assert_int_equal(pvabi_evtchn_bind(ctx, 5, 20, &p), cases[i].want);
    }
    assert_logged(PVABI_LOG_ERR, "xenevtchn_bind_interdomain(domain 5, port 20): No such process");
    close_with(ctx, &o);
}

static void expect_status(pvabi_domid dom, pvabi_port port, const xc_evtchn_status_t *answer,
                          int err)
{
    expect_value(__wrap_xc_evtchn_status, dom, dom);
    expect_value(__wrap_xc_evtchn_status, port, port);
    will_return(__wrap_xc_evtchn_status, answer ? 0 : -1);
    if (answer)
        will_return(__wrap_xc_evtchn_status, answer);
    else
        will_return(__wrap_xc_evtchn_status, err);
}

static void test_evtchn_bind_to_port_offered_elsewhere_is_eperm(void **state)
{
    xc_evtchn_status_t elsewhere = { .status = EVTCHNSTAT_unbound, .u.unbound.dom = 9 };
    xc_evtchn_status_t to_us = { .status = EVTCHNSTAT_unbound, .u.unbound.dom = 7 };
    xc_evtchn_status_t busy = { .status = EVTCHNSTAT_interdomain, .u.interdomain.dom = 2 };
    pvabi_ctx *ctx = open_default();
    pvabi_port p;

    (void)state;
    expect_bind(5, 20, -1, EINVAL);
    expect_status(5, 20, &elsewhere, 0);
    assert_int_equal(pvabi_evtchn_bind(ctx, 5, 20, &p), -EPERM);
    assert_logged(PVABI_LOG_ERR, "port 20 of domain 5 is offered to domain 9, not to us (domain "
                                 "7)");
    expect_bind(5, 21, -1, EINVAL);
    expect_status(5, 21, &busy, 0);
    assert_int_equal(pvabi_evtchn_bind(ctx, 5, 21, &p), -EINVAL);
    expect_bind(5, 22, -1, EINVAL);
    expect_status(5, 22, &to_us, 0);
    assert_int_equal(pvabi_evtchn_bind(ctx, 5, 22, &p), -EINVAL);
    expect_bind(5, 23, -1, EINVAL);
    expect_status(5, 23, NULL, EPERM); /* no privilege over domain 5 */
    assert_int_equal(pvabi_evtchn_bind(ctx, 5, 23, &p), -EINVAL);
    close_default(ctx);
}

static void test_evtchn_notify_reaches_libxenevtchn_and_maps_errors(void **state)
{
    pvabi_ctx *ctx = open_default();
    uint64_t sent;
    pvabi_port p;

    (void)state;
    expect_alloc(3, 11);
    assert_int_equal(pvabi_evtchn_alloc(ctx, 3, &p), 0);
    expect_value(__wrap_xenevtchn_notify, port, 11);
    will_return(__wrap_xenevtchn_notify, 0);
    assert_int_equal(pvabi_evtchn_notify(ctx, 11), 0);
    expect_value(__wrap_xenevtchn_notify, port, 11);
    will_return(__wrap_xenevtchn_notify, -1);
    will_return(__wrap_xenevtchn_notify, ENOTCONN);
    assert_int_equal(pvabi_evtchn_notify(ctx, 11), -ENOTCONN);
    assert_logged(PVABI_LOG_ERR, "xenevtchn_notify(port 11): Transport endpoint is not connected");
    assert_int_equal(pvabi_evtchn_counter(ctx, 11, PVABI_EVTCHN_SENT, &sent), 0);
    assert_int_equal(sent, 1);
    assert_int_equal(pvabi_evtchn_notify(ctx, 99), -EBADF); /* never reaches libxenevtchn */
    close_default(ctx);
}

static void queue_pending(const int *ports, size_t n, int last_err)
{
    for (size_t i = 0; i < n; i++)
        will_return(__wrap_xenevtchn_pending, ports[i]);
    if (last_err) {
        will_return(__wrap_xenevtchn_pending, -1);
        will_return(__wrap_xenevtchn_pending, last_err);
    }
}

static pvabi_ctx *open_with_ports(const int *ports, size_t n)
{
    pvabi_ctx *ctx = open_default();
    pvabi_port p;

    for (size_t i = 0; i < n; i++) {
        expect_alloc(3, ports[i]);
        assert_int_equal(pvabi_evtchn_alloc(ctx, 3, &p), 0);
    }
    return ctx;
}

static void test_evtchn_pending_drains_until_eagain_and_skips_unknown_ports(void **state)
{
    static const int ours[] = { 5, 6 }, fired[] = { 5, 9, 6 };
    pvabi_ctx *ctx = open_with_ports(ours, 2);
    pvabi_port got[8];
    uint64_t rx;

    (void)state;
    /* Three of eight: the core does not ask again (that would be a read()
     * more per wake-up), so one EAGAIN ends the call. */
    queue_pending(fired, 3, EAGAIN);
    assert_int_equal(pvabi_evtchn_pending(ctx, got, 8), 2);
    assert_int_equal(got[0], 5);
    assert_int_equal(got[1], 6);
    assert_logged(PVABI_LOG_DEBUG, "event for port 9, which this context does not hold");
    assert_int_equal(pvabi_evtchn_counter(ctx, 5, PVABI_EVTCHN_RECEIVED, &rx), 0);
    assert_int_equal(rx, 1);
    queue_pending(NULL, 0, EAGAIN);
    assert_int_equal(pvabi_evtchn_pending(ctx, got, 8), 0);
    close_default(ctx);
}

static void test_evtchn_pending_stops_at_max_and_resumes(void **state)
{
    static const int ours[] = { 5, 6, 7 };
    pvabi_ctx *ctx = open_with_ports(ours, 3);
    pvabi_port got[2];

    (void)state;
    queue_pending(ours, 2, 0); /* only two reads: the third port waits */
    assert_int_equal(pvabi_evtchn_pending(ctx, got, 2), 2);
    queue_pending(ours + 2, 1, EAGAIN);
    assert_int_equal(pvabi_evtchn_pending(ctx, got, 2), 1);
    assert_int_equal(got[0], 7);
    close_default(ctx);
}

static void test_evtchn_pending_retries_eintr(void **state)
{
    static const int ours[] = { 5 };
    pvabi_ctx *ctx = open_with_ports(ours, 1);
    pvabi_port got[2];

    (void)state;
    queue_pending(NULL, 0, EINTR);
    queue_pending(ours, 1, EAGAIN);
    assert_int_equal(pvabi_evtchn_pending(ctx, got, 2), 1);
    close_default(ctx);
}

static void test_evtchn_pending_error_is_reported_after_the_events(void **state)
{
    static const int ours[] = { 5 };
    pvabi_ctx *ctx = open_with_ports(ours, 1);
    pvabi_port got[2];

    (void)state;
    queue_pending(NULL, 0, EIO);
    assert_int_equal(pvabi_evtchn_pending(ctx, got, 2), -EIO);
    assert_logged(PVABI_LOG_ERR, "platform xen: xenevtchn_pending: Input/output error");
    queue_pending(ours, 1, EIO); /* the event read before the error is kept */
    assert_int_equal(pvabi_evtchn_pending(ctx, got, 2), 1);
    assert_int_equal(got[0], 5);
    close_default(ctx);
}

static void test_evtchn_pending_overflow_resets_and_reports_every_port(void **state)
{
    static const int ours[] = { 5, 6, 70 };
    pvabi_ctx *ctx = open_with_ports(ours, 3);
    pvabi_port got[2];

    (void)state;
    queue_pending(NULL, 0, EFBIG);
    expect_value(__wrap_ioctl, request, IOCTL_EVTCHN_RESET);
    will_return(__wrap_ioctl, 0);
    assert_int_equal(pvabi_evtchn_pending(ctx, got, 2), 2); /* 5, 6; 70 is next */
    assert_int_equal(got[0], 5);
    assert_int_equal(got[1], 6);
    assert_logged(PVABI_LOG_WARN, "event queue overflowed");
    queue_pending(NULL, 0, EAGAIN);
    assert_int_equal(pvabi_evtchn_pending(ctx, got, 2), 1);
    assert_int_equal(got[0], 70);
    /* A reset that fails is reported, and not retried in a loop. */
    queue_pending(NULL, 0, EFBIG);
    expect_value(__wrap_ioctl, request, IOCTL_EVTCHN_RESET);
    will_return(__wrap_ioctl, -1);
    will_return(__wrap_ioctl, ENOTTY);
    assert_int_equal(pvabi_evtchn_pending(ctx, got, 2), -ENOTTY);
    assert_logged(PVABI_LOG_ERR, "ioctl(IOCTL_EVTCHN_RESET)");
    close_default(ctx);
}

/* ---- wait ---------------------------------------------------------------- */

static void test_evtchn_wait_polls_the_fd_then_reads_ports(void **state)
{
    static const int ours[] = { 5 };
    pvabi_ctx *ctx = open_with_ports(ours, 1);
    pvabi_port got[4];
    uint64_t rx;

    (void)state;
    expect_poll(5000, 5000, 1, 0);
    queue_pending(ours, 1, EAGAIN);
    assert_int_equal(pvabi_evtchn_wait(ctx, got, 4, 5000), 1);
    assert_int_equal(got[0], 5);
    assert_int_equal(pvabi_evtchn_counter(ctx, 5, PVABI_EVTCHN_RECEIVED, &rx), 0);
    assert_int_equal(rx, 1); /* counted as pending() counts */
    close_default(ctx);
}

static void test_evtchn_wait_timeout_returns_zero(void **state)
{
    static const int ours[] = { 5 };
    pvabi_ctx *ctx = open_with_ports(ours, 1);
    pvabi_port got[4];

    (void)state;
    expect_poll(50, 50, 0, 0);
    queue_pending(NULL, 0, EAGAIN); /* one last look, as pending() */
    assert_int_equal(pvabi_evtchn_wait(ctx, got, 4, 50), 0);
    expect_poll(0, 0, 0, 0);
    queue_pending(NULL, 0, EAGAIN);
    assert_int_equal(pvabi_evtchn_wait(ctx, got, 4, 0), 0);
    close_default(ctx);
}

/* A wake-up with nothing to report (here a port we do not hold) does not
 * end the wait: it sleeps again for what is left of the timeout. */
static void test_evtchn_wait_sleeps_again_after_an_empty_wake_up(void **state)
{
    static const int ours[] = { 5 }, stranger[] = { 9 };
    pvabi_ctx *ctx = open_with_ports(ours, 1);
    pvabi_port got[4];

    (void)state;
    expect_poll(10000, 10000, 1, 0);
    queue_pending(stranger, 1, EAGAIN);
    expect_poll(1, 10000, 1, 0);
    queue_pending(ours, 1, EAGAIN);
    assert_int_equal(pvabi_evtchn_wait(ctx, got, 4, 10000), 1);
    assert_int_equal(got[0], 5);
    close_default(ctx);
}

static void test_evtchn_wait_poll_errors_are_returned(void **state)
{
    pvabi_ctx *ctx = open_default();
    pvabi_port got[4];

    (void)state;
    expect_poll(100, 100, -1, EINTR);
    assert_int_equal(pvabi_evtchn_wait(ctx, got, 4, 100), -EINTR);
    expect_poll(100, 100, -1, ENOMEM);
    assert_int_equal(pvabi_evtchn_wait(ctx, got, 4, 100), -ENOMEM);
    assert_logged(PVABI_LOG_ERR, "platform xen: poll(evtchn fd");
    close_default(ctx);
}

static void test_evtchn_wait_bad_arguments_einval(void **state)
{
    pvabi_ctx *ctx = open_default();
    pvabi_port got[4];

    (void)state;
    /* Neither poll() nor libxenevtchn is reached. */
    assert_int_equal(pvabi_evtchn_wait(ctx, got, 4, -1), -EINVAL);
    assert_int_equal(pvabi_evtchn_wait(ctx, NULL, 4, 0), -EINVAL);
    assert_int_equal(pvabi_evtchn_wait(ctx, got, 0, 0), -EINVAL);
    assert_int_equal(pvabi_evtchn_wait(NULL, got, 4, 0), -EINVAL);
    close_default(ctx);
}

/* Ports still to replay after an overflow are not on the fd: a wait
 * returns them without sleeping (no poll() is expected here). */
static void test_evtchn_wait_replay_after_overflow_does_not_sleep(void **state)
{
    static const int ours[] = { 5, 6, 70 };
    pvabi_ctx *ctx = open_with_ports(ours, 3);
    pvabi_port got[2];

    (void)state;
    queue_pending(NULL, 0, EFBIG);
    expect_value(__wrap_ioctl, request, IOCTL_EVTCHN_RESET);
    will_return(__wrap_ioctl, 0);
    assert_int_equal(pvabi_evtchn_pending(ctx, got, 2), 2);
    queue_pending(NULL, 0, EAGAIN);
    assert_int_equal(pvabi_evtchn_wait(ctx, got, 2, 10000), 1);
    assert_int_equal(got[0], 70);
    close_default(ctx);
}

static void test_evtchn_unmask_and_unbind_map_errors(void **state)
{
    static const int ours[] = { 5 };
    pvabi_ctx *ctx = open_with_ports(ours, 1);

    (void)state;
    expect_value(__wrap_xenevtchn_unmask, port, 5);
    will_return(__wrap_xenevtchn_unmask, 0);
    assert_int_equal(pvabi_evtchn_unmask(ctx, 5), 0);
    expect_value(__wrap_xenevtchn_unmask, port, 5);
    will_return(__wrap_xenevtchn_unmask, -1);
    will_return(__wrap_xenevtchn_unmask, EINVAL);
    assert_int_equal(pvabi_evtchn_unmask(ctx, 5), -EINVAL);
    assert_logged(PVABI_LOG_ERR, "xenevtchn_unmask(port 5): Invalid argument");
    expect_unbind(5, -1, ENOTCONN);
    assert_int_equal(pvabi_evtchn_unbind(ctx, 5), -EBADF);
    assert_logged(PVABI_LOG_ERR, "xenevtchn_unbind(port 5)");
    close_default(ctx);
}

static void test_evtchn_state_is_refined_by_evtchnop_status(void **state)
{
    xc_evtchn_status_t unbound = { .status = EVTCHNSTAT_unbound, .u.unbound.dom = 3 };
    xc_evtchn_status_t connected = { .status = EVTCHNSTAT_interdomain, .u.interdomain.dom = 3 };
    static const int ours[] = { 5 };
    pvabi_ctx *ctx = open_with_ports(ours, 1);

    (void)state;
    expect_status(DOMID_SELF, 5, &unbound, 0);
    assert_int_equal(pvabi_evtchn_state(ctx, 5), PVABI_EVTCHN_UNBOUND);
    expect_status(DOMID_SELF, 5, &connected, 0); /* the peer bound */
    assert_int_equal(pvabi_evtchn_state(ctx, 5), PVABI_EVTCHN_INTERDOMAIN);
    expect_status(DOMID_SELF, 5, &unbound, 0); /* the peer closed */
    assert_int_equal(pvabi_evtchn_state(ctx, 5), PVABI_EVTCHN_CLOSED);
    expect_status(DOMID_SELF, 5, NULL, EIO); /* then: what we last saw */
    assert_int_equal(pvabi_evtchn_state(ctx, 5), PVABI_EVTCHN_INTERDOMAIN);
    assert_logged(PVABI_LOG_DEBUG, "xc_evtchn_status(domain 32752, port 5): Input/output error");
    close_default(ctx);
}

/* An allocated port that never reported an event and is unbound in Xen
 * was never connected; once an event from the peer came, "unbound" means
 * the peer closed. */
static void test_evtchn_event_on_allocated_port_means_connected(void **state)
{
    xc_evtchn_status_t unbound = { .status = EVTCHNSTAT_unbound, .u.unbound.dom = 3 };
    static const int ours[] = { 5 };
    static const int fired[] = { 5 };
    pvabi_ctx *ctx = open_with_ports(ours, 1);
    pvabi_port got[4];

    (void)state;
    expect_status(DOMID_SELF, 5, &unbound, 0);
    assert_int_equal(pvabi_evtchn_state(ctx, 5), PVABI_EVTCHN_UNBOUND);
    queue_pending(fired, 1, EAGAIN);
    assert_int_equal(pvabi_evtchn_pending(ctx, got, 4), 1);
    expect_status(DOMID_SELF, 5, &unbound, 0);
    assert_int_equal(pvabi_evtchn_state(ctx, 5), PVABI_EVTCHN_CLOSED);
    close_default(ctx);
}

static void test_evtchn_state_without_privcmd_is_what_we_saw(void **state)
{
    static const struct open_opts o = { .domid = "7", .no_xc = 1 };
    pvabi_ctx *ctx = open_with(&o);
    pvabi_port a, b;

    (void)state;
    expect_alloc(3, 5);
    assert_int_equal(pvabi_evtchn_alloc(ctx, 3, &a), 0);
    expect_bind(3, 8, 6, 0);
    assert_int_equal(pvabi_evtchn_bind(ctx, 3, 8, &b), 0);
    assert_int_equal(pvabi_evtchn_state(ctx, a), PVABI_EVTCHN_UNBOUND);
    assert_int_equal(pvabi_evtchn_state(ctx, b), PVABI_EVTCHN_INTERDOMAIN);
    close_with(ctx, &o);
}

/* ---- grants: sharing --------------------------------------------------- */

static void expect_share(pvabi_domid domid, int count, int writable, void *addr, int err)
{
    expect_value(__wrap_xengntshr_share_pages, domid, domid);
    expect_value(__wrap_xengntshr_share_pages, count, count);
    expect_value(__wrap_xengntshr_share_pages, writable, writable);
    will_return(__wrap_xengntshr_share_pages, addr);
    if (!addr)
        will_return(__wrap_xengntshr_share_pages, err);
}

static void expect_unshare(void *addr, unsigned count, int rc, int err)
{
    expect_value(__wrap_xengntshr_unshare, start_address, addr);
    expect_value(__wrap_xengntshr_unshare, count, count);
    will_return(__wrap_xengntshr_unshare, rc);
    if (rc < 0)
        will_return(__wrap_xengntshr_unshare, err);
}

static void test_grant_share_and_revoke_reach_libxengntshr(void **state)
{
    pvabi_ctx *ctx = open_default();
    pvabi_grant *g, *ro;

    (void)state;
    expect_share(4, 3, 1, pages, 0);
    assert_int_equal(pvabi_grant_share(ctx, 4, 3, 0, &g), 0);
    assert_ptr_equal(pvabi_grant_addr(g), pages);
    assert_int_equal(pvabi_grant_ref(g, 0), 100);
    assert_int_equal(pvabi_grant_ref(g, 2), 102);
    expect_share(4, 1, 0, pages[5], 0);
    assert_int_equal(pvabi_grant_share(ctx, 4, 1, PVABI_GRANT_RO, &ro), 0);
    expect_unshare(pages, 3, 0, 0);
    assert_int_equal(pvabi_grant_revoke(g), 0);
    expect_unshare(pages[5], 1, 0, 0);
    assert_int_equal(pvabi_grant_revoke(ro), 0);
    close_default(ctx);
}

static void test_grant_share_error_is_mapped_and_logged(void **state)
{
    pvabi_ctx *ctx = open_default();
    pvabi_grant *g;

    (void)state;
    expect_share(4, 2, 1, NULL, ENOSPC);
    assert_int_equal(pvabi_grant_share(ctx, 4, 2, 0, &g), -ENOSPC);
    assert_null(g);
    assert_logged(PVABI_LOG_ERR, "xengntshr_share_pages(domain 4, 2 pages, writable): No space");
    close_default(ctx);
}

static void test_grant_revoke_failure_still_frees(void **state)
{
    pvabi_ctx *ctx = open_default();
    pvabi_grant *g;

    (void)state;
    expect_share(4, 1, 1, pages, 0);
    assert_int_equal(pvabi_grant_share(ctx, 4, 1, 0, &g), 0);
    expect_unshare(pages, 1, -1, EINVAL);
    assert_int_equal(pvabi_grant_revoke(g), -EINVAL); /* g is freed: ASan would see a leak */
    assert_logged(PVABI_LOG_ERR, "xengntshr_unshare(1 pages at");
    close_default(ctx);
}

static void test_grant_notify_is_enotsup_with_reason(void **state)
{
    pvabi_ctx *ctx = open_default();
    pvabi_grant *g;

    (void)state;
    expect_share(4, 1, 1, pages, 0);
    assert_int_equal(pvabi_grant_share(ctx, 4, 1, 0, &g), 0);
    assert_int_equal(pvabi_grant_notify(g, 0, 0, 0), -ENOTSUP);
    assert_logged(PVABI_LOG_ERR, "grant notify (page 0, offset 0, port 0): not supported");
    expect_unshare(pages, 1, 0, 0);
    assert_int_equal(pvabi_grant_revoke(g), 0);
    close_default(ctx);
}

/* ---- grants: mapping --------------------------------------------------- */

static void expect_map(pvabi_domid domid, const pvabi_gref *refs, unsigned count, int prot,
                       void *addr, int err)
{
    expect_value(__wrap_xengnttab_map_domain_grant_refs, count, count);
    expect_value(__wrap_xengnttab_map_domain_grant_refs, domid, domid);
    expect_memory(__wrap_xengnttab_map_domain_grant_refs, refs, refs, count * sizeof(*refs));
    expect_value(__wrap_xengnttab_map_domain_grant_refs, prot, prot);
    will_return(__wrap_xengnttab_map_domain_grant_refs, addr);
    if (!addr)
        will_return(__wrap_xengnttab_map_domain_grant_refs, err);
}

static void expect_unmap(void *addr, unsigned count, int rc, int err)
{
    expect_value(__wrap_xengnttab_unmap, start_address, addr);
    expect_value(__wrap_xengnttab_unmap, count, count);
    will_return(__wrap_xengnttab_unmap, rc);
    if (rc < 0)
        will_return(__wrap_xengnttab_unmap, err);
}

/* One ref's probe: a map that works (then an unmap) or fails with @err. */
static void expect_probe(pvabi_domid domid, pvabi_gref ref, int prot, void *addr, int err)
{
    expect_value(__wrap_xengnttab_map_grant_ref, domid, domid);
    expect_value(__wrap_xengnttab_map_grant_ref, ref, ref);
    expect_value(__wrap_xengnttab_map_grant_ref, prot, prot);
    will_return(__wrap_xengnttab_map_grant_ref, addr);
    if (addr)
        expect_unmap(addr, 1, 0, 0);
    else
        will_return(__wrap_xengnttab_map_grant_ref, err);
}

/* A grant copy that succeeds with @status (an array) or fails with @err. */
static void expect_copy(const int16_t *status, int err)
{
    will_return(__wrap_xengnttab_grant_copy, status ? 0 : -1);
    if (status)
        will_return(__wrap_xengnttab_grant_copy, status);
    else
        will_return(__wrap_xengnttab_grant_copy, err);
}

static void test_grant_map_and_unmap_reach_libxengnttab(void **state)
{
    static const pvabi_gref refs[] = { 8, 9 };
    pvabi_ctx *ctx = open_default();
    int status[2] = { 1, 1 };
    pvabi_map *m, *ro;

    (void)state;
    expect_map(5, refs, 2, PROT_READ | PROT_WRITE, pages, 0);
    assert_int_equal(pvabi_grant_map(ctx, 5, refs, 2, 0, status, &m), 0);
    assert_ptr_equal(pvabi_map_addr(m), pages);
    assert_int_equal(status[0], 0);
    assert_int_equal(status[1], 0);
    expect_map(5, refs, 1, PROT_READ, pages[4], 0);
    assert_int_equal(pvabi_grant_map(ctx, 5, refs, 1, PVABI_GRANT_RO, NULL, &ro), 0);
    expect_unmap(pages, 2, 0, 0);
    assert_int_equal(pvabi_grant_unmap(m), 0);
    expect_unmap(pages[4], 1, -1, EINVAL);
    assert_int_equal(pvabi_grant_unmap(ro), -EINVAL);
    assert_logged(PVABI_LOG_ERR, "xengnttab_unmap(1 pages at");
    close_default(ctx);
}

static void test_grant_map_failure_probes_each_ref(void **state)
{
    static const pvabi_gref refs[] = { 8, 9, 10 };
    static const int16_t bad_ref[] = { GNTST_bad_gntref }, ok[] = { GNTST_okay };
    const int rw = PROT_READ | PROT_WRITE;
    pvabi_ctx *ctx = open_default();
    int status[3];
    pvabi_map *m;

    (void)state;
    expect_map(5, refs, 3, rw, NULL, EINVAL);
    expect_probe(5, 8, rw, pages[7], 0); /* maps alone: fine */
    expect_probe(5, 9, rw, NULL, EINVAL);
    expect_copy(bad_ref, 0); /* Xen: no such ref */
    expect_probe(5, 10, rw, NULL, EINVAL);
    expect_copy(ok, 0); /* readable, yet not writable: a read-only grant */
    assert_int_equal(pvabi_grant_map(ctx, 5, refs, 3, 0, status, &m), -ENOENT);
    assert_null(m);
    assert_int_equal(status[0], 0);
    assert_int_equal(status[1], -ENOENT);
    assert_int_equal(status[2], -EPERM);
    /* The probe reads one byte of the ref into local memory. */
    assert_int_equal(seen.copy_count, 1);
    assert_int_equal(seen.copy[0].flags, GNTCOPY_source_gref);
    assert_int_equal(seen.copy[0].source.foreign.ref, 10);
    assert_int_equal(seen.copy[0].source.foreign.domid, 5);
    assert_int_equal(seen.copy[0].len, 1);
    assert_logged(PVABI_LOG_ERR, "xengnttab_map_domain_grant_refs(3 refs of domain 5, "
                                 "read-write): Invalid argument");
    assert_logged(PVABI_LOG_ERR, "grant map: ref 9 of domain 5: No such file or directory");
    assert_logged(PVABI_LOG_ERR, "grant map: ref 10 of domain 5: Operation not permitted");
    /* libxengnttab's complaints about the probes are expected: debug. */
    assert_logged(PVABI_LOG_DEBUG, "libxen gnttab: mmap failed");
    assert_false(logged_at(PVABI_LOG_ERR, "libxen gnttab: mmap failed"));
    close_default(ctx);
}

static void test_grant_map_probe_classifies_by_gntst(void **state)
{
    static const struct {
        int16_t gntst;
        int prot, want;
    } cases[] = {
        { GNTST_bad_domain, PROT_READ, -ESRCH },
        { GNTST_general_error, PROT_READ | PROT_WRITE, -EIO },
        { GNTST_permission_denied, PROT_READ, -EPERM },
        { GNTST_okay, PROT_READ, -EINVAL }, /* readable, yet unmappable: unknown */
    };
    pvabi_ctx *ctx = open_default();
    pvabi_gref ref = 8;
    int status;
    pvabi_map *m;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        unsigned flags = cases[i].prot == PROT_READ ? PVABI_GRANT_RO : 0;
        expect_map(5, &ref, 1, cases[i].prot, NULL, EINVAL);
        expect_probe(5, 8, cases[i].prot, NULL, EINVAL);
        expect_copy(&cases[i].gntst, 0);
        assert_int_equal(pvabi_grant_map(ctx, 5, &ref, 1, flags, &status, &m), cases[i].want);
        assert_int_equal(status, cases[i].want);
    }
    /* No grant copy in this kernel: the map's own EINVAL stands. */
    expect_map(5, &ref, 1, PROT_READ, NULL, EINVAL);
    expect_probe(5, 8, PROT_READ, NULL, EINVAL);
    expect_copy(NULL, ENOTTY);
    assert_int_equal(pvabi_grant_map(ctx, 5, &ref, 1, PVABI_GRANT_RO, &status, &m), -EINVAL);
    /* Not EINVAL: the probe's errno is the status. */
    expect_map(5, &ref, 1, PROT_READ, NULL, ENOMEM);
    expect_probe(5, 8, PROT_READ, NULL, ENOMEM);
    assert_int_equal(pvabi_grant_map(ctx, 5, &ref, 1, PVABI_GRANT_RO, &status, &m), -ENOMEM);
    close_default(ctx);
}

static void test_grant_map_batch_failure_without_bad_ref_keeps_its_error(void **state)
{
    static const pvabi_gref refs[] = { 8, 9 };
    const int rw = PROT_READ | PROT_WRITE;
    pvabi_ctx *ctx = open_default();
    int status[2] = { 1, 1 };
    pvabi_map *m;

    (void)state;
    expect_map(5, refs, 2, rw, NULL, ENOSPC); /* e.g. gntdev's mapping limit */
    expect_probe(5, 8, rw, pages[6], 0);
    expect_probe(5, 9, rw, pages[7], 0);
    assert_int_equal(pvabi_grant_map(ctx, 5, refs, 2, 0, status, &m), -ENOSPC);
    assert_int_equal(status[0], 0);
    assert_int_equal(status[1], 0);
    close_default(ctx);
}

static void expect_notify_ioctls(uint64_t offset, int set_rc, int err)
{
    expect_value(__wrap_ioctl, request, IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR);
    will_return(__wrap_ioctl, offset);
    will_return(__wrap_ioctl, 0);
    expect_value(__wrap_ioctl, request, IOCTL_GNTDEV_SET_UNMAP_NOTIFY);
    will_return(__wrap_ioctl, set_rc);
    if (set_rc < 0)
        will_return(__wrap_ioctl, err);
}

static void test_map_notify_sets_gntdev_unmap_notify(void **state)
{
    static const pvabi_gref refs[] = { 8, 9 };
    pvabi_ctx *ctx = open_default();
    pvabi_map *m;

    (void)state;
    expect_map(5, refs, 2, PROT_READ | PROT_WRITE, pages, 0);
    assert_int_equal(pvabi_grant_map(ctx, 5, refs, 2, 0, NULL, &m), 0);
    expect_notify_ioctls(0x30000, 0, 0);
    assert_int_equal(pvabi_map_notify(m, 1, 16, 11), 0);
    assert_int_equal(seen.notify.index, 0x30000 + 4096 + 16);
    assert_int_equal(seen.notify.action, UNMAP_NOTIFY_CLEAR_BYTE | UNMAP_NOTIFY_SEND_EVENT);
    assert_int_equal(seen.notify.event_channel_port, 11);
    expect_notify_ioctls(0x30000, 0, 0); /* no byte, no event: clears it */
    assert_int_equal(pvabi_map_notify(m, 1, PVABI_PAGE_SIZE, 0), 0);
    assert_int_equal(seen.notify.index, 0x30000 + 4096);
    assert_int_equal(seen.notify.action, 0);
    expect_notify_ioctls(0x30000, -1, EINVAL);
    assert_int_equal(pvabi_map_notify(m, 0, 0, 77), -EINVAL);
    assert_logged(PVABI_LOG_ERR, "ioctl(IOCTL_GNTDEV_SET_UNMAP_NOTIFY, page 0, offset 0, port "
                                 "77): Invalid argument");
    expect_value(__wrap_ioctl, request, IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR);
    will_return(__wrap_ioctl, 0);
    will_return(__wrap_ioctl, -1);
    will_return(__wrap_ioctl, EINVAL);
    assert_int_equal(pvabi_map_notify(m, 0, 0, 0), -EINVAL);
    assert_logged(PVABI_LOG_ERR, "ioctl(IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR");
    expect_unmap(pages, 2, 0, 0);
    assert_int_equal(pvabi_grant_unmap(m), 0);
    close_default(ctx);
}

static void test_map_notify_cannot_clear_a_byte_of_a_readonly_map(void **state)
{
    pvabi_ctx *ctx = open_default();
    pvabi_gref ref = 8;
    pvabi_map *m;

    (void)state;
    expect_map(5, &ref, 1, PROT_READ, pages, 0);
    assert_int_equal(pvabi_grant_map(ctx, 5, &ref, 1, PVABI_GRANT_RO, NULL, &m), 0);
    assert_int_equal(pvabi_map_notify(m, 0, 0, 11), -EINVAL); /* no ioctl queued */
    assert_logged(PVABI_LOG_ERR, "cannot clear a byte of a read-only mapping");
    expect_notify_ioctls(0, 0, 0); /* an event alone is fine */
    assert_int_equal(pvabi_map_notify(m, 0, PVABI_PAGE_SIZE, 11), 0);
    assert_int_equal(seen.notify.action, UNMAP_NOTIFY_SEND_EVENT);
    expect_unmap(pages, 1, 0, 0);
    assert_int_equal(pvabi_grant_unmap(m), 0);
    close_default(ctx);
}

/* ---- grants: copying --------------------------------------------------- */

static void test_grant_copy_translates_segments(void **state)
{
    static const int16_t ok[] = { GNTST_okay, GNTST_okay };
    pvabi_ctx *ctx = open_default();
    uint8_t a[16], b[16];
    struct pvabi_grant_copy_seg segs[] = {
        { .local = a, .ref = 8, .domid = 5, .offset = 100, .len = 16, .to_foreign = 1 },
        { .local = b, .ref = 9, .domid = 6, .offset = 200, .len = 8, .to_foreign = 0 },
    };

    (void)state;
    expect_copy(ok, 0);
    assert_int_equal(pvabi_grant_copy(ctx, segs, 2), 0);
    assert_int_equal(seen.copy_count, 2);
    assert_int_equal(seen.copy[0].flags, GNTCOPY_dest_gref);
    assert_ptr_equal(seen.copy[0].source.virt, a);
    assert_int_equal(seen.copy[0].dest.foreign.ref, 8);
    assert_int_equal(seen.copy[0].dest.foreign.domid, 5);
    assert_int_equal(seen.copy[0].dest.foreign.offset, 100);
    assert_int_equal(seen.copy[0].len, 16);
    assert_int_equal(seen.copy[1].flags, GNTCOPY_source_gref);
    assert_ptr_equal(seen.copy[1].dest.virt, b);
    assert_int_equal(seen.copy[1].source.foreign.ref, 9);
    assert_int_equal(seen.copy[1].source.foreign.domid, 6);
    assert_int_equal(seen.copy[1].source.foreign.offset, 200);
    assert_int_equal(seen.copy[1].len, 8);
    assert_int_equal(segs[0].status, 0);
    assert_int_equal(segs[1].status, 0);
    assert_int_equal(pvabi_grant_copy(ctx, segs, 0), 0); /* nothing reaches libxengnttab */
    close_default(ctx);
}

static void test_grant_copy_maps_every_gntst(void **state)
{
    static const int16_t st[] = {
        GNTST_okay,         GNTST_general_error,   GNTST_bad_domain,
        GNTST_bad_gntref,   GNTST_bad_handle,      GNTST_bad_virt_addr,
        GNTST_bad_dev_addr, GNTST_no_device_space, GNTST_permission_denied,
        GNTST_bad_page,     GNTST_bad_copy_arg,    GNTST_address_too_big,
        GNTST_eagain,       GNTST_no_space,        -99,
    };
    static const int want[] = {
        0,      -EIO,    -ESRCH,  -ENOENT, -EINVAL, -EFAULT, -EFAULT, -ENOSPC,
        -EPERM, -EINVAL, -EINVAL, -ERANGE, -EAGAIN, -ENOSPC, -EIO,
    };
    enum { N = sizeof(st) / sizeof(st[0]) };
    struct pvabi_grant_copy_seg segs[N];
    pvabi_ctx *ctx = open_default();
    uint8_t buf[N];

    (void)state;
    for (unsigned i = 0; i < N; i++)
        segs[i] = (struct pvabi_grant_copy_seg){ .local = &buf[i], .ref = i, .domid = 5, .len = 1 };
    expect_copy(st, 0);
    assert_int_equal(pvabi_grant_copy(ctx, segs, N), N - 1);
    for (unsigned i = 0; i < N; i++)
        assert_int_equal(segs[i].status, want[i]);
    assert_logged(PVABI_LOG_ERR, "grant copy: segment 3 (ref 3 of domain 5): Xen says "
                                 "GNTST_bad_gntref");
    assert_logged(PVABI_LOG_ERR, "segment 14 (ref 14 of domain 5): Xen says an unknown GNTST");
    close_default(ctx);
}

/* A copy into a grant Xen refuses with GNTST_general_error is probed with
 * a one-byte read of the same ref: readable means read-only (-EPERM);
 * unreadable stays -EIO.  Copies from a grant are not probed. */
static void test_grant_copy_into_ro_grant_probed_eperm(void **state)
{
    static const int16_t first[] = { GNTST_general_error, GNTST_general_error,
                                     GNTST_general_error };
    static const int16_t readable[] = { GNTST_okay }, unreadable[] = { GNTST_general_error };
    pvabi_ctx *ctx = open_default();
    uint8_t buf[3];
    struct pvabi_grant_copy_seg segs[] = {
        { .local = buf, .ref = 8, .domid = 5, .len = 1, .to_foreign = 1 },
        { .local = buf + 1, .ref = 9, .domid = 5, .len = 1, .to_foreign = 1 },
        { .local = buf + 2, .ref = 10, .domid = 5, .len = 1 },
    };

    (void)state;
    expect_copy(first, 0);
    expect_copy(readable, 0);
    expect_copy(unreadable, 0);
    assert_int_equal(pvabi_grant_copy(ctx, segs, 3), 3);
    assert_int_equal(segs[0].status, -EPERM);
    assert_int_equal(segs[1].status, -EIO);
    assert_int_equal(segs[2].status, -EIO);
    /* the last probe read ref 9 of domain 5 */
    assert_int_equal(seen.copy_count, 1);
    assert_int_equal(seen.copy[0].flags, GNTCOPY_source_gref);
    assert_int_equal(seen.copy[0].source.foreign.ref, 9);
    assert_int_equal(seen.copy[0].source.foreign.domid, 5);
    close_default(ctx);
}

static void test_grant_copy_call_failure_fails_every_segment(void **state)
{
    pvabi_ctx *ctx = open_default();
    uint8_t buf[2];
    struct pvabi_grant_copy_seg segs[] = {
        { .local = buf, .ref = 8, .domid = 5, .len = 1 },
        { .local = buf + 1, .ref = 9, .domid = 5, .len = 1 },
    };

    (void)state;
    expect_copy(NULL, EFAULT);
    assert_int_equal(pvabi_grant_copy(ctx, segs, 2), 2);
    assert_int_equal(segs[0].status, -EFAULT);
    assert_int_equal(segs[1].status, -EFAULT);
    assert_logged(PVABI_LOG_ERR, "xengnttab_grant_copy(2 segments): Bad address");
    close_default(ctx);
}

/* ---- close, errno ------------------------------------------------------ */

static void test_close_releases_shares_maps_and_handles(void **state)
{
    pvabi_ctx *ctx = open_default();
    pvabi_gref ref = 8;
    pvabi_grant *g;
    pvabi_map *m;
    pvabi_port p;

    (void)state;
    expect_share(4, 2, 1, pages, 0);
    assert_int_equal(pvabi_grant_share(ctx, 4, 2, 0, &g), 0);
    expect_map(5, &ref, 1, PROT_READ | PROT_WRITE, pages[4], 0);
    assert_int_equal(pvabi_grant_map(ctx, 5, &ref, 1, 0, NULL, &m), 0);
    expect_alloc(3, 11);
    assert_int_equal(pvabi_evtchn_alloc(ctx, 3, &p), 0);
    expect_unmap(pages[4], 1, 0, 0);
    expect_unshare(pages, 2, 0, 0);
    /* The port is unbound by closing the evtchn handle (expected below). */
    close_default(ctx);
}

static void test_errno_is_left_untouched(void **state)
{
    pvabi_ctx *ctx = open_default();
    pvabi_grant *g;
    pvabi_port p;

    (void)state;
    errno = 1234;
    expect_alloc(3, -1);
    will_return(__wrap_xenevtchn_bind_unbound_port, ENOSPC);
    assert_int_equal(pvabi_evtchn_alloc(ctx, 3, &p), -ENOSPC);
    assert_int_equal(errno, 1234);
    expect_share(4, 1, 1, NULL, ENOMEM);
    assert_int_equal(pvabi_grant_share(ctx, 4, 1, 0, &g), -ENOMEM);
    assert_int_equal(errno, 1234);
    queue_pending(NULL, 0, EAGAIN);
    assert_int_equal(pvabi_evtchn_pending(ctx, &p, 1), 0);
    assert_int_equal(errno, 1234);
    expect_poll(0, 0, 0, 0);
    queue_pending(NULL, 0, EAGAIN);
    assert_int_equal(pvabi_evtchn_wait(ctx, &p, 1, 0), 0);
    assert_int_equal(errno, 1234);
    expect_poll(0, 0, -1, ENOMEM);
    assert_int_equal(pvabi_evtchn_wait(ctx, &p, 1, 0), -ENOMEM);
    assert_int_equal(errno, 1234);
    close_default(ctx);
    assert_int_equal(errno, 1234);
    will_return(__wrap_xenevtchn_open, NULL);
    will_return(__wrap_xenevtchn_open, ENOENT);
    assert_int_equal(pvabi_open(&ctx, "xen"), -ENOENT);
    assert_int_equal(errno, 1234);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_open_reads_domid_and_makes_fd_nonblocking),
        T(test_open_null_spec_follows_pvabi_platform),
        T(test_open_no_xen_here_is_enoent_with_hint),
        T(test_open_evtchn_permission_denied_names_device),
        T(test_open_fcntl_failure_releases_evtchn),
        T(test_open_without_domid_is_dom0_when_control_d),
        T(test_open_xenstore_unreachable_is_dom0_when_control_d),
        T(test_open_without_domid_in_domu_fails_and_releases),
        T(test_open_rejects_a_domid_that_is_not_one),
        T(test_open_hands_one_logger_to_libxen_and_routes_it),
        T(test_open_without_privcmd_still_opens),
        T(test_open_without_gntalloc_share_is_enotsup),
        T(test_open_without_gntdev_map_and_copy_are_enotsup),
        T(test_evtchn_alloc_bind_unbind_reach_libxenevtchn),
        T(test_evtchn_alloc_error_is_mapped_and_logged),
        T(test_evtchn_alloc_port_out_of_range_is_given_back),
        T(test_evtchn_bind_errors_are_mapped),
        T(test_evtchn_bind_to_port_offered_elsewhere_is_eperm),
        T(test_evtchn_notify_reaches_libxenevtchn_and_maps_errors),
        T(test_evtchn_pending_drains_until_eagain_and_skips_unknown_ports),
        T(test_evtchn_pending_stops_at_max_and_resumes),
        T(test_evtchn_pending_retries_eintr),
        T(test_evtchn_pending_error_is_reported_after_the_events),
        T(test_evtchn_pending_overflow_resets_and_reports_every_port),
        T(test_evtchn_wait_polls_the_fd_then_reads_ports),
        T(test_evtchn_wait_timeout_returns_zero),
        T(test_evtchn_wait_sleeps_again_after_an_empty_wake_up),
        T(test_evtchn_wait_poll_errors_are_returned),
        T(test_evtchn_wait_bad_arguments_einval),
        T(test_evtchn_wait_replay_after_overflow_does_not_sleep),
        T(test_evtchn_unmask_and_unbind_map_errors),
        T(test_evtchn_state_is_refined_by_evtchnop_status),
        T(test_evtchn_event_on_allocated_port_means_connected),
        T(test_evtchn_state_without_privcmd_is_what_we_saw),
        T(test_grant_share_and_revoke_reach_libxengntshr),
        T(test_grant_share_error_is_mapped_and_logged),
        T(test_grant_revoke_failure_still_frees),
        T(test_grant_notify_is_enotsup_with_reason),
        T(test_grant_map_and_unmap_reach_libxengnttab),
        T(test_grant_map_failure_probes_each_ref),
        T(test_grant_map_probe_classifies_by_gntst),
        T(test_grant_map_batch_failure_without_bad_ref_keeps_its_error),
        T(test_map_notify_sets_gntdev_unmap_notify),
        T(test_map_notify_cannot_clear_a_byte_of_a_readonly_map),
        T(test_grant_copy_translates_segments),
        T(test_grant_copy_maps_every_gntst),
        T(test_grant_copy_into_ro_grant_probed_eperm),
        T(test_grant_copy_call_failure_fails_every_segment),
        T(test_close_releases_shares_maps_and_handles),
        T(test_errno_is_left_untouched),
    };

    pvabi_log_set(NULL, capture, NULL, PVABI_LOG_DEBUG);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
