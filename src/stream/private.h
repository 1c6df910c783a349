/* SPDX-License-Identifier: MIT */
/*
 * Internals of the stream (pvabi/stream.h): the handle, and the byte-sized
 * atomics the live and notify bytes of struct pvabi_stream_intf need.
 *
 * pvabi/barrier.h speaks u32 only; libxenvchan's live and notify fields are
 * single bytes that both ends (and, for the live bytes, the hypervisor's
 * unmap-notify) write, so they are accessed here as C11 byte atomics, the
 * same way barrier.h accesses the indices: in place, through a cast.
 */
#ifndef PVABI_STREAM_PRIVATE_H
#define PVABI_STREAM_PRIVATE_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "pvabi-internal.h"
#include <pvabi/stream.h>

_Static_assert(sizeof(_Atomic uint8_t) == sizeof(uint8_t), "shared bytes are atomics in place");
#define STREAM_U8(p) ((_Atomic uint8_t *)(uintptr_t)(p))

/* A live byte the peer (or unmap-notify) writes; acquire: what the peer
 * published before clearing it (its last prod) is visible to our later
 * index reads. */
static inline uint8_t stream_load_acquire_u8(const uint8_t *p)
{
    return atomic_load_explicit(STREAM_U8(p), memory_order_acquire);
}

/* Our live byte; release: our ring writes and index stores before it are
 * visible to a peer whose acquire load sees the new value. */
static inline void stream_store_release_u8(uint8_t *p, uint8_t v)
{
    atomic_store_explicit(STREAM_U8(p), v, memory_order_release);
}

/* Clears @bits, returns the old byte.  A full RMW (seq_cst): libxenvchan's
 * __sync_fetch_and_and, which its peer's __sync_or_and_fetch races with. */
static inline uint8_t stream_fetch_clear_u8(uint8_t *p, uint8_t bits)
{
    return atomic_fetch_and_explicit(STREAM_U8(p), (uint8_t)~bits, memory_order_seq_cst);
}

/* Sets @bits (a request to the peer); seq_cst as above. */
static inline void stream_fetch_set_u8(uint8_t *p, uint8_t bits)
{
    atomic_fetch_or_explicit(STREAM_U8(p), bits, memory_order_seq_cst);
}

/* pvabi leaves errno alone (as src/xenbus/store.c): every public stream
 * call restores it on the way out, whatever calloc, the platform's system
 * calls or a log sink did to it. */
static inline void stream_keep_errno(const int *saved)
{
    errno = *saved;
}
#define STREAM_KEEP_ERRNO                                                                          \
    int stream_saved_errno_ __attribute__((cleanup(stream_keep_errno), unused)) = errno

/* Longest store directory, so that "<path>/event-channel" fits the store's
 * path limit with room to spare. */
#define STREAM_PATH_MAX 200

struct pvabi_stream {
    pvabi_ctx *ctx;
    bool server;
    pvabi_domid peer;
    pvabi_port port;
    struct pvabi_stream_intf *intf;         /* the interface page */
    pvabi_grant *g_intf, *g_left, *g_right; /* server: the shares */
    pvabi_map *m_intf, *m_left, *m_right;   /* client: the mappings */
    pvabi_flexring *rd, *wr;                /* the ring we read, the one we write */
    uint8_t *own_live, *peer_live;
    uint8_t *own_notify;  /* bits the peer set: events it wants from us */
    uint8_t *peer_notify; /* where we ask the peer for events */
    int state;            /* PVABI_STREAM_*: CLOSED is sticky */
    bool broken;          /* the peer broke the protocol: sticky */
    bool has_port;        /* s->port is ours to unbind */
    bool live;            /* our live byte says OPEN: clear it at close */
    bool published;       /* server: the nodes are written (remove them at close) */
    char path[STREAM_PATH_MAX + 1];
};

/* Monotonic milliseconds, for deadlines. */
static inline int64_t pvabi__now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left until @deadline, rounded up by one so that a wait never
 * ends early; 0 once it has passed. */
static inline int pvabi__ms_left(int64_t deadline)
{
    int64_t left = deadline - pvabi__now_ms();

    return left > 0 ? (int)(left > INT32_MAX - 1 ? INT32_MAX : left + 1) : 0;
}

/* The default store directory of the stream between @server and @client. */
#define STREAM_DEFAULT_PATH "/local/domain/%u/data/pvabi-stream/%u"

/* Allocates a handle with the fields every stream has; NULL on ENOMEM. */
pvabi_stream *pvabi__stream_new(pvabi_ctx *ctx, bool server, pvabi_domid peer);

/* Points the byte fields at the interface page, by role. */
void pvabi__stream_bind_bytes(pvabi_stream *s);

/* The peer's state from its live byte (PVABI_STREAM_*), or -EPROTO. */
int pvabi__stream_peer_state(pvabi_stream *s);

/* How long a server stream that no client has connected to yet sleeps at
 * most before it looks at cli_live again: older libxenvchan clients set
 * cli_live without sending an event, so no event may ever come. */
#define STREAM_WAITING_SLICE_MS 100

/* Revokes the shares that closed server streams of @ctx left because their
 * client still mapped them (see setup.c, "deferred revokes"). */
void pvabi__stream_retry_revokes(pvabi_ctx *ctx);

/* pvabi__stream_release(), in pvabi-internal.h, forgets them at pvabi_close(). */

#endif
