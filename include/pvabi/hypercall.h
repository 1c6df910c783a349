/* SPDX-License-Identifier: MIT */
/*
 * pvabi/hypercall.h - typed hypercall wrappers: what the hypervisor says
 * about itself, the host and its domains.
 *
 * Each wrapper issues one Xen hypercall (or a few), built from Xen's own
 * public argument structs (xen/version.h, xen/sysctl.h, xen/domctl.h,
 * xen/event_channel.h, xen/grant_table.h, xen/memory.h), and copies the
 * answer into a pvabi struct whose fields are documented here, so that a
 * caller needs neither Xen's headers nor its unstable sysctl/domctl ABI.
 * Named pvabi_<thing>_read(): they only ask.
 *
 * Platforms:
 * - xen: through libxencall (/dev/xen/privcmd), with the arguments in
 *   hypercall-safe buffers (xencall_alloc_buffer); Xen's own checks apply:
 *   sysctl and domctl need a privileged domain (dom0), the others may be
 *   asked about the caller's own domain by anyone.  Without privcmd access
 *   (not root) every wrapper returns -EACCES.
 * - local: the pvabi-hv daemon answers the same hypercalls, with the same
 *   argument structs, about the domains that are its connected processes;
 *   docs/hypercall.md says where each number comes from (memory = the pages
 *   a domain shares, cpu time from /proc/PID/stat...).  The privileged
 *   domain and toolstack contexts (PVABI_OPEN_TOOLSTACK) may ask about any
 *   domain; any other domain only about itself.
 *
 * Errors common to every wrapper: -EINVAL (NULL pointer, a domid that is
 * not a real domain id or PVABI_DOMID_SELF, or the hypervisor found the
 * arguments malformed); -EPERM (the platform does not allow this caller to
 * ask: another domain's information without privilege, or a sysctl from an
 * unprivileged domain); -ESRCH (no such domain); -ENOSYS (the hypervisor
 * does not know the hypercall); -EACCES (xen: privcmd not accessible, or
 * the hypervisor's sysctl/domctl interface version differs from the one
 * pvabi was built with - the log says which); -ENOTCONN (local: the daemon
 * is gone); -ENOMEM.  The log says what failed and why.
 *
 * All wrappers block for one round trip to the hypervisor (local: to the
 * daemon, which always answers; no timeout needed beyond the daemon's
 * liveness, which pvabi checks).  Thread-safe: a context serialises them.
 * Fork: as every call on a context, only in the process that opened it.
 *
 * GNTTABOP_copy is pvabi_grant_copy() in pvabi/grant.h.
 */
#ifndef PVABI_HYPERCALL_H
#define PVABI_HYPERCALL_H

#include <stdint.h>

#include <pvabi/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Xen's DOMID_SELF: "the calling domain", accepted wherever a domid is. */
#define PVABI_DOMID_SELF 0x7FF0u

/* ---- __HYPERVISOR_xen_version ------------------------------------------- */

/** What the hypervisor says about itself (XENVER_* sub-ops). */
struct pvabi_xen_version {
    uint32_t major, minor;   /**< XENVER_version: e.g. 4 and 17 */
    char extra[16];          /**< XENVER_extraversion, e.g. ".3" (NUL-terminated) */
    char capabilities[1024]; /**< XENVER_capabilities: space-separated ABIs,
                                 e.g. "xen-3.0-x86_64 hvm-3.0-x86_32" */
    char changeset[64];      /**< XENVER_changeset: the source revision */
    uint32_t features;       /**< XENVER_get_features submap 0: XENFEAT_* bits */
    uint32_t pagesize;       /**< XENVER_pagesize, in bytes */
};

/**
 * pvabi_xen_version_read() - the hypervisor's version, capabilities,
 * changeset, feature bits and page size.  Allowed to every domain.
 * Local: major.minor is pvabi's version, extra "-pvabi", capabilities
 * "pvabi-local-1 <machine>" (docs/hypercall.md).
 * Returns 0, or a common error (above).
 */
int pvabi_xen_version_read(pvabi_ctx *ctx, struct pvabi_xen_version *out);

/* ---- sysctl physinfo ------------------------------------------------------ */

/** XEN_SYSCTL_PHYSCAP_* bits of struct pvabi_physinfo.capabilities. */
#define PVABI_PHYSCAP_HVM       (1u << 0)
#define PVABI_PHYSCAP_PV        (1u << 1)
#define PVABI_PHYSCAP_DIRECTIO  (1u << 2)
#define PVABI_PHYSCAP_HAP       (1u << 3)
#define PVABI_PHYSCAP_SHADOW    (1u << 4)
#define PVABI_PHYSCAP_GNTTAB_V1 (1u << 8)
#define PVABI_PHYSCAP_GNTTAB_V2 (1u << 9)

/** The host, as XEN_SYSCTL_physinfo reports it. */
struct pvabi_physinfo {
    uint32_t nr_cpus;           /**< CPUs online */
    uint32_t max_cpu_id;        /**< largest possible CPU id */
    uint32_t nr_nodes;          /**< NUMA nodes online */
    uint32_t max_node_id;       /**< largest possible node id */
    uint32_t threads_per_core;  /**< 0 where unknown */
    uint32_t cores_per_socket;  /**< 0 where unknown */
    uint32_t cpu_khz;           /**< CPU clock, kHz; 0 where unknown */
    uint32_t capabilities;      /**< PVABI_PHYSCAP_* */
    uint64_t total_pages;       /**< host memory, in pages of @page_size */
    uint64_t free_pages;        /**< memory not given to any domain */
    uint64_t scrub_pages;       /**< freed, not yet scrubbed */
    uint64_t outstanding_pages; /**< claimed by domains being built */
    uint32_t hw_cap[8];         /**< x86: CPUID feature words */
    uint32_t page_size;         /**< bytes per page of the *_pages fields */
};

/**
 * pvabi_physinfo_read() - CPUs and memory of the host.  A sysctl: needs a
 * privileged domain or a toolstack context (-EPERM otherwise).
 * Local: the Linux host's (sysconf, sysinfo, /proc/cpuinfo); free_pages
 * is the host's free memory.
 */
int pvabi_physinfo_read(pvabi_ctx *ctx, struct pvabi_physinfo *out);

/* ---- domains ------------------------------------------------------------- */

/** XEN_DOMINF_* bits of struct pvabi_domain_info.flags. */
#define PVABI_DOMINF_DYING     (1u << 0) /**< being destroyed */
#define PVABI_DOMINF_HVM       (1u << 1) /**< an HVM guest */
#define PVABI_DOMINF_SHUTDOWN  (1u << 2) /**< the guest shut down: see shutdown_reason */
#define PVABI_DOMINF_PAUSED    (1u << 3) /**< paused by the toolstack */
#define PVABI_DOMINF_BLOCKED   (1u << 4) /**< waiting for an event */
#define PVABI_DOMINF_RUNNING   (1u << 5) /**< running on a CPU now */
#define PVABI_DOMINF_DEBUGGED  (1u << 6)
#define PVABI_DOMINF_XS_DOMAIN (1u << 7) /**< the xenstore domain */
#define PVABI_DOMINF_HAP       (1u << 8)

/** One domain, as XEN_DOMCTL_getdomaininfo reports it. */
struct pvabi_domain_info {
    pvabi_domid domid;
    uint32_t flags;             /**< PVABI_DOMINF_* */
    uint32_t shutdown_reason;   /**< SHUTDOWN_* code, when PVABI_DOMINF_SHUTDOWN */
    uint64_t tot_pages;         /**< memory it holds, in 4 KiB pages */
    uint64_t max_pages;         /**< its limit */
    uint64_t outstanding_pages; /**< claimed, not yet allocated */
    uint64_t shr_pages;         /**< shared with other domains (page sharing) */
    uint64_t cpu_time_ns;       /**< CPU time consumed, all vCPUs */
    uint32_t nr_online_vcpus;
    uint32_t max_vcpu_id; /**< UINT32_MAX if it has no vCPU */
    uint32_t ssidref;     /**< XSM label */
    uint32_t cpupool;
    uint8_t handle[16]; /**< the toolstack's UUID for it */
    char name[64];      /**< /local/domain/<domid>/name in the store,
                                      "" where absent or unreadable */
};

/**
 * pvabi_domain_read() - one domain.  @domid: a domain id or PVABI_DOMID_SELF.
 * A domctl: on Xen only a privileged domain may ask (even about itself, by
 * Xen's XSM policy); locally a domain may ask about itself.  -ESRCH if there
 * is no such domain.  The name is read from the store, at one more round
 * trip; a store that cannot be reached leaves it "".
 */
int pvabi_domain_read(pvabi_ctx *ctx, pvabi_domid domid, struct pvabi_domain_info *out);

/**
 * pvabi_domain_list() - the domains with an id >= @first, in ascending
 * order, at most @max of them into @out (XEN_SYSCTL_getdomaininfolist).
 * Returns how many were written (0: none left; to page, call again with
 * @first = last domid + 1); -EINVAL if @max is 0 or above 4096; -EPERM
 * without privilege (a sysctl); -EPROTO if the hypervisor's answer is out
 * of order or larger than asked (logged).  Names as pvabi_domain_read().
 */
int pvabi_domain_list(pvabi_ctx *ctx, pvabi_domid first, struct pvabi_domain_info *out,
                      unsigned max);

/* ---- EVTCHNOP_status ----------------------------------------------------- */

/** Xen's EVTCHNSTAT_* values of struct pvabi_evtchn_status.status. */
#define PVABI_EVTCHNSTAT_CLOSED      0 /**< free: not in use */
#define PVABI_EVTCHNSTAT_UNBOUND     1 /**< offered to remote_dom */
#define PVABI_EVTCHNSTAT_INTERDOMAIN 2 /**< connected to remote_dom's remote_port */
#define PVABI_EVTCHNSTAT_PIRQ        3
#define PVABI_EVTCHNSTAT_VIRQ        4
#define PVABI_EVTCHNSTAT_IPI         5

/** One port of one domain, as EVTCHNOP_status reports it. */
struct pvabi_evtchn_status {
    pvabi_domid dom; /**< whose port (PVABI_DOMID_SELF resolved) */
    pvabi_port port;
    uint32_t status;        /**< PVABI_EVTCHNSTAT_* */
    uint32_t vcpu;          /**< the vCPU it notifies */
    pvabi_domid remote_dom; /**< UNBOUND, INTERDOMAIN; else 0 */
    pvabi_port remote_port; /**< INTERDOMAIN; else 0 */
    uint32_t pirq;          /**< PIRQ; else 0 */
    uint32_t virq;          /**< VIRQ; else 0 */
};

/**
 * pvabi_evtchn_status_read() - the state of @dom's @port, whoever holds it
 * (pvabi_evtchn_state() is this context's own view of its own ports).
 * Another domain's port needs privilege (-EPERM).  -EINVAL for a port
 * beyond those @dom has: to walk a domain's ports, count up from 1 until
 * -EINVAL (CLOSED ones are free slots; port 0 is reserved and CLOSED).  A port whose peer went away is
 * UNBOUND, offered to that peer again (Xen's rebind).
 */
int pvabi_evtchn_status_read(pvabi_ctx *ctx, pvabi_domid dom, pvabi_port port,
                             struct pvabi_evtchn_status *out);

/* ---- GNTTABOP_query_size ------------------------------------------------- */

/** A domain's grant table size, in frames of 512 v1 entries. */
struct pvabi_gnttab_size {
    pvabi_domid dom;
    uint32_t nr_frames;     /**< frames in use now */
    uint32_t max_nr_frames; /**< the most it may grow to */
};

/**
 * pvabi_gnttab_size_read() - GNTTABOP_query_size for @dom (or
 * PVABI_DOMID_SELF).  Another domain needs privilege.  Xen's GNTST_*
 * status comes back as -errno (GNTST_bad_domain: -ESRCH; GNTST_permission_denied:
 * -EPERM; others -EINVAL).
 */
int pvabi_gnttab_size_read(pvabi_ctx *ctx, pvabi_domid dom, struct pvabi_gnttab_size *out);

/* ---- XENMEM reservation queries ------------------------------------------ */

/** A domain's memory reservation, in 4 KiB pages. */
struct pvabi_memory {
    pvabi_domid dom;
    uint64_t current_pages; /**< XENMEM_current_reservation */
    uint64_t maximum_pages; /**< XENMEM_maximum_reservation */
};

/**
 * pvabi_memory_read() - XENMEM_current_reservation and
 * XENMEM_maximum_reservation of @dom (or PVABI_DOMID_SELF).  Another
 * domain needs privilege.  Local: current = the pages the domain shares.
 */
int pvabi_memory_read(pvabi_ctx *ctx, pvabi_domid dom, struct pvabi_memory *out);

#ifdef __cplusplus
}
#endif

#endif /* PVABI_HYPERCALL_H */
