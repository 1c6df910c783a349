/* SPDX-License-Identifier: MIT */
/*
 * `pvabi grants`: every live grant with its granter, grantee, access and
 * mappings, through pvabi_grant_list() (the local platform's introspection:
 * Xen has no hypercall that lists a domain's grants).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Entries asked for per call: the daemon's page size for GRANT_LIST. */
#define GRANT_PAGE 256

static const struct table_col columns[] = {
    { "Granter", true }, { "Ref", true },  { "Grantee", true },
    { "Access", false }, { "Maps", true }, { "State", false },
};

static void print_grant(struct cli *cli, struct table *t, const struct pvabi_grant_entry *g)
{
    const char *access = g->flags & PVABI_GRANT_RO ? "ro" : "rw";
    const char *state = g->dying ? "dying" : "active";
    char granter[8], ref[12], grantee[8], maps[12];

    if (cli->json) {
        json_obj(&cli->out);
        json_ku64(&cli->out, "granter", g->granter);
        json_ku64(&cli->out, "ref", g->ref);
        json_ku64(&cli->out, "grantee", g->grantee);
        json_kstr(&cli->out, "access", access);
        json_ku64(&cli->out, "maps", g->maps);
        json_kstr(&cli->out, "state", state);
        json_end(&cli->out);
        return;
    }
    snprintf(granter, sizeof(granter), "%u", g->granter);
    snprintf(ref, sizeof(ref), "%u", g->ref);
    snprintf(grantee, sizeof(grantee), "%u", g->grantee);
    snprintf(maps, sizeof(maps), "%u", g->maps);
    table_row(t, (const char *const[]){ granter, ref, grantee, access, maps, state });
}

/* One domain's grants, a page at a time.  Returns 0 or -errno. */
static int walk(struct cli *cli, struct table *t, pvabi_domid dom, struct pvabi_grant_entry *page)
{
    pvabi_gref first = 0;
    int n;

    while ((n = pvabi_grant_list(cli->ctx, dom, first, page, GRANT_PAGE)) > 0) {
        for (int i = 0; i < n; i++)
            print_grant(cli, t, &page[i]);
        if (page[n - 1].ref == UINT32_MAX)
            break;
        first = page[n - 1].ref + 1;
    }
    return n < 0 ? n : 0;
}

/* Returns 0, or -errno with *failed the domain it failed on. */
static int walk_all(struct cli *cli, struct table *t, const pvabi_domid *ids, int count, bool named,
                    pvabi_domid *failed)
{
    struct pvabi_grant_entry *page = cli_xmalloc(GRANT_PAGE * sizeof(*page));
    int rc = 0;

    for (int i = 0; i < count && rc == 0; i++) {
        rc = walk(cli, t, ids[i], page);
        /* A listed domain may die (and be reaped) before its turn. */
        if (rc == -ESRCH && !named) {
            cli_log_forget();
            rc = 0;
        }
        *failed = ids[i];
    }
    free(page);
    return rc;
}

static int report(int err, pvabi_domid failed)
{
    if (err == -EOPNOTSUPP)
        return cli_fail_msg("grants: not available on this platform (Xen has no hypercall "
                            "that lists grants)");
    return cli_fail(err, "grants: domain %u", failed);
}

static int run(struct cli *cli, const pvabi_domid *ids, int count, bool named)
{
    struct table *t = NULL;
    pvabi_domid failed = 0;
    int err;

    cli_json_begin(cli);
    if (cli->json)
        json_arr(&cli->out);
    else
        t = table_new(columns, sizeof(columns) / sizeof(columns[0]));
    err = walk_all(cli, t, ids, count, named, &failed);
    if (cli->json)
        json_finish(&cli->out);
    else
        table_print(t, stdout);
    table_free(t);
    return err < 0 ? report(err, failed) : CLI_OK;
}

int cli_grants(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
    int first = cli_parse(cli, cmd, argc, argv, NULL, NULL, NULL, false);
    bool named = first < argc;
    pvabi_domid *ids = cli_domid_args(cmd, argc - first, argv + first);
    int count = argc - first, rc = cli_open(cli);

    /* Said before asking for anything: the xen platform has no such list. */
    if (rc == CLI_OK && strcmp(pvabi_platform(cli->ctx), "xen") == 0)
        rc = cli_fail_msg("grants: not available on the xen platform (Xen has no hypercall "
                          "that lists grants)");
    if (rc == CLI_OK && !named && (count = cli_all_domids(cli, &ids)) < 0)
        rc = cli_fail(count, "grants: listing the domains");
    if (rc == CLI_OK)
        rc = run(cli, ids, count, named);
    free(ids);
    return rc;
}
