/* SPDX-License-Identifier: MIT */
/*
 * `pvabi device add|rm|ls` and `pvabi block-attach|block-detach`: the
 * toolstack step that creates or removes a split device's two xenbus
 * directories (pvabi_xenbus_device_add/_remove), what `xl block-attach`
 * does for a vbd.  A backend (pvabi's blkback, or any other driver) picks
 * the device up when its directory appears; so does a Linux frontend.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static int device_add(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv);
static int device_rm(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv);
static int device_ls(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv);

#define BACKEND_HELP                                                                               \
    "  --backend DOMID   the backend's domain (default: the domain this runs in,\n"                \
    "                    the privileged one)\n"

const struct cli_cmd cli_device_cmds[] = {
    {
        .name = "add",
        .path = "device add",
        .args = "TYPE FRONTEND DEVID [--backend DOMID] [--back KEY=VALUE]... "
                "[--front KEY=VALUE]...",
        .summary = "Create a device's frontend and backend directories.",
        .help = "Writes /local/domain/FRONTEND/device/TYPE/DEVID (backend, backend-id,\n"
                "state = 1, the --front nodes) and /local/domain/BACKEND/backend/TYPE/\n"
                "FRONTEND/DEVID (frontend, frontend-id, online = 1, state = 1, the --back\n"
                "nodes) in one transaction, replacing whatever was there\n"
                "(pvabi_xenbus_device_add).\n" BACKEND_HELP
                "  --back KEY=VALUE  a backend node (repeatable); KEY without '/'\n"
                "  --front KEY=VALUE a frontend node (repeatable)\n"
                "--json: {\"frontend\": PATH, \"backend\": PATH}.\n",
        .run = device_add,
    },
    {
        .name = "rm",
        .path = "device rm",
        .args = "TYPE FRONTEND DEVID [--backend DOMID]",
        .summary = "Remove a device's two directories (forceful).",
        .help = "Removes both directories in one transaction (pvabi_xenbus_device_remove):\n"
                "the two ends see their peer vanish; nothing is asked of them first.  A\n"
                "device that is not there is no error.\n" BACKEND_HELP
                "--json: {\"removed\": [FRONTEND-PATH, BACKEND-PATH]}.\n",
        .run = device_rm,
    },
    {
        .name = "ls",
        .path = "device ls",
        .args = "[FRONTEND]",
        .summary = "List devices with both ends' states.",
        .help = "Columns: Type, Frontend, Devid, Backend, Front-state, Back-state (xenbus\n"
                "state names; \"-\" for a directory that is missing).  Devices are found in\n"
                "every domain's device/ directory (or FRONTEND's only) and in the backend/\n"
                "directory of the domain this runs in (a backend left behind by a frontend\n"
                "that is gone).  --json: an array of objects (type, frontend, devid,\n"
                "backend, frontend_state, backend_state as numbers, 0 when missing,\n"
                "frontend_path, backend_path).\n",
        .run = device_ls,
    },
    { 0 },
};

/* ---- operands ------------------------------------------------------------------ */

/* A device id: decimal, 0..UINT_MAX (Xen's vbd ids go up to 1 << 28 | ...). */
static unsigned devid_arg(const struct cli_cmd *cmd, const char *s)
{
    unsigned long long v = 0;
    size_t i = 0;

    for (; s[i] >= '0' && s[i] <= '9' && i < 11; i++)
        v = v * 10 + (unsigned)(s[i] - '0');
    if (i == 0 || s[i] != '\0' || v > UINT_MAX)
        cli_usage(cmd, "not a device id: '%s'", s);
    return (unsigned)v;
}

/* TYPE as the library accepts it; checked here so that a typo is a usage
 * error (2), not a store failure (1). */
static const char *type_arg(const struct cli_cmd *cmd, const char *s)
{
    size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_");

    if (n == 0 || s[n] != '\0')
        cli_usage(cmd, "not a device type (letters, digits, '-', '_'): '%s'", s);
    return s;
}

/* A growing NULL-terminated key, value list for pvabi_xenbus_device_add. */
struct nodes {
    const char **kv;
    unsigned n; /* entries used, keys and values */
};

static void nodes_add(struct nodes *l, const char *key, const char *value)
{
    const char **grown = realloc(l->kv, (l->n + 3) * sizeof(*grown));

    if (!grown)
        cli_xmalloc(SIZE_MAX);
    l->kv = grown;
    l->kv[l->n++] = key;
    l->kv[l->n++] = value;
    l->kv[l->n] = NULL;
}

/* KEY=VALUE: the key is cut off in place (argv is ours to change). */
static int nodes_add_arg(struct nodes *l, char *arg)
{
    char *eq = strchr(arg, '=');

    if (!eq || eq == arg || memchr(arg, '/', (size_t)(eq - arg)))
        return -1;
    *eq = '\0';
    nodes_add(l, arg, eq + 1);
    return 0;
}

struct dev_opts {
    bool has_backend;
    pvabi_domid backend;
    struct nodes back, front;
    /* block-attach / block-detach */
    const char *vdev;
    bool ro, force;
    double timeout_s;
};

enum { OPT_BACKEND = 256, OPT_BACK, OPT_FRONT, OPT_VDEV, OPT_RO, OPT_FORCE, OPT_TIMEOUT };

static const struct cli_cmd *opt_cmd; /* for the domid usage message */

static int parse_timeout(const char *val, double *out)
{
    char *end;
    double v = strtod(val, &end);

    if (end == val || *end != '\0' || !(v >= 0 && v <= 86400))
        return -1;
    *out = v;
    return 0;
}

static int on_dev_opt(void *arg, int c, const char *val)
{
    struct dev_opts *o = arg;

    switch (c) {
    case OPT_BACKEND:
        o->backend = cli_domid_arg(opt_cmd, val);
        o->has_backend = true;
        return 0;
    case OPT_BACK:
        return nodes_add_arg(&o->back, (char *)val);
    case OPT_FRONT:
        return nodes_add_arg(&o->front, (char *)val);
    case OPT_VDEV:
        o->vdev = val;
        return 0;
    case OPT_RO:
        o->ro = true;
        return 0;
    case OPT_FORCE:
        o->force = true;
        return 0;
    case OPT_TIMEOUT:
        return parse_timeout(val, &o->timeout_s);
    }
    return -1;
}

static int parse_dev(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv,
                     const struct cli_opt *own, struct dev_opts *o)
{
    opt_cmd = cmd;
    return cli_parse(cli, cmd, argc, argv, own, on_dev_opt, o, false);
}

static pvabi_domid backend_of(struct cli *cli, const struct dev_opts *o)
{
    return o->has_backend ? o->backend : pvabi_own_domid(cli->ctx);
}

static char *front_path(const char *type, pvabi_domid fe, unsigned devid)
{
    return cli_xasprintf("/local/domain/%u/device/%s/%u", fe, type, devid);
}

static char *back_path(const char *type, pvabi_domid be, pvabi_domid fe, unsigned devid)
{
    return cli_xasprintf("/local/domain/%u/backend/%s/%u/%u", be, type, fe, devid);
}

static void print_paths(struct cli *cli, const char *key, const char *fp, const char *bp)
{
    if (!cli->json)
        return;
    cli_json_begin(cli);
    json_obj(&cli->out);
    if (key) {
        json_key(&cli->out, key);
        json_arr(&cli->out);
        json_str(&cli->out, fp);
        json_str(&cli->out, bp);
    } else {
        json_kstr(&cli->out, "frontend", fp);
        json_kstr(&cli->out, "backend", bp);
    }
    json_finish(&cli->out);
}

/* ---- device add / rm ----------------------------------------------------------- */

/* Adds the device and reports it; shared with block-attach. */
static int add_device(struct cli *cli, const char *type, pvabi_domid fe, unsigned devid,
                      const struct dev_opts *o)
{
    pvabi_domid be = backend_of(cli, o);
    char *fp = front_path(type, fe, devid), *bp = back_path(type, be, fe, devid);
    int rc = pvabi_xenbus_device_add(cli->ctx, type, fe, be, devid, o->back.kv, o->front.kv);

    if (rc == 0)
        print_paths(cli, NULL, fp, bp);
    else
        cli_fail(rc, "device add %s %u %u (backend %u)", type, fe, devid, be);
    free(fp);
    free(bp);
    return rc == 0 ? CLI_OK : CLI_FAIL;
}

static int remove_device(struct cli *cli, const char *type, pvabi_domid fe, unsigned devid,
                         pvabi_domid be)
{
    char *fp = front_path(type, fe, devid), *bp = back_path(type, be, fe, devid);
    int rc = pvabi_xenbus_device_remove(cli->ctx, type, fe, be, devid);

    if (rc == 0)
        print_paths(cli, "removed", fp, bp);
    else
        cli_fail(rc, "device rm %s %u %u (backend %u)", type, fe, devid, be);
    free(fp);
    free(bp);
    return rc == 0 ? CLI_OK : CLI_FAIL;
}

static const struct cli_opt add_opts[] = {
    { "backend", true, OPT_BACKEND },
    { "back", true, OPT_BACK },
    { "front", true, OPT_FRONT },
    { NULL, false, 0 },
};

static int device_add(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
    struct dev_opts o = { 0 };
    int first = parse_dev(cli, cmd, argc, argv, add_opts, &o), rc;

    if (argc - first != 3)
        cli_usage(cmd, "TYPE, FRONTEND and DEVID are needed");
    const char *type = type_arg(cmd, argv[first]);
    pvabi_domid fe = cli_domid_arg(cmd, argv[first + 1]);
    unsigned devid = devid_arg(cmd, argv[first + 2]);

    rc = cli_open(cli) != 0 ? CLI_FAIL : add_device(cli, type, fe, devid, &o);
    free(o.back.kv);
    free(o.front.kv);
    return rc;
}

static int device_rm(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
    static const struct cli_opt opts[] = { { "backend", true, OPT_BACKEND }, { NULL, false, 0 } };
    struct dev_opts o = { 0 };
    int first = parse_dev(cli, cmd, argc, argv, opts, &o);

    if (argc - first != 3)
        cli_usage(cmd, "TYPE, FRONTEND and DEVID are needed");
    const char *type = type_arg(cmd, argv[first]);
    pvabi_domid fe = cli_domid_arg(cmd, argv[first + 1]);
    unsigned devid = devid_arg(cmd, argv[first + 2]);

    if (cli_open(cli) != 0)
        return CLI_FAIL;
    return remove_device(cli, type, fe, devid, backend_of(cli, &o));
}

/* ---- device ls ------------------------------------------------------------------ */

struct dev_row {
    char *type;
    pvabi_domid fe, be;
    unsigned devid;
    int fstate, bstate; /* 0: the directory is missing */
};

struct dev_list {
    struct cli *cli;
    struct dev_row *rows;
    unsigned n;
};

/* A store name that is a decimal number (a domid or devid); -1 otherwise. */
static long long number(const char *s)
{
    long long v = 0;
    size_t i = 0;

    for (; s[i] >= '0' && s[i] <= '9' && i < 11; i++)
        v = v * 10 + (s[i] - '0');
    return i == 0 || s[i] != '\0' || v > UINT_MAX ? -1 : v;
}

/* A directory's state node: 0 when the directory (or node) is missing;
 * anything that is not a state reads as Unknown (0) too. */
static int read_state(struct cli *cli, const char *dir)
{
    char *path = cli_xasprintf("%s/state", dir);
    uint32_t v = 0;
    int rc = pvabi_store_read_u32(cli->ctx, PVABI_STORE_TXN_NONE, path, &v);

    free(path);
    cli_log_forget(); /* a missing node is expected */
    return rc == 0 && v <= PVABI_XENBUS_STATE_RECONFIGURED ? (int)v : 0;
}

static bool known(const struct dev_list *l, const char *type, pvabi_domid fe, unsigned devid)
{
    for (unsigned i = 0; i < l->n; i++)
        if (l->rows[i].fe == fe && l->rows[i].devid == devid && !strcmp(l->rows[i].type, type))
            return true;
    return false;
}

static void add_row(struct dev_list *l, const char *type, pvabi_domid fe, pvabi_domid be,
                    unsigned devid)
{
    struct dev_row *grown = realloc(l->rows, (l->n + 1) * sizeof(*grown));
    char *fp = front_path(type, fe, devid), *bp = back_path(type, be, fe, devid);

    if (!grown)
        cli_xmalloc(SIZE_MAX);
    l->rows = grown;
    l->rows[l->n++] =
        (struct dev_row){ cli_xstrdup(type),     fe, be, devid, read_state(l->cli, fp),
                          read_state(l->cli, bp) };
    free(fp);
    free(bp);
}

/* The names under @path; none (0) when it is missing. */
static int names_of(struct cli *cli, const char *path, char ***names)
{
    int n = pvabi_store_list(cli->ctx, PVABI_STORE_TXN_NONE, path, names);

    if (n == -ENOENT) {
        cli_log_forget();
        return 0;
    }
    return n;
}

/* The backend domain a frontend directory names (backend-id), else ours. */
static pvabi_domid backend_id(struct cli *cli, const char *fdir)
{
    char *path = cli_xasprintf("%s/backend-id", fdir);
    uint32_t v = pvabi_own_domid(cli->ctx);

    if (pvabi_store_read_u32(cli->ctx, PVABI_STORE_TXN_NONE, path, &v) != 0 || v > 0x7FEF)
        v = pvabi_own_domid(cli->ctx);
    cli_log_forget();
    free(path);
    return (pvabi_domid)v;
}

static int scan_front_type(struct dev_list *l, pvabi_domid fe, const char *type)
{
    char *dir = cli_xasprintf("/local/domain/%u/device/%s", fe, type), **ids = NULL;
    int n = names_of(l->cli, dir, &ids);

    for (int i = 0; i < n; i++) {
        long long devid = number(ids[i]);
        if (devid < 0)
            continue;
        char *fdir = cli_xasprintf("%s/%s", dir, ids[i]);
        add_row(l, type, fe, backend_id(l->cli, fdir), (unsigned)devid);
        free(fdir);
    }
    free(ids);
    free(dir);
    return n < 0 ? n : 0;
}

static int scan_front(struct dev_list *l, pvabi_domid fe)
{
    char *dir = cli_xasprintf("/local/domain/%u/device", fe), **types = NULL;
    int n = names_of(l->cli, dir, &types), rc = 0;

    for (int i = 0; i < n && rc == 0; i++)
        rc = scan_front_type(l, fe, types[i]);
    free(types);
    free(dir);
    return n < 0 ? n : rc;
}

/* Our backend/TYPE/FE/DEVID entries whose frontend was not seen. */
static int scan_back_type(struct dev_list *l, const char *type, long long only_fe)
{
    pvabi_domid be = pvabi_own_domid(l->cli->ctx);
    char *dir = cli_xasprintf("/local/domain/%u/backend/%s", be, type), **fes = NULL;
    int n = names_of(l->cli, dir, &fes);

    for (int i = 0; i < n; i++) {
        long long fe = number(fes[i]);
        if (fe < 0 || fe > 0x7FEF || (only_fe >= 0 && fe != only_fe))
            continue;
        char *fdir = cli_xasprintf("%s/%s", dir, fes[i]), **ids = NULL;
        int m = names_of(l->cli, fdir, &ids);
        for (int j = 0; j < m; j++) {
            long long devid = number(ids[j]);
            if (devid >= 0 && !known(l, type, (pvabi_domid)fe, (unsigned)devid))
                add_row(l, type, (pvabi_domid)fe, be, (unsigned)devid);
        }
        free(ids);
        free(fdir);
    }
    free(fes);
    free(dir);
    return n < 0 ? n : 0;
}

static int scan_back(struct dev_list *l, long long only_fe)
{
    char *dir = cli_xasprintf("/local/domain/%u/backend", pvabi_own_domid(l->cli->ctx));
    char **types = NULL;
    int n = names_of(l->cli, dir, &types), rc = 0;

    for (int i = 0; i < n && rc == 0; i++)
        rc = scan_back_type(l, types[i], only_fe);
    free(types);
    free(dir);
    return n < 0 ? n : rc;
}

static int scan_all_fronts(struct dev_list *l)
{
    char **doms = NULL;
    int n = names_of(l->cli, "/local/domain", &doms), rc = 0;

    for (int i = 0; i < n && rc == 0; i++) {
        long long fe = number(doms[i]);
        if (fe >= 0 && fe <= 0x7FEF)
            rc = scan_front(l, (pvabi_domid)fe);
    }
    free(doms);
    return n < 0 ? n : rc;
}

static const char *state_text(int state)
{
    return state ? pvabi_xenbus_state_name(state) : "";
}

static void print_rows(struct cli *cli, const struct dev_list *l)
{
    static const struct table_col cols[] = {
        { "Type", false },   { "Frontend", true },     { "Devid", true },
        { "Backend", true }, { "Front-state", false }, { "Back-state", false },
    };
    struct table *t = table_new(cols, 6);

    (void)cli;
    for (unsigned i = 0; i < l->n; i++) {
        const struct dev_row *r = &l->rows[i];
        char fe[8], devid[12], be[8];
        snprintf(fe, sizeof(fe), "%u", r->fe);
        snprintf(devid, sizeof(devid), "%u", r->devid);
        snprintf(be, sizeof(be), "%u", r->be);
        const char *cells[] = {
            r->type, fe, devid, be, state_text(r->fstate), state_text(r->bstate)
        };
        table_row(t, cells);
    }
    table_print(t, stdout);
    table_free(t);
}

static void json_rows(struct cli *cli, const struct dev_list *l)
{
    cli_json_begin(cli);
    json_arr(&cli->out);
    for (unsigned i = 0; i < l->n; i++) {
        const struct dev_row *r = &l->rows[i];
        char *fp = front_path(r->type, r->fe, r->devid);
        char *bp = back_path(r->type, r->be, r->fe, r->devid);
        json_obj(&cli->out);
        json_kstr(&cli->out, "type", r->type);
        json_ku64(&cli->out, "frontend", r->fe);
        json_ku64(&cli->out, "devid", r->devid);
        json_ku64(&cli->out, "backend", r->be);
        json_ku64(&cli->out, "frontend_state", (uint64_t)r->fstate);
        json_ku64(&cli->out, "backend_state", (uint64_t)r->bstate);
        json_kstr(&cli->out, "frontend_path", fp);
        json_kstr(&cli->out, "backend_path", bp);
        json_end(&cli->out);
        free(fp);
        free(bp);
    }
    json_finish(&cli->out);
}

static int device_ls(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
    int first = cli_parse(cli, cmd, argc, argv, NULL, NULL, NULL, false), rc;
    struct dev_list l = { .cli = cli };
    long long only = -1;

    if (argc - first > 1)
        cli_usage(cmd, "one FRONTEND at most");
    if (argc - first == 1)
        only = cli_domid_arg(cmd, argv[first]);
    if (cli_open(cli) != 0)
        return CLI_FAIL;
    rc = only >= 0 ? scan_front(&l, (pvabi_domid)only) : scan_all_fronts(&l);
    if (rc == 0)
        rc = scan_back(&l, only);
    if (cli->json)
        json_rows(cli, &l);
    else
        print_rows(cli, &l);
    for (unsigned i = 0; i < l.n; i++)
        free(l.rows[i].type);
    free(l.rows);
    return rc < 0 ? cli_fail(rc, "device ls") : CLI_OK;
}

/* ---- block-attach / block-detach ------------------------------------------------ */

/* Xen's vbd numbering (docs/misc/vbd-interface.txt), whole disks only:
 * xvdX with X = a..p is 202 << 8 | index << 4 (51712 + 16 * index, as xl
 * writes it); beyond p, the extended form 1 << 28 | index << 8. */
#define XVD_BASE     (202u << 8)
#define XVD_EXTENDED (1u << 28)

static long long xvd_devid(const char *name)
{
    if (strncmp(name, "xvd", 3) != 0 || name[3] < 'a' || name[3] > 'z' || name[4] != '\0')
        return -1;
    unsigned index = (unsigned)(name[3] - 'a');
    return index < 16 ? XVD_BASE | index << 4 : XVD_EXTENDED | index << 8;
}

/* The name for a devid, when it is a whole xvd disk; else NULL. */
static char *xvd_name(unsigned devid)
{
    unsigned index;

    if ((devid & ~0xFFu) == XVD_BASE && (devid & 0xF) == 0)
        index = (devid & 0xFF) >> 4;
    else if ((devid & ~0xFFFFFu) == XVD_EXTENDED && (devid & 0xFF) == 0)
        index = (devid >> 8) & 0xFFF;
    else
        return NULL;
    return index < 26 ? cli_xasprintf("xvd%c", 'a' + index) : NULL;
}

/* VDEV: xvdX or a device id.  Sets *devid and *name (malloc'd). */
static void vdev_arg(const struct cli_cmd *cmd, const char *s, unsigned *devid, char **name)
{
    long long v = xvd_devid(s);

    if (v < 0 && s[0] >= '0' && s[0] <= '9')
        v = devid_arg(cmd, s);
    if (v < 0)
        cli_usage(cmd, "not a virtual device (xvda..xvdz, or a number): '%s'", s);
    *devid = (unsigned)v;
    *name = xvd_name(*devid);
    if (!*name)
        *name = cli_xasprintf("%u", *devid);
}

/* The first xvd name whose vbd the frontend does not have yet. */
static int free_vdev(struct cli *cli, pvabi_domid fe, unsigned *devid, char **name)
{
    char *dir = cli_xasprintf("/local/domain/%u/device/vbd", fe), **ids = NULL;
    int n = names_of(cli, dir, &ids);

    free(dir);
    if (n < 0)
        return n;
    for (char c = 'a'; c <= 'z'; c++) {
        char xvd[5] = { 'x', 'v', 'd', c, '\0' };
        bool used = false;
        for (int i = 0; i < n && !used; i++)
            used = number(ids[i]) == xvd_devid(xvd);
        if (!used) {
            *devid = (unsigned)xvd_devid(xvd);
            *name = cli_xstrdup(xvd);
            free(ids);
            return 0;
        }
    }
    free(ids);
    return -ENOSPC;
}

/* The image's absolute path: resolved when it is here; a backend in
 * another domain may name one we cannot see (then it must be absolute). */
static char *image_path(const char *image, bool local, int *err)
{
    char *abs = realpath(image, NULL);

    *err = 0;
    if (abs)
        return abs;
    *err = -errno;
    if (!local && image[0] == '/') {
        *err = 0;
        return cli_xstrdup(image);
    }
    return NULL;
}

static const struct cli_opt attach_opts[] = {
    { "vdev", true, OPT_VDEV },
    { "ro", false, OPT_RO },
    { "backend", true, OPT_BACKEND },
    { NULL, false, 0 },
};

static void print_attached(struct cli *cli, const char *name, unsigned devid, pvabi_domid fe,
                           pvabi_domid be)
{
    char *fp = front_path("vbd", fe, devid), *bp = back_path("vbd", be, fe, devid);

    if (cli->json) {
        cli_json_begin(cli);
        json_obj(&cli->out);
        json_kstr(&cli->out, "vdev", name);
        json_ku64(&cli->out, "devid", devid);
        json_kstr(&cli->out, "frontend", fp);
        json_kstr(&cli->out, "backend", bp);
        json_finish(&cli->out);
    } else {
        printf("%s %u\n", name, devid);
    }
    free(fp);
    free(bp);
}

static int attach_vbd(struct cli *cli, const struct cli_cmd *cmd, pvabi_domid fe, const char *image,
                      struct dev_opts *o)
{
    pvabi_domid be = backend_of(cli, o);
    unsigned devid;
    char *name, devid_s[12], *path;
    int err = 0, rc;

    if (o->vdev)
        vdev_arg(cmd, o->vdev, &devid, &name);
    else if ((err = free_vdev(cli, fe, &devid, &name)) < 0)
        return cli_fail(err, "block-attach: choosing a vdev for domain %u", fe);
    path = image_path(image, be == pvabi_own_domid(cli->ctx), &err);
    if (!path) {
        free(name);
        return cli_fail(err, "block-attach: %s", image);
    }
    snprintf(devid_s, sizeof(devid_s), "%u", devid);
    nodes_add(&o->back, "params", path);
    nodes_add(&o->back, "mode", o->ro ? "r" : "w");
    nodes_add(&o->back, "type", "file");
    nodes_add(&o->back, "dev", name);
    nodes_add(&o->back, "removable", "0");
    nodes_add(&o->back, "bootable", "1");
    nodes_add(&o->front, "virtual-device", devid_s);
    nodes_add(&o->front, "device-type", "disk");
    rc = pvabi_xenbus_device_add(cli->ctx, "vbd", fe, be, devid, o->back.kv, o->front.kv);
    if (rc == 0)
        print_attached(cli, name, devid, fe, be);
    else
        cli_fail(rc, "block-attach %u %s (backend %u)", fe, name, be);
    free(name);
    free(path);
    return rc == 0 ? CLI_OK : CLI_FAIL;
}

int cli_block_attach(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
    struct dev_opts o = { 0 };
    int first = parse_dev(cli, cmd, argc, argv, attach_opts, &o), rc;

    if (argc - first != 2)
        cli_usage(cmd, "FRONTEND and IMAGE are needed");
    pvabi_domid fe = cli_domid_arg(cmd, argv[first]);
    if (o.vdev) { /* a bad VDEV is a usage error before anything opens */
        unsigned devid;
        char *name;
        vdev_arg(cmd, o.vdev, &devid, &name);
        free(name);
    }
    rc = cli_open(cli) != 0 ? CLI_FAIL : attach_vbd(cli, cmd, fe, argv[first + 1], &o);
    free(o.back.kv);
    free(o.front.kv);
    return rc;
}

/* ---- detach: ask the backend to close, wait, remove --------------------------- */

struct detach {
    struct cli *cli;
    char *fdir, *bdir;
    bool done;
};

/* Closed or gone at either end: nothing is left to hand over. */
static bool closed(struct cli *cli, const char *fdir, const char *bdir)
{
    int f = read_state(cli, fdir), b = read_state(cli, bdir);

    return f == 0 || b == 0 || f == PVABI_XENBUS_STATE_CLOSED || b == PVABI_XENBUS_STATE_CLOSED ||
           f == PVABI_XENBUS_STATE_INITIALISING;
}

static void on_state(pvabi_ctx *ctx, const char *path, void *opaque)
{
    struct detach *d = opaque;

    (void)ctx;
    (void)path;
    d->done = d->done || closed(d->cli, d->fdir, d->bdir);
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Writes online = 0 and waits (store watches) for the close.  0, or
 * -ETIMEDOUT, or a store error. */
static int ask_close(struct detach *d, double timeout_s)
{
    pvabi_ctx *ctx = d->cli->ctx;
    char *online = cli_xasprintf("%s/online", d->bdir);
    pvabi_watch *wf = NULL, *wb = NULL;
    long long deadline = now_ms() + (long long)(timeout_s * 1000);
    int rc = pvabi_store_write(ctx, PVABI_STORE_TXN_NONE, online, "0");

    free(online);
    if (rc == 0)
        rc = pvabi_store_watch(ctx, d->fdir, on_state, d, &wf);
    if (rc == 0)
        rc = pvabi_store_watch(ctx, d->bdir, on_state, d, &wb);
    while (rc >= 0 && !d->done) {
        long long left = deadline - now_ms();
        if (left <= 0) {
            rc = -ETIMEDOUT;
            break;
        }
        rc = pvabi_store_wait(ctx, (int)(left < INT_MAX ? left : INT_MAX));
    }
    pvabi_store_unwatch(wf);
    pvabi_store_unwatch(wb);
    return rc < 0 ? rc : 0;
}

static int detach_vbd(struct cli *cli, pvabi_domid fe, unsigned devid, const char *name,
                      const struct dev_opts *o)
{
    struct detach d = { .cli = cli, .fdir = front_path("vbd", fe, devid) };
    pvabi_domid be = o->has_backend ? o->backend : backend_id(cli, d.fdir);
    int rc = 0;

    d.bdir = back_path("vbd", be, fe, devid);
    if (read_state(cli, d.fdir) == 0 && read_state(cli, d.bdir) == 0) {
        rc = cli_fail_msg("block-detach: domain %u has no vbd %s (backend %u)", fe, name, be);
    } else if (!o->force && !closed(cli, d.fdir, d.bdir)) {
        rc = ask_close(&d, o->timeout_s);
        if (rc < 0)
            rc = cli_fail(rc,
                          "block-detach %u %s: waiting for the backend to close "
                          "(--force removes without asking)",
                          fe, name);
    }
    if (rc == 0)
        rc = remove_device(cli, "vbd", fe, devid, be);
    free(d.fdir);
    free(d.bdir);
    return rc;
}

int cli_block_detach(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
    static const struct cli_opt opts[] = {
        { "backend", true, OPT_BACKEND },
        { "timeout", true, OPT_TIMEOUT },
        { "force", false, OPT_FORCE },
        { NULL, false, 0 },
    };
    struct dev_opts o = { .timeout_s = 10 };
    int first = parse_dev(cli, cmd, argc, argv, opts, &o), rc;
    unsigned devid;
    char *name;

    if (argc - first != 2)
        cli_usage(cmd, "FRONTEND and VDEV are needed");
    pvabi_domid fe = cli_domid_arg(cmd, argv[first]);
    vdev_arg(cmd, argv[first + 1], &devid, &name);
    rc = cli_open(cli) != 0 ? CLI_FAIL : detach_vbd(cli, fe, devid, name, &o);
    free(name);
    return rc;
}
