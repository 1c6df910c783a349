/* SPDX-License-Identifier: MIT */
/*
 * The store's requests: checks every request passes, the handlers of the
 * tree operations, and the reply helpers.  The semantics are Xen 4.17's
 * C xenstored (docs/xenstore.md lists where they differ); so are the error
 * codes and the order in which they are checked, since clients tell
 * failures apart by them.
 *
 * A handler returns 0 once it has replied, or the errno of an XS_ERROR reply.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xs.h"

#define F_PRIV  1u /* privileged speakers only (EACCES) */
#define F_NOTID 2u /* the header's tx_id is ignored */

/* ---- helpers ----------------------------------------------------------------- */

const char *xs_errname(int err)
{
    for (size_t i = 0; i < sizeof(xsd_errors) / sizeof(xsd_errors[0]); i++)
        if (xsd_errors[i].errnum == err)
            return xsd_errors[i].errstring;
    return "EINVAL"; /* what Xen sends for an errno it cannot name */
}

uint32_t xs_count_strings(const char *s, uint32_t len)
{
    uint32_t n = 0;

    for (uint32_t i = 0; i < len; i++)
        n += s[i] == '\0';
    return n;
}

const char *xs_onearg(const struct xs_req *rq)
{
    uint32_t len = rq->hdr.len;

    if (!len || memchr(rq->body, 0, len) != rq->body + len - 1)
        return NULL;
    return rq->body;
}

uint32_t xs_parse_domid(const char *s)
{
    return (uint32_t)strtol(s, NULL, 10);
}

void xs_reply(struct xs_req *rq, const void *payload, uint32_t len)
{
    const char *e2big = "E2BIG";

    if (!rq->c)
        return;
    if (len > XENSTORE_PAYLOAD_MAX)
        xs_send(rq->c, XS_ERROR, rq->hdr.req_id, rq->hdr.tx_id, e2big, (uint32_t)strlen(e2big) + 1);
    else
        xs_send(rq->c, rq->hdr.type, rq->hdr.req_id, rq->hdr.tx_id, payload, len);
}

void xs_reply_ok(struct xs_req *rq)
{
    xs_reply(rq, "OK", 3);
}

static void reply_error(struct xs_req *rq, int err)
{
    const char *name = xs_errname(err);

    if (rq->c)
        xs_send(rq->c, XS_ERROR, rq->hdr.req_id, rq->hdr.tx_id, name, (uint32_t)strlen(name) + 1);
}

/* ---- finding nodes, with Xen's permission rules ---------------------------------- */

/* Xen's errno_from_parents(): a node that is missing, or that the speaker may
 * not use, reads as EACCES unless its nearest existing ancestor grants
 * @perm: nobody learns whether a node exists below a node they cannot see. */
static int errno_from_parents(struct xs_req *rq, const char *path, int err, unsigned perm)
{
    char *cur = strdup(path);
    const struct xs_node *n = NULL;
    int r = ENOENT;

    while (cur && r == ENOENT && strcmp(cur, "/") != 0) {
        char *up = xs_path_parent(cur);
        free(cur);
        cur = up;
        if (cur)
            r = xs_view_get(rq, cur, &n);
    }
    if (!cur)
        return ENOMEM;
    free(cur);
    if (r)
        return r == ENOENT ? EACCES : r;
    return xs_perm_for(&rq->who, &n->perms) & perm ? err : EACCES;
}

static int get_checked(struct xs_req *rq, const char *path, unsigned perm,
                       const struct xs_node **out)
{
    int err = xs_view_get(rq, path, out);

    if (!err && (xs_perm_for(&rq->who, &(*out)->perms) & perm) == perm)
        return 0;
    if (!err)
        err = EACCES;
    if (err != ENOENT && err != EACCES)
        return err;
    return errno_from_parents(rq, path, err, perm);
}

/* The argument @arg as an absolute path (*path, malloc'd), and its node. */
static int get_node(struct xs_req *rq, const char *arg, unsigned perm, char **path,
                    const struct xs_node **out)
{
    bool relative;
    int err;

    *path = NULL;
    if (!arg)
        return EINVAL;
    *path = xs_canon(&rq->who, arg, false, &relative, &err);
    return *path ? get_checked(rq, *path, perm, out) : err;
}

/* ---- creating --------------------------------------------------------------------- */

/* How many of @path and its ancestors the view lacks (the root never is). */
static int count_missing(struct xs_req *rq, const char *path, uint32_t *missing)
{
    char *cur = strdup(path);
    const struct xs_node *n;
    int err = ENOENT;

    *missing = 0;
    while (cur && (err = xs_view_get(rq, cur, &n)) == ENOENT) {
        char *up = xs_path_parent(cur);
        (*missing)++;
        free(cur);
        cur = up;
    }
    if (!cur)
        return ENOMEM;
    free(cur);
    return err;
}

/* A node under @parent: its permissions, unless given, are the parent's, but
 * an unprivileged creator owns what it creates (Xen). */
static int make_node(struct xs_req *rq, const char *path, const struct xs_node *parent,
                     const void *value, uint32_t vlen, const struct xs_perms *perms)
{
    struct xs_node *n = xs_node_new(path);
    int err;

    if (!n)
        return ENOMEM;
    err = xs_perms_copy(&n->perms, perms ? perms : &parent->perms);
    if (!err && !perms && !rq->who.priv)
        n->perms.p[0].id = rq->who.domid;
    if (!err)
        err = xs_node_set_value(n, value, vlen);
    if (err) {
        xs_node_free(n);
        return err;
    }
    n->acct = xs_dom_tag(n->perms.p[0].id);
    return xs_view_add(rq, n);
}

/* Creates the @missing deepest levels of @path, parents first. */
static int create_levels(struct xs_req *rq, const char *path, uint32_t missing, const void *value,
                         uint32_t vlen, const struct xs_perms *perms)
{
    char *ppath = xs_path_parent(path);
    const struct xs_node *parent;
    int err = ppath ? 0 : ENOMEM;

    if (!err && missing > 1)
        err = create_levels(rq, ppath, missing - 1, NULL, 0, NULL);
    if (!err)
        err = xs_view_get(rq, ppath, &parent);
    if (!err)
        err = make_node(rq, path, parent, value, vlen, perms);
    free(ppath);
    return err;
}

static int create(struct xs_req *rq, const char *path, const void *value, uint32_t vlen,
                  const struct xs_perms *perms)
{
    const struct xs_node *n;
    uint32_t missing;
    int err = count_missing(rq, path, &missing);

    if (err)
        return err;
    /* All or nothing: the quota is checked for every level first. */
    if (xs_over_quota(&rq->who, XSQ_NODES, xs_view_nodes(rq, rq->who.domid) + missing))
        return ENOSPC;
    err = create_levels(rq, path, missing, value, vlen, perms);
    if (!err && xs_view_get(rq, path, &n) == 0)
        xs_view_fire(rq, path, false, n, NULL);
    return err;
}

int xs_op_write(struct xs_req *rq, const char *path, const void *value, uint32_t len,
                const struct xs_perms *perms)
{
    const struct xs_node *n;
    struct xs_node *e;
    int err = get_checked(rq, path, XS_P_WRITE, &n);

    if (err && err != ENOENT)
        return err;
    if (xs_over_quota(&rq->who, XSQ_VALUE_SIZE, len))
        return ENOSPC;
    if (err == ENOENT)
        return create(rq, path, value, len, perms);
    err = xs_view_edit(rq, path, &e);
    if (!err)
        err = xs_node_set_value(e, value, len);
    if (!err)
        xs_view_fire(rq, path, false, e, NULL);
    return err;
}

/* ---- removing --------------------------------------------------------------------- */

static int rm_subtree(struct xs_req *rq, const char *path, bool top);

static int rm_kids(struct xs_req *rq, const char *path, const char *kids, uint32_t klen)
{
    int err = 0;

    for (uint32_t at = 0; !err && at < klen; at += (uint32_t)strlen(kids + at) + 1) {
        char *child = xs_path_join(path, kids + at);
        err = child ? 0 : ENOMEM;
        if (!err)
            err = rm_subtree(rq, child, false);
        free(child);
    }
    return err;
}

/* Children first, then the node: each fires before it goes, while its
 * permissions can still be checked (Xen does the same). */
static int rm_subtree(struct xs_req *rq, const char *path, bool top)
{
    const struct xs_node *n;
    char *kids;
    uint32_t klen;
    int err = xs_view_get(rq, path, &n);

    if (err)
        return err;
    klen = n->klen;
    if (klen) {
        /* A copy: the list shrinks as the children go. */
        kids = malloc(klen);
        if (!kids)
            return ENOMEM;
        memcpy(kids, n->kids, klen);
        err = rm_kids(rq, path, kids, klen);
        free(kids);
    }
    if (!err)
        err = xs_view_get(rq, path, &n);
    if (err)
        return err;
    /* The top fires its watches and its ancestors'; a descendant only the
     * watches set on itself (their ancestors saw the top's event). */
    xs_view_fire(rq, path, !top, n, &n->perms);
    return xs_view_del(rq, path);
}

int xs_op_rm_tree(struct xs_req *rq, const char *path)
{
    return rm_subtree(rq, path, true);
}

/* ---- the tree requests ------------------------------------------------------------ */

static int op_read(struct xs_req *rq)
{
    const struct xs_node *n;
    char *path;
    int err = get_node(rq, xs_onearg(rq), XS_P_READ, &path, &n);

    if (!err)
        xs_reply(rq, n->value, n->vlen);
    free(path);
    return err;
}

static int op_write(struct xs_req *rq)
{
    const char *nul = memchr(rq->body, 0, rq->hdr.len);
    uint32_t plen = nul ? (uint32_t)(nul - rq->body) + 1 : 0;
    bool relative;
    char *path;
    int err;

    if (!nul)
        return EINVAL;
    path = xs_canon(&rq->who, rq->body, false, &relative, &err);
    if (path)
        err = xs_op_write(rq, path, rq->body + plen, rq->hdr.len - plen, NULL);
    if (!err)
        xs_reply_ok(rq);
    free(path);
    return err;
}

static int op_mkdir(struct xs_req *rq)
{
    const struct xs_node *n;
    char *path;
    int err = get_node(rq, xs_onearg(rq), XS_P_WRITE, &path, &n);

    /* An existing node is fine and left alone, as are its watches. */
    if (err == ENOENT)
        err = create(rq, path, NULL, 0, NULL);
    if (!err)
        xs_reply_ok(rq);
    free(path);
    return err;
}

/* Removing a missing node succeeds if its parent exists (Xen). */
static int rm_missing(struct xs_req *rq, const char *path)
{
    char *ppath = xs_path_parent(path);
    const struct xs_node *parent;
    int err = ppath ? xs_view_get(rq, ppath, &parent) : ENOMEM;

    free(ppath);
    return err;
}

static int op_rm(struct xs_req *rq)
{
    const struct xs_node *n;
    char *path;
    int err = get_node(rq, xs_onearg(rq), XS_P_WRITE, &path, &n);

    if (err == ENOENT)
        err = rm_missing(rq, path);
    else if (!err && strcmp(path, "/") == 0)
        err = EINVAL;
    else if (!err)
        err = xs_op_rm_tree(rq, path);
    if (!err)
        xs_reply_ok(rq);
    free(path);
    return err;
}

static int op_directory(struct xs_req *rq)
{
    const struct xs_node *n;
    char *path;
    int err = get_node(rq, xs_onearg(rq), XS_P_READ, &path, &n);

    /* Longer than a message: E2BIG, and libxenstore asks DIRECTORY_PART. */
    if (!err)
        xs_reply(rq, n->kids, n->klen);
    free(path);
    return err;
}

/* "<gen>\0" and the children from @off on that fit, ending "\0\0" when the
 * list ends there (Xen's format). */
static int reply_dir_part(struct xs_req *rq, const struct xs_node *n, uint32_t off)
{
    char gen[24];
    uint32_t glen = (uint32_t)snprintf(gen, sizeof(gen), "%llu", (unsigned long long)n->gen) + 1;
    uint32_t room = XENSTORE_PAYLOAD_MAX - glen - 1, len = 0;
    char *buf;

    while (off < n->klen && off + len < n->klen) {
        uint32_t kl = (uint32_t)strlen(n->kids + off + len);
        if (len + kl >= room)
            break;
        len += kl + 1;
    }
    buf = malloc(glen + len + 1);
    if (!buf)
        return ENOMEM;
    memcpy(buf, gen, glen);
    if (len)
        memcpy(buf + glen, n->kids + off, len);
    buf[glen + len] = '\0';
    /* The extra NUL says "the end", also for an offset past the list. */
    xs_reply(rq, buf, glen + len + (off >= n->klen || off + len == n->klen));
    free(buf);
    return 0;
}

static int op_directory_part(struct xs_req *rq)
{
    const struct xs_node *n;
    char *path;
    int err;

    if (xs_count_strings(rq->body, rq->hdr.len) != 2)
        return EINVAL;
    err = get_node(rq, rq->body, XS_P_READ, &path, &n);
    if (!err)
        err = reply_dir_part(rq, n, xs_parse_domid(rq->body + strlen(rq->body) + 1));
    free(path);
    return err;
}

static int reply_perms(struct xs_req *rq, const struct xs_perms *p)
{
    char *buf;
    uint32_t len;
    int err = xs_perms_format(p, &buf, &len);

    if (!err)
        xs_reply(rq, buf, len);
    free(buf);
    return err;
}

static int op_get_perms(struct xs_req *rq)
{
    const char *arg = xs_onearg(rq);
    const struct xs_perms *sp = arg && arg[0] == '@' ? xs_special_perms(arg) : NULL;
    const struct xs_node *n;
    char *path;
    int err;

    /* The special watch paths have permissions too (who gets their events). */
    if (sp)
        return xs_perm_for(&rq->who, sp) & XS_P_READ ? reply_perms(rq, sp) : EACCES;
    err = get_node(rq, arg, XS_P_READ, &path, &n);
    if (!err)
        err = reply_perms(rq, &n->perms);
    free(path);
    return err;
}

static int set_special_perms(struct xs_req *rq, struct xs_perms *perms)
{
    struct xs_perms *sp = xs_special_perms(rq->body);
    const unsigned need = XS_P_WRITE | XS_P_OWNER;

    if (!sp)
        return EINVAL;
    if ((xs_perm_for(&rq->who, sp) & need) != need)
        return EACCES;
    xs_perms_free(sp);
    *sp = *perms;
    perms->p = NULL;
    xs_reply_ok(rq);
    return 0;
}

/* Replaces @path's permissions; its count follows a new owner. */
static int set_node_perms(struct xs_req *rq, const char *path, struct xs_perms *perms)
{
    struct xs_node *n;
    struct xs_perms old;
    int err = xs_view_edit(rq, path, &n);

    if (err)
        return err;
    xs_view_account(rq, n, -1);
    old = n->perms;
    n->perms = *perms;
    perms->p = NULL;
    if (old.p[0].id != n->perms.p[0].id)
        n->acct = xs_dom_tag(n->perms.p[0].id);
    xs_view_account(rq, n, +1);
    /* Watchers who could read the node before see the change too. */
    xs_view_fire(rq, path, false, n, &old);
    xs_perms_free(&old);
    return 0;
}

static int set_perms_at(struct xs_req *rq, struct xs_perms *perms)
{
    const struct xs_node *n;
    char *path;
    int err = get_node(rq, rq->body, XS_P_WRITE | XS_P_OWNER, &path, &n);

    /* Only the privileged may give a node away. */
    if (!err && !rq->who.priv && perms->p[0].id != n->perms.p[0].id)
        err = EPERM;
    if (!err)
        err = set_node_perms(rq, path, perms);
    if (!err)
        xs_reply_ok(rq);
    free(path);
    return err;
}

static int op_set_perms(struct xs_req *rq)
{
    uint32_t n = xs_count_strings(rq->body, rq->hdr.len);
    struct xs_perms perms;
    int err;

    if (n < 2)
        return EINVAL;
    if (xs_over_quota(&rq->who, XSQ_PERMS, n - 1))
        return ENOSPC;
    err = xs_perms_parse(rq->body + strlen(rq->body) + 1, n - 1, &perms);
    if (err)
        return err;
    if (rq->body[0] == '@')
        err = set_special_perms(rq, &perms);
    else
        err = set_perms_at(rq, &perms);
    xs_perms_free(&perms);
    return err;
}

/* ---- watches and transactions --------------------------------------------------- */

/* WATCH and UNWATCH carry exactly two strings, as Xen: path and token.
 * Returns the canonical path (NULL with *err set) and the token. */
static char *watch_args(struct xs_req *rq, const char **token, bool *relative, int *err)
{
    if (xs_count_strings(rq->body, rq->hdr.len) != 2) {
        *err = EINVAL;
        return NULL;
    }
    *token = rq->body + strlen(rq->body) + 1;
    return xs_canon(&rq->who, rq->body, true, relative, err);
}

static int op_watch(struct xs_req *rq)
{
    const char *token;
    bool relative;
    int err;
    char *path = watch_args(rq, &token, &relative, &err);

    if (path)
        err = xs_watch_add(rq, path, token, relative);
    free(path);
    return err;
}

static int op_unwatch(struct xs_req *rq)
{
    const char *token;
    bool relative;
    int err;
    char *path = watch_args(rq, &token, &relative, &err);

    /* A path no watch could have been set on names no watch (Xen: ENOENT);
     * a malformed request stays EINVAL. */
    if (path)
        err = xs_watch_del(rq->c, path, token);
    else if (err == EINVAL && xs_count_strings(rq->body, rq->hdr.len) == 2)
        err = ENOENT;
    if (!err)
        xs_reply_ok(rq);
    free(path);
    return err;
}

static int op_reset_watches(struct xs_req *rq)
{
    xs_watch_drop_all(rq->c);
    xs_tx_drop_all(rq->c);
    rq->tx = NULL;
    xs_reply_ok(rq);
    return 0;
}

static int op_tx_start(struct xs_req *rq)
{
    const struct xs_domain *dom = xs_dom(rq->who.domid);
    char id_str[16];
    uint32_t id;
    int err;

    if (rq->tx)
        return EBUSY; /* no nesting */
    if (xs_over_quota(&rq->who, XSQ_TRANSACTIONS, (dom ? dom->txs : 0) + 1ull))
        return ENOSPC;
    err = xs_tx_start(rq->c, &id);
    if (err)
        return err;
    snprintf(id_str, sizeof(id_str), "%u", id);
    xs_reply(rq, id_str, (uint32_t)strlen(id_str) + 1);
    return 0;
}

static int op_tx_end(struct xs_req *rq)
{
    const char *arg = xs_onearg(rq);
    int err;

    if (!arg || (strcmp(arg, "T") != 0 && strcmp(arg, "F") != 0))
        return EINVAL;
    if (!rq->tx)
        return ENOENT;
    err = xs_tx_end(rq, rq->tx, arg[0] == 'T');
    rq->tx = NULL;
    if (!err)
        xs_reply_ok(rq);
    return err;
}

/* ---- dispatch ------------------------------------------------------------------------- */

typedef int xs_op_fn(struct xs_req *rq);

struct op_desc {
    const char *name;
    xs_op_fn *fn;
    unsigned flags;
};

/* XS_CONTROL checks privilege itself: pvabi-domid is for everyone. */
static const struct op_desc op_table[XS_TYPE_COUNT] = {
    [XS_CONTROL] = { "CONTROL", xs_op_control, 0 },
    [XS_DIRECTORY] = { "DIRECTORY", op_directory, 0 },
    [XS_READ] = { "READ", op_read, 0 },
    [XS_GET_PERMS] = { "GET_PERMS", op_get_perms, 0 },
    [XS_WATCH] = { "WATCH", op_watch, F_NOTID },
    [XS_UNWATCH] = { "UNWATCH", op_unwatch, F_NOTID },
    [XS_TRANSACTION_START] = { "TRANSACTION_START", op_tx_start, 0 },
    [XS_TRANSACTION_END] = { "TRANSACTION_END", op_tx_end, 0 },
    [XS_INTRODUCE] = { "INTRODUCE", xs_op_introduce, F_PRIV },
    [XS_RELEASE] = { "RELEASE", xs_op_release, F_PRIV },
    [XS_GET_DOMAIN_PATH] = { "GET_DOMAIN_PATH", xs_op_get_domain_path, 0 },
    [XS_WRITE] = { "WRITE", op_write, 0 },
    [XS_MKDIR] = { "MKDIR", op_mkdir, 0 },
    [XS_RM] = { "RM", op_rm, 0 },
    [XS_SET_PERMS] = { "SET_PERMS", op_set_perms, 0 },
    [XS_IS_DOMAIN_INTRODUCED] = { "IS_DOMAIN_INTRODUCED", xs_op_is_introduced, F_PRIV },
    [XS_RESUME] = { "RESUME", xs_op_resume, F_PRIV },
    [XS_SET_TARGET] = { "SET_TARGET", xs_op_set_target, F_PRIV },
    [XS_RESET_WATCHES] = { "RESET_WATCHES", op_reset_watches, 0 },
    [XS_DIRECTORY_PART] = { "DIRECTORY_PART", op_directory_part, 0 },
};

static const struct op_desc *op_find(uint32_t type)
{
    return type < XS_TYPE_COUNT && op_table[type].fn ? &op_table[type] : NULL;
}

/* The checks before any handler, in Xen's order (ours first: identity). */
static int check(struct xs_req *rq, const struct op_desc *op, const char **why)
{
    if (rq->c->domid == XS_NOBODY && rq->hdr.type != XS_CONTROL)
        return *why = "no domain selected (XS_CONTROL pvabi-domid)", EACCES;
    if (!op)
        return *why = "unknown request type", ENOSYS;
    if ((op->flags & F_PRIV) && !rq->who.priv)
        return *why = "privileged request", EACCES;
    if (!(op->flags & F_NOTID) && rq->hdr.tx_id) {
        rq->tx = xs_tx_find(rq->c, rq->hdr.tx_id);
        if (!rq->tx)
            return *why = "no such transaction", ENOENT;
    }
    return 0;
}

/* The first string of the payload, printable, for log lines. */
static const char *arg_for_log(const struct xs_req *rq, char *buf, size_t size)
{
    size_t i = 0;

    for (; i + 1 < size && i < rq->hdr.len && rq->body[i]; i++)
        buf[i] = rq->body[i] > ' ' && rq->body[i] < 127 ? rq->body[i] : '?';
    buf[i] = '\0';
    return buf;
}

/* Refusals at info, expected outcomes (missing nodes, conflicts) at debug. */
static void log_outcome(const struct xs_req *rq, const struct op_desc *op, int err, const char *why)
{
    char arg[80];
    bool quiet = err == 0 || err == ENOENT || err == EEXIST || err == EAGAIN;

    if (quiet ? hv_log_level < HV_LOG_DEBUG : hv_log_level < HV_LOG_INFO)
        return;
    hv_log(quiet ? HV_LOG_DEBUG : HV_LOG_INFO, "store: %s: %s(%u) %s (req %u, tx %u): %s%s%s",
           xs_conn_name(rq->c), op ? op->name : "?", rq->hdr.type,
           arg_for_log(rq, arg, sizeof(arg)), rq->hdr.req_id, rq->hdr.tx_id,
           err ? xs_errname(err) : "OK", why ? ": " : "", why ? why : "");
}

void xs_handle(struct xs_conn *c)
{
    struct xs_req rq = { .c = c, .who = xs_conn_who(c), .hdr = c->hdr, .body = c->in };
    const struct op_desc *op = op_find(c->hdr.type);
    const char *why = NULL;
    int err = check(&rq, op, &why);
    uint64_t changes = rq.tx ? xs_tx_changes(rq.tx) : 0;

    if (!err)
        err = op->fn(&rq);
    /* rq.tx is NULL again if the request ended the transaction. */
    if (err && rq.tx && xs_tx_changes(rq.tx) != changes)
        xs_tx_fail(rq.tx);
    if (err)
        reply_error(&rq, err);
    log_outcome(&rq, op, err, why);
}
