/* SPDX-License-Identifier: MIT */
/*
 * The `xen` platform: opening and closing the libxen* handles, the logger
 * that routes their messages to pvabi__log, the one errno conversion, and
 * the ops table.  Event channels are in evtchn.c, grants in grant.c,
 * hypercalls in hcall.c.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "private.h"

/* ---- errors ------------------------------------------------------------ */

int pvabi__xen_errno(void)
{
    int err = errno;
    return err > 0 ? -err : -EIO;
}

static const char *hint_for(const struct pvabi__xen_hint *hints, int err)
{
    for (; hints && hints->text; hints++)
        if (hints->err == err)
            return hints->text;
    return NULL;
}

__attribute__((format(printf, 5, 0))) static int vreport(const struct pvabi__xen *x, int level,
                                                         int rc,
                                                         const struct pvabi__xen_hint *hints,
                                                         const char *fmt, va_list ap)
{
    const char *hint = hint_for(hints, -rc);
    char call[256], ebuf[128];

    /* The guard is for GCC 12 under -fsanitize=address, which otherwise
     * warns of a null format string here (it cannot prove fmt non-null). */
    if (fmt)
        vsnprintf(call, sizeof(call), fmt, ap);
    else
        snprintf(call, sizeof(call), "?");
    pvabi__log(x->ctx, level, "platform xen: %s: %s%s%s%s", call,
               strerror_r(-rc, ebuf, sizeof(ebuf)), hint ? " (" : "", hint ? hint : "",
               hint ? ")" : "");
    return rc;
}

int pvabi__xen_report(const struct pvabi__xen *x, int level, int rc,
                      const struct pvabi__xen_hint *hints, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vreport(x, level, rc, hints, fmt, ap);
    va_end(ap);
    return rc;
}

int pvabi__xen_fail(const struct pvabi__xen *x, int level, const struct pvabi__xen_hint *hints,
                    const char *fmt, ...)
{
    int rc = pvabi__xen_errno(); /* first: formatting below may change errno */
    va_list ap;

    va_start(ap, fmt);
    vreport(x, level, rc, hints, fmt, ap);
    va_end(ap);
    return rc;
}

int pvabi__xen_missing(const struct pvabi__xen *x, const char *what, const char *dev, int err,
                       const char *module)
{
    char ebuf[128];

    pvabi__err(x->ctx,
               "platform xen: %s: not available: %s could not be opened (%s); load the %s "
               "kernel module and check the device's permissions, then open a new context",
               what, dev, strerror_r(err, ebuf, sizeof(ebuf)), module);
    return -ENOTSUP;
}

int pvabi__xen_missing_privcmd(const struct pvabi__xen *x, const char *what)
{
    char ebuf[128];

    pvabi__err(x->ctx,
               "platform xen: %s: hypercalls not available: /dev/xen/privcmd could not be "
               "opened at pvabi_open (%s); run as root (or give this user access to "
               "/dev/xen/privcmd) in a Xen domain, then open a new context",
               what, strerror_r(x->xcall_errno, ebuf, sizeof(ebuf)));
    return -EACCES;
}

/* ---- the logger handed to libxen* -------------------------------------- */

static int level_from_xtl(xentoollog_level level)
{
    if (level >= XTL_ERROR)
        return PVABI_LOG_ERR;
    if (level == XTL_WARN)
        return PVABI_LOG_WARN;
    return level >= XTL_INFO ? PVABI_LOG_INFO : PVABI_LOG_DEBUG;
}

__attribute__((format(printf, 5, 0))) static void logger_vmessage(xentoollog_logger *base,
                                                                  xentoollog_level level,
                                                                  int errnoval, const char *context,
                                                                  const char *format, va_list al)
{
    const struct pvabi__xen_logger *l = (const struct pvabi__xen_logger *)base;
    int lvl = l->demote > 0 ? PVABI_LOG_DEBUG : level_from_xtl(level);
    char msg[256], ebuf[128];

    vsnprintf(msg, sizeof(msg), format, al);
    if (errnoval > 0)
        pvabi__log(l->ctx, lvl, "libxen %s: %s: %s", context ? context : "?", msg,
                   strerror_r(errnoval, ebuf, sizeof(ebuf)));
    else
        pvabi__log(l->ctx, lvl, "libxen %s: %s", context ? context : "?", msg);
}

/* The logger lives in struct pvabi__xen and is freed with it, after every
 * handle that holds it is closed; libxen* never destroys a caller's logger. */
static void logger_destroy(xentoollog_logger *base)
{
    (void)base;
}

/* ---- open / close ------------------------------------------------------ */

static const struct pvabi__xen_hint evtchn_hints[] = {
    { ENOENT, "is this a Xen domain with the xen-evtchn module loaded?" },
    { ENODEV, "is this a Xen domain with the xen-evtchn module loaded?" },
    { EACCES, "run as root or give this user access to /dev/xen/evtchn" },
    { EPERM, "run as root or give this user access to /dev/xen/evtchn" },
    { 0, NULL },
};

/* The event channel device is what makes a Xen domain usable at all: its
 * absence is "no Xen here" (-ENOENT); its fd is the context's pollable fd. */
static int open_evtchn(struct pvabi__xen *x)
{
    int flags;

    x->xce = xenevtchn_open(&x->logger.base, 0);
    if (!x->xce)
        return pvabi__xen_fail(x, PVABI_LOG_ERR, evtchn_hints, "xenevtchn_open: /dev/xen/evtchn");
    x->fd = xenevtchn_fd(x->xce);
    /* xenevtchn_pending() is a read() of this fd: non-blocking, an empty
     * queue is EAGAIN instead of a wait (Linux honours O_NONBLOCK here). */
    flags = fcntl(x->fd, F_GETFL);
    if (flags < 0 || fcntl(x->fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return pvabi__xen_fail(x, PVABI_LOG_ERR, NULL, "fcntl(O_NONBLOCK) on the evtchn fd %d",
                               x->fd);
    return 0;
}

/* Mapping and sharing need their own devices; a domain without one can still
 * do the rest, so a failure here is remembered and explained at first use. */
static void open_grants(struct pvabi__xen *x)
{
    x->xgt = xengnttab_open(&x->logger.base, 0);
    if (!x->xgt)
        x->xgt_errno = -pvabi__xen_fail(x, PVABI_LOG_DEBUG, NULL,
                                        "xengnttab_open: /dev/xen/gntdev (map and copy disabled)");
    x->xgs = xengntshr_open(&x->logger.base, 0);
    if (!x->xgs)
        x->xgs_errno = -pvabi__xen_fail(x, PVABI_LOG_DEBUG, NULL,
                                        "xengntshr_open: /dev/xen/gntalloc (share disabled)");
}

/* Only the hypercall op needs privcmd, and only root normally has it: a
 * domain without it still does everything else. */
static void open_xencall(struct pvabi__xen *x)
{
    x->xcall = xencall_open(&x->logger.base, 0);
    if (!x->xcall)
        x->xcall_errno = -pvabi__xen_fail(x, PVABI_LOG_DEBUG, NULL,
                                          "xencall_open: /dev/xen/privcmd (hypercalls disabled)");
}

static void xen_close(pvabi_ctx *ctx, void *plat)
{
    int keep PVABI__XEN_KEEP_ERRNO = errno;
    struct pvabi__xen *x = plat;

    (void)ctx;
    pvabi__xen_xc_close(x);
    if (x->xcall)
        xencall_close(x->xcall);
    /* Closing a handle also releases what it still holds: gntalloc and
     * gntdev drop their grants, the evtchn driver unbinds every port. */
    if (x->xgs)
        xengntshr_close(x->xgs);
    if (x->xgt)
        xengnttab_close(x->xgt);
    if (x->xce)
        xenevtchn_close(x->xce);
    pvabi__xen_ports_free(x);
    free(x);
}

static int xen_open(pvabi_ctx *ctx, const char *arg, void **plat, pvabi_domid *domid)
{
    int keep PVABI__XEN_KEEP_ERRNO = errno;
    struct pvabi__xen *x = calloc(1, sizeof(*x));
    int rc;

    (void)arg;
    if (!x)
        return -ENOMEM;
    x->ctx = ctx;
    x->fd = -1;
    x->logger.base.vmessage = logger_vmessage;
    x->logger.base.destroy = logger_destroy;
    x->logger.ctx = ctx;
    /* Failures while opening are explained by our own messages below. */
    x->logger.demote = 1;
    rc = open_evtchn(x);
    if (rc == 0) {
        open_grants(x);
        pvabi__xen_xc_open(x);
        open_xencall(x);
        rc = pvabi__xen_own_domid(x, &x->domid);
    }
    x->logger.demote = 0;
    if (rc < 0) {
        xen_close(ctx, x);
        return rc;
    }
    *plat = x;
    *domid = x->domid;
    return 0;
}

static int xen_fd(void *plat)
{
    return ((struct pvabi__xen *)plat)->fd;
}

/* xenstored (dom0) or the xenbus device (domU): libxenstore's default,
 * which knows which domain speaks. */
static int xen_store_where(pvabi_ctx *ctx, void *plat, struct pvabi__store_where *w)
{
    (void)ctx;
    (void)plat;
    w->path[0] = '\0';
    w->select_domid = 0;
    return 0;
}

const struct pvabi_platform_ops pvabi__platform_xen = {
    .name = "xen",
    .open = xen_open,
    .close = xen_close,
    .fd = xen_fd,
    .store_where = xen_store_where,
    .evtchn_alloc = pvabi__xen_evtchn_alloc,
    .evtchn_bind = pvabi__xen_evtchn_bind,
    .evtchn_unbind = pvabi__xen_evtchn_unbind,
    .evtchn_notify = pvabi__xen_evtchn_notify,
    .evtchn_pending = pvabi__xen_evtchn_pending,
    .evtchn_wait = pvabi__xen_evtchn_wait,
    .evtchn_unmask = pvabi__xen_evtchn_unmask,
    .evtchn_state = pvabi__xen_evtchn_state,
    .grant_share = pvabi__xen_grant_share,
    .grant_revoke = pvabi__xen_grant_revoke,
    .grant_notify = pvabi__xen_grant_notify,
    .grant_map = pvabi__xen_grant_map,
    .grant_unmap = pvabi__xen_grant_unmap,
    .map_notify = pvabi__xen_map_notify,
    .grant_copy = pvabi__xen_grant_copy,
    .hypercall = pvabi__xen_hypercall,
    /* Xen has no hypercall that lists a domain's grants. */
    .grant_list = NULL,
};
