/* SPDX-License-Identifier: MIT */
/*
 * The toolstack step: what `xl block-attach` (libxl's device add) writes
 * for a new device, so that a frontend and a backend can find each other.
 * One transaction creates both directories with their permissions; the
 * remove undoes it.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "xenbus/private.h"

#define DEVICE_TXN_TRIES 16

struct device_args {
    const char *type;
    pvabi_domid fe, be;
    unsigned devid;
    const char *const *be_nodes, *const *fe_nodes;
    char fe_path[XB_PATH_MAX], be_path[XB_PATH_MAX];
};

static int paths(pvabi_ctx *ctx, struct device_args *a)
{
    int rc = pvabi__xb_path(ctx, a->fe_path, "/local/domain/%u/device/%s/%u", (unsigned)a->fe,
                            a->type, a->devid);

    return rc < 0 ? rc
                  : pvabi__xb_path(ctx, a->be_path, "/local/domain/%u/backend/%s/%u/%u",
                                   (unsigned)a->be, a->type, (unsigned)a->fe, a->devid);
}

static int put(pvabi_ctx *ctx, pvabi_store_txn txn, const char *dir, const char *key,
               const char *value)
{
    char path[XB_PATH_MAX];
    int rc = pvabi__xb_path(ctx, path, "%s/%s", dir, key);

    return rc < 0 ? rc : pvabi_store_write(ctx, txn, path, value);
}

static int put_nodes(pvabi_ctx *ctx, pvabi_store_txn txn, const char *dir, const char *const *nodes)
{
    int rc = 0;

    for (; rc == 0 && nodes && nodes[0]; nodes += 2)
        rc = put(ctx, txn, dir, nodes[0], nodes[1]);
    return rc;
}

/* One directory from scratch: owned by @owner, readable by @reader; the
 * nodes written below it inherit that (Xen copies a parent's permissions
 * to the nodes a privileged domain creates under it). */
static int make_dir(pvabi_ctx *ctx, pvabi_store_txn txn, const char *dir, pvabi_domid owner,
                    pvabi_domid reader)
{
    char perms[24];
    int rc = pvabi_store_rm(ctx, txn, dir);

    if (rc == -ENOENT)
        rc = 0;
    if (rc == 0)
        rc = pvabi_store_mkdir(ctx, txn, dir);
    snprintf(perms, sizeof(perms), "n%u r%u", (unsigned)owner, (unsigned)reader);
    return rc < 0 ? rc : pvabi_store_set_perms(ctx, txn, dir, perms);
}

static int add_txn(pvabi_ctx *ctx, pvabi_store_txn txn, void *opaque)
{
    struct device_args *a = opaque;
    char id[8];
    int rc = make_dir(ctx, txn, a->fe_path, a->fe, a->be);

    if (rc == 0)
        rc = put(ctx, txn, a->fe_path, "backend", a->be_path);
    snprintf(id, sizeof(id), "%u", (unsigned)a->be);
    if (rc == 0)
        rc = put(ctx, txn, a->fe_path, "backend-id", id);
    if (rc == 0)
        rc = put(ctx, txn, a->fe_path, "state", "1");
    if (rc == 0)
        rc = put_nodes(ctx, txn, a->fe_path, a->fe_nodes);
    if (rc == 0)
        rc = make_dir(ctx, txn, a->be_path, a->be, a->fe);
    if (rc == 0)
        rc = put(ctx, txn, a->be_path, "frontend", a->fe_path);
    snprintf(id, sizeof(id), "%u", (unsigned)a->fe);
    if (rc == 0)
        rc = put(ctx, txn, a->be_path, "frontend-id", id);
    if (rc == 0)
        rc = put(ctx, txn, a->be_path, "online", "1");
    if (rc == 0)
        rc = put(ctx, txn, a->be_path, "state", "1");
    if (rc == 0)
        rc = put_nodes(ctx, txn, a->be_path, a->be_nodes);
    return rc;
}

static int nodes_ok(pvabi_ctx *ctx, const char *const *nodes)
{
    for (; nodes && nodes[0]; nodes += 2) {
        if (!pvabi__xb_key_ok(ctx, nodes[0]))
            return 0;
        if (!nodes[1]) {
            pvabi__err(ctx, "xenbus: device node \"%s\" has no value (odd-length list)", nodes[0]);
            return 0;
        }
    }
    return 1;
}

PVABI_EXPORT int pvabi_xenbus_device_add(pvabi_ctx *ctx, const char *type, pvabi_domid frontend,
                                         pvabi_domid backend, unsigned devid,
                                         const char *const *backend_nodes,
                                         const char *const *frontend_nodes)
{
    struct device_args a = {
        type, frontend, backend, devid, backend_nodes, frontend_nodes, "", ""
    };
    int rc;

    if (!ctx || !pvabi__xb_type_ok(ctx, type) || !nodes_ok(ctx, backend_nodes) ||
        !nodes_ok(ctx, frontend_nodes))
        return -EINVAL;
    rc = paths(ctx, &a);
    if (rc == 0)
        rc = pvabi_store_txn_run(ctx, add_txn, &a, DEVICE_TXN_TRIES);
    if (rc < 0)
        pvabi__err(ctx, "xenbus: adding device %s/%u (frontend %u, backend %u): %s", type, devid,
                   (unsigned)frontend, (unsigned)backend, strerror(-rc));
    else
        pvabi__debug(ctx, "xenbus: added %s and %s", a.fe_path, a.be_path);
    return rc;
}

static int remove_txn(pvabi_ctx *ctx, pvabi_store_txn txn, void *opaque)
{
    struct device_args *a = opaque;
    int rc = pvabi_store_rm(ctx, txn, a->fe_path);

    if (rc == 0 || rc == -ENOENT)
        rc = pvabi_store_rm(ctx, txn, a->be_path);
    return rc == -ENOENT ? 0 : rc;
}

PVABI_EXPORT int pvabi_xenbus_device_remove(pvabi_ctx *ctx, const char *type, pvabi_domid frontend,
                                            pvabi_domid backend, unsigned devid)
{
    struct device_args a = { type, frontend, backend, devid, NULL, NULL, "", "" };
    int rc;

    if (!ctx || !pvabi__xb_type_ok(ctx, type))
        return -EINVAL;
    rc = paths(ctx, &a);
    if (rc == 0)
        rc = pvabi_store_txn_run(ctx, remove_txn, &a, DEVICE_TXN_TRIES);
    if (rc < 0)
        pvabi__err(ctx, "xenbus: removing device %s/%u (frontend %u, backend %u): %s", type, devid,
                   (unsigned)frontend, (unsigned)backend, strerror(-rc));
    return rc;
}
