/* SPDX-License-Identifier: MIT */
/*
 * The typed hypercall wrappers (pvabi/hypercall.h) on the `xen` platform
 * without Xen: libxencall and everything pvabi_open("xen") touches are
 * linked as __wrap_<name> (-Wl,--wrap, see meson.build).  The mock
 * hypervisor checks what each wrapper hands to libxencall - the hypercall
 * number and sub-op, that the argument is a xencall_alloc_buffer bounce
 * buffer and never the caller's memory, and Xen's IN fields one by one -
 * then fills Xen's OUT fields, and the test checks every field of the pvabi
 * struct that comes back.  Errors: errno from xencall, Xen's GNTST_* status,
 * Xen before 4.18 answering with the next domain; buffers are freed on every
 * path.
 */

/* Xen's public structs, with the flags they need (first, before any system
 * header: it lifts __STRICT_ANSI__). */
#include "hypercall/xen-abi.h"
#include <xen/sched.h>

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include <xencall.h>
#include <xenctrl.h>
#include <xenevtchn.h>
#include <xengnttab.h>
#include <xenstore.h>
#include <xentoollog.h>

#include <pvabi/pvabi.h>

#include "platform/platform.h"
#include "pvabi-internal.h"

/* Handles are opaque to the platform; these addresses stand for them. */
static char fake_xce_obj, fake_xcall_obj, fake_xsh_obj;
#define FAKE_XCE   ((xenevtchn_handle *)&fake_xce_obj)
#define FAKE_XCALL ((xencall_handle *)&fake_xcall_obj)
#define FAKE_XSH   ((struct xs_handle *)&fake_xsh_obj)

#define OWN_DOMID 7
#define BUFS_MAX  8
#define CALLS_MAX 32

/* One hypercall as libxencall got it. */
struct hcall {
    unsigned nr;
    int nargs;
    uint64_t a[3];
};

/* The mock hypervisor's answer: >= 0, or -errno (xencall: -1 and errno). */
typedef int answer_fn(const struct hcall *c);

/* What the mocks do and saw; reset before every test. */
static struct {
    int xcall_errno; /* xencall_open fails with it; 0: it succeeds */
    int xcall_opens, xcall_closes;
    xentoollog_logger *xcall_logger;
    struct {
        void *p;
        size_t size;
    } live[BUFS_MAX];
    unsigned allocs, frees, alloc_fails;
    unsigned alloc_fail_at; /* the n-th alloc (1-based) returns NULL/ENOMEM */
    answer_fn *answer;
    struct hcall calls[CALLS_MAX];
    unsigned ncalls;
    int xs_opens, xs_closes;
    int evtchn_fd, store_fd;
} mk;

/* ---- the log ----------------------------------------------------------- */

static char logbuf[16384];

static void capture(void *opaque, int level, const char *msg)
{
    size_t used = strlen(logbuf);

    (void)opaque;
    snprintf(logbuf + used, sizeof(logbuf) - used, "%d|%s\n", level, msg);
}

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

/* ---- mocks: libxencall ------------------------------------------------- */

xencall_handle *__wrap_xencall_open(struct xentoollog_logger *logger, unsigned flags)
{
    (void)flags;
    mk.xcall_logger = logger;
    mk.xcall_opens++;
    if (mk.xcall_errno) {
        errno = mk.xcall_errno;
        return NULL;
    }
    return FAKE_XCALL;
}

int __wrap_xencall_close(xencall_handle *xcall)
{
    assert_ptr_equal(xcall, FAKE_XCALL);
    mk.xcall_closes++;
    return 0;
}

/* Page-aligned as libxencall's, and filled with junk so that a field the
 * platform fails to copy in shows up as a wrong value. */
void *__wrap_xencall_alloc_buffer(xencall_handle *xcall, size_t size)
{
    unsigned i;
    void *p;

    assert_ptr_equal(xcall, FAKE_XCALL);
    assert_true(size > 0);
    if (++mk.allocs == mk.alloc_fail_at) {
        mk.alloc_fails++;
        errno = ENOMEM;
        return NULL;
    }
    for (i = 0; i < BUFS_MAX && mk.live[i].p; i++)
        ;
    assert_true(i < BUFS_MAX);
    p = aligned_alloc(4096, (size + 4095) & ~(size_t)4095);
    assert_non_null(p);
    memset(p, 0xa5, size);
    mk.live[i].p = p;
    mk.live[i].size = size;
    return p;
}

void __wrap_xencall_free_buffer(xencall_handle *xcall, void *p)
{
    assert_ptr_equal(xcall, FAKE_XCALL);
    for (unsigned i = 0; i < BUFS_MAX; i++)
        if (mk.live[i].p == p) {
            free(p);
            mk.live[i].p = NULL;
            mk.frees++;
            return;
        }
    fail_msg("xencall_free_buffer(%p): not a live buffer", p);
}

static int issue(const struct hcall *c)
{
    int r;

    assert_true(mk.ncalls < CALLS_MAX);
    mk.calls[mk.ncalls++] = *c;
    assert_non_null(mk.answer);
    r = mk.answer(c);
    if (r < 0) {
        errno = -r;
        return -1;
    }
    return r;
}

int __wrap_xencall1(xencall_handle *xcall, unsigned int op, uint64_t arg1)
{
    struct hcall c = { .nr = op, .nargs = 1, .a = { arg1 } };

    assert_ptr_equal(xcall, FAKE_XCALL);
    return issue(&c);
}

int __wrap_xencall2(xencall_handle *xcall, unsigned int op, uint64_t arg1, uint64_t arg2)
{
    struct hcall c = { .nr = op, .nargs = 2, .a = { arg1, arg2 } };

    assert_ptr_equal(xcall, FAKE_XCALL);
    return issue(&c);
}

int __wrap_xencall3(xencall_handle *xcall, unsigned int op, uint64_t arg1, uint64_t arg2,
                    uint64_t arg3)
{
    struct hcall c = { .nr = op, .nargs = 3, .a = { arg1, arg2, arg3 } };

    assert_ptr_equal(xcall, FAKE_XCALL);
    return issue(&c);
}

/* The live bounce buffer at @addr, which must be exactly @size bytes: what
 * Xen may touch is memory from xencall_alloc_buffer, nothing else. */
static void *bounce(uint64_t addr, size_t size)
{
    void *p = (void *)(uintptr_t)addr;

    for (unsigned i = 0; i < BUFS_MAX; i++)
        if (mk.live[i].p && mk.live[i].p == p) {
            assert_int_equal(mk.live[i].size, size);
            return p;
        }
    fail_msg("hypercall argument %p is not a xencall buffer", p);
    return NULL;
}

static void assert_no_buffer_left(void)
{
    for (unsigned i = 0; i < BUFS_MAX; i++)
        if (mk.live[i].p)
            fail_msg("xencall buffer %p (%zu bytes) not freed", mk.live[i].p, mk.live[i].size);
    assert_int_equal(mk.allocs - mk.alloc_fails, mk.frees);
}

/* ---- mocks: what pvabi_open("xen") and the store need ------------------ */

xenevtchn_handle *__wrap_xenevtchn_open(struct xentoollog_logger *logger, unsigned flags)
{
    (void)logger;
    (void)flags;
    return FAKE_XCE;
}

int __wrap_xenevtchn_close(xenevtchn_handle *xce)
{
    assert_ptr_equal(xce, FAKE_XCE);
    return 0;
}

int __wrap_xenevtchn_fd(xenevtchn_handle *xce)
{
    assert_ptr_equal(xce, FAKE_XCE);
    return mk.evtchn_fd;
}

/* gntdev, gntalloc and libxenctrl are absent: hypercalls need none. */
xengnttab_handle *__wrap_xengnttab_open(struct xentoollog_logger *logger, unsigned flags)
{
    (void)logger;
    (void)flags;
    errno = ENOENT;
    return NULL;
}

xengntshr_handle *__wrap_xengntshr_open(struct xentoollog_logger *logger, unsigned flags)
{
    (void)logger;
    (void)flags;
    errno = ENOENT;
    return NULL;
}

xc_interface *__wrap_xc_interface_open(xentoollog_logger *logger, xentoollog_logger *dombuild,
                                       unsigned flags)
{
    (void)logger;
    (void)dombuild;
    (void)flags;
    errno = EACCES;
    return NULL;
}

struct xs_handle *__wrap_xs_open(unsigned long flags)
{
    (void)flags;
    mk.xs_opens++;
    return FAKE_XSH;
}

void __wrap_xs_close(struct xs_handle *xsh)
{
    assert_ptr_equal(xsh, FAKE_XSH);
    mk.xs_closes++;
}

int __wrap_xs_fileno(struct xs_handle *xsh)
{
    assert_ptr_equal(xsh, FAKE_XSH);
    return mk.store_fd;
}

/* Our domid, and the names of domains 0 and 5 (others have none). */
void *__wrap_xs_read(struct xs_handle *h, xs_transaction_t t, const char *path, unsigned int *len)
{
    const char *v = NULL;

    assert_ptr_equal(h, FAKE_XSH);
    assert_int_equal(t, XBT_NULL);
    if (strcmp(path, "domid") == 0)
        v = "7";
    else if (strcmp(path, "/local/domain/0/name") == 0)
        v = "Domain-0";
    else if (strcmp(path, "/local/domain/5/name") == 0)
        v = "guest\tfive"; /* a control byte, printed as '?' */
    if (!v) {
        errno = ENOENT;
        return NULL;
    }
    *len = (unsigned int)strlen(v);
    return strdup(v);
}

/* ---- mocks: never reached on this path ---------------------------------- */

static void never(const char *name)
{
    fail_msg("%s called: the hypercall path must not reach it", name);
}

int __wrap_xenevtchn_notify(xenevtchn_handle *xce, evtchn_port_t port)
{
    (void)xce;
    (void)port;
    never("xenevtchn_notify");
    return -1;
}

xenevtchn_port_or_error_t __wrap_xenevtchn_bind_unbound_port(xenevtchn_handle *xce, uint32_t domid)
{
    (void)xce;
    (void)domid;
    never("xenevtchn_bind_unbound_port");
    return -1;
}

xenevtchn_port_or_error_t __wrap_xenevtchn_bind_interdomain(xenevtchn_handle *xce, uint32_t domid,
                                                            evtchn_port_t remote_port)
{
    (void)xce;
    (void)domid;
    (void)remote_port;
    never("xenevtchn_bind_interdomain");
    return -1;
}

int __wrap_xenevtchn_unbind(xenevtchn_handle *xce, evtchn_port_t port)
{
    (void)xce;
    (void)port;
    never("xenevtchn_unbind");
    return -1;
}

xenevtchn_port_or_error_t __wrap_xenevtchn_pending(xenevtchn_handle *xce)
{
    (void)xce;
    never("xenevtchn_pending");
    return -1;
}

int __wrap_xenevtchn_unmask(xenevtchn_handle *xce, evtchn_port_t port)
{
    (void)xce;
    (void)port;
    never("xenevtchn_unmask");
    return -1;
}

int __wrap_xengnttab_close(xengnttab_handle *xgt)
{
    (void)xgt;
    never("xengnttab_close");
    return -1;
}

int __wrap_xengnttab_fd(xengnttab_handle *xgt)
{
    (void)xgt;
    never("xengnttab_fd");
    return -1;
}

void *__wrap_xengnttab_map_domain_grant_refs(xengnttab_handle *xgt, uint32_t count, uint32_t domid,
                                             uint32_t *refs, int prot)
{
    (void)xgt;
    (void)count;
    (void)domid;
    (void)refs;
    (void)prot;
    never("xengnttab_map_domain_grant_refs");
    return NULL;
}

void *__wrap_xengnttab_map_grant_ref(xengnttab_handle *xgt, uint32_t domid, uint32_t ref, int prot)
{
    (void)xgt;
    (void)domid;
    (void)ref;
    (void)prot;
    never("xengnttab_map_grant_ref");
    return NULL;
}

int __wrap_xengnttab_unmap(xengnttab_handle *xgt, void *start_address, uint32_t count)
{
    (void)xgt;
    (void)start_address;
    (void)count;
    never("xengnttab_unmap");
    return -1;
}

int __wrap_xengnttab_grant_copy(xengnttab_handle *xgt, uint32_t count,
                                xengnttab_grant_copy_segment_t *segs)
{
    (void)xgt;
    (void)count;
    (void)segs;
    never("xengnttab_grant_copy");
    return -1;
}

int __wrap_xengntshr_close(xengntshr_handle *xgs)
{
    (void)xgs;
    never("xengntshr_close");
    return -1;
}

void *__wrap_xengntshr_share_pages(xengntshr_handle *xgs, uint32_t domid, int count, uint32_t *refs,
                                   int writable)
{
    (void)xgs;
    (void)domid;
    (void)count;
    (void)refs;
    (void)writable;
    never("xengntshr_share_pages");
    return NULL;
}

int __wrap_xengntshr_unshare(xengntshr_handle *xgs, void *start_address, uint32_t count)
{
    (void)xgs;
    (void)start_address;
    (void)count;
    never("xengntshr_unshare");
    return -1;
}

int __wrap_xc_interface_close(xc_interface *xch)
{
    (void)xch;
    never("xc_interface_close");
    return -1;
}

int __wrap_xc_evtchn_status(xc_interface *xch, xc_evtchn_status_t *status)
{
    (void)xch;
    (void)status;
    never("xc_evtchn_status");
    return -1;
}

/* ---- fixtures ---------------------------------------------------------- */

/* What the answers below check and give; set by each test. */
static struct {
    domid_t dom;         /* the domain asked about */
    domid_t answer_dom;  /* domctl: the domain Xen answers with */
    uint32_t port;       /* EVTCHNOP_status */
    evtchn_status_t st;  /* EVTCHNOP_status's OUT fields */
    int16_t gntst;       /* GNTTABOP_query_size's status */
    int err;             /* > 0: every hypercall fails with it */
    const domid_t *doms; /* getdomaininfolist: the domains there are */
    unsigned ndoms;
} hv;

static int setup(void **state)
{
    (void)state;
    memset(&mk, 0, sizeof(mk));
    memset(&hv, 0, sizeof(hv));
    logbuf[0] = '\0';
    mk.evtchn_fd = eventfd(0, EFD_CLOEXEC);
    mk.store_fd = eventfd(0, EFD_CLOEXEC);
    return mk.evtchn_fd < 0 || mk.store_fd < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    close(mk.evtchn_fd);
    close(mk.store_fd);
    return 0;
}

static pvabi_ctx *open_xen(void)
{
    pvabi_ctx *ctx = NULL;

    assert_int_equal(pvabi_open(&ctx, "xen"), 0);
    assert_int_equal(pvabi_own_domid(ctx), OWN_DOMID);
    return ctx;
}

/* Closes, and checks that every handle was given back. */
static void close_xen(pvabi_ctx *ctx)
{
    pvabi_close(ctx);
    assert_int_equal(mk.xcall_closes, mk.xcall_errno ? 0 : 1);
    assert_int_equal(mk.xs_opens, mk.xs_closes);
    assert_no_buffer_left();
}

/* ---- the mock hypervisor ----------------------------------------------- */

static int answer_version(const struct hcall *c)
{
    assert_int_equal(c->nr, __HYPERVISOR_xen_version);
    assert_int_equal(c->nargs, 2);
    switch (c->a[0]) {
    case XENVER_version:
        assert_int_equal(c->a[1], 0);
        return (4 << 16) | 17;
    case XENVER_extraversion:
        strcpy(bounce(c->a[1], sizeof(xen_extraversion_t)), ".3-rc");
        return 0;
    case XENVER_capabilities:
        strcpy(bounce(c->a[1], sizeof(xen_capabilities_info_t)), "xen-3.0-x86_64 hvm-3.0-x86_32");
        return 0;
    case XENVER_changeset:
        strcpy(bounce(c->a[1], sizeof(xen_changeset_info_t)), "abc123 2024-01-01");
        return 0;
    case XENVER_get_features: {
        xen_feature_info_t *fi = bounce(c->a[1], sizeof(*fi));
        assert_int_equal(fi->submap_idx, 0);
        fi->submap = 0x8a5u;
        return 0;
    }
    case XENVER_pagesize:
        assert_int_equal(c->a[1], 0);
        return 4096;
    }
    fail_msg("xen_version sub-op %llu", (unsigned long long)c->a[0]);
    return -ENOSYS;
}

static struct xen_sysctl *sysctl_arg(const struct hcall *c, uint32_t cmd)
{
    struct xen_sysctl *op;

    assert_int_equal(c->nr, __HYPERVISOR_sysctl);
    assert_int_equal(c->nargs, 1);
    op = bounce(c->a[0], sizeof(*op));
    assert_int_equal(op->cmd, cmd);
    assert_int_equal(op->interface_version, XEN_SYSCTL_INTERFACE_VERSION);
    return op;
}

static int answer_physinfo(const struct hcall *c)
{
    struct xen_sysctl_physinfo *pi = &sysctl_arg(c, XEN_SYSCTL_physinfo)->u.physinfo;

    if (hv.err)
        return -hv.err;
    pi->threads_per_core = 2;
    pi->cores_per_socket = 4;
    pi->nr_cpus = 8;
    pi->max_cpu_id = 15;
    pi->nr_nodes = 2;
    pi->max_node_id = 1;
    pi->cpu_khz = 2400000;
    pi->capabilities = XEN_SYSCTL_PHYSCAP_pv | XEN_SYSCTL_PHYSCAP_hvm | XEN_SYSCTL_PHYSCAP_hap |
                       XEN_SYSCTL_PHYSCAP_gnttab_v1;
    pi->total_pages = 1ull << 22;
    pi->free_pages = 123456;
    pi->scrub_pages = 77;
    pi->outstanding_pages = 5;
    pi->max_mfn = 1ull << 23;
    for (unsigned i = 0; i < 8; i++)
        pi->hw_cap[i] = 0x100u + i;
    return 0;
}

/* Domain @dom's info as this hypervisor tells it: every field distinct. */
static void fill_info(xen_domctl_getdomaininfo_t *di, domid_t dom)
{
    memset(di, 0, sizeof(*di));
    di->domain = dom;
    di->flags = XEN_DOMINF_running | XEN_DOMINF_hap | XEN_DOMINF_shutdown |
                (SHUTDOWN_crash << XEN_DOMINF_shutdownshift);
    di->tot_pages = 1000u + dom;
    di->max_pages = 2000u + dom;
    di->outstanding_pages = 3;
    di->shr_pages = 4;
    di->paged_pages = 5;
    di->cpu_time = 123456789ull + dom;
    di->nr_online_vcpus = 2;
    di->max_vcpu_id = 1;
    di->ssidref = 9;
    di->cpupool = 3;
    for (unsigned i = 0; i < 16; i++)
        di->handle[i] = (uint8_t)(0xc0 + i);
}

static void assert_info(const struct pvabi_domain_info *d, domid_t dom, const char *name)
{
    assert_int_equal(d->domid, dom);
    assert_int_equal(d->flags, PVABI_DOMINF_RUNNING | PVABI_DOMINF_HAP | PVABI_DOMINF_SHUTDOWN);
    assert_int_equal(d->shutdown_reason, SHUTDOWN_crash);
    assert_int_equal(d->tot_pages, 1000u + dom);
    assert_int_equal(d->max_pages, 2000u + dom);
    assert_int_equal(d->outstanding_pages, 3);
    assert_int_equal(d->shr_pages, 4);
    assert_int_equal(d->cpu_time_ns, 123456789ull + dom);
    assert_int_equal(d->nr_online_vcpus, 2);
    assert_int_equal(d->max_vcpu_id, 1);
    assert_int_equal(d->ssidref, 9);
    assert_int_equal(d->cpupool, 3);
    for (unsigned i = 0; i < 16; i++)
        assert_int_equal(d->handle[i], 0xc0 + i);
    assert_string_equal(d->name, name);
}

static int answer_domctl(const struct hcall *c)
{
    struct xen_domctl *op;

    assert_int_equal(c->nr, __HYPERVISOR_domctl);
    assert_int_equal(c->nargs, 1);
    op = bounce(c->a[0], sizeof(*op));
    assert_int_equal(op->cmd, XEN_DOMCTL_getdomaininfo);
    assert_int_equal(op->interface_version, XEN_DOMCTL_INTERFACE_VERSION);
    assert_int_equal(op->domain, hv.dom);
    if (hv.err)
        return -hv.err;
    fill_info(&op->u.getdomaininfo, hv.answer_dom);
    return 0;
}

static int answer_list(const struct hcall *c)
{
    struct xen_sysctl_getdomaininfolist *l =
        &sysctl_arg(c, XEN_SYSCTL_getdomaininfolist)->u.getdomaininfolist;
    const size_t size = l->max_domains * sizeof(xen_domctl_getdomaininfo_t);
    xen_domctl_getdomaininfo_t *buf;
    const uint8_t *b;
    uint32_t n = 0;

    assert_true(l->max_domains > 0);
    buf = bounce((uintptr_t)l->buffer.p, size);
    /* Out only: Xen must see no leftovers of an earlier allocation. */
    b = (const uint8_t *)buf;
    for (size_t i = 0; i < size; i++)
        assert_int_equal(b[i], 0);
    if (hv.err)
        return -hv.err;
    for (unsigned i = 0; i < hv.ndoms && n < l->max_domains; i++)
        if (hv.doms[i] >= l->first_domain)
            fill_info(&buf[n++], hv.doms[i]);
    l->num_domains = n;
    return 0;
}

static int answer_evtchn(const struct hcall *c)
{
    evtchn_status_t *st;

    assert_int_equal(c->nr, __HYPERVISOR_event_channel_op);
    assert_int_equal(c->nargs, 2);
    assert_int_equal(c->a[0], EVTCHNOP_status);
    st = bounce(c->a[1], sizeof(*st));
    assert_int_equal(st->dom, hv.dom);
    assert_int_equal(st->port, hv.port);
    if (hv.err)
        return -hv.err;
    st->status = hv.st.status;
    st->vcpu = hv.st.vcpu;
    st->u = hv.st.u;
    return 0;
}

static int answer_query_size(const struct hcall *c)
{
    gnttab_query_size_t *q;

    assert_int_equal(c->nr, __HYPERVISOR_grant_table_op);
    assert_int_equal(c->nargs, 3);
    assert_int_equal(c->a[0], GNTTABOP_query_size);
    assert_int_equal(c->a[2], 1);
    q = bounce(c->a[1], sizeof(*q));
    assert_int_equal(q->dom, hv.dom);
    if (hv.err)
        return -hv.err;
    q->status = hv.gntst;
    if (hv.gntst == GNTST_okay) {
        q->nr_frames = 4;
        q->max_nr_frames = 64;
    }
    return 0;
}

static int answer_memory(const struct hcall *c)
{
    domid_t *dom;

    assert_int_equal(c->nr, __HYPERVISOR_memory_op);
    assert_int_equal(c->nargs, 2);
    dom = bounce(c->a[1], sizeof(*dom));
    assert_int_equal(*dom, hv.dom);
    if (hv.err)
        return -hv.err;
    if (c->a[0] == XENMEM_current_reservation)
        return 262144;
    assert_int_equal(c->a[0], XENMEM_maximum_reservation);
    return 0x7fffffff;
}

/* ---- open, close, no privcmd -------------------------------------------- */

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

static void test_open_opens_xencall_with_our_logger(void **state)
{
    pvabi_ctx *ctx;

    (void)state;
    ctx = open_xen();
    assert_int_equal(mk.xcall_opens, 1);
    assert_non_null(mk.xcall_logger);
    /* libxencall's own messages go to pvabi's log, not stderr. */
    say(mk.xcall_logger, XTL_ERROR, EIO, "xencall", "%s", "oops");
    assert_logged(PVABI_LOG_ERR, "libxen xencall: oops: Input/output error");
    assert_int_equal(mk.xcall_closes, 0);
    close_xen(ctx);
}

static void test_without_privcmd_every_wrapper_is_eacces(void **state)
{
    struct pvabi_xen_version v;
    struct pvabi_physinfo pi;
    struct pvabi_domain_info di[2];
    struct pvabi_evtchn_status es;
    struct pvabi_gnttab_size gs;
    struct pvabi_memory mem;
    pvabi_ctx *ctx;

    (void)state;
    mk.xcall_errno = EACCES;
    ctx = open_xen(); /* privcmd is optional: the rest works without it */
    assert_logged(PVABI_LOG_DEBUG, "xencall_open: /dev/xen/privcmd (hypercalls disabled): "
                                   "Permission denied");
    assert_int_equal(pvabi_xen_version_read(ctx, &v), -EACCES);
    assert_logged(PVABI_LOG_ERR, "platform xen: xen_version: hypercalls not available: "
                                 "/dev/xen/privcmd could not be opened at pvabi_open "
                                 "(Permission denied)");
    assert_int_equal(pvabi_physinfo_read(ctx, &pi), -EACCES);
    assert_int_equal(pvabi_domain_read(ctx, 0, &di[0]), -EACCES);
    assert_int_equal(pvabi_domain_list(ctx, 0, di, 2), -EACCES);
    assert_int_equal(pvabi_evtchn_status_read(ctx, PVABI_DOMID_SELF, 1, &es), -EACCES);
    assert_int_equal(pvabi_gnttab_size_read(ctx, PVABI_DOMID_SELF, &gs), -EACCES);
    assert_int_equal(pvabi_memory_read(ctx, PVABI_DOMID_SELF, &mem), -EACCES);
    assert_int_equal(mk.ncalls, 0);
    assert_int_equal(mk.allocs, 0);
    close_xen(ctx);
}

static void test_grant_list_is_not_a_xen_op(void **state)
{
    struct pvabi_grant_entry e[4];
    pvabi_ctx *ctx;

    (void)state;
    ctx = open_xen();
    assert_null(ctx->ops->grant_list);
    assert_int_equal(pvabi_grant_list(ctx, OWN_DOMID, 0, e, 4), -EOPNOTSUPP);
    close_xen(ctx);
}

/* ---- one wrapper at a time ---------------------------------------------- */

static void test_xen_version_issues_every_subop(void **state)
{
    struct pvabi_xen_version v;
    pvabi_ctx *ctx;

    (void)state;
    ctx = open_xen();
    mk.answer = answer_version;
    assert_int_equal(pvabi_xen_version_read(ctx, &v), 0);
    assert_int_equal(v.major, 4);
    assert_int_equal(v.minor, 17);
    assert_string_equal(v.extra, ".3-rc");
    assert_string_equal(v.capabilities, "xen-3.0-x86_64 hvm-3.0-x86_32");
    assert_string_equal(v.changeset, "abc123 2024-01-01");
    assert_int_equal(v.features, 0x8a5u);
    assert_int_equal(v.pagesize, 4096);
    assert_int_equal(mk.ncalls, 6);
    /* XENVER_version and _pagesize take no argument: nothing to bounce. */
    assert_int_equal(mk.allocs, 4);
    close_xen(ctx);
}

static void test_physinfo_is_sysctl_physinfo(void **state)
{
    struct pvabi_physinfo pi;
    pvabi_ctx *ctx;

    (void)state;
    ctx = open_xen();
    mk.answer = answer_physinfo;
    assert_int_equal(pvabi_physinfo_read(ctx, &pi), 0);
    assert_int_equal(mk.ncalls, 1);
    assert_int_equal(pi.nr_cpus, 8);
    assert_int_equal(pi.max_cpu_id, 15);
    assert_int_equal(pi.nr_nodes, 2);
    assert_int_equal(pi.max_node_id, 1);
    assert_int_equal(pi.threads_per_core, 2);
    assert_int_equal(pi.cores_per_socket, 4);
    assert_int_equal(pi.cpu_khz, 2400000);
    assert_int_equal(pi.capabilities, PVABI_PHYSCAP_PV | PVABI_PHYSCAP_HVM | PVABI_PHYSCAP_HAP |
                                          PVABI_PHYSCAP_GNTTAB_V1);
    assert_int_equal(pi.total_pages, 1ull << 22);
    assert_int_equal(pi.free_pages, 123456);
    assert_int_equal(pi.scrub_pages, 77);
    assert_int_equal(pi.outstanding_pages, 5);
    for (unsigned i = 0; i < 8; i++)
        assert_int_equal(pi.hw_cap[i], 0x100u + i);
    assert_int_equal(pi.page_size, 4096);
    close_xen(ctx);
}

static void test_domain_read_is_domctl_getdomaininfo(void **state)
{
    struct pvabi_domain_info d;
    pvabi_ctx *ctx;

    (void)state;
    ctx = open_xen();
    mk.answer = answer_domctl;
    hv.dom = hv.answer_dom = 5;
    assert_int_equal(pvabi_domain_read(ctx, 5, &d), 0);
    assert_info(&d, 5, "guest?five");
    /* DOMID_SELF is resolved before Xen sees it (domctl wants a real id). */
    hv.dom = hv.answer_dom = OWN_DOMID;
    assert_int_equal(pvabi_domain_read(ctx, PVABI_DOMID_SELF, &d), 0);
    assert_info(&d, OWN_DOMID, "");
    assert_int_equal(mk.ncalls, 2);
    close_xen(ctx);
}

static void test_domain_read_answered_with_next_domain_is_esrch(void **state)
{
    struct pvabi_domain_info d;
    pvabi_ctx *ctx;

    (void)state;
    ctx = open_xen();
    mk.answer = answer_domctl;
    hv.dom = 4; /* gone: Xen before 4.18 tells about domain 5 instead */
    hv.answer_dom = 5;
    assert_int_equal(pvabi_domain_read(ctx, 4, &d), -ESRCH);
    close_xen(ctx);
}

static void test_domain_list_is_sysctl_getdomaininfolist(void **state)
{
    static const domid_t doms[] = { 0, 1, 5 };
    struct pvabi_domain_info d[4];
    pvabi_ctx *ctx;

    (void)state;
    ctx = open_xen();
    mk.answer = answer_list;
    hv.doms = doms;
    hv.ndoms = 3;
    assert_int_equal(pvabi_domain_list(ctx, 0, d, 4), 3);
    assert_info(&d[0], 0, "Domain-0");
    assert_info(&d[1], 1, "");
    assert_info(&d[2], 5, "guest?five");
    assert_int_equal(mk.ncalls, 1);
    /* From a later first domain. */
    assert_int_equal(pvabi_domain_list(ctx, 2, d, 4), 1);
    assert_info(&d[0], 5, "guest?five");
    close_xen(ctx);
}

/* Reads back first_domain/max_domains of the n-th getdomaininfolist. */
static struct {
    uint32_t first, max;
} list_asked[CALLS_MAX];

static int answer_list_recording(const struct hcall *c)
{
    const struct xen_sysctl *op = bounce(c->a[0], sizeof(*op));

    list_asked[mk.ncalls - 1].first = op->u.getdomaininfolist.first_domain;
    list_asked[mk.ncalls - 1].max = op->u.getdomaininfolist.max_domains;
    return answer_list(c);
}

static void test_domain_list_pages_through_the_sub_buffer(void **state)
{
    static domid_t doms[40];
    static struct pvabi_domain_info d[40];
    pvabi_ctx *ctx;

    (void)state;
    for (unsigned i = 0; i < 40; i++)
        doms[i] = (domid_t)(i * 2);
    ctx = open_xen();
    mk.answer = answer_list_recording;
    hv.doms = doms;
    hv.ndoms = 40;
    assert_int_equal(pvabi_domain_list(ctx, 0, d, 40), 40);
    assert_int_equal(mk.ncalls, 2);
    assert_int_equal(list_asked[0].first, 0);
    assert_int_equal(list_asked[0].max, 32);
    assert_int_equal(list_asked[1].first, 63); /* after domain 62 */
    assert_int_equal(list_asked[1].max, 8);
    for (unsigned i = 0; i < 40; i++)
        assert_int_equal(d[i].domid, i * 2);
    assert_int_equal(d[39].tot_pages, 1000u + 78);
    close_xen(ctx);
}

static void test_evtchn_status_is_evtchnop_status(void **state)
{
    struct pvabi_evtchn_status s;
    pvabi_ctx *ctx;

    (void)state;
    ctx = open_xen();
    mk.answer = answer_evtchn;
    hv.dom = 3;
    hv.port = 9;
    hv.st.status = EVTCHNSTAT_interdomain;
    hv.st.vcpu = 1;
    hv.st.u.interdomain.dom = 0;
    hv.st.u.interdomain.port = 42;
    assert_int_equal(pvabi_evtchn_status_read(ctx, 3, 9, &s), 0);
    assert_int_equal(s.dom, 3);
    assert_int_equal(s.port, 9);
    assert_int_equal(s.status, PVABI_EVTCHNSTAT_INTERDOMAIN);
    assert_int_equal(s.vcpu, 1);
    assert_int_equal(s.remote_dom, 0);
    assert_int_equal(s.remote_port, 42);
    assert_int_equal(s.pirq, 0);
    assert_int_equal(s.virq, 0);

    hv.dom = OWN_DOMID;
    hv.port = 2;
    memset(&hv.st, 0, sizeof(hv.st));
    hv.st.status = EVTCHNSTAT_unbound;
    hv.st.u.unbound.dom = 4;
    assert_int_equal(pvabi_evtchn_status_read(ctx, PVABI_DOMID_SELF, 2, &s), 0);
    assert_int_equal(s.dom, OWN_DOMID);
    assert_int_equal(s.status, PVABI_EVTCHNSTAT_UNBOUND);
    assert_int_equal(s.remote_dom, 4);
    assert_int_equal(s.remote_port, 0);

    memset(&hv.st, 0, sizeof(hv.st));
    hv.st.status = EVTCHNSTAT_virq;
    hv.st.u.virq = 3;
    assert_int_equal(pvabi_evtchn_status_read(ctx, PVABI_DOMID_SELF, 2, &s), 0);
    assert_int_equal(s.status, PVABI_EVTCHNSTAT_VIRQ);
    assert_int_equal(s.virq, 3);
    assert_int_equal(s.remote_dom, 0);

    memset(&hv.st, 0, sizeof(hv.st));
    hv.st.status = EVTCHNSTAT_pirq;
    hv.st.u.pirq = 17;
    assert_int_equal(pvabi_evtchn_status_read(ctx, PVABI_DOMID_SELF, 2, &s), 0);
    assert_int_equal(s.status, PVABI_EVTCHNSTAT_PIRQ);
    assert_int_equal(s.pirq, 17);
    close_xen(ctx);
}

static void test_gnttab_size_is_query_size_with_count_1(void **state)
{
    struct pvabi_gnttab_size g;
    pvabi_ctx *ctx;

    (void)state;
    ctx = open_xen();
    mk.answer = answer_query_size;
    hv.dom = OWN_DOMID;
    hv.gntst = GNTST_okay;
    assert_int_equal(pvabi_gnttab_size_read(ctx, PVABI_DOMID_SELF, &g), 0);
    assert_int_equal(g.dom, OWN_DOMID);
    assert_int_equal(g.nr_frames, 4);
    assert_int_equal(g.max_nr_frames, 64);
    close_xen(ctx);
}

static void test_gnttab_size_status_is_errno(void **state)
{
    struct pvabi_gnttab_size g;
    pvabi_ctx *ctx;

    (void)state;
    ctx = open_xen();
    mk.answer = answer_query_size;
    hv.dom = 9;
    hv.gntst = GNTST_bad_domain;
    assert_int_equal(pvabi_gnttab_size_read(ctx, 9, &g), -ESRCH);
    hv.gntst = GNTST_permission_denied;
    assert_int_equal(pvabi_gnttab_size_read(ctx, 9, &g), -EPERM);
    hv.gntst = GNTST_general_error;
    assert_int_equal(pvabi_gnttab_size_read(ctx, 9, &g), -EINVAL);
    close_xen(ctx);
}

static void test_memory_is_the_reservation_queries_value(void **state)
{
    struct pvabi_memory m;
    pvabi_ctx *ctx;

    (void)state;
    ctx = open_xen();
    mk.answer = answer_memory;
    hv.dom = 5;
    assert_int_equal(pvabi_memory_read(ctx, 5, &m), 0);
    assert_int_equal(m.dom, 5);
    assert_int_equal(m.current_pages, 262144);
    assert_int_equal(m.maximum_pages, 0x7fffffff);
    assert_int_equal(mk.ncalls, 2);
    assert_int_equal(mk.calls[0].a[0], XENMEM_current_reservation);
    assert_int_equal(mk.calls[1].a[0], XENMEM_maximum_reservation);
    close_xen(ctx);
}

/* ---- errors ------------------------------------------------------------- */

static void test_xencall_errno_is_returned_and_logged_at_debug(void **state)
{
    struct pvabi_physinfo pi;
    struct pvabi_domain_info d;
    struct pvabi_evtchn_status s;
    struct pvabi_memory m;
    pvabi_ctx *ctx;

    (void)state;
    ctx = open_xen();
    mk.answer = answer_physinfo;
    hv.err = EPERM;
    assert_int_equal(pvabi_physinfo_read(ctx, &pi), -EPERM);
    assert_logged(PVABI_LOG_DEBUG, "platform xen: sysctl (nr 35, cmd 3): Operation not permitted "
                                   "(refused by Xen, or by Linux's privcmd");
    assert_no_buffer_left();

    mk.answer = answer_domctl;
    hv.dom = 0;
    hv.err = EACCES;
    assert_int_equal(pvabi_domain_read(ctx, 0, &d), -EACCES);
    assert_logged(PVABI_LOG_DEBUG, "platform xen: domctl (nr 36, cmd 5): Permission denied");
    assert_no_buffer_left();

    mk.answer = answer_evtchn;
    hv.dom = 2;
    hv.port = 1;
    hv.err = ESRCH;
    assert_int_equal(pvabi_evtchn_status_read(ctx, 2, 1, &s), -ESRCH);
    assert_logged(PVABI_LOG_DEBUG,
                  "platform xen: event_channel_op (nr 32, cmd 5): No such process");

    mk.answer = answer_memory;
    hv.err = ESRCH;
    assert_int_equal(pvabi_memory_read(ctx, 2, &m), -ESRCH);
    hv.err = 0;
    close_xen(ctx);
}

static void test_domain_list_error_frees_both_buffers(void **state)
{
    struct pvabi_domain_info d[4];
    pvabi_ctx *ctx;

    (void)state;
    ctx = open_xen();
    mk.answer = answer_list;
    hv.err = EPERM;
    assert_int_equal(pvabi_domain_list(ctx, 0, d, 4), -EPERM);
    assert_int_equal(mk.allocs, 2);
    assert_no_buffer_left();
    close_xen(ctx);
}

static void test_alloc_failure_is_enomem_and_issues_nothing(void **state)
{
    struct pvabi_physinfo pi;
    struct pvabi_domain_info d[4];
    pvabi_ctx *ctx;

    (void)state;
    ctx = open_xen();
    mk.answer = answer_list;
    mk.alloc_fail_at = 1; /* the struct's */
    assert_int_equal(pvabi_physinfo_read(ctx, &pi), -ENOMEM);
    assert_logged(PVABI_LOG_ERR, "xencall_alloc_buffer(");
    assert_no_buffer_left();
    mk.alloc_fail_at = 3; /* the list's sub buffer, after its struct's */
    assert_int_equal(pvabi_domain_list(ctx, 0, d, 4), -ENOMEM);
    assert_no_buffer_left();
    assert_int_equal(mk.ncalls, 0);
    close_xen(ctx);
}

static void test_errno_is_left_untouched(void **state)
{
    struct pvabi_physinfo pi;
    pvabi_ctx *ctx;

    (void)state;
    ctx = open_xen();
    mk.answer = answer_physinfo;
    hv.err = EPERM;
    errno = 1234;
    assert_int_equal(pvabi_physinfo_read(ctx, &pi), -EPERM);
    assert_int_equal(errno, 1234);
    hv.err = 0;
    assert_int_equal(pvabi_physinfo_read(ctx, &pi), 0);
    assert_int_equal(errno, 1234);
    close_xen(ctx);
}

/* ---- the op itself, below the wrappers ---------------------------------- */

/* A struct with a guest handle in the middle, as sysctl's list has. */
struct with_handle {
    uint32_t in, out;
    uint64_t handle;
    uint64_t tail;
};

static int answer_with_handle(const struct hcall *c)
{
    struct with_handle *w = bounce(c->a[0], sizeof(*w));
    uint8_t *sub = bounce(w->handle, 16);

    assert_int_equal(c->nr, __HYPERVISOR_sysctl);
    assert_int_equal(w->in, 0x1234);
    assert_int_equal(w->tail, 0x5678);
    w->out = 0xabcd;
    w->tail = 0x9999;
    memset(sub, 0x5a, 16);
    return hv.err ? -hv.err : 7;
}

static void test_op_keeps_the_callers_handle_and_copies_sub_back(void **state)
{
    struct with_handle w = { .in = 0x1234, .handle = 0x1111, .tail = 0x5678 };
    uint8_t sub[16] = { 0 };
    struct pvabi__hypercall hc = {
        .nr = __HYPERVISOR_sysctl,
        .arg = &w,
        .len = sizeof(w),
        .sub = sub,
        .sub_len = sizeof(sub),
        .sub_off = offsetof(struct with_handle, handle),
    };
    int64_t result = -1;
    pvabi_ctx *ctx;

    (void)state;
    ctx = open_xen();
    mk.answer = answer_with_handle;
    assert_int_equal(ctx->ops->hypercall(ctx, ctx->plat, &hc, &result), 0);
    assert_int_equal(result, 7);
    assert_int_equal(w.out, 0xabcd);
    assert_int_equal(w.tail, 0x9999);
    /* Never a freed bounce address in the caller's struct. */
    assert_int_equal(w.handle, 0x1111);
    for (unsigned i = 0; i < sizeof(sub); i++)
        assert_int_equal(sub[i], 0x5a);
    assert_no_buffer_left();
    close_xen(ctx);
}

static void test_op_failure_leaves_the_callers_struct_alone(void **state)
{
    struct with_handle w = { .in = 0x1234, .handle = 0x1111, .tail = 0x5678 };
    uint8_t sub[16] = { 0 };
    struct pvabi__hypercall hc = {
        .nr = __HYPERVISOR_sysctl,
        .arg = &w,
        .len = sizeof(w),
        .sub = sub,
        .sub_len = sizeof(sub),
        .sub_off = offsetof(struct with_handle, handle),
    };
    int64_t result = -1;
    pvabi_ctx *ctx;

    (void)state;
    ctx = open_xen();
    mk.answer = answer_with_handle;
    hv.err = EINVAL;
    assert_int_equal(ctx->ops->hypercall(ctx, ctx->plat, &hc, &result), -EINVAL);
    assert_int_equal(result, -1);
    assert_int_equal(w.out, 0);
    assert_int_equal(w.tail, 0x5678);
    assert_int_equal(sub[0], 0);
    assert_no_buffer_left();
    hv.err = 0;
    close_xen(ctx);
}

static void test_op_rejects_a_handle_outside_the_struct(void **state)
{
    struct with_handle w = { 0 };
    uint8_t sub[16];
    struct pvabi__hypercall hc = {
        .nr = __HYPERVISOR_sysctl,
        .arg = &w,
        .len = sizeof(w),
        .sub = sub,
        .sub_len = sizeof(sub),
        .sub_off = sizeof(w) - 4,
    };
    int64_t result;
    pvabi_ctx *ctx;

    (void)state;
    ctx = open_xen();
    mk.answer = answer_with_handle;
    assert_int_equal(ctx->ops->hypercall(ctx, ctx->plat, &hc, &result), -EINVAL);
    assert_logged(PVABI_LOG_ERR, "platform xen: sysctl (nr 35, cmd 0): malformed request");
    hc.sub_off = 0;
    hc.len = 4;
    assert_int_equal(ctx->ops->hypercall(ctx, ctx->plat, &hc, &result), -EINVAL);
    hc.sub = NULL;
    hc.arg = NULL;
    assert_int_equal(ctx->ops->hypercall(ctx, ctx->plat, &hc, &result), -EINVAL);
    assert_int_equal(mk.ncalls, 0);
    assert_int_equal(mk.allocs, 0);
    close_xen(ctx);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_open_opens_xencall_with_our_logger),
        T(test_without_privcmd_every_wrapper_is_eacces),
        T(test_grant_list_is_not_a_xen_op),
        T(test_xen_version_issues_every_subop),
        T(test_physinfo_is_sysctl_physinfo),
        T(test_domain_read_is_domctl_getdomaininfo),
        T(test_domain_read_answered_with_next_domain_is_esrch),
        T(test_domain_list_is_sysctl_getdomaininfolist),
        T(test_domain_list_pages_through_the_sub_buffer),
        T(test_evtchn_status_is_evtchnop_status),
        T(test_gnttab_size_is_query_size_with_count_1),
        T(test_gnttab_size_status_is_errno),
        T(test_memory_is_the_reservation_queries_value),
        T(test_xencall_errno_is_returned_and_logged_at_debug),
        T(test_domain_list_error_frees_both_buffers),
        T(test_alloc_failure_is_enomem_and_issues_nothing),
        T(test_errno_is_left_untouched),
        T(test_op_keeps_the_callers_handle_and_copies_sub_back),
        T(test_op_failure_leaves_the_callers_struct_alone),
        T(test_op_rejects_a_handle_outside_the_struct),
    };

    pvabi_log_set(NULL, capture, NULL, PVABI_LOG_DEBUG);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
