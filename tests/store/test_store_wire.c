/* SPDX-License-Identifier: MIT */
/*
 * The store's wire protocol spoken raw, by a hostile or clumsy client,
 * while well-behaved clients (libxenstore) keep being served.  Xen's rules:
 * a payload over XENSTORE_PAYLOAD_MAX kills the connection; a request with
 * malformed strings gets XS_ERROR EINVAL; an unknown type XS_ERROR ENOSYS
 * (xenstored's process_message); replies repeat the request's type, req_id
 * and tx_id (errors: type XS_ERROR); watch events have req_id and tx_id 0.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "fixture.h"

static struct xs_handle *h;

static int setup(void **state)
{
    fx_setup(state);
    h = fx_xs_open();
    fx_write(h, "/wire/ok", "fine");
    return 0;
}

static int teardown(void **state)
{
    xs_close(h);
    h = NULL;
    return fx_teardown(state);
}

/* The daemon is alive and serves libxenstore and a fresh raw client. */
static void expect_daemon_serving(void)
{
    char buf[64];
    struct xsd_sockmsg rh;
    int s;

    assert_int_equal(kill(fx_cur->pid, 0), 0);
    fx_write(h, "/wire/alive", "yes");
    fx_expect_value(h, "/wire/alive", "yes");
    fx_expect_value(h, "/wire/ok", "fine");
    s = fx_raw_connect();
    assert_int_equal(fx_raw_call(s, XS_READ, 9, 0, "/wire/ok", 9, &rh, buf, sizeof(buf)), 0);
    assert_int_equal(rh.type, XS_READ);
    assert_int_equal(rh.req_id, 9);
    assert_string_equal(buf, "fine");
    close(s);
}

static void expect_reply(int s, uint32_t type, uint32_t req_id, uint32_t tx_id, const void *payload,
                         uint32_t len, uint32_t want_type, const char *want)
{
    char buf[XENSTORE_PAYLOAD_MAX + 1];
    struct xsd_sockmsg rh;
    int rc = fx_raw_call(s, type, req_id, tx_id, payload, len, &rh, buf, sizeof(buf));

    if (rc)
        fail_msg("request type %u: no reply (%s)", type, strerror(-rc));
    if (rh.type != want_type || (want && strcmp(buf, want) != 0))
        fail_msg("request type %u: reply type %u \"%.*s\", expected type %u \"%s\"", type, rh.type,
                 (int)rh.len, buf, want_type, want ? want : "");
    assert_int_equal(rh.req_id, req_id);
    assert_int_equal(rh.tx_id, tx_id);
}

/* len > XENSTORE_PAYLOAD_MAX: the connection is closed at once; nobody
 * else notices. */
static void test_oversized_length_closes_connection_others_unaffected(void **state)
{
    static const uint32_t lens[] = { XENSTORE_PAYLOAD_MAX + 1, 65536, 0xffffffffu };

    (void)state;
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        struct xsd_sockmsg m = { .type = XS_READ, .req_id = 1, .len = lens[i] };
        int s = fx_raw_connect();

        assert_int_equal(send(s, &m, sizeof(m), MSG_NOSIGNAL), (ssize_t)sizeof(m));
        if (!fx_raw_wait_closed(s, FX_WAIT_MS))
            fail_msg("connection still open after a header with len %u", lens[i]);
        close(s);
        expect_daemon_serving();
    }
}

/* A payload of exactly XENSTORE_PAYLOAD_MAX is fine. */
static void test_payload_of_exactly_4096_is_accepted(void **state)
{
    char msg[XENSTORE_PAYLOAD_MAX];
    unsigned len;
    char *v;
    int s;

    (void)state;
    memcpy(msg, "/wire/max", 10);
    memset(msg + 10, 'm', sizeof(msg) - 10);
    s = fx_raw_connect();
    expect_reply(s, XS_WRITE, 4, 0, msg, sizeof(msg), XS_WRITE, "OK");
    close(s);
    v = xs_read(h, XBT_NULL, "/wire/max", &len);
    assert_non_null(v);
    assert_int_equal(len, sizeof(msg) - 10);
    free(v);
}

/* A client that goes away in the middle of a message. */
static void test_truncated_message_then_close_is_harmless(void **state)
{
    struct xsd_sockmsg m = { .type = XS_READ, .req_id = 1, .len = 100 };
    int s;

    (void)state;
    s = fx_raw_connect();
    assert_int_equal(send(s, &m, 8, MSG_NOSIGNAL), 8);
    close(s);
    s = fx_raw_connect();
    assert_int_equal(send(s, &m, sizeof(m), MSG_NOSIGNAL), (ssize_t)sizeof(m));
    assert_int_equal(send(s, "/wire/ok\0", 10, MSG_NOSIGNAL), 10);
    close(s);
    s = fx_raw_connect();
    assert_int_equal(send(s, &m, sizeof(m), MSG_NOSIGNAL), (ssize_t)sizeof(m));
    shutdown(s, SHUT_WR);
    close(s);
    expect_daemon_serving();
}

/* A client that stalls in the middle of a header or payload holds up
 * nobody, and is answered once it completes the message. */
static void test_half_message_stall_does_not_block_others(void **state)
{
    struct xsd_sockmsg m = { .type = XS_READ, .req_id = 71, .len = 9 }, rh;
    char buf[64];
    int s1, s2, s3;

    (void)state;
    s1 = fx_raw_connect();
    assert_int_equal(send(s1, &m, 8, MSG_NOSIGNAL), 8);
    s3 = fx_raw_connect();
    m.req_id = 73;
    assert_int_equal(send(s3, &m, sizeof(m), MSG_NOSIGNAL), (ssize_t)sizeof(m));
    assert_int_equal(send(s3, "/wire", 5, MSG_NOSIGNAL), 5);

    s2 = fx_raw_connect();
    expect_reply(s2, XS_READ, 72, 0, "/wire/ok", 9, XS_READ, "fine");
    expect_daemon_serving();

    m.req_id = 71;
    assert_int_equal(send(s1, (char *)&m + 8, 8, MSG_NOSIGNAL), 8);
    assert_int_equal(send(s1, "/wire/ok", 9, MSG_NOSIGNAL), 9);
    assert_int_equal(fx_raw_recv(s1, &rh, buf, sizeof(buf), FX_WAIT_MS), 0);
    assert_int_equal(rh.type, XS_READ);
    assert_int_equal(rh.req_id, 71);
    assert_string_equal(buf, "fine");

    assert_int_equal(send(s3, "/ok", 4, MSG_NOSIGNAL), 4);
    assert_int_equal(fx_raw_recv(s3, &rh, buf, sizeof(buf), FX_WAIT_MS), 0);
    assert_int_equal(rh.type, XS_READ);
    assert_int_equal(rh.req_id, 73);
    assert_string_equal(buf, "fine");
    close(s1);
    close(s2);
    close(s3);
}

/* Strings must be NUL-terminated and as many as the request takes:
 * XS_ERROR EINVAL, and the connection stays usable. */
static void test_malformed_strings_are_einval(void **state)
{
    static const struct {
        uint32_t type;
        const char *p;
        uint32_t len;
    } bad[] = {
        { XS_READ, "/wire/ok", 8 },           /* no NUL */
        { XS_READ, "", 0 },                   /* nothing */
        { XS_READ, "/wire/ok\0extra", 15 },   /* two strings */
        { XS_MKDIR, "/wire/m", 7 },           /* no NUL */
        { XS_RM, "/wire/ok", 8 },             /* no NUL */
        { XS_DIRECTORY, "/wire", 5 },         /* no NUL */
        { XS_GET_PERMS, "/wire/ok", 8 },      /* no NUL */
        { XS_WRITE, "/wire/w", 7 },           /* no NUL at all */
        { XS_WATCH, "/wire/ok\0tok", 12 },    /* token not terminated */
        { XS_WATCH, "/wire/ok", 9 },          /* no token */
        { XS_UNWATCH, "/wire/ok", 9 },        /* no token */
        { XS_TRANSACTION_END, "T", 1 },       /* no NUL (and no tx) */
        { XS_SET_PERMS, "/wire/ok\0n0", 11 }, /* perm not terminated */
        { XS_GET_DOMAIN_PATH, "3", 1 },       /* no NUL */
        { XS_DIRECTORY_PART, "/wire", 6 },    /* no offset */
    };
    int s = fx_raw_connect();

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        expect_reply(s, bad[i].type, 100 + (uint32_t)i, 0, bad[i].p, bad[i].len, XS_ERROR,
                     "EINVAL");
    expect_reply(s, XS_READ, 1, 0, "/wire/ok", 9, XS_READ, "fine");
    fx_expect_enoent(h, "/wire/m");
    fx_expect_enoent(h, "/wire/w");
    close(s);
}

/* Types xenstored has no handler for (beyond XS_TYPE_COUNT, the reply-only
 * XS_WATCH_EVENT and XS_ERROR, removed XS_RESTRICT, XS_INVALID): XS_ERROR
 * ENOSYS, as xenstored's process_message answers. */
static void test_unknown_message_types_are_enosys(void **state)
{
    static const uint32_t types[] = {
        XS_TYPE_COUNT, XS_TYPE_COUNT + 1, 999,      XS_INVALID,        0x7fffffff,
        0xffffffffu,   XS_WATCH_EVENT,    XS_ERROR, XS_SET_TARGET + 1,
    };
    int s = fx_raw_connect();

    (void)state;
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        expect_reply(s, types[i], 200 + (uint32_t)i, 0, "/wire/ok", 9, XS_ERROR, "ENOSYS");
    expect_reply(s, XS_READ, 2, 0, "/wire/ok", 9, XS_READ, "fine");
    close(s);
}

/* xorshift64*: the fuzz tests are reproducible from their seed. */
static uint64_t rng;

static uint32_t rnd(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (uint32_t)((rng * 2685821657736338717ull) >> 32);
}

static void test_garbage_bytes_leave_daemon_serving(void **state)
{
    static char junk[65536];

    (void)state;
    rng = 0x5eed0001;
    for (int c = 0; c < 20; c++) {
        int s = fx_raw_connect();
        size_t n = 16 + rnd() % sizeof(junk);

        for (size_t i = 0; i < n; i++)
            junk[i] = (char)rnd();
        /* The daemon may hang up half way: that is fine. */
        for (size_t off = 0; off < n;) {
            ssize_t w = send(s, junk + off, n - off, MSG_NOSIGNAL | MSG_DONTWAIT);

            if (w <= 0)
                break;
            off += (size_t)w;
        }
        close(s);
    }
    expect_daemon_serving();
}

/* One fuzz message: a type (mostly real ones), ids and up to four strings
 * from a pool of paths, tokens, permissions and numbers, sometimes raw
 * bytes, sometimes unterminated, rarely oversized. */
static const char *const pool[] = {
    "/fuzz",
    "/fuzz/a",
    "/fuzz/a/b",
    "/fuzz/a/b/c",
    "fuzz-rel",
    "fuzz-rel/x",
    "/",
    "",
    "//",
    "/fuzz/",
    "@releaseDomain",
    "@introduceDomain",
    "@x",
    "/fuzz/bad.chr",
    "tok",
    "T",
    "F",
    "n0",
    "r5",
    "b7",
    "w1",
    "x9",
    "0",
    "1",
    "42",
    "99999",
    "-1",
    "pvabi-domid",
    "fx-cmd",
    "OK",
    "0xff",
};

static uint32_t fuzz_message(char *p, uint32_t *type, uint32_t *tx, uint32_t txs[], int ntx)
{
    uint32_t len = 0, r = rnd() % 100;

    *type = r < 90 ? rnd() % (XS_TYPE_COUNT + 1) : r < 95 ? rnd() : XS_WATCH_EVENT;
    *tx = rnd() % 4 == 0 ? (ntx && rnd() % 2 ? txs[rnd() % ntx] : rnd() % 8) : 0;
    if (rnd() % 20 == 0) {
        len = rnd() % XENSTORE_PAYLOAD_MAX;
        for (uint32_t i = 0; i < len; i++)
            p[i] = (char)rnd();
        return len;
    }
    for (uint32_t n = rnd() % 5; n; n--) {
        const char *s = pool[rnd() % (sizeof(pool) / sizeof(pool[0]))];
        size_t l = strlen(s) + 1;

        memcpy(p + len, s, l);
        len += (uint32_t)l;
    }
    if (len && rnd() % 10 == 0)
        len--; /* unterminated */
    if (rnd() % 25 == 0) {
        uint32_t extra = rnd() % 3000; /* a long value */

        memset(p + len, 'v', extra);
        len += extra;
    }
    return len;
}

/* Reads what the daemon sent @s without waiting; false if it hung up. */
static bool drain(int s, uint32_t txs[], int *ntx)
{
    for (;;) {
        struct pollfd pfd = { .fd = s, .events = POLLIN };
        struct xsd_sockmsg rh;
        char buf[XENSTORE_PAYLOAD_MAX + 1];
        int rc;

        if (poll(&pfd, 1, 0) == 0)
            return true;
        rc = fx_raw_recv(s, &rh, buf, sizeof(buf), FX_WAIT_MS);
        if (rc == -EPIPE)
            return false;
        assert_int_equal(rc, 0);
        assert_true(rh.len <= XENSTORE_PAYLOAD_MAX);
        if (rh.type == XS_TRANSACTION_START && *ntx < 8)
            txs[(*ntx)++] = (uint32_t)strtoul(buf, NULL, 10);
    }
}

/* Waits for the reply to a READ sent with @req_id, draining the rest;
 * false if the daemon hung up first. */
static bool sync_with(int s, uint32_t req_id)
{
    char buf[XENSTORE_PAYLOAD_MAX + 1];
    struct xsd_sockmsg rh;

    if (fx_raw_send(s, XS_READ, req_id, 0, "/wire/ok", 9) < 0)
        return false;
    for (;;) {
        int rc = fx_raw_recv(s, &rh, buf, sizeof(buf), FX_WAIT_MS);

        if (rc == -EPIPE)
            return false;
        if (rc)
            fail_msg("daemon did not answer a READ in %d ms during the fuzz (%s)", FX_WAIT_MS,
                     strerror(-rc));
        if (rh.req_id == req_id && rh.type == XS_READ) {
            assert_string_equal(buf, "fine");
            return true;
        }
    }
}

static void test_fuzz_random_messages_while_well_behaved_client_works(void **state)
{
    static char p[2 * XENSTORE_PAYLOAD_MAX];
    uint32_t txs[8];
    int s = fx_raw_connect(), ntx = 0, reconnects = 0;

    (void)state;
    rng = 0xf0220001;
    for (int i = 0; i < 3000; i++) {
        uint32_t type, tx, len = fuzz_message(p, &type, &tx, txs, ntx);
        bool alive;

        if (rnd() % 200 == 0)
            len = XENSTORE_PAYLOAD_MAX + 1 + rnd() % 100; /* gets us hung up on */
        if (type == XS_TRANSACTION_START)
            tx = 0;
        alive = fx_raw_send(s, type, rnd(), tx, p, len) == 0 && drain(s, txs, &ntx);
        if (alive && i % 50 == 49)
            alive = sync_with(s, 0xabc00000u + (uint32_t)i);
        if (!alive) {
            close(s);
            s = fx_raw_connect();
            ntx = 0;
            reconnects++;
        }
        if (i % 100 == 99) {
            char path[64], val[16];

            snprintf(path, sizeof(path), "/good/%d", i);
            snprintf(val, sizeof(val), "%d", i);
            fx_write(h, path, val);
            fx_expect_value(h, path, val);
        }
    }
    close(s);
    {
        unsigned n;
        char **e = xs_directory(h, XBT_NULL, "/good", &n);

        assert_non_null(e);
        assert_int_equal(n, 30);
        free(e);
    }
    print_message("fuzz: 3000 messages, %d reconnects\n", reconnects);
    expect_daemon_serving();
}

/* A client that never reads while watch events pile up for it is
 * disconnected in bounded memory; the daemon keeps serving the others. */
static void test_client_not_reading_watch_events_is_disconnected(void **state)
{
    static char msg[1200];
    char buf[1200];
    struct xsd_sockmsg rh;
    bool gone = false;
    int s, i;

    (void)state;
    s = fx_raw_connect();
    memcpy(msg, "/wire/flood", 12);
    memset(msg + 12, 'T', 1000);
    msg[1012] = 0;
    assert_int_equal(fx_raw_call(s, XS_WATCH, 1, 0, msg, 1013, &rh, buf, sizeof(buf)), 0);
    assert_int_equal(rh.type, XS_WATCH);
    /* From here on s reads nothing: each write queues ~1 KiB for it. */
    for (i = 0; i < 50000 && !gone; i++) {
        char v[16];
        struct pollfd pfd = { .fd = s, .events = POLLRDHUP };

        snprintf(v, sizeof(v), "%d", i);
        fx_write(h, "/wire/flood/x", v);
        if (i % 64 == 0)
            gone = poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLRDHUP | POLLHUP));
    }
    if (!gone)
        fail_msg("a client that read none of %d watch events (~%d MiB) is still connected", i,
                 i / 1024);
    print_message("non-reading client dropped after %d events\n", i);
    close(s);
    expect_daemon_serving();
}

/* Replies repeat req_id and tx_id, errors included. */
static void test_reply_echoes_req_id_and_tx_id(void **state)
{
    char id[32];
    struct xsd_sockmsg rh;
    uint32_t tx;
    int s = fx_raw_connect();

    (void)state;
    expect_reply(s, XS_READ, 0xdeadbeef, 0, "/wire/ok", 9, XS_READ, "fine");
    expect_reply(s, XS_READ, 0, 0, "/wire/ok", 9, XS_READ, "fine");
    expect_reply(s, XS_READ, 5, 0, "/wire/none", 11, XS_ERROR, "ENOENT");
    assert_int_equal(fx_raw_call(s, XS_TRANSACTION_START, 6, 0, "", 1, &rh, id, sizeof(id)), 0);
    tx = (uint32_t)strtoul(id, NULL, 10);
    expect_reply(s, XS_READ, 77, tx, "/wire/ok", 9, XS_READ, "fine");
    expect_reply(s, XS_READ, 78, tx, "/wire/none", 11, XS_ERROR, "ENOENT");
    expect_reply(s, XS_WRITE, 79, tx, "/wire/t\0v", 9, XS_WRITE, "OK");
    expect_reply(s, XS_TRANSACTION_END, 80, tx, "T", 2, XS_TRANSACTION_END, "OK");
    expect_reply(s, XS_READ, 81, tx, "/wire/ok", 9, XS_ERROR, "ENOENT"); /* tx is gone */
    close(s);
}

/* Sends a request (req_id 10 + type) and asserts the reply's type. */
static void call_expect(int s, uint32_t type, const void *p, uint32_t len, struct xsd_sockmsg *rh,
                        char *buf, size_t cap)
{
    assert_int_equal(fx_raw_call(s, type, 10 + type, 0, p, len, rh, buf, cap), 0);
    if (rh->type != type)
        fail_msg("request %u: reply type %u \"%.*s\"", type, rh->type, (int)rh->len, buf);
    assert_int_equal(rh->req_id, 10 + type);
}

/* A reply has its request's type and Xen's payload: "OK" for the ops that
 * return nothing, a value without a trailing NUL for READ, NUL-terminated
 * strings otherwise.  Watch events: type XS_WATCH_EVENT, ids 0. */
static void test_reply_types_and_payloads(void **state)
{
    char buf[XENSTORE_PAYLOAD_MAX + 1];
    struct xsd_sockmsg rh;
    int s = fx_raw_connect();

    (void)state;
#define CALL(ty, p, len) call_expect(s, ty, p, len, &rh, buf, sizeof(buf))
#define OK_REPLY()                                                                                 \
    do {                                                                                           \
        assert_int_equal(rh.len, 3);                                                               \
        assert_memory_equal(buf, "OK", 3);                                                         \
    } while (0)

    CALL(XS_WRITE, "/wire/r\0val", 11);
    OK_REPLY();
    CALL(XS_READ, "/wire/r", 8);
    assert_int_equal(rh.len, 3);
    assert_memory_equal(buf, "val", 3);
    CALL(XS_MKDIR, "/wire/r/d", 10);
    OK_REPLY();
    CALL(XS_DIRECTORY, "/wire/r", 8);
    assert_int_equal(rh.len, 2);
    assert_memory_equal(buf, "d", 2);
    CALL(XS_DIRECTORY, "/wire/r/d", 10);
    assert_int_equal(rh.len, 0);
    CALL(XS_GET_PERMS, "/wire/r", 8);
    assert_int_equal(rh.len, 3);
    assert_memory_equal(buf, "n0", 3);
    CALL(XS_SET_PERMS, "/wire/r\0n0\0r3", 14);
    OK_REPLY();
    CALL(XS_GET_PERMS, "/wire/r", 8);
    assert_int_equal(rh.len, 6);
    assert_memory_equal(buf, "n0\0r3", 6);
    CALL(XS_GET_DOMAIN_PATH, "3", 2);
    assert_int_equal(rh.len, 16);
    assert_string_equal(buf, "/local/domain/3");
    CALL(XS_IS_DOMAIN_INTRODUCED, "3", 2);
    assert_int_equal(rh.len, 2);
    assert_string_equal(buf, "F");
    CALL(XS_RM, "/wire/r", 8);
    OK_REPLY();

    /* WATCH: the acknowledgement, then the initial event. */
    assert_int_equal(fx_raw_send(s, XS_WATCH, 55, 0, "/wire/ev\0tk", 12), 0);
    assert_int_equal(fx_raw_recv(s, &rh, buf, sizeof(buf), FX_WAIT_MS), 0);
    assert_int_equal(rh.type, XS_WATCH);
    assert_int_equal(rh.req_id, 55);
    OK_REPLY();
    assert_int_equal(fx_raw_recv(s, &rh, buf, sizeof(buf), FX_WAIT_MS), 0);
    assert_int_equal(rh.type, XS_WATCH_EVENT);
    assert_int_equal(rh.req_id, 0);
    assert_int_equal(rh.tx_id, 0);
    assert_int_equal(rh.len, 12);
    assert_memory_equal(buf, "/wire/ev\0tk", 12);
    CALL(XS_UNWATCH, "/wire/ev\0tk", 12);
    OK_REPLY();

    CALL(XS_TRANSACTION_START, "", 1);
    assert_true(rh.len >= 2 && buf[rh.len - 1] == 0);
    {
        uint32_t tx = (uint32_t)strtoul(buf, NULL, 10);

        assert_int_not_equal(tx, 0);
        assert_int_equal(fx_raw_call(s, XS_TRANSACTION_END, 9, tx, "F", 2, &rh, buf, sizeof(buf)),
                         0);
        assert_int_equal(rh.type, XS_TRANSACTION_END);
        assert_int_equal(rh.tx_id, tx);
        OK_REPLY();
    }
    CALL(XS_RESET_WATCHES, "", 1);
    OK_REPLY();
#undef CALL
#undef OK_REPLY
    close(s);
}

/* Requests sent back to back are all answered, in order. */
static void test_pipelined_requests_answered_in_order(void **state)
{
    char out[3 * (16 + 16)], buf[64];
    size_t off = 0;
    struct xsd_sockmsg rh;
    int s = fx_raw_connect();

    (void)state;
    for (uint32_t i = 0; i < 3; i++) {
        struct xsd_sockmsg m = { .type = XS_READ, .req_id = 300 + i, .len = 9 };

        memcpy(out + off, &m, sizeof(m));
        memcpy(out + off + sizeof(m), "/wire/ok", 9);
        off += sizeof(m) + 9;
    }
    assert_int_equal(send(s, out, off, MSG_NOSIGNAL), (ssize_t)off);
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(fx_raw_recv(s, &rh, buf, sizeof(buf), FX_WAIT_MS), 0);
        assert_int_equal(rh.type, XS_READ);
        assert_int_equal(rh.req_id, 300 + i);
        assert_string_equal(buf, "fine");
    }
    close(s);
}

static void test_many_connections_at_once(void **state)
{
    enum { N = 200 };
    int s[N];

    (void)state;
    for (int i = 0; i < N; i++) {
        s[i] = fx_raw_connect();
        assert_int_equal(fx_raw_send(s[i], XS_READ, (uint32_t)i, 0, "/wire/ok", 9), 0);
    }
    for (int i = N - 1; i >= 0; i--) {
        char buf[64];
        struct xsd_sockmsg rh;

        assert_int_equal(fx_raw_recv(s[i], &rh, buf, sizeof(buf), FX_WAIT_MS), 0);
        assert_int_equal(rh.req_id, (uint32_t)i);
        assert_string_equal(buf, "fine");
        close(s[i]);
    }
    expect_daemon_serving();
}

int main(int argc, char **argv)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_oversized_length_closes_connection_others_unaffected),
        T(test_payload_of_exactly_4096_is_accepted),
        T(test_truncated_message_then_close_is_harmless),
        T(test_half_message_stall_does_not_block_others),
        T(test_malformed_strings_are_einval),
        T(test_unknown_message_types_are_enosys),
        T(test_garbage_bytes_leave_daemon_serving),
        T(test_fuzz_random_messages_while_well_behaved_client_works),
        T(test_client_not_reading_watch_events_is_disconnected),
        T(test_reply_echoes_req_id_and_tx_id),
        T(test_reply_types_and_payloads),
        T(test_pipelined_requests_answered_in_order),
        T(test_many_connections_at_once),
    };
#undef T
    int rc = fx_agent_main(argc, argv);

    if (rc >= 0)
        return rc;
    rc = fx_require_hv();
    if (rc)
        return rc;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
