/* SPDX-License-Identifier: MIT */
/*
 * fault_store.c - linked into blkback_faulty (blkback's main.c and serving
 * core, with -Wl,--wrap=pvabi_store_list): a store listing that a test
 * names fails, to reach blkback's handling of a failed rescan, which a
 * healthy store never produces.
 *
 * While the node FAULT_PATH holds a path, listing exactly that path fails
 * with -EIO, and FAULT_COUNT counts the failures so far (the test waits on
 * it instead of guessing when blkback rescanned).  Both nodes are written by
 * the test's toolstack context; blkback is the privileged domain and may
 * read and write them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pvabi/pvabi.h>

#include "fault_store.h"

int __real_pvabi_store_list(pvabi_ctx *ctx, pvabi_store_txn txn, const char *path, char ***names);
int __wrap_pvabi_store_list(pvabi_ctx *ctx, pvabi_store_txn txn, const char *path, char ***names);

static unsigned failures;

int __wrap_pvabi_store_list(pvabi_ctx *ctx, pvabi_store_txn txn, const char *path, char ***names)
{
    char *want = NULL, count[16];
    int fail = pvabi_store_read(ctx, PVABI_STORE_TXN_NONE, FAULT_PATH, &want) >= 0 &&
               strcmp(want, path) == 0;

    free(want);
    if (!fail)
        return __real_pvabi_store_list(ctx, txn, path, names);
    *names = NULL;
    snprintf(count, sizeof(count), "%u", ++failures);
    if (pvabi_store_write(ctx, PVABI_STORE_TXN_NONE, FAULT_COUNT, count) < 0)
        fprintf(stderr, "blkback_faulty: cannot write %s\n", FAULT_COUNT);
    return -EIO;
}
