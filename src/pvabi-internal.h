/* SPDX-License-Identifier: MIT */
/* Internal helpers shared by every layer; never installed. */
#ifndef PVABI_INTERNAL_H
#define PVABI_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "pvabi-config.h"
#include <pvabi/pvabi.h>

/* Marks a function the version script exports (the rest are hidden). */
#define PVABI_EXPORT __attribute__((visibility("default")))

struct pvabi_platform_ops;

/* Per-port bookkeeping of the core; lives in chunks that are never moved, so
 * pvabi_evtchn_notify() can find it without the context lock. */
struct pvabi__port_info {
    _Atomic uint64_t sent, received, spurious;
    _Atomic int bound; /* 1 while the port belongs to this context */
};

#define PVABI__PORT_CHUNK  512u
#define PVABI__PORT_CHUNKS 256u /* 131072 ports: Xen's FIFO ABI maximum */

struct pvabi__log_sink {
    pvabi_log_fn *fn;
    void *opaque;
    int level;
};

struct pvabi_grant;
struct pvabi_map;
struct pvabi__store;
struct xb_dev;

struct pvabi_ctx {
    const struct pvabi_platform_ops *ops;
    void *plat;
    pvabi_domid domid;
    unsigned open_flags;  /* pvabi_open_flags()'s, read by the platform's open */
    pthread_mutex_t lock; /* serialises every op except notify */
    struct pvabi__log_sink log;
    int has_log;
    /* Chunk pointers are published with release and read with acquire. */
    struct pvabi__port_info *_Atomic port_chunks[PVABI__PORT_CHUNKS];
    uint64_t unknown_port_events; /* events for ports we do not hold */
    struct pvabi_grant *grants;   /* live shares, freed by pvabi_close() */
    struct pvabi_map *maps;       /* live mappings, freed by pvabi_close() */
    /* pvabi_fd(): an epoll set holding the platform's event fd, and the
     * store's watch fd once the store is open.  Never changes. */
    int epfd;
    /* The store (src/xenbus/store.c), opened at first use; store_lock
     * guards opening it and its watch list, never held across a callback. */
    pthread_mutex_t store_lock;
    struct pvabi__store *store;
    struct xb_dev *xb_devs; /* xenbus handles, freed by pvabi_close() if left */
};

/* Logs one message through the context's sink (ctx may be NULL: the process
 * default).  printf-style. */
void pvabi__log(const pvabi_ctx *ctx, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define pvabi__err(ctx, ...)   pvabi__log((ctx), PVABI_LOG_ERR, __VA_ARGS__)
#define pvabi__warn(ctx, ...)  pvabi__log((ctx), PVABI_LOG_WARN, __VA_ARGS__)
#define pvabi__debug(ctx, ...) pvabi__log((ctx), PVABI_LOG_DEBUG, __VA_ARGS__)

/* The port's bookkeeping, or NULL if @port is out of range / never used. */
struct pvabi__port_info *pvabi__port_info(pvabi_ctx *ctx, pvabi_port port);

/* Frees every port chunk (pvabi_close). */
void pvabi__ports_free(pvabi_ctx *ctx);

/* Unmaps and revokes what the caller left (pvabi_close). */
void pvabi__grants_release(pvabi_ctx *ctx);
/* Forgets the stream layer's deferred revokes of @ctx (src/stream/setup.c):
 * pvabi_close, before pvabi__grants_release frees the grants they name. */
void pvabi__stream_release(pvabi_ctx *ctx);

/* Frees the xenbus handles and watches the caller left and closes the
 * store (pvabi_close; before pvabi__grants_release, which would otherwise
 * unmap the backends' rings under them). */
void pvabi__store_release(pvabi_ctx *ctx);

#endif
