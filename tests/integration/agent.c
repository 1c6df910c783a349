/* SPDX-License-Identifier: MIT */
/*
 * The agent's side of the integration harness: a forked child that opens its
 * own context (its own domain on the local platform) and executes the
 * coordinator's commands one at a time.  It never uses the test framework:
 * anything unexpected is reported as an IT_OP_FAILED message, then it exits.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <dirent.h>

#include "harness.h"

#define SLOTS   64
#define STASH   64
#define SEGS    (IT_VALS / IT_SEG_VALS)
#define NO_SLOT (-1)

/* Ports whose counters a connect handshake has zeroed. */
#define BASES 16

struct agent {
    int sock;
    const char *name;
    pvabi_ctx *ctx;
    pvabi_grant *grants[SLOTS];
    pvabi_map *maps[SLOTS];
    unsigned map_pages[SLOTS];
    /* Ports pending() reported that no WAIT has claimed yet (still masked). */
    pvabi_port stash[STASH];
    unsigned nstash;
    /* Counter values COUNTERS reports relative to (see it_counters_zero). */
    struct counter_base {
        pvabi_port port;
        uint64_t v[3];
    } bases[BASES];
    unsigned nbases;
};

static void agent_send(struct agent *ag, const struct it_msg *m)
{
    if (send(ag->sock, m, sizeof(*m), MSG_NOSIGNAL) != (ssize_t)sizeof(*m))
        _exit(3); /* the coordinator is gone: nobody to tell */
}

static __attribute__((noreturn, format(printf, 2, 3))) void agent_fail(struct agent *ag,
                                                                       const char *fmt, ...)
{
    struct it_msg m = { .op = IT_OP_FAILED, .status = -EPROTO };
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(m.text, sizeof(m.text), fmt, ap);
    va_end(ap);
    agent_send(ag, &m);
    _exit(1);
}

/* ---- slots ---------------------------------------------------------------- */

static int free_slot(void *const *tab, struct agent *ag)
{
    for (int i = 0; i < SLOTS; i++)
        if (!tab[i])
            return i;
    agent_fail(ag, "out of slots");
}

static pvabi_grant *grant_at(struct agent *ag, int64_t slot)
{
    if (slot < 0 || slot >= SLOTS || !ag->grants[slot])
        agent_fail(ag, "no share in slot %lld", (long long)slot);
    return ag->grants[slot];
}

static pvabi_map *map_at(struct agent *ag, int64_t slot)
{
    if (slot < 0 || slot >= SLOTS || !ag->maps[slot])
        agent_fail(ag, "no mapping in slot %lld", (long long)slot);
    return ag->maps[slot];
}

/* The bytes a FILL/CHECK/PEEK addresses, range-checked. */
static uint8_t *area(struct agent *ag, const struct it_msg *m, size_t len)
{
    size_t pages, off = (size_t)m->a[2];
    uint8_t *base;

    if (m->a[0] == IT_KIND_GRANT) {
        pvabi_grant *g = grant_at(ag, m->a[1]);
        base = pvabi_grant_addr(g);
        pages = pvabi_grant_count(g);
    } else {
        base = pvabi_map_addr(map_at(ag, m->a[1]));
        pages = ag->map_pages[m->a[1]];
    }
    if (off + len > pages * PVABI_PAGE_SIZE || off + len < off)
        agent_fail(ag, "range %zu+%zu outside %zu pages", off, len, pages);
    return base + off;
}

/* ---- grants ---------------------------------------------------------------- */

static int op_share(struct agent *ag, struct it_msg *m)
{
    int slot = free_slot((void *const *)ag->grants, ag);
    int rc = pvabi_grant_share(ag->ctx, (pvabi_domid)m->a[0], (unsigned)m->a[1], (unsigned)m->a[2],
                               &ag->grants[slot]);

    if (rc < 0)
        return rc;
    m->a[0] = slot;
    m->n = pvabi_grant_count(ag->grants[slot]);
    for (unsigned i = 0; i < m->n; i++)
        m->v[i] = pvabi_grant_ref(ag->grants[slot], i);
    return 0;
}

static int op_revoke(struct agent *ag, struct it_msg *m)
{
    int rc = pvabi_grant_revoke(grant_at(ag, m->a[0]));

    /* -EBUSY leaves the share in place; anything else has freed it. */
    if (rc != -EBUSY)
        ag->grants[m->a[0]] = NULL;
    return rc;
}

static int op_map(struct agent *ag, struct it_msg *m)
{
    int status[IT_VALS], slot = free_slot((void *const *)ag->maps, ag);
    pvabi_gref refs[IT_VALS];
    unsigned count = (unsigned)m->a[1];
    int rc;

    if (count > IT_VALS)
        agent_fail(ag, "map of %u refs", count);
    for (unsigned i = 0; i < count; i++) {
        refs[i] = (pvabi_gref)m->v[i];
        status[i] = 12345; /* shows a status the call left unset */
    }
    rc = pvabi_grant_map(ag->ctx, (pvabi_domid)m->a[0], refs, count, (unsigned)m->a[2], status,
                         &ag->maps[slot]);
    for (unsigned i = 0; i < count; i++)
        m->v[i] = status[i];
    m->n = count;
    m->a[0] = rc == 0 ? slot : NO_SLOT;
    if (rc == 0)
        ag->map_pages[slot] = count;
    else if (ag->maps[slot])
        agent_fail(ag, "pvabi_grant_map failed (%d) but set *out", rc);
    return rc;
}

static int op_unmap(struct agent *ag, struct it_msg *m)
{
    int rc = pvabi_grant_unmap(map_at(ag, m->a[0]));

    ag->maps[m->a[0]] = NULL;
    return rc;
}

static int op_fill(struct agent *ag, struct it_msg *m)
{
    size_t len = (size_t)m->a[3], off = (size_t)m->a[2];
    uint8_t *p = area(ag, m, len);

    if (m->a[5]) {
        /* The coordinator expects a fault: let it kill us as it would without
         * a sanitizer's handler, and without a core dump. */
        struct rlimit no_core = { 0, 0 };
        setrlimit(RLIMIT_CORE, &no_core);
        signal(SIGSEGV, SIG_DFL);
    }
    /* A write to a read-only mapping faults here. */
    for (size_t i = 0; i < len; i++)
        p[i] = it_pattern((unsigned)m->a[4], off + i);
    return 0;
}

static int op_check(struct agent *ag, struct it_msg *m)
{
    size_t len = (size_t)m->a[3], off = (size_t)m->a[2];
    const volatile uint8_t *p = area(ag, m, len);

    for (size_t i = 0; i < len; i++) {
        uint8_t got = p[i];
        if (got != it_pattern((unsigned)m->a[4], off + i)) {
            m->a[0] = (int64_t)(off + i);
            m->a[1] = got;
            return -EILSEQ;
        }
    }
    return 0;
}

static int op_peek(struct agent *ag, struct it_msg *m)
{
    m->a[0] = *(const volatile uint8_t *)area(ag, m, 1);
    return 0;
}

static void seg_from_msg(const int64_t *v, struct pvabi_grant_copy_seg *s, uint8_t *buf)
{
    memset(s, 0, sizeof(*s));
    s->ref = (pvabi_gref)v[0];
    s->domid = (pvabi_domid)v[1];
    s->offset = (uint16_t)v[2];
    s->len = (uint16_t)v[3];
    s->to_foreign = (uint8_t)v[4];
    s->local = buf;
    s->status = 12345;
    /* Outgoing data is the pattern; incoming lands on a poisoned buffer. */
    for (size_t i = 0; i < s->len; i++)
        buf[i] = s->to_foreign ? it_pattern((unsigned)v[5], (size_t)v[6] + i) : 0;
}

static int op_copy(struct agent *ag, struct it_msg *m)
{
    static uint8_t buf[SEGS][PVABI_PAGE_SIZE];
    struct pvabi_grant_copy_seg segs[SEGS];
    unsigned n = m->n;
    uint64_t bad = 0;
    int rc;

    if (n > SEGS)
        agent_fail(ag, "copy of %u segments", n);
    for (unsigned i = 0; i < n; i++)
        seg_from_msg(&m->v[i * IT_SEG_VALS], &segs[i], buf[i]);
    rc = pvabi_grant_copy(ag->ctx, segs, n);
    for (unsigned i = 0; i < n; i++) {
        const int64_t *v = &m->v[i * IT_SEG_VALS];
        for (size_t j = 0; !segs[i].to_foreign && segs[i].status == 0 && j < segs[i].len; j++)
            if (buf[i][j] != it_pattern((unsigned)v[5], (size_t)v[6] + j))
                bad |= 1ull << i;
    }
    for (unsigned i = 0; i < n; i++)
        m->v[i] = segs[i].status;
    m->a[0] = (int64_t)bad;
    return rc;
}

static int op_notify_reg(struct agent *ag, struct it_msg *m)
{
    unsigned page = (unsigned)m->a[1], off = (unsigned)m->a[2];
    pvabi_port port = (pvabi_port)m->a[3];

    if (m->op == IT_OP_GRANT_NOTIFY)
        return pvabi_grant_notify(grant_at(ag, m->a[0]), page, off, port);
    return pvabi_map_notify(map_at(ag, m->a[0]), page, off, port);
}

/* ---- event channels ------------------------------------------------------- */

static void stash_add(struct agent *ag, pvabi_port port)
{
    for (unsigned i = 0; i < ag->nstash; i++)
        if (ag->stash[i] == port)
            agent_fail(ag, "port %u reported twice without an unmask in between", port);
    if (ag->nstash == STASH)
        agent_fail(ag, "more than %d unclaimed ports", STASH);
    ag->stash[ag->nstash++] = port;
}

static int stash_take(struct agent *ag, pvabi_port port)
{
    for (unsigned i = 0; i < ag->nstash; i++) {
        if (ag->stash[i] == port) {
            ag->stash[i] = ag->stash[--ag->nstash];
            return 1;
        }
    }
    return 0;
}

/* Collects pending ports into the stash; returns the count or -errno. */
static int collect(struct agent *ag)
{
    pvabi_port ports[STASH];
    int n = pvabi_evtchn_pending(ag->ctx, ports, STASH);

    for (int i = 0; i < n; i++)
        stash_add(ag, ports[i]);
    return n;
}

/* Waits until pending() reports @port.  Strict on purpose: it polls
 * pvabi_fd first, so a port that is pending without the fd ever becoming
 * readable is a failure, not something a later call papers over.
 * @empty counts wake-ups that brought nothing. */
static int wait_port_for(struct agent *ag, pvabi_port port, uint64_t *empty, int timeout_ms)
{
    struct pollfd p = { .fd = pvabi_fd(ag->ctx), .events = POLLIN };
    uint64_t end = it_now_ns() + (uint64_t)timeout_ms * 1000000u;
    int n;

    while (!stash_take(ag, port)) {
        uint64_t now = it_now_ns();
        n = poll(&p, 1, now >= end ? 0 : (int)((end - now) / 1000000u) + 1);
        if (n < 0 && errno != EINTR)
            agent_fail(ag, "poll(pvabi_fd): %s", strerror(errno));
        if (n == 0) {
            if (collect(ag) > 0 && stash_take(ag, port))
                agent_fail(ag, "port %u was pending but pvabi_fd stayed unreadable", port);
            return -ETIMEDOUT;
        }
        n = collect(ag);
        if (n < 0)
            return n;
        if (n == 0 && empty)
            (*empty)++;
    }
    return 0;
}

static int wait_port(struct agent *ag, pvabi_port port, uint64_t *empty)
{
    return wait_port_for(ag, port, empty, IT_TIMEOUT_MS);
}

/* How long a ping-pong side on Xen waits before it asks whether the peer
 * is still there. */
#define LIVENESS_CHECK_MS 200

/* wait_port as a driver on Xen must write it: a peer's close raises no
 * event there, so after a quiet spell the port's state is asked and a
 * CLOSED port ends the wait with -ENOTCONN. */
static int wait_port_live(struct agent *ag, pvabi_port port, uint64_t *empty)
{
    uint64_t end = it_now_ns() + (uint64_t)IT_TIMEOUT_MS * 1000000u;
    int rc;

    if (it_peer_close_raises_event())
        return wait_port(ag, port, empty);
    do {
        rc = wait_port_for(ag, port, empty, LIVENESS_CHECK_MS);
        if (rc != -ETIMEDOUT)
            return rc;
        if (pvabi_evtchn_state(ag->ctx, port) == PVABI_EVTCHN_CLOSED)
            return -ENOTCONN;
    } while (it_now_ns() < end);
    return -ETIMEDOUT;
}

/* Like wait_port, but sleeping in pvabi_evtchn_wait() instead of poll()
 * on pvabi_fd; other ports it reports go to the stash. */
static int wait_port_sleeping(struct agent *ag, pvabi_port port)
{
    pvabi_port got[STASH];
    int n;

    while (!stash_take(ag, port)) {
        n = pvabi_evtchn_wait(ag->ctx, got, STASH, IT_TIMEOUT_MS);
        if (n <= 0)
            return n == 0 ? -ETIMEDOUT : n;
        for (int i = 0; i < n; i++)
            stash_add(ag, got[i]);
    }
    return 0;
}

/* pvabi_evtchn_wait() as is, the stash left alone: a: max, timeout. */
static int op_evtchn_wait(struct agent *ag, struct it_msg *m)
{
    pvabi_port ports[IT_VALS];
    unsigned max = m->a[0] < 0 ? 0 : m->a[0] > IT_VALS ? IT_VALS : (unsigned)m->a[0];
    int n = pvabi_evtchn_wait(ag->ctx, ports, max, (int)m->a[1]);

    m->n = n > 0 ? (uint32_t)n : 0;
    for (uint32_t i = 0; i < m->n; i++)
        m->v[i] = ports[i];
    return n;
}

static int op_pending(struct agent *ag, struct it_msg *m)
{
    int n = collect(ag);

    if (n < 0)
        return n;
    /* Hand over everything not claimed yet: the caller now owns it. */
    m->n = ag->nstash;
    for (unsigned i = 0; i < ag->nstash; i++)
        m->v[i] = ag->stash[i];
    ag->nstash = 0;
    return (int)m->n;
}

static int op_poll_fd(struct agent *ag, struct it_msg *m)
{
    struct pollfd p = { .fd = pvabi_fd(ag->ctx), .events = POLLIN };
    int n = poll(&p, 1, (int)m->a[0]);

    m->a[0] = n > 0 && (p.revents & POLLIN);
    return n < 0 ? -errno : 0;
}

static struct counter_base *counter_base(struct agent *ag, pvabi_port port, int create)
{
    for (unsigned i = 0; i < ag->nbases; i++)
        if (ag->bases[i].port == port)
            return &ag->bases[i];
    if (!create)
        return NULL;
    if (ag->nbases == BASES)
        agent_fail(ag, "more than %d ports with zeroed counters", BASES);
    ag->bases[ag->nbases] = (struct counter_base){ .port = port };
    return &ag->bases[ag->nbases++];
}

/* a: port, zero.  Reports the counters since they were last zeroed; with
 * zero set, zeroes them (a[0..2] still report the values before). */
static int op_counters(struct agent *ag, struct it_msg *m)
{
    static const int which[3] = { PVABI_EVTCHN_SENT, PVABI_EVTCHN_RECEIVED, PVABI_EVTCHN_SPURIOUS };
    pvabi_port port = (pvabi_port)m->a[0];
    int zero = m->a[1] != 0;
    struct counter_base *base = counter_base(ag, port, zero);
    uint64_t v[3];

    for (int i = 0; i < 3; i++) {
        int rc = pvabi_evtchn_counter(ag->ctx, port, which[i], &v[i]);
        if (rc < 0)
            return rc;
        m->a[i] = (int64_t)(v[i] - (base ? base->v[i] : 0));
    }
    if (zero)
        memcpy(base->v, v, sizeof(v));
    return 0;
}

static int op_evtchn(struct agent *ag, struct it_msg *m)
{
    pvabi_port port = 0, p = (pvabi_port)m->a[0];
    int rc;

    switch (m->op) {
    case IT_OP_ALLOC:
        rc = pvabi_evtchn_alloc(ag->ctx, (pvabi_domid)m->a[0], &port);
        m->a[0] = port;
        return rc;
    case IT_OP_BIND:
        rc = pvabi_evtchn_bind(ag->ctx, (pvabi_domid)m->a[0], (pvabi_port)m->a[1], &port);
        m->a[0] = port;
        return rc;
    case IT_OP_UNBIND:
        stash_take(ag, p);
        return pvabi_evtchn_unbind(ag->ctx, p);
    case IT_OP_NOTIFY:
        return pvabi_evtchn_notify(ag->ctx, p);
    case IT_OP_WAIT:
        return wait_port(ag, p, NULL);
    case IT_OP_UNMASK:
        return pvabi_evtchn_unmask(ag->ctx, p);
    case IT_OP_STATE:
        return pvabi_evtchn_state(ag->ctx, p);
    default:
        return op_counters(ag, m);
    }
}

/* ---- ping-pong and the benchmark loops ------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Fills a[1..3] with the median, mean and minimum of @t (n entries). */
static void summarize(struct it_msg *m, uint64_t *t, uint64_t n, uint64_t total)
{
    if (!t || n == 0)
        return;
    qsort(t, n, sizeof(*t), cmp_u64);
    m->a[1] = (int64_t)t[n / 2];
    m->a[2] = (int64_t)(total / n);
    m->a[3] = (int64_t)t[0];
}

/* Recorded timings: only for runs short enough to keep them all. */
static uint64_t *timings(struct agent *ag, uint64_t rounds, int initiator)
{
    uint64_t *t;

    if (!initiator || rounds > 4000000)
        return NULL;
    t = malloc(rounds * sizeof(*t));
    if (!t)
        agent_fail(ag, "no memory for %llu timings", (unsigned long long)rounds);
    return t;
}

static void progress(struct agent *ag, uint64_t done, uint64_t every)
{
    struct it_msg p = { .op = IT_OP_PROGRESS, .a = { (int64_t)done } };

    if (every && done == every)
        agent_send(ag, &p);
}

/* One side of a ping-pong on @port, as a driver would write it: wait on
 * pvabi_fd and pending (or, a[4] set, pvabi_evtchn_wait), unmask, notify
 * back.  Ends after @rounds, or when the peer closes (notify fails with
 * -ENOTCONN after the closed port was reported).  Replies a[0] rounds done,
 * a[1..3] round trip ns (initiator), a[4] empty wake-ups, a[5] the port's
 * state at the end. */
static int op_pingpong(struct agent *ag, struct it_msg *m)
{
    pvabi_port port = (pvabi_port)m->a[0];
    uint64_t rounds = (uint64_t)m->a[1], every = (uint64_t)m->a[3], done = 0, empty = 0;
    int initiator = (int)m->a[2], use_wait = (int)m->a[4], rc = 0;
    uint64_t *t = timings(ag, rounds, initiator), total = 0, t0 = 0;

    for (; done < rounds; done++) {
        if (initiator) {
            t0 = it_now_ns();
            if ((rc = pvabi_evtchn_notify(ag->ctx, port)) < 0)
                break;
        }
        rc = use_wait ? wait_port_sleeping(ag, port) : wait_port_live(ag, port, &empty);
        if (rc < 0)
            break;
        if ((rc = pvabi_evtchn_unmask(ag->ctx, port)) < 0)
            break;
        if (!initiator && (rc = pvabi_evtchn_notify(ag->ctx, port)) < 0)
            break;
        if (t) {
            t[done] = it_now_ns() - t0;
            total += t[done];
        }
        progress(ag, done + 1, every);
    }
    m->a[0] = (int64_t)done;
    summarize(m, t, done, total);
    m->a[4] = (int64_t)empty;
    m->a[5] = pvabi_evtchn_state(ag->ctx, port);
    free(t);
    return rc;
}

static int efd_wait(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    uint64_t v;

    if (poll(&p, 1, IT_TIMEOUT_MS) != 1)
        return -ETIMEDOUT;
    return read(fd, &v, sizeof(v)) == sizeof(v) ? 0 : -errno;
}

static int efd_kick(int fd)
{
    uint64_t one = 1;
    return write(fd, &one, sizeof(one)) == sizeof(one) ? 0 : -errno;
}

/* The reference: the same ping-pong on two raw eventfds (poll, read, write). */
static int op_efd_pingpong(struct agent *ag, struct it_msg *m)
{
    int rfd = (int)m->a[0], wfd = (int)m->a[1], initiator = (int)m->a[3], rc = 0;
    uint64_t rounds = (uint64_t)m->a[2], done = 0, total = 0, t0 = 0;
    uint64_t *t = timings(ag, rounds, initiator);

    for (; done < rounds; done++) {
        if (initiator) {
            t0 = it_now_ns();
            if ((rc = efd_kick(wfd)) < 0)
                break;
        }
        if ((rc = efd_wait(rfd)) < 0)
            break;
        if (!initiator && (rc = efd_kick(wfd)) < 0)
            break;
        if (t) {
            t[done] = it_now_ns() - t0;
            total += t[done];
        }
    }
    m->a[0] = (int64_t)done;
    summarize(m, t, done, total);
    free(t);
    return rc;
}

/* Reads one byte of each page, so that every page is really faulted in. */
static void touch(const void *p, unsigned pages)
{
    const volatile uint8_t *b = p;
    uint8_t sum = 0;

    for (unsigned i = 0; i < pages; i++)
        sum += b[(size_t)i * PVABI_PAGE_SIZE];
    (void)sum;
}

static int raw_map_once(int fd, unsigned pages, int do_touch)
{
    size_t len = (size_t)pages * PVABI_PAGE_SIZE;
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

    if (p == MAP_FAILED)
        return -errno;
    if (do_touch)
        touch(p, pages);
    return munmap(p, len) == 0 ? 0 : -errno;
}

static int pvabi_map_once(struct agent *ag, const struct it_msg *m, const pvabi_gref *refs,
                          int do_touch)
{
    unsigned pages = (unsigned)m->a[1];
    pvabi_map *map;
    int rc = pvabi_grant_map(ag->ctx, (pvabi_domid)m->a[0], refs, pages, 0, NULL, &map);

    if (rc < 0)
        return rc;
    if (do_touch)
        touch(pvabi_map_addr(map), pages);
    return pvabi_grant_unmap(map);
}

/* A memfd of @pages pages, every page present (the granted pages are too). */
static int raw_memfd(unsigned pages)
{
    size_t len = (size_t)pages * PVABI_PAGE_SIZE;
    int fd = memfd_create("it-bench", MFD_CLOEXEC);
    void *p;

    if (fd < 0 || ftruncate(fd, (off_t)len) < 0)
        return -errno;
    p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return -errno;
    memset(p, 0x5a, len);
    munmap(p, len);
    return fd;
}

static long minor_faults(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

/* a: domid, pages, iterations, touch, raw; v: refs.  Times map (+ touch) +
 * unmap per call, through pvabi or on a plain memfd.  Replies a[0] calls,
 * a[1..3] ns per call (median, mean, min), a[4] page faults per call x100. */
static int op_map_bench(struct agent *ag, struct it_msg *m)
{
    unsigned pages = (unsigned)m->a[1];
    uint64_t iters = (uint64_t)m->a[2], total = 0;
    int do_touch = (int)m->a[3], raw = (int)m->a[4], fd = -1, rc = 0;
    uint64_t *t = timings(ag, iters, 1);
    pvabi_gref refs[IT_VALS];

    if (pages == 0 || pages > IT_VALS || !t)
        agent_fail(ag, "map bench of %u pages, %llu iterations", pages, (unsigned long long)iters);
    for (unsigned i = 0; i < pages; i++)
        refs[i] = (pvabi_gref)m->v[i];
    if (raw && (fd = raw_memfd(pages)) < 0)
        agent_fail(ag, "memfd: %s", strerror(-fd));
    long faults = minor_faults();
    for (uint64_t i = 0; i < iters && rc == 0; i++) {
        uint64_t t0 = it_now_ns();
        rc = raw ? raw_map_once(fd, pages, do_touch) : pvabi_map_once(ag, m, refs, do_touch);
        t[i] = it_now_ns() - t0;
        total += t[i];
    }
    faults = minor_faults() - faults;
    if (fd >= 0)
        close(fd);
    m->a[0] = (int64_t)iters;
    summarize(m, t, iters, total);
    m->a[4] = (int64_t)(faults * 100 / (long)iters); /* page faults per call, x100 */
    free(t);
    return rc;
}

/* ---- the loop ------------------------------------------------------------------ */

static long fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    long n = -1; /* opendir's own descriptor */

    if (!d)
        return -errno;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static int dispatch(struct agent *ag, struct it_msg *m)
{
    switch (m->op) {
    case IT_OP_SHARE:
        return op_share(ag, m);
    case IT_OP_REVOKE:
        return op_revoke(ag, m);
    case IT_OP_GRANT_NOTIFY:
    case IT_OP_MAP_NOTIFY:
        return op_notify_reg(ag, m);
    case IT_OP_MAP:
        return op_map(ag, m);
    case IT_OP_UNMAP:
        return op_unmap(ag, m);
    case IT_OP_FILL:
        return op_fill(ag, m);
    case IT_OP_CHECK:
        return op_check(ag, m);
    case IT_OP_PEEK:
        return op_peek(ag, m);
    case IT_OP_COPY:
        return op_copy(ag, m);
    case IT_OP_ALLOC:
    case IT_OP_BIND:
    case IT_OP_UNBIND:
    case IT_OP_NOTIFY:
    case IT_OP_WAIT:
    case IT_OP_UNMASK:
    case IT_OP_STATE:
    case IT_OP_COUNTERS:
        return op_evtchn(ag, m);
    case IT_OP_PENDING:
        return op_pending(ag, m);
    case IT_OP_EVTCHN_WAIT:
        return op_evtchn_wait(ag, m);
    case IT_OP_POLL_FD:
        return op_poll_fd(ag, m);
    case IT_OP_PINGPONG:
        return op_pingpong(ag, m);
    case IT_OP_EFD_PINGPONG:
        return op_efd_pingpong(ag, m);
    case IT_OP_MAP_BENCH:
        return op_map_bench(ag, m);
    default:
        if (m->op >= IT_OP_XB_FIRST && m->op <= IT_OP_XB_LAST)
            return it_xb_dispatch(ag->ctx, m);
        agent_fail(ag, "unknown command %u", m->op);
    }
}

/* Commands that need no context (it may be closed already). */
static int contextless(struct agent *ag, struct it_msg *m)
{
    switch (m->op) {
    case IT_OP_EXIT:
        /* exit() rather than _exit() after a close, so that LeakSanitizer
         * checks that pvabi_close() freed everything. */
        if (m->a[0] && ag->ctx) {
            it_xb_forget();
            pvabi_close(ag->ctx);
            exit(0);
        }
        _exit(0);
    case IT_OP_CLOSE:
        it_xb_forget();
        pvabi_close(ag->ctx);
        ag->ctx = NULL;
        memset(ag->grants, 0, sizeof(ag->grants));
        memset(ag->maps, 0, sizeof(ag->maps));
        ag->nstash = 0;
        return 0;
    case IT_OP_FD_COUNT:
        m->a[0] = fd_count();
        return 0;
    case IT_OP_EFD_PINGPONG:
        return op_efd_pingpong(ag, m);
    default:
        if (!ag->ctx)
            agent_fail(ag, "command %u after the context was closed", m->op);
        return dispatch(ag, m);
    }
}

void it_agent_main(int sock, const char *name)
{
    static struct agent ag; /* static: the stash and slots are large */
    struct it_msg m = { .op = IT_OP_HELLO };

    ag.sock = sock;
    ag.name = name;
    m.status = pvabi_open(&ag.ctx, it_platform());
    m.a[0] = ag.ctx ? pvabi_own_domid(ag.ctx) : 0;
    agent_send(&ag, &m);
    if (m.status < 0)
        _exit(2);
    for (;;) {
        ssize_t n = recv(sock, &m, sizeof(m), 0);
        if (n <= 0)
            _exit(0); /* the coordinator is done with us */
        if (n != (ssize_t)sizeof(m))
            agent_fail(&ag, "short command (%zd bytes)", n);
        m.status = contextless(&ag, &m);
        agent_send(&ag, &m);
    }
}
