/* SPDX-License-Identifier: MIT */
/* __HYPERVISOR_xen_version: one hypercall per XENVER_* sub-op. */
#include "hypercall/xen-abi.h"

#include <errno.h>
#include <string.h>

#include "hypercall/private.h"

/* One sub-op into @buf (NULL for XENVER_version); *result its value. */
static int xenver(pvabi_ctx *ctx, uint32_t cmd, void *buf, uint32_t len, int64_t *result)
{
    struct pvabi__hypercall hc = {
        .nr = __HYPERVISOR_xen_version, .cmd = cmd, .arg = buf, .len = len
    };
    return pvabi__hcall(ctx, &hc, result, "xen_version");
}

/* A string sub-op: Xen fills a fixed array, NUL-terminated unless full. */
static int xenver_string(pvabi_ctx *ctx, uint32_t cmd, void *buf, uint32_t len, char *out,
                         size_t size)
{
    int rc = xenver(ctx, cmd, buf, len, NULL);

    if (rc < 0)
        return rc;
    memset(out, 0, size);
    memcpy(out, buf, len < size - 1 ? len : size - 1);
    return 0;
}

static int version_numbers(pvabi_ctx *ctx, struct pvabi_xen_version *out)
{
    int64_t v;
    int rc = xenver(ctx, XENVER_version, NULL, 0, &v);

    if (rc < 0)
        return rc;
    out->major = (uint32_t)((uint64_t)v >> 16);
    out->minor = (uint32_t)v & 0xffff;
    return 0;
}

static int version_features(pvabi_ctx *ctx, struct pvabi_xen_version *out)
{
    xen_feature_info_t fi = { .submap_idx = 0 };
    int rc = xenver(ctx, XENVER_get_features, &fi, sizeof(fi), NULL);

    out->features = rc < 0 ? 0 : fi.submap;
    return rc;
}

static int version_pagesize(pvabi_ctx *ctx, struct pvabi_xen_version *out)
{
    int64_t v;
    int rc = xenver(ctx, XENVER_pagesize, NULL, 0, &v);

    out->pagesize = rc < 0 ? 0 : (uint32_t)v;
    return rc;
}

PVABI_EXPORT int pvabi_xen_version_read(pvabi_ctx *ctx, struct pvabi_xen_version *out)
{
    xen_extraversion_t extra = { 0 };
    xen_capabilities_info_t caps = { 0 };
    xen_changeset_info_t cset = { 0 };
    int rc;

    if (!ctx || !out)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    rc = version_numbers(ctx, out);
    if (rc == 0)
        rc = xenver_string(ctx, XENVER_extraversion, extra, sizeof(extra), out->extra,
                           sizeof(out->extra));
    if (rc == 0)
        rc = xenver_string(ctx, XENVER_capabilities, caps, sizeof(caps), out->capabilities,
                           sizeof(out->capabilities));
    if (rc == 0)
        rc = xenver_string(ctx, XENVER_changeset, cset, sizeof(cset), out->changeset,
                           sizeof(out->changeset));
    if (rc == 0)
        rc = version_features(ctx, out);
    if (rc == 0)
        rc = version_pagesize(ctx, out);
    if (rc < 0)
        pvabi__err(ctx, "xen_version: %s", strerror(-rc));
    return rc;
}
