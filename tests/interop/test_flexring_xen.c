/* SPDX-License-Identifier: MIT */
/*
 * pvabi's flex rings against Xen's own: the layouts of xen/io/console.h and
 * DEFINE_XEN_FLEX_RING_AND_INTF, and a console page driven by pvabi on the
 * guest end and by a Xen-style daemon (flexring_xen_side.c) on the other,
 * moving a long pseudo-random byte stream each way while the u32 indices
 * wrap.  The reader of each stream checks every byte.
 *
 * No timing limits: a thread that sees no progress for NO_PROGRESS_LIMIT_S
 * seconds reports a hang instead of waiting forever.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <cmocka.h>

#include <pvabi/flexring.h>

/* Only the layouts and the pure functions of Xen's headers are used here. */
#define __XEN_TOOLS__
#include <xen/xen.h>
#include <xen/grant_table.h>
#define XEN_WANT_FLEX_CONSOLE_RING
#include <xen/io/console.h>
/* Xen's macro defines static inline helpers this test only partly uses. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
DEFINE_XEN_FLEX_RING_AND_INTF(pvtest);
#pragma GCC diagnostic pop

#include "flexring_xen_side.h"

#define STREAM_BYTES        ((uint64_t)64 << 20)
#define CHUNK_MAX           5000 /* larger than either console ring: partial transfers happen */
#define NO_PROGRESS_LIMIT_S 30

/* -- layouts -------------------------------------------------------------- */

#define ASSERT_SAME_FIELD(ours, theirs, field)                                                     \
    do {                                                                                           \
        assert_int_equal(offsetof(ours, field), offsetof(theirs, field));                          \
        assert_int_equal(sizeof(((ours *)0)->field), sizeof(((theirs *)0)->field));                \
    } while (0)

static void test_flexring_xen_console_layout(void **state)
{
    (void)state;
    assert_int_equal(sizeof(struct pvabi_console_intf), sizeof(struct xencons_interface));
    ASSERT_SAME_FIELD(struct pvabi_console_intf, struct xencons_interface, in);
    ASSERT_SAME_FIELD(struct pvabi_console_intf, struct xencons_interface, out);
    ASSERT_SAME_FIELD(struct pvabi_console_intf, struct xencons_interface, in_cons);
    ASSERT_SAME_FIELD(struct pvabi_console_intf, struct xencons_interface, in_prod);
    ASSERT_SAME_FIELD(struct pvabi_console_intf, struct xencons_interface, out_cons);
    ASSERT_SAME_FIELD(struct pvabi_console_intf, struct xencons_interface, out_prod);
}

static void test_flexring_xen_data_intf_layout(void **state)
{
    (void)state;
    assert_int_equal(sizeof(struct pvabi_flex_intf), sizeof(struct pvtest_data_intf));
    ASSERT_SAME_FIELD(struct pvabi_flex_intf, struct pvtest_data_intf, in_cons);
    ASSERT_SAME_FIELD(struct pvabi_flex_intf, struct pvtest_data_intf, in_prod);
    ASSERT_SAME_FIELD(struct pvabi_flex_intf, struct pvtest_data_intf, pad1);
    ASSERT_SAME_FIELD(struct pvabi_flex_intf, struct pvtest_data_intf, out_cons);
    ASSERT_SAME_FIELD(struct pvabi_flex_intf, struct pvtest_data_intf, out_prod);
    ASSERT_SAME_FIELD(struct pvabi_flex_intf, struct pvtest_data_intf, pad2);
    ASSERT_SAME_FIELD(struct pvabi_flex_intf, struct pvtest_data_intf, ring_order);
    assert_int_equal(offsetof(struct pvabi_flex_intf, ref), offsetof(struct pvtest_data_intf, ref));
    assert_int_equal(sizeof(((struct pvabi_flex_intf *)0)->ref[0]), sizeof(grant_ref_t));
}

static void test_flexring_xen_ring_size_matches(void **state)
{
    (void)state;
    for (unsigned order = 0; order <= 8; order++)
        assert_int_equal(PVABI_FLEXRING_SIZE(order), XEN_FLEX_RING_SIZE(order));
}

/* -- a byte stream both ends can regenerate ------------------------------- */

/* splitmix64, handed out a byte at a time. */
struct gen {
    uint64_t state;
    uint64_t word;
    unsigned left;
};

static struct gen gen_seed(uint64_t seed)
{
    return (struct gen){ .state = seed };
}

static uint64_t gen_u64(struct gen *g)
{
    uint64_t z = (g->state += 0x9e3779b97f4a7c15u);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static unsigned char gen_byte(struct gen *g)
{
    if (g->left == 0) {
        g->word = gen_u64(g);
        g->left = 8;
    }
    g->left--;
    return (unsigned char)(g->word >> (8 * g->left));
}

/* A transfer size in 1 .. min(CHUNK_MAX, @rest). */
static size_t gen_len(struct gen *g, uint64_t rest)
{
    size_t len = 1 + (size_t)(gen_u64(g) % CHUNK_MAX);

    return len < rest ? len : (size_t)rest;
}

/* -- one thread per end of a stream -------------------------------------- */

typedef ssize_t step_fn(void *ctx, unsigned char *buf, size_t len);

struct pump {
    step_fn *step;
    void *ctx;
    uint64_t seed;
    uint64_t total;
    atomic_bool *stop; /* set by whichever thread fails first */
    uint64_t done;
    char error[200]; /* empty on success */
};

static void *pump_fail(struct pump *p, const char *what, long long detail)
{
    snprintf(p->error, sizeof(p->error), "%s (%lld) after %" PRIu64 " of %" PRIu64 " bytes", what,
             detail, p->done, p->total);
    atomic_store(p->stop, true);
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Waits a little for the peer; false when it is time to give up. */
static bool pump_wait(struct pump *p, double last_progress)
{
    if (atomic_load(p->stop))
        return pump_fail(p, "stopped: the other end failed", 0), false;
    if (now_s() - last_progress > NO_PROGRESS_LIMIT_S)
        return pump_fail(p, "no progress for this many seconds", NO_PROGRESS_LIMIT_S), false;
    sched_yield();
    return true;
}

static void *pump_write(void *arg)
{
    struct pump *p = arg;
    struct gen data = gen_seed(p->seed), lens = gen_seed(~p->seed);
    unsigned char chunk[CHUNK_MAX];
    size_t have = 0, off = 0;
    double last = now_s();

    while (p->done < p->total) {
        if (off == have) {
            have = gen_len(&lens, p->total - p->done);
            for (off = 0; off < have; off++)
                chunk[off] = gen_byte(&data);
            off = 0;
        }
        ssize_t n = p->step(p->ctx, chunk + off, have - off);
        if (n < 0 || (size_t)n > have - off)
            return pump_fail(p, "write step returned", n);
        if (n == 0 && !pump_wait(p, last))
            return NULL;
        if (n > 0)
            last = now_s();
        off += (size_t)n;
        p->done += (size_t)n;
    }
    return NULL;
}

static void *pump_read(void *arg)
{
    struct pump *p = arg;
    struct gen data = gen_seed(p->seed), lens = gen_seed(p->seed * 3);
    unsigned char chunk[CHUNK_MAX];
    double last = now_s();

    while (p->done < p->total) {
        size_t want = gen_len(&lens, p->total - p->done);
        ssize_t n = p->step(p->ctx, chunk, want);

        if (n < 0 || (size_t)n > want)
            return pump_fail(p, "read step returned", n);
        if (n == 0 && !pump_wait(p, last))
            return NULL;
        if (n > 0)
            last = now_s();
        for (size_t i = 0; i < (size_t)n; i++, p->done++)
            if (chunk[i] != gen_byte(&data))
                return pump_fail(p, "wrong byte, value", chunk[i]);
    }
    return NULL;
}

static ssize_t step_pvabi_write(void *ctx, unsigned char *buf, size_t len)
{
    return pvabi_flexring_write(ctx, buf, len);
}

static ssize_t step_pvabi_read(void *ctx, unsigned char *buf, size_t len)
{
    return pvabi_flexring_read(ctx, buf, len);
}

static ssize_t step_xen_read_out(void *ctx, unsigned char *buf, size_t len)
{
    return (ssize_t)xen_side_read_out(ctx, buf, len);
}

static ssize_t step_xen_write_in(void *ctx, unsigned char *buf, size_t len)
{
    return (ssize_t)xen_side_write_in(ctx, buf, len);
}

/* -- the console page ----------------------------------------------------- */

/* Indices start this far below 2^32, so both streams wrap them. */
#define OUT_START (UINT32_MAX - 1000u)
#define IN_START  (UINT32_MAX - 77u)
#define OUT_SEED  0x6f7574u /* "out" */
#define IN_SEED   0x696eu   /* "in" */

struct console {
    struct xencons_interface *intf;
    pvabi_flexring *out_w; /* guest writes out */
    pvabi_flexring *in_r;  /* guest reads in */
    atomic_bool stop;
};

static void console_open(struct console *c)
{
    c->intf = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(c->intf != MAP_FAILED);
    c->intf->out_prod = c->intf->out_cons = OUT_START;
    c->intf->in_prod = c->intf->in_cons = IN_START;
    assert_int_equal(pvabi_flexring_open(&c->out_w, c->intf->out, sizeof(c->intf->out),
                                         &c->intf->out_prod, &c->intf->out_cons,
                                         PVABI_FLEXRING_WRITER),
                     0);
    assert_int_equal(pvabi_flexring_open(&c->in_r, c->intf->in, sizeof(c->intf->in),
                                         &c->intf->in_prod, &c->intf->in_cons,
                                         PVABI_FLEXRING_READER),
                     0);
    atomic_init(&c->stop, false);
}

static void console_close(struct console *c)
{
    pvabi_flexring_close(c->out_w);
    pvabi_flexring_close(c->in_r);
    assert_int_equal(munmap(c->intf, 4096), 0);
}

/* The two ends of the guest-to-daemon stream on the `out` ring. */
static void console_out_pumps(struct console *c, struct pump pumps[2])
{
    pumps[0] = (struct pump){ .step = step_pvabi_write,
                              .ctx = c->out_w,
                              .seed = OUT_SEED,
                              .total = STREAM_BYTES,
                              .stop = &c->stop };
    pumps[1] = pumps[0];
    pumps[1].step = step_xen_read_out;
    pumps[1].ctx = c->intf;
}

/* The two ends of the daemon-to-guest stream on the `in` ring. */
static void console_in_pumps(struct console *c, struct pump pumps[2])
{
    pumps[0] = (struct pump){ .step = step_xen_write_in,
                              .ctx = c->intf,
                              .seed = IN_SEED,
                              .total = STREAM_BYTES,
                              .stop = &c->stop };
    pumps[1] = pumps[0];
    pumps[1].step = step_pvabi_read;
    pumps[1].ctx = c->in_r;
}

/* Runs @n pumps (writer, reader, writer, reader ...) each on its own thread. */
static void run_pumps(struct pump *pumps, size_t n)
{
    pthread_t threads[4];

    for (size_t i = 0; i < n; i++)
        assert_int_equal(
            pthread_create(&threads[i], NULL, i % 2 ? pump_read : pump_write, &pumps[i]), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(pthread_join(threads[i], NULL), 0);
    for (size_t i = 0; i < n; i++)
        if (pumps[i].error[0] != '\0')
            fail_msg("%s end: %s", i % 2 ? "reading" : "writing", pumps[i].error);
}

static void assert_out_drained(struct console *c)
{
    assert_int_equal(c->intf->out_prod, (uint32_t)(OUT_START + STREAM_BYTES));
    assert_int_equal(c->intf->out_cons, c->intf->out_prod);
    assert_int_equal(pvabi_flexring_used(c->out_w), 0);
}

static void assert_in_drained(struct console *c)
{
    assert_int_equal(c->intf->in_prod, (uint32_t)(IN_START + STREAM_BYTES));
    assert_int_equal(c->intf->in_cons, c->intf->in_prod);
    assert_int_equal(pvabi_flexring_used(c->in_r), 0);
}

/* pvabi_flexring_write() on the guest end, xencons_read_packet() on the daemon's. */
static void test_flexring_xen_guest_writes_daemon_reads(void **state)
{
    struct console c;
    struct pump pumps[2];

    (void)state;
    console_open(&c);
    console_out_pumps(&c, pumps);
    run_pumps(pumps, 2);
    assert_out_drained(&c);
    console_close(&c);
}

/* xencons_write_packet() on the daemon's end, pvabi_flexring_read() on the guest's. */
static void test_flexring_xen_daemon_writes_guest_reads(void **state)
{
    struct console c;
    struct pump pumps[2];

    (void)state;
    console_open(&c);
    console_in_pumps(&c, pumps);
    run_pumps(pumps, 2);
    assert_in_drained(&c);
    console_close(&c);
}

/* Both streams at once: the indices of one page's two rings share cache lines. */
static void test_flexring_xen_console_full_duplex(void **state)
{
    struct console c;
    struct pump pumps[4];

    (void)state;
    console_open(&c);
    console_out_pumps(&c, pumps);
    console_in_pumps(&c, pumps + 2);
    run_pumps(pumps, 4);
    assert_out_drained(&c);
    assert_in_drained(&c);
    console_close(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flexring_xen_console_layout),
        cmocka_unit_test(test_flexring_xen_data_intf_layout),
        cmocka_unit_test(test_flexring_xen_ring_size_matches),
        cmocka_unit_test(test_flexring_xen_guest_writes_daemon_reads),
        cmocka_unit_test(test_flexring_xen_daemon_writes_guest_reads),
        cmocka_unit_test(test_flexring_xen_console_full_duplex),
    };

    return cmocka_run_group_tests_name("flexring-xen", tests, NULL, NULL);
}
