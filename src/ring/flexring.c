/* SPDX-License-Identifier: MIT */
/*
 * Flex byte rings (DEFINE_XEN_FLEX_RING, the console page): a power-of-two
 * byte buffer, a producer and a consumer index running free in u32.
 *
 * The handle keeps its own copy of the index it advances and never reads it
 * back from shared memory: the peer could scribble on it, and a value we did
 * not write must not steer our copies.  The peer's index is read once per
 * call into a local, checked against what we know, and only then used.
 */
#include "pvabi-internal.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <pvabi/barrier.h>
#include <pvabi/flexring.h>

/*
 * Largest ring: with u32 indices, "full" (size) must stay distinct from
 * "empty" (0); on 32-bit hosts a count must also fit in ssize_t.
 */
#define FLEXRING_MAX_SIZE (SIZE_MAX > UINT32_MAX ? (size_t)1 << 31 : (size_t)1 << 30)

struct pvabi_flexring {
    unsigned char *data; /* shared byte buffer */
    uint32_t size;       /* bytes in @data, a power of two */
    uint32_t *prod;      /* shared producer index */
    uint32_t *cons;      /* shared consumer index */
    int role;            /* PVABI_FLEXRING_WRITER or _READER */
    uint32_t mine;       /* private copy of the index we advance */
    uint32_t peer;       /* last value of the peer's index that passed the checks */
    bool broken;         /* the peer broke the protocol; sticky */
};

static bool flexring_size_ok(size_t size)
{
    return size != 0 && size <= FLEXRING_MAX_SIZE && (size & (size - 1)) == 0;
}

/* Bytes published by the writer and not yet released by the reader. */
static uint32_t flexring_queued(const pvabi_flexring *ring)
{
    if (ring->role == PVABI_FLEXRING_WRITER)
        return ring->mine - ring->peer;
    return ring->peer - ring->mine;
}

/*
 * Is @seen a legal next value of the peer's index?  Distances are taken from
 * our own index, so u32 wraparound needs no special case.  A reader's prod may
 * only move forward and at most @size past our cons; a writer's cons may only
 * move forward and never past our prod.
 */
static bool flexring_peer_ok(const pvabi_flexring *ring, uint32_t seen)
{
    if (ring->role == PVABI_FLEXRING_READER) {
        uint32_t ahead = seen - ring->mine;
        return ahead <= ring->size && ahead >= ring->peer - ring->mine;
    }
    return ring->mine - seen <= ring->mine - ring->peer;
}

/* Marks the ring broken for good: nothing the peer does later can mend it. */
static int flexring_break(pvabi_flexring *ring)
{
    ring->broken = true;
    return -EPROTO;
}

/*
 * Reads the peer's index once, checks it and records it.  Returns 0 or
 * -EPROTO.  The acquire orders the data accesses that follow after it:
 * for a reader, prod before the reads of the bytes it covers; for a writer,
 * cons before our overwrite of the bytes the reader has finished with.
 */
static int flexring_sync_peer(pvabi_flexring *ring)
{
    uint32_t seen;

    if (ring->broken)
        return -EPROTO;
    if (ring->role == PVABI_FLEXRING_READER)
        /* prod before the data reads; pairs with the writer's release of prod. */
        seen = pvabi_load_acquire_u32(ring->prod);
    else
        /* cons before our data writes; pairs with the reader's release of cons. */
        seen = pvabi_load_acquire_u32(ring->cons);
    if (!flexring_peer_ok(ring, seen))
        return flexring_break(ring);
    ring->peer = seen;
    return 0;
}

PVABI_EXPORT int pvabi_flexring_open(pvabi_flexring **out, void *data, size_t size, uint32_t *prod,
                                     uint32_t *cons, int role)
{
    pvabi_flexring *ring;
    uint32_t *own;

    if (!out || !data || !prod || !cons || !flexring_size_ok(size))
        return -EINVAL;
    if (role != PVABI_FLEXRING_WRITER && role != PVABI_FLEXRING_READER)
        return -EINVAL;
    ring = calloc(1, sizeof(*ring));
    if (!ring)
        return -ENOMEM;
    *ring = (pvabi_flexring){
        .data = data, .size = (uint32_t)size, .prod = prod, .cons = cons, .role = role
    };
    /* The only read of our own index: from here on we trust our private copy. */
    own = role == PVABI_FLEXRING_WRITER ? prod : cons;
    ring->mine = pvabi_load_relaxed_u32(own);
    /* No earlier peer value yet: pretend one that lets the first check only
     * bound the distance (prod at cons; cons a whole ring behind prod). */
    ring->peer = role == PVABI_FLEXRING_READER ? ring->mine : ring->mine - ring->size;
    *out = ring;
    return flexring_sync_peer(ring);
}

PVABI_EXPORT void pvabi_flexring_close(pvabi_flexring *ring)
{
    free(ring);
}

/* Copies @n bytes from @buf into the ring at our prod: at most two memcpy. */
static void flexring_copy_in(pvabi_flexring *ring, const unsigned char *buf, uint32_t n)
{
    uint32_t off = ring->mine & (ring->size - 1);
    uint32_t first = ring->size - off < n ? ring->size - off : n;

    memcpy(ring->data + off, buf, first);
    if (n > first)
        memcpy(ring->data, buf + first, n - first);
}

/* Copies @n bytes out of the ring at our cons into @buf: each byte read once. */
static void flexring_copy_out(const pvabi_flexring *ring, unsigned char *buf, uint32_t n)
{
    uint32_t off = ring->mine & (ring->size - 1);
    uint32_t first = ring->size - off < n ? ring->size - off : n;

    memcpy(buf, ring->data + off, first);
    if (n > first)
        memcpy(buf + first, ring->data, n - first);
}

PVABI_EXPORT ssize_t pvabi_flexring_write(pvabi_flexring *ring, const void *buf, size_t len)
{
    uint32_t n;
    int err;

    if (!ring || ring->role != PVABI_FLEXRING_WRITER || (!buf && len > 0))
        return -EINVAL;
    err = flexring_sync_peer(ring);
    if (err < 0)
        return err;
    n = ring->size - flexring_queued(ring);
    if (len < n)
        n = (uint32_t)len;
    if (n == 0)
        return 0;
    flexring_copy_in(ring, buf, n);
    ring->mine += n;
    /* Data writes before prod; pairs with the reader's acquire of prod. */
    pvabi_store_release_u32(ring->prod, ring->mine);
    return n;
}

PVABI_EXPORT ssize_t pvabi_flexring_read(pvabi_flexring *ring, void *buf, size_t len)
{
    uint32_t n;
    int err;

    if (!ring || ring->role != PVABI_FLEXRING_READER || (!buf && len > 0))
        return -EINVAL;
    err = flexring_sync_peer(ring);
    if (err < 0)
        return err;
    n = flexring_queued(ring);
    if (len < n)
        n = (uint32_t)len;
    if (n == 0)
        return 0;
    flexring_copy_out(ring, buf, n);
    ring->mine += n;
    /* Data reads before cons, since the writer may then overwrite the bytes;
     * pairs with the writer's acquire of cons. */
    pvabi_store_release_u32(ring->cons, ring->mine);
    return n;
}

PVABI_EXPORT ssize_t pvabi_flexring_used(pvabi_flexring *ring)
{
    int err;

    if (!ring)
        return -EINVAL;
    err = flexring_sync_peer(ring);
    if (err < 0)
        return err;
    return flexring_queued(ring);
}

PVABI_EXPORT ssize_t pvabi_flexring_space(pvabi_flexring *ring)
{
    ssize_t used = pvabi_flexring_used(ring);

    if (used < 0)
        return used;
    return (ssize_t)ring->size - used;
}

PVABI_EXPORT int pvabi_flexring_broken(const pvabi_flexring *ring)
{
    if (!ring)
        return -EINVAL;
    return ring->broken ? -EPROTO : 0;
}
