/* SPDX-License-Identifier: MIT */
/*
 * pvabi/flexring.h - flex byte rings, compatible with Xen's DEFINE_XEN_FLEX_RING.
 *
 * A flex ring is a power-of-two byte buffer plus a producer and a consumer
 * index (free-running u32, as RING_IDX) that live somewhere in shared memory.
 * The console ring (struct xencons_interface: in[1024], out[2048] and four
 * indices) and the rings of DEFINE_XEN_FLEX_RING_AND_INTF (pvcalls, 9pfs)
 * have this shape; the layouts are given below as shared-memory structs.
 *
 * One end writes (PVABI_FLEXRING_WRITER: advances prod, reads cons), the
 * other reads (PVABI_FLEXRING_READER: advances cons, reads prod).  The peer's
 * index is validated on every read of it: a reader whose prod is more than the
 * ring size ahead of cons or went backwards, or a writer whose cons passed
 * prod or went backwards, marks the ring broken and every later call returns
 * -EPROTO.  Data bytes are copied out once; nothing read from shared memory
 * is used as an index unchecked.
 *
 * Thread-safety: one thread at a time per handle; the two ends may run
 *   concurrently anywhere.  Blocking: nothing blocks.  Fork: the handle is
 *   plain memory; use it from one process only.
 */
#ifndef PVABI_FLEXRING_H
#define PVABI_FLEXRING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
#define PVABI__FLEX_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define PVABI__FLEX_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

#ifdef __cplusplus
extern "C" {
#endif

/** A flex ring handle (opaque). */
typedef struct pvabi_flexring pvabi_flexring;

/** Which end a handle drives. */
enum {
    PVABI_FLEXRING_WRITER = 1, /* produces bytes: advances prod */
    PVABI_FLEXRING_READER = 2, /* consumes bytes: advances cons */
};

/**
 * struct pvabi_console_intf - the Xen console page (xen/io/console.h,
 * struct xencons_interface).  The guest writes `out` and reads `in`.
 */
struct pvabi_console_intf {
    char in[1024];
    char out[2048];
    uint32_t in_cons, in_prod;
    uint32_t out_cons, out_prod;
};
PVABI__FLEX_STATIC_ASSERT(sizeof(struct pvabi_console_intf) == 3088, "xencons_interface layout");

/**
 * struct pvabi_flex_intf - the index page of DEFINE_XEN_FLEX_RING_AND_INTF
 * (name##_data_intf).  The data area it describes holds `in` then `out`,
 * each PVABI_FLEXRING_SIZE(ring_order) bytes.
 */
struct pvabi_flex_intf {
    uint32_t in_cons, in_prod;
    uint8_t pad1[56];
    uint32_t out_cons, out_prod;
    uint8_t pad2[56];
    uint32_t ring_order;
    uint32_t ref[];
};
PVABI__FLEX_STATIC_ASSERT(sizeof(struct pvabi_flex_intf) == 132, "data_intf layout");

/** Bytes in one direction of a flex ring of page order @order (XEN_FLEX_RING_SIZE). */
#define PVABI_FLEXRING_SIZE(order) (1ul << ((order) + 12 - 1))

/**
 * pvabi_flexring_open() - make a handle for one end of a flex ring.
 * @out: receives the handle.
 * @data: the ring's byte buffer (shared memory).
 * @size: its size in bytes: a power of two, 1 .. 2^31 (2^30 on 32-bit hosts,
 *        so that every count fits in ssize_t).
 * @prod: the shared producer index.
 * @cons: the shared consumer index.
 * @role: PVABI_FLEXRING_WRITER or PVABI_FLEXRING_READER.
 *
 * The indices are not reset: the handle continues from their current values,
 * so opening an existing ring (a console already in use) keeps its contents.
 * Reads our own index from shared memory this once; later calls use a private
 * copy, so a peer scribbling on it cannot move where we read or write.
 * Returns 0; -EINVAL for a NULL pointer, a size that is not a power of two or
 * an unknown role; -ENOMEM; -EPROTO if the indices are already inconsistent
 * (the handle is still returned in *@out, broken; close it).  On -EINVAL and
 * -ENOMEM *@out is untouched.  Does not block.
 */
int pvabi_flexring_open(pvabi_flexring **out, void *data, size_t size, uint32_t *prod,
                        uint32_t *cons, int role);

/** pvabi_flexring_close() - free a handle (NULL is allowed).  Shared memory is untouched. */
void pvabi_flexring_close(pvabi_flexring *ring);

/**
 * pvabi_flexring_write() - copy up to @len bytes in and publish them.
 * Returns the bytes written (0 when full), -EINVAL (NULL @ring, wrong role,
 * NULL @buf with @len > 0), -EPROTO (broken).  Partial writes are normal: the
 * caller retries the rest.  Does not block.
 */
ssize_t pvabi_flexring_write(pvabi_flexring *ring, const void *buf, size_t len);

/**
 * pvabi_flexring_read() - copy up to @len bytes out and release their space.
 * Returns the bytes read (0 when empty), -EINVAL (NULL @ring, wrong role,
 * NULL @buf with @len > 0), -EPROTO (broken).  Does not block.
 */
ssize_t pvabi_flexring_read(pvabi_flexring *ring, void *buf, size_t len);

/** pvabi_flexring_used() - bytes waiting to be read (either role), -EINVAL for NULL, -EPROTO. */
ssize_t pvabi_flexring_used(pvabi_flexring *ring);

/** pvabi_flexring_space() - free bytes a writer may write now (either role), -EINVAL, -EPROTO. */
ssize_t pvabi_flexring_space(pvabi_flexring *ring);

/** pvabi_flexring_broken() - 0, -EPROTO once the peer broke the protocol, -EINVAL for NULL. */
int pvabi_flexring_broken(const pvabi_flexring *ring);

#ifdef __cplusplus
}
#endif

#endif /* PVABI_FLEXRING_H */
