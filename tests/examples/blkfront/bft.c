/* SPDX-License-Identifier: MIT */
/*
 * bft.c - the blkfront tests' fixture (bft.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bf-pattern.h"
#include "bft.h"

const char *bft_blkback_path(void)
{
    const char *p = getenv("BLKBACK");
    return p && *p ? p : NULL;
}

void bft_setup(struct bft *t, uint64_t size)
{
    memset(t, 0, sizeof(*t));
    t->img_fd = -1;
    t->bb_pidfd = -1;
    it_daemon_start(&t->d);
    snprintf(t->image, sizeof(t->image), "%s/disk.img", t->d.dir);
    t->img_fd = open(t->image, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (t->img_fd < 0 || ftruncate(t->img_fd, (off_t)size) < 0)
        it_fail("image %s: %s", t->image, strerror(errno));
    t->size = size;
    int rc = pvabi_open_flags(&t->ts, NULL, PVABI_OPEN_TOOLSTACK);
    if (rc < 0)
        it_fail("toolstack context: %s", strerror(-rc));
    rc = pvabi_open(&t->fe, NULL);
    if (rc < 0)
        it_fail("frontend context: %s", strerror(-rc));
}

void bft_add_device(struct bft *t, pvabi_domid fe, const char *mode)
{
    const char *be_nodes[] = { "params", t->image,    "mode", mode,       "type", "file", "dev",
                               "xvda",   "removable", "0",    "bootable", "1",    NULL };
    const char *fe_nodes[] = { "virtual-device", "51712", "device-type", "disk", NULL };
    int rc = pvabi_xenbus_device_add(t->ts, "vbd", fe, 0, BFT_DEVID, be_nodes, fe_nodes);

    if (rc < 0)
        it_fail("device_add: %s", strerror(-rc));
}

static void child_common(void)
{
    /* The backend is the privileged domain, and dies with the test. */
    setenv("PVABI_LOCAL_DOMID", "0", 1);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
}

static void track_child(struct bft *t, pid_t pid)
{
    if (pid < 0)
        it_fail("fork: %s", strerror(errno));
    t->bb_pid = pid;
    t->bb_pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (t->bb_pidfd < 0)
        it_fail("pidfd_open: %s", strerror(errno));
}

void bft_blkback_start(struct bft *t, const char *const *args)
{
    const char *bin = bft_blkback_path();
    const char *argv[32] = { bin, "--platform", "local" };
    unsigned n = 3;

    for (unsigned i = 0; args && args[i] && n < 30; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        child_common();
        execv(bin, (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    track_child(t, pid);
}

void bft_child_start(struct bft *t, int (*fn)(void *), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        child_common();
        _exit(fn(arg));
    }
    track_child(t, pid);
}

int bft_backend_stop(struct bft *t, int sig)
{
    if (!t->bb_pid)
        return 0;
    kill(t->bb_pid, sig);
    int st = it_reap(t->bb_pid, t->bb_pidfd, "backend");
    close(t->bb_pidfd);
    t->bb_pid = 0;
    t->bb_pidfd = -1;
    return st;
}

struct blkfront *bft_open(struct bft *t, const struct blkfront_opts *opts)
{
    struct blkfront *bf = NULL;
    int rc = blkfront_open(t->fe, BFT_DEVID, opts, &bf);

    if (rc < 0)
        it_fail("blkfront_open: %s", strerror(-rc));
    return bf;
}

void bft_teardown(struct bft *t)
{
    char how[64];

    if (t->bb_pid) {
        int st = bft_backend_stop(t, SIGTERM);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            it_describe_status(st, how, sizeof(how));
            it_fail("the backend ended with %s", how);
        }
    }
    pvabi_close(t->fe);
    pvabi_close(t->ts);
    t->fe = t->ts = NULL;
    if (t->img_fd >= 0) {
        close(t->img_fd);
        unlink(t->image);
    }
    t->img_fd = -1;
    it_daemon_stop(&t->d);
}

long long bft_image_check(struct bft *t, uint64_t off, uint64_t len, uint64_t seed)
{
    uint8_t *buf = malloc(len ? len : 1);

    if (!buf || pread(t->img_fd, buf, len, (off_t)off) != (ssize_t)len)
        it_fail("reading the image: %s", strerror(errno));
    long long bad = bf_pattern_check(buf, off, len, seed);
    free(buf);
    return bad < 0 ? -1 : (long long)off + bad;
}

void bft_image_fill(struct bft *t, uint64_t off, uint64_t len, uint64_t seed)
{
    uint8_t *buf = malloc(len ? len : 1);

    if (!buf)
        it_fail("malloc");
    bf_pattern_fill(buf, off, len, seed);
    if (pwrite(t->img_fd, buf, len, (off_t)off) != (ssize_t)len)
        it_fail("writing the image: %s", strerror(errno));
    free(buf);
}
