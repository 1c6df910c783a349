/* SPDX-License-Identifier: MIT */
/*
 * bf-pool.c - blkfront's fixed memory: the granted page pools (data and
 * indirect pages) and the tables of requests and operations.  Everything is
 * allocated once at open, so the I/O path never allocates and never grants:
 * with persistent grants the backend maps each page once for the device's
 * life.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bf-private.h"

static int pages_share(struct blkfront *bf, struct bf_pages *p, unsigned count)
{
    unsigned left = count;

    for (unsigned s = 0; left > 0; s++) {
        unsigned n = left < PVABI_GRANT_BATCH_MAX ? left : PVABI_GRANT_BATCH_MAX;
        int rc = pvabi_grant_share(bf->ctx, bf->info.backend_id, n, 0, &p->shares[s]);
        if (rc < 0) {
            bf_log(bf, PVABI_LOG_ERR, "granting %u pool pages: %s", count, strerror(-rc));
            return rc;
        }
        p->nshares++;
        uint8_t *base = pvabi_grant_addr(p->shares[s]);
        for (unsigned i = 0; i < n; i++) {
            unsigned idx = count - left + i;
            p->addr[idx] = base + (size_t)i * PVABI_PAGE_SIZE;
            p->gref[idx] = pvabi_grant_ref(p->shares[s], i);
        }
        left -= n;
    }
    return 0;
}

int bf_pages_alloc(struct blkfront *bf, struct bf_pages *p, unsigned count)
{
    memset(p, 0, sizeof(*p));
    if (count == 0)
        return 0;
    p->shares =
        calloc((count + PVABI_GRANT_BATCH_MAX - 1) / PVABI_GRANT_BATCH_MAX, sizeof(*p->shares));
    p->addr = calloc(count, sizeof(*p->addr));
    p->gref = calloc(count, sizeof(*p->gref));
    p->free = calloc(count, sizeof(*p->free));
    if (!p->shares || !p->addr || !p->gref || !p->free)
        return -ENOMEM;
    p->count = count;
    int rc = pages_share(bf, p, count);
    if (rc < 0)
        return rc;
    /* Popped from the top: hand out low indices first (easier to debug). */
    for (unsigned i = 0; i < count; i++)
        p->free[i] = count - 1 - i;
    p->nfree = count;
    return 0;
}

/* Revokes what the backend no longer maps; a page still mapped (close timed
 * out) is left granted: pvabi_close() ends it with the context. */
void bf_pages_free(struct blkfront *bf, struct bf_pages *p)
{
    for (unsigned s = 0; s < p->nshares; s++) {
        int rc = pvabi_grant_revoke(p->shares[s]);
        if (rc == -EBUSY)
            bf_log(bf, PVABI_LOG_WARN, "pool pages still mapped by the backend: left granted");
    }
    free(p->shares);
    free(p->addr);
    free(p->gref);
    free(p->free);
    memset(p, 0, sizeof(*p));
}

static uint32_t *stack_new(unsigned n)
{
    uint32_t *s = calloc(n, sizeof(*s));

    for (unsigned i = 0; s && i < n; i++)
        s[i] = n - 1 - i;
    return s;
}

int bf_tables_alloc(struct blkfront *bf)
{
    unsigned n = bf->info.ring_slots;

    bf->reqs = calloc(n, sizeof(*bf->reqs));
    bf->ops = calloc(n, sizeof(*bf->ops));
    bf->doneq = calloc(n, sizeof(*bf->doneq));
    bf->free_reqs = stack_new(n);
    bf->free_ops = stack_new(n);
    if (!bf->reqs || !bf->ops || !bf->doneq || !bf->free_reqs || !bf->free_ops)
        return -ENOMEM;
    bf->nfree_reqs = bf->nfree_ops = n;
    for (unsigned i = 0; i < n; i++) {
        bf->reqs[i].pages = calloc(bf->info.max_segments, sizeof(uint32_t));
        if (!bf->reqs[i].pages)
            return -ENOMEM;
        bf->reqs[i].ind_page = -1;
    }
    return 0;
}

void bf_tables_free(struct blkfront *bf)
{
    for (unsigned i = 0; bf->reqs && i < bf->info.ring_slots; i++)
        free(bf->reqs[i].pages);
    free(bf->reqs);
    free(bf->ops);
    free(bf->doneq);
    free(bf->free_reqs);
    free(bf->free_ops);
    bf->reqs = NULL;
    bf->ops = NULL;
    bf->doneq = NULL;
    bf->free_reqs = bf->free_ops = NULL;
}
