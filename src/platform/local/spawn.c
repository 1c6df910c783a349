/* SPDX-License-Identifier: MIT */
/*
 * Starting a pvabi-hv daemon when none answers, like a database's embedded
 * default: posix_spawn it (it detaches itself with --daemon and exits when
 * idle), hand it the write end of a pipe, and wait for its ready byte.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "platform/local/local.h"

extern char **environ;

/* Seconds an autostarted daemon stays without domains before it exits. */
#define LC_IDLE_EXIT "30"

/* The binaries to try: $PVABI_HV alone when it is set (an explicit choice
 * must not fall back silently), else the installed one, then the build
 * tree's. */
static unsigned candidates(const char *bin[2])
{
    const char *v = secure_getenv("PVABI_HV");
    unsigned n = 0;

    if (v && *v) {
        bin[0] = v;
        return 1;
    }
#ifdef PVABI_HV_INSTALLED
    bin[n++] = PVABI_HV_INSTALLED;
#endif
#ifdef PVABI_HV_BUILDDIR
    bin[n++] = PVABI_HV_BUILDDIR;
#endif
    return n;
}

/* The daemon makes its socket, but not a missing parent of the default
 * paths ($XDG_RUNTIME_DIR/pvabi, /tmp/pvabi-UID): private to this user. */
static void make_parent(const char *sock_path)
{
    char dir[PATH_MAX];
    char *slash;

    snprintf(dir, sizeof(dir), "%s", sock_path);
    slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        mkdir(dir, 0700); /* EEXIST is the usual case */
    }
}

/* Spawns @bin with the pipe's write end @wfd as its ready fd. */
static int spawn(pvabi_ctx *ctx, const char *bin, const char *sock_path, int wfd, pid_t *pid)
{
    /* dup2 onto another number clears FD_CLOEXEC in the child only. */
    int target = wfd == 3 ? 4 : 3, rc;
    char fdnum[12];
    char *argv[] = { (char *)bin, "--socket",         (char *)sock_path, "--daemon", "--ready-fd",
                     fdnum,       "--exit-when-idle", LC_IDLE_EXIT,      NULL };
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, all;

    snprintf(fdnum, sizeof(fdnum), "%d", target);
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, wfd, target);
    /* Silent by default, and it outlives us: it must not hold our stdio
     * (a pipe someone waits on).  Its failures show as a closed ready pipe. */
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawnattr_init(&attr);
    /* Its own session, default signals, nothing blocked: not the caller's
     * Ctrl-C, nor an inherited SIG_IGN of SIGTERM. */
    posix_spawnattr_setflags(&attr,
                             POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setsigmask(&attr, &none);
    rc = posix_spawn(pid, bin, &fa, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        pvabi__err(ctx, "local platform: starting %s: %s", bin, strerror(rc));
    return -rc;
}

/* Waits for the ready byte: 1 ready, 0 the daemon closed the pipe without
 * it (it failed), -ETIMEDOUT, -errno. */
static int wait_ready(int rfd)
{
    struct pollfd p = { .fd = rfd, .events = POLLIN };
    char byte;
    ssize_t n;
    int rc;

    do
        rc = poll(&p, 1, LC_TIMEOUT_MS);
    while (rc < 0 && errno == EINTR);
    if (rc == 0)
        return -ETIMEDOUT;
    if (rc < 0)
        return -errno;
    do
        n = read(rfd, &byte, 1);
    while (n < 0 && errno == EINTR);
    return n == 1 ? 1 : n == 0 ? 0 : -errno;
}

/* Collects the spawned process if it has exited, waiting up to @wait_ms for
 * it (a --daemon forks and exits; one that stays our child is collected at
 * close).  Returns its wait status, or -1 while it runs. */
static int reap(pid_t pid, int wait_ms)
{
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0), status;

    if (pidfd >= 0 && wait_ms > 0) {
        struct pollfd p = { .fd = pidfd, .events = POLLIN };
        while (poll(&p, 1, wait_ms) < 0 && errno == EINTR)
            ;
    }
    if (pidfd >= 0)
        close(pidfd);
    return waitpid(pid, &status, WNOHANG) == pid ? status : -1;
}

static void describe_exit(char *buf, size_t size, int status)
{
    if (status >= 0 && WIFEXITED(status))
        snprintf(buf, size, "it exited with status %d", WEXITSTATUS(status));
    else if (status >= 0 && WIFSIGNALED(status))
        snprintf(buf, size, "it was killed by signal %d", WTERMSIG(status));
    else
        snprintf(buf, size, "it closed its ready fd");
}

/* Starts @bin on @sock_path and waits for it to be ready. */
static int start(pvabi_ctx *ctx, struct lc *lc, const char *bin, const char *sock_path)
{
    char how[64];
    int p[2], rc, status;
    pid_t pid = -1;

    make_parent(sock_path);
    if (pipe2(p, O_CLOEXEC) < 0) {
        rc = -errno;
        pvabi__err(ctx, "local platform: starting pvabi-hv: pipe: %s", strerror(errno));
        return rc;
    }
    rc = spawn(ctx, bin, sock_path, p[1], &pid);
    close(p[1]); /* now only the daemon holds it: its exit is EOF */
    if (rc == 0)
        rc = wait_ready(p[0]);
    close(p[0]);
    if (rc == 1) {
        pvabi__debug(ctx, "local platform: started %s on %s", bin, sock_path);
        lc->child = reap(pid, 0) < 0 ? pid : 0;
        return 0;
    }
    if (rc == 0) {
        status = reap(pid, LC_TIMEOUT_MS);
        if (status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == HV_EXIT_TAKEN) {
            pvabi__debug(ctx, "local platform: another process is starting pvabi-hv on %s",
                         sock_path);
            return -EALREADY;
        }
        describe_exit(how, sizeof(how), status);
        pvabi__err(ctx,
                   "local platform: %s --socket %s failed to start (%s); run it by hand to "
                   "see why",
                   bin, sock_path, how);
        return -ENOENT;
    }
    if (pid > 0) {
        /* Not ready in time: do not leave it half-started behind us. */
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        pvabi__err(ctx, "local platform: waiting for %s --socket %s to be ready: %s", bin,
                   sock_path, strerror(-rc));
    }
    return rc;
}

int pvabi__lc_autostart(pvabi_ctx *ctx, struct lc *lc, const char *sock_path)
{
    const char *bin[2];
    unsigned n = candidates(bin);
    char tried[512] = "";
    size_t used = 0;

    for (unsigned i = 0; i < n; i++) {
        if (access(bin[i], X_OK) == 0)
            return start(ctx, lc, bin[i], sock_path);
        int w = snprintf(tried + used, sizeof(tried) - used, "%s%s (%s)", i ? ", " : "", bin[i],
                         strerror(errno));
        used += w > 0 && (size_t)w < sizeof(tried) - used ? (size_t)w : 0;
    }
    pvabi__err(ctx,
               "local platform: no pvabi-hv daemon at %s, and none could be started: tried "
               "%s%s; set PVABI_HV to the pvabi-hv binary or start one with `pvabi-hv "
               "--socket %s`",
               sock_path, n ? "" : "nothing", tried, sock_path);
    return -ENOENT;
}

void pvabi__lc_reap(struct lc *lc)
{
    if (lc->child > 0 && reap(lc->child, 0) >= 0)
        lc->child = 0;
}
