/* SPDX-License-Identifier: MIT */
/*
 * The embedded hypervisor's wire protocol: between libpvabi (the `local`
 * platform client) and the pvabi-hv daemon.  Internal: only
 * src/platform/local/ and tools/pvabi-hv/ include it.
 *
 * Transport: one AF_UNIX SOCK_SEQPACKET connection per domain (one process =
 * one domain).  A message is one packet: a struct hv_hdr, then `len` payload
 * bytes; file descriptors travel as SCM_RIGHTS on the same packet.  The
 * client sends requests and waits for the reply with the same `seq` (none
 * comes for a request flagged HV_F_NOREPLY); the daemon may send notices
 * (seq 0, HV_F_NOTICE) at any time, before or between replies, which the
 * client applies to its state and keeps waiting.  The daemon handles one
 * connection's requests in the order sent.
 *
 * Everything is host-endian (both ends are on one host).  The daemon checks
 * every length, count and fd against what the op allows; anything else gets a
 * reply with status -EINVAL (or -EPROTO for a malformed header; no reply but
 * a log line under HV_F_NOREPLY) and its fds closed; a packet too large or a
 * header it cannot parse closes the connection.
 */
#ifndef PVABI_LOCAL_PROTO_H
#define PVABI_LOCAL_PROTO_H

#include <stdint.h>

#define HV_PROTO_VERSION 1
#define HV_MAGIC         0x70766876u /* "pvhv" */

/* pvabi-hv's exit status when another daemon owns (or is starting on) the
 * socket: the library then waits for that daemon instead of failing. */
#define HV_EXIT_TAKEN 3

/* Largest packet either side sends or accepts, header included. */
#define HV_MSG_MAX 8192
/* Most fds on one packet (below the kernel's SCM_MAX_FD of 253). */
#define HV_FDS_MAX 128
/* Most refs in one GRANT_SHARE / GRANT_MAP / GRANT_UNMAP / GRANT_REVOKE. */
#define HV_REFS_MAX 128
/* Per-domain limits; exceeding one gives -ENOSPC. */
#define HV_PORTS_MAX  4096 /* ports 1..4095; port 0 is never valid, as in Xen */
#define HV_GRANTS_MAX 8192 /* refs 8..8191; 0..7 are reserved, as in Xen */
#define HV_FIRST_GREF 8
#define HV_PAGE_SIZE  4096

enum hv_op {
    HV_OP_HELLO = 1,        /* first message: claims a domain */
    HV_OP_EVTCHN_ALLOC = 2, /* allocate an unbound port for a remote domain */
    HV_OP_EVTCHN_BIND = 3,  /* bind to a remote domain's unbound port */
    HV_OP_EVTCHN_CLOSE = 4, /* close a port (either kind) */
    HV_OP_GRANT_SHARE = 5,  /* grant the pages of a memfd to a domain */
    HV_OP_GRANT_REVOKE = 6, /* end a share; -EBUSY while mapped */
    HV_OP_GRANT_MAP = 7,    /* get the memory behind refs of a domain */
    HV_OP_GRANT_UNMAP = 8,  /* the mapper is done with refs */
    HV_OP_UNMAP_NOTIFY = 9, /* register/clear an unmap-notify action */
    HV_OP_PING = 10,        /* no-op round trip (tests, liveness) */
    HV_OP_HYPERCALL = 11,   /* a Xen hypercall, with Xen's argument struct */
    HV_OP_GRANT_LIST = 12,  /* a domain's grant table, for introspection */
    /* notices, daemon -> client */
    HV_NOTICE_PORT_CONNECTED = 100, /* a peer bound to our unbound port */
    HV_NOTICE_PORT_CLOSED = 101,    /* the peer closed its end, or died */
};

enum hv_flags {
    HV_F_REPLY = 1u << 0,
    HV_F_NOTICE = 1u << 1,
    /* Request: send no reply, whatever the outcome; a refusal or failure is
     * only logged by the daemon (at warn level).  Accepted on the ops whose
     * reply carries nothing but a status (EVTCHN_CLOSE, GRANT_REVOKE,
     * GRANT_UNMAP, UNMAP_NOTIFY, PING); on the others the request is refused
     * unexecuted (-EINVAL, logged), since what it hands out would be lost.
     * The library sends GRANT_UNMAP this way: the daemon handles a
     * connection's requests in order, so the domain's next request still
     * comes after it, and before the daemon refuses another domain because
     * of a mapping (GRANT_REVOKE's -EBUSY) it first handles what the mapping
     * domains have already sent (docs/hv.md, "Draining before refusing"). */
    HV_F_NOREPLY = 1u << 2,
};

struct hv_hdr {
    uint32_t magic; /* HV_MAGIC */
    uint16_t op;    /* enum hv_op; a reply repeats the request's op */
    uint16_t flags; /* enum hv_flags; requests: 0 or HV_F_NOREPLY */
    uint32_t seq;   /* request number chosen by the client; 0 for notices */
    int32_t status; /* replies: 0 or a negative errno; requests: 0 */
    uint32_t len;   /* payload bytes after the header */
    uint32_t nfds;  /* fds the sender attached (SCM_RIGHTS), for checking */
};

/* HELLO want_domid for a toolstack connection (PVABI_OPEN_TOOLSTACK): not a
 * domain (no domid of its own, in no list), privileged for HYPERCALL and
 * GRANT_LIST, refused (-EPERM) every op that needs a domain (EVTCHN_*,
 * GRANT_*, UNMAP_NOTIFY).  Only for an allowed uid (-EPERM otherwise).  The
 * reply's domid is the privileged domid, privileged 1. */
#define HV_WANT_TOOLSTACK (-2)

/* HELLO: want_domid -1 for "any unprivileged domid".  Asking for the
 * privileged domid (0 unless the daemon was started with another) succeeds
 * only for a peer uid the daemon allows (SO_PEERCRED) and only while no live
 * domain holds it; -EPERM / -EADDRINUSE otherwise. */
struct hv_hello_req {
    uint32_t version; /* HV_PROTO_VERSION; anything else: -EPROTONOSUPPORT */
    int32_t want_domid;
};
struct hv_hello_rsp {
    uint32_t version;
    uint32_t domid;
    uint32_t privileged; /* 1 if this domain is the privileged one */
    uint32_t pad;
};

/* EVTCHN_ALLOC: reply carries 1 fd: the eventfd this domain reads for the
 * port.  When the remote binds, a PORT_CONNECTED notice brings the eventfd to
 * write to notify the remote. */
struct hv_evtchn_alloc_req {
    uint32_t remote_domid;
};
struct hv_evtchn_alloc_rsp {
    uint32_t port;
};

/* EVTCHN_BIND: remote_port must be unbound and offered to this domain
 * (-EPERM if offered to another domain, -EINVAL if not unbound or no such
 * port, -ESRCH if no such live domain).  Reply carries 2 fds: [0] the eventfd
 * this domain reads, [1] the eventfd to write to notify the remote. */
struct hv_evtchn_bind_req {
    uint32_t remote_domid;
    uint32_t remote_port;
};
struct hv_evtchn_bind_rsp {
    uint32_t port;
};

/* EVTCHN_CLOSE: the peer (if connected) gets PORT_CLOSED and a wake-up. */
struct hv_evtchn_close_req {
    uint32_t port;
};

/* GRANT_SHARE: 1 fd attached: a memfd of exactly count pages, opened
 * read-write, sealed with F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL (-EINVAL
 * otherwise), so that no mapper can truncate it under the sharer.  Reply:
 * count refs, page i of the memfd is refs[i].  A read-only grant hands out a
 * read-only descriptor, but anyone can reopen that read-write through
 * /proc/PID/fd; for the kernel to enforce read-only, also seal the memfd
 * F_SEAL_FUTURE_WRITE (after mapping it writable yourself), which only a
 * read-only grant accepts. */
struct hv_grant_share_req {
    uint32_t domid; /* the domain allowed to map */
    uint32_t count; /* 1..HV_REFS_MAX */
    uint32_t readonly;
    uint32_t pad;
};
struct hv_grant_share_rsp {
    uint32_t count;
    uint32_t refs[]; /* count entries */
};

/* GRANT_REVOKE: all-or-nothing: -EBUSY (nothing changed) if any ref is
 * mapped by its grantee; -EINVAL if any ref is not a live grant of ours. */
struct hv_grant_refs_req {
    uint32_t domid; /* REVOKE: ignored; MAP/UNMAP: the granting domain */
    uint32_t count;
    uint32_t readonly; /* MAP only: map read-only */
    uint32_t pad;
    uint32_t refs[]; /* count entries */
};

/* GRANT_MAP: all-or-nothing.  Reply always carries count statuses (0 or a
 * negative errno per ref: -EPERM not granted to us or read-only grant mapped
 * writable, -ENOENT no such/revoked ref, -ESRCH no such domain; the header's
 * status is the first failing one); on success also nfds fds (the distinct
 * memfds, read-only descriptors for read-only maps) and, per ref, which fd
 * and which page of it.  A malformed request gets -EINVAL and no payload. */
struct hv_grant_map_slot {
    int32_t status;
    uint16_t fd_index;
    uint16_t pad;
    uint32_t page; /* page offset in that memfd */
};
struct hv_grant_map_rsp {
    uint32_t count;
    uint32_t nfds;
    struct hv_grant_map_slot slot[]; /* count entries */
};

/* UNMAP_NOTIFY: when the mapping of (domid, ref) by this domain ends without
 * GRANT_UNMAP (the process died), or when the share of ref by this domain
 * ends because this sharer died, the daemon clears the byte at `offset` of
 * that page (if offset < HV_PAGE_SIZE) and/or notifies through `port` (if not
 * 0; a port of this domain).  For a sharer, domid is its own.  Registering
 * again replaces; offset HV_PAGE_SIZE and port 0 clears.  -EINVAL if the ref
 * is not mapped (or shared) by us, offset > HV_PAGE_SIZE or port is not ours;
 * -EPERM to clear a byte of a read-only grant (mapper) or of a write-sealed
 * memfd (sharer). */
struct hv_unmap_notify_req {
    uint32_t domid;
    uint32_t ref;
    uint32_t offset;
    uint32_t port;
};

/* Notices. PORT_CONNECTED carries 1 fd: the eventfd to write to notify the
 * remote; it is sent before the reply to the binder, so it waits on the
 * allocator's socket by the time anyone can know of the bind (the client
 * looks there when notify or state finds the port still unbound).
 * PORT_CLOSED: the port's peer is gone; the daemon also wrote the port's
 * eventfd so a sleeping domain wakes, after queueing the notice (a
 * domain woken by the eventfd finds the notice waiting).  The port stays
 * allocated, and cannot be bound again, until its owner closes it. */
struct hv_port_notice {
    uint32_t port;
    uint32_t remote_domid;
    uint32_t remote_port;
    uint32_t pad;
};

/* HYPERCALL: one Xen hypercall.  Payload: struct hv_hypercall_req, then
 * `len` bytes: the argument struct, exactly as Xen's public header lays it
 * out (the daemon is built against the same headers as the library).  The
 * daemon knows these (anything else: -ENOSYS, as Xen for an unknown
 * hypercall or sub-op):
 *   __HYPERVISOR_xen_version: XENVER_version (len 0), _extraversion,
 *     _capabilities, _changeset, _get_features, _pagesize;
 *   __HYPERVISOR_sysctl: struct xen_sysctl, cmd physinfo or
 *     getdomaininfolist (whose buffer is the reply's sub part: sub_len is the
 *     room the caller has, a multiple of sizeof(xen_domctl_getdomaininfo_t);
 *     the guest handle in the struct is ignored);
 *   __HYPERVISOR_domctl: struct xen_domctl, cmd getdomaininfo;
 *   __HYPERVISOR_event_channel_op: EVTCHNOP_status;
 *   __HYPERVISOR_grant_table_op: GNTTABOP_query_size, count 1;
 *   __HYPERVISOR_memory_op: XENMEM_current_reservation,
 *     XENMEM_maximum_reservation (arg: a domid_t).
 * A len other than the sub-op's struct size: -EINVAL (-EFAULT is what Xen
 * would say, but there is no guest memory to fault on); a sysctl/domctl
 * interface_version other than the daemon's: -EACCES, as Xen.  Privilege
 * as Xen's default XSM policy (docs/hypercall.md).  Reply: on success (the
 * header's status 0) struct hv_hypercall_rsp, then `len` bytes of the
 * argument struct as the hypercall left it, then `sub_len` bytes of the sub
 * buffer (the reply's sub_len: the part the hypercall wrote, at most the
 * request's); on failure (status -errno) no payload. */
struct hv_hypercall_req {
    uint32_t nr;
    uint32_t cmd;
    uint32_t count;
    uint32_t len;
    uint32_t sub_len; /* sysctl getdomaininfolist only; 0 otherwise */
    uint32_t pad;
};
struct hv_hypercall_rsp {
    int64_t result; /* the hypercall's non-negative return value */
    uint32_t len;
    uint32_t sub_len;
};

/* GRANT_LIST: `granter`'s (DOMID_SELF allowed) live grants (and, for a dying granter, the ones
 * still mapped) with ref >= first, ascending, at most max (1..
 * HV_GRANT_LIST_MAX).  Another domain's grants need privilege (-EPERM);
 * -ESRCH if no domain (live or zombie) has that domid. */
#define HV_GRANT_LIST_MAX 256
struct hv_grant_list_req {
    uint32_t granter;
    uint32_t first;
    uint32_t max;
    uint32_t pad;
};
struct hv_grant_list_entry {
    uint16_t granter;
    uint16_t grantee;
    uint32_t ref;
    uint32_t flags; /* bit 0: read-only */
    uint32_t maps;
    uint32_t dying; /* 1: the granter is a zombie */
};
struct hv_grant_list_rsp {
    uint32_t count;
    uint32_t pad;
    struct hv_grant_list_entry e[]; /* count entries */
};

#endif /* PVABI_LOCAL_PROTO_H */
