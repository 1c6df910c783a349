/* SPDX-License-Identifier: MIT */
/*
 * The `local` platform: the client of the pvabi-hv daemon, the embedded
 * hypervisor (tools/pvabi-hv).  This file opens and closes the context and
 * holds the ops table; see docs/local-platform.md for how it works.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "platform/local/local.h"

static void local_close(pvabi_ctx *ctx, void *plat)
{
    struct lc *lc = plat;

    (void)ctx;
    /* The daemon takes the closed socket as this domain's death: it closes
     * our ports and performs the unmap-notify actions still registered. */
    if (lc->sock >= 0)
        close(lc->sock);
    if (lc->ports)
        pvabi__lc_ports_free(lc);
    pvabi__lc_grants_free(lc);
    if (lc->epfd >= 0)
        close(lc->epfd);
    if (lc->wake_fd >= 0)
        close(lc->wake_fd);
    pvabi__lc_reap(lc);
    free(lc->ports);
    free(lc);
}

/* Adds @fd to the context's epoll set, level-triggered, as @tag. */
static int watch(pvabi_ctx *ctx, struct lc *lc, int fd, uint32_t tag, const char *what)
{
    struct epoll_event e = { .events = EPOLLIN, .data.u32 = tag };

    if (epoll_ctl(lc->epfd, EPOLL_CTL_ADD, fd, &e) == 0)
        return 0;
    int rc = -errno;
    pvabi__err(ctx, "local platform: adding the %s to the epoll set: %s", what, strerror(errno));
    return rc;
}

/* The state before connecting: port table, epoll set, wake eventfd. */
static int lc_new(pvabi_ctx *ctx, struct lc **out)
{
    struct lc *lc = calloc(1, sizeof(*lc));

    *out = lc;
    if (!lc)
        return -ENOMEM;
    lc->sock = lc->epfd = lc->wake_fd = -1;
    lc->ports = calloc(HV_PORTS_MAX, sizeof(lc->ports[0]));
    if (!lc->ports)
        return -ENOMEM;
    lc->epfd = epoll_create1(EPOLL_CLOEXEC);
    lc->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (lc->epfd < 0 || lc->wake_fd < 0) {
        int rc = -errno;
        pvabi__err(ctx, "local platform: epoll/eventfd: %s", strerror(errno));
        return rc;
    }
    return watch(ctx, lc, lc->wake_fd, LC_EP_WAKE, "wake eventfd");
}

static int local_open(pvabi_ctx *ctx, const char *arg, void **plat, pvabi_domid *domid)
{
    long page = sysconf(_SC_PAGESIZE);
    struct lc *lc;
    int rc;

    if (page != HV_PAGE_SIZE) {
        /* grant pages are mmapped one by one: they must be host pages */
        pvabi__err(ctx, "local platform: needs 4096-byte host pages; this host has %ld", page);
        return -ENOTSUP;
    }
    rc = lc_new(ctx, &lc);
    if (rc == 0)
        rc = pvabi__lc_connect(ctx, lc, arg);
    if (rc == 0)
        rc = watch(ctx, lc, lc->sock, LC_EP_SOCKET, "daemon socket");
    if (rc < 0) {
        if (rc == -ENOMEM)
            pvabi__err(ctx, "local platform: out of memory opening a context");
        if (lc)
            local_close(ctx, lc);
        return rc;
    }
    *plat = lc;
    *domid = lc->domid;
    return 0;
}

static int local_fd(void *plat)
{
    return ((struct lc *)plat)->epfd;
}

const struct pvabi_platform_ops pvabi__platform_local = {
    .name = "local",
    .open = local_open,
    .close = local_close,
    .fd = local_fd,
    .store_where = pvabi__lc_store_where,
    .evtchn_alloc = pvabi__lc_evtchn_alloc,
    .evtchn_bind = pvabi__lc_evtchn_bind,
    .evtchn_unbind = pvabi__lc_evtchn_unbind,
    .evtchn_notify = pvabi__lc_evtchn_notify,
    .evtchn_pending = pvabi__lc_evtchn_pending,
    .evtchn_wait = pvabi__lc_evtchn_wait,
    .evtchn_unmask = pvabi__lc_evtchn_unmask,
    .evtchn_state = pvabi__lc_evtchn_state,
    .grant_share = pvabi__lc_grant_share,
    .grant_revoke = pvabi__lc_grant_revoke,
    .grant_notify = pvabi__lc_grant_notify,
    .grant_map = pvabi__lc_grant_map,
    .grant_unmap = pvabi__lc_grant_unmap,
    .map_notify = pvabi__lc_map_notify,
    .grant_copy = pvabi__lc_grant_copy,
    .hypercall = pvabi__lc_hypercall,
    .grant_list = pvabi__lc_grant_list,
};
