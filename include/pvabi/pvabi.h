/* SPDX-License-Identifier: MIT */
/*
 * pvabi/pvabi.h - the umbrella header: includes every pvabi layer.
 *
 * pvabi is a library for the two halves of a paravirtual split driver on the
 * Xen PV ABI.  Layers (one header each): ring.h (shared I/O rings),
 * flexring.h (byte rings), barrier.h (memory ordering).
 */
#ifndef PVABI_PVABI_H
#define PVABI_PVABI_H

#include <pvabi/barrier.h>
#include <pvabi/flexring.h>
#include <pvabi/ring.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * pvabi_version() - the library's version string ("MAJOR.MINOR.PATCH").
 *
 * Returns a static string.  Never fails; does not block; thread-safe;
 * unaffected by fork.
 */
const char *pvabi_version(void);

#ifdef __cplusplus
}
#endif

#endif /* PVABI_PVABI_H */
