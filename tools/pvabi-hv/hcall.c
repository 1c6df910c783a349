/* SPDX-License-Identifier: MIT */
/*
 * HYPERCALL: the hypercalls behind pvabi's typed wrappers, answered with
 * Xen's own argument structs (proto.h lists them; docs/hypercall.md says
 * where each number comes from).  Errors, their order (length, interface
 * version, existence, privilege) and the privilege rules are Xen's, so a
 * caller sees the same outcome on both platforms.
 *
 * The argument arrives in the request and is answered in place in the
 * reply: it is copied into the reply buffer first, and each handler works
 * on a typed copy that it writes back only on success.  Nothing is read
 * beyond the request's own length.
 */
#include "hypercall/xen-abi.h" /* first: it lifts __STRICT_ANSI__ */

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "pvabi-config.h"
#include "hv_changeset.h"
#include "hv.h"

/* One hypercall being answered. */
struct hc {
    struct hv_dom *d;
    struct hv_hypercall_req req;
    uint8_t *arg;      /* req.len bytes: the argument, in the reply buffer */
    uint8_t *sub;      /* room for req.sub_len bytes, right after it */
    uint32_t sub_used; /* bytes of sub the hypercall wrote */
    int64_t result;
};

/* Logs why @hc fails and returns @status: the log is the only place that
 * says which check a request failed. */
static int32_t hc_fail(const struct hc *hc, int32_t status, const char *why)
{
    hv_info("%s: HYPERCALL nr %u cmd %u (len %u, sub_len %u): %s: %s", hv_who(hc->d), hc->req.nr,
            hc->req.cmd, hc->req.len, hc->req.sub_len, hv_errname(status), why);
    return status;
}

static int32_t hc_want_len(const struct hc *hc, size_t len)
{
    return hc->req.len == len ? 0 : hc_fail(hc, -EINVAL, "wrong argument length");
}

/* ---- xen_version ----------------------------------------------------------- */

/* major.minor of pvabi itself: the local hypervisor is pvabi's. */
static int64_t local_version(void)
{
    unsigned major = 0, minor = 0;

    if (sscanf(PVABI_VERSION, "%u.%u", &major, &minor) != 2)
        hv_warn("internal: PVABI_VERSION \"%s\" is not MAJOR.MINOR", PVABI_VERSION);
    return (int64_t)((major & 0xffffu) << 16 | (minor & 0xffffu));
}

/* @s into the @size bytes at @hc's argument, NUL-padded as Xen's strings. */
static int32_t hc_string(struct hc *hc, size_t size, const char *s)
{
    int32_t st = hc_want_len(hc, size);

    if (st == 0) {
        memset(hc->arg, 0, size);
        snprintf((char *)hc->arg, size, "%s", s);
    }
    return st;
}

static int32_t hc_capabilities(struct hc *hc)
{
    char caps[XEN_CAPABILITIES_INFO_LEN];
    struct utsname u;

    snprintf(caps, sizeof(caps), "pvabi-local-1 %s", uname(&u) == 0 ? u.machine : "unknown");
    return hc_string(hc, sizeof(caps), caps);
}

static int32_t hc_features(struct hc *hc)
{
    xen_feature_info_t fi;
    int32_t st = hc_want_len(hc, sizeof(fi));

    if (st)
        return st;
    memcpy(&fi, hc->arg, sizeof(fi));
    /* Xen has one submap (XENFEAT_NR_SUBMAPS): the others are -EINVAL. */
    if (fi.submap_idx != 0)
        return hc_fail(hc, -EINVAL, "no such feature submap");
    fi.submap = 0; /* none of Xen's guest features applies to a process */
    memcpy(hc->arg, &fi, sizeof(fi));
    return 0;
}

static int32_t hc_xen_version(struct hc *hc)
{
    switch (hc->req.cmd) {
    case XENVER_version:
        hc->result = local_version();
        return hc_want_len(hc, 0);
    case XENVER_extraversion:
        return hc_string(hc, XEN_EXTRAVERSION_LEN, "-pvabi");
    case XENVER_capabilities:
        return hc_capabilities(hc);
    case XENVER_changeset:
        return hc_string(hc, XEN_CHANGESET_INFO_LEN, HV_CHANGESET);
    case XENVER_get_features:
        return hc_features(hc);
    case XENVER_pagesize:
        hc->result = HV_PAGE_SIZE;
        return hc_want_len(hc, 0);
    default:
        return hc_fail(hc, -ENOSYS, "unknown xen_version sub-op");
    }
}

/* ---- the host: sysctl physinfo ---------------------------------------------- */

/* Is @line "@key<blanks>: value"?  Then *value points after the colon. */
static bool cpuinfo_key(const char *line, const char *key, const char **value)
{
    size_t k = strlen(key);

    if (strncmp(line, key, k) != 0)
        return false;
    line += k + strspn(line + k, " \t");
    *value = line + 1;
    return *line == ':';
}

/* The number on the first @key line of /proc/cpuinfo, or 0: not every
 * architecture has every key. */
static double cpuinfo_num(const char *key)
{
    char line[256];
    const char *value;
    double v = 0;
    FILE *f = fopen("/proc/cpuinfo", "re");

    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (cpuinfo_key(line, key, &value)) {
            if (sscanf(value, "%lf", &v) != 1)
                v = 0;
            break;
        }
    fclose(f);
    return v;
}

static void physinfo_fill(struct xen_sysctl_physinfo *pi)
{
    double siblings = cpuinfo_num("siblings"), cores = cpuinfo_num("cpu cores");
    long online = sysconf(_SC_NPROCESSORS_ONLN), conf = sysconf(_SC_NPROCESSORS_CONF);
    struct sysinfo si;

    memset(pi, 0, sizeof(*pi));
    pi->nr_cpus = online > 0 ? (uint32_t)online : 1;
    pi->max_cpu_id = conf > 0 ? (uint32_t)conf - 1 : pi->nr_cpus - 1;
    pi->nr_nodes = 1; /* NUMA is not modelled */
    /* "siblings" counts the threads of a socket, "cpu cores" its cores. */
    pi->cores_per_socket = (uint32_t)cores;
    pi->threads_per_core = cores >= 1 ? (uint32_t)(siblings / cores) : 0;
    pi->cpu_khz = (uint32_t)(cpuinfo_num("cpu MHz") * 1000);
    pi->capabilities = XEN_SYSCTL_PHYSCAP_gnttab_v1;
    if (sysinfo(&si) == 0) {
        pi->total_pages = (uint64_t)si.totalram * si.mem_unit / HV_PAGE_SIZE;
        pi->free_pages = (uint64_t)si.freeram * si.mem_unit / HV_PAGE_SIZE;
    } else {
        hv_warn("sysinfo: %s; physinfo reports no memory", strerror(errno));
    }
}

/* ---- domains: getdomaininfo ---------------------------------------------------- */

/* What /proc/PID/stat says about a domain's process. */
struct proc_stat {
    char state;
    unsigned long utime, stime; /* clock ticks */
    long threads;
};

static int proc_stat_read(pid_t pid, struct proc_stat *ps)
{
    char path[40], buf[1024];
    const char *end;
    size_t n;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "re");
    if (!f)
        return -1;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name may hold anything, ')' included: skip to the last. */
    end = strrchr(buf, ')');
    if (!end ||
        sscanf(end + 1, " %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %ld",
               &ps->state, &ps->utime, &ps->stime, &ps->threads) != 4)
        return -1;
    return 0;
}

static uint32_t state_flags(char state)
{
    switch (state) {
    case 'R':
        return XEN_DOMINF_running;
    case 'T':
    case 't':
        return XEN_DOMINF_paused;
    case 'Z':
    case 'X':
    case 'x':
        return XEN_DOMINF_dying;
    default: /* S, D, I, W, P: waiting for something */
        return XEN_DOMINF_blocked;
    }
}

static void dom_info_fill(const struct hv_dom *t, xen_domctl_getdomaininfo_t *info)
{
    struct proc_stat ps;
    long tck = sysconf(_SC_CLK_TCK);

    memset(info, 0, sizeof(*info));
    info->domain = (domid_t)t->domid;
    info->tot_pages = t->grants_live; /* a domain's memory is what it shares */
    info->max_pages = HV_GRANTS_MAX - HV_FIRST_GREF;
    info->max_vcpu_id = XEN_INVALID_MAX_VCPU_ID;
    if (hv_dom_dying(t)) {
        info->flags = XEN_DOMINF_dying;
        return;
    }
    /* No stat, yet the connection lives (its hang-up was handled first): the
     * process that connected exited and a child of it holds the socket.  The
     * domain is alive; what its process does is not known. */
    if (proc_stat_read(t->pid, &ps) != 0) {
        info->flags = XEN_DOMINF_blocked;
        hv_debug("%s: /proc/%d/stat unreadable: no cpu time or vcpus reported", hv_who(t),
                 (int)t->pid);
        return;
    }
    info->flags = state_flags(ps.state);
    if (tck > 0)
        info->cpu_time = (uint64_t)(ps.utime + ps.stime) * (1000000000u / (uint64_t)tck);
    if (info->flags == XEN_DOMINF_dying || ps.threads < 1)
        return;
    info->nr_online_vcpus = (uint32_t)ps.threads; /* a thread is a vCPU */
    info->max_vcpu_id = (uint32_t)ps.threads - 1;
}

/* Live domains and zombies from @first up, ascending, into @hc's sub. */
static int32_t domaininfolist(struct hc *hc, struct xen_sysctl_getdomaininfolist *l)
{
    const size_t isz = sizeof(xen_domctl_getdomaininfo_t);
    uint32_t room = hc->req.sub_len / (uint32_t)isz, n = 0;

    if (hc->req.sub_len % isz)
        return hc_fail(hc, -EINVAL, "sub_len is not a multiple of xen_domctl_getdomaininfo_t");
    if (room > l->max_domains)
        room = l->max_domains;
    for (uint32_t id = l->first_domain; id < HV_DOMID_LIMIT && n < room; id++) {
        xen_domctl_getdomaininfo_t info;
        const struct hv_dom *t = hv.doms[id] ? hv_dom_settled(hc->d, id) : NULL;
        if (!t)
            continue;
        dom_info_fill(t, &info);
        memcpy(hc->sub + n * isz, &info, isz);
        n++;
    }
    l->num_domains = n;
    hc->sub_used = n * (uint32_t)isz;
    return 0;
}

static int32_t hc_sysctl(struct hc *hc)
{
    struct xen_sysctl op;
    int32_t st = hc_want_len(hc, sizeof(op));

    if (st)
        return st;
    memcpy(&op, hc->arg, sizeof(op));
    if (op.interface_version != XEN_SYSCTL_INTERFACE_VERSION)
        return hc_fail(hc, -EACCES, "sysctl interface_version differs from the daemon's");
    if (!hc->d->privileged)
        return hc_fail(hc, -EPERM, "a sysctl needs privilege");
    if (op.cmd == XEN_SYSCTL_physinfo && hc->req.sub_len == 0)
        physinfo_fill(&op.u.physinfo);
    else if (op.cmd == XEN_SYSCTL_physinfo)
        return hc_fail(hc, -EINVAL, "physinfo takes no sub buffer");
    else if (op.cmd == XEN_SYSCTL_getdomaininfolist)
        st = domaininfolist(hc, &op.u.getdomaininfolist);
    else
        return hc_fail(hc, -ENOSYS, "unknown sysctl");
    if (st == 0)
        memcpy(hc->arg, &op, sizeof(op));
    return st;
}

/* The domain @domid of a question about one domain, checked as Xen does:
 * existence, then privilege (itself, or anyone when privileged). */
static int32_t hc_target(const struct hc *hc, uint32_t domid, struct hv_dom **out)
{
    *out = hv_dom_lookup(hc->d, domid);
    if (!*out)
        return hc_fail(hc, -ESRCH, "no such domain");
    if (!hv_may_inspect(hc->d, *out))
        return hc_fail(hc, -EPERM, "another domain, without privilege");
    return 0;
}

static int32_t hc_domctl(struct hc *hc)
{
    struct xen_domctl op;
    struct hv_dom *t;
    int32_t st = hc_want_len(hc, sizeof(op));

    if (st)
        return st;
    memcpy(&op, hc->arg, sizeof(op));
    if (op.interface_version != XEN_DOMCTL_INTERFACE_VERSION)
        return hc_fail(hc, -EACCES, "domctl interface_version differs from the daemon's");
    if (op.cmd != XEN_DOMCTL_getdomaininfo)
        return hc_fail(hc, -ENOSYS, "unknown domctl");
    st = hc_target(hc, op.domain, &t);
    if (st)
        return st;
    dom_info_fill(t, &op.u.getdomaininfo);
    op.domain = (domid_t)t->domid; /* Xen echoes the domain it answered for */
    memcpy(hc->arg, &op, sizeof(op));
    return 0;
}

/* ---- EVTCHNOP_status ----------------------------------------------------------- */

static void port_status(const struct hv_port *p, evtchn_status_t *es)
{
    es->vcpu = 0;
    memset(&es->u, 0, sizeof(es->u));
    switch (p->state) {
    case PORT_UNBOUND:
    case PORT_CLOSED: /* Xen's state after the peer closed: offered to it again */
        es->status = EVTCHNSTAT_unbound;
        es->u.unbound.dom = p->remote_domid;
        break;
    case PORT_INTERDOMAIN:
        es->status = EVTCHNSTAT_interdomain;
        es->u.interdomain.dom = p->remote_domid;
        es->u.interdomain.port = p->remote_port;
        break;
    default:
        es->status = EVTCHNSTAT_closed;
    }
}

static int32_t hc_evtchn(struct hc *hc)
{
    evtchn_status_t es;
    struct hv_dom *t;
    int32_t st;

    if (hc->req.cmd != EVTCHNOP_status)
        return hc_fail(hc, -ENOSYS, "unknown event_channel_op");
    st = hc_want_len(hc, sizeof(es));
    if (st)
        return st;
    memcpy(&es, hc->arg, sizeof(es));
    /* Xen's order: the domain, the port, then the asker's right. */
    t = hv_dom_lookup(hc->d, es.dom);
    if (!t)
        return hc_fail(hc, -ESRCH, "no such domain");
    /* Xen's port_is_valid(): within the table the domain has grown; port 0
     * is reserved, valid and always closed. */
    if (es.port >= t->nports && es.port != 0)
        return hc_fail(hc, -EINVAL, "no such port");
    st = hc_target(hc, es.dom, &t);
    if (st)
        return st;
    if (es.port == 0) {
        memset(&es.status, 0, sizeof(es) - offsetof(evtchn_status_t, status));
        memcpy(hc->arg, &es, sizeof(es));
        return 0;
    }
    /* A peer that hung up is reaped first: it may have closed the port. */
    if (t->ports[es.port].state == PORT_INTERDOMAIN)
        hv_dom_settled(hc->d, t->ports[es.port].remote_domid);
    if (es.port >= t->nports) /* the settling freed the table (a death) */
        return hc_fail(hc, -EINVAL, "no such port");
    port_status(&t->ports[es.port], &es);
    memcpy(hc->arg, &es, sizeof(es));
    return 0;
}

/* ---- GNTTABOP_query_size ---------------------------------------------------------- */

#define GNTTAB_V1_PER_FRAME (HV_PAGE_SIZE / 8) /* grant_entry_v1_t is 8 bytes */

/* Xen reports these in .status, with the hypercall itself succeeding. */
static int16_t query_size(const struct hc *hc, gnttab_query_size_t *q)
{
    const struct hv_dom *t = hv_dom_lookup(hc->d, q->dom);
    int16_t status = GNTST_okay;

    if (!t)
        status = GNTST_bad_domain;
    else if (!hv_may_inspect(hc->d, t))
        status = GNTST_permission_denied;
    if (status != GNTST_okay) {
        hv_info("%s: GNTTABOP_query_size of dom %u: status %d", hv_who(hc->d), q->dom, status);
        return status;
    }
    /* The table grows with the highest ref ever handed out. */
    q->nr_frames = (t->fresh_ref + GNTTAB_V1_PER_FRAME - 1) / GNTTAB_V1_PER_FRAME;
    if (q->nr_frames == 0)
        q->nr_frames = 1;
    q->max_nr_frames = HV_GRANTS_MAX / GNTTAB_V1_PER_FRAME;
    return status;
}

static int32_t hc_gnttab(struct hc *hc)
{
    gnttab_query_size_t q;
    int32_t st;

    if (hc->req.cmd != GNTTABOP_query_size)
        return hc_fail(hc, -ENOSYS, "unknown grant_table_op");
    st = hc_want_len(hc, sizeof(q));
    if (st)
        return st;
    if (hc->req.count != 1)
        return hc_fail(hc, -EINVAL, "query_size takes count 1");
    memcpy(&q, hc->arg, sizeof(q));
    q.status = query_size(hc, &q);
    memcpy(hc->arg, &q, sizeof(q));
    return 0;
}

/* ---- XENMEM_{current,maximum}_reservation ------------------------------------------- */

static int32_t hc_memory(struct hc *hc)
{
    uint32_t cmd = hc->req.cmd;
    struct hv_dom *t;
    domid_t domid;
    int32_t st;

    if (cmd != XENMEM_current_reservation && cmd != XENMEM_maximum_reservation)
        return hc_fail(hc, -ENOSYS, "unknown memory_op");
    st = hc_want_len(hc, sizeof(domid));
    if (st)
        return st;
    memcpy(&domid, hc->arg, sizeof(domid));
    st = hc_target(hc, domid, &t);
    if (st)
        return st;
    if (cmd == XENMEM_current_reservation)
        hc->result = t->grants_live;
    else
        hc->result = HV_GRANTS_MAX - HV_FIRST_GREF;
    return 0;
}

/* ---- the op ------------------------------------------------------------------------ */

static bool hc_known(uint32_t nr)
{
    return nr == __HYPERVISOR_xen_version || nr == __HYPERVISOR_sysctl ||
           nr == __HYPERVISOR_domctl || nr == __HYPERVISOR_event_channel_op ||
           nr == __HYPERVISOR_grant_table_op || nr == __HYPERVISOR_memory_op;
}

static int32_t hc_dispatch(struct hc *hc)
{
    if (hc->req.sub_len && hc->req.nr != __HYPERVISOR_sysctl && hc_known(hc->req.nr))
        return hc_fail(hc, -EINVAL, "a sub buffer for a hypercall that takes none");
    switch (hc->req.nr) {
    case __HYPERVISOR_xen_version:
        return hc_xen_version(hc);
    case __HYPERVISOR_sysctl:
        return hc_sysctl(hc);
    case __HYPERVISOR_domctl:
        return hc_domctl(hc);
    case __HYPERVISOR_event_channel_op:
        return hc_evtchn(hc);
    case __HYPERVISOR_grant_table_op:
        return hc_gnttab(hc);
    case __HYPERVISOR_memory_op:
        return hc_memory(hc);
    default:
        return hc_fail(hc, -ENOSYS, "unknown hypercall");
    }
}

int32_t hv_op_hypercall(struct hv_dom *d, struct hv_req *rq, struct hv_rsp *rs)
{
    struct hv_hypercall_rsp out = { 0 };
    const uint32_t room = (uint32_t)(sizeof(rs->payload) - sizeof(out));
    struct hc hc = { .d = d };
    int32_t st;

    memcpy(&hc.req, rq->payload, sizeof(hc.req));
    if (rq->h.len - sizeof(hc.req) != hc.req.len)
        return hc_fail(&hc, -EINVAL, "len differs from the argument bytes sent");
    /* Checked apart, so that a huge sub_len cannot wrap the sum. */
    if (hc.req.len > room || hc.req.sub_len > room - hc.req.len)
        return hc_fail(&hc, -EINVAL, "the answer would not fit in one packet");
    hc.arg = rs->payload + sizeof(out);
    hc.sub = hc.arg + hc.req.len;
    memcpy(hc.arg, rq->payload + sizeof(hc.req), hc.req.len);
    st = hc_dispatch(&hc);
    if (st)
        return st;
    out.result = hc.result;
    out.len = hc.req.len;
    out.sub_len = hc.sub_used;
    memcpy(rs->payload, &out, sizeof(out));
    rs->len = (uint32_t)sizeof(out) + out.len + out.sub_len;
    return 0;
}
