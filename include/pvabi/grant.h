/* SPDX-License-Identifier: MIT */
/*
 * pvabi/grant.h - grant references: sharing pages between domains.
 *
 * A frontend shares pages with pvabi_grant_share(): it gets new zeroed pages
 * and one grant reference per page, publishes the refs (normally in
 * xenstore), and ends the share with pvabi_grant_revoke(), which refuses
 * (-EBUSY) while the peer still maps a page, so a page is never reused under
 * a mapper.  A backend maps refs with pvabi_grant_map() (all or nothing),
 * unmaps with pvabi_grant_unmap(), or copies without mapping with
 * pvabi_grant_copy().  Unmap-notify (pvabi_grant_notify(),
 * pvabi_map_notify()) tells the other side when a process dies holding a
 * share or a mapping: a byte in the page is cleared and/or an event sent.
 *
 * Pages are PVABI_PAGE_SIZE (4096) bytes whatever the host page size.
 *
 * Platform notes: on the local platform, refs come from the daemon in one
 * batch per share and each share is its own sealed memfd; a read-only grant
 * can only ever be mapped read-only.  On Xen, refs come from gntalloc, and
 * the kernel defers freeing a revoked page that is still mapped instead of
 * reporting it, so revoke returns 0 there.
 *
 * Thread-safety: calls on one context serialise on it; a pvabi_grant or
 * pvabi_map may be used by one thread at a time.  Blocking: one round trip to
 * the hypervisor per call (local: 10 s timeout), except pvabi_grant_unmap()
 * on the local platform, which does not wait for the answer.  Fork: shares and mappings
 * belong to the context's process; a child inherits the memory (Linux
 * semantics) but not the right to revoke or unmap it through pvabi.
 */
#ifndef PVABI_GRANT_H
#define PVABI_GRANT_H

#include <stddef.h>
#include <stdint.h>

#include <pvabi/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Flag: the grantee may only read (share) / map read-only (map). */
#define PVABI_GRANT_RO 1u

/** Most pages in one pvabi_grant_share() or pvabi_grant_map(). */
#define PVABI_GRANT_BATCH_MAX 128u

/* ---- sharing side (frontend) ------------------------------------------ */

/** Pages shared with one domain, each with a grant reference (opaque). */
typedef struct pvabi_grant pvabi_grant;

/**
 * pvabi_grant_share() - allocate @count zeroed pages and grant them to @domid.
 * @flags: 0 or PVABI_GRANT_RO.
 * @out: receives the share; NULL on failure.
 * Returns 0; -EINVAL (@count 0 or above PVABI_GRANT_BATCH_MAX, bad flags);
 * -ENOSPC (the grant table is full); -ENOMEM; -ENOTCONN; -ENOTSUP (xen:
 * /dev/xen/gntalloc unavailable).
 */
int pvabi_grant_share(pvabi_ctx *ctx, pvabi_domid domid, unsigned count, unsigned flags,
                      pvabi_grant **out);

/** pvabi_grant_addr() - the shared pages, contiguous, writable by us. */
void *pvabi_grant_addr(const pvabi_grant *g);

/** pvabi_grant_count() - how many pages. */
unsigned pvabi_grant_count(const pvabi_grant *g);

/** pvabi_grant_ref() - the grant reference of page @page (0 if out of range). */
pvabi_gref pvabi_grant_ref(const pvabi_grant *g, unsigned page);

/**
 * pvabi_grant_notify() - when this process dies while sharing, clear the byte
 * at @offset of page @page and/or notify @port (a port of this context).
 * @offset: 0..4095, or PVABI_PAGE_SIZE for no byte.  @port: 0 for no event.
 * A later call replaces the earlier one for the page.  pvabi_grant_revoke()
 * performs the action too, as Xen's gntalloc does.
 * Returns 0; -EINVAL; -ENOTCONN; -ENOTSUP on Xen, where libxengnttab sets a
 * share's unmap-notify only at share time.
 */
int pvabi_grant_notify(pvabi_grant *g, unsigned page, unsigned offset, pvabi_port port);

/**
 * pvabi_grant_revoke() - end the share and free it.
 * Returns 0 (@g is freed, the pages are gone); -EBUSY (the grantee still maps
 * a page: nothing changed, @g stays valid; retry after the grantee unmaps);
 * -ENOTCONN (the hypervisor is gone: @g is freed).
 */
int pvabi_grant_revoke(pvabi_grant *g);

/* ---- mapping side (backend) -------------------------------------------- */

/** A mapping of granted pages (opaque). */
typedef struct pvabi_map pvabi_map;

/**
 * pvabi_grant_map() - map @count refs granted by @domid, contiguously.
 * @flags: 0 (read-write) or PVABI_GRANT_RO.
 * @status: NULL, or receives @count statuses: 0, or why that ref failed
 *   (-EPERM not granted to us or read-only; -ENOENT no such or revoked ref;
 *   -ESRCH no such domain; on Xen -EIO for GNTST_general_error: not granted
 *   to us, revoked, or read-only mapped writable — Xen does not say which).
 * @out: receives the mapping; NULL on failure.
 * All or nothing: on failure nothing stays mapped.
 * Returns 0; -EINVAL (@count 0 or above PVABI_GRANT_BATCH_MAX); the first
 * failing ref's status; -ENOMEM; -ENOTCONN; -ENOTSUP (xen: no /dev/xen/gntdev).
 * Blocks: one round trip (local: 10 s timeout); on Xen, libxengnttab retries
 * the map of a paged-out page without a limit.
 */
int pvabi_grant_map(pvabi_ctx *ctx, pvabi_domid domid, const pvabi_gref *refs, unsigned count,
                    unsigned flags, int *status, pvabi_map **out);

/** pvabi_map_addr() - the mapped pages. */
void *pvabi_map_addr(const pvabi_map *m);

/**
 * pvabi_map_notify() - when this process dies with @m mapped, clear the byte
 * at @offset of page @page and/or notify @port (a port of this context);
 * pvabi_grant_unmap() performs it too.  Arguments as pvabi_grant_notify().
 * Clearing a byte of a read-only mapping is -EINVAL (as on Xen).  On Xen one
 * notify per mapping: a later call replaces it for every page.
 */
int pvabi_map_notify(pvabi_map *m, unsigned page, unsigned offset, pvabi_port port);

/**
 * pvabi_grant_unmap() - unmap and free @m (NULL is allowed), after performing
 * its unmap-notify actions (the byte first, the event last).
 * Returns 0; -ENOTCONN, or on the local platform -ETIMEDOUT (the daemon took
 * no request for 10 s: the connection is gone); the memory is unmapped all
 * the same.
 * Blocking, local platform: the request is sent without waiting for an
 * answer (only while the daemon's socket is full, up to 10 s).  The daemon
 * still handles it before any later request of this context, and before it
 * would refuse the sharer's pvabi_grant_revoke() with -EBUSY, so a sharer
 * told of the unmap afterwards (by the unmap-notify event or any other
 * means) can revoke at once.  A refusal by the daemon (it does not think we
 * map these pages) is only in the daemon's log.
 */
int pvabi_grant_unmap(pvabi_map *m);

/** One segment of a pvabi_grant_copy(). */
struct pvabi_grant_copy_seg {
    void *local;        /* our buffer */
    pvabi_gref ref;     /* the foreign page */
    pvabi_domid domid;  /* its granting domain */
    uint16_t offset;    /* in the foreign page */
    uint16_t len;       /* offset + len <= PVABI_PAGE_SIZE */
    uint8_t to_foreign; /* 1: local -> foreign page; 0: foreign page -> local */
    int status;         /* out: 0 or a negative errno, as pvabi_grant_map() */
};

/**
 * pvabi_grant_copy() - copy each segment between a local buffer and a foreign
 * page without keeping it mapped.  Segments are independent: each gets its
 * own status, and a failed one does not stop the others.
 * Returns the number of failed segments (0: all done); -EINVAL (NULL, or
 * @count above PVABI_GRANT_BATCH_MAX); -ENOTCONN.
 */
int pvabi_grant_copy(pvabi_ctx *ctx, struct pvabi_grant_copy_seg *segs, unsigned count);

/** One grant in a domain's table, as pvabi_grant_list() reports it. */
struct pvabi_grant_entry {
    pvabi_domid granter; /* the sharing domain */
    pvabi_domid grantee; /* the one domain allowed to map it */
    pvabi_gref ref;
    uint32_t flags; /* PVABI_GRANT_RO for a read-only grant */
    uint32_t maps;  /* live mappings of it by the grantee (0: none) */
    uint32_t dying; /* 1: the granter is gone; kept while mapped */
};

/**
 * pvabi_grant_list() - the live grants of domain @granter with a ref >=
 * @first, in ascending ref order, at most @max of them into @out: what
 * `pvabi grants` prints.  To page, call again with @first = last ref + 1.
 * Another domain's grants need privilege (the privileged domain or a
 * PVABI_OPEN_TOOLSTACK context).
 * Returns how many were written; -EINVAL (NULL, @max 0); -EPERM; -ESRCH (no
 * such domain, live or dying); -EOPNOTSUPP on the xen platform (Xen has no
 * hypercall that lists a domain's grants); -ENOTCONN.
 * Blocks for a round trip to the daemon per 256 entries.
 */
int pvabi_grant_list(pvabi_ctx *ctx, pvabi_domid granter, pvabi_gref first,
                     struct pvabi_grant_entry *out, unsigned max);

#ifdef __cplusplus
}
#endif

#endif /* PVABI_GRANT_H */
