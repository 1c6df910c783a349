/* SPDX-License-Identifier: MIT */
/*
 * A small streaming JSON writer for --json.  Strings come from peers (store
 * values may hold any byte, NUL included), so they are escaped here in one
 * place: control characters as \uXXXX, and bytes that are not valid UTF-8
 * as \u00XX (their Latin-1 reading) so that the output is always valid
 * UTF-8 JSON that any parser accepts.
 */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "cli.h"

void json_init(struct json *j, FILE *f)
{
    memset(j, 0, sizeof(*j));
    j->f = f;
}

/* Before any value: the comma that separates it from its predecessor. */
static void value_start(struct json *j)
{
    if (j->after_key) {
        j->after_key = false;
        return;
    }
    if (j->depth > 0 && j->need_comma[j->depth - 1])
        fputc(',', j->f);
    if (j->depth > 0)
        j->need_comma[j->depth - 1] = true;
}

static void open_level(struct json *j, char open, char close)
{
    value_start(j);
    fputc(open, j->f);
    /* Deeper than any command nests: a bug, but never a malformed document. */
    if (j->depth == JSON_DEPTH) {
        fputc(close, j->f);
        return;
    }
    j->closer[j->depth] = close;
    j->need_comma[j->depth++] = false;
}

void json_obj(struct json *j)
{
    open_level(j, '{', '}');
}

void json_arr(struct json *j)
{
    open_level(j, '[', ']');
}

void json_end(struct json *j)
{
    if (j->depth == 0)
        return;
    /* A key without its value would break the document: give it null. */
    if (j->after_key) {
        fputs("null", j->f);
        j->after_key = false;
    }
    fputc(j->closer[--j->depth], j->f);
}

void json_finish(struct json *j)
{
    while (j->depth > 0)
        json_end(j);
    fputc('\n', j->f);
    fflush(j->f);
}

/* Length of the valid UTF-8 sequence at @s (at most @n bytes), or 0:
 * overlong forms, surrogates and code points above U+10FFFF are invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len = s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : 2;
    uint32_t cp, min = len == 4 ? 0x10000 : len == 3 ? 0x800 : 0x80;

    if (s[0] < 0xC2 || s[0] > 0xF4 || len > n)
        return 0;
    cp = s[0] & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

static void put_escaped(FILE *f, unsigned char c)
{
    static const char short_esc[] = {
        ['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r', ['\t'] = 't'
    };

    if (c == '"' || c == '\\')
        fprintf(f, "\\%c", c);
    else if (c < sizeof(short_esc) && short_esc[c])
        fprintf(f, "\\%c", short_esc[c]);
    else
        fprintf(f, "\\u%04x", c);
}

void json_strn(struct json *j, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;

    value_start(j);
    fputc('"', j->f);
    for (size_t i = 0; i < len;) {
        size_t n = p[i] < 0x80 ? 1 : utf8_len(p + i, len - i);
        if (n > 1) {
            fwrite(p + i, 1, n, j->f);
            i += n;
        } else if (p[i] < 0x20 || p[i] == '"' || p[i] == '\\' || p[i] >= 0x80) {
            put_escaped(j->f, p[i++]);
        } else {
            fputc(p[i++], j->f);
        }
    }
    fputc('"', j->f);
}

void json_str(struct json *j, const char *s)
{
    if (!s)
        json_null(j);
    else
        json_strn(j, s, strlen(s));
}

void json_key(struct json *j, const char *key)
{
    json_str(j, key);
    fputc(':', j->f);
    j->after_key = true;
}

void json_u64(struct json *j, uint64_t v)
{
    value_start(j);
    fprintf(j->f, "%" PRIu64, v);
}

void json_double(struct json *j, double v)
{
    value_start(j);
    /* JSON has no NaN or infinity. */
    if (isfinite(v))
        fprintf(j->f, "%.3f", v);
    else
        fputs("null", j->f);
}

void json_bool(struct json *j, bool v)
{
    value_start(j);
    fputs(v ? "true" : "false", j->f);
}

void json_null(struct json *j)
{
    value_start(j);
    fputs("null", j->f);
}

void json_kstr(struct json *j, const char *key, const char *s)
{
    json_key(j, key);
    json_str(j, s);
}

void json_ku64(struct json *j, const char *key, uint64_t v)
{
    json_key(j, key);
    json_u64(j, v);
}
