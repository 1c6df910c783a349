/* SPDX-License-Identifier: MIT */
/*
 * Test memory with PROT_NONE guard pages on both sides: any read or write
 * outside [p, p + size) faults at once, with or without ASan.  The area ends
 * exactly at the upper guard page when size is a multiple of the page size.
 */
#ifndef PVABI_TEST_GUARDED_H
#define PVABI_TEST_GUARDED_H

#include <stddef.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

struct guarded {
    void *base; /* whole mapping, guards included */
    size_t len;
    void *p; /* the usable area */
};

static inline size_t guarded_page(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

/* Returns the usable area of `size` bytes (rounded up to pages), or NULL. */
static inline void *guarded_alloc(struct guarded *g, size_t size)
{
    size_t pg = guarded_page();
    size_t body = (size + pg - 1) / pg * pg;

    g->len = body + 2 * pg;
    g->base = mmap(NULL, g->len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g->base == MAP_FAILED)
        return NULL;
    g->p = (unsigned char *)g->base + pg;
    if (mprotect(g->p, body, PROT_READ | PROT_WRITE) != 0) {
        munmap(g->base, g->len);
        return NULL;
    }
    return g->p;
}

static inline void guarded_free(struct guarded *g)
{
    if (g->base && g->base != MAP_FAILED)
        munmap(g->base, g->len);
    g->base = NULL;
}

#endif
