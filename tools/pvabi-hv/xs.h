/* SPDX-License-Identifier: MIT */
/*
 * The embedded xenstore of pvabi-hv: Xen's xenstore wire protocol
 * (xen/io/xs_wire.h) on the stream socket <hv socket>.xenstore, so that
 * Debian's libxenstore and xenstore-utils work against it (docs/xenstore.md).
 *
 * Files, by job:
 *   xs_tree.c   the live tree: nodes in a hash table keyed by path, paths,
 *               permissions, node accounting
 *   xs_tx.c     views (what one request sees and changes: the live tree or a
 *               transaction's private copies) and transactions
 *   xs_watch.c  watches and the events they fire, special watches
 *   xs_ops.c    the request handlers and their dispatch
 *   xs_dom.c    domains: introduce/release hooks, the domain requests,
 *               XS_CONTROL (pvabi-domid)
 *   xs_conn.c   the socket: accept, who is speaking, framing, output queue
 *
 * Lifetimes:
 * - A node lives in exactly one place: the live tree, or one transaction's
 *   copy (moved into the tree at commit).
 * - A closed connection is only marked closed (its fd, output and quota
 *   counts are gone at once); its memory, watches and transactions are freed
 *   at the end of the epoll batch (xs_free_closed), so a handler or an
 *   event loop that still points at it stays valid.
 */
#ifndef PVABI_HV_XS_H
#define PVABI_HV_XS_H

#include <errno.h> /* xs_wire.h defines its error table only after errno.h */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <xen/io/xs_wire.h>

#include "hv.h"

#define XS_NOBODY     UINT32_MAX /* a connection that has not said which domain it is */
#define XS_DOMID_SELF 0x7FF0u    /* Xen's DOMID_SELF */
/* Bytes queued for a client that does not read; beyond it the connection is
 * closed (replies and watch events both count). */
#define XS_OUTQ_MAX (2u << 20)
/* Requests handled per wake-up of one connection, so a flood yields. */
#define XS_MSGS_PER_WAKE 32

/* ---- quotas (per unprivileged domain; --store-quota NAME=N) -------------- */

enum xs_quota_id {
    XSQ_NODES,        /* nodes owned: ENOSPC */
    XSQ_VALUE_SIZE,   /* bytes in one value: ENOSPC */
    XSQ_WATCHES,      /* watches: E2BIG */
    XSQ_TRANSACTIONS, /* open transactions: ENOSPC */
    XSQ_PERMS,        /* entries in one SET_PERMS: ENOSPC */
    XSQ_TX_NODES,     /* nodes one transaction touches: ENOSPC */
    XSQ_PATH_MAX,     /* path length below /local/domain/N/: EINVAL (everyone) */
    XSQ_COUNT
};

extern uint32_t xs_quota[XSQ_COUNT];
/* "NAME=N" from the command line: 0, or -1 for an unknown name or a bad N. */
int xs_quota_parse(const char *arg);
/* The names, for usage and logs. */
const char *xs_quota_name(enum xs_quota_id q);

/* ---- permissions (xs_tree.c) --------------------------------------------- */

#define XS_P_NONE  0u
#define XS_P_READ  1u
#define XS_P_WRITE 2u
#define XS_P_OWNER 4u

struct xs_perm {
    uint32_t id;
    uint32_t bits; /* XS_P_READ | XS_P_WRITE */
};

/* p[0] names the owner, and its bits are everyone else's default. */
struct xs_perms {
    uint32_t n;
    struct xs_perm *p;
};

/* Who a request speaks for. */
struct xs_who {
    uint32_t domid;
    uint32_t target; /* XS_SET_TARGET: acts as this domain too; XS_NOBODY */
    bool priv;
};

/* What @who may do to a node with @perms: XS_P_* bits. */
unsigned xs_perm_for(const struct xs_who *who, const struct xs_perms *perms);
int xs_perms_copy(struct xs_perms *dst, const struct xs_perms *src);
void xs_perms_free(struct xs_perms *p);
/* Parses @n strings ("r5", "b0", ...) packed at @s: 0 or EINVAL/ENOMEM. */
int xs_perms_parse(const char *s, uint32_t n, struct xs_perms *out);
/* The strings GET_PERMS returns, malloc'd into *out: 0 or ENOMEM. */
int xs_perms_format(const struct xs_perms *p, char **out, uint32_t *len);

/* ---- nodes and the live tree (xs_tree.c) ------------------------------------ */

struct xs_hent {
    const char *key;
    struct xs_hent *next;
};

struct xs_htab {
    struct xs_hent **tab;
    uint32_t size; /* a power of 2, or 0 before the first insert */
    uint32_t count;
};

struct xs_hent *xs_htab_find(const struct xs_htab *t, const char *key);
/* 0, or ENOMEM when not even a first table could be made. */
int xs_htab_add(struct xs_htab *t, struct xs_hent *e);
void xs_htab_del(struct xs_htab *t, struct xs_hent *e);

struct xs_node {
    struct xs_hent h; /* keyed by path */
    uint64_t gen;     /* xs.gen at its last change, including a child added or removed */
    uint64_t acct;    /* the owner's incarnation it counts for; 0: none (xs_dom.c) */
    struct xs_perms perms;
    char *value;
    uint32_t vlen;
    char *kids; /* child names, each NUL-terminated, in creation order (Xen's format) */
    uint32_t klen;
    char path[];
};

struct xs_node *xs_node_new(const char *path);
struct xs_node *xs_node_copy(const struct xs_node *n);
void xs_node_free(struct xs_node *n);
int xs_node_set_value(struct xs_node *n, const void *data, uint32_t len);
int xs_node_add_kid(struct xs_node *n, const char *name);
void xs_node_del_kid(struct xs_node *n, const char *name);

struct xs_node *xs_tree_find(const char *path);
int xs_tree_insert(struct xs_node *n);
void xs_tree_unlink(struct xs_node *n);
/* Calls @fn for every live node; @fn must not add or remove nodes. */
void xs_tree_each(void (*fn)(struct xs_node *n, void *arg), void *arg);
/* "/", "/local", "/local/domain": owned by the privileged domain, "n<priv>". */
int xs_tree_init(void);
void xs_tree_free(void);

/* ---- paths (xs_tree.c) ------------------------------------------------------ */

/* The parent of an absolute path other than "/" (malloc'd; NULL: ENOMEM). */
char *xs_path_parent(const char *path);
char *xs_path_join(const char *dir, const char *name);
const char *xs_path_base(const char *path);
/* Is @child @parent or below it?  Xen's rule: everything is below "/". */
bool xs_path_is_child(const char *child, const char *parent);
/* The absolute path @who means by @path (relative ones are below its home),
 * malloc'd; NULL with *err EINVAL (bad characters, //, trailing /, too
 * long, or '@' unless @special_ok) or ENOMEM.  *relative says which it was. */
char *xs_canon(const struct xs_who *who, const char *path, bool special_ok, bool *relative,
               int *err);
/* "/local/domain/<domid>" into @buf (at least 32 bytes). */
void xs_home(uint32_t domid, char *buf, size_t size);

/* ---- domains (xs_dom.c) ------------------------------------------------------ */

struct xs_domain {
    bool introduced;
    uint64_t
        incarnation; /* changes at every introduce: nodes tagged with an old one no longer count */
    uint32_t nodes;  /* counted nodes owned (xs_node.acct) */
    uint32_t watches;
    uint32_t txs;
    uint32_t target; /* XS_NOBODY */
};

/* The record of @domid, or NULL for a domid no domain can have. */
struct xs_domain *xs_dom(uint32_t domid);
/* The tag a node owned by @owner gets now (0 if @owner is not introduced). */
uint64_t xs_dom_tag(uint32_t owner);
/* The domain a node counts for, or XS_NOBODY. */
uint32_t xs_node_counts_for(const struct xs_node *n);
/* True if @would_be exceeds quota @q for @who (never for the privileged). */
bool xs_over_quota(const struct xs_who *who, enum xs_quota_id q, uint64_t would_be);

/* ---- connections (xs_conn.c) ------------------------------------------------ */

struct xs_out;
struct xs_watch;
struct xs_tx;

struct xs_conn {
    struct hv_source src; /* SRC_STORE_CONN */
    int fd;
    unsigned serial; /* for log lines */
    pid_t pid;
    uid_t uid;
    uint32_t domid; /* XS_NOBODY until selected */
    bool bound;     /* speaks as a live domain (closed at its release), not as the toolstack */
    bool closed;

    struct xsd_sockmsg hdr; /* the request being read */
    uint32_t got;           /* bytes of header + payload read so far */
    char *in;               /* XENSTORE_PAYLOAD_MAX + 1: the payload, NUL-terminated */

    struct xs_out *outq, *outq_tail;
    size_t outq_bytes;

    struct xs_watch *watches;
    uint32_t nwatches;
    struct xs_tx *txs;
    uint32_t ntxs;
    uint32_t next_txid;

    struct xs_conn *next; /* xs.conns, closed ones included until freed */
};

/* The module's state: one store per daemon. */
struct xs_state {
    int lsock;
    struct hv_source listen_src; /* SRC_STORE_LISTEN */
    struct xs_htab tree;
    uint64_t gen;          /* the last generation handed out */
    uint64_t incarnations; /* the last incarnation handed out */
    struct xs_conn *conns;
    unsigned serial;
    struct xs_perms special[2]; /* @introduceDomain, @releaseDomain */
    struct xs_domain dom[HV_DOMID_LIMIT];
};

extern struct xs_state xs;

struct xs_who xs_conn_who(const struct xs_conn *c);
const char *xs_conn_name(const struct xs_conn *c); /* for log lines */
/* Queues one message (header + @len bytes of @payload) for @c, sending what
 * the socket takes now; a full queue or a failed send closes @c. */
void xs_send(struct xs_conn *c, uint32_t type, uint32_t req_id, uint32_t tx_id, const void *payload,
             uint32_t len);
/* Closes @c now (fd, output, quota counts); its memory goes at the end of
 * the epoll batch.  @why is logged at info. */
void xs_conn_close(struct xs_conn *c, const char *why);
/* Changes who @c speaks for, moving its watch and transaction counts. */
void xs_conn_set_domid(struct xs_conn *c, uint32_t domid, bool bound);

/* ---- requests (xs_ops.c) --------------------------------------------------- */

struct xs_req {
    struct xs_conn *c; /* NULL: the daemon's own change (introduce, release) */
    struct xs_who who;
    struct xs_tx *tx; /* the request's transaction, or NULL: the live tree */
    struct xsd_sockmsg hdr;
    const char *body; /* hdr.len bytes, and a NUL after them */
};

/* Handles the request that was just read into @c. */
void xs_handle(struct xs_conn *c);
/* Replies to @rq (nothing for the daemon's own requests); a payload longer
 * than XENSTORE_PAYLOAD_MAX becomes E2BIG, as in Xen. */
void xs_reply(struct xs_req *rq, const void *payload, uint32_t len);
void xs_reply_ok(struct xs_req *rq);
const char *xs_errname(int err);
/* How many NUL-terminated strings @len bytes of @s hold (Xen counts NULs). */
uint32_t xs_count_strings(const char *s, uint32_t len);
/* The payload as exactly one NUL-terminated string, or NULL (Xen's onearg). */
const char *xs_onearg(const struct xs_req *rq);
/* Xen's atoi() of a domid argument, without atoi's overflow. */
uint32_t xs_parse_domid(const char *s);

/* Writes @path (creating missing parents) as @rq; with @perms, a node this
 * creates gets them instead of its parent's.  0 or an errno. */
int xs_op_write(struct xs_req *rq, const char *path, const void *value, uint32_t len,
                const struct xs_perms *perms);
/* Removes @path and everything below it, firing watches: 0 or an errno. */
int xs_op_rm_tree(struct xs_req *rq, const char *path);

/* ---- views and transactions (xs_tx.c) ------------------------------------- */

/* What @rq sees at @path: 0, ENOENT, or ENOSPC/ENOMEM from a transaction
 * that cannot record one more node. */
int xs_view_get(struct xs_req *rq, const char *path, const struct xs_node **out);
/* The same node, to change: its generation moves now (live) or at commit. */
int xs_view_edit(struct xs_req *rq, const char *path, struct xs_node **out);
/* Adds @n (not yet anywhere; its parent must exist in the view) and names it
 * in its parent: 0 or ENOMEM/ENOSPC (then @n is freed). */
int xs_view_add(struct xs_req *rq, struct xs_node *n);
/* Removes the childless node @path and its name in its parent. */
int xs_view_del(struct xs_req *rq, const char *path);
/* A node's count moves with it: +1 or -1 for the domain @n counts for. */
void xs_view_account(struct xs_req *rq, const struct xs_node *n, int sign);
/* Nodes @domid owns as @rq sees it (live count plus its transaction's). */
uint64_t xs_view_nodes(const struct xs_req *rq, uint32_t domid);
/* A change at @path: watches fire now, or when @rq's transaction commits.
 * @node is the node as it is (NULL if gone), @old the permissions it had
 * (deleted nodes, SET_PERMS), which also let a watcher see the event. */
void xs_view_fire(struct xs_req *rq, const char *path, bool exact, const struct xs_node *node,
                  const struct xs_perms *old);

struct xs_tx *xs_tx_find(struct xs_conn *c, uint32_t id);
/* A domain's release conflicts with every open transaction: their copies
 * of nodes may still name it (as owner or in an entry), which a commit
 * would give to a later domain with its domid.  They retry (EAGAIN). */
void xs_tx_release_conflicts(void);
/* A request that failed after changing its transaction leaves it half done
 * (a subtree half removed): as in Xen, such a transaction cannot commit. */
uint64_t xs_tx_changes(const struct xs_tx *tx);
void xs_tx_fail(struct xs_tx *tx);
/* 0 and the new id, or ENOMEM. */
int xs_tx_start(struct xs_conn *c, uint32_t *id);
/* Ends @tx (unlinked from its connection, freed): commits if @commit,
 * returning 0, EAGAIN (a conflict), ENOSPC (quota) or ENOMEM. */
int xs_tx_end(struct xs_req *rq, struct xs_tx *tx, bool commit);
/* Forgets all of @c's transactions (quota counts too, unless closed). */
void xs_tx_drop_all(struct xs_conn *c);

/* ---- watches (xs_watch.c) ---------------------------------------------------- */

/* 0, EEXIST (same path and token), E2BIG (quota) or ENOMEM; fires the
 * initial event. */
int xs_watch_add(struct xs_req *rq, const char *path, const char *token, bool relative);
int xs_watch_del(struct xs_conn *c, const char *path, const char *token);
void xs_watch_drop_all(struct xs_conn *c);
/* Sends the events of a change at @path to every watcher allowed to see it:
 * @exact matches only watches on @path itself (a removed descendant),
 * otherwise watches on @path and its ancestors. */
void xs_fire(const char *path, bool exact, const struct xs_node *node, const struct xs_perms *old);
/* @introduceDomain / @releaseDomain. */
void xs_fire_special(const char *name);
/* The permissions of a special watch path, or NULL if @name is not one. */
struct xs_perms *xs_special_perms(const char *name);

/* ---- requests handled in xs_dom.c ------------------------------------------- */

int xs_op_introduce(struct xs_req *rq);
int xs_op_release(struct xs_req *rq);
int xs_op_resume(struct xs_req *rq);
int xs_op_set_target(struct xs_req *rq);
int xs_op_is_introduced(struct xs_req *rq);
int xs_op_get_domain_path(struct xs_req *rq);
int xs_op_control(struct xs_req *rq);

/* ---- what the rest of the daemon calls -------------------------------------- */

/* After the listening socket is bound: the tree and the special watches. */
int xs_init(int lsock);
void xs_accept(void);
void xs_conn_event(struct xs_conn *c, uint32_t events);
/* dom.c: a domain completed HELLO / was reaped (the same epoll batch). */
void xs_introduce(struct hv_dom *d);
void xs_release(struct hv_dom *d);
/* Frees the connections closed during this epoll batch. */
void xs_free_closed(void);
/* SIGTERM: closes every store connection (before the domains die, so
 * nobody watches their release), then frees the store. */
void xs_close_all(void);
void xs_teardown(void);

#endif /* PVABI_HV_XS_H */
