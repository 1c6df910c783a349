/* SPDX-License-Identifier: MIT */
/*
 * `pvabi store ls|read|write|rm`: the store through pvabi_store_*, as the
 * toolstack (privileged).  Text output follows xenstore-utils (xenstore-ls's
 * tree, xenstore-read's raw values); `store watch` is in watch.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int store_ls(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv);
static int store_read(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv);
static int store_write(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv);
static int store_rm(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv);

const struct cli_cmd cli_store_cmds[] = {
    {
        .name = "ls",
        .path = "store ls",
        .args = "[PATH]",
        .summary = "Show the tree under PATH (default /) with values, as xenstore-ls.",
        .help = "Text: one line per node, indented one space per level: name = \"value\",\n"
                "the value with C escapes (\\\\, \\\", \\n, \\t, \\r, \\xNN for other bytes\n"
                "outside printable ASCII).  --json: an object mapping each node's full path\n"
                "to its value (in tree order).  Nodes removed while walking are skipped.\n",
        .run = store_ls,
    },
    {
        .name = "read",
        .path = "store read",
        .args = "PATH...",
        .summary = "Print the values of nodes, one per line, as xenstore-read.",
        .help = "Stops at the first node that cannot be read (exit 1).\n"
                "--json: an object mapping each PATH to its value.\n",
        .run = store_read,
    },
    {
        .name = "write",
        .path = "store write",
        .args = "PATH VALUE [PATH VALUE]...",
        .summary = "Write values (creating missing parents), as xenstore-write.",
        .help = "Options must come before the first PATH: a VALUE may start with '-'.\n"
                "Stops at the first failure (exit 1).  --json: {\"written\": [PATH...]}.\n",
        .run = store_write,
    },
    {
        .name = "rm",
        .path = "store rm",
        .args = "PATH...",
        .summary = "Remove nodes and everything below them, as xenstore-rm.",
        .help = "A missing node whose parent exists is not an error (Xen's rule).\n"
                "Stops at the first failure (exit 1).  --json: {\"removed\": [PATH...]}.\n",
        .run = store_rm,
    },
    {
        .name = "watch",
        .path = "store watch",
        .args = "[--count N] [--timeout SECONDS] PATH...",
        .summary = "Print a line per change under PATH, as xenstore-watch.",
        .help = "Each event prints \"CHANGED-PATH TOKEN\", TOKEN being the watched PATH it\n"
                "matched.  As in Xen a watch fires once when it is set.\n"
                "  --count N          exit 0 after N events (all watches together)\n"
                "  --timeout SECONDS  stop after SECONDS (decimals allowed): exit 0 without\n"
                "                     --count; with --count, fewer than N events is a\n"
                "                     failure (exit 1)\n"
                "SIGINT or SIGTERM end it (exit 0).  --json: one document, streamed:\n"
                "{\"watches\": [PATH...], \"events\": [{\"path\": ..., \"token\": ...}...]}.\n",
        .run = cli_store_watch,
    },
    { 0 },
};

/* ---- ls --------------------------------------------------------------------- */

struct ls {
    struct cli *cli;
    char *failed; /* the path a failure happened on */
};

/* xenstore-ls's way: readable ASCII as is, the rest escaped. */
static void print_escaped(const char *v, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c == '\\' || c == '"')
            printf("\\%c", c);
        else if (c == '\n' || c == '\t' || c == '\r')
            printf("\\%c", c == '\n' ? 'n' : c == '\t' ? 't' : 'r');
        else if (c < 0x20 || c >= 0x7F)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir);

    return cli_xasprintf("%s%s%s", dir, n && dir[n - 1] == '/' ? "" : "/", name);
}

static void print_node(struct cli *cli, const char *path, const char *name, int depth,
                       const char *value, size_t len)
{
    if (cli->json) {
        json_key(&cli->out, path);
        json_strn(&cli->out, value, len);
        return;
    }
    printf("%*s%s = \"", depth, "", name);
    print_escaped(value, len);
    puts("\"");
}

static int ls_tree(struct ls *ls, const char *path, int depth);

/* One child: its value, then its own children.  -ENOENT: it went away. */
static int ls_child(struct ls *ls, const char *path, const char *name, int depth)
{
    char *child = join(path, name), *value = NULL;
    int rc = pvabi_store_read(ls->cli->ctx, PVABI_STORE_TXN_NONE, child, &value);

    if (rc >= 0) {
        print_node(ls->cli, child, name, depth, value, (size_t)rc);
        rc = ls_tree(ls, child, depth + 1);
    }
    free(value);
    if (rc < 0 && !ls->failed)
        ls->failed = child;
    else
        free(child);
    return rc;
}

static int ls_tree(struct ls *ls, const char *path, int depth)
{
    char **names = NULL;
    int n = pvabi_store_list(ls->cli->ctx, PVABI_STORE_TXN_NONE, path, &names), rc = 0;

    for (int i = 0; i < n && rc == 0; i++) {
        rc = ls_child(ls, path, names[i], depth);
        /* Removed between the listing and the read: the store moved on. */
        if (rc == -ENOENT) {
            free(ls->failed);
            ls->failed = NULL;
            cli_log_forget();
            rc = 0;
        }
    }
    free(names);
    return n < 0 ? n : rc;
}

static int store_ls(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
    int first = cli_parse(cli, cmd, argc, argv, NULL, NULL, NULL, false);
    struct ls ls = { .cli = cli };
    const char *path = first < argc ? argv[first] : "/";
    int rc;

    if (argc - first > 1)
        cli_usage(cmd, "one PATH at most");
    if (cli_open(cli) != 0)
        return CLI_FAIL;
    cli_json_begin(cli);
    if (cli->json)
        json_obj(&cli->out);
    rc = ls_tree(&ls, path, 0);
    if (cli->json)
        json_finish(&cli->out);
    if (rc < 0)
        cli_fail(rc, "store ls %s", ls.failed ? ls.failed : path);
    free(ls.failed);
    return rc < 0 ? CLI_FAIL : CLI_OK;
}

/* ---- read, write, rm ---------------------------------------------------------- */

/* Options, then one or more operands, a multiple of @step of them. */
static int operands(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv, bool posix,
                    int step)
{
    int first = cli_parse(cli, cmd, argc, argv, NULL, NULL, NULL, posix);

    if (first >= argc)
        cli_usage(cmd, "PATH missing");
    if ((argc - first) % step != 0)
        cli_usage(cmd, "PATH without a VALUE: '%s'", argv[argc - 1]);
    return first;
}

static int store_read(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
    int i = operands(cli, cmd, argc, argv, false, 1), rc = 0;

    if (cli_open(cli) != 0)
        return CLI_FAIL;
    cli_json_begin(cli);
    if (cli->json)
        json_obj(&cli->out);
    for (; i < argc && rc >= 0; i++) {
        char *value = NULL;
        rc = pvabi_store_read(cli->ctx, PVABI_STORE_TXN_NONE, argv[i], &value);
        if (rc >= 0 && cli->json) {
            json_key(&cli->out, argv[i]);
            json_strn(&cli->out, value, (size_t)rc);
        } else if (rc >= 0) {
            fwrite(value, 1, (size_t)rc, stdout);
            putchar('\n');
        }
        free(value);
    }
    if (cli->json)
        json_finish(&cli->out);
    return rc < 0 ? cli_fail(rc, "store read %s", argv[i - 1]) : CLI_OK;
}

/* write and rm: one call per path (or pair); the paths done are listed. */
static int store_change(struct cli *cli, const char *verb, const char *key, char **ops, int nops,
                        int step)
{
    int i = 0, rc = 0;

    cli_json_begin(cli);
    if (cli->json) {
        json_obj(&cli->out);
        json_key(&cli->out, key);
        json_arr(&cli->out);
    }
    for (; i < nops && rc == 0; i += step) {
        if (step == 2)
            rc = pvabi_store_write(cli->ctx, PVABI_STORE_TXN_NONE, ops[i], ops[i + 1]);
        else
            rc = pvabi_store_rm(cli->ctx, PVABI_STORE_TXN_NONE, ops[i]);
        if (rc == 0 && cli->json)
            json_str(&cli->out, ops[i]);
    }
    if (cli->json)
        json_finish(&cli->out);
    return rc < 0 ? cli_fail(rc, "store %s %s", verb, ops[i - step]) : CLI_OK;
}

static int store_write(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
    int first = operands(cli, cmd, argc, argv, true, 2);

    if (cli_open(cli) != 0)
        return CLI_FAIL;
    return store_change(cli, "write", "written", argv + first, argc - first, 2);
}

static int store_rm(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
    int first = operands(cli, cmd, argc, argv, false, 1);

    if (cli_open(cli) != 0)
        return CLI_FAIL;
    return store_change(cli, "rm", "removed", argv + first, argc - first, 1);
}
