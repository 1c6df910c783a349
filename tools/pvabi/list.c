/* SPDX-License-Identifier: MIT */
/*
 * `pvabi list`: the domains, in `xl list`'s exact layout (header, column
 * widths, the six state letters, memory in MiB with claims counted), so that
 * scripts written for xl read it and the Xen suite can compare the two.
 */
#include <stdlib.h>

#include "cli.h"

#define LIST_PAGE 64

/* xl's letters: running, blocked, paused, shut down, the shutdown reason
 * (SHUTDOWN_poweroff.. SHUTDOWN_soft_reset as "-rscwS"), dying. */
static void state_letters(const struct pvabi_domain_info *d, char out[7])
{
    static const char reasons[] = "-rscwS";
    bool shut = d->flags & PVABI_DOMINF_SHUTDOWN;
    uint32_t reason = shut ? d->shutdown_reason : 0;

    out[0] = d->flags & PVABI_DOMINF_RUNNING ? 'r' : '-';
    out[1] = d->flags & PVABI_DOMINF_BLOCKED ? 'b' : '-';
    out[2] = d->flags & PVABI_DOMINF_PAUSED ? 'p' : '-';
    out[3] = shut ? 's' : '-';
    out[4] = reason < sizeof(reasons) - 1 ? reasons[reason] : '?';
    out[5] = d->flags & PVABI_DOMINF_DYING ? 'd' : '-';
    out[6] = '\0';
}

/* xl: (current + outstanding) KiB / 1024, with 4 KiB pages. */
static unsigned long mem_mib(const struct pvabi_domain_info *d)
{
    return (unsigned long)((d->tot_pages + d->outstanding_pages) * 4 / 1024);
}

static void json_flags(struct json *j, const struct pvabi_domain_info *d)
{
    static const struct {
        uint32_t bit;
        const char *key;
    } flags[] = {
        { PVABI_DOMINF_RUNNING, "running" }, { PVABI_DOMINF_BLOCKED, "blocked" },
        { PVABI_DOMINF_PAUSED, "paused" },   { PVABI_DOMINF_SHUTDOWN, "shutdown" },
        { PVABI_DOMINF_DYING, "dying" },     { PVABI_DOMINF_HVM, "hvm" },
    };

    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        json_key(j, flags[i].key);
        json_bool(j, d->flags & flags[i].bit);
    }
    json_key(j, "shutdown_reason");
    if (d->flags & PVABI_DOMINF_SHUTDOWN)
        json_u64(j, d->shutdown_reason);
    else
        json_null(j);
}

static void json_handle(struct json *j, const uint8_t h[16])
{
    char s[37];
    int n = 0;

    for (int i = 0; i < 16; i++)
        n += snprintf(s + n, sizeof(s) - (size_t)n, "%s%02x",
                      i == 4 || i == 6 || i == 8 || i == 10 ? "-" : "", h[i]);
    json_kstr(j, "handle", s);
}

static void json_domain(struct json *j, const struct pvabi_domain_info *d, const char *state)
{
    json_obj(j);
    json_kstr(j, "name", d->name[0] ? d->name : NULL);
    json_ku64(j, "domid", d->domid);
    json_ku64(j, "mem_mib", mem_mib(d));
    json_ku64(j, "vcpus", d->nr_online_vcpus);
    json_kstr(j, "state", state);
    json_key(j, "cpu_time_s");
    json_double(j, (double)d->cpu_time_ns / 1e9);
    json_ku64(j, "cpu_time_ns", d->cpu_time_ns);
    json_flags(j, d);
    json_ku64(j, "tot_pages", d->tot_pages);
    json_ku64(j, "max_pages", d->max_pages);
    json_ku64(j, "outstanding_pages", d->outstanding_pages);
    json_ku64(j, "shr_pages", d->shr_pages);
    json_ku64(j, "max_vcpu_id", d->max_vcpu_id);
    json_ku64(j, "ssidref", d->ssidref);
    json_ku64(j, "cpupool", d->cpupool);
    json_handle(j, d->handle);
    json_end(j);
}

static void print_domain(struct cli *cli, const struct pvabi_domain_info *d)
{
    char state[7];

    state_letters(d, state);
    if (cli->json) {
        json_domain(&cli->out, d, state);
        return;
    }
    /* xl prints a missing name through printf("%s", NULL): "(null)". */
    printf("%-40s %5u %5lu %5u     %s  %8.1f\n", d->name[0] ? d->name : "(null)", d->domid,
           mem_mib(d), d->nr_online_vcpus, state, (double)d->cpu_time_ns / 1e9);
}

static int list_all(struct cli *cli)
{
    struct pvabi_domain_info *page = cli_xmalloc(LIST_PAGE * sizeof(*page));
    unsigned first = 0;
    int n;

    /* Paged: each call asks for the domains after the last one seen. */
    while ((n = pvabi_domain_list(cli->ctx, (pvabi_domid)first, page, LIST_PAGE)) > 0) {
        for (int i = 0; i < n; i++)
            print_domain(cli, &page[i]);
        first = page[n - 1].domid + 1u;
        if (first >= PVABI_DOMID_SELF)
            break;
    }
    free(page);
    return n < 0 ? cli_fail(n, "list: listing the domains") : CLI_OK;
}

static int list_some(struct cli *cli, const pvabi_domid *ids, int count)
{
    struct pvabi_domain_info d;

    for (int i = 0; i < count; i++) {
        int rc = pvabi_domain_read(cli->ctx, ids[i], &d);
        if (rc < 0)
            return cli_fail(rc, "list: domain %u", ids[i]);
        print_domain(cli, &d);
    }
    return CLI_OK;
}

int cli_list(struct cli *cli, const struct cli_cmd *cmd, int argc, char **argv)
{
    int first = cli_parse(cli, cmd, argc, argv, NULL, NULL, NULL, false);
    pvabi_domid *ids = cli_domid_args(cmd, argc - first, argv + first);
    int rc = cli_open(cli);

    if (rc == CLI_OK) {
        cli_json_begin(cli);
        if (cli->json)
            json_arr(&cli->out);
        else
            printf("Name                                        ID   Mem VCPUs\tState\tTime(s)\n");
        rc = first < argc ? list_some(cli, ids, argc - first) : list_all(cli);
        if (cli->json)
            json_finish(&cli->out);
    }
    free(ids);
    return rc;
}
