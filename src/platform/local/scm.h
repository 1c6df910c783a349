/* SPDX-License-Identifier: MIT */
/*
 * Taking the fds of a received packet: shared by the local platform's client
 * (wire.c) and the pvabi-hv daemon (conn.c), which are separate binaries, so
 * it is a static inline function beside proto.h.
 */
#ifndef PVABI_LOCAL_SCM_H
#define PVABI_LOCAL_SCM_H

#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/*
 * Takes every fd the kernel installed with the packet @mh into @fds (at most
 * @max), so that none leaks whatever the packet was; the ones that do not fit
 * are closed and *overflow is set.  Returns how many are in @fds.
 */
static inline unsigned hv_take_fds(struct msghdr *mh, int *fds, unsigned max, bool *overflow)
{
    unsigned nfds = 0;

    *overflow = false;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
            if (nfds < max) {
                fds[nfds++] = fd;
            } else {
                close(fd);
                *overflow = true;
            }
        }
    }
    return nfds;
}

#endif
