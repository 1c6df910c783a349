/* SPDX-License-Identifier: MIT */
/*
 * stream_bench [MiB]: one-way throughput of a pvabi stream (server writes,
 * client reads, two processes = two domains on a private pvabi-hv) for
 * several ring sizes, against a pipe between two processes in the same run.
 * Not a test: numbers depend on the machine; the ratio is what to compare.
 * Needs PVABI_HV (meson sets it for `meson devenv`; else the build tree's).
 */
#include "sides.h"

#define CHUNK (64u * 1024u)

struct bench {
    size_t ring;
    uint64_t bytes;
};

static int bench_server(struct side_env *e)
{
    const struct bench *b = e->arg;
    static unsigned char buf[CHUNK];
    pvabi_stream *s;
    uint64_t sent = 0;

    memset(buf, 0x5a, sizeof(buf));
    CHK(pvabi_stream_server_open(e->ctx, e->other, NULL, 1024, b->ring, &s) == 0);
    CHK(side_send(e->peer, 1) == 0);
    CHK(pvabi_stream_wait(s, PVABI_STREAM_CONN, IT_TIMEOUT_MS) == PVABI_STREAM_CONN);
    while (sent < b->bytes) {
        size_t n = b->bytes - sent < CHUNK ? (size_t)(b->bytes - sent) : CHUNK;
        CHK(pvabi_stream_write_all(s, buf, n, IT_TIMEOUT_MS) == (ssize_t)n);
        sent += n;
    }
    CHK(side_expect(e->peer, 2) == 0);
    pvabi_stream_close(s);
    return 0;
}

static int bench_client(struct side_env *e)
{
    const struct bench *b = e->arg;
    static unsigned char buf[CHUNK];
    pvabi_stream *s;
    uint64_t got = 0, t0;

    CHK(side_expect(e->peer, 1) == 0);
    CHK(pvabi_stream_client_open(e->ctx, e->other, NULL, IT_TIMEOUT_MS, &s) == 0);
    t0 = it_now_ns();
    while (got < b->bytes) {
        ssize_t r = pvabi_stream_read(s, buf, sizeof(buf));
        if (r == -EAGAIN) {
            CHK(pvabi_stream_wait(s, PVABI_STREAM_IN, IT_TIMEOUT_MS) > 0);
            continue;
        }
        CHK(r > 0);
        got += (uint64_t)r;
    }
    CHK(side_send(e->coord, (int64_t)(it_now_ns() - t0)) == 0);
    CHK(side_send(e->peer, 2) == 0);
    pvabi_stream_close(s);
    return 0;
}

static double stream_mbps(size_t ring, uint64_t bytes)
{
    const struct bench b = { ring, bytes };
    struct side srv, cli;
    int64_t ns = 0;

    sides_start(&srv, bench_server, &cli, bench_client, &b);
    if (side_recv(cli.coord, &ns, IT_TIMEOUT_MS * 10) < 0)
        ns = 0;
    if (!side_ok(side_end(&srv, "server")) || !side_ok(side_end(&cli, "client")) || ns <= 0)
        return -1;
    return (double)bytes / 1e6 / ((double)ns / 1e9);
}

static double pipe_mbps(uint64_t bytes)
{
    static unsigned char buf[CHUNK];
    int fds[2];
    uint64_t got = 0, t0;
    pid_t pid;

    if (pipe(fds) < 0)
        return -1;
    pid = fork();
    if (pid == 0) {
        uint64_t sent = 0;
        close(fds[0]);
        memset(buf, 0x5a, sizeof(buf));
        while (sent < bytes) {
            ssize_t w = write(fds[1], buf, bytes - sent < CHUNK ? bytes - sent : CHUNK);
            if (w <= 0)
                _exit(1);
            sent += (uint64_t)w;
        }
        _exit(0);
    }
    close(fds[1]);
    t0 = it_now_ns();
    while (got < bytes) {
        ssize_t r = read(fds[0], buf, sizeof(buf));
        if (r <= 0)
            break;
        got += (uint64_t)r;
    }
    t0 = it_now_ns() - t0;
    close(fds[0]);
    waitpid(pid, NULL, 0);
    return got == bytes ? (double)bytes / 1e6 / ((double)t0 / 1e9) : -1;
}

static void bench_fail(const char *file, int line, const char *msg)
{
    fprintf(stderr, "%s:%d: %s\n", file, line, msg);
    exit(1);
}

int main(int argc, char **argv)
{
    static const size_t rings[] = { 2048, 65536, PVABI_STREAM_SIZE_MAX };
    uint64_t bytes = (argc > 1 ? strtoull(argv[1], NULL, 10) : 256) << 20;
    struct it_daemon d;
    double pipe_rate;

    it_set_fail_hook(bench_fail);
    it_require_platform("stream_bench");
    if (it_daemon_start(&d) < 0)
        return 1;
    pipe_rate = pipe_mbps(bytes);
    printf("pipe (64 KiB writes):           %8.0f MB/s\n", pipe_rate);
    for (unsigned k = 0; k < sizeof(rings) / sizeof(rings[0]); k++) {
        double r = stream_mbps(rings[k], bytes);
        printf("stream, ring %7zu B:          %8.0f MB/s  (%.2fx the pipe)\n", rings[k], r,
               r / pipe_rate);
    }
    it_daemon_stop(&d);
    return 0;
}
