/* SPDX-License-Identifier: MIT */
/*
 * bb.h - blkback's internals, shared by its source files:
 *   blkback.c  the struct blkback, the event loop, device discovery
 *   device.c   one device: image, xenbus handle, features, connect/detach
 *   io.c       a batch of requests: parse, validate, disk I/O, responses
 *   grants.c   reaching granted pages: persistent cache, copy, map
 *   aio.c      a batch's READ and WRITE runs through io_uring
 */
#ifndef BLKBACK_BB_H
#define BLKBACK_BB_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <pvabi/pvabi.h>

#include "blkback.h"
#include "blkif-wire.h"

/* Requests taken from a ring per batch. */
#define BB_BATCH_REQS 64u
/* Segments per batch (at least one largest request: max_indirect). */
#define BB_BATCH_SEGS_MIN 1024u
/* Grant copies per pvabi_grant_copy() call. */
#define BB_COPY_MAX PVABI_GRANT_BATCH_MAX
/* Batches served per device per wake-up before letting others run. */
#define BB_FAIR_BATCHES 16u
/* The loop polls rings before sleeping only if requests were served this
 * recently (microseconds): a busy frontend's next requests are near, an
 * idle one costs no CPU. */
#define BB_SPIN_RECENT_US 500
/* A rescan whose store listing failed is tried again after this (us). */
#define BB_RESCAN_RETRY_US 100000
/* Ring polls between two sched_yield() calls while spinning. */
#define BB_SPIN_YIELD_EVERY 64u

/* One segment of a request, as validated (from our private copy). */
struct bb_seg {
    pvabi_gref gref;
    uint16_t off, len; /* bytes in the granted page: first_sect * 512, sectors * 512 */
    uint8_t *addr;     /* where those bytes are in our memory while the request runs */
    uint8_t via_copy;  /* 1: addr is a private slot moved by pvabi_grant_copy */
};

/* One request of a batch. */
struct bb_req {
    struct pvblk_request raw; /* our copy of the slot: only this is read */
    uint8_t op;               /* effective: READ, WRITE, WRITE_BARRIER, FLUSH, DISCARD */
    int16_t status;           /* PVBLK_RSP_* so far */
    uint64_t sector, nsect;   /* disk range in 512 B sectors */
    unsigned seg0, nseg;      /* in the batch's segment array */
    unsigned map0, nmap;      /* map mode: in the batch's mapping array */
};

/* Requests [req0, req1) of a batch: contiguous on disk, one direction. */
struct bb_run {
    unsigned req0, req1;
    int write;
    unsigned iov0; /* its iovecs: iov[iov0 .. iov0 + niov) */
    int niov;
    off_t off;
    size_t len;
    int done; /* bb_run_finish() saw it */
};

/* A persistently mapped page, by gref (open addressing, never deleted but all at once). */
struct bb_pgrant {
    pvabi_gref gref;
    uint8_t used;
    pvabi_map *map;
};

struct blkback;

struct bb_dev {
    struct blkback *b;
    struct bb_dev *next;
    pvabi_domid fe;
    unsigned devid;
    char name[48]; /* "vbd 1/51712" */
    char path[128];
    char *params; /* the image path we opened */
    pvabi_xenbus_back *xb;
    int fd, ro;
    uint64_t sectors;
    int open_failed; /* params/mode/image unusable: retried at the next rescan */
    int offline;     /* online=0: closed on purpose */
    int gone;        /* directory vanished: freed after the store events */
    int broken;      /* the ring lied: disconnected */
    int connected;   /* ring attached and served */
    int more;        /* requests may wait: serve again without an event */
    int persistent;  /* both ends said feature-persistent=1 */
    struct pvblk_back ring;
    pvabi_port port;
    /* batch state */
    struct bb_req reqs[BB_BATCH_REQS];
    struct pvblk_request stash; /* consumed but not fitting the last batch */
    int has_stash;
    unsigned batch_segs;
    struct bb_seg *segs;
    uint8_t *buf;              /* batch_segs pages: the private copy of each segment */
    struct pvblk_segment *ind; /* private copy of one request's indirect descriptors */
    pvabi_map **maps;
    unsigned nmaps;
    struct pvabi_grant_copy_seg *copies;
    struct iovec *iov;
    struct bb_run runs[BB_BATCH_REQS];
    unsigned nruns, iov_used;
    struct bb_aio *aio; /* NULL: preadv / pwritev */
    /* persistent grants */
    struct bb_pgrant *pg;
    unsigned pg_cap, pg_count;
    struct blkback_dev_stats st;
};

struct blkback {
    pvabi_ctx *ctx;
    struct blkback_opts o;
    char type[32];
    char base[96]; /* /local/domain/<own>/backend/<type> */
    pvabi_watch *watch;
    int epfd, stopfd;
    volatile int stop_flag; /* set by blkback_stop; read by the loop */
    int once, had_connection, rescan;
    int64_t rescan_at_us; /* a failed rescan is retried from then on */
    int list_failing;     /* the last rescan could not list: warned once per streak */
    int list_failed;      /* this rescan could not list */
    int64_t served_at_us; /* when requests were last answered (spin decision) */
    struct bb_dev *devs;
};

/* blkback.c */
void bb_log(struct blkback *b, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
struct bb_dev *bb_dev_by_port(struct blkback *b, pvabi_port port);
/* CLOCK_MONOTONIC in microseconds. */
int64_t bb_now_us(void);

/* device.c */
struct bb_dev *bb_dev_new(struct blkback *b, pvabi_domid fe, unsigned devid);
int bb_dev_open(struct bb_dev *d);
void bb_dev_free(struct bb_dev *d);
/* Serves the ring after an event (or a poll that saw requests). */
void bb_dev_kick(struct bb_dev *d);
void bb_dev_break(struct bb_dev *d, const char *why);
void bb_dev_offline(struct bb_dev *d);
/* 1 if the directory was removed and re-created since the device was opened. */
int bb_dev_recreated(struct bb_dev *d);
/* Closes the handle (no handshake) and opens the device again from scratch,
 * logging @why. */
void bb_dev_restart(struct bb_dev *d, const char *why);

/* io.c: serves one batch; 1 if requests were answered, 0 none waiting, -EPROTO broken. */
int bb_io_batch(struct bb_dev *d);
/* Run @n of the batch is over: @err (negative errno) or @done bytes moved;
 * a short transfer is finished synchronously, a failure answers ERROR. */
void bb_run_finish(struct bb_dev *d, unsigned n, int err, size_t done);
/* Run @n with preadv / pwritev, then bb_run_finish(). */
void bb_run_sync(struct bb_dev *d, unsigned n);

/* aio.c.  Without io_uring, queue() says 0 and the others do nothing. */
int bb_aio_init(struct bb_dev *d);
void bb_aio_free(struct bb_dev *d);
/* 1 if run @n was queued (its bb_run_finish() comes from bb_aio_wait()). */
int bb_aio_queue(struct bb_dev *d, unsigned n);
/* Submits the queue and waits for all of it. */
void bb_aio_wait(struct bb_dev *d);

/* grants.c */
int bb_grants_init(struct bb_dev *d);
void bb_grants_drop(struct bb_dev *d);
void bb_grants_free(struct bb_dev *d);
/* Makes every segment of the batch's OK requests addressable (addr) and,
 * for writes, fills private slots from the granted pages. */
void bb_grants_acquire(struct bb_dev *d, unsigned nreq);
/* For reads, moves private slots to the granted pages; unmaps map mode. */
void bb_grants_release(struct bb_dev *d, unsigned nreq);
/* Copies @len bytes of granted page @gref from offset 0 into @dst; 0 or -errno. */
int bb_grants_fetch(struct bb_dev *d, pvabi_gref gref, void *dst, uint16_t len);

#endif /* BLKBACK_BB_H */
