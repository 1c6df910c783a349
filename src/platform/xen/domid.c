/* SPDX-License-Identifier: MIT */
/*
 * Our own domain id.  Xen has no unprivileged "who am I" call; the toolstack
 * writes it to xenstore as /local/domain/<id>/domid, which a domain reads as
 * the relative path "domid".  Dom0 may not have that key (xenstored started
 * by hand, old toolstacks); dom0 is the domain whose capabilities say
 * "control_d", so that is the only case where its absence means 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xenstore.h>

#include "private.h"

const char *pvabi__xen_caps_path = "/proc/xen/capabilities";

/* Domain ids from 0x7FF0 (DOMID_FIRST_RESERVED) up are not domains. */
#define DOMID_MAX 0x7FEFu

/* Parses a decimal domid without strtoul (which reports through errno). */
static int parse_domid(const char *s, pvabi_domid *domid)
{
    unsigned long v = 0;

    if (!*s)
        return -EINVAL;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || (v = v * 10 + (unsigned long)(*s - '0')) > DOMID_MAX)
            return -EINVAL;
    }
    *domid = (pvabi_domid)v;
    return 0;
}

/* Reads xenstore's "domid" into a malloc'd *val; else -errno, and *call
 * names the call that failed. */
static int read_xs_domid(struct pvabi__xen *x, char **val, const char **call)
{
    struct xs_handle *xsh = xs_open(0); /* 4.17 ignores XS_OPEN_READONLY */
    unsigned int len;
    int rc = 0;

    *val = NULL;
    *call = "xs_open";
    if (!xsh)
        return pvabi__xen_fail(x, PVABI_LOG_DEBUG, NULL, "xs_open (to read our domid)");
    *call = "xs_read(\"domid\")";
    *val = xs_read(xsh, XBT_NULL, "domid", &len);
    if (!*val)
        rc = pvabi__xen_fail(x, PVABI_LOG_DEBUG, NULL, "xs_read(\"domid\")");
    xs_close(xsh);
    return rc;
}

/* 1 when /proc/xen/capabilities says we are the control domain (dom0). */
static int is_control_domain(void)
{
    char buf[128] = "";
    FILE *f = fopen(pvabi__xen_caps_path, "re");

    if (!f)
        return 0;
    if (!fgets(buf, sizeof(buf), f))
        buf[0] = '\0';
    fclose(f);
    return strstr(buf, "control_d") != NULL;
}

int pvabi__xen_own_domid(struct pvabi__xen *x, pvabi_domid *domid)
{
    const char *call;
    char *val;
    int rc = read_xs_domid(x, &val, &call);

    if (rc == 0) {
        rc = parse_domid(val, domid);
        if (rc < 0)
            pvabi__err(x->ctx,
                       "platform xen: xenstore key \"domid\" holds \"%.32s\", not a domain "
                       "id (0..%u)",
                       val, DOMID_MAX);
        free(val);
        return rc;
    }
    if (is_control_domain()) {
        pvabi__debug(x->ctx, "platform xen: no \"domid\" in xenstore; %s says control_d: dom0",
                     pvabi__xen_caps_path);
        *domid = 0;
        return 0;
    }
    return pvabi__xen_report(x, PVABI_LOG_ERR, rc, NULL,
                             "cannot tell our domain id: %s failed and %s does not say control_d "
                             "(is xenstored running?)",
                             call, pvabi__xen_caps_path);
}
