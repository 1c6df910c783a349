/* SPDX-License-Identifier: MIT */
/* Logging to stderr, one line per event, filtered by --log-level. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "hv.h"

int hv_log_level = HV_LOG_WARN;

void hv_log(int level, const char *fmt, ...)
{
    static const char *const names[] = { "warning", "info", "debug" };
    char line[1024];
    va_list ap;
    int n;

    if (level > hv_log_level)
        return;
    n = snprintf(line, sizeof(line), "pvabi-hv[%d]: %s: ", (int)getpid(), names[level]);
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    /* One write per line, so lines of concurrent daemons do not interleave. */
    n = (int)strlen(line);
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, (size_t)n) < 0)
        return; /* nowhere left to report it */
}

const char *hv_errname(int status)
{
    const char *name;

    if (status == 0)
        return "OK";
    name = strerrorname_np(status < 0 ? -status : status);
    return name ? name : "unknown error";
}
