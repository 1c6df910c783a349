/* SPDX-License-Identifier: MIT */
/*
 * Grants above the seam: argument checks, the public objects, and the lists
 * that let pvabi_close() release what the caller left behind.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "platform/platform.h"
#include "pvabi-internal.h"

struct pvabi_grant {
    pvabi_ctx *ctx;
    void *handle; /* the platform's */
    void *addr;
    unsigned count;
    struct pvabi_grant *next, **pprev;
    pvabi_gref refs[];
};

struct pvabi_map {
    pvabi_ctx *ctx;
    void *handle;
    void *addr;
    unsigned count;
    struct pvabi_map *next, **pprev;
};

/* Intrusive list helpers: one for each object type, same shape. */
#define LIST_ADD(head, obj)                                                                        \
    do {                                                                                           \
        (obj)->next = *(head);                                                                     \
        if ((obj)->next)                                                                           \
            (obj)->next->pprev = &(obj)->next;                                                     \
        (obj)->pprev = (head);                                                                     \
        *(head) = (obj);                                                                           \
    } while (0)
#define LIST_DEL(obj)                                                                              \
    do {                                                                                           \
        *(obj)->pprev = (obj)->next;                                                               \
        if ((obj)->next)                                                                           \
            (obj)->next->pprev = (obj)->pprev;                                                     \
    } while (0)

static int batch_ok(pvabi_ctx *ctx, unsigned count, unsigned flags, const char *what)
{
    if (count == 0 || count > PVABI_GRANT_BATCH_MAX || (flags & ~PVABI_GRANT_RO)) {
        pvabi__err(ctx, "%s: %u pages with flags %#x (allowed: 1..%u pages, PVABI_GRANT_RO)", what,
                   count, flags, PVABI_GRANT_BATCH_MAX);
        return 0;
    }
    return 1;
}

PVABI_EXPORT int pvabi_grant_share(pvabi_ctx *ctx, pvabi_domid domid, unsigned count,
                                   unsigned flags, pvabi_grant **out)
{
    pvabi_grant *g;
    int rc;

    if (out)
        *out = NULL;
    if (!ctx || !out || !batch_ok(ctx, count, flags, "grant share"))
        return -EINVAL;
    g = calloc(1, sizeof(*g) + count * sizeof(g->refs[0]));
    if (!g)
        return -ENOMEM;
    g->ctx = ctx;
    g->count = count;
    pthread_mutex_lock(&ctx->lock);
    rc = ctx->ops->grant_share(ctx, ctx->plat, domid, count, !!(flags & PVABI_GRANT_RO), g->refs,
                               &g->addr, &g->handle);
    if (rc == 0)
        LIST_ADD(&ctx->grants, g);
    pthread_mutex_unlock(&ctx->lock);
    if (rc < 0) {
        free(g);
        return rc;
    }
    *out = g;
    return 0;
}

PVABI_EXPORT void *pvabi_grant_addr(const pvabi_grant *g)
{
    return g ? g->addr : NULL;
}

PVABI_EXPORT unsigned pvabi_grant_count(const pvabi_grant *g)
{
    return g ? g->count : 0;
}

PVABI_EXPORT pvabi_gref pvabi_grant_ref(const pvabi_grant *g, unsigned page)
{
    return g && page < g->count ? g->refs[page] : 0;
}

static int notify_args_ok(pvabi_ctx *ctx, unsigned count, unsigned page, unsigned offset)
{
    if (page >= count || offset > PVABI_PAGE_SIZE) {
        pvabi__err(ctx, "unmap-notify: page %u of %u, offset %u: out of range", page, count,
                   offset);
        return 0;
    }
    return 1;
}

PVABI_EXPORT int pvabi_grant_notify(pvabi_grant *g, unsigned page, unsigned offset, pvabi_port port)
{
    int rc;

    if (!g || !notify_args_ok(g->ctx, g->count, page, offset))
        return -EINVAL;
    pthread_mutex_lock(&g->ctx->lock);
    rc = g->ctx->ops->grant_notify(g->ctx, g->ctx->plat, g->handle, page, offset, port);
    pthread_mutex_unlock(&g->ctx->lock);
    return rc;
}

/* With ctx->lock held. */
static int revoke_locked(pvabi_grant *g)
{
    int rc = g->ctx->ops->grant_revoke(g->ctx, g->ctx->plat, g->handle);
    if (rc == -EBUSY)
        return rc;
    LIST_DEL(g);
    free(g);
    return rc;
}

PVABI_EXPORT int pvabi_grant_revoke(pvabi_grant *g)
{
    pvabi_ctx *ctx;
    int rc;

    if (!g)
        return -EINVAL;
    ctx = g->ctx;
    pthread_mutex_lock(&ctx->lock);
    rc = revoke_locked(g);
    pthread_mutex_unlock(&ctx->lock);
    return rc;
}

PVABI_EXPORT int pvabi_grant_map(pvabi_ctx *ctx, pvabi_domid domid, const pvabi_gref *refs,
                                 unsigned count, unsigned flags, int *status, pvabi_map **out)
{
    int scratch[PVABI_GRANT_BATCH_MAX];
    pvabi_map *m;
    int rc;

    if (out)
        *out = NULL;
    if (!ctx || !refs || !out || !batch_ok(ctx, count, flags, "grant map"))
        return -EINVAL;
    m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    m->ctx = ctx;
    m->count = count;
    pthread_mutex_lock(&ctx->lock);
    rc = ctx->ops->grant_map(ctx, ctx->plat, domid, refs, count, !!(flags & PVABI_GRANT_RO),
                             status ? status : scratch, &m->addr, &m->handle);
    if (rc == 0)
        LIST_ADD(&ctx->maps, m);
    pthread_mutex_unlock(&ctx->lock);
    if (rc < 0) {
        free(m);
        return rc;
    }
    *out = m;
    return 0;
}

PVABI_EXPORT void *pvabi_map_addr(const pvabi_map *m)
{
    return m ? m->addr : NULL;
}

PVABI_EXPORT int pvabi_map_notify(pvabi_map *m, unsigned page, unsigned offset, pvabi_port port)
{
    int rc;

    if (!m || !notify_args_ok(m->ctx, m->count, page, offset))
        return -EINVAL;
    pthread_mutex_lock(&m->ctx->lock);
    rc = m->ctx->ops->map_notify(m->ctx, m->ctx->plat, m->handle, page, offset, port);
    pthread_mutex_unlock(&m->ctx->lock);
    return rc;
}

/* With ctx->lock held. */
static int unmap_locked(pvabi_map *m)
{
    int rc = m->ctx->ops->grant_unmap(m->ctx, m->ctx->plat, m->handle);
    LIST_DEL(m);
    free(m);
    return rc;
}

PVABI_EXPORT int pvabi_grant_unmap(pvabi_map *m)
{
    pvabi_ctx *ctx;
    int rc;

    if (!m)
        return 0;
    ctx = m->ctx;
    pthread_mutex_lock(&ctx->lock);
    rc = unmap_locked(m);
    pthread_mutex_unlock(&ctx->lock);
    return rc;
}

PVABI_EXPORT int pvabi_grant_copy(pvabi_ctx *ctx, struct pvabi_grant_copy_seg *segs, unsigned count)
{
    int rc;

    if (!ctx || (!segs && count > 0) || count > PVABI_GRANT_BATCH_MAX)
        return -EINVAL;
    for (unsigned i = 0; i < count; i++) {
        if (!segs[i].local || (unsigned)segs[i].offset + segs[i].len > PVABI_PAGE_SIZE) {
            pvabi__err(ctx, "grant copy: segment %u: no buffer or offset %u + len %u > %u", i,
                       segs[i].offset, segs[i].len, PVABI_PAGE_SIZE);
            return -EINVAL;
        }
    }
    pthread_mutex_lock(&ctx->lock);
    rc = ctx->ops->grant_copy(ctx, ctx->plat, segs, count);
    pthread_mutex_unlock(&ctx->lock);
    return rc;
}

PVABI_EXPORT int pvabi_grant_list(pvabi_ctx *ctx, pvabi_domid granter, pvabi_gref first,
                                  struct pvabi_grant_entry *out, unsigned max)
{
    unsigned got = 0;

    if (!ctx || !out || max == 0)
        return -EINVAL;
    if (!ctx->ops->grant_list) {
        pvabi__err(ctx,
                   "grant list: not available on the %s platform (no hypercall lists a "
                   "domain's grants)",
                   ctx->ops->name);
        return -EOPNOTSUPP;
    }
    while (got < max) {
        unsigned want = max - got < PVABI__GRANT_LIST_CHUNK ? max - got : PVABI__GRANT_LIST_CHUNK;
        int n;

        pthread_mutex_lock(&ctx->lock);
        n = ctx->ops->grant_list(ctx, ctx->plat, granter, first, out + got, want);
        pthread_mutex_unlock(&ctx->lock);
        if (n < 0)
            return n;
        got += (unsigned)n;
        if ((unsigned)n < want || out[got - 1].ref == UINT32_MAX)
            break;
        first = out[got - 1].ref + 1;
    }
    return (int)got;
}

void pvabi__grants_release(pvabi_ctx *ctx)
{
    pthread_mutex_lock(&ctx->lock);
    while (ctx->maps)
        unmap_locked(ctx->maps);
    /* A share the peer still maps stays with the hypervisor, which reclaims
     * it when the peer unmaps (local: the daemon on our disconnect). */
    while (ctx->grants) {
        pvabi_grant *g = ctx->grants;
        if (revoke_locked(g) == -EBUSY) {
            LIST_DEL(g);
            free(g);
        }
    }
    pthread_mutex_unlock(&ctx->lock);
}
