/* SPDX-License-Identifier: MIT */
/*
 * What the files of src/xenbus/ share: store.c (the one file that includes
 * <xenstore.h>: the store connection, requests, watches), state.c (the
 * XenbusState machine), dev.c (the I/O shell that runs the machine for a
 * handle), front.c and back.c (the two ends), device.c (the toolstack
 * step).  Everything above store.c reaches the store through the public
 * pvabi_store_* functions.
 */
#ifndef PVABI_XENBUS_PRIVATE_H
#define PVABI_XENBUS_PRIVATE_H

#include <stdint.h>

#include "pvabi-internal.h"
#include "xenbus/state.h"

/* Longest device type ("vbd", "console", ...) the helpers accept. */
#define XB_TYPE_MAX 32
/* Room for any path the helpers build. */
#define XB_PATH_MAX 256

struct xb_dev;

/* What differs between a frontend and a backend handle. */
struct xb_dev_ops {
    /* Writes the role's nodes inside @txn (the state follows in the same
     * transaction).  0 or -errno. */
    int (*publish)(struct xb_dev *d, pvabi_store_txn txn);
    /* back: read, check, map, bind.  0 or -errno (logged). */
    int (*attach)(struct xb_dev *d, int reattach);
    void (*detach)(struct xb_dev *d);
    /* Calls the driver's callback. */
    void (*report)(struct xb_dev *d, int event, int err);
    /* The local port bound to the peer, 0 if none: a CLOSED port after
     * @releaseDomain is the peer's death. */
    pvabi_port (*port)(struct xb_dev *d);
};

/* The part of a handle the shell runs; first member of both handles. */
struct xb_dev {
    pvabi_ctx *ctx;
    const struct xb_dev_ops *ops;
    struct xb_sm sm;
    char path[XB_PATH_MAX];      /* our directory */
    char peer_path[XB_PATH_MAX]; /* the peer's */
    pvabi_domid peer_domid;
    pvabi_watch *w_state, *w_release;
    int started;
    /* A wait in progress: what it waits for, and the first event that ends
     * it otherwise (0: none yet). */
    int wait_until;
    int wait_rc;
    /* Waits on this handle in progress (nested through callbacks); a close
     * meanwhile only sets doomed, and the outermost wait frees it. */
    int waiting;
    int doomed;
    struct xb_dev *next, **pprev; /* the context's handles (ctx->xb_devs) */
};

/* ---- store.c ------------------------------------------------------------ */

/* pvabi_store_read() without a log for -ENOENT and -EACCES: a peer's node
 * that vanished (Xen answers EACCES for a node under a removed domain's
 * home the reader may not see). */
int pvabi__store_read_quiet(pvabi_ctx *ctx, const char *path, char **value);

/* ---- dev.c ---------------------------------------------------------------- */

/* Links @d into the context's list (pvabi_close frees what is left). */
void pvabi__xb_dev_link(struct xb_dev *d);
/* Unwatches, unlinks; the caller detaches and frees. */
void pvabi__xb_dev_unlink(struct xb_dev *d);
/* Registers the watches, reads both state nodes, feeds START. */
int pvabi__xb_dev_start(struct xb_dev *d);
/* Feeds one event to the machine and carries out its actions.  Returns the
 * machine's refusal (own requests) or the first action's failure. */
int pvabi__xb_dev_run(struct xb_dev *d, const struct xb_event *ev);
/* The wait functions of both ends. */
int pvabi__xb_dev_wait(struct xb_dev *d, int until, int timeout_ms);
/* Reads a state node: a PVABI_XENBUS_STATE_*, XB_UNK when absent or
 * garbage; -errno for store failures other than -ENOENT. */
int pvabi__xb_read_state(pvabi_ctx *ctx, const char *dir);
/* Checks a device type for the paths: [A-Za-z0-9_-]{1,31}. */
int pvabi__xb_type_ok(pvabi_ctx *ctx, const char *type);
/* Checks a node name (no '/', not empty, short). */
int pvabi__xb_key_ok(pvabi_ctx *ctx, const char *key);
/* Strict decimal u32: digits only, no sign or space, no overflow. */
int pvabi__xb_parse_u32(const char *s, uint32_t *out);
/* snprintf into a path buffer; -ENAMETOOLONG (logged) if it does not fit. */
int pvabi__xb_path(pvabi_ctx *ctx, char *buf, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Frees every handle left on the context (pvabi_close): detaches backends,
 * changes nothing in the store. */
void pvabi__xb_devs_release(pvabi_ctx *ctx);

/* ---- front.c / back.c: freeing a handle left at pvabi_close ------------ */
void pvabi__xb_front_free(struct xb_dev *d);
void pvabi__xb_back_free(struct xb_dev *d);
/* pvabi_xenbus_*_close(): frees @d now, or, while a wait on it runs (a
 * callback closed it), when the outermost wait returns. */
void pvabi__xb_dev_close(struct xb_dev *d);

#endif
