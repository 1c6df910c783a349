/* SPDX-License-Identifier: MIT */
/*
 * ring_demo - a frontend and a backend process sharing one ring.
 *
 * The parent is the frontend: it asks a toy "disk" for sectors.  The child is
 * the backend: it answers each request with a checksum of the sector contents
 * it computes.  They share the ring pages through a memfd and kick each other
 * through two eventfds, exactly as a split driver would use a grant and an
 * event channel.  Both sides batch: consume everything available, publish
 * once, notify only when the peer asked for it (Xen's *_event protocol), and
 * spin briefly before sleeping.
 *
 * usage: ring_demo [REQUESTS] [PAGE_ORDER]
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pvabi/pvabi.h>

struct disk_req {
    uint64_t id;
    uint64_t sector;
    uint32_t nr_sectors;
    uint32_t op;
};

struct disk_rsp {
    uint64_t id;
    uint64_t checksum;
    int32_t status;
    uint32_t pad;
};

PVABI_RING_DEFINE(disk, struct disk_req, struct disk_rsp);

#define MAX_SECTORS     8
#define OP_READ         0
#define OP_STOP         1    /* the frontend is done: the backend exits */
#define SPIN_POLLS      2000 /* polls of the ring before sleeping */
#define WAIT_TIMEOUT_MS 1000 /* then check the peer is still alive */
#define PEER_DEAD_AFTER 10   /* timeouts in a row with the peer gone */

struct side {
    int kick_peer; /* eventfd we write to notify the peer */
    int kicked;    /* eventfd the peer writes to notify us */
    unsigned long notifies, sleeps;
};

/* What sector `s` of the toy disk checksums to. */
static uint64_t sector_sum(uint64_t s)
{
    uint64_t x = s * 0x9E3779B97F4A7C15ull;
    return x ^ (x >> 29);
}

static uint64_t expected_sum(const struct disk_req *r)
{
    uint64_t sum = 0;
    for (uint32_t i = 0; i < r->nr_sectors; i++)
        sum += sector_sum(r->sector + i);
    return sum;
}

static void notify(struct side *s)
{
    uint64_t one = 1;
    if (write(s->kick_peer, &one, sizeof(one)) == sizeof(one))
        s->notifies++;
}

/* Sleeps until kicked; 0 when kicked, -ETIMEDOUT, or another -errno. */
static int sleep_until_kicked(struct side *s)
{
    struct pollfd p = { .fd = s->kicked, .events = POLLIN };
    uint64_t n;
    s->sleeps++;
    int r = poll(&p, 1, WAIT_TIMEOUT_MS);
    if (r == 0)
        return -ETIMEDOUT;
    if (r < 0)
        return -errno;
    return read(s->kicked, &n, sizeof(n)) == sizeof(n) ? 0 : -errno;
}

/* ---- backend (child process) --------------------------------------------- */

/* Answers what is waiting; the count, or -EPIPE after a stop request. */
static int back_serve_batch(struct disk_back *b)
{
    struct disk_req reqs[64];
    int n = disk_back_copy_reqs(b, reqs, 64), stop = 0;
    for (int i = 0; i < n; i++) {
        struct disk_rsp *rsp = disk_back_next_rsp(b);
        rsp->id = reqs[i].id;
        stop |= reqs[i].op == OP_STOP;
        /* Validate the private copy before using it, never the slot. */
        if (reqs[i].op != OP_READ || reqs[i].nr_sectors == 0 || reqs[i].nr_sectors > MAX_SECTORS) {
            rsp->status = -EINVAL;
            rsp->checksum = 0;
            continue;
        }
        rsp->status = 0;
        rsp->checksum = expected_sum(&reqs[i]);
    }
    return stop ? -EPIPE : n;
}

static int backend_run(void *shared, unsigned order, struct side *s)
{
    struct disk_back b;
    int idle = 0, rc = disk_back_attach(&b, shared, order);

    while (rc == 0) {
        int n = back_serve_batch(&b);
        if (n == -EPIPE && disk_back_publish(&b) == 1)
            notify(s); /* answer the stop request before leaving */
        if (n < 0)
            return n;
        if (n > 0) {
            if (disk_back_publish(&b) == 1)
                notify(s);
            idle = 0;
            continue;
        }
        if (++idle < SPIN_POLLS)
            continue;
        idle = 0;
        int more = disk_back_final_check(&b);
        if (more < 0)
            return more;
        if (more == 0 && (rc = sleep_until_kicked(s)) == -ETIMEDOUT)
            rc = getppid() == 1 ? -EPIPE : 0; /* frontend gone: stop */
    }
    return rc;
}

/* ---- frontend (parent process) -------------------------------------------- */

struct front_stats {
    uint64_t sent, done, bad;
};

static void front_queue(struct disk_front *f, struct front_stats *st, uint64_t total)
{
    struct disk_req *r;
    while (st->sent < total && (r = disk_front_next_req(f)) != NULL) {
        r->id = st->sent;
        r->sector = (st->sent * 7919) % (1u << 20);
        r->nr_sectors = 1 + (uint32_t)(st->sent % MAX_SECTORS);
        r->op = OP_READ;
        st->sent++;
    }
}

static int front_collect(struct disk_front *f, struct front_stats *st)
{
    struct disk_rsp rsp[64];
    int n = disk_front_copy_rsps(f, rsp, 64);
    for (int i = 0; i < n; i++) {
        struct disk_req want = { .id = rsp[i].id,
                                 .sector = (rsp[i].id * 7919) % (1u << 20),
                                 .nr_sectors = 1 + (uint32_t)(rsp[i].id % MAX_SECTORS) };
        if (rsp[i].id != st->done + (uint64_t)i || rsp[i].status != 0 ||
            rsp[i].checksum != expected_sum(&want))
            st->bad++;
    }
    if (n > 0)
        st->done += (uint64_t)n;
    return n;
}

static int frontend_wait(struct disk_front *f, struct side *s, pid_t backend, int *idle)
{
    if (++*idle < SPIN_POLLS)
        return 0;
    *idle = 0;
    int more = disk_front_final_check(f);
    if (more != 0)
        return more < 0 ? more : 0;
    int rc = sleep_until_kicked(s);
    if (rc == -ETIMEDOUT && waitpid(backend, NULL, WNOHANG) == backend) {
        fprintf(stderr, "ring_demo: the backend died\n");
        return -EPIPE;
    }
    return rc == -ETIMEDOUT ? 0 : rc;
}

static int frontend_run(struct disk_front *f, struct side *s, pid_t backend, uint64_t total,
                        struct front_stats *st)
{
    int idle = 0;
    while (st->done < total) {
        front_queue(f, st, total);
        int pub = disk_front_publish(f);
        if (pub < 0)
            return pub;
        if (pub == 1)
            notify(s);
        int n = front_collect(f, st);
        if (n < 0)
            return n;
        if (n > 0) {
            idle = 0;
            continue;
        }
        int rc = frontend_wait(f, s, backend, &idle);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Asks the backend to exit and reaps it; kills it if it does not answer. */
static void stop_backend(struct disk_front *f, struct side *s, pid_t backend)
{
    struct disk_req *r = disk_front_next_req(f);
    if (r != NULL) {
        *r = (struct disk_req){ .id = UINT64_MAX, .op = OP_STOP };
        disk_front_publish(f);
        notify(s); /* unconditionally: the backend may be asleep or spinning */
    }
    /* Wait for the exit itself (a pidfd polls readable), with a deadline. */
    int pidfd = pidfd_open(backend, 0);
    struct pollfd p = { .fd = pidfd, .events = POLLIN };
    if (pidfd >= 0 && poll(&p, 1, 10 * WAIT_TIMEOUT_MS) == 1) {
        close(pidfd);
        waitpid(backend, NULL, 0);
        return;
    }
    if (pidfd >= 0)
        close(pidfd);
    fprintf(stderr, "ring_demo: the backend did not stop; killing it\n");
    kill(backend, SIGKILL);
    waitpid(backend, NULL, 0);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int map_ring(unsigned order, void **shared)
{
    size_t len = (size_t)PVABI_RING_PAGE_SIZE << order;
    int fd = memfd_create("pvabi-ring-demo", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, (off_t)len) != 0)
        return -errno;
    *shared = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    return *shared == MAP_FAILED ? -errno : 0;
}

static int run(uint64_t total, unsigned order)
{
    void *shared;
    int to_back = eventfd(0, EFD_CLOEXEC), to_front = eventfd(0, EFD_CLOEXEC);
    struct disk_front f;
    int rc = map_ring(order, &shared);

    if (rc == 0 && (to_back < 0 || to_front < 0))
        rc = -errno;
    if (rc == 0)
        rc = disk_front_init(&f, shared, order);
    if (rc != 0) {
        fprintf(stderr, "ring_demo: setting up the ring: %s\n", strerror(-rc));
        return 1;
    }
    printf("ring_demo: pvabi %s, ring of %u page(s), %u slots, %llu requests\n", pvabi_version(),
           1u << order, disk_ring_nr_ents(order), (unsigned long long)total);
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        struct side bs = { .kick_peer = to_front, .kicked = to_back };
        rc = backend_run(shared, order, &bs);
        printf("backend: %lu notifications sent, slept %lu times\n", bs.notifies, bs.sleeps);
        fflush(stdout);
        _exit(rc == -EPIPE ? 0 : 1);
    }
    struct side fs = { .kick_peer = to_back, .kicked = to_front };
    struct front_stats st = { 0 };
    double t0 = now_s();
    rc = frontend_run(&f, &fs, child, total, &st);
    double dt = now_s() - t0;
    stop_backend(&f, &fs, child);
    printf("frontend: %llu answered, %llu wrong, %.0f requests/s, %lu notifications sent "
           "(%.4f per request), slept %lu times\n",
           (unsigned long long)st.done, (unsigned long long)st.bad, (double)st.done / dt,
           fs.notifies, (double)fs.notifies / (double)(st.done ? st.done : 1), fs.sleeps);
    if (rc != 0)
        fprintf(stderr, "ring_demo: %s\n", strerror(-rc));
    return rc == 0 && st.bad == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    uint64_t total = argc > 1 ? strtoull(argv[1], NULL, 0) : 1000000;
    unsigned long order = argc > 2 ? strtoul(argv[2], NULL, 0) : 0;
    if (total == 0 || order > PVABI_RING_MAX_ORDER) {
        fprintf(stderr, "usage: ring_demo [REQUESTS>0] [PAGE_ORDER 0..%u]\n", PVABI_RING_MAX_ORDER);
        return 2;
    }
    return run(total, (unsigned)order);
}
