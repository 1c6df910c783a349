/* SPDX-License-Identifier: MIT */
/*
 * consback.h - the console backend daemon's parts (private to consback).
 *
 * consback.c      options and the event loop
 * consback_dev.c  devices: discovery under backend/console, the xenbus
 *                 handshake (done with pvabi_store_*: see there why), attach
 * consback_io.c   sinks (log file, pty, stdio) and moving bytes between
 *                 them and the two rings
 */
#ifndef CONSBACK_H
#define CONSBACK_H

#include <poll.h>
#include <stddef.h>

#include <pvabi/pvabi.h>

/* Where a console's output goes (and, for pty and stdio, input comes from). */
enum cb_mode { CB_LOG = 1, CB_PTY, CB_STDIO };

struct cb_opts {
    enum cb_mode mode;
    const char *log_path; /* CB_LOG: a file, or a directory (one file per console) */
    int log_is_dir;
    const char *type; /* the device type served: "console" */
    int frontend;     /* serve only this frontend domain; -1: all */
    long devid;       /* serve only this devid; -1: all */
    int once;         /* exit when the last device is gone */
    int verbose;
};

/* The console output held by the backend: at most one ring's worth is read
 * ahead of the sink, plus one more ring's worth on the final drain. */
#define CB_OUT_RING  2048u
#define CB_HOLD_SIZE (2 * CB_OUT_RING)

struct consback;

/* One console device: backend/console/FE/DEVID. */
struct cb_con {
    struct consback *cb;
    struct cb_con *next;
    pvabi_domid fe;
    unsigned devid;
    char bpath[96];  /* our directory */
    char fpath[160]; /* the frontend's, as read from `frontend` */
    pvabi_watch *fe_watch;
    int seen;   /* still listed in the store (scan) */
    int failed; /* we closed it: wait for the frontend to start over */
    /* attached: */
    pvabi_map *map;
    pvabi_port port;
    pvabi_flexring *out; /* we read the guest's output */
    pvabi_flexring *in;  /* we write the guest's input */
    /* sink: */
    int out_fd, in_fd, slave_fd, owns_fds;
    char pty[64];
    char hold[CB_HOLD_SIZE]; /* output consumed from the ring, not yet in the sink */
    size_t hold_off, hold_len;
    int busy; /* the ring may hold more: pump again without waiting */
    unsigned long long bytes_out, bytes_in;
};

struct consback {
    pvabi_ctx *ctx;
    struct cb_opts opts;
    char root[64]; /* /local/domain/<own>/backend/<type> */
    pvabi_watch *root_watch;
    int dirty; /* a watch fired: scan and reconcile */
    struct cb_con *cons;
    int shared_fd;      /* CB_LOG to one file: every console appends to it */
    struct pollfd *pfd; /* the event loop's, grown with the devices */
    size_t pfd_room;
};

/* consback_dev.c */
int cb_dev_init(struct consback *cb);
int cb_dev_scan(struct consback *cb);
void cb_dev_event(struct consback *cb, pvabi_port port);
void cb_dev_fail(struct cb_con *c, const char *why);
void cb_dev_free_all(struct consback *cb);

/* consback_io.c */
int cb_io_open(struct cb_con *c);
void cb_io_close(struct cb_con *c);
int cb_io_pump(struct cb_con *c);
void cb_io_drain(struct cb_con *c);
int cb_io_wants_out(const struct cb_con *c);
int cb_io_wants_in(const struct cb_con *c);
struct cb_con *cb_io_stdin_owner(struct consback *cb);

void cb_log(const struct cb_con *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif /* CONSBACK_H */
