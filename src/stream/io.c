/* SPDX-License-Identifier: MIT */
/*
 * The stream's data path: read, write, wait, following libxenvchan's
 * notification protocol.
 *
 * Each end notifies only when the peer asked.  The asking end sets a bit in
 * the other's notify byte (WRITE: "tell me when you write", READ: "tell me
 * when you read"), then re-reads the ring; the acting end publishes its
 * index, then tests-and-clears the bit and sends an event if it was set.
 * Both sides put a full fence between their store and their load (the
 * Dekker pattern), so at least one of them sees the other's store: either
 * the asker's re-read finds the new data, or the actor finds the bit and
 * notifies.  The ring indices themselves are validated by pvabi_flexring
 * (a lie marks the ring broken: -EPROTO).
 */
#include "stream/private.h"

#include <errno.h>
#include <limits.h>

#include <pvabi/barrier.h>

/* Whether the stream is broken, by us or inside a ring. */
static bool stream_broken(pvabi_stream *s)
{
    if (!s->broken && (pvabi_flexring_broken(s->rd) < 0 || pvabi_flexring_broken(s->wr) < 0)) {
        pvabi__err(s->ctx, "stream %s: the peer moved a ring index impossibly: broken", s->path);
        s->broken = true;
    }
    return s->broken;
}

int pvabi__stream_peer_state(pvabi_stream *s)
{
    uint8_t live;

    if (stream_broken(s))
        return -EPROTO;
    if (s->state == PVABI_STREAM_CLOSED)
        return s->state;
    /* Acquire: pairs with the peer's release of its live byte (connect,
     * close); what it published before is visible to our index reads. */
    live = stream_load_acquire_u8(s->peer_live);
    if (live == PVABI_STREAM_LIVE_CLOSED)
        s->state = PVABI_STREAM_CLOSED;
    else if (live == PVABI_STREAM_LIVE_OPEN)
        s->state = PVABI_STREAM_OPEN;
    else if (live != PVABI_STREAM_LIVE_WAITING || s->state != PVABI_STREAM_WAITING) {
        /* Only a client that never connected may be "waiting". */
        pvabi__err(s->ctx, "stream %s: the peer wrote live byte %u: broken", s->path, live);
        s->broken = true;
        return -EPROTO;
    }
    return s->state;
}

/* After publishing an index: notify if the peer asked for @bit. */
static void send_notify(pvabi_stream *s, uint8_t bit)
{
    /* Full fence: our index store (release, in pvabi_flexring) before the
     * load of the bit; pairs with the fence in the peer's request_notify(),
     * between its setting the bit and its re-read of our index. */
    pvabi_fence_full();
    if (stream_fetch_clear_u8(s->own_notify, bit) & bit)
        /* -ENOTCONN: the peer is gone, which its live byte tells. */
        (void)pvabi_evtchn_notify(s->ctx, s->port);
}

/* Before re-reading the peer's index: ask it for an event on @bit. */
static void request_notify(pvabi_stream *s, uint8_t bit)
{
    stream_fetch_set_u8(s->peer_notify, bit);
    /* Full fence: the bit set before our re-read of the peer's index; pairs
     * with the fence in the peer's send_notify(). */
    pvabi_fence_full();
}

/* One read attempt: bytes, 0 (nothing), or -EPROTO. */
static ssize_t try_read(pvabi_stream *s, void *buf, size_t len)
{
    ssize_t n = pvabi_flexring_read(s->rd, buf, len);

    if (n > 0)
        send_notify(s, PVABI_STREAM_NOTIFY_READ);
    return n < 0 && stream_broken(s) ? -EPROTO : n;
}

PVABI_EXPORT ssize_t pvabi_stream_read(pvabi_stream *s, void *buf, size_t len)
{
    STREAM_KEEP_ERRNO;
    ssize_t n;
    int st;

    if (!s || (!buf && len > 0))
        return -EINVAL;
    if (stream_broken(s))
        return -EPROTO;
    if (len == 0)
        return 0;
    n = try_read(s, buf, len);
    if (n != 0)
        return n;
    st = pvabi__stream_peer_state(s);
    if (st < 0)
        return st;
    if (st == PVABI_STREAM_CLOSED)
        /* Its last bytes were published before its live byte was cleared
         * (the acquire above orders this read after it): read them, or
         * report the end of the stream. */
        return try_read(s, buf, len);
    request_notify(s, PVABI_STREAM_NOTIFY_WRITE);
    n = try_read(s, buf, len);
    return n == 0 ? -EAGAIN : n;
}

/* One write attempt: bytes, 0 (full), or -EPROTO. */
static ssize_t try_write(pvabi_stream *s, const void *buf, size_t len)
{
    ssize_t n = pvabi_flexring_write(s->wr, buf, len);

    if (n > 0)
        send_notify(s, PVABI_STREAM_NOTIFY_WRITE);
    return n < 0 && stream_broken(s) ? -EPROTO : n;
}

PVABI_EXPORT ssize_t pvabi_stream_write(pvabi_stream *s, const void *buf, size_t len)
{
    STREAM_KEEP_ERRNO;
    ssize_t n;
    int st;

    if (!s || (!buf && len > 0))
        return -EINVAL;
    st = pvabi__stream_peer_state(s);
    if (st < 0)
        return st;
    if (st == PVABI_STREAM_CLOSED)
        return -EPIPE;
    if (len == 0)
        return 0;
    n = try_write(s, buf, len);
    if (n != 0)
        return n;
    request_notify(s, PVABI_STREAM_NOTIFY_READ);
    n = try_write(s, buf, len);
    return n == 0 ? -EAGAIN : n;
}

PVABI_EXPORT ssize_t pvabi_stream_ready(pvabi_stream *s)
{
    STREAM_KEEP_ERRNO;
    ssize_t n;

    if (!s)
        return -EINVAL;
    /* Sticky: a stream broken by a live byte leaves the rings as they are. */
    if (stream_broken(s))
        return -EPROTO;
    n = pvabi_flexring_used(s->rd);
    return n < 0 && stream_broken(s) ? -EPROTO : n;
}

PVABI_EXPORT ssize_t pvabi_stream_space(pvabi_stream *s)
{
    STREAM_KEEP_ERRNO;
    ssize_t n;

    if (!s)
        return -EINVAL;
    /* Sticky: a stream broken by a live byte leaves the rings as they are. */
    if (stream_broken(s))
        return -EPROTO;
    n = pvabi_flexring_space(s->wr);
    return n < 0 && stream_broken(s) ? -EPROTO : n;
}

/* Where the live byte cannot tell (no unmap-notify for a server on Xen), a
 * port the peer closed means it is gone. */
static void check_port(pvabi_stream *s)
{
    if (s->state != PVABI_STREAM_CLOSED &&
        pvabi_evtchn_state(s->ctx, s->port) == PVABI_EVTCHN_CLOSED)
        s->state = PVABI_STREAM_CLOSED;
}

PVABI_EXPORT int pvabi_stream_state(pvabi_stream *s)
{
    STREAM_KEEP_ERRNO;
    int st;

    if (!s)
        return -EINVAL;
    st = pvabi__stream_peer_state(s);
    if (st == PVABI_STREAM_OPEN) {
        check_port(s);
        st = s->state;
    }
    return st;
}

/* The requested events that are ready now (with HUP); 0; -EPROTO. */
static int ready_mask(pvabi_stream *s, unsigned events)
{
    int st = pvabi__stream_peer_state(s);
    unsigned mask = 0;
    ssize_t n;

    if (st < 0)
        return st;
    if (st == PVABI_STREAM_CLOSED)
        return (int)(PVABI_STREAM_HUP | events);
    if ((events & PVABI_STREAM_CONN) && st == PVABI_STREAM_OPEN)
        mask |= PVABI_STREAM_CONN;
    if (events & PVABI_STREAM_IN) {
        n = pvabi_stream_ready(s);
        if (n < 0)
            return (int)n;
        mask |= n > 0 ? PVABI_STREAM_IN : 0;
    }
    if (events & PVABI_STREAM_OUT) {
        n = pvabi_stream_space(s);
        if (n < 0)
            return (int)n;
        mask |= n > 0 ? PVABI_STREAM_OUT : 0;
    }
    return (int)mask;
}

/* Sleeps on the context's events up to @left ms; unmasks our port if it
 * was reported.  Returns 0 or a negative errno (-EINTR, -ENOTCONN). */
static int sleep_events(pvabi_stream *s, int left)
{
    pvabi_port ports[16];
    int n = pvabi_evtchn_wait(s->ctx, ports, 16, left);

    for (int k = 0; k < n; k++)
        if (ports[k] == s->port)
            pvabi_evtchn_unmask(s->ctx, s->port);
    return n < 0 ? n : 0;
}

/* How long to sleep of the @left ms: while no client has connected, at
 * most a slice, since a client may set cli_live without an event. */
static int sleep_slice(const pvabi_stream *s, int left)
{
    if (s->state == PVABI_STREAM_WAITING && left > STREAM_WAITING_SLICE_MS)
        return STREAM_WAITING_SLICE_MS;
    return left;
}

PVABI_EXPORT int pvabi_stream_wait(pvabi_stream *s, unsigned events, int timeout_ms)
{
    STREAM_KEEP_ERRNO;
    const unsigned known = PVABI_STREAM_IN | PVABI_STREAM_OUT | PVABI_STREAM_CONN;
    int64_t deadline;
    int rc;

    if (!s || (events & ~known) || timeout_ms < 0)
        return -EINVAL;
    deadline = pvabi__now_ms() + timeout_ms;
    for (;;) {
        rc = ready_mask(s, events);
        if (rc != 0)
            return rc;
        /* Nothing ready: ask for the events that would change that, then
         * look once more (the requests' fences order this re-read). */
        if (events & PVABI_STREAM_IN)
            request_notify(s, PVABI_STREAM_NOTIFY_WRITE);
        if (events & PVABI_STREAM_OUT)
            request_notify(s, PVABI_STREAM_NOTIFY_READ);
        rc = ready_mask(s, events);
        if (rc != 0)
            return rc;
        if (pvabi__ms_left(deadline) == 0) {
            /* Last chance for a peer whose death raised no event. */
            check_port(s);
            return s->state == PVABI_STREAM_CLOSED ? ready_mask(s, events) : 0;
        }
        rc = sleep_events(s, sleep_slice(s, pvabi__ms_left(deadline)));
        if (rc < 0)
            return rc;
    }
}

/* The end of an *_all() call: the bytes done, else the error. */
static ssize_t all_result(size_t done, ssize_t err)
{
    return done > 0 ? (ssize_t)done : err;
}

/* The loop of write_all (@writing) and read_all: move bytes while they
 * go, sleep on the stream when they do not, stop at the deadline. */
static ssize_t transfer_all(pvabi_stream *s, unsigned char *p, size_t len, int timeout_ms,
                            bool writing)
{
    int64_t deadline;
    size_t done = 0;
    ssize_t n;

    if (!s || (!p && len > 0) || timeout_ms < 0 || len > SSIZE_MAX)
        return -EINVAL;
    deadline = pvabi__now_ms() + timeout_ms;
    while (done < len) {
        n = writing ? pvabi_stream_write(s, p + done, len - done)
                    : pvabi_stream_read(s, p + done, len - done);
        if (n > 0) {
            done += (size_t)n;
            /* A peer that keeps up in small steps must not keep us past
             * the deadline: look at it after every step. */
            if (done < len && pvabi__ms_left(deadline) == 0)
                return (ssize_t)done;
            continue;
        }
        if (n != -EAGAIN)
            return all_result(done, n); /* read: 0 is the end of the stream */
        n = pvabi_stream_wait(s, writing ? PVABI_STREAM_OUT : PVABI_STREAM_IN,
                              pvabi__ms_left(deadline));
        if (n <= 0)
            return all_result(done, n == 0 ? -ETIMEDOUT : n);
    }
    return (ssize_t)done;
}

PVABI_EXPORT ssize_t pvabi_stream_write_all(pvabi_stream *s, const void *buf, size_t len,
                                            int timeout_ms)
{
    STREAM_KEEP_ERRNO;
    /* Only written from: the cast lets one loop serve both directions. */
    return transfer_all(s, (unsigned char *)(uintptr_t)buf, len, timeout_ms, true);
}

PVABI_EXPORT ssize_t pvabi_stream_read_all(pvabi_stream *s, void *buf, size_t len, int timeout_ms)
{
    STREAM_KEEP_ERRNO;
    return transfer_all(s, buf, len, timeout_ms, false);
}
