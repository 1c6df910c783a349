/* SPDX-License-Identifier: MIT */
/*
 * test_blkfront_cli.c - blkfront-cli ($BLKFRONT_CLI) against blkback
 * ($BLKBACK): each run is its own process and domain (a fixed unprivileged
 * domid through PVABI_LOCAL_DOMID, so the toolstack step can name it
 * beforehand; it re-adds the device before every run, as a restarted
 * frontend needs).  Results are checked in the image file itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bf-pattern.h"
#include "bft.h"
#include "itest.h"

#define CLI_DOMID 40
#define MIB       (1024u * 1024u)

static struct bft T;
static char in_path[160], out_path[160];

static int setup(void **state)
{
    (void)state;
    bft_setup(&T, 16 * MIB);
    snprintf(in_path, sizeof(in_path), "%s/cli.in", T.d.dir);
    snprintf(out_path, sizeof(out_path), "%s/cli.out", T.d.dir);
    bft_blkback_start(&T, NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(in_path);
    unlink(out_path);
    bft_teardown(&T);
    return 0;
}

static void redirect(int fd, const char *path, int flags)
{
    int f = open(path ? path : "/dev/null", flags, 0600);
    if (f < 0 || dup2(f, fd) < 0)
        _exit(126);
    close(f);
}

static void on_change(pvabi_ctx *ctx, const char *path, void *opaque)
{
    (void)ctx;
    (void)path;
    (void)opaque;
}

/* The daemon removes a dead domain's home when it releases it: the next
 * toolstack step must come after that, or the removal takes the new
 * device directory with it.  Waits on a store watch for the removal. */
static void await_home_gone(void)
{
    const char *home = "/local/domain/40";
    pvabi_watch *w;
    char *v = NULL;

    assert_int_equal(pvabi_store_watch(T.ts, home, on_change, NULL, &w), 0);
    for (int i = 0; i < 200; i++) {
        int rc = pvabi_store_read(T.ts, PVABI_STORE_TXN_NONE, home, &v);
        free(v);
        v = NULL;
        if (rc == -ENOENT)
            break;
        assert_true(pvabi_store_wait(T.ts, 10000) > 0);
    }
    pvabi_store_unwatch(w);
}

/* Runs blkfront-cli with @args (NULL-terminated); stdin from in_path when
 * @with_in, stdout to out_path.  Returns its exit code. */
static int cli(const char *mode, int with_in, const char *const *args)
{
    const char *bin = getenv("BLKFRONT_CLI");
    const char *argv[24] = { bin, "--platform", "local", "--quiet" };
    unsigned n = 4;

    if (mode)
        bft_add_device(&T, CLI_DOMID, mode);
    for (unsigned i = 0; args[i] && n < 22; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        setenv("PVABI_LOCAL_DOMID", "40", 1);
        redirect(0, with_in ? in_path : NULL, O_RDONLY);
        redirect(1, out_path, O_WRONLY | O_CREAT | O_TRUNC);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    assert_true(pid > 0);
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    int st = it_reap(pid, pidfd, "blkfront-cli");
    close(pidfd);
    if (mode)
        await_home_gone();
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    rewind(f);
    uint8_t *b = malloc(*len + 1);
    assert_int_equal(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

static void test_blkfront_cli_fill_verify(void **state)
{
    (void)state;
    const char *fill[] = { "--depth", "8", "fill", "1M", "2M", "3", NULL };
    const char *verify[] = { "--depth", "32", "--chunk", "4K", "verify", "1M", "2M", "3", NULL };
    const char *sub[] = { "verify", "1052673", "10000", "3", NULL }; /* unaligned sub-range */
    const char *wrong_seed[] = { "verify", "1M", "4K", "4", NULL };
    const char *past_end[] = { "verify", "16M", "1", "3", NULL };

    assert_int_equal(cli("w", 0, fill), 0);
    assert_int_equal(bft_image_check(&T, MIB, 2 * MIB, 3), -1);
    assert_int_equal(cli("w", 0, verify), 0);
    assert_int_equal(cli("w", 0, sub), 0);
    assert_int_equal(cli("w", 0, wrong_seed), 1);
    /* One byte changed behind its back: verify finds it. */
    assert_int_equal(pwrite(T.img_fd, "\xff\x00", 2, 2 * MIB + 12345), 2);
    assert_int_equal(cli("w", 0, verify), 1);
    assert_int_equal(cli("w", 0, past_end), 1);
}

static void test_blkfront_cli_write_stdin_read_stdout(void **state)
{
    (void)state;
    enum { LEN = 300001 };
    uint8_t *data = malloc(LEN);
    const char *write_all[] = { "--depth", "4", "--chunk", "16K", "write", "1000", NULL };
    const char *write_len[] = { "write", "5M", "4096", NULL };
    const char *read[] = { "--depth", "16", "read", "1000", "300001", NULL };
    size_t got;

    for (unsigned i = 0; i < LEN; i++)
        data[i] = (uint8_t)(i * 7 + 3);
    FILE *f = fopen(in_path, "wb");
    assert_int_equal(fwrite(data, 1, LEN, f), LEN);
    fclose(f);
    assert_int_equal(cli("w", 1, write_all), 0);
    uint8_t *img = malloc(LEN);
    assert_int_equal(pread(T.img_fd, img, LEN, 1000), LEN);
    assert_memory_equal(img, data, LEN);
    assert_int_equal(cli("w", 0, read), 0);
    uint8_t *out = slurp(out_path, &got);
    assert_int_equal(got, LEN);
    assert_memory_equal(out, data, LEN);
    /* With LEN: only that much of stdin. */
    assert_int_equal(cli("w", 1, write_len), 0);
    assert_int_equal(pread(T.img_fd, img, 4097, 5 * MIB), 4097);
    assert_memory_equal(img, data, 4096);
    assert_int_equal(img[4096], 0);
    free(out);
    free(img);
    free(data);
}

static void test_blkfront_cli_info_flush_discard(void **state)
{
    (void)state;
    const char *info[] = { "--ring-order", "2", "--no-persistent", "info", NULL };
    const char *fill[] = { "fill", "0", "256K", "8", NULL };
    const char *discard[] = { "discard", "64K", "128K", NULL };
    const char *flush[] = { "flush", NULL };
    size_t got;

    assert_int_equal(cli("w", 0, info), 0);
    char *out = (char *)slurp(out_path, &got);
    out[got] = 0;
    assert_non_null(strstr(out, "size: 16777216\n"));
    assert_non_null(strstr(out, "ring-pages: 4\n"));
    assert_non_null(strstr(out, "persistent: 0\n"));
    free(out);
    assert_int_equal(cli("w", 0, fill), 0);
    assert_int_equal(cli("w", 0, flush), 0);
    assert_int_equal(cli("w", 0, discard), 0);
    uint8_t *img = malloc(256 * 1024);
    assert_int_equal(pread(T.img_fd, img, 256 * 1024, 0), 256 * 1024);
    assert_int_equal(bf_pattern_check(img, 0, 64 * 1024, 8), -1);
    for (unsigned i = 64 * 1024; i < 192 * 1024; i++)
        assert_int_equal(img[i], 0);
    assert_int_equal(bf_pattern_check(img + 192 * 1024, 192 * 1024, 64 * 1024, 8), -1);
    free(img);
}

static void test_blkfront_cli_readonly_and_usage(void **state)
{
    (void)state;
    const char *fill[] = { "fill", "0", "4K", "1", NULL };
    const char *read[] = { "read", "0", "4K", NULL };
    const char *bad_cmd[] = { "frobnicate", NULL };
    const char *bad_size[] = { "read", "0", "12Q", NULL };
    const char *bad_args[] = { "fill", "0", "4K", NULL };
    const char *bad_opt[] = { "--depth", "0", "info", NULL };

    assert_int_equal(cli("r", 0, fill), 1);
    uint8_t img[4096], zero[4096] = { 0 };
    assert_int_equal(pread(T.img_fd, img, sizeof(img), 0), sizeof(img));
    assert_memory_equal(img, zero, sizeof(img)); /* untouched */
    assert_int_equal(cli("r", 0, read), 0);
    assert_int_equal(cli(NULL, 0, bad_cmd), 2);
    assert_int_equal(cli(NULL, 0, bad_size), 2);
    assert_int_equal(cli(NULL, 0, bad_args), 2);
    assert_int_equal(cli(NULL, 0, bad_opt), 2);
}

#define BF_TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        BF_TEST(test_blkfront_cli_fill_verify),
        BF_TEST(test_blkfront_cli_write_stdin_read_stdout),
        BF_TEST(test_blkfront_cli_info_flush_discard),
        BF_TEST(test_blkfront_cli_readonly_and_usage),
    };

    if (!bft_blkback_path() || !getenv("BLKFRONT_CLI")) {
        fprintf(stderr, "SKIP: $BLKBACK or $BLKFRONT_CLI is not set\n");
        return 77;
    }
    return it_run_tests("blkfront-cli", tests);
}
