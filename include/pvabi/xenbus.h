/* SPDX-License-Identifier: MIT */
/*
 * pvabi/xenbus.h - the store (xenstore) and the xenbus handshake that
 * connects a frontend to a backend.
 *
 * Three parts, each usable without the next:
 *
 * 1. Store access (pvabi_store_*): read, write, list, permissions,
 *    transactions and watches on the context's xenstore: Xen's xenstored on
 *    the xen platform, the pvabi-hv daemon's embedded store on the local
 *    platform.  Both are reached through Debian's libxenstore, so the
 *    semantics (paths, permissions, errors) are Xen's: see Xen's
 *    docs/misc/xenstore.txt.  Paths are absolute ("/local/domain/3/name") or
 *    relative to the calling domain's home (/local/domain/<own domid>).
 *
 * 2. The XenbusState machine: the states each end publishes in its `state`
 *    node (same numbers as xen/io/xenbus.h) and the transitions below.
 *
 * 3. Device helpers: the toolstack step that creates a device's two
 *    directories (pvabi_xenbus_device_add, what `xl block-attach` does), and
 *    one handle per end (pvabi_xenbus_front_*, pvabi_xenbus_back_*) that
 *    runs the handshake for a ring of 1..16 pages (`ring-ref` or
 *    `ring-ref0..N-1` + `ring-page-order`), an `event-channel` and a
 *    `protocol`, including the close handshake and reconnection when either
 *    side restarts.  See docs/xenbus.md for a walk-through.
 *
 * Paths of a device of type TYPE (e.g. "vbd"), id DEVID, between frontend
 * domain FE and backend domain BE:
 *
 *   /local/domain/FE/device/TYPE/DEVID          owner FE, BE may read
 *       backend     = "/local/domain/BE/backend/TYPE/FE/DEVID"
 *       backend-id  = "BE"
 *       state       = XenbusState of the frontend
 *       ring-ref | ring-page-order + ring-ref0..N-1, event-channel, protocol
 *   /local/domain/BE/backend/TYPE/FE/DEVID      owner BE, FE may read
 *       frontend    = "/local/domain/FE/device/TYPE/DEVID"
 *       frontend-id = "FE"
 *       online      = "1"
 *       state       = XenbusState of the backend
 *       max-ring-page-order, feature-*, and device parameters
 *
 * Events and the event loop: the library does not own the loop.  Watch
 * events arrive on the context's pollable fd (pvabi_fd(), which also covers
 * event channels); when it is readable, call pvabi_store_process() (watch
 * callbacks, and through them the handshake of every xenbus handle of the
 * context) and pvabi_evtchn_pending() (ports).  Without a loop, the *_wait()
 * functions sleep until something happens, always with a timeout.
 *
 * Errors: 0 (or a count) on success, a negative errno on failure; the
 * global errno is left untouched.  Store errors are Xen's (libxenstore maps
 * the store's "EACCES", "ENOENT", ... to errno): -ENOENT (no such node, or
 * its parent is missing), -EACCES (the permissions refuse it), -EEXIST,
 * -EINVAL (bad path or request), -E2BIG (value or path too long), -ENOSPC
 * (a quota: nodes, watches, transactions or value size), -EAGAIN (a
 * transaction conflicted), -ENOMEM; plus -ENOTCONN (the store connection is
 * gone: on the local platform the daemon died; open a new context) and, at
 * the first store call of a context, the errors of opening the store (see
 * "Opening the store").  Every failure is logged (routine ones such as
 * -ENOENT on a read at debug level).
 *
 * Opening the store: lazily, by the first pvabi_store_* or pvabi_xenbus_*
 * call on a context.  xen: libxenstore's xs_open(0) (xenstored's socket in
 * dom0, /dev/xen/xenbus in a domU).  local: xs_open with the environment
 * variable XENSTORED_PATH set, for the duration of the call, to the
 * daemon's store socket ("<hv socket>.xenstore"), then the control command
 * "pvabi-domid <own domid>" so that the daemon knows which domain speaks
 * (needed when one process holds several contexts).  That first call may
 * fail with -ENOENT (no store: the daemon has none, or xenstored is not
 * running; logged), -EACCES (the store refuses this domain), -ENAMETOOLONG
 * (the store socket's path is too long for a unix socket address).
 * Caveat (local platform): XENSTORED_PATH is set with setenv() and restored
 * under a process-wide lock, so two contexts never race each other, but a
 * thread that calls getenv()/setenv() outside pvabi at that moment may see
 * the temporary value (POSIX makes setenv unsafe against other threads).
 * Open the store early (any pvabi_store_* call) in a program that has such
 * threads.
 *
 * Thread-safety: the pvabi_store_* calls may be made from several threads
 * on one context (libxenstore serialises requests), except that
 * pvabi_store_process() and pvabi_store_wait() run on one thread at a time
 * per context, and pvabi_store_unwatch() of a watch must not race a
 * dispatch of that watch on another thread (from inside its own or any
 * other callback it is fine).  A xenbus handle is used by one thread at a
 * time, and its callbacks run on the thread that dispatches the context's
 * watches.  Blocking: every call without "wait" in its name makes a bounded
 * number of round trips to the store and does not sleep otherwise;
 * libxenstore has no timeout of its own, so a store that stops answering
 * holds the call (the local daemon answers every request at once; its
 * death ends the call with -ENOTCONN).  Waits take a timeout in
 * milliseconds (>= 0; no "forever": call again).  libxenstore runs a reader
 * thread per context once a watch exists, and sets SIGPIPE to SIG_IGN for
 * the duration of each request (a process-wide sigaction).
 * Fork: the store connection, the watches and the handles belong to the
 * process that opened the context (libxenstore's handle works only in the
 * parent); a child opens its own context.
 */
#ifndef PVABI_XENBUS_H
#define PVABI_XENBUS_H

#include <stddef.h>
#include <stdint.h>

#include <pvabi/grant.h>
#include <pvabi/types.h>

#if defined(__GNUC__) || defined(__clang__)
#define PVABI__PRINTF(f, a) __attribute__((format(printf, f, a)))
#define PVABI__SCANF(f, a)  __attribute__((format(scanf, f, a)))
#else
#define PVABI__PRINTF(f, a)
#define PVABI__SCANF(f, a)
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================
 * 1. Store access
 * ==================================================================== */

/** A store transaction id, as Xen's xs_transaction_t. */
typedef uint32_t pvabi_store_txn;

/** No transaction: the request stands alone (Xen's XBT_NULL). */
#define PVABI_STORE_TXN_NONE 0u

/**
 * pvabi_store_read() - read a node's value.
 * @ctx: the context.
 * @txn: a transaction, or PVABI_STORE_TXN_NONE.
 * @path: the node.
 * @value: receives the value, malloc'd and NUL-terminated (a value may
 *   contain NUL bytes itself: the return value is its length); free() it.
 *   NULL on failure.
 * Returns the value's length in bytes (0..4096); -ENOENT; -EACCES; -EINVAL
 * (NULL argument, bad path); -ENOTCONN; the errors of opening the store.
 */
int pvabi_store_read(pvabi_ctx *ctx, pvabi_store_txn txn, const char *path, char **value);

/**
 * pvabi_store_read_u32() - read a node holding a decimal number.
 * @value: receives the number.
 * The value must be decimal digits only (no sign, no spaces, at most 10
 * digits): what a peer writes is checked, never trusted.
 * Returns 0; -EINVAL (not a decimal number; logged with the value), -ERANGE
 * (above UINT32_MAX); the errors of pvabi_store_read().
 */
int pvabi_store_read_u32(pvabi_ctx *ctx, pvabi_store_txn txn, const char *path, uint32_t *value);

/**
 * pvabi_store_scanf() - read a node and parse it with sscanf(@fmt, ...).
 * Returns the number of items converted (> 0); -ERANGE (the value does not
 * match @fmt: nothing converted); the errors of pvabi_store_read().
 * sscanf's numeric conversions have undefined behaviour on overflow: for a
 * value a peer wrote, prefer pvabi_store_read_u32().
 */
int pvabi_store_scanf(pvabi_ctx *ctx, pvabi_store_txn txn, const char *path, const char *fmt, ...)
    PVABI__SCANF(4, 5);

/**
 * pvabi_store_write() - create or overwrite a node with the string @value
 * (without its NUL).  Missing parent directories are created (with the
 * parent's permissions, owned by the writer: Xen's rule).
 * Returns 0; -EACCES; -E2BIG (value longer than the store allows: 4096
 * bytes on the wire, less under the local store's value-size quota);
 * -ENOSPC (node quota); -EINVAL; -ENOTCONN; the errors of opening the store.
 */
int pvabi_store_write(pvabi_ctx *ctx, pvabi_store_txn txn, const char *path, const char *value);

/**
 * pvabi_store_printf() - pvabi_store_write() of a printf-formatted value.
 * Returns as pvabi_store_write(); -E2BIG also when the formatted value is
 * longer than 4096 bytes; -ENOMEM.
 */
int pvabi_store_printf(pvabi_ctx *ctx, pvabi_store_txn txn, const char *path, const char *fmt, ...)
    PVABI__PRINTF(4, 5);

/**
 * pvabi_store_mkdir() - create a node with an empty value (and its missing
 * parents).  An existing node is left as it is (0).
 * Returns 0; -EACCES; -ENOSPC; -EINVAL; -ENOTCONN.
 */
int pvabi_store_mkdir(pvabi_ctx *ctx, pvabi_store_txn txn, const char *path);

/**
 * pvabi_store_rm() - remove a node and everything below it.  Removing a
 * node that does not exist succeeds if its parent exists (Xen's rule),
 * else -ENOENT.
 * Returns 0; -ENOENT; -EACCES; -EINVAL (e.g. "/"); -ENOTCONN.
 */
int pvabi_store_rm(pvabi_ctx *ctx, pvabi_store_txn txn, const char *path);

/**
 * pvabi_store_list() - the names of a node's children.
 * @names: receives an array of the names (not full paths), in the store's
 *   order, allocated as ONE block with the strings: free(*names) frees all.
 *   NULL when there are none, or on failure.
 * Returns the number of children (0..); -ENOENT; -EACCES; -EINVAL;
 * -ENOTCONN; -ENOMEM.
 */
int pvabi_store_list(pvabi_ctx *ctx, pvabi_store_txn txn, const char *path, char ***names);

/**
 * pvabi_store_get_perms() - a node's permissions, in Xen's text form.
 * @perms: receives a malloc'd string of space-separated entries, e.g.
 *   "n5 r0": the first entry is the owner (who may always read and write)
 *   and what every domain not listed may do; each later entry what one
 *   domain may do.  Letters: n none, r read, w write, b both.  free() it.
 * Returns the number of entries (>= 1); -ENOENT; -EACCES; -EINVAL;
 * -ENOTCONN; -ENOMEM.
 */
int pvabi_store_get_perms(pvabi_ctx *ctx, pvabi_store_txn txn, const char *path, char **perms);

/**
 * pvabi_store_set_perms() - replace a node's permissions.
 * @perms: entries as pvabi_store_get_perms() gives them, separated by
 *   spaces, e.g. "n5 r0" (owner 5, nobody else but domain 0 may read);
 *   1..64 entries, each one of the letters n, r, w, b and a domain id
 *   0..65535.
 * Only the node's owner (or a privileged domain) may do this; an
 * unprivileged domain may not give a node away (Xen 4.17).
 * Returns 0; -EINVAL (@perms malformed: logged; or bad path); -EACCES;
 * -ENOENT; -ENOTCONN.
 */
int pvabi_store_set_perms(pvabi_ctx *ctx, pvabi_store_txn txn, const char *path, const char *perms);

/**
 * pvabi_store_txn_start() - start a transaction.
 * @txn: receives its id.
 * Until pvabi_store_txn_end(), requests made with @txn see the store as it
 * was at the start plus their own changes, and their changes are invisible
 * to others.  Watches do not fire for them until the commit.
 * Returns 0; -ENOSPC (transaction quota: 10 open transactions per
 * unprivileged domain by default); -EINVAL; -ENOTCONN.
 */
int pvabi_store_txn_start(pvabi_ctx *ctx, pvabi_store_txn *txn);

/**
 * pvabi_store_txn_end() - commit (@abort 0) or abandon (@abort 1) @txn.
 * Returns 0; -EAGAIN (commit only: another change conflicted; nothing of
 * @txn happened: start over, ideally with pvabi_store_txn_run()); -ENOENT /
 * -EINVAL (no such transaction); -ENOTCONN.  The id is invalid afterwards
 * whatever the result.
 */
int pvabi_store_txn_end(pvabi_ctx *ctx, pvabi_store_txn txn, int abort);

/**
 * pvabi_store_txn_fn - the body of a transaction, for pvabi_store_txn_run().
 * Makes its requests with @txn.  Returns >= 0 to commit (the value is what
 * pvabi_store_txn_run() returns), -EAGAIN to abandon and run again, or
 * another negative errno to abandon and stop.  It may run several times,
 * so it must not have effects outside the store that cannot be repeated.
 */
typedef int pvabi_store_txn_fn(pvabi_ctx *ctx, pvabi_store_txn txn, void *opaque);

/**
 * pvabi_store_txn_run() - run @fn in a transaction, retrying on conflict.
 * @fn: the body; @opaque is passed to it.
 * @max_tries: how many times to run @fn at most (>= 1); each -EAGAIN (from
 *   the commit or from @fn) uses one.
 * Returns what @fn returned (>= 0) once the commit succeeded; @fn's error
 * (the transaction abandoned); -EAGAIN after @max_tries conflicts (logged);
 * the errors of pvabi_store_txn_start() / _end().
 */
int pvabi_store_txn_run(pvabi_ctx *ctx, pvabi_store_txn_fn *fn, void *opaque, unsigned max_tries);

/** A registered watch (opaque). */
typedef struct pvabi_watch pvabi_watch;

/**
 * pvabi_watch_fn - a watch callback.
 * @path: the node that changed: the watched path, a node below it, or the
 *   special path itself ("@releaseDomain", "@introduceDomain").  Valid only
 *   during the call.
 * Runs inside pvabi_store_process() / pvabi_store_wait() (and the xenbus
 * waits), on the calling thread, without pvabi's locks held: it may call
 * any pvabi function, pvabi_store_unwatch() of any watch included.
 */
typedef void pvabi_watch_fn(pvabi_ctx *ctx, const char *path, void *opaque);

/**
 * pvabi_store_watch() - watch @path and everything below it.
 * @path: a node (it need not exist) or "@releaseDomain" (a domain died) or
 *   "@introduceDomain" (a domain appeared).
 * @fn, @opaque: the callback and its argument.
 * @out: receives the watch.
 * As in Xen, the watch fires once when registered, then after each change
 * of the node or a node below it (write, mkdir, rm, set_perms; a committed
 * transaction's changes), for nodes the caller may read.  Events carry
 * only the path: read the node to learn its value, which may have changed
 * again since (several changes may be seen as one value).
 * Adds the store's event fd to pvabi_fd() if not done yet.
 * Returns 0; -ENOSPC (watch quota: 128 per unprivileged domain by
 * default); -EINVAL (NULL argument, bad path); -ENOMEM; -ENOTCONN; the
 * errors of opening the store.
 */
int pvabi_store_watch(pvabi_ctx *ctx, const char *path, pvabi_watch_fn *fn, void *opaque,
                      pvabi_watch **out);

/**
 * pvabi_store_unwatch() - remove and free a watch (NULL is allowed).  Its
 * events still queued are dropped; its callback is not called after this
 * returns.  Returns 0; -ENOTCONN (the store is gone: freed all the same).
 */
int pvabi_store_unwatch(pvabi_watch *w);

/**
 * pvabi_store_process() - call the callbacks of every watch event queued
 * for this context, without blocking.
 * Call it when pvabi_fd() is readable (it is readable while watch events
 * are queued; spurious wake-ups are harmless: 0 is returned).  Events
 * arriving while it runs are processed too.
 * Returns the number of events dispatched (0..); -ENOTCONN (the store
 * connection is gone); 0 when the store was never used.
 */
int pvabi_store_process(pvabi_ctx *ctx);

/**
 * pvabi_store_wait() - sleep until a watch event is queued (or @timeout_ms
 * passes), then pvabi_store_process().
 * Returns the number dispatched (> 0), 0 on timeout; -EINVAL (@timeout_ms
 * < 0); -EINTR (a signal); -ENOTCONN; the errors of opening the store.
 * Blocking: up to @timeout_ms.  Sleeps on the store's fd only (not on
 * event channels).
 */
int pvabi_store_wait(pvabi_ctx *ctx, int timeout_ms);

/* ======================================================================
 * 2. The XenbusState machine
 * ==================================================================== */

/*
 * The states, with Xen's numbers (xen/io/xenbus.h; a static assertion in
 * the library checks them).  Each end writes its own in its `state` node
 * as a decimal string; a node that is missing or holds anything else reads
 * as PVABI_XENBUS_STATE_UNKNOWN.
 *
 * Normal connection (blkif.h's sequence; the toolstack step writes 1 to
 * both state nodes):
 *
 *      frontend                                 backend
 *      Initialising (1)                         Initialising (1)
 *                                                  | publish features
 *                                                  v (max-ring-page-order, feature-*)
 *                                               InitWait (2)
 *        | read features, share the ring,
 *        | publish ring-ref(s), event-channel,
 *        v protocol: ONE transaction with the state
 *      Initialised (3)
 *                                                  | read and check ring refs,
 *                                                  | map them, bind the channel
 *                                                  v
 *                                               Connected (4)
 *      Connected (4) <---------------------------'
 *
 * Legal transitions of one end (anything else a peer shows is logged and
 * ignored; a handle never makes one itself):
 *
 *   frontend:  1 -> 3 -> 4          connect
 *              3|4 -> 5 -> 6        close handshake (either end starts it)
 *              1|3|4 -> 5           a failure (then the close handshake)
 *              1 -> 6, 3|4 -> 6     close with nothing to hand over; the
 *                                   backend closed without Closing or died
 *              any -> 1             a (re)started frontend resets its node;
 *                                   a backend that started from scratch
 *   backend:   any -> 2             advertise (start; a frontend (re)appears)
 *              2 -> 4, 4 -> 4       attached; a restarted backend re-attached
 *                                   (4 rewritten: the frontend's signal)
 *              2|4 -> 5 -> 6        close handshake, or a failure
 *              2|4 -> 6             frontend gone (died, device removed) or
 *                                   closed without Closing
 *   Initialised (3) by a backend and InitWait (2) skipped by a frontend are
 *   tolerated as blkif.h allows.  Reconfiguring/Reconfigured (7, 8) are not
 *   used by the helpers: a peer showing them is logged and ignored.
 *
 * Close handshake (Closing, wait for the peer's Closing or Closed, Closed):
 *
 *      initiator             responder
 *      Connected             Connected
 *      Closing (5) --------> sees 5: stops I/O, Closing (5)
 *      sees 5: Closed (6) -> sees 6: detaches (backend: unmaps the
 *                                 ring, unbinds), Closed (6)
 *      sees 6: done          done
 *   When the backend initiates, it detaches when it sees the frontend's
 *   Closing and the frontend reports PVABI_XENBUS_EV_CLOSED on the
 *   backend's Closed; either way the frontend learns CLOSED only once the
 *   backend has unmapped the ring, so it may then revoke it.  A peer that
 *   jumps straight to Closed (or dies) ends the handshake at once.
 *
 * Reconnection:
 * - Frontend restarts (a new process; the toolstack step re-adds the
 *   device, maybe with the same domid): the backend sees the frontend's
 *   state node vanish (or read 1 again) or its domain released, detaches
 *   (unmaps, unbinds), goes Closed, and when the frontend's state is 1 again
 *   returns to InitWait and serves the new frontend: the backend process
 *   need not restart.
 * - Backend restarts (a new process claiming the same domid: the
 *   privileged domain's store entries survive on the local platform, and
 *   dom0's on Xen): pvabi_xenbus_back_start() finds its own state Connected
 *   and the frontend's Connected, maps the same ring refs, binds the same
 *   frontend port again and rewrites Connected without re-initialising
 *   anything (pvabi_xenbus_back_reattached() says so).  The frontend keeps
 *   its ring and port meanwhile; it reports PVABI_XENBUS_EV_PEER_LOST if it
 *   saw the death and PVABI_XENBUS_EV_CONNECTED when the backend is back
 *   (its rewrite of Connected, with our port connected again).
 * - How a death is seen: the peer's state node vanishing (an unprivileged
 *   domain's home goes with it), or the port bound to the peer reading
 *   CLOSED (pvabi_evtchn_state()).  A handle looks at its port at each store
 *   event it gets (@releaseDomain included, which Xen 4.17 delivers to the
 *   privileged domain only) and, while one of its waits sleeps, every 100 ms.
 *   On Xen a domU cannot read port states: a frontend there learns of a
 *   backend process's death only when a successor re-attaches.
 */
enum {
    PVABI_XENBUS_STATE_UNKNOWN = 0,
    PVABI_XENBUS_STATE_INITIALISING = 1,
    PVABI_XENBUS_STATE_INITWAIT = 2,
    PVABI_XENBUS_STATE_INITIALISED = 3,
    PVABI_XENBUS_STATE_CONNECTED = 4,
    PVABI_XENBUS_STATE_CLOSING = 5,
    PVABI_XENBUS_STATE_CLOSED = 6,
    PVABI_XENBUS_STATE_RECONFIGURING = 7,
    PVABI_XENBUS_STATE_RECONFIGURED = 8,
};

/**
 * pvabi_xenbus_state_name() - "Initialising", "InitWait", ... for a state,
 * "Unknown" for anything else.  A static string; never fails.
 */
const char *pvabi_xenbus_state_name(int state);

/*
 * What a xenbus handle reports to its callback, and what its wait
 * functions wait for.
 */
enum {
    /* frontend: the backend is in InitWait (or Initialised): its features
     * can be read; connect now. */
    PVABI_XENBUS_EV_PEER_READY = 1,
    /* Both ends are Connected.  backend: the ring is mapped and the port
     * bound (pvabi_xenbus_back_ring(), _port(); _reattached()). */
    PVABI_XENBUS_EV_CONNECTED = 2,
    /* The peer died or its device node vanished, without a close
     * handshake.  backend: already detached (ring unmapped, port
     * unbound: stop using them) and Closed; it serves the frontend again
     * when it comes back.  frontend: the ring and port are kept, since a
     * restarted backend may re-attach (CONNECTED then follows). */
    PVABI_XENBUS_EV_PEER_LOST = 3,
    /* The peer started the close handshake: stop issuing (frontend) or
     * taking (backend) requests; the handshake goes on by itself. */
    PVABI_XENBUS_EV_CLOSING = 4,
    /* The close handshake is over.  backend: detached.  frontend: the
     * backend no longer maps the ring: revoke it and unbind the port. */
    PVABI_XENBUS_EV_CLOSED = 5,
    /* The handshake failed (backend: the frontend's ring-ref, order,
     * event-channel or protocol were unusable, or the map/bind failed; a
     * store write failed): the callback's @err says why; the handle
     * switches to Closing, and the close handshake follows. */
    PVABI_XENBUS_EV_ERROR = 6,
};

/** The largest ring order the helpers handle: 16 pages (Linux's limit). */
#define PVABI_XENBUS_RING_ORDER_MAX 4u

/** The `protocol` a frontend publishes by default: this build's ABI. */
#if defined(__x86_64__)
#define PVABI_XENBUS_PROTOCOL_NATIVE "x86_64-abi"
#elif defined(__i386__)
#define PVABI_XENBUS_PROTOCOL_NATIVE "x86_32-abi"
#elif defined(__arm__) || defined(__aarch64__)
#define PVABI_XENBUS_PROTOCOL_NATIVE "arm-abi"
#else
#define PVABI_XENBUS_PROTOCOL_NATIVE ""
#endif

/* ======================================================================
 * 3. Device helpers
 * ==================================================================== */

/**
 * pvabi_xenbus_device_add() - the toolstack step: create a device's
 * frontend and backend directories, as `xl block-attach` does.
 * @ctx: a privileged context (dom0 on Xen; the daemon's privileged domain
 *   or a toolstack connection on the local platform).
 * @type: the device type, e.g. "vbd", "vif", "console" (letters, digits,
 *   '-' and '_' only).
 * @frontend, @backend: the two domains.
 * @devid: the device id (e.g. 51712 for xvda).
 * @backend_nodes: NULL, or extra backend nodes as a NULL-terminated list of
 *   key, value pairs, e.g. { "params", "/srv/disk.img", "mode", "w", NULL }.
 * @frontend_nodes: likewise for the frontend (e.g. "virtual-device").
 *
 * In ONE transaction (retried on conflict): removes both directories if
 * present, then writes /local/domain/FE/device/TYPE/DEVID with perms
 * "nFE rBE" (owned by the frontend, the backend may read) holding backend,
 * backend-id, state = 1 and @frontend_nodes, and
 * /local/domain/BE/backend/TYPE/FE/DEVID with perms "nBE rFE" holding
 * frontend, frontend-id, online = 1, state = 1 and @backend_nodes.
 * Running it again re-adds the device from scratch (what a restarted
 * frontend needs).
 * Returns 0; -EINVAL (bad @type, odd-length node list, a key with '/');
 * -EACCES (@ctx not privileged); -EAGAIN (conflicts persisted); the store
 * errors.
 */
int pvabi_xenbus_device_add(pvabi_ctx *ctx, const char *type, pvabi_domid frontend,
                            pvabi_domid backend, unsigned devid, const char *const *backend_nodes,
                            const char *const *frontend_nodes);

/**
 * pvabi_xenbus_device_remove() - remove both directories of a device, in
 * one transaction.  Forceful: the ends see their peer's node vanish
 * (PVABI_XENBUS_EV_PEER_LOST); for a clean unplug run the close handshake
 * first.  Removing a device that is not there succeeds.
 * Returns 0; -EINVAL; -EACCES; the store errors.
 */
int pvabi_xenbus_device_remove(pvabi_ctx *ctx, const char *type, pvabi_domid frontend,
                               pvabi_domid backend, unsigned devid);

/* ---- frontend ---------------------------------------------------------- */

/** The frontend end of one device (opaque). */
typedef struct pvabi_xenbus_front pvabi_xenbus_front;

/**
 * pvabi_xenbus_front_fn - a frontend's event callback.
 * @event: a PVABI_XENBUS_EV_*.
 * @err: 0, or for PVABI_XENBUS_EV_ERROR the negative errno.
 * Runs from pvabi_xenbus_front_start(), _connect(), _disconnect(), _wait()
 * and from the context's pvabi_store_process() / pvabi_store_wait(), on
 * that thread.  It may call any function on @f (connect from PEER_READY,
 * say) except pvabi_xenbus_front_close().
 */
typedef void pvabi_xenbus_front_fn(pvabi_xenbus_front *f, int event, int err, void *opaque);

/**
 * pvabi_xenbus_front_open() - open the frontend end of device @type/@devid
 * of this domain: reads /local/domain/<own>/device/TYPE/DEVID/backend and
 * backend-id and checks them.  Changes nothing in the store, registers no
 * watch; call pvabi_xenbus_front_start() next.
 * @fn: NULL, or the event callback (with @opaque).
 * @out: receives the handle.
 * Returns 0; -ENOENT (no such device: run the toolstack step); -EPROTO
 * (backend or backend-id missing or malformed: logged); -EINVAL (bad
 * @type, NULL @out); -ENOMEM; the store errors.
 */
int pvabi_xenbus_front_open(pvabi_ctx *ctx, const char *type, unsigned devid,
                            pvabi_xenbus_front_fn *fn, void *opaque, pvabi_xenbus_front **out);

/**
 * pvabi_xenbus_front_start() - watch the backend's state and
 * @releaseDomain, and take part in the handshake.  If our state node is not
 * Initialising (a previous life left it), it is reset to Initialising, which
 * tells the backend to start over.  Reports PVABI_XENBUS_EV_PEER_READY at
 * once if the backend is already in InitWait.
 * Returns 0; -EALREADY (started before); the store errors (-ENOSPC: watch
 * quota).
 */
int pvabi_xenbus_front_start(pvabi_xenbus_front *f);

/**
 * pvabi_xenbus_front_feature() - read a backend node (normally a feature
 * the backend advertised in InitWait) as a decimal number.
 * @key: the node under the backend directory, e.g. "max-ring-page-order".
 * @dflt: the value when the node is absent.
 * @value: receives the value.
 * Returns 0; -EPROTO (present but not a decimal u32: logged); -EINVAL;
 * the store errors but -ENOENT.
 */
int pvabi_xenbus_front_feature(pvabi_xenbus_front *f, const char *key, uint32_t dflt,
                               uint32_t *value);

/**
 * pvabi_xenbus_front_connect() - publish the ring and switch to
 * Initialised, in ONE transaction (retried on conflict).
 * @ring: the ring's pages, shared with the backend domain
 *   (pvabi_xenbus_front_backend_id()) read-write, already initialised
 *   (e.g. name_front_init()): 1, 2, 4, 8 or 16 pages, at most
 *   2^max-ring-page-order of the backend.  Stays the caller's: keep it
 *   until PVABI_XENBUS_EV_CLOSED, then revoke it.
 * @port: an unbound port allocated for the backend domain
 *   (pvabi_evtchn_alloc()); the caller's too.
 * @protocol: the `protocol` node, or NULL for PVABI_XENBUS_PROTOCOL_NATIVE;
 *   "" writes none.
 * @nodes: NULL, or extra frontend nodes (key, value, ..., NULL) written in
 *   the same transaction (e.g. feature-persistent).
 * Writes `ring-ref` (1 page) or `ring-page-order` + `ring-ref0..N-1`,
 * `event-channel`, `protocol`, @nodes and `state` = 3, and removes
 * ring keys a previous connection left.  Allowed once the backend is in
 * InitWait/Initialised (or still Initialising, for a 1-page ring: blkif.h's
 * default parameters).
 * Returns 0; -EAGAIN (the backend is not ready: wait for
 * PVABI_XENBUS_EV_PEER_READY; or the handle is not started); -EISCONN (already connected or connecting);
 * -ESHUTDOWN (closing or closed: open a new handle); -EINVAL (page count
 * not a power of two up to 16, or above the backend's maximum: logged;
 * port 0; NULL @ring); -EPROTO (the backend's max-ring-page-order is
 * malformed); the store errors (the handle then reports
 * PVABI_XENBUS_EV_ERROR and closes).
 */
int pvabi_xenbus_front_connect(pvabi_xenbus_front *f, const pvabi_grant *ring, pvabi_port port,
                               const char *protocol, const char *const *nodes);

/**
 * pvabi_xenbus_front_disconnect() - start the close handshake: switch to
 * Closing (or straight to Closed if not connected, or if the backend is
 * dead).  Completion is PVABI_XENBUS_EV_CLOSED, or
 * pvabi_xenbus_front_wait(f, PVABI_XENBUS_EV_CLOSED, ...).  Calling it again
 * while closing or closed does nothing (0).
 * Returns 0; -EAGAIN (not started); the store errors.
 */
int pvabi_xenbus_front_disconnect(pvabi_xenbus_front *f);

/**
 * pvabi_xenbus_front_wait() - process store events until @until happens.
 * @until: PVABI_XENBUS_EV_PEER_READY (the backend is ready for connect, or
 *   we are past it), PVABI_XENBUS_EV_CONNECTED, or PVABI_XENBUS_EV_CLOSED.
 * @timeout_ms: >= 0.
 * First looks at the port bound to the backend (a CLOSED port is its
 * death), then returns 0 at once if the condition holds, so a @timeout_ms of
 * 0 polls the handle.  Otherwise it dispatches the context's watch events
 * (other watches' callbacks may run; the port is looked at every 100 ms)
 * until it holds, or until an event decides otherwise:
 * -ENOTCONN (the backend died or its directory vanished; waiting for
 * CONNECTED again waits for a restarted backend to re-attach);
 * -ECONNRESET (the backend started or finished closing while waiting for
 * READY or CONNECTED); the error of a PVABI_XENBUS_EV_ERROR;
 * -ETIMEDOUT (@timeout_ms passed; waiting for CLOSED, the handle then
 * gives up the handshake and switches to Closed: the backend may still
 * map the ring, so a revoke may fail with -EBUSY); -EINVAL (@until,
 * @timeout_ms, or the handle not started); -EINTR; -ENOTCONN also when the
 * store connection is gone.
 * Blocking: up to @timeout_ms.
 */
int pvabi_xenbus_front_wait(pvabi_xenbus_front *f, int until, int timeout_ms);

/**
 * pvabi_xenbus_front_close() - unwatch and free the handle (NULL is
 * allowed).  Changes nothing in the store and touches neither the ring nor
 * the port: to the backend this looks like nothing happened (or, once the
 * process exits, like a crash).  Run the close handshake first for a
 * clean unplug.  Not from inside the handle's own callback.
 */
void pvabi_xenbus_front_close(pvabi_xenbus_front *f);

/** pvabi_xenbus_front_backend_id() - the backend's domain id. */
pvabi_domid pvabi_xenbus_front_backend_id(const pvabi_xenbus_front *f);

/** pvabi_xenbus_front_path() - our device directory, /local/domain/FE/device/TYPE/DEVID. */
const char *pvabi_xenbus_front_path(const pvabi_xenbus_front *f);

/** pvabi_xenbus_front_backend_path() - the backend's directory, as read from `backend`. */
const char *pvabi_xenbus_front_backend_path(const pvabi_xenbus_front *f);

/** pvabi_xenbus_front_state() - our state as last published (PVABI_XENBUS_STATE_*). */
int pvabi_xenbus_front_state(const pvabi_xenbus_front *f);

/** pvabi_xenbus_front_peer_state() - the backend's state as last seen. */
int pvabi_xenbus_front_peer_state(const pvabi_xenbus_front *f);

/* ---- backend ----------------------------------------------------------- */

/** The backend end of one device (opaque). */
typedef struct pvabi_xenbus_back pvabi_xenbus_back;

/**
 * pvabi_xenbus_back_fn - a backend's event callback; as
 * pvabi_xenbus_front_fn.  On PVABI_XENBUS_EV_PEER_LOST and _CLOSED the
 * ring is already unmapped and the port unbound.
 */
typedef void pvabi_xenbus_back_fn(pvabi_xenbus_back *b, int event, int err, void *opaque);

/**
 * pvabi_xenbus_back_open() - open the backend end of device @type/@devid of
 * frontend domain @frontend: reads
 * /local/domain/<own>/backend/TYPE/FE/DEVID/frontend and frontend-id and
 * checks them.  Changes nothing; set features, then
 * pvabi_xenbus_back_start().
 * Returns 0; -ENOENT (no such device); -EPROTO (frontend or frontend-id
 * missing, malformed or naming another domain: logged); -EINVAL; -ENOMEM;
 * the store errors.
 */
int pvabi_xenbus_back_open(pvabi_ctx *ctx, const char *type, pvabi_domid frontend, unsigned devid,
                           pvabi_xenbus_back_fn *fn, void *opaque, pvabi_xenbus_back **out);

/**
 * pvabi_xenbus_back_set_feature() - a node the backend advertises in its
 * directory each time it enters InitWait, e.g. ("feature-flush-cache",
 * "1"), or device properties ("sectors", ...).  "max-ring-page-order"
 * (0..PVABI_XENBUS_RING_ORDER_MAX) also sets the largest ring the backend
 * accepts (default 0: a 1-page `ring-ref` only).  Setting a key again
 * replaces its value.  Takes effect at the next InitWait (start, or a
 * frontend coming back); write the store directly to change a node now.
 * Returns 0; -EINVAL (key with '/', bad max-ring-page-order); -ENOMEM.
 */
int pvabi_xenbus_back_set_feature(pvabi_xenbus_back *b, const char *key, const char *value);

/**
 * pvabi_xenbus_back_start() - watch the frontend's state and
 * @releaseDomain, and take part in the handshake:
 * - if our state node says Connected and the frontend's too (this process
 *   replaces a backend that died), re-attach at once: map the frontend's
 *   ring refs, bind its port, rewrite Connected, report
 *   PVABI_XENBUS_EV_CONNECTED with pvabi_xenbus_back_reattached() = 1;
 * - else advertise the features and switch to InitWait (one transaction);
 *   a frontend already Initialised is attached at once.
 * Returns 0 (a failed attach is reported as PVABI_XENBUS_EV_ERROR, not
 * here); -EALREADY; the store errors.
 */
int pvabi_xenbus_back_start(pvabi_xenbus_back *b);

/**
 * pvabi_xenbus_back_disconnect() - unplug: start the close handshake
 * (Closing); the ring stays mapped until the frontend answers.  Afterwards
 * the handle stays Closed, even if the frontend comes back.  Completion:
 * PVABI_XENBUS_EV_CLOSED / pvabi_xenbus_back_wait(b, _CLOSED, ...).
 * Returns 0 (also when closing or closed already); -EAGAIN (not started);
 * the store errors.
 */
int pvabi_xenbus_back_disconnect(pvabi_xenbus_back *b);

/**
 * pvabi_xenbus_back_wait() - process store events until @until happens.
 * @until: PVABI_XENBUS_EV_CONNECTED or PVABI_XENBUS_EV_CLOSED.
 * As pvabi_xenbus_front_wait(): the port bound to the frontend is looked at
 * first, then 0 at once if the condition holds; -ETIMEDOUT (a frontend that
 * never appears, or never publishes, ends this way; waiting for CLOSED,
 * the handle then detaches and switches to Closed); -ENOTCONN (the
 * frontend died or vanished while waiting for CONNECTED: the handle is
 * ready for it to come back, wait again); -ECONNRESET (the frontend closed
 * while waiting for CONNECTED); the error of a PVABI_XENBUS_EV_ERROR (what
 * was wrong with the frontend's ring: -EPROTO missing or malformed keys,
 * -EINVAL values out of range, or the map/bind error); -EINVAL (@until,
 * @timeout_ms, not started); -EINTR; -ENOTCONN when the store is gone.
 * Blocking: up to @timeout_ms.
 */
int pvabi_xenbus_back_wait(pvabi_xenbus_back *b, int until, int timeout_ms);

/**
 * pvabi_xenbus_back_close() - unwatch, detach (unmap the ring, unbind the
 * port) and free the handle (NULL is allowed).  Changes nothing in the
 * store: to the frontend this is a backend that died, and a backend
 * opened later (in this process or another claiming the same domid)
 * re-attaches.  Not from inside the handle's own callback.
 */
void pvabi_xenbus_back_close(pvabi_xenbus_back *b);

/** pvabi_xenbus_back_ring() - the mapped ring, or NULL when not attached. */
void *pvabi_xenbus_back_ring(const pvabi_xenbus_back *b);

/** pvabi_xenbus_back_ring_order() - its page order (0..4), 0 when not attached. */
unsigned pvabi_xenbus_back_ring_order(const pvabi_xenbus_back *b);

/** pvabi_xenbus_back_port() - our port bound to the frontend's, 0 when not attached. */
pvabi_port pvabi_xenbus_back_port(const pvabi_xenbus_back *b);

/**
 * pvabi_xenbus_back_protocol() - the frontend's `protocol` as published
 * (checked to be printable, at most 63 bytes), or
 * PVABI_XENBUS_PROTOCOL_NATIVE when it wrote none; "" when not attached.
 */
const char *pvabi_xenbus_back_protocol(const pvabi_xenbus_back *b);

/**
 * pvabi_xenbus_back_reattached() - 1 if the current attachment found the
 * frontend already Connected: the ring is in use, so take the private
 * indices from the shared ones (name_back_attach() does) and never
 * re-initialise it; 0 for a fresh connection or when not attached.
 */
int pvabi_xenbus_back_reattached(const pvabi_xenbus_back *b);

/** pvabi_xenbus_back_frontend_id() - the frontend's domain id. */
pvabi_domid pvabi_xenbus_back_frontend_id(const pvabi_xenbus_back *b);

/** pvabi_xenbus_back_path() - our directory, /local/domain/BE/backend/TYPE/FE/DEVID. */
const char *pvabi_xenbus_back_path(const pvabi_xenbus_back *b);

/** pvabi_xenbus_back_frontend_path() - the frontend's directory, as read from `frontend`. */
const char *pvabi_xenbus_back_frontend_path(const pvabi_xenbus_back *b);

/** pvabi_xenbus_back_state() - our state as last published. */
int pvabi_xenbus_back_state(const pvabi_xenbus_back *b);

/** pvabi_xenbus_back_peer_state() - the frontend's state as last seen. */
int pvabi_xenbus_back_peer_state(const pvabi_xenbus_back *b);

#ifdef __cplusplus
}
#endif

#endif /* PVABI_XENBUS_H */
