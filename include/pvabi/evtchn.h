/* SPDX-License-Identifier: MIT */
/*
 * pvabi/evtchn.h - event channels: Xen's interdomain notification ports.
 *
 * One end allocates an unbound port offered to a remote domain
 * (pvabi_evtchn_alloc) and publishes its number (normally in xenstore); the
 * remote binds to it (pvabi_evtchn_bind) and gets a port of its own.  Either
 * end then notifies the other; notifications coalesce and carry no data.
 *
 * Delivery follows Xen's model: a port with an event is reported once by
 * pvabi_evtchn_pending() and is then masked (further events are remembered,
 * not reported) until pvabi_evtchn_unmask(); a driver consumes its ring, then
 * unmasks, then checks the ring once more.  Spurious events are possible and
 * harmless; the counters tell how many there were.
 *
 * Thread-safety: pvabi_evtchn_notify() may be called from any thread, also
 * concurrently with the other functions here on the same context (not with
 * the unbind of the same port).  pvabi_evtchn_wait() sleeps without holding
 * the context, so it may run concurrently with any of them.  The other
 * functions serialise on the context.  Blocking: pvabi_evtchn_wait() sleeps
 * up to its timeout; none of the others blocks beyond one round trip to the
 * hypervisor (local: the daemon, 10 s timeout); notify never waits for it.
 * Fork: ports belong to the context's process.
 */
#ifndef PVABI_EVTCHN_H
#define PVABI_EVTCHN_H

#include <stdint.h>

#include <pvabi/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * pvabi_evtchn_alloc() - allocate a port that @remote may bind to.
 * @ctx: the context.
 * @remote: the domain allowed to bind (may be our own domid: loopback).
 * @port: receives the new local port.
 * Returns 0; -ENOSPC (no free port); -ENOTCONN (the hypervisor is gone);
 * -EINVAL (NULL argument).
 */
int pvabi_evtchn_alloc(pvabi_ctx *ctx, pvabi_domid remote, pvabi_port *port);

/**
 * pvabi_evtchn_bind() - bind to @remote's unbound port @remote_port.
 * @port: receives the new local port, connected to @remote_port.
 * A port whose peer closed or died (state CLOSED for its owner) is offered
 * again to the peer's domid, as in Xen: a process of that domain (a backend
 * restarted in the same domain) may bind it, and the owner's port is then
 * INTERDOMAIN again.
 * Returns 0; -EPERM (the port is offered to another domain); -EINVAL (no
 * such port, or not unbound); -ESRCH (no such domain); -ENOSPC; -ENOTCONN.
 * On Xen, -EPERM needs /dev/xen/privcmd and privilege over @remote;
 * otherwise a port offered elsewhere gives -EINVAL.
 */
int pvabi_evtchn_bind(pvabi_ctx *ctx, pvabi_domid remote, pvabi_port remote_port, pvabi_port *port);

/**
 * pvabi_evtchn_notify() - send an event to the other end of @port.
 * Returns 0; -ENOTCONN (the peer closed its end or died; the port stays
 * until unbound) or the port is still unbound; -EBADF (not a port of this
 * context).  Never waits for the hypervisor.  On Xen, a port that is still
 * unbound or whose peer closed returns 0 (Xen drops the event).
 */
int pvabi_evtchn_notify(pvabi_ctx *ctx, pvabi_port port);

/**
 * pvabi_evtchn_pending() - collect ports that received an event.
 * @ports: receives up to @max ports; each is masked once reported.
 * Returns the count (0: none); -ENOTCONN when the hypervisor is gone.
 * Does not block: wait for pvabi_fd() to be readable first, or use
 * pvabi_evtchn_wait(), which sleeps and then collects the same way.  A port
 * whose peer closed or died is reported too (and is then in state CLOSED);
 * on Xen a peer's close raises no event, and CLOSED is seen by
 * pvabi_evtchn_state() only with /dev/xen/privcmd.
 */
int pvabi_evtchn_pending(pvabi_ctx *ctx, pvabi_port *ports, unsigned max);

/**
 * pvabi_evtchn_wait() - wait for ports to receive an event, then collect
 * them as pvabi_evtchn_pending() does.
 * @ctx: the context.
 * @ports: receives up to @max ports; each is masked once reported, and
 *   counted in PVABI_EVTCHN_RECEIVED, exactly as by pvabi_evtchn_pending().
 * @max: room in @ports; at least 1.
 * @timeout_ms: the longest time to sleep, in milliseconds; 0 does not sleep.
 *   There is no "forever": call it again instead.
 *
 * Returns at once when ports are pending; otherwise sleeps until one is, or
 * until @timeout_ms has passed.  A wake-up that brings nothing to report (a
 * spurious event, an event of a masked port, one another thread collected
 * first) does not end the wait.  A masked port is not reported until it is
 * unmasked.  A port whose peer closed or died is reported (and is then in
 * state CLOSED), as by pvabi_evtchn_pending(), so a peer's death ends the
 * wait (not on Xen, where it raises no event); so does the death of the
 * local hypervisor, which reports every port closed.
 *
 * Returns the count (1..@max); 0 when @timeout_ms passed with nothing to
 * report; -EINVAL (NULL @ctx or @ports, @max 0, or @timeout_ms < 0);
 * -EINTR (a signal arrived while sleeping; nothing was collected);
 * -ENOTCONN (the hypervisor is gone and every port was reported closed
 * already); on Xen, another -errno of the evtchn driver (logged).
 *
 * Blocking: up to @timeout_ms (a little more is possible: the wait is
 * rounded up to the clock's millisecond, and the scheduler decides when a
 * woken thread runs).  An alternative to polling pvabi_fd(): on the local
 * platform it costs one system call less per wake-up.
 * Thread-safety: the context is not held while sleeping, so every other
 * call on the context (notify, pending, unmask, bind, grants...) may run
 * meanwhile, and several threads may wait at once: each event is reported
 * to one of them.  A port unbound meanwhile is not reported.  Not
 * concurrent with pvabi_close().
 * Fork: like every call on a context, only in the process that opened it.
 */
int pvabi_evtchn_wait(pvabi_ctx *ctx, pvabi_port *ports, unsigned max, int timeout_ms);

/**
 * pvabi_evtchn_unmask() - let @port report events again; if one arrived
 * while masked, it is reported by the next pvabi_evtchn_pending() (or it
 * ends a pvabi_evtchn_wait(), also one already sleeping).
 * Returns 0; -EBADF.
 */
int pvabi_evtchn_unmask(pvabi_ctx *ctx, pvabi_port port);

/**
 * pvabi_evtchn_unbind() - close @port (allocated or bound); its peer sees
 * it closed.  Returns 0; -EBADF.
 */
int pvabi_evtchn_unbind(pvabi_ctx *ctx, pvabi_port port);

/** Port states, from pvabi_evtchn_state(). */
enum {
    PVABI_EVTCHN_UNBOUND = 1,     /* allocated, waiting for the remote to bind */
    PVABI_EVTCHN_INTERDOMAIN = 2, /* connected */
    PVABI_EVTCHN_CLOSED = 3,      /* the peer closed its end or died; its domid may rebind */
};

/** pvabi_evtchn_state() - a PVABI_EVTCHN_* state, or -EBADF. */
int pvabi_evtchn_state(pvabi_ctx *ctx, pvabi_port port);

/** Counters, for pvabi_evtchn_counter(). */
enum {
    PVABI_EVTCHN_SENT = 0,     /* notifications sent through this port */
    PVABI_EVTCHN_RECEIVED = 1, /* times pending() reported this port */
    PVABI_EVTCHN_SPURIOUS = 2, /* wake-ups for this port that had no event */
};

/**
 * pvabi_evtchn_counter() - read one counter of @port into @value.
 * Returns 0; -EBADF (not a port of this context); -EINVAL (@which).
 */
int pvabi_evtchn_counter(pvabi_ctx *ctx, pvabi_port port, int which, uint64_t *value);

#ifdef __cplusplus
}
#endif

#endif /* PVABI_EVTCHN_H */
