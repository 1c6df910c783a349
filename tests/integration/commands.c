/* SPDX-License-Identifier: MIT */
/*
 * Typed commands of the coordinator: one call per agent command, returning
 * what the pvabi call in the agent returned (see harness.h).
 */
#include <stdio.h>
#include <string.h>

#include "harness.h"

static struct it_msg cmd(uint32_t op, int64_t a0, int64_t a1, int64_t a2, int64_t a3)
{
    struct it_msg m;

    memset(&m, 0, sizeof(m));
    m.op = op;
    m.a[0] = a0;
    m.a[1] = a1;
    m.a[2] = a2;
    m.a[3] = a3;
    return m;
}

int it_share(struct it_agent *a, pvabi_domid to, unsigned count, unsigned flags, unsigned *slot,
             pvabi_gref *refs)
{
    struct it_msg m = cmd(IT_OP_SHARE, to, count, flags, 0);
    int rc = it_agent_call(a, &m);

    if (rc < 0)
        return rc;
    *slot = (unsigned)m.a[0];
    for (unsigned i = 0; i < m.n && refs; i++)
        refs[i] = (pvabi_gref)m.v[i];
    return rc;
}

int it_revoke(struct it_agent *a, unsigned slot)
{
    struct it_msg m = cmd(IT_OP_REVOKE, slot, 0, 0, 0);
    return it_agent_call(a, &m);
}

int it_grant_notify(struct it_agent *a, unsigned slot, unsigned page, unsigned offset,
                    pvabi_port port)
{
    struct it_msg m = cmd(IT_OP_GRANT_NOTIFY, slot, page, offset, port);
    return it_agent_call(a, &m);
}

int it_map(struct it_agent *a, pvabi_domid from, const pvabi_gref *refs, unsigned count,
           unsigned flags, int *status, unsigned *slot)
{
    struct it_msg m = cmd(IT_OP_MAP, from, count, flags, 0);
    int rc;

    if (count > IT_VALS)
        it_fail("it_map: %u refs", count);
    for (unsigned i = 0; i < count; i++)
        m.v[i] = refs[i];
    m.n = count;
    rc = it_agent_call(a, &m);
    for (unsigned i = 0; i < count && status; i++)
        status[i] = (int)m.v[i];
    if (slot)
        *slot = (unsigned)m.a[0];
    return rc;
}

int it_unmap(struct it_agent *a, unsigned slot)
{
    struct it_msg m = cmd(IT_OP_UNMAP, slot, 0, 0, 0);
    return it_agent_call(a, &m);
}

int it_map_notify(struct it_agent *a, unsigned slot, unsigned page, unsigned offset,
                  pvabi_port port)
{
    struct it_msg m = cmd(IT_OP_MAP_NOTIFY, slot, page, offset, port);
    return it_agent_call(a, &m);
}

int it_fill(struct it_agent *a, int kind, unsigned slot, size_t offset, size_t len, unsigned seed)
{
    struct it_msg m = cmd(IT_OP_FILL, kind, slot, (int64_t)offset, (int64_t)len);

    m.a[4] = seed;
    return it_agent_call(a, &m);
}

int it_check(struct it_agent *a, int kind, unsigned slot, size_t offset, size_t len, unsigned seed)
{
    struct it_msg m = cmd(IT_OP_CHECK, kind, slot, (int64_t)offset, (int64_t)len);
    int rc;

    m.a[4] = seed;
    rc = it_agent_call(a, &m);
    if (rc < 0)
        fprintf(stderr, "agent %s: byte %lld is %#llx, not the pattern's %#x\n", a->name,
                (long long)m.a[0], (long long)m.a[1], it_pattern(seed, (size_t)m.a[0]));
    return rc;
}

int it_peek(struct it_agent *a, int kind, unsigned slot, size_t offset)
{
    struct it_msg m = cmd(IT_OP_PEEK, kind, slot, (int64_t)offset, 0);
    int rc = it_agent_call(a, &m);

    return rc < 0 ? rc : (int)m.a[0];
}

int it_alloc(struct it_agent *a, pvabi_domid remote, pvabi_port *port)
{
    struct it_msg m = cmd(IT_OP_ALLOC, remote, 0, 0, 0);
    int rc = it_agent_call(a, &m);

    *port = (pvabi_port)m.a[0];
    return rc;
}

int it_bind(struct it_agent *a, pvabi_domid remote, pvabi_port remote_port, pvabi_port *port)
{
    struct it_msg m = cmd(IT_OP_BIND, remote, remote_port, 0, 0);
    int rc = it_agent_call(a, &m);

    *port = (pvabi_port)m.a[0];
    return rc;
}

static int port_cmd(struct it_agent *a, uint32_t op, pvabi_port port)
{
    struct it_msg m = cmd(op, port, 0, 0, 0);
    return it_agent_call(a, &m);
}

int it_unbind(struct it_agent *a, pvabi_port port)
{
    return port_cmd(a, IT_OP_UNBIND, port);
}

int it_notify(struct it_agent *a, pvabi_port port)
{
    return port_cmd(a, IT_OP_NOTIFY, port);
}

int it_wait(struct it_agent *a, pvabi_port port)
{
    return port_cmd(a, IT_OP_WAIT, port);
}

int it_unmask(struct it_agent *a, pvabi_port port)
{
    return port_cmd(a, IT_OP_UNMASK, port);
}

int it_state(struct it_agent *a, pvabi_port port)
{
    return port_cmd(a, IT_OP_STATE, port);
}

int it_pending(struct it_agent *a, pvabi_port *ports, unsigned max)
{
    struct it_msg m = cmd(IT_OP_PENDING, 0, 0, 0, 0);
    int rc = it_agent_call(a, &m);

    for (unsigned i = 0; i < m.n && i < max; i++)
        ports[i] = (pvabi_port)m.v[i];
    return rc;
}

int it_evtchn_wait(struct it_agent *a, pvabi_port *ports, unsigned max, int timeout_ms)
{
    struct it_msg m = cmd(IT_OP_EVTCHN_WAIT, max, timeout_ms, 0, 0);
    int rc = it_agent_call(a, &m);

    for (unsigned i = 0; i < m.n && i < max; i++)
        ports[i] = (pvabi_port)m.v[i];
    return rc;
}

int it_poll_fd(struct it_agent *a, int timeout_ms)
{
    struct it_msg m = cmd(IT_OP_POLL_FD, timeout_ms, 0, 0, 0);
    int rc = it_agent_call(a, &m);

    return rc < 0 ? rc : (int)m.a[0];
}

int it_counters(struct it_agent *a, pvabi_port port, uint64_t c[3])
{
    struct it_msg m = cmd(IT_OP_COUNTERS, port, 0, 0, 0);
    int rc = it_agent_call(a, &m);

    for (int i = 0; i < 3; i++)
        c[i] = (uint64_t)m.a[i];
    return rc;
}

int it_counters_zero(struct it_agent *a, pvabi_port port)
{
    struct it_msg m = cmd(IT_OP_COUNTERS, port, 1, 0, 0);

    return it_agent_call(a, &m);
}

int it_close_ctx(struct it_agent *a)
{
    struct it_msg m = cmd(IT_OP_CLOSE, 0, 0, 0, 0);
    return it_agent_call(a, &m);
}

long it_agent_fd_count(struct it_agent *a)
{
    struct it_msg m = cmd(IT_OP_FD_COUNT, 0, 0, 0, 0);

    it_agent_call(a, &m);
    return (long)m.a[0];
}

int it_copy(struct it_agent *a, const struct it_seg *segs, unsigned n, int *status,
            uint64_t *bad_data)
{
    struct it_msg m = cmd(IT_OP_COPY, 0, 0, 0, 0);
    int rc;

    if (n * IT_SEG_VALS > IT_VALS)
        it_fail("it_copy: %u segments", n);
    for (unsigned i = 0; i < n; i++) {
        int64_t *v = &m.v[i * IT_SEG_VALS];
        v[0] = segs[i].ref;
        v[1] = segs[i].domid;
        v[2] = segs[i].offset;
        v[3] = segs[i].len;
        v[4] = segs[i].to_foreign;
        v[5] = segs[i].seed;
        v[6] = (int64_t)segs[i].base;
    }
    m.n = n;
    rc = it_agent_call(a, &m);
    for (unsigned i = 0; i < n; i++)
        status[i] = (int)m.v[i];
    *bad_data = (uint64_t)m.a[0];
    return rc;
}

/* Takes the event on @port of @x that @why says must come, and unmasks. */
static void take_event(struct it_agent *x, pvabi_port port, const char *why)
{
    int rc = it_wait(x, port);

    if (rc == 0)
        rc = it_unmask(x, port);
    if (rc < 0)
        it_fail("%s: %s (port %u) did not come: %d", x->name, why, port, rc);
}

/*
 * On Xen, a connected channel is made quiet and known to both ends, as a
 * driver's handshake would: Xen makes the binder's port pending at bind
 * (that event is taken), and the allocating end can only tell "closed" from
 * "never connected" if it saw an event from its peer (one is sent).  The
 * counters then start from zero, so tests count the same on both platforms.
 */
static void xen_handshake(struct it_agent *a, struct it_agent *b, pvabi_port pa, pvabi_port pb)
{
    take_event(b, pb, "the event Xen raises on bind");
    if (it_notify(b, pb) < 0)
        it_fail("%s: notify(port %u) failed", b->name, pb);
    take_event(a, pa, "the binder's first notify");
    if (it_counters_zero(a, pa) < 0 || it_counters_zero(b, pb) < 0)
        it_fail("cannot zero the counters of ports %u and %u", pa, pb);
}

void it_connect(struct it_agent *a, struct it_agent *b, pvabi_port *pa, pvabi_port *pb)
{
    int rc = it_alloc(a, b->domid, pa);

    if (rc < 0)
        it_fail("%s: pvabi_evtchn_alloc(remote %u) = %d", a->name, b->domid, rc);
    rc = it_bind(b, a->domid, *pa, pb);
    if (rc < 0)
        it_fail("%s: pvabi_evtchn_bind(%u, port %u) = %d", b->name, a->domid, *pa, rc);
    if (it_is_xen())
        xen_handshake(a, b, *pa, *pb);
}
