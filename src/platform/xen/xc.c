/* SPDX-License-Identifier: MIT */
/*
 * libxenctrl, for EVTCHNOP_status only: the one question about a port that
 * libxenevtchn cannot answer (is the peer still there?  to whom is a port
 * offered?).  Optional: it needs /dev/xen/privcmd, normally root only;
 * without it the other files fall back to what this process last saw.
 */

/* xenctrl.h needs GNU C: xen/hvm/save.h refuses strict ISO mode (anonymous
 * unions) and xen/foreign/x86_64.h only aligns fields when __STRICT_ANSI__
 * is unset.  pvabi builds with -std=c11, so this file, the only one that
 * includes xenctrl.h, lifts the flag before its first include. */
#undef __STRICT_ANSI__
#define __XEN_TOOLS__ 1

#include <xenctrl.h>

#include "private.h"

void pvabi__xen_xc_open(struct pvabi__xen *x)
{
    x->xch = xc_interface_open(&x->logger.base, &x->logger.base, 0);
    if (!x->xch)
        pvabi__xen_fail(x, PVABI_LOG_DEBUG, NULL,
                        "xc_interface_open: /dev/xen/privcmd (port states are then this "
                        "process's own view: a peer's close is not seen)");
}

void pvabi__xen_xc_close(struct pvabi__xen *x)
{
    if (x->xch)
        xc_interface_close(x->xch);
    x->xch = NULL;
}

int pvabi__xen_port_status(struct pvabi__xen *x, pvabi_domid dom, pvabi_port port, uint32_t *status,
                           pvabi_domid *remote)
{
    xc_evtchn_status_t st = { .dom = dom, .port = port };

    if (!x->xch)
        return -ENOTSUP;
    if (xc_evtchn_status(x->xch, &st) < 0)
        return pvabi__xen_fail(x, PVABI_LOG_DEBUG, NULL, "xc_evtchn_status(domain %u, port %u)",
                               (unsigned)dom, port);
    *status = st.status;
    *remote = DOMID_INVALID;
    if (st.status == EVTCHNSTAT_unbound)
        *remote = st.u.unbound.dom;
    else if (st.status == EVTCHNSTAT_interdomain)
        *remote = st.u.interdomain.dom;
    return 0;
}
