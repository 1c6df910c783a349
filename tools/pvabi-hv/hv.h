/* SPDX-License-Identifier: MIT */
/*
 * pvabi-hv internals: the daemon's state and the functions its files share.
 *
 * Object lifetimes, the part that is easy to get wrong:
 * - A struct dom exists from accept() until its connection is gone AND none
 *   of its grants is still mapped; in between it is a zombie that keeps its
 *   domid, so (domid, ref) names one grant for as long as anyone maps it.
 * - A death (EOF, a send that would block, a protocol violation) only marks
 *   the domain doomed; hv_reap() runs the deaths after the current epoll
 *   batch, or inside a request that must see them first (a refusal that a
 *   drain, below, may avert).  A reaped domain is only unlinked, and freed
 *   at the end of the batch (hv_free_released), so pointers held by a
 *   handler or by the epoll batch stay valid; a handler that reaps looks its
 *   objects up again afterwards.
 * - Draining: before refusing a request because of another domain's mapping
 *   or life, a handler first handles what that domain has already sent
 *   (hv_conn_drain): a client that unmapped without waiting for the reply
 *   (HV_F_NOREPLY), or died, and then told its peer, must be seen to have
 *   done so.  A drain nests a request inside another, so it never reads a
 *   domain that is itself in the middle of a request (its later requests
 *   must wait for its reply), and nests at most HV_DRAIN_DEPTH deep.
 * - A grant has at most one mapping domain: the live domain whose domid is
 *   the grantee (a dead mapper's mappings are dropped at its death).
 */
#ifndef PVABI_HV_H
#define PVABI_HV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "platform/local/proto.h"

/* Xen's DOMID_FIRST_RESERVED: every real domid is below it. */
#define HV_DOMID_LIMIT 32752u
#define HV_DOMID_NONE  UINT32_MAX
#define HV_ALLOW_MAX   64 /* --allow-uid entries */
/* Packets queued for a domain that is not reading: room for a notice about
 * every one of its ports at once (a peer with all of them died), and some. */
#define HV_OUTQ_MAX (HV_PORTS_MAX + 64)
/* Packets one drain handles at most: more than a socket holds at the
 * default buffer sizes, so a drain reaches everything already sent, while a
 * domain that keeps sending cannot keep the daemon in one. */
#define HV_DRAIN_MAX 1024
/* Drains nested inside requests handled by drains, at most; a chain of
 * domains each waiting on the next is this long before a drain is skipped. */
#define HV_DRAIN_DEPTH 8

/* ---- logging (log.c) ------------------------------------------------ */

enum hv_log_level { HV_LOG_WARN = 0, HV_LOG_INFO = 1, HV_LOG_DEBUG = 2 };

extern int hv_log_level;
void hv_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "EPERM" for -EPERM: what a status means, for log lines. */
const char *hv_errname(int status);

/* info and debug evaluate their arguments (hv_who()'s formatting, say) only
 * when the line is logged: every successful request logs at debug. */
#define hv_warn(...) hv_log(HV_LOG_WARN, __VA_ARGS__)
#define hv_info(...) ((void)(hv_log_level >= HV_LOG_INFO && (hv_log(HV_LOG_INFO, __VA_ARGS__), 1)))
#define hv_debug(...)                                                                              \
    ((void)(hv_log_level >= HV_LOG_DEBUG && (hv_log(HV_LOG_DEBUG, __VA_ARGS__), 1)))

/* ---- objects ---------------------------------------------------------- */

/* What an epoll event points at: the first member of each source.  The
 * store's (xs.h): its listening socket and its connections. */
enum hv_src_kind { SRC_LISTEN, SRC_SIGNAL, SRC_TIMER, SRC_CONN, SRC_STORE_LISTEN, SRC_STORE_CONN };
struct hv_source {
    enum hv_src_kind kind;
};

enum hv_port_state {
    PORT_FREE = 0,
    PORT_UNBOUND,     /* offered to remote_domid */
    PORT_INTERDOMAIN, /* connected to (remote_domid, remote_port) */
    PORT_CLOSED,      /* the peer went away; bindable again by its domid */
};

struct hv_port {
    uint8_t state;
    uint16_t remote_domid;
    uint16_t remote_port;
    int efd; /* this end's eventfd: its owner reads it, the peer writes it */
};

/* An unmap-notify action; offset HV_PAGE_SIZE and port 0 mean "none". */
struct hv_notify {
    uint32_t offset;
    uint32_t port;
};

struct hv_mem;
struct hv_dom;
struct hv_out;

struct hv_grant {
    struct hv_mem *mem;
    struct hv_dom *sharer;
    uint32_t page;                  /* page index in mem */
    uint16_t ref;                   /* 0: freed (refs start at HV_FIRST_GREF) */
    uint16_t grantee;               /* the only domid that may map it */
    uint32_t maps;                  /* live mappings by the grantee, RO and RW together */
    uint32_t tally;                 /* scratch count within one request; 0 between requests */
    struct hv_notify on_unmap;      /* the mapper's, runs if the mapper dies */
    struct hv_notify on_end;        /* the sharer's, runs if the sharer dies */
    struct hv_grant *mprev, *mnext; /* the mapper's list, while maps > 0 */
};

/* One GRANT_SHARE: the memfd and the grants of its pages. */
struct hv_mem {
    int fd;    /* the sharer's memfd, read-write */
    int ro_fd; /* a read-only reopening, made on first need; -1 until then */
    bool readonly;
    bool write_sealed; /* F_SEAL_WRITE or F_SEAL_FUTURE_WRITE: no pwrite */
    uint32_t live;     /* grants of g[] not yet freed */
    uint32_t count;
    struct hv_grant g[];
};

enum hv_dom_state {
    DOM_NEW,    /* connected, no HELLO yet */
    DOM_LIVE,   /* has a domid */
    DOM_DOOMED, /* dies at the next hv_reap() */
    DOM_ZOMBIE, /* gone, kept while another domain maps one of its grants */
};

struct hv_dom {
    struct hv_source src;
    enum hv_dom_state state;
    int sock;
    uint32_t domid; /* HV_DOMID_NONE before HELLO, and for a toolstack */
    bool privileged;
    /* A toolstack connection (HELLO HV_WANT_TOOLSTACK): DOM_LIVE, privileged,
     * but no domain: no domid, in no table, owns no ports or grants. */
    bool toolstack;
    pid_t pid;
    uid_t uid;

    struct hv_port *ports; /* indexed by port; grows up to HV_PORTS_MAX */
    uint32_t nports;

    struct hv_grant **gnt; /* indexed by ref; grows up to HV_GRANTS_MAX */
    uint32_t ngnt;
    uint32_t grants_live;
    uint32_t fresh_ref; /* refs from here up were never handed out */
    uint16_t *freeq;    /* FIFO of freed refs: the oldest is reused first */
    uint32_t fq_head, fq_len;

    struct hv_grant *mapped; /* grants this domain maps */

    bool in_request;      /* one of its requests is being handled: not drained */
    uint32_t drain_stamp; /* hv.drain_stamp when last picked for a drain */

    struct hv_out *outq, *outq_tail; /* what the socket would not take yet */
    uint32_t outq_len;

    struct hv_dom *prev, *next; /* hv.all */
    struct hv_dom *doom_next;
};

/* The daemon: one per process. */
struct hv_state {
    int epfd;
    int lsock;
    int sigfd;
    int timerfd;
    int reserve_fd; /* spare fd, given up to refuse a client at EMFILE */
    uint32_t priv_domid;
    uid_t allow_uid[HV_ALLOW_MAX];
    unsigned nallow;
    unsigned idle_secs; /* 0: never exit when idle */
    uint32_t next_domid;
    uint32_t nconns; /* connections, with or without HELLO, and store connections */
    bool stop;
    struct hv_dom *all;
    struct hv_dom *doomed;
    struct hv_dom *released; /* freed at the end of the epoll batch */
    unsigned drain_depth;    /* drains in progress, nested */
    uint32_t drain_stamp;    /* one per hv_grant_drain_mappers() */
    struct hv_dom *doms[HV_DOMID_LIMIT];
};

extern struct hv_state hv;

/* ---- a request, and the reply its handler fills (conn.c) -------------- */

struct hv_req {
    struct hv_hdr h;
    const uint8_t *payload;
    int fds[HV_FDS_MAX]; /* received; a handler that keeps one sets it to -1 */
    unsigned nfds;
};

struct hv_rsp {
    uint32_t len;
    unsigned nfds;
    int fds[HV_FDS_MAX]; /* borrowed from the daemon's tables, not closed */
    uint8_t payload[HV_MSG_MAX - sizeof(struct hv_hdr)];
};

/* Sends one packet, or queues it (fds duplicated) while @d's socket is
 * full; a send that fails, or a queue past HV_OUTQ_MAX, dooms @d.  Returns 0
 * or a negative errno.  Nothing is sent to a domain that is not connected. */
int hv_send(struct hv_dom *d, const struct hv_hdr *h, const void *payload, const int *fds,
            unsigned nfds);
int hv_send_notice(struct hv_dom *d, uint16_t op, const void *payload, uint32_t len, int fd);
const char *hv_who(const struct hv_dom *d); /* "dom 3 (pid 42)", for logs */
const char *hv_op_name(uint16_t op);
void hv_conn_accept(void);
void hv_conn_event(struct hv_dom *d, uint32_t events);
void hv_conn_close(struct hv_dom *d);
/* Handles the requests already waiting on @d's socket (at most HV_DRAIN_MAX),
 * without blocking; deaths it finds are left doomed for the caller's
 * hv_reap().  False, with nothing read, when @d is in the middle of a request
 * or drains nest HV_DRAIN_DEPTH deep. */
bool hv_conn_drain(struct hv_dom *d);
void hv_conn_free_queue(struct hv_dom *d);

/* ---- domains (dom.c) ---------------------------------------------------- */

struct hv_dom *hv_dom_new(int sock, pid_t pid, uid_t uid);
int32_t hv_op_hello(struct hv_dom *d, struct hv_req *rq, struct hv_rsp *rs);
/* The domain holding @domid if it is live (not doomed, not a zombie). */
struct hv_dom *hv_dom_live(uint32_t domid);
/* May processes of @uid act as the privileged domain or the toolstack
 * (--allow-uid)? */
bool hv_uid_allowed(uid_t uid);
void hv_dom_doom(struct hv_dom *d, const char *why);
void hv_reap(void);
/* True (and @d reaped) if @d's process has already hung up, after handling
 * the requests it sent before: a client that waited for a death must find the
 * domain dead even when the hang-up comes later in this epoll batch than its
 * request. */
bool hv_dom_gone(struct hv_dom *d);
void hv_dom_release_if_done(struct hv_dom *d);
/* Frees the domains released during this epoll batch (its events may still
 * point at them, so they are only unlinked until then). */
void hv_free_released(void);
void hv_dom_kill_all(void);

/* ---- event channels (evtchn.c) ----------------------------------------- */

int32_t hv_op_evtchn_alloc(struct hv_dom *d, struct hv_req *rq, struct hv_rsp *rs);
int32_t hv_op_evtchn_bind(struct hv_dom *d, struct hv_req *rq, struct hv_rsp *rs);
int32_t hv_op_evtchn_close(struct hv_dom *d, struct hv_req *rq, struct hv_rsp *rs);
/* The port if @port is an allocated port of @d, else NULL. */
struct hv_port *hv_port_get(struct hv_dom *d, uint32_t port);
/* Wakes the other end of @d's @port, if it is connected. */
void hv_evtchn_wake_peer(struct hv_dom *d, uint32_t port);
void hv_evtchn_close_all(struct hv_dom *d);
void hv_evtchn_free(struct hv_dom *d);

/* ---- grants (grant.c, notify.c) ---------------------------------------- */

int32_t hv_op_grant_share(struct hv_dom *d, struct hv_req *rq, struct hv_rsp *rs);
int32_t hv_op_grant_revoke(struct hv_dom *d, struct hv_req *rq, struct hv_rsp *rs);
int32_t hv_op_grant_map(struct hv_dom *d, struct hv_req *rq, struct hv_rsp *rs);
int32_t hv_op_grant_unmap(struct hv_dom *d, struct hv_req *rq, struct hv_rsp *rs);
int32_t hv_op_unmap_notify(struct hv_dom *d, struct hv_req *rq, struct hv_rsp *rs);
/* The grant @ref of @sharer (live or zombie), or NULL. */
struct hv_grant *hv_grant_get(struct hv_dom *sharer, uint32_t ref);
/* Frees one grant (its ref, and its memfd when its last grant goes). */
void hv_grant_free(struct hv_grant *g);
void hv_grant_unlink_mapper(struct hv_dom *mapper, struct hv_grant *g);
/* Drains every live domain that maps one of @refs (@count of them) of
 * @sharer, or any grant of @sharer when @refs is NULL, then reaps the deaths
 * found.  Grant pointers held across it must be looked up again. */
void hv_grant_drain_mappers(struct hv_dom *sharer, const uint32_t *refs, uint32_t count);
void hv_notify_run(struct hv_dom *owner, struct hv_grant *g, const struct hv_notify *n);
/* The death of @d, in the order hv_reap() calls them. */
void hv_grant_run_death_notifies(struct hv_dom *d);
void hv_grant_drop_mappings(struct hv_dom *d);
void hv_grant_reclaim(struct hv_dom *d);
void hv_grant_free_tables(struct hv_dom *d);

/* ---- introspection (hcall.c, inspect.c) ---------------------------------- */

int32_t hv_op_hypercall(struct hv_dom *d, struct hv_req *rq, struct hv_rsp *rs);
int32_t hv_op_grant_list(struct hv_dom *d, struct hv_req *rq, struct hv_rsp *rs);
/* The domain holding @domid, live or dying, or NULL; a live one whose
 * process has hung up is first reaped (hv_dom_gone()), so it may be dying
 * or gone.  May reap: pointers held across it must be looked up again. */
struct hv_dom *hv_dom_settled(const struct hv_dom *asker, uint32_t domid);
/* hv_dom_settled() of the domain @asker means by @domid (Xen's DOMID_SELF:
 * itself; for a toolstack, the privileged domain). */
struct hv_dom *hv_dom_lookup(const struct hv_dom *asker, uint32_t domid);
/* May @asker ask about @target?  Itself, or anything when privileged. */
bool hv_may_inspect(const struct hv_dom *asker, const struct hv_dom *target);
/* Dying: a zombie, or doomed and not yet reaped. */
bool hv_dom_dying(const struct hv_dom *d);

/* ---- the server (server.c) --------------------------------------------- */

struct hv_config {
    const char *socket; /* absolute */
    bool daemon;
    int ready_fd; /* -1: none */
    unsigned idle_secs;
    uint32_t priv_domid;
    uid_t allow_uid[HV_ALLOW_MAX];
    unsigned nallow;
};

/* Returns the process exit status. */
int hv_server_run(const struct hv_config *cfg);
void hv_idle_update(void);

#endif /* PVABI_HV_H */
