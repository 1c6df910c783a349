/* SPDX-License-Identifier: MIT */
/*
 * pvabi/pvabi.h - the umbrella header: includes every pvabi layer.
 *
 * pvabi is a library for the two halves of a paravirtual split driver on the
 * Xen PV ABI.  Layers (one header each): ring.h (shared I/O rings),
 * flexring.h (byte rings), barrier.h (memory ordering), evtchn.h (event
 * channels), grant.h (grant references), xenbus.h (the store and the
 * frontend/backend handshake), hypercall.h (typed hypercalls: version,
 * host, domains), stream.h (a byte stream between two domains,
 * libxenvchan-compatible).  This header declares the context:
 * one connection to a hypervisor, real Xen or the embedded one.
 *
 * Error convention everywhere: 0 (or a non-negative count) on success, a
 * negative errno on failure; the global errno is left untouched.  Every
 * failure is explained through the log (see pvabi_log_set()).
 */
#ifndef PVABI_PVABI_H
#define PVABI_PVABI_H

#include <stdint.h>

#include <pvabi/barrier.h>
#include <pvabi/evtchn.h>
#include <pvabi/flexring.h>
#include <pvabi/grant.h>
#include <pvabi/hypercall.h>
#include <pvabi/ring.h>
#include <pvabi/stream.h>
#include <pvabi/types.h>
#include <pvabi/xenbus.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * pvabi_version() - the library's version string ("MAJOR.MINOR.PATCH").
 *
 * Returns a static string.  Never fails; does not block; thread-safe;
 * unaffected by fork.
 */
const char *pvabi_version(void);

/**
 * pvabi_open() - connect to a hypervisor.
 * @out: receives the context; set to NULL on failure.
 * @spec: "xen"; "local" (the embedded hypervisor on the default socket);
 *   "local:PATH" (on the socket PATH); or NULL: the environment variable
 *   PVABI_PLATFORM if set, else "xen" when /dev/xen/privcmd opens, else
 *   "local".
 *
 * "local" connects to a pvabi-hv daemon at PATH, else $PVABI_LOCAL_SOCKET,
 * else $XDG_RUNTIME_DIR/pvabi/hv.sock, else /tmp/pvabi-UID/hv.sock.  When no
 * daemon answers there, one is started (pvabi-hv found through $PVABI_HV,
 * else the installed one) unless PVABI_LOCAL_AUTOSTART=0.  The process
 * becomes a new unprivileged domain, or the domain $PVABI_LOCAL_DOMID asks
 * for (0: the privileged domain, if the daemon allows this user).
 *
 * Returns 0; -EINVAL (unknown spec); -ENOENT (the platform is not here: no
 * Xen, no daemon and none could be started; the log names what is missing);
 * -ENOTSUP (the xen platform was not built in); -EACCES (xen:
 * /dev/xen/evtchn not accessible); -EPERM / -EADDRINUSE (the
 * requested local domid is refused / taken); -ETIMEDOUT (the daemon did not
 * answer within 10 s); -ENOMEM; other -errno from the platform.
 * Blocks: up to 10 s for a daemon to answer or start.  Thread-safe.
 * Fork: a context belongs to the process that opened it; a child must open
 * its own (it is a different domain on the local platform).
 */
int pvabi_open(pvabi_ctx **out, const char *spec);

/** pvabi_open_flags() flag: open as a management tool, not as a domain. */
#define PVABI_OPEN_TOOLSTACK 1u

/**
 * pvabi_open_flags() - pvabi_open() with @flags (0 or PVABI_OPEN_TOOLSTACK).
 *
 * PVABI_OPEN_TOOLSTACK, for tools such as the `pvabi` CLI that inspect and
 * manage domains (as xl does from dom0):
 * - local: the context is a privileged connection that is not a domain: it
 *   is in no domain list, may ask any hypercall wrapper about any domain and
 *   speaks to the store as the toolstack (privileged), but owns no ports and
 *   no grants (those calls return -EPERM).  The daemon allows it only to
 *   the uids it lets claim the privileged domain (-EPERM otherwise).
 *   pvabi_own_domid() returns the privileged domain's id (usually 0), the
 *   domain a toolstack acts for.
 * - xen: no effect; a toolstack runs in a privileged domain (dom0) and has
 *   that domain's rights.
 * Returns as pvabi_open(), and -EINVAL for an unknown flag.
 */
int pvabi_open_flags(pvabi_ctx **out, const char *spec, unsigned flags);

/**
 * pvabi_close() - disconnect: unbinds every port, unmaps every mapping and
 * revokes every share of this context (on the local platform the daemon does
 * what the process could not, as on its death).  NULL is allowed.
 * Not thread-safe against other calls on the same context.
 */
void pvabi_close(pvabi_ctx *ctx);

/**
 * pvabi_own_domid() - this context's own domain id (0..32751).  Never fails.
 */
pvabi_domid pvabi_own_domid(const pvabi_ctx *ctx);

/**
 * pvabi_platform() - "xen" or "local".  Never fails; a static string.
 */
const char *pvabi_platform(const pvabi_ctx *ctx);

/**
 * pvabi_fd() - the context's one pollable file descriptor, for the caller's
 * event loop (poll, epoll, select...).  It becomes readable (POLLIN) when
 * - an event channel of this context may have an event pending: call
 *   pvabi_evtchn_pending();
 * - a store watch event is queued (once the store is in use, see
 *   pvabi/xenbus.h): call pvabi_store_process().
 * It is an epoll fd the context owns, holding the platform's event fd from
 * the start and the store's watch fd from the first store call.  Spurious
 * wake-ups are possible and harmless: both calls then return 0; a caller
 * that does not know which one woke it calls both.  The fd stays the same
 * for the context's life; do not read or close it.
 * Never fails; thread-safe.
 */
int pvabi_fd(const pvabi_ctx *ctx);

/** Log levels, as syslog's. */
enum {
    PVABI_LOG_ERR = 3,
    PVABI_LOG_WARN = 4,
    PVABI_LOG_INFO = 6,
    PVABI_LOG_DEBUG = 7,
};

/** A log callback: @level is a PVABI_LOG_*, @msg one line without newline. */
typedef void pvabi_log_fn(void *opaque, int level, const char *msg);

/**
 * pvabi_log_set() - where a context's messages go.
 * @ctx: the context, or NULL for the process default (used by pvabi_open()
 *   before a context exists and by contexts without their own callback).
 * @fn: the callback, or NULL for the default: silence, unless the
 *   environment has PVABI_LOG=err|warn|info|debug, which prints messages of
 *   that level and more severe to stderr.
 * @opaque: passed to @fn.
 * @level: the least severe level passed to @fn.
 *
 * Thread-safe for ctx == NULL; for a context, call it before using the
 * context from several threads.  The callback may be called from any thread
 * that calls into pvabi, never after pvabi_close() returns.
 */
void pvabi_log_set(pvabi_ctx *ctx, pvabi_log_fn *fn, void *opaque, int level);

#ifdef __cplusplus
}
#endif

#endif /* PVABI_PVABI_H */
