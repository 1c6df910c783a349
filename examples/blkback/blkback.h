/* SPDX-License-Identifier: MIT */
/*
 * blkback.h - the serving core of the example block backend (blkif, Xen's
 * xen/io/blkif.h through examples/blkif/blkif-wire.h).
 *
 * One struct blkback serves every device of one type under
 * /local/domain/<own domid>/backend/<type>/<frontend>/<devid>: a store watch
 * finds devices added or removed while it runs; each is opened with the
 * xenbus backend helpers, advertises the disk (sectors, info, features),
 * and once the frontend is Connected its requests are served from the image
 * file named by the device's `params` node (raw, opened O_RDWR for mode "w",
 * O_RDONLY for "r").  See docs/blkback.md for the store nodes and limits.
 *
 * Every request is untrusted: a malformed one gets an ERROR (or EOPNOTSUPP)
 * response and the device keeps serving; a ring whose indices lie (-EPROTO)
 * makes that one device disconnect.  Nothing outside [0, sectors * 512) of
 * the image is ever written and nothing outside a segment's sectors of a
 * granted page is ever touched.
 *
 * Threads: one thread runs blkback_run(); blkback_stop() may be called from
 * any thread or a signal handler.  Everything else on the same thread as
 * blkback_run() (or while it is not running).  Errors: negative errno.
 * Fork: a struct blkback belongs to the process that created it.
 */
#ifndef PVABI_EXAMPLES_BLKBACK_H
#define PVABI_EXAMPLES_BLKBACK_H

#include <stdint.h>
#include <stdio.h>

#include <pvabi/pvabi.h>

/* How segments that are not persistently mapped reach the granted pages. */
enum blkback_grants {
    BLKBACK_GRANTS_COPY = 0, /* pvabi_grant_copy, batched: the default (measured faster) */
    BLKBACK_GRANTS_MAP = 1,  /* pvabi_grant_map / _unmap around each request */
};

/* How the image is read and written. */
enum blkback_io {
    BLKBACK_IO_URING = 0, /* a batch's reads and writes in one io_uring submission: the default
                             (measured faster); preadv/pwritev where io_uring is unavailable */
    BLKBACK_IO_SYNC = 1,  /* preadv / pwritev, one call per run of requests */
};

/* Defaults of struct blkback_opts. */
#define BLKBACK_DEFAULT_RING_ORDER   4u
#define BLKBACK_DEFAULT_MAX_INDIRECT 256u
/* Most indirect segments accepted: 8 indirect pages of 512 descriptors. */
#define BLKBACK_MAX_INDIRECT 4096u
/* Persistent mappings kept per device (each one page); beyond, grant copy. */
#define BLKBACK_DEFAULT_MAX_PERSISTENT 2048u
/* Most persistent mappings per device accepted (4 GiB of mapped pages). */
#define BLKBACK_MAX_PERSISTENT (1u << 20)
/* Polling before sleeping, right after requests were served (docs/blkback.md). */
#define BLKBACK_DEFAULT_SPIN_US 50u
#define BLKBACK_MAX_SPIN_US     1000u

/* A log line (no newline) at a PVABI_LOG_* level. */
typedef void blkback_log_fn(void *opaque, int level, const char *msg);

struct blkback_opts {
    const char *type;        /* device type; NULL: "vbd" */
    unsigned max_ring_order; /* 0..4 */
    unsigned max_indirect;   /* 0 (none) .. BLKBACK_MAX_INDIRECT */
    int persistent;          /* advertise feature-persistent=1 */
    unsigned max_persistent; /* per device, <= BLKBACK_MAX_PERSISTENT; 0: the default */
    int grants;              /* enum blkback_grants */
    int io;                  /* enum blkback_io */
    /* Before sleeping, poll the rings of connected devices for up to this
     * many microseconds, but only while requests were served in the last
     * 500 microseconds (an idle backend sleeps at once); 0: never poll.
     * At most BLKBACK_MAX_SPIN_US. */
    unsigned spin_us;
    int verbose;            /* 1: a line per refused request */
    blkback_log_fn *log_fn; /* NULL: lines go to log_file */
    void *log_opaque;
    FILE *log_file; /* NULL: stderr */
};

/* blkback_opts_default() - the CLI's defaults (order 4, indirect 256, persistent, copy,
 * spin 50 us). */
void blkback_opts_default(struct blkback_opts *o);

struct blkback;

/**
 * blkback_create() - set up serving on @ctx (which stays the caller's; it
 * must outlive the struct blkback): checks @opts, creates the stop eventfd
 * and the epoll set, registers the store watch (devices already present are
 * opened by the first blkback_run()).
 * Returns 0; -EINVAL (bad option: an order above 4, max_indirect above
 * BLKBACK_MAX_INDIRECT, max_persistent above BLKBACK_MAX_PERSISTENT, spin_us
 * above BLKBACK_MAX_SPIN_US, an unknown grants mode or a bad type); -ENOMEM;
 * the store errors.
 */
int blkback_create(pvabi_ctx *ctx, const struct blkback_opts *opts, struct blkback **out);

/**
 * blkback_run() - serve until stopped, until @timeout_ms passes (-1: no
 * limit), or, with blkback_set_once(), until the last device closed.
 * Returns 1 when stopped (blkback_stop(), or once-mode done), 0 on timeout,
 * or a negative errno on a fatal error (-ENOTCONN: the hypervisor or store
 * is gone).
 */
int blkback_run(struct blkback *b, int timeout_ms);

/** blkback_stop() - make blkback_run() return 1 soon; async-signal-safe. */
void blkback_stop(struct blkback *b);

/**
 * blkback_set_once() - @on 1: blkback_run() returns 1 once a device has
 * connected and then no device is connected any more.
 */
void blkback_set_once(struct blkback *b, int on);

/**
 * blkback_destroy() - free everything (NULL allowed): persistent mappings
 * unmapped, xenbus handles closed WITHOUT the close handshake, so that a
 * backend started later re-attaches to the frontends' rings.
 */
void blkback_destroy(struct blkback *b);

/* Counters of one device since it was opened. */
struct blkback_dev_stats {
    pvabi_domid frontend;
    unsigned devid;
    int state; /* its XenbusState */
    uint64_t reads, writes, barriers, flushes, discards, indirect;
    uint64_t errors;     /* ERROR responses */
    uint64_t eopnotsupp; /* EOPNOTSUPP responses */
    uint64_t bytes_read, bytes_written;
    uint64_t batches; /* wake-ups that found requests */
    /* Persistent grants.  The mappings live while a frontend is connected
     * and are all dropped at its Closing (or death), so after a finished
     * run `persistent_maps` is 0 again: the other two tell what happened. */
    unsigned persistent_maps;      /* pages mapped persistently right now */
    unsigned persistent_maps_peak; /* most mapped at once since opened */
    uint64_t persistent_maps_made; /* pages mapped persistently since opened (each new gref) */
};

/**
 * blkback_stats() - the counters of up to @max devices into @out.
 * Returns the number of devices (may exceed @max: only @max are written).
 */
int blkback_stats(const struct blkback *b, struct blkback_dev_stats *out, unsigned max);

/** blkback_log_stats() - one log line per device with its counters. */
void blkback_log_stats(struct blkback *b);

#endif /* PVABI_EXAMPLES_BLKBACK_H */
