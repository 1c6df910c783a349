/* SPDX-License-Identifier: MIT */
/*
 * The batch's READ and WRITE runs through io_uring (liburing): every run of
 * a batch goes into one submission, so a batch of 32 random 4 KiB reads
 * costs one system call instead of 32 preadv calls.  Without liburing at
 * build time, or when the kernel refuses io_uring (seccomp, an old kernel,
 * io_uring_disabled), every function here reports "not available" and io.c
 * does the same runs with preadv / pwritev.  docs/blkback.md has the
 * measurements behind the default.
 */
#include "bb.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#ifdef BLKBACK_HAVE_URING
#include <liburing.h>

struct bb_aio {
    struct io_uring ring;
    unsigned queued, submitted;
    unsigned order[BB_BATCH_REQS]; /* run indices, in submission order */
};

/* SUBMIT_ALL (Linux 5.18): a request that fails early still lets the ones
 * after it go in (its error comes as its completion).  Older kernels stop
 * at it; submit() loops either way. */
static int ring_init(struct io_uring *ring)
{
    int rc = io_uring_queue_init(BB_BATCH_REQS, ring, IORING_SETUP_SUBMIT_ALL);

    return rc == -EINVAL ? io_uring_queue_init(BB_BATCH_REQS, ring, 0) : rc;
}

int bb_aio_init(struct bb_dev *d)
{
    struct bb_aio *a;
    int rc;

    d->aio = NULL;
    if (d->b->o.io != BLKBACK_IO_URING)
        return 0;
    a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    rc = ring_init(&a->ring);
    if (rc < 0) {
        bb_log(d->b, PVABI_LOG_INFO, "%s: io_uring unavailable (%s): preadv/pwritev instead",
               d->name, strerror(-rc));
        free(a);
        return 0;
    }
    d->aio = a;
    return 0;
}

void bb_aio_free(struct bb_dev *d)
{
    if (!d->aio)
        return;
    io_uring_queue_exit(&d->aio->ring);
    free(d->aio);
    d->aio = NULL;
}

int bb_aio_queue(struct bb_dev *d, unsigned run)
{
    const struct bb_run *r = &d->runs[run];
    struct bb_aio *a = d->aio;
    struct io_uring_sqe *sqe;

    if (!a || r->niov > IOV_MAX || a->queued >= BB_BATCH_REQS)
        return 0;
    sqe = io_uring_get_sqe(&a->ring);
    if (!sqe)
        return 0;
    if (r->write)
        io_uring_prep_writev(sqe, d->fd, &d->iov[r->iov0], (unsigned)r->niov, r->off);
    else
        io_uring_prep_readv(sqe, d->fd, &d->iov[r->iov0], (unsigned)r->niov, r->off);
    io_uring_sqe_set_data64(sqe, run);
    a->order[a->queued++] = run;
    return 1;
}

/* Hands the queue to the kernel; what it refused stays in a->order past
 * a->submitted. */
static void submit(struct bb_aio *a)
{
    while (a->submitted < a->queued) {
        int n = io_uring_submit(&a->ring);
        if (n == -EINTR)
            continue;
        if (n <= 0)
            return;
        a->submitted += (unsigned)n;
    }
}

/* Every submitted run's completion; 0, or the ring's own error. */
static int reap(struct bb_dev *d, struct bb_aio *a)
{
    for (unsigned left = a->submitted; left > 0;) {
        struct io_uring_cqe *cqe;
        int rc = io_uring_wait_cqe(&a->ring, &cqe);
        if (rc == -EINTR)
            continue;
        if (rc < 0)
            return rc;
        uint64_t run = io_uring_cqe_get_data64(cqe);
        if (run < d->nruns) /* always: the kernel returns our user_data */
            bb_run_finish(d, (unsigned)run, cqe->res < 0 ? cqe->res : 0,
                          cqe->res < 0 ? 0 : (size_t)cqe->res);
        io_uring_cqe_seen(&a->ring, cqe);
        left--;
    }
    return 0;
}

/*
 * Runs never submitted, or whose completion the ring lost, are done with
 * preadv / pwritev (or answered ERROR), and the ring is dropped: what is
 * left in its queue must never reach the kernel later, with buffers that
 * belong to another batch by then.
 */
static void give_up(struct bb_dev *d, struct bb_aio *a, unsigned from, int why)
{
    bb_log(d->b, PVABI_LOG_WARN, "%s: io_uring failed (%s): preadv/pwritev from now on", d->name,
           strerror(-why));
    for (unsigned k = from; k < a->queued; k++)
        if (!d->runs[a->order[k]].done)
            bb_run_sync(d, a->order[k]);
    bb_aio_free(d);
}

void bb_aio_wait(struct bb_dev *d)
{
    struct bb_aio *a = d->aio;

    if (!a || !a->queued)
        return;
    submit(a);
    int rc = reap(d, a);
    if (rc < 0) {
        give_up(d, a, 0, rc); /* the same bytes again, if the kernel still does them */
        return;
    }
    if (a->submitted < a->queued) {
        give_up(d, a, a->submitted, -EAGAIN);
        return;
    }
    a->queued = a->submitted = 0;
}

#else /* !BLKBACK_HAVE_URING */

int bb_aio_init(struct bb_dev *d)
{
    d->aio = NULL;
    if (d->b->o.io == BLKBACK_IO_URING)
        bb_log(d->b, PVABI_LOG_INFO, "%s: built without liburing: preadv/pwritev", d->name);
    return 0;
}

void bb_aio_free(struct bb_dev *d)
{
    (void)d;
}

int bb_aio_queue(struct bb_dev *d, unsigned run)
{
    (void)d, (void)run;
    return 0;
}

void bb_aio_wait(struct bb_dev *d)
{
    (void)d;
}

#endif
