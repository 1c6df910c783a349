/* SPDX-License-Identifier: MIT */
/* The one logging path: a callback per context or per process, else stderr
 * when PVABI_LOG asks for it, else silence. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pvabi-internal.h"

static pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pvabi__log_sink default_sink;
static int default_set;

static int env_level_value = -1;

/* Read once: getenv() may not run while the xenbus layer briefly sets
 * XENSTORED_PATH (setenv can free what a concurrent getenv reads). */
static void env_level_read(void)
{
    static const struct {
        const char *name;
        int level;
    } names[] = { { "err", PVABI_LOG_ERR },
                  { "warn", PVABI_LOG_WARN },
                  { "info", PVABI_LOG_INFO },
                  { "debug", PVABI_LOG_DEBUG } };
    const char *v = getenv("PVABI_LOG");

    for (size_t i = 0; v && i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(v, names[i].name) == 0)
            env_level_value = names[i].level;
}

/* PVABI_LOG's level, -1 (silent) when unset or unknown. */
static int env_level(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    pthread_once(&once, env_level_read);
    return env_level_value;
}

static const char *level_name(int level)
{
    switch (level) {
    case PVABI_LOG_ERR:
        return "error";
    case PVABI_LOG_WARN:
        return "warning";
    case PVABI_LOG_INFO:
        return "info";
    default:
        return "debug";
    }
}

/* Picks the sink for @ctx: its own, else the process default. */
static struct pvabi__log_sink sink_for(const pvabi_ctx *ctx, int *found)
{
    struct pvabi__log_sink s = { 0 };

    *found = 0;
    if (ctx && ctx->has_log) {
        *found = 1;
        return ctx->log;
    }
    pthread_mutex_lock(&default_lock);
    if (default_set) {
        s = default_sink;
        *found = 1;
    }
    pthread_mutex_unlock(&default_lock);
    return s;
}

void pvabi__log(const pvabi_ctx *ctx, int level, const char *fmt, ...)
{
    int found, saved_errno = errno; /* the callback or stdio must not change it */
    struct pvabi__log_sink s = sink_for(ctx, &found);
    char msg[512];
    va_list ap;

    if (found ? (!s.fn || level > s.level) : level > env_level())
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (found)
        s.fn(s.opaque, level, msg);
    else
        fprintf(stderr, "pvabi: %s: %s\n", level_name(level), msg);
    errno = saved_errno;
}

PVABI_EXPORT void pvabi_log_set(pvabi_ctx *ctx, pvabi_log_fn *fn, void *opaque, int level)
{
    struct pvabi__log_sink s = { .fn = fn, .opaque = opaque, .level = level };

    if (ctx) {
        ctx->log = s;
        ctx->has_log = fn != NULL;
        return;
    }
    pthread_mutex_lock(&default_lock);
    default_sink = s;
    default_set = fn != NULL;
    pthread_mutex_unlock(&default_lock);
}
