/* SPDX-License-Identifier: MIT */
/*
 * The live tree: every node in one hash table keyed by its absolute path,
 * each node holding its value, permissions and the names of its children
 * (as Xen's xenstored keeps them), plus paths and permissions.
 *
 * A flat table rather than a pointer tree keeps transactions simple: a
 * transaction's copy of a node is a whole node, and a commit replaces nodes
 * one by one (xs_tx.c) with nothing else to fix up.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xs.h"

/* ---- the hash table --------------------------------------------------- */

/* FNV-1a: cheap, and spreads the common "/local/domain/N/..." prefixes. */
static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u;

    while (*s)
        h = (h ^ (uint8_t)*s++) * 16777619u;
    return h;
}

struct xs_hent *xs_htab_find(const struct xs_htab *t, const char *key)
{
    if (!t->size)
        return NULL;
    for (struct xs_hent *e = t->tab[hash_str(key) & (t->size - 1)]; e; e = e->next)
        if (strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

/* Doubles the table; on ENOMEM the old one stays (chains just get longer). */
static void htab_grow(struct xs_htab *t)
{
    uint32_t size = t->size ? t->size * 2 : 64;
    struct xs_hent **tab = calloc(size, sizeof(*tab));

    if (!tab)
        return;
    for (uint32_t i = 0; i < t->size; i++) {
        while (t->tab[i]) {
            struct xs_hent *e = t->tab[i];
            t->tab[i] = e->next;
            e->next = tab[hash_str(e->key) & (size - 1)];
            tab[hash_str(e->key) & (size - 1)] = e;
        }
    }
    free(t->tab);
    t->tab = tab;
    t->size = size;
}

int xs_htab_add(struct xs_htab *t, struct xs_hent *e)
{
    struct xs_hent **head;

    if (t->count >= t->size)
        htab_grow(t);
    if (!t->size)
        return ENOMEM;
    head = &t->tab[hash_str(e->key) & (t->size - 1)];
    e->next = *head;
    *head = e;
    t->count++;
    return 0;
}

void xs_htab_del(struct xs_htab *t, struct xs_hent *e)
{
    struct xs_hent **p = &t->tab[hash_str(e->key) & (t->size - 1)];

    while (*p && *p != e)
        p = &(*p)->next;
    if (*p) {
        *p = e->next;
        t->count--;
    }
}

/* ---- permissions ---------------------------------------------------------- */

static bool is_me(const struct xs_who *who, uint32_t id)
{
    return id == who->domid || (who->target != XS_NOBODY && id == who->target);
}

/* Xen's rule: privileged and owner get everything, else the first entry
 * naming the speaker (or its target), else the owner entry's default. */
unsigned xs_perm_for(const struct xs_who *who, const struct xs_perms *perms)
{
    const unsigned all = XS_P_READ | XS_P_WRITE | XS_P_OWNER;

    if (who->priv || !perms->n || is_me(who, perms->p[0].id))
        return all;
    for (uint32_t i = 1; i < perms->n; i++)
        if (is_me(who, perms->p[i].id))
            return perms->p[i].bits;
    return perms->p[0].bits;
}

int xs_perms_copy(struct xs_perms *dst, const struct xs_perms *src)
{
    dst->p = malloc(src->n * sizeof(*dst->p) + 1);
    if (!dst->p)
        return ENOMEM;
    if (src->n)
        memcpy(dst->p, src->p, src->n * sizeof(*dst->p));
    dst->n = src->n;
    return 0;
}

void xs_perms_free(struct xs_perms *p)
{
    free(p->p);
    p->p = NULL;
    p->n = 0;
}

/* "r5": a letter and a decimal domid (0..65535, Xen's domid_t). */
static int perm_parse(const char *s, struct xs_perm *out)
{
    static const char letters[] = "nrwb"; /* index == XS_P_* bits */
    const char *l = *s ? strchr(letters, *s) : NULL;
    uint32_t id = 0;

    if (!l || !s[1])
        return EINVAL;
    for (s++; *s; s++) {
        if (*s < '0' || *s > '9' || id > 6553)
            return EINVAL;
        id = id * 10 + (uint32_t)(*s - '0');
    }
    if (id > 65535)
        return EINVAL;
    out->id = id;
    out->bits = (uint32_t)(l - letters);
    return 0;
}

int xs_perms_parse(const char *s, uint32_t n, struct xs_perms *out)
{
    out->p = malloc(n * sizeof(*out->p) + 1);
    out->n = n;
    if (!out->p)
        return ENOMEM;
    for (uint32_t i = 0; i < n; i++, s += strlen(s) + 1) {
        if (perm_parse(s, &out->p[i]) != 0) {
            xs_perms_free(out);
            return EINVAL;
        }
    }
    return 0;
}

int xs_perms_format(const struct xs_perms *p, char **out, uint32_t *len)
{
    /* A letter, at most 10 digits and a NUL per entry. */
    char *buf = malloc(p->n * 12 + 1);
    uint32_t at = 0;

    if (!buf)
        return ENOMEM;
    for (uint32_t i = 0; i < p->n; i++)
        at += (uint32_t)sprintf(buf + at, "%c%u", "nrwb"[p->p[i].bits & 3], p -> p[i].id) + 1;
    *out = buf;
    *len = at;
    return 0;
}

/* ---- nodes ---------------------------------------------------------------- */

struct xs_node *xs_node_new(const char *path)
{
    size_t len = strlen(path) + 1;
    struct xs_node *n = calloc(1, sizeof(*n) + len);

    if (!n)
        return NULL;
    memcpy(n->path, path, len);
    n->h.key = n->path;
    return n;
}

static int dup_bytes(char **dst, const char *src, uint32_t len)
{
    *dst = NULL;
    if (!len)
        return 0;
    *dst = malloc(len);
    if (!*dst)
        return ENOMEM;
    memcpy(*dst, src, len);
    return 0;
}

struct xs_node *xs_node_copy(const struct xs_node *n)
{
    struct xs_node *c = xs_node_new(n->path);

    if (!c)
        return NULL;
    c->gen = n->gen;
    c->acct = n->acct;
    c->vlen = n->vlen;
    c->klen = n->klen;
    if (xs_perms_copy(&c->perms, &n->perms) || dup_bytes(&c->value, n->value, n->vlen) ||
        dup_bytes(&c->kids, n->kids, n->klen)) {
        xs_node_free(c);
        return NULL;
    }
    return c;
}

void xs_node_free(struct xs_node *n)
{
    if (!n)
        return;
    xs_perms_free(&n->perms);
    free(n->value);
    free(n->kids);
    free(n);
}

int xs_node_set_value(struct xs_node *n, const void *data, uint32_t len)
{
    char *v;

    if (dup_bytes(&v, data, len))
        return ENOMEM;
    free(n->value);
    n->value = v;
    n->vlen = len;
    return 0;
}

int xs_node_add_kid(struct xs_node *n, const char *name)
{
    uint32_t len = (uint32_t)strlen(name) + 1;
    char *kids = realloc(n->kids, n->klen + len);

    if (!kids)
        return ENOMEM;
    memcpy(kids + n->klen, name, len);
    n->kids = kids;
    n->klen += len;
    return 0;
}

void xs_node_del_kid(struct xs_node *n, const char *name)
{
    uint32_t len = (uint32_t)strlen(name) + 1;

    for (uint32_t at = 0; at < n->klen; at += (uint32_t)strlen(n->kids + at) + 1) {
        if (strcmp(n->kids + at, name) == 0) {
            memmove(n->kids + at, n->kids + at + len, n->klen - at - len);
            n->klen -= len;
            return;
        }
    }
}

/* ---- the live tree ---------------------------------------------------------- */

struct xs_node *xs_tree_find(const char *path)
{
    return (struct xs_node *)xs_htab_find(&xs.tree, path);
}

int xs_tree_insert(struct xs_node *n)
{
    return xs_htab_add(&xs.tree, &n->h);
}

void xs_tree_unlink(struct xs_node *n)
{
    xs_htab_del(&xs.tree, &n->h);
}

static struct xs_node *tree_make(const char *path, const char *kid)
{
    struct xs_node *n = xs_node_new(path);

    if (!n || !(n->perms.p = calloc(1, sizeof(*n->perms.p))) || (kid && xs_node_add_kid(n, kid))) {
        xs_node_free(n);
        return NULL;
    }
    n->perms.n = 1;
    n->perms.p[0].id = hv.priv_domid;
    n->gen = ++xs.gen;
    if (xs_tree_insert(n)) {
        xs_node_free(n);
        return NULL;
    }
    return n;
}

void xs_tree_each(void (*fn)(struct xs_node *n, void *arg), void *arg)
{
    for (uint32_t i = 0; i < xs.tree.size; i++)
        for (struct xs_hent *e = xs.tree.tab[i]; e; e = e->next)
            fn((struct xs_node *)e, arg);
}

int xs_tree_init(void)
{
    if (!tree_make("/", "local") || !tree_make("/local", "domain") ||
        !tree_make("/local/domain", NULL))
        return ENOMEM;
    return 0;
}

void xs_tree_free(void)
{
    for (uint32_t i = 0; i < xs.tree.size; i++) {
        while (xs.tree.tab[i]) {
            struct xs_hent *e = xs.tree.tab[i];
            xs.tree.tab[i] = e->next;
            xs_node_free((struct xs_node *)e);
        }
    }
    free(xs.tree.tab);
    memset(&xs.tree, 0, sizeof(xs.tree));
}

/* ---- paths ------------------------------------------------------------------ */

char *xs_path_parent(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t len = slash && slash != path ? (size_t)(slash - path) : 1;

    return strndup(path, len);
}

char *xs_path_join(const char *dir, const char *name)
{
    size_t dl = strcmp(dir, "/") == 0 ? 0 : strlen(dir), nl = strlen(name);
    char *p = malloc(dl + nl + 2);

    if (!p)
        return NULL;
    memcpy(p, dir, dl);
    p[dl] = '/';
    memcpy(p + dl + 1, name, nl + 1);
    return p;
}

const char *xs_path_base(const char *path)
{
    return strrchr(path, '/') + 1;
}

bool xs_path_is_child(const char *child, const char *parent)
{
    size_t len = strlen(parent);

    if (strcmp(parent, "/") == 0)
        return true;
    return strncmp(child, parent, len) == 0 && (child[len] == '/' || child[len] == '\0');
}

void xs_home(uint32_t domid, char *buf, size_t size)
{
    snprintf(buf, size, "/local/domain/%u", domid);
}

static bool valid_chars(const char *p)
{
    static const char ok[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-/_@";

    return p[strspn(p, ok)] == '\0';
}

/* Where the part of @p that the length quota measures starts: after
 * "/local/domain/<up to 5 digits>/", as Xen 4.17's is_valid_nodename(). */
static size_t local_prefix(const char *p)
{
    static const char pre[] = "/local/domain/";
    size_t i = sizeof(pre) - 1, digits;

    if (strncmp(p, pre, i) != 0)
        return 0;
    digits = strspn(p + i, "0123456789");
    if (digits == 0 || digits > 5 || p[i + digits] != '/')
        return 0;
    return i + digits + 1;
}

static bool valid_node_path(const char *p)
{
    size_t len = strlen(p);

    if (p[0] != '/' || (len > 1 && p[len - 1] == '/') || strstr(p, "//"))
        return false;
    return len <= XENSTORE_ABS_PATH_MAX && len - local_prefix(p) <= xs_quota[XSQ_PATH_MAX];
}

static char *make_absolute(const struct xs_who *who, const char *path)
{
    char home[32];

    if (path[0] == '/' || path[0] == '@')
        return strdup(path);
    xs_home(who->domid, home, sizeof(home));
    return xs_path_join(home, path);
}

char *xs_canon(const struct xs_who *who, const char *path, bool special_ok, bool *relative,
               int *err)
{
    char *abs;

    *err = EINVAL;
    *relative = path[0] != '/' && path[0] != '@';
    if (!valid_chars(path) || (path[0] == '@' && !special_ok))
        return NULL;
    /* Special watch names only need to be short (Xen checks nothing else). */
    if (path[0] == '@' && strlen(path) > XENSTORE_REL_PATH_MAX)
        return NULL;
    abs = make_absolute(who, path);
    if (!abs) {
        *err = ENOMEM;
        return NULL;
    }
    if (abs[0] == '@' || valid_node_path(abs))
        return abs;
    free(abs);
    return NULL;
}
