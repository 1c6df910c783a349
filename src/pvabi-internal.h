/* SPDX-License-Identifier: MIT */
/* Internal helpers shared by every layer; never installed. */
#ifndef PVABI_INTERNAL_H
#define PVABI_INTERNAL_H

/* Marks a function the version script exports (the rest are hidden). */
#define PVABI_EXPORT __attribute__((visibility("default")))

#endif
