/* SPDX-License-Identifier: MIT */
/*
 * bft.h - the fixture of the blkfront tests: a private pvabi-hv, a scratch
 * image file, a toolstack context (the device_add step), the frontend's
 * context in the test process, and the backend as a child process: H1's
 * blkback ($BLKBACK) as the privileged domain 0, or an in-test fake.
 */
#ifndef PVABI_TESTS_BFT_H
#define PVABI_TESTS_BFT_H

#include <stdint.h>
#include <sys/types.h>

#include "blkfront.h"
#include "harness.h"

#define BFT_DEVID 51712u

struct bft {
    struct it_daemon d;
    char image[128];
    int img_fd;
    uint64_t size;
    pvabi_ctx *ts; /* toolstack */
    pvabi_ctx *fe; /* the frontend's domain */
    pid_t bb_pid;  /* the backend child, 0 if none */
    int bb_pidfd;
};

/* Daemon, image of @size bytes (zeros), contexts.  Fails the test on error. */
void bft_setup(struct bft *t, uint64_t size);
/* Stops the backend (SIGTERM, checks a clean exit), closes everything. */
void bft_teardown(struct bft *t);
/* The toolstack step for frontend domain @fe (mode "w" or "r"). */
void bft_add_device(struct bft *t, pvabi_domid fe, const char *mode);
/* Starts $BLKBACK as domain 0 with @args (NULL-terminated, may be NULL). */
void bft_blkback_start(struct bft *t, const char *const *args);
/* Starts a forked child as domain 0 running @fn (its exit code is @fn's). */
void bft_child_start(struct bft *t, int (*fn)(void *), void *arg);
/* Sends @sig to the backend child and reaps it; returns its wait status. */
int bft_backend_stop(struct bft *t, int sig);
/* Opens the frontend with @opts (NULL: defaults); asserts success. */
struct blkfront *bft_open(struct bft *t, const struct blkfront_opts *opts);
/* Checks [off, off + len) of the image file against the pattern of @seed;
 * returns the first bad offset or -1. */
long long bft_image_check(struct bft *t, uint64_t off, uint64_t len, uint64_t seed);
/* Fills [off, off + len) of the image file directly. */
void bft_image_fill(struct bft *t, uint64_t off, uint64_t len, uint64_t seed);
/* Skips (exit 77 semantics for the group) when $BLKBACK is unset. */
const char *bft_blkback_path(void);

#endif
