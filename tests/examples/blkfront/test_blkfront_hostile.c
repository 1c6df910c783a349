/* SPDX-License-Identifier: MIT */
/*
 * test_blkfront_hostile.c - blkfront against a fake backend (a forked
 * child, domain 0, built from pvabi's public API and pvblk_back_*) that
 * answers wrongly: unknown ids, duplicates, a wrong operation, an rsp_prod
 * past what was asked, a strange status.  blkfront must fail what is
 * pending with -EIO, refuse further I/O, complete nothing twice, and
 * neither crash nor hang.  An indirect request may be answered with its
 * indirect_op (Linux) or with INDIRECT (an echo), nothing else.
 *
 * And a fake that publishes the device's properties as Linux's blkback
 * does: only transport parameters at InitWait, `sectors` & co. once the
 * frontend is Initialised, just before Connected; malformed ones must fail
 * the open with -EPROTO.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
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
    FAKE_INDIRECT_OP,    /* indirect requests answered with their indirect_op */
    FAKE_INDIRECT_ECHO,  /* ... with PVBLK_OP_INDIRECT */
    FAKE_INDIRECT_WRONG, /* ... with WRITE, for a READ */
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
    pvabi_xenbus_back_set_feature(*b, "feature-max-indirect-segments", "32");
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
    case FAKE_INDIRECT_OP:
    case FAKE_INDIRECT_ECHO:
    case FAKE_INDIRECT_WRONG:
        for (int i = 0; i < 2; i++) {
            struct pvblk_request_indirect ind;
            memcpy(&ind, &q[i], sizeof(ind));
            int op = f->mode == FAKE_INDIRECT_OP     ? ind.indirect_op
                     : f->mode == FAKE_INDIRECT_ECHO ? PVBLK_OP_INDIRECT
                     : i == 0                        ? PVBLK_OP_WRITE
                                                     : ind.indirect_op;
            fake_answer(rb, q[i].id, q[i].operation == PVBLK_OP_INDIRECT ? op : -1, 0);
        }
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

static int breaks_device(enum fake_mode mode)
{
    return mode != FAKE_STRANGE_STATUS && mode != FAKE_INDIRECT_OP && mode != FAKE_INDIRECT_ECHO;
}

/* Two reads to the fake (4 KiB each; 48 KiB, indirect, for the INDIRECT
 * modes); returns their statuses by tag. */
static void run_against(enum fake_mode mode, int status[2])
{
    static struct fake f;
    static uint8_t buf[2][48 * 1024];
    struct blkfront_opts o;
    struct blkfront_done d[4];
    int seen[2] = { 0, 0 };
    size_t len = mode >= FAKE_INDIRECT_OP ? sizeof(buf[0]) : 4096;

    f.mode = mode;
    f.fe = pvabi_own_domid(T.fe);
    bft_add_device(&T, f.fe, "w");
    bft_child_start(&T, fake_main, &f);
    blkfront_opts_init(&o);
    o.ring_order = 0;
    o.pool_pages = 32;
    o.timeout_ms = 5000;
    struct blkfront *bf = bft_open(&T, &o);
    assert_int_equal(blkfront_info(bf)->max_segments, 32);
    assert_int_equal(blkfront_submit(bf, BLKFRONT_READ, 0, len, buf[0], 0), 0);
    assert_int_equal(blkfront_submit(bf, BLKFRONT_READ, len, len, buf[1], 1), 0);
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
    if (breaks_device(mode)) {
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

/* Linux's blkfront (>= 5.14) wants an indirect request's indirect_op back,
 * which Linux's blkback sends: accepted. */
static void test_blkfront_hostile_indirect_answered_with_indirect_op(void **state)
{
    (void)state;
    int s[2];
    run_against(FAKE_INDIRECT_OP, s);
    assert_int_equal(s[0], 0);
    assert_int_equal(s[1], 0);
}

/* A backend that echoes INDIRECT (pvabi's blkback did) is accepted too:
 * the id already names the request, the operation is a sanity check. */
static void test_blkfront_hostile_indirect_answered_with_indirect_echo(void **state)
{
    (void)state;
    int s[2];
    run_against(FAKE_INDIRECT_ECHO, s);
    assert_int_equal(s[0], 0);
    assert_int_equal(s[1], 0);
}

/* Any other operation for an indirect request is a protocol violation. */
static void test_blkfront_hostile_indirect_wrong_operation_breaks(void **state)
{
    (void)state;
    int s[2];
    run_against(FAKE_INDIRECT_WRONG, s);
    assert_int_equal(s[0], -EIO);
    assert_int_equal(s[1], -EIO);
}

/* ---- device properties published as Linux's blkback does ----------------- */

/* What the property fake publishes: nodes (key, value, ..., NULL) set as
 * features (present from InitWait on), and nodes written only once the
 * frontend is Initialised, just before the backend switches to Connected
 * (Linux's blkback: connect()). */
struct props {
    pvabi_domid fe;
    const char *initwait[40];
    const char *connect[40];
};

static const char *const linux_initwait[] = { "max-ring-page-order", "4", NULL };
static const char *const linux_connect[] = { "feature-flush-cache",
                                             "1",
                                             "feature-barrier",
                                             "1",
                                             "feature-discard",
                                             "1",
                                             "discard-granularity",
                                             "4096",
                                             "discard-alignment",
                                             "0",
                                             "feature-persistent",
                                             "1",
                                             "feature-max-indirect-segments",
                                             "32",
                                             "sectors",
                                             "6000",
                                             "info",
                                             "0",
                                             "sector-size",
                                             "512",
                                             "physical-sector-size",
                                             "4096",
                                             NULL };

static void props_copy(const char **dst, const char *const *src)
{
    unsigned i = 0;
    for (; src[i] && i < 38; i += 2) {
        dst[i] = src[i];
        dst[i + 1] = src[i + 1];
    }
    dst[i] = NULL;
}

/* Replaces @key's value in @list, or appends it; a NULL @value drops it. */
static void props_set(const char **list, const char *key, const char *value)
{
    unsigned i = 0;
    while (list[i] && strcmp(list[i], key) != 0)
        i += 2;
    if (!list[i]) {
        list[i + 2] = NULL;
        list[i] = key;
    }
    list[i + 1] = value;
    if (!value)
        for (; list[i]; i += 2) {
            list[i] = list[i + 2];
            list[i + 1] = list[i + 2] ? list[i + 3] : NULL;
        }
}

static void watch_noop(pvabi_ctx *ctx, const char *path, void *opaque)
{
    (void)ctx;
    (void)path;
    (void)opaque;
}

/* Waits (on a watch) until the frontend's state is at least @min; returns
 * it, or -1 after 10 s. */
static int props_wait_frontend(pvabi_ctx *ctx, const char *fe_state, uint32_t min)
{
    uint32_t st = 0;

    for (int i = 0; i < 100; i++) {
        if (pvabi_store_read_u32(ctx, PVABI_STORE_TXN_NONE, fe_state, &st) == 0 && st >= min)
            return (int)st;
        pvabi_store_wait(ctx, 100);
    }
    return -1;
}

static int props_write(pvabi_ctx *ctx, const char *dir, const char *const *nodes)
{
    char path[256];

    for (unsigned i = 0; nodes[i]; i += 2) {
        snprintf(path, sizeof(path), "%s/%s", dir, nodes[i]);
        if (pvabi_store_write(ctx, PVABI_STORE_TXN_NONE, path, nodes[i + 1]) < 0)
            return -1;
    }
    return 0;
}

/* A backend written out by hand, so that the order of its store writes is
 * Linux's: transport parameters, InitWait; the frontend's Initialised;
 * the device properties, Connected.  It never maps the ring (no I/O is
 * asked of it); it answers the close handshake with Closed. */
static int props_main(void *arg)
{
    const struct props *p = arg;
    const char *const initwait[] = { "state", "2", NULL };
    const char *const connected[] = { "state", "4", NULL };
    const char *const closed[] = { "state", "6", NULL };
    pvabi_ctx *ctx;
    pvabi_watch *wa;
    char be[128], fe_state[128];

    if (pvabi_open(&ctx, NULL) < 0)
        return 10;
    snprintf(be, sizeof(be), "/local/domain/%u/backend/vbd/%u/%u", pvabi_own_domid(ctx), p->fe,
             BFT_DEVID);
    snprintf(fe_state, sizeof(fe_state), "/local/domain/%u/device/vbd/%u/state", p->fe, BFT_DEVID);
    if (pvabi_store_watch(ctx, fe_state, watch_noop, NULL, &wa) < 0 ||
        props_write(ctx, be, p->initwait) < 0 || props_write(ctx, be, initwait) < 0)
        return 11;
    int st = props_wait_frontend(ctx, fe_state, 3);
    if (st == 3 && (props_write(ctx, be, p->connect) < 0 || props_write(ctx, be, connected) < 0))
        return 12;
    if (props_wait_frontend(ctx, fe_state, 5) < 0 || props_write(ctx, be, closed) < 0)
        return 13;
    pvabi_store_unwatch(wa);
    pvabi_close(ctx);
    return 0;
}

/* Starts the property fake for a device of mode @mode; returns
 * blkfront_open()'s result (*out: the frontend on success). */
static int props_open(struct props *p, const char *mode, const struct blkfront_opts *o,
                      struct blkfront **out)
{
    p->fe = pvabi_own_domid(T.fe);
    bft_add_device(&T, p->fe, mode);
    bft_child_start(&T, props_main, p);
    return blkfront_open(T.fe, BFT_DEVID, o, out);
}

/* Our feature-persistent node, "" when absent. */
static void frontend_node(struct blkfront *bf, const char *key, char *out, size_t n)
{
    char path[256], *v = NULL;

    (void)bf;
    snprintf(path, sizeof(path), "/local/domain/%u/device/vbd/%u/%s", pvabi_own_domid(T.fe),
             BFT_DEVID, key);
    snprintf(out, n, "%s", pvabi_store_read(T.fe, PVABI_STORE_TXN_NONE, path, &v) >= 0 ? v : "");
    free(v);
}

/* Linux's blkback writes sectors, info, sector-size, the features and
 * feature-persistent only in connect(), just before Connected: blkfront
 * must read them after the Connected wait, and see every one. */
static void test_blkfront_properties_published_at_connected(void **state)
{
    (void)state;
    static struct props p;
    struct blkfront *bf = NULL;
    char v[16];

    props_copy(p.initwait, linux_initwait);
    props_copy(p.connect, linux_connect);
    assert_int_equal(props_open(&p, "w", NULL, &bf), 0);
    const struct blkfront_info *in = blkfront_info(bf);
    assert_true(in->sectors == 6000);
    assert_true(blkfront_size(bf) == 6000 * 512);
    assert_int_equal(in->sector_size, 512);
    assert_int_equal(in->physical_sector_size, 4096);
    assert_int_equal(in->readonly, 0);
    assert_int_equal(in->flush, 1);
    assert_int_equal(in->barrier, 1);
    assert_int_equal(in->discard, 1);
    assert_int_equal(in->discard_granularity, 4096);
    assert_int_equal(in->persistent, 1);
    assert_int_equal(in->indirect, 1); /* advertised only at Connected (Linux < 4.6) */
    assert_int_equal(in->max_segments, 32);
    assert_int_equal(in->ring_order, 4);
    frontend_node(bf, "feature-persistent", v, sizeof(v));
    assert_string_equal(v, "1");
    assert_int_equal(blkfront_close(bf), 0);
    int st = bft_backend_stop(&T, SIGKILL);
    assert_true(!WIFEXITED(st) || WEXITSTATUS(st) == 0);
}

/* The same backend, blkfront asked for no persistent grants and given a
 * read-only device (mode "r", info without READONLY); without
 * feature-discard, discard-granularity is not looked at. */
static void test_blkfront_properties_no_persistent_readonly_mode(void **state)
{
    (void)state;
    static struct props p;
    struct blkfront_opts o;
    struct blkfront *bf = NULL;
    char v[16];

    props_copy(p.initwait, linux_initwait);
    props_copy(p.connect, linux_connect);
    props_set(p.connect, "feature-discard", NULL);
    props_set(p.connect, "discard-granularity", "garbage");
    props_set(p.connect, "feature-max-indirect-segments", NULL);
    blkfront_opts_init(&o);
    o.persistent = 0;
    assert_int_equal(props_open(&p, "r", &o, &bf), 0);
    const struct blkfront_info *in = blkfront_info(bf);
    assert_int_equal(in->persistent, 0);
    assert_int_equal(in->readonly, 1);
    assert_int_equal(in->discard, 0);
    assert_int_equal(in->indirect, 0);
    assert_int_equal(in->max_segments, 11);
    frontend_node(bf, "feature-persistent", v, sizeof(v));
    assert_string_equal(v, "");
    assert_int_equal(blkfront_submit(bf, BLKFRONT_WRITE, 0, 512, v, 0), -EROFS);
    assert_int_equal(blkfront_close(bf), 0);
    int st = bft_backend_stop(&T, SIGKILL);
    assert_true(!WIFEXITED(st) || WEXITSTATUS(st) == 0);
}

/* A backend that never advertises `sectors`, not even at Connected. */
static void test_blkfront_properties_missing_sectors_is_eproto(void **state)
{
    (void)state;
    static struct props p;
    struct blkfront *bf = NULL;

    props_copy(p.initwait, linux_initwait);
    props_copy(p.connect, linux_connect);
    props_set(p.connect, "sectors", NULL);
    assert_int_equal(props_open(&p, "w", NULL, &bf), -EPROTO);
    assert_null(bf);
    /* blkfront ran the close handshake: the fake saw Closed and ended. */
    int st = bft_backend_stop(&T, SIGKILL);
    assert_true(!WIFEXITED(st) || WEXITSTATUS(st) == 0);
}

/* Every node blkfront reads, malformed at Connected (after well-formed
 * values at InitWait, which blkfront must not have kept): -EPROTO. */
static void test_blkfront_properties_malformed_is_eproto(void **state)
{
    (void)state;
    static const char *const bad[][2] = {
        { "sectors", "12abc" },
        { "sectors", "" },
        { "sectors", "-1" },
        { "sectors", "18446744073709551616" },
        { "sectors", "36028797018963968" }, /* 2^55: bytes past 2^64 */
        { "sector-size", "768" },
        { "sector-size", "8192" },
        { "sector-size", "0" },
        { "physical-sector-size", "1536" },
        { "physical-sector-size", "256" },
        { "info", "ro" },
        { "feature-flush-cache", "yes" },
        { "feature-barrier", "4294967296" },
        { "feature-discard", " 1" },
        { "discard-granularity", "0x1000" },
        { "feature-persistent", "on" },
        { "feature-max-indirect-segments", "-5" },
    };
    static struct props p;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct blkfront *bf = NULL;
        if (i > 0) {
            bft_teardown(&T);
            bft_setup(&T, 1024 * 1024);
        }
        props_copy(p.initwait, linux_initwait);
        props_copy(p.connect, linux_connect);
        for (unsigned k = 0; linux_connect[k]; k += 2)
            props_set(p.initwait, linux_connect[k], linux_connect[k + 1]);
        props_set(p.connect, bad[i][0], bad[i][1]);
        int rc = props_open(&p, "w", NULL, &bf);
        if (rc != -EPROTO)
            fail_msg("%s = \"%s\": blkfront_open gave %d, not -EPROTO", bad[i][0], bad[i][1], rc);
        assert_null(bf);
        bft_backend_stop(&T, SIGKILL);
    }
}

/* A malformed max-ring-page-order, read at InitWait: -EPROTO before
 * anything is published. */
static void test_blkfront_properties_malformed_ring_order_is_eproto(void **state)
{
    (void)state;
    static struct props p;
    struct blkfront *bf = NULL;

    props_copy(p.initwait, linux_initwait);
    props_set(p.initwait, "max-ring-page-order", "four");
    props_copy(p.connect, linux_connect);
    assert_int_equal(props_open(&p, "w", NULL, &bf), -EPROTO);
    assert_null(bf);
}

/* Documented defaults: a discard-granularity that is no multiple of the
 * sector size turns discard off (the device stays usable); absent, it is
 * the sector size (blkif.h); `mode` without a 'w' is read-only (as Linux's
 * blkback reads it); unknown info bits are ignored. */
static void test_blkfront_properties_documented_defaults(void **state)
{
    (void)state;
    static struct props p;
    struct blkfront *bf = NULL;

    props_copy(p.initwait, linux_initwait);
    props_copy(p.connect, linux_connect);
    props_set(p.connect, "discard-granularity", "1000");
    props_set(p.connect, "info", "1234567936"); /* no READONLY bit (4) */
    assert_int_equal(props_open(&p, "w", NULL, &bf), 0);
    assert_int_equal(blkfront_info(bf)->discard, 0);
    assert_int_equal(blkfront_info(bf)->readonly, 0);
    assert_int_equal(blkfront_discard(bf, 0, 4096), -EOPNOTSUPP);
    assert_int_equal(blkfront_close(bf), 0);
    bft_backend_stop(&T, SIGKILL);

    bft_teardown(&T);
    bft_setup(&T, 1024 * 1024);
    props_copy(p.connect, linux_connect);
    props_set(p.connect, "discard-granularity", NULL);
    assert_int_equal(props_open(&p, "r!", NULL, &bf), 0);
    assert_int_equal(blkfront_info(bf)->discard, 1);
    assert_int_equal(blkfront_info(bf)->discard_granularity, 512);
    assert_int_equal(blkfront_info(bf)->readonly, 1);
    assert_int_equal(blkfront_close(bf), 0);
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
        BF_TEST(test_blkfront_hostile_indirect_answered_with_indirect_op),
        BF_TEST(test_blkfront_hostile_indirect_answered_with_indirect_echo),
        BF_TEST(test_blkfront_hostile_indirect_wrong_operation_breaks),
        BF_TEST(test_blkfront_properties_published_at_connected),
        BF_TEST(test_blkfront_properties_no_persistent_readonly_mode),
        BF_TEST(test_blkfront_properties_missing_sectors_is_eproto),
        BF_TEST(test_blkfront_properties_malformed_is_eproto),
        BF_TEST(test_blkfront_properties_malformed_ring_order_is_eproto),
        BF_TEST(test_blkfront_properties_documented_defaults),
    };
    if (getenv("BF_FILTER"))
        cmocka_set_test_filter(getenv("BF_FILTER"));

    return it_run_tests("blkfront-hostile", tests);
}
