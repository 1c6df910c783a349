/* SPDX-License-Identifier: MIT */
/*
 * The platform seam: the one table of operations through which everything
 * above src/platform/ reaches a hypervisor (model: QEMU's xen_backend_ops).
 * Two implementations: src/platform/xen/ (Debian's libxen*) and
 * src/platform/local/ (the pvabi-hv daemon).
 *
 * Conventions for every op: return 0 / a count, or a negative errno; never
 * touch errno; log every failure with pvabi__log() saying what and why.  The
 * core (src/context.c, src/evtchn/, src/grant/) validates caller arguments
 * (NULL pointers, counts, flags, port ownership) before calling an op, holds
 * ctx->lock around every op except evtchn_notify, and owns the public
 * objects; an op only deals with the hypervisor.  The one other exception is
 * evtchn_wait, which sleeps and so must not hold the lock; it takes the lock
 * itself for what it has to do under it.
 */
#ifndef PVABI_PLATFORM_H
#define PVABI_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

#include "pvabi-config.h"
#include <pvabi/pvabi.h>

/* One event as the platform saw it, for the core to count and report. */
struct pvabi__event {
    pvabi_port port;
    uint8_t spurious; /* woke without an event; the port was NOT masked */
    uint8_t closed;   /* the peer closed or died; the port is now CLOSED */
};

/* Where a context's xenstore is, for src/xenbus/store.c (platform op
 * store_where). */
struct pvabi__store_where {
    /* The store's unix socket, for libxenstore's XENSTORED_PATH; "" for
     * libxenstore's own default (xenstored's socket, /dev/xen/xenbus). */
    char path[108];
    /* 1: the store learns which domain speaks from a control command
     * ("pvabi-domid <domid>") sent right after opening (local). */
    int select_domid;
    /* 1: a PVABI_OPEN_TOOLSTACK context: the connection asks to speak as
     * the toolstack ("pvabi-toolstack"), instead of select_domid (local). */
    int toolstack;
};

/* One hypercall, for the platform op `hypercall`: Xen's calling convention
 * with its argument struct (src/hypercall/ builds it).  On Xen the arguments
 * are (cmd, arg[, count]) for multiplexed hypercalls and (arg) for sysctl
 * and domctl; @arg may be NULL (XENVER_version). */
struct pvabi__hypercall {
    uint32_t nr;    /* __HYPERVISOR_* */
    uint32_t cmd;   /* the sub-op; unused for sysctl/domctl */
    uint32_t count; /* grant_table_op's count; 0 otherwise */
    void *arg;      /* the argument struct, read and written back */
    uint32_t len;   /* its size */
    /* A buffer the struct points to through a 64-bit guest handle at byte
     * @sub_off of @arg (sysctl getdomaininfolist's buffer): out only.  The
     * platform puts its own address there; NULL/0 for none.  On return
     * @sub_len may have shrunk to the bytes known to be written (local);
     * a platform that cannot tell (xen) leaves it. */
    void *sub;
    uint32_t sub_len;
    uint32_t sub_off;
};

struct pvabi_platform_ops {
    const char *name; /* "xen" or "local" */

    /* Connects; sets *plat and *domid.  @arg: the text after "local:" (NULL
     * when absent); always NULL for xen. */
    int (*open)(pvabi_ctx *ctx, const char *arg, void **plat, pvabi_domid *domid);
    /* Disconnects and frees everything the platform holds, including the
     * handles of shares whose revoke returned -EBUSY. */
    void (*close)(pvabi_ctx *ctx, void *plat);
    /* The platform's pollable event fd; the core puts it in the epoll set
     * that pvabi_fd() returns. */
    int (*fd)(void *plat);
    /* Where the store is (see struct pvabi__store_where); -errno (logged)
     * if it cannot be said, e.g. -ENAMETOOLONG.  No lock needed: it only
     * reads what open set. */
    int (*store_where)(pvabi_ctx *ctx, void *plat, struct pvabi__store_where *w);

    /* ---- event channels -------------------------------------------- */
    int (*evtchn_alloc)(pvabi_ctx *ctx, void *plat, pvabi_domid remote, pvabi_port *port);
    int (*evtchn_bind)(pvabi_ctx *ctx, void *plat, pvabi_domid remote, pvabi_port remote_port,
                       pvabi_port *port);
    int (*evtchn_unbind)(pvabi_ctx *ctx, void *plat, pvabi_port port);
    /* Thread-safe against every op but unbind of the same port; no lock held.
     * -ENOTCONN when unbound or closed. */
    int (*evtchn_notify)(pvabi_ctx *ctx, void *plat, pvabi_port port);
    /* Collects up to @max events without blocking; each non-spurious event's
     * port is masked until evtchn_unmask (Xen's delivery model). */
    int (*evtchn_pending)(pvabi_ctx *ctx, void *plat, struct pvabi__event *ev, unsigned max);
    /* Called WITHOUT ctx->lock: sleeps up to @timeout_ms (>= 0) until events
     * may be pending.  Returns 1 (some may be), 0 (timed out), or -errno
     * (-EINTR: a signal; -ENOTCONN: the hypervisor is gone and nothing is
     * left to collect).  Events it had to take from the kernel to learn that
     * are kept for evtchn_pending, which the core calls (under the lock)
     * after every non-negative return, so they are counted and masked by the
     * one path that pending() takes. */
    int (*evtchn_wait)(pvabi_ctx *ctx, void *plat, int timeout_ms);
    int (*evtchn_unmask)(pvabi_ctx *ctx, void *plat, pvabi_port port);
    /* A PVABI_EVTCHN_* state, or -EBADF for a port the platform does not know. */
    int (*evtchn_state)(pvabi_ctx *ctx, void *plat, pvabi_port port);

    /* ---- grants, sharing side ------------------------------------------ */
    /* Allocates @count zeroed pages at *addr granted to @domid, refs[i] for
     * page i; *handle is the platform's record of the share. */
    int (*grant_share)(pvabi_ctx *ctx, void *plat, pvabi_domid domid, unsigned count, int readonly,
                       pvabi_gref *refs, void **addr, void **handle);
    /* -EBUSY leaves the share intact; any other result has freed it and
     * unmapped the pages. */
    int (*grant_revoke)(pvabi_ctx *ctx, void *plat, void *handle);
    int (*grant_notify)(pvabi_ctx *ctx, void *plat, void *handle, unsigned page, unsigned offset,
                        pvabi_port port);

    /* ---- grants, mapping side ------------------------------------------ */
    /* All or nothing; @status (never NULL here) gets one entry per ref. */
    int (*grant_map)(pvabi_ctx *ctx, void *plat, pvabi_domid domid, const pvabi_gref *refs,
                     unsigned count, int readonly, int *status, void **addr, void **handle);
    /* Always unmaps and frees the handle, whatever it returns. */
    int (*grant_unmap)(pvabi_ctx *ctx, void *plat, void *handle);
    int (*map_notify)(pvabi_ctx *ctx, void *plat, void *handle, unsigned page, unsigned offset,
                      pvabi_port port);
    /* Fills every segment's status; returns how many failed. */
    int (*grant_copy)(pvabi_ctx *ctx, void *plat, struct pvabi_grant_copy_seg *segs,
                      unsigned count);

    /* ---- hypercalls and introspection ----------------------------------- */
    /* Issues @hc: *result gets the hypercall's non-negative return value;
     * returns 0 or the hypercall's -errno (logged at debug: the caller
     * decides what a refusal means), or -errno if it could not be issued
     * (logged as an error). */
    int (*hypercall)(pvabi_ctx *ctx, void *plat, struct pvabi__hypercall *hc, int64_t *result);
    /* As pvabi_grant_list(), at most PVABI__GRANT_LIST_CHUNK entries per
     * call; NULL where the platform cannot list grants (xen). */
    int (*grant_list)(pvabi_ctx *ctx, void *plat, pvabi_domid granter, pvabi_gref first,
                      struct pvabi_grant_entry *out, unsigned max);
};

/* Entries one grant_list op returns at most (one daemon reply). */
#define PVABI__GRANT_LIST_CHUNK 256u

extern const struct pvabi_platform_ops pvabi__platform_local;
#if PVABI_HAVE_XEN
extern const struct pvabi_platform_ops pvabi__platform_xen;
#endif

#endif /* PVABI_PLATFORM_H */
