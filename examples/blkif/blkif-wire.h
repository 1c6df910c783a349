/* SPDX-License-Identifier: MIT */
/*
 * blkif-wire.h - the block device protocol of Xen's xen/io/blkif.h, written
 * from its documentation: the request and response layouts, the operation
 * and status codes, and the ring they travel on (pvabi/ring.h).  Byte for
 * byte what Linux's xen-blkfront and xen-blkback put in shared memory, so
 * either end of pvabi's examples talks to a kernel driver at the other end
 * (tests/unit/test_blkif_wire.c compares every offset with Xen's header).
 *
 * Units: sector_number, first_sect and last_sect count 512-byte sectors,
 * whatever the disk's `sector-size`.  A segment names one granted page and
 * the sectors [first_sect, last_sect] of it to transfer (0..7, first <= last).
 *
 * Names carry the prefix pvblk_/PVBLK_ where Xen says blkif_/BLKIF_, so that a
 * file may include both (the layout test does).
 *
 * Only the native x86_64 / arm64 layout ("x86_64-abi", "arm-abi"): a
 * backend refuses a frontend whose `protocol` names another.
 */
#ifndef PVABI_EXAMPLES_BLKIF_WIRE_H
#define PVABI_EXAMPLES_BLKIF_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include <pvabi/ring.h>
#include <pvabi/types.h>

#define PVBLK_SECTOR_SHIFT 9
#define PVBLK_SECTOR_SIZE  512u
#define PVBLK_PAGE_SECTORS (PVABI_RING_PAGE_SIZE / PVBLK_SECTOR_SIZE) /* 8 */

/* Operations (blkif_request.operation). */
enum {
    PVBLK_OP_READ = 0,
    PVBLK_OP_WRITE = 1,
    PVBLK_OP_WRITE_BARRIER = 2,   /* feature-barrier */
    PVBLK_OP_FLUSH_DISKCACHE = 3, /* feature-flush-cache */
    PVBLK_OP_RESERVED_1 = 4,
    PVBLK_OP_DISCARD = 5,  /* feature-discard */
    PVBLK_OP_INDIRECT = 6, /* feature-max-indirect-segments */
};

/* Response status (blkif_response.status). */
enum {
    PVBLK_RSP_EOPNOTSUPP = -2,
    PVBLK_RSP_ERROR = -1,
    PVBLK_RSP_OKAY = 0,
};

/* Segments in a direct request; chosen by Xen so that a slot is 112 bytes. */
#define PVBLK_MAX_SEGMENTS_PER_REQUEST 11
/* Indirect pages in one PVBLK_OP_INDIRECT request. */
#define PVBLK_MAX_INDIRECT_PAGES_PER_REQUEST 8
/* Segment descriptors in one indirect page (4096 / 8). */
#define PVBLK_SEGS_PER_INDIRECT_FRAME (PVABI_RING_PAGE_SIZE / sizeof(struct pvblk_segment))
/* discard flag */
#define PVBLK_DISCARD_SECURE 1u

/* `info` bits of the backend directory. */
#define PVBLK_VDISK_CDROM     0x1u
#define PVBLK_VDISK_REMOVABLE 0x2u
#define PVBLK_VDISK_READONLY  0x4u

struct pvblk_segment {
    pvabi_gref gref;    /* the granted page */
    uint8_t first_sect; /* first sector of the page to transfer, 0..7 */
    uint8_t last_sect;  /* last one, inclusive: first_sect..7 */
    uint8_t pad[2];
};

/* READ, WRITE, WRITE_BARRIER, FLUSH_DISKCACHE (nr_segments 0 for a flush). */
struct pvblk_request {
    uint8_t operation;
    uint8_t nr_segments; /* 1..11 (0 for a flush) */
    uint16_t handle;     /* the vdev (virtual-device), echoed, not trusted */
    uint32_t pad;
    uint64_t id; /* the frontend's, echoed in the response */
    uint64_t sector_number;
    struct pvblk_segment seg[PVBLK_MAX_SEGMENTS_PER_REQUEST];
};

/* DISCARD: the same slot read through this layout. */
struct pvblk_request_discard {
    uint8_t operation;
    uint8_t flag; /* PVBLK_DISCARD_SECURE or 0 */
    uint16_t handle;
    uint32_t pad;
    uint64_t id;
    uint64_t sector_number;
    uint64_t nr_sectors;
};

/* INDIRECT: segments live in granted pages, 512 per page. */
struct pvblk_request_indirect {
    uint8_t operation;    /* PVBLK_OP_INDIRECT */
    uint8_t indirect_op;  /* PVBLK_OP_READ or PVBLK_OP_WRITE */
    uint16_t nr_segments; /* 1..feature-max-indirect-segments */
    uint32_t pad;
    uint64_t id;
    uint64_t sector_number;
    uint16_t handle;
    uint16_t pad2;
    pvabi_gref indirect_grefs[PVBLK_MAX_INDIRECT_PAGES_PER_REQUEST];
};

struct pvblk_response {
    uint64_t id;       /* the request's */
    uint8_t operation; /* the request's */
    uint8_t pad;
    int16_t status; /* PVBLK_RSP_* */
    uint32_t pad2;
};

_Static_assert(sizeof(struct pvblk_segment) == 8, "blkif.h layout");
_Static_assert(sizeof(struct pvblk_request) == 112, "blkif.h layout");
_Static_assert(offsetof(struct pvblk_request, id) == 8, "blkif.h layout");
_Static_assert(offsetof(struct pvblk_request, sector_number) == 16, "blkif.h layout");
_Static_assert(offsetof(struct pvblk_request, seg) == 24, "blkif.h layout");
_Static_assert(offsetof(struct pvblk_request_discard, nr_sectors) == 24, "blkif.h layout");
_Static_assert(offsetof(struct pvblk_request_indirect, handle) == 24, "blkif.h layout");
_Static_assert(offsetof(struct pvblk_request_indirect, indirect_grefs) == 28, "blkif.h layout");
_Static_assert(sizeof(struct pvblk_request_indirect) <= sizeof(struct pvblk_request),
               "blkif.h layout");
_Static_assert(sizeof(struct pvblk_response) == 16, "blkif.h layout");
_Static_assert(offsetof(struct pvblk_response, status) == 10, "blkif.h layout");

/* The ring: a slot is a request or a response (112 bytes), as Xen's blkif_sring. */
PVABI_RING_DEFINE(pvblk, struct pvblk_request, struct pvblk_response);

#endif /* PVABI_EXAMPLES_BLKIF_WIRE_H */
