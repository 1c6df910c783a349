/* SPDX-License-Identifier: MIT */
/*
 * Event channels above the seam: argument checks, port ownership, the
 * per-port counters, and the locking rule (everything serialises on the
 * context except notify, which must stay a lock-free fast path).
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "platform/platform.h"
#include "pvabi-internal.h"

struct pvabi__port_info *pvabi__port_info(pvabi_ctx *ctx, pvabi_port port)
{
    if (port == 0 || port >= PVABI__PORT_CHUNK * PVABI__PORT_CHUNKS)
        return NULL;
    /* Acquire: the chunk's zeroed contents are visible before we use it
     * (pairs with the release in port_info_make). */
    struct pvabi__port_info *chunk =
        atomic_load_explicit(&ctx->port_chunks[port / PVABI__PORT_CHUNK], memory_order_acquire);
    return chunk ? &chunk[port % PVABI__PORT_CHUNK] : NULL;
}

/* Like pvabi__port_info but creates the chunk; called with ctx->lock held. */
static struct pvabi__port_info *port_info_make(pvabi_ctx *ctx, pvabi_port port)
{
    struct pvabi__port_info *info = pvabi__port_info(ctx, port), *chunk;

    if (info || port == 0 || port >= PVABI__PORT_CHUNK * PVABI__PORT_CHUNKS)
        return info;
    chunk = calloc(PVABI__PORT_CHUNK, sizeof(*chunk));
    if (!chunk)
        return NULL;
    /* Release: the zeroed chunk is visible before its pointer (pairs with
     * the acquire in pvabi__port_info, which notify uses without the lock). */
    atomic_store_explicit(&ctx->port_chunks[port / PVABI__PORT_CHUNK], chunk, memory_order_release);
    return &chunk[port % PVABI__PORT_CHUNK];
}

void pvabi__ports_free(pvabi_ctx *ctx)
{
    for (unsigned i = 0; i < PVABI__PORT_CHUNKS; i++)
        free(atomic_load_explicit(&ctx->port_chunks[i], memory_order_relaxed));
}

/* The port's info if this context holds it, else NULL. */
static struct pvabi__port_info *held(pvabi_ctx *ctx, pvabi_port port)
{
    struct pvabi__port_info *info = pvabi__port_info(ctx, port);
    return info && atomic_load_explicit(&info->bound, memory_order_relaxed) ? info : NULL;
}

/* Records a port the platform just gave us; unbinds it again on failure. */
static int adopt_port(pvabi_ctx *ctx, pvabi_port port)
{
    struct pvabi__port_info *info = port_info_make(ctx, port);

    if (!info) {
        pvabi__err(ctx, "event channel port %u: out of range or out of memory", port);
        ctx->ops->evtchn_unbind(ctx, ctx->plat, port);
        return -ENOMEM;
    }
    atomic_store_explicit(&info->sent, 0, memory_order_relaxed);
    atomic_store_explicit(&info->received, 0, memory_order_relaxed);
    atomic_store_explicit(&info->spurious, 0, memory_order_relaxed);
    atomic_store_explicit(&info->bound, 1, memory_order_relaxed);
    return 0;
}

PVABI_EXPORT int pvabi_evtchn_alloc(pvabi_ctx *ctx, pvabi_domid remote, pvabi_port *port)
{
    int rc;

    if (!ctx || !port)
        return -EINVAL;
    pthread_mutex_lock(&ctx->lock);
    rc = ctx->ops->evtchn_alloc(ctx, ctx->plat, remote, port);
    if (rc == 0)
        rc = adopt_port(ctx, *port);
    pthread_mutex_unlock(&ctx->lock);
    return rc;
}

PVABI_EXPORT int pvabi_evtchn_bind(pvabi_ctx *ctx, pvabi_domid remote, pvabi_port remote_port,
                                   pvabi_port *port)
{
    int rc;

    if (!ctx || !port)
        return -EINVAL;
    pthread_mutex_lock(&ctx->lock);
    rc = ctx->ops->evtchn_bind(ctx, ctx->plat, remote, remote_port, port);
    if (rc == 0)
        rc = adopt_port(ctx, *port);
    pthread_mutex_unlock(&ctx->lock);
    return rc;
}

PVABI_EXPORT int pvabi_evtchn_unbind(pvabi_ctx *ctx, pvabi_port port)
{
    struct pvabi__port_info *info;
    int rc = -EBADF;

    if (!ctx)
        return -EINVAL;
    pthread_mutex_lock(&ctx->lock);
    info = held(ctx, port);
    if (info) {
        atomic_store_explicit(&info->bound, 0, memory_order_relaxed);
        rc = ctx->ops->evtchn_unbind(ctx, ctx->plat, port);
    }
    pthread_mutex_unlock(&ctx->lock);
    return rc;
}

PVABI_EXPORT int pvabi_evtchn_notify(pvabi_ctx *ctx, pvabi_port port)
{
    struct pvabi__port_info *info = ctx ? held(ctx, port) : NULL;
    int rc;

    if (!info)
        return ctx ? -EBADF : -EINVAL;
    rc = ctx->ops->evtchn_notify(ctx, ctx->plat, port);
    if (rc == 0)
        atomic_fetch_add_explicit(&info->sent, 1, memory_order_relaxed);
    return rc;
}

/* Counts one platform event; returns 1 if it is reported to the caller. */
static int account_event(pvabi_ctx *ctx, const struct pvabi__event *ev)
{
    struct pvabi__port_info *info = held(ctx, ev->port);

    if (!info) {
        ctx->unknown_port_events++;
        pvabi__debug(ctx, "event for port %u, which this context does not hold", ev->port);
        return 0;
    }
    if (ev->spurious) {
        atomic_fetch_add_explicit(&info->spurious, 1, memory_order_relaxed);
        return 0;
    }
    atomic_fetch_add_explicit(&info->received, 1, memory_order_relaxed);
    return 1;
}

/* Collects up to @max reported ports from the platform; ctx->lock held.
 * Returns the count, or the platform's error when nothing was collected. */
static int collect(pvabi_ctx *ctx, pvabi_port *ports, unsigned max)
{
    struct pvabi__event ev[64];
    int n, out = 0;

    while ((unsigned)out < max) {
        unsigned want = max - (unsigned)out < 64 ? max - (unsigned)out : 64;
        n = ctx->ops->evtchn_pending(ctx, ctx->plat, ev, want);
        if (n <= 0) {
            if (out == 0 && n < 0)
                out = n;
            break;
        }
        for (int i = 0; i < n; i++)
            if (account_event(ctx, &ev[i]))
                ports[out++] = ev[i].port;
        /* Fewer than asked: the platform has nothing more now, and asking
         * again would cost another system call for nothing. */
        if ((unsigned)n < want)
            break;
    }
    return out;
}

PVABI_EXPORT int pvabi_evtchn_pending(pvabi_ctx *ctx, pvabi_port *ports, unsigned max)
{
    int out;

    if (!ctx || (!ports && max > 0))
        return -EINVAL;
    pthread_mutex_lock(&ctx->lock);
    out = collect(ctx, ports, max);
    pthread_mutex_unlock(&ctx->lock);
    return out;
}

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Milliseconds left until @deadline (ns), rounded up so that a wait never
 * returns early; 0 once it has passed. */
static int ms_left(int64_t deadline)
{
    int64_t left = deadline - now_ns();
    return left > 0 ? (int)((left + 999999) / 1000000) : 0;
}

PVABI_EXPORT int pvabi_evtchn_wait(pvabi_ctx *ctx, pvabi_port *ports, unsigned max, int timeout_ms)
{
    int64_t deadline;
    int rc, out, left = timeout_ms;

    if (!ctx || !ports || max == 0 || timeout_ms < 0)
        return -EINVAL;
    deadline = now_ns() + (int64_t)timeout_ms * 1000000;
    for (;;) {
        /* Unlocked: other threads' calls go on while this one sleeps. */
        rc = ctx->ops->evtchn_wait(ctx, ctx->plat, left);
        if (rc < 0)
            return rc;
        pthread_mutex_lock(&ctx->lock);
        out = collect(ctx, ports, max);
        pthread_mutex_unlock(&ctx->lock);
        /* Nothing reported after a wake-up (a spurious event, a masked port,
         * another thread was first): sleep again for what is left. */
        if (out != 0 || rc == 0 || (left = ms_left(deadline)) == 0)
            return out;
    }
}

PVABI_EXPORT int pvabi_evtchn_unmask(pvabi_ctx *ctx, pvabi_port port)
{
    int rc = -EBADF;

    if (!ctx)
        return -EINVAL;
    pthread_mutex_lock(&ctx->lock);
    if (held(ctx, port))
        rc = ctx->ops->evtchn_unmask(ctx, ctx->plat, port);
    pthread_mutex_unlock(&ctx->lock);
    return rc;
}

PVABI_EXPORT int pvabi_evtchn_state(pvabi_ctx *ctx, pvabi_port port)
{
    int rc = -EBADF;

    if (!ctx)
        return -EINVAL;
    pthread_mutex_lock(&ctx->lock);
    if (held(ctx, port))
        rc = ctx->ops->evtchn_state(ctx, ctx->plat, port);
    pthread_mutex_unlock(&ctx->lock);
    return rc;
}

PVABI_EXPORT int pvabi_evtchn_counter(pvabi_ctx *ctx, pvabi_port port, int which, uint64_t *value)
{
    struct pvabi__port_info *info = ctx ? held(ctx, port) : NULL;

    if (!ctx || !value)
        return -EINVAL;
    if (!info)
        return -EBADF;
    switch (which) {
    case PVABI_EVTCHN_SENT:
        *value = atomic_load_explicit(&info->sent, memory_order_relaxed);
        return 0;
    case PVABI_EVTCHN_RECEIVED:
        *value = atomic_load_explicit(&info->received, memory_order_relaxed);
        return 0;
    case PVABI_EVTCHN_SPURIOUS:
        *value = atomic_load_explicit(&info->spurious, memory_order_relaxed);
        return 0;
    default:
        return -EINVAL;
    }
}
