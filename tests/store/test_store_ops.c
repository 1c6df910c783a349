/* SPDX-License-Identifier: MIT */
/*
 * Every store operation and its errors, through Debian's libxenstore as the
 * privileged toolstack (the test process is no domain), against a private
 * pvabi-hv per test.  Expected results are Xen's (docs/misc/xenstore.txt and
 * Xen 4.17's C xenstored); where they come from the daemon's code rather
 * than the document, the test says so.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fixture.h"

static struct xs_handle *h;

static int setup(void **state)
{
    fx_setup(state);
    h = fx_xs_open();
    return 0;
}

static int teardown(void **state)
{
    xs_close(h);
    h = NULL;
    return fx_teardown(state);
}

/* The error of a failed libxenstore call, for assert_int_equal. */
#define FAILS_WITH(call) ((call) ? 0 : errno)

static void test_write_read_round_trip(void **state)
{
    (void)state;
    fx_write(h, "/ops/a", "hello");
    fx_expect_value(h, "/ops/a", "hello");
    fx_write(h, "/ops/a", "replaced, longer value");
    fx_expect_value(h, "/ops/a", "replaced, longer value");
    fx_write(h, "/ops/a", "x");
    fx_expect_value(h, "/ops/a", "x");
}

/* WRITE creates any missing parent paths, with empty values. */
static void test_write_creates_missing_parents_with_empty_values(void **state)
{
    (void)state;
    fx_write(h, "/ops/p/q/r", "leaf");
    fx_expect_value(h, "/ops/p", "");
    fx_expect_value(h, "/ops/p/q", "");
    fx_expect_value(h, "/ops/p/q/r", "leaf");
}

static void test_read_missing_node_is_enoent(void **state)
{
    (void)state;
    fx_write(h, "/ops/exists", "1");
    fx_expect_enoent(h, "/ops/exists/not");
    fx_expect_enoent(h, "/ops/missing");
    fx_expect_enoent(h, "/ops/missing/deeper/still");
}

/* MKDIR creates the node and missing parents, empty; an existing node and
 * its value are left alone (and it is no error). */
static void test_mkdir_creates_empty_node_and_keeps_existing_value(void **state)
{
    (void)state;
    assert_true(xs_mkdir(h, XBT_NULL, "/ops/m/n"));
    fx_expect_value(h, "/ops/m", "");
    fx_expect_value(h, "/ops/m/n", "");
    fx_write(h, "/ops/m/n", "kept");
    assert_true(xs_mkdir(h, XBT_NULL, "/ops/m/n"));
    fx_expect_value(h, "/ops/m/n", "kept");
    assert_true(xs_mkdir(h, XBT_NULL, "/ops/m"));
    fx_expect_value(h, "/ops/m/n", "kept");
}

/* RM deletes the node and all its children. */
static void test_rm_removes_subtree(void **state)
{
    unsigned n;
    char **e;

    (void)state;
    fx_write(h, "/ops/r/a/b", "1");
    fx_write(h, "/ops/r/a/c/d", "2");
    fx_write(h, "/ops/r/keep", "3");
    assert_true(xs_rm(h, XBT_NULL, "/ops/r/a"));
    fx_expect_enoent(h, "/ops/r/a");
    fx_expect_enoent(h, "/ops/r/a/b");
    fx_expect_enoent(h, "/ops/r/a/c/d");
    fx_expect_value(h, "/ops/r/keep", "3");
    e = xs_directory(h, XBT_NULL, "/ops/r", &n);
    assert_non_null(e);
    assert_int_equal(n, 1);
    assert_string_equal(e[0], "keep");
    free(e);
}

/* "It is not an error if <path> does not exist, but it _is_ an error if
 * <path>'s immediate parent does not exist either." */
static void test_rm_missing_node_succeeds_if_parent_exists(void **state)
{
    (void)state;
    fx_write(h, "/ops/parent", "");
    assert_true(xs_rm(h, XBT_NULL, "/ops/parent/never"));
}

static void test_rm_missing_parent_is_enoent(void **state)
{
    (void)state;
    assert_int_equal(FAILS_WITH(xs_rm(h, XBT_NULL, "/ops/nothing/here")), ENOENT);
}

/* xenstored refuses to remove the root: EINVAL. */
static void test_rm_root_is_einval(void **state)
{
    char *r;

    (void)state;
    assert_int_equal(FAILS_WITH(xs_rm(h, XBT_NULL, "/")), EINVAL);
    r = fx_read(h, XBT_NULL, "/");
    assert_non_null(r);
    free(r);
}

/* DIRECTORY gives the leaf names; xenstored keeps them in creation order
 * (a node's children list is appended to), which xenstore-ls shows. */
static void test_directory_lists_children_in_creation_order(void **state)
{
    const char *names[] = { "zeta", "alpha", "m-1", "B_2", "x@y" };
    unsigned n;
    char **e;

    (void)state;
    for (int i = 0; i < 5; i++) {
        char p[64];

        snprintf(p, sizeof(p), "/ops/d/%s", names[i]);
        fx_write(h, p, names[i]);
    }
    e = xs_directory(h, XBT_NULL, "/ops/d", &n);
    assert_non_null(e);
    assert_int_equal(n, 5);
    for (int i = 0; i < 5; i++)
        assert_string_equal(e[i], names[i]);
    free(e);
}

static void test_directory_of_leaf_is_empty_and_of_missing_is_enoent(void **state)
{
    unsigned n = 99;
    char **e;

    (void)state;
    fx_write(h, "/ops/leaf", "v");
    e = xs_directory(h, XBT_NULL, "/ops/leaf", &n);
    assert_non_null(e);
    assert_int_equal(n, 0);
    free(e);
    assert_null(xs_directory(h, XBT_NULL, "/ops/leaf/none", &n));
    assert_int_equal(errno, ENOENT);
}

#define BIG_CHILDREN 80

static void big_child_name(char *buf, size_t cap, int i)
{
    /* 60 characters each: 80 * 61 bytes is more than one 4096-byte reply. */
    snprintf(buf, cap, "c%02d_%s", i, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
}

static void make_big_directory(void)
{
    char p[128], name[64];

    for (int i = 0; i < BIG_CHILDREN; i++) {
        big_child_name(name, sizeof(name), i);
        snprintf(p, sizeof(p), "/ops/big/%s", name);
        fx_write(h, p, "");
    }
}

/* A children list longer than XENSTORE_PAYLOAD_MAX: DIRECTORY fails with
 * E2BIG (xenstored's reply would be too long) and libxenstore's
 * xs_directory() falls back to DIRECTORY_PART, which must give all of it. */
static void test_directory_too_large_for_one_reply_falls_back_to_directory_part(void **state)
{
    char buf[XENSTORE_PAYLOAD_MAX + 1], name[64];
    struct xsd_sockmsg rh;
    unsigned n;
    char **e;
    int s;

    (void)state;
    make_big_directory();
    s = fx_raw_connect();
    assert_int_equal(fx_raw_call(s, XS_DIRECTORY, 1, 0, "/ops/big", 9, &rh, buf, sizeof(buf)), 0);
    assert_int_equal(rh.type, XS_ERROR);
    assert_string_equal(buf, "E2BIG");
    close(s);

    e = xs_directory(h, XBT_NULL, "/ops/big", &n);
    if (!e)
        fail_msg("xs_directory of a %d-child node: %s", BIG_CHILDREN, strerror(errno));
    assert_int_equal(n, BIG_CHILDREN);
    for (int i = 0; i < BIG_CHILDREN; i++) {
        big_child_name(name, sizeof(name), i);
        assert_string_equal(e[i], name);
    }
    free(e);
}

/* One DIRECTORY_PART reply: <gencnt>|<child>|* and, for the last part of
 * the list, an extra empty string.  Returns the names' byte count. */
static size_t dir_part(int s, unsigned off, char *gen, char *names, size_t *nlen, bool *last)
{
    char req[64], buf[XENSTORE_PAYLOAD_MAX + 1];
    struct xsd_sockmsg rh;
    int len = snprintf(req, sizeof(req), "/ops/big%c%u", 0, off) + 1;
    size_t glen, body;

    assert_int_equal(
        fx_raw_call(s, XS_DIRECTORY_PART, 7, 0, req, (uint32_t)len, &rh, buf, sizeof(buf)), 0);
    assert_int_equal(rh.type, XS_DIRECTORY_PART);
    assert_true(rh.len <= XENSTORE_PAYLOAD_MAX);
    glen = strnlen(buf, rh.len);
    assert_true(glen > 0 && glen < rh.len);
    memcpy(gen, buf, glen + 1);
    body = rh.len - glen - 1;
    *last = body == 0 || (body >= 1 && buf[rh.len - 1] == 0 && (body == 1 || buf[rh.len - 2] == 0));
    if (*last && body > 0)
        body--; /* the empty string that ends the list */
    memcpy(names + *nlen, buf + glen + 1, body);
    *nlen += body;
    return body;
}

static void test_directory_part_offsets_and_generation(void **state)
{
    char gen0[32], gen[32], names[8192], expect[8192], after[32];
    size_t nlen = 0, elen = 0;
    bool last = false;
    unsigned off = 0;
    int s, parts = 0;

    (void)state;
    make_big_directory();
    for (int i = 0; i < BIG_CHILDREN; i++) {
        big_child_name(expect + elen, sizeof(expect) - elen, i);
        elen += strlen(expect + elen) + 1;
    }
    s = fx_raw_connect();
    while (!last) {
        off += (unsigned)dir_part(s, off, parts ? gen : gen0, names, &nlen, &last);
        if (parts)
            assert_string_equal(gen, gen0); /* unchanged node, same gencnt */
        assert_true(++parts < 10);
    }
    assert_true(parts >= 2);
    assert_int_equal(nlen, elen);
    assert_memory_equal(names, expect, elen);

    /* An offset behind the list: just the gencnt and an empty string. */
    {
        char buf[128];
        struct xsd_sockmsg rh;
        int len = snprintf(buf, sizeof(buf), "/ops/big%c99999", 0) + 1;

        assert_int_equal(
            fx_raw_call(s, XS_DIRECTORY_PART, 8, 0, buf, (uint32_t)len, &rh, buf, sizeof(buf)), 0);
        assert_int_equal(rh.type, XS_DIRECTORY_PART);
        assert_string_equal(buf, gen0);
        assert_int_equal(rh.len, strlen(gen0) + 2);
        assert_int_equal(buf[rh.len - 1], 0);
    }

    /* A new child changes the node, and so its generation count. */
    fx_write(h, "/ops/big/newcomer", "");
    nlen = 0;
    dir_part(s, 0, after, names, &nlen, &last);
    assert_string_not_equal(after, gen0);
    close(s);
}

static void test_get_set_permissions_round_trip(void **state)
{
    char perms[128];

    (void)state;
    fx_write(h, "/ops/perm", "v");
    assert_int_equal(fx_perms_set(h, "/ops/perm", "n5 r7 w9 b11"), 0);
    assert_int_equal(fx_perms_get(h, "/ops/perm", perms, sizeof(perms)), 0);
    assert_string_equal(perms, "n5 r7 w9 b11");
    assert_int_equal(fx_perms_set(h, "/ops/perm", "b0"), 0);
    assert_int_equal(fx_perms_get(h, "/ops/perm", perms, sizeof(perms)), 0);
    assert_string_equal(perms, "b0");
}

/* A node created by the privileged toolstack inherits its parent's
 * permissions as they are (owner included). */
static void test_new_node_inherits_parent_permissions(void **state)
{
    char perms[128];

    (void)state;
    fx_write(h, "/ops/inh", "");
    assert_int_equal(fx_perms_set(h, "/ops/inh", "r3 w4"), 0);
    fx_write(h, "/ops/inh/child/grandchild", "x");
    assert_int_equal(fx_perms_get(h, "/ops/inh/child", perms, sizeof(perms)), 0);
    assert_string_equal(perms, "r3 w4");
    assert_int_equal(fx_perms_get(h, "/ops/inh/child/grandchild", perms, sizeof(perms)), 0);
    assert_string_equal(perms, "r3 w4");
}

static void expect_raw_error(int s, uint32_t type, const void *payload, uint32_t len,
                             const char *err)
{
    char buf[XENSTORE_PAYLOAD_MAX + 1];
    struct xsd_sockmsg rh;

    assert_int_equal(fx_raw_call(s, type, 3, 0, payload, len, &rh, buf, sizeof(buf)), 0);
    if (rh.type != XS_ERROR)
        fail_msg("request type %u: reply type %u \"%.*s\", expected XS_ERROR %s", type, rh.type,
                 (int)rh.len, buf, err);
    assert_string_equal(buf, err);
}

/* SET_PERMS: <path>|<perm-as-string>|+ with perms one of w r b n + domid;
 * anything else, or no permission at all, is EINVAL. */
static void test_set_permissions_malformed_is_einval(void **state)
{
    int s;

    (void)state;
    fx_write(h, "/ops/sp", "");
    s = fx_raw_connect();
    expect_raw_error(s, XS_SET_PERMS, "/ops/sp\0x5", 11, "EINVAL");
    expect_raw_error(s, XS_SET_PERMS, "/ops/sp", 8, "EINVAL");
    expect_raw_error(s, XS_SET_PERMS, "/ops/sp\0", 9, "EINVAL");
    close(s);
}

static void test_get_domain_path(void **state)
{
    char *p;

    (void)state;
    p = xs_get_domain_path(h, 7);
    assert_non_null(p);
    assert_string_equal(p, "/local/domain/7");
    free(p);
    p = xs_get_domain_path(h, 0);
    assert_non_null(p);
    assert_string_equal(p, "/local/domain/0");
    free(p);
    p = xs_get_domain_path(h, 32000);
    assert_non_null(p);
    assert_string_equal(p, "/local/domain/32000");
    free(p);
}

static void expect_introduced(const char *domid, const char *answer)
{
    char buf[64];
    struct xsd_sockmsg rh;
    int s = fx_raw_connect();

    assert_int_equal(fx_raw_call(s, XS_IS_DOMAIN_INTRODUCED, 1, 0, domid,
                                 (uint32_t)strlen(domid) + 1, &rh, buf, sizeof(buf)),
                     0);
    if (rh.type != XS_IS_DOMAIN_INTRODUCED)
        fail_msg("IS_DOMAIN_INTRODUCED %s: reply type %u \"%s\"", domid, rh.type, buf);
    assert_int_equal(rh.len, 2);
    assert_string_equal(buf, answer);
    close(s);
}

static void test_is_domain_introduced_false_for_unknown_domain(void **state)
{
    (void)state;
    expect_introduced("12345", "F");
    assert_false(xs_is_domain_introduced(h, 12345));
}

/* Xen's dom0 is introduced for as long as xenstored runs; the privileged
 * domain stands for it here. */
static void test_is_domain_introduced_true_for_privileged_domain(void **state)
{
    (void)state;
    expect_introduced("0", "T");
}

/* DOMID_SELF (0x7ff0): xenstored answers T (the caller is introduced). */
static void test_is_domain_introduced_true_for_domid_self(void **state)
{
    (void)state;
    expect_introduced("32752", "T");
}

static void test_value_with_embedded_nul_bytes_round_trips(void **state)
{
    static const char v[] = { 'a', 0, 'b', 0, 0, 'c' };
    unsigned len = 0;
    char *r;

    (void)state;
    assert_true(xs_write(h, XBT_NULL, "/ops/bin", v, sizeof(v)));
    r = xs_read(h, XBT_NULL, "/ops/bin", &len);
    assert_non_null(r);
    assert_int_equal(len, sizeof(v));
    assert_memory_equal(r, v, sizeof(v));
    free(r);
}

static void test_empty_value_round_trips(void **state)
{
    unsigned len = 99;
    char *r;

    (void)state;
    fx_write(h, "/ops/empty", "something");
    assert_true(xs_write(h, XBT_NULL, "/ops/empty", "", 0));
    r = xs_read(h, XBT_NULL, "/ops/empty", &len);
    assert_non_null(r);
    assert_int_equal(len, 0);
    assert_string_equal(r, "");
    free(r);
}

/* Paths: ASCII alphanumerics and -/_@ only, no doubled or trailing slash
 * (except the root), not empty: EINVAL on every operation. */
static void test_invalid_paths_are_einval(void **state)
{
    static const char *const bad[] = {
        "/ops/a.b", "/ops/sp ace", "/ops/colon:",   "/ops/trailing/", "/ops//double", "//",
        "",         "/ops/t\tab",  "/ops/\xc3\xa9", "/ops/quote\"",
    };
    struct xs_permissions p = { .id = 0, .perms = XS_PERM_NONE };
    unsigned n;

    (void)state;
    fx_write(h, "/ops/ok", "");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *b = bad[i];

        errno = 0;
        assert_null(fx_read(h, XBT_NULL, b));
        if (errno != EINVAL)
            fail_msg("read \"%s\": %s, expected EINVAL", b, strerror(errno));
        assert_int_equal(FAILS_WITH(xs_write(h, XBT_NULL, b, "v", 1)), EINVAL);
        assert_int_equal(FAILS_WITH(xs_mkdir(h, XBT_NULL, b)), EINVAL);
        assert_int_equal(FAILS_WITH(xs_rm(h, XBT_NULL, b)), EINVAL);
        assert_null(xs_directory(h, XBT_NULL, b, &n));
        assert_int_equal(errno, EINVAL);
        assert_null(xs_get_permissions(h, XBT_NULL, b, &n));
        assert_int_equal(errno, EINVAL);
        assert_int_equal(FAILS_WITH(xs_set_permissions(h, XBT_NULL, b, &p, 1)), EINVAL);
        assert_int_equal(FAILS_WITH(xs_watch(h, b, "tok")), EINVAL);
    }
    /* "@" is a path character, only special at the start (watches). */
    fx_write(h, "/ops/at@sign", "ok");
    fx_expect_value(h, "/ops/at@sign", "ok");
    errno = 0;
    assert_null(fx_read(h, XBT_NULL, "@releaseDomain"));
    assert_int_equal(errno, EINVAL);
}

/* A path of @len characters: "/lim/" then components of 99 characters. */
static char *long_path(const char *prefix, size_t len)
{
    char *p = malloc(len + 1);
    size_t off = strlen(prefix);

    assert_non_null(p);
    memcpy(p, prefix, off);
    while (off < len) {
        size_t run = 0;

        while (off < len && run < 99) {
            p[off++] = (char)('a' + run % 26);
            run++;
        }
        if (off < len - 1)
            p[off++] = '/';
    }
    if (p[len - 1] == '/')
        p[len - 1] = 'z';
    p[len] = 0;
    assert_int_equal(strlen(p), len);
    return p;
}

static void test_path_of_2048_characters_is_valid(void **state)
{
    char *p = long_path("/lim/", 2048);

    (void)state;
    fx_write(h, p, "deep");
    fx_expect_value(h, p, "deep");
    free(p);
}

/* docs/misc/xenstore.txt: "Paths longer than 3072 bytes are forbidden". */
static void test_path_longer_than_3072_is_einval(void **state)
{
    char *p = long_path("/lim/", 3073);

    (void)state;
    assert_int_equal(FAILS_WITH(xs_write(h, XBT_NULL, p, "v", 1)), EINVAL);
    assert_null(fx_read(h, XBT_NULL, p));
    assert_int_equal(errno, EINVAL);
    free(p);
}

/* Xen 4.17's xenstored (is_valid_nodename, --path-max, default
 * XENSTORE_REL_PATH_MAX = 2048) counts a path's length from after
 * "/local/domain/<id>/" when it is under a domain's home, else from its
 * start, for every connection: 2049 characters outside a home are EINVAL. */
static void test_path_over_2048_outside_domain_home_is_einval(void **state)
{
    char *p = long_path("/lim/", 2049);

    (void)state;
    assert_int_equal(FAILS_WITH(xs_write(h, XBT_NULL, p, "v", 1)), EINVAL);
    free(p);
}

static void test_path_under_domain_home_may_have_2048_more(void **state)
{
    const char *home = "/local/domain/7/";
    char *ok = long_path(home, strlen(home) + 2048);
    char *bad = long_path(home, strlen(home) + 2049);

    (void)state;
    fx_write(h, ok, "v");
    fx_expect_value(h, ok, "v");
    assert_int_equal(FAILS_WITH(xs_write(h, XBT_NULL, bad, "v", 1)), EINVAL);
    free(ok);
    free(bad);
}

/* A message's payload is at most XENSTORE_PAYLOAD_MAX: libxenstore refuses
 * a bigger write itself (E2BIG) and the connection stays usable. */
static void test_value_too_large_for_a_message_is_e2big(void **state)
{
    char *v = malloc(XENSTORE_PAYLOAD_MAX);

    (void)state;
    assert_non_null(v);
    memset(v, 'v', XENSTORE_PAYLOAD_MAX);
    assert_int_equal(FAILS_WITH(xs_write(h, XBT_NULL, "/ops/huge", v, XENSTORE_PAYLOAD_MAX)),
                     E2BIG);
    fx_expect_enoent(h, "/ops/huge");
    /* The largest that fits: path "/ops/huge" (10 bytes with NUL). */
    assert_true(xs_write(h, XBT_NULL, "/ops/huge", v, XENSTORE_PAYLOAD_MAX - 10));
    {
        unsigned len;
        char *r = xs_read(h, XBT_NULL, "/ops/huge", &len);

        assert_non_null(r);
        assert_int_equal(len, XENSTORE_PAYLOAD_MAX - 10);
        assert_memory_equal(r, v, len);
        free(r);
    }
    free(v);
}

/* Value-size quotas are for unprivileged domains: the toolstack may write
 * more than the default 2048 bytes. */
static void test_privileged_value_larger_than_quota_is_accepted(void **state)
{
    char v[3000];

    (void)state;
    memset(v, 'q', sizeof(v) - 1);
    v[sizeof(v) - 1] = 0;
    fx_write(h, "/ops/bigval", v);
    fx_expect_value(h, "/ops/bigval", v);
}

/* CONTROL commands are implementation specific; an unknown one is EINVAL. */
static void test_control_unknown_command_is_einval(void **state)
{
    (void)state;
    errno = 0;
    assert_null(xs_control_command(h, "fx-no-such-command", NULL, 0));
    assert_int_equal(errno, EINVAL);
    /* The connection is still good. */
    fx_write(h, "/ops/after-control", "1");
    fx_expect_value(h, "/ops/after-control", "1");
}

static void test_root_exists_and_reads_empty(void **state)
{
    char *r;

    (void)state;
    r = fx_read(h, XBT_NULL, "/");
    assert_non_null(r);
    free(r);
}

int main(int argc, char **argv)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_write_read_round_trip),
        T(test_write_creates_missing_parents_with_empty_values),
        T(test_read_missing_node_is_enoent),
        T(test_mkdir_creates_empty_node_and_keeps_existing_value),
        T(test_rm_removes_subtree),
        T(test_rm_missing_node_succeeds_if_parent_exists),
        T(test_rm_missing_parent_is_enoent),
        T(test_rm_root_is_einval),
        T(test_directory_lists_children_in_creation_order),
        T(test_directory_of_leaf_is_empty_and_of_missing_is_enoent),
        T(test_directory_too_large_for_one_reply_falls_back_to_directory_part),
        T(test_directory_part_offsets_and_generation),
        T(test_get_set_permissions_round_trip),
        T(test_new_node_inherits_parent_permissions),
        T(test_set_permissions_malformed_is_einval),
        T(test_get_domain_path),
        T(test_is_domain_introduced_false_for_unknown_domain),
        T(test_is_domain_introduced_true_for_privileged_domain),
        T(test_is_domain_introduced_true_for_domid_self),
        T(test_value_with_embedded_nul_bytes_round_trips),
        T(test_empty_value_round_trips),
        T(test_invalid_paths_are_einval),
        T(test_path_of_2048_characters_is_valid),
        T(test_path_longer_than_3072_is_einval),
        T(test_path_over_2048_outside_domain_home_is_einval),
        T(test_path_under_domain_home_may_have_2048_more),
        T(test_value_too_large_for_a_message_is_e2big),
        T(test_privileged_value_larger_than_quota_is_accepted),
        T(test_control_unknown_command_is_einval),
        T(test_root_exists_and_reads_empty),
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
