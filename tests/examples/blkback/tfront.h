/* SPDX-License-Identifier: MIT */
/*
 * tfront.h - a raw blkif frontend for blkback's tests, on the public API
 * and blkif-wire.h only, so that a test can put ANY request on the ring;
 * plus the toolstack step and the blkback daemon as a child process.
 *
 * The test process holds the contexts itself (a toolstack context for the
 * device directories, one unprivileged domain per frontend); blkback runs
 * as domain 0 in a child ($BLKBACK).  Every wait has a timeout.
 */
#ifndef TFRONT_H
#define TFRONT_H

#include <stdint.h>
#include <sys/types.h>

#include <pvabi/pvabi.h>

#include "blkif-wire.h"

#define TF_TIMEOUT_MS 20000
/* Data pages of a frontend's pool. */
#define TF_POOL 272u

struct tf {
    pvabi_ctx *ctx;
    pvabi_domid domid;
    unsigned devid;
    pvabi_xenbus_front *xf;
    pvabi_grant *ring;
    struct pvblk_front fr;
    pvabi_port port;
    pvabi_grant *pool[3]; /* TF_POOL pages, granted read-write, in chunks of <= 128 */
    pvabi_grant *ro;      /* one page granted read-only */
    pvabi_grant *ind;     /* 8 pages for indirect descriptors */
};

/* A frontend request as a test builds it. */
struct tf_seg {
    unsigned page; /* pool page */
    uint8_t first, last;
};

/* The blkback daemon as a child. */
struct tf_back {
    pid_t pid;
    int pidfd;
};

/* A toolstack context of the test's daemon (opened once per test). */
pvabi_ctx *tf_toolstack(void);
/* Closes the toolstack context (teardown). */
void tf_toolstack_close(void);

/* Starts $BLKBACK as domain 0 with @args (NULL-terminated, may be NULL). */
void tf_back_start(struct tf_back *b, const char *const *args);
/* The same with the daemon named by environment variable @var. */
void tf_back_start_env(struct tf_back *b, const char *var, const char *const *args);
/* SIGTERM (clean) or SIGKILL; reaps; returns the wait status. */
int tf_back_stop(struct tf_back *b, int sig);
/* Whether the daemon is still running. */
int tf_back_alive(struct tf_back *b);

/* A new frontend domain (its own context). */
void tf_domain(struct tf *f);
/* The toolstack step for (@f's domain, devid) with image @path, mode "w"/"r". */
void tf_add(struct tf *f, unsigned devid, const char *path, const char *mode);
/* Connects: waits for InitWait, shares a ring of 2^@order pages, publishes
 * (feature-persistent=@persistent).  Returns the handshake's result. */
int tf_connect(struct tf *f, unsigned order, int persistent);
/* Reads a backend node of @f's device as a number (-1 when absent). */
long tf_back_node(struct tf *f, const char *key);
/* The backend's state as the store says. */
int tf_back_state(struct tf *f);
/* Waits until the backend state is @state (store polling with a watch). */
int tf_wait_back_state(struct tf *f, int state, int timeout_ms);
/* Closes everything of @f without any handshake (as a dying process). */
void tf_close(struct tf *f);

/* Pool page @page's memory. */
uint8_t *tf_page(struct tf *f, unsigned page);
pvabi_gref tf_gref(struct tf *f, unsigned page);

/* Puts @req on the ring as is (notifying when the ring says so). */
void tf_push(struct tf *f, const struct pvblk_request *req);
/* Waits for the next response; 0, or -ETIMEDOUT / -EPROTO. */
int tf_pop(struct tf *f, struct pvblk_response *rsp, int timeout_ms);
/* A READ/WRITE/... of @n segments at @sector; returns the status. */
int tf_rw(struct tf *f, uint8_t op, uint64_t sector, const struct tf_seg *segs, unsigned n,
          uint64_t id);
/* Builds (not pushes) a direct request. */
void tf_build(struct tf *f, struct pvblk_request *r, uint8_t op, uint64_t sector,
              const struct tf_seg *segs, unsigned n, uint64_t id);
/* An INDIRECT request of @n segments (full pages of pool pages 0..n-1 mod TF_POOL,
 * consecutive sectors); returns the status. */
int tf_indirect(struct tf *f, uint8_t op, uint64_t sector, unsigned n, uint64_t id);
/* Builds (not pushes) what tf_indirect() sends. */
void tf_build_indirect(struct tf *f, struct pvblk_request *r, uint8_t op, uint64_t sector,
                       unsigned n, uint64_t id);
/* The operation a response to @req must carry: its indirect_op for an
 * INDIRECT request (what Linux's blkfront checks), else its operation. */
uint8_t tf_rsp_operation(const struct pvblk_request *req);
/* Submit and wait one request; fails the test unless the response has @id and
 * tf_rsp_operation(@req).  Returns the status. */
int tf_call(struct tf *f, const struct pvblk_request *req, uint64_t id);

/* Files: a temporary image of @bytes filled with a pattern; its hash. */
void tf_image(char *path, size_t size, uint64_t bytes, unsigned seed);
uint64_t tf_file_hash(const char *path, uint64_t *size);

#endif
