/* SPDX-License-Identifier: MIT */
/*
 * `pvabi channels`: every event channel in use, with both ends.  There is
 * no "list the ports" hypercall: a domain's ports are walked with
 * EVTCHNOP_status from 1 until -EINVAL (the first port it does not have),
 * which works the same on Xen and on the local platform.
 */
#include <errno.h>
#include <stdlib.h>

#include "cli.h"

/* Xen's largest port count (the FIFO ABI's 2^17): a walk stops there even
 * if the hypervisor never says -EINVAL. */
#define PORTS_MAX (1u << 17)

static const struct table_col columns[] = {
    { "Domain", true },     { "Port", true },        { "State", false },
    { "Remote-dom", true }, { "Remote-port", true },
};

static const char *state_name(uint32_t status)
{
    static const char *const names[] = {
        "closed", "unbound", "interdomain", "pirq", "virq", "ipi"
    };

    return status < sizeof(names) / sizeof(names[0]) ? names[status] : "unknown";
}

static void json_port(struct json *j, const struct pvabi_evtchn_status *s)
{
    bool remote =
        s->status == PVABI_EVTCHNSTAT_UNBOUND || s->status == PVABI_EVTCHNSTAT_INTERDOMAIN;

    json_obj(j);
    json_ku64(j, "domid", s->dom);
    json_ku64(j, "port", s->port);
    json_kstr(j, "state", state_name(s->status));
    json_ku64(j, "vcpu", s->vcpu);
    json_key(j, "remote_domid");
    if (remote)
        json_u64(j, s->remote_dom);
    else
        json_null(j);
    json_key(j, "remote_port");
    if (s->status == PVABI_EVTCHNSTAT_INTERDOMAIN)
        json_u64(j, s->remote_port);
    else
        json_null(j);
    if (s->status == PVABI_EVTCHNSTAT_VIRQ)
        json_ku64(j, "virq", s->virq);
    if (s->status == PVABI_EVTCHNSTAT_PIRQ)
        json_ku64(j, "pirq", s->pirq);
    json_end(j);
}

static void table_port(struct table *t, const struct pvabi_evtchn_status *s)
{
    char dom[8], port[12], state[24], rdom[8] = "", rport[12] = "";

    snprintf(dom, sizeof(dom), "%u", s->dom);
    snprintf(port, sizeof(port), "%u", s->port);
    snprintf(state, sizeof(state), "%s", state_name(s->status));
    if (s->status == PVABI_EVTCHNSTAT_UNBOUND || s->status == PVABI_EVTCHNSTAT_INTERDOMAIN)
        snprintf(rdom, sizeof(rdom), "%u", s->remote_dom);
    if (s->status == PVABI_EVTCHNSTAT_INTERDOMAIN)
        snprintf(rport, sizeof(rport), "%u", s->remote_port);
    /* One word per cell, so that `awk` can split the table. */
    if (s->status == PVABI_EVTCHNSTAT_VIRQ)
        snprintf(state, sizeof(state), "virq:%u", s->virq);
    if (s->status == PVABI_EVTCHNSTAT_PIRQ)
        snprintf(state, sizeof(state), "pirq:%u", s->pirq);
    table_row(t, (const char *const[]){ dom, port, state, rdom, rport });
}

/* Walks @dom's ports.  Returns 0, or -errno from the first port (the
 * domain is gone or refused) or a later one. */
static int walk(struct cli *cli, struct table *t, pvabi_domid dom)
{
    struct pvabi_evtchn_status s;

    for (pvabi_port port = 1; port < PORTS_MAX; port++) {
        int rc = pvabi_evtchn_status_read(cli->ctx, dom, port, &s);
        if (rc == -EINVAL)
            return 0; /* past its last port: the walk's normal end */
        if (rc < 0)
            return rc;
        if (s.status == PVABI_EVTCHNSTAT_CLOSED)
            continue;
        if (cli->json)
            json_port(&cli->out, &s);
        else
            table_port(t, &s);
    }
    return 0;
}

/* Returns 0, or -errno with *failed the domain it failed on. */
static int walk_all(struct cli *cli, struct table *t, const pvabi_domid *ids, int count, bool named,
                    pvabi_domid *failed)
{
    for (int i = 0; i < count; i++) {
        int rc = walk(cli, t, ids[i]);
        /* A listed domain may die before its turn: not an error. */
        if (rc == -ESRCH && !named) {
            cli_log_forget();
            continue;
        }
        if (rc < 0) {
            *failed = ids[i];
            return rc;
        }
    }
    return 0;
}

int cli_channels(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
    int first = cli_parse(cli, cmd, argc, argv, NULL, NULL, NULL, false);
    bool named = first < argc;
    pvabi_domid *ids = cli_domid_args(cmd, argc - first, argv + first);
    int count = argc - first, rc = cli_open(cli);
    struct table *t = NULL;
    pvabi_domid failed = 0;

    if (rc == CLI_OK && !named && (count = cli_all_domids(cli, &ids)) < 0)
        rc = cli_fail(count, "channels: listing the domains");
    if (rc == CLI_OK) {
        cli_json_begin(cli);
        if (cli->json)
            json_arr(&cli->out);
        else
            t = table_new(columns, sizeof(columns) / sizeof(columns[0]));
        int err = walk_all(cli, t, ids, count, named, &failed);
        /* What was read comes out before the complaint. */
        if (cli->json)
            json_finish(&cli->out);
        else
            table_print(t, stdout);
        if (err < 0)
            rc = cli_fail(err, "channels: domain %u", failed);
    }
    table_free(t);
    free(ids);
    return rc;
}
