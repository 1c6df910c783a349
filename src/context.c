/* SPDX-License-Identifier: MIT */
/* The context: choosing a platform, opening and closing it. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "platform/platform.h"
#include "pvabi-internal.h"

/* Real Xen is here when its privcmd device opens. */
static int xen_is_here(void)
{
    int fd = open("/dev/xen/privcmd", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return 0;
    close(fd);
    return 1;
}

/* Resolves NULL to a spec: $PVABI_PLATFORM, else xen when present, else local. */
static const char *resolve_spec(const char *spec)
{
    const char *env;

    if (spec)
        return spec;
    env = getenv("PVABI_PLATFORM");
    if (env && *env)
        return env;
    return xen_is_here() ? "xen" : "local";
}

/* Picks the ops for @spec and the argument after "local:". */
static int pick_platform(const char *spec, const struct pvabi_platform_ops **ops, const char **arg)
{
    *arg = NULL;
    if (strcmp(spec, "xen") == 0) {
#if PVABI_HAVE_XEN
        *ops = &pvabi__platform_xen;
        return 0;
#else
        pvabi__err(NULL, "platform \"xen\": this libpvabi was built without Xen support "
                         "(rebuild with -Dxen=enabled and libxen-dev installed)");
        return -ENOTSUP;
#endif
    }
    if (strcmp(spec, "local") == 0 || strncmp(spec, "local:", 6) == 0) {
        *ops = &pvabi__platform_local;
        if (spec[5] == ':')
            *arg = spec + 6;
        if (*arg && **arg == '\0') {
            pvabi__err(NULL, "platform spec \"%s\": empty socket path", spec);
            return -EINVAL;
        }
        return 0;
    }
    pvabi__err(NULL, "unknown platform spec \"%s\" (expected \"xen\", \"local\" or \"local:PATH\")",
               spec);
    return -EINVAL;
}

/* pvabi_fd(): an epoll set of our own, so that the store's watch fd can
 * join the platform's event fd later without the fd number changing.
 * Level-triggered: readable while the platform's fd is. */
static int make_epoll(pvabi_ctx *ctx)
{
    struct epoll_event e = { .events = EPOLLIN };
    int rc;

    ctx->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (ctx->epfd >= 0 && epoll_ctl(ctx->epfd, EPOLL_CTL_ADD, ctx->ops->fd(ctx->plat), &e) == 0)
        return 0;
    rc = -errno;
    pvabi__err(ctx, "the context's epoll set: %s", strerror(errno));
    return rc;
}

static void free_ctx(pvabi_ctx *ctx)
{
    if (ctx->epfd >= 0)
        close(ctx->epfd);
    pthread_mutex_destroy(&ctx->store_lock);
    pthread_mutex_destroy(&ctx->lock);
    free(ctx);
}

PVABI_EXPORT int pvabi_open(pvabi_ctx **out, const char *spec)
{
    return pvabi_open_flags(out, spec, 0);
}

PVABI_EXPORT int pvabi_open_flags(pvabi_ctx **out, const char *spec, unsigned flags)
{
    const struct pvabi_platform_ops *ops;
    const char *arg;
    pvabi_ctx *ctx;
    int rc;

    if (!out)
        return -EINVAL;
    *out = NULL;
    if (flags & ~PVABI_OPEN_TOOLSTACK) {
        pvabi__err(NULL, "pvabi_open_flags: unknown flags %#x", flags & ~PVABI_OPEN_TOOLSTACK);
        return -EINVAL;
    }
    spec = resolve_spec(spec);
    rc = pick_platform(spec, &ops, &arg);
    if (rc < 0)
        return rc;
    ctx = calloc(1, sizeof(*ctx));
    if (!ctx)
        return -ENOMEM;
    ctx->ops = ops;
    ctx->open_flags = flags;
    ctx->epfd = -1;
    pthread_mutex_init(&ctx->lock, NULL);
    pthread_mutex_init(&ctx->store_lock, NULL);
    rc = ops->open(ctx, arg, &ctx->plat, &ctx->domid);
    if (rc < 0) {
        free_ctx(ctx);
        return rc;
    }
    rc = make_epoll(ctx);
    if (rc < 0) {
        ops->close(ctx, ctx->plat);
        pvabi__ports_free(ctx);
        free_ctx(ctx);
        return rc;
    }
    pvabi__debug(ctx, "opened platform %s as domain %u", ops->name, (unsigned)ctx->domid);
    *out = ctx;
    return 0;
}

PVABI_EXPORT void pvabi_close(pvabi_ctx *ctx)
{
    if (!ctx)
        return;
    pvabi__store_release(ctx);
    pvabi__stream_release(ctx); /* its deferred revokes point at grants freed next */
    pvabi__grants_release(ctx);
    ctx->ops->close(ctx, ctx->plat);
    pvabi__ports_free(ctx);
    free_ctx(ctx);
}

PVABI_EXPORT pvabi_domid pvabi_own_domid(const pvabi_ctx *ctx)
{
    return ctx->domid;
}

PVABI_EXPORT const char *pvabi_platform(const pvabi_ctx *ctx)
{
    return ctx->ops->name;
}

PVABI_EXPORT int pvabi_fd(const pvabi_ctx *ctx)
{
    return ctx->epfd;
}
