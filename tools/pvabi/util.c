/* SPDX-License-Identifier: MIT */
/*
 * What every command shares: option parsing, error reporting with the
 * library's explanation, opening the context, domid operands.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* ---- memory: a CLI may give up ------------------------------------------- */

void *cli_xmalloc(size_t n)
{
    void *p = n == SIZE_MAX ? NULL : malloc(n ? n : 1);

    if (!p) {
        fputs("pvabi: out of memory\n", stderr);
        exit(CLI_FAIL);
    }
    return p;
}

char *cli_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;

    return memcpy(cli_xmalloc(n), s, n);
}

char *cli_xasprintf(const char *fmt, ...)
{
    va_list ap;
    char *s;
    int rc;

    va_start(ap, fmt);
    rc = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (rc < 0)
        cli_xmalloc(SIZE_MAX);
    return s;
}

/* ---- the library's log ---------------------------------------------------- */

/* The library explains each failure in its log, but also logs refusals the
 * tool expects (a domain gone while walking them).  So its warnings are kept
 * and printed only when the tool reports a failure; PVABI_LOG in the
 * environment shows everything live instead (the library's default). */
#define LOG_KEEP 16

static char *kept[LOG_KEEP];
static unsigned nkept;

static void keep_log(void *opaque, int level, const char *msg)
{
    (void)opaque;
    (void)level;
    if (nkept == LOG_KEEP) {
        free(kept[0]);
        memmove(kept, kept + 1, (LOG_KEEP - 1) * sizeof(kept[0]));
        nkept--;
    }
    kept[nkept] = strdup(msg);
    if (kept[nkept])
        nkept++;
}

void cli_log_setup(void)
{
    const char *env = getenv("PVABI_LOG");

    if (!env || !*env)
        pvabi_log_set(NULL, keep_log, NULL, PVABI_LOG_WARN);
}

void cli_log_forget(void)
{
    while (nkept > 0)
        free(kept[--nkept]);
}

static void flush_log(void)
{
    for (unsigned i = 0; i < nkept; i++)
        fprintf(stderr, "pvabi: %s\n", kept[i]);
    cli_log_forget();
}

const char *cli_strerror(int err)
{
    err = err < 0 ? -err : err;
    return err == ESRCH ? "no such domain" : strerror(err);
}

static int vfail(const char *why, const char *fmt, va_list ap)
{
    /* stdout first: a table cut short should come before the complaint. */
    fflush(stdout);
    flush_log();
    fputs("pvabi: ", stderr);
    vfprintf(stderr, fmt, ap);
    if (why)
        fprintf(stderr, ": %s", why);
    fputc('\n', stderr);
    return CLI_FAIL;
}

int cli_fail(int err, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = vfail(cli_strerror(err), fmt, ap);
    va_end(ap);
    return rc;
}

int cli_fail_msg(const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = vfail(NULL, fmt, ap);
    va_end(ap);
    return rc;
}

/* ---- usage and help -------------------------------------------------------- */

void cli_help(const struct cli_cmd *cmd, FILE *f)
{
    fprintf(f, "usage: pvabi [--platform SPEC] [--json] %s%s%s\n\n%s\n", cmd->path,
            cmd->args[0] ? " " : "", cmd->args, cmd->summary);
    if (cmd->sub) {
        fputs("\nCommands:\n", f);
        for (const struct cli_cmd *s = cmd->sub; s->name; s++)
            fprintf(f, "  %-8s %s\n", s->name, s->summary);
    }
    if (cmd->help[0])
        fprintf(f, "\n%s", cmd->help);
}

void cli_usage(const struct cli_cmd *cmd, const char *fmt, ...)
{
    va_list ap;

    fputs("pvabi: ", stderr);
    if (cmd)
        fprintf(stderr, "%s: ", cmd->path);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (cmd)
        fprintf(stderr, "\nusage: pvabi [--platform SPEC] [--json] %s %s\nTry 'pvabi help %s'.\n",
                cmd->path, cmd->args, cmd->path);
    else
        fputs("\nusage: pvabi [--platform SPEC] [--json] COMMAND [ARGS...]\n"
              "Try 'pvabi --help'.\n",
              stderr);
    exit(CLI_USAGE);
}

/* ---- options --------------------------------------------------------------- */

#define CLI_OPTS_MAX 16

static void build_opts(const struct cli_opt *own, struct option *opts)
{
    static const struct option common[] = {
        { "json", no_argument, NULL, 'J' },
        { "platform", required_argument, NULL, 'P' },
        { "help", no_argument, NULL, 'h' },
    };
    unsigned n = 0;

    for (; n < 3; n++)
        opts[n] = common[n];
    for (; own && own->name && n < CLI_OPTS_MAX; own++, n++)
        opts[n] = (struct option){ own->name, own->has_arg ? required_argument : no_argument, NULL,
                                   own->val };
    opts[n] = (struct option){ NULL, 0, NULL, 0 };
}

static int common_opt(struct cli *cli, const struct cli_cmd *cmd, int c, const char *val)
{
    switch (c) {
    case 'J':
        cli->json = true;
        return 0;
    case 'P':
        cli->platform = val;
        return 0;
    case 'h':
        cli_help(cmd, stdout);
        exit(CLI_OK);
    }
    return 1;
}

int cli_parse(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv,
              const struct cli_opt *own, int (*on_opt)(void *arg, int c, const char *val),
              void *arg, bool posix)
{
    struct option opts[CLI_OPTS_MAX + 4];
    int c, which = -1;

    build_opts(own, opts);
    optind = 0; /* 0: getopt_long starts over (GNU) */
    opterr = 0; /* its messages would name argv[0], the subcommand */
    while ((c = getopt_long(argc, argv, posix ? "+:h" : ":h", opts, &which)) != -1) {
        if (c == '?')
            cli_usage(cmd, "unknown option '%s'", argv[optind - 1]);
        if (c == ':')
            cli_usage(cmd, "option '%s' needs a value", argv[optind - 1]);
        if (common_opt(cli, cmd, c, optarg) == 0)
            continue;
        if (!on_opt || on_opt(arg, c, optarg) < 0)
            cli_usage(cmd, "bad value for --%s: '%s'", which >= 0 ? opts[which].name : "?",
                      optarg ? optarg : "");
        which = -1;
    }
    return optind;
}

/* ---- the context ------------------------------------------------------------ */

int cli_open(struct cli *cli)
{
    const char *what = cli->platform ? cli->platform : "the default platform";
    int rc = pvabi_open_flags(&cli->ctx, cli->platform, PVABI_OPEN_TOOLSTACK);

    if (rc == 0)
        return 0;
    cli->ctx = NULL;
    /* The library's log has said which uid to allow. */
    if (rc == -EPERM)
        return cli_fail(rc, "opening %s as a toolstack", what);
    return cli_fail(rc, "opening %s", what);
}

void cli_close(struct cli *cli)
{
    pvabi_close(cli->ctx);
    cli->ctx = NULL;
}

void cli_json_begin(struct cli *cli)
{
    json_init(&cli->out, stdout);
}

/* ---- domains --------------------------------------------------------------- */

/* Xen's DOMID_FIRST_RESERVED: ids from here on are not domains. */
#define DOMID_LIMIT 0x7FF0u

pvabi_domid cli_domid_arg(const struct cli_cmd *cmd, const char *s)
{
    unsigned long v = 0;
    size_t i = 0;

    /* Digits only: strtoul would take "-1", " 7" and "0x7". */
    for (; s[i] >= '0' && s[i] <= '9' && i < 6; i++)
        v = v * 10 + (unsigned long)(s[i] - '0');
    if (i == 0 || s[i] != '\0' || v >= DOMID_LIMIT)
        cli_usage(cmd, "not a domain id (0..%u): '%s'", DOMID_LIMIT - 1, s);
    return (pvabi_domid)v;
}

int cli_all_domids(struct cli *cli, pvabi_domid **out)
{
    enum { PAGE = 64 };
    struct pvabi_domain_info *page = cli_xmalloc(PAGE * sizeof(*page));
    unsigned n = 0, first = 0;
    int rc = 0;

    *out = NULL;
    while (first < DOMID_LIMIT &&
           (rc = pvabi_domain_list(cli->ctx, (pvabi_domid)first, page, PAGE)) > 0) {
        pvabi_domid *grown = realloc(*out, (n + (unsigned)rc) * sizeof(**out));
        if (!grown)
            cli_xmalloc(SIZE_MAX);
        *out = grown;
        for (int i = 0; i < rc; i++)
            (*out)[n++] = page[i].domid;
        first = page[rc - 1].domid + 1u;
    }
    free(page);
    if (rc < 0) {
        free(*out);
        *out = NULL;
        return rc;
    }
    return (int)n;
}

pvabi_domid *cli_domid_args(const struct cli_cmd *cmd, int argc, char **argv)
{
    pvabi_domid *ids = argc > 0 ? cli_xmalloc((size_t)argc * sizeof(*ids)) : NULL;

    for (int i = 0; i < argc; i++)
        ids[i] = cli_domid_arg(cmd, argv[i]);
    return ids;
}
