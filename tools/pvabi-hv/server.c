/* SPDX-License-Identifier: MIT */
/*
 * The server: claims the socket path, optionally daemonizes, reports
 * readiness, and runs the single-threaded epoll loop until a signal or the
 * idle timer stops it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include "hv.h"
#include "xs.h"

struct hv_state hv;

static struct hv_source listen_src = { SRC_LISTEN };
static struct hv_source signal_src = { SRC_SIGNAL };
static struct hv_source timer_src = { SRC_TIMER };

/* A socket file this daemon makes: bound under a temporary name, renamed
 * into place once listening, and unlinked at exit only if it is still the
 * file we made (dev, ino). */
struct sock_file {
    const char *what;
    int type;
    char path[PATH_MAX];
    char temp[PATH_MAX];
    dev_t dev;
    ino_t ino;
};

static struct sock_file main_sock = { .what = "socket", .type = SOCK_SEQPACKET };
/* The embedded store's, at PATH.xenstore (xs.h). */
static struct sock_file store_sock = { .what = "store socket", .type = SOCK_STREAM };

/* ---- claiming the path --------------------------------------------------- */

/* mkdir -p of the directory part of @path; made components get mode 0700. */
static int make_parent(const char *path)
{
    char dir[PATH_MAX];
    char *slash;

    if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
        return -ENAMETOOLONG;
    slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = '\0';
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* Anyone who can write the directory can swap the socket for their own. */
static void warn_if_public(const char *path)
{
    char dir[PATH_MAX];
    char *slash;
    struct stat st;

    snprintf(dir, sizeof(dir), "%s", path);
    slash = strrchr(dir, '/');
    if (!slash)
        return;
    slash[slash == dir] = '\0';
    if (stat(dir, &st) == 0 && (st.st_mode & 022) && !(st.st_mode & S_ISVTX))
        hv_warn("%s is writable by others: they could replace the socket", dir);
}

static int fill_addr(const char *path, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(sa->sun_path))
        return -ENAMETOOLONG;
    memcpy(sa->sun_path, path, strlen(path));
    return 0;
}

/* 0 if nothing answers at @path (a dead daemon's socket is removed); -1 with
 * a message if something else is there, -2 if a daemon answers. */
static int clear_stale(const char *path, int type)
{
    int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa;
    struct stat st;
    int r, err;

    if (fd < 0)
        return fprintf(stderr, "pvabi-hv: socket: %s\n", strerror(errno)), -1;
    if (fill_addr(path, &sa) != 0) {
        close(fd);
        return fprintf(stderr, "pvabi-hv: %s: path too long for a socket\n", path), -1;
    }
    r = connect(fd, (const struct sockaddr *)&sa, sizeof(sa));
    err = errno;
    close(fd);
    if (r == 0) {
        fprintf(stderr, "pvabi-hv: another pvabi-hv answers on %s; not starting\n", path);
        return -2;
    }
    if (err == ENOENT)
        return 0;
    if (err != ECONNREFUSED || lstat(path, &st) != 0 || !S_ISSOCK(st.st_mode)) {
        fprintf(stderr, "pvabi-hv: %s is in the way (connect: %s); not starting\n", path,
                strerror(err));
        return -1;
    }
    hv_info("removing the stale socket %s", path);
    if (unlink(path) != 0 && errno != ENOENT)
        return fprintf(stderr, "pvabi-hv: unlink %s: %s\n", path, strerror(errno)), -1;
    return 0;
}

/* The lock makes "is it stale? remove, bind" one step: two daemons starting
 * at once cannot both find the socket stale and remove each other's. */
static int take_lock(const char *path)
{
    char lock[PATH_MAX];
    int fd;

    if (snprintf(lock, sizeof(lock), "%s.lock", path) >= (int)sizeof(lock))
        return fprintf(stderr, "pvabi-hv: socket path too long\n"), -1;
    fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return fprintf(stderr, "pvabi-hv: %s: %s\n", lock, strerror(errno)), -1;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        fprintf(stderr, "pvabi-hv: another pvabi-hv holds %s; not starting\n", lock);
        close(fd);
        return -2;
    }
    return fd; /* kept open for the daemon's life: that holds the lock */
}

/* Listening now: make the socket visible under its real name. */
static int publish_socket(struct sock_file *f)
{
    if (rename(f->temp, f->path) == 0)
        return 0;
    fprintf(stderr, "pvabi-hv: renaming %s to %s: %s\n", f->temp, f->path, strerror(errno));
    unlink(f->temp);
    return -1;
}

/* Bound under f->temp, not yet listening: see hv_server_run(). */
static int bind_file(struct sock_file *f)
{
    int n = snprintf(f->temp, sizeof(f->temp), "%s.%ld.new", f->path, (long)getpid());
    struct sockaddr_un sa;
    struct stat st;
    int fd;

    if (n >= (int)sizeof(f->temp) || fill_addr(f->temp, &sa) != 0)
        return fprintf(stderr, "pvabi-hv: %s path too long\n", f->what), -1;
    unlink(sa.sun_path);
    fd = socket(AF_UNIX, f->type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        stat(sa.sun_path, &st) != 0) {
        fprintf(stderr, "pvabi-hv: binding %s: %s\n", sa.sun_path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    return fd;
}

/* Both sockets bound (the lock held), or a negative status: -2 when another
 * daemon holds the path. */
static int bind_to(const char *path, int *store_fd)
{
    struct sockaddr_un sa;
    int r, fd;

    snprintf(main_sock.path, sizeof(main_sock.path), "%s", path);
    r = snprintf(store_sock.path, sizeof(store_sock.path), "%s.xenstore", path);
    if (r >= (int)sizeof(store_sock.path) || fill_addr(store_sock.path, &sa) != 0)
        return fprintf(stderr, "pvabi-hv: %s.xenstore: too long for a socket path\n", path), -1;
    r = make_parent(path);
    if (r)
        return fprintf(stderr, "pvabi-hv: %s: %s\n", path, strerror(-r)), -1;
    warn_if_public(path);
    if ((r = take_lock(path)) < 0 || (r = clear_stale(path, SOCK_SEQPACKET)) < 0 ||
        (r = clear_stale(store_sock.path, SOCK_STREAM)) < 0)
        return r;
    fd = bind_file(&main_sock);
    if (fd < 0)
        return -1;
    *store_fd = bind_file(&store_sock);
    if (*store_fd < 0) {
        close(fd);
        unlink(main_sock.temp);
        return -1;
    }
    return fd;
}

static void unlink_ours(const struct sock_file *f)
{
    struct stat st;

    if (lstat(f->path, &st) == 0 && st.st_dev == f->dev && st.st_ino == f->ino)
        unlink(f->path);
}

/* ---- process set-up ------------------------------------------------------- */

static int daemonize(void)
{
    pid_t pid = fork();
    int null;

    if (pid < 0)
        return fprintf(stderr, "pvabi-hv: fork: %s\n", strerror(errno)), -1;
    if (pid > 0)
        _exit(0);
    setsid();
    /* Not a session leader, so it can never acquire a terminal. */
    pid = fork();
    if (pid < 0)
        return fprintf(stderr, "pvabi-hv: fork: %s\n", strerror(errno)), -1;
    if (pid > 0)
        _exit(0);
    if (chdir("/") != 0)
        return -1;
    null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0)
        return -1;
    dup2(null, STDIN_FILENO);
    dup2(null, STDOUT_FILENO);
    dup2(null, STDERR_FILENO);
    if (null > STDERR_FILENO)
        close(null);
    return 0;
}

static void raise_fd_limit(void)
{
    struct rlimit rl;

    /* Each grant holds a memfd and each port an eventfd. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int watch(int fd, struct hv_source *src)
{
    struct epoll_event ev = { .events = EPOLLIN, .data.ptr = src };

    return epoll_ctl(hv.epfd, EPOLL_CTL_ADD, fd, &ev);
}

static int loop_setup(void)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    signal(SIGPIPE, SIG_IGN);
    if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
        return -1;
    hv.epfd = epoll_create1(EPOLL_CLOEXEC);
    hv.sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    hv.timerfd = -1;
    if (hv.idle_secs)
        hv.timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    hv.reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (hv.epfd < 0 || hv.sigfd < 0 || (hv.idle_secs && hv.timerfd < 0) || hv.reserve_fd < 0)
        return -1;
    if (watch(hv.lsock, &listen_src) || watch(xs.lsock, &xs.listen_src) ||
        watch(hv.sigfd, &signal_src))
        return -1;
    if (hv.timerfd >= 0 && watch(hv.timerfd, &timer_src))
        return -1;
    hv_idle_update();
    return 0;
}

static void ready(int fd)
{
    if (fd < 0)
        return;
    if (write(fd, "R", 1) != 1)
        hv_warn("--ready-fd %d: %s", fd, strerror(errno));
    close(fd);
}

/* ---- the loop ------------------------------------------------------------- */

void hv_idle_update(void)
{
    struct itimerspec its = { { 0, 0 }, { 0, 0 } };

    if (hv.timerfd < 0 || hv.nconns > 1)
        return;
    /* Armed when the last connection goes, disarmed by the first. */
    if (hv.nconns == 0)
        its.it_value.tv_sec = hv.idle_secs;
    if (timerfd_settime(hv.timerfd, 0, &its, NULL) != 0)
        hv_warn("timerfd_settime: %s", strerror(errno));
}

static void on_signal(void)
{
    struct signalfd_siginfo si;

    while (read(hv.sigfd, &si, sizeof(si)) == sizeof(si)) {
        hv_info("signal %u: stopping", si.ssi_signo);
        hv.stop = true;
    }
}

static void on_timer(void)
{
    struct pollfd pending[2] = { { .fd = hv.lsock, .events = POLLIN },
                                 { .fd = xs.lsock, .events = POLLIN } };
    uint64_t expirations;

    if (read(hv.timerfd, &expirations, sizeof(expirations)) != sizeof(expirations))
        return;
    /* A connection still in a backlog is a client on its way: stay. */
    if (hv.nconns == 0 && poll(pending, 2, 0) == 0) {
        hv_info("no domain for %u s: stopping", hv.idle_secs);
        hv.stop = true;
    }
}

static void on_event(struct hv_source *src, uint32_t events)
{
    switch (src->kind) {
    case SRC_LISTEN:
        hv_conn_accept();
        break;
    case SRC_SIGNAL:
        on_signal();
        break;
    case SRC_TIMER:
        on_timer();
        break;
    case SRC_CONN:
        hv_conn_event((struct hv_dom *)src, events);
        break;
    case SRC_STORE_LISTEN:
        xs_accept();
        break;
    case SRC_STORE_CONN:
        xs_conn_event((struct xs_conn *)src, events);
        break;
    }
}

static int loop_run(void)
{
    struct epoll_event evs[64];

    while (!hv.stop) {
        int n = epoll_wait(hv.epfd, evs, 64, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return hv_warn("epoll_wait: %s", strerror(errno)), -1;
        for (int i = 0; i < n; i++)
            on_event(evs[i].data.ptr, evs[i].events);
        /* Deaths only now: the batch may still point at doomed domains
         * (and at closed store connections). */
        hv_reap();
        hv_free_released();
        xs_free_closed();
    }
    return 0;
}

static void loop_teardown(void)
{
    /* Store clients first: nobody is left to watch the domains go. */
    xs_close_all();
    hv_dom_kill_all();
    xs_teardown();
    unlink_ours(&store_sock);
    unlink_ours(&main_sock);
    close(hv.lsock);
    close(hv.epfd);
    close(hv.sigfd);
    if (hv.timerfd >= 0)
        close(hv.timerfd);
    if (hv.reserve_fd >= 0)
        close(hv.reserve_fd);
}

int hv_server_run(const struct hv_config *cfg)
{
    int ready_fd = cfg->ready_fd;
    int store_fd = -1;
    int r;

    hv.priv_domid = cfg->priv_domid;
    hv.nallow = cfg->nallow;
    memcpy(hv.allow_uid, cfg->allow_uid, sizeof(hv.allow_uid));
    hv.idle_secs = cfg->idle_secs;
    hv.next_domid = 1;
    raise_fd_limit();
    hv.lsock = bind_to(cfg->socket, &store_fd);
    if (hv.lsock < 0)
        return hv.lsock == -2 ? HV_EXIT_TAKEN : 1;
    if (xs_init(store_fd) != 0) {
        fprintf(stderr, "pvabi-hv: setting up the store: out of memory\n");
        unlink(main_sock.temp);
        unlink(store_sock.temp);
        return 1;
    }
    /* stdio becomes /dev/null in a daemon: keep the ready fd out of its way. */
    if (cfg->daemon && ready_fd >= 0 && ready_fd <= STDERR_FILENO) {
        ready_fd = fcntl(cfg->ready_fd, F_DUPFD_CLOEXEC, STDERR_FILENO + 1);
        close(cfg->ready_fd);
    }
    /* listen() after the forks: SO_PEERCRED then tells clients the pid of
     * the daemon, not of the parent that exited.  The store's socket is
     * published first: once the main one answers, the store does too. */
    if ((cfg->daemon && daemonize() != 0) || listen(hv.lsock, SOMAXCONN) != 0 ||
        listen(store_fd, SOMAXCONN) != 0 || loop_setup() != 0 || publish_socket(&store_sock) != 0 ||
        publish_socket(&main_sock) != 0) {
        hv_warn("setting up: %s", strerror(errno));
        unlink(main_sock.temp);
        unlink(store_sock.temp);
        unlink_ours(&store_sock);
        unlink_ours(&main_sock);
        return 1;
    }
    hv_info("listening on %s and %s (privileged domid %u)", main_sock.path, store_sock.path,
            hv.priv_domid);
    ready(ready_fd);
    r = loop_run();
    loop_teardown();
    return r ? 1 : 0;
}
