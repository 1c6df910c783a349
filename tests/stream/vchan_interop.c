/* SPDX-License-Identifier: MIT */
/*
 * vchan_interop: one end of a stream, through pvabi or through Xen's own
 * libxenvchan, to show that the two speak the same protocol on real Xen.
 *
 *   vchan_interop server|client pvabi|xenvchan PEER_DOMID PATH [MIB]
 *
 * Run one end in each of two domains (e.g. a pvabi server in dom0 and a
 * libxenvchan client in a domU, then the other way round).  Each end sends
 * MIB MiB (default 4) of a pattern and receives as much of the other's,
 * interleaved, checking every byte; the server asks for a 1 KiB read ring
 * and a 64 KiB write ring (one in-page ring, one page-granted).  Then the
 * server sends one byte 'E', the client closes when it reads it, and the
 * server must see the end of the stream (the peer-closed detection).
 * Exit 0: every byte matched and the end of the stream was seen; 1: a
 * failure (printed); 2: usage; 77: not on Xen, or libxenvchan not built in.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pvabi/pvabi.h>

#ifdef HAVE_LIBXENVCHAN
#include <libxenvchan.h>
#endif

#define TIMEOUT_MS 30000

static uint8_t pattern(int server, uint64_t i)
{
    uint32_t x = (uint32_t)(i * 2654435761u) ^ (uint32_t)(i >> 13) ^ (server ? 0x5au : 0xa5u);
    return (uint8_t)((x ^ (x >> 16)) | 1);
}

/* One end, whichever library drives it. */
struct end {
    int server;
    pvabi_ctx *ctx;
    pvabi_stream *s;
#ifdef HAVE_LIBXENVCHAN
    struct libxenvchan *v;
#endif
};

static long end_write(struct end *e, const void *buf, size_t len)
{
#ifdef HAVE_LIBXENVCHAN
    if (e->v)
        return libxenvchan_write(e->v, buf, len);
#endif
    long n = pvabi_stream_write(e->s, buf, len);
    return n == -EAGAIN ? 0 : n;
}

static long end_read(struct end *e, void *buf, size_t len)
{
#ifdef HAVE_LIBXENVCHAN
    if (e->v) {
        if (libxenvchan_data_ready(e->v) == 0 && !libxenvchan_is_open(e->v))
            return -EPIPE;
        return libxenvchan_read(e->v, buf, len);
    }
#endif
    long n = pvabi_stream_read(e->s, buf, len);
    return n == -EAGAIN ? 0 : n == 0 ? -EPIPE : n;
}

/* Sleeps until the peer does something; 0, or -ETIMEDOUT / an error. */
static int end_wait(struct end *e, unsigned events)
{
#ifdef HAVE_LIBXENVCHAN
    if (e->v) {
        struct pollfd p = { .fd = libxenvchan_fd_for_select(e->v), .events = POLLIN };
        int rc = poll(&p, 1, TIMEOUT_MS);
        if (rc <= 0)
            return rc == 0 ? -ETIMEDOUT : -errno;
        return libxenvchan_wait(e->v) < 0 ? -EIO : 0;
    }
#endif
    int rc = pvabi_stream_wait(e->s, events, TIMEOUT_MS);
    return rc > 0 ? 0 : rc == 0 ? -ETIMEDOUT : rc;
}

static int end_open(struct end *e, const char *impl, int peer, const char *path)
{
    int rc = pvabi_open(&e->ctx, "xen");

    if (rc == -ENOENT || rc == -ENOTSUP) {
        printf("SKIP: vchan_interop needs real Xen (%s)\n", strerror(-rc));
        exit(77);
    }
    if (rc < 0)
        return rc;
    if (strcmp(impl, "xenvchan") == 0) {
#ifdef HAVE_LIBXENVCHAN
        e->v = e->server ? libxenvchan_server_init(NULL, peer, path, 1024, 65536)
                         : libxenvchan_client_init(NULL, peer, path);
        if (!e->v)
            return -errno ? -errno : -EIO;
        e->v->blocking = 0;
        return 0;
#else
        printf("SKIP: vchan_interop was built without libxenvchan (libxen-dev)\n");
        exit(77);
#endif
    }
    if (e->server)
        return pvabi_stream_server_open(e->ctx, (pvabi_domid)peer, path, 1024, 65536, &e->s);
    return pvabi_stream_client_open(e->ctx, (pvabi_domid)peer, path, TIMEOUT_MS, &e->s);
}

static void end_close(struct end *e)
{
#ifdef HAVE_LIBXENVCHAN
    if (e->v)
        libxenvchan_close(e->v);
#endif
    pvabi_stream_close(e->s);
    pvabi_close(e->ctx);
}

/* Sends and receives @total bytes each way; 0 or -errno. */
static int exchange(struct end *e, uint64_t total)
{
    static unsigned char out[8192], in[8192];
    uint64_t sent = 0, got = 0;

    while (sent < total || got < total) {
        long w = 0, r = 0;
        if (sent < total) {
            size_t n = total - sent < sizeof(out) ? (size_t)(total - sent) : sizeof(out);
            for (size_t i = 0; i < n; i++)
                out[i] = pattern(e->server, sent + i);
            w = end_write(e, out, n);
            if (w < 0)
                return (int)w;
            sent += (uint64_t)w;
        }
        if (got < total) {
            r = end_read(e, in, total - got < sizeof(in) ? (size_t)(total - got) : sizeof(in));
            if (r < 0)
                return (int)r;
            for (long i = 0; i < r; i++)
                if (in[i] != pattern(!e->server, got + (uint64_t)i)) {
                    fprintf(stderr, "byte %llu differs\n", (unsigned long long)(got + i));
                    return -EILSEQ;
                }
            got += (uint64_t)r;
        }
        if (w == 0 && r == 0) {
            int rc = end_wait(e, (sent < total ? PVABI_STREAM_OUT : 0u) |
                                     (got < total ? PVABI_STREAM_IN : 0u));
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

/* The server, having received everything, sends 'E'; the client closes on
 * it, and the server then sees the end of the stream.  So no end closes
 * while the other still reads. */
static int finish(struct end *e)
{
    unsigned char c = 'E';
    long r;

    while (e->server && (r = end_write(e, &c, 1)) == 0)
        if ((r = end_wait(e, PVABI_STREAM_OUT)) < 0)
            return (int)r;
    for (;;) {
        r = end_read(e, &c, 1);
        if (e->server && r == -EPIPE)
            return 0;
        if (r < 0)
            return (int)r;
        if (r == 1)
            return !e->server && c == 'E' ? 0 : -EPROTO;
        if ((r = end_wait(e, PVABI_STREAM_IN)) < 0)
            return (int)r;
    }
}

int main(int argc, char **argv)
{
    struct end e = { 0 };
    uint64_t mib;
    int rc;

    if (argc < 5 || argc > 6 || (strcmp(argv[1], "server") && strcmp(argv[1], "client")) ||
        (strcmp(argv[2], "pvabi") && strcmp(argv[2], "xenvchan"))) {
        fprintf(stderr,
                "usage: vchan_interop server|client pvabi|xenvchan PEER_DOMID PATH [MIB]\n");
        return 2;
    }
    e.server = strcmp(argv[1], "server") == 0;
    mib = argc == 6 ? strtoull(argv[5], NULL, 10) : 4;
    rc = end_open(&e, argv[2], atoi(argv[3]), argv[4]);
    if (rc == 0)
        rc = exchange(&e, mib << 20);
    if (rc == 0)
        rc = finish(&e);
    end_close(&e);
    if (rc < 0) {
        fprintf(stderr, "vchan_interop %s %s: %s\n", argv[1], argv[2], strerror(-rc));
        return 1;
    }
    printf("vchan_interop %s %s: %llu MiB each way, byte-exact\n", argv[1], argv[2],
           (unsigned long long)mib);
    return 0;
}
