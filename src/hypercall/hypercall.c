/* SPDX-License-Identifier: MIT */
/* Issuing a hypercall through the platform seam; the shared checks. */
#include "hypercall/xen-abi.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hypercall/private.h"
#include "xenbus/private.h"

int pvabi__hcall(pvabi_ctx *ctx, struct pvabi__hypercall *hc, int64_t *result, const char *what)
{
    int64_t ignored;
    int rc;

    pthread_mutex_lock(&ctx->lock);
    rc = ctx->ops->hypercall(ctx, ctx->plat, hc, result ? result : &ignored);
    pthread_mutex_unlock(&ctx->lock);
    if (rc == -EACCES && (hc->nr == __HYPERVISOR_sysctl || hc->nr == __HYPERVISOR_domctl))
        pvabi__err(ctx,
                   "%s: refused with EACCES: no access to the hypervisor (xen: "
                   "/dev/xen/privcmd), or its %s interface version is not %#x, the one "
                   "pvabi was built with",
                   what, hc->nr == __HYPERVISOR_sysctl ? "sysctl" : "domctl",
                   hc->nr == __HYPERVISOR_sysctl ? XEN_SYSCTL_INTERFACE_VERSION
                                                 : XEN_DOMCTL_INTERFACE_VERSION);
    else if (rc < 0)
        pvabi__debug(ctx, "%s: %s", what, strerror(-rc));
    return rc;
}

int pvabi__hcall_domid(pvabi_ctx *ctx, pvabi_domid in, pvabi_domid *out, const char *what)
{
    if (in == PVABI_DOMID_SELF) {
        *out = ctx->domid;
        return 0;
    }
    if (in >= DOMID_FIRST_RESERVED) {
        pvabi__err(ctx, "%s: domain %u is not a domain id (0..%u, or PVABI_DOMID_SELF)", what,
                   (unsigned)in, DOMID_FIRST_RESERVED - 1u);
        return -EINVAL;
    }
    *out = in;
    return 0;
}

/* A name is whatever a domain's toolstack (or, with loose permissions, the
 * domain) wrote: tools print it, so control bytes become '?'. */
static void copy_printable(char *dst, size_t size, const char *src)
{
    size_t i;

    for (i = 0; i + 1 < size && src[i]; i++)
        dst[i] = (unsigned char)src[i] < 0x20 || src[i] == 0x7f ? '?' : src[i];
    dst[i] = '\0';
}

int pvabi__hcall_domain_name(pvabi_ctx *ctx, struct pvabi_domain_info *out)
{
    char path[40], *value = NULL;
    int rc;

    out->name[0] = '\0';
    snprintf(path, sizeof(path), "/local/domain/%u/name", (unsigned)out->domid);
    rc = pvabi__store_read_quiet(ctx, path, &value);
    if (rc >= 0)
        copy_printable(out->name, sizeof(out->name), value);
    free(value);
    if (rc >= 0 || rc == -ENOENT || rc == -EACCES || rc == -EINVAL)
        return 0;
    return rc;
}
