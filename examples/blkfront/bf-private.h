/* SPDX-License-Identifier: MIT */
/*
 * bf-private.h - blkfront's internals, shared by its files: blkfront.c
 * (open, close, getters), bf-pool.c (granted pages), bf-io.c (submit,
 * responses, waiting), bf-sync.c (the synchronous helpers).
 */
#ifndef PVABI_EXAMPLES_BF_PRIVATE_H
#define PVABI_EXAMPLES_BF_PRIVATE_H

#include <stdint.h>

#include "blkfront.h"
#include "blkif-wire.h"

#define BF_DIRECT_SEGS PVBLK_MAX_SEGMENTS_PER_REQUEST /* 11 */
/* One indirect page per request: 512 segments (2 MiB) is plenty here. */
#define BF_MAX_INDIRECT ((unsigned)PVBLK_SEGS_PER_INDIRECT_FRAME)
/* Request ids: the tracking slot in the low 16 bits, its generation above,
 * so that a stale or duplicated response never matches a reused slot. */
#define BF_ID_SLOT_BITS 16
#define BF_ID_SLOT_MASK ((1u << BF_ID_SLOT_BITS) - 1)
/* How often a wait looks at the xenbus handle when nothing happens. */
#define BF_CHECK_MS 100
/* How long blkfront polls the ring for responses before it sleeps (ns). */
#define BF_SPIN_NS 50000L

/* In bf_req.pages: a page of the fixed buffers, used in place. */
#define BF_FIXED 0x80000000u

/* A stack of free page indices into a set of granted pages. */
struct bf_pages {
    pvabi_grant **shares; /* each at most PVABI_GRANT_BATCH_MAX pages */
    unsigned nshares;
    unsigned count;
    uint8_t **addr;   /* [count] */
    pvabi_gref *gref; /* [count] */
    uint32_t *free;   /* [count] stack */
    unsigned nfree;
};

/* One ring request in flight. */
struct bf_req {
    int in_use;
    uint32_t gen;
    uint8_t wire_op; /* operation as sent (PVBLK_OP_INDIRECT for indirect) */
    uint8_t data_op; /* READ / WRITE / FLUSH / DISCARD op of the wire */
    uint16_t op;     /* index of the user operation */
    uint32_t nsegs;
    uint32_t *pages; /* [max_segments] pool page indices, or BF_FIXED | fixed page index */
    int ind_page;    /* indirect page index, -1 if none */
    size_t buf_off;  /* where its data is in the operation's buffer */
    size_t len;      /* bytes of data */
};

/* One user operation (blkfront_submit), made of one or more requests. */
struct bf_op {
    int in_use;
    int sync; /* a synchronous helper's: not queued for blkfront_complete */
    int done;
    int kind; /* BLKFRONT_* */
    uint64_t tag;
    uint8_t *buf;
    size_t len;
    uint32_t pending; /* requests not yet answered */
    int status;
};

struct blkfront {
    pvabi_ctx *ctx;
    pvabi_xenbus_front *xb;
    struct blkfront_opts opts;
    struct blkfront_info info;
    struct blkfront_stats stats;
    pvabi_grant *ring_grant;
    struct pvblk_front ring;
    pvabi_port port;
    struct bf_pages data;
    struct bf_pages ind;   /* indirect pages; count 0 without indirect */
    struct bf_pages fixed; /* blkfront_fixed_buffer(); count 0 without */
    struct bf_req *reqs;   /* [info.ring_slots] */
    uint32_t *free_reqs;
    unsigned nfree_reqs;
    struct bf_op *ops; /* [info.ring_slots] */
    uint32_t *free_ops;
    unsigned nfree_ops;
    struct blkfront_done *doneq; /* FIFO [info.ring_slots] */
    unsigned done_head, done_count;
    unsigned async_inflight; /* async ops submitted, not yet returned */
    int dead;                /* 0, -EIO (broken), -ESHUTDOWN (closing) */
    int lost;                /* the backend is gone; waiting for a successor */
    int closing;             /* set by the xenbus callback */
};

/* bf-pool.c */
int bf_pages_alloc(struct blkfront *bf, struct bf_pages *p, unsigned count);
void bf_pages_free(struct blkfront *bf, struct bf_pages *p);
int bf_tables_alloc(struct blkfront *bf);
void bf_tables_free(struct blkfront *bf);

/* bf-io.c */
int bf_submit(struct blkfront *bf, int kind, uint64_t offset, size_t len, void *buf, uint64_t tag,
              int sync, unsigned *op_out);
int bf_pump(struct blkfront *bf, int timeout_ms);
void bf_fail_all(struct blkfront *bf, int err, const char *why);
void bf_bus_check(struct blkfront *bf);

/* bf-sync.c uses bf_submit(sync=1) + bf_pump() + the op's done flag. */
void bf_op_release(struct blkfront *bf, unsigned op);

void bf_log(struct blkfront *bf, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* PVABI_EXAMPLES_BF_PRIVATE_H */
