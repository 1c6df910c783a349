/* SPDX-License-Identifier: MIT */
/*
 * consfront.h - a userspace console frontend (xen/io/console.h) over xenbus.
 *
 * Device type "console", devid >= 1: what Linux's hvc_xen calls a secondary
 * console (/dev/hvcN).  The frontend shares one page holding struct
 * pvabi_console_intf, allocates an event channel for the backend, publishes
 * `ring-ref` and `port` (plus `event-channel`, the generic xenbus key, so
 * that pvabi_xenbus_back_* backends can read it too) and switches to
 * Initialised; the backend maps the page, binds the port and switches to
 * Connected.  The frontend writes the `out` ring (2048 bytes) and reads the
 * `in` ring (1024 bytes).  See docs/console.md.
 *
 * Errors: a negative errno, as everywhere in pvabi.  A connection that ended
 * stays ended (sticky error): -ESHUTDOWN (the backend closed the console,
 * e.g. because it found the ring corrupt), -EPROTO (the backend broke the
 * `in` ring's indices), the error of a failed handshake.  A backend that
 * only died is not an error: writes block (and time out) until a restarted
 * backend re-attaches to the same page.
 *
 * Thread-safety: one thread at a time per handle; the context must not be
 * used by another thread for event channels meanwhile (consfront collects
 * the context's pending ports).  Blocking: only the calls taking a timeout
 * (milliseconds, >= 0) block, at most that long.  Fork: the handle belongs
 * to the process that opened the context.
 */
#ifndef CONSFRONT_H
#define CONSFRONT_H

#include <stddef.h>
#include <sys/types.h>

#include <pvabi/pvabi.h>

#ifdef __cplusplus
extern "C" {
#endif

/** One console frontend (opaque). */
typedef struct consfront consfront;

/**
 * consfront_open() - connect console @devid of this domain.
 * @ctx: the context (the frontend domain).
 * @type: the device type: NULL for "console"; another name lets a test
 *   keep clear of a kernel's console driver (Linux's hvc_xen claims every
 *   "console" device of its domain).
 * @devid: the device id (>= 1); /local/domain/<own>/device/@type/@devid
 *   must exist (the toolstack step, pvabi_xenbus_device_add()).
 * @timeout_ms: the longest wait for the backend to answer (>= 0).
 * @out: receives the handle.
 * Returns 0; -ENOENT (no such device); -ETIMEDOUT (the backend did not
 * connect in time); -ECONNRESET (the backend closed instead); the errors of
 * pvabi_xenbus_front_open(), pvabi_grant_share(), pvabi_evtchn_alloc().
 * Everything is undone on failure.
 */
int consfront_open(pvabi_ctx *ctx, const char *type, unsigned devid, int timeout_ms,
                   consfront **out);

/**
 * consfront_write() - write @len bytes to the console (`out` ring).
 * Blocks while the ring is full (back-pressure: the backend consumes only
 * as fast as its sink accepts), up to @timeout_ms in total.
 * Returns the bytes written: @len, or fewer when the timeout passed or the
 * connection ended after some progress; -ETIMEDOUT when nothing could be
 * written in time; the sticky error; -EINVAL.
 */
ssize_t consfront_write(consfront *cf, const void *buf, size_t len, int timeout_ms);

/**
 * consfront_read() - read up to @len bytes of console input (`in` ring).
 * Waits up to @timeout_ms for the first byte; returns what is there then.
 * Returns the bytes read (> 0); -ETIMEDOUT (nothing arrived); the sticky
 * error once the ring is empty; -EINVAL.
 */
ssize_t consfront_read(consfront *cf, void *buf, size_t len, int timeout_ms);

/**
 * consfront_wait() - wait up to @timeout_ms for anything to happen (an
 * event from the backend, a store event), process it, and return.
 * For callers with their own loop: poll pvabi_fd() and call this with 0.
 * Returns 0; -ETIMEDOUT; the sticky error; -ENOTCONN (store gone).
 */
int consfront_wait(consfront *cf, int timeout_ms);

/** consfront_error() - 0 while connected, else the sticky error. */
int consfront_error(const consfront *cf);

/**
 * consfront_intf() - the shared page itself, for diagnostics and for tests
 * that play a hostile frontend.  Writing it bypasses the handle.
 */
struct pvabi_console_intf *consfront_intf(consfront *cf);

/** consfront_notify() - send an event to the backend.  Returns 0 or -errno. */
int consfront_notify(consfront *cf);

/**
 * consfront_close() - run the close handshake (at most @timeout_ms), revoke
 * the page, unbind the port and free the handle (NULL is allowed).  If the
 * backend does not answer, the page may stay shared until pvabi_close().
 * Returns 0, or the first error met (the handle is freed all the same):
 * the handshake's (-ETIMEDOUT...), or -EBUSY from the revoke.
 */
int consfront_close(consfront *cf, int timeout_ms);

#ifdef __cplusplus
}
#endif

#endif /* CONSFRONT_H */
