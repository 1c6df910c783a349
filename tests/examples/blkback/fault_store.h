/* SPDX-License-Identifier: MIT */
/* fault_store.h - the store nodes that drive blkback_faulty (fault_store.c). */
#ifndef FAULT_STORE_H
#define FAULT_STORE_H

/* The store path whose listing fails while this node names it. */
#define FAULT_PATH "/tool/blkback-test/fail-list"
/* How many listings failed so far (decimal). */
#define FAULT_COUNT "/tool/blkback-test/failures"

#endif
