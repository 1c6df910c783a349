/* SPDX-License-Identifier: MIT */
/*
 * The `xen` platform's private state and helpers, shared by its files only:
 * core.c (open/close, the logger, the errno helper), xc.c (libxenctrl),
 * domid.c (our domain id), evtchn.c and grant.c (the ops), hcall.c (the
 * hypercall op, libxencall).
 *
 * Locking: the core holds ctx->lock around every op except evtchn_notify
 * and evtchn_wait, so the fields below need no lock of their own; notify
 * only reads the handle, and wait the fd, both set at open and cleared at
 * close; wait takes the lock for anything else.
 */
#ifndef PVABI_XEN_PRIVATE_H
#define PVABI_XEN_PRIVATE_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include <xencall.h>
#include <xenevtchn.h>
#include <xengnttab.h>
#include <xentoollog.h>

#include "platform/platform.h"
#include "pvabi-internal.h"

/* xenctrl.h needs GNU C, so only xc.c includes it; this is its handle type. */
struct xc_interface_core;

/* Our xentoollog logger: libxen* messages go to pvabi__log, never stderr. */
struct pvabi__xen_logger {
    xentoollog_logger base; /* first: libxen* calls base.vmessage(&base, ...) */
    const pvabi_ctx *ctx;
    int demote; /* >0: the failure is expected and handled: log at debug */
};

struct pvabi__xen {
    pvabi_ctx *ctx;
    struct pvabi__xen_logger logger;
    xenevtchn_handle *xce;         /* required: events and the pollable fd */
    xengnttab_handle *xgt;         /* optional (gntdev): map, copy */
    xengntshr_handle *xgs;         /* optional (gntalloc): share */
    struct xc_interface_core *xch; /* optional (privcmd): port status */
    xencall_handle *xcall;         /* optional (privcmd): the hypercall op */
    int xgt_errno, xgs_errno;      /* why xgt / xgs are NULL */
    int xcall_errno;               /* why xcall is NULL */
    int fd;
    pvabi_domid domid;
    uint8_t *ports; /* PVABI_EVTCHN_UNBOUND / _INTERDOMAIN, indexed by port */
    size_t nports;
    size_t replay; /* after an overflow: the next port to report, 0 = none */
};

/* Restores errno when the variable it cleans up goes out of scope: every op
 * starts with `int keep PVABI__XEN_KEEP_ERRNO = errno;` so that libxen*'s
 * errno never leaks to the caller (pvabi leaves the global errno alone). */
static inline void pvabi__xen_keep_errno(const int *saved)
{
    errno = *saved;
}
#define PVABI__XEN_KEEP_ERRNO __attribute__((cleanup(pvabi__xen_keep_errno), unused))

/*
 * Errors.  pvabi__xen_errno() is the one place that reads errno after a
 * libxen* (or libc) call returned -1/NULL: it returns -errno (-EIO if the
 * call left none).  pvabi__xen_report() logs "platform xen: <call>:
 * <strerror>[ (<hint>)]" at @level and returns @rc; @fmt names the call and
 * its arguments; @hints (NULL, or ended by { 0, NULL }) adds a hint for
 * some errnos.  pvabi__xen_fail() is both: use it right after the call.
 */
struct pvabi__xen_hint {
    int err;
    const char *text;
};
int pvabi__xen_errno(void);
int pvabi__xen_report(const struct pvabi__xen *x, int level, int rc,
                      const struct pvabi__xen_hint *hints, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
int pvabi__xen_fail(const struct pvabi__xen *x, int level, const struct pvabi__xen_hint *hints,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Xen's GNTST_* status as -errno, and its name for messages. */
int pvabi__xen_gntst_errno(int16_t status);
const char *pvabi__xen_gntst_name(int16_t status);

/* Logs why a share/map/copy cannot be done (@dev failed to open with @err at
 * pvabi_open) and returns -ENOTSUP. */
int pvabi__xen_missing(const struct pvabi__xen *x, const char *what, const char *dev, int err,
                       const char *module);

/* The hypercall op without a xencall handle: logs why (privcmd could not be
 * opened at pvabi_open, with the errno it gave) and returns -EACCES. */
int pvabi__xen_missing_privcmd(const struct pvabi__xen *x, const char *what);

/* xc.c: libxenctrl, optional.  Opens x->xch or leaves it NULL (logged). */
void pvabi__xen_xc_open(struct pvabi__xen *x);
void pvabi__xen_xc_close(struct pvabi__xen *x);
/* EVTCHNOP_status of @dom's @port: 0 and *status (EVTCHNSTAT_*) and *remote
 * (the domain it is offered to or connected to), or -errno (logged at debug:
 * a refinement that may fail without harm). */
int pvabi__xen_port_status(struct pvabi__xen *x, pvabi_domid dom, pvabi_port port, uint32_t *status,
                           pvabi_domid *remote);

/* domid.c: our own domain id, from xenstore or /proc/xen/capabilities. */
int pvabi__xen_own_domid(struct pvabi__xen *x, pvabi_domid *domid);
/* The capabilities file, a variable so that unit tests can point it at a
 * file of their own. */
extern const char *pvabi__xen_caps_path;

/* evtchn.c / grant.c: the ops. */
void pvabi__xen_ports_free(struct pvabi__xen *x);
int pvabi__xen_evtchn_alloc(pvabi_ctx *ctx, void *plat, pvabi_domid remote, pvabi_port *port);
int pvabi__xen_evtchn_bind(pvabi_ctx *ctx, void *plat, pvabi_domid remote, pvabi_port remote_port,
                           pvabi_port *port);
int pvabi__xen_evtchn_unbind(pvabi_ctx *ctx, void *plat, pvabi_port port);
int pvabi__xen_evtchn_notify(pvabi_ctx *ctx, void *plat, pvabi_port port);
int pvabi__xen_evtchn_pending(pvabi_ctx *ctx, void *plat, struct pvabi__event *ev, unsigned max);
int pvabi__xen_evtchn_wait(pvabi_ctx *ctx, void *plat, int timeout_ms);
int pvabi__xen_evtchn_unmask(pvabi_ctx *ctx, void *plat, pvabi_port port);
int pvabi__xen_evtchn_state(pvabi_ctx *ctx, void *plat, pvabi_port port);

int pvabi__xen_grant_share(pvabi_ctx *ctx, void *plat, pvabi_domid domid, unsigned count,
                           int readonly, pvabi_gref *refs, void **addr, void **handle);
int pvabi__xen_grant_revoke(pvabi_ctx *ctx, void *plat, void *handle);
int pvabi__xen_grant_notify(pvabi_ctx *ctx, void *plat, void *handle, unsigned page,
                            unsigned offset, pvabi_port port);
int pvabi__xen_grant_map(pvabi_ctx *ctx, void *plat, pvabi_domid domid, const pvabi_gref *refs,
                         unsigned count, int readonly, int *status, void **addr, void **handle);
int pvabi__xen_grant_unmap(pvabi_ctx *ctx, void *plat, void *handle);
int pvabi__xen_map_notify(pvabi_ctx *ctx, void *plat, void *handle, unsigned page, unsigned offset,
                          pvabi_port port);
int pvabi__xen_grant_copy(pvabi_ctx *ctx, void *plat, struct pvabi_grant_copy_seg *segs,
                          unsigned count);

/* hcall.c: the hypercall op. */
int pvabi__xen_hypercall(pvabi_ctx *ctx, void *plat, struct pvabi__hypercall *hc, int64_t *result);

#endif
