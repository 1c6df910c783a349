/* SPDX-License-Identifier: MIT */
/*
 * Views and transactions.
 *
 * A request works on a view: the live tree, or its transaction.  A
 * transaction copies each node the first time it touches it (read or
 * write) and remembers the node's live generation then (0: it did not
 * exist); every later access in the transaction sees that copy, changed by
 * the transaction only.  Commit succeeds only if every node it touched still
 * has the generation it saw, so whatever it read is still true and it can
 * replace its changed nodes in the live tree as they are.  Generations move
 * on every change of a node, including a child added or removed, so a
 * transaction that listed a directory conflicts with a new child too.
 *
 * Watches of changes made in a transaction fire at commit, once per node.
 */
#include <stdlib.h>
#include <string.h>

#include "xs.h"

enum { FIRE_NONE, FIRE_EXACT, FIRE_TREE };

/* One node a transaction touched. */
struct xs_txent {
    struct xs_hent h;       /* keyed by path */
    struct xs_node *node;   /* the transaction's copy; NULL: absent in its view */
    uint64_t seen;          /* the live generation at first access; 0: absent */
    bool modified;          /* replaces the live node at commit */
    uint8_t fire;           /* the watch event it owes at commit */
    struct xs_perms old;    /* who may see that event: the node's earlier permissions */
    struct xs_txent *onext; /* in access order */
    char path[];
};

/* A change of a domain's node count that a transaction would make. */
struct xs_delta {
    uint32_t domid;
    int64_t delta;
};

struct xs_tx {
    struct xs_tx *next; /* the connection's */
    uint32_t id;
    struct xs_htab ents;
    struct xs_txent *first, *last;
    uint32_t nents;
    struct xs_delta *deltas;
    uint32_t ndeltas;
    uint64_t changes; /* changes made in it, to tell whether a request made any */
    bool failed;      /* a change was left half done: it cannot commit */
    bool stale;       /* a domain was released meanwhile: commit fails with EAGAIN */
};

/* ---- a transaction's entries ---------------------------------------------- */

static struct xs_txent *ent_find(struct xs_tx *tx, const char *path)
{
    return (struct xs_txent *)xs_htab_find(&tx->ents, path);
}

static struct xs_txent *ent_new(const char *path)
{
    size_t len = strlen(path) + 1;
    struct xs_txent *e = calloc(1, sizeof(*e) + len);
    struct xs_node *live = xs_tree_find(path);

    if (!e)
        return NULL;
    memcpy(e->path, path, len);
    e->h.key = e->path;
    if (live) {
        e->seen = live->gen;
        e->node = xs_node_copy(live);
        if (!e->node) {
            free(e);
            return NULL;
        }
    }
    return e;
}

/* The entry of @path in @rq's transaction, made on first access. */
static int ent_get(struct xs_req *rq, const char *path, struct xs_txent **out)
{
    struct xs_tx *tx = rq->tx;
    struct xs_txent *e = ent_find(tx, path);

    if (!e) {
        /* Xen's transaction-nodes quota: one transaction cannot copy the
         * whole store for an unprivileged domain. */
        if (xs_over_quota(&rq->who, XSQ_TX_NODES, (uint64_t)tx->nents + 1))
            return ENOSPC;
        e = ent_new(path);
        if (!e || xs_htab_add(&tx->ents, &e->h)) {
            xs_node_free(e ? e->node : NULL);
            free(e);
            return ENOMEM;
        }
        if (tx->last)
            tx->last->onext = e;
        else
            tx->first = e;
        tx->last = e;
        tx->nents++;
    }
    *out = e;
    return 0;
}

static void ent_free(struct xs_txent *e)
{
    xs_node_free(e->node);
    xs_perms_free(&e->old);
    free(e);
}

/* ---- views ------------------------------------------------------------------ */

int xs_view_get(struct xs_req *rq, const char *path, const struct xs_node **out)
{
    struct xs_txent *e;
    int err;

    if (!rq->tx) {
        *out = xs_tree_find(path);
        return *out ? 0 : ENOENT;
    }
    err = ent_get(rq, path, &e);
    if (err)
        return err;
    *out = e->node;
    return e->node ? 0 : ENOENT;
}

int xs_view_edit(struct xs_req *rq, const char *path, struct xs_node **out)
{
    struct xs_txent *e;
    int err;

    if (!rq->tx) {
        *out = xs_tree_find(path);
        if (!*out)
            return ENOENT;
        (*out)->gen = ++xs.gen;
        return 0;
    }
    err = ent_get(rq, path, &e);
    if (err)
        return err;
    if (!e->node)
        return ENOENT;
    e->modified = true;
    rq->tx->changes++;
    /* A fresh generation here too: DIRECTORY_PART inside the transaction
     * must see the node change. */
    e->node->gen = ++xs.gen;
    *out = e->node;
    return 0;
}

/* Names @n in its parent (in the view). */
static int link_in_parent(struct xs_req *rq, const struct xs_node *n)
{
    char *ppath = xs_path_parent(n->path);
    struct xs_node *parent;
    int err;

    if (!ppath)
        return ENOMEM;
    err = xs_view_edit(rq, ppath, &parent);
    free(ppath);
    return err ? err : xs_node_add_kid(parent, xs_path_base(n->path));
}

static void unlink_in_parent(struct xs_req *rq, const char *path)
{
    char *ppath = xs_path_parent(path);
    struct xs_node *parent;

    if (ppath && xs_view_edit(rq, ppath, &parent) == 0)
        xs_node_del_kid(parent, xs_path_base(path));
    else if (rq->tx)
        rq->tx->failed = true;
    free(ppath);
}

int xs_view_add(struct xs_req *rq, struct xs_node *n)
{
    struct xs_txent *e = NULL;
    int err = rq->tx ? ent_get(rq, n->path, &e) : 0;

    if (!err)
        err = link_in_parent(rq, n);
    if (!err && !rq->tx && xs_tree_insert(n) != 0) {
        unlink_in_parent(rq, n->path);
        err = ENOMEM;
    }
    if (err) {
        xs_node_free(n);
        return err;
    }
    n->gen = ++xs.gen;
    if (e) {
        xs_node_free(e->node); /* NULL: it was absent in the view */
        e->node = n;
        e->modified = true;
        rq->tx->changes++;
    }
    xs_view_account(rq, n, +1);
    return 0;
}

int xs_view_del(struct xs_req *rq, const char *path)
{
    struct xs_txent *e = NULL;
    struct xs_node *n;
    int err = rq->tx ? ent_get(rq, path, &e) : 0;

    if (err)
        return err;
    n = e ? e->node : xs_tree_find(path);
    if (!n)
        return ENOENT;
    unlink_in_parent(rq, path);
    xs_view_account(rq, n, -1);
    if (e) {
        e->node = NULL;
        e->modified = true;
        rq->tx->changes++;
    } else {
        xs_tree_unlink(n);
    }
    xs_node_free(n);
    return 0;
}

/* ---- node counts -------------------------------------------------------------- */

static int delta_add(struct xs_delta **d, uint32_t *n, uint32_t domid, int64_t v)
{
    struct xs_delta *grown;

    for (uint32_t i = 0; i < *n; i++) {
        if ((*d)[i].domid == domid) {
            (*d)[i].delta += v;
            return 0;
        }
    }
    grown = realloc(*d, (*n + 1) * sizeof(**d));
    if (!grown)
        return ENOMEM;
    grown[*n].domid = domid;
    grown[*n].delta = v;
    *d = grown;
    (*n)++;
    return 0;
}

static void live_count(uint32_t domid, int64_t v)
{
    struct xs_domain *dom = xs_dom(domid);

    if (!dom)
        return;
    /* A count never goes below zero: the tags (xs_node.acct) keep nodes of
     * an earlier incarnation out of it. */
    if (v < 0 && (uint64_t)-v > dom->nodes)
        dom->nodes = 0;
    else
        dom->nodes = (uint32_t)((int64_t)dom->nodes + v);
}

void xs_view_account(struct xs_req *rq, const struct xs_node *n, int sign)
{
    uint32_t domid = xs_node_counts_for(n);

    if (domid == XS_NOBODY)
        return;
    if (!rq->tx)
        live_count(domid, sign);
    else if (delta_add(&rq->tx->deltas, &rq->tx->ndeltas, domid, sign) != 0)
        rq->tx->failed = true;
}

uint64_t xs_view_nodes(const struct xs_req *rq, uint32_t domid)
{
    const struct xs_domain *dom = xs_dom(domid);
    int64_t n = dom ? dom->nodes : 0;

    for (uint32_t i = 0; rq->tx && i < rq->tx->ndeltas; i++)
        if (rq->tx->deltas[i].domid == domid)
            n += rq->tx->deltas[i].delta;
    return n < 0 ? 0 : (uint64_t)n;
}

/* ---- watches ------------------------------------------------------------------- */

void xs_view_fire(struct xs_req *rq, const char *path, bool exact, const struct xs_node *node,
                  const struct xs_perms *old)
{
    struct xs_txent *e;

    if (!rq->tx) {
        xs_fire(path, exact, node, old);
        return;
    }
    /* The change recorded the entry already; this only fails on ENOMEM. */
    if (ent_get(rq, path, &e) != 0) {
        rq->tx->failed = true;
        return;
    }
    if (e->fire != FIRE_TREE)
        e->fire = exact ? FIRE_EXACT : FIRE_TREE;
    if (old) {
        xs_perms_free(&e->old);
        if (xs_perms_copy(&e->old, old) != 0)
            rq->tx->failed = true;
    }
}

/* ---- transactions ------------------------------------------------------------- */

uint64_t xs_tx_changes(const struct xs_tx *tx)
{
    return tx->changes;
}

void xs_tx_fail(struct xs_tx *tx)
{
    tx->failed = true;
}

struct xs_tx *xs_tx_find(struct xs_conn *c, uint32_t id)
{
    for (struct xs_tx *tx = c->txs; tx; tx = tx->next)
        if (tx->id == id)
            return tx;
    return NULL;
}

int xs_tx_start(struct xs_conn *c, uint32_t *id)
{
    struct xs_tx *tx = calloc(1, sizeof(*tx));

    if (!tx)
        return ENOMEM;
    /* Ids are per connection, never 0 (no transaction), never in use. */
    do
        tx->id = c->next_txid++;
    while (tx->id == 0 || xs_tx_find(c, tx->id));
    tx->next = c->txs;
    c->txs = tx;
    c->ntxs++;
    xs.dom[c->domid].txs++;
    *id = tx->id;
    return 0;
}

static void tx_free(struct xs_tx *tx)
{
    struct xs_txent *e = tx->first;

    while (e) {
        struct xs_txent *next = e->onext;
        ent_free(e);
        e = next;
    }
    free(tx->ents.tab);
    free(tx->deltas);
    free(tx);
}

static void tx_unlink(struct xs_conn *c, struct xs_tx *tx)
{
    struct xs_tx **p = &c->txs;

    while (*p && *p != tx)
        p = &(*p)->next;
    if (*p)
        *p = tx->next;
    /* A closed connection gave its counts back already (xs_conn_close). */
    if (!c->closed) {
        c->ntxs--;
        xs.dom[c->domid].txs--;
    }
}

/* EAGAIN if any node the transaction touched changed since. */
static int tx_conflicts(const struct xs_tx *tx)
{
    for (const struct xs_txent *e = tx->first; e; e = e->onext) {
        const struct xs_node *live = xs_tree_find(e->path);
        if ((live ? live->gen : 0) != e->seen)
            return EAGAIN;
    }
    return 0;
}

/* The node counts the commit moves, checked against the committer's quota. */
static int tx_count(struct xs_req *rq, struct xs_tx *tx, struct xs_delta **d, uint32_t *nd)
{
    for (const struct xs_txent *e = tx->first; e; e = e->onext) {
        const struct xs_node *live = e->modified ? xs_tree_find(e->path) : NULL;
        uint32_t was = live ? xs_node_counts_for(live) : XS_NOBODY;
        uint32_t now = e->modified && e->node ? xs_node_counts_for(e->node) : XS_NOBODY;
        if ((was != XS_NOBODY && delta_add(d, nd, was, -1)) ||
            (now != XS_NOBODY && delta_add(d, nd, now, +1)))
            return ENOMEM;
    }
    for (uint32_t i = 0; i < *nd; i++) {
        const struct xs_domain *dom = xs_dom((*d)[i].domid);
        if ((*d)[i].delta > 0 &&
            xs_over_quota(&rq->who, XSQ_NODES, dom->nodes + (uint64_t)(*d)[i].delta))
            return ENOSPC;
    }
    return 0;
}

/* Replaces the live nodes by the transaction's: nothing here can fail (the
 * tree's table exists, so an insert does not allocate). */
static void tx_apply(struct xs_tx *tx)
{
    for (struct xs_txent *e = tx->first; e; e = e->onext) {
        struct xs_node *live;
        if (!e->modified)
            continue;
        live = xs_tree_find(e->path);
        if (live) {
            xs_tree_unlink(live);
            xs_node_free(live);
        }
        if (e->node) {
            e->node->gen = ++xs.gen;
            if (xs_tree_insert(e->node) != 0)
                xs_node_free(e->node);
            e->node = NULL;
        }
    }
}

static void tx_fire(const struct xs_tx *tx)
{
    for (const struct xs_txent *e = tx->first; e; e = e->onext)
        if (e->fire != FIRE_NONE)
            xs_fire(e->path, e->fire == FIRE_EXACT, xs_tree_find(e->path),
                    e->old.n ? &e->old : NULL);
}

static int tx_commit(struct xs_req *rq, struct xs_tx *tx)
{
    struct xs_delta *d = NULL;
    uint32_t nd = 0;
    int err = tx->failed ? ENOMEM : tx->stale ? EAGAIN : tx_conflicts(tx);

    if (!err)
        err = tx_count(rq, tx, &d, &nd);
    if (!err) {
        tx_apply(tx);
        for (uint32_t i = 0; i < nd; i++)
            live_count(d[i].domid, d[i].delta);
        tx_fire(tx);
    }
    free(d);
    return err;
}

int xs_tx_end(struct xs_req *rq, struct xs_tx *tx, bool commit)
{
    int err = 0;

    tx_unlink(rq->c, tx);
    if (commit) {
        /* The commit itself works on the live tree. */
        rq->tx = NULL;
        err = tx_commit(rq, tx);
    }
    tx_free(tx);
    return err;
}

void xs_tx_drop_all(struct xs_conn *c)
{
    while (c->txs) {
        struct xs_tx *tx = c->txs;
        tx_unlink(c, tx);
        tx_free(tx);
    }
}

void xs_tx_release_conflicts(void)
{
    for (struct xs_conn *c = xs.conns; c; c = c->next)
        for (struct xs_tx *tx = c->txs; tx; tx = tx->next)
            tx->stale = true;
}
