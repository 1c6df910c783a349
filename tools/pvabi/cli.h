/* SPDX-License-Identifier: MIT */
/*
 * The `pvabi` command-line tool: what its command files share.
 *
 * Every command uses only the public API (<pvabi/pvabi.h>) and a context
 * opened as a toolstack (PVABI_OPEN_TOOLSTACK); `hv` speaks to the daemon's
 * socket only to find its pid.  Exit codes: CLI_OK, CLI_FAIL (one line on
 * stderr after the library's own explanation), CLI_USAGE.
 */
#ifndef PVABI_CLI_H
#define PVABI_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <pvabi/pvabi.h>

#if defined(__GNUC__) || defined(__clang__)
#define CLI_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define CLI_NORETURN     __attribute__((noreturn))
#else
#define CLI_PRINTF(f, a)
#define CLI_NORETURN
#endif

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

/* ---- JSON output (json.c) ------------------------------------------------- */

#define JSON_DEPTH 16

/* A streaming writer: commas and nesting are its business, so that every
 * command's document is well-formed even when it stops half-way. */
struct json {
    FILE *f;
    int depth;
    bool need_comma[JSON_DEPTH];
    char closer[JSON_DEPTH];
    bool after_key;
};

void json_init(struct json *j, FILE *f);
void json_obj(struct json *j);
void json_arr(struct json *j);
void json_end(struct json *j);
/* Closes whatever is still open and ends the document with a newline. */
void json_finish(struct json *j);
void json_key(struct json *j, const char *key);
void json_str(struct json *j, const char *s);
void json_strn(struct json *j, const char *s, size_t len);
void json_u64(struct json *j, uint64_t v);
void json_double(struct json *j, double v);
void json_bool(struct json *j, bool v);
void json_null(struct json *j);
void json_kstr(struct json *j, const char *key, const char *s);
void json_ku64(struct json *j, const char *key, uint64_t v);

/* ---- aligned tables (table.c) --------------------------------------------- */

struct table_col {
    const char *title;
    bool right; /* numbers: right-aligned */
};

struct table;

struct table *table_new(const struct table_col *cols, unsigned ncols);
/* One row of ncols strings (copied); empty strings print as "-". */
void table_row(struct table *t, const char *const *cells);
void table_print(const struct table *t, FILE *f);
void table_free(struct table *t);

/* ---- commands (main.c) ---------------------------------------------------- */

struct cli;
struct cli_cmd;

typedef int cli_run_fn(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv);

struct cli_cmd {
    const char *name;          /* as typed: "read" */
    const char *path;          /* the whole command: "store read" */
    const char *args;          /* the synopsis after it */
    const char *summary;       /* one line */
    const char *help;          /* options, output, exit status */
    cli_run_fn *run;           /* NULL for a group of subcommands */
    const struct cli_cmd *sub; /* the group's subcommands, ending with {0} */
};

extern const struct cli_cmd cli_store_cmds[];
extern const struct cli_cmd cli_hv_cmds[];
extern const struct cli_cmd cli_device_cmds[];

cli_run_fn cli_info, cli_list, cli_channels, cli_grants, cli_store_watch;
cli_run_fn cli_block_attach, cli_block_detach;

/* ---- the tool's state and shared helpers (util.c) ------------------------- */

struct cli {
    const char *platform; /* --platform, or NULL: pvabi_open()'s default */
    bool json;            /* --json */
    pvabi_ctx *ctx;       /* opened by cli_open() */
    struct json out;      /* the JSON document on stdout, with --json */
};

/* A command's own option: its long name, whether it takes a value, and the
 * value getopt_long returns for it (not 'J', 'P' or 'h': those are --json,
 * --platform and --help, which every command accepts). */
struct cli_opt {
    const char *name;
    bool has_arg;
    int val;
};

/* Parses @argv (argv[0] is the command's name) with getopt_long: --json,
 * --platform and --help itself (--help prints @cmd's help and exits 0),
 * the command's own options through @own / @on_opt (which returns 0, or -1
 * after cli_usage()).  @posix: stop at the first operand (values that may
 * start with '-').  Returns the index of the first operand; a usage error
 * exits 2. */
int cli_parse(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv,
              const struct cli_opt *own, int (*on_opt)(void *arg, int c, const char *val),
              void *arg, bool posix);

void cli_help(const struct cli_cmd *cmd, FILE *f);
/* A usage error: the message, @cmd's synopsis, exit 2. */
CLI_NORETURN void cli_usage(const struct cli_cmd *cmd, const char *fmt, ...) CLI_PRINTF(2, 3);

/* Reports a failure: the library's log lines kept since the last
 * cli_log_forget(), then "pvabi: <what>: <why>".  Returns CLI_FAIL. */
int cli_fail(int err, const char *fmt, ...) CLI_PRINTF(2, 3);
/* A failure without an errno. */
int cli_fail_msg(const char *fmt, ...) CLI_PRINTF(1, 2);
/* Drops the log lines kept so far: the error they explain was expected. */
void cli_log_forget(void);
/* Keeps the library's warnings for cli_fail() (unless PVABI_LOG is set). */
void cli_log_setup(void);

/* Opens cli->ctx as a toolstack; returns 0 or CLI_FAIL (reported). */
int cli_open(struct cli *cli);
void cli_close(struct cli *cli);

/* A domid operand: decimal 0..32751, else a usage error. */
pvabi_domid cli_domid_arg(const struct cli_cmd *cmd, const char *s);

/* The domids named on the command line (malloc'd; NULL for none); a bad
 * one is a usage error.  Checked before the context opens. */
pvabi_domid *cli_domid_args(const struct cli_cmd *cmd, int argc, char **argv);

/* Every domain's id, ascending (pvabi_domain_list, a page at a time); *out
 * is malloc'd.  Returns the count, or -errno for the caller to report. */
int cli_all_domids(struct cli *cli, pvabi_domid **out);

/* The text for an error: strerror, except "no such domain" for ESRCH. */
const char *cli_strerror(int err);

/* Out of memory: a CLI may give up (message, exit 1). */
void *cli_xmalloc(size_t n);
char *cli_xstrdup(const char *s);
char *cli_xasprintf(const char *fmt, ...) CLI_PRINTF(1, 2);

/* Starts the JSON document when --json (cli->out). */
void cli_json_begin(struct cli *cli);

#endif /* PVABI_CLI_H */
