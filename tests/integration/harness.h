/* SPDX-License-Identifier: MIT */
/*
 * The integration harness: several processes, each its own domain, driven
 * by one coordinator.  Used by tests/integration/ and bench/.
 *
 * The coordinator (the test process) never opens a pvabi context: on the
 * local platform that would make it a domain too.  It starts "agents", forked
 * children that each open their own context and then execute one command at
 * a time from the coordinator (share, map, fill, notify, wait, ...) and
 * answer with a structured reply over a SOCK_SEQPACKET socketpair.  A test
 * body is thus a plain sequence of calls in one process, where the test
 * framework's assertions work, and killing a side "at a point" is killing
 * an agent between two commands.
 *
 * Platforms: PVABI_TEST_PLATFORM=local (default) or xen.  On local, each
 * test gets a private pvabi-hv daemon in a temporary directory, and agents
 * find it through PVABI_LOCAL_SOCKET (autostart off).  On xen there is no
 * daemon; a missing Xen skips the program (exit 77).
 *
 * Every wait has a deadline (IT_TIMEOUT_MS without progress) and nothing
 * sleeps to wait for another process: replies, deaths (pidfd) and events
 * (pvabi_fd) are all polled.  Any harness failure goes through it_fail(),
 * which the test programs route to the test framework.
 *
 * Remote agents (remote.c): with PVABI_TEST_REMOTE=ADDR:PORT, the agents
 * named in PVABI_TEST_REMOTE_AGENTS (a comma-separated list) run on another
 * machine or domain, in an it_agent_server listening there, while the test
 * bodies stay the same.  The forked child of such an agent is a proxy that
 * relays its messages over TCP and ends exactly as the remote agent ended,
 * so pids, pidfds, sockets and wait statuses mean what they mean locally;
 * it_agent_kill() asks the server to kill and reap the remote agent before
 * it returns.  PVABI_TEST_REMOTE=spawn makes it_setup() start a private
 * server on 127.0.0.1 ($PVABI_IT_AGENT_SERVER), to test this anywhere.
 */
#ifndef PVABI_IT_HARNESS_H
#define PVABI_IT_HARNESS_H

#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <pvabi/pvabi.h>

/* Longest wait for any one step (a reply, a death, an event). */
#define IT_TIMEOUT_MS 30000
/* Values in one message: enough for a full grant batch. */
#define IT_VALS 128

/* ---- failure reporting ---------------------------------------------- */

/* Called with a formatted message on any harness failure; must not return
 * (a test framework's fail, or print + exit). */
typedef void it_fail_fn(const char *file, int line, const char *msg);
void it_set_fail_hook(it_fail_fn *fn);
void it_fail_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
#define it_fail(...) it_fail_at(__FILE__, __LINE__, __VA_ARGS__)

/* ---- platform and daemon ----------------------------------------------- */

/* 1 when PVABI_TEST_PLATFORM=xen. */
int it_is_xen(void);
/* "local" or "xen": the spec agents pass to pvabi_open(). */
const char *it_platform(void);

/*
 * Where Xen's event channels differ from the local platform's (tested both
 * ways; docs/xen-platform.md): Xen raises an event on the binder's port at
 * bind, none when the peer unbinds, closes or dies (its state says CLOSED),
 * and drops a notify on a port that is unbound or closed instead of failing
 * it with -ENOTCONN.
 */
static inline int it_bind_raises_event(void)
{
    return it_is_xen();
}
static inline int it_peer_close_raises_event(void)
{
    return !it_is_xen();
}
static inline int it_notify_unconnected_rc(void)
{
    return it_is_xen() ? 0 : -ENOTCONN;
}

/* Exits 77 with a reason when the platform is not usable at all (xen: no
 * Xen here, or pvabi built without it); call once at the start of main. */
void it_require_platform(const char *prog);

struct it_daemon {
    pid_t pid; /* 0: none (xen) */
    int pidfd;
    char dir[64];
    char sock[128];
};

/* Starts a private pvabi-hv (local only; a no-op on xen) and points this
 * process's environment at it, so agents forked later use it.  The daemon
 * binary is $PVABI_HV.  Returns 0 or a negative errno (after it_fail). */
int it_daemon_start(struct it_daemon *d);
/* Fails the test if the daemon died during it; then stops it (SIGTERM) and
 * checks that it exited cleanly (a sanitizer report is a failure). */
void it_daemon_stop(struct it_daemon *d);
/* Open descriptors and VmRSS (KiB) of the daemon; -1 on xen or error. */
long it_daemon_fd_count(const struct it_daemon *d);
long it_daemon_rss_kib(const struct it_daemon *d);
/* Open descriptors of this process. */
long it_self_fd_count(void);

/* cmocka-style setup/teardown pair using one static daemon per test. */
int it_setup(void **state);
int it_teardown(void **state);
struct it_daemon *it_current_daemon(void);

/* ---- messages --------------------------------------------------------- */

enum it_op {
    IT_OP_HELLO = 1,    /* agent -> coordinator after pvabi_open: a[0] domid */
    IT_OP_FAILED,       /* agent -> coordinator: text says what went wrong */
    IT_OP_PROGRESS,     /* agent -> coordinator during a long command */
    IT_OP_EXIT,         /* a[0] 1: pvabi_close first; then _exit(0) */
    IT_OP_CLOSE,        /* pvabi_close, keep running without a context */
    IT_OP_SHARE,        /* a: domid, count, flags -> a[0] slot, v refs */
    IT_OP_REVOKE,       /* a: slot */
    IT_OP_GRANT_NOTIFY, /* a: slot, page, offset, port */
    IT_OP_MAP,          /* a: domid, count, flags; v refs -> a[0] slot, v statuses */
    IT_OP_UNMAP,        /* a: slot */
    IT_OP_MAP_NOTIFY,   /* a: slot, page, offset, port */
    IT_OP_FILL,         /* a: kind, slot, offset, len, seed, expect_fault: write */
    IT_OP_CHECK,        /* same: compare -> 0 / -EILSEQ, a[0] where, a[1] got */
    IT_OP_PEEK,         /* a: kind, slot, offset -> a[0] the byte */
    IT_OP_COPY,         /* n segments of IT_SEG_VALS in v -> v statuses, a[0] bad data mask */
    IT_OP_ALLOC,        /* a: remote -> a[0] port */
    IT_OP_BIND,         /* a: remote, remote port -> a[0] port */
    IT_OP_UNBIND,       /* a: port */
    IT_OP_NOTIFY,       /* a: port */
    IT_OP_WAIT,         /* a: port: poll pvabi_fd until pending() reports it */
    IT_OP_PENDING,      /* pending() once, no wait -> n ports in v */
    IT_OP_POLL_FD,      /* a: timeout ms -> a[0] 1 if pvabi_fd readable */
    IT_OP_UNMASK,       /* a: port */
    IT_OP_STATE,        /* a: port -> status is the state */
    IT_OP_COUNTERS,     /* a: port, zero -> a[0..2] sent, received, spurious (since zeroed) */
    IT_OP_PINGPONG,     /* a: port, rounds, initiator, progress_every, use_wait -> agent.c */
    IT_OP_EFD_PINGPONG, /* a: fd to read, fd to write, rounds, initiator */
    IT_OP_MAP_BENCH,    /* a: domid, count, iterations, touch, raw; v refs */
    IT_OP_FD_COUNT,     /* -> a[0] open fds of the agent */
    IT_OP_EVTCHN_WAIT,  /* a: max, timeout ms: pvabi_evtchn_wait() as is -> n ports in v */
    IT_OP_KILL,         /* coordinator -> remote proxy only: kill the remote agent (remote.c) */
    /* xenbus (xb.c); side: 0 frontend, 1 backend; text: type or path */
    IT_OP_XB_FIRST = 100,
    IT_OP_XB_FRONT_START = IT_OP_XB_FIRST, /* a: devid */
    IT_OP_XB_FRONT_CONNECT,                /* a: pages, timeout, wait connected -> a[0] port */
    IT_OP_XB_FRONT_SEND,                   /* a: count */
    IT_OP_XB_FRONT_RECV,                   /* a: until, timeout -> a[0] answered */
    IT_OP_XB_BACK_START,                   /* a: frontend, devid, max ring order */
    IT_OP_XB_BACK_SERVE,                   /* a: count, timeout -> a[0] answered */
    IT_OP_XB_WAIT,                         /* a: side, until, timeout */
    IT_OP_XB_STATE,                        /* a: side -> a: state, peer, reattached, order, port */
    IT_OP_XB_EVENTS,                       /* a: side -> v: callback events since the last EVENTS */
    IT_OP_XB_DISCONNECT,                   /* a: side */
    IT_OP_XB_CLOSE,                        /* a: side, release ring and port (frontend) */
    IT_OP_XB_READ,                         /* text: path -> text: value */
    IT_OP_XB_WRITE,                        /* text: path=value */
    IT_OP_XB_RM,                           /* text: path */
    IT_OP_XB_ADD,                          /* a: frontend, backend, devid; text: type */
    IT_OP_XB_REMOVE,                       /* same */
    IT_OP_XB_LAST = IT_OP_XB_REMOVE,
};

/* What IT_OP_FILL/CHECK/PEEK address. */
enum { IT_KIND_GRANT = 0, IT_KIND_MAP = 1 };

struct it_msg {
    uint32_t op;
    int32_t status;
    int64_t a[8];
    uint32_t n; /* entries used in v */
    int32_t pad;
    int64_t v[IT_VALS];
    char text[256];
};

/* ---- agents (coordinator side) ------------------------------------------ */

struct it_agent {
    char name[32];
    pid_t pid;
    int pidfd;
    int sock;
    pvabi_domid domid;
    int reaped;
    int wstatus;
    int remote; /* runs in an it_agent_server; pid is its local proxy */
};

/* Forks an agent that opens its own context; fails the test if it cannot. */
void it_agent_start(struct it_agent *a, const char *name);
/* The same, as domain @domid: a process restarted in the domain an agent
 * that died was (on the local platform it claims the domid with
 * PVABI_LOCAL_DOMID; on Xen an agent is in its server's domain anyway:
 * dom0, or the domU of a remote one).  Fails the test if the agent is not
 * that domain. */
void it_agent_start_as(struct it_agent *a, const char *name, pvabi_domid domid);
/* Sends a command without waiting. */
void it_agent_send(struct it_agent *a, const struct it_msg *m);
/* Waits for the reply of the last command (progress messages are skipped
 * unless want_progress); fails the test if the agent dies or reports a
 * failure.  Returns m->status. */
int it_agent_reply(struct it_agent *a, struct it_msg *m, int want_progress);
/* send + reply; m is in and out. */
int it_agent_call(struct it_agent *a, struct it_msg *m);
/* Sends a command the agent is expected to die of; returns its wait status. */
int it_agent_call_dies(struct it_agent *a, struct it_msg *m);
/* SIGKILL and reap; returns the wait status.  A remote agent is killed and
 * reaped by its server before this returns. */
int it_agent_kill(struct it_agent *a);
/* Asks the agent to exit (closing its context first if close_ctx), checks
 * that it exited 0. */
void it_agent_stop(struct it_agent *a, int close_ctx);
/* Releases what is left (kills a running agent); for teardown paths. */
void it_agent_release(struct it_agent *a);

/* ---- typed commands ------------------------------------------------------ */

int it_share(struct it_agent *a, pvabi_domid to, unsigned count, unsigned flags, unsigned *slot,
             pvabi_gref *refs);
int it_revoke(struct it_agent *a, unsigned slot);
int it_grant_notify(struct it_agent *a, unsigned slot, unsigned page, unsigned offset,
                    pvabi_port port);
int it_map(struct it_agent *a, pvabi_domid from, const pvabi_gref *refs, unsigned count,
           unsigned flags, int *status, unsigned *slot);
int it_unmap(struct it_agent *a, unsigned slot);
int it_map_notify(struct it_agent *a, unsigned slot, unsigned page, unsigned offset,
                  pvabi_port port);
int it_fill(struct it_agent *a, int kind, unsigned slot, size_t offset, size_t len, unsigned seed);
int it_check(struct it_agent *a, int kind, unsigned slot, size_t offset, size_t len, unsigned seed);
int it_peek(struct it_agent *a, int kind, unsigned slot, size_t offset);
int it_alloc(struct it_agent *a, pvabi_domid remote, pvabi_port *port);
int it_bind(struct it_agent *a, pvabi_domid remote, pvabi_port remote_port, pvabi_port *port);
int it_unbind(struct it_agent *a, pvabi_port port);
int it_notify(struct it_agent *a, pvabi_port port);
int it_wait(struct it_agent *a, pvabi_port port);
int it_pending(struct it_agent *a, pvabi_port *ports, unsigned max);
/* pvabi_evtchn_wait() in the agent, its result as is (not through the
 * stash it_wait uses): the ports reported go to @ports. */
int it_evtchn_wait(struct it_agent *a, pvabi_port *ports, unsigned max, int timeout_ms);
int it_poll_fd(struct it_agent *a, int timeout_ms);
int it_unmask(struct it_agent *a, pvabi_port port);
int it_state(struct it_agent *a, pvabi_port port);
int it_counters(struct it_agent *a, pvabi_port port, uint64_t c[3]);
int it_close_ctx(struct it_agent *a);
long it_agent_fd_count(struct it_agent *a);

/* One grant copy segment as the coordinator describes it.  The local buffer
 * lives in the agent: to_foreign fills it with the pattern (seed, base + i)
 * first; otherwise the agent checks what arrived against that pattern. */
struct it_seg {
    pvabi_gref ref;
    pvabi_domid domid;
    uint16_t offset, len;
    int to_foreign;
    unsigned seed;
    size_t base; /* pattern index of the segment's first byte */
};
#define IT_SEG_VALS 7
/* Returns pvabi_grant_copy()'s result; status[i] per segment; *bad_data a
 * mask of successful from-foreign segments whose bytes were wrong. */
int it_copy(struct it_agent *a, const struct it_seg *segs, unsigned n, int *status,
            uint64_t *bad_data);

/* ---- xenbus commands (xb.c) ------------------------------------------------ */

enum { IT_XB_FRONT = 0, IT_XB_BACK = 1 };

struct it_xb_state {
    int state, peer, reattached;
    unsigned order;
    pvabi_port port;
};

/* Agent side: runs an IT_OP_XB_* command; it_xb_forget() before the
 * context closes. */
int it_xb_dispatch(pvabi_ctx *ctx, struct it_msg *m);
void it_xb_forget(void);

/* The toolstack step, by a privileged agent. */
int it_xb_device_add(struct it_agent *ts, const char *type, pvabi_domid fe, pvabi_domid be,
                     unsigned devid);
int it_xb_device_remove(struct it_agent *ts, const char *type, pvabi_domid fe, pvabi_domid be,
                        unsigned devid);
int it_xb_read(struct it_agent *a, const char *path, char *value, size_t size);
int it_xb_write(struct it_agent *a, const char *path, const char *value);
int it_xb_rm(struct it_agent *a, const char *path);
/* Frontend: open + start; then wait for the backend, share a ring of
 * @pages, allocate the port, publish (and wait for Connected if @wait). */
int it_xb_front_start(struct it_agent *fe, const char *type, unsigned devid);
int it_xb_front_connect(struct it_agent *fe, unsigned pages, int timeout_ms, int wait);
void it_xb_front_connect_send(struct it_agent *fe, unsigned pages, int timeout_ms, int wait);
/* Publishes @count more requests; waits until @until have been answered
 * correctly (*answered: how many were). */
int it_xb_front_send(struct it_agent *fe, unsigned count);
int it_xb_front_recv(struct it_agent *fe, uint64_t until, int timeout_ms, uint64_t *answered);
/* Backend: open, advertise max-ring-page-order @max_order, start. */
int it_xb_back_start(struct it_agent *be, const char *type, pvabi_domid fe, unsigned devid,
                     unsigned max_order);
/* Answers exactly @count requests (attaching to the ring first). */
int it_xb_back_serve(struct it_agent *be, unsigned count, int timeout_ms, unsigned *served);
void it_xb_back_serve_send(struct it_agent *be, unsigned count, int timeout_ms);
int it_xb_wait(struct it_agent *a, int side, int until, int timeout_ms);
void it_xb_wait_send(struct it_agent *a, int side, int until, int timeout_ms);
int it_xb_state(struct it_agent *a, int side, struct it_xb_state *st);
/* The events the side's callback saw since the last call (at most @max). */
unsigned it_xb_events(struct it_agent *a, int side, int *events, unsigned max);
int it_xb_disconnect(struct it_agent *a, int side);
int it_xb_close(struct it_agent *a, int side, int release_ring);

/* Whether @a's pvabi_evtchn_state() asks Xen: everywhere but in a Xen
 * domU, whose Linux privcmd refuses hypercalls to unprivileged domains
 * ("No target domain found"); there the state is what @a itself saw. */
static inline int it_asks_port_state(const struct it_agent *a)
{
    return !it_is_xen() || a->domid == 0;
}
/* What @a reports for a port whose peer closed: CLOSED, or where it cannot
 * ask, what it saw last: INTERDOMAIN. */
static inline int it_closed_state(const struct it_agent *a)
{
    return it_asks_port_state(a) ? PVABI_EVTCHN_CLOSED : PVABI_EVTCHN_INTERDOMAIN;
}
/* What @a reports for a port it allocated that a peer bound, before any
 * event: INTERDOMAIN, or where it cannot ask, UNBOUND. */
static inline int it_bound_state(const struct it_agent *a)
{
    return it_asks_port_state(a) ? PVABI_EVTCHN_INTERDOMAIN : PVABI_EVTCHN_UNBOUND;
}

/* Connects a fresh channel: @a allocates a port for @b, @b binds to it.  On
 * Xen a handshake follows (commands.c): the channel starts quiet, both ends
 * have seen it connected, counters start from zero. */
void it_connect(struct it_agent *a, struct it_agent *b, pvabi_port *pa, pvabi_port *pb);
/* Counters of @port from now on (it_counters reports the difference). */
int it_counters_zero(struct it_agent *a, pvabi_port port);

/* The fill pattern: byte @i (an offset in the whole area) of seed @seed. */
static inline uint8_t it_pattern(unsigned seed, size_t i)
{
    uint32_t x = (uint32_t)(seed * 2654435761u) ^ (uint32_t)(i * 40503u) ^ (uint32_t)(i >> 12);
    x ^= x >> 13;
    return (uint8_t)(x | 1); /* never 0, so a cleared byte shows */
}

/* ---- the agent's side ---------------------------------------------------- */

/* Runs in the forked child: opens a context, serves commands until EXIT or
 * until the coordinator goes away.  Never returns. */
__attribute__((noreturn)) void it_agent_main(int sock, const char *name);

/* Pins this process, and so every process it starts later, to CPU @cpu.
 * Returns 0 or a negative errno. */
int it_pin_cpu(int cpu);

/* Time in ns (CLOCK_MONOTONIC). */
uint64_t it_now_ns(void);

/* ---- waiting for processes (harness.c, shared with remote.c) ------------- */

/* Polls @fd (and @pidfd when >= 0) for input: 1 when @fd is readable, 2 when
 * only the pidfd is, 0 on timeout. */
int it_wait_readable(int fd, int pidfd, int timeout_ms);
/* Waits up to IT_TIMEOUT_MS for the child's pidfd, then reaps it; returns
 * the wait status (fails the test on timeout). */
int it_reap(pid_t pid, int pidfd, const char *what);
/* "exit 1", "signal 9 (Killed)", ... */
void it_describe_status(int st, char *buf, size_t len);

/* ---- remote agents (remote.c) --------------------------------------------- */

/* A frame on the TCP connection between a proxy and an it_agent_server: this
 * header, its fields big-endian, then len payload bytes.  A MSG carries a
 * raw struct it_msg, so both ends must be the same build. */
struct it_frame_hdr {
    uint32_t magic;
    uint32_t kind;
    uint32_t len;
};
#define IT_FRAME_MAGIC 0x50564954u /* "PVIT" */
/* The longest agent name a START carries. */
#define IT_NAME_MAX 31

enum it_frame_kind {
    IT_FRAME_START = 1, /* proxy -> server: the agent's name, then the agent starts */
    IT_FRAME_MSG,       /* either way: one struct it_msg */
    IT_FRAME_KILL,      /* proxy -> server: SIGKILL the agent, reap it, send EXITED */
    IT_FRAME_EXITED,    /* server -> proxy: the agent's wait status, int32 big-endian; last */
};

/* Whether a header (host byte order) is well-formed: known kind, length
 * right for it.  Returns 0, or -EPROTO with *why set. */
int it_frame_check(const struct it_frame_hdr *h, const char **why);
/* Sends one frame, all of it, within @timeout_ms (-1: no limit); 0 or -errno. */
int it_frame_send(int fd, uint32_t kind, const void *payload, uint32_t len, int timeout_ms);
/* Receives one well-formed frame of at most @cap payload bytes within
 * @timeout_ms: 1, 0 on EOF before its first byte, or -errno (-EPROTO for a
 * malformed header, which is not read further). *h is in host order. */
int it_frame_recv(int fd, struct it_frame_hdr *h, void *payload, uint32_t cap, int timeout_ms);
/* Connects to "A.B.C.D:PORT" within @timeout_ms; the socket is blocking,
 * close-on-exec, TCP_NODELAY.  Returns it or -errno (-EINVAL: no such
 * address). */
int it_tcp_connect(const char *addr, int timeout_ms);
/* Parses "A.B.C.D:PORT" (port 0 allowed); 0 or -EINVAL. */
int it_tcp_parse(const char *addr, struct sockaddr_in *sa);

/* A private it_agent_server ($PVABI_IT_AGENT_SERVER) on 127.0.0.1, started
 * by this process: it inherits the environment, so start it after
 * it_daemon_start() for its agents to use that daemon. */
struct it_agent_server {
    pid_t pid; /* 0: none */
    int pidfd;
    char addr[32]; /* "127.0.0.1:PORT" */
};
/* Starts it and waits (up to IT_TIMEOUT_MS) for its port; fails the test
 * if it cannot. */
void it_agent_server_start(struct it_agent_server *s);
/* Stops it (SIGTERM) and reaps it; returns 0 when it had not died during
 * the test and exited 0, else -1 with @why (a sanitizer report fails). */
int it_agent_server_stop(struct it_agent_server *s, char *why, size_t len);

/* For harness.c: the server address for agent @name, or NULL when @name
 * runs locally (fails the test on a bad PVABI_TEST_REMOTE). */
const char *it_remote_addr_for(const char *name);
/* it_setup / it_teardown: the server of PVABI_TEST_REMOTE=spawn. */
void it_remote_setup(void);
int it_remote_teardown(char *why, size_t len);
/* In a forked agent or proxy: closes what it must not hold. */
void it_remote_close_inherited(void);
/* The forked child of a remote agent: relays @sock to the server at @addr
 * and ends as the remote agent ended.  Never returns. */
__attribute__((noreturn)) void it_remote_proxy_main(int sock, const char *name, const char *addr);
/* The server's connection handler, a process of its own: reads START, runs
 * the agent, relays until it ends.  SIGTERM kills and reaps the agent and
 * exits 0.  Returns the handler's exit status, with SIGTERM blocked. */
int it_remote_serve(int conn);

#endif
