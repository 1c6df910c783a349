/* SPDX-License-Identifier: MIT */
#include "pvabi-config.h"
#include "pvabi-internal.h"

#include <pvabi/pvabi.h>

PVABI_EXPORT const char *pvabi_version(void)
{
    return PVABI_VERSION;
}
