/* SPDX-License-Identifier: MIT */
/*
 * `pvabi hv start|stop|status`: the embedded hypervisor's life.  SO_PEERCRED
 * of a connection to the socket names the daemon's pid (pvabi-hv listens
 * after it daemonizes, so the pid is the daemon's); before anything is
 * signalled, a toolstack context opened on the same socket (autostart off)
 * proves that pvabi-hv, and not some other program, answers there.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

extern char **environ;

/* How long a daemon may take to be ready, or to stop. */
#define HV_WAIT_MS 10000
/* pvabi-hv's exit status when another daemon holds the socket
 * (HV_EXIT_TAKEN in the daemon's protocol header). */
#define HV_EXIT_TAKEN 3

static int hv_start(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv);
static int hv_stop(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv);
static int hv_status(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv);

#define SOCKET_HELP "  --socket PATH  the daemon's socket (default: see `pvabi help hv`)\n"

const struct cli_cmd cli_hv_cmds[] = {
    {
        .name = "start",
        .path = "hv start",
        .args = "[--socket PATH] [PVABI-HV OPTION...]",
        .summary = "Start a pvabi-hv daemon and wait until it answers.",
        .help = SOCKET_HELP
        "Other options go to pvabi-hv (e.g. --allow-uid UID, --log-level debug,\n"
        "--exit-when-idle SECS; see pvabi-hv --help); --daemon and --ready-fd are\n"
        "set by this command.  The binary: $PVABI_HV, else the installed one, else\n"
        "the build tree's.  Prints the socket (--json: {\"started\": true, \"pid\": ...,\n"
        "\"socket\": ...}).  Fails (exit 1)\n"
        "if a daemon already answers there, or if it is not ready within 10 s.\n",
        .run = hv_start,
    },
    {
        .name = "stop",
        .path = "hv stop",
        .args = "[--socket PATH]",
        .summary = "Stop the daemon (SIGTERM) and wait until it has exited.",
        .help = SOCKET_HELP "Fails (exit 1) if no daemon answers, or if it has not exited\n"
                            "within 10 s.  Its domains see it die, as on a crash.\n",
        .run = hv_stop,
    },
    {
        .name = "status",
        .path = "hv status",
        .args = "[--socket PATH]",
        .summary = "Say whether a daemon answers, and its pid.",
        .help = SOCKET_HELP
        "Prints \"running: pid PID, socket PATH\" (exit 0) or \"not running: socket\n"
        "PATH\" (exit 1); --json: {\"running\": ..., \"pid\": ..., \"socket\": ...}.\n",
        .run = hv_status,
    },
    { 0 },
};

/* ---- the socket -------------------------------------------------------------- */

static const char *env(const char *name)
{
    const char *v = secure_getenv(name);

    return v && *v ? v : NULL;
}

/* As pvabi_open() chooses it: --socket, --platform local:PATH,
 * $PVABI_LOCAL_SOCKET, $XDG_RUNTIME_DIR/pvabi/hv.sock, /tmp/pvabi-UID/hv.sock. */
static char *socket_path(const struct cli *cli, const char *opt)
{
    if (opt)
        return cli_xstrdup(opt);
    if (cli->platform && strncmp(cli->platform, "local:", 6) == 0)
        return cli_xstrdup(cli->platform + 6);
    if (env("PVABI_LOCAL_SOCKET"))
        return cli_xstrdup(env("PVABI_LOCAL_SOCKET"));
    if (env("XDG_RUNTIME_DIR"))
        return cli_xasprintf("%s/pvabi/hv.sock", env("XDG_RUNTIME_DIR"));
    return cli_xasprintf("/tmp/pvabi-%u/hv.sock", (unsigned)getuid());
}

/* A connection to the daemon, or -errno (-ENAMETOOLONG for a path a
 * sockaddr_un cannot hold). */
static int hv_connect(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd, rc;

    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, strlen(path));
    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
        return fd;
    rc = -errno;
    close(fd);
    return rc;
}

static pid_t peer_pid(int fd)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);

    return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 ? cred.pid : -1;
}

/* Whether pvabi-hv answers on @path: it takes a toolstack HELLO, or
 * refuses one to this uid (-EPERM), which only pvabi-hv does.  Never starts
 * a daemon. */
static int is_pvabi_hv(const char *path)
{
    char spec[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
    pvabi_ctx *ctx;
    int rc;

    snprintf(spec, sizeof(spec), "local:%s", path);
    setenv("PVABI_LOCAL_AUTOSTART", "0", 1);
    rc = pvabi_open_flags(&ctx, spec, PVABI_OPEN_TOOLSTACK);
    pvabi_close(ctx);
    return rc == 0 || rc == -EPERM;
}

/* The pid of the pvabi-hv on @path (0: one answers, its pid is not visible
 * from this pid namespace), or -errno: -ECONNREFUSED/-ENOENT when none
 * answers, -EPROTO when something other than pvabi-hv does. */
static pid_t checked_pid(int fd, const char *path)
{
    pid_t pid = peer_pid(fd);

    if (pid < 0)
        return -EPROTO;
    return is_pvabi_hv(path) ? pid : -EPROTO;
}

static pid_t running_pid(const char *path)
{
    int fd = hv_connect(path);
    pid_t pid;

    if (fd < 0)
        return fd;
    pid = checked_pid(fd, path);
    close(fd);
    return pid;
}

/* Options common to stop and status: --socket, and the usual ones. */
static int socket_opt(void *arg, int c, const char *val)
{
    if (c != 's')
        return -1;
    *(const char **)arg = val;
    return 0;
}

static char *parse_socket_only(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
    static const struct cli_opt opts[] = { { "socket", true, 's' }, { NULL, false, 0 } };
    const char *sock = NULL;
    int first = cli_parse(cli, cmd, argc, argv, opts, socket_opt, &sock, false);

    if (first < argc)
        cli_usage(cmd, "unexpected argument '%s'", argv[first]);
    return socket_path(cli, sock);
}

/* "STATE: pid PID, socket PATH", or its JSON object. */
static void print_daemon(struct cli *cli, const char *state, pid_t pid, const char *path)
{
    if (!cli->json) {
        printf("%s: pid %d, socket %s\n", state, (int)pid, path);
        return;
    }
    cli_json_begin(cli);
    json_obj(&cli->out);
    json_key(&cli->out, state);
    json_bool(&cli->out, true);
    json_ku64(&cli->out, "pid", (uint64_t)pid);
    json_kstr(&cli->out, "socket", path);
    json_finish(&cli->out);
}

/* ---- status ------------------------------------------------------------------ */

static int hv_status(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
    char *path = parse_socket_only(cli, cmd, argc, argv);
    pid_t pid = running_pid(path);

    cli_json_begin(cli);
    if (pid >= 0) {
        print_daemon(cli, "running", pid, path);
    } else if (cli->json) {
        json_obj(&cli->out);
        json_key(&cli->out, "running");
        json_bool(&cli->out, false);
        json_kstr(&cli->out, "socket", path);
        json_finish(&cli->out);
    } else {
        printf("not running: socket %s\n", path);
    }
    if (pid == -EPROTO)
        cli_fail_msg("hv status: something other than pvabi-hv answers on %s", path);
    else if (pid < 0)
        cli_fail((int)pid, "hv status: no pvabi-hv answers on %s", path);
    free(path);
    return pid >= 0 ? CLI_OK : CLI_FAIL;
}

/* ---- stop -------------------------------------------------------------------- */

static int pidfd_of(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Waits for the daemon's exit (its pidfd readable), or where pidfds are
 * missing for it to drop our connection.  Returns 0 or -ETIMEDOUT. */
static int wait_gone(int pidfd, int conn)
{
    struct pollfd p = { .fd = pidfd >= 0 ? pidfd : conn, .events = POLLIN };
    int rc;

    do
        rc = poll(&p, 1, HV_WAIT_MS);
    while (rc < 0 && errno == EINTR);
    return rc > 0 ? 0 : rc == 0 ? -ETIMEDOUT : -errno;
}

/* SIGTERM through the pidfd where there is one: the pid cannot have been
 * reused since our connection proved the daemon alive. */
static int terminate(pid_t pid, int pidfd)
{
    int rc = pidfd >= 0 ? (int)syscall(SYS_pidfd_send_signal, pidfd, SIGTERM, NULL, 0)
                        : kill(pid, SIGTERM);

    return rc == 0 ? 0 : -errno;
}

static int stop_daemon(const char *path, pid_t *out)
{
    int conn = hv_connect(path), pidfd = -1, rc;
    pid_t pid;

    if (conn < 0)
        return conn;
    pid = checked_pid(conn, path);
    *out = pid;
    if (pid <= 0) {
        close(conn);
        return pid == 0 ? -ESRCH : pid;
    }
    pidfd = pidfd_of(pid);
    /* Hung up: it exited before the pidfd was made (whose pid may be
     * another process's by now).  Gone is what was asked. */
    if (poll(&(struct pollfd){ .fd = conn, .events = POLLIN }, 1, 0) == 1) {
        rc = 0;
        goto out;
    }
    rc = terminate(pid, pidfd);
    if (rc == 0)
        rc = wait_gone(pidfd, conn);
out:
    if (pidfd >= 0)
        close(pidfd);
    close(conn);
    return rc;
}

static int hv_stop(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
    char *path = parse_socket_only(cli, cmd, argc, argv);
    pid_t pid = 0;
    int rc = stop_daemon(path, &pid);

    if (rc == -ETIMEDOUT)
        cli_fail_msg("hv stop: pvabi-hv (pid %d) on %s did not exit within %d s", (int)pid, path,
                     HV_WAIT_MS / 1000);
    else if (rc == -EPROTO)
        cli_fail_msg("hv stop: something other than pvabi-hv answers on %s: not signalled", path);
    else if (rc == -ESRCH && pid == 0)
        cli_fail_msg("hv stop: the pvabi-hv on %s is in another pid namespace", path);
    else if (rc < 0 && pid <= 0)
        cli_fail(rc, "hv stop: no pvabi-hv answers on %s", path);
    else if (rc < 0)
        cli_fail(rc, "hv stop: stopping pvabi-hv (pid %d) on %s", (int)pid, path);
    else
        print_daemon(cli, "stopped", pid, path);
    free(path);
    return rc < 0 ? CLI_FAIL : CLI_OK;
}

/* ---- start ------------------------------------------------------------------- */

struct start {
    const char *sock; /* --socket */
    char **hv_args;   /* what goes to pvabi-hv */
    int nhv;
};

/* By hand: options this command does not know are pvabi-hv's. */
static void parse_start(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv,
                        struct start *st)
{
    st->hv_args = cli_xmalloc((size_t)argc * sizeof(char *));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            cli_help(cmd, stdout), exit(CLI_OK);
        else if (strcmp(a, "--json") == 0)
            cli->json = true;
        else if ((strcmp(a, "--socket") == 0 || strcmp(a, "--platform") == 0) && i + 1 == argc)
            cli_usage(cmd, "option '%s' needs a value", a);
        else if (strcmp(a, "--socket") == 0)
            st->sock = argv[++i];
        else if (strcmp(a, "--platform") == 0)
            cli->platform = argv[++i];
        else if (strncmp(a, "--socket=", 9) == 0)
            st->sock = a + 9;
        else if (strncmp(a, "--platform=", 11) == 0)
            cli->platform = a + 11;
        else if (strncmp(a, "--daemon", 8) == 0 || strncmp(a, "--ready-fd", 10) == 0)
            cli_usage(cmd, "'%s' is set by pvabi hv start", a);
        else
            st->hv_args[st->nhv++] = argv[i];
    }
}

/* $PVABI_HV alone when set (an explicit choice must not fall back), else
 * the installed binary, then the build tree's: as the library's autostart. */
static const char *find_hv(void)
{
    static const char *const builtin[] = {
#ifdef PVABI_HV_INSTALLED
        PVABI_HV_INSTALLED,
#endif
#ifdef PVABI_HV_BUILDDIR
        PVABI_HV_BUILDDIR,
#endif
        NULL,
    };

    if (env("PVABI_HV"))
        return env("PVABI_HV");
    for (int i = 0; builtin[i]; i++)
        if (access(builtin[i], X_OK) == 0)
            return builtin[i];
    return builtin[0] ? builtin[0] : "pvabi-hv";
}

/* pvabi-hv --socket S --daemon --ready-fd N [options], its stdout on our
 * stderr (only our result goes to stdout), the pipe's end as fd N. */
static int spawn_hv(const char *bin, const char *sock, const struct start *st, int wfd, pid_t *pid)
{
    int target = wfd == 3 ? 4 : 3, rc; /* dup2 to another number clears CLOEXEC */
    char fdnum[12];
    char **argv = cli_xmalloc((size_t)(st->nhv + 7) * sizeof(char *));
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, all;
    int n = 0;

    snprintf(fdnum, sizeof(fdnum), "%d", target);
    argv[n++] = (char *)bin;
    argv[n++] = "--socket";
    argv[n++] = (char *)sock;
    argv[n++] = "--daemon";
    argv[n++] = "--ready-fd";
    argv[n++] = fdnum;
    for (int i = 0; i < st->nhv; i++)
        argv[n++] = st->hv_args[i];
    argv[n] = NULL;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, wfd, target);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, 2, 1);
    /* Default signals, none blocked: an inherited SIG_IGN of SIGTERM would
     * make `hv stop` powerless. */
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setsigmask(&attr, &none);
    rc = posix_spawn(pid, bin, &fa, &attr, argv, environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    free(argv);
    return -rc;
}

/* 1 ready, 0 it closed the pipe without a word (it failed), -errno. */
static int wait_ready(int rfd)
{
    struct pollfd p = { .fd = rfd, .events = POLLIN };
    char byte;
    ssize_t n;
    int rc;

    do
        rc = poll(&p, 1, HV_WAIT_MS);
    while (rc < 0 && errno == EINTR);
    if (rc <= 0)
        return rc == 0 ? -ETIMEDOUT : -errno;
    do
        n = read(rfd, &byte, 1);
    while (n < 0 && errno == EINTR);
    return n == 1 ? 1 : n == 0 ? 0 : -errno;
}

/* Kills and reaps our children, including the daemon that --daemon's
 * forks detached: as the child subreaper (start_daemon), we became its
 * parent when the forks in between exited. */
static void kill_children(void)
{
    char path[300], buf[512], *p;
    struct dirent *e;
    DIR *dir = opendir("/proc");
    int ppid;

    while (dir && (e = readdir(dir))) {
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue; /* not a process */
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
        fclose(f);
        if (p && sscanf(p + 2, "%*c %d", &ppid) == 1 && ppid == getpid()) {
            pid_t child = (pid_t)atoi(e->d_name);
            kill(child, SIGKILL);
            waitpid(child, NULL, 0); /* ours now: reaped, not left a zombie */
        }
    }
    if (dir)
        closedir(dir);
}

/* Why it did not get ready, from the spawned process's exit. */
static int start_failed(int ready, pid_t pid, const char *bin, const char *sock)
{
    int status = 0;

    if (ready < 0) {
        /* Not ready in time: do not leave it half-started behind us. */
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        kill_children();
        return cli_fail(ready, "hv start: waiting for %s to be ready on %s", bin, sock);
    }
    /* The pipe is closed: the process that held it has exited. */
    waitpid(pid, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == HV_EXIT_TAKEN)
        return cli_fail_msg("hv start: another pvabi-hv already holds %s", sock);
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
        return cli_fail_msg("hv start: %s exited with status %d (its message is above)", bin,
                            WEXITSTATUS(status));
    return cli_fail_msg("hv start: %s failed to start on %s; run it in the foreground to see "
                        "why: %s --socket %s",
                        bin, sock, bin, sock);
}

static int start_daemon(struct cli *cli, const char *sock, const struct start *st)
{
    const char *bin = find_hv();
    int p[2], rc;
    pid_t pid = -1;

    if (pipe2(p, O_CLOEXEC) < 0)
        return cli_fail(errno, "hv start: pipe");
    /* The daemon's forks orphan it: as subreaper we can still find it to
     * kill it if it never gets ready (on success we exit and init adopts). */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    rc = spawn_hv(bin, sock, st, p[1], &pid);
    close(p[1]); /* now only the daemon holds it: its exit is EOF */
    if (rc < 0) {
        close(p[0]);
        return cli_fail(rc, "hv start: running %s", bin);
    }
    rc = wait_ready(p[0]);
    close(p[0]);
    if (rc != 1)
        return start_failed(rc, pid, bin, sock);
    waitpid(pid, NULL, 0); /* the first of --daemon's forks: it has exited */
    if (!cli->json) {
        printf("%s\n", sock);
        return CLI_OK;
    }
    pid = running_pid(sock);
    if (pid < 0)
        return cli_fail((int)pid, "hv start: pvabi-hv was ready on %s, then stopped answering",
                        sock);
    print_daemon(cli, "started", pid, sock);
    return CLI_OK;
}

static int hv_start(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
    struct start st = { 0 };
    char *sock;
    pid_t pid;
    int rc;

    parse_start(cli, cmd, argc, argv, &st);
    sock = socket_path(cli, st.sock);
    pid = running_pid(sock);
    if (pid > 0)
        rc = cli_fail_msg("hv start: already running: pid %d answers on %s", (int)pid, sock);
    else
        rc = start_daemon(cli, sock, &st);
    free(st.hv_args);
    free(sock);
    return rc;
}
