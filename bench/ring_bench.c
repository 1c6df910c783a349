/* SPDX-License-Identifier: MIT */
/*
 * ring_bench - pvabi rings against Xen's RING_* macros, one workload, one run.
 *
 * Two threads share one blkif ring (Xen's blkif_request_t / blkif_response_t):
 * the frontend keeps up to ring-size requests in flight, the backend copies
 * each request out of the ring and answers it.  The same workload runs
 * through pvabi's generated functions and through the RING_* macros written
 * the way Linux's blkfront/blkback use them, interleaved over several rounds
 * (pvabi, macros, pvabi, macros, ...) so that a noisy, shared machine hurts
 * both alike; the medians and their ratio are printed.  docs/benchmarks.md
 * describes both loops step by step.
 *
 *   ring_bench --mode=polling|notifying [--requests=N] [--rounds=R] [--order=K]
 *              [--batch=B] [--spin-us=U] [--idle-ms=M] [--timeout=S] [--pin]
 *              [--no-yield]
 *   ring_bench --single=N [--order=K] [--batch=B]     one thread, for callgrind.sh
 *
 * polling:   where a side would sleep it spins on the peer's producer index
 *            instead; notifications the protocol asks for are counted, not
 *            sent (nobody sleeps).
 * notifying: each side sleeps on an eventfd (poll, 1 s timeout) and is woken
 *            by an eventfd write exactly when the ring protocol says to
 *            notify.  After each round both threads are left idle and the CPU
 *            they burn meanwhile is reported.
 *
 * --batch bounds how many requests pvabi's backend copies and answers per
 * publish (default 16, half the order-0 ring), so that the frontend refills
 * one half of the ring while the backend works on the other.  Every spin loop
 * of both implementations yields now and then, in case the peer shares the
 * CPU (--no-yield: never).
 *
 * Only pvabi's header-only ring API is used, so this links no library.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <pvabi/ring.h>

/* Xen's ring.h leaves its barriers to the includer outside Xen and Linux.
 * These cost what pvabi's barrier.h costs: a full fence for xen_mb(), and on
 * x86 only a compiler barrier for the other two.  __XEN_TOOLS__ selects the
 * current interface, as Xen's own userspace tools do. */
#define __XEN_TOOLS__ 1
#define xen_mb()      __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define xen_rmb()     __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define xen_wmb()     __atomic_thread_fence(__ATOMIC_RELEASE)
#include <xen/io/blkif.h>

/* The pvabi view of the very same shared page. */
PVABI_RING_DEFINE(pblk, blkif_request_t, blkif_response_t);

_Static_assert(sizeof(union pblk_slot) == sizeof(union blkif_sring_entry), "same slot size");
_Static_assert(offsetof(struct pblk_shared, ring) == offsetof(struct blkif_sring, ring),
               "same slot offset");

/* Largest ring: order 4, 16 pages of 112-byte slots. */
#define BATCH_MAX    512u
#define NSEC_PER_SEC 1000000000ull
/* The virtual disk the requests address. */
#define BENCH_VDEV         0x0ca0u
#define BENCH_DISK_SECTORS (1ull << 30)

/* Linux's READ_ONCE: the macros leave reading the producer index to the
 * driver, and blkfront reads it once per pass, like this. */
#define READ_ONCE_U32(x) (*(const volatile uint32_t *)&(x))

enum impl { IMPL_PVABI, IMPL_MACROS };
static const char *const impl_name[] = { "pvabi", "macros" };

struct config {
    int notifying;
    uint64_t requests;
    unsigned rounds;
    unsigned order;
    unsigned batch; /* pvabi: most requests copied and answered per publish */
    int pin;        /* front on CPU 0, back on CPU 1 */
    uint64_t spin_ns;
    uint64_t idle_ns;
    uint64_t timeout_ns;
};

/* Whether spin loops yield (--no-yield clears it); read-only once threads run. */
static int g_yield = 1;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* A spin-loop hint; the memory clobber also makes every spin iteration
 * re-read the plain (non-atomic) indices the macros use. */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __asm__ __volatile__("pause" ::: "memory");
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

/* One step of every spin loop, both implementations: a pause, and every 64th
 * step a sched_yield() so that a peer thread sharing this CPU (2 CPUs, other
 * load) runs now rather than when our time slice ends.  With nothing else
 * runnable here the yield costs one system call (0.7 us on the test VM). */
static inline void spin_step(unsigned i)
{
    if (g_yield && i % 64 == 0)
        sched_yield();
    else
        cpu_relax();
}

/* ---- notifications --------------------------------------------------------- */

/* One direction of notification: the eventfd the peer sleeps on. */
struct kick {
    int fd;
    int deliver; /* 0 when the peer never sleeps: count only */
    uint64_t sent;
};

static inline void kick(struct kick *k)
{
    uint64_t one = 1;

    k->sent++;
    /* A non-blocking eventfd only refuses a write at a counter of 2^64-2,
     * which still wakes the peer: nothing to handle. */
    if (k->deliver && write(k->fd, &one, sizeof(one)) < 0)
        return;
}

/* Sleeps until the peer's kick or 1 s passes; the caller re-checks its ring
 * and the stop flag either way, so a lost or spurious wake-up is harmless. */
static void sleep_on(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    uint64_t v;

    if (poll(&p, 1, 1000) > 0 && read(fd, &v, sizeof(v)) < 0)
        return; /* drained by nobody else: EAGAIN cannot matter */
}

/* ---- the workload, identical for both implementations ---------------------- */

/* A 44 KiB read: every segment used, as blkfront fills a full request.  A
 * full request is also what keeps the comparison honest: GCC shrinks
 * RING_COPY_REQUEST's volatile struct copy to the fields read afterwards, so
 * a backend that looked at two fields would copy 16 bytes, not 112. */
static inline void fill_request(blkif_request_t *req, uint64_t seq)
{
    req->operation = BLKIF_OP_READ;
    req->nr_segments = BLKIF_MAX_SEGMENTS_PER_REQUEST;
    req->handle = BENCH_VDEV;
    req->id = seq;
    req->sector_number = (seq * 8 * BLKIF_MAX_SEGMENTS_PER_REQUEST) % BENCH_DISK_SECTORS;
    for (unsigned i = 0; i < BLKIF_MAX_SEGMENTS_PER_REQUEST; i++) {
        req->seg[i].gref = (grant_ref_t)(seq * BLKIF_MAX_SEGMENTS_PER_REQUEST + i + 1);
        req->seg[i].first_sect = 0;
        req->seg[i].last_sect = 7;
    }
}

/* The backend's work on its private copy: the checks blkback makes before
 * it maps a request's grants (operation, vdev, each segment within its page,
 * the range on the disk), so that every byte of the request is read once. */
static inline int16_t serve_request(const blkif_request_t *req)
{
    uint64_t sectors = 0;

    if (req->operation != BLKIF_OP_READ || req->handle != BENCH_VDEV || req->nr_segments == 0 ||
        req->nr_segments > BLKIF_MAX_SEGMENTS_PER_REQUEST)
        return BLKIF_RSP_ERROR;
    for (unsigned i = 0; i < req->nr_segments; i++) {
        const struct blkif_request_segment *seg = &req->seg[i];
        if (seg->gref == 0 || seg->last_sect >= 8 || seg->last_sect < seg->first_sect)
            return BLKIF_RSP_ERROR;
        sectors += (uint64_t)(seg->last_sect - seg->first_sect) + 1;
    }
    if (req->sector_number + sectors > BENCH_DISK_SECTORS + 8 * BLKIF_MAX_SEGMENTS_PER_REQUEST)
        return BLKIF_RSP_ERROR;
    return BLKIF_RSP_OKAY;
}

/* Responses come back in order: a cheap end-to-end check of both rings. */
static inline void check_response(const blkif_response_t *rsp, uint64_t seq, uint64_t *bad)
{
    if (rsp->id != seq || rsp->status != BLKIF_RSP_OKAY || rsp->operation != BLKIF_OP_READ)
        (*bad)++;
}

struct front_state {
    uint64_t submitted, completed, total, bad;
};

/* ---- pvabi: the library used as a driver author should ---------------------- */

/* Fills every free slot and publishes them with one index update. */
static inline int pv_front_submit(struct pblk_front *f, struct front_state *s, struct kick *k)
{
    unsigned queued = 0;
    blkif_request_t *req;

    while (s->submitted < s->total && (req = pblk_front_next_req(f)) != NULL) {
        fill_request(req, s->submitted++);
        queued++;
    }
    if (queued == 0)
        return 0;
    int notify = pblk_front_publish(f);
    if (notify > 0)
        kick(k);
    return notify < 0 ? notify : (int)queued;
}

/* Copies every waiting response out with one read of rsp_prod. */
static inline int pv_front_complete(struct pblk_front *f, struct front_state *s)
{
    blkif_response_t rsp[BATCH_MAX];
    int n = pblk_front_copy_rsps(f, rsp, BATCH_MAX);

    for (int i = 0; i < n; i++)
        check_response(&rsp[i], s->completed++, &s->bad);
    return n;
}

/* Copies up to @batch waiting requests out, answers each, publishes once. */
static inline int pv_back_work(struct pblk_back *b, struct kick *k, unsigned batch)
{
    blkif_request_t req[BATCH_MAX];
    int n = pblk_back_copy_reqs(b, req, batch);

    for (int i = 0; i < n; i++) {
        blkif_response_t *rsp = pblk_back_next_rsp(b);
        if (!rsp)
            return -EPROTO;
        rsp->id = req[i].id;
        rsp->operation = req[i].operation;
        rsp->status = serve_request(&req[i]);
    }
    if (n <= 0)
        return n;
    int notify = pblk_back_publish(b);
    if (notify > 0)
        kick(k);
    return notify < 0 ? notify : n;
}

/* Bounded spin on the peer's producer index before committing to sleep: a
 * busy peer answers within microseconds, and catching that here saves both
 * the re-arm (a fence) and the peer's notification (a syscall plus a
 * wake-up).  Then final_check re-arms the event index; 0 means sleep.  The
 * clock is read on the first poll (--spin-us=0: no spin at all) and then
 * every 64 polls only, to keep each poll a load and a pause. */
static int pv_front_idle(struct pblk_front *f, uint64_t spin_ns)
{
    uint64_t deadline = now_ns() + spin_ns;
    int n;

    for (unsigned i = 1; (n = pblk_front_unconsumed(f)) == 0; i++) {
        if (i % 64 == 1 && now_ns() >= deadline)
            return pblk_front_final_check(f);
        spin_step(i);
    }
    return n;
}

/* The backend's side of the same bounded spin. */
static int pv_back_idle(struct pblk_back *b, uint64_t spin_ns)
{
    uint64_t deadline = now_ns() + spin_ns;
    int n;

    for (unsigned i = 1; (n = pblk_back_unconsumed(b)) == 0; i++) {
        if (i % 64 == 1 && now_ns() >= deadline)
            return pblk_back_final_check(b);
        spin_step(i);
    }
    return n;
}

/* ---- Xen's macros, the way Linux's blkfront and blkback use them ------------ */

/* blkif_queue_rq() for each request blk-mq hands over, then flush_requests():
 * one RING_PUSH_REQUESTS_AND_CHECK_NOTIFY per batch. */
static inline int mac_front_submit(blkif_front_ring_t *r, struct front_state *s, struct kick *k)
{
    unsigned queued = 0;
    int notify;

    while (s->submitted < s->total && !RING_FULL(r)) {
        fill_request(RING_GET_REQUEST(r, r->req_prod_pvt), s->submitted++);
        r->req_prod_pvt++;
        queued++;
    }
    if (queued == 0)
        return 0;
    RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(r, notify);
    if (notify)
        kick(k);
    return (int)queued;
}

/* blkif_interrupt(): copy responses rsp_cons..rsp_prod out, then
 * RING_FINAL_CHECK_FOR_RESPONSES while requests are outstanding, else arm
 * rsp_event directly. */
static inline int mac_front_interrupt(blkif_front_ring_t *r, struct front_state *s)
{
    int got = 0, more;

    do {
        RING_IDX rp = READ_ONCE_U32(r->sring->rsp_prod);
        xen_rmb(); /* responses up to rp are visible */
        if (RING_RESPONSE_PROD_OVERFLOW(r, rp))
            return -EPROTO;
        RING_IDX i;
        for (i = r->rsp_cons; i != rp; i++) {
            blkif_response_t bret;
            RING_COPY_RESPONSE(r, i, &bret);
            check_response(&bret, s->completed++, &s->bad);
            got++;
        }
        r->rsp_cons = i;
        more = 0;
        if (i != r->req_prod_pvt)
            RING_FINAL_CHECK_FOR_RESPONSES(r, more);
        else
            r->sring->rsp_event = i + 1;
    } while (more);
    return got;
}

/* make_response(): each response is pushed, and notified, on its own. */
static inline void mac_make_response(blkif_back_ring_t *r, struct kick *k,
                                     const blkif_request_t *req)
{
    blkif_response_t *resp = RING_GET_RESPONSE(r, r->rsp_prod_pvt);
    int notify;

    resp->id = req->id;
    resp->operation = req->operation;
    resp->status = serve_request(req);
    r->rsp_prod_pvt++;
    RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(r, notify);
    if (notify)
        kick(k);
}

/* __do_block_io_op(): rc..rp, RING_REQUEST_CONS_OVERFLOW, RING_COPY_REQUEST,
 * req_cons advanced before the response is made. */
static inline int mac_back_drain(blkif_back_ring_t *r, struct kick *k)
{
    RING_IDX rc = r->req_cons;
    RING_IDX rp = READ_ONCE_U32(r->sring->req_prod);

    xen_rmb(); /* requests up to rp are visible */
    if (RING_REQUEST_PROD_OVERFLOW(r, rp))
        return -EPROTO;
    while (rc != rp) {
        blkif_request_t req;
        if (RING_REQUEST_CONS_OVERFLOW(r, rc))
            break;
        RING_COPY_REQUEST(r, rc, &req);
        r->req_cons = ++rc;
        mac_make_response(r, k, &req);
    }
    return 0;
}

/* do_block_io_op(): drain, RING_FINAL_CHECK_FOR_REQUESTS, again if needed. */
static inline int mac_back_do_block_io_op(blkif_back_ring_t *r, struct kick *k)
{
    int more;

    do {
        more = mac_back_drain(r, k);
        if (more)
            return more;
        RING_FINAL_CHECK_FOR_REQUESTS(r, more);
    } while (more);
    return 0;
}

/* ---- the threaded rounds ----------------------------------------------------- */

struct round {
    const struct config *cfg;
    enum impl impl;
    void *shared;
    int front_fd, back_fd, done_fd; /* the front sleeps on front_fd, ... */
    atomic_int stop;
    /* Written by the thread that owns them, read by main after join. */
    uint64_t t_start, t_end;
    struct kick to_back, to_front;
    struct front_state fs;
    int front_err, back_err;
};

static int stopping(struct round *rd)
{
    return atomic_load_explicit(&rd->stop, memory_order_relaxed);
}

/* Wakes whoever sleeps on @fd (a stopping thread, or main). */
static void wake(int fd)
{
    uint64_t one = 1;

    if (write(fd, &one, sizeof(one)) < 0)
        return; /* cannot fail below a counter of 2^64-2 */
}

/* Called once by the frontend when the last response is in. */
static void front_finished(struct round *rd)
{
    rd->t_end = now_ns();
    wake(rd->done_fd);
}

/* Either thread, on a ring error: stop both and wake main now rather than at
 * its timeout. */
static void fail(struct round *rd, int *err, int e)
{
    *err = e;
    atomic_store(&rd->stop, 1);
    wake(rd->done_fd);
    wake(rd->front_fd);
    wake(rd->back_fd);
}

static void *pv_front_thread(void *arg)
{
    struct round *rd = arg;
    struct pblk_front f;
    int n, done = 0;

    if ((n = pblk_front_attach(&f, rd->shared, rd->cfg->order)) < 0) {
        fail(rd, &rd->front_err, n);
        return NULL;
    }
    rd->t_start = now_ns();
    while (!stopping(rd)) {
        if ((n = pv_front_submit(&f, &rd->fs, &rd->to_back)) < 0 ||
            (n = pv_front_complete(&f, &rd->fs)) < 0) {
            fail(rd, &rd->front_err, n);
            break;
        }
        if (!done && rd->fs.completed == rd->fs.total) {
            front_finished(rd);
            done = 1;
        }
        if (n > 0)
            continue; /* freed slots: submit again before anything else */
        if ((n = pv_front_idle(&f, rd->cfg->spin_ns)) < 0) {
            fail(rd, &rd->front_err, n);
            break;
        }
        if (n > 0)
            continue;
        if (rd->cfg->notifying)
            sleep_on(rd->front_fd);
        else
            for (unsigned i = 1; pblk_front_unconsumed(&f) == 0 && !stopping(rd); i++)
                spin_step(i);
    }
    return NULL;
}

static void *pv_back_thread(void *arg)
{
    struct round *rd = arg;
    struct pblk_back b;
    int n;

    if ((n = pblk_back_attach(&b, rd->shared, rd->cfg->order)) < 0) {
        fail(rd, &rd->back_err, n);
        return NULL;
    }
    while (!stopping(rd)) {
        if ((n = pv_back_work(&b, &rd->to_front, rd->cfg->batch)) == 0)
            n = pv_back_idle(&b, rd->cfg->spin_ns);
        if (n < 0) {
            fail(rd, &rd->back_err, n);
            break;
        }
        if (n > 0)
            continue;
        if (rd->cfg->notifying)
            sleep_on(rd->back_fd);
        else
            for (unsigned i = 1; pblk_back_unconsumed(&b) == 0 && !stopping(rd); i++)
                spin_step(i);
    }
    return NULL;
}

/* blkfront: blk-mq submits while the ring has room; the interrupt handler
 * completes and kicks the queue.  Sleep stands in for waiting for the IRQ. */
static void *mac_front_thread(void *arg)
{
    struct round *rd = arg;
    blkif_front_ring_t r;
    int n, done = 0;

    FRONT_RING_INIT(&r, (blkif_sring_t *)rd->shared, PVABI_RING_PAGE_SIZE << rd->cfg->order);
    rd->t_start = now_ns();
    mac_front_submit(&r, &rd->fs, &rd->to_back);
    while (!stopping(rd)) {
        if (rd->cfg->notifying)
            sleep_on(rd->front_fd);
        else
            for (unsigned i = 1; !RING_HAS_UNCONSUMED_RESPONSES(&r) && !stopping(rd); i++)
                spin_step(i);
        if ((n = mac_front_interrupt(&r, &rd->fs)) < 0) {
            fail(rd, &rd->front_err, n);
            break;
        }
        mac_front_submit(&r, &rd->fs, &rd->to_back);
        if (!done && rd->fs.completed == rd->fs.total) {
            front_finished(rd);
            done = 1;
        }
    }
    return NULL;
}

/* blkback's xen_blkif_schedule(): do_block_io_op until no more work, then
 * wait for the frontend's event. */
static void *mac_back_thread(void *arg)
{
    struct round *rd = arg;
    blkif_back_ring_t r;
    int n;

    BACK_RING_INIT(&r, (blkif_sring_t *)rd->shared, PVABI_RING_PAGE_SIZE << rd->cfg->order);
    while (!stopping(rd)) {
        if ((n = mac_back_do_block_io_op(&r, &rd->to_front)) < 0) {
            fail(rd, &rd->back_err, n);
            break;
        }
        if (rd->cfg->notifying)
            sleep_on(rd->back_fd);
        else
            for (unsigned i = 1; !RING_HAS_UNCONSUMED_REQUESTS(&r) && !stopping(rd); i++)
                spin_step(i);
    }
    return NULL;
}

struct result {
    double rate;        /* requests per second */
    double notify_rate; /* notifications per request, both directions */
    double idle_cpu;    /* % of one CPU both threads used while idle, or -1 */
};

/* Waits for the frontend's "all answered" with a deadline. */
static int wait_done(int fd, uint64_t deadline)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };

    while (now_ns() < deadline)
        if (poll(&p, 1, 1000) > 0)
            return 0;
    return -ETIMEDOUT;
}

static uint64_t thread_cpu_ns(pthread_t t)
{
    clockid_t id;
    struct timespec ts;

    if (pthread_getcpuclockid(t, &id) != 0 || clock_gettime(id, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* Both threads sit in their ordinary loops with nothing to do: CPU time they
 * use meanwhile, as a percentage of the wall time. */
static double measure_idle(pthread_t a, pthread_t b, uint64_t idle_ns)
{
    uint64_t w0 = now_ns(), c0 = thread_cpu_ns(a) + thread_cpu_ns(b);
    struct timespec ts = { .tv_sec = (time_t)(idle_ns / NSEC_PER_SEC),
                           .tv_nsec = (long)(idle_ns % NSEC_PER_SEC) };

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    uint64_t c1 = thread_cpu_ns(a) + thread_cpu_ns(b), w1 = now_ns();
    return 100.0 * (double)(c1 - c0) / (double)(w1 - w0);
}

static int round_setup(struct round *rd, const struct config *cfg, enum impl impl)
{
    size_t bytes = (size_t)PVABI_RING_PAGE_SIZE << cfg->order;
    struct pblk_front f;

    memset(rd, 0, sizeof(*rd));
    rd->cfg = cfg;
    rd->impl = impl;
    rd->fs.total = cfg->requests;
    rd->shared = aligned_alloc(PVABI_RING_PAGE_SIZE, bytes);
    rd->front_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    rd->back_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    rd->done_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!rd->shared || rd->front_fd < 0 || rd->back_fd < 0 || rd->done_fd < 0)
        return -ENOMEM;
    memset(rd->shared, 0, bytes);
    rd->to_back = (struct kick){ .fd = rd->back_fd, .deliver = cfg->notifying };
    rd->to_front = (struct kick){ .fd = rd->front_fd, .deliver = cfg->notifying };
    /* Same initial shared state for both: indices 0, both events 1. */
    return pblk_front_init(&f, rd->shared, cfg->order);
}

static void round_teardown(struct round *rd)
{
    close(rd->front_fd);
    close(rd->back_fd);
    close(rd->done_fd);
    free(rd->shared);
}

/* Optional: keeps the two threads on different CPUs, so that neither ever
 * spins on a CPU its peer needs.  Other processes can still preempt them. */
static void pin_thread(pthread_t t, int cpu)
{
    cpu_set_t set;

    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (pthread_setaffinity_np(t, sizeof(set), &set) != 0)
        fprintf(stderr, "ring_bench: cannot pin a thread to CPU %d, running unpinned\n", cpu);
}

static int run_round(const struct config *cfg, enum impl impl, struct result *res)
{
    static void *(*const fronts[])(void *) = { pv_front_thread, mac_front_thread };
    static void *(*const backs[])(void *) = { pv_back_thread, mac_back_thread };
    struct round rd;
    pthread_t ft, bt;
    int err = round_setup(&rd, cfg, impl);

    if (err < 0 || pthread_create(&bt, NULL, backs[impl], &rd) != 0) {
        round_teardown(&rd);
        return err < 0 ? err : -EAGAIN;
    }
    if (pthread_create(&ft, NULL, fronts[impl], &rd) != 0) {
        atomic_store(&rd.stop, 1);
        wake(rd.back_fd);
        pthread_join(bt, NULL);
        round_teardown(&rd);
        return -EAGAIN;
    }
    if (cfg->pin) {
        pin_thread(ft, 0);
        pin_thread(bt, 1);
    }
    err = wait_done(rd.done_fd, now_ns() + cfg->timeout_ns);
    res->idle_cpu = -1;
    if (err == 0 && cfg->notifying)
        res->idle_cpu = measure_idle(ft, bt, cfg->idle_ns);
    atomic_store(&rd.stop, 1);
    wake(rd.front_fd); /* sleepers see stop now, not after their timeout */
    wake(rd.back_fd);
    pthread_join(ft, NULL);
    pthread_join(bt, NULL);
    round_teardown(&rd);
    if (err == 0)
        err = rd.front_err ? rd.front_err : rd.back_err;
    if (err == 0 && (rd.fs.bad || rd.fs.completed != rd.fs.total))
        err = -EIO;
    if (err < 0)
        return err;
    res->rate = (double)cfg->requests * NSEC_PER_SEC / (double)(rd.t_end - rd.t_start);
    res->notify_rate = (double)(rd.to_back.sent + rd.to_front.sent) / (double)cfg->requests;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, unsigned n)
{
    double s[n];

    memcpy(s, v, sizeof(s));
    qsort(s, n, sizeof(s[0]), cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

static void print_summary(const struct config *cfg, const struct result res[][2])
{
    double med[2], nr[2], idle[2], v[cfg->rounds];

    for (int impl = 0; impl < 2; impl++) {
        for (unsigned i = 0; i < cfg->rounds; i++)
            v[i] = res[i][impl].rate;
        med[impl] = median(v, cfg->rounds);
        for (unsigned i = 0; i < cfg->rounds; i++)
            v[i] = res[i][impl].notify_rate;
        nr[impl] = median(v, cfg->rounds);
        idle[impl] = 0;
        for (unsigned i = 0; i < cfg->rounds; i++)
            idle[impl] = res[i][impl].idle_cpu > idle[impl] ? res[i][impl].idle_cpu : idle[impl];
        printf("median %-6s %12.0f req/s  %.6f notifications/req", impl_name[impl], med[impl],
               nr[impl]);
        if (cfg->notifying)
            printf("  idle CPU max %.3f%%", idle[impl]);
        printf("\n");
    }
    double ratio = med[0] / med[1], goal = cfg->notifying ? 10.0 : 1.5;
    printf("ratio pvabi/macros (medians) %.2f  goal >= %.1f: %s\n", ratio, goal,
           ratio >= goal ? "met" : "NOT met");
    if (cfg->notifying)
        printf("pvabi notifications/req %.6f  goal <= 0.01: %s\n", nr[0],
               nr[0] <= 0.01 ? "met" : "NOT met");
}

static int run_rounds(const struct config *cfg)
{
    struct result(*res)[2] = calloc(cfg->rounds, sizeof(*res));
    uint32_t slots = pblk_ring_nr_ents(cfg->order);

    if (!res)
        return 1;
    printf("ring_bench %s: blkif ring order %u (%" PRIu32 " slots of %zu bytes), %" PRIu64
           " requests/round, %u rounds, pvabi spin %" PRIu64 " us\n",
           cfg->notifying ? "notifying" : "polling", cfg->order, slots, sizeof(union pblk_slot),
           cfg->requests, cfg->rounds, cfg->spin_ns / 1000);
    printf("round impl          req/s  notifications/req  idle-CPU%%\n");
    for (unsigned i = 0; i < cfg->rounds; i++) {
        for (int impl = 0; impl < 2; impl++) {
            struct result *r = &res[i][impl];
            int err = run_round(cfg, (enum impl)impl, r);
            if (err < 0) {
                fprintf(stderr, "ring_bench: round %u %s failed: %s\n", i + 1, impl_name[impl],
                        strerror(-err));
                free(res);
                return 1;
            }
            printf("%5u %-6s %12.0f  %17.6f  ", i + 1, impl_name[impl], r->rate, r->notify_rate);
            if (r->idle_cpu >= 0)
                printf("%9.3f\n", r->idle_cpu);
            else
                printf("%9s\n", "-");
            fflush(stdout);
        }
    }
    print_summary(cfg, (const struct result(*)[2])res);
    free(res);
    return 0;
}

/* ---- single thread, for callgrind ------------------------------------------------ */

/* One thread plays both ends in turn; noinline so that callgrind's inclusive
 * cost of each function is that implementation's whole loop. */
__attribute__((noinline)) static uint64_t single_pvabi(void *shared, unsigned order, uint64_t n,
                                                       unsigned batch)
{
    struct pblk_front f;
    struct pblk_back b;
    struct front_state s = { .total = n };
    struct kick to_back = { 0 }, to_front = { 0 };

    if (pblk_front_init(&f, shared, order) < 0 || pblk_back_attach(&b, shared, order) < 0)
        return UINT64_MAX;
    while (s.completed < n) {
        if (pv_front_submit(&f, &s, &to_back) < 0 || pv_back_work(&b, &to_front, batch) < 0 ||
            pv_front_complete(&f, &s) < 0)
            return UINT64_MAX;
    }
    return s.bad;
}

__attribute__((noinline)) static uint64_t single_macros(void *shared, unsigned order, uint64_t n)
{
    blkif_sring_t *sring = shared;
    blkif_front_ring_t f;
    blkif_back_ring_t b;
    struct front_state s = { .total = n };
    struct kick to_back = { 0 }, to_front = { 0 };
    size_t bytes = PVABI_RING_PAGE_SIZE << order;

    SHARED_RING_INIT(sring);
    FRONT_RING_INIT(&f, sring, bytes);
    BACK_RING_INIT(&b, sring, bytes);
    while (s.completed < n) {
        mac_front_submit(&f, &s, &to_back);
        if (mac_back_do_block_io_op(&b, &to_front) < 0 || mac_front_interrupt(&f, &s) < 0)
            return UINT64_MAX;
    }
    return s.bad;
}

/* The same work with no ring at all: fill a ring's worth of slots, serve
 * them, check the answers, with a compiler barrier between the phases so
 * nothing is folded away.  callgrind.sh subtracts it from the two above to
 * show what each ring implementation itself costs per request. */
__attribute__((noinline)) static uint64_t single_floor(void *shared, unsigned order, uint64_t n)
{
    union pblk_slot *slot = ((struct pblk_shared *)shared)->ring;
    uint32_t nr = pblk_ring_nr_ents(order), k;
    struct front_state s = { .total = n };

    while (s.completed < n) {
        for (k = 0; k < nr && s.submitted < n; k++)
            fill_request(&slot[k].req, s.submitted++);
        atomic_signal_fence(memory_order_seq_cst);
        for (uint32_t i = 0; i < k; i++) {
            blkif_response_t rsp = { .id = slot[i].req.id,
                                     .operation = slot[i].req.operation,
                                     .status = serve_request(&slot[i].req) };
            slot[i].rsp = rsp;
        }
        atomic_signal_fence(memory_order_seq_cst);
        for (uint32_t i = 0; i < k; i++)
            check_response(&slot[i].rsp, s.completed++, &s.bad);
    }
    return s.bad;
}

static int run_single(uint64_t n, unsigned order, unsigned batch)
{
    size_t bytes = (size_t)PVABI_RING_PAGE_SIZE << order;
    void *shared = aligned_alloc(PVABI_RING_PAGE_SIZE, bytes);
    uint64_t t[4], bad;

    if (!shared)
        return 1;
    memset(shared, 0, bytes);
    t[0] = now_ns();
    bad = single_pvabi(shared, order, n, batch);
    t[1] = now_ns();
    memset(shared, 0, bytes);
    bad |= single_macros(shared, order, n);
    t[2] = now_ns();
    bad |= single_floor(shared, order, n);
    t[3] = now_ns();
    free(shared);
    /* The times are only indicative (one run, no interleaving, and 50x
     * slower under callgrind); the instruction counts are the figure. */
    printf("single-thread: %" PRIu64 " requests %s; ns/req pvabi %.1f, macros %.1f, no ring %.1f\n",
           n, bad ? "FAILED" : "ok", (double)(t[1] - t[0]) / (double)n,
           (double)(t[2] - t[1]) / (double)n, (double)(t[3] - t[2]) / (double)n);
    return bad != 0;
}

/* ---- command line ---------------------------------------------------------------- */

static int usage(void)
{
    fprintf(stderr, "usage: ring_bench --mode=polling|notifying [--requests=N] [--rounds=R]\n"
                    "                  [--order=K] [--batch=B] [--spin-us=U] [--idle-ms=M]\n"
                    "                  [--timeout=S] [--pin] [--no-yield]\n"
                    "       ring_bench --single=N [--order=K] [--batch=B]\n");
    return 2;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;

    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-')
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "mode", required_argument, NULL, 'm' },    { "requests", required_argument, NULL, 'n' },
        { "rounds", required_argument, NULL, 'r' },  { "order", required_argument, NULL, 'o' },
        { "batch", required_argument, NULL, 'b' },   { "spin-us", required_argument, NULL, 's' },
        { "idle-ms", required_argument, NULL, 'i' }, { "timeout", required_argument, NULL, 't' },
        { "pin", no_argument, NULL, 'p' },           { "no-yield", no_argument, NULL, 'y' },
        { "single", required_argument, NULL, '1' },  { NULL, 0, NULL, 0 },
    };
    struct config cfg = {
        .notifying = -1,
        .requests = 1000000,
        .rounds = 5,
        .order = 0,
        .batch = 16,
        .spin_ns = 20000,
        .idle_ns = 300000000,
        .timeout_ns = 120 * NSEC_PER_SEC,
    };
    uint64_t v, single = 0;
    int c;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 'm') {
            if (strcmp(optarg, "polling") && strcmp(optarg, "notifying"))
                return usage();
            cfg.notifying = strcmp(optarg, "notifying") == 0;
            continue;
        }
        if (c == 'y') {
            g_yield = 0;
            continue;
        }
        if (c == 'p') {
            cfg.pin = 1;
            continue;
        }
        if (c == '?' || parse_u64(optarg, &v) < 0)
            return usage();
        if (c == 'n')
            cfg.requests = v;
        else if (c == 'r')
            cfg.rounds = (unsigned)v;
        else if (c == 'o')
            cfg.order = (unsigned)v;
        else if (c == 's')
            cfg.spin_ns = v * 1000;
        else if (c == 'i')
            cfg.idle_ns = v * 1000000;
        else if (c == 't')
            cfg.timeout_ns = v * NSEC_PER_SEC;
        else if (c == '1')
            single = v;
        else if (c == 'b')
            cfg.batch = (unsigned)v;
    }
    if (optind != argc || cfg.order > PVABI_RING_MAX_ORDER || cfg.requests == 0 ||
        cfg.rounds == 0 || cfg.rounds > 1000 || cfg.batch == 0 || cfg.batch > BATCH_MAX)
        return usage();
    if (single)
        return run_single(single, cfg.order, cfg.batch);
    if (cfg.notifying < 0)
        return usage();
    return run_rounds(&cfg);
}
