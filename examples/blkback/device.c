/* SPDX-License-Identifier: MIT */
/*
 * device.c - one vbd: its image file, its xenbus backend handle (features
 * advertised in InitWait), and what happens on each handshake event:
 * CONNECTED attaches the ring, CLOSING / PEER_LOST / CLOSED stop serving
 * and drop the persistent mappings (before the handle writes Closed, so the
 * frontend may revoke its pages as soon as it sees Closed).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bb.h"

struct bb_dev *bb_dev_new(struct blkback *b, pvabi_domid fe, unsigned devid)
{
    struct bb_dev *d = calloc(1, sizeof(*d));

    if (!d)
        return NULL;
    d->b = b;
    d->fe = fe;
    d->devid = devid;
    d->fd = -1;
    snprintf(d->name, sizeof(d->name), "%s %u/%u", b->type, fe, devid);
    snprintf(d->path, sizeof(d->path), "%s/%u/%u", b->base, fe, devid);
    if (bb_grants_init(d) < 0 || bb_aio_init(d) < 0) {
        bb_grants_free(d);
        free(d);
        return NULL;
    }
    d->next = b->devs;
    b->devs = d;
    return d;
}

/* Stops serving; drops the persistent mappings.  The handle owns the ring. */
static void detach(struct bb_dev *d)
{
    d->connected = 0;
    d->more = 0;
    d->has_stash = 0;
    bb_grants_drop(d);
}

void bb_dev_free(struct bb_dev *d)
{
    detach(d);
    free(d->params);
    /* No close handshake: a backend started later re-attaches. */
    pvabi_xenbus_back_close(d->xb);
    if (d->fd >= 0)
        close(d->fd);
    bb_aio_free(d);
    bb_grants_free(d);
    free(d);
}

static int read_node(struct bb_dev *d, const char *key, char **v)
{
    char path[192];

    snprintf(path, sizeof(path), "%s/%s", d->path, key);
    return pvabi_store_read(d->b->ctx, PVABI_STORE_TXN_NONE, path, v);
}

/* Reads params and mode, opens the image; sets fd, ro, sectors. */
static int open_image(struct bb_dev *d)
{
    char *params = NULL, *mode = NULL;
    struct stat sb;
    int rc = read_node(d, "params", &params);

    if (rc >= 0)
        rc = read_node(d, "mode", &mode);
    if (rc < 0) {
        bb_log(d->b, PVABI_LOG_ERR, "%s: no %s node: %s", d->name, params ? "mode" : "params",
               strerror(-rc));
        goto out;
    }
    d->ro = strcmp(mode, "w") != 0;
    d->fd = open(params, (d->ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    rc = d->fd < 0 || fstat(d->fd, &sb) < 0 ? -errno : 0;
    if (rc == 0 && !S_ISREG(sb.st_mode) && !S_ISBLK(sb.st_mode))
        rc = -EINVAL;
    if (rc < 0) {
        bb_log(d->b, PVABI_LOG_ERR, "%s: image %s: %s", d->name, params, strerror(-rc));
        goto out;
    }
    uint64_t bytes = (uint64_t)sb.st_size;
    /* A block device's st_size is 0: ask the device. */
    if (S_ISBLK(sb.st_mode) && ioctl(d->fd, BLKGETSIZE64, &bytes) < 0)
        bytes = 0;
    d->sectors = bytes / PVBLK_SECTOR_SIZE;
    /* Kept to notice a toolstack pointing the device at another image. */
    free(d->params);
    d->params = params;
    params = NULL;
out:
    free(params);
    free(mode);
    return rc;
}

static int feature(struct bb_dev *d, const char *key, const char *fmt, uint64_t v)
{
    char val[32];

    snprintf(val, sizeof(val), fmt, v);
    return pvabi_xenbus_back_set_feature(d->xb, key, val);
}

/* What blkif.h's frontend reads in InitWait. */
static int set_features(struct bb_dev *d)
{
    const struct blkback_opts *o = &d->b->o;
    int rc = feature(d, "sectors", "%" PRIu64, d->sectors);

    rc = rc ? rc : feature(d, "sector-size", "%" PRIu64, 512);
    rc = rc ? rc : feature(d, "physical-sector-size", "%" PRIu64, 4096);
    rc = rc ? rc : feature(d, "info", "%" PRIu64, d->ro ? PVBLK_VDISK_READONLY : 0);
    rc = rc ? rc : feature(d, "feature-flush-cache", "%" PRIu64, 1);
    rc = rc ? rc : feature(d, "feature-barrier", "%" PRIu64, 1);
    rc = rc ? rc : feature(d, "max-ring-page-order", "%" PRIu64, o->max_ring_order);
    if (!d->ro) {
        rc = rc ? rc : feature(d, "feature-discard", "%" PRIu64, 1);
        rc = rc ? rc : feature(d, "discard-granularity", "%" PRIu64, 4096);
        rc = rc ? rc : feature(d, "discard-alignment", "%" PRIu64, 0);
        rc = rc ? rc : feature(d, "discard-secure", "%" PRIu64, 0);
    }
    if (o->max_indirect)
        rc = rc ? rc : feature(d, "feature-max-indirect-segments", "%" PRIu64, o->max_indirect);
    if (o->persistent)
        rc = rc ? rc : feature(d, "feature-persistent", "%" PRIu64, 1);
    return rc;
}

/* The frontend's feature-persistent, read at connect time. */
static int front_persistent(struct bb_dev *d)
{
    char path[192];
    uint32_t v = 0;

    if (!d->b->o.persistent)
        return 0;
    snprintf(path, sizeof(path), "%s/feature-persistent", pvabi_xenbus_back_frontend_path(d->xb));
    return pvabi_store_read_u32(d->b->ctx, PVABI_STORE_TXN_NONE, path, &v) == 0 && v == 1;
}

static void on_connected(struct bb_dev *d)
{
    const char *proto = pvabi_xenbus_back_protocol(d->xb);
    unsigned order = pvabi_xenbus_back_ring_order(d->xb);

    /* A new connection starts clean whatever came before: no request stashed
     * from the previous ring, no page mapped under a previous frontend's grefs. */
    detach(d);
    if (strcmp(proto, PVABI_XENBUS_PROTOCOL_NATIVE) != 0) {
        bb_dev_break(d, "frontend protocol is not the native one");
        return;
    }
    if (pvblk_back_attach(&d->ring, pvabi_xenbus_back_ring(d->xb), order) < 0) {
        bb_dev_break(d, "ring indices inconsistent at attach");
        return;
    }
    d->port = pvabi_xenbus_back_port(d->xb);
    d->persistent = front_persistent(d);
    d->connected = 1;
    d->more = 1; /* requests may be waiting already (a re-attach) */
    d->b->had_connection = 1;
    bb_log(d->b, PVABI_LOG_INFO, "%s: Connected%s, ring %u pages, %s, indirect %u, %s%s", d->name,
           pvabi_xenbus_back_reattached(d->xb) ? " (re-attached)" : "", 1u << order,
           d->persistent ? "persistent" : "not persistent", d->b->o.max_indirect,
           d->b->o.grants == BLKBACK_GRANTS_MAP ? "grant map" : "grant copy",
           d->ro ? ", read-only" : "");
}

static void on_event(pvabi_xenbus_back *xb, int event, int err, void *opaque)
{
    struct bb_dev *d = opaque;

    (void)xb;
    switch (event) {
    case PVABI_XENBUS_EV_CONNECTED:
        on_connected(d);
        return;
    case PVABI_XENBUS_EV_PEER_LOST:
        detach(d);
        bb_log(d->b, PVABI_LOG_INFO, "%s: frontend lost; waiting for it to come back", d->name);
        return;
    case PVABI_XENBUS_EV_CLOSING:
        detach(d);
        bb_log(d->b, PVABI_LOG_INFO, "%s: Closing", d->name);
        return;
    case PVABI_XENBUS_EV_CLOSED:
        detach(d);
        bb_log(d->b, PVABI_LOG_INFO, "%s: Closed", d->name);
        return;
    case PVABI_XENBUS_EV_ERROR:
        detach(d);
        bb_log(d->b, PVABI_LOG_WARN, "%s: handshake failed: %s", d->name, strerror(-err));
        return;
    default:
        return;
    }
}

int bb_dev_open(struct bb_dev *d)
{
    int rc;

    d->open_failed = 1;
    pvabi_xenbus_back_close(d->xb);
    d->xb = NULL;
    if (d->fd >= 0)
        close(d->fd);
    d->fd = -1;
    rc = open_image(d);
    if (rc == 0)
        rc = pvabi_xenbus_back_open(d->b->ctx, d->b->type, d->fe, d->devid, on_event, d, &d->xb);
    if (rc == 0)
        rc = set_features(d);
    if (rc == 0) {
        d->open_failed = 0;
        bb_log(d->b, PVABI_LOG_INFO, "%s: %s, %" PRIu64 " sectors, %s", d->name, "image open",
               d->sectors, d->ro ? "read-only" : "read-write");
        rc = pvabi_xenbus_back_start(d->xb);
    }
    if (rc < 0) {
        d->open_failed = 1;
        bb_log(d->b, PVABI_LOG_ERR, "%s: cannot open: %s", d->name, strerror(-rc));
    }
    return rc;
}

/*
 * Whether the toolstack removed and re-created the device directory since
 * we opened it (pvabi_xenbus_device_add() does both in one transaction, so
 * the rescan may only ever see the directory present).  The signs: our
 * state node reads Initialising or is absent -- a backend never goes back
 * to Initialising, only the toolstack writes it -- or params / mode differ
 * from what we opened.  Our handle's view (InitWait published, features
 * advertised) then describes a directory that no longer exists.
 */
int bb_dev_recreated(struct bb_dev *d)
{
    char path[192], *params = NULL, *mode = NULL;
    uint32_t st = 0;
    int rc, changed;

    if (read_node(d, "params", &params) < 0 || read_node(d, "mode", &mode) < 0) {
        free(params);
        return 0; /* vanishing: the rescan that follows the removal drops it */
    }
    changed = !d->params || strcmp(params, d->params) != 0 || (strcmp(mode, "w") != 0) != d->ro;
    free(params);
    free(mode);
    snprintf(path, sizeof(path), "%s/state", d->path);
    rc = pvabi_store_read_u32(d->b->ctx, PVABI_STORE_TXN_NONE, path, &st);
    return changed || rc == -ENOENT || rc == -EINVAL || rc == -ERANGE ||
           (rc == 0 && st == PVABI_XENBUS_STATE_INITIALISING);
}

/* A new device under the old name: nothing of the previous one is kept. */
void bb_dev_restart(struct bb_dev *d, const char *why)
{
    bb_log(d->b, PVABI_LOG_INFO, "%s: %s: starting over", d->name, why);
    detach(d);
    d->offline = 0;
    d->broken = 0;
    memset(&d->st, 0, sizeof(d->st));
    bb_dev_open(d); /* closes the old handle without a handshake, opens anew */
}

/* A broken ring or an unusable frontend: close handshake for this device only. */
void bb_dev_break(struct bb_dev *d, const char *why)
{
    bb_log(d->b, PVABI_LOG_WARN, "%s: %s: disconnecting", d->name, why);
    d->broken = 1;
    detach(d);
    pvabi_xenbus_back_disconnect(d->xb);
}

void bb_dev_offline(struct bb_dev *d)
{
    bb_log(d->b, PVABI_LOG_INFO, "%s: online=0: closing", d->name);
    d->offline = 1;
    detach(d);
    pvabi_xenbus_back_disconnect(d->xb);
}

/*
 * Serves the ring after an event: unmask first, then batches until
 * final_check says the ring is empty with the event re-armed, so an event
 * that arrives meanwhile is at worst spurious.  After BB_FAIR_BATCHES the
 * device yields (more = 1) and the loop comes back without an event.
 */
void bb_dev_kick(struct bb_dev *d)
{
    pvabi_evtchn_unmask(d->b->ctx, d->port);
    d->more = 0;
    for (unsigned i = 0; d->connected; i++) {
        int rc = bb_io_batch(d);
        if (rc > 0)
            d->b->served_at_us = bb_now_us();
        if (rc == 0)
            rc = d->has_stash ? 1 : pvblk_back_final_check(&d->ring);
        if (rc == -EPROTO) {
            bb_dev_break(d, "ring broken (producer index out of range)");
            return;
        }
        if (rc <= 0)
            return;
        if (i + 1 >= BB_FAIR_BATCHES) {
            d->more = 1;
            return;
        }
    }
}
