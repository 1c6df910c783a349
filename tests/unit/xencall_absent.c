/* SPDX-License-Identifier: MIT */
/*
 * libxencall for test_platform_xen, which links no libxen* (see
 * meson.build): the platform opens a xencall handle at pvabi_open for the
 * hypercall op only, and these tests are about everything else, so privcmd
 * is simply absent here, as it is for a non-root process on real Xen.  The
 * hypercall op itself is test_hypercall_xen's.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <xencall.h>

xencall_handle *__wrap_xencall_open(struct xentoollog_logger *logger, unsigned flags);
int __wrap_xencall_close(xencall_handle *xcall);
void *__wrap_xencall_alloc_buffer(xencall_handle *xcall, size_t size);
void __wrap_xencall_free_buffer(xencall_handle *xcall, void *p);
int __wrap_xencall1(xencall_handle *xcall, unsigned int op, uint64_t arg1);
int __wrap_xencall2(xencall_handle *xcall, unsigned int op, uint64_t arg1, uint64_t arg2);
int __wrap_xencall3(xencall_handle *xcall, unsigned int op, uint64_t arg1, uint64_t arg2,
                    uint64_t arg3);

/* Without a handle the platform never reaches the others: if it did, that
 * is a bug worth stopping the test program for. */
static void never(const char *name)
{
    fprintf(stderr, "xencall_absent: %s called without a xencall handle\n", name);
    abort();
}

xencall_handle *__wrap_xencall_open(struct xentoollog_logger *logger, unsigned flags)
{
    (void)logger;
    (void)flags;
    errno = ENOENT;
    return NULL;
}

int __wrap_xencall_close(xencall_handle *xcall)
{
    (void)xcall;
    never("xencall_close");
    return 0;
}

void *__wrap_xencall_alloc_buffer(xencall_handle *xcall, size_t size)
{
    (void)xcall;
    (void)size;
    never("xencall_alloc_buffer");
    return NULL;
}

void __wrap_xencall_free_buffer(xencall_handle *xcall, void *p)
{
    (void)xcall;
    (void)p;
    never("xencall_free_buffer");
}

int __wrap_xencall1(xencall_handle *xcall, unsigned int op, uint64_t arg1)
{
    (void)xcall;
    (void)op;
    (void)arg1;
    never("xencall1");
    return -1;
}

int __wrap_xencall2(xencall_handle *xcall, unsigned int op, uint64_t arg1, uint64_t arg2)
{
    (void)xcall;
    (void)op;
    (void)arg1;
    (void)arg2;
    never("xencall2");
    return -1;
}

int __wrap_xencall3(xencall_handle *xcall, unsigned int op, uint64_t arg1, uint64_t arg2,
                    uint64_t arg3)
{
    (void)xcall;
    (void)op;
    (void)arg1;
    (void)arg2;
    (void)arg3;
    never("xencall3");
    return -1;
}
