/* SPDX-License-Identifier: MIT */
/*
 * The Xen end of the console interop test: a console daemon's reader of the
 * `out` ring and writer of the `in` ring, written the way Xen's tools write
 * them, with xen/io/console.h's flex-ring functions, plain index accesses and
 * xen_mb()-style fences.  Built in its own library, outside ThreadSanitizer
 * (see meson.build), because plain accesses ordered by fences are how the
 * peer really behaves and TSan cannot see through them.
 */
#ifndef FLEXRING_XEN_SIDE_H
#define FLEXRING_XEN_SIDE_H

#include <stddef.h>

struct xencons_interface;

/* Reads up to @len bytes of the guest's output; returns the count (0: empty). */
size_t xen_side_read_out(struct xencons_interface *intf, void *buf, size_t len);

/* Writes up to @len bytes of input for the guest; returns the count (0: full). */
size_t xen_side_write_in(struct xencons_interface *intf, const void *buf, size_t len);

#endif
