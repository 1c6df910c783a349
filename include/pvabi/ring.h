/* SPDX-License-Identifier: MIT */
/*
 * pvabi/ring.h - shared I/O rings, byte-compatible with Xen's xen/io/ring.h.
 *
 * PVABI_RING_DEFINE(name, req_t, rsp_t) generates, for one request and one
 * response type:
 *
 *   union  name_slot     one ring slot (req_t or rsp_t), as Xen's name_sring_entry
 *   struct name_shared   the shared pages, as Xen's struct name_sring
 *   struct name_front    the frontend's private state (produces requests)
 *   struct name_back     the backend's private state (produces responses)
 *
 * and typed static inline functions over them (see "Generated functions"
 * below).  The shared layout is Xen's: four u32 indices (req_prod, req_event,
 * rsp_prod, rsp_event), 4 private bytes, padding to 64 bytes, then the slots;
 * the slot count is the largest power of two that fits in 1 << page_order
 * pages.  Indices run free in u32 and wrap; wraparound is normal operation.
 * A ring set up here can be driven by Xen's RING_* macros or Linux's drivers
 * on the other side, and the other way round.
 *
 * Safety against a hostile peer (see docs/rings.md):
 *  - the peer's producer index is read once per batch, validated against
 *    what the protocol allows (never more than the ring holds, never
 *    backwards, never responses to requests that were not published) and a
 *    violation marks the ring broken: every later call returns -EPROTO;
 *  - a slot is copied out of shared memory exactly once, into the caller's
 *    buffer, before anything looks at it (no double fetch, XSA-155);
 *  - our own producer index is kept privately; the shared copy is only
 *    written, never trusted.
 *
 * Ordering: see pvabi/barrier.h; each barrier below names its pair.
 *
 * Thread-safety: one thread at a time per end (front or back).  The two ends
 *   may run concurrently in different threads, processes or domains.
 * Blocking: nothing here blocks or loops on peer-controlled data.
 * Fork: the state is plain memory; a child may continue as the same end only
 *   if the parent stops using it.
 */
#ifndef PVABI_RING_H
#define PVABI_RING_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <pvabi/barrier.h>

#ifdef __cplusplus
#define PVABI__STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define PVABI__STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

/* Generated functions live in the driver's .c file, where clang warns about
 * the ones a driver does not call. */
#define PVABI__GENERATED static inline __attribute__((unused))

#ifdef __cplusplus
extern "C" {
#endif

/** Size of one ring page, fixed by the Xen ABI whatever the host page size. */
#define PVABI_RING_PAGE_SIZE 4096u
/** Largest ring-page-order (16 pages), as Xen's blkif max-ring-page-order. */
#define PVABI_RING_MAX_ORDER 4u
/** Bytes of shared header before the first slot. */
#define PVABI_RING_HEADER_SIZE 64u
/** Alignment the shared area must have (a page is always enough). */
#define PVABI_RING_ALIGN 64u

/** A ring index: a free-running u32, as Xen's RING_IDX. */
typedef uint32_t pvabi_ring_idx;

/**
 * struct pvabi_ring_header - the first 64 bytes of every shared ring, as in
 * Xen's DEFINE_RING_TYPES.  Wire ABI: never changes.
 */
struct pvabi_ring_header {
    pvabi_ring_idx req_prod, req_event;
    pvabi_ring_idx rsp_prod, rsp_event;
    uint8_t pvt[4]; /* Xen's pvt union (netif smartpoll, ...) */
    uint8_t pad[44];
};
PVABI__STATIC_ASSERT(sizeof(struct pvabi_ring_header) == PVABI_RING_HEADER_SIZE,
                     "ring header is 64 bytes");
PVABI__STATIC_ASSERT(offsetof(struct pvabi_ring_header, req_event) == 4, "Xen layout");
PVABI__STATIC_ASSERT(offsetof(struct pvabi_ring_header, rsp_prod) == 8, "Xen layout");
PVABI__STATIC_ASSERT(offsetof(struct pvabi_ring_header, rsp_event) == 12, "Xen layout");
PVABI__STATIC_ASSERT(offsetof(struct pvabi_ring_header, pvt) == 16, "Xen layout");

/**
 * pvabi_ring_nr_ents() - slots in a ring of 1 << @page_order pages.
 * @page_order: 0..PVABI_RING_MAX_ORDER.
 * @slots_offset: offset of the slot array in the shared struct (64 unless a
 *   slot needs more alignment).
 * @slot_size: size of one slot.
 *
 * Returns the largest power of two that fits (Xen's __RING_SIZE), or 0 when
 * @page_order is out of range or not even one slot fits.
 */
static inline uint32_t pvabi_ring_nr_ents(unsigned page_order, size_t slots_offset,
                                          size_t slot_size)
{
    if (page_order > PVABI_RING_MAX_ORDER || slot_size == 0)
        return 0;
    size_t bytes = (size_t)PVABI_RING_PAGE_SIZE << page_order;
    if (slots_offset >= bytes)
        return 0;
    size_t n = (bytes - slots_offset) / slot_size;
    uint32_t pow2 = 1;
    if (n == 0)
        return 0;
    while ((size_t)pow2 * 2 <= n)
        pow2 *= 2;
    return pow2;
}

/**
 * struct pvabi_ring_end - the private state of one end of a ring.  Lives in
 * the caller's memory, never in shared memory; the fields are not API (use the
 * generated functions) and may change between releases without an ABI break,
 * because no library symbol takes this struct.
 */
struct pvabi_ring_end {
    unsigned char *slots;             /* first slot in shared memory */
    pvabi_ring_idx *prod;             /* shared index we publish */
    pvabi_ring_idx *event;            /* shared event index we arm */
    const pvabi_ring_idx *peer_prod;  /* shared index the peer publishes */
    const pvabi_ring_idx *peer_event; /* shared event index the peer arms */
    uint32_t nr_ents;                 /* power of two */
    pvabi_ring_idx prod_pvt;          /* next slot we fill */
    pvabi_ring_idx prod_pub;          /* what we last published */
    pvabi_ring_idx cons;              /* next peer slot we consume */
    pvabi_ring_idx seen;              /* last validated peer producer index */
    int broken;                       /* 0, -EPROTO (peer), -EINVAL (no attach) */
    int is_back;                      /* backend: responds to consumed requests */
};

/* ---- internals of the generated functions: not API, may change ---------- */

static inline int pvabi__ring_attach(struct pvabi_ring_end *e, void *shared, unsigned page_order,
                                     size_t slots_offset, size_t slot_size, int is_back)
{
    struct pvabi_ring_header *h = (struct pvabi_ring_header *)shared;
    uint32_t nr = pvabi_ring_nr_ents(page_order, slots_offset, slot_size);

    if (!e)
        return -EINVAL;
    /* A failed attach leaves an end on which every call fails cleanly. */
    memset(e, 0, sizeof(*e));
    e->broken = -EINVAL;
    if (!shared || nr == 0 || ((uintptr_t)shared % PVABI_RING_ALIGN) != 0)
        return -EINVAL;
    e->slots = (unsigned char *)shared + slots_offset;
    e->prod = is_back ? &h->rsp_prod : &h->req_prod;
    e->event = is_back ? &h->req_event : &h->rsp_event;
    e->peer_prod = is_back ? &h->req_prod : &h->rsp_prod;
    e->peer_event = is_back ? &h->rsp_event : &h->req_event;
    e->nr_ents = nr;
    e->is_back = is_back;
    e->broken = 0;
    /* Acquire: slots published before these indices are visible to us
     * (pairs with the peer's release in pvabi__ring_publish). */
    pvabi_ring_idx req = pvabi_load_acquire_u32(&h->req_prod);
    pvabi_ring_idx rsp = pvabi_load_acquire_u32(&h->rsp_prod);
    if (req - rsp > nr) {
        e->broken = -EPROTO;
        return -EPROTO;
    }
    /* A backend resumes at the first unanswered request; a frontend keeps
     * producing after what it published and resumes consuming at rsp_prod. */
    e->prod_pvt = e->prod_pub = is_back ? rsp : req;
    e->cons = e->seen = rsp;
    return 0;
}

static inline int pvabi__ring_init(struct pvabi_ring_end *e, void *shared, unsigned page_order,
                                   size_t slots_offset, size_t slot_size)
{
    struct pvabi_ring_header *h = (struct pvabi_ring_header *)shared;

    if (!e || !shared || ((uintptr_t)shared % PVABI_RING_ALIGN) != 0 ||
        pvabi_ring_nr_ents(page_order, slots_offset, slot_size) == 0)
        return pvabi__ring_attach(e, NULL, 0, 0, 0, 0); /* leaves e failing */
    memset(h, 0, sizeof(*h));
    h->req_event = 1;
    h->rsp_event = 1;
    return pvabi__ring_attach(e, shared, page_order, slots_offset, slot_size, 0);
}

/* How many more requests the protocol lets the peer have published beyond
 * our consumer index: a backend has nr_ents response slots minus those owed;
 * a frontend can only get responses to requests it published. */
static inline uint32_t pvabi__ring_peer_limit(const struct pvabi_ring_end *e)
{
    return e->is_back ? e->nr_ents - (e->cons - e->prod_pvt) : e->prod_pub - e->cons;
}

/* Reads the peer's producer index once, validates it, remembers it. */
static inline int pvabi__ring_refresh(struct pvabi_ring_end *e)
{
    if (e->broken)
        return e->broken;
    /* Acquire: the slots the peer filled before publishing p are visible to
     * the copies that follow (pairs with the peer's release in publish). */
    pvabi_ring_idx p = pvabi_load_acquire_u32(e->peer_prod);
    uint32_t avail = p - e->cons;
    if (avail > pvabi__ring_peer_limit(e) || avail < e->seen - e->cons) {
        e->broken = -EPROTO; /* ahead of what it may produce, or backwards */
        return -EPROTO;
    }
    e->seen = p;
    return (int)avail;
}

static inline int pvabi__ring_unconsumed(struct pvabi_ring_end *e)
{
    return pvabi__ring_refresh(e);
}

static inline int pvabi__ring_room(const struct pvabi_ring_end *e)
{
    if (e->broken)
        return e->broken;
    if (e->is_back) /* one response per consumed request */
        return (int)(e->cons - e->prod_pvt);
    return (int)(e->nr_ents - (e->prod_pvt - e->cons));
}

/* @is_back is a constant at every call site, so the role costs no branch. */
static inline void *pvabi__ring_next_slot(struct pvabi_ring_end *e, size_t slot_size, int is_back)
{
    uint32_t room = is_back ? e->cons - e->prod_pvt : e->nr_ents - (e->prod_pvt - e->cons);

    if (room == 0 || e->broken)
        return NULL;
    void *slot = e->slots + (size_t)(e->prod_pvt & (e->nr_ents - 1)) * slot_size;
    e->prod_pvt++;
    return slot;
}

/* Returns 1 when the peer asked to be notified, 0 when not, -EPROTO. */
static inline int pvabi__ring_publish(struct pvabi_ring_end *e)
{
    pvabi_ring_idx old = e->prod_pub, now = e->prod_pvt;

    if (e->broken)
        return e->broken;
    if (old == now)
        return 0;
    /* Release: the slots filled since `old` are visible before the index
     * (pairs with the acquire in the peer's refresh). */
    pvabi_store_release_u32(e->prod, now);
    e->prod_pub = now;
    /* Full fence: our new index is visible before we read the peer's event
     * index, so either we see its re-armed event or it sees our index
     * (pairs with the fence in the peer's final_check). */
    pvabi_fence_full();
    pvabi_ring_idx ev = pvabi_load_relaxed_u32(e->peer_event);
    return (pvabi_ring_idx)(now - ev) < (pvabi_ring_idx)(now - old);
}

/* Copies up to @max entries of @size bytes out, once each.  Count or -EPROTO. */
static inline int pvabi__ring_copy(struct pvabi_ring_end *e, void *out, unsigned max, size_t size,
                                   size_t slot_size)
{
    int n;

    if (e->broken)
        return e->broken;
    if (e->seen == e->cons && (n = pvabi__ring_refresh(e)) <= 0)
        return n;
    uint32_t avail = e->seen - e->cons;
    uint32_t todo = avail < max ? avail : max;
    const unsigned char *src = e->slots + (size_t)(e->cons & (e->nr_ents - 1)) * slot_size;
    const unsigned char *end = e->slots + (size_t)e->nr_ents * slot_size;
    unsigned char *dst = (unsigned char *)out;
    /* Pointer steps, wrapping once at the end of the slot array. */
    for (uint32_t i = 0; i < todo; i++, dst += size) {
        memcpy(dst, src, size);
        src += slot_size;
        if (src == end)
            src = e->slots;
    }
    /* Compiler barrier: every later use of the copies reads the copies, never
     * the shared slots again (the XSA-155 double fetch). */
    pvabi_compiler_barrier();
    e->cons += todo;
    return (int)todo;
}

/* Re-arms our event index when idle; returns the unconsumed count after. */
static inline int pvabi__ring_final_check(struct pvabi_ring_end *e)
{
    int n = pvabi__ring_refresh(e);
    if (n != 0)
        return n;
    pvabi_store_relaxed_u32(e->event, e->cons + 1);
    /* Full fence: the re-armed event index is visible before we read the
     * peer's producer index again (pairs with the fence in the peer's
     * publish), so an entry published meanwhile is either seen here or
     * notified. */
    pvabi_fence_full();
    return pvabi__ring_refresh(e);
}

/*
 * Generated functions, for PVABI_RING_DEFINE(name, req_t, rsp_t).  All return
 * a negative errno on failure; -EPROTO means the ring is broken for good.
 *
 * Frontend (produces requests, consumes responses):
 *   int     name_front_init(struct name_front *f, void *shared, unsigned order)
 *             Initialise the shared ring (indices 0, events 1) and attach.
 *             -EINVAL: NULL, shared not 64-byte aligned, order > 4, no slot fits.
 *   int     name_front_attach(struct name_front *f, void *shared, unsigned order)
 *             Attach to an existing ring keeping its indices: produce after
 *             req_prod, consume from rsp_prod.  -EINVAL as above; -EPROTO if
 *             the shared indices are inconsistent (ring marked broken).
 *   int     name_front_free(const struct name_front *f)    free request slots
 *   req_t  *name_front_next_req(struct name_front *f)
 *             Reserve the next request slot and return it to be filled in
 *             place; NULL when the ring is full or broken.  Not visible to the
 *             backend until name_front_publish().
 *   int     name_front_publish(struct name_front *f)
 *             Publish every reserved request with one index update.  Returns
 *             1 if the backend must be notified (Xen's req_event protocol),
 *             0 if not, -EPROTO.
 *   int     name_front_unconsumed(struct name_front *f)   responses waiting
 *   int     name_front_copy_rsp(struct name_front *f, rsp_t *out)
 *             Copy the next response out (1), none waiting (0), -EPROTO.
 *   int     name_front_copy_rsps(struct name_front *f, rsp_t *out, unsigned max)
 *             Copy up to max responses with one index read; the count.
 *   int     name_front_final_check(struct name_front *f)
 *             When idle, re-arm rsp_event so the backend notifies on its next
 *             response; returns responses waiting after that (consume them
 *             before sleeping), or -EPROTO.
 *   int     name_front_broken(const struct name_front *f)
 *             0, -EPROTO once the peer broke the protocol, or -EINVAL when
 *             init/attach failed (every call on such an end fails the same).
 *
 * Backend (consumes requests, produces responses): name_back_attach,
 * name_back_unconsumed, name_back_copy_req, name_back_copy_reqs,
 * name_back_final_check, name_back_broken as above with the roles swapped;
 * name_back_owed() counts consumed requests not yet answered;
 * name_back_next_rsp() reserves a response slot (NULL when every consumed
 * request is answered, or broken); name_back_publish() publishes responses
 * and returns the notify decision.  A backend attaching to a live ring
 * resumes at the first unanswered request (rsp_prod).
 *
 * name_ring_nr_ents(order) gives the slot count of a ring of 1 << order pages.
 */
#define PVABI_RING_DEFINE(name, req_t, rsp_t)                                                      \
    union name##_slot {                                                                            \
        req_t req;                                                                                 \
        rsp_t rsp;                                                                                 \
    };                                                                                             \
    struct name##_shared {                                                                         \
        pvabi_ring_idx req_prod, req_event;                                                        \
        pvabi_ring_idx rsp_prod, rsp_event;                                                        \
        uint8_t pvt[4];                                                                            \
        uint8_t pad[44];                                                                           \
        union name##_slot ring[];                                                                  \
    };                                                                                             \
    PVABI__STATIC_ASSERT(offsetof(struct name##_shared, pvt) == 16, "Xen ring layout");            \
    PVABI__STATIC_ASSERT(offsetof(struct name##_shared, ring) % PVABI_RING_HEADER_SIZE == 0,       \
                         "Xen ring layout");                                                       \
    struct name##_front {                                                                          \
        struct pvabi_ring_end end;                                                                 \
    };                                                                                             \
    struct name##_back {                                                                           \
        struct pvabi_ring_end end;                                                                 \
    };                                                                                             \
    PVABI__GENERATED uint32_t name##_ring_nr_ents(unsigned order)                                  \
    {                                                                                              \
        return pvabi_ring_nr_ents(order, offsetof(struct name##_shared, ring),                     \
                                  sizeof(union name##_slot));                                      \
    }                                                                                              \
    PVABI__GENERATED int name##_front_init(struct name##_front *f, void *shared, unsigned order)   \
    {                                                                                              \
        return pvabi__ring_init(f ? &f->end : NULL, shared, order,                                 \
                                offsetof(struct name##_shared, ring), sizeof(union name##_slot));  \
    }                                                                                              \
    PVABI__GENERATED int name##_front_attach(struct name##_front *f, void *shared, unsigned order) \
    {                                                                                              \
        return pvabi__ring_attach(f ? &f->end : NULL, shared, order,                               \
                                  offsetof(struct name##_shared, ring), sizeof(union name##_slot), \
                                  0);                                                              \
    }                                                                                              \
    PVABI__GENERATED int name##_back_attach(struct name##_back *b, void *shared, unsigned order)   \
    {                                                                                              \
        return pvabi__ring_attach(b ? &b->end : NULL, shared, order,                               \
                                  offsetof(struct name##_shared, ring), sizeof(union name##_slot), \
                                  1);                                                              \
    }                                                                                              \
    PVABI__GENERATED int name##_front_free(const struct name##_front *f)                           \
    {                                                                                              \
        return pvabi__ring_room(&f->end);                                                          \
    }                                                                                              \
    PVABI__GENERATED int name##_back_owed(const struct name##_back *b)                             \
    {                                                                                              \
        return pvabi__ring_room(&b->end);                                                          \
    }                                                                                              \
    PVABI__GENERATED req_t *name##_front_next_req(struct name##_front *f)                          \
    {                                                                                              \
        return (req_t *)pvabi__ring_next_slot(&f->end, sizeof(union name##_slot), 0);              \
    }                                                                                              \
    PVABI__GENERATED rsp_t *name##_back_next_rsp(struct name##_back *b)                            \
    {                                                                                              \
        return (rsp_t *)pvabi__ring_next_slot(&b->end, sizeof(union name##_slot), 1);              \
    }                                                                                              \
    PVABI__GENERATED int name##_front_publish(struct name##_front *f)                              \
    {                                                                                              \
        return pvabi__ring_publish(&f->end);                                                       \
    }                                                                                              \
    PVABI__GENERATED int name##_back_publish(struct name##_back *b)                                \
    {                                                                                              \
        return pvabi__ring_publish(&b->end);                                                       \
    }                                                                                              \
    PVABI__GENERATED int name##_front_unconsumed(struct name##_front *f)                           \
    {                                                                                              \
        return pvabi__ring_unconsumed(&f->end);                                                    \
    }                                                                                              \
    PVABI__GENERATED int name##_back_unconsumed(struct name##_back *b)                             \
    {                                                                                              \
        return pvabi__ring_unconsumed(&b->end);                                                    \
    }                                                                                              \
    PVABI__GENERATED int name##_front_copy_rsps(struct name##_front *f, rsp_t *out, unsigned max)  \
    {                                                                                              \
        return pvabi__ring_copy(&f->end, out, max, sizeof(rsp_t), sizeof(union name##_slot));      \
    }                                                                                              \
    PVABI__GENERATED int name##_back_copy_reqs(struct name##_back *b, req_t *out, unsigned max)    \
    {                                                                                              \
        return pvabi__ring_copy(&b->end, out, max, sizeof(req_t), sizeof(union name##_slot));      \
    }                                                                                              \
    PVABI__GENERATED int name##_front_copy_rsp(struct name##_front *f, rsp_t *out)                 \
    {                                                                                              \
        return name##_front_copy_rsps(f, out, 1);                                                  \
    }                                                                                              \
    PVABI__GENERATED int name##_back_copy_req(struct name##_back *b, req_t *out)                   \
    {                                                                                              \
        return name##_back_copy_reqs(b, out, 1);                                                   \
    }                                                                                              \
    PVABI__GENERATED int name##_front_final_check(struct name##_front *f)                          \
    {                                                                                              \
        return pvabi__ring_final_check(&f->end);                                                   \
    }                                                                                              \
    PVABI__GENERATED int name##_back_final_check(struct name##_back *b)                            \
    {                                                                                              \
        return pvabi__ring_final_check(&b->end);                                                   \
    }                                                                                              \
    PVABI__GENERATED int name##_front_broken(const struct name##_front *f)                         \
    {                                                                                              \
        return f->end.broken;                                                                      \
    }                                                                                              \
    PVABI__GENERATED int name##_back_broken(const struct name##_back *b)                           \
    {                                                                                              \
        return b->end.broken;                                                                      \
    }                                                                                              \
    struct name##_dummy_for_semicolon

#ifdef __cplusplus
}
#endif

#endif /* PVABI_RING_H */
