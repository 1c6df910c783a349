/* SPDX-License-Identifier: MIT */
/*
 * blkfront.h - a userspace block frontend: connects to a vbd through xenbus
 * and reads, writes, flushes and discards byte ranges of the backend's disk
 * over Xen's blkif protocol (examples/blkif/blkif-wire.h), with many
 * requests in flight.  Built on pvabi's public API only; docs/blkfront.md
 * is the walk-through.
 *
 * Data path: every byte goes through a FIXED pool of pages granted to the
 * backend once at open (pvabi_grant_share allocates new pages, so user
 * buffers are always copied into pool pages: writes at submit, reads at
 * completion).  With feature-persistent on both sides the backend maps the
 * pool once; without it, it grant-copies each segment.  A request carries up
 * to 11 segments, or with feature-max-indirect-segments up to the
 * negotiated maximum through an indirect page (also from the fixed pool).
 *
 * Trust: every response is checked (its id must name a request of ours in
 * flight, with the same generation; its operation must be the request's:
 * for an indirect request its indirect_op, as Linux's blkback answers, or
 * INDIRECT, which some backends echo); a violation
 * or a broken ring (the backend's rsp_prod lies) marks the device broken:
 * everything pending completes with -EIO, every later call fails with -EIO,
 * nothing crashes or hangs.  A request is completed exactly once.
 *
 * Backend restart: the ring, the pool and the requests in flight are kept
 * while the backend is gone; a backend that re-attaches resumes at the
 * ring's rsp_prod and answers what is unanswered (blkfront notifies it once
 * it is back).  Nothing is failed meanwhile: waits just time out.
 *
 * Errors: 0 or a count on success, a negative errno on failure.
 * Thread-safety: a blkfront is used by one thread at a time.  blkfront
 * collects the event channel events of its context (pvabi_evtchn_wait /
 * _pending) and dispatches its store events: give it a context of its own,
 * or at least no other event channel user on it.
 * Fork: a blkfront belongs to the process that opened it (as its context).
 */
#ifndef PVABI_EXAMPLES_BLKFRONT_H
#define PVABI_EXAMPLES_BLKFRONT_H

#include <stddef.h>
#include <stdint.h>

#include <pvabi/pvabi.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The frontend of one vbd (opaque). */
struct blkfront;

/** Options of blkfront_open(); blkfront_opts_init() sets the defaults. */
struct blkfront_opts {
    unsigned ring_order;   /* ring of 2^order pages, 0..4; default 4, capped to the backend's */
    unsigned max_indirect; /* segments per indirect request, 0 = none; default 256; capped to
                              the backend's feature-max-indirect-segments and to 512 */
    int persistent;        /* 1 (default): ask for persistent grants (feature-persistent) */
    unsigned pool_pages;   /* granted data pages, 16..8000; default 1024 (4 MiB in flight) */
    int timeout_ms;        /* handshake timeout of open and close, and the longest a
                              synchronous helper waits without progress; default 10000 */
    int verbose;           /* 0 (default): only errors on stderr; 1: also connection events */
    unsigned fixed_pages;  /* granted pages for blkfront_fixed_buffer(), 0..8000; default 0 */
};

/** blkfront_opts_init() - fill @o with the defaults. */
void blkfront_opts_init(struct blkfront_opts *o);

/** What the backend advertised and what was negotiated (blkfront_info()). */
struct blkfront_info {
    uint64_t sectors;              /* disk size in 512-byte sectors */
    unsigned sector_size;          /* logical sector size (alignment of submits) */
    unsigned physical_sector_size; /* 0 if not advertised */
    unsigned info;                 /* PVBLK_VDISK_* bits (others ignored) */
    int readonly;                  /* info has READONLY, or mode has no 'w' */
    int flush;                     /* feature-flush-cache (feature-* nodes: on if not 0) */
    int barrier;                   /* feature-barrier */
    int discard;                   /* feature-discard, with a usable granularity */
    unsigned discard_granularity;  /* bytes (default: the sector size); 0 without discard */
    unsigned ring_order;           /* negotiated ring order */
    unsigned ring_slots;           /* requests the ring holds */
    unsigned max_segments;         /* per request: 11, or the indirect maximum */
    int indirect;                  /* 1 if indirect requests are used */
    int persistent;                /* 1 if both sides said feature-persistent */
    unsigned pool_pages;           /* granted data pages */
    pvabi_domid backend_id;
    unsigned devid;
};

/**
 * blkfront_open() - connect to device "vbd"/@devid of this domain.
 * @ctx: the context (its domain is the frontend; see the thread note above).
 * @devid: the virtual-device number (51712 = xvda).
 * @opts: NULL for the defaults.
 * @out: receives the frontend.
 * In blkif.h's order (which Linux's blkback follows): starts the xenbus
 * handle, waits for the backend's InitWait, reads max-ring-page-order,
 * shares the ring, allocates the event channel and the data pool,
 * publishes them (with feature-persistent = 1 when asked) and waits for
 * Connected; only then reads the device properties and the other features
 * (sectors, sector-size, physical-sector-size, info, mode,
 * feature-flush-cache, feature-barrier, feature-discard,
 * discard-granularity, feature-max-indirect-segments, feature-persistent:
 * Linux's blkback writes them just before Connected), and allocates the
 * request tables and indirect pages.  All within @opts->timeout_ms.
 * Returns 0; -ENOENT (no such device: run the toolstack step); -ETIMEDOUT
 * (no backend in time); -EPROTO (a backend node is malformed — not a
 * decimal, a sector size that is not a power of two in 512..4096, a
 * physical sector size that is not a power of two multiple of it, a size
 * past 2^64 bytes — or `sectors` is missing once Connected; the close
 * handshake is then run); -EINVAL (bad @opts); -ECONNRESET (the backend
 * closed); -ENOSPC / -ENOMEM; the errors of the xenbus, grant and evtchn
 * calls.  Every failure is logged on stderr.
 */
int blkfront_open(pvabi_ctx *ctx, unsigned devid, const struct blkfront_opts *opts,
                  struct blkfront **out);

/**
 * blkfront_close() - finish what is in flight (up to the open timeout), run
 * the close handshake, wait for Closed, revoke the grants, unbind the port
 * and free @bf (NULL is allowed).  @bf is freed whatever the result.
 * Returns 0; -ETIMEDOUT (requests or the handshake did not finish: their
 * pages may still be granted until the context closes); -EIO (broken).
 */
int blkfront_close(struct blkfront *bf);

/** blkfront_info() - the device's parameters (valid until close). */
const struct blkfront_info *blkfront_info(const struct blkfront *bf);
/** blkfront_size() - the disk size in bytes. */
uint64_t blkfront_size(const struct blkfront *bf);
/** blkfront_sector_size() - the logical sector size. */
unsigned blkfront_sector_size(const struct blkfront *bf);
/** blkfront_readonly() - 1 for a read-only device (writes and discards fail -EROFS). */
int blkfront_readonly(const struct blkfront *bf);
/** blkfront_broken() - 0, or the error every call now fails with (-EIO broken, -ESHUTDOWN). */
int blkfront_broken(const struct blkfront *bf);
/** blkfront_inflight() - submitted operations not yet returned by blkfront_complete(). */
unsigned blkfront_inflight(const struct blkfront *bf);

/** Counters (blkfront_stats()). */
struct blkfront_stats {
    uint64_t ops;           /* operations completed */
    uint64_t requests;      /* ring requests published */
    uint64_t indirect;      /* of which indirect */
    uint64_t notifies;      /* event channel notifications sent */
    uint64_t bytes_read;    /* by successful reads */
    uint64_t bytes_written; /* by successful writes */
    uint64_t reconnects;    /* times the backend came back after it was lost */
};
void blkfront_stats(const struct blkfront *bf, struct blkfront_stats *out);

/** Operations of blkfront_submit(). */
enum {
    BLKFRONT_READ = 0,
    BLKFRONT_WRITE = 1,
    BLKFRONT_FLUSH = 2,   /* feature-flush-cache (or a write barrier without data) */
    BLKFRONT_DISCARD = 3, /* feature-discard */
};

/**
 * blkfront_submit() - start one operation.
 * @op: BLKFRONT_*.
 * @offset, @len: the byte range, multiples of the sector size, inside the
 *   disk; ignored for FLUSH.  At most the pool (pool_pages * 4096 bytes).
 * @buf: READ: receives the data at completion; WRITE: copied at once (it
 *   may be reused when this returns).  Unused for FLUSH and DISCARD.  A
 *   READ buffer must stay valid until the completion is returned.
 * @tag: returned with the completion.
 * The range is split into ring requests (11 segments each, or indirect ones
 * up to info.max_segments), published in one batch with one notification
 * when the backend asks for it.
 * Returns 0; -EAGAIN (no room now: ring slots, pool pages; complete some
 * first); -EINVAL (alignment, range past the end, @op); -E2BIG (bigger than
 * the pool); -EROFS (WRITE or DISCARD on a read-only device, before anything
 * is sent); -EOPNOTSUPP (FLUSH or DISCARD not advertised); -EIO /
 * -ESHUTDOWN (blkfront_broken()).
 * Does not block.
 */
int blkfront_submit(struct blkfront *bf, int op, uint64_t offset, size_t len, void *buf,
                    uint64_t tag);

/**
 * blkfront_fixed_buffer() - chunk @i of the fixed buffers: opts.fixed_pages
 * granted pages, in chunks of BLKFRONT_FIXED_CHUNK_PAGES contiguous pages
 * (the last may be shorter); *@len is the chunk's size in bytes.  A READ
 * or WRITE whose buffer is page-aligned inside these chunks uses its pages
 * in place: no copy (a READ's data lands there, a WRITE's bytes are sent
 * from there, so they must not change until the completion).  Like
 * io_uring's registered buffers.  Any other buffer goes through the pool.
 * Returns NULL (and *@len 0) past the last chunk.
 */
#define BLKFRONT_FIXED_CHUNK_PAGES 128u
void *blkfront_fixed_buffer(struct blkfront *bf, unsigned i, size_t *len);

/** One finished operation. */
struct blkfront_done {
    uint64_t tag;
    int status; /* 0; -EIO (backend error / broken); -EOPNOTSUPP; -ESHUTDOWN (device closed) */
};

/**
 * blkfront_complete() - collect up to @max finished operations into @out,
 * waiting up to @timeout_ms (0: do not wait) for at least one.  While it
 * waits it also follows the xenbus handshake (backend lost, back again,
 * closing).
 * Returns the count (0: none finished within @timeout_ms, or nothing in
 * flight); -EINVAL.  Errors of operations are in their status.
 */
int blkfront_complete(struct blkfront *bf, struct blkfront_done *out, unsigned max, int timeout_ms);

/*
 * Synchronous helpers.  They need no async operation in flight (-EBUSY
 * otherwise) and give up after @bf's timeout without progress
 * (-ETIMEDOUT: the operation may still complete later, so the device is
 * then marked broken).  pread/pwrite take any byte range inside the disk:
 * unaligned edges are read, modified and written back (not atomic against
 * another writer).  Return 0 or the operation's error, as blkfront_submit().
 */
int blkfront_pread(struct blkfront *bf, void *buf, size_t len, uint64_t offset);
int blkfront_pwrite(struct blkfront *bf, const void *buf, size_t len, uint64_t offset);
int blkfront_flush(struct blkfront *bf);
int blkfront_discard(struct blkfront *bf, uint64_t offset, uint64_t len);

#ifdef __cplusplus
}
#endif

#endif /* PVABI_EXAMPLES_BLKFRONT_H */
