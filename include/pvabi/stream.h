/* SPDX-License-Identifier: MIT */
/*
 * pvabi/stream.h - a bidirectional byte stream between two domains,
 * wire-compatible with Xen's libxenvchan.
 *
 * A server shares one interface page (struct pvabi_stream_intf) with one
 * client domain, plus the pages of any ring larger than fits in it, and
 * allocates an event channel; it publishes the page's grant reference and
 * the port in the store as <path>/ring-ref and <path>/event-channel (owner
 * the server, readable by the client).  The client reads the two nodes,
 * maps the pages, binds the port and marks itself live.  Each direction is
 * a flex byte ring (two free-running u32 indices and a power-of-two
 * buffer): `left` carries client -> server, `right` server -> client.  The
 * layout, the nodes, the orders and the notification bits are libxenvchan's
 * (xen/io/libxenvchan.h), so either end may be a libxenvchan program on
 * real Xen; see docs/stream.md.
 *
 * The peer is not trusted: each index it publishes is validated at every
 * read of it (as pvabi/flexring.h does); a peer whose indices lie, or who
 * writes a live byte that no protocol state has, marks the stream broken:
 * every later call returns -EPROTO.  Nothing is ever read or written outside
 * the rings, and no call waits longer than its timeout.
 *
 * Peer close: each end has a live byte in the page.  Closing clears ours
 * and notifies; a process that dies clears it too, through unmap-notify
 * (the client's mapping of the page, the server's share of it).  Data the
 * peer wrote before it went stays readable: a read returns it, then 0 (end
 * of stream).
 *
 * Events: the stream owns one port of the context (pvabi_stream_port()).
 * pvabi_stream_wait() and the *_all() calls sleep in pvabi_evtchn_wait()
 * and so collect the events of EVERY port of the context: give a stream
 * that waits this way a context of its own (one per stream, as libxenvchan
 * opens one event-channel handle per stream; on the local platform a
 * context is a domain).  A program with several streams or drivers on one
 * context runs an event loop instead: poll pvabi_fd(), collect with
 * pvabi_evtchn_pending(), and for this stream's port call
 * pvabi_evtchn_unmask() and then the non-blocking pvabi_stream_read() /
 * pvabi_stream_write() (which arm the notification they would need when
 * they cannot make progress, so the next event comes).
 *
 * Thread-safety: one thread at a time per stream; different streams may be
 * used concurrently (with the event caveat above).  Blocking: the open
 * calls make a few round trips to the hypervisor and the store
 * (pvabi_stream_client_open() also waits up to its timeout for the nodes);
 * read, write, the getters and pvabi_stream_state() never block; wait and
 * the *_all() calls sleep up to their timeout.  Fork: a stream belongs to
 * the process (and context) that opened it; a child must not use it.
 * errno: no stream call changes it (errors are the negative returns).
 */
#ifndef PVABI_STREAM_H
#define PVABI_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <pvabi/types.h>

#ifdef __cplusplus
#define PVABI__STREAM_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define PVABI__STREAM_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the shared layout (libxenvchan's struct vchan_interface) ---------- */

/** One direction's indices, as libxenvchan's struct ring_shared. */
struct pvabi_stream_ring {
    uint32_t cons, prod;
};

/**
 * struct pvabi_stream_intf - the interface page.  Fields, in libxenvchan's
 * words: @left is written by the client and read by the server, @right the
 * other way; @left_order / @right_order give each ring's size as 2^order
 * bytes: 10 = the 1024 bytes at offset 1024 of this page, 11 = the 2048
 * bytes at offset 2048, 12 and above = 2^(order-12) pages granted
 * separately, whose refs are listed in @grants (left's first, then
 * right's).  @cli_live / @srv_live: PVABI_STREAM_LIVE_*.  @cli_notify holds
 * the PVABI_STREAM_NOTIFY_* bits the server set to ask the client for an
 * event when it writes / reads; @srv_notify the same the other way.
 */
struct pvabi_stream_intf {
    struct pvabi_stream_ring left, right;
    uint16_t left_order, right_order;
    uint8_t cli_live, srv_live;
    uint8_t cli_notify, srv_notify;
    uint32_t grants[];
};
PVABI__STREAM_STATIC_ASSERT(sizeof(struct pvabi_stream_intf) == 24, "vchan_interface size");
PVABI__STREAM_STATIC_ASSERT(offsetof(struct pvabi_stream_intf, left_order) == 16,
                            "vchan_interface left_order");
PVABI__STREAM_STATIC_ASSERT(offsetof(struct pvabi_stream_intf, cli_live) == 20,
                            "vchan_interface cli_live");
PVABI__STREAM_STATIC_ASSERT(offsetof(struct pvabi_stream_intf, srv_notify) == 23,
                            "vchan_interface srv_notify");

/** Notification bits (VCHAN_NOTIFY_WRITE / _READ). */
#define PVABI_STREAM_NOTIFY_WRITE 0x1u /* event wanted when data is written */
#define PVABI_STREAM_NOTIFY_READ  0x2u /* event wanted when data is consumed */

/** Live byte values. */
#define PVABI_STREAM_LIVE_CLOSED  0u /* the end closed or died */
#define PVABI_STREAM_LIVE_OPEN    1u /* connected */
#define PVABI_STREAM_LIVE_WAITING 2u /* cli_live only: no client yet */

/** Ring orders: in-page 10 and 11; 12 and above in granted pages. */
#define PVABI_STREAM_ORDER_MIN 10u
/** Largest ring order pvabi maps (512 KiB, 128 pages: one grant batch);
 * libxenvchan allows 20 (1 MiB): a libxenvchan server asking for more than
 * 512 KiB in a direction is refused with -ENOTSUP. */
#define PVABI_STREAM_ORDER_MAX 19u
/** Largest ring size pvabi_stream_server_open() accepts. */
#define PVABI_STREAM_SIZE_MAX (1u << PVABI_STREAM_ORDER_MAX)

/* ---- the stream ----------------------------------------------------------- */

/** One end of a stream (opaque). */
typedef struct pvabi_stream pvabi_stream;

/**
 * pvabi_stream_server_open() - offer a stream to @client (libxenvchan's
 * libxenvchan_server_init).
 * @ctx: the context; the stream uses it until pvabi_stream_close().
 * @client: the only domain that may connect.
 * @path: the store directory for the nodes, absolute or relative to our
 *   home; NULL for the default "/local/domain/<own domid>/data/pvabi-stream/
 *   <client>", which pvabi_stream_client_open() uses for a NULL path too.
 *   At most 200 bytes.  Existing nodes there are overwritten.
 * @read_size: the least bytes the ring we read (left: client -> server) must
 *   hold; 1..PVABI_STREAM_SIZE_MAX.
 * @write_size: the same for the ring we write (right).
 * @out: receives the stream; untouched on failure.
 *
 * Each size is rounded up to a power of two, at least 1024; as in
 * libxenvchan, rings that fit (one of at most 1024 bytes and the other of at
 * most 2048) live in the interface page, else a ring of at most 2048 bytes
 * takes 2048 in the page and the other gets pages of its own (at least
 * one page, 4096 bytes).  Shares the pages with @client (RW), allocates a
 * port for it, sets unmap-notify on the interface page (srv_live, and the
 * port) where the platform can (not on Xen: see docs/stream.md), and writes
 * <path>/ring-ref and <path>/event-channel in one transaction with
 * permissions "n<own domid> r<client>".  The stream is usable at once:
 * written bytes wait in the ring until the client reads them;
 * pvabi_stream_state() says PVABI_STREAM_WAITING until it connects (wait
 * for it with pvabi_stream_wait()).  One client per stream.  At close the two nodes
 * are removed, then <path> itself if nothing else is left in it.
 *
 * Returns 0; -EINVAL (NULL @ctx or @out, a size 0 or too large, @path too
 * long or empty); -ENOMEM; the errors of pvabi_grant_share() (-ENOSPC,
 * -ENOTSUP...), pvabi_evtchn_alloc() and the store (-EACCES: we may not
 * write @path; -ENOTCONN...).  Every failure is logged.
 * Blocks for a few round trips (shares, port, one store transaction).
 */
int pvabi_stream_server_open(pvabi_ctx *ctx, pvabi_domid client, const char *path, size_t read_size,
                             size_t write_size, pvabi_stream **out);

/**
 * pvabi_stream_client_open() - connect to @server's stream at @path
 * (libxenvchan_client_init).
 * @path: as given to pvabi_stream_server_open() (NULL: the default path,
 *   "/local/domain/<server>/data/pvabi-stream/<own domid>").
 * @timeout_ms: how long to wait for the server's nodes to appear (>= 0; 0
 *   looks once).
 * @out: receives the stream; untouched on failure.
 *
 * Reads ring-ref and event-channel (decimal, checked), binds the port, maps
 * the interface page, checks the orders (10..PVABI_STREAM_ORDER_MAX, not
 * both in the same half page) and that the grant list fits in the page
 * before the in-page rings, copies the refs once, maps the ring pages (the
 * one we write read-write, the one we read read-only, as libxenvchan),
 * checks srv_live, and only then sets the page's unmap-notify (cli_live,
 * and the port), sets cli_live and notifies the server.  An open that fails
 * leaves cli_live "waiting": the server may still get a client.
 *
 * Returns 0; -EINVAL (NULL @ctx or @out, @timeout_ms < 0, @path too long);
 * -ETIMEDOUT (the nodes did not appear in time; while waiting, a node we
 * may not read counts as not there yet: a missing node under the server's
 * unreadable directory reads as -EACCES); -EPROTO (the server published
 * something impossible: a bad number in a node, bad orders, a grant list
 * too long, a server live byte other than 0 and 1); -EINTR (a signal came
 * while waiting for the nodes; nothing is left behind); -ECONNRESET (the
 * server's live byte is 0: it closed or died before we connected);
 * -ENOTSUP (a ring larger than PVABI_STREAM_ORDER_MAX); the errors of the
 * store reads, pvabi_evtchn_bind() and pvabi_grant_map() (-EPERM,
 * -ENOENT...); -ENOMEM.  Every failure is logged.
 * Blocks: up to @timeout_ms for the nodes, then a few round trips.
 */
int pvabi_stream_client_open(pvabi_ctx *ctx, pvabi_domid server, const char *path, int timeout_ms,
                             pvabi_stream **out);

/**
 * pvabi_stream_close() - clear our live byte, notify the peer, unmap (client)
 * or revoke (server) the pages, remove the store nodes (server: ring-ref,
 * event-channel, then <path> if it is empty), unbind the port and free @s
 * (NULL is allowed).  Bytes not yet read by the peer stay readable by it
 * while it still maps the pages.
 *
 * A server that closes first: the shares its client still maps cannot be
 * revoked yet (they are never reused under the client).  They are kept
 * per context, with the page's unmap-notify port cleared (ours is unbound
 * here), and revoked by the first later pvabi_stream_server_open(),
 * pvabi_stream_client_open() or pvabi_stream_close() on the same context
 * that finds the client has unmapped; pvabi_close() frees what is left.
 * So across open/close rounds at most the last round's shares wait.
 * Never fails; problems are logged.  Blocks for a few round trips (more
 * when earlier shares are retried).
 */
void pvabi_stream_close(pvabi_stream *s);

/**
 * pvabi_stream_write() - copy up to @len bytes into the ring we write and
 * notify the peer if it asked.  Does not block.
 * Returns the bytes written (1..@len; fewer when the ring is nearly full);
 * 0 when @len is 0; -EAGAIN (the ring is full: nothing written; the peer is
 * asked to notify when it reads, so an event follows its next read);
 * -EPIPE (the peer closed or died); -EPROTO (broken); -EINVAL (NULL @s, or
 * NULL @buf with @len > 0).
 */
ssize_t pvabi_stream_write(pvabi_stream *s, const void *buf, size_t len);

/**
 * pvabi_stream_read() - copy up to @len bytes out of the ring we read and
 * notify the peer if it asked.  Does not block.
 * Returns the bytes read (1..@len); 0 when @len is 0, or at the end of the
 * stream (the peer closed or died and every byte it wrote has been read);
 * -EAGAIN (nothing to read yet; the peer is asked to notify when it
 * writes); -EPROTO (broken); -EINVAL (NULL @s, or NULL @buf with @len > 0).
 */
ssize_t pvabi_stream_read(pvabi_stream *s, void *buf, size_t len);

/**
 * pvabi_stream_write_all() - write all @len bytes, sleeping while the ring
 * is full, for at most @timeout_ms in all (>= 0).
 * Returns @len; or fewer bytes when the time ran out or the peer went after
 * some were written (the deadline is checked after every step, so a peer
 * that keeps taking a few bytes at a time cannot keep it past it); -ETIMEDOUT (the time ran out before any byte went);
 * -EPIPE (the peer closed or died before any byte went); -EPROTO (broken
 * before any byte went; a later call reports it); -EINTR (a signal, before
 * any byte went); -EINVAL (NULL @s, NULL @buf with @len > 0, @timeout_ms <
 * 0, @len above SSIZE_MAX); -ENOTCONN (the hypervisor is gone).
 * Blocking: up to @timeout_ms.  See "Events" above.
 */
ssize_t pvabi_stream_write_all(pvabi_stream *s, const void *buf, size_t len, int timeout_ms);

/**
 * pvabi_stream_read_all() - read exactly @len bytes, sleeping while the
 * ring is empty, for at most @timeout_ms in all (>= 0).
 * Returns @len; or fewer when the time ran out or the stream ended (peer
 * closed and drained) after some bytes; 0 at the end of the stream with
 * no byte read; -ETIMEDOUT (nothing arrived in time); -EPROTO, -EINTR,
 * -EINVAL, -ENOTCONN as pvabi_stream_write_all().
 * Blocking: up to @timeout_ms.  See "Events" above.
 */
ssize_t pvabi_stream_read_all(pvabi_stream *s, void *buf, size_t len, int timeout_ms);

/** Events for pvabi_stream_wait() (poll's POLLIN, POLLOUT, POLLHUP). */
#define PVABI_STREAM_IN   0x1u /* bytes to read, or the end of the stream */
#define PVABI_STREAM_OUT  0x2u /* room to write */
#define PVABI_STREAM_HUP  0x4u /* the peer closed or died (reported whether asked or not) */
#define PVABI_STREAM_CONN 0x8u /* the peer has connected (a server's state left WAITING) */

/**
 * pvabi_stream_wait() - sleep until one of @events is ready, for at most
 * @timeout_ms (>= 0; 0 only checks).
 * @events: PVABI_STREAM_IN, _OUT, _CONN, or a mix (or 0: only HUP ends it).
 *
 * Returns a mask of the ready events among @events, plus PVABI_STREAM_HUP
 * when the peer closed or died (then every requested event is reported
 * ready too, since read and write no longer wait); 0 when @timeout_ms
 * passed; -EPROTO (broken); -EINTR; -EINVAL (NULL @s, unknown bits,
 * @timeout_ms < 0); -ENOTCONN (the hypervisor is gone).  A client is
 * connected from its open on, so _CONN is ready at once for it.
 * Before sleeping it asks the peer for the events it needs (the notify
 * bits) and looks once more, so a change the peer makes meanwhile is never
 * missed.  While no client has connected (a server's WAITING), it looks
 * at cli_live again at least every 100 ms: older libxenvchan clients set
 * it without an event, so _CONN comes within 100 ms of their connect.
 * Blocking: up to @timeout_ms.  See "Events" above: it collects the
 * context's events and unmasks this stream's port.
 */
int pvabi_stream_wait(pvabi_stream *s, unsigned events, int timeout_ms);

/** pvabi_stream_ready() - bytes readable now; -EPROTO; -EINVAL for NULL. */
ssize_t pvabi_stream_ready(pvabi_stream *s);

/** pvabi_stream_space() - bytes writable now; -EPROTO; -EINVAL for NULL. */
ssize_t pvabi_stream_space(pvabi_stream *s);

/** Stream states, from pvabi_stream_state(). */
enum {
    PVABI_STREAM_WAITING = 2, /* server: no client has connected yet */
    PVABI_STREAM_OPEN = 1,    /* both ends live */
    PVABI_STREAM_CLOSED = 0,  /* the peer closed or died (bytes may remain to read) */
};

/**
 * pvabi_stream_state() - PVABI_STREAM_OPEN, _WAITING or _CLOSED (libxenvchan's
 * is_open); -EPROTO (broken); -EINVAL for NULL.  CLOSED is final.  Also
 * asks the port's state, so that a peer whose death raised no event (Xen)
 * is seen here.  Does not block beyond one round trip.
 */
int pvabi_stream_state(pvabi_stream *s);

/** pvabi_stream_port() - the stream's event-channel port, for an event loop. */
pvabi_port pvabi_stream_port(const pvabi_stream *s);

/** pvabi_stream_path() - the store directory of the stream's nodes. */
const char *pvabi_stream_path(const pvabi_stream *s);

#ifdef __cplusplus
}
#endif

#endif /* PVABI_STREAM_H */
