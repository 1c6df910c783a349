/* SPDX-License-Identifier: MIT */
/*
 * Watches: a (path, token) pair per connection, and the events a change
 * sends them.  As in Xen: a watch fires once when it is set, then for a
 * change of its node or of anything below it; a removed subtree also fires
 * the watches set on the removed descendants themselves; a watch set with a
 * relative path gets relative event paths; an event goes only to a watcher
 * that may read the node (or its parent, or the node as it was).  The
 * special paths @introduceDomain and @releaseDomain fire only for watchers
 * their permissions let read them: by default the privileged domain alone.
 */
#include <stdlib.h>
#include <string.h>

#include "xs.h"

struct xs_watch {
    struct xs_watch *next;
    char *path; /* absolute, or a special name */
    char *token;
    uint32_t prefix; /* bytes stripped from event paths: "/local/domain/N/" if relative */
};

static const char *const special_names[2] = { "@introduceDomain", "@releaseDomain" };

struct xs_perms *xs_special_perms(const char *name)
{
    for (int i = 0; i < 2; i++)
        if (strcmp(name, special_names[i]) == 0)
            return &xs.special[i];
    return NULL;
}

/* ---- events ------------------------------------------------------------------ */

/* "path\0token\0", or NULL when it would not fit a message (Xen drops those). */
static char *event_payload(const struct xs_watch *w, const char *path, uint32_t *len)
{
    const char *rel = w->prefix && strlen(path) >= w->prefix ? path + w->prefix : path;
    size_t pl = strlen(rel) + 1, tl = strlen(w->token) + 1;
    char *buf;

    if (pl + tl > XENSTORE_PAYLOAD_MAX)
        return NULL;
    buf = malloc(pl + tl);
    if (!buf)
        return NULL;
    memcpy(buf, rel, pl);
    memcpy(buf + pl, w->token, tl);
    *len = (uint32_t)(pl + tl);
    return buf;
}

static void send_event(struct xs_conn *c, const struct xs_watch *w, const char *path)
{
    uint32_t len;
    char *buf = event_payload(w, path, &len);

    if (!buf) {
        hv_info("store: %s: watch event for %s dropped (too long or no memory)", xs_conn_name(c),
                path);
        return;
    }
    hv_debug("store: %s: event %s token %s", xs_conn_name(c), path, w->token);
    xs_send(c, XS_WATCH_EVENT, 0, 0, buf, len);
    free(buf);
}

static bool can_read(const struct xs_who *who, const struct xs_perms *p)
{
    return p && (xs_perm_for(who, p) & XS_P_READ);
}

/* Xen's watch_permitted(): the node as it was, the node, or its parent. */
static bool permitted(const struct xs_who *who, const char *path, const struct xs_node *node,
                      const struct xs_perms *old)
{
    char *ppath;
    const struct xs_node *parent;

    if (can_read(who, old))
        return true;
    if (!node)
        return false;
    if (can_read(who, &node->perms))
        return true;
    ppath = strcmp(path, "/") ? xs_path_parent(path) : NULL;
    parent = ppath ? xs_tree_find(ppath) : NULL;
    free(ppath);
    return parent && can_read(who, &parent->perms);
}

static bool matches(const struct xs_watch *w, const char *path, bool exact)
{
    return exact ? strcmp(w->path, path) == 0 : xs_path_is_child(path, w->path);
}

/* The events of one connection; permission is asked once, when needed. */
static void fire_conn(struct xs_conn *c, const char *path, bool exact, const struct xs_node *node,
                      const struct xs_perms *old)
{
    struct xs_who who = xs_conn_who(c);
    int allowed = -1;

    for (struct xs_watch *w = c->watches; w && !c->closed; w = w->next) {
        if (!matches(w, path, exact))
            continue;
        if (allowed < 0) {
            const struct xs_perms *sp = path[0] == '@' ? xs_special_perms(path) : NULL;
            allowed = path[0] == '@' ? can_read(&who, sp) : permitted(&who, path, node, old);
        }
        if (!allowed)
            return;
        send_event(c, w, path);
    }
}

void xs_fire(const char *path, bool exact, const struct xs_node *node, const struct xs_perms *old)
{
    for (struct xs_conn *c = xs.conns; c; c = c->next)
        if (!c->closed && c->domid != XS_NOBODY)
            fire_conn(c, path, exact, node, old);
}

void xs_fire_special(const char *name)
{
    hv_debug("store: firing %s", name);
    xs_fire(name, false, NULL, NULL);
}

/* ---- setting and removing ------------------------------------------------------ */

static struct xs_watch **find(struct xs_conn *c, const char *path, const char *token)
{
    struct xs_watch **p = &c->watches;

    while (*p && (strcmp((*p)->path, path) || strcmp((*p)->token, token)))
        p = &(*p)->next;
    return p;
}

static void watch_free(struct xs_watch *w)
{
    free(w->path);
    free(w->token);
    free(w);
}

static struct xs_watch *watch_new(const char *path, const char *token, uint32_t prefix)
{
    struct xs_watch *w = calloc(1, sizeof(*w));

    if (!w)
        return NULL;
    w->path = strdup(path);
    w->token = strdup(token);
    w->prefix = prefix;
    if (!w->path || !w->token) {
        watch_free(w);
        return NULL;
    }
    return w;
}

static void count_watch(struct xs_conn *c, int sign)
{
    struct xs_domain *dom = xs_dom(c->domid);

    /* A closed connection gave its counts back already (xs_conn_close). */
    if (c->closed || !dom)
        return;
    c->nwatches += (uint32_t)sign;
    dom->watches += (uint32_t)sign;
}

int xs_watch_add(struct xs_req *rq, const char *path, const char *token, bool relative)
{
    struct xs_conn *c = rq->c;
    struct xs_watch **tail = find(c, path, token), *w;
    const struct xs_domain *dom = xs_dom(c->domid);
    char home[32];
    uint32_t len;
    char *ev;

    if (*tail)
        return EEXIST;
    if (xs_over_quota(&rq->who, XSQ_WATCHES, (dom ? dom->watches : 0) + 1ull))
        return E2BIG;
    xs_home(c->domid, home, sizeof(home));
    w = watch_new(path, token, relative ? (uint32_t)strlen(home) + 1 : 0);
    if (!w)
        return ENOMEM;
    *tail = w; /* at the end: events go out in the order watches were set */
    count_watch(c, +1);
    /* The first event, made before the reply: sending the reply may close
     * the connection, and with it the watch. */
    ev = event_payload(w, path, &len);
    xs_reply_ok(rq);
    if (ev)
        xs_send(c, XS_WATCH_EVENT, 0, 0, ev, len);
    free(ev);
    return 0;
}

int xs_watch_del(struct xs_conn *c, const char *path, const char *token)
{
    struct xs_watch **p = find(c, path, token), *w = *p;

    if (!w)
        return ENOENT;
    *p = w->next;
    count_watch(c, -1);
    watch_free(w);
    return 0;
}

void xs_watch_drop_all(struct xs_conn *c)
{
    while (c->watches) {
        struct xs_watch *w = c->watches;
        c->watches = w->next;
        count_watch(c, -1);
        watch_free(w);
    }
}
