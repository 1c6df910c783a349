/* SPDX-License-Identifier: MIT */
/*
 * The `local` platform's private state, shared by the files of
 * src/platform/local/ only: the connection to the pvabi-hv daemon (wire.c),
 * connecting and starting it (connect.c, spawn.c), the event-channel ports
 * (ports.c) and the grants (grants.c).
 *
 * Locking: the core holds ctx->lock around every op but evtchn_notify and
 * evtchn_wait, so everything here is used by one thread at a time except
 * the two atomic fields of struct lc_port, which notify reads without the
 * lock, and epfd, which wait sleeps on without it (set at open, closed at
 * close, never changed in between).
 */
#ifndef PVABI_LOCAL_H
#define PVABI_LOCAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "platform/local/proto.h"
#include "platform/platform.h"
#include "pvabi-internal.h"

/* The longest any wait for the daemon may take: a reply, or a start. */
#define LC_TIMEOUT_MS 10000
/* How far past its deadline a blocking receive may run before the socket's
 * receive timeout is refitted to the time left (wire.c). */
#define LC_RCVTIMEO_SLACK_MS 2

/* epoll data of the context fd's members that are not ports (port 0 is never
 * valid, so it can name the socket). */
#define LC_EP_SOCKET 0u
#define LC_EP_WAKE   UINT32_MAX

/* A port's state: 0 (free slot) or a PVABI_EVTCHN_* state. */
#define LC_PORT_FREE 0

struct lc_port {
    _Atomic int state;   /* LC_PORT_FREE or PVABI_EVTCHN_*; read by notify */
    _Atomic int peer_fd; /* eventfd that notifies the remote, or -1; read by notify */
    int recv_fd;         /* our eventfd for this port (in the epoll set) */
    uint8_t masked;      /* reported, not yet unmasked */
    uint8_t pending_while_masked;
    uint8_t closed_pending; /* closed while masked: reported after unmask */
};

/* Events the caller has yet to collect: a ring of fixed size.  It never
 * overflows: a port is masked from the moment an event or `closed` of it is
 * queued until the caller unmasks it, so real events are one per port at
 * most, and spurious ones are queued only while fewer than LC_HARVEST_MAX
 * events wait.  (pending() harvests only into an empty queue; concurrent
 * waiters of pvabi_evtchn_wait() may each add a harvest.) */
#define LC_HARVEST_MAX 64u
#define LC_QUEUE_CAP   (HV_PORTS_MAX + LC_HARVEST_MAX)

struct lc_queue {
    struct pvabi__event ev[LC_QUEUE_CAP];
    unsigned head, len;
};

/* One received packet. */
struct lc_msg {
    struct hv_hdr hdr;
    _Alignas(8) uint8_t payload[HV_MSG_MAX - sizeof(struct hv_hdr)];
    int fds[HV_FDS_MAX];
    unsigned nfds;
};

/* The unmap-notify action registered for one page. */
struct lc_page {
    uint32_t ref;
    uint32_t offset; /* byte to clear, or HV_PAGE_SIZE for none */
    pvabi_port port; /* port to notify, or 0 for none */
};

/* A share (sharing side) or a mapping (mapping side): the platform handle. */
struct lc_pages {
    struct lc_pages *next, **pprev;
    void *addr;
    unsigned count;
    pvabi_domid domid; /* share: the grantee; mapping: the granting domain */
    int readonly;
    struct lc_page page[];
};

struct lc {
    int sock;            /* the daemon connection, blocking; -1 once it is gone */
    int64_t rcvtimeo_ms; /* its SO_RCVTIMEO */
    int epfd;            /* pvabi_fd(): the socket, the wake fd, every port's eventfd */
    int wake_fd;         /* readable while the queue holds events */
    int wake_armed;      /* wake_fd has a count */
    int wake_deferred;   /* harvesting: queue_push leaves wake_fd to the end */
    uint32_t seq;        /* last request number */
    pid_t child;         /* a started daemon not yet collected, or 0 */
    pvabi_domid domid;
    bool toolstack;        /* a PVABI_OPEN_TOOLSTACK connection: no domain of its own */
    char sock_path[108];   /* the daemon's socket, absolute (its store is at PATH.xenstore) */
    struct lc_port *ports; /* HV_PORTS_MAX slots, never moved: notify reads it unlocked */
    struct lc_pages *shares, *maps;
    struct lc_queue queue;
    struct lc_msg msg; /* the one receive buffer */
};

/* Non-static names follow the tree's pvabi__ convention: pvabi__lc_*. */

/* ---- wire.c: messages to and from the daemon ---------------------------- */

/* Sends request @op with @len payload bytes and @nfds fds, then waits (up to
 * LC_TIMEOUT_MS, applying notices) for its reply.  Returns the reply's status
 * with *rsp set (fds of a failed reply are closed), or a transport error with
 * *rsp NULL: -ENOTCONN (the daemon is gone), -ETIMEDOUT or -EPROTO (these end
 * the connection too: the daemon's state is unknown from then on), or the
 * -errno of a send the daemon never saw. */
int pvabi__lc_call(pvabi_ctx *ctx, struct lc *lc, uint16_t op, const void *req, size_t len,
                   const int *fds, unsigned nfds, struct lc_msg **rsp);
/* Sends request @op (no fds) flagged HV_F_NOREPLY: the daemon handles it in
 * order with our other requests but answers nothing, only logging a failure.
 * Waits only while the socket is full (up to LC_TIMEOUT_MS, applying
 * notices).  Returns 0, or the transport errors of pvabi__lc_call(). */
int pvabi__lc_send(pvabi_ctx *ctx, struct lc *lc, uint16_t op, const void *req, size_t len);
/* Makes the connected socket blocking with SO_RCVTIMEO LC_TIMEOUT_MS, so that
 * waiting for a reply is one recvmsg.  Returns 0 or a negative errno. */
int pvabi__lc_wire_setup(pvabi_ctx *ctx, struct lc *lc);
/* Checks a reply's payload length and fd count; on a mismatch calls
 * pvabi__lc_bad_reply() and returns 0. */
int pvabi__lc_reply_ok(pvabi_ctx *ctx, struct lc *lc, struct lc_msg *m, size_t len, unsigned nfds);
/* A reply that breaks the protocol: logs @what, closes its fds, ends the
 * connection; returns -EPROTO. */
int pvabi__lc_bad_reply(pvabi_ctx *ctx, struct lc *lc, struct lc_msg *m, const char *what);
/* Applies every notice already waiting on the socket, without blocking. */
void pvabi__lc_drain_notices(pvabi_ctx *ctx, struct lc *lc);
/* The daemon is gone (or broken): closes the socket, marks every port CLOSED
 * and queues one `closed` event for each.  @why: a negative errno. */
void pvabi__lc_lost(pvabi_ctx *ctx, struct lc *lc, int why, const char *what);
void pvabi__lc_close_fds(int *fds, unsigned n);

/* ---- connect.c, spawn.c: reaching the daemon ---------------------------- */

/* Connects to the daemon for "local[:@arg]" (starting one if allowed) and
 * says HELLO.  Sets lc->sock and lc->domid. */
int pvabi__lc_connect(pvabi_ctx *ctx, struct lc *lc, const char *arg);
/* Starts a daemon listening on @sock_path and waits until it is ready.
 * Returns 0, or a negative errno after logging what was tried. */
int pvabi__lc_autostart(pvabi_ctx *ctx, struct lc *lc, const char *sock_path);
/* Collects the started process if it has exited (platform close). */
void pvabi__lc_reap(struct lc *lc);
/* The store op: "<daemon socket>.xenstore" (pvabi-hv's embedded store). */
int pvabi__lc_store_where(pvabi_ctx *ctx, void *plat, struct pvabi__store_where *w);

/* ---- ports.c: event channels (ops, see platform.h) ---------------------- */

int pvabi__lc_evtchn_alloc(pvabi_ctx *ctx, void *plat, pvabi_domid remote, pvabi_port *port);
int pvabi__lc_evtchn_bind(pvabi_ctx *ctx, void *plat, pvabi_domid remote, pvabi_port remote_port,
                          pvabi_port *port);
int pvabi__lc_evtchn_unbind(pvabi_ctx *ctx, void *plat, pvabi_port port);
int pvabi__lc_evtchn_notify(pvabi_ctx *ctx, void *plat, pvabi_port port);
int pvabi__lc_evtchn_pending(pvabi_ctx *ctx, void *plat, struct pvabi__event *ev, unsigned max);
int pvabi__lc_evtchn_wait(pvabi_ctx *ctx, void *plat, int timeout_ms);
int pvabi__lc_evtchn_unmask(pvabi_ctx *ctx, void *plat, pvabi_port port);
int pvabi__lc_evtchn_state(pvabi_ctx *ctx, void *plat, pvabi_port port);

/* Notify with ctx->lock held (the unmap-notify actions of grants.c). */
int pvabi__lc_notify_locked(pvabi_ctx *ctx, struct lc *lc, pvabi_port port);
/* Applies one notice to the port table; takes its fds. */
void pvabi__lc_apply_notice(pvabi_ctx *ctx, struct lc *lc, struct lc_msg *m);
/* Marks every live port CLOSED and queues its `closed` event. */
void pvabi__lc_ports_close_all(pvabi_ctx *ctx, struct lc *lc);
/* Closes every port's fds (platform close). */
void pvabi__lc_ports_free(struct lc *lc);

/* ---- grants.c (ops, see platform.h) -------------------------------------- */

int pvabi__lc_grant_share(pvabi_ctx *ctx, void *plat, pvabi_domid domid, unsigned count,
                          int readonly, pvabi_gref *refs, void **addr, void **handle);
int pvabi__lc_grant_revoke(pvabi_ctx *ctx, void *plat, void *handle);
int pvabi__lc_grant_notify(pvabi_ctx *ctx, void *plat, void *handle, unsigned page, unsigned offset,
                           pvabi_port port);
int pvabi__lc_grant_map(pvabi_ctx *ctx, void *plat, pvabi_domid domid, const pvabi_gref *refs,
                        unsigned count, int readonly, int *status, void **addr, void **handle);
int pvabi__lc_grant_unmap(pvabi_ctx *ctx, void *plat, void *handle);
int pvabi__lc_map_notify(pvabi_ctx *ctx, void *plat, void *handle, unsigned page, unsigned offset,
                         pvabi_port port);
int pvabi__lc_grant_copy(pvabi_ctx *ctx, void *plat, struct pvabi_grant_copy_seg *segs,
                         unsigned count);

/* ---- hcall.c: hypercalls and grant listing (HV_OP_HYPERCALL, _GRANT_LIST) - */
int pvabi__lc_hypercall(pvabi_ctx *ctx, void *plat, struct pvabi__hypercall *hc, int64_t *result);
int pvabi__lc_grant_list(pvabi_ctx *ctx, void *plat, pvabi_domid granter, pvabi_gref first,
                         struct pvabi_grant_entry *out, unsigned max);

/* Unmaps and frees every share and mapping left (platform close). */
void pvabi__lc_grants_free(struct lc *lc);

#endif
