/* SPDX-License-Identifier: MIT */
/*
 * vbd_demo - the main demo: a virtual block device (Xen's blkif protocol)
 * served by a backend domain to a frontend domain, on pvabi's embedded
 * hypervisor, narrated step by step.
 *
 *   1. a private pvabi-hv is started (the library starts it on demand, on a
 *      socket in a fresh temporary directory);
 *   2. a scratch disk image is created there;
 *   3. a backend domain (domain 0, a child process) runs examples/blkback's
 *      serving core;
 *   4. the toolstack step writes the device's two store directories, as
 *      `xl block-attach` does, and a watcher prints every XenbusState both
 *      ends go through;
 *   5. the frontend domain (this process) connects with examples/blkfront,
 *      writes a pattern, flushes, reads it back and verifies it, then does
 *      4 KiB random reads with 32 requests in flight next to plain pread()
 *      on the same image;
 *   6. everything is torn down: close handshake, backend, hypervisor,
 *      temporary directory.
 *
 * usage: vbd_demo [MIB]   (the image size, default 64)
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <pvabi/pvabi.h>

#include "blkback.h"
#include "blkfront.h"

#define DEVID      51712 /* xvda */
#define CHUNK      (1u << 20)
#define DEPTH      32
#define RANDOM_OPS 40000u
#define WAIT_MS    10000

static pthread_mutex_t print_lock = PTHREAD_MUTEX_INITIALIZER;

/* One narrated line: "[who] text". */
static void say(const char *who, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const char *who, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&print_lock);
    printf("%-11s ", who);
    vprintf(fmt, ap);
    putchar('\n');
    fflush(stdout);
    pthread_mutex_unlock(&print_lock);
    va_end(ap);
}

static int fail(const char *what, int rc)
{
    say("[error]", "%s: %s", what, strerror(rc < 0 ? -rc : rc));
    return -1;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* ---- the scratch directory and the hypervisor ---------------------------- */

struct demo {
    char dir[64];
    char sock[128];
    char image[128];
    uint64_t image_bytes;
    pvabi_ctx *toolstack;
    pvabi_ctx *front_ctx;
    pid_t backend;
};

static int make_image(struct demo *d)
{
    int fd = open(d->image, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int rc = ftruncate(fd, (off_t)d->image_bytes) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

/* The daemon's pid, from the kernel (SO_PEERCRED), as `pvabi hv stop` finds it. */
static pid_t hv_pid(const char *sock)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct ucred cred = { .pid = -1 };
    socklen_t len = sizeof(cred);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
        cred.pid = -1;
    close(fd);
    return cred.pid;
}

/* Stops the daemon and waits (up to WAIT_MS) for it to exit: it is not our
 * child, so through a pidfd rather than waitpid(). */
static void hv_stop(struct demo *d)
{
    pid_t pid = hv_pid(d->sock);
    int pidfd = pid > 0 ? pidfd_open(pid, 0) : -1;
    if (pidfd < 0 || kill(pid, SIGTERM) != 0) {
        say("[hv]", "pvabi-hv not found; it exits by itself when idle");
    } else {
        struct pollfd p = { .fd = pidfd, .events = POLLIN };
        int gone = poll(&p, 1, WAIT_MS) == 1;
        say("[hv]", "pvabi-hv (pid %d) %s", (int)pid, gone ? "stopped" : "did not stop in time");
    }
    if (pidfd >= 0)
        close(pidfd);
}

static void remove_dir(struct demo *d)
{
    unlink(d->image);
    unlink(d->sock);
    /* What the daemon leaves next to its socket: the store's socket and the
     * lock file that keeps a second daemon off the same path. */
    static const char *const leftovers[] = { ".xenstore", ".lock" };
    for (unsigned i = 0; i < 2; i++) {
        char path[160];
        snprintf(path, sizeof(path), "%s%s", d->sock, leftovers[i]);
        unlink(path);
    }
    if (rmdir(d->dir) != 0)
        say("[cleanup]", "%s: %s", d->dir, strerror(errno));
}

/* ---- the backend domain ----------------------------------------------------- */

static struct blkback *backend_core;

static void on_term(int sig)
{
    (void)sig;
    if (backend_core)
        blkback_stop(backend_core);
}

static void backend_log(void *opaque, int level, const char *msg)
{
    (void)opaque;
    if (level <= PVABI_LOG_INFO)
        say("[backend]", "%s", msg);
}

/* The child: domain 0 serving every vbd under its backend directory. */
static int backend_main(void)
{
    pvabi_ctx *ctx;
    setenv("PVABI_LOCAL_DOMID", "0", 1);
    int rc = pvabi_open(&ctx, "local");
    if (rc < 0)
        return fail("backend: pvabi_open", rc), 1;
    struct blkback_opts o;
    blkback_opts_default(&o);
    o.log_fn = backend_log;
    say("[backend]", "domain %u: blkback serving the vbds under /local/domain/%u/backend/vbd",
        pvabi_own_domid(ctx), pvabi_own_domid(ctx));
    rc = blkback_create(ctx, &o, &backend_core);
    if (rc == 0) {
        signal(SIGTERM, on_term);
        rc = blkback_run(backend_core, -1);
        blkback_log_stats(backend_core);
        blkback_destroy(backend_core);
    }
    pvabi_close(ctx);
    return rc < 0 ? fail("backend", rc), 1 : 0;
}

static int start_backend(struct demo *d)
{
    fflush(stdout);
    d->backend = fork();
    if (d->backend < 0)
        return -errno;
    if (d->backend == 0)
        _exit(backend_main());
    return 0;
}

static int stop_backend(struct demo *d)
{
    int st = 0;
    if (d->backend <= 0)
        return 0;
    kill(d->backend, SIGTERM);
    waitpid(d->backend, &st, 0);
    d->backend = 0;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}

/* ---- the state watcher ------------------------------------------------------ */

struct watcher {
    pvabi_ctx *ctx;
    char front_state[96], back_state[96];
    pthread_mutex_t lock; /* guards last_*, stop */
    pthread_cond_t changed;
    int last_front, last_back;
    int stop;
    int started;
    pthread_t thread;
};

static int read_state(pvabi_ctx *ctx, const char *path)
{
    uint32_t v;
    return pvabi_store_read_u32(ctx, PVABI_STORE_TXN_NONE, path, &v) == 0 ? (int)v : 0;
}

static void on_state(pvabi_ctx *ctx, const char *path, void *opaque)
{
    struct watcher *w = opaque;
    (void)path;
    int f = read_state(ctx, w->front_state), b = read_state(ctx, w->back_state);
    if (f != w->last_front && f != 0)
        say("[xenbus]", "frontend state -> %s", pvabi_xenbus_state_name(f));
    if (b != w->last_back && b != 0)
        say("[xenbus]", "backend  state -> %s", pvabi_xenbus_state_name(b));
    pthread_mutex_lock(&w->lock);
    w->last_front = f, w->last_back = b;
    pthread_cond_broadcast(&w->changed);
    pthread_mutex_unlock(&w->lock);
}

static int watcher_stopping(struct watcher *w)
{
    pthread_mutex_lock(&w->lock);
    int stop = w->stop;
    pthread_mutex_unlock(&w->lock);
    return stop;
}

static void *watch_thread(void *arg)
{
    struct watcher *w = arg;
    while (!watcher_stopping(w))
        pvabi_store_wait(w->ctx, 100);
    return NULL;
}

static int watcher_start(struct watcher *w, pvabi_domid fe)
{
    pvabi_watch *wf, *wb;
    snprintf(w->front_state, sizeof(w->front_state), "/local/domain/%u/device/vbd/%u/state", fe,
             DEVID);
    snprintf(w->back_state, sizeof(w->back_state), "/local/domain/0/backend/vbd/%u/%u/state", fe,
             DEVID);
    int rc = pvabi_store_watch(w->ctx, w->front_state, on_state, w, &wf);
    if (rc == 0)
        rc = pvabi_store_watch(w->ctx, w->back_state, on_state, w, &wb);
    if (rc == 0)
        rc = -pthread_create(&w->thread, NULL, watch_thread, w);
    w->started = rc == 0;
    return rc;
}

/* Lets the watcher print both ends reaching Closed (up to WAIT_MS), then stops it. */
static void watcher_stop(struct watcher *w)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_MS / 1000;
    pthread_mutex_lock(&w->lock);
    while (w->last_front != PVABI_XENBUS_STATE_CLOSED || w->last_back != PVABI_XENBUS_STATE_CLOSED)
        if (pthread_cond_timedwait(&w->changed, &w->lock, &until) != 0)
            break;
    w->stop = 1;
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
}

/* ---- the frontend's work ---------------------------------------------------- */

/* The pattern byte at absolute offset @off. */
static uint8_t pattern(uint64_t off)
{
    return (uint8_t)((off >> 12) * 31 + (off & 0xfff) * 7 + 1);
}

static void fill(uint8_t *buf, size_t len, uint64_t off)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = pattern(off + i);
}

/* Keeps up to @depth @op of CHUNK bytes in flight over the whole disk. */
static int stream_all(struct blkfront *bf, int op, unsigned depth, uint64_t *bad)
{
    uint64_t size = blkfront_size(bf), next = 0, done = 0;
    uint8_t *bufs = malloc((size_t)depth * CHUNK);
    int rc = bufs ? 0 : -ENOMEM;
    unsigned inflight = 0;
    while (rc == 0 && done < size) {
        while (next < size && inflight < depth) {
            uint8_t *b = bufs + (next / CHUNK % depth) * CHUNK;
            if (op == BLKFRONT_WRITE)
                fill(b, CHUNK, next);
            int s = blkfront_submit(bf, op, next, CHUNK, b, next);
            if (s == -EAGAIN && inflight > 0)
                break;
            if (s < 0)
                return free(bufs), s;
            next += CHUNK, inflight++;
        }
        struct blkfront_done c[DEPTH];
        int n = blkfront_complete(bf, c, DEPTH, WAIT_MS);
        if (n <= 0)
            rc = n < 0 ? n : -ETIMEDOUT;
        for (int i = 0; i < n && rc == 0; i++) {
            rc = c[i].status;
            uint8_t *b = bufs + (c[i].tag / CHUNK % depth) * CHUNK;
            for (size_t j = 0; op == BLKFRONT_READ && rc == 0 && j < CHUNK; j++)
                if (b[j] != pattern(c[i].tag + j))
                    *bad = c[i].tag + j, rc = -EILSEQ;
            done += CHUNK, inflight--;
        }
    }
    free(bufs);
    return rc;
}

static int write_read_verify(struct blkfront *bf)
{
    double mib = (double)blkfront_size(bf) / (1 << 20), t = now_s();
    uint64_t bad = 0;
    int rc = stream_all(bf, BLKFRONT_WRITE, 4, &bad);
    if (rc < 0)
        return fail("writing the pattern", rc);
    say("[frontend]", "wrote %.0f MiB of pattern (1 MiB requests, 4 in flight): %.0f MB/s", mib,
        mib * 1.048576 / (now_s() - t));
    t = now_s();
    if ((rc = blkfront_flush(bf)) < 0)
        return fail("flush", rc);
    say("[frontend]", "flush: done in %.1f ms (the backend fdatasync()ed the image)",
        (now_s() - t) * 1e3);
    t = now_s();
    rc = stream_all(bf, BLKFRONT_READ, 4, &bad);
    if (rc == -EILSEQ)
        return say("[frontend]", "VERIFY FAILED at byte %" PRIu64, bad), -1;
    if (rc < 0)
        return fail("reading back", rc);
    say("[frontend]", "read back and verified %.0f MiB: every byte matches (%.0f MB/s)", mib,
        mib * 1.048576 / (now_s() - t));
    return 0;
}

/* xorshift64: the random offsets, the same sequence for both sides. */
static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

static double random_reads_blkfront(struct blkfront *bf, unsigned ops)
{
    uint64_t seed = 42, pages = blkfront_size(bf) / 4096;
    static uint8_t bufs[DEPTH][4096];
    unsigned free_slots[DEPTH], nfree = DEPTH, submitted = 0, completed = 0;
    for (unsigned i = 0; i < DEPTH; i++)
        free_slots[i] = i;
    double t = now_s();
    while (completed < ops) {
        while (submitted < ops && nfree > 0) {
            uint64_t off = next_rand(&seed) % pages * 4096;
            unsigned slot = free_slots[--nfree];
            if (blkfront_submit(bf, BLKFRONT_READ, off, 4096, bufs[slot], slot) != 0) {
                nfree++;
                break;
            }
            submitted++;
        }
        struct blkfront_done c[DEPTH];
        int n = blkfront_complete(bf, c, DEPTH, WAIT_MS);
        if (n <= 0)
            return -1;
        for (int i = 0; i < n; i++) {
            if (c[i].status != 0)
                return -1;
            free_slots[nfree++] = (unsigned)c[i].tag;
        }
        completed += (unsigned)n;
    }
    return ops / (now_s() - t);
}

static double random_reads_pread(const char *image, uint64_t size, unsigned ops)
{
    uint64_t seed = 42, pages = size / 4096;
    uint8_t buf[4096];
    int fd = open(image, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    double t = now_s();
    for (unsigned i = 0; i < ops; i++)
        if (pread(fd, buf, sizeof(buf), (off_t)(next_rand(&seed) % pages * 4096)) != 4096)
            return close(fd), -1;
    t = now_s() - t;
    close(fd);
    return ops / t;
}

static int random_reads(struct blkfront *bf, const char *image)
{
    double ref = random_reads_pread(image, blkfront_size(bf), RANDOM_OPS);
    double got = random_reads_blkfront(bf, RANDOM_OPS);
    if (ref <= 0 || got <= 0)
        return fail("random reads", -EIO);
    say("[frontend]", "4 KiB random reads, %d in flight: %.0f IOPS through the ring", DEPTH, got);
    say("[frontend]", "the same reads with pread() on the image: %.0f IOPS (ratio %.2f)", ref,
        got / ref);
    return 0;
}

static void print_connection(struct blkfront *bf)
{
    const struct blkfront_info *i = blkfront_info(bf);
    say("[frontend]",
        "connected to backend domain %u: %.0f MiB disk, ring of %u pages (%u requests), "
        "%s grants, up to %u segments per request",
        i->backend_id, (double)i->sectors / 2048, 1u << i->ring_order, i->ring_slots,
        i->persistent ? "persistent" : "copied", i->max_segments);
}

static int run_frontend(struct demo *d)
{
    struct blkfront *bf;
    say("[frontend]", "domain %u: connecting to vbd %u (handshake through the store)",
        pvabi_own_domid(d->front_ctx), DEVID);
    int rc = blkfront_open(d->front_ctx, DEVID, NULL, &bf);
    if (rc < 0)
        return fail("blkfront_open", rc);
    print_connection(bf);
    rc = write_read_verify(bf);
    if (rc == 0)
        rc = random_reads(bf, d->image);
    struct blkfront_stats s;
    blkfront_stats(bf, &s);
    say("[frontend]",
        "%" PRIu64 " operations as %" PRIu64 " ring requests (%" PRIu64 " indirect), %" PRIu64
        " notifications",
        s.ops, s.requests, s.indirect, s.notifies);
    say("[frontend]", "disconnecting (close handshake)");
    int rc2 = blkfront_close(bf);
    return rc < 0 ? rc : rc2 < 0 ? fail("blkfront_close", rc2) : 0;
}

/* ---- main ------------------------------------------------------------------- */

static int setup(struct demo *d, unsigned mib)
{
    snprintf(d->dir, sizeof(d->dir), "/tmp/pvabi-demo-XXXXXX");
    if (!mkdtemp(d->dir))
        return fail("mkdtemp", -errno);
    snprintf(d->sock, sizeof(d->sock), "%s/hv.sock", d->dir);
    snprintf(d->image, sizeof(d->image), "%s/disk.img", d->dir);
    setenv("PVABI_LOCAL_SOCKET", d->sock, 1);
    d->image_bytes = (uint64_t)mib << 20;
    int rc = make_image(d);
    if (rc < 0)
        return fail("creating the image", rc);
    say("[image]", "%s: %u MiB scratch image", d->image, mib);
    rc = pvabi_open_flags(&d->toolstack, "local", PVABI_OPEN_TOOLSTACK);
    if (rc < 0)
        return fail("starting the hypervisor", rc);
    say("[hv]", "pvabi-hv (pid %d) listening on %s", (int)hv_pid(d->sock), d->sock);
    rc = pvabi_open(&d->front_ctx, "local");
    return rc < 0 ? fail("opening the frontend domain", rc) : 0;
}

static int attach_device(struct demo *d)
{
    pvabi_domid fe = pvabi_own_domid(d->front_ctx);
    const char *back[] = { "params", d->image,    "mode", "w",        "type", "file", "dev",
                           "xvda",   "removable", "0",    "bootable", "1",    NULL };
    const char *front[] = { "virtual-device", "51712", "device-type", "disk", NULL };
    int rc = pvabi_xenbus_device_add(d->toolstack, "vbd", fe, 0, DEVID, back, front);
    if (rc < 0)
        return fail("toolstack step", rc);
    say("[toolstack]",
        "vbd %u: /local/domain/%u/device/vbd/%u <-> /local/domain/0/backend/vbd/%u/%u", DEVID, fe,
        DEVID, fe, DEVID);
    return 0;
}

int main(int argc, char **argv)
{
    unsigned mib = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 64;
    if (mib < 1 || mib > 4096 || argc > 2) {
        fprintf(stderr, "usage: vbd_demo [MIB]   (image size, 1..4096, default 64)\n");
        return 2;
    }
    struct demo d = { 0 };
    struct watcher w = { .lock = PTHREAD_MUTEX_INITIALIZER, .changed = PTHREAD_COND_INITIALIZER };
    int rc = setup(&d, mib);
    if (rc == 0)
        rc = start_backend(&d);
    w.ctx = d.toolstack;
    if (rc == 0)
        rc = watcher_start(&w, pvabi_own_domid(d.front_ctx));
    if (rc == 0)
        rc = attach_device(&d);
    if (rc == 0)
        rc = run_frontend(&d);
    if (w.started)
        watcher_stop(&w);
    if (stop_backend(&d) < 0)
        rc = fail("backend exit", -EIO);
    pvabi_close(d.front_ctx);
    pvabi_close(d.toolstack);
    hv_stop(&d);
    remove_dir(&d);
    say(rc == 0 ? "[done]" : "[failed]", "%s", rc == 0 ? "everything torn down" : "see above");
    return rc == 0 ? 0 : 1;
}
