/* SPDX-License-Identifier: MIT */
/*
 * Domains as the store knows them: introduced when a pvabi domain completes
 * HELLO, released when it dies (or on XS_RELEASE), with the quota counts of
 * each; the domain requests (XS_INTRODUCE and friends) and XS_CONTROL, whose
 * "pvabi-domid" command tells the store which of a process's domains a
 * connection speaks for.
 *
 * Nothing of a released domain passes to a later domain with its domid (Xen
 * 4.17, XSA-322 and XSA-326): the nodes it owned go, its entries leave every
 * other node's permissions.  Node counts are tagged too: a node counts for
 * the incarnation of its owner it was created for or given to (xs_node.acct),
 * so a node given to a domid while no domain has it counts for nobody.
 *
 * The privileged domain stands for Xen's dom0, which never dies: it is
 * introduced from the start, and the death of its process closes that
 * process's connections and fires @releaseDomain, nothing more.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xs.h"

/* ---- quotas ------------------------------------------------------------------------ */

/* Xen 4.17 C xenstored's defaults (docs/xenstore.md says what differs). */
uint32_t xs_quota[XSQ_COUNT] = {
    [XSQ_NODES] = 1000,
    [XSQ_VALUE_SIZE] = 2048,
    [XSQ_WATCHES] = 128,
    [XSQ_TRANSACTIONS] = 10,
    [XSQ_PERMS] = 5,
    [XSQ_TX_NODES] = 1024,
    [XSQ_PATH_MAX] = XENSTORE_REL_PATH_MAX,
};

static const char *const quota_names[XSQ_COUNT] = {
    [XSQ_NODES] = "nodes",       [XSQ_VALUE_SIZE] = "value-size",
    [XSQ_WATCHES] = "watches",   [XSQ_TRANSACTIONS] = "transactions",
    [XSQ_PERMS] = "perms",       [XSQ_TX_NODES] = "transaction-nodes",
    [XSQ_PATH_MAX] = "path-max",
};

const char *xs_quota_name(enum xs_quota_id q)
{
    return quota_names[q];
}

int xs_quota_parse(const char *arg)
{
    const char *eq = strchr(arg, '=');
    char *end;
    unsigned long v;

    if (!eq || !eq[1])
        return -1;
    errno = 0;
    v = strtoul(eq + 1, &end, 10);
    if (errno || *end || eq[1] == '-' || v > UINT32_MAX)
        return -1;
    for (int q = 0; q < XSQ_COUNT; q++) {
        if (strlen(quota_names[q]) == (size_t)(eq - arg) &&
            strncmp(arg, quota_names[q], (size_t)(eq - arg)) == 0) {
            /* Xen caps the path length at what the protocol allows. */
            if (q == XSQ_PATH_MAX && v > XENSTORE_REL_PATH_MAX)
                return -1;
            xs_quota[q] = (uint32_t)v;
            return 0;
        }
    }
    return -1;
}

/* ---- records and counts -------------------------------------------------------- */

struct xs_domain *xs_dom(uint32_t domid)
{
    return domid < HV_DOMID_LIMIT ? &xs.dom[domid] : NULL;
}

uint64_t xs_dom_tag(uint32_t owner)
{
    const struct xs_domain *dom = xs_dom(owner);

    return dom && dom->introduced ? dom->incarnation : 0;
}

uint32_t xs_node_counts_for(const struct xs_node *n)
{
    uint32_t owner = n->perms.n ? n->perms.p[0].id : XS_NOBODY;
    const struct xs_domain *dom = xs_dom(owner);

    return dom && dom->introduced && n->acct && n->acct == dom->incarnation ? owner : XS_NOBODY;
}

bool xs_over_quota(const struct xs_who *who, enum xs_quota_id q, uint64_t would_be)
{
    return !who->priv && would_be > xs_quota[q];
}

static bool introduced(uint32_t domid)
{
    const struct xs_domain *dom = xs_dom(domid);

    return dom && dom->introduced;
}

/* The daemon's own changes: privileged, on the live tree, no reply. */
static struct xs_req sys_req(void)
{
    struct xs_req rq = { .who = { hv.priv_domid, XS_NOBODY, true } };

    return rq;
}

/* ---- introduce ------------------------------------------------------------------- */

/* The process's name from /proc/<pid>/comm, else "dom<id>". */
static void domain_name(uint32_t domid, pid_t pid, char *buf, size_t size)
{
    char path[64];
    ssize_t n = -1;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        n = read(fd, buf, size - 1);
        close(fd);
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\0'))
        n--;
    if (n > 0)
        buf[n] = '\0';
    else
        snprintf(buf, size, "dom%u", domid);
}

/* Home "/local/domain/<id>" (owned by the domain, nobody else may look: "n<id>")
 * unless it exists, then its "domid" and "name". */
static int write_home(uint32_t domid, pid_t pid)
{
    struct xs_req rq = sys_req();
    struct xs_perm own = { domid, XS_P_NONE };
    struct xs_perms perms = { 1, &own };
    char home[32], path[48], val[32];
    int err = 0;

    xs_home(domid, home, sizeof(home));
    if (!xs_tree_find(home))
        err = xs_op_write(&rq, home, NULL, 0, &perms);
    snprintf(path, sizeof(path), "%s/domid", home);
    snprintf(val, sizeof(val), "%u", domid);
    if (!err)
        err = xs_op_write(&rq, path, val, (uint32_t)strlen(val), NULL);
    snprintf(path, sizeof(path), "%s/name", home);
    domain_name(domid, pid, val, sizeof(val));
    if (!err)
        err = xs_op_write(&rq, path, val, (uint32_t)strlen(val), NULL);
    return err;
}

static void store_introduce(uint32_t domid, pid_t pid)
{
    struct xs_domain *dom = xs_dom(domid);
    int err;

    dom->introduced = true;
    dom->incarnation = ++xs.incarnations;
    dom->nodes = 0;
    dom->target = XS_NOBODY;
    err = write_home(domid, pid);
    if (err)
        hv_warn("store: introducing dom %u: writing its home: %s", domid, xs_errname(err));
    hv_info("store: dom %u introduced", domid);
    xs_fire_special("@introduceDomain");
}

void xs_introduce(struct hv_dom *d)
{
    store_introduce(d->domid, d->pid);
}

/* ---- release --------------------------------------------------------------------- */

static void close_bound(uint32_t domid, const char *why)
{
    for (struct xs_conn *c = xs.conns; c; c = c->next)
        if (!c->closed && c->bound && c->domid == domid)
            xs_conn_close(c, why);
}

/* ---- forgetting a domain ----------------------------------------------------------- */

struct owned {
    uint32_t domid;
    char **paths;
    size_t n, cap;
    bool nomem;
};

static bool is_skeleton(const char *path)
{
    return strcmp(path, "/") == 0 || strcmp(path, "/local") == 0 ||
           strcmp(path, "/local/domain") == 0;
}

static void collect_owned(struct xs_node *n, void *arg)
{
    struct owned *o = arg;
    char **grown;

    /* The skeleton every domain's home hangs from is never removed: an owner
     * the toolstack gave it only loses it (strip_perms). */
    if (n->perms.p[0].id != o->domid || o->nomem || is_skeleton(n->path))
        return;
    if (o->n == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 16;
        grown = realloc(o->paths, o->cap * sizeof(*grown));
        if (!grown) {
            o->nomem = true;
            return;
        }
        o->paths = grown;
    }
    o->paths[o->n] = strdup(n->path);
    o->nomem = !o->paths[o->n];
    o->n += !o->nomem;
}

static int shorter_first(const void *a, const void *b)
{
    size_t la = strlen(*(char *const *)a), lb = strlen(*(char *const *)b);

    return la < lb ? -1 : la > lb;
}

/* Removes every node @domid owns, each with its subtree (watches fire):
 * ancestors first, so a subtree goes in one removal, as in Xen. */
static void rm_owned(uint32_t domid)
{
    struct owned o = { .domid = domid };
    struct xs_req rq = sys_req();

    xs_tree_each(collect_owned, &o);
    if (o.nomem)
        hv_warn("store: releasing dom %u: out of memory; some of its nodes stay", domid);
    if (o.n)
        qsort(o.paths, o.n, sizeof(*o.paths), shorter_first);
    for (size_t i = 0; i < o.n; i++) {
        if (xs_tree_find(o.paths[i]))
            xs_op_rm_tree(&rq, o.paths[i]);
        free(o.paths[i]);
    }
    free(o.paths);
}

/* Drops the entries naming @domid (an owner becomes the privileged domain);
 * true if there were any. */
static bool strip_perms(struct xs_perms *p, uint32_t domid)
{
    uint32_t keep = 1;
    bool changed = p->p[0].id == domid;

    if (changed)
        p->p[0].id = hv.priv_domid;
    for (uint32_t i = 1; i < p->n; i++) {
        if (p->p[i].id == domid)
            changed = true;
        else
            p->p[keep++] = p->p[i];
    }
    p->n = keep;
    return changed;
}

static void strip_node(struct xs_node *n, void *arg)
{
    /* A new generation: a transaction holding the old permissions must not
     * write them back. */
    if (strip_perms(&n->perms, *(const uint32_t *)arg))
        n->gen = ++xs.gen;
}

/* Forgets @domid as a target: a later domain with that domid is another. */
static void drop_targets(uint32_t domid)
{
    for (uint32_t i = 0; i < HV_DOMID_LIMIT; i++)
        if (xs.dom[i].target == domid)
            xs.dom[i].target = XS_NOBODY;
}

/* Its home, then whatever else it owned, then its permission entries. */
static void forget(uint32_t domid)
{
    struct xs_domain *dom = xs_dom(domid);
    struct xs_req rq = sys_req();
    char home[32];
    int err;

    xs_home(domid, home, sizeof(home));
    if (xs_tree_find(home) && (err = xs_op_rm_tree(&rq, home)) != 0)
        hv_warn("store: releasing dom %u: removing %s: %s", domid, home, xs_errname(err));
    rm_owned(domid);
    xs_tree_each(strip_node, &domid);
    xs_tx_release_conflicts();
    for (int i = 0; i < 2; i++)
        strip_perms(&xs.special[i], domid);
    dom->introduced = false;
    dom->nodes = 0;
    dom->target = XS_NOBODY;
    drop_targets(domid);
}

/* Its connections first: their watches must not see its nodes go (Xen). */
static void store_release(uint32_t domid, const char *why)
{
    close_bound(domid, why);
    if (!introduced(domid))
        return;
    if (domid != hv.priv_domid)
        forget(domid);
    hv_info("store: dom %u released", domid);
    xs_fire_special("@releaseDomain");
}

void xs_release(struct hv_dom *d)
{
    if (d->domid != HV_DOMID_NONE)
        store_release(d->domid, "its domain died");
}

/* ---- the domain requests ----------------------------------------------------------- */

/* Only a domain that is a live pvabi domain can be introduced: the store has
 * no rings to map.  One released by XS_RELEASE is introduced again. */
int xs_op_introduce(struct xs_req *rq)
{
    const char *domid_s = rq->body, *mfn_s, *port_s;
    struct hv_dom *d;

    if (xs_count_strings(rq->body, rq->hdr.len) < 3)
        return EINVAL;
    mfn_s = domid_s + strlen(domid_s) + 1;
    port_s = mfn_s + strlen(mfn_s) + 1;
    if ((int)xs_parse_domid(port_s) <= 0)
        return EINVAL;
    d = hv_dom_live(xs_parse_domid(domid_s));
    if (!d)
        return EINVAL;
    if (!introduced(d->domid))
        store_introduce(d->domid, d->pid);
    xs_reply_ok(rq);
    return 0;
}

/* Xen's checks of a one-domid request: EINVAL for the privileged domain,
 * ENOENT for one not introduced. */
static int onearg_domain(struct xs_req *rq, uint32_t *domid)
{
    const char *arg = xs_onearg(rq);

    if (!arg)
        return EINVAL;
    *domid = xs_parse_domid(arg);
    if (*domid == hv.priv_domid)
        return EINVAL;
    return introduced(*domid) ? 0 : ENOENT;
}

int xs_op_release(struct xs_req *rq)
{
    uint32_t domid;
    int err = onearg_domain(rq, &domid);

    if (err)
        return err;
    store_release(domid, "its domain was released (XS_RELEASE)");
    xs_reply_ok(rq);
    return 0;
}

/* Nothing to resume: a pvabi domain is never reported shut down. */
int xs_op_resume(struct xs_req *rq)
{
    uint32_t domid;
    int err = onearg_domain(rq, &domid);

    if (!err)
        xs_reply_ok(rq);
    return err;
}

int xs_op_set_target(struct xs_req *rq)
{
    uint32_t domid, target;

    if (xs_count_strings(rq->body, rq->hdr.len) < 2)
        return EINVAL;
    domid = xs_parse_domid(rq->body);
    target = xs_parse_domid(rq->body + strlen(rq->body) + 1);
    if (!introduced(domid) || !introduced(target))
        return ENOENT;
    xs.dom[domid].target = target;
    xs_reply_ok(rq);
    return 0;
}

int xs_op_is_introduced(struct xs_req *rq)
{
    const char *arg = xs_onearg(rq);
    uint32_t domid;

    if (!arg)
        return EINVAL;
    domid = xs_parse_domid(arg);
    xs_reply(rq, domid == XS_DOMID_SELF || introduced(domid) ? "T" : "F", 2);
    return 0;
}

int xs_op_get_domain_path(struct xs_req *rq)
{
    const char *arg = xs_onearg(rq);
    char home[32];

    if (!arg)
        return EINVAL;
    xs_home(xs_parse_domid(arg), home, sizeof(home));
    xs_reply(rq, home, (uint32_t)strlen(home) + 1);
    return 0;
}

/* ---- XS_CONTROL ------------------------------------------------------------------- */

/* The whole argument as a domid (digits only, below DOMID_FIRST_RESERVED). */
static bool parse_select(const struct xs_req *rq, uint32_t *domid)
{
    uint32_t at = (uint32_t)strlen(rq->body) + 1, v = 0;
    const char *s = rq->body + at;

    if (at >= rq->hdr.len || !*s)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v >= HV_DOMID_LIMIT)
            return false;
        v = v * 10 + (uint32_t)(*s - '0');
    }
    *domid = v;
    return v < HV_DOMID_LIMIT;
}

/* "pvabi-domid <N>": speak as domain N, which must be live, introduced and
 * in the connection's own process. */
static int select_domid(struct xs_req *rq)
{
    struct xs_conn *c = rq->c;
    struct hv_dom *d;
    uint32_t domid;

    if (!parse_select(rq, &domid))
        return EACCES;
    d = hv_dom_live(domid);
    if (!d || d->pid != c->pid || !introduced(domid)) {
        hv_info("store: %s: pvabi-domid %u refused: %s", xs_conn_name(c), domid,
                !d                 ? "no such live domain"
                : d->pid != c->pid ? "another process's domain"
                                   : "released from the store");
        return EACCES;
    }
    xs_conn_set_domid(c, domid, true);
    hv_info("store: %s: selected", xs_conn_name(c));
    xs_reply(rq, "OK", 3);
    return 0;
}

/* "pvabi-toolstack": speak as the toolstack (the privileged domain, as
 * Xen's dom0 socket), for a PVABI_OPEN_TOOLSTACK context, whose process may
 * also hold domains (identify() would pick one of them). */
static int select_toolstack(struct xs_req *rq)
{
    struct xs_conn *c = rq->c;

    if (!hv_uid_allowed(c->uid)) {
        hv_info("store: %s: pvabi-toolstack refused: uid %u may not (--allow-uid)", xs_conn_name(c),
                (unsigned)c->uid);
        return EACCES;
    }
    xs_conn_set_domid(c, hv.priv_domid, false);
    hv_info("store: %s: selected", xs_conn_name(c));
    xs_reply(rq, "OK", 3);
    return 0;
}

int xs_op_control(struct xs_req *rq)
{
    const char *cmd = rq->body;

    if (!rq->hdr.len || !memchr(cmd, 0, rq->hdr.len))
        return EINVAL;
    if (strcmp(cmd, "pvabi-domid") == 0)
        return select_domid(rq);
    /* No argument: "pvabi-toolstack\0", or with an empty one "...\0\0". */
    if (strcmp(cmd, "pvabi-toolstack") == 0)
        return rq->hdr.len <= sizeof("pvabi-toolstack") + (cmd[rq->hdr.len - 1] == '\0')
                   ? select_toolstack(rq)
                   : EINVAL;
    if (!rq->who.priv)
        return EACCES;
    if (strcmp(cmd, "help") == 0) {
        static const char help[] = "pvabi-domid <domid>\npvabi-toolstack\nhelp\nprint <string>\n";
        xs_reply(rq, help, sizeof(help));
        return 0;
    }
    if (strcmp(cmd, "print") == 0 && strlen(cmd) + 1 < rq->hdr.len) {
        hv_warn("store: %s: print: %s", xs_conn_name(rq->c), cmd + strlen(cmd) + 1);
        xs_reply_ok(rq);
        return 0;
    }
    return EINVAL;
}
