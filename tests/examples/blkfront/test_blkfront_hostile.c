/* SPDX-License-Identifier: MIT */
/*
 * test_blkfront_hostile.c - blkfront against a fake backend (a forked
 * child, domain 0, built from pvabi's public API and pvblk_back_*) that
 * answers wrongly: unknown ids, duplicates, a wrong operation, an rsp_prod
 * past what was asked, a strange status.  blkfront must fail what is
 * pending with -EIO, refuse further I/O, complete nothing twice, and
 * neither crash nor hang.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "bft.h"
#include "blkif-wire.h"
#include "itest.h"

enum fake_mode {
    FAKE_UNKNOWN_ID,
    FAKE_DUPLICATE,
    FAKE_WRONG_OP,
    FAKE_PROD_AHEAD,
    FAKE_STRANGE_STATUS,
};

struct fake {
    enum fake_mode mode;
    pvabi_domid fe;
};

static struct bft T;

static int setup(void **state)
{
    (void)state;
    bft_setup(&T, 1024 * 1024);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    bft_backend_stop(&T, SIGKILL); /* the fake has no clean exit to check */
    bft_teardown(&T);
    return 0;
}

static int fake_attach(pvabi_ctx *ctx, const struct fake *f, pvabi_xenbus_back **b)
{
    if (pvabi_xenbus_back_open(ctx, "vbd", f->fe, BFT_DEVID, NULL, NULL, b) < 0)
        return -1;
    pvabi_xenbus_back_set_feature(*b, "sectors", "2048");
    pvabi_xenbus_back_set_feature(*b, "sector-size", "512");
    pvabi_xenbus_back_set_feature(*b, "info", "0");
    if (pvabi_xenbus_back_start(*b) < 0)
        return -1;
    return pvabi_xenbus_back_wait(*b, PVABI_XENBUS_EV_CONNECTED, 10000);
}

/* Waits until @n requests are on the ring; copies them out. */
static int fake_take(pvabi_ctx *ctx, struct pvblk_back *rb, struct pvblk_request *req, int n)
{
    pvabi_port p;

    for (int got = 0, tries = 0; got < n; tries++) {
        int k = pvblk_back_copy_reqs(rb, req + got, (unsigned)(n - got));
        if (k < 0 || tries > 200)
            return -1;
        got += k;
        if (got < n && pvabi_evtchn_wait(ctx, &p, 1, 100) > 0)
            pvabi_evtchn_unmask(ctx, p);
    }
    return 0;
}

static void fake_answer(struct pvblk_back *rb, uint64_t id, int op, int status)
{
    struct pvblk_response *r = pvblk_back_next_rsp(rb);
    if (!r)
        return;
    *r = (struct pvblk_response){ .id = id, .operation = (uint8_t)op, .status = (int16_t)status };
}

/* The misbehaviour: answers the two requests as @mode says. */
static void fake_misbehave(const struct fake *f, struct pvblk_back *rb, void *ring,
                           const struct pvblk_request *q)
{
    switch (f->mode) {
    case FAKE_UNKNOWN_ID:
        fake_answer(rb, q[0].id ^ 0x5a5a0000ull, q[0].operation, 0);
        break;
    case FAKE_DUPLICATE:
        fake_answer(rb, q[0].id, q[0].operation, 0);
        fake_answer(rb, q[0].id, q[0].operation, 0);
        break;
    case FAKE_WRONG_OP:
        fake_answer(rb, q[0].id, PVBLK_OP_WRITE, 0);
        break;
    case FAKE_PROD_AHEAD: {
        /* rsp_prod far past the requests: a raw store, no next_rsp. */
        struct pvblk_shared *sh = ring;
        pvabi_store_release_u32(&sh->rsp_prod, sh->req_prod + 100);
        return;
    }
    case FAKE_STRANGE_STATUS:
        fake_answer(rb, q[0].id, q[0].operation, 77);
        fake_answer(rb, q[1].id, q[1].operation, 0);
        break;
    }
    pvblk_back_publish(rb);
}

static int fake_main(void *arg)
{
    const struct fake *f = arg;
    pvabi_ctx *ctx;
    pvabi_xenbus_back *b;
    struct pvblk_back rb;
    struct pvblk_request q[2];

    if (pvabi_open(&ctx, NULL) < 0 || fake_attach(ctx, f, &b) < 0)
        return 10;
    void *ring = pvabi_xenbus_back_ring(b);
    if (pvblk_back_attach(&rb, ring, pvabi_xenbus_back_ring_order(b)) < 0)
        return 11;
    if (fake_take(ctx, &rb, q, 2) < 0)
        return 12;
    fake_misbehave(f, &rb, ring, q);
    pvabi_evtchn_notify(ctx, pvabi_xenbus_back_port(b));
    /* Then plays the close handshake when the frontend asks. */
    pvabi_xenbus_back_wait(b, PVABI_XENBUS_EV_CLOSED, 20000);
    pvabi_xenbus_back_close(b);
    pvabi_close(ctx);
    return 0;
}

/* Two 4 KiB reads to the fake; returns their statuses by tag. */
static void run_against(enum fake_mode mode, int status[2])
{
    static struct fake f;
    struct blkfront_opts o;
    struct blkfront_done d[4];
    uint8_t buf[2][4096];
    int seen[2] = { 0, 0 };

    f.mode = mode;
    f.fe = pvabi_own_domid(T.fe);
    bft_add_device(&T, f.fe, "w");
    bft_child_start(&T, fake_main, &f);
    blkfront_opts_init(&o);
    o.ring_order = 0;
    o.pool_pages = 16;
    o.timeout_ms = 5000;
    struct blkfront *bf = bft_open(&T, &o);
    assert_int_equal(blkfront_submit(bf, BLKFRONT_READ, 0, 4096, buf[0], 0), 0);
    assert_int_equal(blkfront_submit(bf, BLKFRONT_READ, 4096, 4096, buf[1], 1), 0);
    for (unsigned got = 0; got < 2;) {
        int n = blkfront_complete(bf, d, 4, 10000);
        assert_true(n > 0); /* never hangs */
        for (int k = 0; k < n; k++) {
            assert_true(d[k].tag < 2);
            assert_int_equal(seen[d[k].tag]++, 0); /* never twice */
            status[d[k].tag] = d[k].status;
        }
        got += (unsigned)n;
    }
    assert_int_equal(blkfront_complete(bf, d, 4, 200), 0);
    if (mode != FAKE_STRANGE_STATUS) {
        assert_int_equal(blkfront_broken(bf), -EIO);
        assert_int_equal(blkfront_submit(bf, BLKFRONT_READ, 0, 4096, buf[0], 3), -EIO);
        assert_int_equal(blkfront_pread(bf, buf[0], 10, 0), -EIO);
        assert_int_equal(blkfront_close(bf), -EIO);
    } else {
        assert_int_equal(blkfront_broken(bf), 0);
        assert_int_equal(blkfront_close(bf), 0);
    }
    int st = bft_backend_stop(&T, SIGKILL);
    assert_true(!WIFEXITED(st) || WEXITSTATUS(st) == 0);
}

static void test_blkfront_hostile_unknown_id_breaks(void **state)
{
    (void)state;
    int s[2];
    run_against(FAKE_UNKNOWN_ID, s);
    assert_int_equal(s[0], -EIO);
    assert_int_equal(s[1], -EIO);
}

static void test_blkfront_hostile_duplicate_breaks_once(void **state)
{
    (void)state;
    int s[2];
    run_against(FAKE_DUPLICATE, s);
    assert_int_equal(s[0], 0); /* the first answer was a fine one */
    assert_int_equal(s[1], -EIO);
}

static void test_blkfront_hostile_wrong_operation_breaks(void **state)
{
    (void)state;
    int s[2];
    run_against(FAKE_WRONG_OP, s);
    assert_int_equal(s[0], -EIO);
    assert_int_equal(s[1], -EIO);
}

static void test_blkfront_hostile_rsp_prod_ahead_breaks(void **state)
{
    (void)state;
    int s[2];
    run_against(FAKE_PROD_AHEAD, s);
    assert_int_equal(s[0], -EIO);
    assert_int_equal(s[1], -EIO);
}

static void test_blkfront_hostile_strange_status_is_an_error(void **state)
{
    (void)state;
    int s[2];
    run_against(FAKE_STRANGE_STATUS, s);
    assert_int_equal(s[0], -EIO);
    assert_int_equal(s[1], 0);
}

#define BF_TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        BF_TEST(test_blkfront_hostile_unknown_id_breaks),
        BF_TEST(test_blkfront_hostile_duplicate_breaks_once),
        BF_TEST(test_blkfront_hostile_wrong_operation_breaks),
        BF_TEST(test_blkfront_hostile_rsp_prod_ahead_breaks),
        BF_TEST(test_blkfront_hostile_strange_status_is_an_error),
    };

    return it_run_tests("blkfront-hostile", tests);
}
